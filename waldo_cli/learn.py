r"""Learning a filter from examples (``waldo learn``, ``learn_filter``), in closed form.

The chapter's detector is one small filter V slid over the image plus a bias
u, [H]_{i,j} = u + Σ_{a,b,c} [V]_{a,b,c} [X]_{i+a,j+b,c}: "wherever the
waldoness is highest, we should find a peak". This module learns V and u
from examples of the target (boxes in scenes, or crops) and from everything
that is not the target (the rest of those scenes, and images without it).

The method is a whitened linear discriminant (LDA; "WHO", Hariharan, Malik
and Ramanan, ECCV 2012) whose negatives are mostly hard negatives:

1. Every window of every scene is a negative. Their mean μ₀ and covariance
   Σ₀ are not gathered window by window (millions of them): a window's
   covariance depends only on the offset between two of its pixels, so Σ₀
   is read off the images' autocorrelations, one FFT per image and channel
   pair (``window_moments``).
2. The examples, scaled to the filter's height and each copied with small
   random changes (``augment``: mirrored, 0.9–1.1 times the size, turned up
   to 5°, moved a little, slightly blurred, brightness and contrast ±10%),
   give the positives' mean μ₊.
3. w = (Σ₋ + λ tr(Σ₋)/d I)⁻¹ (μ₊ − μ₋), one linear solve in float64, with
   w kept to sum to zero in each channel (so a window's overall brightness
   or tint does not count). First Σ₋, μ₋ = Σ₀, μ₀; then the filter searches
   the training scenes and its 200 best peaks in each that are not the
   target are the hard negatives (the decoys); the negatives become 20%
   every window and 80% hard negatives (``HARD_WEIGHT``, in mean and
   covariance), and w is solved again; twice. The background keeps Σ₋
   well conditioned however few the decoys.
4. The scales to search are the sizes the examples came in (``scales``).
5. The scores are calibrated on examples held out of the learning (5-fold,
   by image): 1 is a typical held-out example, 0.5 (the default threshold)
   the score that best separates held-out examples from the best peaks
   clear of them. Scores are on a scale where the background's mean is 0
   and the training positives' mean 1, the same for every fold. A fold's
   filter leaves out its images' examples but keeps the negatives (every
   window, and the hard negatives of the last round), so its matrix is the
   last round's: the folds' positives are more right-hand sides of that solve,
   and the learning factorises three matrices, not eight.

Where the time goes (30 ``waldo demo`` puzzles): the two hard-negative
searches and the evaluations (about 120 correlations), the hard negatives'
scatter matrix (12,000 windows), the three solves, and the background's
FFTs, whose spectra products are summed over the images before one inverse
FFT per channel pair (``_summed_moments``).

A MOSSE-style correlation filter and ridge regression on patches were
measured against it; the README gives the numbers and the reasons.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from waldo_cli.errors import WaldoError
from waldo_cli.examples import Box, Example, read_example, read_negative
from waldo_cli.templates import LearnedFilter

__all__ = ["Example", "LearnedFilter", "learn_filter", "window_moments"]

Progress = Callable[[str, int, int], None]

DEFAULT_REGULARISATION = 0.01
COPIES = 40  # augmented copies of each example (the example itself among them)
HARD_ROUNDS = 2  # searches of the training scenes for hard negatives
HARD_PER_IMAGE = 200  # best peaks of each scene taken as hard negatives
HARD_WEIGHT = 0.8  # α: the hard negatives' share of the negatives' mean and covariance
FOLDS = 5  # held-out calibration
# Windows that overlap a target box less than this (IoU) are negatives.
NEGATIVE_IOU = 0.3
# Above this many weights the filter is learned on a coarser grid (its
# covariance matrix would take d² · 8 bytes: 134 MB at 4096).
MAX_DIMENSIONS = 4096


@dataclass
class _Units:
    """The examples, converted to what the learning reads."""

    features: list[np.ndarray]  # (H, W, C) float32 per image, on the learning grid
    boxes: list[tuple[Box, ...]]  # on the learning grid
    kinds: list[str]
    names: list[str]


@dataclass
class _Fit:
    """One solve: the whitened discriminant and what scales it."""

    w: np.ndarray  # (d,) float64
    mean: np.ndarray  # (d,) the background windows' mean
    sigma: float  # √(wᵀ Σ w): the background response's spread
    strength: float = 1.0  # the training positives' mean response, in spreads

    def z(self, scores: Any) -> Any:
        """Raw correlations as spreads above the background's mean response."""
        return (np.asarray(scores) - float(self.w @ self.mean)) / self.sigma

    def unit(self, scores: Any) -> Any:
        """Raw correlations on the scale where the background's mean is 0, the positives' 1."""
        return self.z(scores) / self.strength


@dataclass(frozen=True)
class _Moments:
    """Sums over an image's windows that the covariance is read from."""

    lags: np.ndarray  # (C, C, 2h-1, 2w-1) Σ F_c(p) F_c'(p + δ)
    pairs: np.ndarray  # (2h-1, 2w-1) how many pixel pairs each lag sums
    total: np.ndarray  # (C,) Σ F_c
    pixels: int


