"""The six matching methods: names, direction, default thresholds.

Names are OpenCV's ``TM_*`` constants in lower case.

>>> lower_is_better("sqdiff_normed"), lower_is_better("ccoeff_normed")
(True, False)
>>> default_threshold("ccoeff"), default_threshold("ccoeff_normed")
(None, 0.5)
"""

from __future__ import annotations

METHODS: tuple[str, ...] = (
    "sqdiff",
    "sqdiff_normed",
    "ccorr",
    "ccorr_normed",
    "ccoeff",
    "ccoeff_normed",
)
DEFAULT_METHOD = "ccoeff_normed"

# Normed scores live on a fixed scale, so a fixed default threshold means the
# same thing on every image; raw scores grow with image brightness and
# template area, so they get none.
_DEFAULT_THRESHOLDS: dict[str, float | None] = {
    "sqdiff": None,
    "sqdiff_normed": 0.1,
    "ccorr": None,
    "ccorr_normed": 0.9,
    "ccoeff": None,
    "ccoeff_normed": 0.5,
}

# The index of each method in the kernels (OpenCV's own numbering).
METHOD_CODES: dict[str, int] = {name: i for i, name in enumerate(METHODS)}


def check_method(method: str) -> str:
    """Return ``method`` if it names one of the six methods, else raise.

    >>> check_method("ccorr")
    'ccorr'
    """
    from waldo_cli.errors import WaldoError

    if method not in METHOD_CODES:
        raise WaldoError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
    return method


def lower_is_better(method: str) -> bool:
    """Whether the best match is the smallest score (the two ``sqdiff`` methods)."""
    return check_method(method).startswith("sqdiff")


def is_normed(method: str) -> bool:
    """Whether the method's scores lie on a fixed scale ([0, 1] or [-1, 1]).

    >>> is_normed("ccorr_normed"), is_normed("ccorr")
    (True, False)
    """
    return check_method(method).endswith("_normed")


def default_threshold(method: str) -> float | None:
    """The threshold ``waldo find`` applies when the user gives none."""
    return _DEFAULT_THRESHOLDS[check_method(method)]
