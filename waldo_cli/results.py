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

    >>> m = Match(x=3, y=4, width=10, height=8, score=0.5)
    >>> m.x + m.width, m.to_dict()["score"]
    (13, 0.5)

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
    cx, cy : float, optional
        The window's centre, x + width / 2 and y + height / 2, in the
        continuous coordinates in which pixel (x, y) covers [x, x+1) × [y, y+1).
        A search fills them in; ``find_peaks`` leaves them None.
    margin : float, optional
        The score minus the best score outside the match's suppression
        window, signed so that positive is better (see ``find_peaks``); None
        when no window lies outside it. Not compared by ``==``.
    template : str, optional
        The template that matched, as the user named it (a search fills it in).
    corners : ((x, y), (x, y), (x, y), (x, y)), optional
        For a turned or scaled variant: where the template's own top-left,
        top-right, bottom-right and bottom-left corners lie in the image, as
        drawn (same coordinates as cx, cy).
    """

    x: int | float
    y: int | float
    width: int
    height: int
    score: float
    scale: float | None = None
    angle: float | None = None
    flip: bool | None = None
    cx: float | None = None
    cy: float | None = None
    # derived from the map, not part of what the match is
    margin: float | None = field(default=None, compare=False)
    template: str | None = None
    corners: tuple[tuple[float, float], ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The match as a JSON-ready dict: x, y, width, height, score (and what else it knows).

        >>> Match(3, 4, 10, 8, 0.5).to_dict()
        {'x': 3, 'y': 4, 'width': 10, 'height': 8, 'score': 0.5}
        >>> Match(3, 4, 10, 8, 0.5, scale=1.5, angle=90.0, flip=False).to_dict()["angle"]
        90.0
        >>> Match(3, 4, 10, 8, 0.5, cx=8.0, cy=8.0, margin=0.25, template="t.png").to_dict()
        {'x': 3, 'y': 4, 'width': 10, 'height': 8, 'score': 0.5, 'cx': 8.0, 'cy': 8.0,
         'margin': 0.25, 'template': 't.png'}
        """
        doc = {key: value for key, value in asdict(self).items() if value is not None}
        doc["score"] = float32_value(self.score)
        if self.margin is not None:
            doc["margin"] = float32_value(self.margin)
        if self.corners is not None:
            doc["corners"] = [[x, y] for x, y in self.corners]
        if self.template is not None:  # as the report's own name: valid UTF-8 whatever it holds
            doc["template"] = display_name(self.template)
        return doc


@dataclass(frozen=True)
class FindReport:
    """Everything ``waldo find`` reports about one search of one image for one template.

    ``image_size`` is (W, H) and ``template_size`` (w, h); ``extra`` holds
    the rest of the JSON document (engine, best, region, ...).

    >>> FindReport("a.png", "t.png", "ccorr", (8, 6), (2, 2), [], 0.1).to_dict()["matches"]
    []
    """

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
    """The outcome for one image of a batch: a report per template, or the error that stopped it.

    ``report`` is the first template's, ``others`` those of the second and
    later templates of a search for several (``reports`` has them all).
    """

    index: int
    image: str
    report: FindReport | None = None
    error: str | None = None
    others: tuple[FindReport, ...] = ()

    @property
    def reports(self) -> tuple[FindReport, ...]:
        """Every template's report, in the templates' order (none after an error)."""
        return () if self.report is None else (self.report, *self.others)

    @property
    def matched(self) -> bool:
        """Whether at least one match of any template passed the threshold."""
        return any(report.matches for report in self.reports)

    def to_dict(self) -> dict[str, Any]:
        """The JSON Lines record: the (first) report's document, or ``{"image", "error"}``.

        >>> ImageResult(0, "gone.png", error="gone.png: no such file").to_dict()
        {'image': 'gone.png', 'error': 'gone.png: no such file'}
        """
        if self.report is None:
            return {"image": display_name(self.image), "error": display_name(self.error or "")}
        return self.report.to_dict()

    def to_dicts(self) -> list[dict[str, Any]]:
        """Its JSON Lines records: one per template, or the one error record.

        >>> r = FindReport("a.png", "t.png", "ccorr", (8, 6), (2, 2), [], 0.5)
        >>> [d["template"] for d in ImageResult(0, "a.png", r, others=(r, r)).to_dicts()]
        ['t.png', 't.png', 't.png']
        """
        if self.report is None:
            return [self.to_dict()]
        return [report.to_dict() for report in self.reports]
