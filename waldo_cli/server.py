"""The waldo server: NumPy, Numba and every kernel loaded once, a forked worker per command.

``waldo server start`` runs ``python -m waldo_cli.server`` in the
background. It imports everything a command needs, compiles or loads every
kernel, and then waits on a Unix socket (``client.socket_path()``) for the
console script's requests (``client.py``). Each request that runs a command
gets a worker: a child process forked from the server, which takes on the
client's standard streams and working directory (descriptors passed over
the socket), its argv, environment, umask, resource limits, niceness and
CPU affinity, runs the
command as ``waldo_cli.cli.main`` would in the client, and exits. The
server tells the client how the worker ended (its status, or the signal
that killed it), passes on the signals the client forwards, and ends the
worker if the client goes away.

Why a forked worker per request, rather than threads in one process:

* What a command changes is process-wide: the working directory, the
  umask, the environment, file descriptors 0-2 (which click and rich probe
  for a terminal), signal handlers (Ctrl-C, SIGPIPE), ``sys.exit``, and the
  state of the libraries it uses. A process of its own gives each command
  exactly the state an in-process run has, and takes it away afterwards.
* Fork is copy-on-write: the worker starts with NumPy, Numba and the
  machine code of every kernel already in memory, in about a millisecond,
  and whatever a command allocates is given back when it exits, so the
  server's own memory stays flat however many requests it serves.
* Several commands run at once, each on its own cores, and a command that
  crashes takes only its worker down.

The workers are forked after the kernels are loaded, so that none of them
compiles or loads anything, and before any thread starts, because fork
copies only the thread that calls it: a lock another thread held at that
moment (the import lock, a logger's, Numba's compiler lock, malloc's) would
stay locked forever in the child. So the server never starts a thread: the
kernels are warmed on one thread, the server's BLAS is asked for one
(``client.spawn_server``), and one ``selectors`` loop serves every socket
and learns of finished workers from SIGCHLD through a wake-up descriptor.
Workers start their own search threads after the fork.

A spare worker is forked as soon as a command ends (and at start), and
warms up with two tiny searches into /dev/null while no client waits; the
next request is handed to it over a socket pair. A new process's first
command pays for the fork, the pages copy-on-write copies on first write
and each module's first calls: about 20 ms of a small search, and 30 of a
``--help``, which the spare pays between requests. It is forked only where
the server holds no client's descriptor, so no spare keeps a client's pipe
open.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import io
import logging
import os
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from waldo_cli import client
from waldo_cli.client import Channel

_log = logging.getLogger("waldo.server")

# The signals a client may pass on to its worker.
_FORWARDABLE = frozenset(
    int(getattr(signal, name))
    for name in (*client.FORWARDED_SIGNALS, "SIGSTOP", "SIGCONT")
    if hasattr(signal, name)
)


@dataclass
class _Request:
    """A command running in a worker, and the client waiting for it."""

    channel: Channel | None
    pid: int
    started: float = field(default_factory=time.monotonic)


@dataclass
class _Spare:
    """A worker forked and warmed up ahead of a request, waiting on its end of a socket pair."""

    channel: Channel
    pid: int


class Server:
    """The socket loop: accept, check the peer, fork workers, report how they end.

    ``peer_uid`` reads the user id of a connection's other end (tests pass
    their own); connections from any user but ``uid`` are refused.
    """

    def __init__(
        self,
        folder: str,
        identity: dict[str, Any],
        idle_timeout: float = client.DEFAULT_IDLE_TIMEOUT,
        *,
        peer_uid: Callable[[Any], int | None] = client.peer_uid,
        uid: int | None = None,
        kernels: dict[str, float] | None = None,
    ) -> None:
        self.folder = folder
        self.path = client.socket_path(folder)
        self.identity = identity
        self.idle_timeout = idle_timeout
        self.peer_uid = peer_uid
        self.uid = os.getuid() if uid is None else uid
        self.kernels = kernels or {}
        self.started = time.time()
        self.served = self.refused = self.stale = 0
        self.requests: dict[int, _Request] = {}
        self.selector = selectors.DefaultSelector()
        self.listener: socket.socket | None = None
        self.stopping = False
        self.last_activity = time.monotonic()
        self.startup_environment = client.startup_environment(os.environ)
        self.fsencoding = [sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()]
        self._wake: tuple[socket.socket, socket.socket] | None = None
        self.lock: int | None = None  # the lock's descriptor, which workers must not keep
        # a worker forked and warmed up before the request that will use it
        # (``_make_spare``); ``serve`` turns this on
        self.prefork = False
        self.spare: _Spare | None = None

    # --- set-up -------------------------------------------------------------

    def bind(self) -> None:
        """Listen on the socket, created with umask 077 in the private folder."""
        client.make_private_dir(self.folder)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o077)
        try:
            # only the holder of the lock gets here: a socket left here is a dead server's
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            listener.bind(self.path)
        finally:
            os.umask(old)
        listener.listen(128)
        listener.setblocking(False)
        self.listener = listener
        self.selector.register(listener, selectors.EVENT_READ, self._accept)

    def handle_signals(self) -> None:
        """SIGCHLD wakes the loop; SIGTERM and SIGINT stop the server once its commands end."""
        reader, writer = socket.socketpair()
        reader.setblocking(False)
        writer.setblocking(False)
        self._wake = (reader, writer)
        signal.set_wakeup_fd(writer.fileno())
        self.selector.register(reader, selectors.EVENT_READ, self._reap)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        signal.signal(signal.SIGTERM, self._stop_signal)
        signal.signal(signal.SIGINT, self._stop_signal)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    def _stop_signal(self, signum: int, frame: Any) -> None:
        self.stopping = True

    # --- the loop ------------------------------------------------------------

    def run(self) -> None:
        """Serve until stopped, or idle for ``idle_timeout`` seconds (0: never)."""
        while True:
            if self.stopping:
                self._close_listener()
                self._drop_spare()
                if not self.requests:
                    break
            timeout = None
            if not self.requests and self.idle_timeout > 0:
                timeout = self.last_activity + self.idle_timeout - time.monotonic()
                if timeout <= 0:
                    _log.info("idle for %s s: stopping", _seconds(self.idle_timeout))
                    break
            for key, _ in self.selector.select(timeout):
                key.data(key.fileobj)
        self.close()

    def close(self) -> None:
        """Stop listening and let go of every descriptor (the workers are gone)."""
        self._close_listener()
        self._drop_spare()
        if self._wake is not None:
            signal.set_wakeup_fd(-1)
            for end in self._wake:
                end.close()
            self._wake = None
        self.selector.close()

    def _close_listener(self) -> None:
        if self.listener is None:
            return
        self.selector.unregister(self.listener)
        with contextlib.suppress(OSError):
            os.unlink(self.path)  # ours: nobody else binds here while we hold the lock
        self.listener.close()
        self.listener = None

    def _accept(self, listener: socket.socket) -> None:
        try:
            conn, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # out of descriptors: the client runs the command itself
            _log.warning("accept failed: %s", exc)
            return
        self.last_activity = time.monotonic()
        uid = self.peer_uid(conn)
        if uid != self.uid:
            self.refused += 1
            _log.warning(
                "refused a connection from user id %s (this server is %s's)", uid, self.uid
            )
            conn.close()
            return
        # a client sends its request at once; one that does not is not waited for long
        conn.settimeout(5.0)
        channel = Channel(conn)
        fds: list[int] = []
        try:
            message, fds = channel.receive(with_fds=True)
            if message is None:
                conn.close()
                return
            self._dispatch(channel, message, fds)
        except (OSError, ValueError) as exc:
            _log.warning("a request failed: %s", exc)
            conn.close()
        finally:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def _dispatch(self, channel: Channel, message: dict[str, Any], fds: list[int]) -> None:
        kind = message.get("kind")
        if kind == "status":
            channel.send(self.status())
            channel.sock.close()
        elif kind == "stop":
            channel.send({"ok": True, "pid": os.getpid()})
            channel.sock.close()
            _log.info("asked to stop")
            self.stopping = True
        elif kind == "run" and not self.stopping:
            self._run(channel, message, fds)
        else:
            channel.send({"ok": False, "reason": f"cannot {kind!r} now", "pid": os.getpid()})
            channel.sock.close()

    def refusal(self, message: dict[str, Any], fds: list[int]) -> tuple[str, bool] | None:
        """Why this server must not run a request (and whether it is stale), or None."""
        why = client.mismatch(self.identity, message.get("identity") or {})
        if why is not None:
            return why, True
        if client.startup_environment(message.get("env") or {}) != self.startup_environment:
            return "Python or Numba settings in the environment differ", False
        if message.get("fsencoding") != self.fsencoding:
            return "the file system encoding differs", False
        if len(fds) != 4 or not isinstance(message.get("argv"), list):
            return "a malformed request", False
        return _cannot_take_on(message)

    def _run(self, channel: Channel, message: dict[str, Any], fds: list[int]) -> None:
        refusal = self.refusal(message, fds)
        if refusal is not None:
            why, stale = refusal
            self.stale += stale
            _log.info("not running a command: %s", why)
            channel.send({"ok": False, "stale": stale, "reason": why, "pid": os.getpid()})
            channel.sock.close()
            return
        if self._hand_to_spare(channel, message, fds):
            return
        # the worker waits at this gate until the client knows it exists
        gate_in, gate_out = os.pipe()
        try:
            pid = os.fork()
        except OSError as exc:
            os.close(gate_in)
            os.close(gate_out)
            _log.warning("cannot fork a worker: %s", exc)
            channel.send({"ok": False, "reason": f"cannot fork: {exc}", "pid": os.getpid()})
            channel.sock.close()
            return
        if pid == 0:
            os.close(gate_out)
            _work(self, channel, message, fds, gate_in)  # never returns
        os.close(gate_in)
        request = _Request(channel, pid)
        self.requests[pid] = request
        self.served += 1
        try:
            channel.send({"ok": True, "worker": pid})
            os.write(gate_out, b"go")
        except OSError:
            request.channel = None  # the client is gone: the worker leaves at the gate
            channel.sock.close()
            return
        finally:
            os.close(gate_out)
        self._watch(request)

    def _watch(self, request: _Request) -> None:
        """Listen to the client of a running command: its signals, its going away."""
        assert request.channel is not None
        request.channel.sock.setblocking(False)
        self.selector.register(request.channel.sock, selectors.EVENT_READ, self._from_client)
        self._signals(request)  # any the client sent before the worker existed

    # --- the spare worker ------------------------------------------------------

    def _make_spare(self) -> None:
        """Fork a worker now, for the next request: it warms up while no client waits.

        A new process's first command pays for what a second one finds done
        (the pages copy-on-write gives it, modules' first calls, the fork
        itself): about 20 ms of a small search. The spare pays it between
        requests, by running two tiny searches into /dev/null, and then waits
        for its request. Made only where the server holds no client's
        descriptor (at start, and when a worker ends), so that a spare never
        keeps a client's pipe open.
        """
        if not self.prefork or self.spare is not None or self.stopping:
            return
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            pid = os.fork()
        except OSError as exc:
            _log.warning("cannot fork a spare worker: %s", exc)
            ours.close()
            theirs.close()
            return
        if pid == 0:
            ours.close()
            _wait_as_spare(self, theirs)  # never returns
        theirs.close()
        self.spare = _Spare(Channel(ours), pid)

    def _drop_spare(self) -> None:
        """Let the spare go: it sees its socket close and exits."""
        if self.spare is not None:
            self.spare.channel.sock.close()
            self.spare = None

    def _hand_to_spare(self, channel: Channel, message: dict[str, Any], fds: list[int]) -> bool:
        """Give a request to the spare worker, if there is one that lives; whether it took it."""
        spare, self.spare = self.spare, None
        if spare is None:
            return False
        try:
            # the client's connection goes too, for the worker to send the status on
            spare.channel.send({**message, "reply": True}, [*fds, channel.sock.fileno()])
        except OSError:  # it died: a worker is forked for this request instead
            spare.channel.sock.close()
            return False
        request = _Request(channel, spare.pid)
        self.requests[spare.pid] = request
        self.served += 1
        try:
            channel.send({"ok": True, "worker": spare.pid})
            spare.channel.send({"go": True})  # the gate: the client knows its worker
        except OSError:
            request.channel = None  # the client is gone: the worker leaves at the gate
            channel.sock.close()
            return True
        finally:
            spare.channel.sock.close()
        self._watch(request)
        return True

    def _from_client(self, conn: socket.socket) -> None:
        if conn.fileno() < 0:
            # closed (and unregistered) earlier in this round of events: the
            # worker told its client how the command ended, the client left,
            # and ``_reap`` was handed the worker's end before this
            return
        request = next(
            (r for r in self.requests.values() if r.channel and r.channel.sock is conn), None
        )
        if request is None or request.channel is None:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(conn)
            conn.close()
            return
        try:
            chunk = conn.recv(1 << 12)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            # the client is gone (killed, its terminal closed): so is its command
            with contextlib.suppress(OSError):
                os.kill(request.pid, signal.SIGTERM)
            self.selector.unregister(conn)
            conn.close()
            request.channel = None
            return
        request.channel.buffer += chunk
        self._signals(request)

    def _signals(self, request: _Request) -> None:
        while request.channel is not None:
            try:
                message = request.channel.next_message()
            except ValueError:
                return
            if message is None:
                return
            signum = message.get("signal")
            if isinstance(signum, int) and signum in _FORWARDABLE:
                with contextlib.suppress(OSError):
                    os.kill(request.pid, signum)

    def _reap(self, wake: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while wake.recv(4096):
                pass
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if self.spare is not None and pid == self.spare.pid:
                # a spare that dies before its request is not replaced: the
                # next requests get a worker forked for them, as without one
                _log.warning("the spare worker %d ended (status %d)", pid, status)
                self._drop_spare()
                self.prefork = False
                continue
            request = self.requests.pop(pid, None)
            if request is None:
                continue
            self.last_activity = time.monotonic()
            if os.WIFSIGNALED(status):
                end = {"signal": os.WTERMSIG(status)}
                if end["signal"] not in (signal.SIGPIPE, signal.SIGINT, signal.SIGTERM):
                    _log.warning("worker %d was killed by signal %d", pid, end["signal"])
            else:
                end = {"exit": os.waitstatus_to_exitcode(status)}
            if request.channel is not None:
                conn = request.channel.sock
                with contextlib.suppress(OSError):
                    conn.setblocking(True)
                    conn.settimeout(5.0)
                    request.channel.send(end)
                with contextlib.suppress(KeyError, ValueError):
                    self.selector.unregister(conn)
                conn.close()
            self._make_spare()

    def status(self) -> dict[str, Any]:
        """What ``waldo server status`` shows."""
        return {
            "ok": True,
            "pid": os.getpid(),
            "started": self.started,
            "uptime": time.time() - self.started,
            "served": self.served,
            "running": len(self.requests),
            "spare": self.spare.pid if self.spare is not None else None,
            "refused": self.refused,
            "stale_requests": self.stale,
            "memory": _resident_bytes(),
            "idle_timeout": self.idle_timeout,
            "socket": self.path,
            "log": client.log_path(),
            "identity": self.identity,
            "kernels": self.kernels,
        }


# --- the worker ---------------------------------------------------------------


def _work(
    server: Server, channel: Channel, request: dict[str, Any], fds: list[int], gate: int
) -> None:
    """In the forked child: become the client's process, run its command, exit as it ended."""
    try:
        forwarded = _leave_server(server)
        reply = channel.sock.detach()  # the client's connection: how the command ended
        if os.read(gate, 2) != b"go":
            os._exit(0)  # the client left before it learnt of us
        os.close(gate)
    except BaseException:  # noqa: BLE001 - a worker must end, and say why
        _could_not_start()
    _run_request(request, fds, forwarded, reply)


