r"""The matching engine used as a convolutional layer: ``waldo conv``.

The chapter "From Fully Connected Layers to Convolutions" ends with a layer
that maps an image X with channels c to a hidden representation H with
channels d through one filter V of shape (2Δ+1, 2Δ+1, C, D):

.. math::

    H[i, j, d] = \sum_{a=-Δ}^{Δ} \sum_{b=-Δ}^{Δ} \sum_c V[a, b, c, d]\, X[i+a, j+b, c]

Each output channel d is one raw ``ccorr`` map of ``match_template`` with
V[:, :, :, d] as the template, so this module only builds kernels, runs the
engine once per output channel, and writes H out. In the arrays here,
V[a, b, c, d] is stored at index [a + Δ, b + Δ, c, d]: the kernel's centre
pixel is the offset (0, 0).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from waldo_cli.engine import PADDINGS, match_template
from waldo_cli.errors import OutputError, ShapeError, WaldoError

# What --kernel accepts besides FILE.npy, in the order help texts list them.
KERNEL_NAMES = ("sobel-x", "sobel-y", "sobel", "laplace", "gauss:σ", "box:k")
# The largest side a named kernel may have (gauss up to σ ≈ 166, box up to k = 1001):
# a larger one is almost surely a typo, and would allocate gigabytes before failing.
MAX_SIDE = 1001
# The most a kernel file may hold, checked from its header before it is read:
# output channels D (as many as a large CNN layer), and weights of the
# (h, w, C, D) kernel it becomes (128 MiB as float64).
MAX_OUTPUTS = 1024
MAX_WEIGHTS = 1 << 24
# The most H may take (H×W×D float32), checked before it is computed.
MAX_FEATURE_BYTES = 4 << 30

_SOBEL_X = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
_LAPLACE = np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def depthwise(planes: np.ndarray, channels: int) -> np.ndarray:
    """Spread 2-D filters over the channels: each output channel reads one input channel.

    Parameters
    ----------
    planes : (h, w[, K]) array_like
        K filters (one if 2-D).
    channels : int
        C, the image's channel count.

    Returns
    -------
    (h, w, C, K·C) float64 ndarray
        V[:, :, c, k·C + c] = planes[:, :, k]; every other weight is 0. So the
        output channels are filter 0 on channels 0..C-1, then filter 1, ...

    Examples
    --------
    >>> v = depthwise(np.ones((1, 1, 2)), 3)
    >>> v.shape, v[0, 0].astype(int).tolist()
    ((1, 1, 3, 6), [[1, 0, 0, 1, 0, 0], [0, 1, 0, 0, 1, 0], [0, 0, 1, 0, 0, 1]])
    """
    p = np.asarray(planes, dtype=np.float64)
    if p.ndim == 2:
        p = p[:, :, None]
    h, w, count = p.shape
    kernel = np.zeros((h, w, channels, count * channels), np.float64)
    for k in range(count):
        for c in range(channels):
            kernel[:, :, c, k * channels + c] = p[:, :, k]
    return kernel


def _parse_number(spec: str, text: str, kind: type) -> float:
    name = spec.split(":", 1)[0]
    symbol = "σ" if name == "gauss" else "k"
    example = "gauss:1.5" if name == "gauss" else "box:5"
    what = "a positive number" if kind is float else "a positive odd integer"
    try:
        value = kind(text)
    except ValueError:
        raise WaldoError(f"kernel {spec!r}: {symbol} must be {what}, as in {example}") from None
    if not math.isfinite(value) or value <= 0:
        raise WaldoError(f"kernel {spec!r}: {symbol} must be {what}, as in {example}")
    return value


def _gauss(spec: str, sigma_text: str, delta: int | None) -> np.ndarray:
    sigma = _parse_number(spec, sigma_text, float)
    radius = delta if delta is not None else math.ceil(3 * sigma)
    if 2 * radius + 1 > MAX_SIDE:
        given = f" with --delta {delta}" if delta is not None else ""
        side = 2 * radius + 1
        raise WaldoError(
            f"kernel {spec!r}{given}: {side}×{side} is too large; the largest "
            f"named kernel is {MAX_SIDE}×{MAX_SIDE} (Δ ≤ {MAX_SIDE // 2})"
        )
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    with np.errstate(over="ignore"):  # a tiny σ: the off-centre weights underflow to 0
        line = np.exp(-0.5 * (offsets / sigma) ** 2)
    plane = np.outer(line, line)
    return plane / plane.sum()


def _box(spec: str, size_text: str) -> np.ndarray:
    size = int(_parse_number(spec, size_text, int))
    if size % 2 == 0:
        raise WaldoError(
            f"kernel {spec!r}: k must be odd (a k×k box needs a centre pixel), as in box:{size + 1}"
        )
    if size > MAX_SIDE:
        raise WaldoError(
            f"kernel {spec!r}: {size}×{size} is too large; the largest named "
            f"kernel is {MAX_SIDE}×{MAX_SIDE}"
        )
    return np.full((size, size), 1.0 / (size * size))


def _read_npy_header(path: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, data offset) from a .npy file's header, without reading its data."""
    from numpy.lib import format as npy

    try:
        with open(path, "rb") as fh:
            head = fh.read(6)
            if head.startswith(b"PK"):
                raise WaldoError(f"{path}: an .npz archive, not a .npy array file")
            if head != b"\x93NUMPY":
                raise WaldoError(f"{path}: not a NumPy .npy file (no .npy header)")
            fh.seek(0)
            version = npy.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = npy.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, _, dtype = npy.read_array_header_2_0(fh)
            else:
                major, minor = version
                raise WaldoError(f"{path}: .npy format version {major}.{minor} is not read")
            return tuple(int(n) for n in shape), dtype, fh.tell()
    except WaldoError:  # a ValueError too: keep its own message
        raise
    except FileNotFoundError:
        raise WaldoError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise WaldoError(f"{path}: is a directory, not a .npy file") from None
    except PermissionError:
        raise WaldoError(f"{path}: permission denied") from None
    except (OSError, ValueError, EOFError, SyntaxError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise WaldoError(f"{path}: a damaged .npy file ({reason})") from None


def _check_npy_header(path: str, shape: tuple[int, ...], dtype: np.dtype, channels: int) -> None:
    """Refuse a kernel file by its header: dtype, rank, sides and size, before any data is read."""
    if dtype.hasobject:
        raise WaldoError(f"{path}: the array holds Python objects, not numbers")
    if dtype.kind not in "biuf":
        raise WaldoError(
            f"{path}: the kernel has dtype {dtype}; a real (bool, integer or float) array is needed"
        )
    if len(shape) not in (2, 3, 4):
        raise WaldoError(
            f"{path}: the kernel has shape {shape}; expected (h, w), (h, w, C) or (h, w, C, D)"
        )
    if 0 in shape:
        raise WaldoError(f"{path}: the kernel has shape {shape}, which holds no weights")
    h, w = shape[:2]
    if h % 2 == 0 or w % 2 == 0:
        raise WaldoError(
            f"{path}: the kernel has shape {shape}; its height and width must be "
            "odd, so that it has a centre pixel"
        )
    if len(shape) > 2 and shape[2] != channels:
        raise WaldoError(
            f"{path}: the kernel has shape {shape}, so it takes {shape[2]} input "
            f"channel(s), but the image has {channels}"
        )
    outputs = shape[3] if len(shape) == 4 else channels if len(shape) == 2 else 1
    if outputs > MAX_OUTPUTS:
        raise WaldoError(
            f"{path}: the kernel has shape {shape}, {outputs} output channels; "
            f"at most {MAX_OUTPUTS}"
        )
    weights = h * w * channels * outputs  # of the (h, w, C, D) kernel it becomes
    if weights > MAX_WEIGHTS:
        raise WaldoError(
            f"{path}: the kernel has shape {shape}, {weights} weights as (h, w, C, D); "
            f"at most {MAX_WEIGHTS}"
        )


def _load_npy(path: str, channels: int) -> np.ndarray:
    """A kernel file as (h, w, C, D) float64, or a WaldoError naming the file and its shape.

    The header is read and checked first (``MAX_OUTPUTS``, ``MAX_WEIGHTS``,
    and a file long enough for the data it declares), so a file that
    declares a huge array is refused before anything is allocated.
    """
    shape, dtype, offset = _read_npy_header(path)
    _check_npy_header(path, shape, dtype, channels)
    declared = offset + math.prod(shape) * dtype.itemsize
    try:
        if os.path.getsize(path) < declared:
            raise WaldoError(
                f"{path}: a damaged .npy file (its header declares {shape} {dtype}, "
                f"{declared} bytes, but the file is shorter)"
            )
        with open(path, "rb") as fh:
            loaded = np.load(fh, allow_pickle=False)
    except WaldoError:  # a ValueError too: keep its own message
        raise
    except (OSError, ValueError, EOFError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise WaldoError(f"{path}: a damaged .npy file ({reason})") from None
    kernel = loaded.astype(np.float64)
    # the engine computes in float32: a weight beyond its range would become inf there
    if not np.isfinite(kernel).all() or np.abs(kernel).max() > np.finfo(np.float32).max:
        raise WaldoError(f"{path}: the kernel holds NaN or infinite values (as float32)")
    if kernel.ndim == 2:
        return depthwise(kernel, channels)
    return kernel if kernel.ndim == 4 else kernel[:, :, :, None]


def make_kernel(spec: str, channels: int, *, delta: int | None = None) -> np.ndarray:
    """Build the layer's filter V[a, b, c, d] from a name or a .npy file.

    Parameters
    ----------
    spec : str
        ``sobel-x``, ``sobel-y`` (3×3, positive where brightness grows to the
        right, or downwards), ``sobel`` (both: sobel-x on every channel, then
        sobel-y on every channel), ``laplace`` (3×3, 4-neighbour),
        ``gauss:σ`` (2·ceil(3σ)+1 square, sums to 1), ``box:k`` (k×k, k odd,
        sums to 1), or a path ending in ``.npy`` holding an (h, w) filter
        (applied per channel like the named ones), an (h, w, C) one (one
        output channel) or the full (h, w, C, D) V; h and w odd, at most
        ``MAX_OUTPUTS`` (1024) output channels and ``MAX_WEIGHTS`` (2**24)
        weights as (h, w, C, D), checked from the file's header before its
        data is read.
    channels : int
        C, the channel count of the image the layer will see.
    delta : int, optional
        Δ: the kernel must then be (2Δ+1)×(2Δ+1). For ``gauss:σ`` it sets the
        size instead (the Gaussian is cut at Δ and normalised to sum 1 again).

    Returns
    -------
    (h, w, C, D) float64 ndarray
        Named kernels and (h, w) files act per channel ("depthwise"): D = C
        (2·C for ``sobel``), and V[:, :, c, d] is zero unless c = d mod C.

    Raises
    ------
    WaldoError
        An unknown name, a malformed or out-of-range parameter, a missing or
        invalid file, even sides, a channel count other than ``channels``, or
        a size that disagrees with ``delta``.

    Examples
    --------
    >>> make_kernel("sobel-x", 1)[:, :, 0, 0].astype(int).tolist()
    [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
    >>> make_kernel("gauss:1", 3).shape, make_kernel("gauss:1", 1, delta=1).shape
    ((7, 7, 3, 3), (3, 3, 1, 1))
    """
    if channels < 1:
        raise WaldoError(f"an image with {channels} channels cannot be filtered")
    if delta is not None and delta < 0:
        raise WaldoError(f"Δ must be 0 or more, got {delta}")
    name, _, argument = spec.partition(":")
    key = name.strip().lower()
    if spec.lower().endswith(".npy"):
        kernel, label = _load_npy(spec, channels), spec
    elif key in ("sobel-x", "sobel-y", "sobel", "laplace") and not argument:
        planes = {
            "sobel-x": _SOBEL_X,
            "sobel-y": _SOBEL_X.T,
            "laplace": _LAPLACE,
            "sobel": np.stack([_SOBEL_X, _SOBEL_X.T], axis=2),
        }[key]
        kernel, label = depthwise(planes, channels), key
    elif key == "gauss" and argument:
        kernel, label = depthwise(_gauss(spec, argument, delta), channels), spec
    elif key == "box" and argument:
        kernel, label = depthwise(_box(spec, argument), channels), spec
    elif key in ("gauss", "box"):
        example = "gauss:1.5" if key == "gauss" else "box:5"
        raise WaldoError(f"kernel {spec!r} needs its parameter, as in {example}")
    else:
        raise WaldoError(f"unknown kernel {spec!r}: choose {', '.join(KERNEL_NAMES)} or a FILE.npy")
    h, w = kernel.shape[:2]
    if delta is not None and (h, w) != (2 * delta + 1, 2 * delta + 1):
        side = 2 * delta + 1
        raise WaldoError(f"--delta {delta} means a {side}×{side} kernel, but {label} is {h}×{w}")
    return kernel


def kernel_delta(kernel: np.ndarray) -> int | None:
    """Δ of a square (2Δ+1)×(2Δ+1) kernel, or None for a kernel that is not square.

    >>> kernel_delta(np.zeros((5, 5, 1, 1))), kernel_delta(np.zeros((3, 5, 1, 1)))
    (2, None)
    """
    h, w = kernel.shape[:2]
    return (h - 1) // 2 if h == w and h % 2 == 1 else None


def is_depthwise(kernel: np.ndarray) -> bool:
    """Whether every output channel d reads only input channel d mod C.

    >>> is_depthwise(make_kernel("laplace", 3)), is_depthwise(np.ones((3, 3, 3, 1)))
    (True, False)
    """
    channels, outputs = kernel.shape[2:]
    if outputs % channels:
        return False
    reads = np.any(kernel != 0, axis=(0, 1))  # (C, D): which channels each output reads
    own = np.arange(channels)[:, None] == np.arange(outputs)[None, :] % channels
    return not bool(np.any(reads & ~own))


def apply_layer(
    image: object, kernel: np.ndarray, *, pad: str = "zero", convolve: bool = False
) -> np.ndarray:
    """Compute the hidden representation H of one convolutional layer.

    H[i, j, d] = Σ_a Σ_b Σ_c V[a, b, c, d] X[i+a, j+b, c]: for each output
    channel d, the raw ``ccorr`` map of ``match_template`` with
    V[:, :, :, d] as the template (only the input channels it reads).

    Parameters
    ----------
    image : (H, W[, C]) array_like
        X; any real dtype, computed in float32 as ``match_template`` does.
    kernel : (h, w, C, D) array_like
        V, as ``make_kernel`` returns it; h and w odd, C the image's channels.
    pad : {"zero", "reflect", "edge", "none"}
        How X is extended past its border (see ``match_template``). With the
        first three H has X's height and width and H[i, j] is the window
        centred on pixel (i, j); "none" keeps only the positions where the
        whole kernel lies inside X.
    convolve : bool
        Flip V in both spatial axes: the mathematical convolution instead of
        the cross-correlation a CNN layer computes.

    Returns
    -------
    (H, W, D) float32 ndarray
        Or (H-h+1, W-w+1, D) with ``pad="none"``.

    Raises
    ------
    ShapeError
        A kernel that is not 4-D, has even sides, disagrees with the image's
        channels, or (with ``pad="none"``) is larger than the image; or an H
        of more than ``MAX_FEATURE_BYTES`` (4 GiB).

    Examples
    --------
    >>> image = np.arange(16.0).reshape(4, 4)
    >>> apply_layer(image, make_kernel("sobel-x", 1))[1:3, 1:3, 0].tolist()
    [[8.0, 8.0], [8.0, 8.0]]
    """
    if pad not in PADDINGS:
        raise WaldoError(f"unknown padding {pad!r}: choose one of {', '.join(PADDINGS)}")
    v = np.asarray(kernel)
    x = np.asarray(image)
    if x.ndim == 2:
        x = x[:, :, None]
    if v.ndim != 4:
        raise ShapeError(f"kernel has shape {v.shape}; expected (h, w, C, D)")
    h, w, channels, outputs = v.shape
    if 0 in v.shape or h % 2 == 0 or w % 2 == 0:
        raise ShapeError(f"kernel has shape {v.shape}; h and w must be odd and nothing empty")
    if x.ndim != 3 or x.shape[2] != channels:
        raise ShapeError(
            f"kernel has shape {v.shape} ({channels} input channel(s)) but the "
            f"image has shape {x.shape}"
        )
    height, width = x.shape[:2]
    if pad == "none":
        if h > height or w > width:
            raise ShapeError(
                f"kernel {w}×{h} is larger than image {width}×{height}; with "
                "pad 'none' it must fit inside the image"
            )
        out_shape = (height - h + 1, width - w + 1)
    else:
        out_shape = (height, width)
    size = out_shape[0] * out_shape[1] * outputs * 4
    if size > MAX_FEATURE_BYTES:
        raise ShapeError(
            f"H would be {out_shape[1]}×{out_shape[0]}×{outputs} float32, "
            f"{size / (1 << 30):.1f} GiB; at most {MAX_FEATURE_BYTES >> 30} GiB"
        )
    features = np.zeros((*out_shape, outputs), np.float32)
    reads = np.any(v != 0, axis=(0, 1))
    for d in range(outputs):
        used = np.flatnonzero(reads[:, d])
        if used.size == 0:
            continue  # an all-zero filter: H[:, :, d] stays 0
        # input channels with no weights add nothing: leave them out of the sum
        features[:, :, d] = match_template(
            x[:, :, used], v[:, :, used, d], "ccorr", pad=pad, convolve=convolve
        )
    return features


@dataclass(frozen=True)
class ChannelSummary:
    """One output channel of H as written: its file, range and 8-bit mapping.

    Attributes
    ----------
    channel : int
        d.
    file : str
        Where it was written (the one .npy for all channels of a stack).
    minimum, maximum, mean : float
        Of H[:, :, d].
    mapping : str or None
        ``symmetric`` or ``min-max`` for a picture (see ``to_grey8``), None
        for a .npy file, which keeps the values themselves.
    """

    channel: int
    file: str
    minimum: float
    maximum: float
    mean: float
    mapping: str | None

    def to_dict(self) -> dict[str, object]:
        """The JSON form: channel, file, min, max, mean, mapping."""
        return {
            "channel": self.channel,
            "file": self.file,
            "min": self.minimum,
            "max": self.maximum,
            "mean": self.mean,
            "mapping": self.mapping,
        }


def to_grey8(values: np.ndarray, mapping: str) -> np.ndarray:
    """Map one channel of H onto 8-bit grey so its values can be read back.

    ``symmetric`` (kernels with negative weights): with M = max |H|, pixel
    p = round(128 + 127·H/M), so 0 is 128, +M is 255 and −M is 1; read back
    as H ≈ (p − 128)·M/127. ``min-max``: p = round(255·(H − min)/(max − min)),
    read back as H ≈ min + p·(max − min)/255. A constant channel is all 128
    (symmetric) or all 0 (min-max).

    >>> to_grey8(np.array([-2.0, 0.0, 1.0]), "symmetric").tolist()
    [1, 128, 192]
    >>> to_grey8(np.array([3.0, 4.0, 5.0]), "min-max").tolist()
    [0, 128, 255]
    """
    v = np.asarray(values, dtype=np.float64)
    if mapping == "symmetric":
        top = float(np.abs(v).max()) if v.size else 0.0
        if top == 0.0:
            return np.full(v.shape, 128, np.uint8)
        return np.clip(np.rint(128.0 + 127.0 * v / top), 1, 255).astype(np.uint8)
    if mapping != "min-max":
        raise WaldoError(f"unknown mapping {mapping!r}: choose symmetric or min-max")
    low, high = (float(v.min()), float(v.max())) if v.size else (0.0, 0.0)
    if high == low:
        return np.zeros(v.shape, np.uint8)
    return np.clip(np.rint(255.0 * (v - low) / (high - low)), 0, 255).astype(np.uint8)


def channel_mappings(kernel: np.ndarray) -> list[str]:
    """``symmetric`` for each output channel whose filter has a negative weight, else ``min-max``.

    >>> channel_mappings(make_kernel("sobel", 1)), channel_mappings(make_kernel("box:3", 1))
    (['symmetric', 'symmetric'], ['min-max'])
    """
    negative = np.any(np.asarray(kernel) < 0, axis=(0, 1, 2))
    return ["symmetric" if n else "min-max" for n in negative]


def output_paths(out: str | os.PathLike[str], outputs: int) -> list[Path]:
    """The files ``write_features`` writes for D output channels.

    A .npy name is one file for all channels; a picture name is one file per
    channel, ``stem-d.suffix`` beside it (just the name itself when D = 1).

    >>> [p.name for p in output_paths("f.png", 2)], [p.name for p in output_paths("f.npy", 2)]
    (['f-0.png', 'f-1.png'], ['f.npy'])
    """
    target = Path(out)
    if target.suffix.lower() == ".npy" or outputs == 1:
        return [target]
    return [target.with_name(f"{target.stem}-{d}{target.suffix}") for d in range(outputs)]


def check_outputs(
    out: str | os.PathLike[str], outputs: int, protect: tuple[str | os.PathLike[str], ...] = ()
) -> list[Path]:
    """Refuse the output files before any work, as ``check_output_path`` does for each.

    >>> import tempfile
    >>> len(check_outputs(os.path.join(tempfile.mkdtemp(), "h.png"), 3))
    3
    """
    from waldo_cli.io import check_output_path, check_output_paths

    npy = Path(out).suffix.lower() == ".npy"
    paths = output_paths(out, outputs)
    check_output_paths(paths, protect, image=False)  # inputs and each other, through links
    for path in paths:
        if not npy:
            try:
                check_output_path(path, image=True)  # all else passed: only the format is left
            except OutputError as exc:
                raise OutputError(f"{exc}, or .npy for one array") from None
    return paths


def write_features(
    features: np.ndarray,
    out: str | os.PathLike[str],
    mappings: list[str],
    *,
    protect: tuple[str | os.PathLike[str], ...] = (),
) -> list[ChannelSummary]:
    """Write H: one float32 .npy stack, or one 8-bit grey picture per channel.

    Parameters
    ----------
    features : (H, W, D) array_like
        The hidden representation, as ``apply_layer`` returns it.
    out : path-like
        ``*.npy`` for the stack (``np.save``, shape (H, W, D), float32), or a
        picture name (png, tif, ...), see ``output_paths``.
    mappings : list of str
        Per channel, how a picture maps values to grey (see ``to_grey8``).
    protect : paths
        Inputs that must not be overwritten.

    Returns
    -------
    list of ChannelSummary
        One per channel, with the file it went to and its range.

    Examples
    --------
    >>> import tempfile
    >>> out = os.path.join(tempfile.mkdtemp(), "h.npy")
    >>> [s.maximum for s in write_features(np.ones((2, 2, 1)), out, ["min-max"])]
    [1.0]
    >>> np.load(out).shape, np.load(out).dtype
    ((2, 2, 1), dtype('float32'))
    """
    from waldo_cli.io import save_image, write_atomically

    stack = np.asarray(features, dtype=np.float32)
    if stack.ndim != 3 or len(mappings) != stack.shape[2]:
        raise ShapeError(
            f"features have shape {stack.shape}; expected (H, W, D) with one "
            f"mapping per channel ({len(mappings)} given)"
        )
    paths = check_outputs(out, stack.shape[2], protect)
    npy = Path(out).suffix.lower() == ".npy"
    if npy:
        write_atomically(paths[0], lambda fh: np.save(fh, stack, allow_pickle=False))
    summaries = []
    for d in range(stack.shape[2]):
        plane = stack[:, :, d]
        if not npy:
            save_image(to_grey8(plane, mappings[d]), paths[d], protect=protect)
        summaries.append(
            ChannelSummary(
                channel=d,
                file=str(paths[0] if npy else paths[d]),
                minimum=float(plane.min()),
                maximum=float(plane.max()),
                mean=float(plane.mean(dtype=np.float64)),
                mapping=None if npy else mappings[d],
            )
        )
    return summaries


@dataclass(frozen=True)
class LayerReport:
    """One ``waldo conv`` run, for its writers: the layer, the sizes in and out, each channel.

    Attributes
    ----------
    image : str
        The image as given ('-' for standard input).
    image_size, output_size : (int, int)
        Width and height of X and of H.
    grey : bool
        Whether X was converted to grey first.
    kernel : str
        The kernel as given (a name or a .npy file).
    kernel_shape : (int, int, int, int)
        V's (h, w, C, D).
    depthwise : bool
        Whether output channel d reads input channel d only.
    delta : int or None
        Δ of a square kernel with an odd side, else None.
    pad : str
        How the image was extended past its border.
    convolve : bool
        Whether V was flipped (true convolution).
    channels : list of ChannelSummary
        One per output channel, as written.
    seconds : float
        How long the layer took.
    """

    image: str
    image_size: tuple[int, int]
    grey: bool
    kernel: str
    kernel_shape: tuple[int, int, int, int]
    depthwise: bool
    delta: int | None
    pad: str
    convolve: bool
    output_size: tuple[int, int]
    channels: list[ChannelSummary]
    seconds: float

    @property
    def parameters(self) -> int:
        """The weights of V, h·w·C·D (a layer without biases).

        >>> LayerReport("x.png", (4, 3), False, "sobel", (3, 3, 1, 2), True, 1, "zero", False,
        ...             (4, 3), [], 0.0).parameters
        18
        """
        h, w, channels, outputs = self.kernel_shape
        return h * w * channels * outputs
