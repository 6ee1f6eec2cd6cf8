"""From a score map to a ranked list of matches; merging the maps of template variants."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from waldo_cli.errors import WaldoError
from waldo_cli.methods import lower_is_better
from waldo_cli.results import Match

__all__ = ["Match", "best_over_variants", "find_peaks", "refine_peak"]


def _ranked_candidates(
    scores: np.ndarray,
    lower: bool,
    threshold: float | None,
    count: int,
    scored: np.ndarray | None = None,
) -> np.ndarray:
    """Flat indices of (at least) the ``count`` best scores that pass, best first.

    Ties are ranked by position (row-major), so results never depend on the
    sort algorithm. ``scored``: where the map holds a score (a map with NaN
    where no window is); None when it does everywhere.
    """
    flat = scores.ravel()
    # the cut-off score of the count best, then the places that reach it: no
    # copy of the map beyond the one partition needs, and no index array as
    # long as the map (huge maps stay affordable)
    if threshold is not None or scored is not None:
        if threshold is not None:  # NaN passes no threshold
            passes = flat <= threshold if lower else flat >= threshold
        else:
            assert scored is not None
            passes = scored.ravel().copy()
        if np.count_nonzero(passes) > count:
            cutoff = _kth_best(flat[passes], count, lower)
            # every candidate tied with the worst one taken stays, so the
            # choice among equal scores is by position, not by the partition
            passes &= flat <= cutoff if lower else flat >= cutoff
        passing = np.flatnonzero(passes)
    elif flat.size > count:
        cutoff = _kth_best(flat, count, lower)
        passing = np.flatnonzero(flat <= cutoff if lower else flat >= cutoff)
    else:
        passing = np.arange(flat.size)
    key = flat[passing] if lower else -flat[passing]  # lower keys rank first
    order = np.lexsort((passing, key))
    return passing[order]


def _kth_best(values: np.ndarray, count: int, lower: bool) -> float:
    """The count-th best of values (1 ≤ count ≤ values.size): smallest or largest."""
    kth = count - 1 if lower else values.size - count
    return np.partition(values, kth)[kth]


def refine_peak(scores: np.ndarray, x: int, y: int, *, lower: bool = False) -> tuple[float, float]:
    """Sub-pixel position of a peak: the extremum of a quadratic fitted to its 3×3 neighbourhood.

    A least-squares fit of f = a + b·dx + c·dy + d·dx² + e·dx·dy + g·dy² to the
    nine scores around (x, y); its extremum is the refined peak. Where the
    fit has no extremum of the right kind (a ridge, or a saddle) each axis
    falls back to a parabola through three points. Offsets are kept within
    half a pixel; peaks on the map's edge are refined along the free axis
    only.

    Parameters
    ----------
    scores : (H', W') array_like
        A score map.
    x, y : int
        The peak: column and row in the map.
    lower : bool
        The best score is the smallest (the ``sqdiff`` methods).

    Returns
    -------
    (x, y) : float
        The refined column and row.

    Examples
    --------
    >>> yy, xx = np.mgrid[:7, :7]
    >>> bump = np.exp(-((xx - 3.3) ** 2 + (yy - 2.8) ** 2) / 4)
    >>> [round(v, 1) for v in refine_peak(bump, 3, 3)]
    [3.3, 2.8]
    """
    s = -np.asarray(scores, np.float64) if lower else np.asarray(scores, np.float64)
    rows, cols = s.shape
    inner_x = 0 < x < cols - 1
    inner_y = 0 < y < rows - 1

    def parabola(left: float, mid: float, right: float) -> float:
        curve = left - 2 * mid + right
        return 0.0 if curve >= 0 else float(np.clip(0.5 * (left - right) / curve, -0.5, 0.5))

    if inner_x and inner_y:
        patch = s[y - 1 : y + 2, x - 1 : x + 2]
        dy, dx = np.mgrid[-1:2, -1:2]
        design = np.stack(
            [
                np.ones(9),
                dx.ravel(),
                dy.ravel(),
                dx.ravel() ** 2,
                (dx * dy).ravel(),
                dy.ravel() ** 2,
            ],
            axis=1,
        )
        _, b, c, d, e, g = np.linalg.lstsq(design, patch.ravel(), rcond=None)[0]
        hessian = np.array([[2 * d, e], [e, 2 * g]])
        if np.linalg.det(hessian) > 0 and hessian[0, 0] < 0:  # a true maximum
            ox, oy = np.linalg.solve(hessian, [-b, -c])
            if abs(ox) <= 0.5 and abs(oy) <= 0.5:
                return float(x + ox), float(y + oy)
    ox = parabola(s[y, x - 1], s[y, x], s[y, x + 1]) if inner_x else 0.0
    oy = parabola(s[y - 1, x], s[y, x], s[y + 1, x]) if inner_y else 0.0
    return float(x + ox), float(y + oy)


def find_peaks(
    scores: np.ndarray,
    method: str,
    template_shape: tuple[int, int],
    *,
    top_k: int | None = 1,
    threshold: float | None = None,
    min_distance: int | None = None,
    subpixel: bool = False,
) -> list[Match]:
    """Pick the best, well-separated matches from a score map.

    Parameters
    ----------
    scores : (H', W') array_like
        A score map from ``match_template``. NaN marks a place where no
        window was scored (outside a search region, say): it is never a
        match and never any match's rival.
    method : str
        The method that made it; the two ``sqdiff`` methods rank the smallest
        score best, the others the largest.
    template_shape : (h, w)
        The template's height and width, reported as each match's size.
    top_k : int or None
        At most this many matches (≥ 1); None for every peak that passes the
        threshold (``waldo find -k all``), still suppressed.
    threshold : float, optional
        Only scores at least this good count (≥ for correlation methods,
        ≤ for ``sqdiff`` methods). None keeps every score.
    min_distance : int, optional
        Two returned matches are at least this far apart in both x and y
        taken together (Chebyshev distance, max(|dx|, |dy|) ≥ min_distance).
        Default: half the template's smaller side (at least 1).
    subpixel : bool
        Refine each peak's x and y to a fraction of a pixel (floats) with
        ``refine_peak``; scores stay those of the integer peaks.

    Returns
    -------
    list of Match
        Best first; ties go to the topmost, then leftmost place. Each
        carries its ``margin``: its score minus the best score outside its
        suppression window (the other way round for ``sqdiff``, so that
        positive always means better): how far the best match stands above
        everything else (near 0: a coin toss), how far the others fall
        behind it. None when every scored place lies inside that window.

    Examples
    --------
    >>> scores = np.zeros((6, 6), np.float32); scores[1, 1] = 0.9; scores[1, 2] = 0.8
    >>> scores[4, 4] = 0.7
    >>> [(m.x, m.y) for m in find_peaks(scores, "ccoeff_normed", (4, 4), top_k=3)]
    [(1, 1), (4, 4), (3, 0)]
    >>> every = find_peaks(scores, "ccoeff_normed", (4, 4), top_k=None, threshold=0.5)
    >>> [(m.x, m.y, round(m.margin, 2)) for m in every]
    [(1, 1, 0.2), (4, 4, -0.2)]
    """
    lower = lower_is_better(method)
    if top_k is not None and (isinstance(top_k, bool) or int(top_k) != top_k or top_k < 1):
        raise WaldoError(f"top_k must be a positive integer or None (every peak), got {top_k!r}")
    h, w = (int(v) for v in template_shape)
    if min_distance is None:
        min_distance = max(1, min(h, w) // 2)
    if min_distance < 0:
        raise WaldoError(f"min_distance must be zero or positive, got {min_distance}")
    reach = max(1, int(min_distance))
    scores = np.asarray(scores)
    if scores.ndim != 2 or scores.size == 0:
        raise WaldoError(f"scores must be a non-empty 2-D array, got shape {scores.shape}")
    rows, cols = scores.shape
    # the best place, for the margins; argmax (argmin) stops at the first NaN, so
    # this one pass also tells whether the map marks unscored places with NaN
    best = int(np.argmin(scores) if lower else np.argmax(scores))
    scored = None
    if np.isnan(scores.flat[best]):
        scored = ~np.isnan(scores)
        if scored.any():
            best = int(np.nanargmin(scores) if lower else np.nanargmax(scores))

    peaks: list[tuple[int, int]] = []
    taken = np.zeros(scores.shape, bool)
    budget = scores.size if top_k is None else max(64 * int(top_k), 1024)
    while True:
        candidates = _ranked_candidates(scores, lower, threshold, budget, scored)
        peaks.clear()
        taken[:] = False
        for flat_index in candidates:
            y, x = divmod(int(flat_index), cols)
            if taken[y, x]:
                continue
            peaks.append((y, x))
            if len(peaks) == top_k:
                break
            taken[max(0, y - reach + 1) : y + reach, max(0, x - reach + 1) : x + reach] = True
        else:
            if budget < scores.size and candidates.size >= budget:
                budget *= 4
                continue
        break
    margins = _margins(scores, lower, scored, peaks, reach, divmod(best, cols))
    matches = []
    for (y, x), margin in zip(peaks, margins, strict=True):
        px, py = refine_peak(scores, x, y, lower=lower) if subpixel else (x, y)
        score = float(scores[y, x])
        matches.append(Match(x=px, y=py, width=w, height=h, score=score, margin=margin))
    return matches


def _margins(
    scores: np.ndarray,
    lower: bool,
    scored: np.ndarray | None,
    peaks: list[tuple[int, int]],
    reach: int,
    best: tuple[int, int],
) -> list[float | None]:
    """Each peak's score minus the best score outside its suppression window.

    Signed so that positive is better; None when no scored place lies outside it.
    The map's best place is outside most peaks' windows, and is then the
    answer; only a window holding it (the best match's, mostly) needs a pass
    over the rest of the map. So a few passes serve any number of peaks.
    """
    if not peaks:
        return []
    by, bx = best
    pick = (
        (np.nanmin if lower else np.nanmax) if scored is not None else (np.min if lower else np.max)
    )
    margins: list[float | None] = []
    for y, x in peaks:
        if max(abs(by - y), abs(bx - x)) >= reach:
            rival: float | None = float(scores[by, bx])
        else:
            y0, y1 = max(0, y - reach + 1), y + reach
            x0, x1 = max(0, x - reach + 1), x + reach
            parts = [scores[:y0], scores[y1:], scores[y0:y1, :x0], scores[y0:y1, x1:]]
            # a part of only NaN has no best (nanmax would warn)
            found = [
                float(pick(part))
                for part in parts
                if part.size and (scored is None or not np.isnan(part).all())
            ]
            rival = None if not found else (min(found) if lower else max(found))
        if rival is None:
            margins.append(None)
        else:
            score = float(scores[y, x])
            margins.append(rival - score if lower else score - rival)
    return margins


def best_over_variants(
    image_shape: tuple[int, int],
    maps: Iterable[np.ndarray | None],
    shapes: Sequence[tuple[int, int]],
    method: str,
    offsets: Sequence[tuple[int, int]] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Merge score maps of different template sizes on the image's grid, by window centre.

    Parameters
    ----------
    image_shape : (H, W)
    maps : one (H-h+1, W-w+1) score map per variant (None for a variant that
        does not fit in the image); any iterable, read one map at a time
    shapes : (h, w) of each variant
    method : str
        Decides whether the best score is the largest or the smallest.
    offsets : (row, column) of each map, optional
        The grid pixel the window of each map's [0, 0] is centred on, for
        maps of part of the image (a search region); by default
        ((h-1)//2, (w-1)//2), where a map of the whole image starts.

    Returns
    -------
    best : (H, W) float32
        The best score of any variant centred at each pixel; pixels no
        variant is centred on get the worst score found anywhere.
    which : (H, W) int32
        The index of the variant that gave it (-1 where none did).

    Examples
    --------
    >>> best, which = best_over_variants((3, 3), [np.full((1, 1), .5), np.full((3, 3), .2)],
    ...                                  [(3, 3), (1, 1)], "ccorr")
    >>> best[1, 1], which[1, 1], which[0, 0]
    (np.float32(0.5), np.int32(0), np.int32(1))
    """
    lower = lower_is_better(method)
    height, width = image_shape
    # float32 holds every score exactly: they come as float32
    best = np.full((height, width), np.inf if lower else -np.inf, np.float32)
    which = np.full((height, width), -1, np.int32)
    if offsets is None:
        offsets = [((h - 1) // 2, (w - 1) // 2) for h, w in shapes]
    for index, (scores, (top, left)) in enumerate(zip(maps, offsets, strict=True)):
        if scores is None:
            continue
        region = best[top : top + scores.shape[0], left : left + scores.shape[1]]
        chosen = which[top : top + scores.shape[0], left : left + scores.shape[1]]
        better = scores < region if lower else scores > region
        region[better] = scores[better]
        chosen[better] = index
    covered = which >= 0
    if not covered.any():
        raise WaldoError("no template variant fits inside the image")
    worst = best[covered].max() if lower else best[covered].min()
    best[~covered] = worst
    return best, which
