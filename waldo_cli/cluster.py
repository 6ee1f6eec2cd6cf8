"""Batch searches on a Dask cluster: the local batch's records, order and guarantees.

The only module that imports Dask's ``distributed`` (and, on the workers,
``fsspec``); the extra ``waldo-cli[dask]`` installs both. Nothing here prints.

How a batch runs there:

- The template is loaded once, by the caller, and the ``Searcher`` is sent
  to the cluster once, as a task of its own that returns it; each search task
  names that task's result. Dask sends a task to a worker that holds what
  it names, and an idle worker steals tasks from busy ones, fetching the
  searcher from a peer once; each worker keeps its copy, which prepares the
  template on its first search. Not
  scattered data: Dask forgets scattered data when every worker holding it
  dies, and cancels the tasks that name it, and scattering it again pushes it
  to workers the scheduler may not yet know are dead. A task's result the
  scheduler rebuilds by itself, on workers that live.
- Images go out in tasks of several images each (``TaskSizer``): half a
  second of work per task or more, so that Dask's cost per task (some
  milliseconds) stays small beside it and the scheduler is never the limit,
  and fewer images per task near the end of the list, so that the workers
  finish together.
- At most two tasks per worker thread are out at once (submitted, or done and
  waiting for the ones before them): the client holds a bounded window
  however long the list is.
- Workers read the paths themselves (a shared filesystem), or fsspec URLs
  (``s3://``, ``gs://``, ``file://``...); bytes (an image from standard
  input) travel inside the task.
- A worker that dies is Dask's to handle: the scheduler runs its tasks again
  elsewhere, and a task that raised is retried (``retries``). Each task's
  records reach the client once, so each image is reported exactly once, and
  the client lets go of a task's result as soon as it has it: the scheduler
  does not compute again what a dying worker held and the client has. A
  task whose workers kept dying is tried again image by image; an image that
  still kills its worker gets an error record, and the batch goes on. Tasks
  cancelled by someone else (another client, a restart of the cluster) are
  sent again, a few times.
- Standard input (``-``) is read here, on the client, and its bytes travel
  with their task; whatever is wrong with it (closed, too long) is that
  image's error record, as in a local batch.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import dask.config
from dask.utils import parse_timedelta
from distributed import Client, Future, LocalCluster, as_completed
from distributed.scheduler import KilledWorker

from waldo_cli.batch import Source, search_source
from waldo_cli.errors import ImageReadError, WaldoError
from waldo_cli.io import read_source, read_stream
from waldo_cli.jit import skip_extension_scan
from waldo_cli.pool import usable_cores
from waldo_cli.results import ImageResult
from waldo_cli.search import MultiSearcher, Searcher

__all__ = [
    "ClusterError",
    "Session",
    "TaskSizer",
    "open_session",
    "search_on_cluster",
    "search_task",
]

# Work per task, in worker seconds, at least: Dask spends about 19 ms of CPU
# on each task, 7 in the worker, 7 in the scheduler and 5 in the client
# (benchmarks/bench_cluster.py, on a busy 2-core machine): under 4% of this,
# and a dead worker takes no more with it.
TASK_SECONDS = 0.5
# The scheduler's CPU seconds per task, as measured there, and the share of
# its time the tasks may take: tasks grow longer with the worker threads, so
# the scheduler stays clear of being the limit (100 threads: 1.4 s a task).
SCHEDULER_SECONDS_PER_TASK = 0.007
SCHEDULER_SHARE = 0.5
# At most this many images per task: a sanity bound where a list of missing
# files makes images look free.
MAX_IMAGES_PER_TASK = 1024
# A task that raised (rather than lost its worker) is tried this many more times.
RETRIES = 2
# How many times a task cancelled by the scheduler is sent again.
_RESUBMITS = 3
# How often the window follows workers that join or leave.
_RECOUNT_SECONDS = 5.0


class ClusterError(WaldoError):
    """The cluster cannot be reached, has no workers, or went away mid-batch."""


@dataclass
class Session:
    """A client connected to a scheduler, and the local cluster it started, if any.

    Close it when done (it is a context manager): a local cluster's worker
    processes end with it.
    """

    client: Client
    cluster: LocalCluster | None = None

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Disconnect (the scheduler forgets this client's tasks), and stop a local cluster."""
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def connect_timeout() -> float:
    """Seconds to try to reach a scheduler: Dask's own setting, 30 by default.

    ``distributed.comm.timeouts.connect`` in Dask's configuration, which the
    environment variable ``DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT`` (``5s``)
    sets too.
    """
    seconds = parse_timedelta(dask.config.get("distributed.comm.timeouts.connect"), "s")
    return float(seconds) if seconds is not None else 30.0


