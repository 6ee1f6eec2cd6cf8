"""The matching engine: validate, plan, run, score.

``match_template`` and ``match_templates`` check their arguments, prepare
the template (``templates.py``), ask the planner (``plan.py``) what to run,
and run it: the image is converted to float32 planes once, the correlation
computed by the direct or the FFT kernels (``kernels.py``) in bands on a
``pool.ThreadPool``, and turned into the method's scores in place. Nothing
here is process-global but the shared pool, an object with a lock; two
searches with different options may run at once in one process.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from waldo_cli import jit
from waldo_cli.arrays import as_hwc, as_hwc_peak, as_mask, as_planar, channel_offsets
from waldo_cli.errors import ShapeError, TemplateTooLargeError, WaldoError
from waldo_cli.jit import load_fft, warm_kernels
from waldo_cli.methods import DEFAULT_METHOD, LEARNED, METHOD_CODES, check_template_method
from waldo_cli.plan import (
    ENGINES,
    Plan,
    check_engine,
    choose_engine,
    direct_seconds,
    engines_used,
    fft_plan,
    plan_search,
)
from waldo_cli.pool import SHARED, default_threads
from waldo_cli.templates import (
    DBL_EPSILON,
    LearnedFilter,
    MaskedTemplate,
    PreparedTemplate,
    prepare_template,
)

__all__ = [
    "ENGINES",
    "PADDINGS",
    "LearnedFilter",
    "Plan",
    "PreparedTemplate",
    "choose_engine",
    "default_threads",
    "direct_seconds",
    "engines_used",
    "fft_plan",
    "get_threads",
    "match_template",
    "match_templates",
    "pad_widths",
    "plan_match",
    "plan_matches",
    "prepare_template",
    "set_threads",
    "warm_kernels",
]

PADDINGS = ("none", "zero", "reflect", "edge")
_NUMPY_PAD: dict[str, Literal["constant", "reflect", "edge"]] = {
    "zero": "constant",
    "reflect": "reflect",
    "edge": "edge",
}
# at most this many bytes of correlation maps in flight in one shared pass
_SHARED_BYTES = 256 << 20
# Correlation maps are float32 (see _run); a map that could exceed this is
# computed divided by a power of two (exactly, and undone in float64).
_CORR_LIMIT = 2.0**120


def set_threads(threads: int | None) -> int:
    """Threads for searches that are given none (None: back to the default).

    Searches that pass ``threads`` (``waldo find --threads``, ``Searcher``)
    are not affected.

    >>> set_threads(1); set_threads(None) == default_threads()
    1
    True
    """
    if threads is not None and int(threads) < 1:
        raise WaldoError(f"threads must be at least 1, got {threads}")
    return SHARED.set_threads(threads)


def get_threads() -> int:
    """The number of threads searches use when they are given none.

    >>> get_threads() >= 1
    True
    """
    return SHARED.threads


def pad_widths(template_shape: tuple[int, ...]) -> tuple[tuple[int, int], tuple[int, int]]:
    """Rows and columns added around an image so every pixel is some window's centre.

    A window's centre is its pixel ((h-1)//2, (w-1)//2), as in the heatmap.

    >>> pad_widths((4, 7))
    ((1, 2), (3, 3))
    """
    h, w = int(template_shape[0]), int(template_shape[1])
    return ((h - 1) // 2, h // 2), ((w - 1) // 2, w // 2)


def _check_options(method: str | None, engine: str, pad: str, template: object = None) -> str:
    """The method's canonical name, after checking method, engine and padding.

    A learned filter is scored by ``learned`` and nothing else; a template by
    one of the six (``ccoeff_normed`` when none is given).
    """
    check_engine(engine)
    if pad not in PADDINGS:
        raise WaldoError(f"unknown padding {pad!r}: choose one of {', '.join(PADDINGS)}")
    if isinstance(template, LearnedFilter):
        if method not in (None, LEARNED.name):
            raise WaldoError(
                f"{template.name} is a learned filter, scored by method 'learned', "
                f"not {method!r}: leave the method out"
            )
        return LEARNED.name
    return check_template_method(DEFAULT_METHOD if method is None else method)


def _filters(templates: list[object]) -> list[LearnedFilter] | None:
    """The templates if they are all learned filters (None if none is); mixing is refused."""
    filters = [t for t in templates if isinstance(t, LearnedFilter)]
    if not filters:
        return None
    if len(filters) != len(templates):
        raise WaldoError("learned filters and templates cannot be searched together")
    if len({(f.colour, f.features) for f in filters}) > 1:
        raise WaldoError("learned filters searched together must read images alike")
    return filters


def _no_mask(mask: object, name: str) -> None:
    if mask is not None:
        raise WaldoError(f"{name} is a learned filter: it takes no mask (its weights are its mask)")


def _prepared(template: object, convolve: bool) -> PreparedTemplate:
    """The template prepared (turned by 180° for convolution)."""
    if isinstance(template, PreparedTemplate):
        return template.flipped() if convolve else template
    tpl = as_hwc(template, "template")
    return prepare_template(tpl[::-1, ::-1] if convolve else tpl)


def _padded_shape(
    shape: tuple[int, ...], template_shape: tuple[int, ...], pad: str
) -> tuple[int, int, int]:
    height, width, channels = (int(v) for v in shape)
    if pad == "none":
        return height, width, channels
    (top, bottom), (left, right) = pad_widths(template_shape)
    return height + top + bottom, width + left + right, channels


def _check_fits(image_shape: tuple[int, ...], template_shape: tuple[int, ...]) -> None:
    (height, width, channels), (h, w, t_channels) = image_shape, template_shape
    if channels != t_channels:
        raise ShapeError(
            f"template has {t_channels} channel(s) but image has {channels}; "
            "give both the same number of channels"
        )
    if h > height or w > width:
        raise TemplateTooLargeError((h, w), (height, width))


def _plan(
    image_shape: tuple[int, int, int],
    prepared: PreparedTemplate,
    weights: np.ndarray | None,
    method: str,
    engine: str,
    threads: int | None,
) -> Plan:
    """The plan of one search; its masked template comes from the template's cache."""
    h, w, _ = prepared.shape
    masked = None
    flat = prepared.flat
    if weights is not None:
        masked = prepared.masked(weights, method in ("ccoeff", "ccoeff_normed"))
        flat = masked.flat
    return plan_search(
        image_shape,
        (h, w),
        method,
        engine=engine,
        threads=SHARED.threads if threads is None else threads,
        masked=masked,
        constant=method == "ccoeff_normed" and flat,
    )


