"""``waldo demo``: the puzzle generator, through Click's runner and its Python API."""

from __future__ import annotations

import functools
import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from waldo_cli.cli import cli
from waldo_cli.demo import DEFAULT_CROWD, DEFAULT_SIZE, FILES, render_puzzle, write_puzzle

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_images" / "puzzle"
SEEDS = range(20)


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _files(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in FILES.values()}


def _iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0, min(ay + ah, by + bh) - max(ay, by))
    return w * h / (aw * ah + bw * bh - w * h)


def _box(doc) -> tuple[int, int, int, int]:
    return (doc["x"], doc["y"], doc["width"], doc["height"])


@functools.cache
def default_puzzle(seed: int):
    """``render_puzzle(seed)`` at the default size and crowd, drawn once (about a second each).

    The tests only read a puzzle; the ones below that draw a default puzzle
    share these with the files of ``puzzles``.
    """
    return render_puzzle(seed)


@pytest.fixture(scope="module")
def puzzles(tmp_path_factory) -> dict[int, Path]:
    """Twenty puzzles at the default size and crowd, as ``waldo demo`` writes them.

    Written by the API the command calls (``write_puzzle(render_puzzle(seed))``):
    test_same_seed_gives_the_same_bytes runs ``waldo demo --seed 3`` itself and
    compares its files with these, byte for byte.
    """
    root = tmp_path_factory.mktemp("demo")
    made = {}
    for seed in SEEDS:
        write_puzzle(root / str(seed), default_puzzle(seed))
        made[seed] = root / str(seed)
    return made


def test_same_seed_gives_the_same_bytes(tmp_path, puzzles):
    result = run("demo", tmp_path / "again", "--seed", 3)
    assert result.exit_code == 0, result.stderr
    assert _files(tmp_path / "again") == _files(puzzles[3])
    assert (puzzles[3] / "scene.png").read_bytes() != (puzzles[4] / "scene.png").read_bytes()


def test_random_seed_is_printed_and_reproduces_the_puzzle(tmp_path):
    first = run("demo", tmp_path / "a", "--size", "320x240", "--crowd", "20")
    assert first.exit_code == 0, first.stderr
    seed = json.loads((tmp_path / "a" / "answer.json").read_text())["seed"]
    assert f"--seed {seed} " in first.stdout
    again = run("demo", tmp_path / "b", "--size", "320x240", "--crowd", "20", "--seed", seed)
    assert again.exit_code == 0
    assert _files(tmp_path / "a") == _files(tmp_path / "b")


def test_output_names_the_files_and_the_next_command(tmp_path):
    out = tmp_path / "out"
    result = run("demo", out, "--seed", 5, "--size", "200x150", "--crowd", "10")
    assert result.exit_code == 0
    assert result.stderr == ""
    assert "\x1b[" not in result.stdout
    for name in FILES.values():
        assert str(out / name) in result.stdout
    assert f"waldo find {out / 'scene.png'} {out / 'waldo.png'}" in result.stdout
    assert "seed 5" in result.stdout
    # the suggested command works as printed
    [line] = [line for line in result.stdout.splitlines() if "waldo find" in line]
    command = shlex.split(line[line.index("waldo find") :])
    found = run(*command[1:])
    assert found.exit_code == 0, found.stderr
    answer = json.loads((out / "answer.json").read_text())
    assert f"{answer['x']}\t{answer['y']}\t" in found.stdout


def test_answer_json_keys(puzzles):
    doc = json.loads((puzzles[0] / "answer.json").read_text())
    assert list(doc) == ["x", "y", "width", "height", "seed", "size", "crowd"]
    assert doc["seed"] == 0 and doc["size"] == list(DEFAULT_SIZE) and doc["crowd"] == DEFAULT_CROWD


@pytest.mark.parametrize("seed", SEEDS)
def test_template_is_the_scene_at_the_answer_box(seed, puzzles):
    scene = np.asarray(Image.open(puzzles[seed] / "scene.png"))
    template = np.asarray(Image.open(puzzles[seed] / "waldo.png"))
    x, y, w, h = _box(json.loads((puzzles[seed] / "answer.json").read_text()))
    assert scene.shape == (DEFAULT_SIZE[1], DEFAULT_SIZE[0], 3)
    assert template.shape == (h, w, 3)
    assert np.array_equal(template, scene[y : y + h, x : x + w])
    # Waldo is drawn at the scale of everybody else
    assert 16 <= w <= 24 and 36 <= h <= 48


@pytest.mark.parametrize("seed", SEEDS)
def test_find_locates_waldo(seed, puzzles):
    folder = puzzles[seed]
    result = run("find", folder / "scene.png", folder / "waldo.png", "--json")
    assert result.exit_code == 0, result.stderr
    [match] = json.loads(result.stdout)["matches"]
    answer = json.loads((folder / "answer.json").read_text())
    assert _iou(_box(match), _box(answer)) >= 0.9