def open_session(address: str, workers: int | None = None, timeout: float | None = None) -> Session:
    """Connect to a Dask scheduler, or start a cluster on this machine.

    Parameters
    ----------
    address : str
        A scheduler's address (``tcp://host:8786``), or ``"local"``: a
        ``LocalCluster`` on the loopback interface, one single-threaded worker
        process per core.
    workers : int, optional
        Worker processes of the local cluster (default: the usable cores).
        Only for ``"local"``.
    timeout : float, optional
        Seconds to try to reach the scheduler, and then to wait for it to
        have a worker; by default ``connect_timeout()``, Dask's own setting.

    Returns
    -------
    Session
        Connected, with at least one worker.

    Raises
    ------
    ClusterError
        The scheduler cannot be reached, or has no worker, within ``timeout``.
    """
    if address == "local":
        with _ctrl_c_in_this_thread_only():
            return _start_local(workers or usable_cores())
    if workers is not None:
        raise ValueError("workers is only for a local cluster")
    timeout = connect_timeout() if timeout is None else timeout
    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ClusterError(
            f"cannot reach the Dask scheduler at {address} within {timeout:g} s ({_one_line(exc)})"
        ) from None
    try:
        client.wait_for_workers(1, timeout=timeout)
    except TimeoutError:
        client.close()
        raise ClusterError(
            f"the Dask scheduler at {address} has no workers (waited {timeout:g} s)"
        ) from None
    return Session(client)


# Dask's settings for waldo's own local cluster. Dask starts workers with
# MALLOC_TRIM_THRESHOLD_=65536, which turns glibc's dynamic mmap threshold off:
# every array of every image is then a fresh mmap, and the page faults cost a
# search three times the system time (None unsets it). Its statistical
# profiler, 20 ms event-loop checks and frequent memory and system polls kept
# an idle two-worker cluster at 0.18 CPU seconds a second, 0.02 without
# (benchmarks/bench_cluster.py). Dask's active memory manager drops every
# copy of the searcher but one where no task waits for it, every 2 s: the
# workers would fetch it again, and prepare the template again.
_LOCAL_CONFIG = {
    "distributed.scheduler.active-memory-manager.start": False,
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "500ms",
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.admin.system-monitor.interval": "2s",
}


def _start_local(workers: int) -> Session:
    with dask.config.set(_LOCAL_CONFIG):
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            # no dashboard; the scheduler's small HTTP server on any free port
            dashboard_address=None,
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            # waldo reports what goes wrong itself (error records, one line):
            # a worker whose scheduler closed under Ctrl-C must not print a
            # heartbeat's traceback on the user's terminal
            silence_logs=logging.CRITICAL,
        )
    client = Client(cluster, set_as_default=False)
    # waldo's own worker processes, as the waldo process itself: Numba need
    # not import every extension installed before the first search
    client.run(skip_extension_scan)
    return Session(client, cluster)