def plan_match(
    image_shape: tuple[int, ...],
    template: object,
    method: str | None = None,
    *,
    engine: str = "auto",
    mask: object = None,
    pad: str = "none",
    convolve: bool = False,
    threads: int | None = None,
) -> Plan:
    """What ``match_template`` would run for an image of this shape, decided now.

    Parameters are those of ``match_template``, with the image's shape
    ``(H, W[, C])`` in place of the image.

    Examples
    --------
    >>> plan = plan_match((1024, 1024, 3), np.ones((64, 64, 3)), threads=2)
    >>> plan.engine, plan.tile, plan.band_rows
    ('fft', 256, 961)
    """
    method = _check_options(method, engine, pad, template)
    shape = tuple(image_shape) if len(image_shape) == 3 else (*image_shape, 1)
    if isinstance(template, LearnedFilter):
        _no_mask(mask, template.name)
        _check_filter_channels(shape, template)
        return plan_match(
            shape[:2] + (template.shape[2],),
            template.prepared,
            "ccorr",
            engine=engine,
            pad=pad,
            convolve=convolve,
            threads=threads,
        )
    prepared = _prepared(template, convolve)
    padded = _padded_shape(shape, prepared.shape, pad)
    _check_fits(padded, prepared.shape)
    weights = _weights(mask, prepared, convolve)
    return _plan(padded, prepared, weights, method, engine, threads)


def _check_filter_channels(shape: tuple[int, ...], learned: LearnedFilter) -> None:
    if int(shape[2]) != learned.channels:
        learned.preprocess(np.zeros((1, 1, int(shape[2])), np.float32))  # raises, saying why


def _match_filter(
    image: object,
    learned: LearnedFilter,
    *,
    engine: str,
    mask: object,
    pad: str,
    convolve: bool,
    threads: int | None,
    plan: Plan | None,
) -> np.ndarray:
    """A learned filter's scores: its preprocessing, one correlation (ccorr), its bias."""
    _no_mask(mask, learned.name)
    features = learned.preprocess(as_hwc(image, "image"))
    scores = match_template(
        features,
        learned.prepared,
        "ccorr",
        engine=engine,
        pad=pad,
        convolve=convolve,
        threads=threads,
        plan=plan,
    )
    scores += np.float32(learned.bias)
    return scores


