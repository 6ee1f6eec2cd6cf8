"""``waldo find --dask``: the batch on a Dask cluster, with the local batch's records and codes.

The command line's side of ``waldo_cli.cluster``: whether the extra is
installed, which options go with ``--dask``, connecting before any output is
written, closing the cluster when the command ends (Ctrl-C included), and
turning the cluster's errors into one line and exit status 2. ``waldo_cli.cluster``,
and Dask with it, is imported from here only, and only when ``--dask`` is given.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click

from waldo_cli.cli import usage_error
from waldo_cli.cli.terminal import image_source

if TYPE_CHECKING:
    from waldo_cli.cli.find import FindArgs

EXTRA = "pip install 'waldo-cli[dask]'"


def check_dask(args: FindArgs) -> None:
    """Refuse ``--dask`` where it cannot run, and ``--unordered`` without it."""
    if args.dask is None:
        if args.unordered:
            raise usage_error("--unordered goes with --dask (a local batch keeps input order)")
        return
    if args.single:
        raise usage_error("--dask searches a batch: give the template with -t")
    if (args.heatmap_path, args.overlay_path, args.show, args.scores_path) != (None,) * 4:
        raise usage_error(
            "--heatmap, --overlay, --scores and --show are for one image searched here, "
            "not with --dask"
        )
    folders = {"--heatmap-dir": args.heatmap_dir, "--overlay-dir": args.overlay_dir}
    folders["--crops"] = args.crops_dir
    given = [option for option, folder in folders.items() if folder is not None]
    if given:
        # they would be written where each search runs: on the workers' machines
        raise usage_error(f"{' and '.join(given)}: pictures are not written from --dask workers")
    if args.dask != "local" and args.jobs is not None:
        raise usage_error(
            "--jobs sets the worker processes of --dask local; "
            f"the cluster at {args.dask} has its own workers"
        )
    try:
        import waldo_cli.cluster  # noqa: F401 - is the extra there?
    except ImportError as exc:
        from waldo_cli.cli import WaldoUsageError

        raise WaldoUsageError(f"--dask needs the dask extra ({exc}): {EXTRA}") from None


def search_on_dask(args: FindArgs, searcher: Any, images: list[str]) -> Iterator[Any]:
    """Connect (or start ``local``) now, then stream one result per image from the cluster.

    The session closes when the command ends, however it ends: a generator
    left suspended by Ctrl-C would close it only at garbage collection.
    """
    from waldo_cli import cluster
    from waldo_cli.cli.find import _input_error

    # Dask's own log lines (a lost connection, a worker restarted) are not
    # for the user of a command: what matters reaches them as one line
    for name in ["distributed", *logging.root.manager.loggerDict]:
        if name.split(".")[0] == "distributed":  # Dask's config sets some children's levels
            logging.getLogger(name).setLevel(logging.CRITICAL)
    address = str(args.dask)
    workers = args.jobs if address == "local" else None
    try:
        session = cluster.open_session(address, workers=workers)
    except cluster.ClusterError as exc:
        raise _input_error(args, str(exc)) from None
    click.get_current_context().call_on_close(session.close)
    sources = (image_source(path) for path in images)
    results = cluster.search_on_cluster(
        session.client, searcher, sources, ordered=not args.unordered, total=len(images)
    )
    return _one_line_errors(args, results)


def _one_line_errors(args: FindArgs, results: Iterator[Any]) -> Iterator[Any]:
    from waldo_cli import cluster
    from waldo_cli.cli.find import _input_error

    try:
        yield from results
    except cluster.ClusterError as exc:
        raise _input_error(args, str(exc)) from None
