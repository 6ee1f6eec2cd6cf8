"""People: `Person`, how a random look is chosen, and how one person is drawn.

`_look` picks a look and pins Waldo's three traits on (or keeps them off, for
decoys); `_draw_person` draws it as a sprite, with `_draw_glasses` and
`_draw_hat` for the face and the head.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageDraw

from waldo_cli.demo.draw import _INK, _SKINS, _SS, RGB, _c, _darker, _finish, _paint, _pick

_SHIRTS = (
    "red",
    "white",
    "crimson",
    "pink",
    "coral",
    "orange",
    "yellow",
    "cream",
    "lime",
    "green",
    "olive",
    "mint",
    "teal",
    "turquoise",
    "sky",
    "blue",
    "navy",
    "purple",
    "lilac",
    "magenta",
    "brown",
    "grey",
    "charcoal",
    "black",
)
_STRIPE_GROUNDS = ("white", "cream", "navy", "black", "yellow", "sky")
_LEGS = (
    "denim",
    "navy",
    "black",
    "charcoal",
    "khaki",
    "tan",
    "brown",
    "grey",
    "olive",
    "white",
    "cream",
    "denim",
    "blue",
)
_HAIR: dict[str, RGB] = {
    "black": (34, 28, 28),
    "dark brown": (74, 46, 28),
    "brown": (124, 80, 42),
    "blond": (226, 190, 108),
    "ginger": (192, 92, 38),
    "grey": (168, 168, 168),
    "white": (236, 236, 230),
}


@dataclass(frozen=True)
class Person:
    """One person in the scene, as drawn.

    Attributes
    ----------
    box : (x, y, width, height)
        Where the person is, in scene pixels; (x, y) is the top-left corner.
    order : int
        Place in the drawing order: things with a larger order are drawn later, on top.
    shirt : str
        ``"plain"`` or ``"stripes"`` (horizontal, also on the sleeves).
    shirt_colours : tuple of str
        Names from `PALETTE`: one for a plain shirt, two for stripes (top stripe first).
    hat : str
        ``"none"``, ``"bobble"``, ``"beanie"``, ``"cap"`` or ``"sunhat"``.
    hat_colours : tuple of str
        Names from `PALETTE` (a bobble hat's stripes, its bobble the first colour).
    glasses : str
        ``"none"``, ``"round"``, ``"square"`` or ``"sunglasses"``.
    facing : str
        ``"front"`` or ``"back"`` (seen from behind: no face, no glasses).
    hair, hair_style, legs, legs_colour, sleeves, bag, arms, stride, shoes, bag_colour
        The rest of the look: hair colour and style, ``"trousers"``, ``"shorts"``
        or ``"skirt"`` and their colour, ``"short"`` or ``"long"`` sleeves,
        ``"none"``, ``"backpack"`` or ``"shoulder bag"``, each arm ``"down"``,
        ``"up"`` or ``"hip"``, ``"stand"`` or ``"walk"``, and two more colours.
    skin : int
        Index of the skin tone.
    child : bool
        Drawn smaller.
    """

    box: tuple[int, int, int, int]
    order: int
    shirt: str
    shirt_colours: tuple[str, ...]
    hat: str
    hat_colours: tuple[str, ...]
    glasses: str
    facing: str
    hair: str
    hair_style: str
    legs: str
    legs_colour: str
    sleeves: str
    bag: str
    arms: tuple[str, str]
    stride: str
    shoes: str
    bag_colour: str
    skin: int
    child: bool

    @property
    def striped_shirt(self) -> bool:
        """Wears Waldo's red-and-white striped shirt."""
        return self.shirt == "stripes" and set(self.shirt_colours) == {"red", "white"}

    @property
    def bobble_hat(self) -> bool:
        """Wears Waldo's red-and-white bobble hat."""
        return self.hat == "bobble" and set(self.hat_colours) == {"red", "white"}

    @property
    def round_glasses(self) -> bool:
        """Wears round glasses."""
        return self.glasses == "round"

    @property
    def is_waldo(self) -> bool:
        """Has all three of Waldo's traits (exactly one person in a puzzle does)."""
        return self.striped_shirt and self.bobble_hat and self.round_glasses


class _Pen:
    """Draws on a sprite in body units: x from the middle, y down from the head."""

    def __init__(self, image: Image.Image, cx: float, top: float, unit: float):
        self.image, self.cx, self.top, self.u = image, cx, top, unit
        self.draw = ImageDraw.Draw(image)

    def at(self, x: float, y: float) -> tuple[float, float]:
        return (self.cx + x * self.u, self.top + y * self.u)

    def box(self, x0: float, y0: float, x1: float, y1: float) -> list[float]:
        return [
            self.cx + x0 * self.u,
            self.top + y0 * self.u,
            self.cx + x1 * self.u,
            self.top + y1 * self.u,
        ]

    def px(self, units: float) -> int:
        return max(1, round(units * self.u))


def _look(rng: np.random.Generator, role: str) -> Person:
    """A random look; ``role`` pins Waldo's traits on (or keeps them off)."""
    child = bool(rng.random() < 0.12)
    shirt_colour = _pick(rng, _SHIRTS)
    stripes = bool(rng.random() < 0.4)
    if stripes:
        ground = _pick(rng, [g for g in _STRIPE_GROUNDS if g != shirt_colour])
        shirt_colours: tuple[str, ...] = (shirt_colour, ground)
        if set(shirt_colours) == {"red", "white"}:
            shirt_colours = ("red", "cream")
    else:
        shirt_colours = (shirt_colour,)
    hat = _pick(rng, ("none", "none", "none", "none", "cap", "cap", "sunhat", "beanie", "bobble"))
    if hat == "bobble":
        first = _pick(rng, ("blue", "green", "navy", "yellow", "purple", "orange", "pink"))
        hat_colours: tuple[str, ...] = (first, _pick(rng, ("white", "yellow", "navy")))
        if hat_colours[0] == hat_colours[1]:
            hat_colours = (first, "white")
    elif hat == "sunhat":
        hat_colours = ("straw", _pick(rng, ("red", "blue", "black", "pink", "green")))
    else:
        hat_colours = (_pick(rng, _SHIRTS),)
    facing = "back" if rng.random() < 0.22 else "front"
    glasses = _pick(
        rng, ("none", "none", "none", "none", "none", "sunglasses", "sunglasses", "square", "round")
    )
    hair_style = _pick(rng, ("short", "short", "long", "curly", "bun", "bald"))
    if child and hair_style == "bald":
        hair_style = "short"
    legs = _pick(rng, ("trousers", "trousers", "trousers", "shorts", "shorts", "skirt"))
    arms_pick = float(rng.random())
    arms = (
        ("down", "down")
        if arms_pick < 0.7
        else ("down", "up")
        if arms_pick < 0.8
        else ("up", "down")
        if arms_pick < 0.88
        else ("hip", "hip")
        if arms_pick < 0.95
        else ("hip", "down")
    )
    look = Person(
        box=(0, 0, 0, 0),
        order=-1,
        shirt="stripes" if stripes else "plain",
        shirt_colours=shirt_colours,
        hat=hat,
        hat_colours=hat_colours,
        glasses=glasses,
        facing=facing,
        hair=_pick(rng, tuple(_HAIR)),
        hair_style=hair_style,
        legs=legs,
        legs_colour=_pick(rng, _LEGS) if legs == "trousers" else _pick(rng, _SHIRTS),
        sleeves=_pick(rng, ("short", "short", "long")),
        bag=_pick(rng, ("none", "none", "none", "backpack", "shoulder bag")),
        arms=arms,
        stride=_pick(rng, ("stand", "walk")),
        shoes=_pick(rng, ("black", "brown", "white", "charcoal", "navy", "red")),
        bag_colour=_pick(
            rng, ("brown", "black", "tan", "navy", "magenta", "orange", "blue", "green", "purple")
        ),
        skin=int(rng.integers(len(_SKINS))),
        child=child,
    )
    if role == "waldo":
        return replace(
            look,
            shirt="stripes",
            shirt_colours=("red", "white"),
            hat="bobble",
            hat_colours=("red", "white"),
            glasses="round",
            facing="front",
            hair="brown",
            hair_style="short",
            legs="trousers",
            legs_colour="denim",
            sleeves="long",
            bag="none",
            shoes="wood",
            skin=0,
            child=False,
        )
    wanted = set(role.split("+"))
    if "stripes" in wanted:
        look = replace(
            look, shirt="stripes", shirt_colours=_pick(rng, (("red", "white"), ("white", "red")))
        )
    elif look.striped_shirt:
        look = replace(look, shirt_colours=("red", "cream"))
    if "bobble" in wanted:
        look = replace(look, hat="bobble", hat_colours=("red", "white"))
    elif look.bobble_hat:
        look = replace(look, hat_colours=("blue", "white"))
    if "glasses" in wanted:
        look = replace(look, glasses="round", facing="front")
    elif look.glasses == "round" and role != "anybody":
        look = replace(look, glasses="none")
    if look.facing == "back":
        look = replace(look, glasses="none")
    if look.striped_shirt and look.bobble_hat and look.legs_colour == "denim":
        look = replace(look, legs_colour="khaki")  # a near-Waldo, but not in Waldo's jeans
    return look


_ARM_ENDS: dict[str, tuple[tuple[float, float], ...]] = {
    "down": ((18.5, 54.0),),
    "up": ((22.0, 12.0), (21.0, 0.0)),
    "hip": ((22.5, 41.0), (12.5, 53.0)),
}


def _arm(side: int, pose: str) -> list[tuple[float, float]]:
    return [(side * 13.5, 25.0)] + [(side * x, y) for x, y in _ARM_ENDS[pose]]


def _part_of(points: list[tuple[float, float]], fraction: float) -> list[tuple[float, float]]:
    """The first ``fraction`` of a polyline's length."""
    lengths = [math.dist(a, b) for a, b in zip(points, points[1:], strict=False)]
    left = fraction * sum(lengths)
    out = [points[0]]
    for (a, b), length in zip(zip(points, points[1:], strict=False), lengths, strict=True):
        if left >= length:
            out.append(b)
            left -= length
        else:
            t = left / length if length else 0.0
            out.append((a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])))
            break
    return out


