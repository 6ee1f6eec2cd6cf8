"""Things: `Thing`, and one function per kind that draws it (umbrellas, stalls, dogs, ...).

Each function in `_THINGS` takes the generator and the thing's number among its
kind, and returns its colours and its sprite. Number 0 of the umbrellas,
windbreaks, stalls, towels and blankets is always red and white: a decoy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from waldo_cli.demo.draw import _SKINS, _SS, _c, _darker, _finish, _paint, _pick


@dataclass(frozen=True)
class Thing:
    """An object in the scene: an umbrella, a towel, a dog, a bush, ...

    Attributes
    ----------
    kind : str
        What it is (``"umbrella"``, ``"windbreak"``, ``"towel"``, ``"stall"``, ...).
    box : (x, y, width, height)
        Where it is, in scene pixels.
    order : int
        Place in the drawing order, shared with the people.
    colours : tuple of str
        Its main colours, names from `PALETTE`.
    standing : bool
        Stands up among the people, drawn in depth order with them; otherwise it
        lies flat on the ground and is drawn before anybody.
    """

    kind: str
    box: tuple[int, int, int, int]
    order: int
    colours: tuple[str, ...]
    standing: bool

    @property
    def red_white(self) -> bool:
        """Shares Waldo's red-and-white stripes (a decoy)."""
        return set(self.colours) == {"red", "white"}


def _canvas(width: float, height: float) -> tuple[Image.Image, ImageDraw.ImageDraw, float, float]:
    w, h = max(1, round(width * _SS)), max(1, round(height * _SS))
    image = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    return image, ImageDraw.Draw(image), w, h


_UMBRELLAS = (
    ("blue", "white"),
    ("yellow", "orange"),
    ("green", "white"),
    ("turquoise", "white"),
    ("pink", "white"),
    ("navy", "yellow"),
    ("orange", "white"),
    ("purple", "lilac"),
    ("red", "yellow"),
    ("lime", "green"),
    ("crimson", "cream"),
)


def _decoy_colours(
    rng: np.random.Generator, k: int, odds: float, others: Sequence[tuple[str, ...]]
) -> tuple[str, ...]:
    """Red and white for the first one and for ``odds`` of the rest, else another pair."""
    if k == 0 or rng.random() < odds:
        return ("red", "white")
    return tuple(_pick(rng, others))


def _umbrella(rng: np.random.Generator, k: int) -> tuple[tuple[str, ...], Image.Image]:
    colours = _decoy_colours(rng, k, 0.25, _UMBRELLAS)
    width = float(rng.uniform(40, 58))
    image, d, w, h = _canvas(width, width * 1.15)
    canopy = 0.34 * w
    tilt = float(rng.uniform(-0.08, 0.08)) * w
    d.line([(w / 2, canopy * 0.4), (w / 2 + tilt, h - 1)], fill=(236, 236, 230), width=max(2, _SS))
    segments = 8
    for i in range(segments):
        d.pieslice(
            [0, 0, w - 1, 2 * canopy],
            180 + i * 180 / segments,
            180 + (i + 1) * 180 / segments,
            fill=_c(colours[i % 2]),
        )
        x0 = i * (w - 1) / segments
        d.chord(
            [x0, canopy - 0.05 * w, x0 + (w - 1) / segments, canopy + 0.05 * w],
            0,
            180,
            fill=_c(colours[i % 2]),
        )
    d.ellipse([w / 2 - 0.03 * w, -0.01 * w, w / 2 + 0.03 * w, 0.05 * w], fill=_c("white"))
    return colours, _finish(image)


def _windbreak(rng: np.random.Generator, k: int) -> tuple[tuple[str, ...], Image.Image]:
    colours = _decoy_colours(
        rng,
        k,
        0.35,
        (
            ("blue", "yellow", "red", "green"),
            ("orange", "white"),
            ("navy", "white"),
            ("green", "yellow"),
            ("purple", "pink", "sky"),
        ),
    )
    image, d, w, h = _canvas(float(rng.uniform(40, 70)), float(rng.uniform(16, 21)))
    panels = max(2, round(w / (12 * _SS)))
    for i in range(panels):
        x0, x1 = i * w / panels, (i + 1) * w / panels
        d.rectangle([x0, 0.1 * h, x1, 0.85 * h], fill=_c(colours[i % len(colours)]))
    for i in range(panels + 1):
        x = min(w - _SS, i * w / panels)
        d.line([(x, 0), (x, h - 1)], fill=_c("wood"), width=_SS)
    return colours, _finish(image)


