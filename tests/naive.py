"""Slow, obviously correct float64 versions of what waldo computes fast.

Written from OpenCV's documented TM_* definitions and the degenerate-case
rules of templmatch.cpp, with NumPy only, window by window.
"""

from __future__ import annotations

import numpy as np

FLT_EPSILON = float(np.finfo(np.float32).eps)
DBL_EPSILON = float(np.finfo(np.float64).eps)


def as_hwc(a):
    a = np.asarray(a).astype(np.float32).astype(np.float64)
    return a[:, :, None] if a.ndim == 2 else a


def windows(image, h, w):
    """All h×w windows: shape (H-h+1, W-w+1, h, w, C)."""
    return np.lib.stride_tricks.sliding_window_view(image, (h, w), axis=(0, 1)).transpose(
        0, 1, 3, 4, 2
    )


def reference_terms(image, template):
    """Per window: raw sums in float64 (num_ccorr, num_ccoeff, sum I^2, sum I'^2)."""
    img, tpl = as_hwc(image), as_hwc(template)
    h, w, _ = tpl.shape
    win = windows(img, h, w)
    n = h * w
    ccorr = np.einsum("yxijc,ijc->yx", win, tpl)
    wmean = win.mean(axis=(2, 3), keepdims=True)
    tmean = tpl.mean(axis=(0, 1))
    ccoeff = np.einsum("yxijc,ijc->yx", win - wmean, tpl - tmean)
    sum2 = np.einsum("yxijc,yxijc->yx", win, win)
    var = np.einsum("yxijc,yxijc->yx", win - wmean, win - wmean)
    sqdiff = ((win - tpl) ** 2).sum(axis=(2, 3, 4))
    t_sq = float((tpl**2).sum())
    t_energy = float(((tpl - tmean) ** 2).sum())
    return dict(
        ccorr=ccorr,
        ccoeff=ccoeff,
        sum2=sum2,
        var=var,
        sqdiff=sqdiff,
        t_sq=t_sq,
        t_energy=t_energy,
        n=n,
    )


def match_template_ref(image, template, method):
    """float64 reference of every method, with OpenCV's rules; also returns a mask of
    windows that sit near the degeneracy threshold (which may be left out)."""
    t = reference_terms(image, template)
    if method == "sqdiff":
        return t["sqdiff"], np.zeros(t["sqdiff"].shape, bool)
    if method == "ccorr":
        return t["ccorr"], np.zeros(t["ccorr"].shape, bool)
    if method == "ccoeff":
        return t["ccoeff"], np.zeros(t["ccoeff"].shape, bool)
    if method == "ccoeff_normed" and t["t_energy"] / t["n"] < DBL_EPSILON:
        return np.ones(t["ccorr"].shape), np.zeros(t["ccorr"].shape, bool)
    if method == "ccoeff_normed":
        num, diff2, tnorm = t["ccoeff"], t["var"], np.sqrt(t["t_energy"])
    elif method == "ccorr_normed":
        num, diff2, tnorm = t["ccorr"], t["sum2"], np.sqrt(t["t_sq"])
    else:
        num, diff2, tnorm = t["sqdiff"], t["sum2"], np.sqrt(t["t_sq"])
    limit = np.minimum(0.5, 10 * FLT_EPSILON * t["sum2"])
    degenerate = diff2 <= limit
    near = np.abs(diff2 - limit) <= 1e-6 * np.maximum(limit, 1e-300) + 1e-9
    t = np.where(degenerate, 0.0, np.sqrt(diff2) * tnorm)
    fallback = 1.0 if method == "sqdiff_normed" else 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(
            np.abs(num) < t,
            num / t,
            np.where(np.abs(num) < t * 1.125, np.where(num > 0, 1.0, -1.0), fallback),
        )
    return out, near


def raw_scale(image, template):
    """The magnitude raw methods are compared against: sqrt(sum T^2 * max sum I^2)."""
    t = reference_terms(image, template)
    return float(np.sqrt(max(t["t_sq"], 1e-300) * max(t["sum2"].max(), 1e-300)))