def _weights(mask: object, prepared: PreparedTemplate, convolve: bool) -> np.ndarray | None:
    """The mask as (C, h, w) weights for the prepared template, or None."""
    if mask is None:
        return None
    m = as_hwc(mask, "mask")
    return as_mask(m[::-1, ::-1] if convolve else m, prepared.shape)


def match_template(
    image: object,
    template: object,
    method: str | None = None,
    *,
    engine: str = "auto",
    mask: object = None,
    pad: str = "none",
    convolve: bool = False,
    threads: int | None = None,
    plan: Plan | None = None,
) -> np.ndarray:
    r"""Score every placement of ``template`` inside ``image``.

    Parameters
    ----------
    image : (H, W[, C]) array_like
        Any real dtype; computed in float32 (values are rounded to float32
        first), with products and sums accumulated in float64. Any finite
        values float32 holds are searched, up to ±3.4e38: see Returns.
    template : (h, w[, C]) array_like, PreparedTemplate or LearnedFilter
        Same channel count as ``image``; h ≤ H and w ≤ W. A template from
        ``prepare_template`` skips the per-call preparation (for batches).
        A learned filter (``learn_filter``, ``load_filter``) is scored by its
        own method, ``learned``: the image preprocessed as it expects,
        correlated with its kernel V, plus its bias u (see Notes).
    method : str, optional
        One of ``sqdiff``, ``sqdiff_normed``, ``ccorr``, ``ccorr_normed``,
        ``ccoeff``, ``ccoeff_normed`` (default for templates); ``learned``
        (the only one, and the default, for learned filters).
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
    threads : int, optional
        Threads the kernels run on (default: ``get_threads()``, all cores or
        NUMBA_NUM_THREADS).
    plan : Plan, optional
        A plan from ``plan_match`` for exactly these arguments: what runs,
        decided beforehand (``auto`` already resolved). By default the
        search is planned here.

    Returns
    -------
    scores : (H-h+1, W-w+1) float32 ndarray
        ``scores[y, x]`` scores the window whose top-left corner is row y,
        column x. Never NaN or inf: the normed scores are exact (to about
        1e-7) for any finite input, however large its values or the mask's
        weights; a raw score (``sqdiff``, ``ccorr``, ``ccoeff``, masked
        ``sqdiff_normed``) beyond float32's range, which pixels or weights
        of about 1e19 reach, is saturated at ±3.4028235e38 (float32's
        largest), on every engine alike.

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

    A learned filter's score is the chapter's convolutional layer with one
    output channel,

    .. math::

        R_{learned}(x, y) = u + \sum_{x',y',c} V(x',y',c)\, X(x+x',y+y',c),
        \quad X = I / 255 - 1/2,

    with V and u calibrated when the filter was learned: about 1 on a
    typical example, 0.5 (the default threshold) where it decides "found".
    With padding, the preprocessed image X is padded (zeros are mid-grey).

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

    A learned filter in place of the template (here one made by hand; see
    ``learn_filter`` and ``load_filter``): u + Σ V · (I/255 − 1/2).

    >>> from waldo_cli.templates import LearnedFilter
    >>> learned = LearnedFilter(np.ones((2, 2, 1), np.float32), -1.0, colour="grey")
    >>> match_template(np.full((3, 4), 255.0), learned)[0, 0]  # 4 × (1 − 1/2) − 1
    np.float32(1.0)
    """
    method = _check_options(method, engine, pad, template)
    if isinstance(template, LearnedFilter):
        return _match_filter(
            image,
            template,
            engine=engine,
            mask=mask,
            pad=pad,
            convolve=convolve,
            threads=threads,
            plan=plan,
        )
    img, peak = as_hwc_peak(image, "image")
    prepared = _prepared(template, convolve)
    if convolve and mask is not None:
        mask = as_hwc(mask, "mask")[::-1, ::-1]
    if pad != "none":
        (top, bottom), (left, right) = pad_widths(prepared.shape)
        img = np.pad(img, ((top, bottom), (left, right), (0, 0)), mode=_NUMPY_PAD[pad])
    _check_fits(img.shape, prepared.shape)
    weights = None if mask is None else as_mask(mask, prepared.shape)
    if plan is None:  # once for the whole image, so that every band agrees
        plan = _plan(img.shape, prepared, weights, method, engine, threads)
    return _run(img, prepared, weights, method, plan, peak)


