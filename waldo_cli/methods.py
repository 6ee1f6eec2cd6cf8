"""The six matching methods: one record each (name, direction, threshold, OpenCV's name).

Names are OpenCV's ``TM_*`` constants in lower case. A seventh method is one
more ``Method`` record here, plus its formula in ``kernels._finish_scores``
(and the masked kernels) under its ``code``.

``learned`` is the method of a learned filter (``waldo learn``): its score is
the filter's correlation plus its bias, calibrated when it was learned so
that 0.5 means "found". It has a record (peaks, heatmaps and reports read it)
but is not one of the six: a template cannot be scored by it, and a filter
by nothing else.

>>> lower_is_better("sqdiff_normed"), lower_is_better("ccoeff_normed")
(True, False)
>>> default_threshold("ccoeff"), default_threshold("ccoeff_normed")
(None, 0.5)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    """One matching method.

    Attributes
    ----------
    name : str
        OpenCV's constant in lower case (``ccoeff_normed``).
    code : int
        Its number in the kernels (OpenCV's own numbering).
    lower_is_better : bool
        The best match is the smallest score (the ``sqdiff`` methods).
    normed : bool
        Scores lie on a fixed scale ([0, 1] or [-1, 1]).
    default_threshold : float or None
        What ``waldo find`` applies when the user gives none: normed scores
        mean the same on every image, raw ones grow with brightness and
        template area, so they get none.
    opencv : str
        OpenCV's name for it (``TM_CCOEFF_NORMED``).
    """

    name: str
    code: int
    lower_is_better: bool
    normed: bool
    default_threshold: float | None
    opencv: str


_RECORDS = (
    Method("sqdiff", 0, True, False, None, "TM_SQDIFF"),
    Method("sqdiff_normed", 1, True, True, 0.1, "TM_SQDIFF_NORMED"),
    Method("ccorr", 2, False, False, None, "TM_CCORR"),
    Method("ccorr_normed", 3, False, True, 0.9, "TM_CCORR_NORMED"),
    Method("ccoeff", 4, False, False, None, "TM_CCOEFF"),
    Method("ccoeff_normed", 5, False, True, 0.5, "TM_CCOEFF_NORMED"),
)

# a learned filter is correlated as ccorr, then its bias is added
LEARNED = Method("learned", 2, False, True, 0.5, "")

METHOD_RECORDS: dict[str, Method] = {record.name: record for record in (*_RECORDS, LEARNED)}
# the methods a template can be scored by
METHODS: tuple[str, ...] = tuple(record.name for record in _RECORDS)
DEFAULT_METHOD = "ccoeff_normed"

# The index of each method in the kernels (OpenCV's own numbering).
METHOD_CODES: dict[str, int] = {record.name: record.code for record in (*_RECORDS, LEARNED)}


def _spelling(method: str) -> str:
    """A method's name as people type it, reduced to the record's key.

    Case does not matter, and OpenCV's spellings are aliases: ``TM_CCOEFF_NORMED``,
    ``cv2.TM_SQDIFF``, ``cv.TM_CCORR``.
    """
    name = method.strip().lower()
    for prefix in ("cv2.", "cv."):
        name = name.removeprefix(prefix)
    return name.removeprefix("tm_")


def method_record(method: str) -> Method:
    """The record of one of the six methods, by any of its spellings, else raise WaldoError.

    >>> method_record("ccorr").opencv, method_record("cv2.TM_CCOEFF_NORMED").name
    ('TM_CCORR', 'ccoeff_normed')
    """
    from waldo_cli.errors import WaldoError

    record = METHOD_RECORDS.get(_spelling(method)) if isinstance(method, str) else None
    if record is None:
        raise WaldoError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
    return record


def check_template_method(method: str) -> str:
    """Return ``method`` if a template can be scored by it (one of the six), else raise.

    >>> check_template_method("ccoeff_normed")
    'ccoeff_normed'
    """
    from waldo_cli.errors import WaldoError

    if method == LEARNED.name:
        raise WaldoError(
            "method 'learned' scores a learned filter (waldo learn), not a template: "
            f"choose one of {', '.join(METHODS)}"
        )
    return method_record(method).name


def check_method(method: str) -> str:
    """The canonical name of one of the six methods, by any of its spellings, else raise.

    >>> check_method("ccorr"), check_method("TM_SQDIFF_NORMED")
    ('ccorr', 'sqdiff_normed')
    """
    return method_record(method).name


def lower_is_better(method: str) -> bool:
    """Whether the best match is the smallest score (the two ``sqdiff`` methods)."""
    return method_record(method).lower_is_better


def is_normed(method: str) -> bool:
    """Whether the method's scores lie on a fixed scale ([0, 1] or [-1, 1]).

    >>> is_normed("ccorr_normed"), is_normed("ccorr")
    (True, False)
    """
    return method_record(method).normed


def default_threshold(method: str) -> float | None:
    """The threshold ``waldo find`` applies when the user gives none."""
    return method_record(method).default_threshold
