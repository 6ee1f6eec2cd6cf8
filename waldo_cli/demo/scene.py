"""The scene: the ground, where everybody and everything stands, and `render_puzzle`.

`render_puzzle` draws the ground (sea, beach, promenade, park), places flat
things, standing things and the crowd (Waldo first, nobody drawn later touching
his box), pastes them back to front, and cuts the template out of the finished
scene at Waldo's box. It uses no text, no clock and no hash order: one seed,
size, crowd and difficulty always give the same pixels.

Three difficulties: ``normal`` (the puzzles waldo has always made, pixel for
pixel), ``easy`` (no decoy has two of Waldo's three traits) and ``hard``
(everybody drawn 0.7–1.3 times their size with depth, Waldo sometimes partly
hidden behind somebody or something standing in front of him, more decoys
with two of his traits, and the finished picture slightly blurred or
JPEG-compressed).

Everything is drawn at three times the final size and box-averaged down, so
edges are smooth; box averaging never carries a pixel outside its own 3×3 block,
which is what lets us promise that nothing is drawn over Waldo's box.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from waldo_cli.demo.draw import _SS, _pick
from waldo_cli.demo.people import Person, _draw_person, _look
from waldo_cli.demo.things import _THINGS, Thing
from waldo_cli.errors import WaldoError

DEFAULT_SIZE = (960, 640)
DEFAULT_CROWD = 200
MIN_SIZE = (160, 120)
DIFFICULTIES = ("easy", "normal", "hard")
DEFAULT_DIFFICULTY = "normal"
# hard: people at the top of the picture are this much smaller than life, at
# the bottom this much larger; at most this share of Waldo may be hidden
_DEPTH_SCALES = (0.7, 1.3)
_MOST_HIDDEN = 1 / 3
# The largest crowd: one person per CROWD_PIXELS pixels of scene (a person
# covers about 800), but the default crowd at any size, and never more than
# MAX_CROWD (some 10 s of drawing).
CROWD_PIXELS = 100
MAX_CROWD = 5000

_SEA, _SAND, _PATH, _GRASS = 0, 1, 2, 3
_REFERENCE_AREA = DEFAULT_SIZE[0] * DEFAULT_SIZE[1]


@dataclass(frozen=True, eq=False)
class Puzzle:
    """A rendered puzzle: the scene, Waldo as drawn in it, and where he is.

    Attributes
    ----------
    scene : PIL.Image.Image
        The whole picture, mode RGB, ``size`` pixels.
    template : PIL.Image.Image
        ``scene`` cropped to ``box``: Waldo exactly as drawn in the scene.
    box : (x, y, width, height)
        Waldo's box in the scene; (x, y) is its top-left corner, as in
        ``waldo find``'s matches.
    seed, size, crowd
        What the puzzle was made from: the seed, (width, height), and the
        number of people besides Waldo.
    people : tuple of Person
        Everybody drawn, Waldo included, in drawing order.
    things : tuple of Thing
        Every object drawn, in drawing order.
    difficulty : {"easy", "normal", "hard"}
        How hard the puzzle is.
    scale : float
        Waldo's size against the normal puzzles' (1 but in ``hard``).
    hidden : float
        The share of Waldo's pixels covered by what stands in front of him
        (0 but in ``hard``, at most a third).
    degraded : {"blur", "jpeg"} or None
        What was done to the finished picture (``hard`` only).
    """

    scene: Image.Image
    template: Image.Image
    box: tuple[int, int, int, int]
    seed: int
    size: tuple[int, int]
    crowd: int
    people: tuple[Person, ...]
    things: tuple[Thing, ...]
    difficulty: str = DEFAULT_DIFFICULTY
    scale: float = 1.0
    hidden: float = 0.0
    degraded: str | None = None

    @property
    def waldo(self) -> Person:
        """The one person with all three of Waldo's traits."""
        return next(p for p in self.people if p.is_waldo)

    def answer(self) -> dict[str, Any]:
        """The content of ``answer.json``: Waldo's box and what made the puzzle.

        A ``normal`` puzzle's answer has exactly the keys it always had; the
        others add the difficulty, Waldo's scale, the share of him hidden and
        what degraded the picture.

        >>> render_puzzle(3, size=(160, 120), crowd=2).answer()["size"]
        [160, 120]
        """
        x, y, width, height = self.box
        doc: dict[str, Any] = {
            "x": x,
            "y": y,
            "width": width,
            "height": height,
            "seed": self.seed,
            "size": [self.size[0], self.size[1]],
            "crowd": self.crowd,
        }
        if self.difficulty != DEFAULT_DIFFICULTY:
            doc.update(
                difficulty=self.difficulty,
                scale=round(self.scale, 4),
                hidden=round(self.hidden, 4),
                degraded=self.degraded,
            )
        return doc


