"""The layout's promises: import rules, one planner, typed results, no hidden global state."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from waldo_cli.cli import cli

PACKAGE = Path(__file__).resolve().parent.parent / "waldo_cli"

# which modules may import what (module paths relative to waldo_cli/, as posix);
# server.py loads Pillow's plugins and rich once, before it forks its workers
_ALLOWED = {
    "numba": {"kernels.py", "jit.py"},
    "rocket_fft": {"jit.py"},
    "PIL": {"io.py", "render.py", "variants.py", "demo/", "server.py"},
    "click": {"cli/", "cli.py"},
    "rich": {"cli/", "cli.py", "report.py", "server.py"},
    # the [dask] extra: one room, imported only when --dask (or the library) asks for it
    "distributed": {"cluster.py"},
    "dask": {"cluster.py"},
    "fsspec": {"cluster.py"},
}


def _imports(path: Path) -> set[str]:
    """Top-level package names a module imports, anywhere in it (functions included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _allowed(relative: str, package: str) -> bool:
    return any(
        relative == rule or (rule.endswith("/") and relative.startswith(rule))
        for rule in _ALLOWED[package]
    )


def test_heavy_packages_are_imported_only_in_their_rooms():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        for package in _imports(path) & set(_ALLOWED):
            if not _allowed(relative, package):
                offenders.append(f"{relative} imports {package}")
    assert offenders == []


def _modules_after(code: str) -> set[str]:
    """The modules a Python running ``code`` imported; no help text kept, so Click prints it."""
    import tempfile

    with tempfile.TemporaryDirectory() as cache:
        proc = subprocess.run(
            [sys.executable, "-c", code + "\nimport sys\nprint('\\n'.join(sorted(sys.modules)))"],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "COLUMNS": "80", "XDG_CACHE_HOME": cache},
        )
    assert proc.returncode == 0, proc.stderr
    return set(proc.stdout.split())


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["--version"],
        ["params", "--size", "64"],
        ["params", "--size", "64", "--json"],
        ["find", "--help"],
        ["learn", "--help"],
    ],
)
def test_light_commands_import_neither_numpy_pillow_nor_numba(args):
    """What `waldo ARGS` imports, run as the console script runs it."""
    code = (
        f"import sys\nsys.argv = ['waldo', *{args!r}]\nfrom waldo_cli.client import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
    )
    modules = _modules_after(code)
    assert not modules & {"numpy", "PIL", "numba"}


def test_a_local_batch_imports_nothing_of_dask(tmp_path):
    """`waldo find -t T IMAGE...` without --dask, run as the console script runs it."""
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    _save(tmp_path / "i.png", image)
    _save(tmp_path / "t.png", image[5:15, 5:15].copy())
    args = ["find", "-t", str(tmp_path / "t.png"), str(tmp_path / "i.png"), "--jsonl"]
    code = (
        f"import sys\nsys.argv = ['waldo', *{args!r}]\nfrom waldo_cli.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
    )
    modules = _modules_after(code)
    assert "waldo_cli.batch" in modules  # it did search
    assert not modules & {"distributed", "dask", "fsspec", "waldo_cli.cluster"}


def test_the_client_looks_for_a_server_before_importing_anything_heavy(tmp_path):
    """The console script's first step, for a command a server would run, is stdlib only."""
    code = (
        "import os\n"
        f"os.environ['XDG_RUNTIME_DIR'] = {str(tmp_path)!r}\n"
        "os.environ.pop('WALDO_SERVER', None)\n"
        "from waldo_cli import client\n"
        "assert client.run_in_server(['find', 'a.png', 'b.png'], auto=False) is None\n"
    )
    tmp_path.chmod(0o700)
    modules = _modules_after(code)
    assert not modules & {"click", "rich", "numpy", "PIL", "numba"}


def test_engine_imports_neither_click_nor_rich():
    modules = _modules_after("import waldo_cli.engine, waldo_cli.search, waldo_cli.batch")
    assert not modules & {"click", "rich"}


def test_learning_imports_neither_click_nor_rich():
    """learn_filter, the filter files and the examples are library code, for any caller."""
    modules = _modules_after("import waldo_cli.learn, waldo_cli.filters, waldo_cli.examples")
    assert not modules & {"click", "rich"}


def test_results_import_nothing_heavy():
    modules = _modules_after("import waldo_cli.results, waldo_cli.report")
    assert not modules & {"numpy", "PIL", "numba"}


# --- one planner -------------------------------------------------------------


def _save(path: Path, array: np.ndarray) -> Path:
    Image.fromarray(array).save(path)
    return path


