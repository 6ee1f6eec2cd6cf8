"""Make a "Where's Waldo" puzzle: a busy crowd scene with exactly one Waldo in it.

``render_puzzle`` draws a seaside scene (sea, beach, promenade, park) full of small
people and things with Pillow's ``ImageDraw``, hides one Waldo (red-and-white
striped shirt, red-and-white bobble hat, round glasses) among decoys that share
some of his traits, and cuts the template out of the finished scene at his box.
``write_puzzle`` saves ``scene.png``, ``waldo.png`` and ``answer.json``.

This module is a renderer, like ``render.py``, so it imports Pillow. It uses no
text, no clock and no hash order: one seed, size and crowd always give the same
pixels, and the same bytes on disk.

Everything is drawn at three times the final size and box-averaged down, so
edges are smooth; box averaging never carries a pixel outside its own 3×3 block,
which is what lets us promise that nothing is drawn over Waldo's box.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from waldo_cli.errors import OutputError, WaldoError
from waldo_cli.io import check_output_path, write_atomically

DEFAULT_SIZE = (960, 640)
DEFAULT_CROWD = 200
MIN_SIZE = (160, 120)
FILES = {"scene": "scene.png", "template": "waldo.png", "answer": "answer.json"}

RGB = tuple[int, int, int]

#: Every colour a person or a thing is described with, by name.
PALETTE: dict[str, RGB] = {
    "red": (214, 30, 36), "white": (250, 248, 242), "crimson": (150, 22, 44),
    "pink": (242, 134, 172), "coral": (250, 122, 92), "orange": (244, 140, 30),
    "yellow": (250, 208, 40), "cream": (244, 230, 190), "lime": (160, 210, 60),
    "green": (40, 150, 70), "olive": (110, 120, 50), "mint": (150, 225, 190),
    "teal": (20, 138, 140), "turquoise": (60, 200, 210), "sky": (120, 190, 240),
    "blue": (40, 90, 200), "navy": (30, 40, 92), "purple": (120, 60, 160),
    "lilac": (190, 160, 222), "magenta": (200, 40, 140), "brown": (118, 74, 40),
    "tan": (200, 160, 110), "khaki": (180, 170, 120), "grey": (140, 140, 146),
    "charcoal": (60, 60, 66), "black": (28, 28, 32), "denim": (52, 84, 152),
    "straw": (228, 196, 120), "leaf": (52, 128, 56), "wood": (150, 100, 58),
}
_SHIRTS = ("red", "white", "crimson", "pink", "coral", "orange", "yellow", "cream", "lime",
           "green", "olive", "mint", "teal", "turquoise", "sky", "blue", "navy", "purple",
           "lilac", "magenta", "brown", "grey", "charcoal", "black")
_STRIPE_GROUNDS = ("white", "cream", "navy", "black", "yellow", "sky")
_LEGS = ("denim", "navy", "black", "charcoal", "khaki", "tan", "brown", "grey", "olive",
         "white", "cream", "denim", "blue")
_SKINS: tuple[RGB, ...] = ((255, 222, 180), (241, 194, 140), (226, 172, 112),
                           (198, 134, 80), (150, 94, 52), (98, 62, 36), (255, 228, 206))
_HAIR: dict[str, RGB] = {"black": (34, 28, 28), "dark brown": (74, 46, 28),
                         "brown": (124, 80, 42), "blond": (226, 190, 108),
                         "ginger": (192, 92, 38), "grey": (168, 168, 168),
                         "white": (236, 236, 230)}
_INK: RGB = (34, 28, 30)  # outlines and glasses

_SS = 3  # drawn at 3x, then box-averaged: smooth edges, no bleeding between 3x3 blocks
_SEA, _SAND, _PATH, _GRASS = 0, 1, 2, 3
_REFERENCE_AREA = DEFAULT_SIZE[0] * DEFAULT_SIZE[1]


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
    """

    scene: Image.Image
    template: Image.Image
    box: tuple[int, int, int, int]
    seed: int
    size: tuple[int, int]
    crowd: int
    people: tuple[Person, ...]
    things: tuple[Thing, ...]

    @property
    def waldo(self) -> Person:
        """The one person with all three of Waldo's traits."""
        return next(p for p in self.people if p.is_waldo)

    def answer(self) -> dict[str, Any]:
        """The content of ``answer.json``: Waldo's box and what made the puzzle.

        >>> render_puzzle(3, size=(160, 120), crowd=2).answer()["size"]
        [160, 120]
        """
        x, y, width, height = self.box
        return {"x": x, "y": y, "width": width, "height": height, "seed": self.seed,
                "size": [self.size[0], self.size[1]], "crowd": self.crowd}


