"""What a shell user waits for: whole ``waldo`` processes, timed and weighed.

Run by hand (never in the test suite), with the ``waldo`` a user installs
with ``pip install .`` (no scipy, scikit-image or OpenCV beside it):

    python benchmarks/bench_startup.py --waldo ~/venv/bin/waldo --python-cv python
    python benchmarks/bench_startup.py --quick       # fewer runs, a 2048² memory image
    python benchmarks/bench_startup.py --section loop --section client

``--waldo`` defaults to the ``waldo`` beside this Python, ``--python-cv`` (a
Python with OpenCV, for the comparison script) to this Python. This script
needs only Pillow. Sections that need a waldo server start one of their own
in a temporary runtime folder (XDG_RUNTIME_DIR) and stop it.

Six sections, printed as Markdown:

* ``startup``: wall-clock seconds of ``waldo --help``, ``waldo params`` and
  ``waldo find IMAGE TEMPLATE --json`` on a 1024×1024 PNG and a 32×32
  template cut from it, cold (NUMBA_CACHE_DIR a new empty folder, so the
  kernels compile) and warm (the cache filled), against a minimal OpenCV
  script doing the same search (imread, matchTemplate TM_CCOEFF_NORMED,
  minMaxLoc, print).
* ``memory``: peak resident set size of ``waldo find`` on a 4096×4096 RGB
  PNG and a 64×64 template, and of a Python calling ``match_template`` on a
  uint8 array of that size, against the bound 3 × (image as float32 + score
  map as float32), and of a process that only imports waldo and Numba.
* ``loop``: ``for i in $(seq 50); do waldo find IMAGE TEMPLATE --json; done``
  (1024² PNG, 32×32 template) with a waldo server, without one
  (WALDO_SERVER=off), and the OpenCV script in the same loop, the three
  loops alternating round after round; medians per call and ratios.
* ``client``: what the console script adds above ``python -c pass`` when a
  server runs the command: its own CPU time, and the whole round trip of a
  tiny search.
* ``compile``: the first search of each kind with an empty kernel cache
  (small template, FFT-sized, masked, variants), its ``compile_seconds``,
  and ``waldo cache warm`` from empty, with each kernel's compile seconds.
* ``server-memory``: a server's resident memory over 10,000 requests.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
PHOTO = HERE.parent / "sample_images" / "astronaut.png"
SECTIONS = ("startup", "memory", "loop", "client", "compile", "server-memory")

OPENCV_SCRIPT = """\
import sys

import cv2

image = cv2.imread(sys.argv[1])
template = cv2.imread(sys.argv[2])
scores = cv2.matchTemplate(image, template, cv2.TM_CCOEFF_NORMED)
_, best, _, (x, y) = cv2.minMaxLoc(scores)
print(f"{x} {y} {best:.6f}")
"""

MATCH_SCRIPT = """\
import sys

import numpy as np
from PIL import Image

from waldo_cli import match_template

with Image.open(sys.argv[1]) as picture:
    image = np.asarray(picture.convert("RGB"))  # uint8 (H, W, 3)
with Image.open(sys.argv[2]) as picture:
    template = np.asarray(picture.convert("RGB"))
