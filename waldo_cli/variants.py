"""Scaled, turned and mirrored copies of a template, and the best score over all of them.

A template variant is resized (Lanczos), turned (exactly for multiples of 90°,
bicubic otherwise, with a mask so the corners a turn adds do not count) and
optionally mirrored left to right. Every variant is searched with the same
engine; their score maps are merged on the image's own grid, indexed by
window centre, keeping the best score at each place and which variant gave it
(``peaks.best_over_variants``). Pillow does the resampling, so this module
imports PIL, like ``render.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from waldo_cli.errors import WaldoError
from waldo_cli.peaks import best_over_variants

__all__ = ["Variant", "best_over_variants", "make_variants", "parse_range", "warp_box"]

_MAX_VARIANTS = 5000


@dataclass(frozen=True)
class Variant:
    """One copy of the template: how it was made, and its pixels and mask."""

    scale: float
    angle: float
    flip: bool
    pixels: np.ndarray  # (h, w, C) float32
    mask: np.ndarray | None  # (h, w[, C]) float32 weights, or None

    @property
    def shape(self) -> tuple[int, int]:
        """(h, w) of the variant."""
        return int(self.pixels.shape[0]), int(self.pixels.shape[1])


def parse_range(text: str, what: str) -> list[float]:
    """``start:stop:step`` (stop included) or a comma list, as floats.

    >>> parse_range("0.5:1:0.25", "scales"), parse_range("0,90,180", "rotations")
    ([0.5, 0.75, 1.0], [0.0, 90.0, 180.0])
    """
    try:
        if ":" in text:
            start, stop, step = (float(part) for part in text.split(":"))
            if step <= 0:
                raise WaldoError(f"{what} {text!r}: the step must be positive")
            count = math.floor((stop - start) / step + 1e-9) + 1
            if count < 1:
                raise WaldoError(f"{what} {text!r}: the range is empty")
            values = [round(start + i * step, 10) for i in range(count)]
        else:
            values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise WaldoError(
            f"{what} {text!r}: give start:stop:step or a comma list of numbers"
        ) from None
    if not values:
        raise WaldoError(f"{what} {text!r}: no values")
    if len(values) > _MAX_VARIANTS:
        raise WaldoError(f"{what} {text!r}: {len(values)} values is too many")
    return values


def _resample(plane: np.ndarray, op: Callable[[Image.Image], Image.Image]) -> np.ndarray:
    return np.asarray(op(Image.fromarray(np.ascontiguousarray(plane, np.float32), "F")), np.float32)


def _transform(
    pixels: np.ndarray, mask: np.ndarray | None, scale: float, angle: float, flip: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    h, w, channels = pixels.shape
    if mask is not None and mask.ndim == 2:
        mask = mask[:, :, None]
    if scale != 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))

        def resize(img: Image.Image) -> Image.Image:
            return img.resize(size, Image.Resampling.LANCZOS)

        pixels = np.dstack([_resample(pixels[:, :, c], resize) for c in range(channels)])
        if mask is not None:
            mask = np.dstack(
                [np.clip(_resample(mask[:, :, c], resize), 0, None) for c in range(mask.shape[2])]
            )
    turns = angle / 90.0
    if abs(turns - round(turns)) < 1e-9:
        k = int(round(turns)) % 4
        pixels = np.rot90(pixels, k)  # counter-clockwise, exactly
        mask = None if mask is None else np.rot90(mask, k)
    else:
        if mask is None:
            mask = np.ones(pixels.shape[:2] + (1,), np.float32)

        def turn(img: Image.Image) -> Image.Image:
            return img.rotate(angle, Image.Resampling.BICUBIC, expand=True)

        pixels = np.dstack([_resample(pixels[:, :, c], turn) for c in range(channels)])
        # the mask turns bilinearly: weights stay in [0, 1], corners become 0
        mask = np.dstack(
            [
                np.clip(
                    np.asarray(
                        Image.fromarray(
                            np.ascontiguousarray(mask[:, :, c], np.float32), "F"
                        ).rotate(angle, Image.Resampling.BILINEAR, expand=True),
                        np.float32,
                    ),
                    0,
                    1,
                )
                for c in range(mask.shape[2])
            ]
        )
    if flip:
        pixels = pixels[:, ::-1]
        mask = None if mask is None else mask[:, ::-1]
    pixels = np.ascontiguousarray(pixels, np.float32)
    mask = None if mask is None else np.ascontiguousarray(mask, np.float32)
    return pixels, mask


def make_variants(
    pixels: np.ndarray,
    mask: np.ndarray | None,
    scales: Sequence[float],
    angles: Sequence[float],
    flip: bool,
) -> list[Variant]:
    """Every combination of scale, angle and (with ``flip``) mirroring, made once.

    Parameters
    ----------
    pixels : (h, w, C) array
        The template.
    mask : (h, w[, C]) array or None
        Its weights, turned and scaled along with it.
    scales : floats > 0
        Size factors.
    angles : floats
        Counter-clockwise turns in degrees; multiples of 90 are exact.
    flip : bool
        Also search each copy mirrored left to right.

    Returns
    -------
    list of Variant

    Examples
    --------
    >>> vs = make_variants(np.ones((4, 6, 1), np.float32), None, [1, 0.5], [0, 90], True)
    >>> [(v.scale, v.angle, v.flip, v.shape) for v in vs][:3]
    [(1.0, 0.0, False, (4, 6)), (1.0, 0.0, True, (4, 6)), (1.0, 90.0, False, (6, 4))]
    """
    if any(s <= 0 for s in scales):
        raise WaldoError("scales must be positive")
    count = len(scales) * len(angles) * (2 if flip else 1)
    if count > _MAX_VARIANTS:
        raise WaldoError(f"{count} template variants is too many (at most {_MAX_VARIANTS})")
    variants = []
    for scale in scales:
        for angle in angles:
            for mirrored in (False, True) if flip else (False,):
                p, m = _transform(
                    np.asarray(pixels, np.float32), mask, float(scale), float(angle), mirrored
                )
                variants.append(Variant(float(scale), float(angle), mirrored, p, m))
    return variants


def warp_box(
    pixels: np.ndarray,
    box: tuple[float, float, float, float],
    size: tuple[int, int],
    *,
    margin: int = 0,
    scale: float = 1.0,
    angle: float = 0.0,
    flip: bool = False,
    shift: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """The pixels of ``box`` resampled to ``size``, turned, scaled and mirrored about its centre.

    For learning from examples: the box of an example becomes an (h, w)
    window, with ``margin`` pixels of its surroundings around it (pixels
    outside the image repeat its edge).

    Parameters
    ----------
    pixels : (H, W, C) array
        The image.
    box : (x, y, width, height)
        The example's box in the image.
    size : (h, w)
        The window the box becomes.
    margin : int
        Extra pixels of surroundings on every side of the window.
    scale : float
        The example drawn this much larger (the box's surroundings come in
        when it is smaller).
    angle : float
        Turned counter-clockwise by this many degrees (bilinear).
    flip : bool
        Mirrored left to right.
    shift : (dx, dy)
        The box's centre moved by these fractions of its width and height.

    Returns
    -------
    (h + 2 margin, w + 2 margin, C) float32 ndarray

    Examples
    --------
    >>> image = np.arange(48, dtype=np.float32).reshape(6, 8, 1)
    >>> warp_box(image, (2, 1, 4, 2), (2, 4))[..., 0].tolist()
    [[10.0, 11.0, 12.0, 13.0], [18.0, 19.0, 20.0, 21.0]]
    """
    h, w = size
    x, y, bw, bh = (float(v) for v in box)
    height, width, channels = pixels.shape
    cx, cy = x + bw / 2 + shift[0] * bw, y + bh / 2 + shift[1] * bh
    sx, sy = bw / w / scale, bh / h / scale
    out_w, out_h = w + 2 * margin, h + 2 * margin
    turn = math.radians(angle)
    cos, sin = math.cos(turn), math.sin(turn)
    mirror = -1.0 if flip else 1.0
    # output pixel centre (u + 1/2, v + 1/2) -> input point, as Pillow's affine data
    a, b = mirror * sx * cos, sy * sin
    d, e = -mirror * sx * sin, sy * cos
    c = cx - a * out_w / 2 - b * out_h / 2
    f = cy - d * out_w / 2 - e * out_h / 2
    # only the region the window reads is converted (and padded with its edge)
    xs = [a * u + b * v + c for u in (0, out_w) for v in (0, out_h)]
    ys = [d * u + e * v + f for u in (0, out_w) for v in (0, out_h)]
    x0, y0 = math.floor(min(xs)) - 2, math.floor(min(ys)) - 2
    x1, y1 = math.ceil(max(xs)) + 3, math.ceil(max(ys)) + 3
    rows = np.clip(np.arange(y0, y1), 0, height - 1)
    cols = np.clip(np.arange(x0, x1), 0, width - 1)
    region = np.asarray(pixels, np.float32)[rows][:, cols]
    data = (a, b, c - x0, d, e, f - y0)
    planes = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(region[:, :, k]), "F").transform(
                (out_w, out_h), Image.Transform.AFFINE, data, Image.Resampling.BILINEAR
            ),
            np.float32,
        )
        for k in range(channels)
    ]
    return np.dstack(planes)
