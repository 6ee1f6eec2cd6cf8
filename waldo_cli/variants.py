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

__all__ = ["Variant", "best_over_variants", "make_variants", "parse_range", "template_corners"]

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
    # only the conversions are guarded: a WaldoError is a ValueError too, and
    # the rules below must keep their own messages
    try:
        if ":" in text:
            start, stop, step = (float(part) for part in text.split(":"))
        else:
            values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise WaldoError(
            f"{what} {text!r}: give start:stop:step or a comma list of numbers"
        ) from None
    if ":" in text:
        if step <= 0:
            raise WaldoError(f"{what} {text!r}: the step must be positive")
        count = math.floor((stop - start) / step + 1e-9) + 1
        if count < 1:
            raise WaldoError(f"{what} {text!r}: the range is empty")
        values = [round(start + i * step, 10) for i in range(count)]
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


def template_corners(
    variant: Variant, template_shape: tuple[int, int], x: float, y: float
) -> tuple[tuple[float, float], ...]:
    """Where the template's own corners lie in an image, for a variant's window at (x, y).

    A variant is the template resized, then turned about its centre, then
    mirrored (``make_variants``); its window is the turned copy's bounding
    box, centred on the template's centre. The template's top-left,
    top-right, bottom-right and bottom-left corners go through the same
    steps, in continuous coordinates where pixel (x, y) covers
    [x, x+1) × [y, y+1).

    Parameters
    ----------
    variant : Variant
        The variant that matched.
    template_shape : (h, w)
        The template's own size, before the variant was made.
    x, y : float
        The top-left corner of the variant's window in the image.

    Returns
    -------
    four (x, y) pairs
        Rounded to 1/1000 of a pixel.

    Examples
    --------
    A 4 wide, 2 high template turned by 90° counter-clockwise: its top-left
    corner ends up at the bottom left of a 2 wide, 4 high window.

    >>> v = make_variants(np.zeros((2, 4, 1), np.float32), None, [1], [90], False)[0]
    >>> template_corners(v, (2, 4), 10, 20)
    ((10.0, 24.0), (10.0, 20.0), (12.0, 20.0), (12.0, 24.0))
    """
    h0, w0 = template_shape
    hs, ws = h0, w0
    if variant.scale != 1.0:  # the size make_variants resized it to
        hs, ws = max(1, round(h0 * variant.scale)), max(1, round(w0 * variant.scale))
    height, width = variant.shape
    cx, cy = x + width / 2, y + height / 2
    turn = math.radians(variant.angle)
    cos, sin = math.cos(turn), math.sin(turn)
    corners = []
    for u, v in ((-ws / 2, -hs / 2), (ws / 2, -hs / 2), (ws / 2, hs / 2), (-ws / 2, hs / 2)):
        # counter-clockwise on the screen, where y grows downwards
        tx, ty = u * cos + v * sin, -u * sin + v * cos
        if variant.flip:
            tx = -tx
        corners.append((round(cx + tx, 3) + 0.0, round(cy + ty, 3) + 0.0))
    return tuple(corners)
