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
def _window_sums(image, h, w, offsets, n_chunks, sums, sqsums):  # pragma: no cover - compiled
    """Per-channel sums of (I - offset) and (I - offset)**2 over every h×w window.

    image (C, H, W) float32; offsets (C,) float64; sums and sqsums
    (C, H-h+1, W-w+1) float64. Rows are split into n_chunks parallel bands.
    """
    n_channels, _, width = image.shape
    _, out_h, out_w = sums.shape
    for chunk in prange(n_channels * n_chunks):
        c = chunk // n_chunks
        band = chunk % n_chunks
        y0 = band * out_h // n_chunks
        y1 = (band + 1) * out_h // n_chunks
        if y0 >= y1:
            continue
        off = offsets[c]
        col = np.zeros(width, np.float64)
        col2 = np.zeros(width, np.float64)
        # Column sums over the first window of the band, then slide down;
        # offsetting by the channel mean keeps every partial sum small.
        for i in range(y0, y0 + h):
            for x in range(width):
                v = image[c, i, x] - off
                col[x] += v
                col2[x] += v * v
        for y in range(y0, y1):
            if y > y0:
                for x in range(width):
                    v_in = image[c, y + h - 1, x] - off
                    v_out = image[c, y - 1, x] - off
                    col[x] += v_in - v_out
                    col2[x] += v_in * v_in - v_out * v_out
            s = 0.0
            s2 = 0.0
            for x in range(w):
                s += col[x]
                s2 += col2[x]
            sums[c, y, 0] = s
            sqsums[c, y, 0] = s2
            for x in range(1, out_w):
                s += col[x + w - 1] - col[x - 1]
                s2 += col2[x + w - 1] - col2[x - 1]
                sums[c, y, x] = s
                sqsums[c, y, x] = s2


@njit(parallel=True, cache=True, nogil=True)
def _finish_scores(method, corr, sums, sqsums, offsets, template_mean, template_energy,
                   template_sq, n, out):  # pragma: no cover - compiled
    """Turn the centred correlation and window sums into OpenCV's scores.

    corr (H', W') float64 holds sum((T - mean T) * I); sums, sqsums
    (C, H', W') float64 from _window_sums; out (H', W') float32.
    """
    n_channels, out_h, out_w = sums.shape
    limit = 10.0 * FLT_EPSILON
    for y in prange(out_h):
        for x in range(out_w):
            num = corr[y, x]
            wnd_sum2 = 0.0  # sum of I**2 over the window, all channels
            wnd_var = 0.0  # sum of (I - window mean)**2, all channels
            mean_term = 0.0  # sum over c of T_mean_c * S_c
            gap = 0.0  # sum over c of (S_c - n * T_mean_c)**2 / n
            for c in range(n_channels):
                s_off = sums[c, y, x]
                q_off = sqsums[c, y, x]
                o = offsets[c]
                s = s_off + n * o
                wnd_sum2 += q_off + 2.0 * o * s_off + n * o * o
                var_c = q_off - s_off * s_off / n
                # rounding can leave a flat window a hair below zero
                wnd_var += var_c if var_c > 0.0 else 0.0
                mean_term += template_mean[c] * s
                d = s - n * template_mean[c]
                gap += d * d / n
            if method == CCOEFF or method == CCOEFF_NORMED:
                diff2 = wnd_var
                tnorm = np.sqrt(template_energy)
            elif method == SQDIFF or method == SQDIFF_NORMED:
                # sum (I - T)**2 from centred terms: no cancellation of
                # large uncentred sums
                num = wnd_var + template_energy - 2.0 * num + gap
                num = num if num > 0.0 else 0.0
                diff2 = wnd_sum2
                tnorm = np.sqrt(template_sq)
            else:
                num = num + mean_term
                diff2 = wnd_sum2
                tnorm = np.sqrt(template_sq)
            if method == SQDIFF_NORMED or method == CCORR_NORMED or method == CCOEFF_NORMED:
                # OpenCV's rule: a window with (almost) no energy left after
                # removing what the method ignores has no defined score.
                if diff2 <= min(0.5, limit * wnd_sum2):
                    t = 0.0
                else:
                    t = np.sqrt(diff2) * tnorm
                if abs(num) < t:
                    num = num / t
                elif abs(num) < t * 1.125:
                    num = 1.0 if num > 0 else -1.0
                else:
                    num = 1.0 if method == SQDIFF_NORMED else 0.0
            out[y, x] = np.float32(num)
