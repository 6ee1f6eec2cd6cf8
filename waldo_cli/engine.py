r"""The matching engine: validate, convert once, pick a kernel, apply the formulas."""

from __future__ import annotations

import os
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from waldo_cli.errors import ShapeError, TemplateTooLargeError, WaldoError
from waldo_cli.methods import DEFAULT_METHOD, METHOD_CODES, check_method

# OpenCV calls a template flat when its variance, summed over channels, is
# below DBL_EPSILON, and then scores every window 1 for ccoeff_normed.
_DBL_EPSILON = float(np.finfo(np.float64).eps)


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _as_hwc(array: object, what: str) -> np.ndarray:
    """Return ``array`` as an (H, W, C) view of its own dtype, or raise ShapeError.

    Values are checked to be finite as float32, without copying the array.
    """
    arr = np.asarray(array)
    if arr.dtype.kind not in "biuf":
        raise ShapeError(f"{what} has dtype {arr.dtype}; a real (bool, integer or float) "
                         "array is needed")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    elif arr.ndim != 3:
        raise ShapeError(f"{what} has {arr.ndim} dimensions; expected (H, W) or (H, W, C)")
    if arr.size == 0:
        raise ShapeError(f"{what} is empty (shape {arr.shape[1]}×{arr.shape[0]}×{arr.shape[2]})")
    if arr.dtype.kind == "f":
        # max and min propagate NaN; anything beyond float32's range would
        # become inf once converted
        high, low = float(arr.max()), float(arr.min())
        if not (np.isfinite(high) and np.isfinite(low)) or max(high, -low) > _FLOAT32_MAX:
            raise ShapeError(f"{what} holds NaN or infinite values (after conversion to float32)")
    return arr


ENGINES = ("auto", "direct", "fft")
# Cost model, measured with `python benchmarks/calibrate.py` on the project's
# 2-core machine (AVX-512): the direct kernel's multiply-adds per second per
# thread, and the seconds one FFT tile of each side costs with 3 channels
# (larger tiles cost more per pixel: they fall out of the caches). The
# whole-search sweep of benchmarks/plot_template_size.py showed the FFT path
# 1.3 times dearer on 1024² images than the isolated tiles suggest (the
# direct kernel's rate held), hence _FFT_OVERHEAD.
_DIRECT_MACS_PER_SECOND = 13e9
_FFT_OVERHEAD = 1.3
_FFT_TILE_SECONDS = {
    128: 1.68e-4, 160: 2.62e-4, 192: 3.83e-4, 256: 7.05e-4, 320: 1.20e-3,
    384: 1.89e-3, 512: 3.53e-3, 640: 6.53e-3, 768: 1.09e-2, 1024: 2.22e-2,
}
_FFT_SIDES = tuple(sorted(_FFT_TILE_SECONDS))


def _fft_sides(template_side: int) -> tuple[int, ...]:
    """Tile sides to consider: the calibrated ones, and larger ones for huge templates."""
    sides = [s for s in _FFT_SIDES if s >= 2 * template_side]
    side = _FFT_SIDES[-1]
    while len(sides) < 3:
        side *= 2
        sides.append(side)
    return tuple(sides)


def _tile_seconds(side: int, channels: int) -> float:
    if side in _FFT_TILE_SECONDS:
        seconds = _FFT_TILE_SECONDS[side]
    else:  # beyond the table: n log n from its last entry
        last = _FFT_SIDES[-1]
        seconds = _FFT_TILE_SECONDS[last] * (side / last) ** 2 * np.log2(side) / np.log2(last)
    return _FFT_OVERHEAD * seconds * (channels + 1) / 4.0  # C forward transforms, 1 inverse