def _fft_size(n: int) -> int:
    """The smallest 2^a 3^b 5^c ≥ n: sizes NumPy's FFT is fast on.

    >>> _fft_size(979), _fft_size(640)
    (1000, 640)
    """
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            size = p35
            while size < n:
                size *= 2
            best = min(best, size)
            p35 *= 3
        p5 *= 5
    return best


def window_moments(features: np.ndarray, size: tuple[int, int]) -> _Moments:
    """The sums an image's windows of ``size`` contribute to their covariance.

    A window's covariance between pixel (a, b, c) and pixel (a', b', c')
    depends, for a background whose statistics do not depend on where one
    looks, only on the offset (a' − a, b' − b): it is the image's
    autocorrelation at that lag, computed for all lags at once with FFTs.

    >>> m = window_moments(np.ones((4, 5, 1), np.float32), (2, 3))
    >>> m.lags.shape, float(m.lags[0, 0, 1, 2]), int(m.pairs[1, 2])
    ((1, 1, 3, 5), 20.0, 20)
    """
    return _summed_moments([features], size)


def _summed_moments(
    images: Sequence[np.ndarray],
    size: tuple[int, int],
    progress: Callable[[], None] | None = None,
) -> _Moments:
    """The sum of several images' ``window_moments``, with one inverse FFT per channel pair.

    An autocorrelation is linear in the products of spectra, so the products
    of images that share an FFT size are summed before the (costly) inverse
    transforms: one set of them per FFT size, not one per image.
    """
    h, w = size
    channels = images[0].shape[2]
    lags = np.zeros((channels, channels, 2 * h - 1, 2 * w - 1))
    pairs = np.zeros((2 * h - 1, 2 * w - 1))
    total = np.zeros(channels)
    pixels = 0
    groups: dict[tuple[int, int], list[np.ndarray]] = {}
    for features in images:
        height, width = features.shape[:2]
        shape = (_fft_size(height + h), _fft_size(width + w))
        groups.setdefault(shape, []).append(features)
    for shape, members in groups.items():
        # products[c]: Σ over the images of conj(F_c) F_c' for every c' ≥ c
        products: list[Any] = [0] * channels
        for features in members:
            height, width = features.shape[:2]
            planes = np.fft.rfft2(features.transpose(2, 0, 1).astype(np.float64), s=shape)
            for c in range(channels):
                products[c] = products[c] + np.conj(planes[c])[None] * planes[c:]
            dy = height - np.abs(np.arange(-(h - 1), h))
            dx = width - np.abs(np.arange(-(w - 1), w))
            pairs += np.outer(dy, dx)
            total += features.reshape(-1, channels).sum(axis=0, dtype=np.float64)
            pixels += height * width
            if progress is not None:
                progress()
        for c in range(channels):
            # Σ_p F_c(p) F_c'(p + δ) for every c' at once, negative lags wrapped round
            full = np.fft.irfft2(products[c], s=shape)
            full = np.roll(full, (h - 1, w - 1), axis=(1, 2))[:, : 2 * h - 1, : 2 * w - 1]
            lags[c, c:] += full
            # the lag −δ of (c', c) is the lag δ of (c, c')
            lags[c + 1 :, c] += full[1:, ::-1, ::-1]
    return _Moments(lags=lags, pairs=pairs, total=total, pixels=pixels)


def _covariance(
    moments: Sequence[_Moments], size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """The windows' mean (d,) and covariance (d, d), from the moments of the images."""
    h, w = size
    lags = np.sum([m.lags for m in moments], axis=0)
    pairs = np.sum([m.pairs for m in moments], axis=0)
    channel_mean = np.sum([m.total for m in moments], axis=0) / sum(m.pixels for m in moments)
    second = lags / pairs
    channels = len(channel_mean)
    # the flat index of window pixel (a, b, c) is (a w + b) C + c
    flat = np.arange(h * w * channels)
    a, b, c = flat // (w * channels), (flat // channels) % w, flat % channels
    dy = a[None, :] - a[:, None] + h - 1
    dx = b[None, :] - b[:, None] + w - 1
    cov = second[c[:, None], c[None, :], dy, dx]
    mean = np.tile(channel_mean, h * w)
    cov -= np.outer(mean, mean)
    return mean, cov


def _iou(a: Box, b: Box) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0, min(ay + ah, by + bh) - max(ay, by))
    return w * h / float(aw * ah + bw * bh - w * h)


