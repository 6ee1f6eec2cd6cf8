"""What pytest collects from the tree: an optional extra's doctests only where it is installed.

``waldo_cli/cluster.py`` imports Dask's ``distributed`` (the ``[dask]`` extra);
without it, its doctests are skipped rather than failing to import, as
``tests/test_cluster.py`` skips itself.
"""

from __future__ import annotations

import importlib.util

collect_ignore = []
if importlib.util.find_spec("distributed") is None:
    collect_ignore.append("waldo_cli/cluster.py")
