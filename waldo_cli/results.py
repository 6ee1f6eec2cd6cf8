"""The records a search produces and every writer reads: Match, FindReport, ImageResult.

Plain dataclasses of Python numbers and strings: importable without NumPy,
Pillow or Numba, so that ``report.py`` and the commands that only print
(``waldo params``) stay light.
"""

from __future__ import annotations

import struct
from dataclasses import asdict, dataclass, field
from typing import Any

from waldo_cli.names import display_name


def float32_value(value: float) -> float:
    """The shortest decimal that reads back as the same float32: how scores go into JSON.

    Scores are float32; their float64 expansion (0.27418723702430725) only
    shows noise digits. Values beyond float32's range are returned as they are.

    >>> float32_value(0.27418723702430725), float32_value(1.0), float32_value(71272800.0)
    (0.27418724, 1.0, 71272800.0)
    >>> float32_value(3.4028234663852886e38)  # float32's largest: no shorter decimal rounds to it
    3.4028235e+38
    """
    try:
        packed = struct.pack("<f", value)
    except (OverflowError, struct.error):
        return float(value)
    single = struct.unpack("<f", packed)[0]
    for digits in range(1, 10):
        shortest = float(f"{single:.{digits}g}")
        try:
            if struct.pack("<f", shortest) == packed:
                return shortest
        except OverflowError:  # rounded past float32's largest value: more digits
            continue
    return float(single)


@dataclass(frozen=True)
class Match:
    """One place where the template matched.

    Attributes
    ----------
    x, y : int, or float with sub-pixel refinement
        Column and row of the window's top-left corner, in image pixels.
    width, height : int
        Size of the window (the template's size).
    score : float
        The method's score there.
    scale, angle, flip : optional
        With a search over template variants: the size factor, the
        counter-clockwise turn in degrees and the mirroring of the variant
        that matched (width and height are then that variant's).
    """

    x: int | float
    y: int | float
    width: int
    height: int
    score: float
    scale: float | None = None
    angle: float | None = None
    flip: bool | None = None

    def to_dict(self) -> dict[str, float | int | bool]:
        """The match as a JSON-ready dict: x, y, width, height, score (and the variant's fields).

        >>> Match(3, 4, 10, 8, 0.5).to_dict()
        {'x': 3, 'y': 4, 'width': 10, 'height': 8, 'score': 0.5}
        >>> Match(3, 4, 10, 8, 0.5, scale=1.5, angle=90.0, flip=False).to_dict()["angle"]
        90.0
        """
        doc = {key: value for key, value in asdict(self).items() if value is not None}
        doc["score"] = float32_value(self.score)
        return doc


@dataclass(frozen=True)
class FindReport:
    """Everything ``waldo find`` reports about one search."""

    image: str
    template: str
    method: str
    image_size: tuple[int, int]  # (W, H)
    template_size: tuple[int, int]  # (w, h)
    matches: list[Match]
    seconds: float
    threshold: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``waldo find --json``.

        >>> r = FindReport("a.png", "b.png", "ccorr", (8, 6), (2, 2), [Match(1, 2, 2, 2, 3.0)], 0.5)
        >>> r.to_dict()["matches"], r.to_dict()["image_size"]
        ([{'x': 1, 'y': 2, 'width': 2, 'height': 2, 'score': 3.0}], [8, 6])
        """
        doc: dict[str, Any] = {
            "image": display_name(self.image),
            "template": display_name(self.template),
            "method": self.method,
            "image_size": list(self.image_size),
            "template_size": list(self.template_size),
            "matches": [m.to_dict() for m in self.matches],
            "seconds": round(self.seconds, 6),
            "threshold": self.threshold,
        }
        doc.update(self.extra)
        return doc


@dataclass(frozen=True)
class ImageResult:
    """The outcome for one image of a batch: a report, or the error that stopped it."""

    index: int
    image: str
    report: FindReport | None = None
    error: str | None = None

    @property
    def matched(self) -> bool:
        """Whether at least one match passed the threshold."""
        return self.report is not None and bool(self.report.matches)

    def to_dict(self) -> dict[str, Any]:
        """The JSON Lines record: the report's document, or ``{"image", "error"}``.

        >>> ImageResult(0, "gone.png", error="gone.png: no such file").to_dict()
        {'image': 'gone.png', 'error': 'gone.png: no such file'}
        """
        if self.report is None:
            return {"image": display_name(self.image), "error": display_name(self.error or "")}
        return self.report.to_dict()
