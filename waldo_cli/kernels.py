"""Every Numba kernel of waldo, and nothing else.

Kernels trust their inputs: C-contiguous arrays of the dtype and rank their
docstrings give. ``engine.py`` validates and converts before calling them.
All of them are compiled lazily, once, and cached on disk (``cache=True``).
Jitted functions that call each other stay in this one file, because Numba's
cache does not notice when a callee in another file changes.
"""

from __future__ import annotations

import os

# GNU OpenMP spins while it waits; on a shared two-core machine a spinning
# worker steals the core the other thread needs. Must be set before Numba
# starts its thread pool.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import numba  # noqa: E402
import numpy as np  # noqa: E402
from numba import njit, prange  # noqa: E402

# OpenCV's method numbering (TM_SQDIFF = 0 ... TM_CCOEFF_NORMED = 5).
SQDIFF, SQDIFF_NORMED, CCORR, CCORR_NORMED, CCOEFF, CCOEFF_NORMED = range(6)
# The C constants OpenCV's degenerate-window rule is written with.
FLT_EPSILON = float(np.finfo(np.float32).eps)


def thread_count() -> int:
    """The number of threads parallel kernels use now (``NUMBA_NUM_THREADS``)."""
    return int(numba.get_num_threads())


@njit(parallel=True, cache=True, nogil=True, fastmath={"contract"})
def _correlate_direct(image, template, out):  # pragma: no cover - compiled
    """out[y, x] = sum over c, i, j of template[c, i, j] * image[c, y + i, x + j].

    image (C, H, W) float32, template (C, h, w) float64, out (H-h+1, W-w+1)
    float64; all C-contiguous. Products and sums are float64, so exact enough.
    """
    n_channels, _, _ = image.shape
    _, h, w = template.shape
    out_h, out_w = out.shape
    w4 = w - w % 4
    for y in prange(out_h):
        acc = np.zeros(out_w, np.float64)
        for c in range(n_channels):
            for i in range(h):
                row = image[c, y + i]
                taps = template[c, i]
                # Four taps per pass over the row: a quarter of the traffic
                # through the accumulator, which bounds the speed here.
                # Slices, not row[x + j]: they let LLVM drop the negative-index
                # checks and vectorise the loop (nine times faster here).
                for j in range(0, w4, 4):
                    t0 = taps[j]
                    t1 = taps[j + 1]
                    t2 = taps[j + 2]
                    t3 = taps[j + 3]
                    r0 = row[j:j + out_w]
                    r1 = row[j + 1:j + 1 + out_w]
                    r2 = row[j + 2:j + 2 + out_w]
                    r3 = row[j + 3:j + 3 + out_w]
                    for x in range(out_w):
                        acc[x] += t0 * r0[x] + t1 * r1[x] + t2 * r2[x] + t3 * r3[x]
                for j in range(w4, w):
                    t0 = taps[j]
                    r0 = row[j:j + out_w]
                    for x in range(out_w):
                        acc[x] += t0 * r0[x]
        out[y] = acc