def _draw_person(p: Person, body_px: float) -> Image.Image:
    """A person ``body_px`` pixels from the top of the head to the soles (at 1x)."""
    unit = body_px * _SS / 100.0
    size = (math.ceil(64 * unit), math.ceil(124 * unit))
    sprite = Image.new("RGBA", size, (0, 0, 0, 0))
    pen = _Pen(sprite, size[0] / 2, 18 * unit, unit)
    d = pen.draw
    skin = _SKINS[p.skin]
    hair = _HAIR[p.hair]
    shoes = _c(p.shoes)
    legs = _c(p.legs_colour)
    spread = 3.5 if p.stride == "walk" else 0.0
    back = p.facing == "back"

    if p.hair_style == "long" and not back:
        d.rounded_rectangle(pen.box(-11, 3, 11, 33), radius=pen.px(6), fill=hair)
    for side in (-1, 1):
        foot = side * (6.5 + spread)
        d.line([pen.at(side * 6, 58), pen.at(foot, 93)], fill=skin, width=pen.px(6.5))
        if p.legs in ("trousers", "shorts"):
            end = 94 if p.legs == "trousers" else 72
            f = 1.0 if p.legs == "trousers" else 0.45
            d.polygon(
                [
                    pen.at(side * 0.5, 55),
                    pen.at(side * 12.5, 55),
                    pen.at(side * 12.5 + f * (foot + side * 5 - side * 12.5), end),
                    pen.at(side * 1.0 + f * (foot - side * 4.5 - side * 1.0), end),
                ],
                fill=legs,
            )
        d.ellipse(pen.box(foot - 5.5 + side * 1.5, 91, foot + 5.5 + side * 1.5, 100), fill=shoes)
    if p.legs in ("trousers", "shorts"):
        d.rectangle(pen.box(-12.5, 54, 12.5, 62), fill=legs)
    else:
        d.polygon([pen.at(-12.5, 54), pen.at(12.5, 54), pen.at(17, 77), pen.at(-17, 77)], fill=legs)

    arms = [_arm(-1, p.arms[0]), _arm(1, p.arms[1])]
    for arm in arms:
        d.line([pen.at(*q) for q in arm], fill=skin, width=pen.px(6), joint="curve")
        hx, hy = arm[-1]
        d.ellipse(pen.box(hx - 3.3, hy - 3.3, hx + 3.3, hy + 3.3), fill=skin)

    mask = Image.new("L", size, 0)
    m = ImageDraw.Draw(mask)
    m.polygon([pen.at(-13.5, 22), pen.at(13.5, 22), pen.at(12.8, 58), pen.at(-12.8, 58)], fill=255)
    for side in (-1, 1):
        m.ellipse(pen.box(side * 13.5 - 4.5, 21, side * 13.5 + 4.5, 30), fill=255)
    sleeve = 0.9 if p.sleeves == "long" else 0.38
    for arm in arms:
        m.line(
            [pen.at(*q) for q in _part_of(arm, sleeve)], fill=255, width=pen.px(7.4), joint="curve"
        )
    colours = [_c(n) for n in p.shirt_colours]
    _paint(sprite, mask, colours, stripe=4.3 * unit, origin=pen.top + 22 * unit)

    if p.bag == "shoulder bag":
        bag = _c(p.bag_colour)
        d.line([pen.at(-11, 23), pen.at(11, 52)], fill=_darker(bag), width=pen.px(1.8))
        d.rounded_rectangle(pen.box(8, 47, 20, 61), radius=pen.px(2), fill=bag)
    elif p.bag == "backpack":
        bag = _c(p.bag_colour)
        if back:
            d.rounded_rectangle(pen.box(-10, 26, 10, 53), radius=pen.px(4), fill=bag)
            d.rectangle(pen.box(-6, 40, 6, 50), fill=_darker(bag, 0.8))
        else:
            for side in (-1, 1):
                d.line(
                    [pen.at(side * 7, 22.5), pen.at(side * 8.5, 48)],
                    fill=_darker(bag),
                    width=pen.px(2.2),
                )

    d.rectangle(pen.box(-3.2, 17, 3.2, 24), fill=skin)
    if p.hair_style == "curly":
        d.ellipse(pen.box(-13, -4, 13, 19), fill=hair)
    if p.hair_style == "bun":
        d.ellipse(pen.box(-4.5, -5.5, 4.5, 2.5), fill=hair)
    if not back:
        for side in (-1, 1):
            d.ellipse(pen.box(side * 9.9 - 1.6, 8, side * 9.9 + 1.6, 13.5), fill=skin)
    d.ellipse(pen.box(-10, 0, 10, 21), fill=skin)
    if back:
        if p.hair_style != "bald":
            d.ellipse(pen.box(-10.6, -1, 10.6, 20), fill=hair)
        if p.hair_style == "long":
            d.rounded_rectangle(pen.box(-11, 6, 11, 34), radius=pen.px(6), fill=hair)
    else:
        if p.hair_style != "bald":
            d.chord(pen.box(-10.8, -1.5, 10.8, 17), 180, 360, fill=hair)
            d.polygon([pen.at(-10.6, 7), pen.at(-6, 7), pen.at(-10, 12)], fill=hair)
        else:
            for side in (-1, 1):
                d.ellipse(pen.box(side * 10 - 1.5, 5, side * 10 + 1.5, 11), fill=(170, 170, 170))
        for side in (-1, 1):
            d.ellipse(pen.box(side * 4 - 1.2, 9.3, side * 4 + 1.2, 11.9), fill=_INK)
        d.arc(pen.box(-3, 12.5, 3, 17), 20, 160, fill=(150, 60, 60), width=pen.px(1))
        _draw_glasses(pen, p.glasses)
    _draw_hat(pen, p, size)
    return _finish(sprite)


