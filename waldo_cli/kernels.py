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

import numpy as np

from waldo_cli.jit import cache_dir

cache_dir()  # a cache folder Numba can write, before it picks one for the kernels below

from numba import njit  # noqa: E402

# OpenCV's method numbering (TM_SQDIFF = 0 ... TM_CCOEFF_NORMED = 5).
SQDIFF, SQDIFF_NORMED, CCORR, CCORR_NORMED, CCOEFF, CCOEFF_NORMED = range(6)
# The C constants OpenCV's degenerate-window rule is written with.
FLT_EPSILON = float(np.finfo(np.float32).eps)
# The largest float32: raw scores beyond it are stored as it (saturated), never inf.
FLT_MAX = float(np.finfo(np.float32).max)

# rocket-fft's low-level transforms, r2c(ain, aout, axes, forward, fct,
# threads) and c2r: they write into arrays we own and compile in a fraction
# of the time numpy.fft's interface takes (its argument checks and error
# messages are compiled into every caller: 9 of the 12 s the FFT kernel
# took). ``jit.load_fft`` sets them before an FFT kernel is compiled or
# loaded, so that a direct search never imports rocket-fft (0.4 s).
_r2c = None
_c2r = None


@njit(cache=True, nogil=True, fastmath={"contract"})
def _correlate_direct(image, template, out, acc, y0, y1):  # pragma: no cover - compiled
    """out[y, x] = sum over c, i, j of template[c, i, j] * image[c, y + i, x + j], y0 <= y < y1.

    image (C, H, W) float32, template (C, h, w) float64, out (H-h+1, W-w+1)
    float32 or float64; acc (3, W-w+1) float64 scratch; all C-contiguous.
    Products and sums are float64, so exact enough; each finished sum is
    rounded once, to out's dtype.
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
    acc0 = acc[0]
    acc1 = acc[1]
    acc2 = acc[2]
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
                        src = row[j : j + out_w + 3]
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
                        src = row[j : j + out_w]
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
                            src = row[j : j + out_w + 3]
                            for x in range(out_w):
                                a[x] += (
                                    s0 * src[x]
                                    + s1 * src[x + 1]
                                    + s2 * src[x + 2]
                                    + s3 * src[x + 3]
                                )
                        for j in range(w4, w):
                            s0 = taps[j]
                            src = row[j : j + out_w]
                            for x in range(out_w):
                                a[x] += s0 * src[x]
        for k in range(rows):
            a = acc0 if k == 0 else acc1 if k == 1 else acc2
            dst = out[yb + k]
            for x in range(out_w):
                dst[x] = a[x]  # rounded to out's dtype


@njit(cache=True, nogil=True)
def _correlate_fft(
    image, offsets, spectra, heights, widths, flat_out, starts, axes, real, spectral, first, last
):  # pragma: no cover - compiled
    """The correlation of _correlate_direct, by overlap-save FFT tiles, for V templates.

    image (C, H, W) float32; offsets (C,) float64 subtracted from each channel
    (the templates sum to zero, so this changes nothing but the rounding);
    spectra (V, C, T, T//2+1) complex128, template v's conjugate spectra
    padded to T×T; heights, widths (V,) int64; flat_out float32 holds
    template v's (H-h_v+1, W-w_v+1) map from starts[v]. Tiles step by what
    the largest template leaves valid, so each image tile is transformed
    once (C forward transforms) and then costs one product and one inverse
    transform per template. Channels are summed in the frequency domain;
    the transforms are float64, whose rounding stays far below the 2e-5 the
    scores must keep, even for flat windows in a bright tile. Fills tiles
    first <= tile < last. Scratch: axes (0, 1) int64; real (2, T, T)
    float64, zeros; spectral (K + 1, T, T//2+1) complex128, K = C for
    several templates, else 1.
    """
    n_channels, height, width = image.shape
    n_templates, _, tile_h, half = spectra.shape
    tile_w = 2 * (half - 1)
    h_max = 0
    w_max = 0
    for v in range(n_templates):
        h_max = max(h_max, heights[v])
        w_max = max(w_max, widths[v])
    step_y = tile_h - h_max + 1
    step_x = tile_w - w_max + 1
    tiles_y = (height - h_max + step_y) // step_y
    tiles_x = (width - w_max + step_x) // step_x
    scale = 1.0 / (tile_h * tile_w)  # the inverse transform's normalisation
    buf = real[0]
    corr = real[1]
    # one template: each channel's spectrum goes into the product while it is
    # still in the cache; several: the spectra are kept for all of them
    keep = n_templates > 1
    freq = spectral[: spectral.shape[0] - 1]
    acc = spectral[spectral.shape[0] - 1]
    for tile in range(first, min(last, tiles_y * tiles_x)):
        ty, tx = tile // tiles_x, tile % tiles_x
        y0, x0 = ty * step_y, tx * step_x
        rows = min(tile_h, height - y0)
        cols = min(tile_w, width - x0)
        acc[:] = 0.0
        for c in range(n_channels):
            if rows < tile_h or cols < tile_w:
                buf[:] = 0.0  # the zero padding past the image's edge
            off = offsets[c]
            for y in range(rows):
                src = image[c, y0 + y, x0 : x0 + cols]
                dst = buf[y]
                for x in range(cols):
                    dst[x] = src[x] - off
            spectrum = freq[c if keep else 0]
            _r2c(buf, spectrum, axes, True, 1.0, 1)
            if not keep:
                _multiply_add(acc, spectrum, spectra[0, c])
        for v in range(n_templates):
            if keep:
                acc[:] = 0.0
                for c in range(n_channels):
                    _multiply_add(acc, freq[c], spectra[v, c])
            _c2r(acc, corr, axes, False, scale, 1)
            out_h = height - heights[v] + 1
            out_w = width - widths[v] + 1
            out = flat_out[starts[v] : starts[v] + out_h * out_w].reshape((out_h, out_w))
            # the last tile of a row or column also fills the windows only a
            # smaller template has (its outputs run further)
            ny = step_y if ty < tiles_y - 1 else tile_h - heights[v] + 1
            nx = step_x if tx < tiles_x - 1 else tile_w - widths[v] + 1
            for y in range(min(ny, out_h - y0)):
                dst = out[y0 + y]
                src = corr[y]
                for x in range(min(nx, out_w - x0)):
                    dst[x0 + x] = src[x]


@njit(nogil=True)
def _multiply_add(acc, freq, spectrum):  # pragma: no cover - compiled
    """Add freq * spectrum to acc, elementwise; (T, T//2+1) complex128 each, inlined by callers."""
    rows, half = acc.shape
    for y in range(rows):
        a = acc[y]
        f = freq[y]
        t = spectrum[y]
        for x in range(half):
            a[x] += f[x] * t[x]


@njit(cache=True, nogil=True)
def _finish_scores(
    method,
    image,
    h,
    w,
    offsets,
    corr,
    unscale,
    template_mean,
    template_energy,
    template_sq,
    out,
    work,
    y0,
    y1,
):  # pragma: no cover - compiled
    """Window statistics and OpenCV's formulas, fused: corr and image in, scores out.

    image (C, H, W) float32; offsets, template_mean (C,) float64; corr
    (H-h+1, W-w+1) float32 holds sum((T - mean T) * I) / unscale (a power of
    two that kept it within float32); out (H-h+1, W-w+1) float32 (may be
    corr itself: each row is read before it is written). Raw scores beyond
    float32 are stored as ±FLT_MAX. Fills rows y0 <= y < y1. work (2C + 5,
    W) float64 is scratch.
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
    col = work[:n_channels]
    col2 = work[n_channels]
    for r in range(n_channels + 1):
        zero = work[r]
        for x in range(width):
            zero[x] = 0.0
    wsum = work[n_channels + 1 : 2 * n_channels + 1]
    wsq = work[2 * n_channels + 1]
    # per-window terms over all channels, accumulated along x so the loops
    # vectorise: sum of I**2, sum of (I - window mean)**2, and the method's
    # extra term (ccorr: sum_c T_mean_c * S_c; sqdiff: sum_c (S_c - n T_mean_c)**2 / n)
    sum2 = work[2 * n_channels + 2]
    var = work[2 * n_channels + 3]
    extra = work[2 * n_channels + 4]
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
                    sum2[x] += 2.0 * o * s_off + n * o * o
                    var[x] -= s_off * s_off * inv_n
            elif method == SQDIFF or method == SQDIFF_NORMED:
                for x in range(out_w):
                    s_off = ws[x]
                    total = s_off + n * o
                    sum2[x] += 2.0 * o * s_off + n * o * o
                    var[x] -= s_off * s_off * inv_n
                    d = total - n * tm
                    extra[x] += d * d * inv_n
            else:
                for x in range(out_w):
                    s_off = ws[x]
                    sum2[x] += 2.0 * o * s_off + n * o * o
                    extra[x] += tm * (s_off + n * o)
        row = corr[y]
        dst = out[y]
        if method == CCOEFF:
            for x in range(out_w):
                dst[x] = np.float32(min(max(row[x] * unscale, -FLT_MAX), FLT_MAX))
            continue
        for x in range(out_w):
            v = max(var[x], 0.0)  # rounding can leave a flat window a hair below zero
            c = row[x] * unscale  # float64: the product is exact
            if method == CCOEFF_NORMED:
                r = c
                e = v
            elif method == SQDIFF or method == SQDIFF_NORMED:
                # sum (I - T)**2 from centred terms: no cancellation of large
                # uncentred sums
                r = max(v + template_energy - 2.0 * c + extra[x], 0.0)
                e = sum2[x]
            else:
                r = c + extra[x]
                e = sum2[x]
            if method == SQDIFF or method == CCORR:
                # beyond float32 (huge pixel values): saturated, not inf
                dst[x] = np.float32(min(max(r, -FLT_MAX), FLT_MAX))
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


# Masked matching. With J_c = I_c - o_c the image offset per channel (o = 0
# for the ccorr and sqdiff methods, whose sums are not differenced), the
# masked scores need at most these window sums, called maps here, in this
# order along the first axis of a maps array (C the channels):
#   0         NUM: sum over c of K_c * J_c, with K = W T (ccorr, sqdiff) or
#             the ccoeff kernel K' = W (T - mean_M T) - (sum of that / sum M) M,
#             whose last term folds the window's masked mean into the kernel
#   1         B: sum over c of W_c * J_c**2
#   2 .. 1+C  A_c: W_c * J_c (ccoeff_normed only)
#   2+C ..    S_c: M_c * J_c (ccoeff_normed with a soft mask only; a 0/1 mask
#             has M = W, so S = A)
# where M is the mask, W = M**2 and * is the window sum of the product.


@njit(nogil=True, inline="always")
def _masked_window(
    method, image, offsets, kern, weights, mask, m_sum, t_sq, top, left
):  # pragma: no cover - compiled
    """(numerator, energy, sum W I**2) of the window at (top, left), summed directly.

    Inlined into _masked_scores at Numba's IR (a rare path): compiled as
    part of it, not as a function of its own with its own optimisation,
    which took about 0.8 s of a first masked search's compile.

    The energy is summed as sum W (J - mean_M J)**2 (ccoeff_normed) or
    sum W I**2, terms that are never negative: exact to rounding even where
    the maps' differences cancel. Arguments as in _masked_maps.
    """
    n_channels = image.shape[0]
    _, h, w = kern.shape
    planes = mask.shape[0]
    num = 0.0
    energy = 0.0
    sum2 = 0.0
    for c in range(n_channels):
        p = 0 if planes == 1 else c
        o = offsets[c]
        s = 0.0
        for i in range(h):
            src = image[c, top + i]
            for j in range(w):
                v = np.float64(src[left + j])
                num += kern[c, i, j] * (v - o)
                sum2 += weights[p, i, j] * v * v
                s += mask[p, i, j] * (v - o)
        if method == CCOEFF_NORMED and m_sum[c] > 0.0:
            m = o + s / m_sum[c]
            for i in range(h):
                src = image[c, top + i]
                for j in range(w):
                    d = src[left + j] - m
                    energy += weights[p, i, j] * d * d
    if method != CCOEFF_NORMED:
        energy = sum2
    if method == SQDIFF or method == SQDIFF_NORMED:
        num = max(t_sq - 2.0 * num + sum2, 0.0)
    return num, energy, sum2


@njit(nogil=True)
def _masked_scores(
    method,
    maps,
    y,
    image,
    kern,
    weights,
    mask,
    top,
    left,
    offsets,
    w_sum,
    m_sum,
    t_sq,
    tnorm,
    floor,
    soft,
    work,
    dst,
):  # pragma: no cover - compiled
    """OpenCV's masked formulas and waldo's degenerate rules, from row y of the maps.

    maps (2+2C, rows, cols) float64 as above; image, kern, weights, mask as
    in _masked_maps, (top, left) the window dst[0] scores; offsets, w_sum
    (sum W), m_sum (sum M) (C,) float64; t_sq = sum W T**2; tnorm the
    template's norm (sqrt of t_sq, or of sum W (T - mean_M T)**2 for
    ccoeff_normed); floor the energy below which a window counts as black
    or flat; work (3, cols) float64 scratch; dst (n,) float32, n <= cols.
    Not cached itself: it is compiled into the kernel that calls it, _masked_rows.
    """
    n = dst.shape[0]
    n_channels = offsets.shape[0]
    first = maps[0, y]
    # raw scores beyond float32 (huge pixels or weights) are saturated, not inf
    if method == CCORR or method == CCOEFF:
        for x in range(n):
            dst[x] = min(max(first[x], -FLT_MAX), FLT_MAX)
        return
    num = work[0]
    energy = work[1]  # what the norm's square root is taken of
    sum2 = work[2]  # sum W I**2, for the degenerate-window rule
    b = maps[1, y]
    for x in range(n):
        num[x] = first[x]
        energy[x] = b[x]
        sum2[x] = b[x]
    if method == CCOEFF_NORMED:
        for c in range(n_channels):
            a = maps[2 + c, y]
            s = maps[2 + n_channels + c, y] if soft else a
            # a channel the mask leaves out entirely has no mean; its terms vanish
            inv = 1.0 / m_sum[c] if m_sum[c] > 0.0 else 0.0
            o = offsets[c]
            ws = w_sum[c]
            for x in range(n):
                m = s[x] * inv  # the window's masked mean, offset
                sum2[x] += (2.0 * a[x] + o * ws) * o
                energy[x] += (m * ws - 2.0 * a[x]) * m
    elif method != CCORR_NORMED:
        for x in range(n):
            # sum W (T - I)**2; rounding can take a perfect match below 0
            num[x] = max(t_sq - 2.0 * num[x] + sum2[x], 0.0)
        if method == SQDIFF:
            for x in range(n):
                dst[x] = min(num[x], FLT_MAX)
            return
    limit_scale = 10.0 * FLT_EPSILON
    # The maps' energies carry an absolute rounding error of up to floor / 10:
    # where that is over 1/400 of a percent of the energy (a window nearly
    # black, or nearly flat but not degenerate), the score would carry it, so
    # such windows are summed again directly. They are rare: with 8-bit
    # pixels only under weights below 1e-3 or so.
    recheck = 4096.0 * floor
    for x in range(n):
        e = energy[x]
        if floor < e < recheck and e >= 0.5 * min(0.5, limit_scale * sum2[x]):
            num[x], energy[x], sum2[x] = _masked_window(
                method, image, offsets, kern, weights, mask, m_sum, t_sq, top, left + x
            )
    # OpenCV's degenerate-window rule, and the floor: energies within the
    # rounding of their sums are 0 (a black window's energy from differenced
    # or transformed sums is a rounding residue, not 0). Written with
    # selects only, so the loops vectorise; r / t is computed even where it
    # is not used, so t must never be 0 there.
    if method == SQDIFF_NORMED:
        for x in range(n):
            e = energy[x]
            t = np.sqrt(max(e, 0.0)) * tnorm
            ok = e > max(min(0.5, limit_scale * sum2[x]), floor) and t > 0.0
            # as OpenCV's masked path: a plain ratio, not clamped at 1
            dst[x] = np.float32(min(num[x] / max(t, 1e-300), FLT_MAX) if ok else 1.0)
        return
    for x in range(n):
        e = energy[x]
        t = np.sqrt(max(e, 0.0)) * tnorm
        t = t if e > max(min(0.5, limit_scale * sum2[x]), floor) else 0.0
        r = num[x]
        a = abs(r)
        ratio = r / max(t, 1e-300)
        sign = 1.0 if r > 0 else -1.0
        # |r| <= t exactly (Cauchy-Schwarz); rounding past it is clamped as OpenCV does
        dst[x] = np.float32(ratio if a < t else (sign if a < t * 1.125 else 0.0))


@njit(nogil=True, fastmath={"contract"})
def _accumulate(acc, row, taps, index, count):  # pragma: no cover - compiled
    """acc[x] += taps[j] * row[j + x] for j in index[:count]: one row of a window sum.

    acc (n,) float64, row (n + w - 1,) float64, taps (w,) float64;
    index (w,) int64, the taps that are not 0. Not cached itself: compiled
    into its callers.
    """
    n = acc.shape[0]
    t = 0
    # four taps per pass over the row: a quarter of the accumulator traffic
    while t + 4 <= count:
        j0 = index[t]
        j1 = index[t + 1]
        j2 = index[t + 2]
        j3 = index[t + 3]
        c0 = taps[j0]
        c1 = taps[j1]
        c2 = taps[j2]
        c3 = taps[j3]
        r0 = row[j0 : j0 + n]
        r1 = row[j1 : j1 + n]
        r2 = row[j2 : j2 + n]
        r3 = row[j3 : j3 + n]
        for x in range(n):
            acc[x] += c0 * r0[x] + c1 * r1[x] + c2 * r2[x] + c3 * r3[x]
        t += 4
    if t + 2 <= count:
        j0 = index[t]
        j1 = index[t + 1]
        c0 = taps[j0]
        c1 = taps[j1]
        r0 = row[j0 : j0 + n]
        r1 = row[j1 : j1 + n]
        for x in range(n):
            acc[x] += c0 * r0[x] + c1 * r1[x]
        t += 2
    if t < count:
        j0 = index[t]
        c0 = taps[j0]
        r0 = row[j0 : j0 + n]
        for x in range(n):
            acc[x] += c0 * r0[x]


@njit(nogil=True, fastmath={"contract"})
def _accumulate2(acc, acc2, row, taps, taps2, index, count):  # pragma: no cover - compiled
    """_accumulate into two maps at once, with taps and taps2: the row is read once."""
    n = acc.shape[0]
    t = 0
    while t + 4 <= count:
        j0 = index[t]
        j1 = index[t + 1]
        j2 = index[t + 2]
        j3 = index[t + 3]
        c0 = taps[j0]
        c1 = taps[j1]
        c2 = taps[j2]
        c3 = taps[j3]
        d0 = taps2[j0]
        d1 = taps2[j1]
        d2 = taps2[j2]
        d3 = taps2[j3]
        r0 = row[j0 : j0 + n]
        r1 = row[j1 : j1 + n]
        r2 = row[j2 : j2 + n]
        r3 = row[j3 : j3 + n]
        for x in range(n):
            v0 = r0[x]
            v1 = r1[x]
            v2 = r2[x]
            v3 = r3[x]
            acc[x] += c0 * v0 + c1 * v1 + c2 * v2 + c3 * v3
            acc2[x] += d0 * v0 + d1 * v1 + d2 * v2 + d3 * v3
        t += 4
    while t < count:
        j0 = index[t]
        c0 = taps[j0]
        d0 = taps2[j0]
        r0 = row[j0 : j0 + n]
        for x in range(n):
            v0 = r0[x]
            acc[x] += c0 * v0
            acc2[x] += d0 * v0
        t += 1


@njit(cache=True, nogil=True)
def _masked_maps(
    method,
    image,
    offsets,
    kern,
    weights,
    mask,
    w_sum,
    m_sum,
    soft,
    index,
    count,
    k_sum,
    ring,
    maps,
    y0,
    y1,
):  # pragma: no cover - compiled
    """The maps of the masked scores by sliding windows, for rows y0 <= y < y1.

    image (C, H, W) float64 (the rows the windows read: float32 pixels,
    converted, so that _accumulate is compiled for one row type); offsets
    (C,) float64 (0 for ccorr and sqdiff);
    kern (C, h, w), weights and mask (C or 1, h, w) float64 (one plane: the
    same for every channel); w_sum, m_sum, soft as in _masked_scores.
    index (C or 1, h, w) int64 and count (C or 1, h) int64: the taps each
    row of the mask keeps (the first count[p, i] of index[p, i]; left-out
    pixels add to no map); k_sum (C,) the sum of each kern plane. Scratch:
    ring (C or 1, or 0 when the method needs no squares, h, W) float64.
    Fills maps[:, y - y0] of maps (2 + 2C, at least y1 - y0, W-w+1) float64,
    in the order the comment above _masked_window gives.
    """
    n_channels, _, width = image.shape
    _, h, w = kern.shape
    planes = mask.shape[0]
    out_w = maps.shape[2]
    if y0 >= y1:
        return
    need_b = method != CCORR and method != CCOEFF
    need_a = method == CCOEFF_NORMED
    need_s = need_a and soft
    # The linear maps are summed from the pixels (float32 values, given as
    # float64) and offset after:
    # sum K (I - o) = sum K I - o sum K. The squares cannot be: the last h
    # image rows of (I - o)**2, summed over channels when one weight plane
    # serves all, are kept in a ring, each row computed once.
    for y in range(y0, y1):
        row = y - y0
        if need_b:
            for r in range(y0 if y == y0 else y + h - 1, y + h):
                slot = ring[:, r % h]
                slot[:] = 0.0
                for c in range(n_channels):
                    o = offsets[c]
                    src = image[c, r]
                    dst = slot[0 if planes == 1 else c]
                    for x in range(width):
                        v = src[x] - o
                        dst[x] += v * v
        for k in range(maps.shape[0]):
            clear = maps[k, row]
            for x in range(out_w):
                clear[x] = 0.0
        for i in range(h):
            if need_b:
                for p in range(planes):
                    _accumulate(
                        maps[1, row], ring[p, (y + i) % h], weights[p, i], index[p, i], count[p, i]
                    )
            for c in range(n_channels):
                p = 0 if planes == 1 else c
                src = image[c, y + i]
                if need_a:
                    _accumulate2(
                        maps[0, row],
                        maps[2 + c, row],
                        src,
                        kern[c, i],
                        weights[p, i],
                        index[p, i],
                        count[p, i],
                    )
                else:
                    _accumulate(maps[0, row], src, kern[c, i], index[p, i], count[p, i])
                if need_s:
                    _accumulate(
                        maps[2 + n_channels + c, row], src, mask[p, i], index[p, i], count[p, i]
                    )
        for c in range(n_channels):
            o = offsets[c]
            if o != 0.0:
                shift = o * k_sum[c]
                num = maps[0, row]
                for x in range(out_w):
                    num[x] -= shift
                if need_a:
                    shift = o * w_sum[c]
                    a = maps[2 + c, row]
                    for x in range(out_w):
                        a[x] -= shift
                if need_s:
                    shift = o * m_sum[c]
                    a = maps[2 + n_channels + c, row]
                    for x in range(out_w):
                        a[x] -= shift


@njit(cache=True, nogil=True)
def _masked_rows(
    method,
    maps,
    image,
    kern,
    weights,
    mask,
    offsets,
    w_sum,
    m_sum,
    t_sq,
    tnorm,
    floor,
    soft,
    work,
    out,
    y0,
    y1,
    x0,
    n,
):  # pragma: no cover - compiled
    """Masked scores of out[y, x0 : x0 + n], y0 <= y < y1, from maps of those windows.

    out (H-h+1, W-w+1) float32; maps as _masked_maps or _masked_tile fill
    them: row y - y0, column x - x0 for window (y, x); work (3, at least n)
    float64 scratch; the rest as in _masked_maps and _masked_scores. A
    kernel of its own, shared by both engines, so that a first masked
    search compiles it and the maps' kernel in two processes at once.
    """
    for y in range(y0, y1):
        _masked_scores(
            method,
            maps,
            y - y0,
            image,
            kern,
            weights,
            mask,
            y,
            x0,
            offsets,
            w_sum,
            m_sum,
            t_sq,
            tnorm,
            floor,
            soft,
            work,
            out[y][x0 : x0 + n],
        )


@njit(cache=True, nogil=True)
def _masked_tile(
    method,
    image,
    offsets,
    kern_spec,
    w_spec,
    m_spec,
    soft,
    out_h,
    out_w,
    axes,
    maps,
    spectral,
    real,
    tile,
):  # pragma: no cover - compiled
    """The maps of _masked_maps for one overlap-save FFT tile of the (out_h, out_w) windows.

    kern_spec (C, T, T//2+1) complex128, w_spec and m_spec (C or 1, T,
    T//2+1): the conjugate spectra of kern, weights and mask zero-padded to
    T×T; the rest as in _masked_maps. Tiles step by T - h + 1 rows and
    T - w + 1 columns, row by row; maps[:, i, j] is the window (y0 + i,
    x0 + j) of the tile at (y0, x0). Each plane of a tile is transformed
    once and its spectrum serves every map that needs it; with one weight
    plane for all channels, the squares are summed over channels before
    their one transform. Scratch: axes (0, 1) int64; maps (2 + C (1 for
    ccoeff_normed, 2 with a soft mask), T, T) float64; spectral (4, T,
    T//2+1) complex128; real (2, T, T) float64.
    """
    n_channels, height, width = image.shape
    tile_h = kern_spec.shape[1]
    half = kern_spec.shape[2]
    tile_w = 2 * (half - 1)
    h = height - out_h + 1  # the template's size
    w = width - out_w + 1
    step_y = tile_h - h + 1
    step_x = tile_w - w + 1
    tiles_x = (out_w + step_x - 1) // step_x
    need_b = method != CCORR and method != CCOEFF
    need_a = method == CCOEFF_NORMED
    need_s = need_a and soft
    shared = w_spec.shape[0] == 1
    scale = 1.0 / (tile_h * tile_w)  # the inverse transform's normalisation
    prod = spectral[0]
    freq = spectral[1]
    acc = spectral[2]
    acc_b = spectral[3]
    buf = real[0]
    squares = real[1]
    y0 = (tile // tiles_x) * step_y
    x0 = (tile % tiles_x) * step_x
    rows = min(tile_h, height - y0)
    cols = min(tile_w, width - x0)
    acc[:] = 0.0
    buf[:] = 0.0
    if need_b:
        acc_b[:] = 0.0
        squares[:] = 0.0
    for c in range(n_channels):
        off = offsets[c]
        p = 0 if shared else c
        if need_b and not shared:
            squares[:] = 0.0
        for y in range(rows):
            src = image[c, y0 + y, x0 : x0 + cols]
            dst = buf[y]
            for x in range(cols):
                dst[x] = src[x] - off
            if need_b:
                sq = squares[y]
                for x in range(cols):
                    sq[x] += dst[x] * dst[x]
        # float64 transforms: these sums are differenced, and their
        # rounding must stay far below the 2e-5 the scores keep
        _r2c(buf, freq, axes, True, 1.0, 1)
        for y in range(tile_h):
            a = acc[y]
            f = freq[y]
            k = kern_spec[c, y]
            for x in range(half):
                a[x] += f[x] * k[x]
        if need_a:
            for y in range(tile_h):
                f = freq[y]
                k = w_spec[p, y]
                d = prod[y]
                for x in range(half):
                    d[x] = f[x] * k[x]
            _c2r(prod, maps[2 + c], axes, False, scale, 1)
        if need_s:
            for y in range(tile_h):
                f = freq[y]
                k = m_spec[p, y]
                d = prod[y]
                for x in range(half):
                    d[x] = f[x] * k[x]
            _c2r(prod, maps[2 + n_channels + c], axes, False, scale, 1)
        if need_b and (not shared or c == n_channels - 1):
            _r2c(squares, freq, axes, True, 1.0, 1)
            for y in range(tile_h):
                a = acc_b[y]
                f = freq[y]
                k = w_spec[p, y]
                for x in range(half):
                    a[x] += f[x] * k[x]
    _c2r(acc, maps[0], axes, False, scale, 1)
    if need_b:
        _c2r(acc_b, maps[1], axes, False, scale, 1)
