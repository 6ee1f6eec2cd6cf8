"""From a score map to a ranked list of matches."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from waldo_cli.errors import WaldoError
from waldo_cli.methods import lower_is_better


@dataclass(frozen=True)
class Match:
    """One place where the template matched.

    Attributes
    ----------
    x, y : int, or float with sub-pixel refinement
        Column and row of the window's top-left corner, in image pixels.
    width, height : int
        Size of the window (the template's size).
    score : float
        The method's score there.
    scale, angle, flip : optional
        With a search over template variants: the size factor, the
        counter-clockwise turn in degrees and the mirroring of the variant
        that matched (width and height are then that variant's).
    """

    x: int | float
    y: int | float
    width: int
    height: int
    score: float
    scale: float | None = None
    angle: float | None = None
    flip: bool | None = None

    def to_dict(self) -> dict[str, float | int | bool]:
        """The match as a JSON-ready dict: x, y, width, height, score (and the variant's fields).

        >>> Match(3, 4, 10, 8, 0.5).to_dict()
        {'x': 3, 'y': 4, 'width': 10, 'height': 8, 'score': 0.5}
        >>> Match(3, 4, 10, 8, 0.5, scale=1.5, angle=90.0, flip=False).to_dict()["angle"]
        90.0
        """
        return {key: value for key, value in asdict(self).items() if value is not None}


def _ranked_candidates(scores: np.ndarray, lower: bool, threshold: float | None,
                       count: int) -> np.ndarray:
    """Flat indices of (at least) the ``count`` best scores that pass, best first.

    Ties are ranked by position (row-major), so results never depend on the
    sort algorithm.
    """
    flat = scores.ravel()
    # the cut-off score of the count best, then the places that reach it: no
    # copy of the map beyond the one partition needs, and no index array as
    # long as the map (huge maps stay affordable)
    if threshold is not None:
        passes = flat <= threshold if lower else flat >= threshold
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


def refine_peak(scores: np.ndarray, x: int, y: int, lower: bool = False) -> tuple[float, float]:
    """Sub-pixel position of a peak: the extremum of a quadratic fitted to its 3×3 neighbourhood.

    A least-squares fit of f = a + b·dx + c·dy + d·dx² + e·dx·dy + g·dy² to the
    nine scores around (x, y); its extremum is the refined peak. Where the
    fit has no extremum of the right kind (a ridge, or a saddle) each axis
    falls back to a parabola through three points. Offsets are kept within
    half a pixel; peaks on the map's edge are refined along the free axis
    only.

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
        patch = s[y - 1:y + 2, x - 1:x + 2]
        dy, dx = np.mgrid[-1:2, -1:2]
        design = np.stack([np.ones(9), dx.ravel(), dy.ravel(), dx.ravel() ** 2,
                           (dx * dy).ravel(), dy.ravel() ** 2], axis=1)
        _, b, c, d, e, g = np.linalg.lstsq(design, patch.ravel(), rcond=None)[0]
        hessian = np.array([[2 * d, e], [e, 2 * g]])
        if np.linalg.det(hessian) > 0 and hessian[0, 0] < 0:  # a true maximum
            ox, oy = np.linalg.solve(hessian, [-b, -c])
            if abs(ox) <= 0.5 and abs(oy) <= 0.5:
                return float(x + ox), float(y + oy)
    ox = parabola(s[y, x - 1], s[y, x], s[y, x + 1]) if inner_x else 0.0
    oy = parabola(s[y - 1, x], s[y, x], s[y + 1, x]) if inner_y else 0.0
    return float(x + ox), float(y + oy)


def find_peaks(scores: np.ndarray, method: str, template_shape: tuple[int, int], *,
               top_k: int = 1, threshold: float | None = None,
               min_distance: int | None = None, subpixel: bool = False) -> list[Match]:
    """Pick the best, well-separated matches from a score map.

    Parameters
    ----------
    scores : (H', W') array_like
        A score map from ``match_template``.
    method : str
        The method that made it; the two ``sqdiff`` methods rank the smallest
        score best, the others the largest.
    template_shape : (h, w)
        The template's height and width, reported as each match's size.
    top_k : int
        At most this many matches (≥ 1).
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
        Best first; ties go to the topmost, then leftmost place.

    Examples
    --------
    >>> scores = np.zeros((6, 6), np.float32); scores[1, 1] = 0.9; scores[1, 2] = 0.8
    >>> scores[4, 4] = 0.7
    >>> [(m.x, m.y) for m in find_peaks(scores, "ccoeff_normed", (4, 4), top_k=3)]
    [(1, 1), (4, 4), (3, 0)]
    """
    lower = lower_is_better(method)
    if isinstance(top_k, bool) or int(top_k) != top_k or top_k < 1:
        raise WaldoError(f"top_k must be a positive integer, got {top_k!r}")
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

    matches: list[Match] = []
    taken = np.zeros(scores.shape, bool)
    budget = max(64 * int(top_k), 1024)
    while True:
        candidates = _ranked_candidates(scores, lower, threshold, budget)
        matches.clear()
        taken[:] = False
        for flat_index in candidates:
            y, x = divmod(int(flat_index), cols)
            if taken[y, x]:
                continue
            px, py = refine_peak(scores, x, y, lower) if subpixel else (x, y)
            matches.append(Match(x=px, y=py, width=w, height=h, score=float(scores[y, x])))
            if len(matches) == top_k:
                return matches
            taken[max(0, y - reach + 1):y + reach, max(0, x - reach + 1):x + reach] = True
        if budget >= scores.size or candidates.size < budget:
            return matches
        budget *= 4
