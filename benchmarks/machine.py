"""What the benchmarks ran on (one Markdown paragraph), and a process's memory; imported by them."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata


def cpu_model() -> str:
    """The "model name" line of /proc/cpuinfo, or what platform knows elsewhere."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            lines = cpuinfo.read().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    name = next(
        (line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
        platform.machine(),
    )
    flags = next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), [])
    simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else None
    return f"{name} ({platform.machine()}{', ' + simd if simd else ''})"


def version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def source_commit() -> str | None:
    """The commit of this checkout, marked when waldo_cli/ differs from it."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        commit = subprocess.run(
            ["git", "-C", root, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", root, "status", "--porcelain", "--", "waldo_cli"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + (" with uncommitted changes in waldo_cli/" if dirty else "")


def describe(
    waldo_threads: int | None = None, libraries: bool = True, extra: tuple[str, ...] = ()
) -> str:
    """The machine and library versions, for the top of a benchmark's output."""
    cores = os.cpu_count()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = cores
    parts = [
        f"{cpu_model()}, {cores} cores ({usable} usable)",
        f"Python {platform.python_version()}",
    ]
    if libraries:
        waldo = f"waldo {version('waldo-cli')}"
        if waldo_threads is not None:
            waldo += f" ({waldo_threads} threads)"
        parts += [waldo, f"NumPy {version('numpy')}", f"Numba {version('numba')}"]
        try:
            import cv2

            parts.append(f"OpenCV {cv2.__version__} ({cv2.getNumThreads()} threads)")
        except ImportError:
            parts.append("OpenCV not installed")
        parts.append(f"scikit-image {version('scikit-image')}")
    commit = source_commit()
    if commit:
        parts.append(f"source at {commit}")
    parts += list(extra)
    command = " ".join(["python"] + sys.argv)
    return f"**Machine:** {'; '.join(parts)}. Command: `{command}`"


def rss_kib(pid: int) -> int | None:
    """A running process's resident memory in KiB (Linux's /proc), None where it cannot be read."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None