def _wait_as_spare(server: Server, sock: socket.socket) -> None:
    """In a spare worker: warm up, wait for a request on ``sock``, run it, exit as it ended."""
    try:
        forwarded = _leave_server(server)
        _warm_up()
        channel = Channel(sock)
        request, fds = channel.receive(with_fds=True)
        if request is None:
            os._exit(0)  # the server let us go
        reply = fds.pop() if request.get("reply") and fds else None
        # a signal sent to this process while it waited was not the client's
        # (the server passes those on only after the gate below)
        while signal.sigtimedwait(forwarded, 0) is not None:
            pass
        go, _ = channel.receive()
        sock.close()
        if not go or not go.get("go"):
            for fd in fds:
                os.close(fd)
            os._exit(0)  # the client left before it learnt of us
    except BaseException:  # noqa: BLE001 - a worker must end, and say why
        _could_not_start()
    _run_request(request, fds, forwarded, reply)


def _leave_server(server: Server) -> list[int]:
    """The first steps of a forked worker: hold signals, let go of the server's descriptors.

    Returns the signals held back until the command runs.
    """
    forwarded = [s for s in _FORWARDABLE if s not in (signal.SIGSTOP, signal.SIGCONT)]
    # Signals wait until the command runs (and so can be handled as in-process).
    signal.pthread_sigmask(signal.SIG_BLOCK, forwarded)
    client.die_with(os.getppid())
    signal.set_wakeup_fd(-1)
    for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    # the server's descriptors are not the command's
    if server.listener is not None:
        server.listener.close()
    for other in server.requests.values():
        if other.channel is not None:
            other.channel.sock.close()
    if server.spare is not None:
        server.spare.channel.sock.close()
    if server._wake is not None:
        for end in server._wake:
            end.close()
    server.selector.close()
    if server.lock is not None:
        os.close(server.lock)
    return forwarded


