"""What people and things are drawn with: colours, the drawing scale, fills, outlines.

Every sprite is drawn at `_SS` times its final size (the scene is box-averaged
down at the end); `_paint` fills a shape with a colour or stripes, `_finish`
adds the ink outline and crops. `PALETTE` names every colour a person or a
thing is described with.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

RGB = tuple[int, int, int]

#: Every colour a person or a thing is described with, by name.
PALETTE: dict[str, RGB] = {
    "red": (214, 30, 36),
    "white": (250, 248, 242),
    "crimson": (150, 22, 44),
    "pink": (242, 134, 172),
    "coral": (250, 122, 92),
    "orange": (244, 140, 30),
    "yellow": (250, 208, 40),
    "cream": (244, 230, 190),
    "lime": (160, 210, 60),
    "green": (40, 150, 70),
    "olive": (110, 120, 50),
    "mint": (150, 225, 190),
    "teal": (20, 138, 140),
    "turquoise": (60, 200, 210),
    "sky": (120, 190, 240),
    "blue": (40, 90, 200),
    "navy": (30, 40, 92),
    "purple": (120, 60, 160),
    "lilac": (190, 160, 222),
    "magenta": (200, 40, 140),
    "brown": (118, 74, 40),
    "tan": (200, 160, 110),
    "khaki": (180, 170, 120),
    "grey": (140, 140, 146),
    "charcoal": (60, 60, 66),
    "black": (28, 28, 32),
    "denim": (52, 84, 152),
    "straw": (228, 196, 120),
    "leaf": (52, 128, 56),
    "wood": (150, 100, 58),
}
_SKINS: tuple[RGB, ...] = (
    (255, 222, 180),
    (241, 194, 140),
    (226, 172, 112),
    (198, 134, 80),
    (150, 94, 52),
    (98, 62, 36),
    (255, 228, 206),
)
_INK: RGB = (34, 28, 30)  # outlines and glasses

_SS = 3  # drawn at 3x, then box-averaged: smooth edges, no bleeding between 3x3 blocks


def _paint(
    image: Image.Image,
    mask: Image.Image,
    colours: Sequence[RGB],
    stripe: float = 0,
    origin: float = 0,
    vertical: bool = False,
) -> None:
    """Fill the mask's shape with one colour, or with stripes ``stripe`` pixels wide."""
    if len(colours) == 1 or stripe <= 0:
        layer = Image.new("RGBA", image.size, (*colours[0], 255))
    else:
        n = image.width if vertical else image.height
        index = np.floor((np.arange(n) - origin) / stripe).astype(np.int64) % len(colours)
        table = np.array([(*c, 255) for c in colours], np.uint8)[index]
        shape = (image.height, image.width, 4)
        rows = table[None, :, :] if vertical else table[:, None, :]
        layer = Image.fromarray(np.ascontiguousarray(np.broadcast_to(rows, shape)))
    image.paste(layer, (0, 0), mask)


def _finish(sprite: Image.Image, outline: RGB = _INK) -> Image.Image:
    """Add an ink outline and crop to what was drawn."""
    alpha = sprite.getchannel("A")
    ink = Image.new("RGBA", sprite.size, (*outline, 255))
    ink.putalpha(alpha.filter(ImageFilter.MaxFilter(3)))
    ink.alpha_composite(sprite)
    bbox = ink.getbbox()
    return ink.crop(bbox) if bbox else ink


def _c(name: str) -> RGB:
    return PALETTE[name]


def _pick(rng: np.random.Generator, options: Sequence[Any]) -> Any:
    return options[int(rng.integers(len(options)))]


def _darker(colour: RGB, f: float = 0.7) -> RGB:
    return (int(colour[0] * f), int(colour[1] * f), int(colour[2] * f))
