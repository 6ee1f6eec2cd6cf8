"""find_peaks: ranking, direction, threshold, suppression."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from waldo_cli import Match, find_peaks, match_template
from waldo_cli.errors import WaldoError


def _naive_peaks(scores, lower, k, threshold, distance):
    """Greedy non-maximum suppression over a full stable sort, written plainly."""
    rows, cols = scores.shape
    order = sorted(
        range(scores.size), key=lambda i: (scores.flat[i] if lower else -scores.flat[i], i)
    )
    chosen = []
    for i in order:
        y, x = divmod(i, cols)
        s = scores[y, x]
        if threshold is not None and (s > threshold if lower else s < threshold):
            continue
        if all(max(abs(y - cy), abs(x - cx)) >= distance for cy, cx in chosen):
            chosen.append((y, x))
            if len(chosen) == k:
                break
    return [(x, y) for y, x in chosen]


def test_best_first_and_largest_wins():
    scores = np.array([[0.1, 0.9, 0.2], [0.3, 0.4, 0.8]], np.float32)
    matches = find_peaks(scores, "ccoeff_normed", (1, 1), top_k=3, min_distance=1)
    assert [(m.x, m.y, m.score) for m in matches] == [
        (1, 0, pytest.approx(0.9)),
        (2, 1, pytest.approx(0.8)),
        (1, 1, pytest.approx(0.4)),
    ]


def test_sqdiff_best_is_minimum():
    scores = np.array([[5.0, 1.0], [3.0, 0.5]], np.float32)
    for method in ("sqdiff", "sqdiff_normed"):
        best = find_peaks(scores, method, (2, 2), top_k=1)[0]
        assert (best.x, best.y, best.score) == (1, 1, 0.5)


def test_match_carries_template_size():
    scores = np.zeros((4, 5), np.float32)
    m = find_peaks(scores, "ccorr", (7, 3))[0]
    assert m == Match(x=0, y=0, width=3, height=7, score=0.0)


def test_threshold_filters_both_directions():
    scores = np.array([[0.2, 0.6, 0.95]], np.float32)
    assert [
        m.x
        for m in find_peaks(scores, "ccoeff_normed", (1, 1), top_k=5, threshold=0.5, min_distance=1)
    ] == [2, 1]
    assert [
        m.x
        for m in find_peaks(scores, "sqdiff_normed", (1, 1), top_k=5, threshold=0.5, min_distance=1)
    ] == [0]
    assert find_peaks(scores, "ccoeff_normed", (1, 1), threshold=0.99) == []


def test_suppression_gives_distinct_places(photo):
    """-k 5 on one Waldo gives five different places, not five neighbours."""
    image = photo("astronaut")[:200, :200]
    template = image[50:80, 60:90]
    scores = match_template(image, template)
    matches = find_peaks(scores, "ccoeff_normed", template.shape[:2], top_k=5)
    assert (matches[0].x, matches[0].y) == (60, 50)
    assert len(matches) == 5
    for i, a in enumerate(matches):
        for b in matches[i + 1 :]:
            assert max(abs(a.x - b.x), abs(a.y - b.y)) >= 15  # half of 30


def test_ties_go_to_top_left():
    scores = np.ones((5, 5), np.float32)
    matches = find_peaks(scores, "ccoeff_normed", (2, 2), top_k=3, min_distance=2)
    assert [(m.x, m.y) for m in matches] == [(0, 0), (2, 0), (4, 0)]


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    k=st.integers(1, 12),
    distance=st.integers(0, 5),
    lower=st.booleans(),
    threshold=st.one_of(st.none(), st.floats(0.0, 1.0)),
    levels=st.integers(2, 50),
)
def test_same_as_plain_greedy_suppression(seed, k, distance, lower, threshold, levels):
    local = np.random.default_rng(seed)
    # few distinct levels, so ties are common
    scores = (local.integers(0, levels, (17, 23)) / levels).astype(np.float32)
    method = "sqdiff_normed" if lower else "ccoeff_normed"
    ours = find_peaks(scores, method, (4, 4), top_k=k, threshold=threshold, min_distance=distance)
    expected = _naive_peaks(scores, lower, k, threshold, max(1, distance))
    assert [(m.x, m.y) for m in ours] == expected


def test_large_k_on_large_map_is_complete(rng):
    scores = rng.random((300, 300)).astype(np.float32)
    matches = find_peaks(scores, "ccorr", (3, 3), top_k=2000, min_distance=3)
    assert len(matches) == 2000
    assert all(a.score >= b.score for a, b in zip(matches, matches[1:], strict=False))


@pytest.mark.parametrize("k", [0, -1, 1.5, True])
def test_bad_top_k(k):
    with pytest.raises(WaldoError, match="top_k"):
        find_peaks(np.zeros((3, 3)), "ccorr", (1, 1), top_k=k)


def test_bad_min_distance():
    with pytest.raises(WaldoError, match="min_distance"):
        find_peaks(np.zeros((3, 3)), "ccorr", (1, 1), min_distance=-2)


@pytest.mark.parametrize(("dy", "dx"), [(0.3, -0.4), (-0.25, 0.1), (0.45, 0.45), (0.0, 0.2)])
@pytest.mark.parametrize("method", ["ccoeff_normed", "sqdiff", "ccorr_normed"])
def test_subpixel_recovers_fractional_shifts(dy, dx, method, photo):
    """Shift a smooth image by a fraction of a pixel; the refined peak moves with it."""
    from scipy import ndimage

    smooth = ndimage.gaussian_filter(photo("camera").astype(np.float64)[100:260, 150:310], 2.0)
    y0, x0 = 60, 70
    template = smooth[y0 : y0 + 31, x0 : x0 + 31]
    shifted = ndimage.shift(smooth, (dy, dx), order=3, mode="nearest")
    scores = match_template(shifted, template, method)
    [best] = find_peaks(scores, method, template.shape, subpixel=True)
    assert isinstance(best.x, float) and isinstance(best.y, float)
    assert abs(best.x - (x0 + dx)) < 0.1 and abs(best.y - (y0 + dy)) < 0.1
    [plain] = find_peaks(scores, method, template.shape)
    assert (plain.x, plain.y) == (round(best.x), round(best.y))


def test_subpixel_on_the_edge_and_on_plateaus():
    scores = np.zeros((5, 5), np.float32)
    scores[0, 2] = 1.0
    scores[0, 3] = 0.5
    [m] = find_peaks(scores, "ccorr", (1, 1), subpixel=True)
    assert m.y == 0.0 and 2.0 < m.x < 2.5
    flat = np.ones((5, 5), np.float32)
    [m] = find_peaks(flat, "ccorr", (1, 1), subpixel=True)
    assert (m.x, m.y) == (0.0, 0.0)
