"""Numba housekeeping: where the compiled kernels are cached, what is compiled, warming, clearing.

``kernels.py`` holds the kernels themselves and nothing else; this module
knows which kernels each engine runs (for ``waldo cache`` and the first-run
notice) and how to load them quickly. Numba is imported only here and in
``kernels.py``.
"""

from __future__ import annotations

import glob
import os
import threading
import time
from collections.abc import Iterable
from types import ModuleType
from typing import Protocol

# The kernels each engine runs, for the cache commands and the first-run notice.
KERNELS: dict[str, tuple[str, ...]] = {
    "direct": ("_correlate_direct", "_finish_scores", "_masked_direct"),
    "fft": ("_correlate_fft", "_finish_scores", "_masked_fft"),
}


def _kernels() -> ModuleType:
    from waldo_cli import kernels

    return kernels


def kernel_names(engines: tuple[str, ...] | None = None) -> set[str]:
    """The kernels the given engines run (all of them for None).

    >>> sorted(kernel_names(("direct",)))
    ['_correlate_direct', '_finish_scores', '_masked_direct']
    """
    chosen = KERNELS if engines is None else {e: KERNELS[e] for e in engines}
    return {name for names in chosen.values() for name in names}


def skip_extension_scan() -> None:
    """Keep Numba from importing every installed Numba extension at first dispatch.

    For the ``waldo`` process only: its kernels need no extension but
    rocket-fft, which ``load_fft`` imports when the FFT path runs. Scanning
    and importing all of them costs the shell user time on every run.
    """
    from numba.core import entrypoints

    entrypoints._already_initialized = True


def load_fft() -> None:
    """Register rocket-fft's ``numpy.fft`` overloads (needed by the FFT kernels)."""
    import rocket_fft  # noqa: F401


def _cache_files(name: str) -> tuple[str, list[str]]:
    """The cache folder of one kernel and the files there that belong to it."""
    kernels = _kernels()
    folder = getattr(kernels, name)._cache.cache_path
    stem = os.path.basename(kernels.__file__ or "kernels.py").rsplit(".", 1)[0]
    return folder, sorted(glob.glob(os.path.join(folder, f"{stem}.{name}-*")))


def is_cached(name: str) -> bool:
    """Whether Numba's on-disk cache holds an index for this kernel's current source."""
    return os.path.exists(getattr(_kernels(), name)._cache._cache_file._index_path)


def cache_folders() -> list[str]:
    """Where the compiled kernels are kept (the package folder if writable, else the user's)."""
    return sorted({_cache_files(name)[0] for name in kernel_names()})


def clear_cache() -> list[str]:
    """Delete every cached compilation of waldo's kernels; return the files removed."""
    removed = []
    for name in sorted(kernel_names()):
        for path in _cache_files(name)[1]:
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
    return bool(getattr(_kernels(), name).signatures)


def load_kernels(plans: Iterable[_Planned]) -> float:
    """Load (or compile) the kernels the plans call, before a search; return the seconds spent.

    A search's own time then excludes the one-time cost of loading Numba's
    cached machine code (or compiling it), which ``--json`` reports apart as
    ``compile_seconds``. Each (engine, masked) pair is warmed with a tiny
    search of the same argument types, so it loads exactly those kernels.
    """
    needed = {(p.engine, p.masked) for p in plans if not all(map(is_loaded, p.kernels))}
    if not needed:
        return 0.0
    started = time.perf_counter()
    with _LOADING:
        for engine, masked in sorted(needed):
            _warm(engine, masked)
    return time.perf_counter() - started


def _warm(engine: str, masked: bool) -> None:
    import numpy as np

    from waldo_cli.engine import match_template

    image = np.arange(8 * 8 * 3, dtype=np.float32).reshape(8, 8, 3)
    # a template that is not flat, or ccoeff_normed would skip the kernels
    mask = np.ones((3, 3)) if masked else None
    match_template(image, image[:3, :3], engine=engine, mask=mask, threads=1)


def warm_kernels(engine: str) -> None:
    """Compile (or load) the kernels of one ``KERNELS`` entry with a tiny search."""
    _warm(engine, False)
    _warm(engine, True)