def _check_size(size: tuple[int, int]) -> None:
    width, height = size
    if width < MIN_SIZE[0] or height < MIN_SIZE[1]:
        raise WaldoError(
            f"size {width}x{height} is too small to hold a crowd: "
            f"at least {MIN_SIZE[0]}x{MIN_SIZE[1]}"
        )
    if width * height > 12_000_000:  # drawing takes about 150 bytes a pixel: 1.8 GB here
        raise WaldoError(f"size {width}x{height} is too large: at most 12 megapixels")


def max_crowd(size: tuple[int, int]) -> int:
    """The largest crowd a scene of this (width, height) holds.

    One person per ``CROWD_PIXELS`` (100) pixels of scene, but at least
    ``DEFAULT_CROWD`` (200) and at most ``MAX_CROWD`` (5000).

    >>> max_crowd((160, 120)), max_crowd((200, 150)), max_crowd((960, 640))
    (200, 300, 5000)
    """
    area = int(size[0]) * int(size[1])
    return min(MAX_CROWD, max(DEFAULT_CROWD, area // CROWD_PIXELS))


def render_puzzle(
    seed: int,
    size: tuple[int, int] = DEFAULT_SIZE,
    crowd: int = DEFAULT_CROWD,
    difficulty: str = DEFAULT_DIFFICULTY,
) -> Puzzle:
    """Draw a crowd scene with one Waldo hidden in it.

    Parameters
    ----------
    seed : int
        Non-negative; the same seed, size and crowd give the same pixels.
    size : (width, height)
        Of the scene, at least `MIN_SIZE`. People are drawn at the same scale
        whatever the size (about 16–24 pixels wide and 30–48 high).
    crowd : int
        How many people besides Waldo, from 0 to ``max_crowd(size)`` (one
        per 100 pixels of scene, at least 200, at most 5000). Among them, in
        proportion,
        are decoys: red-and-white striped shirts without the hat, red-and-white
        bobble hats without the shirt, round glasses, and a few with two of
        Waldo's three traits.
    difficulty : {"easy", "normal", "hard"}
        ``normal`` (default) draws the puzzles waldo always drew, pixel for
        pixel; ``easy`` has no decoys with two of Waldo's traits; ``hard``
        draws people 0.7–1.3 times their size with depth (smaller further
        back), hides up to a third of Waldo behind somebody or something in
        front of him in about half the puzzles, has three times as many
        decoys with two of his traits, and blurs or JPEG-compresses the
        finished picture slightly.

    Returns
    -------
    Puzzle
        The scene, the template cut from it at Waldo's box, the box, and
        everybody and everything drawn.

    Raises
    ------
    WaldoError
        A negative seed, a crowd out of range, a size out of range, or an unknown
        difficulty.

    Examples
    --------
    >>> puzzle = render_puzzle(1, size=(160, 120), crowd=5)
    >>> puzzle.scene.size, len(puzzle.people), puzzle.template.size == puzzle.box[2:]
    ((160, 120), 6, True)
    """
    if int(seed) < 0:
        raise WaldoError(f"seed {seed} is negative: use 0 or more")
    if int(crowd) < 0:
        raise WaldoError(f"crowd {crowd} is negative: use 0 or more")
    if difficulty not in DIFFICULTIES:
        raise WaldoError(
            f"unknown difficulty {difficulty!r}: choose one of {', '.join(DIFFICULTIES)}"
        )
    hard = difficulty == "hard"
    size = (int(size[0]), int(size[1]))
    _check_size(size)
    if int(crowd) > max_crowd(size):
        raise WaldoError(
            f"crowd {crowd} is too large for a {size[0]}x{size[1]} scene: at most "
            f"{max_crowd(size)} (one person per {CROWD_PIXELS} pixels, at least "
            f"{DEFAULT_CROWD}, at most {MAX_CROWD})"
        )
    rng = np.random.default_rng(int(seed))
    width, height = size
    background, zone = _ground(rng, width, height)
    scene = Image.fromarray(np.repeat(np.repeat(background, _SS, axis=0), _SS, axis=1))
    scale = width * height / _REFERENCE_AREA

    # Flat things lie on the ground and are drawn first, under everybody.
    placed: list[_Placed] = []
    for kind, count in _ground_counts(scale):
        for k in range(count):
            colours, sprite = _THINGS[kind](rng, k)
            spot = _spot(rng, zone, _size_1x(sprite), _ZONES[kind])
            if spot is not None:
                placed.append(_Placed(sprite, spot, thing=(kind, colours, False)))

    # Standing things and people are drawn back to front (by where their feet are),
    # and nothing that is drawn after Waldo may touch his box.
    waldo_look = _look(rng, "waldo")
    waldo_body = float(rng.uniform(37, 41))
    waldo_sprite = _draw_person(waldo_look, waldo_body)
    waldo_at = _spot(rng, zone, _size_1x(waldo_sprite), (_SAND, _PATH, _GRASS), margin=2)
    assert waldo_at is not None  # the scene is larger than a person and mostly ground
    wx, wy = waldo_at
    ww, wh = _size_1x(waldo_sprite)
    waldo_scale = 1.0
    if hard:
        waldo_scale = _depth(wy + wh, height)
        waldo_sprite = _draw_person(waldo_look, waldo_body * waldo_scale)
        wx, wy = _stand(_size_1x(waldo_sprite), (wx + ww / 2, wy + wh), size, margin=2)
        ww, wh = _size_1x(waldo_sprite)
    guard = (wx - 1, wy - 1, ww + 2, wh + 2)
    standing: list[_Placed] = [_Placed(waldo_sprite, (wx, wy), person=waldo_look)]

    for kind, count in _standing_counts(scale):
        for k in range(count):
            colours, sprite = _THINGS[kind](rng, k)
            spot = _spot(rng, zone, _size_1x(sprite), _ZONES[kind], guard=guard)
            if spot is not None:
                standing.append(_Placed(sprite, spot, thing=(kind, colours, True)))

    roles = _roles(crowd, difficulty)
    roles = [roles[i] for i in rng.permutation(len(roles))]
    # hard: in about half the puzzles somebody (or something) stands in front of Waldo
    cover = None
    if hard and rng.random() < 0.5:
        cover = _cover(rng, waldo_sprite, (wx, wy), roles[-1] if roles else None, size)
        if cover is not None:
            standing.append(cover)
            if cover.person is not None:
                roles = roles[:-1]
    # A third of the crowd gathers in a few knots, one of them around Waldo, so he
    # stands in a crowd like everybody else and his knot is not the only one.
    knots = [(wx + ww / 2, float(wy + wh))]
    for _ in range(max(2, round(5 * scale))):
        kx, ky = _spot(rng, zone, (1, 1), (_SAND, _PATH, _GRASS), margin=20) or (0, 0)
        knots.append((float(kx), float(ky)))
    for role in roles:
        look = _look(rng, role)
        body = float(rng.uniform(26, 31) if look.child else rng.uniform(35, 42))
        sprite = _draw_person(look, body)
        around = _pick(rng, knots) if rng.random() < 0.35 else None
        spot = _spot(
            rng,
            zone,
            _size_1x(sprite),
            (_SAND, _PATH, _GRASS),
            guard=guard,
            around=around,
            force=True,
        )
        assert spot is not None  # force always finds a place
        if hard:
            sprite, spot = _in_depth(rng, zone, look, body, sprite, spot, guard)
        standing.append(_Placed(sprite, spot, person=look))

    # Ties in depth go to the earlier one, so Waldo (first) is drawn first among equals.
    order = sorted(range(len(standing)), key=lambda i: (standing[i].bottom, i))
    placed.extend(standing[i] for i in order)

    people: list[Person] = []
    things: list[Thing] = []
    for index, item in enumerate(placed):
        x, y = item.at
        scene.paste(item.sprite, (x * _SS, y * _SS), item.sprite)
        box = (x, y, *_size_1x(item.sprite))
        if item.person is not None:
            people.append(replace(item.person, box=box, order=index))
        elif item.thing is not None:
            kind, colours, upright = item.thing
            things.append(Thing(kind, box, index, colours, upright))

    final = scene.reduce(_SS)
    degraded = None
    if hard:
        final, degraded = _degrade(rng, final)
    box = (wx, wy, ww, wh)
    template = final.crop((wx, wy, wx + ww, wy + wh))
    return Puzzle(
        scene=final,
        template=template,
        box=box,
        seed=int(seed),
        size=size,
        crowd=int(crowd),
        people=tuple(people),
        things=tuple(things),
        difficulty=difficulty,
        scale=waldo_scale,
        hidden=_hidden(waldo_sprite, (wx, wy), cover) if cover is not None else 0.0,
        degraded=degraded,
    )


# ---------------------------------------------------------------- hard puzzles


def _depth(foot: float, height: int) -> float:
    """How large somebody whose feet are on row ``foot`` is drawn: smaller further back."""
    low, high = _DEPTH_SCALES
    return low + (high - low) * min(max(foot / height, 0.0), 1.0)


def _stand(
    size: tuple[int, int], foot: tuple[float, float], scene: tuple[int, int], margin: int = 0
) -> tuple[int, int]:
    """The top-left corner of a sprite of ``size`` whose feet are at ``foot``, kept inside."""
    (w, h), (width, height) = size, scene
    x = int(round(foot[0] - w / 2))
    y = int(round(foot[1])) - h
    x = min(max(x, margin), width - w - margin)
    y = min(max(y, margin), height - h - margin)
    return x, y


def _hits(box: tuple[int, int, int, int], guard: tuple[int, int, int, int]) -> bool:
    """Whether something at ``box`` is drawn after Waldo (stands lower) and touches his box."""
    return box[1] + box[3] >= guard[1] + guard[3] - 1 and _overlaps(box, guard)


def _in_depth(
    rng: np.random.Generator,
    zone: np.ndarray,
    look: Person,
    body: float,
    sprite: Image.Image,
    spot: tuple[int, int],
    guard: tuple[int, int, int, int],
) -> tuple[Image.Image, tuple[int, int]]:
    """A person drawn again at the size their depth gives, standing where they stood.

    If the larger figure would now touch Waldo from in front, another place
    is found for it (beside him, at worst).
    """
    height, width = zone.shape
    w, h = _size_1x(sprite)
    foot = (spot[0] + w / 2, float(spot[1] + h))
    sprite = _draw_person(look, body * _depth(foot[1], height))
    size = _size_1x(sprite)
    at = _stand(size, foot, (width, height))
    if _hits((*at, *size), guard):
        found = _spot(rng, zone, size, (_SAND, _PATH, _GRASS), guard=guard, force=True)
        assert found is not None  # force always finds a place
        at = found
    return sprite, at


def _alpha(sprite: Image.Image) -> np.ndarray:
    return np.asarray(sprite.getchannel("A")) > 0


def _hidden(
    waldo: Image.Image, at: tuple[int, int], cover: _Placed | None, alpha: np.ndarray | None = None
) -> float:
    """The share of Waldo's drawn pixels (at 3×) that ``cover``, drawn after him, hides."""
    if cover is None:
        return 0.0
    mine = _alpha(waldo)
    theirs = _alpha(cover.sprite) if alpha is None else alpha
    dx, dy = (cover.at[0] - at[0]) * _SS, (cover.at[1] - at[1]) * _SS
    hidden = np.zeros_like(mine)
    h, w = mine.shape
    th, tw = theirs.shape
    x0, y0 = max(dx, 0), max(dy, 0)
    x1, y1 = min(dx + tw, w), min(dy + th, h)
    if x1 <= x0 or y1 <= y0:
        return 0.0
    hidden[y0:y1, x0:x1] = theirs[y0 - dy : y1 - dy, x0 - dx : x1 - dx]
    return float(np.count_nonzero(hidden & mine)) / max(1, int(np.count_nonzero(mine)))


def _cover(
    rng: np.random.Generator,
    waldo: Image.Image,
    at: tuple[int, int],
    role: str | None,
    scene: tuple[int, int],
) -> _Placed | None:
    """Somebody (of ``role``, one of the crowd) or something standing in front of Waldo.

    Placed lower in the picture than him, so drawn after him, hiding between
    a tenth and a third of his pixels; None when no place does.
    """
    width, height = scene
    wx, wy = at
    ww, wh = _size_1x(waldo)
    if role is not None and rng.random() < 0.7:
        look = _look(rng, role)
        body = float(rng.uniform(26, 31) if look.child else rng.uniform(35, 42))
        sprite = _draw_person(look, body * _depth(wy + wh, height))
        kind = None
    else:
        kind = _pick(rng, ("bush", "windbreak", "deckchair"))
        colours, sprite = _THINGS[kind](rng, 1)
        look = None
    size = _size_1x(sprite)
    alpha = _alpha(sprite)
    for _ in range(80):
        foot = (
            wx + ww / 2 + float(rng.choice((-1.0, 1.0)) * rng.uniform(0.3, 1.2) * ww),
            float(wy + wh + int(rng.integers(0, max(2, wh // 3)))),
        )
        spot = _stand(size, foot, scene)
        item = _Placed(sprite, spot, person=look)
        if spot[1] + size[1] < wy + wh:
            continue  # not in front of him
        if 0.1 <= _hidden(waldo, at, item, alpha) <= _MOST_HIDDEN:
            if kind is not None:
                item = _Placed(sprite, spot, thing=(kind, colours, True))
            return item
    return None


def _degrade(rng: np.random.Generator, picture: Image.Image) -> tuple[Image.Image, str]:
    """The finished picture slightly blurred, or JPEG-compressed and decoded again."""
    if rng.random() < 0.5:
        radius = float(rng.uniform(0.5, 0.9))
        return picture.filter(ImageFilter.GaussianBlur(radius)), "blur"
    quality = int(rng.integers(45, 71))
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB"), "jpeg"


# ---------------------------------------------------------------- placement


@dataclass
class _Placed:
    sprite: Image.Image
    at: tuple[int, int]
    person: Person | None = None
    thing: tuple[str, tuple[str, ...], bool] | None = None

    @property
    def bottom(self) -> int:
        return self.at[1] + _size_1x(self.sprite)[1]


def _size_1x(sprite: Image.Image) -> tuple[int, int]:
    return (math.ceil(sprite.width / _SS), math.ceil(sprite.height / _SS))


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _spot(
    rng: np.random.Generator,
    zone: np.ndarray,
    size: tuple[int, int],
    zones: tuple[int, ...],
    *,
    guard: tuple[int, int, int, int] | None = None,
    around: tuple[float, float] | None = None,
    margin: int = 0,
    force: bool = False,
) -> tuple[int, int] | None:
    """A top-left corner whose foot stands in one of ``zones``, clear of ``guard``.

    ``guard`` is Waldo's box: whatever stands lower in the picture is drawn
    after him, so it must keep out of his box. Returns None when nothing fits
    (a thing is then left out), unless ``force``, which always finds a place.
    """
    height, width = zone.shape
    w, h = size
    if w + 2 * margin > width or h + 2 * margin > height:
        return None
    fallback = None
    for attempt in range(400):
        if around is not None and attempt < 40:
            x = int(round(around[0] - w / 2 + rng.normal(0, 40)))
            y = int(round(around[1] - h + rng.normal(0, 30)))
            x, y = min(max(x, margin), width - w - margin), min(max(y, margin), height - h - margin)
        else:
            x = int(rng.integers(margin, width - w - margin + 1))
            y = int(rng.integers(margin, height - h - margin + 1))
        if (
            guard is not None
            and y + h >= guard[1] + guard[3] - 1
            and _overlaps((x, y, w, h), guard)
        ):
            continue
        if fallback is None:
            fallback = (x, y)
        if zone[y + h - 1, x + w // 2] in zones:
            return x, y
    if fallback is not None or not force:
        return fallback
    # Never reached in practice; beside Waldo there is always room (160 > 2 widths).
    assert guard is not None
    gx, gy, gw, gh = guard
    x = gx - w if gx - w >= 0 else gx + gw
    return x, min(max(gy + gh - h, 0), height - h)


def _roles(crowd: int, difficulty: str = DEFAULT_DIFFICULTY) -> list[str]:
    """Who the crowd is: decoys first (so a small crowd still has some), then anybody.

    ``easy`` has no decoys with two of Waldo's traits, ``hard`` three times
    as many (at least one of each kind).
    """
    pairs = {"easy": (0.0, 0), "normal": (0.012, 0), "hard": (0.036, 1)}[difficulty]
    share = [
        ("stripes", 0.035, 1),
        ("bobble", 0.035, 1),
        ("glasses", 0.05, 1),
        ("stripes+glasses", *pairs),
        ("bobble+glasses", *pairs),
        ("stripes+bobble", *pairs),
    ]
    roles: list[str] = []
    for role, fraction, least in share:
        roles += [role] * max(least, round(crowd * fraction))
    roles = roles[:crowd]
    return roles + ["anybody"] * (crowd - len(roles))


def _ground_counts(scale: float) -> list[tuple[str, int]]:
    base = [
        ("towel", 16, 1),
        ("blanket", 5, 0),
        ("ball", 10, 1),
        ("bucket", 8, 0),
        ("sandcastle", 5, 0),
        ("flowers", 16, 1),
        ("swimmer", 10, 1),
    ]
    return [(kind, max(least, round(n * scale))) for kind, n, least in base]


def _standing_counts(scale: float) -> list[tuple[str, int]]:
    base = [
        ("umbrella", 12, 1),
        ("windbreak", 5, 1),
        ("deckchair", 8, 0),
        ("stall", 2, 0),
        ("bush", 9, 0),
        ("lamp", 5, 0),
        ("dog", 6, 0),
    ]
    return [(kind, max(least, round(n * scale))) for kind, n, least in base]


_ZONES: dict[str, tuple[int, ...]] = {
    "towel": (_SAND,),
    "blanket": (_GRASS,),
    "ball": (_SAND, _GRASS),
    "bucket": (_SAND,),
    "sandcastle": (_SAND,),
    "flowers": (_GRASS,),
    "swimmer": (_SEA,),
    "umbrella": (_SAND,),
    "windbreak": (_SAND,),
    "deckchair": (_SAND, _GRASS),
    "stall": (_PATH,),
    "bush": (_GRASS,),
    "lamp": (_PATH,),
    "dog": (_SAND, _PATH, _GRASS),
}


# ---------------------------------------------------------------- the ground


def _smooth_noise(rng: np.random.Generator, width: int, height: int, cell: int) -> np.ndarray:
    """Values in about [0, 1] that change smoothly over ``cell`` pixels."""
    gw, gh = width // cell + 4, height // cell + 4
    grid = rng.random((gh, gw)).astype(np.float32)
    big = Image.fromarray(grid).resize((gw * cell, gh * cell), Image.Resampling.BICUBIC)
    return np.asarray(big, dtype=np.float32)[cell : cell + height, cell : cell + width]


def _ground(rng: np.random.Generator, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """The background, (H, W, 3) uint8, and which zone every pixel is (sea, sand, ...)."""
    ys = np.arange(height, dtype=np.float32)[:, None]
    xs = np.arange(width, dtype=np.float32)[None, :]
    phase = rng.random(4).astype(np.float32) * np.float32(2 * np.pi)
    shore = height * (
        0.11
        + 0.02 * np.sin(2 * np.pi * xs / (0.9 * width) + phase[0])
        + 0.01 * np.sin(2 * np.pi * xs / (0.21 * width) + phase[1])
    )
    shore = np.maximum(shore, 10.0)
    middle = height * (0.6 + 0.08 * float(rng.random()))
    prom = middle + height * 0.05 * np.sin(2 * np.pi * xs / (1.3 * width) + phase[2])
    half = max(9.0, height * 0.042)

    zone = np.full((height, width), _SAND, np.uint8)
    lumps = _smooth_noise(rng, width, height, max(20, min(width, height) // 6))
    park = ys > prom + half
    zone[park & (lumps < 0.72)] = _GRASS
    zone[np.abs(ys - prom) <= half] = _PATH
    zone[ys < shore] = _SEA

    fine = rng.normal(0.0, 1.0, (height, width)).astype(np.float32)
    mid = _smooth_noise(rng, width, height, 14) - np.float32(0.5)
    pixels = np.zeros((height, width, 3), np.float32)

    # sand: warm, blotchy, speckled with shells and pebbles, darker where wet
    sand = np.array([226, 204, 154], np.float32) + (mid * 26 + fine * 6)[:, :, None]
    wet = np.clip(1 - (ys - shore) / (0.05 * height), 0, 1)[:, :, None]
    sand = sand * (1 - 0.16 * wet)
    speck = rng.random((height, width))
    sand[speck < 0.012] -= 45
    sand[speck > 0.994] += 30

    # sea: deep to shallow, with rows of wave crests and foam at the shore
    depth = np.clip((shore - ys) / np.maximum(shore, 1), 0, 1)[:, :, None]
    sea = (
        np.array([70, 172, 196], np.float32) * (1 - depth)
        + np.array([26, 88, 160], np.float32) * depth
    ) + (fine * 4)[:, :, None]
    crest = np.sin(xs / 7.0 + ys * 1.7 + mid * 9) * np.sin(xs / 31.0 - ys * 0.3 + phase[3])
    sea[crest > 0.8] = sea[crest > 0.8] * 0.4 + np.float32(0.6 * 235)
    foam = (shore - ys >= 0) & (shore - ys < 2.2 + 1.5 * mid + 0.8 * fine)
    sea[foam] = (238, 244, 244)

    # grass: mown stripes, light and dark patches, blades
    mown = np.where((xs // 24 + ys // 48) % 2 == 0, 6.0, -6.0).astype(np.float32)
    grass = (
        np.array([88, 158, 64], np.float32)
        + (mid * 50 + mown)[:, :, None]
        + (fine * 9)[:, :, None] * np.array([0.6, 1.0, 0.5], np.float32)
    )
    grass[speck < 0.05] = grass[speck < 0.05] * 0.72
    grass[speck > 0.975] = grass[speck > 0.975] * 1.15 + 12

    # promenade: bricks of three tones, mortar lines, a kerb along both edges
    bh, bw = 6, 13
    row = (ys // bh).astype(np.int64)
    offset = (row % 2) * (bw // 2)
    col = ((xs + offset) // bw).astype(np.int64)
    tones = np.array([[196, 176, 160], [170, 150, 140], [200, 130, 100]], np.float32)
    table = rng.integers(0, 3, (height // bh + 2, width // bw + 3))
    shades = rng.normal(0, 8, (height // bh + 2, width // bw + 3)).astype(np.float32)
    bricks = tones[table[row, col]] + (shades[row, col] + fine * 4)[:, :, None]
    mortar = ((ys % bh) == 0) | (((xs + offset) % bw) == 0)
    bricks[np.broadcast_to(mortar, (height, width))] = (128, 118, 110)
    kerb = np.abs(np.abs(ys - prom) - half) < 1.6
    bricks[kerb] = (222, 222, 214)

    for kind, layer in ((_SAND, sand), (_SEA, sea), (_GRASS, grass), (_PATH, bricks)):
        pixels[zone == kind] = layer[zone == kind] if layer.ndim == 3 else layer
    return np.clip(pixels + 0.5, 0, 255).astype(np.uint8), zone