scores = match_template(image, template, "ccoeff_normed")
print(scores.shape, float(scores.max()))
"""


def write_pictures(folder: Path, side: int, tside: int) -> tuple[Path, Path]:
    """A side×side RGB PNG (the astronaut scaled) and a tside×tside template cut from it."""
    with Image.open(PHOTO) as photo:
        image = photo.convert("RGB").resize((side, side), Image.Resampling.LANCZOS)
    y, x = side // 3, side // 2
    template = image.crop((x, y, x + tside, y + tside))
    paths = folder / f"image-{side}.png", folder / f"template-{side}-{tside}.png"
    image.save(paths[0], compress_level=1)
    template.save(paths[1])
    return paths


def run(
    command: list[str], env: dict[str, str] | None = None, ok: tuple[int, ...] = (0,)
) -> tuple[float, str, int]:
    """Wall-clock seconds, stdout and exit status of one process; raise if it fails.

    Processes run in the temporary folder: from a source checkout, ``python -c``
    would import the checkout's waldo_cli instead of the installed one.
    """
    start = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tempfile.gettempdir()
    )
    stdout, stderr = process.communicate()
    seconds = time.perf_counter() - start
    if process.returncode not in ok:
        raise RuntimeError(
            f"{' '.join(command)} failed ({process.returncode}):\n{stderr.decode(errors='replace')}"
        )
    return seconds, stdout.decode(errors="replace"), process.returncode


def peak_rss(
    command: list[str], env: dict[str, str] | None = None, ok: tuple[int, ...] = (0,)
) -> tuple[float, float]:
    """Peak resident set size (bytes) and wall-clock seconds of one process.

    Measured by GNU time where there is one: a process spawned from this
    script would start its peak at this script's own size (Linux keeps the
    high-water mark across the exec that follows fork or vfork), while GNU
    time is a few MiB. Elsewhere ``wait4``'s ``ru_maxrss``, which has that bias.
    """
    with tempfile.NamedTemporaryFile("r", suffix=".txt") as report:
        wrapped = [GNU_TIME, "-f", "%M", "-o", report.name, *command] if GNU_TIME else command
        start = time.perf_counter()
        process = subprocess.Popen(
            wrapped,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            cwd=tempfile.gettempdir(),
        )
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        stderr = process.stderr.read().decode(errors="replace")
        process.stderr.close()
        if process.returncode not in ok:
            raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}):\n{stderr}")
        kib = int(report.read().split()[-1]) if GNU_TIME else usage.ru_maxrss  # Linux: KiB
    return kib * 1024.0, seconds


def gnu_time() -> str | None:
    """/usr/bin/time if it is GNU time (it takes -f and -o), else None."""
    path = "/usr/bin/time"
    if not os.path.exists(path):
        return None
    probe = subprocess.run([path, "-f", "%M", "-o", os.devnull, "true"], capture_output=True)
    return path if probe.returncode == 0 else None


GNU_TIME = gnu_time()


def median_seconds(command: list[str], runs: int, env=None) -> tuple[float, list[float]]:
    run(command, env)  # untimed: the files it reads are now in the OS's cache
    times = [run(command, env)[0] for _ in range(runs)]
    return statistics.median(times), times


def interpreter_of(executable: str) -> str:
    """The Python an entry-point script runs with (its #! line)."""
    with open(executable, "rb") as script:
        first = script.readline().decode(errors="replace").strip()
    if not first.startswith("#!"):
        raise SystemExit(f"{executable} is not a Python entry-point script (no #! line)")
    return first[2:].strip().split()[0]


def versions(python: str, packages: tuple[str, ...]) -> str:
    code = (
        "import importlib.metadata as m, platform, sys\n"
        "def v(p):\n"
        "    try:\n        return m.version(p)\n"
        "    except m.PackageNotFoundError:\n        return None\n"
        f"found = [f'{{p}} {{v(p)}}' for p in {packages!r} if v(p)]\n"
        "print('Python ' + platform.python_version() + ', ' + ', '.join(found))\n"
    )
    return subprocess.run(
        [python, "-c", code], capture_output=True, text=True, cwd=tempfile.gettempdir(), check=True
    ).stdout.strip()


def startup_section(
    waldo: str, python_rt: str, python_cv: str, folder: Path, runs: int, cold_runs: int
) -> None:
    image, template = write_pictures(folder, 1024, 32)
    script = folder / "opencv_find.py"
    script.write_text(OPENCV_SCRIPT, encoding="utf-8")
    base_env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    find = [waldo, "find", str(image), str(template), "--json"]

    no_folder = folder / "not-a-folder"  # a file: no help can be kept under it
    no_folder.write_text("", encoding="utf-8")
    rows = []
    for label, command, *extra in (
        ("`python -c pass` (waldo's Python)", [python_rt, "-c", "pass"]),
        ("`python -c 'import numpy'`", [python_rt, "-c", "import numpy"]),
        ("`python -c 'import numba'`", [python_rt, "-c", "import numba"]),
        ("`waldo --help`, the text Click printed before (kept)", [waldo, "--help"]),
        (
            "`waldo --help`, Click (nothing kept: no cache folder)",
            [waldo, "--help"],
            {"XDG_CACHE_HOME": str(no_folder)},
        ),
        (
            "`waldo params --size 1024 --delta 3`",
            [waldo, "params", "--size", "1024", "--delta", "3"],
        ),
    ):
        env = dict(base_env, **extra[0]) if extra else base_env
        rows.append((label, *median_seconds(command, runs, env)))

    cold, engine, cache = [], None, None
    for _ in range(cold_runs):
        if cache is not None:
            shutil.rmtree(cache)
        cache = tempfile.mkdtemp(prefix="numba-cache-", dir=folder)
        seconds, stdout, _ = run(find, dict(base_env, NUMBA_CACHE_DIR=cache))
        cold.append(seconds)
        engine = json.loads(stdout).get("engine", "?")
    warm_env = dict(base_env, NUMBA_CACHE_DIR=cache)  # filled by the last cold run
    warm, warm_times = median_seconds(find, runs, warm_env)
    cv, cv_times = median_seconds(
        [python_cv, str(script), str(image), str(template)], runs, base_env
    )
    waldo_answer = json.loads(run(find, warm_env)[1])
    cv_answer = run([python_cv, str(script), str(image), str(template)], base_env)[1].split()
    best = waldo_answer["matches"][0] if waldo_answer.get("matches") else {}

    print(
        f"1024×1024 RGB PNG, 32×32 template cut from it (waldo's engine: {engine}); wall "
        f"clock of the whole process, median of {runs} runs after an untimed one (files in "
        f"the OS cache); cold: each of {cold_runs} runs with a new empty NUMBA_CACHE_DIR.\n"
    )
    print("| command | seconds (median) | runs | waldo / OpenCV script |")
    print("|---|---:|---|---:|")

    def row(label, median, times, ratio=True):
        spread = ", ".join(f"{t:.2f}" for t in times)
        cell = f"{median / cv:.1f}×" if ratio else ""
        print(f"| {label} | {median:.3f} | {spread} | {cell} |")

    for label, median, times in rows:
        row(label, median, times, ratio=False)
    row(
        "`waldo find IMAGE TEMPLATE --json`, **cold** (compiles the kernels)",
        statistics.median(cold),
        cold,
    )
    row("`waldo find IMAGE TEMPLATE --json`, **warm** (kernels cached)", warm, warm_times)
    row(
        "OpenCV script (`imread`, `matchTemplate`, `minMaxLoc`, `print`)", cv, cv_times, ratio=False
    )
    print(
        f"\nBoth found the template at x, y = {best.get('x')}, {best.get('y')} (waldo) and "
        f"{cv_answer[0]}, {cv_answer[1]} (OpenCV).",
        flush=True,
    )


def memory_section(waldo: str, python_rt: str, folder: Path, side: int, tside: int) -> None:
    image, template = write_pictures(folder, side, tside)
    out = side - tside + 1
    bound = 3 * (side * side * 3 * 4 + out * out * 4)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(folder / "numba-cache-memory"))
    find = [waldo, "find", str(image), str(template), "--json"]
    run(find, env)  # compile once, so the measured runs load the kernels from the cache
    measured = [
        ("`python -c 'import numpy'`", [python_rt, "-c", "import numpy"]),
        (
            "`python -c 'import numba, waldo_cli, waldo_cli.kernels'` (baseline)",
            [python_rt, "-c", "import numba, waldo_cli, waldo_cli.kernels"],
        ),
        (f"`waldo find` {side}² PNG, {tside}×{tside} template", find),
        (
            "`python -c` loading both PNGs with Pillow as uint8 arrays and calling "
            "`match_template`",
            [python_rt, "-c", MATCH_SCRIPT, str(image), str(template)],
        ),
    ]
    mib = 2.0**20
    issue = 3 * (side * side * 3 * 4 + (side - 3) ** 2 * 4)
    how = (
        "GNU time's %M"
        if GNU_TIME
        else "`ru_maxrss` from `wait4`, which includes this script's own size at the spawn"
    )
    slip = (
        f" (the issue writes {side - 3}·{side - 3} for the score map, as for a 4×4 "
        f"template: {issue / mib:.1f} MiB)"
        if side == 4096
        else ""
    )
    print(
        f"Peak resident set size ({how}) of one process each, kernels already in Numba's "
        f"cache. Bound from the issue: 3 × (image as float32 + score map as float32) = "
        f"3 × ({side}·{side}·3·4 + {out}·{out}·4) bytes = {bound / mib:.1f} MiB{slip}. "
        "The baseline is a process that imports waldo and Numba and does nothing.\n"
    )
    print(
        "| process | peak RSS MiB | RSS / bound | above baseline MiB | "
        "(RSS − baseline) / bound | seconds |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    baseline = None
    for label, command in measured:
        rss, seconds = peak_rss(command, env)
        cells = ["", "", ""]
        if "baseline" in label:
            baseline = rss
        elif baseline is not None:
            cells = [
                f"{100 * rss / bound:.0f}%",
                f"{(rss - baseline) / mib:.1f}",
                f"{100 * (rss - baseline) / bound:.0f}%",
            ]
        print(
            f"| {label} | {rss / mib:.1f} | {cells[0]} | {cells[1]} | {cells[2]} | {seconds:.2f} |",
            flush=True,
        )


@contextlib.contextmanager
def server_for(waldo: str, folder: Path) -> Iterator[dict[str, str]]:
    """A waldo server of its own (a temporary runtime folder); the environment that reaches it."""
    runtime = Path(tempfile.mkdtemp(prefix="runtime-", dir=folder))
    runtime.chmod(0o700)
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "WALDO_SERVER")}
    env["XDG_RUNTIME_DIR"] = str(runtime)
    # not 0 (never): a bench stopped half-way must not leave a server behind for good
    run([waldo, "server", "start", "--idle-timeout", "10m"], env)
    try:
        yield env
    finally:
        run([waldo, "server", "stop"], env)


