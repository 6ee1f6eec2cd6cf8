"""Numba housekeeping: where the compiled kernels are cached, what is compiled, warming, clearing.

``kernels.py`` holds the kernels themselves and nothing else; this module
knows where their cache lives (``cache_dir``, the one place that decides
it), which kernels each engine runs (for ``waldo cache``, the server and the
first-run notice), how long each took to compile (Numba's event API), and
how to load them quickly. Numba is imported only here and in ``kernels.py``.

The kernels are imported through ``kernels()``, which first makes sure Numba
has a cache folder it can write (``cache_dir``): Numba picks its folder when
the kernels are imported, and without one every search would fail.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import platform
import re
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from types import ModuleType
from typing import Any, Protocol

# The kernels each (engine, masked) pair runs: the planner's ``Plan.kernels``,
# the warm-ups, the cache commands and the first-run notice read this one table.
PAIR_KERNELS: dict[tuple[str, bool], tuple[str, ...]] = {
    ("direct", False): ("_correlate_direct", "_finish_scores"),
    ("direct", True): ("_masked_maps", "_masked_rows"),
    ("fft", False): ("_correlate_fft", "_finish_scores"),
    ("fft", True): ("_masked_tile", "_masked_rows"),
}
# The kernels each engine runs, masked or not.
KERNELS: dict[str, tuple[str, ...]] = {
    engine: tuple(
        dict.fromkeys(n for (e, _), names in PAIR_KERNELS.items() if e == engine for n in names)
    )
    for engine, _ in PAIR_KERNELS
}


def _writable(folder: str) -> bool:
    """Whether Numba can cache in ``folder``: made if need be, and a file can be written there.

    The test Numba's own cache locators make.
    """
    try:
        os.makedirs(folder, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError:
        return False
    return True


def _private_temp_root() -> str:
    """A folder in the temporary directory that only this user can enter.

    The same one on every run (so compilations are kept) when it is ours
    and private; a fresh one otherwise (someone else made it first).
    """
    uid = os.getuid() if hasattr(os, "getuid") else 0
    root = os.path.join(tempfile.gettempdir(), f"waldo-numba-{uid}")
    try:
        os.mkdir(root, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return tempfile.mkdtemp(prefix="waldo-numba-")
    info = os.lstat(root)
    if stat.S_ISDIR(info.st_mode) and info.st_uid == uid and not info.st_mode & 0o077:
        return root
    return tempfile.mkdtemp(prefix="waldo-numba-")


def _cpu_name() -> str:
    """The CPU the machine code is compiled for, as LLVM names it (``znver3``, ``skylake``)."""
    from numba.core import config as numba_config

    config: Any = numba_config
    if config.CPU_NAME:  # NUMBA_CPU_NAME: a cache meant to be portable
        return str(config.CPU_NAME)
    from llvmlite import binding

    return str(binding.get_host_cpu_name())


def _cache_key() -> str:
    """One cache folder per waldo version, Python and CPU: ``waldo-0.1.0-py3.11-x86_64-znver3``."""
    from waldo_cli import __version__

    python = f"py{sys.version_info[0]}.{sys.version_info[1]}"
    return f"waldo-{__version__}-{python}-{platform.machine() or 'cpu'}-{_cpu_name()}"


def _decide_cache(writable: Callable[[str], bool]) -> tuple[str, str | None]:
    """(the folder the kernels are cached in, the cache root Numba must be given, or None).

    NUMBA_CACHE_DIR when the user set it and it can be written. Otherwise
    ``kernels/<waldo version, Python, CPU>`` in waldo's folder of the
    user's cache directory (platformdirs: ``~/.cache/waldo`` on Linux),
    never the package's own ``__pycache__``: a cache inside
    ``site-packages`` outlives ``pip uninstall`` (pip removes only the files
    it installed), and the ``waldo_cli/__pycache__`` folder it leaves behind
    turns a later editable install's package into an empty namespace package
    (``waldo --help`` then fails to import). Where the user's cache
    directory cannot be written (a read-only or missing home), a private
    folder in the temporary directory, keyed the same way.
    """
    from numba.core.caching import _CacheLocator

    from waldo_cli.client import user_cache_dir

    source = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernels.py")
    subpath = _CacheLocator.get_suitable_cache_subpath(source)
    given = os.environ.get("NUMBA_CACHE_DIR", "")
    if given and writable(os.path.join(given, subpath)):
        return os.path.join(given, subpath), None
    key = _cache_key()
    user = os.path.join(user_cache_dir(), "kernels", key)
    if os.path.isabs(user) and writable(os.path.join(user, subpath)):
        return os.path.join(user, subpath), user
    root = os.path.join(_private_temp_root(), key)
    return os.path.join(root, subpath), root


@functools.cache
def cache_dir() -> str:
    """The folder waldo's compiled kernels are cached in, decided once per process.

    The one place that decides it (see ``_decide_cache``): NUMBA_CACHE_DIR
    if the user set it, else the user's cache folder, keyed by waldo's
    version, the Python and the CPU, else a private temporary folder. Sets
    Numba's configuration, not the environment: child processes keep the
    user's own, and a waldo server compares the NUMBA_* variables of its
    clients with its own. Called before the kernels are imported, because
    Numba picks a kernel's cache folder when the kernel is defined.

    >>> os.path.isdir(cache_dir())
    True
    """
    folder, root = _decide_cache(_writable)
    if root is not None:
        from numba.core import config as numba_config

        config: Any = numba_config
        config.CACHE_DIR = root
    return folder


def _module() -> ModuleType:
    """The ``kernels`` module, imported once Numba has a cache folder it can write."""
    cache_dir()
    from waldo_cli import kernels as module

    return module


# What kernels() gives the thread that compiles a share of them (_warm_only):
# this thread's own view, so no other thread ever runs a kernel left out.
_VIEW = threading.local()


def kernels() -> Any:
    """The kernels a search calls: the ``kernels`` module (``_module``).

    In a thread running ``_warm_only``, a view of it where the kernels other
    processes compile do nothing; every other thread sees the module itself.
    """
    view = getattr(_VIEW, "kernels", None)
    return view if view is not None else _module()


def kernel_names(engines: tuple[str, ...] | None = None) -> set[str]:
    """The kernels the given engines run (all of them for None).

    >>> sorted(kernel_names(("direct",)))
    ['_correlate_direct', '_finish_scores', '_masked_maps', '_masked_rows']
    """
    chosen = KERNELS if engines is None else {e: KERNELS[e] for e in engines}
    return {name for names in chosen.values() for name in names}


def skip_extension_scan(only_waldo: bool = False) -> None:
    """Keep Numba from importing every installed Numba extension at first dispatch.

    For a process that runs waldo's kernels and nothing else: they need no
    extension but rocket-fft, which ``load_fft`` imports when the FFT path
    runs. Scanning and importing all of them costs the shell user time on
    every run. ``only_waldo``: the process runs waldo's commands and no
    one else's code (the ``waldo`` command, a waldo server, ``cache warm``;
    not a Dask worker), so Numba's and rocket-fft's optional SciPy parts,
    which waldo does not call, are not imported either (``_without_scipy``).
    """
    global _ONLY_WALDO
    cache_dir()  # before Numba reads its configuration
    from numba.core import entrypoints

    entrypoints._already_initialized = True
    _ONLY_WALDO = _ONLY_WALDO or only_waldo


# Set by skip_extension_scan(only_waldo=True).
_ONLY_WALDO = False
_TARGET_READY = False


@contextlib.contextmanager
def _without_scipy(*names: str) -> Iterator[None]:
    """Make ``import`` of the named SciPy modules fail for a moment, where not yet imported.

    When SciPy is installed, Numba's CPU target imports ``scipy.linalg`` on
    first use (for ``np.dot`` in jitted code) and rocket-fft ``scipy.fft``
    (for SciPy's interface in jitted code): together about 0.4 s of a
    ``waldo`` command's start-up, for parts waldo's kernels never call.
    """
    blocked = [name for name in names if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]  # import NAME: ImportError
    try:
        yield
    finally:
        for name in blocked:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


def _ready_target() -> None:
    """Set up Numba's CPU target once, without SciPy's BLAS where only waldo runs here."""
    global _TARGET_READY
    if _TARGET_READY:
        return
    if _ONLY_WALDO:
        from numba.core.registry import cpu_target

        with _without_scipy("scipy.linalg"):
            cpu_target.target_context.refresh()
    _TARGET_READY = True


def load_fft() -> None:
    """Give the FFT kernels rocket-fft's transforms, before they are compiled or loaded.

    Importing rocket-fft also registers the native library their machine
    code calls, so this is needed before a cached FFT kernel runs too.
    """
    module: Any = _module()
    if module._r2c is None:
        with _without_scipy("scipy.fft") if _ONLY_WALDO else contextlib.nullcontext():
            from rocket_fft import c2r, r2c

        module._r2c, module._c2r = r2c, c2r


def _numba_file_pattern(stem: str, name: str | None) -> re.Pattern[str]:
    """The names Numba gives one function's cache files: index ``.nbi`` and data ``.N.nbc``.

    ``<module>.<function>-<first line>.py<major><minor><abi flags>``, then
    ``.nbi`` or ``.<number>.nbc`` (numba.core.caching), for any line and
    Python version: older compilations are waldo's too. ``name`` None: any
    function's (the kernels of an older waldo had other names).

    >>> p = _numba_file_pattern("kernels", "_finish_scores")
    >>> [bool(p.fullmatch(n)) for n in ("kernels._finish_scores-191.py311.nbi",
    ...  "kernels._finish_scores-191.py313t.2.nbc", "kernels._finish_scores-x.nbi")]
    [True, True, False]
    >>> bool(_numba_file_pattern("kernels", None).fullmatch("kernels._masked_fft-9.py311.nbi"))
    True
    """
    function = r"[A-Za-z_][A-Za-z0-9_]*" if name is None else re.escape(name)
    return re.compile(rf"{re.escape(stem)}\.{function}-\d+\.py\d+[a-z]*\.(?:nbi|\d+\.nbc)")


def _numba_files(folder: str, name: str | None) -> list[str]:
    """The files Numba wrote in ``folder`` for one kernel (any, for None): regular files only."""
    stem = os.path.basename(_module().__file__ or "kernels.py").rsplit(".", 1)[0]
    pattern = _numba_file_pattern(stem, name)
    try:
        entries = list(os.scandir(folder))
    except OSError:  # no folder yet: nothing cached
        return []
    found = [
        entry.path
        for entry in entries
        if pattern.fullmatch(entry.name) and entry.is_file(follow_symlinks=False)
    ]
    return sorted(found)


def _cache_files(name: str) -> tuple[str, list[str]]:
    """The cache folder of one kernel and the files Numba wrote there for it (regular files)."""
    folder = getattr(_module(), name)._cache.cache_path
    return folder, _numba_files(folder, name)


def is_cached(name: str) -> bool:
    """Whether Numba's on-disk cache holds an index for this kernel's current source."""
    return os.path.exists(getattr(_module(), name)._cache._cache_file._index_path)


def cache_folders() -> list[str]:
    """Where the compiled kernels are kept (see ``cache_dir``)."""
    return sorted({_cache_files(name)[0] for name in kernel_names()})


def clear_cache() -> list[str]:
    """Delete every cached compilation of waldo's kernels; return the files removed.

    Those of kernels an older waldo had (other names, the same module) too:
    nothing would ever load them again.
    """
    removed = []
    for folder in cache_folders():
        for path in _numba_files(folder, None):
            os.remove(path)
            removed.append(path)
    return removed


class _Planned(Protocol):
    """What load_kernels reads of a ``plan.Plan`` (jit.py does not import the planner)."""

    @property
    def engine(self) -> str: ...

    @property
    def masked(self) -> bool: ...

    @property
    def kernels(self) -> tuple[str, ...]: ...


# Loading (or compiling) a kernel is done once per process, by one thread;
# the others wait for it rather than compile it again.
_LOADING = threading.Lock()


def is_loaded(name: str) -> bool:
    """Whether this process has the kernel's machine code already (compiled or loaded)."""
    return bool(getattr(_module(), name).signatures)


def load_kernels(plans: Iterable[_Planned]) -> float:
    """Load (or compile) the kernels the plans call, before a search; return the seconds spent.

    A search's own time then excludes the one-time cost of loading Numba's
    cached machine code (or compiling it), which ``--json`` reports apart as
    ``compile_seconds``. Each (engine, masked) pair is warmed with a tiny
    search of the same argument types, so it loads exactly those kernels.
    """
    plans = [p for p in plans if not all(map(is_loaded, p.kernels))]
    needed = {(p.engine, p.masked) for p in plans}
    if not needed:
        return 0.0
    started = time.perf_counter()
    with _LOADING:
        missing = sorted({n for p in plans for n in p.kernels if not is_cached(n)})
        if _ONLY_WALDO and len(missing) > 1:
            from waldo_cli.pool import usable_cores

            cores = usable_cores()
            if cores > 1:
                _compile_apart(sorted(needed), missing, cores)
        for engine, masked in sorted(needed):
            _warm(engine, masked)  # loads what _compile_apart compiled
    return time.perf_counter() - started


# About how many seconds each kernel takes to compile (bench_startup.py's
# compile section, AMD EPYC), to share them out between processes.
_COMPILE_WEIGHT = {
    "_correlate_direct": 2.5,
    "_finish_scores": 3.3,
    "_correlate_fft": 3.1,
    "_masked_maps": 3.6,
    "_masked_rows": 3.4,
    "_masked_tile": 2.5,
}


def _shares(names: list[str], processes: int) -> list[list[str]]:
    """The kernels shared out between processes, the heaviest first to the lightest share.

    >>> _shares(["_correlate_direct", "_finish_scores", "_masked_maps"], 2)
    [['_masked_maps'], ['_finish_scores', '_correlate_direct']]
    """
    shares: list[list[str]] = [[] for _ in range(max(1, processes))]
    for name in sorted(names, key=lambda n: (-_COMPILE_WEIGHT.get(n, 1.0), n)):
        min(shares, key=lambda s: sum(_COMPILE_WEIGHT.get(n, 1.0) for n in s)).append(name)
    return [share for share in shares if share]


def _can_fork() -> bool:
    """Whether a compiling child can be forked from this process, rather than started afresh.

    On Linux, with no other Python thread running (a fork copies only the
    calling thread: a lock another thread held would stay held in the child).
    """
    return sys.platform.startswith("linux") and threading.active_count() == 1


def _compile_apart(
    pairs: list[tuple[str, bool]], missing: list[str], processes: int = 2
) -> dict[str, float]:
    """Compile the missing kernels in several processes at once: children's shares, then ours.

    Numba compiles one kernel at a time, in one thread, so a first search
    that needs two or more kernels waits for their sum; ``processes`` on as
    many cores wait for about the largest share. Each process runs the
    warm-ups of ``pairs`` with the others' kernels replaced by a function
    that does nothing (``_warm_only``), and the kernels meet in the cache.
    A child is forked once Numba's target is ready, so it starts compiling
    at once (where it can be: ``_can_fork``); otherwise it is a new Python
    process, which first spends about a second importing Numba. Only where
    this process runs waldo alone (``skip_extension_scan``): a library's
    caller may not want children. The no-op kernels are this thread's alone
    (``kernels``), so a batch's other threads search on meanwhile. Returns
    the children's compile seconds of each kernel they compiled.
    """
    ours, *theirs = _shares(missing, min(processes, len(missing)))
    fork = _can_fork()
    if fork:
        _ready_target()  # once, here, rather than in each child
    start = _fork_compiler if fork else _spawn_compiler
    children: list[tuple[int, Callable[[], dict[str, float]]]] = []
    seconds: dict[str, float] = {}
    try:
        for share in theirs:
            child = start(pairs, share)
            if child is not None:
                children.append(child)
        _warm_only(pairs, ours)
        while children:
            seconds.update(children[0][1]())  # what a child did not compile, _warm compiles
            children.pop(0)
    except BaseException:
        # interrupted (Ctrl-C to this process alone, an error): the children's
        # work is not waited for; Numba writes each cache file whole, so none is
        # left half-written. A forked child also dies with this process
        # (SIGTERM from `timeout`, SIGKILL): ``client.die_with``.
        for pid, finish in children:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            finish()
        raise
    return seconds


def _fork_compiler(
    pairs: list[tuple[str, bool]], names: list[str]
) -> tuple[int, Callable[[], dict[str, float]]] | None:
    """Fork a child that compiles ``names``; its pid, and what waits for it (its compile seconds).

    The child writes nothing but its seconds, on a pipe of its own (its
    standard streams are /dev/null), and ends with ``os._exit``, so no
    buffer, handler or ``finally`` of this process runs twice.
    """
    read, write = os.pipe()
    parent = os.getpid()
    try:
        pid = os.fork()
    except OSError:
        os.close(read)
        os.close(write)
        return None  # this process compiles them
    if pid == 0:  # pragma: no cover - the child (coverage does not follow a fork)
        code = 1
        try:
            from waldo_cli.client import die_with, let_go_of_streams

            die_with(parent)
            # nothing of this process's but the pipe: no client's stream, socket or lock
            os.closerange(3, write)
            os.closerange(write + 1, _max_fd())
            let_go_of_streams()
            report = _compile_share(pairs, names)
            os.write(write, report.encode())  # a few bytes: within the pipe's buffer
            code = 0
        finally:
            os._exit(code)
    os.close(write)

    def finish() -> dict[str, float]:
        with open(read, "rb") as pipe:
            out = pipe.read()
        _, status = os.waitpid(pid, 0)
        return _seconds_from(out) if os.waitstatus_to_exitcode(status) == 0 else {}

    return pid, finish


def _max_fd() -> int:
    """One more than the highest descriptor this process may have open."""
    try:
        return max(int(os.sysconf("SC_OPEN_MAX")), 3)
    except (AttributeError, OSError, ValueError):
        return 65536


def _spawn_compiler(
    pairs: list[tuple[str, bool]], names: list[str]
) -> tuple[int, Callable[[], dict[str, float]]] | None:
    """Start a new Python that compiles ``names`` (``_main``); its pid, and what waits for it."""
    order = json.dumps({"pairs": pairs, "kernels": names})
    try:
        child = subprocess.Popen(
            [sys.executable, "-c", "from waldo_cli.jit import _main; _main(['only', '-'])"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=_child_environment(),
        )
    except OSError:
        return None  # this process compiles them
    with contextlib.suppress(OSError):
        assert child.stdin is not None
        child.stdin.write(order.encode())
        child.stdin.close()

    def finish() -> dict[str, float]:
        assert child.stdout is not None
        out = child.stdout.read()
        child.wait()
        return _seconds_from(out) if child.returncode == 0 else {}

    return child.pid, finish


def _compile_share(pairs: list[tuple[str, bool]], names: list[str]) -> str:
    """Compile ``names`` (``_warm_only``): a child's work; its report, ``_seconds_from``'s input."""
    with on_compile(lambda name: None) as times:
        _warm_only(pairs, names)
    return json.dumps(times)


def _seconds_from(out: bytes) -> dict[str, float]:
    """A child's report, ``{"kernel": seconds}`` as JSON; {} for anything else."""
    try:
        seconds = json.loads(out)
    except ValueError:
        return {}
    return {str(k): float(v) for k, v in seconds.items()} if isinstance(seconds, dict) else {}


def _warm_only(pairs: list[tuple[str, bool]], names: list[str]) -> None:
    """Run the warm-ups of ``pairs`` that call ``names``, every other kernel a no-op.

    Only for this thread (``kernels``): a batch's other threads, searching
    meanwhile, keep the real kernels.
    """
    module = _module()
    outer = getattr(_VIEW, "kernels", None)
    _VIEW.kernels = _Only(module, kernel_names() - set(names))
    try:
        for engine, masked in pairs:
            if set(PAIR_KERNELS[engine, masked]) & set(names):
                _warm(engine, masked)
    finally:
        _VIEW.kernels = outer


class _Only:
    """The kernels module, but the kernels named in ``left_out`` do nothing (``_warm_only``)."""

    def __init__(self, module: ModuleType, left_out: set[str]) -> None:
        self._module = module
        self._left_out = left_out

    def __getattr__(self, name: str) -> Any:
        return _no_kernel if name in self._left_out else getattr(self._module, name)


def _no_kernel(*args: object) -> None:
    """What ``_warm_only`` calls instead of a kernel another process compiles."""


def _warm(engine: str, masked: bool) -> None:
    _ready_target()
    import numpy as np

    from waldo_cli.engine import match_template

    image = np.arange(8 * 8 * 3, dtype=np.float32).reshape(8, 8, 3)
    # a template that is not flat, or ccoeff_normed would skip the kernels
    mask = np.ones((3, 3)) if masked else None
    match_template(image, image[:3, :3], engine=engine, mask=mask, threads=1)


def warm_plain(engine: str) -> None:
    """Compile (or load) one engine's unmasked kernels: all that learning a filter runs."""
    _warm(engine, False)


def plain_kernel_names() -> set[str]:
    """The unmasked kernels of every engine (what ``warm_plain`` loads)."""
    return {name for names in KERNELS.values() for name in names if "_masked" not in name}


def warm_kernels(engine: str) -> None:
    """Compile (or load) the kernels of one ``KERNELS`` entry with a tiny search."""
    _warm(engine, False)
    _warm(engine, True)


# --- compile times, announced and measured -----------------------------------


@contextlib.contextmanager
def on_compile(started: Callable[[str], None]) -> Iterator[dict[str, float]]:
    """Call ``started(name)`` when a waldo kernel begins to compile; yield the seconds each took.

    Numba's event API (``numba.core.event``) reports every compilation, so
    this sees the compiles a search really waits for, whichever engine,
    mask or variant runs them, and never a kernel loaded from the cache.
    The dictionary fills as kernels finish compiling (wall-clock seconds,
    the callees compiled into a kernel included). ``started`` runs in the
    compiling thread.
    """
    from numba.core import event

    names = kernel_names()
    seconds: dict[str, float] = {}

    class Listener(event.Listener):
        def __init__(self) -> None:
            self.begun: dict[tuple[str, int], float] = {}

        def on_start(self, ev: Any) -> None:
            name = ev.data["dispatcher"].py_func.__name__
            if name in names:
                self.begun[name, threading.get_ident()] = time.perf_counter()
                started(name)

        def on_end(self, ev: Any) -> None:
            name = ev.data["dispatcher"].py_func.__name__
            begun = self.begun.pop((name, threading.get_ident()), None)
            if begun is not None:
                seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - begun

    with event.install_listener("numba:compile", Listener()):
        yield seconds


def warm_all(jobs: int = 2) -> dict[str, float]:
    """Compile (or load) every kernel; return the seconds each one's compile took.

    With ``jobs`` > 1 the kernels are compiled in up to ``jobs`` processes
    at once (Numba compiles in one thread, under a lock, so threads would
    not help), shared out by their usual compile times (``_compile_apart``);
    then this process loads what the children compiled.
    """
    skip_extension_scan(only_waldo=True)
    pairs = list(PAIR_KERNELS)  # each warmed by a tiny search of its own
    missing = sorted(n for n in kernel_names() if not is_cached(n))
    seconds: dict[str, float] = {}
    with on_compile(lambda name: None) as times:
        if jobs > 1 and len(missing) > 1:
            seconds.update(_compile_apart(pairs, missing, jobs))
        for engine, masked in pairs:
            _warm(engine, masked)  # loads, or compiles what the child did not
    seconds.update(times)
    return seconds


def _child_environment() -> dict[str, str]:
    """The environment plus the cache root this process chose, if any (the child must agree)."""
    cache_dir()
    from numba.core import config as numba_config

    config: Any = numba_config
    env = dict(os.environ)
    if config.CACHE_DIR and "NUMBA_CACHE_DIR" not in env:
        env["NUMBA_CACHE_DIR"] = str(config.CACHE_DIR)
    return env


def _main(argv: list[str]) -> None:
    """``_main(["only", "-"])``: compile the kernels named on stdin (``_compile_apart``).

    Prints the seconds each compile took, as JSON.
    """
    skip_extension_scan(only_waldo=True)
    order = json.loads(sys.stdin.read())
    print(_compile_share([(e, bool(m)) for e, m in order["pairs"]], list(order["kernels"])))
