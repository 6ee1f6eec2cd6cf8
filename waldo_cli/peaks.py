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
    x, y : int
        Column and row of the window's top-left corner, in image pixels.
    width, height : int
        Size of the window (the template's size).
    score : float
        The method's score there.
    """

    x: int
    y: int
    width: int
    height: int
    score: float

    def to_dict(self) -> dict[str, float | int]:
        """The match as a JSON-ready dict with the keys x, y, width, height, score.

        >>> Match(3, 4, 10, 8, 0.5).to_dict()
        {'x': 3, 'y': 4, 'width': 10, 'height': 8, 'score': 0.5}
        """
        return asdict(self)


def _ranked_candidates(scores: np.ndarray, lower: bool, threshold: float | None,
                       count: int) -> np.ndarray:
    """Flat indices of (at least) the ``count`` best scores that pass, best first.

    Ties are ranked by position (row-major), so results never depend on the
    sort algorithm.
    """
    flat = scores.ravel()
    key = flat if lower else -flat.astype(np.float64)
    if threshold is not None:
        passing = np.flatnonzero(flat <= threshold if lower else flat >= threshold)
    else:
        passing = np.arange(flat.size)
    if passing.size > count:
        part = np.argpartition(key[passing], count - 1)[:count]
        # Keep every candidate tied with the worst one taken, so the choice
        # among equal scores is by position, not by argpartition's whim.
        cutoff = key[passing][part].max()
        passing = passing[key[passing] <= cutoff]
    order = np.lexsort((passing, key[passing]))
    return passing[order]


def find_peaks(scores: np.ndarray, method: str, template_shape: tuple[int, int], *,
               top_k: int = 1, threshold: float | None = None,
               min_distance: int | None = None) -> list[Match]:
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
            matches.append(Match(x=x, y=y, width=w, height=h, score=float(scores[y, x])))
            if len(matches) == top_k:
                return matches
            taken[max(0, y - reach + 1):y + reach, max(0, x - reach + 1):x + reach] = True
        if budget >= scores.size or candidates.size < budget:
            return matches
        budget *= 4