def served(waldo: str, env: dict[str, str]) -> int:
    return int(json.loads(run([waldo, "server", "status", "--json"], env)[1])["served"])


def shell_loop(command: list[str], calls: int, env: dict[str, str]) -> float:
    """Seconds per call of ``command`` run ``calls`` times in a bash loop, output to /dev/null."""
    quoted = " ".join(shlex.quote(c) for c in command)
    script = f"for i in $(seq {calls}); do {quoted} > /dev/null || exit 1; done"
    return run(["bash", "-c", script], env)[0] / calls


def loop_section(
    waldo: str, python_rt: str, python_cv: str, folder: Path, calls: int, rounds: int
) -> None:
    image, template = write_pictures(folder, 1024, 32)
    script = folder / "opencv_find.py"
    script.write_text(OPENCV_SCRIPT, encoding="utf-8")
    find = [waldo, "find", str(image), str(template), "--json"]
    opencv = [python_cv, str(script), str(image), str(template)]
    with server_for(waldo, folder) as env:
        off = dict(env, WALDO_SERVER="off")
        run(find, off)  # the kernels are in the cache, the files in the OS's
        run(opencv, env)
        before = served(waldo, env)
        times: dict[str, list[float]] = {"server": [], "off": [], "opencv": []}
        for k in range(rounds):
            order = [("server", find, env), ("off", find, off), ("opencv", opencv, env)]
            for label, command, variant_env in order[k % 3 :] + order[: k % 3]:
                times[label].append(shell_loop(command, calls, variant_env))
        count = served(waldo, env) - before
    if count != calls * rounds:
        raise RuntimeError(f"the server ran {count} of {calls * rounds} calls")
    cv = statistics.median(times["opencv"])
    print(
        f"1024×1024 RGB PNG, 32×32 template, `--json` to /dev/null; {rounds} rounds of the "
        f"three loops of {calls} calls, the loops in turn (a different one first each round); "
        "seconds per call (one loop's wall clock / calls), median over the rounds.\n"
    )
    print("| loop of `waldo find` … | s per call (median) | per round | ÷ OpenCV script |")
    print("|---|---:|---|---:|")
    for label, title in (
        ("server", "with the server"),
        ("off", "without it (`WALDO_SERVER=off`)"),
        ("opencv", "the OpenCV script in the same loop"),
    ):
        median = statistics.median(times[label])
        per = ", ".join(f"{t:.3f}" for t in times[label])
        print(f"| {title} | {median:.3f} | {per} | {median / cv:.2f}× |", flush=True)


