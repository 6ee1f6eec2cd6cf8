"""The ``waldo`` command line: a Click group, the only place that picks exit codes.

Exit status follows grep: 0 a match was found, 1 none was, 2 bad usage or bad
input (always one line on stderr, never a traceback), 130 interrupted.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from waldo_cli import __version__

EXIT_MATCH, EXIT_NO_MATCH, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130


class WaldoUsageError(click.ClickException):
    """A problem with the user's input: printed as one line, exit status 2."""

    exit_code = EXIT_ERROR


def _one_line(message: str) -> str:
    return " ".join(message.split())


class WaldoGroup(click.Group):
    """A Click group that reports every error as one line on stderr."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        name = prog_name or "waldo"
        try:
            rv = super().main(args, name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as exc:
            click.echo(f"{name}: error: {_one_line(exc.format_message())}", err=True)
            sys.exit(exc.exit_code)
        except (click.Abort, KeyboardInterrupt):
            click.echo(f"{name}: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=WaldoGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="waldo")
def cli() -> None:
    """Find a picture inside pictures.

    waldo slides a template over an image and scores every window with one of
    OpenCV's six template-matching methods, the cross-correlation a
    convolutional layer computes. Exit status: 0 found, 1 not found, 2 error.
    """


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``waldo`` console script."""
    cli.main(args=argv, prog_name="waldo")
