"""Batch mode of ``waldo find``: many images, streaming records, grep's exit codes."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from waldo_cli.cli import cli

TEMPLATE_SHAPE = (12, 10)  # h, w


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """50 images with known answers: most with the template pasted, 10 without, 6 bad."""
    root = tmp_path_factory.mktemp("batch")
    rng = np.random.default_rng(7)
    template = rng.integers(0, 256, (*TEMPLATE_SHAPE, 3)).astype(np.uint8)
    Image.fromarray(template).save(root / "waldo.png")
    expected = []  # (path, kind, (x, y) or None)
    for i in range(50):
        path = root / f"scan{i:02d}.png"
        if i % 10 == 3:
            if i < 25:
                path.write_bytes(b"not a png at all")
                expected.append((str(path), "error", None))
            else:
                expected.append((str(path), "error", None))  # missing: never written
            continue
        if i in (47,):
            path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
            expected.append((str(path), "error", None))
            continue
        height, width = 40 + (i % 4) * 8, 56 + (i % 5) * 8
        image = rng.integers(0, 256, (height, width, 3)).astype(np.uint8)
        if i % 5 == 4:
            Image.fromarray(image).save(path)
            expected.append((str(path), "none", None))
            continue
        y = int(rng.integers(0, height - TEMPLATE_SHAPE[0]))
        x = int(rng.integers(0, width - TEMPLATE_SHAPE[1]))
        image[y : y + TEMPLATE_SHAPE[0], x : x + TEMPLATE_SHAPE[1]] = template
        Image.fromarray(image).save(path)
        expected.append((str(path), "match", (x, y)))
    kinds = [kind for _, kind, _ in expected]
    assert kinds.count("error") == 6 and kinds.count("none") >= 8 and kinds.count("match") >= 30
    return root, expected


def run(*args, input=None, env=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input, env=env)


def _check_records(records, expected):
    assert [r["image"] for r in records] == [path for path, _, _ in expected]
    for record, (_path, kind, where) in zip(records, expected, strict=True):
        if kind == "error":
            assert set(record) == {"image", "error"}
            assert record["error"].startswith(record["image"])
        elif kind == "none":
            assert record["matches"] == [], record
        else:
            [match] = record["matches"]
            assert (match["x"], match["y"]) == where
            assert match["score"] == pytest.approx(1.0, abs=1e-5)
            assert (match["width"], match["height"]) == (10, 12)
            assert record["template"].endswith("waldo.png")


def test_jsonl_records_every_image_in_order(batch):
    root, expected = batch
    result = run("find", "-t", root / "waldo.png", *[p for p, _, _ in expected], "--jsonl")
    assert result.exit_code == 2  # some images failed: errors win
    lines = result.stdout.splitlines()
    records = [json.loads(line) for line in lines]
    _check_records(records, expected)
    assert "waldo: error" not in result.stderr  # in JSON Lines, errors are records
    assert "50 images: " in result.stderr


def test_jsonl_record_has_the_json_shape(batch):
    root, expected = batch
    good = [p for p, kind, _ in expected if kind == "match"][:1]
    single = json.loads(run("find", good[0], root / "waldo.png", "--json").stdout)
    record = json.loads(run("find", "-t", root / "waldo.png", good[0], "--jsonl").stdout)
    assert set(record) == set(single)
    assert record["matches"] == single["matches"]


def test_csv_one_row_per_match(batch):
    root, expected = batch
    result = run("find", "-t", root / "waldo.png", *[p for p, _, _ in expected], "--csv", "-k", "1")
    assert result.exit_code == 2
    rows = list(csv.reader(io.StringIO(result.stdout)))
    # today's columns in today's order, then #16's appended
    assert rows[0] == ["image", "rank", "x", "y", "width", "height", "score"] + [
        "cx",
        "cy",
        "template",
        "corners",
    ]
    found = {row[0]: (int(row[2]), int(row[3])) for row in rows[1:]}
    assert found == {p: where for p, kind, where in expected if kind == "match"}
    assert [row[0] for row in rows[1:]] == [p for p, kind, _ in expected if kind == "match"]
    errors = [line for line in result.stderr.splitlines() if line.startswith("waldo: error:")]
    assert len(errors) == 6
    assert all(any(p in line for p, kind, _ in expected if kind == "error") for line in errors)


def test_files_from_stdin(batch):
    root, expected = batch
    listing = "\n".join(p for p, _, _ in expected) + "\n"
    result = run("find", "-t", root / "waldo.png", "--files-from", "-", "--jsonl", input=listing)
    _check_records([json.loads(line) for line in result.stdout.splitlines()], expected)
    assert result.exit_code == 2


def test_files_from_a_file_plus_arguments(batch, tmp_path):
    root, expected = batch
    good = [p for p, kind, _ in expected if kind != "error"]
    (tmp_path / "list.txt").write_text("\n".join(good[1:]) + "\n\n")
    result = run(
        "find", "-t", root / "waldo.png", good[0], "--files-from", tmp_path / "list.txt", "--jsonl"
    )
    assert result.exit_code == 0  # no errors, some matches
    assert [json.loads(line)["image"] for line in result.stdout.splitlines()] == good


def test_exit_status_precedence(batch):
    root, expected = batch
    template = root / "waldo.png"
    match = [p for p, kind, _ in expected if kind == "match"][0]
    none = [p for p, kind, _ in expected if kind == "none"][0]
    bad = [p for p, kind, _ in expected if kind == "error"][0]
    assert run("find", "-t", template, match, none).exit_code == 0
    assert run("find", "-t", template, none, none).exit_code == 1
    assert run("find", "-t", template, none, bad).exit_code == 2
    assert run("find", "-t", template, match, bad).exit_code == 2
    quiet = run("find", "-t", template, bad, match, "-q")
    assert quiet.exit_code == 0  # -q: a match wins over an error
    assert quiet.stdout == "" and quiet.stderr == ""
    assert run("find", "-t", template, bad, none, "-q").exit_code == 2
    assert run("find", "-t", template, none, "-q").exit_code == 1


def test_quiet_single_image_prints_nothing(batch):
    root, expected = batch
    match = [p for p, kind, _ in expected if kind == "match"][0]
    none = [p for p, kind, _ in expected if kind == "none"][0]
    for image, status in ((match, 0), (none, 1), (root / "gone.png", 2)):
        result = run("find", image, root / "waldo.png", "-q")
        assert result.exit_code == status
        assert result.stdout == "" and result.stderr == ""


def test_fail_fast_stops_at_first_error(batch):
    root, expected = batch
    paths = [p for p, _, _ in expected]
    first_bad = next(i for i, (_, kind, _) in enumerate(expected) if kind == "error")
    result = run("find", "-t", root / "waldo.png", *paths, "--jsonl", "--fail-fast")
    assert result.exit_code == 2
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == first_bad + 1
    assert "error" in records[-1]


def test_json_in_batch_mode_is_one_list(batch):
    root, expected = batch
    paths = [p for p, _, _ in expected][:8]
    result = run("find", "-t", root / "waldo.png", *paths, "--json")
    doc = json.loads(result.stdout)
    assert isinstance(doc, list) and [r["image"] for r in doc] == paths


def test_order_is_input_order_with_two_jobs(tmp_path, rng):
    """Big images first, small last: they finish out of order, but come out in order."""
    template = rng.integers(0, 256, (9, 9, 3)).astype(np.uint8)
    Image.fromarray(template).save(tmp_path / "t.png")
    paths = []
    for i, side in enumerate([600, 30, 500, 20, 400, 25, 300, 40, 200, 50, 35, 45]):
        image = rng.integers(0, 256, (side, side, 3)).astype(np.uint8)
        image[3:12, 5:14] = template
        Image.fromarray(image).save(tmp_path / f"{i}.png")
        paths.append(str(tmp_path / f"{i}.png"))
    result = run("find", "-t", tmp_path / "t.png", *paths, "--jsonl", "--jobs", "2")
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["image"] for r in records] == paths
    assert all((r["matches"][0]["x"], r["matches"][0]["y"]) == (5, 3) for r in records)


def test_template_is_loaded_and_prepared_once(batch, monkeypatch):
    import waldo_cli.batch
    import waldo_cli.io
    import waldo_cli.search

    root, expected = batch
    reads, prepares = [], []
    real_read, real_prepare = waldo_cli.io.read_image, waldo_cli.search.prepare_template

    def counting_read(source, name=None):
        reads.append(name)
        return real_read(source, name=name)

    def counting_prepare(template):
        prepares.append(template.shape)
        return real_prepare(template)

    monkeypatch.setattr(waldo_cli.io, "read_image", counting_read)
    monkeypatch.setattr(waldo_cli.batch, "read_image", counting_read)
    monkeypatch.setattr(waldo_cli.search, "prepare_template", counting_prepare)
    good = [p for p, kind, _ in expected if kind != "error"][:10]
    result = run("find", "-t", root / "waldo.png", *good, "--jsonl")
    assert result.exit_code == 0
    assert reads.count(str(root / "waldo.png")) == 1
    assert len(prepares) == 1


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_image_bytes_on_stdin(fmt, photo, tmp_path):
    image = photo("astronaut")[:200, :240]
    data = io.BytesIO()
    Image.fromarray(image).save(data, fmt, quality=95)
    Image.fromarray(image[60:100, 80:130]).save(tmp_path / "t.png")
    result = run("find", "-", tmp_path / "t.png", "--json", input=data.getvalue())
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["image"] == "-"
    assert (doc["matches"][0]["x"], doc["matches"][0]["y"]) == (80, 60)
    assert doc["matches"][0]["score"] > (0.999 if fmt == "PNG" else 0.9)


def test_empty_stdin_is_an_error():
    result = run("find", "-", "t.png", input=b"")
    assert result.exit_code == 2


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["-t", "T.png"], "no images"),
        (["a.png", "--files-from", "-"], "-t/--template"),
        (["a.png"], "IMAGE and TEMPLATE"),
        (["a.png", "b.png", "c.png"], "IMAGE and TEMPLATE"),
        (["-t", "T.png", "-", "-"], "only once"),
        (["-t", "-", "-"], "only once"),
        (["a.png", "b.png", "--json", "--jsonl"], "one output format"),
        (["-t", "T.png", "a.png", "b.png", "--overlay", "o.png"], "exactly one image"),
        (["-t", "T.png", "a.png", "--jobs", "0"], "--jobs"),
        (["-t", "T.png", "--files-from", "no-such-list.txt"], "no-such-list.txt"),
    ],
)
def test_batch_usage_errors(args, needle):
    result = run("find", *args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], result.stderr
    assert result.stdout == ""


def test_progress_bar_only_on_a_terminal(batch):
    root, expected = batch
    paths = [p for p, kind, _ in expected if kind != "error"][:6]
    tty = run(
        "find",
        "-t",
        root / "waldo.png",
        *paths,
        "--jsonl",
        env={"FORCE_COLOR": "1", "COLUMNS": "100"},
    )
    assert "searching" in tty.stderr and "6/6" in tty.stderr
    piped = run("find", "-t", root / "waldo.png", *paths, "--jsonl")
    assert "searching" not in piped.stderr
    quiet = run(
        "find", "-t", root / "waldo.png", *paths, "-q", env={"FORCE_COLOR": "1", "COLUMNS": "100"}
    )
    assert quiet.stderr == "" and quiet.stdout == ""


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_shell_completion_scripts(shell):
    exe = Path(sys.executable).with_name("waldo")
    proc = subprocess.run(
        [str(exe)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "_WALDO_COMPLETE": f"{shell}_source"},
    )
    assert proc.returncode == 0
    assert "_WALDO_COMPLETE" in proc.stdout and "waldo" in proc.stdout


def test_completion_offers_subcommands_and_options():
    exe = Path(sys.executable).with_name("waldo")
    env = {
        **os.environ,
        "_WALDO_COMPLETE": "bash_complete",
        "COMP_WORDS": "waldo fi",
        "COMP_CWORD": "1",
    }
    proc = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60, env=env)
    assert "find" in proc.stdout
    env.update(COMP_WORDS="waldo find --json", COMP_CWORD="2")
    proc = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60, env=env)
    assert "--jsonl" in proc.stdout


def test_sigint_keeps_complete_lines(tmp_path, rng):
    """Ctrl-C half-way: stdout holds only whole, valid records, and the status is 130."""
    template = rng.integers(0, 256, (16, 16, 3)).astype(np.uint8)
    Image.fromarray(template).save(tmp_path / "t.png")
    image = rng.integers(0, 256, (400, 400, 3)).astype(np.uint8)
    image[50:66, 70:86] = template
    Image.fromarray(image).save(tmp_path / "scan.png")
    (tmp_path / "list.txt").write_text(f"{tmp_path / 'scan.png'}\n" * 5000)
    exe = Path(sys.executable).with_name("waldo")
    proc = subprocess.Popen(
        [
            str(exe),
            "find",
            "-t",
            str(tmp_path / "t.png"),
            "--files-from",
            str(tmp_path / "list.txt"),
            "--jsonl",
            "-k",
            "40",
            "--no-threshold",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    # read the raw pipe (not through a buffered reader whose read-ahead
    # communicate() would skip): wait for the first record, then interrupt
    fd = proc.stdout.fileno()
    data = b""
    while b"\n" not in data:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        data += chunk
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    while chunk := os.read(fd, 1 << 16):
        data += chunk
    proc.wait(timeout=120)
    err = proc.stderr.read()
    assert proc.returncode == 130, err
    text = data.decode()
    assert text.endswith("\n")
    lines = text.splitlines()
    assert 1 <= len(lines) < 5000
    for line in lines:
        record = json.loads(line)
        assert len(record["matches"]) == 40
    assert b"Traceback" not in err
    assert err.decode().strip().splitlines()[-1] == "waldo: interrupted"