@contextlib.contextmanager
def _ctrl_c_in_this_thread_only() -> Iterator[None]:
    """Block SIGINT in the threads and processes started inside (the caller's thread excepted).

    Ctrl-C at a terminal reaches the whole process group, worker processes
    included: they would die with tracebacks while the caller is still
    cancelling their tasks. Threads and processes inherit the signal mask, so
    the cluster's event loop and every worker process it starts, or restarts
    later, leave Ctrl-C to the caller, which closes them. One that arrives
    while blocked is delivered here when the block is lifted.
    """
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not (
        threading.main_thread()
    ):
        yield
        return
    from multiprocessing import resource_tracker

    # multiprocessing's resource tracker unblocks SIGINT in the thread that
    # starts it (the cluster's event loop would): have it running already
    resource_tracker.ensure_running()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _one_line(exc: object) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


@dataclass(frozen=True)
class TaskOutcome:
    """What one task sends back: a record per image, and the worker's seconds on them.

    The seconds leave out loading the kernels (a worker's first search): they
    size the next tasks.
    """

    results: list[ImageResult]
    seconds: float


def hold_searcher(searcher: Searcher | MultiSearcher) -> Searcher | MultiSearcher:
    """The searcher itself (runs on a worker): a result the scheduler can rebuild if lost."""
    return searcher


@dataclass(frozen=True)
class Unread:
    """An image the client could not read (standard input closed or too long): its error."""

    error: str


def portable(source: Source) -> Source:
    """What can travel to a worker: a path, URL or bytes as they are, a stream as its bytes.

    A stream (standard input), and a path under ``/dev/`` or ``/proc/``
    (``/dev/stdin``, ``/dev/fd/63`` from ``<(...)``, a device), is this
    process's, not a worker's: read here, bounded as ``read_image`` bounds
    it. One that cannot be read becomes ``Unread``, its error record's text.
    Other paths are the workers' to read (not even looked at here: a list of
    millions on a network filesystem).

    >>> import io
    >>> portable(("-", io.BytesIO(b"png?"))), portable(("a.png", "a.png"))
    (('-', b'png?'), ('a.png', 'a.png'))
    >>> portable(("-", None))
    ('-', Unread(error='-: standard input is closed'))
    """
    name, data = source
    if isinstance(data, bytes):
        return source
    if isinstance(data, (bytearray, memoryview)):
        return name, bytes(data)
    try:
        if isinstance(data, str):
            if not data.startswith(_THIS_MACHINE):
                return source
            read = read_source(data)
            return name, read if isinstance(read, bytes) else data
        return name, read_stream(data, name)
    except ImageReadError as exc:
        return name, Unread(str(exc))


# Paths that name this process's streams and devices, never a worker's files
_THIS_MACHINE = ("/dev/", "/proc/")


def search_task(searcher: Searcher | MultiSearcher, items: list[tuple[int, Source]]) -> TaskOutcome:
    """Search a few images on a worker: one record each, errors included (runs there).

    ``items`` are (index, (name, path, URL or bytes)). Paths are read from
    the worker's filesystem, URLs with fsspec; whatever is wrong with an
    image becomes its error record, exactly as in a local batch.
    """
    started = time.perf_counter()
    results = []
    loading = 0.0  # the kernels' one-time loading, not the images' cost
    for index, (name, data) in items:
        if isinstance(data, Unread):
            results.append(ImageResult(index, name, error=data.error))
            continue
        if isinstance(data, str) and _is_url(data):
            try:
                data = _fetch(name, data)
            except ImageReadError as exc:
                results.append(ImageResult(index, name, error=str(exc)))
                continue
        result = search_source(searcher, index, (name, data))
        if result.report is not None:
            loading += result.report.extra.get("compile_seconds", 0.0)
        results.append(result)
    return TaskOutcome(results, max(0.0, time.perf_counter() - started - loading))


def _is_url(path: str) -> bool:
    """``s3://bucket/key``-like: a protocol fsspec may know, not a local path.

    >>> _is_url("s3://b/k.png"), _is_url("file:///tmp/a.png"), _is_url("scans/a.png")
    (True, True, False)
    """
    scheme, sep, _ = path.partition("://")
    return bool(sep) and scheme.replace("+", "").replace("-", "").isalnum()