def fft_plan(out_shape: tuple[int, int], template_shape: tuple[int, int], channels: int,
             threads: int) -> tuple[float, int]:
    """Predicted seconds and tile side of the FFT path, at its best tile size.

    Tiles are square and at least twice the template's larger side; a tile
    count that does not divide among the threads is charged for the idle one.

    >>> fft_plan((961, 961), (64, 64), 3, 2)[1]
    256
    """
    out_h, out_w = out_shape
    h, w = template_shape
    best = (float("inf"), 0)
    for side in _fft_sides(max(h, w)):
        tiles = -(-out_h // (side - h + 1)) * -(-out_w // (side - w + 1))
        rounds = -(-tiles // max(1, threads))
        best = min(best, (rounds * _tile_seconds(side, channels), side))
    return best


def direct_seconds(out_shape: tuple[int, int], template_shape: tuple[int, int], channels: int,
                   threads: int) -> float:
    """Predicted seconds of the direct kernel.

    >>> round(direct_seconds((1018, 1018), (7, 7), 3, 2) * 1e3, 1)
    5.9
    """
    macs = out_shape[0] * out_shape[1] * template_shape[0] * template_shape[1] * channels
    return macs / (_DIRECT_MACS_PER_SECOND * max(1, threads))


def choose_engine(out_shape: tuple[int, int], template_shape: tuple[int, int], channels: int,
                  threads: int) -> str:
    """``direct`` or ``fft``, whichever the cost model predicts to be faster.

    >>> choose_engine((1022, 1022), (3, 3), 3, 2), choose_engine((961, 961), (64, 64), 3, 2)
    ('direct', 'fft')
    """
    direct = direct_seconds(out_shape, template_shape, channels, threads)
    fft, _ = fft_plan(out_shape, template_shape, channels, threads)
    return "direct" if direct <= fft else "fft"


def default_threads() -> int:
    """All the cores this process may use, or NUMBA_NUM_THREADS if that is set.

    >>> default_threads() >= 1
    True
    """
    env = os.environ.get("NUMBA_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


_threads = default_threads()
_pool: ThreadPoolExecutor | None = None


def set_threads(threads: int | None) -> int:
    """Use this many threads for every later search (None: back to the default).

    >>> set_threads(1); set_threads(None) == default_threads()
    1
    True
    """
    global _threads, _pool
    wanted = default_threads() if threads is None else int(threads)
    if wanted < 1:
        raise WaldoError(f"threads must be at least 1, got {threads}")
    if wanted != _threads and _pool is not None:
        _pool.shutdown(wait=False)
        _pool = None
    _threads = wanted
    return _threads


def get_threads() -> int:
    """The number of threads searches use."""
    return _threads


def _run_bands(kernel: Any, args: tuple[Any, ...], count: int) -> None:
    """Call ``kernel(*args, start, stop)`` over [0, count) in bands, on all threads.

    The kernels release the GIL, so Python threads run them side by side.
    """
    global _pool
    threads = min(_threads, count)
    if threads <= 1:
        kernel(*args, 0, count)
        return
    # a few bands per thread even out bands that cost more than others
    bands = min(count, 4 * threads)
    edges = [count * i // bands for i in range(bands + 1)]
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=_threads, thread_name_prefix="waldo")
    futures = [_pool.submit(kernel, *args, a, b)
               for a, b in zip(edges, edges[1:], strict=False) if a < b]
    for future in futures:
        future.result()


def _correlate(image: np.ndarray, template: PreparedTemplate, offsets: np.ndarray,
               out: np.ndarray, engine: str) -> str:
    """The one dispatch point: choose the kernel that computes the correlation.

    image (C, H, W) float32, template prepared (its kernel is centred, so it
    sums to zero), offsets (C,) float64, out (H-h+1, W-w+1) float32. Returns
    the engine used.
    """
    from waldo_cli import kernels

    channels, h, w = template.kernel.shape
    if engine == "auto":
        engine = choose_engine(out.shape, (h, w), channels, _threads)
    if engine == "direct":
        _run_bands(kernels._correlate_direct, (image, template.kernel, out), out.shape[0])
    else:
        # out is C-contiguous (whole rows), so this flat view is out itself
        _correlate_shared(image, offsets, [template], out.reshape(-1))
    return engine


PADDINGS = ("none", "zero", "reflect", "edge")
_NUMPY_PAD = {"zero": "constant", "reflect": "reflect", "edge": "edge"}


def pad_widths(template_shape: tuple[int, ...]) -> tuple[tuple[int, int], tuple[int, int]]:
    """Rows and columns added around an image so every pixel is some window's centre.

    A window's centre is its pixel ((h-1)//2, (w-1)//2), as in the heatmap.

    >>> pad_widths((4, 7))
    ((1, 2), (3, 3))
    """
    h, w = int(template_shape[0]), int(template_shape[1])
    return ((h - 1) // 2, h // 2), ((w - 1) // 2, w // 2)


def _check_options(method: str, engine: str, pad: str) -> str:
    """The method's canonical name, after checking method, engine and padding."""
    if engine not in ENGINES:
        raise WaldoError(f"unknown engine {engine!r}: choose one of {', '.join(ENGINES)}")
    if pad not in PADDINGS:
        raise WaldoError(f"unknown padding {pad!r}: choose one of {', '.join(PADDINGS)}")
    return check_method(method)


def match_template(image: object, template: object, method: str = DEFAULT_METHOD, *,
                   engine: str = "auto", mask: object = None, pad: str = "none",
                   convolve: bool = False) -> np.ndarray:
    r"""Score every placement of ``template`` inside ``image``.

    Parameters
    ----------
    image : (H, W[, C]) array_like
        Any real dtype; computed in float32 (values are rounded to float32
        first), with products and sums accumulated in float64.
    template : (h, w[, C]) array_like or PreparedTemplate
        Same channel count as ``image``; h ≤ H and w ≤ W. A template from
        ``prepare_template`` skips the per-call preparation (for batches).
    method : str
        One of ``sqdiff``, ``sqdiff_normed``, ``ccorr``, ``ccorr_normed``,
        ``ccoeff``, ``ccoeff_normed`` (default).
    engine : {"auto", "direct", "fft"}
        How the correlation is computed: a sliding-window kernel, overlap-save
        FFT tiles, or (default) whichever a cost model calibrated on the
        benchmark predicts to be faster. All three give the same scores to
        within 1e-7 (masked ``sqdiff_normed``, which is not clamped and may
        reach thousands on nearly black windows: 1e-6 of the score).
    mask : (h, w[, C]) array_like, optional
        Weights of the template's pixels (a masked template): 0 leaves a
        pixel out, 1 counts it fully, values between weigh it. One channel
        applies to every channel. See Notes for the masked definitions.
    pad : {"none", "zero", "reflect", "edge"}
        "none" (default) scores only windows inside the image. The others
        extend the image past its border (with zeros, a mirror image without
        repeating the edge, or the edge pixels, as ``numpy.pad``'s
        "constant", "reflect" and "edge") so that the score map has the
        image's own shape, indexed by the window's centre: ``scores[y, x]``
        scores the window whose pixel ((h-1)//2, (w-1)//2) lies on (y, x).
    convolve : bool
        Flip the template (and mask) in both axes before sliding it: the
        mathematical convolution instead of the cross-correlation a CNN layer
        computes.

    Returns
    -------
    scores : (H-h+1, W-w+1) float32 ndarray
        ``scores[y, x]`` scores the window whose top-left corner is row y,
        column x. Never NaN or inf.

    Raises
    ------
    ShapeError
        Wrong rank, empty, non-real or non-finite input, or differing channels.
    TemplateTooLargeError
        The template is taller or wider than the image.

    Notes
    -----
    The definitions are OpenCV's ``cv2.matchTemplate`` ``TM_*`` definitions
    (https://docs.opencv.org/4.x/df/dfb/group__imgproc__object.html), as
    implemented in ``modules/imgproc/src/templmatch.cpp``. With I the image,
    T the template, (x', y') running over the template, c over channels,
    n = h·w, and sums running over all channels:

    .. math::

        R_{sqdiff}(x, y) &= \sum_{x',y',c} (T(x',y',c) - I(x+x',y+y',c))^2 \\
        R_{ccorr}(x, y) &= \sum_{x',y',c} T(x',y',c)\, I(x+x',y+y',c) \\
        R_{ccoeff}(x, y) &= \sum_{x',y',c} T'(x',y',c)\, I'(x+x',y+y',c) \\
        T'(x',y',c) &= T(x',y',c) - \bar T_c, \quad
        I'(x+x',y+y',c) = I(x+x',y+y',c) - \bar I_c(x, y)

    where :math:`\bar T_c` is the template's mean in channel c and
    :math:`\bar I_c(x, y)` the window's mean in channel c. The normed methods
    divide by a norm :math:`t`:

    .. math::

        R_{sqdiff\_normed} &= R_{sqdiff} / t, \quad
            t = \sqrt{\textstyle\sum T^2 \cdot \sum I^2} \\
        R_{ccorr\_normed} &= R_{ccorr} / t, \quad
            t = \sqrt{\textstyle\sum T^2 \cdot \sum I^2} \\
        R_{ccoeff\_normed} &= R_{ccoeff} / t, \quad
            t = \sqrt{\textstyle\sum T'^2 \cdot \sum I'^2}

    OpenCV's rules for degenerate cases, followed exactly:

    * ``ccoeff_normed`` with a flat template (its variance summed over
      channels below DBL_EPSILON): every score is 1.
    * A window is degenerate when the energy under the square root,
      :math:`d = \sum I'^2` for ``ccoeff_normed`` and :math:`d = \sum I^2`
      for the other two, satisfies
      :math:`d \le \min(0.5,\ 10\,\epsilon_{f32} \sum I^2)`;
      then :math:`t = 0`.
    * Clamping, for the normed methods: with numerator r, the score is
      r / t when \|r\| < t, sign(r) when \|r\| < 1.125 t, and otherwise
      0 (``ccorr_normed``, ``ccoeff_normed``) or 1 (``sqdiff_normed``). So a
      flat or black window scores 0 for the correlation methods and 1 (the
      worst) for ``sqdiff_normed``; ``sqdiff_normed`` never exceeds 1.
    * ``sqdiff`` is clamped at 0 from below.

    With a mask M, the definitions are OpenCV's masked ones (4.4 and later),
    per channel: ``sqdiff`` = Σ (M (T − I))², ``ccorr`` = Σ M² T I,
    ``ccoeff`` = Σ T′ I′ with T′ = M (T − Σ M T / Σ M) and
    I′ = M (I − Σ M I / Σ M); the normed variants divide by
    √(Σ (M T)² · Σ (M I)²), or √(Σ T′² · Σ I′²) for ``ccoeff_normed``.
    As in OpenCV's masked path, masked ``sqdiff_normed`` is not clamped to
    1. Unlike OpenCV, which returns NaN or inf for black or flat windows under
    a mask and for a fully masked template, the degenerate-window and
    flat-template rules above apply unchanged, with the masked energies in
    place of the plain ones; so no NaN or inf ever comes out. A masked
    window energy below 64·ε·ΣM²·max|I − o|² (ε of float64, o the channel
    offset; 1.4e-14 of the most a window can hold) is the rounding residue
    of the sums it comes from and counts as 0 (a black window), on both
    engines alike; windows just above it are summed again directly.

    The scale of the values matters for the degenerate rule (its 0.5 is
    absolute), as in OpenCV: ``load_image`` returns pixels on the 0–255 scale.
    Unlike OpenCV, the ccoeff numerator is computed with the template's mean
    removed before correlating and sums are float64, so the result agrees
    with a float64 computation to about 1e-7 rather than 1e-3.

    Examples
    --------
    >>> image = np.zeros((5, 6), np.uint8); image[2:4, 3:5] = [[10, 20], [30, 40]]
    >>> scores = match_template(image, image[2:4, 3:5], "sqdiff")
    >>> scores.shape, np.unravel_index(scores.argmin(), scores.shape)
    ((4, 5), (np.int64(2), np.int64(3)))
    """
    method = _check_options(method, engine, pad)
    img = _as_hwc(image, "image")
    if isinstance(template, PreparedTemplate):
        prepared = template.flipped() if convolve else template
    else:
        tpl = _as_hwc(template, "template")
        prepared = prepare_template(tpl[::-1, ::-1] if convolve else tpl)
    if convolve and mask is not None:
        mask = _as_hwc(mask, "mask")[::-1, ::-1]
    if pad != "none":
        (top, bottom), (left, right) = pad_widths(prepared.shape)
        img = np.pad(img, ((top, bottom), (left, right), (0, 0)), mode=_NUMPY_PAD[pad])
    (height, width, channels), (h, w, t_channels) = img.shape, prepared.shape
    if channels != t_channels:
        raise ShapeError(f"template has {t_channels} channel(s) but image has {channels}; "
                         "give both the same number of channels")
    if h > height or w > width:
        raise TemplateTooLargeError((h, w), (height, width))
    out_h, out_w = height - h + 1, width - w + 1
    weights = None if mask is None else _as_mask(mask, prepared.shape)
    if engine == "auto":  # once for the whole image, so that every band agrees
        engine = (choose_engine((out_h, out_w), (h, w), channels, _threads) if weights is None
                  else _masked_engine((out_h, out_w), _masked_template(
                      prepared, weights, method in ("ccoeff", "ccoeff_normed")), method))
    band = _band_rows(img.shape, (h, w), engine)
    if weights is not None:
        if band >= out_h:
            return _match_masked(img, prepared, weights, method, engine)
        scores = np.empty((out_h, out_w), np.float32)
        for top in range(0, out_h, band):
            rows = min(band, out_h - top)
            scores[top:top + rows] = _match_masked(img[top:top + rows + h - 1], prepared,
                                                   weights, method, engine)
        return scores
    code = METHOD_CODES[method]
    if method == "ccoeff_normed" and prepared.flat:
        # OpenCV: a flat template correlates equally with everything.
        return np.ones((out_h, out_w), np.float32)
    # float32 is enough to hold the correlation: it is at most the norm it is
    # divided by (Cauchy-Schwarz), so rounding it costs 6e-8 of a score
    scores = np.empty((out_h, out_w), np.float32)
    for top in range(0, out_h, band):
        rows = min(band, out_h - top)
        # a band of the image as planes: the whole image when it is not huge
        planar = _planar(img[top:top + rows + h - 1])
        offsets = _offsets(planar)
        corr = scores[top:top + rows]  # whole rows: C-contiguous
        _correlate(planar, prepared, offsets, corr, engine)
        _finish(planar, offsets, prepared, code, corr)
    return scores


# Images whose float32 planes would take more than this are searched in bands
# of rows (each with its template's h - 1 rows of overlap), so that memory
# stays near the image itself plus the score map however large it is.
_BAND_BYTES = 64 << 20


def _band_rows(image_shape: tuple[int, int, int], template_shape: tuple[int, int],
               engine: str) -> int:
    """Output rows per band: all of them unless the image is huge.

    >>> _band_rows((1024, 1024, 3), (32, 32), "fft")
    993
    >>> _band_rows((8192, 8192, 3), (9, 9), "direct")
    333
    """
    (height, width, channels), (h, w) = image_shape, template_shape
    out_h = height - h + 1
    row_bytes = 4 * width * channels
    if height * row_bytes <= _BAND_BYTES:
        return out_h
    # half the budget per band: the band's planes and the kernels' buffers
    rows = max(4 * h, _BAND_BYTES // 2 // row_bytes - (h - 1))
    if engine == "fft":  # whole FFT tiles per band
        _, side = fft_plan((out_h, width - w + 1), (h, w), channels, _threads)
        step = side - h + 1
        rows = max(step, rows // step * step)
    return min(rows, out_h)


def _finish(planar: np.ndarray, offsets: np.ndarray, prepared: PreparedTemplate, code: int,
            corr: np.ndarray) -> np.ndarray:
    """Turn a correlation map into the method's scores, in place, and return it."""
    from waldo_cli.kernels import _finish_scores

    h, w, _ = prepared.shape
    # the scores overwrite the correlation row by row: one map fewer to
    # allocate (and fault in) per search
    _run_bands(_finish_scores, (code, planar, h, w, offsets, corr, prepared.mean,
                                prepared.energy, prepared.sq, corr), corr.shape[0])
    return corr


# at most this many bytes of correlation maps in flight in one shared pass
_SHARED_BYTES = 256 << 20


def match_templates(image: object, templates: list[object], method: str = DEFAULT_METHOD, *,
                    engine: str = "auto", masks: list[object] | None = None,
                    pad: str = "none", convolve: bool = False) -> list[np.ndarray | None]:
    """``match_template`` for several templates (scales, turns) on one image, sharing the work.

    The image is converted once, and the templates the FFT path serves share
    its transforms: each image tile is transformed once and then costs one
    product and one inverse transform per template, instead of C + 1
    transforms. The scores are those ``match_template`` gives for each
    template alone.

    Parameters
    ----------
    image : (H, W[, C]) array_like
    templates : list of (h, w[, C]) array_like or PreparedTemplate
    method, engine, pad, convolve
        As for ``match_template``; with ``engine="auto"`` each template gets
        the engine the cost model picks for it. With padding every map has
        the image's shape, indexed by window centre (the image is padded
        once, as far as the largest template needs).
    masks : list of (h, w[, C]) array_like or None, optional
        One mask (or None) per template.

    Returns
    -------
    list of (H-h+1, W-w+1) float32 ndarray or None
        One score map per template, None for a template larger than the
        image (never with padding).

    Examples
    --------
    >>> image = np.random.default_rng(0).random((20, 30, 3))
    >>> maps = match_templates(image, [image[2:7, 3:9], np.ones((25, 5, 3))])
    >>> maps[0].shape, maps[1]
    ((16, 25), None)
    """
    method = _check_options(method, engine, pad)
    img = _as_hwc(image, "image")
    if pad != "none":
        return _match_padded(img, templates, method, engine, masks, pad, convolve)
    masks = [None] * len(templates) if masks is None else list(masks)
    if len(masks) != len(templates):
        raise ShapeError(f"{len(masks)} masks for {len(templates)} templates")
    (height, width, channels), code = img.shape, METHOD_CODES[method]
    maps: list[np.ndarray | None] = [None] * len(templates)
    planar: np.ndarray | None = None
    shared: list[int] = []
    preps: list[PreparedTemplate] = []
    for i, (template, mask) in enumerate(zip(templates, masks, strict=True)):
        prepared = template if isinstance(template, PreparedTemplate) else prepare_template(
            template)
        preps.append(prepared.flipped() if convolve else prepared)
        h, w, t_channels = prepared.shape
        if h > height or w > width:
            continue
        if mask is not None or t_channels != channels or (
                method == "ccoeff_normed" and prepared.flat):
            # masked, flat and mismatched templates: the single search (or its error)
            maps[i] = match_template(img, prepared, method, engine=engine, mask=mask,
                                     convolve=convolve)
            continue
        out_shape = (height - h + 1, width - w + 1)
        chosen = engine if engine != "auto" else choose_engine(out_shape, (h, w), channels,
                                                               _threads)
        if planar is None:
            planar = _planar(img)
            offsets = _offsets(planar)
        if chosen == "fft":
            shared.append(i)
            continue
        corr = np.empty(out_shape, np.float32)
        _correlate(planar, preps[i], offsets, corr, "direct")
        maps[i] = _finish(planar, offsets, preps[i], code, corr)
    # largest templates first: a group's tile size suits its largest member
    shared.sort(key=lambda i: -max(preps[i].shape[:2]))
    while shared:
        group, size = [], 0
        while shared and (not group or size + _map_bytes(img.shape, preps[shared[0]])
                          <= _SHARED_BYTES):
            size += _map_bytes(img.shape, preps[shared[0]])
            group.append(shared.pop(0))
        for i, corr in zip(group, _correlate_shared(planar, offsets,
                                                    [preps[i] for i in group]), strict=True):
            maps[i] = _finish(planar, offsets, preps[i], code, corr)
    return maps


def _match_padded(img: np.ndarray, templates: list[object], method: str, engine: str,
                  masks: list[object] | None, pad: str, convolve: bool) -> list[np.ndarray | None]:
    """match_templates with padding: pad once for the largest template, crop each map.

    A template that needs less padding sees, in the wider margin, the same
    values a narrower pad gives (zeros, edge pixels or the mirror image),
    so its cropped map equals its own padded search.
    """
    preps = [t if isinstance(t, PreparedTemplate) else prepare_template(t) for t in templates]
    widths = [pad_widths(p.shape) for p in preps]
    top, bottom = (max(w[0][k] for w in widths) for k in (0, 1))
    left, right = (max(w[1][k] for w in widths) for k in (0, 1))
    padded = np.pad(img, ((top, bottom), (left, right), (0, 0)), mode=_NUMPY_PAD[pad])
    maps = match_templates(padded, preps, method, engine=engine, masks=masks,
                           convolve=convolve)
    height, width = img.shape[:2]
    cropped: list[np.ndarray | None] = []
    for scores, ((t, _), (lft, _)) in zip(maps, widths, strict=True):
        cropped.append(None if scores is None else np.ascontiguousarray(
            scores[top - t:top - t + height, left - lft:left - lft + width]))
    return cropped


def _map_bytes(image_shape: tuple[int, ...], prepared: PreparedTemplate) -> int:
    return 4 * (image_shape[0] - prepared.shape[0] + 1) * (image_shape[1] - prepared.shape[1] + 1)


def _correlate_shared(planar: np.ndarray, offsets: np.ndarray, preps: list[PreparedTemplate],
                      flat: np.ndarray | None = None) -> list[np.ndarray]:
    """The correlation maps of several templates by FFT tiles shared among them.

    ``flat``: where the maps go, one after another (a map's own buffer, as a
    view, for one template); by default a new float32 array.
    """
    from waldo_cli import kernels

    kernels.load_fft()
    channels, height, width = planar.shape
    h_max = max(p.shape[0] for p in preps)
    w_max = max(p.shape[1] for p in preps)
    out_shape = (height - h_max + 1, width - w_max + 1)
    _, side = fft_plan(out_shape, (h_max, w_max), channels, _threads)
    spectra = np.stack([p.spectrum(side) for p in preps])
    shapes = [(height - p.shape[0] + 1, width - p.shape[1] + 1) for p in preps]
    starts = np.cumsum([0] + [oh * ow for oh, ow in shapes])
    if flat is None:
        flat = np.empty(int(starts[-1]), np.float32)
    heights = np.array([p.shape[0] for p in preps], np.int64)
    widths = np.array([p.shape[1] for p in preps], np.int64)
    tiles = -(-out_shape[0] // (side - h_max + 1)) * -(-out_shape[1] // (side - w_max + 1))
    _run_bands(kernels._correlate_fft,
               (planar, offsets, spectra, heights, widths, flat, starts[:-1].astype(np.int64)),
               tiles)
    return [flat[starts[k]:starts[k + 1]].reshape(shape) for k, shape in enumerate(shapes)]


def warm_kernels(name: str) -> None:
    """Compile (or load) the kernels of one ``kernels.KERNELS`` entry with a tiny search."""
    image = np.arange(8 * 8 * 3, dtype=np.float32).reshape(8, 8, 3)
    # a template that is not flat, or ccoeff_normed would skip the kernels
    match_template(image, image[:3, :3], engine=name)
    match_template(image, image[:3, :3], engine=name, mask=np.ones((3, 3)))


def _planar(img: np.ndarray) -> np.ndarray:
    """(H, W, C) pixels of any real dtype as C-contiguous (C, H, W) float32 planes."""
    height, width, channels = img.shape
    planar = np.empty((channels, height, width), np.float32)
    for c in range(channels):
        np.copyto(planar[c], img[:, :, c], casting="unsafe")
    return planar


def _offsets(planar: np.ndarray) -> np.ndarray:
    """A whole number near each channel's mean, subtracted to keep every sum small.

    A sparse sample finds one without another pass over the image.
    """
    channels = planar.shape[0]
    return np.round(planar[:, ::7, ::7].reshape(channels, -1).mean(axis=1, dtype=np.float64))


def _as_mask(mask: object, shape: tuple[int, int, int]) -> np.ndarray:
    """The mask as (C, h, w) float64 weights for a template of shape (h, w, C)."""
    m = _as_hwc(mask, "mask").astype(np.float32).astype(np.float64)
    h, w, channels = shape
    if m.shape[:2] != (h, w) or m.shape[2] not in (1, channels):
        raise ShapeError(f"mask is {m.shape[1]}×{m.shape[0]}×{m.shape[2]}; the template is "
                         f"{w}×{h}×{channels}, so the mask must be {w}×{h} with 1 or "
                         f"{channels} channel(s)")
    if (m < 0).any():
        raise ShapeError("mask has negative values; weights must be 0 or more")
    return np.ascontiguousarray(np.broadcast_to(m, shape).transpose(2, 0, 1))


# What a masked search derives from a template and its mask, kept per
# prepared template: a batch searches every image with the same pair.
_MASKED: weakref.WeakKeyDictionary[PreparedTemplate, dict[tuple[bool, bytes], _MaskedTemplate]]
_MASKED = weakref.WeakKeyDictionary()
_MASKED_KEPT = 8  # masks remembered per template (variants each have their own template)


@dataclass(frozen=True, eq=False)
class _MaskedTemplate:
    """A template and its mask made ready for the masked kernels (maps as in kernels.py).

    ``kern`` (C, h, w) is W T, or for the ccoeff methods the kernel
    K' = W (T - mean_M T) - (Σ W (T - mean_M T) / Σ M) M, which folds the
    window's masked mean into the correlation. ``weights`` = W = M² and
    ``mask`` = M are (1, h, w) when the mask is the same for every channel.
    """

    kern: np.ndarray
    weights: np.ndarray
    mask: np.ndarray
    w_sum: np.ndarray
    m_sum: np.ndarray
    t_sq: float
    tnorm: float
    flat: bool
    soft: bool
    _spectra: dict[int, tuple[np.ndarray, ...]] = field(default_factory=dict, repr=False)

    def spectra(self, side: int) -> tuple[np.ndarray, ...]:
        """Conjugate spectra of kern, weights and mask zero-padded to side×side, cached."""
        if side not in self._spectra:
            self._spectra[side] = tuple(_conjugate_spectra(planes, side)
                                        for planes in (self.kern, self.weights, self.mask))
        return self._spectra[side]


def _masked_template(prepared: PreparedTemplate, mask: np.ndarray,
                     centred: bool) -> _MaskedTemplate:
    """The template's masked kernels for the ccoeff methods (centred) or the others."""
    key = (centred, mask.tobytes())
    kept = _MASKED.setdefault(prepared, {})
    if key in kept:
        return kept[key]
    h, w, _ = prepared.shape
    template = prepared.kernel + prepared.mean[:, None, None]  # T, (C, h, w)
    weights = mask * mask
    w_sum = weights.sum(axis=(1, 2))
    m_sum = mask.sum(axis=(1, 2))
    t_sq = float((weights * template * template).sum())
    flat = False
    if centred:
        with np.errstate(divide="ignore", invalid="ignore"):
            t_mean = np.where(m_sum > 0, (mask * template).sum(axis=(1, 2)) / m_sum, 0.0)
        kern = weights * (template - t_mean[:, None, None])  # K = W (T - mean_M T)
        t_energy = float((kern * (template - t_mean[:, None, None])).sum())
        # Σ K J - Σ_c mean_M(J_c) Σ K_c, as one kernel; a 0/1 mask has Σ K = 0
        with np.errstate(divide="ignore", invalid="ignore"):
            fold = np.where(m_sum > 0, kern.sum(axis=(1, 2)) / m_sum, 0.0)
        kern = kern - fold[:, None, None] * mask
        tnorm = float(np.sqrt(t_energy))
        # OpenCV: a flat (or fully masked) template matches everything equally
        flat = t_energy / (h * w) < _DBL_EPSILON
    else:
        kern = weights * template
        tnorm = float(np.sqrt(t_sq))
    one = all(np.array_equal(mask[0], plane) for plane in mask[1:])
    planes = slice(0, 1) if one else slice(None)
    found = _MaskedTemplate(
        kern=np.ascontiguousarray(kern), weights=np.ascontiguousarray(weights[planes]),
        # a copy: a one-channel mask arrives as a read-only broadcast view,
        # and Numba compiles a kernel again for read-only arrays
        mask=mask[planes].copy(), w_sum=w_sum, m_sum=m_sum, t_sq=t_sq,
        tnorm=tnorm, flat=flat, soft=not np.array_equal(mask, weights))
    if len(kept) >= _MASKED_KEPT:
        kept.clear()  # not the oldest alone: batch jobs may share this dict across threads
    kept[key] = found
    return found


# The masked kernels' costs, measured as the cost model above (one thread,
# 1024² RGB, templates 3×3 to 14×14): the direct kernel's seconds per kept
# tap and channel, and per window, by the maps the method needs (see
# kernels.py); the FFT tiles cost what fft_plan predicts for as many
# transforms (within 10%).
_MASKED_DIRECT_SECONDS = {
    "num": (7.8e-11, 4e-9), "b": (1.02e-10, 6e-9), "a": (1.28e-10, 12e-9),
    "s": (2.06e-10, 12.5e-9),
}


def _masked_engine(out_shape: tuple[int, int], masked: _MaskedTemplate, method: str) -> str:
    """``direct`` or ``fft`` for a masked search, whichever is predicted to be faster."""
    channels, h, w = masked.kern.shape
    planes = len(masked.mask)
    need_b = method not in ("ccorr", "ccoeff")
    need_a = method == "ccoeff_normed"
    need_s = need_a and masked.soft
    per_tap, per_window = _MASKED_DIRECT_SECONDS[
        "s" if need_s else "a" if need_a else "b" if need_b else "num"]
    # the direct kernel skips the pixels the mask leaves out
    taps = np.count_nonzero(masked.mask) * channels / planes
    direct = out_shape[0] * out_shape[1] * (taps * per_tap + per_window) / max(1, _threads)
    transforms = (channels + 1 + need_b * (1 + (channels if planes > 1 else 1))
                  + need_a * channels + need_s * channels)
    fft, _ = fft_plan(out_shape, (h, w), transforms - 1, _threads)
    return "direct" if direct <= fft else "fft"


def _match_masked(img: np.ndarray, prepared: PreparedTemplate, mask: np.ndarray, method: str,
                  engine: str) -> np.ndarray:
    """match_template with a mask: the masked kernels compute every window sum in one pass.

    The image is offset by its channel means (J = I - o) for the ccoeff
    methods, so their variance Σ W J² − 2 m Σ W J + m² Σ W cancels only
    small numbers; the other methods' sums are not differenced, and
    unoffset they stay exactly 0 on black windows. Windows whose energy is
    within a few thousand times the floor below are summed again directly
    by the kernels. Shapes are checked by the caller.
    """
    from waldo_cli import kernels

    (height, width, channels), (h, w, _) = img.shape, prepared.shape
    out_shape = (height - h + 1, width - w + 1)
    centred = method in ("ccoeff", "ccoeff_normed")
    masked = _masked_template(prepared, mask, centred)
    if method == "ccoeff_normed" and masked.flat:
        return np.ones(out_shape, np.float32)
    planar = _planar(img)
    offsets = _offsets(planar) if centred else np.zeros(channels)
    # Energies below the rounding of the sums they come from are residue: a
    # black window's ΣW I² from differenced or transformed sums is ±1e-9,
    # not 0, and masked sqdiff_normed (not clamped) would divide by it. The
    # FFT's rounding measured at most 5 ε ΣW max J²; the floor is 64 ε ΣW
    # max J², 1.4e-14 of the most a window can hold, for both engines so
    # that they agree.
    reach = max(float((planar.max(axis=(1, 2)) - offsets).max()),
                float((offsets - planar.min(axis=(1, 2))).max()))
    floor = 64.0 * _DBL_EPSILON * float(masked.w_sum.sum()) * reach * reach
    if engine == "auto":
        engine = _masked_engine(out_shape, masked, method)
    code = METHOD_CODES[method]
    scores = np.empty(out_shape, np.float32)
    common = (masked.w_sum, masked.m_sum, masked.t_sq, masked.tnorm, floor, masked.soft)
    if engine == "direct":
        _run_bands(kernels._masked_direct, (code, planar, offsets, masked.kern, masked.weights,
                                            masked.mask, *common, scores), out_shape[0])
    else:
        kernels.load_fft()
        _, side = fft_plan(out_shape, (h, w), channels, _threads)
        tiles = -(-out_shape[0] // (side - h + 1)) * -(-out_shape[1] // (side - w + 1))
        _run_bands(kernels._masked_fft, (code, planar, offsets, masked.kern, masked.weights,
                                         masked.mask, *masked.spectra(side), *common, scores),
                   tiles)
    return scores


def _conjugate_spectra(planes: np.ndarray, side: int) -> np.ndarray:
    """Conjugate 2-D spectra of (C, h, w) planes zero-padded to side×side, for FFT tiles."""
    channels, h, w = planes.shape
    padded = np.zeros((channels, side, side), np.float64)
    padded[:, :h, :w] = planes
    return np.ascontiguousarray(np.conj(np.fft.rfft2(padded, axes=(1, 2))))


@dataclass(frozen=True, eq=False)
class PreparedTemplate:
    """A template made ready once, for searching many images.

    Attributes
    ----------
    shape : (h, w, C)
        The template's shape.
    kernel : (C, h, w) float64 ndarray
        The template minus its channel means: correlating with it gives the
        ccoeff numerator directly, with no cancellation between large sums.
    mean : (C,) float64 ndarray
        The channel means.
    energy, sq : float
        sum((T - mean)**2) and sum(T**2) over all channels.
    flat : bool
        OpenCV's flat-template rule: variance summed over channels below
        DBL_EPSILON.
    """

    shape: tuple[int, int, int]
    kernel: np.ndarray
    mean: np.ndarray
    energy: float
    sq: float
    flat: bool
    _spectra: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    def flipped(self) -> PreparedTemplate:
        """The same template turned by 180° (for convolution)."""
        return replace(self, kernel=np.ascontiguousarray(self.kernel[:, ::-1, ::-1]),
                       _spectra={})

    def spectrum(self, side: int) -> np.ndarray:
        """Conjugate spectra of the kernel planes zero-padded to side×side, cached."""
        if side not in self._spectra:
            self._spectra[side] = _conjugate_spectra(self.kernel, side)
        return self._spectra[side]


def prepare_template(template: object) -> PreparedTemplate:
    """Validate a template and compute what every search with it needs, once.

    Parameters
    ----------
    template : (h, w[, C]) array_like
        Any real dtype; values are rounded to float32 first, like images.

    Returns
    -------
    PreparedTemplate
        Pass it to ``match_template`` in place of the array.

    Examples
    --------
    >>> prepared = prepare_template(np.arange(12.0).reshape(3, 4))
    >>> prepared.shape, float(prepared.mean[0]), prepared.flat
    ((3, 4, 1), 5.5, False)
    """
    tpl = _as_hwc(template, "template")
    h, w, _ = tpl.shape
    tpl64 = tpl.astype(np.float32).astype(np.float64)
    mean = tpl64.mean(axis=(0, 1))
    centred = tpl64 - mean
    energy = float(np.sum(centred * centred))
    return PreparedTemplate(
        shape=tpl.shape,
        kernel=np.ascontiguousarray(centred.transpose(2, 0, 1)),
        mean=np.ascontiguousarray(mean),
        energy=energy,
        sq=float(np.sum(tpl64 * tpl64)),
        flat=energy / (h * w) < _DBL_EPSILON,
    )
