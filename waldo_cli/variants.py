"""Scaled, turned and mirrored copies of a template, and the best score over all of them.

A template variant is resized (Lanczos), turned (exactly for multiples of 90°,
bicubic otherwise, with a mask so the corners a turn adds do not count) and
optionally mirrored left to right. Every variant is searched with the same
engine; their score maps are merged on the image's own grid, indexed by
window centre, keeping the best score at each place and which variant gave it
(``peaks.best_over_variants``). Pillow does the resampling, so this module
imports PIL, like ``render.py``.

Limits, so that no option runs away: every value finite, at most
``MAX_VALUES`` (1000) values per option and ``MAX_VARIANTS`` (5000)
variants in all, counted before anything is made; each variant's size is
known before it is resampled (``variant_shape``), and a variant larger
than the image searched, or than ``MAX_VARIANT_PIXELS``, is never made.
Angles equal modulo 360° and scales that give the same size are searched
once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from waldo_cli.errors import WaldoError
from waldo_cli.peaks import best_over_variants

__all__ = [
    "MAX_VALUES",
    "MAX_VARIANTS",
    "MAX_VARIANT_PIXELS",
    "Variant",
    "VariantSpec",
    "best_over_variants",
    "list_variants",
    "make_variant",
    "make_variants",
    "parse_range",
    "template_corners",
    "variant_shape",
    "warp_box",
]

# At most this many values per option (--scales, --rotations), counted before
# any is made: a typo such as 0.5:1:1e-6 would otherwise run for hours.
MAX_VALUES = 1000
# At most this many variants in all (scales × angles × 2 with flip).
MAX_VARIANTS = 5000
# A variant with more pixels than this is never made (with or without an
# image to fit in): 64 Mpx, 256 MiB a channel as float32.
MAX_VARIANT_PIXELS = 1 << 26
# variant_shape's sides stop here: larger ones fit nothing anyway
_HUGE_SIDE = 1 << 62


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


@dataclass(frozen=True)
class VariantSpec:
    """A variant before it is made: how it will be made and the (h, w) it will have."""

    scale: float
    angle: float
    flip: bool
    shape: tuple[int, int]

    def fits(self, bound: tuple[int, int] | None = None) -> bool:
        """Whether the variant may be made: within ``bound`` (rows, columns) and the pixel cap.

        At most ``bound`` in both sides, if given, and ``MAX_VARIANT_PIXELS``.

        >>> VariantSpec(2.0, 0.0, False, (8, 12)).fits((10, 10))
        False
        """
        h, w = self.shape
        inside = bound is None or (h <= bound[0] and w <= bound[1])
        return inside and h * w <= MAX_VARIANT_PIXELS


def _count(text: str, what: str, start: float, stop: float, step: float) -> int:
    """How many values start:stop:step holds, checked against MAX_VALUES before any is made."""
    if step <= 0:
        raise WaldoError(f"{what} {text!r}: the step must be positive")
    span = (stop - start) / step  # finite operands; inf when the quotient overflows
    if span < -1e-9:
        raise WaldoError(f"{what} {text!r}: the range is empty")
    # not span < ...: also when the quotient overflowed to inf
    count = math.floor(span + 1e-9) + 1 if span < MAX_VALUES + 1 else MAX_VALUES + 1
    if count > MAX_VALUES:
        raise WaldoError(
            f"{what} {text!r}: more than {MAX_VALUES} values; at most {MAX_VALUES} per option"
        )
    return count


def parse_range(text: str, what: str) -> list[float]:
    """``start:stop:step`` (stop included) or a comma list, as floats.

    Every value must be finite, and an option holds at most ``MAX_VALUES``
    (1000) values; a range is counted before any value is made.

    >>> parse_range("0.5:1:0.25", "scales"), parse_range("0,90,180", "rotations")
    ([0.5, 0.75, 1.0], [0.0, 90.0, 180.0])
    """
    # only the conversions are guarded: a WaldoError is a ValueError too, and
    # the rules below must keep their own messages
    try:
        if ":" in text:
            start, stop, step = (float(part) for part in text.split(":"))
            numbers = [start, stop, step]
        else:
            parts = [part for part in text.split(",") if part.strip()]
            if len(parts) > MAX_VALUES:
                raise WaldoError(f"{what}: {len(parts)} values; at most {MAX_VALUES} per option")
            numbers = [float(part) for part in parts]
    except WaldoError:  # a ValueError too: keep its own message
        raise
    except ValueError:
        raise WaldoError(
            f"{what} {text!r}: give start:stop:step or a comma list of numbers"
        ) from None
    if not all(math.isfinite(n) for n in numbers):
        raise WaldoError(f"{what} {text!r}: every number must be finite (not inf or nan)")
    if ":" in text:
        count = _count(text, what, start, stop, step)
        values = [round(start + i * step, 10) for i in range(count)]
    else:
        values = numbers
    if not values:
        raise WaldoError(f"{what} {text!r}: no values")
    return values


def _quarter_turns(angle: float) -> int | None:
    """Quarter turns, when ``angle`` is a multiple of 90° (turned exactly); else None."""
    turns = angle / 90.0
    return int(round(turns)) % 4 if abs(turns - round(turns)) < 1e-9 else None


def variant_shape(shape: tuple[int, int], scale: float, angle: float) -> tuple[int, int]:
    """The (h, w) of an (h, w) template resized by ``scale`` and turned by ``angle``.

    Computed as Pillow sizes the results (``resize``, then ``rotate`` with
    ``expand``), without making them. Sides beyond 2**62 (absurd scales)
    are given as 2**62.

    >>> variant_shape((10, 20), 0.5, 90), variant_shape((10, 20), 1.0, 30)
    ((10, 5), (20, 24))
    """
    h, w = shape
    if scale != 1.0:
        # as floats first: a huge scale must not become a huge integer
        h, w = (max(1, round(min(side * scale, _HUGE_SIDE))) for side in (h, w))
    quarter = _quarter_turns(angle)
    if quarter is not None:
        return (w, h) if quarter % 2 else (h, w)
    # Pillow's Image.rotate(expand=True): the turned corners' bounding box
    a = -math.radians(angle % 360.0)
    cos, sin = round(math.cos(a), 15), round(math.sin(a), 15)
    cx, cy = w / 2, h / 2
    tx = cos * -cx + sin * -cy + cx
    ty = -sin * -cx + cos * -cy + cy
    xs = [cos * x + sin * y + tx for x, y in ((0, 0), (w, 0), (w, h), (0, h))]
    ys = [-sin * x + cos * y + ty for x, y in ((0, 0), (w, 0), (w, h), (0, h))]
    turned_w = math.ceil(max(xs)) - math.floor(min(xs))
    turned_h = math.ceil(max(ys)) - math.floor(min(ys))
    return min(turned_h, _HUGE_SIDE), min(turned_w, _HUGE_SIDE)


def list_variants(
    shape: tuple[int, int], scales: Sequence[float], angles: Sequence[float], flip: bool
) -> list[VariantSpec]:
    """The variants of an (h, w) template, in the order they are made, with their sizes.

    Nothing is resampled. Angles equal modulo 360° (0 and 360, -90 and 270)
    are one angle, the first given; scales that resize the template to the
    same size are one scale, the first given.

    >>> [(v.scale, v.angle, v.shape) for v in list_variants((4, 6), [1, 1.01, 2], [0, 360], False)]
    [(1.0, 0.0, (4, 6)), (2.0, 0.0, (8, 12))]

    Raises
    ------
    WaldoError
        A scale that is not positive, or more than ``MAX_VARIANTS``
        combinations.
    """
    if any(not s > 0 for s in scales):
        raise WaldoError("scales must be positive")
    count = len(scales) * len(angles) * (2 if flip else 1)
    if count > MAX_VARIANTS:
        raise WaldoError(f"{count} template variants is too many (at most {MAX_VARIANTS})")
    turns: dict[float, float] = {}
    for angle in angles:
        # 360 is 0 again; rounded so that 359.9999999999 is too
        turns.setdefault(round(float(angle) % 360.0, 9) % 360.0, float(angle))
    sizes: dict[tuple[int, int], float] = {}
    for scale in scales:
        sizes.setdefault(variant_shape(shape, float(scale), 0.0), float(scale))
    return [
        VariantSpec(scale, angle, mirrored, variant_shape(shape, scale, angle))
        for scale in sizes.values()
        for angle in turns.values()
        for mirrored in ((False, True) if flip else (False,))
    ]


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
    k = _quarter_turns(angle)
    if k is not None:
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


def make_variant(pixels: np.ndarray, mask: np.ndarray | None, spec: VariantSpec) -> Variant:
    """Make one variant from ``list_variants``: the template resized, turned and mirrored.

    >>> spec = list_variants((4, 6), [0.5], [90], False)[0]
    >>> make_variant(np.ones((4, 6, 1), np.float32), None, spec).shape
    (3, 2)
    """
    p, m = _transform(np.asarray(pixels, np.float32), mask, spec.scale, spec.angle, spec.flip)
    return Variant(spec.scale, spec.angle, spec.flip, p, m)


def make_variants(
    pixels: np.ndarray,
    mask: np.ndarray | None,
    scales: Sequence[float],
    angles: Sequence[float],
    flip: bool,
    *,
    fits: tuple[int, int] | None = None,
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
    fits : (rows, columns), optional
        Leave out the variants larger than this (the image they are for).
        Sizes are checked before anything is resampled.

    Returns
    -------
    list of Variant
        As ``list_variants`` lists them: angles equal modulo 360° and
        scales giving the same size are made once (the first given), and
        variants larger than ``fits`` or ``MAX_VARIANT_PIXELS`` are left out
        (the list may be empty).

    Raises
    ------
    WaldoError
        A scale that is not positive, or more than ``MAX_VARIANTS``
        combinations.

    Examples
    --------
    >>> vs = make_variants(np.ones((4, 6, 1), np.float32), None, [1, 0.5], [0, 90], True)
    >>> [(v.scale, v.angle, v.flip, v.shape) for v in vs][:3]
    [(1.0, 0.0, False, (4, 6)), (1.0, 0.0, True, (4, 6)), (1.0, 90.0, False, (6, 4))]
    """
    shape = (int(pixels.shape[0]), int(pixels.shape[1]))
    return [
        make_variant(pixels, mask, spec)
        for spec in list_variants(shape, scales, angles, flip)
        if spec.fits(fits)
    ]


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
