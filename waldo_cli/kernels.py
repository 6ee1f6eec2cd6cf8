"""Every Numba kernel of waldo, and nothing else.

Kernels trust their inputs: C-contiguous arrays of the dtype and rank their
docstrings give. ``engine.py`` validates and converts before calling them.
All of them are compiled lazily, once, and cached on disk (``cache=True``).
Jitted functions that call each other stay in this one file, because Numba's
cache does not notice when a callee in another file changes.

The kernels are serial and release the GIL (``nogil=True``); each takes the
band of output rows (or FFT tiles) it should fill, and ``engine.py`` runs
bands on a pool of Python threads. Serial kernels compile in about half the
time of ``parallel=True`` ones, need no OpenMP runtime (whose busy-waiting
hurts on a shared two-core machine) and start instantly from the cache.
"""

from __future__ import annotations

import glob
import os

import numpy as np
from numba import njit

# OpenCV's method numbering (TM_SQDIFF = 0 ... TM_CCOEFF_NORMED = 5).
SQDIFF, SQDIFF_NORMED, CCORR, CCORR_NORMED, CCOEFF, CCOEFF_NORMED = range(6)
# The C constants OpenCV's degenerate-window rule is written with.
FLT_EPSILON = float(np.finfo(np.float32).eps)

# The kernels each engine runs, for the cache commands and the first-run notice.
KERNELS = {
    "direct": ("_correlate_direct", "_finish_scores"),
    "fft": ("_correlate_fft", "_finish_scores"),
    "shared fft": ("_correlate_fft_shared", "_finish_scores"),
}


def skip_extension_scan() -> None:
    """Keep Numba from importing every installed Numba extension at first dispatch.

    For the ``waldo`` process only: its kernels need no extension but
    rocket-fft, which ``load_fft`` imports when the FFT path runs. Scanning
    and importing all of them costs the shell user time on every run.
    """
    from numba.core import entrypoints

    entrypoints._already_initialized = True


def load_fft() -> None:
    """Register rocket-fft's ``numpy.fft`` overloads (needed by the FFT kernel)."""
    import rocket_fft  # noqa: F401


def _cache_files(name: str) -> tuple[str, list[str]]:
    """The cache folder of one kernel and the files there that belong to it."""
    folder = globals()[name]._cache.cache_path
    stem = os.path.basename(__file__).rsplit(".", 1)[0]
    return folder, sorted(glob.glob(os.path.join(folder, f"{stem}.{name}-*")))


def is_cached(name: str) -> bool:
    """Whether Numba's on-disk cache holds an index for this kernel's current source."""
    return os.path.exists(globals()[name]._cache._cache_file._index_path)


def cache_folders() -> list[str]:
    """Where the compiled kernels are kept (the package folder if writable, else the user's)."""
    return sorted({_cache_files(name)[0] for names in KERNELS.values() for name in names})


def clear_cache() -> list[str]:
    """Delete every cached compilation of waldo's kernels; return the files removed."""
    removed = []
    for name in sorted({n for names in KERNELS.values() for n in names}):
        for path in _cache_files(name)[1]:
            os.remove(path)
            removed.append(path)
    return removed


