"""The threads a search runs its kernel bands on: an object with a lock, shared safely.

The kernels are serial and release the GIL, so a search splits its output
rows (or FFT tiles) into bands and runs them on Python threads. A
``ThreadPool`` owns one ``ThreadPoolExecutor``, created on first use and
grown (never shrunk while in use) under a lock, so any number of searches,
each with its own thread count, can share it from any number of threads.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


def default_threads() -> int:
    """All the cores this process may use, or NUMBA_NUM_THREADS if that is set.

    NUMBA_NUM_THREADS only sets this default; ``--threads`` (or a search's
    ``threads``) overrides it.

    >>> default_threads() >= 1
    True
    """
    env = os.environ.get("NUMBA_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return usable_cores()


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), whatever NUMBA_NUM_THREADS says.

    >>> usable_cores() >= 1
    True
    """
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class ThreadPool:
    """Python threads for kernel bands; safe to share between concurrent searches.

    Examples
    --------
    >>> pool = ThreadPool()
    >>> seen = []
    >>> pool.run_bands(lambda start, stop: seen.append((start, stop)), (), 10, threads=2)
    >>> sorted(seen)[0], sum(b - a for a, b in seen)
    ((0, 1), 10)
    >>> pool.close()
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._size = 0
        self._threads = default_threads()

    @property
    def threads(self) -> int:
        """Threads a search uses when it is given no number of its own."""
        return self._threads

    def set_threads(self, threads: int | None) -> int:
        """Set that default (None: ``default_threads()``); return it."""
        self._threads = default_threads() if threads is None else max(1, int(threads))
        return self._threads

    def _submit(
        self, threads: int, calls: list[tuple[Any, ...]], kernel: Callable[..., Any]
    ) -> list[Future[Any]]:
        # under the lock: a search that grows the executor cannot shut down
        # the one another search is submitting to
        with self._lock:
            if self._executor is None or self._size < threads:
                # a larger executor replaces the smaller one; the old one
                # finishes the bands it was given (shutdown does not cancel)
                old = self._executor
                self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="waldo")
                self._size = threads
                if old is not None:
                    old.shutdown(wait=False)
            return [self._executor.submit(kernel, *call) for call in calls]

    def run_bands(
        self,
        kernel: Callable[..., Any],
        args: tuple[Any, ...],
        count: int,
        *,
        threads: int,
        scratch: Callable[[], tuple[Any, ...]] | None = None,
    ) -> None:
        """Call ``kernel(*args, *scratch(), start, stop)`` over [0, count) in bands, on threads.

        ``scratch`` makes the working arrays of one call (each band its own,
        as bands run at once): kernels given their buffers allocate nothing,
        and compile without NumPy's allocation functions.
        """

        def own() -> tuple[Any, ...]:
            return scratch() if scratch is not None else ()

        threads = min(threads, count)
        if threads <= 1:
            kernel(*args, *own(), 0, count)
            return
        # a few bands per thread even out bands that cost more than others
        bands = min(count, 4 * threads)
        edges = [count * i // bands for i in range(bands + 1)]
        futures = self._submit(
            threads,
            [(*args, *own(), a, b) for a, b in zip(edges, edges[1:], strict=False) if a < b],
            kernel,
        )
        for future in futures:
            future.result()

    def close(self) -> None:
        """Let the threads end once their work is done (the pool can still be used later)."""
        with self._lock:
            if self._executor is not None:
                self._executor.shutdown(wait=False)
            self._executor, self._size = None, 0


# One pool shared by every search in the process that is given none of its
# own: threads are created once, and the lock keeps it consistent.
SHARED = ThreadPool()