def parse_size(text: str) -> tuple[int, int]:
    """Read a size written ``WxH`` (``960x640``) and check it can hold a crowd.

    Parameters
    ----------
    text : str
        Width and height in pixels, separated by ``x`` (or ``×``).

    Returns
    -------
    (width, height)

    Raises
    ------
    WaldoError
        Malformed text, or a size below `MIN_SIZE`.

    Examples
    --------
    >>> parse_size("960x640")
    (960, 640)
    """
    match = re.fullmatch(r"\s*(\d{1,6})\s*[xX×]\s*(\d{1,6})\s*", text)
    if not match:
        raise WaldoError(f"size {text!r}: expected WIDTHxHEIGHT in pixels, such as 960x640")
    size = (int(match.group(1)), int(match.group(2)))
    _check_size(size)
    return size


def _check_size(size: tuple[int, int]) -> None:
    width, height = size
    if width < MIN_SIZE[0] or height < MIN_SIZE[1]:
        raise WaldoError(f"size {width}x{height} is too small to hold a crowd: "
                         f"at least {MIN_SIZE[0]}x{MIN_SIZE[1]}")
    if width * height > 12_000_000:  # drawing takes about 150 bytes a pixel: 1.8 GB here
        raise WaldoError(f"size {width}x{height} is too large: at most 12 megapixels")


