"""Issue #15: waldo learn, learned filters in waldo find, params --filter, hard demos."""

from __future__ import annotations

import csv
import json
import os
import pty
import re
import select
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import assert_one_line_error
from naive import lag_sums_ref
from PIL import Image

from waldo_cli import __version__
from waldo_cli.cli import cli
from waldo_cli.demo import render_puzzle, write_puzzle
from waldo_cli.errors import FilterReadError, ShapeError, WaldoError
from waldo_cli.examples import Example
from waldo_cli.filters import load_filter, save_filter
from waldo_cli.learn import _summed_moments, learn_filter, window_moments
from waldo_cli.templates import LearnedFilter

WALDO = str(Path(sys.executable).with_name("waldo"))
SIZE, CROWD = (320, 240), 40
TRAIN = range(8)  # small puzzles to learn from
HELD_APART = range(100, 112)  # small puzzles to search
# a small filter where only the options and the files are checked, not how
# well it finds Waldo: its linear solves take milliseconds, not seconds
SMALL = ("--size", "10x24")


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0, min(ay + ah, by + bh) - max(ay, by))
    return w * h / (aw * ah + bw * bh - w * h)


def box_of(doc) -> tuple[int, int, int, int]:
    return (doc["x"], doc["y"], doc["width"], doc["height"])


@pytest.fixture(scope="session")
def puzzles(tmp_path_factory) -> Path:
    """Small puzzles written by `waldo demo`: train/<seed> and test/<seed>."""
    root = tmp_path_factory.mktemp("puzzles")
    for part, seeds in (("train", TRAIN), ("test", HELD_APART)):
        (root / part).mkdir()
        for seed in seeds:
            write_puzzle(root / part / str(seed), render_puzzle(seed, size=SIZE, crowd=CROWD))
    return root


@pytest.fixture(scope="session")
def learning(puzzles):
    """`waldo learn` on the training puzzles: its result (summary) and the file it wrote."""
    out = puzzles / "waldo.npz"
    result = run("learn", *(puzzles / "train" / str(s) for s in TRAIN), "-o", out)
    assert result.exit_code == 0, result.stderr
    return result, out


@pytest.fixture(scope="session")
def learned(learning) -> Path:
    """The filter `waldo learn` makes from the training puzzles (the CLI's own file)."""
    return learning[1]


# --- learning ---------------------------------------------------------------


def _noise_scenes(kernel, rng, count=4, boxes=12, size=(96, 128)):
    """Scenes of white noise with ``kernel`` added (a linear model) at known boxes."""
    h, w, _ = kernel.shape
    scenes = []
    for k in range(count):
        scene = rng.normal(127.5, 20.0, (*size, 3))
        placed = []
        while len(placed) < boxes:
            x, y = int(rng.integers(0, size[1] - w)), int(rng.integers(0, size[0] - h))
            if all(iou((x, y, w, h), b) == 0 for b in placed):
                scene[y : y + h, x : x + w] += kernel
                placed.append((x, y, w, h))
        scenes.append(Example(scene.astype(np.float32), tuple(placed), f"noise{k}", "scene"))
    return scenes


def test_learning_recovers_a_known_filter(rng):
    # examples are noise plus a known V: the whitened discriminant of white
    # noise is V itself (made zero-mean per channel, as learned kernels are)
    truth = rng.normal(0.0, 30.0, (9, 7, 3))
    truth -= truth.mean(axis=(0, 1))
    learned = learn_filter(_noise_scenes(truth, rng), augment=False)
    kernel = learned.kernel.astype(np.float64)
    cosine = float((kernel * truth).sum() / np.linalg.norm(kernel) / np.linalg.norm(truth))
    assert learned.shape == truth.shape
    assert cosine > 0.95
    np.testing.assert_allclose(kernel.sum(axis=(0, 1)), 0.0, atol=1e-5 * np.abs(kernel).sum())