def test_masked_search_from_the_command_line_uses_the_masked_cost_model(tmp_path):
    """A case where the plain and the masked cost model disagree runs the masked one's choice."""
    from waldo_cli.plan import choose_engine, choose_masked_engine
    from waldo_cli.templates import prepare_template

    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
    template = image[30:45, 40:55].copy()
    keep = rng.random((15, 15)) < 0.2
    keep[7, 7] = True
    mask8 = np.where(keep, 255, 0).astype(np.uint8)
    # the two models, computed here from the same numbers the command reads
    weights = np.broadcast_to(
        (mask8 / 255.0).astype(np.float32).astype(np.float64), (3, 15, 15)
    ).copy()
    masked = prepare_template(template.astype(np.float32)).masked(weights, True)
    out = (96 - 15 + 1, 96 - 15 + 1)
    plain_choice = choose_engine(out, (15, 15), 3, 1)
    masked_choice = choose_masked_engine(out, masked, "ccoeff_normed", 1)
    assert plain_choice != masked_choice  # else this case tests nothing
    result = CliRunner().invoke(
        cli,
        [
            "find",
            str(_save(tmp_path / "i.png", image)),
            str(_save(tmp_path / "t.png", template)),
            "--mask",
            str(_save(tmp_path / "m.png", mask8)),
            "--threads",
            "1",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["engine"] == masked_choice
    assert (doc["matches"][0]["x"], doc["matches"][0]["y"]) == (40, 30)


@pytest.mark.parametrize(("engine", "expected"), [("direct", "direct"), ("fft", "fft")])
def test_variant_search_reports_the_engines_that_ran(engine, expected, tmp_path):
    rng = np.random.default_rng(6)
    image = rng.integers(0, 256, (120, 140, 3), dtype=np.uint8)
    args = [
        "find",
        str(_save(tmp_path / "i.png", image)),
        str(_save(tmp_path / "t.png", image[40:60, 50:74].copy())),
        "--scales",
        "0.8,1",
        "--rotations",
        "0,90",
        "--json",
        "--engine",
        engine,
    ]
    doc = json.loads(CliRunner().invoke(cli, args).stdout)
    assert doc["engine"] == expected


def test_variant_search_with_auto_reports_what_the_planner_chose(tmp_path):
    from waldo_cli.engine import plan_matches
    from waldo_cli.plan import engines_used
    from waldo_cli.variants import make_variants

    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, (300, 300, 3), dtype=np.uint8)
    template = image[100:160, 80:140].copy()
    args = [
        "find",
        str(_save(tmp_path / "i.png", image)),
        str(_save(tmp_path / "t.png", template)),
        "--scales",
        "0.1,1",
        "--threads",
        "1",
        "--json",
    ]
    doc = json.loads(CliRunner().invoke(cli, args).stdout)
    variants = make_variants(template.astype(np.float32), None, [0.1, 1.0], [0.0], False)
    plans = plan_matches(image.shape, [v.pixels for v in variants], threads=1)
    assert engines_used([p for p in plans if p is not None]) == doc["engine"]
    assert doc["engine"] == "direct+fft"  # a 6 px and a 60 px template: one engine each


def test_search_result_is_typed_with_its_geometry_and_plan():
    from waldo_cli.io import LoadedImage
    from waldo_cli.plan import Plan
    from waldo_cli.search import CENTRE, TOP_LEFT, Searcher, SearchOptions

    rng = np.random.default_rng(8)
    image = rng.random((60, 70, 3)).astype(np.float32) * 255
    template = LoadedImage(image[10:19, 20:32].copy(), None, "RGB", "t.png")
    loaded = LoadedImage(image, None, "RGB", "i.png")
    plain = Searcher(template, SearchOptions()).search(loaded)
    assert plain.scores.indexed_by == TOP_LEFT and plain.scores.values.shape == (52, 59)
    assert plain.scores.centre_offset == (4, 5)
    assert isinstance(plain.plans[0], Plan) and plain.report.extra["engine"] == plain.engine
    padded = Searcher(template, SearchOptions(pad="edge")).search(loaded)
    assert padded.scores.indexed_by == CENTRE and padded.scores.values.shape == (60, 70)
    # the same match, in image coordinates, whichever way the map is indexed
    assert (
        (plain.matches[0].x, plain.matches[0].y)
        == (padded.matches[0].x, padded.matches[0].y)
        == (20, 10)
    )


# --- no hidden global state -------------------------------------------------


def test_concurrent_searches_with_different_options_match_searches_alone(photo):
    """Searches with different methods, engines, masks, paddings and threads, all at once."""
    from waldo_cli.io import LoadedImage
    from waldo_cli.search import Searcher, SearchOptions

    image = photo("astronaut")[:160, :200].astype(np.float32)
    loaded = LoadedImage(image, None, "RGB", "astronaut")
    patch = image[40:61, 60:84].copy()
    mask = np.ones(patch.shape[:2], np.float32)
    mask[:5] = 0
    cases = [
        (SearchOptions(method="ccoeff_normed", engine="direct", threads=1), None),
        (SearchOptions(method="sqdiff", engine="fft", threads=2, top_k=3), None),
        (SearchOptions(method="ccorr_normed", engine="auto", pad="edge", threads=1), None),
        (SearchOptions(method="ccoeff_normed", engine="fft", threads=2), mask),
        (SearchOptions(method="sqdiff_normed", engine="direct", threads=3), mask),
        (SearchOptions(method="ccoeff", scales=(0.9, 1.0), threads=2), None),
    ]
    searchers = [
        Searcher(LoadedImage(patch, None, "RGB", "p"), options, mask=m) for options, m in cases
    ]
    alone = [s.search(loaded) for s in searchers]
    together: list = [None] * (3 * len(searchers))
    start = threading.Barrier(len(together))

    def run(k: int) -> None:
        start.wait()
        together[k] = searchers[k % len(searchers)].search(loaded)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(together))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k, result in enumerate(together):
        reference = alone[k % len(searchers)]
        np.testing.assert_array_equal(result.scores.values, reference.scores.values)
        assert result.matches == reference.matches
        assert result.plans == reference.plans