def _run_request(
    request: dict[str, Any], fds: list[int], forwarded: list[int], reply: int | None
) -> None:
    """Take on the client's process, run its command, exit with its status.

    ``reply``: the client's connection, on which the status is sent as soon
    as the command has ended (``_report``).
    """
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for signum in request.get("ignored") or []:
            with contextlib.suppress(OSError, ValueError):
                signal.signal(signum, signal.SIG_IGN)
        _become_client(request, fds)
    except BaseException:  # noqa: BLE001 - a worker must end, and say why
        _could_not_start()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, forwarded)
    status = _run_command(request["argv"])
    _report(reply, status)
    os._exit(status)


def _report(reply: int | None, status: int) -> None:
    """Tell the client how its command ended, before this process is torn down.

    A worker's exit takes about 10 ms (the kernel unmaps a copy of the
    server's memory), which the client would wait for if it learnt the
    status from the server's ``waitpid``. The client's streams are let go
    first, so a pipe's reader sees its end before the client does; the
    server still reaps the worker, and its message then finds the client
    gone. A command that ends by a signal (SIGPIPE, Ctrl-C) is reported as
    before, by the server, when the worker has died of it.
    """
    if reply is None:
        return
    with contextlib.suppress(OSError):
        client.let_go_of_streams()
        Channel(socket.socket(fileno=reply)).send({"exit": status})