@njit(cache=True, nogil=True, fastmath={"contract"})
def _correlate_direct(image, template, out, y0, y1):  # pragma: no cover - compiled
    """out[y, x] = sum over c, i, j of template[c, i, j] * image[c, y + i, x + j], y0 <= y < y1.

    image (C, H, W) float32, template (C, h, w) float64, out (H-h+1, W-w+1)
    float32 or float64; all C-contiguous. Products and sums are float64, so
    exact enough; each finished sum is rounded once, to out's dtype.
    """
    n_channels, _, _ = image.shape
    _, h, w = template.shape
    _, out_w = out.shape
    w4 = w - w % 4
    # Three output rows at a time (register blocking): each input row is
    # read once for the three rows whose windows cover it, and four taps
    # per pass; three accumulators is where LLVM still vectorises the loop
    # (it checks at run time that the arrays do not overlap, and gives up
    # beyond a few of them). The input is indexed from one slice, src[x + j],
    # not one slice per tap, for the same reason.
    acc0 = np.zeros(out_w)
    acc1 = np.zeros(out_w)
    acc2 = np.zeros(out_w)
    for yb in range(y0, y1, 3):
        rows = min(3, y1 - yb)
        acc0[:] = 0.0
        acc1[:] = 0.0
        acc2[:] = 0.0
        for c in range(n_channels):
            for r in range(rows + h - 1):
                row = image[c, yb + r]
                first = max(0, r - h + 1)
                last = min(rows, r + 1)
                if first == 0 and last == 3:  # input row r feeds all three rows
                    t0 = template[c, r]
                    t1 = template[c, r - 1]
                    t2 = template[c, r - 2]
                    for j in range(0, w4, 4):
                        p00, p01, p02, p03 = t0[j], t0[j + 1], t0[j + 2], t0[j + 3]
                        p10, p11, p12, p13 = t1[j], t1[j + 1], t1[j + 2], t1[j + 3]
                        p20, p21, p22, p23 = t2[j], t2[j + 1], t2[j + 2], t2[j + 3]
                        src = row[j:j + out_w + 3]
                        for x in range(out_w):
                            v0 = np.float64(src[x])
                            v1 = np.float64(src[x + 1])
                            v2 = np.float64(src[x + 2])
                            v3 = np.float64(src[x + 3])
                            acc0[x] += p00 * v0 + p01 * v1 + p02 * v2 + p03 * v3
                            acc1[x] += p10 * v0 + p11 * v1 + p12 * v2 + p13 * v3
                            acc2[x] += p20 * v0 + p21 * v1 + p22 * v2 + p23 * v3
                    for j in range(w4, w):
                        q0, q1, q2 = t0[j], t1[j], t2[j]
                        src = row[j:j + out_w]
                        for x in range(out_w):
                            v0 = np.float64(src[x])
                            acc0[x] += q0 * v0
                            acc1[x] += q1 * v0
                            acc2[x] += q2 * v0
                else:  # the first and last rows of the block: row by row
                    for k in range(first, last):
                        taps = template[c, r - k]
                        a = acc0 if k == 0 else acc1 if k == 1 else acc2
                        for j in range(0, w4, 4):
                            s0, s1, s2, s3 = taps[j], taps[j + 1], taps[j + 2], taps[j + 3]
                            src = row[j:j + out_w + 3]
                            for x in range(out_w):
                                a[x] += (s0 * src[x] + s1 * src[x + 1] + s2 * src[x + 2]
                                         + s3 * src[x + 3])
                        for j in range(w4, w):
                            s0 = taps[j]
                            src = row[j:j + out_w]
                            for x in range(out_w):
                                a[x] += s0 * src[x]
        for k in range(rows):
            a = acc0 if k == 0 else acc1 if k == 1 else acc2
            dst = out[yb + k]
            for x in range(out_w):
                dst[x] = a[x]  # rounded to out's dtype