def _fetch(name: str, url: str) -> bytes:
    """The bytes at an fsspec URL, or the ImageReadError that says why not."""
    try:
        import fsspec
    except ImportError:
        raise ImageReadError(name, "fsspec is not installed on the worker") from None
    try:
        with fsspec.open(url, "rb") as fh:
            data: bytes = fh.read()
    except FileNotFoundError:
        raise ImageReadError(name, "no such file") from None
    except IsADirectoryError:
        raise ImageReadError(name, "is a directory, not an image file") from None
    except PermissionError:
        raise ImageReadError(name, "permission denied") from None
    except (OSError, ValueError, ImportError) as exc:
        # ValueError: a protocol fsspec does not know; ImportError: one whose
        # package (s3fs, gcsfs...) is not installed on the worker
        raise ImageReadError(name, f"cannot read it here ({_one_line(exc)})") from None
    if not data:
        raise ImageReadError(name, "the file is empty")
    return data


@dataclass
class TaskSizer:
    """How many images the next task gets: ``target`` seconds of work, fewer near the end.

    Starts at one image a task; then the worker seconds per image measured
    so far set the size, so small images travel many to a task and large
    ones few. The target is half a second of work, or longer on a cluster of
    so many worker threads that their tasks would keep the scheduler more
    than half busy. With the number of images left known, a task takes at
    most their share over twice the worker threads, so the last tasks are
    small and no worker waits long for another at the end (guided
    scheduling).

    >>> sizer = TaskSizer(threads=4)
    >>> sizer.size(remaining=None), sizer.target, TaskSizer(threads=100).target
    (1, 0.5, 1.4)
    >>> sizer.record(seconds=0.2, images=10)  # 20 ms an image
    >>> sizer.size(remaining=None), sizer.size(remaining=1000), sizer.size(remaining=30)
    (25, 25, 4)
    """

    threads: int
    seconds: float = TASK_SECONDS
    most: int = MAX_IMAGES_PER_TASK
    _work: float = 0.0
    _images: int = 0

    def record(self, seconds: float, images: int) -> None:
        """Count a finished task: its worker seconds and its number of images."""
        self._work += seconds
        self._images += images

    @property
    def target(self) -> float:
        """Worker seconds a task: ``seconds``, or enough to leave the scheduler half idle."""
        busy = self.threads * SCHEDULER_SECONDS_PER_TASK / SCHEDULER_SHARE
        return round(max(self.seconds, busy), 6)

    def size(self, remaining: int | None) -> int:
        """Images for the next task (``remaining``: images not yet sent, if known)."""
        if self._images == 0 or self._work <= 0:
            size = 1
        else:
            size = round(self.target * self._images / self._work)
        if remaining is not None:
            size = min(size, math.ceil(remaining / (2 * max(1, self.threads))))
        return max(1, min(size, self.most))


@dataclass
class _Slot:
    """One task's images, its future while it runs, its records once done."""

    items: list[tuple[int, Source]]
    future: Future | None = None
    cancelled: int = 0
    results: list[ImageResult] | None = None
    children: list[_Slot] = field(default_factory=list)