def _could_not_start() -> NoReturn:
    _log.exception("a worker could not take on its client's process")
    with contextlib.suppress(OSError):
        os.write(2, b"waldo: error: the waldo server could not run this command; run it again\n")
    os._exit(2)


# Two tiny searches a spare worker runs before its request: the JSON a
# script reads and the text a person reads, each image its own pipe.
_WARM_UPS = (("--json",), ())


@functools.cache
def _warm_up_pictures() -> tuple[bytes, bytes]:
    """The warm-up's image and template as PNG files: 12×6 and 6×6, one row of windows.

    Made once, in the server, before it forks its spares.
    """
    from PIL import Image

    picture = Image.linear_gradient("L").resize((12, 6)).convert("RGB")
    image, template = (_png(picture.crop(box)) for box in ((0, 0, 12, 6), (3, 0, 9, 6)))
    return image, template


def _png(picture: Any) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def _warm_up() -> None:
    """Run two tiny ``waldo find`` commands into /dev/null, as a command would run.

    What a process's first command does once (its first calls into the
    modules, the pages fork shares until they are written) is then done
    before a client waits. The images come through pipes, so nothing is
    written to disk, and the search is one row of windows, so no search
    thread starts (a thread started here would keep the server's CPU
    affinity, not the client's). Whatever fails here fails quietly: the
    request still runs.
    """
    pngs = _warm_up_pictures()
    saved = (sys.stdin, sys.stdout, sys.stderr, sys.argv)
    try:
        client.let_go_of_streams()
        sys.stdin = _std_stream(0, False, ["utf-8", "strict", False, False], "<stdin>")
        sys.stdout = _std_stream(1, True, ["utf-8", "strict", False, False], "<stdout>")
        sys.stderr = _std_stream(2, True, ["utf-8", "backslashreplace", False, False], "<stderr>")
        for options in _WARM_UPS:
            pipes = []
            for data in pngs:
                read_end, write_end = os.pipe()
                os.write(write_end, data)  # small: fits the pipe's buffer
                os.close(write_end)
                pipes.append(read_end)
            argv = ["find", *(f"/dev/fd/{fd}" for fd in pipes), *options]
            try:
                _run_command(argv)
            finally:
                for fd in pipes:
                    os.close(fd)
    except Exception:  # noqa: BLE001 - a warm-up is a courtesy
        _log.exception("a spare worker's warm-up failed")
    finally:
        sys.stdin, sys.stdout, sys.stderr, sys.argv = saved


