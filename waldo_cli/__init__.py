"""waldo: find a picture inside pictures.

The public API is imported lazily, so that ``waldo --help``, ``--version`` and
``params`` never pay for importing Numba.

>>> import waldo_cli
>>> {"match_template", "run_batch", "WaldoError"} <= set(waldo_cli.__all__)
True
"""

from __future__ import annotations

# typing (and importlib) are not imported at run time: the console script
# imports this package first, before it asks a waldo server to run the
# command, and those imports would cost it more than its own work
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "match_template": "waldo_cli.engine",
    "match_templates": "waldo_cli.engine",
    "prepare_template": "waldo_cli.engine",
    "Searcher": "waldo_cli.search",
    "MultiSearcher": "waldo_cli.search",
    "SearchOptions": "waldo_cli.search",
    "SearchResult": "waldo_cli.search",
    "run_batch": "waldo_cli.batch",
    "find_peaks": "waldo_cli.peaks",
    "Match": "waldo_cli.peaks",
    "load_image": "waldo_cli.io",
    "read_image": "waldo_cli.io",
    "param_counts": "waldo_cli.params",
    "WaldoError": "waldo_cli.errors",
    "learn_filter": "waldo_cli.learn",
    "load_filter": "waldo_cli.filters",
    "save_filter": "waldo_cli.filters",
    "LearnedFilter": "waldo_cli.templates",
}

__all__ = [
    "__version__",
    "match_template",
    "match_templates",
    "prepare_template",
    "Searcher",
    "MultiSearcher",
    "SearchOptions",
    "SearchResult",
    "run_batch",
    "find_peaks",
    "Match",
    "load_image",
    "read_image",
    "param_counts",
    "WaldoError",
    "learn_filter",
    "load_filter",
    "save_filter",
    "LearnedFilter",
]

if TYPE_CHECKING:  # pragma: no cover
    from waldo_cli.batch import run_batch
    from waldo_cli.engine import match_template, match_templates, prepare_template
    from waldo_cli.errors import WaldoError
    from waldo_cli.filters import load_filter, save_filter
    from waldo_cli.io import load_image, read_image
    from waldo_cli.learn import learn_filter
    from waldo_cli.params import param_counts
    from waldo_cli.peaks import Match, find_peaks
    from waldo_cli.search import MultiSearcher, Searcher, SearchOptions, SearchResult
    from waldo_cli.templates import LearnedFilter


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'waldo_cli' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