def test_thread_pool_serves_concurrent_callers_with_different_thread_counts():
    from waldo_cli.pool import ThreadPool

    pool = ThreadPool()
    totals = []

    def work(threads: int) -> None:
        seen: list[tuple[int, int]] = []
        for _ in range(50):
            seen.clear()
            pool.run_bands(lambda a, b: seen.append((a, b)), (), 97, threads=threads)
        totals.append(sum(b - a for a, b in seen))

    callers = [threading.Thread(target=work, args=(n,)) for n in (1, 2, 3, 5, 8)]
    for t in callers:
        t.start()
    for t in callers:
        t.join()
    pool.close()
    assert totals == [97] * 5


def test_run_batch_takes_any_executor_and_keeps_input_order(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from waldo_cli.batch import run_batch
    from waldo_cli.io import LoadedImage
    from waldo_cli.search import Searcher, SearchOptions

    rng = np.random.default_rng(9)
    template = rng.integers(0, 256, (8, 9, 3), dtype=np.uint8)
    sources = []
    for k in range(12):
        image = rng.integers(0, 256, (40 + 10 * (k % 3), 50, 3), dtype=np.uint8)
        image[k : k + 8, 2 * k : 2 * k + 9] = template
        sources.append((f"{k}.png", str(_save(tmp_path / f"{k}.png", image))))
    sources.insert(5, ("gone.png", str(tmp_path / "gone.png")))
    searcher = Searcher(LoadedImage(template.astype(np.float32), None, "RGB", "t"), SearchOptions())
    with ThreadPoolExecutor(3) as executor:
        results = list(run_batch(searcher, sources, 3, executor=executor))
    assert [r.image for r in results] == [name for name, _ in sources]
    assert results[5].error is not None
    found = [(r.report.matches[0].x, r.report.matches[0].y) for r in results if r.report]
    assert found == [(2 * k, k) for k in range(12)]


def test_compiling_apart_runs_only_the_named_kernels_and_puts_the_others_back():
    """jit._warm_only: the other kernels are no-ops for a moment (another process compiles them)."""
    from waldo_cli import jit

    module = jit._module()
    before = {name: getattr(module, name) for name in jit.kernel_names()}
    seen = []
    real = module._correlate_direct

    def spy(*args):
        seen.append("_correlate_direct")
        return real(*args)

    module._correlate_direct = spy
    try:
        jit._warm_only([("direct", False)], ["_correlate_direct"])
    finally:
        module._correlate_direct = real
    assert seen  # the named kernel ran (the others' no-ops: the test below)
    assert {name: getattr(module, name) for name in jit.kernel_names()} == before


def test_kernels_left_out_while_compiling_apart_are_left_out_for_that_thread_alone(monkeypatch):
    """A batch's other threads keep the real kernels while one thread compiles its share.

    Before, _warm_only swapped the module's kernels for no-ops: another
    thread then searched with a kernel that did nothing, or failed in
    is_loaded on a cold masked batch.
    """
    from waldo_cli import jit

    module = jit.kernels()
    seen: dict[str, object] = {}

    def warm(engine, masked):
        seen["here"] = jit.kernels()._finish_scores
        seen["kept"] = jit.kernels()._correlate_direct

        def elsewhere():
            seen["there"] = jit.kernels()._finish_scores
            seen["loaded"] = jit.is_loaded("_finish_scores")

        other = threading.Thread(target=elsewhere)
        other.start()
        other.join()

    monkeypatch.setattr(jit, "_warm", warm)
    jit._warm_only([("direct", False)], ["_correlate_direct"])
    assert seen["here"] is jit._no_kernel
    assert seen["kept"] is module._correlate_direct
    assert seen["there"] is module._finish_scores
    assert isinstance(seen["loaded"], bool)
    assert jit.kernels() is module  # and this thread has the module back


_COMPILE_APART = """
import json, sys
from waldo_cli import jit
jit.skip_extension_scan(only_waldo=True)
if sys.argv[1] == "fork":
    jit._spawn_compiler = None  # a TypeError if the child were not forked
    seconds = jit._compile_apart([("direct", False)], ["_correlate_direct", "_finish_scores"])
else:
    seconds = jit._spawn_compiler([("direct", False)], ["_correlate_direct"])[1]()
names = ["_correlate_direct", "_finish_scores"]
print(json.dumps({"seconds": seconds, "cached": [jit.is_cached(n) for n in names],
                  "loaded": [jit.is_loaded(n) for n in names]}))
"""


@pytest.mark.parametrize("how", ["fork", "spawn"])
def test_a_child_compiles_its_share_into_the_cache(how, tmp_path):
    """jit._compile_apart: the child (forked, or a new Python) compiles its kernels into the cache.

    Ours (the heavier, _finish_scores) is compiled here; the child's is in
    the cache for this process to load, and not yet loaded here.
    """
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", _COMPILE_APART, how],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert list(report["seconds"]) == ["_correlate_direct"]
    assert report["seconds"]["_correlate_direct"] > 0
    if how == "fork":
        assert report["cached"] == [True, True] and report["loaded"] == [False, True]
    else:
        assert report["cached"] == [True, False] and report["loaded"] == [False, False]


_INTERRUPTED = """
import os, sys
from waldo_cli import jit
jit.skip_extension_scan(only_waldo=True)
real, parent = jit._warm_only, os.getpid()

def interrupted(pairs, names):
    if os.getpid() == parent:
        raise KeyboardInterrupt  # this process's share, interrupted at once
    return real(pairs, names)

jit._warm_only = interrupted
try:
    jit._compile_apart([("direct", False)], ["_correlate_direct", "_finish_scores"])
except KeyboardInterrupt:
    print(jit.is_cached("_correlate_direct"), jit.is_cached("_finish_scores"))
"""


def test_an_interrupted_compile_does_not_wait_for_its_children(tmp_path):
    """Interrupted while its child compiles, the process kills the child rather than wait for it."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", _INTERRUPTED], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    # the child's kernel takes seconds to compile: killed at once, it is not in the cache
    assert done.stdout.split() == ["False", "False"]


_KILLED = """
import os, sys, time
from waldo_cli import jit
jit.skip_extension_scan(only_waldo=True)
real, parent = jit._warm_only, os.getpid()


def children():
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if int(fh.read().rsplit(")", 1)[1].split()[1]) == parent:
                    found.append(pid)
        except (OSError, IndexError, ValueError):
            pass
    return found


def killed_meanwhile(pairs, names):
    if os.getpid() == parent:
        print(*children(), flush=True)
        time.sleep(120)  # killed here, while the child compiles
    return real(pairs, names)


jit._warm_only = killed_meanwhile
jit._compile_apart([("direct", False)], ["_correlate_direct", "_finish_scores"])
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl's parent-death signal")
def test_a_compiling_child_dies_with_the_process_it_compiles_for(tmp_path):
    """Killed (SIGKILL, or `timeout`'s SIGTERM), it leaves no forked child compiling on."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    parent = subprocess.Popen(
        [sys.executable, "-c", _KILLED], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert parent.stdout is not None
        kids = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(kids) == 1
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _alive(kids[0]):
        time.sleep(0.05)
    assert not _alive(kids[0])
    files = list(tmp_path.rglob("*_correlate_direct*.nbi"))
    assert not files  # it died before it had compiled anything


def _alive(pid: int) -> bool:
    """Whether pid runs (a zombie waiting for PID 1 to reap it has ended)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_child_is_forked_only_while_no_other_thread_runs():
    """A fork copies only the calling thread: with another running, a new Python is started."""
    from waldo_cli import jit

    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert not jit._can_fork()
    finally:
        stop.set()
        other.join()
    if threading.active_count() == 1:
        assert jit._can_fork() == sys.platform.startswith("linux")
