"""``waldo find`` through Click's runner, and the installed executable once."""

from __future__ import annotations

import json
import os
import re
import signal
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import assert_one_line_error
from PIL import Image

from waldo_cli import __version__
from waldo_cli.cli import cli
from waldo_cli.methods import METHODS

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_images" / "astronaut.png"
SAMPLE_TEMPLATE = ROOT / "sample_images" / "astronaut-patch.png"
PATCH_AT = (134, 350)  # where the patch was cut from, (x, y)


@pytest.fixture(scope="module")
def files(tmp_path_factory, photo):
    """An image, a template cut from it at (x=40, y=30), and bad files."""
    root = tmp_path_factory.mktemp("cli")
    image = photo("astronaut")[100:228, 150:310]
    Image.fromarray(image).save(root / "scene.png")
    Image.fromarray(image[30:54, 40:68]).save(root / "waldo.png")
    Image.fromarray(image[30:54, 40:68]).convert("L").save(root / "waldo-grey.png")
    (root / "empty.png").write_bytes(b"")
    (root / "text.png").write_text("not an image at all\n")
    data = (root / "scene.png").read_bytes()
    (root / "truncated.png").write_bytes(data[: len(data) // 3])
    (root / "folder.png").mkdir()

    def chunk(kind, body):
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    (root / "zero.png").write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 0, 0, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )
    Image.fromarray(image[:20, :20]).save(root / "small.png")
    return root


def run(*args, env=None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


def test_version():
    result = run("--version")
    assert result.exit_code == 0
    assert __version__ in result.stdout


def test_help_lists_find():
    result = run("--help")
    assert result.exit_code == 0 and "find" in result.stdout


def test_find_plain_output_when_piped(files):
    result = run("find", files / "scene.png", files / "waldo.png")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split("\t") == ["rank", "x", "y", "width", "height", "score"]
    assert lines[1].split("\t")[:5] == ["1", "40", "30", "28", "24"]
    assert float(lines[1].split("\t")[5]) == pytest.approx(1.0, abs=1e-5)
    assert "\x1b[" not in result.stdout  # no colour codes in a pipe
    assert "searched in" in result.stderr


def test_find_table_on_a_terminal(files):
    result = run(
        "find",
        files / "scene.png",
        files / "waldo.png",
        "-k",
        "2",
        env={"FORCE_COLOR": "1", "COLUMNS": "100"},
    )
    assert result.exit_code == 0
    assert "rank" in result.stdout and "score" in result.stdout
    assert "┃" in result.stdout or "│" in result.stdout
    # the caption names the image's path, so it may wrap at any space
    caption = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", result.stdout).split())
    assert "searched in" in caption
    assert result.stderr == ""


def test_find_json_document(files):
    result = run("find", files / "scene.png", files / "waldo.png", "--json")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)  # exactly one document
    assert doc["image"] == str(files / "scene.png")
    assert doc["template"] == str(files / "waldo.png")
    assert doc["method"] == "ccoeff_normed"
    assert doc["image_size"] == [160, 128]
    assert doc["template_size"] == [28, 24]
    assert isinstance(doc["seconds"], float) and doc["seconds"] >= 0
    [match] = doc["matches"]
    # #16 added the centre, the margin over the best rival, and the template's name
    assert set(match) == {"x", "y", "width", "height", "score", "cx", "cy", "margin", "template"}
    assert (match["x"], match["y"], match["width"], match["height"]) == (40, 30, 28, 24)
    assert (match["cx"], match["cy"]) == (40 + 28 / 2, 30 + 24 / 2)
    assert match["template"] == str(files / "waldo.png")
    assert 0 < match["margin"] <= 2
    assert match["score"] == pytest.approx(1.0, abs=1e-5)
    # what the search would cost as a layer: the template as a 1-channel filter
    assert doc["parameters"] == {"conv": 28 * 24 * 3, "dense": 160 * 128 * 3 * 133 * 105}


@pytest.mark.parametrize("method", METHODS)
def test_every_method_finds_exact_cut(method, files):
    result = run(
        "find",
        files / "scene.png",
        files / "waldo.png",
        "--method",
        method,
        "--json",
        "--no-threshold",
    )
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["method"] == method
    if method not in ("ccorr", "ccoeff"):  # raw correlation favours bright places
        assert (doc["matches"][0]["x"], doc["matches"][0]["y"]) == (40, 30)


def test_top_k_gives_distinct_places(files):
    result = run(
        "find", files / "scene.png", files / "waldo.png", "-k", "5", "--threshold", "0", "--json"
    )
    matches = json.loads(result.stdout)["matches"]
    assert len(matches) == 5
    assert matches[0]["x"] == 40 and matches[0]["y"] == 30
    scores = [m["score"] for m in matches]
    assert scores == sorted(scores, reverse=True)
    for i, a in enumerate(matches):
        for b in matches[i + 1 :]:
            assert max(abs(a["x"] - b["x"]), abs(a["y"] - b["y"])) >= 12


def test_min_distance_option(files):
    result = run(
        "find",
        files / "scene.png",
        files / "waldo.png",
        "-k",
        "3",
        "--no-threshold",
        "--min-distance",
        "1",
        "--json",
    )
    matches = json.loads(result.stdout)["matches"]
    assert len(matches) == 3
    # with suppression this small, the runners-up hug the best match
    assert all(max(abs(m["x"] - 40), abs(m["y"] - 30)) <= 2 for m in matches)


def test_threshold_nothing_found_exits_1(files):
    result = run("find", files / "scene.png", files / "waldo.png", "--threshold", "1.5", "--json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["matches"] == [] and doc["threshold"] == 1.5


def test_threshold_for_sqdiff_means_at_most(files):
    ok = run("find", files / "scene.png", files / "waldo.png", "-m", "sqdiff", "--threshold", "0.5")
    assert ok.exit_code == 0
    none = run(
        "find", files / "scene.png", files / "small.png", "-m", "sqdiff_normed", "--threshold", "0"
    )
    assert none.exit_code == 1
    assert none.stdout.splitlines() == ["rank\tx\ty\twidth\theight\tscore"]
    assert "no match" in none.stderr


def test_default_threshold_is_reported(files):
    doc = json.loads(run("find", files / "scene.png", files / "waldo.png", "--json").stdout)
    assert doc["threshold"] == 0.5
    doc = json.loads(
        run("find", files / "scene.png", files / "waldo.png", "-m", "ccorr", "--json").stdout
    )
    assert doc["threshold"] is None


def test_grey_template_on_colour_image(files):
    result = run("find", files / "scene.png", files / "waldo-grey.png", "--json")
    assert result.exit_code == 0
    match = json.loads(result.stdout)["matches"][0]
    assert (match["x"], match["y"]) == (40, 30)
    assert match["score"] > 0.99


def test_sample_images_search():
    """The README's first command: the patch is found where it was cut."""
    result = run("find", SAMPLE, SAMPLE_TEMPLATE, "--json")
    assert result.exit_code == 0
    match = json.loads(result.stdout)["matches"][0]
    assert (match["x"], match["y"]) == PATCH_AT


@pytest.mark.parametrize(
    ("image", "template", "needles"),
    [
        ("missing.png", "waldo.png", ("missing.png", "no such file")),
        ("scene.png", "missing.png", ("missing.png", "no such file")),
        ("folder.png", "waldo.png", ("folder.png", "directory")),
        ("empty.png", "waldo.png", ("empty.png", "empty")),
        ("truncated.png", "waldo.png", ("truncated.png", "truncated")),
        ("text.png", "waldo.png", ("text.png", "not an image")),
        ("zero.png", "waldo.png", ("zero.png", "no pixels")),
        ("scene.png", "text.png", ("text.png", "not an image")),
        ("small.png", "waldo.png", ("template 28×24 is larger than image 20×20",)),
    ],
)
def test_bad_files_give_one_line(image, template, needles, files):
    assert_one_line_error(run("find", files / image, files / template), *needles)


def test_decompression_bomb_reads_as_an_error(files, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # the template passes, the image not
    assert_one_line_error(
        run("find", files / "scene.png", files / "waldo.png"), "scene.png", "decompression bomb"
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--method", "nearest"], "--method"),
        (["-k", "0"], "--top-k"),
        (["-k", "-3"], "--top-k"),
        (["-k", "two"], "--top-k"),
        (["--min-distance", "-1"], "--min-distance"),
        (["--threshold", "high"], "--threshold"),
        (["--threshold", "0.5", "--no-threshold"], "--no-threshold"),
        (["--bogus"], "--bogus"),
    ],
)
def test_bad_options_give_one_line(args, needle, files):
    assert_one_line_error(run("find", files / "scene.png", files / "waldo.png", *args), needle)


def test_missing_argument_gives_one_line(files):
    assert_one_line_error(run("find", files / "scene.png"), "TEMPLATE")


def _waldo_executable() -> str:
    exe = Path(sys.executable).with_name("waldo")
    if not exe.exists():
        pytest.fail(f"the installed waldo executable is missing next to {sys.executable}")
    return str(exe)


@pytest.mark.skipif(not hasattr(signal, "SIGPIPE"), reason="no SIGPIPE on this platform")
def test_closed_stdout_ends_like_grep(tmp_path, rng):
    """`waldo find -t T IMAGES | head -1`: killed by SIGPIPE (141 in a shell), not "not found"."""
    for k in range(60):
        Image.fromarray(rng.integers(0, 256, (60, 60, 3), dtype=np.uint8)).save(
            tmp_path / f"i{k:02d}.png"
        )
    Image.fromarray(rng.integers(0, 256, (5, 5, 3), dtype=np.uint8)).save(tmp_path / "t.png")
    images = sorted(str(p) for p in tmp_path.glob("i*.png"))
    # a record per image, each written when its search is done: the reader
    # is gone long before the last ones
    proc = subprocess.Popen(
        [_waldo_executable(), "find", "-t", str(tmp_path / "t.png"), "--threshold", "-1", *images],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout.readline().startswith(b"image\trank")
    proc.stdout.close()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGPIPE, err
    assert b"Traceback" not in err


def test_installed_executable_runs(files):
    proc = subprocess.run(
        [_waldo_executable(), "find", str(files / "scene.png"), str(files / "waldo.png"), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["matches"][0]["x"] == 40
    bad = subprocess.run(
        [_waldo_executable(), "find", str(files / "nothere.png"), str(files / "waldo.png")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2
    missing = files / "nothere.png"
    assert bad.stderr.strip().splitlines() == [f"waldo: error: {missing}: no such file"]


def test_python_dash_m_runs():
    proc = subprocess.run(
        [sys.executable, "-m", "waldo_cli", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and __version__ in proc.stdout


def _modules_after(code: str) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys\nprint('\\n'.join(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "80"},
    )
    assert proc.returncode == 0, proc.stderr
    return set(proc.stdout.split())


def test_help_and_version_do_not_import_numba():
    code = (
        "from waldo_cli.cli import cli\n"
        "for args in (['--help'], ['--version'], ['find', '--help']):\n"
        "    cli.main(args, standalone_mode=False)\n"
    )
    assert "numba" not in _modules_after(code)


def test_engine_does_not_import_click_or_pil():
    modules = _modules_after("import waldo_cli.engine, waldo_cli.peaks")
    assert "click" not in modules and "rich" not in modules and "PIL" not in modules


@pytest.mark.parametrize("engine", ["direct", "fft", "auto"])
def test_engine_option(engine, files):
    result = run(
        "find",
        files / "scene.png",
        files / "waldo.png",
        "--engine",
        engine,
        "--threads",
        "1",
        "--json",
    )
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["engine"] in (("direct", "fft") if engine == "auto" else (engine,))
    assert doc["threads"] == 1
    assert (doc["matches"][0]["x"], doc["matches"][0]["y"]) == (40, 30)


@pytest.mark.parametrize(
    ("args", "needle"), [(["--engine", "gpu"], "--engine"), (["--threads", "0"], "--threads")]
)
def test_bad_engine_options(args, needle, files):
    assert_one_line_error(run("find", files / "scene.png", files / "waldo.png", *args), needle)


@pytest.fixture(scope="module")
def cold_cache(cold_search, files, tmp_path_factory):
    """One fresh cache folder, used in order: each kernel is compiled in it once.

    A plain direct search, cold then warm (``cold_search``, shared with
    tests/test_promises.py), ``cache info``, a masked FFT batch (its kernel
    still cold), ``cache warm`` (the kernels nobody ran yet, in two processes
    where two cores are usable), ``cache info``, ``cache clear``, ``cache
    info``. Compiling every kernel costs tens of seconds on a busy machine:
    once is enough to see every notice and time.
    """
    root = tmp_path_factory.mktemp("masked")
    cache, env = cold_search["cache"], cold_search["env"]
    waldo = _waldo_executable()

    def waldo_run(*args):
        return subprocess.run(
            [waldo, *map(str, args)], capture_output=True, text=True, timeout=600, env=env
        )

    template = Image.open(files / "waldo.png").convert("RGBA")
    alpha = np.full(template.size[::-1], 255, np.uint8)
    alpha[:6, :6] = 0  # a transparent corner: a masked search
    template.putalpha(Image.fromarray(alpha))
    template.save(root / "masked.png")
    scene = files / "scene.png"
    runs = {"cache": cache, "cold": cold_search["cold"], "warm": cold_search["warm"]}
    runs["info"] = waldo_run("cache", "info")
    runs["masked"] = waldo_run(
        "find", "-t", root / "masked.png", scene, scene, "--engine", "fft", "--jsonl"
    )
    runs["warmed"] = waldo_run("cache", "warm")
    runs["info_warmed"] = waldo_run("cache", "info")
    runs["cleared"] = waldo_run("cache", "clear")
    runs["info_cleared"] = waldo_run("cache", "info")
    runs["nbi_cleared"] = list(cache.rglob("*.nbi"))
    return runs


def test_cold_cache_says_it_compiles_and_cache_commands(cold_cache):
    """A fresh cache folder: the first search says it compiles, the next is silent."""
    cold, warm, info = cold_cache["cold"], cold_cache["warm"], cold_cache["info"]
    assert cold.returncode == 0, cold.stderr
    assert "compiling the search kernels, once" in cold.stderr
    assert json.loads(cold.stdout)["matches"][0]["x"] == 40
    assert warm.returncode == 0 and "compiling" not in warm.stderr
    # the two kernels compiled in two processes at once (jit._compile_apart) met in the cache
    assert json.loads(cold.stdout)["matches"] == json.loads(warm.stdout)["matches"]
    assert json.loads(warm.stdout)["compile_seconds"] < json.loads(cold.stdout)["compile_seconds"]
    assert str(cold_cache["cache"]) in info.stdout
    assert "_correlate_direct: compiled" in info.stdout
    assert "_finish_scores: compiled" in info.stdout
    assert "_correlate_fft: not compiled yet" in info.stdout
    warmed = cold_cache["warmed"]
    assert warmed.returncode == 0 and "fft kernels ready" in warmed.stdout
    # each kernel's compile time, from Numba's event API, for the ones it
    # compiles (shared out between two processes where two cores are usable);
    # what the searches above compiled (plain direct, masked FFT) is only loaded
    from waldo_cli import jit

    loaded = {"_correlate_direct", "_finish_scores", "_masked_tile", "_masked_rows"}
    assert loaded < jit.kernel_names()
    for name in sorted(jit.kernel_names() - loaded):
        assert re.search(rf"^{name}: \d+\.\d s$", warmed.stdout, re.M), warmed.stdout
    for name in sorted(loaded):
        assert f"{name}: loaded from the cache" in warmed.stdout, warmed.stdout
    assert "not compiled" not in cold_cache["info_warmed"].stdout
    cleared = cold_cache["cleared"]
    assert cleared.returncode == 0 and "removed" in cleared.stdout
    assert "_correlate_direct: not compiled yet" in cold_cache["info_cleared"].stdout
    assert not cold_cache["nbi_cleared"]


def test_a_masked_batch_says_it_compiles_too(cold_cache):
    """The masked kernels and a batch's first image wait for the compiler too: said once."""
    cold = cold_cache["masked"]
    assert cold.returncode == 0, cold.stderr
    assert cold.stderr.count("compiling the search kernels, once") == 1, cold.stderr
    records = [json.loads(line) for line in cold.stdout.splitlines()]
    assert [r["mask"] for r in records] == ["alpha", "alpha"]
    assert {r["engine"] for r in records} == {"fft"}


def test_subpixel_option_gives_decimal_positions(files):
    doc = json.loads(
        run("find", files / "scene.png", files / "waldo.png", "--json", "--subpixel").stdout
    )
    match = doc["matches"][0]
    assert isinstance(match["x"], float) and abs(match["x"] - 40) < 0.5
    assert abs(match["y"] - 30) < 0.5
    plain = run("find", files / "scene.png", files / "waldo.png", "--subpixel").stdout
    assert plain.splitlines()[1].split("\t")[1:3] == [f"{match['x']:.2f}", f"{match['y']:.2f}"]


@pytest.mark.parametrize("args", [[], ["cache"]])
def test_a_group_alone_shows_its_help(args):
    result = run(*args)
    assert result.exit_code == 0
    assert result.stdout.startswith("Usage: ") and "Commands:" in result.stdout