def _draw_glasses(pen: _Pen, kind: str) -> None:
    d = pen.draw
    if kind == "round":
        for side in (-1, 1):
            d.ellipse(
                pen.box(side * 4.6 - 3.7, 6.6, side * 4.6 + 3.7, 14),
                outline=_INK,
                width=pen.px(1.4),
            )
        d.line([pen.at(-1.0, 10), pen.at(1.0, 10)], fill=_INK, width=pen.px(1.2))
    elif kind == "square":
        for side in (-1, 1):
            d.rectangle(
                pen.box(side * 4.6 - 3.6, 7.6, side * 4.6 + 3.6, 12.6),
                outline=_INK,
                width=pen.px(1.2),
            )
        d.line([pen.at(-1.0, 10), pen.at(1.0, 10)], fill=_INK, width=pen.px(1.2))
    elif kind == "sunglasses":
        for side in (-1, 1):
            d.rounded_rectangle(
                pen.box(side * 4.6 - 3.8, 7.8, side * 4.6 + 3.8, 12.8),
                radius=pen.px(1.5),
                fill=(18, 18, 24),
            )
        d.line([pen.at(-1.2, 9.5), pen.at(1.2, 9.5)], fill=(18, 18, 24), width=pen.px(1.2))


def _draw_hat(pen: _Pen, p: Person, size: tuple[int, int]) -> None:
    d = pen.draw
    colours = [_c(n) for n in p.hat_colours]
    if p.hat in ("bobble", "beanie"):
        mask = Image.new("L", size, 0)
        ImageDraw.Draw(mask).chord(pen.box(-11, -6, 11, 16), 180, 360, fill=255)
        if p.hat == "bobble":
            _paint(pen.image, mask, colours, stripe=2.6 * pen.u, origin=pen.top - 6 * pen.u)
        else:
            _paint(pen.image, mask, colours[:1])
        band = colours[1] if p.hat == "bobble" else _darker(colours[0], 0.8)
        d.rectangle(pen.box(-11.2, 3.5, 11.2, 7.5), fill=band)
        if p.hat == "bobble":
            d.ellipse(pen.box(-4.4, -11.5, 4.4, -3), fill=colours[0])
    elif p.hat == "cap":
        d.chord(pen.box(-10.8, -3.5, 10.8, 15), 180, 360, fill=colours[0])
        side = 1 if (p.skin + len(p.hair)) % 2 else -1
        d.ellipse(
            pen.box(min(0, side * 17), 3, max(0, side * 17), 7.5), fill=_darker(colours[0], 0.85)
        )
    elif p.hat == "sunhat":
        d.ellipse(pen.box(-17, 2.5, 17, 8.5), fill=colours[0])
        d.chord(pen.box(-8.5, -5, 8.5, 13), 180, 360, fill=colours[0])
        d.rectangle(pen.box(-8.5, 1.5, 8.5, 4), fill=colours[1])