def _deckchair(rng: np.random.Generator, k: int) -> tuple[tuple[str, ...], Image.Image]:
    colours = _decoy_colours(
        rng,
        k + 1,
        0.3,
        (("blue", "white"), ("green", "white"), ("orange", "yellow"), ("navy", "sky")),
    )
    image, d, w, h = _canvas(float(rng.uniform(16, 20)), float(rng.uniform(20, 24)))
    wood = _c("wood")
    d.line([(0.1 * w, 0.05 * h), (0.8 * w, h - 1)], fill=wood, width=_SS)
    d.line([(0.95 * w, 0.45 * h), (0.3 * w, h - 1)], fill=wood, width=_SS)
    mask = Image.new("L", image.size, 0)
    ImageDraw.Draw(mask).polygon(
        [(0.12 * w, 0.04 * h), (0.42 * w, 0.04 * h), (0.98 * w, 0.62 * h), (0.62 * w, 0.7 * h)],
        fill=255,
    )
    _paint(image, mask, [_c(c) for c in colours], stripe=1.6 * _SS, vertical=True)
    return colours, _finish(image)


def _stall(rng: np.random.Generator, k: int) -> tuple[tuple[str, ...], Image.Image]:
    colours = _decoy_colours(
        rng,
        k,
        0.4,
        (("blue", "white"), ("green", "white"), ("pink", "white"), ("yellow", "orange")),
    )
    image, d, w, h = _canvas(float(rng.uniform(64, 80)), float(rng.uniform(56, 64)))
    body = _c(_pick(rng, ("cream", "mint", "sky", "pink", "white", "yellow")))
    d.rectangle([0.04 * w, 0.42 * h, 0.96 * w, h - 1], fill=body)
    d.rectangle([0.12 * w, 0.46 * h, 0.88 * w, 0.7 * h], fill=(60, 48, 44))
    d.rectangle([0.06 * w, 0.7 * h, 0.94 * w, 0.76 * h], fill=_c("wood"))
    for i in range(7):
        x = (0.16 + i * 0.11) * w
        d.ellipse(
            [x, 0.62 * h, x + 0.06 * w, 0.7 * h],
            fill=_c(("pink", "cream", "brown", "mint", "yellow", "lilac", "white")[i]),
        )
    mask = Image.new("L", image.size, 0)
    md = ImageDraw.Draw(mask)
    md.rectangle([0, 0.18 * h, w - 1, 0.36 * h], fill=255)
    stripes = 10
    for i in range(stripes):
        x0 = i * w / stripes
        md.chord([x0, 0.3 * h, x0 + w / stripes, 0.44 * h], 0, 180, fill=255)
    _paint(image, mask, [_c(c) for c in colours], stripe=w / stripes, vertical=True)
    d.rectangle(
        [0.1 * w, 0, 0.9 * w, 0.16 * h],
        fill=_c(_pick(rng, ("red", "blue", "navy", "yellow", "green"))),
    )
    for i in range(5):
        x = (0.18 + i * 0.15) * w
        d.ellipse([x, 0.04 * h, x + 0.07 * w, 0.12 * h], fill=_c("white"))
    return colours, _finish(image)


def _bush(rng: np.random.Generator, k: int) -> tuple[tuple[str, ...], Image.Image]:
    width, height = float(rng.uniform(26, 42)), float(rng.uniform(20, 30))
    image, d, w, h = _canvas(width, height)
    greens = ((52, 128, 56), (70, 150, 62), (40, 104, 48), (96, 170, 70))
    for _ in range(14):
        r = float(rng.uniform(0.18, 0.3)) * h
        x = float(rng.uniform(r, w - r))
        y = float(rng.uniform(r, h - r))
        d.ellipse(
            [x - r, y - r, x + r, y + r],
            fill=_pick(rng, greens),
            outline=(30, 80, 36),
            width=_SS // 2 + 1,
        )
    bloom = _pick(rng, ("none", "pink", "yellow", "white", "magenta"))
    if bloom != "none":
        for _ in range(12):
            x, y = float(rng.uniform(0.1, 0.9)) * w, float(rng.uniform(0.1, 0.8)) * h
            d.ellipse([x - _SS, y - _SS, x + _SS, y + _SS], fill=_c(bloom))
    return ("leaf", bloom) if bloom != "none" else ("leaf",), _finish(image, (26, 60, 30))


