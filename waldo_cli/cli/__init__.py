"""The ``waldo`` command line: a Click group, the only place that picks exit codes.

Exit status follows grep: 0 a match was found, 1 none was, 2 bad usage or bad
input (always one line on stderr, never a traceback), 130 interrupted.

One module per command (find, learn, conv, params, demo, cache, server), the options they
share in ``options``, and what concerns the terminal and the process (stdout
records, consoles, the progress bar, SIGPIPE, SIGINT) in ``terminal``. The
command modules import NumPy, Pillow and Numba only inside their functions, so
that ``waldo --help``, ``--version`` and ``params`` never pay for them.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

import click

from waldo_cli import __version__
from waldo_cli.cli.terminal import die_of_sigpipe, flush_stdout, install_cleanup_handlers
from waldo_cli.client import HELP_FLAGS, help_request, save_help
from waldo_cli.errors import WaldoError

EXIT_MATCH, EXIT_NO_MATCH, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130


class WaldoUsageError(click.ClickException):
    """A problem with the user's input: printed as one line, exit status 2."""

    exit_code = EXIT_ERROR


def usage_error(message: str) -> click.UsageError:
    """A usage error about the command being run (so its hint names that command)."""
    return click.UsageError(message, ctx=click.get_current_context(silent=True))


def _one_line(message: str) -> str:
    return " ".join(message.split())


class WaldoContext(click.Context):
    """Click's context, which keeps the help it prints for ``client.cached_help``."""

    def get_help(self) -> str:
        text = super().get_help()
        asked = _HELP_ASKED
        if (
            asked is not None
            # the width is the terminal's, as the client works it out (not a test runner's)
            and click.formatting.FORCED_WIDTH is None
            and self.terminal_width is None
            and self.max_content_width is None
            and self.command_path.split()[1:] == [word for word in asked if word not in HELP_FLAGS]
        ):
            save_help(asked, text)  # the next `waldo ... --help` prints it without Click
        return text


# The argv of this run when it only asks for help (client.help_request), else None:
# set by ``main``, the console script's way in, not by Click's test runner.
_HELP_ASKED: list[str] | None = None


class WaldoGroup(click.Group):
    """A Click group that reports every error as one line on stderr."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; a closed stdout ends the process as it ends grep."""
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            die_of_sigpipe()

    def main(
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the command; report Click's errors as one line and exit with our codes."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        name = "waldo"  # the command users type, whatever Click was told
        try:
            rv = super().main(args, name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as exc:
            if isinstance(exc, click.UsageError) and type(exc).__name__ == "NoArgsIsHelpError":
                # `waldo` or `waldo cache` alone: show the help, as --help would
                click.echo(exc.ctx.get_help() if exc.ctx is not None else exc.format_message())
                sys.exit(0)
            message = _one_line(exc.format_message())
            if isinstance(exc, click.UsageError) and exc.ctx is not None:
                # Click's hint, kept on the same line: errors are one line
                message += f" (try '{exc.ctx.command_path} -h' for help)"
            _say(f"{name}: error: {message}")
            sys.exit(exc.exit_code)
        except (click.Abort, KeyboardInterrupt):
            _say(f"{name}: interrupted")
            sys.exit(EXIT_INTERRUPTED)
        except BrokenPipeError:
            die_of_sigpipe()
        except WaldoError as exc:
            # an ImageReadError or OutputError is an OSError too: it names its file
            _say(f"{name}: error: {exc}")
            sys.exit(EXIT_ERROR)
        except OSError as exc:
            # the library turns every file it reads or writes into a WaldoError:
            # what reaches here is a standard stream that cannot be written
            _say(f"{name}: error: cannot write the output: {exc.strerror or exc}")
            sys.exit(EXIT_ERROR)
        sys.exit(rv if isinstance(rv, int) else 0)


def _say(line: str) -> None:
    """One line on stderr; if stderr itself cannot be written, nothing (the status tells)."""
    with contextlib.suppress(OSError, ValueError):
        click.echo(line, err=True)


@click.group(cls=WaldoGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="waldo")
def cli() -> None:
    """Find a picture inside pictures.

    waldo slides a template over an image and scores every window with one of
    OpenCV's six template-matching methods, the cross-correlation a
    convolutional layer computes. Exit status: 0 found, 1 not found, 2 error.
    """


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``waldo`` console script.

    Before Click runs: standard streams that cannot take a character
    (``PYTHONIOENCODING=ascii`` and an accented name) escape it instead of
    failing, a closed stdout is one line and exit 2, and SIGTERM or SIGHUP
    while a picture is written remove its partial file. After: whatever is
    still buffered for stdout is written, and a stream that cannot take it
    (``/dev/full``) is one line and exit 2, not Python's "Exception ignored".
    """
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(OSError, ValueError):
                reconfigure(errors="backslashreplace")
    if sys.stdout is None:
        _say("waldo: error: standard output is closed; give waldo somewhere to write")
        sys.exit(EXIT_ERROR)
    install_cleanup_handlers()
    global _HELP_ASKED
    asked = list(sys.argv[1:] if argv is None else argv)
    _HELP_ASKED = asked if help_request(asked) else None
    try:
        cli.main(args=argv, prog_name="waldo")
    except SystemExit as exit:
        flush_stdout()
        raise exit from None


# The commands import the exit codes and WaldoUsageError from here, so they are
# registered only once those exist.
from waldo_cli.cli.cache import cache_group  # noqa: E402
from waldo_cli.cli.conv import conv_command  # noqa: E402
from waldo_cli.cli.demo import demo_command  # noqa: E402
from waldo_cli.cli.find import find_command  # noqa: E402
from waldo_cli.cli.learn import learn_command  # noqa: E402
from waldo_cli.cli.params import params_command  # noqa: E402
from waldo_cli.cli.server import server_group  # noqa: E402

cli.add_command(find_command)
cli.add_command(learn_command)
cli.add_command(cache_group)
cli.add_command(params_command)
cli.add_command(demo_command)
cli.add_command(conv_command)
cli.add_command(server_group)


def _keep_help(command: click.Command) -> None:
    """Give every command the context that keeps its help (``WaldoContext``)."""
    command.context_class = WaldoContext
    for sub in getattr(command, "commands", {}).values():
        _keep_help(sub)


_keep_help(cli)

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_MATCH",
    "EXIT_NO_MATCH",
    "WaldoGroup",
    "WaldoUsageError",
    "usage_error",
    "cli",
    "main",
]
