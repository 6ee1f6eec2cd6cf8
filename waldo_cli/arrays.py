"""Arrays as the engine takes them: checked, shaped (H, W, C), and converted once.

Shared by ``templates.py`` (templates and masks) and ``engine.py`` (images):
every public entry point validates its arrays here, and the kernels trust
what comes out.
"""

from __future__ import annotations

import numpy as np

from waldo_cli.errors import ShapeError

_FLOAT32_MAX = float(np.finfo(np.float32).max)


def as_hwc(array: object, what: str) -> np.ndarray:
    """Return ``array`` as an (H, W, C) view of its own dtype, or raise ShapeError.

    Values are checked to be finite as float32, without copying the array.

    >>> as_hwc(np.zeros((2, 3)), "image").shape
    (2, 3, 1)
    """
    return as_hwc_peak(array, what)[0]


def as_hwc_peak(array: object, what: str) -> tuple[np.ndarray, float]:
    """``as_hwc``, and a bound on the array's magnitude as float32 holds it.

    The bound is the largest absolute value for float arrays (found by the
    same pass that checks them), and the dtype's for the others: the engine
    sizes its float32 correlation maps by it.

    >>> as_hwc_peak(np.array([[-3.0, 2.0]]), "image")[1]
    3.0
    >>> as_hwc_peak(np.zeros((1, 1), np.uint8), "image")[1]
    255.0
    """
    arr = np.asarray(array)
    if arr.dtype.kind not in "biuf":
        raise ShapeError(
            f"{what} has dtype {arr.dtype}; a real (bool, integer or float) array is needed"
        )
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
        peak = max(high, -low)
        if not (np.isfinite(high) and np.isfinite(low)) or peak > _FLOAT32_MAX:
            raise ShapeError(f"{what} holds NaN or infinite values (after conversion to float32)")
        return arr, peak
    if arr.dtype.kind == "b":
        return arr, 1.0
    info = np.iinfo(arr.dtype)
    return arr, float(max(info.max, -int(info.min)))


def as_planar(img: np.ndarray) -> np.ndarray:
    """(H, W, C) pixels of any real dtype as C-contiguous (C, H, W) float32 planes.

    >>> as_planar(np.ones((2, 3, 2), np.uint8)).shape
    (2, 2, 3)
    """
    height, width, channels = img.shape
    planar = np.empty((channels, height, width), np.float32)
    for c in range(channels):
        np.copyto(planar[c], img[:, :, c], casting="unsafe")
    return planar


def channel_offsets(planar: np.ndarray) -> np.ndarray:
    """A whole number near each channel's mean, subtracted to keep every sum small.

    A sparse sample finds one without another pass over the image.

    >>> channel_offsets(np.full((1, 4, 4), 9.7, np.float32))
    array([10.])
    """
    channels = planar.shape[0]
    return np.round(planar[:, ::7, ::7].reshape(channels, -1).mean(axis=1, dtype=np.float64))


def as_mask(mask: object, shape: tuple[int, int, int]) -> np.ndarray:
    """The mask as (C, h, w) float64 weights for a template of shape (h, w, C).

    >>> as_mask(np.ones((2, 2)), (2, 2, 3)).shape
    (3, 2, 2)
    """
    m = as_hwc(mask, "mask").astype(np.float32).astype(np.float64)
    h, w, channels = shape
    if m.shape[:2] != (h, w) or m.shape[2] not in (1, channels):
        raise ShapeError(
            f"mask is {m.shape[1]}×{m.shape[0]}×{m.shape[2]}; the template is "
            f"{w}×{h}×{channels}, so the mask must be {w}×{h} with 1 or "
            f"{channels} channel(s)"
        )
    if (m < 0).any():
        raise ShapeError("mask has negative values; weights must be 0 or more")
    return np.ascontiguousarray(np.broadcast_to(m, shape).transpose(2, 0, 1))
