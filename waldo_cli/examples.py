"""Examples to learn a filter from: scenes with boxes, crops, and images without the target.

An EXAMPLE given to ``waldo learn`` (or ``learn_filter``) is one of:

* an image file: the whole image is one example of the target (a crop);
* a folder holding ``answer.json``, or an ``answer.json`` file itself: a
  scene and the boxes of the target in it. Everything in the scene outside
  the boxes is a negative (it is not the target).

``answer.json`` is what ``waldo demo`` writes, one box::

    {"x": 127, "y": 285, "width": 21, "height": 47}

or, for scenes of your own, any number of boxes and the scene's file name
(relative to the folder of ``answer.json``; default ``scene.png``)::

    {"scene": "beach.jpg",
     "boxes": [{"x": 127, "y": 285, "width": 21, "height": 47},
               {"x": 640, "y": 90, "width": 19, "height": 44}]}

Other keys are ignored. x and y are the top-left corner of a box, in
pixels, as ``waldo find`` reports matches; a box must lie inside its scene.
Images given as negatives hold no target at all: every window of them is a
negative.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from waldo_cli.errors import ImageReadError, WaldoError
from waldo_cli.io import read_image

Box = tuple[int, int, int, int]

ANSWER = "answer.json"
DEFAULT_SCENE = "scene.png"


@dataclass(frozen=True)
class Example:
    """One image to learn from.

    Attributes
    ----------
    pixels : (H, W, C) float32 ndarray
        The image, on the 0–255 scale.
    boxes : tuple of (x, y, width, height)
        Where the target is. A crop has one box, the whole image; a negative
        image has none.
    name : str
        Where it came from, for messages.
    kind : {"scene", "crop", "negative"}
        A scene gives positives (its boxes) and negatives (the rest), a crop
        one positive, a negative image only negatives.
    """

    pixels: np.ndarray
    boxes: tuple[Box, ...]
    name: str
    kind: str

    @property
    def negatives(self) -> bool:
        """Whether its windows outside the boxes are negatives (scenes and negative images)."""
        return self.kind != "crop"


def _box(doc: object, where: str) -> Box:
    if not isinstance(doc, dict):
        raise WaldoError(f"{where}: a box must be an object with x, y, width and height")
    try:
        values = tuple(doc[key] for key in ("x", "y", "width", "height"))
    except KeyError as exc:
        raise WaldoError(f"{where}: the box has no {exc.args[0]!r}") from None
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise WaldoError(f"{where}: x, y, width and height must be whole numbers of pixels")
    x, y, w, h = values
    if w < 1 or h < 1:
        raise WaldoError(f"{where}: the box is {w}×{h}; width and height must be at least 1")
    return (x, y, w, h)


def read_answer(path: str | os.PathLike[str]) -> Example:
    """A scene and its boxes from an ``answer.json`` (see the module's docstring).

    Raises
    ------
    WaldoError
        The file is missing or not such a document, the scene cannot be
        read, or a box lies outside the scene.

    Examples
    --------
    >>> import tempfile
    >>> from waldo_cli.demo import render_puzzle, write_puzzle
    >>> folder = os.path.join(tempfile.mkdtemp(), "p")
    >>> _ = write_puzzle(folder, render_puzzle(1, size=(160, 120), crowd=3))
    >>> example = read_answer(os.path.join(folder, "answer.json"))
    >>> example.kind, len(example.boxes), example.pixels.shape
    ('scene', 1, (120, 160, 3))
    """
    answer = Path(path)
    try:
        doc = json.loads(answer.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WaldoError(f"{answer}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise WaldoError(f"{answer}: cannot read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise WaldoError(f"{answer}: not JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(doc, dict):
        raise WaldoError(f"{answer}: expected an object with a box, or with boxes")
    if "boxes" in doc:
        if not isinstance(doc["boxes"], list):
            raise WaldoError(f"{answer}: boxes must be a list of boxes")
        boxes = tuple(_box(b, f"{answer}, box {i + 1}") for i, b in enumerate(doc["boxes"]))
    else:
        boxes = (_box(doc, str(answer)),)
    scene = doc.get("scene", DEFAULT_SCENE)
    if not isinstance(scene, str) or not scene:
        raise WaldoError(f"{answer}: scene must name the scene's image file")
    scene_path = answer.parent / scene
    pixels = read_image(scene_path, name=str(scene_path)).pixels
    height, width = pixels.shape[:2]
    for i, (x, y, w, h) in enumerate(boxes):
        if x < 0 or y < 0 or x + w > width or y + h > height:
            raise WaldoError(
                f"{answer}: box {i + 1} ({x}, {y}, {w}×{h}) lies outside the "
                f"{width}×{height} scene {scene_path}"
            )
    return Example(pixels, boxes, str(answer), "scene")


def read_example(path: str | os.PathLike[str]) -> Example:
    """One EXAMPLE: a folder or ``answer.json`` (a scene and boxes), or an image file (a crop).

    Raises
    ------
    WaldoError
        The path does not exist, a folder holds no ``answer.json``, or a file
        cannot be read.
    """
    target = Path(path)
    if target.is_dir():
        if not (target / ANSWER).is_file():
            raise WaldoError(
                f"{target}: a folder must hold {ANSWER} (a scene and its boxes); "
                "give images of the target as files"
            )
        return read_answer(target / ANSWER)
    if target.suffix.lower() == ".json":
        return read_answer(target)
    pixels = read_image(target, name=str(target)).pixels
    height, width = pixels.shape[:2]
    return Example(pixels, ((0, 0, width, height),), str(target), "crop")


def read_negative(path: str | os.PathLike[str]) -> list[Example]:
    """Images without the target: a file, or every image file in a folder (sorted by name).

    Raises
    ------
    WaldoError
        A file cannot be read as an image, or a folder holds none.
    """
    target = Path(path)
    if not target.is_dir():
        pixels = read_image(target, name=str(target)).pixels
        return [Example(pixels, (), str(target), "negative")]
    found = []
    for entry in sorted(target.iterdir()):
        if entry.is_file() and not entry.name.startswith("."):
            try:
                found.append(Example(read_image(entry).pixels, (), str(entry), "negative"))
            except ImageReadError:
                continue  # a folder may hold other files too
    if not found:
        raise WaldoError(f"{target}: a folder of negatives holds no image file")
    return found
