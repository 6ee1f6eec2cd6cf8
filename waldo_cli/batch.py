"""Search many images for one template: one result or one error per image, in input order.

Nothing here prints; the ``cli`` package turns the results into output and
exit codes. ``run_batch`` runs the searches on any
``concurrent.futures.Executor`` (threads by default; a process pool or a
Dask ``client.get_executor()`` work too), with a bounded read-ahead.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any

from waldo_cli.errors import ImageReadError, WaldoError
from waldo_cli.io import image_size, read_image, read_source
from waldo_cli.results import FindReport, ImageResult
from waldo_cli.search import MultiSearcher, Searcher, SearchOptions

__all__ = [
    "FindReport",
    "ImageResult",
    "MultiSearcher",
    "SearchOptions",
    "Searcher",
    "Source",
    "run_batch",
]

Source = tuple[str, Any]  # (name to report, path or bytes to read)


def search_source(searcher: Searcher | MultiSearcher, index: int, source: Source) -> ImageResult:
    """Read and search one image; whatever is wrong with it becomes its error record."""
    name, data = source
    try:
        if isinstance(data, str):
            # a FIFO or device is read once, here; a file's header says, before
            # anything is decoded, whether the template can fit
            data = read_source(data)
            if isinstance(data, str):
                searcher.check_fits(*image_size(data, name))
        loaded = read_image(data, name=name)
        # one report per template, each score map let go once its report is made
        reports = [result.report for result in searcher.search_iter(loaded)]
    except ImageReadError as exc:  # names the file already
        return ImageResult(index, name, error=str(exc))
    except WaldoError as exc:  # one of fifty files: say which
        return ImageResult(index, name, error=f"{name}: {exc}")
    return ImageResult(index, name, report=reports[0], others=tuple(reports[1:]))


def run_batch(
    searcher: Searcher | MultiSearcher,
    sources: Iterable[Source],
    jobs: int = 1,
    *,
    executor: Executor | None = None,
) -> Iterator[ImageResult]:
    """Search every image and yield one result per image, in input order.

    Parameters
    ----------
    searcher : Searcher or MultiSearcher
        The prepared template (or templates) and options.
    sources : iterable of (name, path or bytes)
        The images; read lazily, one at a time.
    jobs : int
        Images searched at once. At most ``2 * jobs`` images are in flight
        (read ahead), so memory stays bounded however long the batch is;
        results still come out in input order.
    executor : concurrent.futures.Executor, optional
        Where the searches run: any executor (a process pool, a Dask
        client's ``get_executor()``). By default, a thread pool of ``jobs``
        threads (none for ``jobs=1``: the searches run in this thread).
        An executor passed in is not shut down.

    Yields
    ------
    ImageResult
        A report (one per template), or the error for an image that could
        not be searched (the batch goes on).

    Examples
    --------
    >>> import numpy as np
    >>> from waldo_cli.io import LoadedImage
    >>> tpl = LoadedImage(np.ones((2, 2, 1), np.float32), None, "L", "t.png")
    >>> results = run_batch(Searcher(tpl, SearchOptions()), [("missing.png", "missing.png")])
    >>> [r.to_dict() for r in results]
    [{'image': 'missing.png', 'error': 'missing.png: no such file'}]
    """
    numbered = enumerate(sources)
    if executor is None and jobs <= 1:
        for index, source in numbered:
            yield search_source(searcher, index, source)
        return
    own = executor is None
    pool: Executor = executor or ThreadPoolExecutor(
        max_workers=jobs, thread_name_prefix="waldo-job"
    )
    pending: deque[Future[ImageResult]] = deque()

    def submit_next() -> None:
        for index, source in numbered:
            pending.append(pool.submit(search_source, searcher, index, source))
            return

    try:
        for _ in range(2 * max(1, jobs)):
            submit_next()
        while pending:
            result = pending.popleft().result()
            submit_next()
            yield result
    finally:
        # a consumer that stops early (Ctrl-C, -q, --fail-fast) cancels
        # whatever has not started; running images finish on their own
        for future in pending:
            future.cancel()
        if own:
            pool.shutdown(wait=True)