@njit(parallel=True, cache=True, nogil=True)
def _correlate_fft(image, offsets, spectrum, h, w, out):  # pragma: no cover - compiled
    """The same correlation as _correlate_direct, by overlap-save FFT tiles.

    image (C, H, W) float32; offsets (C,) float64 subtracted from each channel
    (the template sums to zero, so this changes nothing but the rounding);
    spectrum (C, T, T//2+1) complex128 from _template_spectrum; out
    (H-h+1, W-w+1) float64. Tiles are T×T and run in parallel.
    """
    n_channels, height, width = image.shape
    tile_h = spectrum.shape[1]
    half = spectrum.shape[2]
    tile_w = 2 * (half - 1)
    out_h, out_w = out.shape
    step_y = tile_h - h + 1
    step_x = tile_w - w + 1
    tiles_y = (out_h + step_y - 1) // step_y
    tiles_x = (out_w + step_x - 1) // step_x
    for tile in prange(tiles_y * tiles_x):
        y0 = (tile // tiles_x) * step_y
        x0 = (tile % tiles_x) * step_x
        rows = min(tile_h, height - y0)
        cols = min(tile_w, width - x0)
        acc = np.zeros((tile_h, half), np.complex128)
        buf = np.zeros((tile_h, tile_w), np.float64)
        for c in range(n_channels):
            off = offsets[c]
            for y in range(rows):
                src = image[c, y0 + y, x0:x0 + cols]
                dst = buf[y]
                for x in range(cols):
                    dst[x] = src[x] - off
            # float64 transforms: their rounding is far below the 2e-5 the
            # scores must keep, even for flat windows in a bright tile
            freq = np.fft.rfft2(buf)
            for y in range(tile_h):
                a = acc[y]
                f = freq[y]
                t = spectrum[c, y]
                for x in range(half):
                    a[x] += f[x] * t[x]
        corr = np.fft.irfft2(acc, s=(tile_h, tile_w))
        for y in range(min(step_y, out_h - y0)):
            out[y0 + y, x0:x0 + min(step_x, out_w - x0)] = corr[y, :min(step_x, out_w - x0)]


@njit(cache=True, nogil=True)
def _template_spectrum(template, tile_h, tile_w):  # pragma: no cover - compiled
    """Conjugate spectra of the zero-padded template planes, for correlation.

    template (C, h, w) float64; returns (C, tile_h, tile_w//2+1) complex128.
    """
    n_channels, h, w = template.shape
    spectrum = np.empty((n_channels, tile_h, tile_w // 2 + 1), np.complex128)
    pad = np.zeros((tile_h, tile_w), np.float64)
    for c in range(n_channels):
        pad[:h, :w] = template[c]
        spectrum[c] = np.conj(np.fft.rfft2(pad))
    return spectrum


@njit(parallel=True, cache=True, nogil=True)
def _finish_scores(method, image, h, w, offsets, corr, template_mean, template_energy,
                   template_sq, n_bands, out):  # pragma: no cover - compiled
    """Window statistics and OpenCV's formulas, fused: corr and image in, scores out.

    image (C, H, W) float32; offsets, template_mean (C,) float64; corr
    (H-h+1, W-w+1) float64 holds sum((T - mean T) * I); out (H-h+1, W-w+1)
    float32. Rows are split into n_bands parallel bands.
    """
    n_channels, _, width = image.shape
    out_h, out_w = out.shape
    n = float(h * w)
    inv_n = 1.0 / n
    limit = 10.0 * FLT_EPSILON
    for band in prange(n_bands):
        y0 = band * out_h // n_bands
        y1 = (band + 1) * out_h // n_bands
        if y0 >= y1:
            continue
        # Column sums of (I - offset) and its square over the window's rows,
        # slid down the band; the offset (the channel's rounded mean) keeps
        # every partial sum small, so float64 holds them exactly enough.
        col = np.zeros((n_channels, width), np.float64)
        col2 = np.zeros((n_channels, width), np.float64)
        wsum = np.empty((n_channels, out_w), np.float64)
        wsq = np.empty((n_channels, out_w), np.float64)
        for c in range(n_channels):
            off = offsets[c]
            for i in range(y0, y0 + h):
                src = image[c, i]
                for x in range(width):
                    v = src[x] - off
                    col[c, x] += v
                    col2[c, x] += v * v
        for y in range(y0, y1):
            for c in range(n_channels):
                off = offsets[c]
                if y > y0:
                    src_in = image[c, y + h - 1]
                    src_out = image[c, y - 1]
                    for x in range(width):
                        v_in = src_in[x] - off
                        v_out = src_out[x] - off
                        col[c, x] += v_in - v_out
                        col2[c, x] += v_in * v_in - v_out * v_out
                s = 0.0
                s2 = 0.0
                for x in range(w):
                    s += col[c, x]
                    s2 += col2[c, x]
                wsum[c, 0] = s
                wsq[c, 0] = s2
                for x in range(1, out_w):
                    s += col[c, x + w - 1] - col[c, x - 1]
                    s2 += col2[c, x + w - 1] - col2[c, x - 1]
                    wsum[c, x] = s
                    wsq[c, x] = s2
            # Per-window terms over all channels, accumulated along x so the
            # loops vectorise.
            sum2 = np.zeros(out_w, np.float64)  # sum of I**2
            var = np.zeros(out_w, np.float64)  # sum of (I - window mean)**2
            mean_term = np.zeros(out_w, np.float64)  # sum_c T_mean_c * S_c
            gap = np.zeros(out_w, np.float64)  # sum_c (S_c - n T_mean_c)**2 / n
            for c in range(n_channels):
                o = offsets[c]
                tm = template_mean[c]
                ws = wsum[c]
                wq = wsq[c]
                for x in range(out_w):
                    s_off = ws[x]
                    q_off = wq[x]
                    total = s_off + n * o
                    sum2[x] += q_off + 2.0 * o * s_off + n * o * o
                    # rounding can leave a flat window a hair below zero
                    var[x] += max(q_off - s_off * s_off * inv_n, 0.0)
                    mean_term[x] += tm * total
                    d = total - n * tm
                    gap[x] += d * d * inv_n
            row = corr[y]
            num = np.empty(out_w, np.float64)
            if method == CCOEFF or method == CCOEFF_NORMED:
                for x in range(out_w):
                    num[x] = row[x]
                energy = var
                tnorm = np.sqrt(template_energy)
            elif method == SQDIFF or method == SQDIFF_NORMED:
                # sum (I - T)**2 from centred terms: no cancellation of large
                # uncentred sums
                for x in range(out_w):
                    num[x] = max(var[x] + template_energy - 2.0 * row[x] + gap[x], 0.0)
                energy = sum2
                tnorm = np.sqrt(template_sq)
            else:
                for x in range(out_w):
                    num[x] = row[x] + mean_term[x]
                energy = sum2
                tnorm = np.sqrt(template_sq)
            dst = out[y]
            if method == SQDIFF or method == CCORR or method == CCOEFF:
                for x in range(out_w):
                    dst[x] = np.float32(num[x])
                continue
            # OpenCV's rule: a window with (almost) no energy left after
            # removing what the method ignores has no norm (t = 0); scores
            # then clamp to 0, or to 1 for sqdiff_normed.
            fallback = 1.0 if method == SQDIFF_NORMED else 0.0
            for x in range(out_w):
                e = energy[x]
                t = 0.0 if e <= min(0.5, limit * sum2[x]) else np.sqrt(e) * tnorm
                r = num[x]
                a = abs(r)
                if a < t:
                    r = r / t
                elif a < t * 1.125:
                    r = 1.0 if r > 0 else -1.0
                else:
                    r = fallback
                dst[x] = np.float32(r)