def _lamp(rng: np.random.Generator, k: int) -> tuple[tuple[str, ...], Image.Image]:
    image, d, w, h = _canvas(12, float(rng.uniform(56, 68)))
    post = (36, 60, 50)
    d.rectangle([w / 2 - _SS, 0.12 * h, w / 2 + _SS, h - 1], fill=post)
    d.rectangle([w / 2 - 2 * _SS, h - 3 * _SS, w / 2 + 2 * _SS, h - 1], fill=post)
    d.polygon(
        [(0.15 * w, 0.04 * h), (0.85 * w, 0.04 * h), (0.7 * w, 0.13 * h), (0.3 * w, 0.13 * h)],
        fill=(250, 236, 160),
    )
    d.rectangle([0.1 * w, 0, 0.9 * w, 0.04 * h], fill=post)
    flowers = _pick(rng, ("red", "pink", "yellow", "purple"))
    d.ellipse([0.05 * w, 0.3 * h, 0.95 * w, 0.42 * h], fill=_c("leaf"))
    for i in range(5):
        x = (0.12 + i * 0.17) * w
        d.ellipse([x, 0.3 * h, x + 0.16 * w, 0.36 * h], fill=_c(flowers))
    return ("green", flowers), _finish(image)


def _dog(rng: np.random.Generator, k: int) -> tuple[tuple[str, ...], Image.Image]:
    colour = _pick(rng, ("brown", "tan", "black", "white", "cream"))
    image, d, w, h = _canvas(float(rng.uniform(14, 18)), float(rng.uniform(10, 13)))
    fur = _c(colour)
    face = 1 if rng.random() < 0.5 else -1

    def fx(x: float) -> float:
        return x * w if face > 0 else (1 - x) * w - 1

    for x in (0.25, 0.38, 0.62, 0.72):
        d.line([(fx(x), 0.5 * h), (fx(x), h - 1)], fill=_darker(fur, 0.85), width=_SS)
    d.ellipse([min(fx(0.12), fx(0.8)), 0.35 * h, max(fx(0.12), fx(0.8)), 0.75 * h], fill=fur)
    d.ellipse([min(fx(0.66), fx(0.98)), 0.05 * h, max(fx(0.66), fx(0.98)), 0.5 * h], fill=fur)
    d.ellipse(
        [min(fx(0.68), fx(0.8)), 0.05 * h, max(fx(0.68), fx(0.8)), 0.42 * h], fill=_darker(fur, 0.6)
    )
    d.line([(fx(0.14), 0.45 * h), (fx(0.0), 0.15 * h)], fill=fur, width=_SS)
    return (colour,), _finish(image)


def _towel(rng: np.random.Generator, k: int) -> tuple[tuple[str, ...], Image.Image]:
    colours = _decoy_colours(
        rng,
        k,
        0.3,
        (
            ("blue", "white"),
            ("yellow", "orange", "pink"),
            ("green", "white"),
            ("turquoise", "navy"),
            ("purple", "white"),
            ("orange", "white"),
        ),
    )
    long_side, short_side = float(rng.uniform(34, 48)), float(rng.uniform(16, 22))
    upright = rng.random() < 0.5
    image, d, w, h = _canvas(*((short_side, long_side) if upright else (long_side, short_side)))
    mask = Image.new("L", image.size, 255)
    _paint(image, mask, [_c(c) for c in colours], stripe=3 * _SS, vertical=not upright)
    return colours, _finish(image, (140, 120, 100))