def _blur(patch: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur of an (h, w, C) patch (edges repeated), sigma in pixels."""
    if sigma <= 0:
        return patch
    radius = max(1, math.ceil(3 * sigma))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    out = np.pad(patch, ((radius, radius), (radius, radius), (0, 0)), mode="edge")
    out = sum(taps[k] * out[k : k + patch.shape[0]] for k in range(len(taps)))
    out = sum(taps[k] * out[:, k : k + patch.shape[1]] for k in range(len(taps)))
    return np.asarray(out, np.float32)


def _scores(features: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Correlation of preprocessed features with a kernel: the engine's ccorr, float32."""
    from waldo_cli.engine import match_template

    return match_template(features, kernel.astype(np.float32), "ccorr")


def _hard_negatives(
    units: _Units, which: Sequence[int], fit: _Fit, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """The best peaks of the filter in the given images that are not the target.

    Returns their windows (n, d) and the image each came from (n,).
    """
    from waldo_cli.peaks import find_peaks

    h, w = size
    kernel = fit.w.reshape(h, w, -1)
    rows, origin = [], []
    for i in which:
        if units.kinds[i] == "crop":
            continue
        features = units.features[i]
        if features.shape[0] < h or features.shape[1] < w:
            continue
        peaks = find_peaks(_scores(features, kernel), "ccorr", size, top_k=HARD_PER_IMAGE * 2)
        taken = 0
        for peak in peaks:
            window = (int(peak.x), int(peak.y), w, h)
            if all(_iou(window, box) < NEGATIVE_IOU for box in units.boxes[i]):
                rows.append(features[window[1] : window[1] + h, window[0] : window[0] + w].ravel())
                origin.append(i)
                taken += 1
                if taken == HARD_PER_IMAGE:
                    break
    d = h * w * units.features[0].shape[2]
    return np.asarray(rows, np.float32).reshape(-1, d), np.asarray(origin, np.int64)


SCALE_STEP = 1.045  # between the scales a filter is searched at by default


def _centre(matrix: np.ndarray, channels: int, both: bool = True) -> np.ndarray:
    """Π M Π (or Π v) with Π removing each channel's mean over the window's pixels."""
    d = matrix.shape[0]
    n = d // channels
    rows = matrix.reshape(n, channels, *matrix.shape[1:])
    centred = (rows - rows.mean(axis=0, keepdims=True)).reshape(matrix.shape)
    if not both or matrix.ndim == 1:
        return centred
    cols = centred.reshape(d, n, channels)
    return (cols - cols.mean(axis=1, keepdims=True)).reshape(d, d)


def _solve(
    cov: np.ndarray,
    mean: np.ndarray,
    positives: Sequence[np.ndarray],
    negative: np.ndarray,
    background: np.ndarray,
    lam: float,
    channels: int,
) -> list[_Fit]:
    """Solve w = (Σ + λ tr(Σ)/d I)⁻¹ (μ₊ − μ₋) for each μ₊: one factorisation, in float64.

    ``cov`` is Σ, the negatives' covariance; ``mean`` and ``background``
    the background windows' mean and covariance, which scale the results.
    Several positives' means (the held-out folds') share the one matrix,
    so they are right-hand sides of the same solve.
    """
    d = len(mean)
    # a kernel that sums to zero in each channel ignores how light or how red
    # a window is on the whole: only its pattern counts. Solving in the
    # centred windows' space keeps w there (Π w = w).
    regularised = _centre(cov, channels)
    targets = np.stack([_centre(p - negative, channels) for p in positives], axis=1)
    regularised[np.diag_indices(d)] += lam * float(np.trace(regularised)) / d
    solved = np.linalg.solve(regularised, targets)
    del regularised
    fits = []
    # the background's variance along w, next to what a typical direction has:
    # far below it (or below 0: a lag estimate from a few windows need not be
    # positive) the background cannot scale the scores, and sigma is 0
    typical = max(float(np.trace(background)) / d, 1e-300)
    for k, positive in enumerate(positives):
        w = np.ascontiguousarray(solved[:, k])
        variance = float(w @ background @ w)
        if not variance > 1e-9 * typical * float(w @ w):
            fits.append(_Fit(w=w, mean=mean, sigma=0.0))
            continue
        sigma = float(np.sqrt(variance))
        strength = float(w @ (positive - mean)) / sigma
        fits.append(_Fit(w=w, mean=mean, sigma=sigma, strength=strength if strength > 0 else 1.0))
    return fits


@dataclass
class _Hard:
    """Hard negatives: windows (n, d), the image each came from (n,), and their sums.

    ``scatter`` (Σ x xᵀ, float64) and ``total`` (Σ x) are kept as rows are
    added, so that a fold leaving some images out subtracts theirs rather
    than summing the rest again.
    """

    rows: np.ndarray
    owners: np.ndarray
    scatter: np.ndarray
    total: np.ndarray

    @classmethod
    def empty(cls, d: int) -> _Hard:
        return cls(
            np.zeros((0, d), np.float32), np.zeros(0, np.int64), np.zeros((d, d)), np.zeros(d)
        )

    def add(self, rows: np.ndarray, owners: np.ndarray) -> _Hard:
        wide = rows.astype(np.float64)
        return _Hard(
            np.vstack([self.rows, rows]),
            np.concatenate([self.owners, owners]),
            # np.dot sees xᵀx and does one symmetric rank-k update (half of @'s work)
            self.scatter + np.dot(wide.T, wide),
            self.total + wide.sum(axis=0),
        )

    def without(self, images: Sequence[int]) -> _Hard:
        """The hard negatives that did not come from ``images``."""
        out = np.isin(self.owners, list(images))
        wide = self.rows[out].astype(np.float64)
        keep = ~out
        return _Hard(
            self.rows[keep],
            self.owners[keep],
            self.scatter - wide.T @ wide,
            self.total - wide.sum(axis=0),
        )

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Their mean and covariance."""
        n = len(self.rows)
        mean = self.total / n
        return mean, self.scatter / n - np.outer(mean, mean)


def _scaled(fit: _Fit) -> _Fit:
    """The fit, if the background gave its scores a scale (``_solve``); else a one-line error."""
    if not fit.sigma > 0:
        raise WaldoError(
            "the images to take negatives from are too small to tell the target from its "
            "background: give scenes or --negatives images several times the examples' size"
        )
    return fit


def _train(
    units: _Units,
    positives: np.ndarray,
    owners: np.ndarray,
    background: _Moments,
    size: tuple[int, int],
    lam: float,
    rounds: int,
    held: Sequence[Sequence[int]] = (),
    progress: Callable[[], None] | None = None,
) -> tuple[_Fit, list[_Fit | None], _Hard]:
    """Learn from all the images: background LDA, then ``rounds`` of hard negatives.

    Also returns, for each set of images in ``held``, the filter learned
    without their examples (None when no example is left): the same
    negatives and the same matrix, so it is one more right-hand side of the
    last solve.
    """
    mean, cov = _covariance([background], size)
    channels = len(mean) // (size[0] * size[1])
    everyone = range(len(units.features))

    def solve(found: _Hard, positive_sets: Sequence[np.ndarray]) -> list[_Fit]:
        if not len(found.rows):
            return _solve(cov, mean, positive_sets, mean, cov, lam, channels)
        # the negatives: (1 − α) every window, α the hard ones (mean and covariance)
        hard_mean, hard_cov = found.moments()
        negative = (1 - HARD_WEIGHT) * mean + HARD_WEIGHT * hard_mean
        hard_cov *= HARD_WEIGHT
        hard_cov += (1 - HARD_WEIGHT) * cov
        return _solve(hard_cov, mean, positive_sets, negative, cov, lam, channels)

    # the held-out folds' positives share the last solve, as more right-hand sides
    kept = [~np.isin(owners, list(images)) for images in held]
    wanted = [positives.mean(axis=0), *(positives[k].mean(axis=0) for k in kept if k.any())]

    def last(found: _Hard) -> tuple[_Fit, list[_Fit | None]]:
        fit, *folds = solve(found, wanted)
        solved = iter(folds)
        return _scaled(fit), [next(solved) if k.any() else None for k in kept]

    found = _Hard.empty(len(mean))
    if rounds == 0:
        fit, fold_fits = last(found)
        return fit, fold_fits, found
    fit = _scaled(solve(found, wanted[:1])[0])
    for done in range(1, rounds + 1):
        if progress is not None:
            progress()
        rows, origin = _hard_negatives(units, everyone, fit, size)
        if not len(rows):  # no new hard negatives: the last fit stands
            break
        found = found.add(rows, origin)
        if done == rounds:
            fit, fold_fits = last(found)
            return fit, fold_fits, found
        fit = _scaled(solve(found, wanted[:1])[0])
    fit, fold_fits = last(found)
    return fit, fold_fits, found


@dataclass
class _Outcome:
    """How a filter scored some images, on its ``unit`` scale.

    ``examples``: each example's score (its best window overlapping the box
    by IoU ≥ 0.5); ``elsewhere``: each image's best peak overlapping no box
    that much, and ``top`` whether each example beat it (found as the best
    match); ``clear``: each image's best peak that touches no box at all
    (IoU < 0.1: what a threshold must keep out in images without the target).
    """

    examples: list[float] = field(default_factory=list)
    elsewhere: list[float] = field(default_factory=list)
    clear: list[float] = field(default_factory=list)
    top: list[bool] = field(default_factory=list)

    def add(self, other: _Outcome) -> None:
        self.examples += other.examples
        self.elsewhere += other.elsewhere
        self.clear += other.clear
        self.top += other.top


def _evaluate(units: _Units, which: Sequence[int], fit: _Fit, size: tuple[int, int]) -> _Outcome:
    """Score the images in ``which`` with a fit (see ``_Outcome``)."""
    from waldo_cli.peaks import find_peaks
    from waldo_cli.variants import warp_box

    h, w = size
    kernel = fit.w.reshape(h, w, -1)
    outcome = _Outcome()
    for i in which:
        features = units.features[i]
        if units.kinds[i] == "crop":
            patch = warp_box(features, units.boxes[i][0], size)
            outcome.examples.append(float(fit.unit(float(patch.ravel() @ fit.w))))
            outcome.top.append(True)  # a crop has nothing else in it to beat
            continue
        if features.shape[0] < h or features.shape[1] < w:
            continue
        scores = fit.unit(_scores(features, kernel))
        boxes = units.boxes[i]
        peaks = find_peaks(scores, "ccorr", size, top_k=len(boxes) + 8)

        other = _best_peak(peaks, boxes, size, 0.5, scores)
        outcome.elsewhere.append(other)
        outcome.clear.append(_best_peak(peaks, boxes, size, 0.1, scores))
        for box in boxes:
            found = _best_at(scores, box, size)
            outcome.examples.append(found)
            outcome.top.append(found > other)
    return outcome


def _best_peak(
    peaks: Sequence[Any],
    boxes: tuple[Box, ...],
    size: tuple[int, int],
    limit: float,
    scores: np.ndarray,
) -> float:
    """The best peak overlapping no box by IoU ``limit`` or more (else the map's lowest score)."""
    h, w = size
    return max(
        (
            float(p.score)
            for p in peaks
            if all(_iou((int(p.x), int(p.y), w, h), box) < limit for box in boxes)
        ),
        default=float(scores.min()),
    )


def _best_at(scores: np.ndarray, box: Box, size: tuple[int, int]) -> float:
    """The best score of the windows that overlap ``box`` by IoU ≥ 0.5 (else the centred one)."""
    h, w = size
    x, y, bw, bh = box
    cx, cy = round(x + (bw - w) / 2), round(y + (bh - h) / 2)
    reach = max(2, max(h, w) // 4)
    best = None
    rows, cols = scores.shape
    for yy in range(max(0, cy - reach), min(rows, cy + reach + 1)):
        for xx in range(max(0, cx - reach), min(cols, cx + reach + 1)):
            if _iou((xx, yy, w, h), box) >= 0.5:
                value = float(scores[yy, xx])
                best = value if best is None or value > best else best
    if best is None:
        best = float(scores[min(max(cy, 0), rows - 1), min(max(cx, 0), cols - 1)])
    return best


def _split(examples: Sequence[float], elsewhere: Sequence[float]) -> float:
    """The score that best separates examples (above) from the best peaks elsewhere (below).

    Fewest errors on either side; among equally good places, the middle of
    the widest gap.

    >>> _split([3.0, 4.0, 5.0], [0.0, 1.0, 3.5])
    2.0
    """
    values = sorted({*examples, *elsewhere})
    if not elsewhere:
        return min(examples) - 1.0
    if not examples:
        return max(elsewhere) + 1.0
    cuts = [values[0] - 1.0] + [(a + b) / 2 for a, b in zip(values, values[1:], strict=False)]
    cuts.append(values[-1] + 1.0)

    def errors(t: float) -> int:
        return sum(v < t for v in examples) + sum(v >= t for v in elsewhere)

    fewest = min(errors(t) for t in cuts)
    best, width = cuts[0], -1.0
    for k, t in enumerate(cuts):
        if errors(t) != fewest:
            continue
        low = values[k - 1] if 0 < k else values[0] - 1.0
        high = values[k] if k < len(values) else values[-1] + 1.0
        if high - low > width:
            best, width = t, high - low
    return float(best)


def _as_examples(
    items: Sequence[Any], negative: bool, progress: Callable[[], None]
) -> list[Example]:
    found: list[Example] = []
    for item in items:
        if isinstance(item, Example):
            found.append(item)
        elif negative:
            found.extend(read_negative(item))
        else:
            found.append(read_example(item))
        progress()
    return found


def _coarse_grid(pixels: np.ndarray, factor: int) -> np.ndarray:
    """An image averaged over factor×factor blocks (the learning grid of a large filter)."""
    if factor == 1:
        return pixels
    height, width, channels = pixels.shape
    rows, cols = height // factor, width // factor
    block = pixels[: rows * factor, : cols * factor].reshape(rows, factor, cols, factor, channels)
    return block.mean(axis=(1, 3), dtype=np.float64).astype(np.float32)


def _default_size(examples: Sequence[Example]) -> tuple[int, int]:
    """(h, w): the median size of the examples' boxes."""
    boxes = [box for e in examples for box in e.boxes]
    if not boxes:
        raise WaldoError("no examples of the target: give crops, or scenes with boxes")
    heights = sorted(b[3] for b in boxes)
    widths = sorted(b[2] for b in boxes)
    return int(round(float(np.median(heights)))), int(round(float(np.median(widths))))


def _check(
    examples: Sequence[Example], negatives: Sequence[Example], size: tuple[int, int]
) -> None:
    h, w = size
    if h < 1 or w < 1:
        raise WaldoError(f"the filter's size {w}×{h} must be at least 1×1")
    if not any(e.boxes for e in examples):
        raise WaldoError("no examples of the target: give crops, or scenes with boxes")
    searched = [e for e in (*examples, *negatives) if e.negatives]
    if not searched:
        raise WaldoError(
            "no negatives: give scenes with boxes (folders or answer.json) or images "
            "without the target (--negatives), not only crops"
        )
    fitting = [e for e in searched if e.pixels.shape[0] >= h and e.pixels.shape[1] >= w]
    if not fitting:
        smallest = min(searched, key=lambda e: e.pixels.shape[0] * e.pixels.shape[1])
        height, width = smallest.pixels.shape[:2]
        raise WaldoError(
            f"the filter ({w}×{h}) is larger than every image to take negatives from "
            f"(such as {smallest.name}, {width}×{height})"
        )


@dataclass
class _Counter:
    """Counts the steps of a learning and reports them to ``progress``."""

    progress: Progress | None
    total: int
    done: int = 0
    stage: str = ""

    def step(self, stage: str) -> None:
        self.done += 1
        self.stage = stage
        if self.progress is not None:
            self.progress(stage, min(self.done, self.total), self.total)

    def stepper(self, stage: str) -> Callable[[], None]:
        return lambda: self.step(stage)


@dataclass
class _Calibration:
    """From a fit's ``unit`` scale to the file's scores: 0.5 at ``split``, 1 at ``typical``."""

    split: float
    typical: float
    held_out: bool
    outcome: _Outcome

    def score(self, units: Any) -> Any:
        return 0.5 + 0.5 * (np.asarray(units, np.float64) - self.split) / (
            self.typical - self.split
        )


def _calibrate(outcome: _Outcome, held_out: bool) -> _Calibration:
    """Where 0.5 and 1 go: between the examples and the best peaks clear of them."""
    split = _split(outcome.examples, outcome.clear)
    typical = float(np.median(outcome.examples)) if outcome.examples else split + 1.0
    if typical <= split:  # examples no better than what is elsewhere: keep a scale
        typical = split + 1.0
    return _Calibration(split, typical, held_out, outcome)


def _report(outcome: _Outcome, calibration: _Calibration) -> dict[str, Any]:
    """How examples and negatives scored, on the file's scale: for the summary and the file."""
    examples = calibration.score(outcome.examples)
    found = sum(1 for s, t in zip(examples, outcome.top, strict=True) if t and s >= 0.5)
    return {
        "found": int(found),
        "of": len(outcome.top),
        "examples": _quantiles(examples),
        "best_elsewhere": _quantiles(calibration.score(outcome.elsewhere)),
        "best_clear": _quantiles(calibration.score(outcome.clear)),
    }


def _typical_size(images: Sequence[Example]) -> list[int]:
    """[W, H]: the median width and height of the images (for ``waldo params --filter``)."""
    if not images:
        return []
    return [
        int(np.median([e.pixels.shape[1] for e in images])),
        int(np.median([e.pixels.shape[0] for e in images])),
    ]


def _quantiles(values: Sequence[float] | np.ndarray) -> list[float]:
    if len(values) == 0:
        return []
    found = np.quantile(np.asarray(values, np.float64), [0.0, 0.5, 1.0])
    return [round(float(v), 4) for v in found]


def learn_filter(
    examples: Sequence[str | os.PathLike[str] | Example],
    negatives: Sequence[str | os.PathLike[str] | Example] = (),
    *,
    size: tuple[int, int] | None = None,
    augment: bool = True,
    regularisation: float = DEFAULT_REGULARISATION,
    seed: int = 0,
    grey: bool = False,
    progress: Progress | None = None,
) -> LearnedFilter:
    """Learn a filter (a kernel V and a bias u) that scores the examples' target high.

    Parameters
    ----------
    examples : sequence of path-like or Example
        Image files (each a crop of the target), folders holding
        ``answer.json`` or ``answer.json`` files (a scene and boxes: see
        ``waldo_cli.examples``), or ``Example`` records.
    negatives : sequence of path-like or Example
        Images (or folders of images) without the target.
    size : (h, w), optional
        The filter's height and width (default: the median size of the
        examples' boxes). Every example's box is resampled to it.
    augment : bool
        Learn from 40 copies of each example, mirrored, resized, turned,
        moved, blurred and lightened or darkened a little (default), or
        from the examples alone.
    regularisation : float
        λ ≥ 0: λ·tr(Σ)/d is added to the background covariance's diagonal.
    seed : int
        The augmentation's and the held-out folds' random numbers: the same
        inputs and seed give the same filter, bit for bit.
    grey : bool
        Learn a filter for grey images (colour images are made grey first).
        Also chosen when any image is grey.
    progress : callable(stage, done, total), optional
        Called after every step.

    Returns
    -------
    LearnedFilter
        V and u calibrated so that 1 is a typical held-out example and 0.5
        the default threshold ("found"); ``training`` records the settings
        and how well examples and negatives separated.

    Raises
    ------
    WaldoError
        Unreadable examples, no examples or no negatives, a filter larger
        than the images, a negative regularisation.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> scenes = []
    >>> for k in range(3):
    ...     scene = rng.integers(0, 256, (60, 80, 3)).astype(np.float32)
    ...     scene[20:28:2, 30:36], scene[21:28:2, 30:36] = 255, 0  # stripes: the target
    ...     scenes.append(Example(scene, ((30, 20, 6, 8),), f"scene{k}", "scene"))
    >>> learned = learn_filter(scenes, augment=False)
    >>> learned.shape, learned.parameters
    ((8, 6, 3), 145)
    >>> from waldo_cli import match_template
    >>> scores = match_template(scenes[0].pixels, learned)
    >>> np.unravel_index(scores.argmax(), scores.shape)  # (y, x) of the stripes
    (np.int64(20), np.int64(30))
    """
    from waldo_cli import __version__
    from waldo_cli.io import to_grey

    if not (regularisation >= 0 and math.isfinite(regularisation)):
        raise WaldoError(f"regularisation must be 0 or more, got {regularisation}")
    rng = np.random.default_rng(int(seed))
    counter = _Counter(progress, len(examples) + len(negatives) + 1)
    positives_in = _as_examples(list(examples), False, counter.stepper("reading examples"))
    negatives_in = _as_examples(list(negatives), True, counter.stepper("reading negatives"))
    everything = [*positives_in, *negatives_in]
    grey = grey or any(e.pixels.shape[2] == 1 for e in everything)
    size = tuple(int(v) for v in size) if size is not None else _default_size(positives_in)  # type: ignore[assignment]
    assert size is not None
    _check(positives_in, negatives_in, size)
    channels = 1 if grey else 3
    h, w = size
    factor = max(1, math.ceil(math.sqrt(h * w * channels / MAX_DIMENSIONS)))
    grid = (max(1, h // factor), max(1, w // factor))

    def learning_grid(e: Example) -> np.ndarray:
        pixels = to_grey(e.pixels) if grey and e.pixels.shape[2] == 3 else e.pixels
        return _coarse_grid(pixels, factor) / np.float32(255) - np.float32(0.5)

    units = _Units(
        features=[learning_grid(e) for e in everything],
        boxes=[
            tuple(
                (
                    round(x / factor),
                    round(y / factor),
                    max(1, round(bw / factor)),
                    max(1, round(bh / factor)),
                )
                for x, y, bw, bh in e.boxes
            )
            for e in everything
        ],
        kinds=[e.kind for e in everything],
        names=[e.name for e in everything],
    )
    searched = [i for i, k in enumerate(units.kinds) if k != "crop"]
    fits = [
        i
        for i in searched
        if units.features[i].shape[0] >= grid[0] and units.features[i].shape[1] >= grid[1]
    ]
    with_targets = [i for i, b in enumerate(units.boxes) if b]
    folds = min(FOLDS, len(with_targets), len(fits)) if len(with_targets) > 1 else 0
    counter.total += len(fits) + 1 + HARD_ROUNDS + folds + 1
    copies = COPIES if augment else 1
    rows, owners = [], []
    for i in with_targets:
        # every example is scaled (keeping its shape) to the filter's height:
        # the window is the filter's shape about the box's centre. The sizes
        # the examples came in are searched for (``scales``).
        boxes = tuple(_upright(box, grid) for box in units.boxes[i])
        found = _augmented(units.features[i], boxes, grid, rng, copies)
        rows.append(found)
        owners += [i] * len(found)
    positives = np.vstack(rows)
    owner = np.asarray(owners)
    counter.step("positives")
    # held-out calibration: k folds of the images, each learned without their
    # examples (against the same negatives: every image's background and the
    # hard negatives the whole learning found)
    order = [int(i) for i in rng.permutation(len(everything))]
    fold_of = {i: k % folds for k, i in enumerate(order)} if folds else {}
    everyone = list(range(len(everything)))
    held = [[i for i in everyone if fold_of[i] == k] for k in range(folds)]
    background = _summed_moments(
        [units.features[i] for i in fits], grid, counter.stepper("background statistics")
    )
    fit, fold_fits, hard = _train(
        units,
        positives,
        owner,
        background,
        grid,
        regularisation,
        HARD_ROUNDS,
        held,
        progress=counter.stepper("hard negatives"),
    )
    held_outcome = _Outcome()
    for images, fold in zip(held, fold_fits, strict=True):
        if (
            fold is not None
            and fold.sigma > 0
            and any(i in fits for i in everyone if i not in images)
        ):
            held_outcome.add(_evaluate(units, images, fold, grid))
        counter.step("held-out folds")
    trained = _evaluate(units, everyone, fit, grid)
    counter.step("calibrating")
    held_out = bool(held_outcome.examples)
    calibration = _calibrate(held_outcome if held_out else trained, held_out)

    # score = 0.5 + 0.5 (u − split) / (typical − split), u = (w·x − w·μ₀) / (σ strength)
    spread = fit.sigma * fit.strength
    gain = 0.5 / (spread * (calibration.typical - calibration.split))
    bias = 0.5 - gain * (float(fit.w @ fit.mean) + spread * calibration.split)
    kernel = (gain * fit.w).reshape(grid[0], grid[1], channels)
    if factor > 1:  # each weight of the coarse grid stands for a factor×factor block
        kernel = np.repeat(np.repeat(kernel, factor, axis=0), factor, axis=1) / (factor * factor)
        kernel = np.pad(kernel, ((0, h - kernel.shape[0]), (0, w - kernel.shape[1]), (0, 0)))
    scales = _search_scales([b for e in positives_in for b in e.boxes], h)
    training = {
        "method": "lda",
        "colour": "grey" if grey else "rgb",
        "parameters": h * w * channels + 1,
        "scales": list(scales),
        "examples": sum(len(e.boxes) for e in positives_in),
        "scenes": sum(1 for e in positives_in if e.kind == "scene"),
        "crops": sum(1 for e in positives_in if e.kind == "crop"),
        "negative_images": len(negatives_in),
        "positives": int(len(positives)),
        "hard_negatives": len(hard.rows),
        "size": [w, h],
        "grid": factor,
        "augment": bool(augment),
        "copies": copies,
        "regularisation": float(regularisation),
        "hard_rounds": HARD_ROUNDS,
        "hard_weight": HARD_WEIGHT,
        "seed": int(seed),
        "image_size": _typical_size([e for e in everything if e.negatives]),
        "trained": _report(trained, calibration),
        "held_out": {"folds": folds, **_report(held_outcome, calibration)} if held_out else {},
    }
    learned = LearnedFilter(
        kernel=kernel.astype(np.float32),
        bias=bias,
        colour="grey" if grey else "rgb",
        features="pixels",
        calibration={
            "threshold": 0.5,
            "one": "the median score of examples held out of the learning"
            if held_out
            else "the median score of the training examples (too few to hold some out)",
            "half": "the score that best separates those examples from the best peak "
            "elsewhere in their images",
            "held_out": held_out,
            "background_spread": round(gain * fit.sigma, 6),
        },
        training=training,
        version=__version__,
        name="<learned>",
        scales=scales,
    )
    return learned


def _upright(box: Box, size: tuple[int, int]) -> tuple[float, float, float, float]:
    """The window of the filter's shape (h, w) about a box's centre, scaled to the box's height.

    >>> _upright((10, 20, 8, 30), (15, 5))
    (9.0, 20.0, 10.0, 30.0)
    """
    x, y, bw, bh = box
    h, w = size
    width = w * bh / h
    return (x + (bw - width) / 2, float(y), width, float(bh))


def _search_scales(boxes: Sequence[Box], height: int) -> tuple[float, ...]:
    """The sizes the examples came in, relative to the filter's height: the scales to search.

    Steps of ``SCALE_STEP`` from 1 down to the smallest example and up to the
    largest (the 5% most extreme left out when there are many).

    >>> _search_scales([(0, 0, 5, 42), (0, 0, 5, 46), (0, 0, 5, 48)], 46)
    (0.916, 0.957, 1.0, 1.045)
    >>> _search_scales([(0, 0, 5, 46), (0, 0, 5, 47)], 46)
    (1.0,)
    """
    ratios = np.asarray([b[3] / height for b in boxes], np.float64)
    low, high = (
        np.quantile(ratios, [0.05, 0.95]) if len(ratios) >= 20 else (ratios.min(), ratios.max())
    )
    step = math.log(SCALE_STEP)
    # a scale covers half a step either side of it
    down = max(0, math.ceil(math.log(1 / low) / step - 0.5))
    up = max(0, math.ceil(math.log(high) / step - 0.5))
    return tuple(round(SCALE_STEP**k, 3) for k in range(-down, up + 1))


def _augmented(
    features: np.ndarray,
    boxes: Sequence[tuple[float, float, float, float]],
    size: tuple[int, int],
    rng: np.random.Generator,
    copies: int,
) -> np.ndarray:
    """An image's examples and their augmented copies as rows of features, (n, d)."""
    from waldo_cli.variants import warp_box

    rows = []
    for box in boxes:
        for copy in range(copies):
            if copy == 0:  # the example as it is
                rows.append(warp_box(features, box, size).ravel())
                continue
            patch = warp_box(
                features,
                box,
                size,
                scale=float(rng.uniform(0.9, 1.1)),
                angle=float(rng.uniform(-5, 5)),
                flip=bool(rng.random() < 0.5),
                shift=(float(rng.uniform(-0.04, 0.04)), float(rng.uniform(-0.03, 0.03))),
            )
            sigma = float(rng.uniform(0, 0.8)) if rng.random() < 0.5 else 0.0
            patch = _blur(patch, sigma)
            # brightness and contrast on the 0–255 scale, as features x / 255 − 0.5
            gain, offset = float(rng.uniform(0.9, 1.1)), float(rng.uniform(-10, 10)) / 255
            patch = np.clip((patch + 0.5) * gain + offset, 0, 1) - 0.5
            rows.append(patch.ravel())
    return np.asarray(rows, np.float64)