def test_background_moments_are_the_images_lag_sums(rng):
    # images of two FFT sizes, two of one size: their spectra are summed in groups
    images = [
        rng.uniform(-0.5, 0.5, shape).astype(np.float32)
        for shape in [(12, 15, 3), (12, 15, 3), (9, 20, 3)]
    ]
    size = (4, 3)
    refs = [lag_sums_ref(image, *size) for image in images]
    summed = _summed_moments(images, size)
    np.testing.assert_allclose(summed.lags, sum(r[0] for r in refs), rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(summed.pairs, sum(r[1] for r in refs))
    np.testing.assert_allclose(
        summed.total, sum(image.reshape(-1, 3).sum(axis=0, dtype=np.float64) for image in images)
    )
    assert summed.pixels == sum(image.shape[0] * image.shape[1] for image in images)
    one = window_moments(images[2], size)
    np.testing.assert_allclose(one.lags, refs[2][0], rtol=1e-9, atol=1e-9)


def test_learned_filter_scores_its_examples_above_its_negatives(learned):
    doc = load_filter(learned).training["trained"]
    assert doc["found"] == doc["of"] == len(TRAIN)
    assert doc["examples"][0] > 0.5 > doc["best_clear"][-1]


def test_learn_is_deterministic_for_a_seed(puzzles, tmp_path):
    first, again, other = tmp_path / "first.npz", tmp_path / "again.npz", tmp_path / "other.npz"
    examples = [puzzles / "train" / str(s) for s in TRAIN[:3]]
    assert run("learn", *examples, *SMALL, "-o", first, "-q", "--seed", 4).exit_code == 0
    assert run("learn", *examples, *SMALL, "-o", again, "-q", "--seed", 4).exit_code == 0
    assert run("learn", *examples, *SMALL, "-o", other, "-q", "--seed", 1).exit_code == 0
    assert again.read_bytes() == first.read_bytes()
    assert other.read_bytes() != first.read_bytes()
    # no time of writing anywhere in the archive
    with zipfile.ZipFile(again) as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_learned_filter_finds_waldo_where_one_template_does_not(puzzles, learned):
    """Held-apart puzzles: the filter finds every Waldo, the template cut from one puzzle misses."""
    template = puzzles / "train" / "0" / "waldo.png"
    by_filter = by_template = 0
    for seed in HELD_APART:
        folder = puzzles / "test" / str(seed)
        answer = box_of(json.loads((folder / "answer.json").read_text()))
        for tool in (learned, template):
            result = run("find", folder / "scene.png", tool, "--json")
            matches = json.loads(result.stdout)["matches"]
            found = bool(matches) and iou(box_of(matches[0]), answer) >= 0.5
            assert result.exit_code == (0 if matches else 1)
            if tool == learned:
                by_filter += found
            else:
                by_template += found
    assert by_filter == len(HELD_APART)
    assert by_template <= len(HELD_APART) - 2


def test_learning_from_crops_and_negatives(puzzles, tmp_path):
    crops = []
    for seed in TRAIN:
        crop = tmp_path / f"crop{seed}.png"
        Image.open(puzzles / "train" / str(seed) / "waldo.png").save(crop)
        crops.append(crop)
    empty = tmp_path / "empty"
    empty.mkdir()
    rng = np.random.default_rng(3)
    for k in range(2):
        noise = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
        Image.fromarray(noise).save(empty / f"noise{k}.png")
    out = tmp_path / "crops.npz"
    result = run("learn", *crops, "--negatives", empty, "-o", out, "--json", *SMALL)
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert (doc["crops"], doc["scenes"], doc["negative_images"]) == (len(TRAIN), 0, 2)
    assert load_filter(out).shape[2] == 3


# --- the file ---------------------------------------------------------------


def test_filter_file_round_trip(learned, tmp_path):
    first = load_filter(learned)
    copy = tmp_path / "copy.npz"
    save_filter(first, copy)
    second = load_filter(copy)
    np.testing.assert_array_equal(first.kernel, second.kernel)
    assert (first.bias, first.colour, first.scales) == (second.bias, second.colour, second.scales)
    assert second.training == first.training and second.calibration == first.calibration
    assert second.version == __version__
    # numpy reads it too: the kernel, the bias and what they mean
    with np.load(copy) as archive:
        np.testing.assert_array_equal(archive["kernel"], first.kernel)
        assert float(archive["bias"]) == first.bias
        assert json.loads(archive["waldo.json"])["method"] == "learned"


def _bad_filters(learned: Path, root: Path) -> dict[str, tuple[Path, str]]:
    data = learned.read_bytes()
    (root / "truncated.npz").write_bytes(data[: len(data) // 2])
    np.savez(root / "foreign.npz", kernel=np.ones((3, 3, 3)))
    (root / "text.npz").write_text("not a filter\n")
    meta = json.loads(zipfile.ZipFile(learned).read("waldo.json"))
    with zipfile.ZipFile(root / "future.npz", "w") as archive:
        for name in ("kernel.npy", "bias.npy"):
            archive.writestr(name, zipfile.ZipFile(learned).read(name))
        archive.writestr("waldo.json", json.dumps({**meta, "version": 99, "waldo": "9.0"}))
    with zipfile.ZipFile(root / "nokernel.npz", "w") as archive:
        archive.writestr("waldo.json", json.dumps(meta))
    return {
        "truncated": (root / "truncated.npz", "not a waldo filter"),
        "foreign": (root / "foreign.npz", "not a waldo filter"),
        "text": (root / "text.npz", "not a waldo filter"),
        "future": (root / "future.npz", "format version 99"),
        "nokernel": (root / "nokernel.npz", "damaged"),
    }


@pytest.mark.parametrize("kind", ["truncated", "foreign", "text", "future", "nokernel"])
def test_bad_filter_files_are_one_line_and_exit_2(kind, learned, puzzles, tmp_path):
    path, needle = _bad_filters(learned, tmp_path)[kind]
    with pytest.raises(FilterReadError, match=needle):
        load_filter(path)
    scene = puzzles / "test" / "100" / "scene.png"
    assert_one_line_error(run("find", scene, path), needle, path.name)
    assert_one_line_error(run("find", "-t", path, scene), needle)
    assert_one_line_error(run("params", "--filter", path), needle)


def test_loading_checks_the_parts():
    with pytest.raises(ShapeError, match="channel"):
        LearnedFilter(np.ones((3, 3, 2), np.float32), 0.0)
    with pytest.raises(ShapeError, match="NaN"):
        LearnedFilter(np.full((3, 3, 3), np.nan, np.float32), 0.0)
    with pytest.raises(ShapeError, match="colour"):
        LearnedFilter(np.ones((3, 3, 3), np.float32), 0.0, colour="cmyk")


# --- using a filter: the engine and the Python API ----------------------------


def test_match_template_with_a_filter_is_the_layer(rng):
    """score = u + Σ V · (I / 255 − 1/2): the chapter's convolutional layer, one output channel."""
    import waldo_cli

    image = rng.integers(0, 256, (30, 40, 3)).astype(np.float32)
    kernel = rng.normal(size=(5, 4, 3)).astype(np.float32)
    learned = LearnedFilter(kernel, 0.25)
    scores = waldo_cli.match_template(image, learned)
    x = image / 255 - 0.5
    expected = np.array(
        [[(kernel * x[y : y + 5, c : c + 4]).sum() for c in range(37)] for y in range(26)]
    )
    np.testing.assert_allclose(scores, expected + 0.25, atol=2e-5)
    with pytest.raises(WaldoError, match="learned"):
        waldo_cli.match_template(image, learned, "ccoeff_normed")
    with pytest.raises(WaldoError, match="learned filter"):
        waldo_cli.match_template(image, kernel, "learned")
    with pytest.raises(WaldoError, match="mask"):
        waldo_cli.match_template(image, learned, mask=np.ones((5, 4)))


def test_python_api_learns_loads_and_matches(puzzles, learned):
    import waldo_cli

    f = waldo_cli.load_filter(learned)
    image = waldo_cli.load_image(puzzles / "test" / "100" / "scene.png")
    scores = waldo_cli.match_template(image, f)
    h, w, _ = f.shape
    assert scores.shape == (image.shape[0] - h + 1, image.shape[1] - w + 1)
    assert "learn_filter" in waldo_cli.__all__ and "load_filter" in waldo_cli.__all__


def test_grey_filter_searches_colour_images_made_grey(puzzles, tmp_path):
    out = tmp_path / "grey.npz"
    examples = [puzzles / "train" / str(s) for s in TRAIN[:3]]
    assert run("learn", *examples, "-o", out, "--grey", "-q").exit_code == 0
    assert load_filter(out).colour == "grey" and load_filter(out).shape[2] == 1
    result = run("find", puzzles / "test" / "100" / "scene.png", out, "--json", "--no-threshold")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["method"] == "learned"


def test_colour_filter_refuses_a_grey_image(puzzles, learned, tmp_path):
    grey = tmp_path / "grey.png"
    Image.open(puzzles / "test" / "100" / "scene.png").convert("L").save(grey)
    assert_one_line_error(run("find", grey, learned), "colour", "grey")
    result = run("find", "-t", learned, grey, "--jsonl")
    assert result.exit_code == 2
    assert "colour" in json.loads(result.stdout)["error"]


# --- `waldo learn` on the command line ---------------------------------------


def test_learn_summary_names_what_it_learned(learning):
    result, out = learning
    assert result.stderr == ""
    text = result.stdout
    h, w, c = load_filter(out).shape
    assert f"{len(TRAIN)} examples ({len(TRAIN)} in scenes, 0 crops)" in text
    assert f"filter {w}×{h}×{c} (rgb) = {h * w * c + 1:,} parameters" in text
    assert f"held out (5-fold): found {len(TRAIN)} of {len(TRAIN)} at 0.5" in text
    assert f"wrote {out}" in text


def test_learn_options_reach_the_file(puzzles, tmp_path):
    out = tmp_path / "f.npz"
    examples = [puzzles / "train" / str(s) / "answer.json" for s in TRAIN[:3]]
    result = run(
        "learn", *examples, "-o", out, "--size", "15x36", "--no-augment",
        "--regularisation", "0.1", "--seed", "5", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    learned = load_filter(out)
    assert learned.shape == (36, 15, 3)
    assert learned.training == {k: v for k, v in doc.items() if k not in ("filter", "seconds")}
    assert (doc["size"], doc["augment"], doc["copies"]) == ([15, 36], False, 1)
    assert (doc["regularisation"], doc["seed"], doc["positives"]) == (0.1, 5, 3)


def test_answer_json_with_several_boxes(tmp_path):
    puzzle = render_puzzle(4, size=SIZE, crowd=CROWD)
    puzzle.scene.save(tmp_path / "beach.png")
    x, y, w, h = puzzle.box
    second = {"x": 3, "y": 4, "width": w, "height": h}
    doc = {"scene": "beach.png", "boxes": [{"x": x, "y": y, "width": w, "height": h}, second]}
    (tmp_path / "answer.json").write_text(json.dumps(doc))
    out = tmp_path / "f.npz"
    result = run("learn", tmp_path, "-o", out, "--json", "--no-augment", *SMALL)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["examples"] == 2


@pytest.mark.parametrize(
    ("setup", "args", "needles"),
    [
        (None, ["missing"], ("missing", "no such file")),
        ("folder", ["{d}/empty"], ("answer.json",)),
        ("badjson", ["{d}/bad/answer.json"], ("not JSON",)),
        ("outside", ["{d}/outside"], ("outside",)),
        ("crop", ["{d}/crop.png"], ("no negatives",)),
        ("crop", ["{d}/crop.png", "--negatives", "{d}/missing.png"], ("missing.png",)),
        (None, ["{d}/p", "--size", "0x3"], ("--size",)),
        (None, ["{d}/p", "--regularisation", "-1"], ("regularisation",)),
        (None, ["{d}/p", "--size", "900x900"], ("larger",)),
        # negatives no larger than the example: one window, no background to scale against
        ("tiny", ["{d}/crop.png", "--negatives", "{d}/noise.png", "--no-augment"], ("too small",)),
    ],
)
def test_learn_bad_input_is_one_line_and_exit_2(setup, args, needles, tmp_path):
    write_puzzle(tmp_path / "p", render_puzzle(1, size=(160, 120), crowd=3))
    if setup == "folder":
        (tmp_path / "empty").mkdir()
    elif setup == "badjson":
        (tmp_path / "bad").mkdir()
        (tmp_path / "bad" / "answer.json").write_text("{")
    elif setup == "outside":
        (tmp_path / "outside").mkdir()
        Image.new("RGB", (50, 40)).save(tmp_path / "outside" / "scene.png")
        (tmp_path / "outside" / "answer.json").write_text(
            '{"x": 40, "y": 5, "width": 20, "height": 9}'
        )
    elif setup == "crop":
        Image.new("RGB", (10, 20), (200, 0, 0)).save(tmp_path / "crop.png")
    elif setup == "tiny":
        rng = np.random.default_rng(14)
        crop, noise = rng.integers(0, 256, (2, 24, 28, 3), dtype=np.uint8)
        Image.fromarray(crop).save(tmp_path / "crop.png")
        Image.fromarray(noise).save(tmp_path / "noise.png")
    argv = [a.format(d=tmp_path) for a in args]
    out = tmp_path / "out.npz"
    assert_one_line_error(run("learn", *argv, "-o", out), *needles)
    assert not out.exists()


def test_learn_refuses_an_output_in_a_missing_folder(puzzles, tmp_path):
    result = run("learn", puzzles / "train" / "0", "-o", tmp_path / "no" / "f.npz")
    assert_one_line_error(result, "does not exist")


def test_learn_shows_progress_on_a_terminal(puzzles, tmp_path):
    out = tmp_path / "f.npz"
    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "100", "LINES": "24"}
    proc = subprocess.Popen(
        [WALDO, "learn", str(puzzles / "train" / "0"), str(puzzles / "train" / "1"), *SMALL,
         "-o", str(out)],
        stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    os.close(slave)
    screen = b""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            screen += chunk
        elif proc.poll() is not None:
            break
    stdout = proc.communicate(timeout=60)[0].decode()
    os.close(master)
    assert proc.returncode == 0
    assert b"learning" in screen
    assert "wrote" in stdout and "learning" not in stdout
    assert out.exists()


# --- `waldo find` with a filter ----------------------------------------------


@pytest.fixture(scope="session")
def scene(puzzles):
    folder = puzzles / "test" / "101"
    return folder / "scene.png", box_of(json.loads((folder / "answer.json").read_text()))


def test_find_with_a_filter_reports_json(scene, learned):
    image, answer = scene
    result = run("find", image, learned, "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    h, w, c = load_filter(learned).shape
    assert (doc["method"], doc["filter"], doc["template"]) == (
        "learned",
        str(learned),
        str(learned),
    )
    assert doc["threshold"] == 0.5 and doc["template_size"] == [w, h]
    assert iou(box_of(doc["matches"][0]), answer) >= 0.5
    assert doc["matches"][0]["score"] >= 0.5
    assert doc["variants"]["scales"][0] == 1.0  # searched at the scales it was learned for
    scores = (SIZE[1] - h + 1) * (SIZE[0] - w + 1)
    assert doc["parameters"] == {
        "conv": h * w * c + 1,
        "dense": (SIZE[0] * SIZE[1] * c + 1) * scores,
    }


def test_find_with_a_filter_counts_its_parameters(scene, learned):
    image, _ = scene
    result = run("find", image, learned, "--json", "--scales", "1")
    doc = json.loads(result.stdout)
    h, w, c = load_filter(learned).shape
    height, width = SIZE[1], SIZE[0]
    scores = (height - h + 1) * (width - w + 1)
    assert doc["parameters"] == {"conv": h * w * c + 1, "dense": (height * width * c + 1) * scores}
    assert "variants" not in doc  # --scales 1: the kernel as it is


def test_find_with_a_filter_through_every_format(scene, learned):
    image, answer = scene
    tsv = run("find", image, learned)
    assert tsv.exit_code == 0
    header, row = tsv.stdout.splitlines()
    assert header.split("\t") == ["rank", "x", "y", "width", "height", "score"]
    x, y = (int(v) for v in row.split("\t")[1:3])
    assert (
        iou(
            (
                x,
                y,
                *box_of(json.loads(run("find", image, learned, "--json").stdout)["matches"][0])[2:],
            ),
            answer,
        )
        >= 0.5
    )
    assert "with learned (threshold 0.5)" in tsv.stderr
    for flag in ("--jsonl", "--csv"):
        result = run("find", "-t", learned, image, flag)
        assert result.exit_code == 0, result.stderr
        if flag == "--jsonl":
            record = json.loads(result.stdout)
            assert record["method"] == "learned" and record["filter"] == str(learned)
        else:
            header, *rows = csv.reader(result.stdout.splitlines())
            assert header[:7] == ["image", "rank", "x", "y", "width", "height", "score"]
            assert len(rows) == 1 and rows[0][header.index("template")] == str(learned)
    batch = run("find", "-t", learned, image, image, "--json")
    assert [d["method"] for d in json.loads(batch.stdout)] == ["learned", "learned"]


def test_find_with_a_filter_on_a_terminal(scene, learned):
    image, _ = scene
    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
    proc = subprocess.run(
        [WALDO, "find", str(image), str(learned)],
        stdout=slave, stderr=slave, stdin=subprocess.DEVNULL, env=env, timeout=300,
    )  # fmt: skip
    os.close(slave)
    screen = b""
    while select.select([master], [], [], 0.5)[0]:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        screen += chunk
    os.close(master)
    text = re.sub(r"\x1b\[[0-9;]*m", "", screen.decode(errors="replace"))
    assert proc.returncode == 0
    assert "┃ rank ┃" in text and "with learned (threshold 0.5)" in text


def test_find_options_apply_to_a_filter(scene, learned, tmp_path):
    image, answer = scene
    result = run(
        "find", image, learned, "--json", "-k", "3", "--no-threshold", "--min-distance", "30",
        "--flip", "--rotations", "0,10", "--pad", "edge", "--subpixel",
        "--heatmap", tmp_path / "heat.png",
        "--overlay", tmp_path / "over.png",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    matches = doc["matches"]
    assert len(matches) == 3 and doc["threshold"] is None and doc["pad"] == "edge"
    assert doc["variants"]["flip"] is True and doc["variants"]["angles"] == [0.0, 10.0]
    assert all(isinstance(m["x"], float) for m in matches)
    for a in matches:
        for b in matches:
            if a is not b:
                assert max(abs(a["x"] - b["x"]), abs(a["y"] - b["y"])) >= 30
    assert Image.open(tmp_path / "heat.png").size == SIZE
    assert Image.open(tmp_path / "over.png").size == SIZE


def test_a_filter_among_several_templates(scene, learned, puzzles):
    """-t FILTER -t TEMPLATE: each searched as it would be alone, each record naming its own."""
    image, answer = scene
    template = puzzles / "train" / "0" / "waldo.png"
    both = run("find", image, "-t", learned, "-t", template, "--jsonl")
    assert both.exit_code in (0, 1), both.stderr
    records = [json.loads(line) for line in both.stdout.splitlines()]
    assert [r["method"] for r in records] == ["learned", "ccoeff_normed"]
    assert (records[0]["template"], records[0]["filter"]) == (str(learned), str(learned))
    assert records[1]["template"] == str(template) and "filter" not in records[1]
    alone = json.loads(run("find", image, learned, "--json").stdout)
    assert records[0]["matches"] == alone["matches"]
    assert records[0]["matches"][0]["template"] == str(learned)
    # a folder of templates takes the filter too
    folder = puzzles / "templates"
    folder.mkdir(exist_ok=True)
    (folder / "a.npz").write_bytes(learned.read_bytes())
    (folder / "b.png").write_bytes(template.read_bytes())
    result = run("find", image, "-t", folder, "--jsonl")
    assert [json.loads(r)["method"] for r in result.stdout.splitlines()] == [
        "learned",
        "ccoeff_normed",
    ]


def test_a_filter_in_a_region_with_every_peak(scene, learned):
    image, answer = scene
    x, y, w, h = answer
    region = (max(0, x - 40), max(0, y - 30), 100, 110)
    result = run(
        "find", image, learned, "--region", ",".join(map(str, region)), "-k", "all",
        "--no-threshold", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["region"] == list(region) and doc["method"] == "learned"
    matches = doc["matches"]
    assert len(matches) > 1 and iou(box_of(matches[0]), answer) >= 0.5
    rx, ry, rw, rh = region
    for m in matches:
        assert rx <= m["x"] and m["x"] + m["width"] <= rx + rw
        assert ry <= m["y"] and m["y"] + m["height"] <= ry + rh
    assert_one_line_error(run("find", image, learned, "--grey"), "colour")


def test_find_threshold_and_exit_codes_with_a_filter(scene, learned):
    image, _ = scene
    assert run("find", image, learned, "--threshold", "5").exit_code == 1
    assert run("find", image, learned, "-q").exit_code == 0
    assert run("find", image, learned, "--scales", "0.9:1.1:0.1", "--json").exit_code == 0


def test_find_refuses_a_method_or_a_mask_for_a_filter(scene, learned):
    image, _ = scene
    assert_one_line_error(run("find", learned, image), "learned filter goes where a template does")
    assert_one_line_error(run("find", image, learned, "-m", "ccorr"), "learned filter", "--method")
    assert_one_line_error(run("find", image, learned, "--mask", image), "learned filter", "--mask")


def test_installed_waldo_finds_with_a_filter(scene, learned):
    image, answer = scene
    proc = subprocess.run(
        [WALDO, "find", str(image), str(learned), "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert iou(box_of(json.loads(proc.stdout)["matches"][0]), answer) >= 0.5


# --- `waldo params --filter` --------------------------------------------------


def test_params_counts_the_learned_layer(learned):
    h, w, c = load_filter(learned).shape
    result = run("params", "--filter", learned, "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["kernel_shape"] == [h, w, c] and doc["image_size"] == list(SIZE)
    assert doc["learned"] == {"weights": h * w * c, "biases": 1, "parameters": h * w * c + 1}
    scores = (SIZE[1] - h + 1) * (SIZE[0] - w + 1)
    assert doc["dense"]["biases"] == scores
    assert doc["dense"]["weights"] == SIZE[0] * SIZE[1] * c * scores
    text = run("params", "--filter", learned, "--size", "100")
    assert text.exit_code == 0
    assert f"{h * w * c + 1:,}" in text.stdout and "100×100" in text.stdout


def test_params_filter_refuses_layer_options(learned):
    assert_one_line_error(run("params", "--filter", learned, "--delta", "2"), "--delta")


def test_params_filter_does_not_import_numpy(learned):
    argv = ["waldo", "params", "--filter", str(learned), "--json"]
    code = (
        f"import sys\nsys.argv = {argv!r}\n"
        "from waldo_cli.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "assert 'numpy' not in sys.modules and 'PIL' not in sys.modules, 'heavy'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# --- `waldo demo --difficulty` ---------------------------------------------------


def test_demo_normal_is_the_default_byte_for_byte(tmp_path):
    for name, extra in (("plain", []), ("normal", ["--difficulty", "normal"])):
        result = run("demo", tmp_path / name, "--seed", 11, "--size", "320x240", *extra)
        assert result.exit_code == 0
    for file in ("scene.png", "waldo.png", "answer.json"):
        assert (tmp_path / "plain" / file).read_bytes() == (tmp_path / "normal" / file).read_bytes()
    assert "difficulty" not in json.loads((tmp_path / "plain" / "answer.json").read_text())


HARD = range(8)


@pytest.fixture(scope="module")
def hard(tmp_path_factory) -> dict[int, tuple[object, Path]]:
    """`waldo demo --difficulty hard` at 480×360 for each seed of HARD: (its result, its folder)."""
    root = tmp_path_factory.mktemp("hard")
    made = {}
    for seed in HARD:
        folder = root / str(seed)
        made[seed] = (
            run("demo", folder, "--seed", seed, "--difficulty", "hard", "--size", "480x360"),
            folder,
        )
    return made


@pytest.mark.parametrize("seed", range(6))
def test_hard_puzzle_answer_records_what_was_done(seed, hard):
    result, folder = hard[seed]
    assert result.exit_code == 0, result.stderr
    assert "--difficulty hard" in result.stdout
    doc = json.loads((folder / "answer.json").read_text())
    assert doc["difficulty"] == "hard"
    assert 0.7 <= doc["scale"] <= 1.3 and 0 <= doc["hidden"] <= 1 / 3
    assert doc["degraded"] in ("blur", "jpeg")
    x, y, w, h = box_of(doc)
    template = Image.open(folder / "waldo.png")
    assert template.size == (w, h)
    scene = np.asarray(Image.open(folder / "scene.png"))
    assert np.array_equal(np.asarray(template), scene[y : y + h, x : x + w])
    # his size follows his depth: larger lower in the picture
    assert abs(h / 42.0 - doc["scale"]) < 0.2


def test_hard_puzzles_hide_him_sometimes_and_have_more_pair_decoys(hard):
    # the hidden share each puzzle records (the puzzles above, not drawn again)
    hidden = [json.loads((hard[s][1] / "answer.json").read_text())["hidden"] for s in HARD]
    assert any(v > 0 for v in hidden) and all(v <= 1 / 3 for v in hidden)
    normal = render_puzzle(2, size=(480, 360), difficulty="normal")
    hard_two = render_puzzle(2, size=(480, 360), difficulty="hard")

    def pairs(puzzle):
        return sum((p.striped_shirt + p.bobble_hat + p.round_glasses) == 2 for p in puzzle.people)

    assert pairs(hard_two) > pairs(normal)
    assert sum(p.is_waldo for p in hard_two.people) == 1


def test_easy_puzzles_have_no_decoy_with_two_traits():
    puzzle = render_puzzle(3, size=(480, 360), difficulty="easy")
    assert not any((p.striped_shirt + p.bobble_hat + p.round_glasses) == 2 for p in puzzle.people)
    assert json.loads(json.dumps(puzzle.answer()))["difficulty"] == "easy"


def test_unknown_difficulty_is_refused(tmp_path):
    with pytest.raises(WaldoError, match="difficulty"):
        render_puzzle(1, difficulty="brutal")
    result = run("demo", tmp_path / "x", "--difficulty", "brutal")
    assert result.exit_code == 2
