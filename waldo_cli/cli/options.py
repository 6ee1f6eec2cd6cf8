"""Options that several commands share: one spelling and one parameter name for each.

Each command says in its own words what the option does there, so the help
text is an argument.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

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


class ShellPath(click.Path):
    """A path as the shell should complete it; waldo checks the file itself.

    The type tells Click's completion scripts to complete file names (folder
    names with ``file_okay=False``). Click's own checks stay off, so what is
    wrong with a path is said by io.py and the commands, in one line that
    names it, as it was before the type existed.

    >>> FILE.convert("no/such/file.png", None, None)
    'no/such/file.png'
    """

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """Return the value as given: nothing is checked here."""
        return value


FILE = ShellPath()
DIRECTORY = ShellPath(file_okay=False)


class OptionalValueOption(click.Option):
    """An option whose value may be left out, and is then joined with '=': ``--show[=heatmap]``.

    Click alone would take the next word as the value, so ``--show IMAGE
    TEMPLATE`` made IMAGE the value. As grep's ``--color[=WHEN]``, the value
    must be attached: ``OptionalValueCommand`` turns a bare ``--show`` into
    ``--show=FLAG_VALUE`` before Click parses. Declare it with ``flag_value``.

    >>> show = click.Choice(["overlay", "heatmap"])
    >>> OptionalValueOption(["--show"], type=show, flag_value="overlay").value_names()
    'overlay|heatmap'
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("is_flag", False)
        super().__init__(*args, **kwargs)

    def value_names(self) -> str:
        """The values the option takes, as its help writes them: ``overlay|heatmap``."""
        if self.metavar is not None:
            return self.metavar
        if isinstance(self.type, click.Choice):
            return "|".join(str(choice) for choice in self.type.choices)
        return self.type.name.upper()

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        """Write the option as ``--show[=overlay|heatmap]``: the value is optional and joined."""
        record = super().get_help_record(ctx)
        if record is None:
            return None
        return f"{', '.join(self.opts)}[={self.value_names()}]", record[1]

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        """Complete the value after ``--show=``; after a bare ``--show``, the next argument."""
        if ctx.params.get(self.name or "") is not None:
            # the bare option was already read as its flag value: the word
            # being typed is an argument (Click would offer this option's values)
            for param in ctx.command.get_params(ctx):
                if isinstance(param, click.Argument):
                    return param.shell_complete(ctx, incomplete)
            return []
        return super().shell_complete(ctx, incomplete)


class OptionalValueCommand(click.Command):
    """A command whose ``OptionalValueOption``s take a value only after '='."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Give every bare optional-value option its flag value, then parse as Click does."""
        return super().parse_args(ctx, _attach_optional_values(ctx, self.get_params(ctx), args))


def _attach_optional_values(
    ctx: click.Context, params: list[click.Parameter], args: list[str]
) -> list[str]:
    """Rewrite each bare ``--show`` that Click would read as an option to ``--show=overlay``.

    Walks the words as Click's parser does: a word after ``--`` is an
    argument, an option that needs a value takes the next word (so
    ``--colormap --show`` is still a colormap), and ``-k3`` or ``-qk 3`` are
    clusters of short options.
    """
    optional: dict[str, OptionalValueOption] = {}
    takes_value: dict[str, bool] = {}
    for param in params:
        if isinstance(param, OptionalValueOption):
            optional.update(dict.fromkeys(param.opts, param))
        elif isinstance(param, click.Option):
            spellings = (*param.opts, *param.secondary_opts)
            takes_value.update(dict.fromkeys(spellings, not (param.is_flag or param.count)))
    rewritten = list(args)
    index = 0
    while index < len(args):
        word = args[index]
        index += 1
        if word == "--":
            break
        if word in optional:
            option = optional[word]
            _refuse_a_detached_value(ctx, option, word, args[index : index + 1])
            rewritten[index - 1] = f"{word}={option.flag_value}"
        elif word in takes_value or word.startswith("--") or not word.startswith("-"):
            if takes_value.get(word):
                index += 1  # the next word is this option's value
        else:  # -qk3 or -qk 3: short options, the first that takes a value ends the cluster
            for position, letter in enumerate(word[1:], start=2):
                needs = takes_value.get(f"-{letter}")
                if needs is None:
                    break  # an unknown option: Click says so
                if needs:
                    if position == len(word):
                        index += 1
                    break
    return rewritten


def _refuse_a_detached_value(
    ctx: click.Context, option: OptionalValueOption, word: str, following: list[str]
) -> None:
    """``--show heatmap`` is a usage error that says to write ``--show=heatmap``.

    Unless a file of that name exists: then it is the argument it looks like.
    """
    if ctx.resilient_parsing or not following or not isinstance(option.type, click.Choice):
        return
    value = following[0]
    if value in option.type.choices and not os.path.lexists(value):
        raise click.UsageError(
            f"{word} takes its value after '=': {word}={value} ({word} alone means "
            f"{word}={option.flag_value})",
            ctx,
        )