def _corr_scale(prepared: PreparedTemplate, peak: float) -> float:
    """A power of two that keeps the template's correlation with any window within float32.

    ``peak`` bounds the image's magnitude. By Cauchy-Schwarz a correlation is
    at most the template's norm times the window's; 1.0 for any image of
    ordinary values.

    >>> _corr_scale(prepare_template(np.eye(3)), 255.0)
    1.0
    >>> _corr_scale(prepare_template(np.eye(3) * 3e38), 3e38) == 2.0**-138
    True
    """
    h, w, channels = prepared.shape
    bound = math.sqrt(prepared.energy) * math.sqrt(h * w * channels) * peak
    if bound <= _CORR_LIMIT:
        return 1.0
    return 2.0 ** -math.ceil(math.log2(bound / _CORR_LIMIT))


def _run(
    img: np.ndarray,
    prepared: PreparedTemplate,
    weights: np.ndarray | None,
    method: str,
    plan: Plan,
    peak: float,
) -> np.ndarray:
    """One search as planned: image (H, W, C) already padded, template already turned.

    ``peak`` bounds the image's magnitude (see ``arrays.as_hwc_peak``).
    """
    (height, width, _), (h, w, _) = img.shape, prepared.shape
    out_h, out_w = height - h + 1, width - w + 1
    if plan.constant:
        # OpenCV: a flat template correlates equally with everything.
        return np.ones((out_h, out_w), np.float32)
    band = plan.band_rows
    if weights is not None:
        masked = prepared.masked(weights, method in ("ccoeff", "ccoeff_normed"))
        if band >= out_h:
            return _match_masked(img, masked, method, plan)
        scores = np.empty((out_h, out_w), np.float32)
        for top in range(0, out_h, band):
            rows = min(band, out_h - top)
            scores[top : top + rows] = _match_masked(
                img[top : top + rows + h - 1], masked, method, plan
            )
        return scores
    code = METHOD_CODES[method]
    # float32 is enough to hold the correlation: it is at most the norm it is
    # divided by (Cauchy-Schwarz), so rounding it costs 6e-8 of a score; with
    # huge pixel values it is held scaled down by a power of two
    scale = _corr_scale(prepared, peak)
    scores = np.empty((out_h, out_w), np.float32)
    for top in range(0, out_h, band):
        rows = min(band, out_h - top)
        # a band of the image as planes: the whole image when it is not huge
        planar = as_planar(img[top : top + rows + h - 1])
        offsets = channel_offsets(planar)
        corr = scores[top : top + rows]  # whole rows: C-contiguous
        _correlate(planar, prepared, offsets, corr, plan, scale)
        _finish(planar, offsets, prepared, code, corr, plan.threads, scale)
    return scores


def _correlate(
    planar: np.ndarray,
    template: PreparedTemplate,
    offsets: np.ndarray,
    out: np.ndarray,
    plan: Plan,
    scale: float = 1.0,
) -> None:
    """The correlation of one template by the plan's engine, times ``scale``, into ``out``.

    image (C, H, W) float32, template prepared (its kernel is centred, so it
    sums to zero), offsets (C,) float64, out (H-h+1, W-w+1) float32; scale
    a power of two (``_corr_scale``).
    """
    kernels = jit.kernels()
    if plan.engine == "direct":
        kernel = template.kernel if scale == 1.0 else template.kernel * scale
        SHARED.run_bands(
            kernels._correlate_direct,
            (planar, kernel, out),
            out.shape[0],
            threads=plan.threads,
            scratch=lambda: (np.empty((3, out.shape[1])),),
        )
    else:
        # out is C-contiguous (whole rows), so this flat view is out itself
        _correlate_shared(
            planar, offsets, [template], plan.tile or 0, plan.threads, out.reshape(-1), [scale]
        )


def _finish(
    planar: np.ndarray,
    offsets: np.ndarray,
    prepared: PreparedTemplate,
    code: int,
    corr: np.ndarray,
    threads: int,
    scale: float = 1.0,
) -> np.ndarray:
    """Turn a correlation map (times ``scale``) into the method's scores, in place; return it."""
    kernels = jit.kernels()
    h, w, _ = prepared.shape
    # the scores overwrite the correlation row by row: one map fewer to
    # allocate (and fault in) per search
    SHARED.run_bands(
        kernels._finish_scores,
        (
            code,
            planar,
            h,
            w,
            offsets,
            corr,
            1.0 / scale,
            prepared.mean,
            prepared.energy,
            prepared.sq,
            corr,
        ),
        corr.shape[0],
        threads=threads,
        scratch=lambda: (np.empty((2 * planar.shape[0] + 5, planar.shape[2])),),
    )
    return corr