def search_on_cluster(
    client: Client,
    searcher: Searcher | MultiSearcher,
    sources: Iterable[Source],
    *,
    ordered: bool = True,
    total: int | None = None,
    retries: int = RETRIES,
    images_per_task: int | None = None,
) -> Iterator[ImageResult]:
    """Search every image on the client's cluster and yield one result per image.

    Parameters
    ----------
    client : distributed.Client
        Connected to a scheduler with workers.
    searcher : Searcher or MultiSearcher
        The prepared template (or templates) and options; sent once, fetched
        once by each worker.
    sources : iterable of (name, path, URL, bytes or binary stream)
        The images, read lazily as the window moves on. Workers read paths
        and URLs themselves; bytes, and a stream's bytes (read here), travel
        with their task.
    ordered : bool
        Yield in input order (default), or as tasks finish.
    total : int, optional
        The number of sources, if known: lets the last tasks be smaller.
    retries : int
        More tries for a task that raised (one whose worker died is run again
        by the scheduler in any case).
    images_per_task : int, optional
        A fixed task size, instead of about ``TASK_SECONDS`` of work a task
        (``TaskSizer``); for measuring what the scheduler costs per task.

    Yields
    ------
    ImageResult
        Exactly one per source: a report, or the error for an image that
        could not be searched (the batch goes on).

    Raises
    ------
    ClusterError
        The scheduler went away or cancelled the tasks. Stopping the
        iteration early (or Ctrl-C) cancels every task still out.
    """
    run = _Run(client, searcher, sources, ordered, total, retries)
    run.fixed = images_per_task
    try:
        yield from run
    finally:
        run.cancel()