def render_puzzle(seed: int, size: tuple[int, int] = DEFAULT_SIZE,
                  crowd: int = DEFAULT_CROWD) -> Puzzle:
    """Draw a crowd scene with one Waldo hidden in it.

    Parameters
    ----------
    seed : int
        Non-negative; the same seed, size and crowd give the same pixels.
    size : (width, height)
        Of the scene, at least `MIN_SIZE`. People are drawn at the same scale
        whatever the size (about 16–24 pixels wide and 30–48 high).
    crowd : int
        How many people besides Waldo (0 or more). Among them, in proportion,
        are decoys: red-and-white striped shirts without the hat, red-and-white
        bobble hats without the shirt, round glasses, and a few with two of
        Waldo's three traits.

    Returns
    -------
    Puzzle
        The scene, the template cut from it at Waldo's box, the box, and
        everybody and everything drawn.

    Raises
    ------
    WaldoError
        A negative seed or crowd, or a size out of range.

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
    size = (int(size[0]), int(size[1]))
    _check_size(size)
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
    waldo_sprite = _draw_person(waldo_look, float(rng.uniform(37, 41)))
    waldo_at = _spot(rng, zone, _size_1x(waldo_sprite), (_SAND, _PATH, _GRASS), margin=2)
    assert waldo_at is not None  # the scene is larger than a person and mostly ground
    wx, wy = waldo_at
    ww, wh = _size_1x(waldo_sprite)
    guard = (wx - 1, wy - 1, ww + 2, wh + 2)
    standing: list[_Placed] = [_Placed(waldo_sprite, waldo_at, person=waldo_look)]

    for kind, count in _standing_counts(scale):
        for k in range(count):
            colours, sprite = _THINGS[kind](rng, k)
            spot = _spot(rng, zone, _size_1x(sprite), _ZONES[kind], guard=guard)
            if spot is not None:
                standing.append(_Placed(sprite, spot, thing=(kind, colours, True)))

    roles = _roles(crowd)
    roles = [roles[i] for i in rng.permutation(len(roles))]
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
        spot = _spot(rng, zone, _size_1x(sprite), (_SAND, _PATH, _GRASS), guard=guard,
                     around=around, force=True)
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
    box = (wx, wy, ww, wh)
    template = final.crop((wx, wy, wx + ww, wy + wh))
    return Puzzle(scene=final, template=template, box=box, seed=int(seed), size=size,
                  crowd=int(crowd), people=tuple(people), things=tuple(things))


def check_outdir(outdir: str | os.PathLike[str]) -> Path:
    """Refuse an output folder before any work is done.

    Parameters
    ----------
    outdir : path-like
        Where the puzzle goes. It may exist (its puzzle files are then
        overwritten); if it does not, its parent folder must.

    Returns
    -------
    Path
        The folder.

    Raises
    ------
    OutputError
        The parent folder does not exist, ``outdir`` is a file, or one of the
        puzzle's file names is taken by a folder.

    Examples
    --------
    >>> import tempfile
    >>> check_outdir(os.path.join(tempfile.mkdtemp(), "puzzle")).name
    'puzzle'
    """
    folder = Path(outdir)
    if folder.exists():
        if not folder.is_dir():
            raise OutputError(f"{folder}: is a file, not a folder")
        for name in FILES.values():
            check_output_path(folder / name, image=name.endswith(".png"))
        return folder
    parent = folder.parent if str(folder.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"{folder}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"{folder}: the folder {parent} is not writable")
    return folder


def write_puzzle(outdir: str | os.PathLike[str], puzzle: Puzzle) -> dict[str, Path]:
    """Write ``scene.png``, ``waldo.png`` and ``answer.json`` into a folder.

    The folder is created if it does not exist (its parent must). Every file
    is written to a temporary name and renamed into place, so an interrupted
    run leaves whole files; existing puzzle files are overwritten. PNGs are
    saved with fixed options and no metadata, so a seed always gives the
    same bytes.

    Parameters
    ----------
    outdir : path-like
        The folder.
    puzzle : Puzzle
        What to write.

    Returns
    -------
    dict of str to Path
        ``{"scene": ..., "template": ..., "answer": ...}``.

    Raises
    ------
    OutputError
        The folder cannot be made or written (see `check_outdir`).

    Examples
    --------
    >>> import tempfile
    >>> paths = write_puzzle(os.path.join(tempfile.mkdtemp(), "p"),
    ...                      render_puzzle(2, size=(160, 120), crowd=3))
    >>> sorted(p.name for p in paths.values())
    ['answer.json', 'scene.png', 'waldo.png']
    """
    folder = check_outdir(outdir)
    try:
        folder.mkdir(exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{folder}: cannot create the folder ({exc.strerror or exc})") from None
    paths = {key: folder / name for key, name in FILES.items()}
    answer = (json.dumps(puzzle.answer(), separators=(",", ":")) + "\n").encode("ascii")
    write_atomically(paths["scene"], lambda fh: _save_png(puzzle.scene, fh))
    write_atomically(paths["template"], lambda fh: _save_png(puzzle.template, fh))
    write_atomically(paths["answer"], lambda fh: fh.write(answer))
    return paths


def _save_png(picture: Image.Image, fh: Any) -> None:
    # Fixed options, a fresh image with no info: no timestamps, no text chunks.
    clean = Image.frombytes(picture.mode, picture.size, picture.tobytes())
    clean.save(fh, format="PNG", compress_level=9, optimize=False)


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


def _spot(rng: np.random.Generator, zone: np.ndarray, size: tuple[int, int],
          zones: tuple[int, ...], *, guard: tuple[int, int, int, int] | None = None,
          around: tuple[float, float] | None = None, margin: int = 0,
          force: bool = False) -> tuple[int, int] | None:
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
        in_front = guard is not None and y + h >= guard[1] + guard[3] - 1
        if in_front and _overlaps((x, y, w, h), guard):
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


def _roles(crowd: int) -> list[str]:
    """Who the crowd is: decoys first (so a small crowd still has some), then anybody."""
    share = [("stripes", 0.035, 1), ("bobble", 0.035, 1), ("glasses", 0.05, 1),
             ("stripes+glasses", 0.012, 0), ("bobble+glasses", 0.012, 0),
             ("stripes+bobble", 0.012, 0)]
    roles: list[str] = []
    for role, fraction, least in share:
        roles += [role] * max(least, round(crowd * fraction))
    roles = roles[:crowd]
    return roles + ["anybody"] * (crowd - len(roles))


def _ground_counts(scale: float) -> list[tuple[str, int]]:
    base = [("towel", 16, 1), ("blanket", 5, 0), ("ball", 10, 1), ("bucket", 8, 0),
            ("sandcastle", 5, 0), ("flowers", 16, 1), ("swimmer", 10, 1)]
    return [(kind, max(least, round(n * scale))) for kind, n, least in base]


def _standing_counts(scale: float) -> list[tuple[str, int]]:
    base = [("umbrella", 12, 1), ("windbreak", 5, 1), ("deckchair", 8, 0), ("stall", 2, 0),
            ("bush", 9, 0), ("lamp", 5, 0), ("dog", 6, 0)]
    return [(kind, max(least, round(n * scale))) for kind, n, least in base]


_ZONES: dict[str, tuple[int, ...]] = {
    "towel": (_SAND,), "blanket": (_GRASS,), "ball": (_SAND, _GRASS), "bucket": (_SAND,),
    "sandcastle": (_SAND,), "flowers": (_GRASS,), "swimmer": (_SEA,), "umbrella": (_SAND,),
    "windbreak": (_SAND,), "deckchair": (_SAND, _GRASS), "stall": (_PATH,),
    "bush": (_GRASS,), "lamp": (_PATH,), "dog": (_SAND, _PATH, _GRASS),
}


# ---------------------------------------------------------------- the ground


def _smooth_noise(rng: np.random.Generator, width: int, height: int, cell: int) -> np.ndarray:
    """Values in about [0, 1] that change smoothly over ``cell`` pixels."""
    gw, gh = width // cell + 4, height // cell + 4
    grid = rng.random((gh, gw)).astype(np.float32)
    big = Image.fromarray(grid).resize((gw * cell, gh * cell), Image.Resampling.BICUBIC)
    return np.asarray(big, dtype=np.float32)[cell:cell + height, cell:cell + width]


def _ground(rng: np.random.Generator, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """The background, (H, W, 3) uint8, and which zone every pixel is (sea, sand, ...)."""
    ys = np.arange(height, dtype=np.float32)[:, None]
    xs = np.arange(width, dtype=np.float32)[None, :]
    phase = rng.random(4).astype(np.float32) * np.float32(2 * np.pi)
    shore = height * (0.11 + 0.02 * np.sin(2 * np.pi * xs / (0.9 * width) + phase[0])
                      + 0.01 * np.sin(2 * np.pi * xs / (0.21 * width) + phase[1]))
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
    sea = (np.array([70, 172, 196], np.float32) * (1 - depth)
           + np.array([26, 88, 160], np.float32) * depth) + (fine * 4)[:, :, None]
    crest = np.sin(xs / 7.0 + ys * 1.7 + mid * 9) * np.sin(xs / 31.0 - ys * 0.3 + phase[3])
    sea[crest > 0.8] = sea[crest > 0.8] * 0.4 + np.float32(0.6 * 235)
    foam = (shore - ys >= 0) & (shore - ys < 2.2 + 1.5 * mid + 0.8 * fine)
    sea[foam] = (238, 244, 244)

    # grass: mown stripes, light and dark patches, blades
    mown = np.where((xs // 24 + ys // 48) % 2 == 0, 6.0, -6.0).astype(np.float32)
    grass = (np.array([88, 158, 64], np.float32) + (mid * 50 + mown)[:, :, None]
             + (fine * 9)[:, :, None] * np.array([0.6, 1.0, 0.5], np.float32))
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


# ---------------------------------------------------------------- drawing helpers


class _Pen:
    """Draws on a sprite in body units: x from the middle, y down from the head."""

    def __init__(self, image: Image.Image, cx: float, top: float, unit: float):
        self.image, self.cx, self.top, self.u = image, cx, top, unit
        self.draw = ImageDraw.Draw(image)

    def at(self, x: float, y: float) -> tuple[float, float]:
        return (self.cx + x * self.u, self.top + y * self.u)

    def box(self, x0: float, y0: float, x1: float, y1: float) -> list[float]:
        return [self.cx + x0 * self.u, self.top + y0 * self.u,
                self.cx + x1 * self.u, self.top + y1 * self.u]

    def px(self, units: float) -> int:
        return max(1, round(units * self.u))


def _paint(image: Image.Image, mask: Image.Image, colours: Sequence[RGB], stripe: float = 0,
           origin: float = 0, vertical: bool = False) -> None:
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


# ---------------------------------------------------------------- people


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
    hat = _pick(rng, ("none", "none", "none", "none", "cap", "cap", "sunhat", "beanie",
                      "bobble"))
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
    glasses = _pick(rng, ("none", "none", "none", "none", "none", "sunglasses", "sunglasses",
                          "square", "round"))
    hair_style = _pick(rng, ("short", "short", "long", "curly", "bun", "bald"))
    if child and hair_style == "bald":
        hair_style = "short"
    legs = _pick(rng, ("trousers", "trousers", "trousers", "shorts", "shorts", "skirt"))
    arms_pick = float(rng.random())
    arms = (("down", "down") if arms_pick < 0.7 else ("down", "up") if arms_pick < 0.8
            else ("up", "down") if arms_pick < 0.88 else ("hip", "hip") if arms_pick < 0.95
            else ("hip", "down"))
    look = Person(
        box=(0, 0, 0, 0), order=-1, shirt="stripes" if stripes else "plain",
        shirt_colours=shirt_colours, hat=hat, hat_colours=hat_colours, glasses=glasses,
        facing=facing, hair=_pick(rng, tuple(_HAIR)), hair_style=hair_style, legs=legs,
        legs_colour=_pick(rng, _LEGS) if legs == "trousers" else _pick(rng, _SHIRTS),
        sleeves=_pick(rng, ("short", "short", "long")),
        bag=_pick(rng, ("none", "none", "none", "backpack", "shoulder bag")),
        arms=arms, stride=_pick(rng, ("stand", "walk")),
        shoes=_pick(rng, ("black", "brown", "white", "charcoal", "navy", "red")),
        bag_colour=_pick(rng, ("brown", "black", "tan", "navy", "magenta", "orange", "blue",
                               "green", "purple")),
        skin=int(rng.integers(len(_SKINS))), child=child,
    )
    if role == "waldo":
        return replace(look, shirt="stripes", shirt_colours=("red", "white"), hat="bobble",
                       hat_colours=("red", "white"), glasses="round", facing="front",
                       hair="brown", hair_style="short", legs="trousers", legs_colour="denim",
                       sleeves="long", bag="none", shoes="wood", skin=0, child=False)
    wanted = set(role.split("+"))
    if "stripes" in wanted:
        look = replace(look, shirt="stripes",
                       shirt_colours=_pick(rng, (("red", "white"), ("white", "red"))))
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
            d.polygon([pen.at(side * 0.5, 55), pen.at(side * 12.5, 55),
                       pen.at(side * 12.5 + f * (foot + side * 5 - side * 12.5), end),
                       pen.at(side * 1.0 + f * (foot - side * 4.5 - side * 1.0), end)], fill=legs)
        d.ellipse(pen.box(foot - 5.5 + side * 1.5, 91, foot + 5.5 + side * 1.5, 100), fill=shoes)
    if p.legs in ("trousers", "shorts"):
        d.rectangle(pen.box(-12.5, 54, 12.5, 62), fill=legs)
    else:
        d.polygon([pen.at(-12.5, 54), pen.at(12.5, 54), pen.at(17, 77), pen.at(-17, 77)],
                  fill=legs)

    arms = [_arm(-1, p.arms[0]), _arm(1, p.arms[1])]
    for arm in arms:
        d.line([pen.at(*q) for q in arm], fill=skin, width=pen.px(6), joint="curve")
        hx, hy = arm[-1]
        d.ellipse(pen.box(hx - 3.3, hy - 3.3, hx + 3.3, hy + 3.3), fill=skin)

    mask = Image.new("L", size, 0)
    m = ImageDraw.Draw(mask)
    m.polygon([pen.at(-13.5, 22), pen.at(13.5, 22), pen.at(12.8, 58), pen.at(-12.8, 58)],
              fill=255)
    for side in (-1, 1):
        m.ellipse(pen.box(side * 13.5 - 4.5, 21, side * 13.5 + 4.5, 30), fill=255)
    sleeve = 0.9 if p.sleeves == "long" else 0.38
    for arm in arms:
        m.line([pen.at(*q) for q in _part_of(arm, sleeve)], fill=255, width=pen.px(7.4),
               joint="curve")
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
                d.line([pen.at(side * 7, 22.5), pen.at(side * 8.5, 48)], fill=_darker(bag),
                       width=pen.px(2.2))

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
            d.ellipse(pen.box(side * 4.6 - 3.7, 6.6, side * 4.6 + 3.7, 14), outline=_INK,
                      width=pen.px(1.4))
        d.line([pen.at(-1.0, 10), pen.at(1.0, 10)], fill=_INK, width=pen.px(1.2))
    elif kind == "square":
        for side in (-1, 1):
            d.rectangle(pen.box(side * 4.6 - 3.6, 7.6, side * 4.6 + 3.6, 12.6), outline=_INK,
                        width=pen.px(1.2))
        d.line([pen.at(-1.0, 10), pen.at(1.0, 10)], fill=_INK, width=pen.px(1.2))
    elif kind == "sunglasses":
        for side in (-1, 1):
            d.rounded_rectangle(pen.box(side * 4.6 - 3.8, 7.8, side * 4.6 + 3.8, 12.8),
                                radius=pen.px(1.5), fill=(18, 18, 24))
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
        d.ellipse(pen.box(min(0, side * 17), 3, max(0, side * 17), 7.5),
                  fill=_darker(colours[0], 0.85))
    elif p.hat == "sunhat":
        d.ellipse(pen.box(-17, 2.5, 17, 8.5), fill=colours[0])
        d.chord(pen.box(-8.5, -5, 8.5, 13), 180, 360, fill=colours[0])
        d.rectangle(pen.box(-8.5, 1.5, 8.5, 4), fill=colours[1])


# ---------------------------------------------------------------- things


def _canvas(width: float, height: float) -> tuple[Image.Image, ImageDraw.ImageDraw, float, float]:
    w, h = max(1, round(width * _SS)), max(1, round(height * _SS))
    image = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    return image, ImageDraw.Draw(image), w, h


_UMBRELLAS = (("blue", "white"), ("yellow", "orange"), ("green", "white"),
              ("turquoise", "white"), ("pink", "white"), ("navy", "yellow"),
              ("orange", "white"), ("purple", "lilac"), ("red", "yellow"), ("lime", "green"),
              ("crimson", "cream"))


def _decoy_colours(rng: np.random.Generator, k: int, odds: float,
                   others: Sequence[tuple[str, ...]]) -> tuple[str, ...]:
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
    d.line([(w / 2, canopy * 0.4), (w / 2 + tilt, h - 1)], fill=(236, 236, 230),
           width=max(2, _SS))
    segments = 8
    for i in range(segments):
        d.pieslice([0, 0, w - 1, 2 * canopy], 180 + i * 180 / segments,
                   180 + (i + 1) * 180 / segments, fill=_c(colours[i % 2]))
        x0 = i * (w - 1) / segments
        d.chord([x0, canopy - 0.05 * w, x0 + (w - 1) / segments, canopy + 0.05 * w], 0, 180,
                fill=_c(colours[i % 2]))
    d.ellipse([w / 2 - 0.03 * w, -0.01 * w, w / 2 + 0.03 * w, 0.05 * w], fill=_c("white"))
    return colours, _finish(image)


def _windbreak(rng: np.random.Generator, k: int) -> tuple[tuple[str, ...], Image.Image]:
    colours = _decoy_colours(rng, k, 0.35, (("blue", "yellow", "red", "green"),
                                            ("orange", "white"), ("navy", "white"),
                                            ("green", "yellow"), ("purple", "pink", "sky")))
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
    colours = _decoy_colours(rng, k + 1, 0.3, (("blue", "white"), ("green", "white"),
                                               ("orange", "yellow"), ("navy", "sky")))
    image, d, w, h = _canvas(float(rng.uniform(16, 20)), float(rng.uniform(20, 24)))
    wood = _c("wood")
    d.line([(0.1 * w, 0.05 * h), (0.8 * w, h - 1)], fill=wood, width=_SS)
    d.line([(0.95 * w, 0.45 * h), (0.3 * w, h - 1)], fill=wood, width=_SS)
    mask = Image.new("L", image.size, 0)
    ImageDraw.Draw(mask).polygon([(0.12 * w, 0.04 * h), (0.42 * w, 0.04 * h),
                                  (0.98 * w, 0.62 * h), (0.62 * w, 0.7 * h)], fill=255)
    _paint(image, mask, [_c(c) for c in colours], stripe=1.6 * _SS, vertical=True)
    return colours, _finish(image)


def _stall(rng: np.random.Generator, k: int) -> tuple[tuple[str, ...], Image.Image]:
    colours = _decoy_colours(rng, k, 0.4, (("blue", "white"), ("green", "white"),
                                           ("pink", "white"), ("yellow", "orange")))
    image, d, w, h = _canvas(float(rng.uniform(64, 80)), float(rng.uniform(56, 64)))
    body = _c(_pick(rng, ("cream", "mint", "sky", "pink", "white", "yellow")))
    d.rectangle([0.04 * w, 0.42 * h, 0.96 * w, h - 1], fill=body)
    d.rectangle([0.12 * w, 0.46 * h, 0.88 * w, 0.7 * h], fill=(60, 48, 44))
    d.rectangle([0.06 * w, 0.7 * h, 0.94 * w, 0.76 * h], fill=_c("wood"))
    for i in range(7):
        x = (0.16 + i * 0.11) * w
        d.ellipse([x, 0.62 * h, x + 0.06 * w, 0.7 * h],
                  fill=_c(("pink", "cream", "brown", "mint", "yellow", "lilac", "white")[i]))
    mask = Image.new("L", image.size, 0)
    md = ImageDraw.Draw(mask)
    md.rectangle([0, 0.18 * h, w - 1, 0.36 * h], fill=255)
    stripes = 10
    for i in range(stripes):
        x0 = i * w / stripes
        md.chord([x0, 0.3 * h, x0 + w / stripes, 0.44 * h], 0, 180, fill=255)
    _paint(image, mask, [_c(c) for c in colours], stripe=w / stripes, vertical=True)
    d.rectangle([0.1 * w, 0, 0.9 * w, 0.16 * h], fill=_c(_pick(rng, ("red", "blue", "navy",
                                                                        "yellow", "green"))))
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
        d.ellipse([x - r, y - r, x + r, y + r], fill=_pick(rng, greens),
                  outline=(30, 80, 36), width=_SS // 2 + 1)
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
    d.polygon([(0.15 * w, 0.04 * h), (0.85 * w, 0.04 * h), (0.7 * w, 0.13 * h),
               (0.3 * w, 0.13 * h)], fill=(250, 236, 160))
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
    d.ellipse([min(fx(0.68), fx(0.8)), 0.05 * h, max(fx(0.68), fx(0.8)), 0.42 * h],
              fill=_darker(fur, 0.6))
    d.line([(fx(0.14), 0.45 * h), (fx(0.0), 0.15 * h)], fill=fur, width=_SS)
    return (colour,), _finish(image)


def _towel(rng: np.random.Generator, k: int) -> tuple[tuple[str, ...], Image.Image]:
    colours = _decoy_colours(rng, k, 0.3, (("blue", "white"), ("yellow", "orange", "pink"),
                                           ("green", "white"), ("turquoise", "navy"),
                                           ("purple", "white"), ("orange", "white")))
    long_side, short_side = float(rng.uniform(34, 48)), float(rng.uniform(16, 22))
    upright = rng.random() < 0.5
    image, d, w, h = _canvas(*((short_side, long_side) if upright else (long_side, short_side)))
    mask = Image.new("L", image.size, 255)
    _paint(image, mask, [_c(c) for c in colours], stripe=3 * _SS, vertical=not upright)
    return colours, _finish(image, (140, 120, 100))


def _blanket(rng: np.random.Generator, k: int) -> tuple[tuple[str, ...], Image.Image]:
    colour = "red" if k == 0 or rng.random() < 0.4 else _pick(rng, ("blue", "green", "navy",
                                                                    "orange"))
    image, _, w, h = _canvas(float(rng.uniform(40, 56)), float(rng.uniform(26, 36)))
    check = 4 * _SS
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
        d.pieslice([0, 0, w - 1, h - 1], start + 60 * i, start + 60 * (i + 1),
                   fill=_c(colours[i]))
    d.ellipse([0.4 * w, 0.4 * h, 0.6 * w, 0.6 * h], fill=_c("white"))
    return colours, _finish(image)


def _bucket(rng: np.random.Generator, k: int) -> tuple[tuple[str, ...], Image.Image]:
    colour = _pick(rng, ("red", "yellow", "blue", "green", "pink", "orange"))
    image, d, w, h = _canvas(14, 12)
    c = _c(colour)
    d.polygon([(0.05 * w, 0.3 * h), (0.6 * w, 0.3 * h), (0.52 * w, h - 1), (0.13 * w, h - 1)],
              fill=c)
    d.rectangle([0.02 * w, 0.26 * h, 0.63 * w, 0.36 * h], fill=_darker(c, 0.8))
    d.arc([0.05 * w, 0.0, 0.6 * w, 0.6 * h], 180, 360, fill=(40, 40, 40), width=_SS // 2 + 1)
    d.line([(0.7 * w, 0.95 * h), (0.95 * w, 0.2 * h)], fill=_c("yellow"), width=_SS)
    d.polygon([(0.62 * w, h - 1), (0.82 * w, h - 1), (0.8 * w, 0.72 * h), (0.66 * w, 0.7 * h)],
              fill=_c("blue"))
    return (colour,), _finish(image)


def _sandcastle(rng: np.random.Generator, k: int) -> tuple[tuple[str, ...], Image.Image]:
    image, d, w, h = _canvas(float(rng.uniform(18, 26)), 16)
    sand = (200, 168, 112)
    d.rectangle([0.05 * w, 0.45 * h, 0.95 * w, h - 1], fill=sand)
    for x in (0.05, 0.38, 0.7):
        d.rectangle([x * w, 0.2 * h, (x + 0.25) * w, 0.5 * h], fill=_darker(sand, 0.92))
        for j in range(3):
            d.rectangle([(x + j * 0.09) * w, 0.12 * h, (x + j * 0.09 + 0.06) * w, 0.22 * h],
                        fill=_darker(sand, 0.92))
    d.line([(0.52 * w, 0.45 * h), (0.52 * w, 0.0)], fill=_c("wood"), width=max(1, _SS // 2))
    flag = _pick(rng, ("red", "blue", "yellow", "green"))
    d.polygon([(0.52 * w, 0), (0.72 * w, 0.08 * h), (0.52 * w, 0.16 * h)], fill=_c(flag))
    return ("tan", flag), _finish(image, (150, 120, 80))


def _flowers(rng: np.random.Generator, k: int) -> tuple[tuple[str, ...], Image.Image]:
    colours = (_pick(rng, ("red", "pink", "yellow", "white", "purple", "orange", "magenta")),
               _pick(rng, ("yellow", "white", "lilac", "coral")))
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
    d.chord([0.28 * w, -0.02 * h, 0.72 * w, 0.5 * h], 180, 360,
            fill=_c(_pick(rng, ("black", "brown", "blue", "pink", "white"))))
    return (ring,), _finish(image, (20, 60, 100))


_THINGS: dict[str, Callable[[np.random.Generator, int], tuple[tuple[str, ...], Image.Image]]] = {
    "umbrella": _umbrella, "windbreak": _windbreak, "deckchair": _deckchair, "stall": _stall,
    "bush": _bush, "lamp": _lamp, "dog": _dog, "towel": _towel, "blanket": _blanket,
    "ball": _ball, "bucket": _bucket, "sandcastle": _sandcastle, "flowers": _flowers,
    "swimmer": _swimmer,
}