def _correlate_shared(
    planar: np.ndarray,
    offsets: np.ndarray,
    preps: list[PreparedTemplate],
    side: int,
    threads: int,
    flat: np.ndarray | None = None,
    scales: list[float] | None = None,
) -> list[np.ndarray]:
    """The correlation maps of several templates by FFT tiles of ``side`` shared among them.

    ``flat``: where the maps go, one after another (a map's own buffer, as a
    view, for one template); by default a new float32 array. ``scales``: a
    power of two per template that its map is multiplied by (default 1).
    """
    kernels = jit.kernels()
    load_fft()
    _, height, width = planar.shape
    h_max = max(p.shape[0] for p in preps)
    w_max = max(p.shape[1] for p in preps)
    out_shape = (height - h_max + 1, width - w_max + 1)
    scales = scales or [1.0] * len(preps)
    spectra = np.stack(
        [
            p.spectrum(side) if s == 1.0 else p.spectrum(side) * s
            for p, s in zip(preps, scales, strict=True)
        ]
    )
    shapes = [(height - p.shape[0] + 1, width - p.shape[1] + 1) for p in preps]
    starts = np.cumsum([0] + [oh * ow for oh, ow in shapes])
    if flat is None:
        flat = np.empty(int(starts[-1]), np.float32)
    heights = np.array([p.shape[0] for p in preps], np.int64)
    widths = np.array([p.shape[1] for p in preps], np.int64)
    tiles = -(-out_shape[0] // (side - h_max + 1)) * -(-out_shape[1] // (side - w_max + 1))
    _, _, tile_h, half = spectra.shape
    spectral = (planar.shape[0] if len(preps) > 1 else 1) + 1
    SHARED.run_bands(
        kernels._correlate_fft,
        (
            planar,
            offsets,
            spectra,
            heights,
            widths,
            flat,
            starts[:-1].astype(np.int64),
            np.arange(2, dtype=np.int64),
        ),
        tiles,
        threads=threads,
        scratch=lambda: (
            np.zeros((2, tile_h, 2 * (half - 1))),
            np.empty((spectral, tile_h, half), np.complex128),
        ),
    )
    return [flat[starts[k] : starts[k + 1]].reshape(shape) for k, shape in enumerate(shapes)]


def _match_masked(img: np.ndarray, masked: MaskedTemplate, method: str, plan: Plan) -> np.ndarray:
    """One band of a masked search: the window sums of a few rows (or of one FFT tile) at a time.

    ``_masked_maps`` (sliding windows) or ``_masked_tile`` (FFT) computes
    every masked window sum of those windows in one pass, and
    ``_masked_rows`` turns them into scores while they are in the cache.

    The image is offset by its channel means (J = I - o) for the ccoeff
    methods, so their variance Σ W J² − 2 m Σ W J + m² Σ W cancels only
    small numbers; the other methods' sums are not differenced, and
    unoffset they stay exactly 0 on black windows. Windows whose energy is
    within a few thousand times the floor below are summed again directly
    by the kernels. Shapes are checked by the caller.
    """
    kernels = jit.kernels()
    (height, width, channels), (_, h, w) = img.shape, masked.kern.shape
    out_shape = (height - h + 1, width - w + 1)
    centred = method in ("ccoeff", "ccoeff_normed")
    planar = as_planar(img)
    offsets = channel_offsets(planar) if centred else np.zeros(channels)
    # Energies below the rounding of the sums they come from are residue: a
    # black window's ΣW I² from differenced or transformed sums is ±1e-9,
    # not 0, and masked sqdiff_normed (not clamped) would divide by it. The
    # FFT's rounding measured at most 5 ε ΣW max J²; the floor is 64 ε ΣW
    # max J², 1.4e-14 of the most a window can hold, for both engines so
    # that they agree.
    reach = max(
        float((planar.max(axis=(1, 2)) - offsets).max()),
        float((offsets - planar.min(axis=(1, 2))).max()),
    )
    floor = 64.0 * DBL_EPSILON * float(masked.w_sum.sum()) * reach * reach
    code = METHOD_CODES[method]
    scores = np.empty(out_shape, np.float32)
    need_b = method not in ("ccorr", "ccoeff")  # the methods with a norm
    need_a = method == "ccoeff_normed"
    planes = masked.mask.shape[0]
    w_sum, m_sum, soft = masked.w_sum, masked.m_sum, masked.soft

    def scores_of(maps: np.ndarray, work: np.ndarray, y0: int, y1: int, x0: int, n: int) -> None:
        """Scores of windows (y, x0 .. x0 + n), y0 <= y < y1, from their maps (_masked_rows)."""
        kernels._masked_rows(
            code,
            maps,
            planar,
            masked.kern,
            masked.weights,
            masked.mask,
            offsets,
            w_sum,
            m_sum,
            masked.t_sq,
            masked.tnorm,
            floor,
            soft,
            work,
            scores,
            y0,
            y1,
            x0,
            n,
        )

    if plan.engine == "direct":
        index, count = _mask_taps(masked.mask)
        k_sum = masked.kern.sum(axis=(1, 2))
        # the maps of a few rows at a time: they stay in the cache between the
        # two kernels, and each chunk's first row sums h rows of squares anew
        maps_rows = max(4, h // 2)

        def band(start: int, stop: int) -> None:
            ring = np.zeros((planes if need_b else 0, h, width))
            maps = np.empty((2 + 2 * channels, maps_rows, out_shape[1]))
            work = np.empty((3, out_shape[1]))
            # the image rows a chunk reads, in float64: the kernel then sums
            # rows of one type (its callees compile once, not once a type),
            # and the float32 pixels convert exactly, as they would in it
            rows = np.empty((channels, maps_rows + h - 1, width))
            for top in range(start, stop, maps_rows):
                end = min(stop, top + maps_rows)
                span = end - top + h - 1
                rows[:, :span] = planar[:, top : top + span]
                kernels._masked_maps(
                    code,
                    rows,
                    offsets,
                    masked.kern,
                    masked.weights,
                    masked.mask,
                    w_sum,
                    m_sum,
                    soft,
                    index,
                    count,
                    k_sum,
                    ring,
                    maps,
                    0,
                    end - top,
                )
                scores_of(maps, work, top, end, 0, out_shape[1])

        SHARED.run_bands(band, (), out_shape[0], threads=plan.threads)
    else:
        load_fft()
        side = plan.tile or 0
        kern_spec, w_spec, m_spec = masked.spectra(side)
        _, tile_h, half = kern_spec.shape
        tile_w = 2 * (half - 1)
        step_y, step_x = tile_h - h + 1, tile_w - w + 1
        out_h, out_w = out_shape
        tiles_x = -(-out_w // step_x)
        tiles = -(-out_h // step_y) * tiles_x
        layers = 2 + channels * (need_a + (need_a and soft))
        axes = np.arange(2, dtype=np.int64)

        def tiles_of(first: int, last: int) -> None:
            maps = np.zeros((layers, tile_h, tile_w))
            spectral = np.empty((4, tile_h, half), np.complex128)
            real = np.empty((2, tile_h, tile_w))
            work = np.empty((3, tile_w))
            for tile in range(first, last):
                kernels._masked_tile(
                    code,
                    planar,
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
                )
                y0, x0 = (tile // tiles_x) * step_y, (tile % tiles_x) * step_x
                scores_of(maps, work, y0, min(y0 + step_y, out_h), x0, min(step_x, out_w - x0))

        SHARED.run_bands(tiles_of, (), tiles, threads=plan.threads)
    return scores


def _mask_taps(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index, count): the taps each row of each mask plane keeps, for ``_masked_maps``.

    >>> index, count = _mask_taps(np.array([[[0.0, 2.0, 0.0, 1.0]]]))
    >>> index.tolist(), count.tolist()
    ([[[1, 3, 0, 0]]], [[2]])
    """
    planes, h, w = mask.shape
    index = np.zeros((planes, h, w), np.int64)
    count = np.zeros((planes, h), np.int64)
    for p in range(planes):
        for i in range(h):
            kept = np.flatnonzero(mask[p, i] != 0.0)
            index[p, i, : len(kept)] = kept
            count[p, i] = len(kept)
    return index, count


def _map_bytes(image_shape: tuple[int, ...], prepared: PreparedTemplate) -> int:
    return 4 * (image_shape[0] - prepared.shape[0] + 1) * (image_shape[1] - prepared.shape[1] + 1)


def _pad_once(
    img: np.ndarray, preps: list[PreparedTemplate], pad: str
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """The image padded as far as the largest template needs, and each template's crop origin.

    A template that needs less padding sees, in the wider margin, the same
    values a narrower pad gives (zeros, edge pixels or the mirror image),
    so its cropped map equals its own padded search.
    """
    widths = [pad_widths(p.shape) for p in preps]
    top, bottom = (max(w[0][k] for w in widths) for k in (0, 1))
    left, right = (max(w[1][k] for w in widths) for k in (0, 1))
    padded = np.pad(img, ((top, bottom), (left, right), (0, 0)), mode=_NUMPY_PAD[pad])
    return padded, [(top - t, left - lft) for (t, _), (lft, _) in widths]


def _padded_once_shape(
    shape: tuple[int, ...], preps: list[PreparedTemplate], pad: str
) -> tuple[int, int, int]:
    height, width, channels = (int(v) for v in shape)
    if pad == "none":
        return height, width, channels
    widths = [pad_widths(p.shape) for p in preps]
    rows = max(w[0][0] for w in widths) + max(w[0][1] for w in widths)
    cols = max(w[1][0] for w in widths) + max(w[1][1] for w in widths)
    return height + rows, width + cols, channels


def _template_masks(templates: list[object], masks: list[object] | None) -> list[object]:
    masks = [None] * len(templates) if masks is None else list(masks)
    if len(masks) != len(templates):
        raise ShapeError(f"{len(masks)} masks for {len(templates)} templates")
    return masks


def plan_matches(
    image_shape: tuple[int, ...],
    templates: list[object],
    method: str | None = None,
    *,
    engine: str = "auto",
    masks: list[object] | None = None,
    pad: str = "none",
    convolve: bool = False,
    threads: int | None = None,
) -> list[Plan | None]:
    """What ``match_templates`` would run for each template: a Plan, or None where it misfits.

    A template misfits when it is larger than the image, or its channels
    differ (``match_templates`` then raises for it).

    Parameters
    ----------
    image_shape : (H, W[, C])
        The shape of the image ``match_templates`` would be given.
    templates : list of (h, w[, C]) array_like or PreparedTemplate
    method, engine, masks, pad, convolve, threads
        As for ``match_templates``.

    Returns
    -------
    list of Plan or None
        One per template.

    Examples
    --------
    >>> plans = plan_matches((64, 64, 1), [np.ones((3, 3)), np.ones((80, 3))], threads=1)
    >>> plans[0].engine, plans[1]
    ('direct', None)
    """
    filters = _filters(list(templates))
    method = _check_options(method, engine, pad, filters[0] if filters else None)
    shape = tuple(image_shape) if len(image_shape) == 3 else (*image_shape, 1)
    if filters is not None:
        for mask in masks or ():
            _no_mask(mask, filters[0].name)
        _check_filter_channels(shape, filters[0])
        return plan_matches(
            shape[:2] + (filters[0].shape[2],),
            [f.prepared for f in filters],
            "ccorr",
            engine=engine,
            pad=pad,
            convolve=convolve,
            threads=threads,
        )
    masks = _template_masks(templates, masks)
    preps = [_prepared(t, convolve) for t in templates]
    padded = _padded_once_shape(shape, preps, pad)
    return _plans(padded, preps, masks, method, engine, threads, convolve)


def _plans(
    image_shape: tuple[int, int, int],
    preps: list[PreparedTemplate],
    masks: list[object],
    method: str,
    engine: str,
    threads: int | None,
    convolve: bool,
) -> list[Plan | None]:
    """The plan of each prepared (already turned) template on an image of this (padded) shape."""
    plans: list[Plan | None] = []
    for prepared, mask in zip(preps, masks, strict=True):
        h, w, t_channels = prepared.shape
        if h > image_shape[0] or w > image_shape[1] or t_channels != image_shape[2]:
            plans.append(None)
            continue
        weights = _weights(mask, prepared, convolve)
        plans.append(_plan(image_shape, prepared, weights, method, engine, threads))
    return plans


def match_templates(
    image: object,
    templates: list[object],
    method: str | None = None,
    *,
    engine: str = "auto",
    masks: list[object] | None = None,
    pad: str = "none",
    convolve: bool = False,
    threads: int | None = None,
    plans: list[Plan | None] | None = None,
) -> list[np.ndarray | None]:
    """``match_template`` for several templates (scales, turns) on one image, sharing the work.

    The image is converted once, and the templates the FFT path serves share
    its transforms: each image tile is transformed once and then costs one
    product and one inverse transform per template, instead of C + 1
    transforms. The scores are those ``match_template`` gives for each
    template alone.

    Parameters
    ----------
    image : (H, W[, C]) array_like
    templates : list of (h, w[, C]) array_like or PreparedTemplate, or of LearnedFilter
        Learned filters (copies of one, say, scaled) are searched together
        only with filters that read images alike: the image is preprocessed
        once for all of them.
    method, engine, pad, convolve, threads
        As for ``match_template``; with ``engine="auto"`` each template gets
        the engine the planner picks for it. With padding every map has
        the image's shape, indexed by window centre (the image is padded
        once, as far as the largest template needs).
    masks : list of (h, w[, C]) array_like or None, optional
        One mask (or None) per template.
    plans : list of Plan or None, optional
        From ``plan_matches`` for exactly these arguments; by default
        planned here.

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
    filters = _filters(list(templates))
    method = _check_options(method, engine, pad, filters[0] if filters else None)
    if filters is not None:
        for mask in masks or ():
            _no_mask(mask, filters[0].name)
        found = match_templates(
            filters[0].preprocess(as_hwc(image, "image")),
            [f.prepared for f in filters],
            "ccorr",
            engine=engine,
            pad=pad,
            convolve=convolve,
            threads=threads,
            plans=plans,
        )
        for scores, learned in zip(found, filters, strict=True):
            if scores is not None:
                scores += np.float32(learned.bias)
        return found
    img, peak = as_hwc_peak(image, "image")
    masks = _template_masks(templates, masks)
    preps = [_prepared(t, convolve) for t in templates]
    origins: list[tuple[int, int]] | None = None
    height, width = img.shape[:2]
    if pad != "none":
        img, origins = _pad_once(img, preps, pad)
    if plans is None:
        plans = _plans(img.shape, preps, masks, method, engine, threads, convolve)
    maps = _match_planned(img, preps, masks, method, plans, convolve, peak)
    if origins is None:
        return maps
    return [
        None
        if scores is None
        else np.ascontiguousarray(scores[top : top + height, left : left + width])
        for scores, (top, left) in zip(maps, origins, strict=True)
    ]


def _match_planned(
    img: np.ndarray,
    preps: list[PreparedTemplate],
    masks: list[object],
    method: str,
    plans: list[Plan | None],
    convolve: bool,
    peak: float,
) -> list[np.ndarray | None]:
    """Run every template's plan on one (padded) image; FFT plans share the image's tiles.

    ``peak`` bounds the image's magnitude (see ``arrays.as_hwc_peak``).
    """
    (height, width, channels), code = img.shape, METHOD_CODES[method]
    maps: list[np.ndarray | None] = [None] * len(preps)
    planar: np.ndarray | None = None
    offsets = np.zeros(channels)
    shared: list[int] = []
    for i, (prepared, mask, plan) in enumerate(zip(preps, masks, plans, strict=True)):
        h, w, t_channels = prepared.shape
        if h > height or w > width:
            continue
        if mask is not None or t_channels != channels or plan is None or plan.constant:
            # masked, flat and mismatched templates: the single search (or its error)
            _check_fits(img.shape, prepared.shape)
            weights = _weights(mask, prepared, convolve)
            maps[i] = _run(
                img,
                prepared,
                weights,
                method,
                plan or _plan(img.shape, prepared, weights, method, "auto", None),
                peak,
            )
            continue
        if planar is None:
            planar = as_planar(img)
            offsets = channel_offsets(planar)
        if plan.engine == "fft":
            shared.append(i)
            continue
        corr = np.empty((height - h + 1, width - w + 1), np.float32)
        scale = _corr_scale(prepared, peak)
        _correlate(planar, prepared, offsets, corr, plan, scale)
        maps[i] = _finish(planar, offsets, prepared, code, corr, plan.threads, scale)
    # largest templates first: a group's tile size suits its largest member
    shared.sort(key=lambda i: -max(preps[i].shape[:2]))
    while shared:
        group: list[int] = []
        size = 0
        while shared and (
            not group or size + _map_bytes(img.shape, preps[shared[0]]) <= _SHARED_BYTES
        ):
            size += _map_bytes(img.shape, preps[shared[0]])
            group.append(shared.pop(0))
        threads = max(plans[i].threads for i in group)  # type: ignore[union-attr]
        h_max = max(preps[i].shape[0] for i in group)
        w_max = max(preps[i].shape[1] for i in group)
        # the group's tile suits its largest member (the cost model, as in plan.py)
        _, side = fft_plan(
            (height - h_max + 1, width - w_max + 1), (h_max, w_max), channels, threads
        )
        assert planar is not None
        scales = [_corr_scale(preps[i], peak) for i in group]
        for i, scale, corr in zip(
            group,
            scales,
            _correlate_shared(
                planar, offsets, [preps[i] for i in group], side, threads, scales=scales
            ),
            strict=True,
        ):
            maps[i] = _finish(planar, offsets, preps[i], code, corr, threads, scale)
    return maps