@pytest.mark.parametrize("seed", SEEDS)
def test_runner_up_is_clearly_worse(seed, puzzles):
    folder = puzzles[seed]
    result = run(
        "find", folder / "scene.png", folder / "waldo.png", "--json", "--no-threshold", "-k", "2"
    )
    best, second = json.loads(result.stdout)["matches"]
    assert best["score"] >= 0.99
    assert second["score"] <= 0.9


def test_scene_is_busy(puzzles):
    scene = np.asarray(Image.open(puzzles[1] / "scene.png")).reshape(-1, 3)
    assert scene.std(axis=0).min() > 35
    assert len(np.unique(scene, axis=0)) > 10_000


def test_decoys_share_some_of_waldos_traits():
    puzzle = default_puzzle(2)
    people = puzzle.people
    assert len(people) == DEFAULT_CROWD + 1
    [waldo] = [p for p in people if p.is_waldo]
    assert waldo is puzzle.waldo and waldo.box == puzzle.box
    others = [p for p in people if p is not waldo]
    assert any(p.striped_shirt and p.hat != "bobble" for p in others)
    assert any(p.bobble_hat for p in others)
    assert any(p.round_glasses and not p.striped_shirt for p in others)
    assert any(t.red_white and t.kind in ("towel", "umbrella", "windbreak") for t in puzzle.things)


@pytest.mark.parametrize(("size", "crowd"), [(DEFAULT_SIZE, DEFAULT_CROWD), ((160, 120), 150)])
def test_nobody_is_drawn_over_waldo(size, crowd):
    for seed in range(3):
        if (size, crowd) == (DEFAULT_SIZE, DEFAULT_CROWD):
            puzzle = default_puzzle(seed)
        else:
            puzzle = render_puzzle(seed, size=size, crowd=crowd)
        waldo = puzzle.waldo
        x, y, w, h = waldo.box
        for item in (*puzzle.people, *puzzle.things):
            if item.order > waldo.order:
                ix, iy, iw, ih = item.box
                assert ix >= x + w or x >= ix + iw or iy >= y + h or y >= iy + ih, item


def test_an_empty_crowd_is_just_waldo(tmp_path):
    puzzle = render_puzzle(9, size=(160, 120), crowd=0)
    assert [p.is_waldo for p in puzzle.people] == [True]
    assert puzzle.answer()["crowd"] == 0


def test_existing_puzzle_files_are_overwritten(tmp_path):
    out = tmp_path / "out"
    assert run("demo", out, "--seed", 1, "--size", "160x120").exit_code == 0
    first = _files(out)
    assert run("demo", out, "--seed", 2, "--size", "160x120").exit_code == 0
    assert _files(out) != first
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES.values())  # no temporary files


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--size", "10x10"], "10x10"),
        (["--size", "abc"], "abc"),
        (["--crowd", "-1"], "--crowd"),
        (["--seed", "-5"], "--seed"),
    ],
)
def test_bad_options_are_one_line_usage_errors(args, needle, tmp_path):
    result = run("demo", tmp_path / "out", *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert ": error: " in line and needle in line
    assert list(tmp_path.iterdir()) == []


def test_outdir_whose_parent_is_missing(tmp_path):
    result = run("demo", tmp_path / "missing" / "out")
    assert result.exit_code == 2
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert "does not exist" in line
    assert list(tmp_path.iterdir()) == []


def test_outdir_that_is_a_file(tmp_path):
    (tmp_path / "taken").write_text("x")
    result = run("demo", tmp_path / "taken")
    assert result.exit_code == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_defaults_are_the_api_defaults():
    params = {p.name: p.default for p in cli.commands["demo"].params}
    assert params["size_text"] == "{}x{}".format(*DEFAULT_SIZE)
    assert params["crowd"] == DEFAULT_CROWD


def test_demo_help_does_not_import_numba():
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom waldo_cli.cli import cli\n"
        "r = CliRunner().invoke(cli, ['demo', '--help'])\n"
        "assert r.exit_code == 0 and 'OUTDIR' in r.output\n"
        "assert 'numba' not in sys.modules and 'PIL' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_committed_sample_is_seed_7():
    answer = json.loads((SAMPLE / "answer.json").read_text())
    assert (answer["seed"], answer["size"], answer["crowd"]) == (
        7,
        list(DEFAULT_SIZE),
        DEFAULT_CROWD,
    )
    puzzle = default_puzzle(7)
    assert puzzle.answer() == answer
    assert np.array_equal(np.asarray(Image.open(SAMPLE / "scene.png")), np.asarray(puzzle.scene))
    assert np.array_equal(np.asarray(Image.open(SAMPLE / "waldo.png")), np.asarray(puzzle.template))
