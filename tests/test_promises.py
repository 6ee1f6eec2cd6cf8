"""Issue #12: promises tried where a user meets them (a pseudo-terminal, the installed command)."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

WALDO = str(Path(sys.executable).with_name("waldo"))


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A 160×140 random scene with a 30×40 patch cut from it, and a few copies of the scene."""
    root = tmp_path_factory.mktemp("scene")
    rng = np.random.default_rng(12)
    image = rng.integers(0, 256, (140, 160, 3), dtype=np.uint8)
    Image.fromarray(image).save(root / "scene.png")
    Image.fromarray(image[30:60, 40:80]).save(root / "patch.png")
    Image.fromarray(image[:20, :24]).save(root / "small.png")
    for k in range(24):
        Image.fromarray(np.roll(image, 3 * k, axis=1)).save(root / f"img{k:02d}.png")
    return root


def waldo(*args, cwd=None, env=None, **kwargs):
    return subprocess.run(
        [WALDO, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        **kwargs,
    )


def one_line_error(proc, *needles):
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _run_with_stderr_on_a_terminal(argv, stdout, cwd):
    """Run argv with stderr on a pseudo-terminal (80×24); return (status, what the terminal got)."""
    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "80", "LINES": "24"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(
        argv, stdout=stdout, stderr=slave, stdin=subprocess.DEVNULL, cwd=cwd, env=env
    )
    os.close(slave)
    screen = b""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            screen += chunk
        elif proc.poll() is not None:
            break
    status = proc.wait(timeout=60)
    os.close(master)
    return status, screen.decode("utf-8", "replace")


@pytest.mark.parametrize("fmt", ["--jsonl", "--csv", "--json", None])
def test_batch_records_reach_a_file_while_stderr_is_a_terminal(fmt, scene, tmp_path):
    images = sorted(str(p) for p in scene.glob("img*.png"))
    out = tmp_path / "hits"
    argv = [WALDO, "find", "-t", str(scene / "patch.png"), *images, *([fmt] if fmt else [])]
    with open(out, "wb") as fh:
        status, screen = _run_with_stderr_on_a_terminal(argv, fh, scene)
    assert status == 0, screen
    text = out.read_text()
    if fmt == "--json":
        assert [r["image"] for r in json.loads(text)] == images
    elif fmt == "--jsonl":
        assert [json.loads(line)["image"] for line in text.splitlines()] == images
    else:
        rows = text.splitlines()[1:]
        assert [row.split("," if fmt == "--csv" else "\t")[0] for row in rows] == images
    # the terminal shows the progress bar and the summary, and none of the records
    assert "searching" in screen and "images/s" in screen
    assert f"{len(images)} images: " in screen
    assert images[3] not in screen


def test_batch_into_a_pipe_while_stderr_is_a_terminal(scene):
    images = sorted(str(p) for p in scene.glob("img*.png"))
    pipeline = subprocess.Popen(["wc", "-l"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    argv = [WALDO, "find", "-t", str(scene / "patch.png"), *images, "--jsonl"]
    status, screen = _run_with_stderr_on_a_terminal(argv, pipeline.stdin, scene)
    pipeline.stdin.close()
    assert status == 0
    assert int(pipeline.stdout.read()) == len(images)
    pipeline.wait(timeout=60)
    assert "searching" in screen


@pytest.mark.parametrize("fmt", [[], ["--jsonl"], ["--csv"]])
def test_one_image_in_batch_form_writes_its_pictures(fmt, scene, tmp_path):
    overlay, heatmap = tmp_path / "o.png", tmp_path / "h.png"
    proc = waldo(
        "find",
        "-t",
        scene / "patch.png",
        scene / "scene.png",
        "--overlay",
        overlay,
        "--heatmap",
        heatmap,
        *fmt,
    )
    assert proc.returncode == 0, proc.stderr
    assert Image.open(overlay).size == Image.open(heatmap).size == (160, 140)


def test_single_form_with_jsonl_writes_its_pictures(scene, tmp_path):
    overlay = tmp_path / "o.png"
    proc = waldo("find", scene / "scene.png", scene / "patch.png", "--jsonl", "--overlay", overlay)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["matches"][0]["x"] == 40
    assert Image.open(overlay).size == (160, 140)


def test_several_images_with_pictures_is_a_usage_error(scene, tmp_path):
    proc = waldo(
        "find",
        "-t",
        scene / "patch.png",
        scene / "scene.png",
        scene / "img00.png",
        "--overlay",
        tmp_path / "o.png",
    )
    one_line_error(proc, "--overlay", "exactly one image")
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize(
    ("option", "value", "searched"),
    [
        ("--rotations", "90", [0.0, 90.0]),
        ("--rotations", "0:360:90", [0.0, 90.0, 180.0, 270.0]),
        ("--scales", "1.25", [1.0, 1.25]),
    ],
)
def test_variants_also_search_the_template_as_it_is(option, value, searched, scene):
    proc = waldo("find", scene / "scene.png", scene / "patch.png", option, value, "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    key = "angles" if option == "--rotations" else "scales"
    assert doc["variants"][key] == searched
    match = doc["matches"][0]
    assert (match["x"], match["y"], match["angle"], match["scale"]) == (40, 30, 0.0, 1.0)
    assert match["score"] == pytest.approx(1.0, abs=1e-5)


def test_help_says_variants_are_searched_as_well():
    help_text = " ".join(waldo("find", "--help").stdout.split())
    assert "own size is always searched too" in help_text
    assert "upright template is always searched too" in help_text


def test_a_batch_error_names_its_image(scene):
    proc = waldo(
        "find", "-t", scene / "patch.png", scene / "scene.png", scene / "small.png", "--csv"
    )
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("waldo: error")]
    assert len(errors) == 1
    assert errors[0].startswith(f"waldo: error: {scene / 'small.png'}: template 40×30")


def test_a_template_larger_than_the_image_suggests_swapped_arguments(scene):
    proc = waldo("find", scene / "small.png", scene / "patch.png")
    one_line_error(proc, str(scene / "small.png"), "larger than image 24×20", "swapped?")
    # an image the template does not fit in either way round is not called swapped
    tall = scene / "tall.png"
    Image.fromarray(np.zeros((100, 10, 3), np.uint8)).save(tall)
    assert "swapped" not in one_line_error(waldo("find", tall, scene / "patch.png"))


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_non_finite_threshold_is_a_usage_error(value, scene):
    proc = waldo("find", scene / "scene.png", scene / "patch.png", "--threshold", value)
    one_line_error(proc, "--threshold", "not a finite number")


def test_quiet_is_quiet_even_about_bad_inputs(scene, tmp_path):
    for args in (
        ["-q", "-t", tmp_path / "missing.png", scene / "scene.png"],
        ["-q", scene / "scene.png", tmp_path / "missing.png"],
        ["-q", "-t", scene / "patch.png", "--files-from", tmp_path / "missing.txt"],
        ["-q", "-t", scene / "patch.png", scene / "small.png"],
    ):
        proc = waldo("find", *args)
        assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", ""), args
    found = waldo(
        "find", "-q", "-t", scene / "patch.png", tmp_path / "missing.png", scene / "scene.png"
    )
    assert (found.returncode, found.stdout, found.stderr) == (0, "", "")


def test_usage_errors_keep_clicks_hint_on_their_one_line(scene):
    line = one_line_error(waldo("find", "--bogus", scene / "scene.png", scene / "patch.png"))
    assert line.endswith("(try 'waldo find -h' for help)")
    line = one_line_error(waldo("params"))
    assert line.endswith("(try 'waldo params -h' for help)")
    # an error about an input file is not a usage error: no hint
    assert "try" not in one_line_error(waldo("find", scene / "missing.png", scene / "patch.png"))


def test_threads_help_and_note(scene):
    help_text = " ".join(waldo("find", "--help").stdout.split())
    assert "NUMBA_NUM_THREADS if set (which only sets this default)" in help_text
    proc = waldo("find", scene / "scene.png", scene / "patch.png", "--threads", "64", "--json")
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["threads"] == 64
    assert proc.stderr.startswith("waldo: note: --threads 64 is more than the")
    assert (
        waldo("find", scene / "scene.png", scene / "patch.png", "--threads", "1").stderr.count(
            "note"
        )
        == 0
    )


def test_scores_print_with_a_documented_precision(scene):
    tsv = waldo("find", scene / "scene.png", scene / "patch.png", "-k", "3", "--no-threshold")
    scores = [line.split("\t")[-1] for line in tsv.stdout.splitlines()[1:]]
    assert scores[0] == "1.000000"
    assert all(len(s.split(".")[1]) == 6 for s in scores), scores
    raw = waldo("find", scene / "scene.png", scene / "patch.png", "-m", "ccorr", "--csv")
    header, first = list(csv.reader(io.StringIO(raw.stdout)))[:2]
    assert first[header.index("score")].count("e+") == 1
    doc = json.loads(
        waldo(
            "find", scene / "scene.png", scene / "patch.png", "-k", "3", "--no-threshold", "--json"
        ).stdout
    )
    for match in doc["matches"]:
        # NumPy's shortest round-trip decimal of that float32 is what the JSON holds
        assert match["score"] == float(str(np.float32(match["score"])))
    assert (
        '"score": 1.0}' in waldo("find", scene / "scene.png", scene / "patch.png", "--json").stdout
    )


def test_seconds_leave_out_the_first_compile(cold_search):
    """With an empty kernel cache the compile is reported apart, not in the search's seconds.

    The search (``waldo find --engine direct --json``, twice in one empty
    cache) is conftest's, shared with tests/test_cli.py's cold-cache tests.
    """
    proc = cold_search["cold"]
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["compile_seconds"] > 0.2
    assert doc["seconds"] < doc["compile_seconds"] / 4
    again = json.loads(cold_search["warm"].stdout)
    assert again["compile_seconds"] < doc["compile_seconds"]