def cpu_seconds(command: list[str], env: dict[str, str], status: int = 0) -> tuple[float, float]:
    """Wall-clock seconds and the CPU seconds of the process itself (not of a server's worker).

    ``status``: the exit status the command must end with.
    """
    start = time.perf_counter()
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=tempfile.gettempdir(),
    )
    _, ended, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(ended) != status:
        raise RuntimeError(f"{' '.join(command)} failed")
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime


def client_section(waldo: str, python_rt: str, folder: Path, runs: int) -> None:
    image, template = write_pictures(folder, 64, 8)
    tiny = [waldo, "find", str(image), str(template), "--json"]
    with server_for(waldo, folder) as env:
        rows = {}
        for label, command, status in (
            ("pass", [python_rt, "-c", "pass"], 0),
            # the least a worker can do: Click's one-line usage error, exit 2
            ("least", [waldo, "find"], 2),
            # help asked twice is not a plain help request (client.help_request),
            # so the client hands it to the server instead of printing the kept text
            ("help", [waldo, "find", "-h", "--help"], 0),
            ("tiny", tiny, 0),
        ):
            cpu_seconds(command, env, status)
            samples = [cpu_seconds(command, env, status) for _ in range(runs)]
            rows[label] = (
                statistics.median(s[0] for s in samples),
                statistics.median(s[1] for s in samples),
            )
    (pass_wall, pass_cpu), (tiny_wall, tiny_cpu) = rows["pass"], rows["tiny"]
    help_wall, help_cpu = rows["help"]
    least_wall, least_cpu = rows["least"]
    print(
        f"Median of {runs} runs. The client's CPU time is its own process's (user + system, "
        "from `wait4`): the search runs in the server's worker, which is not its child.\n"
    )
    print("| process | wall ms | own CPU ms | wall above `python -c pass` | CPU above it |")
    print("|---|---:|---:|---:|---:|")
    print(
        f"| `python -c pass` (waldo's Python) | {pass_wall * 1e3:.1f} | {pass_cpu * 1e3:.1f} | | |"
    )
    print(
        f"| `waldo find` with no argument through the server (the round trip, least work: "
        f"Click's usage error, exit 2) | {least_wall * 1e3:.1f} | {least_cpu * 1e3:.1f} | "
        f"{(least_wall - pass_wall) * 1e3:.1f} | {(least_cpu - pass_cpu) * 1e3:.1f} |"
    )
    print(
        f"| `waldo find -h --help` through the server (Click formats the help in the worker) | "
        f"{help_wall * 1e3:.1f} | {help_cpu * 1e3:.1f} | {(help_wall - pass_wall) * 1e3:.1f} | "
        f"{(help_cpu - pass_cpu) * 1e3:.1f} |"
    )
    print(
        f"| `waldo find` 64² PNG, 8×8 template, `--json`, through the server | "
        f"{tiny_wall * 1e3:.1f} | {tiny_cpu * 1e3:.1f} | {(tiny_wall - pass_wall) * 1e3:.1f} | "
        f"{(tiny_cpu - pass_cpu) * 1e3:.1f} |",
        flush=True,
    )


