"""What the commands owe the terminal and the process: whole records, consoles, signals.

The library never touches signals or standard streams; this module does, for
the commands: a stdout writer that Ctrl-C cannot cut in the middle of a
record, death by SIGPIPE as grep dies, rich consoles built when a command runs
(so colour follows where the output really goes), the batch's progress bar,
and the notice that a command waits for the compiler.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:  # rich is imported only when a command needs a console
    from rich.console import Console
    from rich.progress import Progress


def die_of_sigpipe() -> None:
    """End as grep does when a reader such as ``head`` closes our stdout: by SIGPIPE.

    Python ignores SIGPIPE, so a closed pipe shows up as BrokenPipeError;
    Click would turn that into exit status 1, which for waldo means "not
    found". Whatever is still buffered goes to /dev/null, so that the exit
    itself does not raise again.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGPIPE)
    sys.exit(128 + 13)  # where there is no SIGPIPE: the status a shell would show


def flush_stdout() -> None:
    """Write what stdout still buffers, as the process ends; a stream that refuses is one line.

    A closed pipe ends the process by SIGPIPE (grep's way); a full disk or
    another error is one line on stderr and exit 2, and stdout is pointed at
    /dev/null so that Python's own flush at exit cannot fail again.
    """
    import errno

    stream = sys.stdout
    if stream is None:
        return
    try:
        stream.flush()
    except BrokenPipeError:
        die_of_sigpipe()
    except OSError as exc:
        devnull = os.open(os.devnull, os.O_WRONLY)
        with contextlib.suppress(OSError):
            os.dup2(devnull, stream.fileno())
        reason = exc.strerror or errno.errorcode.get(exc.errno or 0, str(exc))
        with contextlib.suppress(OSError, ValueError):
            click.echo(f"waldo: error: cannot write the output: {reason}", err=True)
        sys.exit(2)


def install_cleanup_handlers() -> None:
    """On SIGTERM or SIGHUP, remove partly written pictures, then die of the signal.

    Ctrl-C (SIGINT) is handled where records are written (``Output``) and
    unwinds normally, which removes partial files too.
    """
    if threading.current_thread() is not threading.main_thread():
        return

    def cleanup(signum: int, frame: Any) -> None:
        io = sys.modules.get("waldo_cli.io")
        if io is not None:
            io.remove_partial_files()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    for name in ("SIGTERM", "SIGHUP"):
        number = getattr(signal, name, None)
        if number is not None:
            signal.signal(number, cleanup)


class Output:
    """Writes whole records to stdout; Ctrl-C waits until the record is out.

    A SIGINT that arrives while a record is being written is held and raised
    right after it, so an interrupted run never leaves half a line.
    """

    def __init__(self) -> None:
        self._writing = False
        self._pending = False
        self._previous: Any = None

    def __enter__(self) -> Output:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self._writing:
            self._pending = True
            return
        raise KeyboardInterrupt

    def write(self, text: str) -> None:
        """Write ``text`` as one piece, straight to the file descriptor.

        ``os.write`` in a loop: a short write (a slow reader, an unbuffered
        stream under PYTHONUNBUFFERED=1) is finished rather than dropped,
        and a closed pipe raises BrokenPipeError at once. Text is encoded as
        stdout's encoding would, names that are not valid in it escaped
        (backslashes) rather than failing.
        """
        if not text:
            return
        self._writing = True
        try:
            write_fd(sys.stdout, text)
        finally:
            self._writing = False
        if self._pending:
            self._pending = False
            raise KeyboardInterrupt


def write_fd(stream: Any, text: str) -> None:
    """Write ``text`` to a text stream's file descriptor, whole, after what it has buffered.

    Falls back to the stream itself when it has no descriptor (tests' captured
    streams).
    """
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        stream.write(text)
        stream.flush()
        return
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        data = text.encode(encoding, errors="surrogateescape")
    except UnicodeEncodeError:
        data = text.encode(encoding, errors="backslashreplace")
    stream.flush()
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def image_source(path: str) -> tuple[str, Any]:
    """(name, what to read): stdin's stream for '-' (read_image bounds it), else the path."""
    if path == "-":
        from waldo_cli.io import stdin_stream

        return "-", stdin_stream()
    return path, path


def stdout_console() -> Console:
    """A rich console on stdout, built now so that it sees where stdout goes."""
    from rich.console import Console

    return Console(file=sys.stdout)


def stderr_console() -> Console:
    """A rich console on stderr, for errors, notices and the progress bar."""
    from rich.console import Console

    return Console(stderr=True)


def progress_bar(console: Console) -> Progress:
    """The batch's progress bar: images done, images per second, time left; gone when done.

    Its task takes a ``rate`` field, the text shown before "images/s".
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("searching"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} images/s"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        # stdout is data: it goes wherever it is connected, never through the bar
        redirect_stdout=False,
        redirect_stderr=False,
    )


COMPILE_NOTICE = "waldo: compiling the search kernels, once (later runs start at once)…"


@contextlib.contextmanager
def compile_notice(quiet: bool, console: Console | None = None) -> Iterator[None]:
    """Say so on stderr, once, when the command waits for Numba to compile a kernel.

    Numba's event API (``jit.on_compile``) tells when a kernel begins to
    compile, so the notice comes for whatever the command runs (the direct
    or FFT kernels, the masked ones, each variant's engine, a batch's first
    image, a convolutional layer) and never for a kernel loaded from the
    cache. ``console``: where a progress bar is drawn, so the line goes above it.
    """
    if quiet:
        yield
        return
    from waldo_cli import jit

    said = threading.Lock()

    def started(name: str) -> None:
        if not said.acquire(blocking=False):
            return  # said already
        if console is not None:
            console.print(COMPILE_NOTICE, highlight=False, markup=False, soft_wrap=True)
        else:
            click.echo(COMPILE_NOTICE, err=True)

    with jit.on_compile(started):
        yield