def _cannot_take_on(request: dict[str, Any]) -> tuple[str, bool] | None:
    """Why a worker could not take on the client's limits and priority, or None.

    A process may lower its resource limits and raise its niceness, not the
    reverse: a client with a higher hard limit (or a lower niceness) than
    the server's runs its command itself.
    """
    import resource

    def above(value: int, bound: int) -> bool:
        infinite = resource.RLIM_INFINITY
        return bound != infinite and (value == infinite or value > bound)

    for number, _, hard in request.get("limits") or []:
        try:
            _, own = resource.getrlimit(number)
        except (OSError, ValueError):
            return f"resource limit {number} is unknown here", False
        if above(hard, own):
            return f"resource limit {number} is higher than the server's", False
    nice = request.get("nice")
    if isinstance(nice, int) and nice < os.getpriority(os.PRIO_PROCESS, 0):
        return "the client runs at a higher priority than the server", False
    return None


def _become_client(request: dict[str, Any], fds: list[int]) -> None:
    """Take on the client's streams, directory, umask, environment, limits, affinity, locale."""
    stdin, stdout, stderr, cwd = fds
    for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
        os.dup2(fd, target)
    for fd in (stdin, stdout, stderr):
        if fd > 2:
            os.close(fd)
    os.fchdir(cwd)
    os.close(cwd)
    os.umask(int(request["umask"]))
    os.environ.clear()
    os.environ.update({str(k): str(v) for k, v in request["env"].items()})
    import resource

    for number, soft, hard in request.get("limits") or []:
        resource.setrlimit(number, (soft, hard))  # checked by Server.refusal
    nice = request.get("nice")
    if isinstance(nice, int):
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    cpus = request.get("cpus")
    if cpus and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, cpus)
    import locale

    with contextlib.suppress(locale.Error):
        locale.setlocale(locale.LC_CTYPE, "")
    specs = request["streams"]
    for fd, name in enumerate(("stdin", "stdout", "stderr")):
        stream = _std_stream(fd, fd > 0, specs[fd], f"<{name}>")
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)
    sys.argv = ["waldo", *request["argv"]]
    # the one default computed at import from the environment and the affinity
    from waldo_cli.pool import SHARED

    SHARED.set_threads(None)
    _blas_threads_as_the_client()