class _Run:
    """The state of one batch on a cluster: the window of tasks and their order."""

    def __init__(
        self,
        client: Client,
        searcher: Searcher | MultiSearcher,
        sources: Iterable[Source],
        ordered: bool,
        total: int | None,
        retries: int,
    ) -> None:
        self.client = client
        self.numbered = enumerate(sources)
        self.ordered = ordered
        self.remaining = total
        self.retries = retries
        self.prefix = f"waldo-search-{uuid.uuid4().hex[:12]}"
        self.tasks = 0
        self.ships = 0
        self.template = searcher
        self.searcher = self._ship()
        self.threads = self._count_threads()
        self.counted = time.monotonic()
        self.sizer = TaskSizer(self.threads)
        self.running: dict[object, _Slot] = {}  # by future key
        self.waiting: deque[_Slot] = deque()  # in input order, while ordered
        self.done = as_completed(with_results=True, raise_errors=False, loop=client.loop)
        self.exhausted = False
        self.fixed: int | None = None  # images per task, where not the sizer's

    def _ship(self) -> Future:
        """Send the searcher, once: a task that returns it, which every search task names.

        A worker fetches its result once, from a peer, before its first
        search, and keeps it. Where every worker holding it dies, the
        scheduler runs the task again on a worker that lives; nothing here
        has to notice, and the scheduler never pushes it to a worker that may
        have just died, as scattering it again would.
        """
        self.ships += 1
        # a large template travels in the graph once, as meant: Dask's warning
        # about large graphs is for data repeated in many tasks
        with dask.config.set({"distributed.admin.large-graph-warning-threshold": "1 PiB"}):
            return self.client.submit(
                hold_searcher,
                self.template,
                key=f"{self.prefix}-searcher-{self.ships}",
                pure=False,
                retries=self.retries,
            )

    @property
    def _address(self) -> str:
        scheduler = self.client.scheduler
        return str(scheduler.address) if scheduler is not None else "?"

    def _count_threads(self) -> int:
        return max(1, sum(self.client.nthreads().values()))

    @property
    def window(self) -> int:
        """Tasks out at once: two per worker thread, so none waits for its next task."""
        return 2 * self.threads

    def _out(self) -> int:
        return len(self.waiting) if self.ordered else len(self.running)

    def _submit(self, slot: _Slot) -> None:
        if self.searcher.status in ("error", "cancelled"):  # someone cancelled it, or gave up
            self.searcher = self._ship()
        self.tasks += 1
        slot.future = self.client.submit(
            search_task,
            self.searcher,
            slot.items,
            key=f"{self.prefix}-{self.tasks}",
            pure=False,
            retries=self.retries,
        )
        self.running[slot.future.key] = slot
        self.done.add(slot.future)

    def _fill(self) -> None:
        if time.monotonic() - self.counted > _RECOUNT_SECONDS:
            self.threads, self.counted = self._count_threads(), time.monotonic()
            self.sizer.threads = self.threads
        while not self.exhausted and self._out() < self.window:
            size = self.fixed or self.sizer.size(self.remaining)
            items = [(index, portable(source)) for index, source in islice(self.numbered, size)]
            if not items:
                self.exhausted = True
                return
            if self.remaining is not None:
                self.remaining = max(0, self.remaining - len(items))
            slot = _Slot(items)
            if self.ordered:
                self.waiting.append(slot)
            self._submit(slot)

    def __iter__(self) -> Iterator[ImageResult]:
        self._fill()
        for future, outcome in self.done:
            slot = self.running.pop(future.key)
            slot.future = None
            status = future.status
            # the outcome is here: the scheduler may forget it now. Held until
            # the next task ended (this generator keeps the loop's names while
            # it yields), a result lost with its worker was computed again for
            # nothing, on a thread the scheduler then took for free (#17)
            future.release()
            finished = self._finish(slot, status, outcome)
            if not self.ordered:
                yield from finished
            while self.waiting and self.waiting[0].results is not None:
                yield from self.waiting.popleft().results or []
            self._fill()

    def _finish(self, slot: _Slot, status: str, outcome: Any) -> list[ImageResult]:
        """Take a task's outcome: its records, or its images sent again one by one."""
        if status == "finished":
            self.sizer.record(outcome.seconds, len(slot.items))
            slot.results = outcome.results
            return slot.results
        if status != "error":  # cancelled: the scheduler went away, or someone cancelled
            if self.client.status != "running":
                raise ClusterError(f"lost the connection to the Dask scheduler at {self._address}")
            if slot.cancelled < _RESUBMITS:
                # another client cancelled it, or the cluster was restarted
                # (the searcher with it, which _submit sends again)
                slot.cancelled += 1
                self._submit(slot)
                return []
            why = getattr(outcome, "msg", None) or getattr(outcome, "reason", None) or status
            raise ClusterError(
                f"the Dask scheduler at {self._address} cancelled the search ({_one_line(why)})"
            )
        exc = outcome[1]
        if isinstance(exc, ImportError):  # a worker without waldo, or another version
            raise ClusterError(
                f"the Dask workers of {self._address} cannot run waldo's search "
                f"({_one_line(exc)}): install waldo-cli there, the same version"
            )
        if isinstance(exc, RuntimeError) and "deserialization of the task graph" in str(exc):
            # the scheduler unpickles the tasks too: it needs waldo as well
            raise ClusterError(
                f"the Dask scheduler at {self._address} cannot read waldo's tasks "
                f"({_one_line(exc.__cause__ or exc)}): install waldo-cli there, the same version"
            )
        if isinstance(exc, KilledWorker) and len(slot.items) > 1:
            # one of them may be what kills the workers: find out which
            children = [_Slot([item]) for item in slot.items]
            if self.ordered:
                at = self.waiting.index(slot)
                del self.waiting[at]
                for offset, child in enumerate(children):
                    self.waiting.insert(at + offset, child)
            for child in children:
                self._submit(child)
            return []
        if isinstance(exc, KilledWorker):
            reason = (
                f"{exc.allowed_failures + 1} Dask workers died searching it "
                "(out of memory, or a crash?)"
            )
        else:
            reason = f"the search failed on a Dask worker ({type(exc).__name__}: {_one_line(exc)})"
        slot.results = [
            ImageResult(index, name, error=f"{name}: {reason}") for index, (name, _) in slot.items
        ]
        return slot.results

    def cancel(self) -> None:
        """Cancel every task still out (a consumer that stopped early, Ctrl-C)."""
        futures = [slot.future for slot in self.running.values() if slot.future is not None]
        futures.append(self.searcher)
        self.running.clear()
        self.waiting.clear()
        if futures and self.client.status == "running":
            self.client.cancel(futures)
