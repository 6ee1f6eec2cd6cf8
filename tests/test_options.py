"""Issue #16: regions, many templates, every match, grey, a word when nothing matches, and the
rest of what people who match templates ask for."""

from __future__ import annotations

import numpy as np
import pytest

from waldo_cli.errors import ImageReadError, OutputError, ShapeError, WaldoError

# ---------------------------------------------------------------------------
# errors: ValueError and OSError, as scientific Python expects


def test_every_waldo_error_is_a_value_error():
    for error in (WaldoError("x"), ShapeError("x"), ImageReadError("a.png", "gone")):
        assert isinstance(error, ValueError)


def test_file_errors_are_os_errors():
    assert isinstance(ImageReadError("a.png", "no such file"), OSError)
    assert isinstance(OutputError("out.png: the folder x does not exist"), OSError)
    assert not isinstance(ShapeError("x"), OSError)


def test_api_raises_value_error_for_a_bad_argument():
    from waldo_cli import find_peaks, match_template

    with pytest.raises(ValueError, match="unknown method"):
        match_template(np.zeros((5, 5)), np.ones((2, 2)), "nope")
    with pytest.raises(ValueError, match="larger than image"):
        match_template(np.zeros((5, 5)), np.ones((6, 2)))
    with pytest.raises(ValueError, match="top_k"):
        find_peaks(np.zeros((3, 3)), "ccorr", (1, 1), top_k=0)


def test_api_raises_os_error_for_a_file_it_cannot_read(tmp_path):
    from waldo_cli import load_image

    with pytest.raises(OSError, match="no such file"):
        load_image(tmp_path / "gone.png")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(OSError, match="not an image"):
        load_image(tmp_path / "text.png")


@pytest.mark.parametrize(
    ("text", "needle"),
    [("1:2:0", "the step must be positive"), ("2:1:1", "the range is empty")],
)
def test_range_rules_keep_their_messages(text, needle):
    """parse_range's own WaldoErrors are ValueErrors now: its except must not rewrite them."""
    from waldo_cli.variants import parse_range

    with pytest.raises(WaldoError, match=needle):
        parse_range(text, "--scales")


@pytest.mark.parametrize(
    ("head", "needle"), [(b"PK\x03\x04", "an .npz archive"), (b"hello!", "no .npy header")]
)
def test_kernel_file_rules_keep_their_messages(tmp_path, head, needle):
    from waldo_cli.conv import _load_npy

    (tmp_path / "k.npy").write_bytes(head + b"rest of the file")
    with pytest.raises(WaldoError) as caught:
        _load_npy(str(tmp_path / "k.npy"), 1)
    assert needle in str(caught.value) and "damaged" not in str(caught.value)


def test_an_output_error_from_the_writer_keeps_its_message(tmp_path):
    from waldo_cli.io import write_atomically

    def fail(fh):
        raise OutputError("special: already explained")

    with pytest.raises(OutputError) as caught:
        write_atomically(tmp_path / "x.bin", fail)
    assert str(caught.value) == "special: already explained"
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------
# every match: -k all, against a full sort with suppression


def _peaks_as_tuples(matches):
    return [(m.x, m.y, m.score, m.margin) for m in matches]


def _assert_same_peaks(got, expected):
    assert [(x, y) for x, y, _, _ in got] == [(x, y) for x, y, _, _ in expected]
    for (_, _, score, margin), (_, _, ref_score, ref_margin) in zip(got, expected, strict=True):
        assert score == pytest.approx(ref_score)
        if ref_margin is None:
            assert margin is None
        else:
            assert margin == pytest.approx(ref_margin, abs=1e-6)


@pytest.mark.parametrize("method", ["ccoeff_normed", "sqdiff_normed"])
@pytest.mark.parametrize("threshold", [None, 0.5])
def test_every_peak_equals_a_full_sort_with_suppression(method, threshold, rng):
    from naive import find_peaks_ref

    from waldo_cli import find_peaks

    # few distinct values: many ties, decided by position
    scores = rng.integers(0, 20, (23, 31)).astype(np.float32) / 19
    lower = method.startswith("sqdiff")
    got = find_peaks(scores, method, (5, 7), top_k=None, threshold=threshold)
    _assert_same_peaks(_peaks_as_tuples(got), find_peaks_ref(scores, lower, threshold, 2))


def test_every_peak_on_a_map_with_thousands_of_peaks(rng):
    from naive import find_peaks_ref

    from waldo_cli import find_peaks

    scores = rng.random((150, 160)).astype(np.float32)
    got = find_peaks(scores, "ccorr_normed", (4, 4), top_k=None, threshold=0.25)
    assert len(got) > 3000
    _assert_same_peaks(_peaks_as_tuples(got), find_peaks_ref(scores, False, 0.25, 2))
    # and -k N is the first N of them
    first = find_peaks(scores, "ccorr_normed", (4, 4), top_k=40, threshold=0.25)
    assert _peaks_as_tuples(first) == _peaks_as_tuples(got)[:40]


def test_nan_is_no_window(rng):
    from naive import find_peaks_ref

    from waldo_cli import find_peaks

    scores = rng.random((20, 20)).astype(np.float32)
    scores[:, :8] = np.nan
    got = find_peaks(scores, "ccoeff_normed", (3, 3), top_k=None)
    assert all(m.x >= 8 for m in got)
    _assert_same_peaks(_peaks_as_tuples(got), find_peaks_ref(scores, False, None, 1))
    lone = np.full((5, 5), np.nan, np.float32)
    lone[2, 2] = 0.3
    [match] = find_peaks(lone, "ccoeff_normed", (3, 3), top_k=None)
    assert (match.x, match.y, match.margin) == (2, 2, None)


def test_margin_tells_a_clear_match_from_a_coin_toss():
    from waldo_cli import find_peaks

    clear = np.zeros((20, 20), np.float32)
    clear[5, 5], clear[15, 15] = 0.9, 0.4
    [best] = find_peaks(clear, "ccoeff_normed", (4, 4))
    assert best.margin == pytest.approx(0.5)
    toss = clear.copy()
    toss[15, 15] = 0.9
    assert find_peaks(toss, "ccoeff_normed", (4, 4))[0].margin == pytest.approx(0.0)
    # sqdiff: lower is better, and a positive margin still means clear
    [best] = find_peaks(1 - clear, "sqdiff_normed", (4, 4))
    assert best.margin == pytest.approx(0.5)