# What OpenBLAS calls its thread-count setter, as NumPy's wheels build it or not.
_BLAS_SETTERS = (
    "scipy_openblas_set_num_threads64_",
    "scipy_openblas_set_num_threads",
    "openblas_set_num_threads64_",
    "openblas_set_num_threads",
)


def _blas_threads_as_the_client() -> None:
    """Give OpenBLAS the threads it would have started in the client's own process.

    The server loads it with one thread (a pool of threads would not survive
    the fork), so a worker sets the count OpenBLAS picks at load: the first
    of OPENBLAS_NUM_THREADS, GOTO_NUM_THREADS, OMP_NUM_THREADS above 0, else
    one per core, at most the cores this process may use. ``waldo learn``'s
    solves then take as long as in-process, and give the same bits (the
    threads split the sums). Linux with NumPy's OpenBLAS only: elsewhere
    nothing is done.
    """
    setters = _blas_setters()
    if not setters:
        return
    from waldo_cli.pool import usable_cores

    count = usable_cores()
    for name in ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS"):
        with contextlib.suppress(ValueError):
            wanted = int(os.environ.get(name, "").strip() or 0)
            if wanted > 0:
                count = min(wanted, count)
                break
    for setter in setters:
        setter(count)


@functools.cache
def _blas_setters() -> list[Any]:
    """OpenBLAS's thread-count setters, one per copy loaded; found once, in the server.

    Reading the server's /proc/self/maps (Numba and LLVM map thousands of
    regions) took a worker about 8 ms of every request; ``load_everything``
    finds them before the first fork, and every worker inherits them.
    """
    import ctypes

    from waldo_cli.io import loaded_libraries

    setters = []
    for library in loaded_libraries("openblas"):
        setter = next((getattr(library, n) for n in _BLAS_SETTERS if hasattr(library, n)), None)
        if setter is not None:
            setter.argtypes = [ctypes.c_int]
            setters.append(setter)
    return setters