def match_template_masked_ref(image, template, mask, method):
    """float64 reference of OpenCV's masked definitions (4.4+: the mask as weights).

    With M the mask (broadcast over channels when it has one), per channel:
    sqdiff = sum((M (T - I))^2); ccorr = sum(M^2 T I);
    ccoeff = sum(T' I') with T' = M (T - sum(M T)/sum(M)), I' = M (I - sum(M I)/sum(M));
    the normed variants divide by sqrt(sum((M T)^2) sum((M I)^2)) (sqrt(sum T'^2 sum I'^2)
    for ccoeff_normed). Degenerate windows follow the unmasked rules. Returns (scores, near).
    """
    img, tpl = as_hwc(image), as_hwc(template)
    m = np.asarray(mask, np.float64)
    if m.ndim == 2:
        m = m[:, :, None]
    m = np.broadcast_to(m, tpl.shape)
    h, w, _ = tpl.shape
    win = windows(img, h, w)
    weights = m * m
    msum = m.sum(axis=(0, 1))  # per channel
    with np.errstate(divide="ignore", invalid="ignore"):
        t_mean = np.where(msum > 0, (m * tpl).sum(axis=(0, 1)) / msum, 0.0)
        i_mean = np.where(msum > 0, np.einsum("yxijc,ijc->yxc", win, m) / msum, 0.0)
    t_prime = m * (tpl - t_mean)
    i_prime = m * (win - i_mean[:, :, None, None, :])
    sum2 = np.einsum("yxijc,ijc->yx", win * win, weights)
    ccorr = np.einsum("yxijc,ijc->yx", win, weights * tpl)
    sqdiff = np.einsum("yxijc,ijc->yx", (win - tpl) ** 2, weights)
    ccoeff = np.einsum("yxijc,ijc->yx", i_prime, t_prime)
    var = np.einsum("yxijc,yxijc->yx", i_prime, i_prime)
    t_sq = float((weights * tpl * tpl).sum())
    t_energy = float((t_prime * t_prime).sum())
    zeros = np.zeros(sum2.shape, bool)
    if method == "sqdiff":
        return np.maximum(sqdiff, 0.0), zeros
    if method == "ccorr":
        return ccorr, zeros
    if method == "ccoeff":
        return ccoeff, zeros
    if method == "ccoeff_normed" and t_energy / (h * w) < DBL_EPSILON:
        return np.ones(sum2.shape), zeros
    if method == "ccoeff_normed":
        num, diff2, tnorm = ccoeff, var, np.sqrt(t_energy)
    elif method == "ccorr_normed":
        num, diff2, tnorm = ccorr, sum2, np.sqrt(t_sq)
    else:
        num, diff2, tnorm = np.maximum(sqdiff, 0.0), sum2, np.sqrt(t_sq)
    limit = np.minimum(0.5, 10 * FLT_EPSILON * sum2)
    degenerate = diff2 <= limit
    # exactly zero energy is unambiguous (a black or fully masked window)
    near = (np.abs(diff2 - limit) <= 1e-6 * np.maximum(limit, 1e-300) + 1e-9) & (diff2 > 0)
    t = np.where(degenerate, 0.0, np.sqrt(diff2) * tnorm)
    fallback = 1.0 if method == "sqdiff_normed" else 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        if method == "sqdiff_normed":  # OpenCV's masked sqdiff_normed is not clamped at 1
            out = np.where(t > 0, num / t, fallback)
        else:
            out = np.where(
                np.abs(num) < t,
                num / t,
                np.where(np.abs(num) < t * 1.125, np.where(num > 0, 1.0, -1.0), fallback),
            )
    return out, near


def find_peaks_ref(scores, lower, threshold, reach):
    """Every peak, plainly: a full sort (best first, then row, then column), then greedy
    suppression (nothing within Chebyshev distance < reach of a kept peak); NaN is no window.

    Returns [(x, y, score, margin)], the margin being the score minus the best score outside
    the peak's window (the other way round when lower is better), None if there is none.
    """
    scores = np.asarray(scores, np.float64)
    rows, cols = scores.shape
    places = [
        (scores[y, x], y, x)
        for y in range(rows)
        for x in range(cols)
        if not np.isnan(scores[y, x])
        and (
            threshold is None or (scores[y, x] <= threshold if lower else scores[y, x] >= threshold)
        )
    ]
    places.sort(key=lambda p: (p[0] if lower else -p[0], p[1], p[2]))
    kept = []
    near_kept = np.zeros((rows, cols), bool)  # within reach of a kept peak
    for score, y, x in places:
        if not near_kept[y, x]:
            kept.append((score, y, x))
            near_kept[max(0, y - reach + 1) : y + reach, max(0, x - reach + 1) : x + reach] = True
    out = []
    yy, xx = np.mgrid[:rows, :cols]
    for score, y, x in kept:
        outside = (np.maximum(abs(yy - y), abs(xx - x)) >= reach) & ~np.isnan(scores)
        if not outside.any():
            out.append((x, y, score, None))
            continue
        rival = scores[outside].min() if lower else scores[outside].max()
        out.append((x, y, score, rival - score if lower else score - rival))
    return out


def lag_sums_ref(image, h, w):
    """Σ_p F_c(p) F_c'(p + δ) over the pixel pairs inside the image, and their count, per lag δ.

    Returns lags (C, C, 2h-1, 2w-1) and pairs (2h-1, 2w-1), float64, by plain loops over the lags.
    """
    image = np.asarray(image, np.float64)
    height, width, channels = image.shape
    lags = np.zeros((channels, channels, 2 * h - 1, 2 * w - 1))
    pairs = np.zeros((2 * h - 1, 2 * w - 1))
    for dy in range(-(h - 1), h):
        for dx in range(-(w - 1), w):
            y0, y1 = max(0, -dy), min(height, height - dy)
            x0, x1 = max(0, -dx), min(width, width - dx)
            here = image[y0:y1, x0:x1].reshape(-1, channels)
            there = image[y0 + dy : y1 + dy, x0 + dx : x1 + dx].reshape(-1, channels)
            lags[:, :, dy + h - 1, dx + w - 1] = here.T @ there
            pairs[dy + h - 1, dx + w - 1] = len(here)
    return lags, pairs
