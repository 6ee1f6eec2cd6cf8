"""Options that several commands share: one spelling and one parameter name for each.

Each command says in its own words what the option does there, so the help
text is an argument.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def json_option(help_text: str) -> Decorator:
    """``--json``, passed as ``as_json``: one JSON document on stdout (find, conv, params)."""
    return click.option("--json", "as_json", is_flag=True, help=help_text)


def convolve_option(help_text: str) -> Decorator:
    """``--convolve``: flip the template or kernel first, true convolution (find, conv)."""
    return click.option("--convolve", is_flag=True, help=help_text)


class FiniteFloat(click.ParamType):
    """A float that is a number: ``nan``, ``inf`` and ``-inf`` are usage errors.

    >>> FiniteFloat().convert("0.25", None, None)
    0.25
    """

    name = "number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """The value as a finite float, or a usage error naming the option."""
        import math

        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


class MethodName(click.ParamType):
    """A matching method by any of its spellings; the value is its canonical name.

    ``ccoeff_normed``, ``TM_CCOEFF_NORMED`` and ``cv2.TM_CCOEFF_NORMED`` in any case.

    >>> MethodName().convert("cv2.TM_SQDIFF", None, None)
    'sqdiff'
    """

    name = "method"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        """The six names, as a Choice shows them."""
        from waldo_cli.methods import METHODS

        return "[" + "|".join(METHODS) + "]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """The canonical name, or a usage error listing the six."""
        from waldo_cli.errors import WaldoError
        from waldo_cli.methods import check_method

        try:
            return check_method(str(value))
        except WaldoError as exc:
            self.fail(str(exc), param, ctx)

    def shell_complete(
        self, ctx: click.Context, param: click.Parameter, incomplete: str
    ) -> list[click.shell_completion.CompletionItem]:
        """The six names (in lower case) that start with what was typed."""
        from click.shell_completion import CompletionItem

        from waldo_cli.methods import METHODS

        return [CompletionItem(m) for m in METHODS if m.startswith(incomplete.lower())]


class TopK(click.ParamType):
    """``-k``: a positive number of matches, or ``all`` (the value is then None).

    >>> TopK().convert("3", None, None), TopK().convert("ALL", None, None)
    (3, None)
    """

    name = "N|all"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        """``N|all``, as typed (Click would shout it)."""
        return "N|all"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """The count as an int ≥ 1, None for ``all``, or a usage error naming the option."""
        if value is None or isinstance(value, int) and not isinstance(value, bool):
            if value is not None and value < 1:
                self.fail(f"{value} is not a positive number or 'all'", param, ctx)
            return value
        text = str(value).strip()
        if text.lower() == "all":
            return None
        try:
            count = int(text)
        except ValueError:
            self.fail(f"{value!r} is not a positive number or 'all'", param, ctx)
        if count < 1:
            self.fail(f"{count} is not a positive number or 'all'", param, ctx)
        return count


class Region(click.ParamType):
    """``--region X,Y,W,H``: a rectangle of the image in pixels, as a 4-tuple of ints.

    >>> Region().convert("10, 20,64,48", None, None)
    (10, 20, 64, 48)
    """

    name = "X,Y,W,H"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """Four integers, X and Y at least 0, W and H at least 1, or a usage error."""
        if isinstance(value, tuple):
            return value
        parts = str(value).split(",")
        try:
            numbers = tuple(int(part) for part in parts)
        except ValueError:
            numbers = ()
        if len(numbers) != 4:
            self.fail(
                f"{value!r}: give X,Y,W,H, four whole numbers (the top-left corner, the width "
                "and the height in pixels)",
                param,
                ctx,
            )
        x, y, w, h = numbers
        if x < 0 or y < 0 or w < 1 or h < 1:
            self.fail(f"{value!r}: X and Y must be 0 or more, W and H 1 or more", param, ctx)
        return numbers