def _std_stream(fd: int, write: bool, spec: list[Any], name: str) -> io.TextIOWrapper:
    """A standard stream made as Python makes it at start-up, with the client's settings."""
    encoding, errors, line_buffering, write_through = spec
    mode = "wb" if write else "rb"
    unbuffered = write and write_through
    buffer: Any = open(fd, mode, buffering=0 if unbuffered else -1, closefd=False)  # noqa: SIM115
    raw = buffer if unbuffered else buffer.raw
    raw.name = name
    stream: Any = io.TextIOWrapper(
        buffer,
        encoding=encoding,
        errors=errors,
        newline="\n",
        line_buffering=bool(line_buffering),
        write_through=bool(write_through),
    )
    stream.mode = "w" if write else "r"
    return stream


def _run_command(argv: list[str]) -> int:
    """Run ``waldo ARGV`` here as the console script would; return the exit status.

    Ends as Python ends a script: SystemExit's code, a traceback and 1 for
    an uncaught exception, death by SIGINT for an uncaught Ctrl-C, and 120
    when stdout cannot be flushed at the end.
    """
    from waldo_cli.cli import main

    status = 0
    try:
        main(argv)
    except SystemExit as exc:
        status = _exit_status(exc.code)
    except KeyboardInterrupt:
        sys.excepthook(*sys.exc_info())
        _flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        status = 130
    except BaseException:  # noqa: BLE001 - as the interpreter does: a traceback, status 1
        sys.excepthook(*sys.exc_info())
        status = 1
    return 120 if not _flush() else status


def _exit_status(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    with contextlib.suppress(Exception):
        print(code, file=sys.stderr)
    return 1


def _flush() -> bool:
    """Flush stdout and stderr as the interpreter does at exit; False if stdout failed."""
    ok = True
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError) as exc:
            ok = ok and stream is not sys.stdout
            with contextlib.suppress(Exception):
                sys.stderr.write(f"Exception ignored in: {stream!r}\n{type(exc).__name__}: {exc}\n")
                sys.stderr.flush()
    return ok


# --- starting -----------------------------------------------------------------


