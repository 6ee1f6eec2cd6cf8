"""Templates made ready once for many searches: prepared kernels, masks and their spectra.

A ``PreparedTemplate`` holds what every search with a template needs (its
mean-free kernel, energies, OpenCV's flat rule) and caches, per template,
the FFT spectra of each tile size and the masked kernels of each mask. The
caches live on the template object, behind its own lock, so templates can be
shared by any number of concurrent searches and nothing is process-global.
A new kind of filter (a learned one, say) is another record here that the
engine can correlate.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from waldo_cli.arrays import as_hwc

# OpenCV calls a template flat when its variance, summed over channels, is
# below DBL_EPSILON, and then scores every window 1 for ccoeff_normed.
DBL_EPSILON = float(np.finfo(np.float64).eps)

# masks remembered per template (variants each have their own template)
_MASKS_KEPT = 8


def conjugate_spectra(planes: np.ndarray, side: int) -> np.ndarray:
    """Conjugate 2-D spectra of (C, h, w) planes zero-padded to side×side, for FFT tiles.

    >>> conjugate_spectra(np.ones((1, 2, 2)), 4).shape
    (1, 4, 3)
    """
    channels, h, w = planes.shape
    padded = np.zeros((channels, side, side), np.float64)
    padded[:, :h, :w] = planes
    return np.ascontiguousarray(np.conj(np.fft.rfft2(padded, axes=(1, 2))))


@dataclass(frozen=True, eq=False)
class MaskedTemplate:
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
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def taps(self) -> float:
        """Template pixels the mask keeps, times channels (the direct kernel's work per window)."""
        return float(np.count_nonzero(self.mask)) * self.kern.shape[0] / len(self.mask)

    def spectra(self, side: int) -> tuple[np.ndarray, ...]:
        """Conjugate spectra of kern, weights and mask zero-padded to side×side, cached."""
        with self._lock:
            found = self._spectra.get(side)
            if found is None:
                found = tuple(
                    conjugate_spectra(planes, side)
                    for planes in (self.kern, self.weights, self.mask)
                )
                self._spectra[side] = found
            return found


def _make_masked(
    template: np.ndarray, kernel_shape: tuple[int, int, int], mask: np.ndarray, centred: bool
) -> MaskedTemplate:
    """The masked kernels of T (C, h, w) for the ccoeff methods (centred) or the others."""
    _, h, w = kernel_shape
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
        flat = t_energy / (h * w) < DBL_EPSILON
    else:
        kern = weights * template
        tnorm = float(np.sqrt(t_sq))
    one = all(np.array_equal(mask[0], plane) for plane in mask[1:])
    planes = slice(0, 1) if one else slice(None)
    return MaskedTemplate(
        kern=np.ascontiguousarray(kern),
        weights=np.ascontiguousarray(weights[planes]),
        # a copy: a one-channel mask arrives as a read-only broadcast view,
        # and Numba compiles a kernel again for read-only arrays
        mask=mask[planes].copy(),
        w_sum=w_sum,
        m_sum=m_sum,
        t_sq=t_sq,
        tnorm=tnorm,
        flat=flat,
        soft=not np.array_equal(mask, weights),
    )


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
    _masked: dict[tuple[bool, bytes], MaskedTemplate] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def flipped(self) -> PreparedTemplate:
        """The same template turned by 180° (for convolution)."""
        return replace(
            self,
            kernel=np.ascontiguousarray(self.kernel[:, ::-1, ::-1]),
            _spectra={},
            _masked={},
            _lock=threading.Lock(),
        )

    def spectrum(self, side: int) -> np.ndarray:
        """Conjugate spectra of the kernel planes zero-padded to side×side, cached."""
        with self._lock:
            found = self._spectra.get(side)
            if found is None:
                found = self._spectra[side] = conjugate_spectra(self.kernel, side)
            return found

    def masked(self, mask: np.ndarray, centred: bool) -> MaskedTemplate:
        """The template's masked kernels for a (C, h, w) mask, cached per mask.

        ``centred`` for the ccoeff methods, whose kernel folds in the mean.
        """
        key = (centred, mask.tobytes())
        with self._lock:
            found = self._masked.get(key)
        if found is None:
            template = self.kernel + self.mean[:, None, None]  # T, (C, h, w)
            found = _make_masked(template, self.kernel.shape, mask, centred)
            with self._lock:
                if len(self._masked) >= _MASKS_KEPT:
                    self._masked.clear()
                found = self._masked.setdefault(key, found)
        return found


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
    tpl = as_hwc(template, "template")
    h, w, _ = tpl.shape
    tpl64 = tpl.astype(np.float32).astype(np.float64)
    mean = tpl64.mean(axis=(0, 1))
    centred = tpl64 - mean
    energy = float(np.sum(centred * centred))
    return PreparedTemplate(
        shape=(int(tpl.shape[0]), int(tpl.shape[1]), int(tpl.shape[2])),
        kernel=np.ascontiguousarray(centred.transpose(2, 0, 1)),
        mean=np.ascontiguousarray(mean),
        energy=energy,
        sq=float(np.sum(tpl64 * tpl64)),
        flat=energy / (h * w) < DBL_EPSILON,
    )


# The images a learned filter reads: pixels on the 0–255 scale become
# x / 255 - 0.5, so that a window of mid-grey contributes nothing and the
# filter's weights are on the scale of its inputs.
FILTER_COLOURS = {"rgb": 3, "grey": 1}
FILTER_FEATURES = ("pixels",)


@dataclass(frozen=True, eq=False)
class LearnedFilter:
    """A filter learned from examples (``waldo learn``): one correlation plus a bias.

    Its score at a window is the chapter's [H]_{i,j} = u + Σ_{a,b,c} [V]_{a,b,c}
    [X]_{i+a,j+b,c}, with X the image preprocessed as the filter expects
    (``preprocess``) and V and u calibrated when it was learned, so that 1 is
    a typical example and the default threshold 0.5 means "found".

    Attributes
    ----------
    kernel : (h, w, C) float32 ndarray
        V, the weights.
    bias : float
        u, added to every window's correlation.
    colour : {"rgb", "grey"}
        The channels images are read in (C = 3 or 1).
    features : str
        The preprocessing: ``"pixels"`` is x / 255 - 0.5 per channel.
    calibration : dict
        How the scores were scaled (what 0.5 and 1 stand for), JSON-ready.
    training : dict
        The settings it was learned with and how well it separated its
        examples, JSON-ready.
    version : str
        The waldo that learned it.
    name : str
        Where it came from (the file), for reports.
    scales : tuple of float
        The sizes of the target it was learned from, relative to the
        kernel's: ``waldo find`` (a ``Searcher``) searches the kernel resized
        by each of them unless told other scales; ``match_template`` uses the
        kernel as it is.

    Examples
    --------
    >>> f = LearnedFilter(np.ones((4, 3, 3), np.float32), -0.5)
    >>> f.shape, f.parameters, f.channels
    ((4, 3, 3), 37, 3)
    """

    kernel: np.ndarray
    bias: float
    colour: str = "rgb"
    features: str = "pixels"
    calibration: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    version: str = ""
    name: str = "<filter>"
    scales: tuple[float, ...] = (1.0,)
    _cache: dict[str, PreparedTemplate] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        from waldo_cli.errors import ShapeError

        kernel = np.asarray(self.kernel)
        if kernel.ndim != 3 or kernel.size == 0 or kernel.dtype.kind != "f":
            raise ShapeError(f"{self.name}: the kernel must be a non-empty (h, w, C) float array")
        if self.colour not in FILTER_COLOURS:
            raise ShapeError(f"{self.name}: unknown colour space {self.colour!r}")
        if self.features not in FILTER_FEATURES:
            raise ShapeError(f"{self.name}: unknown preprocessing {self.features!r}")
        if kernel.shape[2] != FILTER_COLOURS[self.colour]:
            raise ShapeError(
                f"{self.name}: a {self.colour} filter has {FILTER_COLOURS[self.colour]} "
                f"channel(s), not {kernel.shape[2]}"
            )
        if not (np.isfinite(kernel).all() and np.isfinite(self.bias)):
            raise ShapeError(f"{self.name}: the kernel or the bias holds NaN or infinite values")
        scales = tuple(float(s) for s in self.scales)
        if not scales or not all(np.isfinite(s) and s > 0 for s in scales):
            raise ShapeError(f"{self.name}: scales must be positive numbers, got {self.scales}")
        object.__setattr__(self, "scales", scales)
        object.__setattr__(self, "kernel", np.ascontiguousarray(kernel, np.float32))
        object.__setattr__(self, "bias", float(self.bias))

    @property
    def shape(self) -> tuple[int, int, int]:
        """(h, w, C) of the kernel."""
        h, w, channels = self.kernel.shape
        return int(h), int(w), int(channels)

    @property
    def channels(self) -> int:
        """Channels of the images it searches (3 for colour, 1 for grey)."""
        return FILTER_COLOURS[self.colour]

    @property
    def parameters(self) -> int:
        """Its weights and its one bias: h·w·C + 1."""
        h, w, channels = self.shape
        return h * w * channels + 1

    @property
    def prepared(self) -> PreparedTemplate:
        """The kernel prepared as a template, for the engine's correlation (cached)."""
        with self._lock:
            found = self._cache.get("prepared")
            if found is None:
                found = self._cache["prepared"] = prepare_template(self.kernel)
            return found

    def with_kernel(self, kernel: np.ndarray) -> LearnedFilter:
        """The same filter with another kernel (a scaled, turned or mirrored copy)."""
        return replace(self, kernel=kernel, _cache={}, _lock=threading.Lock())

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """An (H, W, C) image as the filter reads it: (H, W, C) float32 features.

        Raises ShapeError when the image's channels are not the filter's
        (a grey filter searches colour images made grey first: see
        ``io.reconcile_filter``; a search does so through ``search._pixels_in``).

        >>> f = LearnedFilter(np.ones((2, 2, 1), np.float32), 0.0, colour="grey")
        >>> f.preprocess(np.full((3, 3, 1), 255.0))[0, 0, 0]
        np.float32(0.5)
        """
        from waldo_cli.errors import ShapeError

        pixels = as_hwc(image, "image")
        if pixels.shape[2] != self.channels:
            raise ShapeError(
                f"{self.name} was learned on {self.colour} images ({self.channels} "
                f"channel(s)); the image has {pixels.shape[2]}"
                + ("; colour cannot be invented for a grey image" if self.channels == 3 else "")
            )
        out = np.empty(pixels.shape, np.float32)
        np.multiply(pixels, np.float32(1 / 255), out=out, casting="unsafe")
        out -= np.float32(0.5)
        return out
