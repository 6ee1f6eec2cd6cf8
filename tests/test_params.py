"""`waldo params` and `waldo_cli.params`: the chapter's parameter story, counted exactly."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from waldo_cli.cli import cli
from waldo_cli.errors import TemplateTooLargeError, WaldoError
from waldo_cli.params import ROW_NAMES, param_counts, template_param_counts

ROW_KEYS = {
    "name",
    "label",
    "weights",
    "biases",
    "parameters",
    "bytes_float32",
    "multiply_adds",
    "reduction",
}
TOP_KEYS = {"height", "width", "delta", "channels_in", "channels_out", "hidden", "rows", "notes"}


# -- brute force: the layer written out as a dense tensor of parameter ids ------------------


def _layer_tensors(height, width, delta, channels_in, channels_out, kind):
    """Weight ids of shape (H, W, C_out, H, W, C_in) and bias ids of shape (H, W, C_out).

    Entry [i, j, d, k, l, c] holds the id of the free parameter that multiplies
    [X]_{k,l,c} on its way to [H]_{i,j,d}, or -1 where the layer has no weight
    (locality). Equal ids are one shared parameter (translation invariance).
    """
    shape = (height, width, channels_out, height, width, channels_in)
    i, j, d, k, l, c = np.indices(shape)  # noqa: E741 (the chapter's k, l)
    if kind == "fully_connected":
        weights = np.arange(np.prod(shape)).reshape(shape)
        biases = np.arange(height * width * channels_out).reshape(height, width, channels_out)
        return weights, biases
    a, b = k - i, l - j
    weights = np.ravel_multi_index(
        (a + height - 1, b + width - 1, c, d),
        (2 * height - 1, 2 * width - 1, channels_in, channels_out),
    )
    if kind == "conv":
        weights = np.where((np.abs(a) <= delta) & (np.abs(b) <= delta), weights, -1)
    biases = np.broadcast_to(np.arange(channels_out), (height, width, channels_out))
    return weights, biases


def _brute_force(height, width, delta, channels_in, channels_out, kind):
    """(distinct weights, distinct biases, multiply-adds) counted from the tensors."""
    weights, biases = _layer_tensors(height, width, delta, channels_in, channels_out, kind)
    used = weights >= 0
    return len(np.unique(weights[used])), len(np.unique(biases)), int(used.sum())


def _brute_force_dense(height, width, channels_in, hidden):
    weights = np.arange(hidden * height * width * channels_in).reshape(
        hidden, height, width, channels_in
    )
    return len(np.unique(weights)), hidden, weights.size


# -- the chapter's own numbers --------------------------------------------------------------


def test_chapter_megapixel_dense_layer_has_a_billion_weights():
    counts = param_counts(1000, 1000, delta=1, channels_in=1, hidden=1000)
    assert counts.dense.weights == 10**6 * 10**3 == 10**9
    assert counts.dense.biases == 1000


def test_chapter_1024_square_delta_3_is_49_weights_and_1_bias():
    counts = param_counts(1024, 1024, delta=3, channels_in=1, channels_out=1)
    assert (counts.conv.weights, counts.conv.biases) == (49, 1)
    assert counts.conv.parameters == 50


@pytest.mark.parametrize("delta", [0, 1, 2, 5])
@pytest.mark.parametrize(("channels_in", "channels_out"), [(1, 1), (3, 64), (64, 128)])
def test_conv_weights_are_window_times_channels(delta, channels_in, channels_out):
    counts = param_counts(32, 32, delta, channels_in, channels_out)
    assert counts.conv.weights == (2 * delta + 1) ** 2 * channels_in * channels_out
    assert counts.conv.biases == channels_out


# -- a small case by hand and by brute force ------------------------------------------------


def test_small_case_by_hand():
    # 4×5 image, Δ = 1, 2 channels in, 3 out, 7 hidden units
    counts = param_counts(4, 5, 1, channels_in=2, channels_out=3, hidden=7)
    got = {
        row.name: (row.weights, row.biases, row.parameters, row.multiply_adds)
        for row in counts.rows
    }
    assert got == {
        "dense": (4 * 5 * 2 * 7, 7, 287, 280),
        "fully_connected": (40 * 60, 60, 2460, 2400),
        "translation_invariant": (7 * 9 * 2 * 3, 3, 381, 20 * 20 * 6),
        # in-image taps per axis: rows 4·3 − 2 = 10, columns 5·3 − 2 = 13
        "conv": (9 * 2 * 3, 3, 57, 10 * 13 * 6),
    }
    assert [row.reduction for row in counts.rows] == [
        Fraction(2460, 287),
        1,
        Fraction(2460, 381),
        Fraction(2460, 57),
    ]
    assert all(row.bytes_float32 == 4 * row.parameters for row in counts.rows)


def test_small_case_by_brute_force():
    counts = param_counts(4, 5, 1, channels_in=2, channels_out=3, hidden=7)
    assert _brute_force_dense(4, 5, 2, 7) == (
        counts.dense.weights,
        counts.dense.biases,
        counts.dense.multiply_adds,
    )
    for kind in ("fully_connected", "translation_invariant", "conv"):
        row = counts.row(kind)
        assert _brute_force(4, 5, 1, 2, 3, kind) == (row.weights, row.biases, row.multiply_adds)


@settings(max_examples=60, deadline=None)
@given(
    height=st.integers(1, 5),
    width=st.integers(1, 5),
    delta=st.integers(0, 6),
    channels_in=st.integers(1, 3),
    channels_out=st.integers(1, 3),
)
def test_any_small_case_matches_brute_force(height, width, delta, channels_in, channels_out):
    counts = param_counts(height, width, delta, channels_in, channels_out)
    for kind in ("fully_connected", "translation_invariant"):
        row = counts.row(kind)
        assert _brute_force(height, width, delta, channels_in, channels_out, kind) == (
            row.weights,
            row.biases,
            row.multiply_adds,
        )
    # the brute force sees only weights that touch a pixel; the rest are the dead ones
    live, biases, multiply_adds = _brute_force(
        height, width, delta, channels_in, channels_out, "conv"
    )
    assert live == counts.conv.weights - counts.dead_weights
    assert (biases, multiply_adds) == (counts.conv.biases, counts.conv.multiply_adds)


def test_translation_invariance_saves_parameters_not_arithmetic():
    counts = param_counts(6, 7, 2, 3, 4)
    fc, ti = counts.fully_connected, counts.translation_invariant
    assert ti.parameters < fc.parameters
    assert ti.multiply_adds == fc.multiply_adds


def test_window_covering_the_image_makes_conv_do_the_invariant_layers_arithmetic():
    counts = param_counts(4, 6, 5, 2, 2)
    assert counts.conv.multiply_adds == counts.translation_invariant.multiply_adds
    live = counts.conv.weights - counts.dead_weights
    assert live == counts.translation_invariant.weights


# -- exact at any size ----------------------------------------------------------------------


def test_huge_case_is_exact_integers():
    counts = param_counts(100_000, 100_000, 1, channels_in=512, channels_out=512, hidden=1000)
    inputs = 100_000 * 100_000 * 512  # 5,120,000,000,000
    assert counts.fully_connected.weights == 26_214_400_000_000_000_000_000_000 == inputs**2
    assert counts.fully_connected.biases == 5_120_000_000_000
    assert counts.fully_connected.parameters == 26_214_400_000_005_120_000_000_000
    assert counts.fully_connected.bytes_float32 == 104_857_600_000_020_480_000_000_000
    assert counts.dense.weights == 5_120_000_000_000_000
    assert counts.translation_invariant.weights == 199_999 * 199_999 * 512 * 512
    assert counts.conv.weights == 9 * 512 * 512 == 2_359_296
    # in-image taps per axis: 100,000·3 − 2
    assert counts.conv.multiply_adds == 299_998 * 299_998 * 512 * 512
    for row in counts.rows:
        for value in (row.weights, row.biases, row.parameters, row.bytes_float32):
            assert type(value) is int
        assert type(row.multiply_adds) is int
    assert counts.conv.reduction == Fraction(26_214_400_000_005_120_000_000_000, 2_359_808)


def test_huge_case_survives_json_exactly():
    counts = param_counts(100_000, 100_000, 1, channels_in=512, channels_out=512)
    doc = json.loads(json.dumps(counts.to_dict()))
    fc = doc["rows"][1]
    assert fc["weights"] == 26_214_400_000_000_000_000_000_000
    assert type(fc["weights"]) is int
    assert doc["rows"][3]["reduction"] == pytest.approx(
        26_214_400_000_005_120_000_000_000 / 2_359_808
    )


# -- notes on the corner cases --------------------------------------------------------------


def test_delta_zero_is_a_per_pixel_layer_and_says_so():
    counts = param_counts(8, 9, 0, channels_in=3, channels_out=5)
    assert counts.conv.weights == 3 * 5
    assert counts.conv.multiply_adds == 8 * 9 * 3 * 5
    assert len(counts.notes) == 1
    assert "1×1" in counts.notes[0]
    assert "MLP" in counts.notes[0]
    assert counts.to_dict()["notes"] == list(counts.notes)


def test_ordinary_case_has_no_notes():
    assert param_counts(64, 64, 1).notes == ()


def test_window_larger_than_image_counts_dead_weights():
    # Δ = 4 on 4×5: offsets |a| ≥ 4 or |b| ≥ 5 never land on a pixel
    counts = param_counts(4, 5, 4, channels_in=2, channels_out=3)
    assert counts.conv.weights == 81 * 6
    assert counts.dead_weights == 81 * 6 - 7 * 9 * 6 == 108
    (note,) = counts.notes
    assert "larger than the 4×5 image" in note
    assert "108 of its 486 weights" in note
    assert "never touch a pixel" in note


def test_window_larger_than_image_without_dead_weights_says_so():
    # a 5×5 window on a 4×4 image: every offset |a| ≤ 2 still lands somewhere
    counts = param_counts(4, 4, 2, 1, 1)
    assert counts.dead_weights == 0
    (note,) = counts.notes
    assert "every weight still touches some pixel" in note


# -- bad arguments --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"height": 0},
        {"height": -1},
        {"width": 3.5},
        {"width": "abc"},
        {"height": True},
        {"height": None},
        {"delta": -1},
        {"delta": 1.0},
        {"channels_in": 0},
        {"channels_out": -2},
        {"hidden": 0},
        {"height": 2**63},
    ],
)
def test_bad_arguments_raise_waldo_error(kwargs):
    args = {"height": 4, "width": 4, "delta": 1} | kwargs
    with pytest.raises(WaldoError, match=next(iter(kwargs))):
        param_counts(**args)


def test_numpy_integers_are_integers():
    assert param_counts(np.int64(4), np.int32(5), np.uint8(1)).conv.weights == 27


# -- the template helper for `waldo find` ---------------------------------------------------


def test_template_param_counts():
    assert template_param_counts(480, 640, 32, 24, 3) == {
        "conv": 32 * 24 * 3,
        "dense": (480 * 640 * 3) * (480 - 32 + 1) * (640 - 24 + 1),
    }


def test_template_as_large_as_image_gives_one_score():
    assert template_param_counts(10, 20, 10, 20, 1) == {"conv": 200, "dense": 200}


def test_template_larger_than_image_is_refused():
    with pytest.raises(TemplateTooLargeError, match="larger than image"):
        template_param_counts(10, 10, 11, 3, 1)


# -- the command line -----------------------------------------------------------------------

PLAIN = {"FORCE_COLOR": None, "TTY_COMPATIBLE": None, "NO_COLOR": None}


def _run(args, env=None):
    runner = CliRunner()
    return runner.invoke(cli, args, env=PLAIN | (env or {}), prog_name="waldo")


def test_cli_plain_table_when_piped():
    result = _run(["params", "--size", "1024", "--delta", "3"])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert "\x1b[" not in result.stdout
    lines = result.stdout.splitlines()
    assert lines[0].startswith("image H×W×C_in = 1024×1024×3")
    assert lines[1].split() == [
        "layer",
        "weights",
        "biases",
        "parameters",
        "float32",
        "multiply-adds",
        "reduction",
    ]
    assert lines[3].split()[:2] == ["fully", "connected"]
    assert "3,298,534,883,328" in lines[3]
    assert "12.0 TiB" in lines[3]
    assert lines[5].startswith("convolution (Δ = 3, 7×7)")
    assert lines[5].split()[5:] == ["147", "1", "148", "592", "B", "153,625,008", "2.23e+10×"]
    assert len(lines) == 6


def test_cli_rich_table_on_a_terminal():
    result = _run(
        ["params", "--size", "1024", "--delta", "3"], {"FORCE_COLOR": "1", "COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert "\x1b[" in result.stdout
    assert "┃" in result.stdout
    header = next(line for line in result.stdout.splitlines() if "multiply-adds" in line)
    assert "weights" in header and "reduction" in header
    assert "3,298,534,883,328" in result.stdout


def test_cli_rich_table_on_a_narrow_terminal_keeps_numbers_whole():
    args = ["params", "--size", "100000", "--channels-in", "512", "--channels-out", "512"]
    result = _run(args, {"FORCE_COLOR": "1", "COLUMNS": "60"})
    assert result.exit_code == 0, result.output
    assert "26,214,400,000,000,000,000,000,000" in result.stdout
    text = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout)
    assert all(len(line) <= 60 for line in text.splitlines())


def test_cli_json():
    args = ["params", "--height", "1080", "--width", "1920", "--delta", "2"]
    args += ["--channels-in", "3", "--channels-out", "64", "--json", "--explain"]
    result = _run(args, {"FORCE_COLOR": "1"})
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    doc = json.loads(result.stdout)
    assert set(doc) == TOP_KEYS
    assert (doc["height"], doc["width"], doc["delta"]) == (1080, 1920, 2)
    assert (doc["channels_in"], doc["channels_out"], doc["hidden"]) == (3, 64, 1000)
    assert [row["name"] for row in doc["rows"]] == list(ROW_NAMES)
    for row in doc["rows"]:
        assert set(row) == ROW_KEYS
        for key in ROW_KEYS - {"name", "label", "reduction"}:
            assert type(row[key]) is int
        assert type(row["reduction"]) is float
    conv = doc["rows"][3]
    assert (conv["weights"], conv["biases"]) == (25 * 3 * 64, 64)
    assert doc["rows"][1]["reduction"] == 1.0
    assert doc["notes"] == []
    assert doc == param_counts(1080, 1920, 2, 3, 64).to_dict()


def test_cli_json_carries_notes():
    result = _run(["params", "--size", "3", "--delta", "0", "--json"])
    assert result.exit_code == 0
    assert "1×1" in json.loads(result.stdout)["notes"][0]


def test_cli_explain():
    result = _run(["params", "--size", "1000", "--hidden", "1000", "--explain"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "[H]_{i,j,d} = u_d + Σ_{a=-Δ..Δ} Σ_{b=-Δ..Δ} Σ_c [V]_{a,b,c,d} [X]_{i+a,j+b,c}" in out
    assert "[W]_{i,j,k,l,c,d}" in out
    assert "saves parameters, not arithmetic" in out
    assert "Multiply-adds:" in out
    assert "\x1b[" not in out


def test_cli_explain_on_a_terminal_keeps_brackets():
    # rich would read "[X]" as markup if it were printed as a markup string
    result = _run(["params", "--size", "8", "--explain"], {"FORCE_COLOR": "1", "COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "[V]_{a,b,c,d}" in result.stdout


def test_cli_notes_in_text():
    result = _run(["params", "--height", "4", "--width", "5", "--delta", "4"])
    assert result.exit_code == 0
    assert "note: the 9×9 window" in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["--size", "0"],
        ["--size", "-1"],
        ["--size", "3.5"],
        ["--size", "abc"],
        ["--height", "0", "--width", "3"],
        ["--height", "3", "--width", "abc"],
        ["--size", "3", "--delta", "-1"],
        ["--size", "3", "--delta", "1.5"],
        ["--size", "3", "--channels-in", "0"],
        ["--size", "3", "--channels-out", "x"],
        ["--size", "3", "--hidden", "-1"],
        ["--size", str(2**63)],
        ["--size", "3", "--height", "3"],
        ["--size", "3", "--width", "3"],
        ["--height", "3"],
        ["--width", "3"],
        [],
    ],
)
def test_cli_bad_values_are_one_line_usage_errors(args):
    result = _run(["params", *args])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("waldo: error: ")
    assert len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--size", "1024", "--explain"], {}),
        (["--size", "1024", "--explain"], {"FORCE_COLOR": "1"}),
        (["--size", "1024", "--json"], {}),
    ],
)
def test_params_does_not_import_numba(args, env):
    code = (
        "import sys\n"
        "from waldo_cli.cli import main\n"
        "try:\n"
        f"    main(['params', *{args!r}])\n"
        "except SystemExit as exc:\n"
        "    status = exc.code\n"
        "sys.exit(3 if 'numba' in sys.modules else status)\n"
    )
    environment = {k: v for k, v in os.environ.items() if k not in PLAIN} | env
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "1024" in done.stdout