def load_everything() -> dict[str, float]:
    """Import what commands use and load (or compile) every kernel; the compile seconds of each."""
    import waldo_cli.batch
    import waldo_cli.cli
    import waldo_cli.conv
    import waldo_cli.engine
    import waldo_cli.io
    import waldo_cli.peaks
    import waldo_cli.render
    import waldo_cli.report
    import waldo_cli.search
    import waldo_cli.variants  # noqa: F401
    from waldo_cli import jit

    with contextlib.suppress(ImportError):
        import rich.console
        import rich.progress
        import rich.table  # noqa: F401
    with contextlib.suppress(ImportError):
        import cmap  # noqa: F401  (the heatmap's colormaps)
    if sys.platform.startswith("linux"):
        import ctypes  # noqa: F401  (each worker asks prctl to die with the server)
    from PIL import Image

    Image.init()  # every image plugin, once, not in each worker
    _blas_setters()  # found once, not in each worker
    jit.skip_extension_scan(only_waldo=True)
    jit.load_fft()
    cached = all(jit.is_cached(name) for name in jit.kernel_names())
    from waldo_cli.pool import usable_cores

    return jit.warm_all(jobs=1 if cached else usable_cores())


def _threads() -> int:
    """The threads this process runs (all of them, not only Python's)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        import threading

        return threading.active_count()


def _resident_bytes() -> int:
    """The resident memory of this process now (Linux), else its peak."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak if sys.platform == "darwin" else peak * 1024)


def _seconds(value: float) -> str:
    return f"{value:g}"


def _lock(folder: str) -> int | None:
    """Hold this installation's lock for the server's life; None if another server has it.

    Waits a while: a stale server that was asked to stop finishes its
    commands and lets go.
    """
    import fcntl

    fd = os.open(client.lock_path(folder), os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + 30.0
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except OSError:
            if time.monotonic() > deadline:
                os.close(fd)
                return None
            time.sleep(0.1)


def serve(idle_timeout: float = client.DEFAULT_IDLE_TIMEOUT) -> int:
    """Run a server for this installation until it is stopped or idle; the exit status."""
    log = client.log_path()
    client.make_private_dir(os.path.dirname(log))
    handler = logging.FileHandler(log)
    handler.setFormatter(logging.Formatter("%(asctime)s waldo server[%(process)d] %(message)s"))
    _log.addHandler(handler)
    _log.setLevel(logging.INFO)
    _log.propagate = False
    folder = client.runtime_dir()
    client.make_private_dir(folder)
    lock = _lock(folder)
    if lock is None:
        _log.info("another server holds %s: leaving", client.lock_path(folder))
        return 0
    os.ftruncate(lock, 0)
    os.write(lock, f"{os.getpid()}\n".encode())
    started = time.perf_counter()
    kernels = load_everything()
    _warm_up_pictures()  # once here, not in every spare
    identity = client.identity()
    _log.info(
        "loaded in %.1f s (compiled: %s); waldo %s, %s",
        time.perf_counter() - started,
        ", ".join(f"{k} {v:.1f} s" for k, v in sorted(kernels.items())) or "none",
        identity["version"],
        sys.executable,
    )
    server = Server(folder, identity, idle_timeout, kernels=kernels)
    server.lock = lock
    server.handle_signals()
    server.bind()
    server.prefork = True
    if _threads() > 1:
        _log.warning("%d threads before the first fork; workers may hang", _threads())
    gc.collect()
    gc.freeze()  # the workers' collector leaves the server's objects (and their pages) alone
    _log.info("listening on %s (idle timeout %s s)", server.path, _seconds(idle_timeout))
    server._make_spare()
    server.run()
    _log.info("stopped after %d commands", server.served)
    return 0


def main(argv: list[str] | None = None) -> None:
    """``python -m waldo_cli.server [--idle-timeout SECONDS]``: what ``waldo server start`` runs."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m waldo_cli.server")
    parser.add_argument("--idle-timeout", type=float, default=client.DEFAULT_IDLE_TIMEOUT)
    args = parser.parse_args(argv)
    sys.exit(serve(args.idle_timeout))


if __name__ == "__main__":
    main()