def write_masked(folder: Path, side: int, tside: int) -> Path:
    """The template of write_pictures with a transparent corner (a masked search)."""
    with Image.open(folder / f"template-{side}-{tside}.png") as picture:
        rgba = picture.convert("RGBA")
    alpha = Image.new("L", rgba.size, 255)
    alpha.paste(0, (0, 0, tside // 2, tside // 2))
    rgba.putalpha(alpha)
    path = folder / f"template-{side}-{tside}-masked.png"
    rgba.save(path)
    return path


def compile_section(waldo: str, folder: Path) -> None:
    image, small = write_pictures(folder, 1024, 7)
    _, large = write_pictures(folder, 1024, 32)
    cases = [
        ("small template (7×7: direct)", [small]),
        ("FFT-sized template (32×32: fft)", [large]),
        ("masked, small (7×7 with alpha: masked direct)", [write_masked(folder, 1024, 7)]),
        ("masked, FFT-sized (32×32 with alpha: masked fft)", [write_masked(folder, 1024, 32)]),
        ("variants (32×32, `--scales 0.25,1.2 --rotations 15`)", [large, "--scales", "0.25,1.2"]),
    ]
    cases[-1][1].extend(["--rotations", "15"])
    base = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "WALDO_SERVER")}
    base["WALDO_SERVER"] = "off"
    print(
        "Each row: one whole `waldo find IMAGE TEMPLATE --json` process on a 1024² PNG with a "
        "new empty NUMBA_CACHE_DIR, so it compiles what it runs; `compile_seconds` is what the "
        "JSON reports apart from the search's `seconds`. CPU s: user + system time of the "
        "process (a compile is one thread: on an idle machine, about the wall time).\n"
    )
    print("| first search | engine | wall s | CPU s | compile_seconds |")
    print("|---|---|---:|---:|---:|")
    for label, rest in cases:
        cache = tempfile.mkdtemp(prefix="numba-cache-", dir=folder)
        command = [waldo, "find", str(image), *map(str, rest), "--json"]
        seconds, cpu, stdout = run_with_cpu(command, dict(base, NUMBA_CACHE_DIR=cache))
        doc = json.loads(stdout)
        print(
            f"| {label} | {doc['engine']} | {seconds:.2f} | {cpu:.2f} | "
            f"{doc['compile_seconds']:.2f} |",
            flush=True,
        )
        shutil.rmtree(cache)
    cache = tempfile.mkdtemp(prefix="numba-cache-", dir=folder)
    seconds, cpu, stdout = run_with_cpu([waldo, "cache", "warm"], dict(base, NUMBA_CACHE_DIR=cache))
    kernels = ", ".join(line.strip() for line in stdout.splitlines() if ": " in line)
    print(
        f"| `waldo cache warm` (every kernel; CPU of both processes) | | {seconds:.2f} | "
        f"{cpu:.2f} | {kernels} |",
        flush=True,
    )
    shutil.rmtree(cache)