def _blanket(rng: np.random.Generator, k: int) -> tuple[tuple[str, ...], Image.Image]:
    colour = (
        "red" if k == 0 or rng.random() < 0.4 else _pick(rng, ("blue", "green", "navy", "orange"))
    )
    image, _, w, h = _canvas(float(rng.uniform(40, 56)), float(rng.uniform(26, 36)))
    check = 4 * _SS
    h, w = int(h), int(w)
    yy, xx = np.mgrid[0:h, 0:w]
    a, b = (yy // check) % 2 == 0, (xx // check) % 2 == 0
    full, white = np.array(_c(colour), np.float32), np.array(_c("white"), np.float32)
    mixed = (a & b)[:, :, None] * full + (a ^ b)[:, :, None] * (0.5 * full + 0.5 * white)
    mixed += (~a & ~b)[:, :, None] * white
    rgba = np.dstack([mixed.astype(np.uint8), np.full((h, w), 255, np.uint8)])
    return (colour, "white"), _finish(Image.fromarray(rgba), (120, 100, 90))


def _ball(rng: np.random.Generator, k: int) -> tuple[tuple[str, ...], Image.Image]:
    size = float(rng.uniform(9, 13))
    image, d, w, h = _canvas(size, size)
    colours = ("red", "yellow", "blue", "white", "green", "orange")
    start = float(rng.uniform(0, 60))
    for i in range(6):
        d.pieslice([0, 0, w - 1, h - 1], start + 60 * i, start + 60 * (i + 1), fill=_c(colours[i]))
    d.ellipse([0.4 * w, 0.4 * h, 0.6 * w, 0.6 * h], fill=_c("white"))
    return colours, _finish(image)


def _bucket(rng: np.random.Generator, k: int) -> tuple[tuple[str, ...], Image.Image]:
    colour = _pick(rng, ("red", "yellow", "blue", "green", "pink", "orange"))
    image, d, w, h = _canvas(14, 12)
    c = _c(colour)
    d.polygon(
        [(0.05 * w, 0.3 * h), (0.6 * w, 0.3 * h), (0.52 * w, h - 1), (0.13 * w, h - 1)], fill=c
    )
    d.rectangle([0.02 * w, 0.26 * h, 0.63 * w, 0.36 * h], fill=_darker(c, 0.8))
    d.arc([0.05 * w, 0.0, 0.6 * w, 0.6 * h], 180, 360, fill=(40, 40, 40), width=_SS // 2 + 1)
    d.line([(0.7 * w, 0.95 * h), (0.95 * w, 0.2 * h)], fill=_c("yellow"), width=_SS)
    d.polygon(
        [(0.62 * w, h - 1), (0.82 * w, h - 1), (0.8 * w, 0.72 * h), (0.66 * w, 0.7 * h)],
        fill=_c("blue"),
    )
    return (colour,), _finish(image)


def _sandcastle(rng: np.random.Generator, k: int) -> tuple[tuple[str, ...], Image.Image]:
    image, d, w, h = _canvas(float(rng.uniform(18, 26)), 16)
    sand = (200, 168, 112)
    d.rectangle([0.05 * w, 0.45 * h, 0.95 * w, h - 1], fill=sand)
    for x in (0.05, 0.38, 0.7):
        d.rectangle([x * w, 0.2 * h, (x + 0.25) * w, 0.5 * h], fill=_darker(sand, 0.92))
        for j in range(3):
            d.rectangle(
                [(x + j * 0.09) * w, 0.12 * h, (x + j * 0.09 + 0.06) * w, 0.22 * h],
                fill=_darker(sand, 0.92),
            )
    d.line([(0.52 * w, 0.45 * h), (0.52 * w, 0.0)], fill=_c("wood"), width=max(1, _SS // 2))
    flag = _pick(rng, ("red", "blue", "yellow", "green"))
    d.polygon([(0.52 * w, 0), (0.72 * w, 0.08 * h), (0.52 * w, 0.16 * h)], fill=_c(flag))
    return ("tan", flag), _finish(image, (150, 120, 80))


def _flowers(rng: np.random.Generator, k: int) -> tuple[tuple[str, ...], Image.Image]:
    colours = (
        _pick(rng, ("red", "pink", "yellow", "white", "purple", "orange", "magenta")),
        _pick(rng, ("yellow", "white", "lilac", "coral")),
    )
    image, d, w, h = _canvas(float(rng.uniform(14, 26)), float(rng.uniform(8, 14)))
    for _ in range(10):
        x, y = float(rng.uniform(0.1, 0.9)) * w, float(rng.uniform(0.2, 0.9)) * h
        d.ellipse([x - 2 * _SS, y - _SS, x + 2 * _SS, y + _SS], fill=_c("leaf"))
    for i in range(14):
        x, y = float(rng.uniform(0.1, 0.9)) * w, float(rng.uniform(0.1, 0.8)) * h
        r = 1.2 * _SS
        d.ellipse([x - r, y - r, x + r, y + r], fill=_c(colours[i % 2]))
    return colours, _finish(image, (40, 90, 40))


def _swimmer(rng: np.random.Generator, k: int) -> tuple[tuple[str, ...], Image.Image]:
    ring = _pick(rng, ("red", "yellow", "orange", "pink", "lime", "white"))
    image, d, w, h = _canvas(16, 12)
    d.ellipse([0, 0.4 * h, w - 1, h - 1], fill=_c(ring))
    d.ellipse([0.3 * w, 0.55 * h, 0.7 * w, 0.85 * h], fill=(50, 130, 180))
    skin = _pick(rng, _SKINS)
    d.ellipse([0.3 * w, 0, 0.7 * w, 0.6 * h], fill=skin)
    d.chord(
        [0.28 * w, -0.02 * h, 0.72 * w, 0.5 * h],
        180,
        360,
        fill=_c(_pick(rng, ("black", "brown", "blue", "pink", "white"))),
    )
    return (ring,), _finish(image, (20, 60, 100))


_THINGS: dict[str, Callable[[np.random.Generator, int], tuple[tuple[str, ...], Image.Image]]] = {
    "umbrella": _umbrella,
    "windbreak": _windbreak,
    "deckchair": _deckchair,
    "stall": _stall,
    "bush": _bush,
    "lamp": _lamp,
    "dog": _dog,
    "towel": _towel,
    "blanket": _blanket,
    "ball": _ball,
    "bucket": _bucket,
    "sandcastle": _sandcastle,
    "flowers": _flowers,
    "swimmer": _swimmer,
}