@njit(cache=True, nogil=True)
def _correlate_fft(image, offsets, spectrum, h, w, out, first, last):  # pragma: no cover
    """The same correlation as _correlate_direct, by overlap-save FFT tiles.

    image (C, H, W) float32; offsets (C,) float64 subtracted from each channel
    (the template sums to zero, so this changes nothing but the rounding);
    spectrum (C, T, T//2+1) complex128, the conjugate spectra of the template
    planes zero-padded to T×T; out (H-h+1, W-w+1) float32. Fills tiles
    first <= tile < last, numbered row by row.
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
    for tile in range(first, min(last, tiles_y * tiles_x)):
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
            dst = out[y0 + y]
            src = corr[y]
            for x in range(min(step_x, out_w - x0)):
                dst[x0 + x] = src[x]


@njit(cache=True, nogil=True)
def _correlate_fft_shared(image, offsets, spectra, heights, widths, flat_out, starts,
                          first, last):  # pragma: no cover - compiled
    """_correlate_fft for several templates at once, transforming the image once.

    image (C, H, W) float32; offsets (C,) float64; spectra (V, C, T, T//2+1)
    complex128, template v's conjugate spectra padded to T×T; heights, widths
    (V,) int64; flat_out float32 holds template v's (H-h_v+1, W-w_v+1) map
    from starts[v]. Tiles step by what the largest template leaves valid, so
    each image tile is transformed once (C forward transforms) and then
    costs one product and one inverse transform per template. Fills tiles
    first <= tile < last.
    """
    n_channels, height, width = image.shape
    n_templates, _, tile_h, half = spectra.shape
    tile_w = 2 * (half - 1)
    step_y = tile_h - heights.max() + 1
    step_x = tile_w - widths.max() + 1
    tiles_y = (height - heights.max() + step_y) // step_y
    tiles_x = (width - widths.max() + step_x) // step_x
    buf = np.zeros((tile_h, tile_w), np.float64)
    freq = np.empty((n_channels, tile_h, half), np.complex128)
    acc = np.empty((tile_h, half), np.complex128)
    for tile in range(first, min(last, tiles_y * tiles_x)):
        ty, tx = tile // tiles_x, tile % tiles_x
        y0, x0 = ty * step_y, tx * step_x
        rows = min(tile_h, height - y0)
        cols = min(tile_w, width - x0)
        for c in range(n_channels):
            buf[:] = 0.0
            off = offsets[c]
            for y in range(rows):
                src = image[c, y0 + y, x0:x0 + cols]
                dst = buf[y]
                for x in range(cols):
                    dst[x] = src[x] - off
            freq[c] = np.fft.rfft2(buf)
        for v in range(n_templates):
            acc[:] = 0.0
            for c in range(n_channels):
                for y in range(tile_h):
                    a = acc[y]
                    f = freq[c, y]
                    t = spectra[v, c, y]
                    for x in range(half):
                        a[x] += f[x] * t[x]
            corr = np.fft.irfft2(acc, s=(tile_h, tile_w))
            out_h = height - heights[v] + 1
            out_w = width - widths[v] + 1
            out = flat_out[starts[v]:starts[v] + out_h * out_w].reshape((out_h, out_w))
            # the last tile of a row or column also fills the windows only a
            # smaller template has (its outputs run further)
            ny = step_y if ty < tiles_y - 1 else tile_h - heights[v] + 1
            nx = step_x if tx < tiles_x - 1 else tile_w - widths[v] + 1
            for y in range(min(ny, out_h - y0)):
                dst = out[y0 + y]
                src = corr[y]
                for x in range(min(nx, out_w - x0)):
                    dst[x0 + x] = src[x]


@njit(cache=True, nogil=True)
def _finish_scores(method, image, h, w, offsets, corr, template_mean, template_energy,
                   template_sq, out, y0, y1):  # pragma: no cover - compiled
    """Window statistics and OpenCV's formulas, fused: corr and image in, scores out.

    image (C, H, W) float32; offsets, template_mean (C,) float64; corr
    (H-h+1, W-w+1) float32 holds sum((T - mean T) * I); out (H-h+1, W-w+1)
    float32 (may be corr itself: each row is read before it is written).
    Fills rows y0 <= y < y1.
    """
    n_channels, _, width = image.shape
    _, out_w = out.shape
    n = float(h * w)
    inv_n = 1.0 / n
    limit = 10.0 * FLT_EPSILON
    if y0 >= y1:
        return
    # Column sums of (I - offset) and of its square over the window's rows,
    # slid down the band; the offset (the channel's rounded mean) keeps every
    # partial sum small, so float64 holds them exactly enough. Squares are
    # only ever needed summed over channels.
    col = np.zeros((n_channels, width), np.float64)
    col2 = np.zeros(width, np.float64)
    wsum = np.empty((n_channels, out_w), np.float64)
    wsq = np.empty(out_w, np.float64)
    # per-window terms over all channels, accumulated along x so the loops
    # vectorise: sum of I**2, sum of (I - window mean)**2, and the method's
    # extra term (ccorr: sum_c T_mean_c * S_c; sqdiff: sum_c (S_c - n T_mean_c)**2 / n)
    sum2 = np.empty(out_w, np.float64)
    var = np.empty(out_w, np.float64)
    extra = np.empty(out_w, np.float64)
    for c in range(n_channels):
        off = offsets[c]
        for i in range(y0, y0 + h):
            src = image[c, i]
            cc = col[c]
            for x in range(width):
                v = src[x] - off
                cc[x] += v
                col2[x] += v * v
    tnorm = np.sqrt(template_energy) if method == CCOEFF_NORMED else np.sqrt(template_sq)
    fallback = 1.0 if method == SQDIFF_NORMED else 0.0
    for y in range(y0, y1):
        if y > y0:
            for c in range(n_channels):
                off = offsets[c]
                src_in = image[c, y + h - 1]
                src_out = image[c, y - 1]
                cc = col[c]
                for x in range(width):
                    v_in = src_in[x] - off
                    v_out = src_out[x] - off
                    cc[x] += v_in - v_out
                    col2[x] += (v_in - v_out) * (v_in + v_out)
        # sliding sums along x: independent chains interleaved, so the adds'
        # latency overlaps (a single running sum is bound by it)
        if n_channels == 3:
            c0, c1, c2 = col[0], col[1], col[2]
            s0 = s1 = s2 = sq = 0.0
            for x in range(w):
                s0 += c0[x]
                s1 += c1[x]
                s2 += c2[x]
                sq += col2[x]
            wsum[0, 0], wsum[1, 0], wsum[2, 0], wsq[0] = s0, s1, s2, sq
            for x in range(1, out_w):
                s0 += c0[x + w - 1] - c0[x - 1]
                s1 += c1[x + w - 1] - c1[x - 1]
                s2 += c2[x + w - 1] - c2[x - 1]
                sq += col2[x + w - 1] - col2[x - 1]
                wsum[0, x], wsum[1, x], wsum[2, x], wsq[x] = s0, s1, s2, sq
        else:
            for c in range(n_channels):
                cc = col[c]
                s = 0.0
                for x in range(w):
                    s += cc[x]
                wsum[c, 0] = s
                for x in range(1, out_w):
                    s += cc[x + w - 1] - cc[x - 1]
                    wsum[c, x] = s
            sq = 0.0
            for x in range(w):
                sq += col2[x]
            wsq[0] = sq
            for x in range(1, out_w):
                sq += col2[x + w - 1] - col2[x - 1]
                wsq[x] = sq
        for x in range(out_w):
            sum2[x] = wsq[x]
            var[x] = wsq[x]
            extra[x] = 0.0
        for c in range(n_channels):
            o = offsets[c]
            tm = template_mean[c]
            ws = wsum[c]
            if method == CCOEFF or method == CCOEFF_NORMED:
                for x in range(out_w):
                    s_off = ws[x]
                    sum2[x] += (2.0 * o * s_off + n * o * o)
                    var[x] -= s_off * s_off * inv_n
            elif method == SQDIFF or method == SQDIFF_NORMED:
                for x in range(out_w):
                    s_off = ws[x]
                    total = s_off + n * o
                    sum2[x] += (2.0 * o * s_off + n * o * o)
                    var[x] -= s_off * s_off * inv_n
                    d = total - n * tm
                    extra[x] += d * d * inv_n
            else:
                for x in range(out_w):
                    s_off = ws[x]
                    sum2[x] += (2.0 * o * s_off + n * o * o)
                    extra[x] += tm * (s_off + n * o)
        row = corr[y]
        dst = out[y]
        if method == CCOEFF:
            for x in range(out_w):
                dst[x] = row[x]
            continue
        for x in range(out_w):
            v = max(var[x], 0.0)  # rounding can leave a flat window a hair below zero
            if method == CCOEFF_NORMED:
                r = np.float64(row[x])
                e = v
            elif method == SQDIFF or method == SQDIFF_NORMED:
                # sum (I - T)**2 from centred terms: no cancellation of large
                # uncentred sums
                r = max(v + template_energy - 2.0 * row[x] + extra[x], 0.0)
                e = sum2[x]
            else:
                r = row[x] + extra[x]
                e = sum2[x]
            if method == SQDIFF or method == CCORR:
                dst[x] = np.float32(r)
            else:
                # OpenCV's rule: a window with (almost) no energy left after
                # removing what the method ignores has no norm (t = 0); scores
                # then clamp to 0, or to 1 for sqdiff_normed. Selects only, so
                # the loop vectorises; t is never 0 in the division.
                t = np.sqrt(e) * tnorm if e > min(0.5, limit * sum2[x]) else 0.0
                a = abs(r)
                ratio = r / max(t, 1e-300)
                sign = 1.0 if r > 0 else -1.0
                dst[x] = np.float32(ratio if a < t else (sign if a < t * 1.125 else fallback))