def run_with_cpu(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall-clock seconds, CPU seconds (the process and the children it waited for), stdout."""
    start = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tempfile.gettempdir()
    )
    stdout = process.stdout.read()
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise RuntimeError(f"{' '.join(command)} failed:\n{stderr.decode(errors='replace')}")
    return seconds, usage.ru_utime + usage.ru_stime, stdout.decode(errors="replace")


def server_memory_section(waldo: str, python_rt: str, folder: Path, requests: int) -> None:
    """Requests sent by this script through waldo's own client, sequentially."""
    image, template = write_pictures(folder, 64, 8)
    code = (
        "import os, sys, json\n"
        "from waldo_cli import client\n"
        "null = os.open(os.devnull, os.O_WRONLY)\n"
        "saved = os.dup(1), os.dup(2)\n"
        "argv = ['find', sys.argv[1], sys.argv[2], '--json']\n"
        "for k in range(int(sys.argv[3])):\n"
        "    os.dup2(null, 1); os.dup2(null, 2)\n"
        "    status = client.run_in_server(argv, auto=False)\n"
        "    os.dup2(saved[0], 1); os.dup2(saved[1], 2)\n"
        "    if status != 0:\n"
        "        sys.exit(f'request {k}: status {status}')\n"
    )
    with server_for(waldo, folder) as env:
        status = json.loads(run([waldo, "server", "status", "--json"], env)[1])
        rows = [(0, status["memory"], 0.0)]
        chunk = max(1, requests // 10)
        started = time.perf_counter()
        done = 0
        while done < requests:
            n = min(chunk, requests - done)
            run([python_rt, "-c", code, str(image), str(template), str(n)], env)
            done += n
            status = json.loads(run([waldo, "server", "status", "--json"], env)[1])
            rows.append((status["served"], status["memory"], time.perf_counter() - started))
    print(
        f"A server serving {requests:,} `waldo find` requests one after another (64² PNG, "
        "8×8 template, `--json`), sent through waldo's client by a Python loop; the server's "
        "resident memory (its `status`) after each tenth.\n"
    )
    print("| requests served | server RSS MiB | seconds |")
    print("|---:|---:|---:|")
    for count, memory, seconds in rows:
        print(f"| {count:,} | {memory / 2**20:.1f} | {seconds:.0f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--waldo",
        default=str(Path(sys.executable).with_name("waldo")),
        help="the waldo executable to time (default: the one beside this Python)",
    )
    parser.add_argument(
        "--python-cv",
        default=sys.executable,
        metavar="PATH",
        help="a Python with OpenCV for the comparison script (default: this one)",
    )
    parser.add_argument("--runs", type=int, default=5, help="timed runs per median")
    parser.add_argument(
        "--cold-runs",
        type=int,
        default=3,
        help="cold runs, each with a new empty cache (default 3)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="3 runs, 2 cold ones, a 2048² image for the memory section",
    )
    parser.add_argument(
        "--section",
        choices=SECTIONS,
        action="append",
        help="run only this section (repeatable; default: all)",
    )
    parser.add_argument("--calls", type=int, default=50, help="calls per shell loop (loop)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the three loops (loop)")
    parser.add_argument(
        "--requests", type=int, default=10_000, help="requests sent (server-memory)"
    )
    args = parser.parse_args()
    if args.quick:
        args.runs, args.cold_runs, args.calls, args.rounds = 3, 2, 20, 2
        args.requests = 2000
    sections = args.section or SECTIONS

    sys.path.insert(0, str(HERE))
    from machine import describe

    waldo = os.path.abspath(args.waldo)
    python_rt = interpreter_of(waldo)
    # bytecode as `pip install` leaves it: where PYTHONDONTWRITEBYTECODE is
    # set, a changed module would otherwise be compiled again by every call
    package = subprocess.run(
        [python_rt, "-c", "import os, waldo_cli; print(os.path.dirname(waldo_cli.__file__))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    subprocess.run([python_rt, "-m", "compileall", "-q", package], check=True)
    waldo_version = subprocess.run(
        [waldo, "--version"], capture_output=True, text=True, cwd=tempfile.gettempdir(), check=True
    ).stdout.strip()
    cv_version = (
        subprocess.run(
            [args.python_cv, "-c", "import cv2; print(cv2.__version__)"],
            capture_output=True,
            text=True,
            cwd=tempfile.gettempdir(),
        ).stdout.strip()
        or "missing"
    )
    print(
        describe(
            libraries=False,
            extra=(
                f"waldo under test: `{waldo}` ({waldo_version}; "
                f"{versions(python_rt, ('numpy', 'numba', 'llvmlite', 'rocket-fft', 'pillow'))})",
                f"OpenCV script run by `{args.python_cv}` (OpenCV {cv_version})",
            ),
        )
    )
    with tempfile.TemporaryDirectory(prefix="waldo-bench-") as tmp:
        folder = Path(tmp)
        if "startup" in sections:
            print("\n### Start-up, whole processes\n")
            startup_section(waldo, python_rt, args.python_cv, folder, args.runs, args.cold_runs)
        if "memory" in sections:
            print("\n### Peak memory\n")
            memory_section(waldo, python_rt, folder, 2048 if args.quick else 4096, 64)
        if "loop" in sections:
            print("\n### A shell loop, with and without the server\n")
            loop_section(waldo, python_rt, args.python_cv, folder, args.calls, args.rounds)
        if "client" in sections:
            print("\n### The client's overhead\n")
            client_section(waldo, python_rt, folder, max(args.runs, 10))
        if "compile" in sections:
            print("\n### The first search of each kind, kernels compiled from nothing\n")
            compile_section(waldo, folder)
        if "server-memory" in sections:
            print("\n### The server's memory over many requests\n")
            server_memory_section(waldo, python_rt, folder, args.requests)


if __name__ == "__main__":
    main()
