"""``waldo server start|stop|status``: a resident process that keeps the kernels loaded."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import click

from waldo_cli import client
from waldo_cli.cli import EXIT_MATCH, EXIT_NO_MATCH, WaldoUsageError

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


class Duration(click.ParamType):
    """Seconds, or a number with s, m or h (``90``, ``15m``, ``1.5h``); 0 means never.

    >>> Duration().convert("15m", None, None)
    900.0
    """

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """The value in seconds, or a usage error naming the option."""
        if isinstance(value, float):
            return value
        text = str(value).strip().lower()
        scale = _UNITS.get(text[-1:], None)
        try:
            seconds = float(text[:-1] if scale else text) * (scale or 1.0)
        except ValueError:
            self.fail(f"{value!r} is not a duration (try 90, 30s, 15m or 2h)", param, ctx)
        if not seconds >= 0 or seconds == float("inf"):
            self.fail(f"{value!r} is not a duration of zero or more", param, ctx)
        return seconds


@click.group("server")
def server_group() -> None:
    """Keep NumPy, Numba and the search kernels loaded, so each command starts at once.

    \b
    waldo server start     start one in the background (once per login)
    waldo server status    is one running? pid, uptime, searches served, memory
    waldo server stop      stop it (once the commands it runs are done)

    While a server for this installation runs, `waldo find`, `waldo conv` and
    `waldo learn` run in it: the client hands it its terminal or pipes, working directory,
    environment and umask, and the output and exit status are what the same
    command gives without it. WALDO_SERVER=auto starts one on the first
    command (which runs without it); WALDO_SERVER=off never uses one.
    """  # noqa: D301 - the backspace keeps Click from rewrapping the three lines


@server_group.command("start")
@click.option(
    "--idle-timeout",
    type=Duration(),
    default=f"{client.DEFAULT_IDLE_TIMEOUT / 60:g}m",
    show_default=True,
    help="Stop after this long without a command (90, 30s, 15m, 2h; 0 = never).",
)
def server_start(idle_timeout: float) -> int:
    """Start a server in the background; return once it answers."""
    if not client.supported():
        raise WaldoUsageError("a waldo server needs Unix sockets and fork: not on this platform")
    identity = client.identity()
    status = client.ask("status")
    if status is not None:
        why = client.mismatch(status.get("identity") or {}, identity)
        if why is None:
            click.echo(f"waldo server already running (pid {status.get('pid')})")
            return 0
        click.echo(f"waldo: replacing a stale server (pid {status.get('pid')}: {why})", err=True)
        _stop_and_wait()
    _announce_compile()
    try:
        process = client.spawn_server(idle_timeout)
    except OSError as exc:
        raise WaldoUsageError(f"cannot start the waldo server: {exc}") from None
    deadline = time.monotonic() + 1800.0
    while time.monotonic() < deadline:
        code = process.poll()
        status = client.ask("status", timeout=2.0)
        if status is not None and status.get("pid") == process.pid:
            click.echo(
                f"waldo server started (pid {process.pid}; socket {status.get('socket')}; "
                f"log {status.get('log')})"
            )
            return 0
        if status is not None and client.mismatch(status.get("identity") or {}, identity) is None:
            # another `start` (or WALDO_SERVER=auto) was quicker: ours leaves
            click.echo(f"waldo server already running (pid {status.get('pid')})")
            return 0
        if code is not None:
            raise WaldoUsageError(
                f"the waldo server did not start (status {code}); see {client.log_path()}"
                + _last_line(client.log_path())
            )
        time.sleep(0.05)
    raise WaldoUsageError(f"the waldo server did not answer; see {client.log_path()}")


def _announce_compile() -> None:
    """Say so when the server will compile kernels before it answers."""
    from waldo_cli import jit

    if not all(jit.is_cached(name) for name in jit.kernel_names()):
        click.echo(
            "waldo: compiling the search kernels, once (the server answers when they are ready)…",
            err=True,
        )


def _last_line(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().strip().splitlines()
    except OSError:
        return ""
    return f": {lines[-1].strip()}" if lines else ""


def _stop_and_wait(timeout: float = 60.0) -> int | None:
    """Ask the server to stop and wait until its process is gone; its pid, or None if none ran."""
    reply = client.ask("stop")
    if reply is None:
        return None
    pid = reply.get("pid")
    if not isinstance(pid, int):
        return None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:  # the pid is someone else's now
            return pid
        time.sleep(0.05)
    raise WaldoUsageError(f"the waldo server (pid {pid}) is still finishing its commands")


@server_group.command("stop")
def server_stop() -> int:
    """Stop the server, once the commands it is running are done."""
    pid = _stop_and_wait()
    if pid is None:
        click.echo("no waldo server is running")
        return 0
    click.echo(f"waldo server stopped (pid {pid})")
    return 0


@server_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def server_status(as_json: bool) -> int:
    """Show the server's pid, uptime, searches served, version and memory.

    Exit status 0 when a server for this installation runs, 1 when none does.
    """
    status = client.ask("status")
    if status is None:
        if as_json:
            click.echo(json.dumps({"running": False}))
        else:
            click.echo("no waldo server is running")
        return EXIT_NO_MATCH
    identity = status.get("identity") or {}
    stale = client.mismatch(identity, client.identity())
    if as_json:
        click.echo(json.dumps({"running": True, "current": stale is None, **status}))
        return EXIT_MATCH
    idle = float(status.get("idle_timeout") or 0)
    lines = [
        f"waldo server: running, pid {status.get('pid')}, up {_duration(status.get('uptime'))}",
        f"searches served: {status.get('served')} ({status.get('running')} running now)",
        f"version: waldo {identity.get('version')}, Numba {identity.get('numba')}, "
        f"{identity.get('python')}"
        + ("" if stale is None else f" (stale: {stale}; commands run without it)"),
        f"memory: {float(status.get('memory') or 0) / 2**20:.1f} MiB resident (the server; "
        "each command's worker comes and goes)",
        f"idle timeout: {_duration(idle) if idle > 0 else 'none'}",
        f"socket: {status.get('socket')}",
        f"log: {status.get('log')}",
    ]
    click.echo("\n".join(lines))
    return EXIT_MATCH


def _duration(seconds: Any) -> str:
    value = float(seconds or 0)
    if value < 60:
        return f"{value:.0f} s"
    if value < 3600:
        return f"{value // 60:.0f} min {value % 60:.0f} s"
    return f"{value // 3600:.0f} h {value % 3600 // 60:.0f} min"
