"""The ``waldo`` console script: hand the command to a running waldo server, else run it here.

A new Python process pays about half a second before it can search: NumPy,
Numba and the cached kernels load on every run. A waldo server (``waldo
server start``, ``server.py``) keeps them loaded; this module is the client
the console script runs first. It imports nothing but the standard library
(no click, NumPy or Numba) and, for ``find`` and ``conv``, asks the server
to run the command as this process would: it passes its own standard
streams and working directory as file descriptors over a Unix socket
(SCM_RIGHTS), with argv, the environment, the umask, the CPU affinity,
the resource limits (``ulimit``) and the scheduling priority (``nice``);
it forwards the signals it gets (Ctrl-C, ``timeout``'s SIGTERM, Ctrl-Z) and
ends as the command ended: the same exit status, or killed by the same
signal (SIGPIPE: 141 in a shell). Everything else, every command whose
arguments name something only this process has (``/dev/fd/63`` from
bash's ``<(...)``, ``/dev/tty``), and every case where no server for this
exact installation answers or can take on this process's limits, runs in
this process (``waldo_cli.cli.main``), so the output is the same either way.

``WALDO_SERVER=off`` never uses a server; ``WALDO_SERVER=auto`` starts one
in the background when none answers (that call runs here) and replaces a
stale one. The socket lives in ``$XDG_RUNTIME_DIR/waldo/`` (else
``<user cache dir>/server/``), a folder of mode 0700 that only its owner
may use; both ends check that the other runs as the same user.

This module also holds what client and server must agree on: the
installation's identity, the paths and the framing of messages.

It is written for start-up time: it imports no ``typing``, and it uses the
interpreter's built-in ``_socket``, ``_signal`` and ``marshal`` rather than
``socket``, ``signal`` and ``json``, whose imports (``selectors``,
``enum``, ``re``) would cost the client more than all its own work.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing itself costs the client a few milliseconds
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

# The message format; a server with another one is stale.
PROTOCOL = 1
# Commands that compute, and so are worth a server; the rest start fast anyway.
COMPUTE_COMMANDS = frozenset({"find", "conv", "learn"})
# How long a server lives without a request, by default (seconds).
DEFAULT_IDLE_TIMEOUT = 15 * 60.0
# Environment variables read only when Python or Numba start, so a server
# started with other values would not behave as this process would (the
# others are set in the worker as the client has them). PYTHONIOENCODING
# and PYTHONUNBUFFERED are not among them: the worker copies the client's
# streams themselves.
_STARTUP_PREFIXES = ("PYTHON", "NUMBA_")
_STARTUP_EXEMPT = frozenset(
    {"PYTHONIOENCODING", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "NUMBA_NUM_THREADS"}
)
# How long a client waits for a server to take its request.
_ANSWER_SECONDS = 10.0
# Signals the client passes on to the worker; Ctrl-Z (SIGTSTP) is handled apart.
FORWARDED_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")

_PACKAGE = os.path.dirname(os.path.abspath(__file__))


def supported() -> bool:
    """Whether this platform can run a server: Unix sockets, descriptor passing and fork."""
    import _socket

    return (
        hasattr(_socket, "AF_UNIX")
        and hasattr(_socket, "SCM_RIGHTS")
        and hasattr(_socket.socket, "sendmsg")
        and hasattr(os, "fork")
        and (hasattr(_socket, "SO_PEERCRED") or hasattr(_socket, "LOCAL_PEERCRED"))
    )


# --- where things are ---------------------------------------------------------


def user_cache_dir() -> str:
    """The folder of waldo in the user's cache directory: platformdirs' ``user_cache_dir``.

    On Linux (``$XDG_CACHE_HOME`` or ``~/.cache``) and macOS
    (``~/Library/Caches``) worked out here as platformdirs does, because
    importing platformdirs would cost the client more than all its own work
    (tests/test_server.py checks that the two agree); elsewhere platformdirs.
    """
    if sys.platform.startswith("linux"):
        base = os.environ.get("XDG_CACHE_HOME", "")
        if not base.strip():
            base = os.path.expanduser("~/.cache")
        return os.path.join(base, "waldo")
    if sys.platform == "darwin":
        return os.path.join(os.path.expanduser("~/Library/Caches"), "waldo")
    import platformdirs

    return platformdirs.user_cache_dir("waldo", appauthor=False)


def runtime_dir() -> str:
    """The folder of the server's socket and lock: ``$XDG_RUNTIME_DIR/waldo``, else the cache's.

    XDG_RUNTIME_DIR counts only if it is an absolute path to a folder this
    user owns that nobody else may enter. Never a fixed name in /tmp, which
    another user could create first.
    """
    xdg = os.environ.get("XDG_RUNTIME_DIR", "")
    if os.path.isabs(xdg) and _is_private_dir(xdg):
        return os.path.join(xdg, "waldo")
    return os.path.join(user_cache_dir(), "server")


def _is_private_dir(path: str) -> bool:
    """A real folder (not a link) that this user owns and only this user may use (mode 0700)."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    import stat

    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and st.st_mode & 0o077 == 0


def make_private_dir(path: str) -> None:
    """Create ``path`` with mode 0700 (its parents as needed), or check that it is so.

    Raises
    ------
    PermissionError
        It exists but is a link, another user's, or open to others.
    """
    old = os.umask(0o077)
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    finally:
        os.umask(old)
    if not _is_private_dir(path):
        raise PermissionError(
            f"{path}: the waldo server's folder must be yours alone (mode 0700, not a link)"
        )


def _hasher() -> Any:
    """A BLAKE2b hasher, the interpreter's own (hashlib loads OpenSSL): 3 times SHA-256's speed."""
    try:
        from _blake2 import blake2b
    except ImportError:
        from hashlib import blake2b
    return blake2b(digest_size=16)


def _python() -> str:
    """The interpreter and its environment (a venv's ``python`` and ``python3`` are one)."""
    return f"{os.path.realpath(sys.executable)} ({sys.prefix})"


def installation_key() -> str:
    """A short name for this installation (its Python environment and its package folder)."""
    digest = _hasher()
    text = f"{sys.prefix}\0{_PACKAGE}".encode("utf-8", "surrogateescape")
    digest.update(text)
    return str(digest.hexdigest()[:12])


def socket_path(folder: str | None = None) -> str:
    """The server's socket for this installation."""
    return os.path.join(folder or runtime_dir(), f"{installation_key()}.sock")


def lock_path(folder: str | None = None) -> str:
    """The lock a server holds while it lives (one server per installation)."""
    return os.path.join(folder or runtime_dir(), f"{installation_key()}.lock")


def log_path() -> str:
    """The server's log file, in the user's cache directory."""
    return os.path.join(user_cache_dir(), "server", f"{installation_key()}.log")


# --- who is speaking ---------------------------------------------------------


def package_hash() -> str:
    """A hash of every file of the installed ``waldo_cli`` package (bytecode caches aside)."""
    digest = _hasher()
    for folder, dirs, files in os.walk(_PACKAGE):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            path = os.path.join(folder, name)
            try:
                with open(path, "rb") as fh:
                    data = fh.read()
            except OSError:
                data = b"\xff"  # unreadable: still a difference from a readable one
            digest.update(os.path.relpath(path, _PACKAGE).encode("utf-8", "surrogateescape"))
            digest.update(len(data).to_bytes(8, "little") + data)
    return str(digest.hexdigest())


def distribution_version(name: str) -> str:
    """The installed version of a distribution, from its ``.dist-info`` folder's name.

    Found where ``import`` would find the package, without importing it
    (``import numba`` takes a third of a second) and without
    ``importlib.metadata`` (slower to import than this whole client).
    """
    prefix = name.lower() + "-"
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        if f"{name}.py" not in names and not (
            name in names and os.path.isdir(os.path.join(entry or ".", name))
        ):
            continue  # (a script of that name in a bin folder is not the package)
        for candidate in names:
            low = candidate.lower()
            if low.startswith(prefix) and low.endswith((".dist-info", ".egg-info")):
                return candidate[len(prefix) :].rsplit(".", 1)[0].split("-")[0]
        return "unknown"
    return "missing"


def identity() -> dict[str, str | int]:
    """What a server must share with this process to run its commands: same code, same Python."""
    from waldo_cli import __version__

    return {
        "protocol": PROTOCOL,
        "version": __version__,
        "files": package_hash(),
        "python": _python(),
        "numba": distribution_version("numba"),
    }


def startup_environment(environ: dict[str, str] | os._Environ[str]) -> dict[str, str]:
    """The variables of ``environ`` that only count when Python or Numba start."""
    return {
        k: v
        for k, v in environ.items()
        if k.startswith(_STARTUP_PREFIXES) and k not in _STARTUP_EXEMPT
    }


def mismatch(server: Mapping[str, object], client: Mapping[str, object]) -> str | None:
    """Why a server with ``server``'s identity must not run ``client``'s command, or None.

    >>> mismatch({"protocol": 1, "version": "1"}, {"protocol": 1, "version": "2"})
    'version differs (server 1, client 2)'
    """
    for key in ("protocol", "version", "files", "python", "numba"):
        if server.get(key) != client.get(key):
            return f"{key} differs (server {server.get(key)}, client {client.get(key)})"
    return None


# --- messages ------------------------------------------------------------------


class Channel:
    """Length-prefixed messages over a Unix stream socket, with file descriptors when asked.

    A message is a dict of str, int, float, bool, None, lists and dicts,
    sent as ``marshal`` data (built in: no import) after its length (4
    bytes, big-endian). Both ends check who the other is before reading.
    """

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.buffer = b""

    def send(self, message: dict[str, Any], fds: list[int] | None = None) -> None:
        """Send one message, with the descriptors ``fds`` if given (SCM_RIGHTS)."""
        import marshal

        data = marshal.dumps(message)
        frame = len(data).to_bytes(4, "big") + data
        if fds:
            import _socket
            from array import array

            rights = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, array("i", fds))]
            sent = self.sock.sendmsg([frame], rights)
            frame = frame[sent:]
        if frame:
            self.sock.sendall(frame)

    def next_message(self) -> dict[str, Any] | None:
        """A whole message already read, if there is one."""
        import marshal

        if len(self.buffer) < 4:
            return None
        size = int.from_bytes(self.buffer[:4], "big")
        if len(self.buffer) < 4 + size:
            return None
        data, self.buffer = self.buffer[4 : 4 + size], self.buffer[4 + size :]
        try:
            message = marshal.loads(data)
        except (EOFError, TypeError) as exc:
            raise ValueError(f"a malformed message: {exc}") from None
        if not isinstance(message, dict):
            raise ValueError("a message is a dict")
        return message

    def receive(self, with_fds: bool = False) -> tuple[dict[str, Any] | None, list[int]]:
        """The next message and the descriptors sent with it; (None, []) at the stream's end."""
        fds: list[int] = []
        while True:
            message = self.next_message()
            if message is not None:
                return message, fds
            if with_fds and not fds:
                import _socket
                from array import array

                chunk, ancillary, _, _ = self.sock.recvmsg(1 << 16, _socket.CMSG_LEN(8 * 4))
                for level, kind, data in ancillary:
                    if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
                        fds += array("i", data[: len(data) - len(data) % 4])
            else:
                chunk = self.sock.recv(1 << 16)
            if not chunk:
                for fd in fds:
                    os.close(fd)
                return None, []
            self.buffer += chunk


def peer_uid(sock: Any) -> int | None:
    """The user id of the process at the other end of a Unix socket (None if unknown)."""
    import _socket

    try:
        if hasattr(_socket, "SO_PEERCRED"):  # Linux: struct ucred {pid_t, uid_t, gid_t}
            raw = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
        elif hasattr(_socket, "LOCAL_PEERCRED"):  # macOS, BSD: the xucred getpeereid reads
            # struct xucred {u_int cr_version; uid_t cr_uid; short cr_ngroups; gid_t cr_groups[16]}
            raw = sock.getsockopt(0, _socket.LOCAL_PEERCRED, 76)
        else:
            return None
    except OSError:
        return None
    return int.from_bytes(raw[4:8], sys.byteorder)


def connect(path: str | None = None, timeout: float | None = None) -> Any:
    """A socket connected to this installation's server, or None when none answers.

    Refuses a server whose folder is not private or that runs as another user.
    """
    import _socket

    path = path or socket_path()
    if not _is_private_dir(os.path.dirname(path)):
        return None
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        return None
    if peer_uid(sock) != os.getuid():
        sock.close()
        return None
    return sock


def ask(kind: str, timeout: float = 10.0, path: str | None = None) -> dict[str, Any] | None:
    """Send a ``status`` or ``stop`` request to this installation's server; its answer or None."""
    try:
        sock = connect(path, timeout=timeout)
    except OSError:
        return None
    if sock is None:
        return None
    try:
        channel = Channel(sock)
        channel.send({"kind": kind})
        return channel.receive()[0]
    except (OSError, ValueError):
        return None
    finally:
        sock.close()


# --- starting a server ---------------------------------------------------------


def spawn_server(idle_timeout: float | None = None) -> Any:
    """Start a server in the background, detached from this terminal; return its Popen.

    It writes to the log file; it answers once its kernels are loaded.
    """
    import subprocess

    log = log_path()
    make_private_dir(os.path.dirname(log))
    command = [sys.executable, "-m", "waldo_cli.server"]
    if idle_timeout is not None:
        command += ["--idle-timeout", repr(float(idle_timeout))]
    # the server's own libraries stay single-threaded: it forks a worker
    # per request, and fork copies only the thread that calls it
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    with open(log, "ab") as out:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            cwd="/",
            env=env,
            start_new_session=True,
            close_fds=True,
        )


def _server_starting() -> bool:
    """Whether a server holds this installation's lock (starting, or running)."""
    try:
        import fcntl

        fd = os.open(lock_path(), os.O_RDONLY)
    except (ImportError, OSError):
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def _start_in_background(stale_pid: int | None = None) -> None:
    """WALDO_SERVER=auto: end a stale server, start a new one, and do not wait for it."""
    import _signal

    if stale_pid is not None:
        try:
            os.kill(stale_pid, _signal.SIGTERM)  # it finishes its requests, then leaves
        except OSError:
            pass
    elif _server_starting():
        return
    try:
        spawn_server()
    except OSError:
        pass


# --- running a command in the server --------------------------------------------


class _Relay:
    """Passes the signals the client gets to its worker, while the command runs."""

    def __init__(self, channel: Channel) -> None:
        import _signal

        self.channel = channel
        self.previous: dict[int, Any] = {}
        self.sent: list[int] = []
        for name in FORWARDED_SIGNALS:
            signum = getattr(_signal, name, None)
            if signum is None or _signal.getsignal(signum) == _signal.SIG_IGN:
                continue  # ignored by whoever started us: the worker ignores it too
            self.previous[signum] = _signal.signal(signum, self.forward)
        if hasattr(_signal, "SIGTSTP") and _signal.getsignal(_signal.SIGTSTP) == _signal.SIG_DFL:
            self.previous[_signal.SIGTSTP] = _signal.signal(_signal.SIGTSTP, self.stop)
            self.previous[_signal.SIGCONT] = _signal.signal(_signal.SIGCONT, self.resume)

    def forward(self, signum: int, frame: Any) -> None:
        """Pass ``signum`` on to the worker (through the server, which knows its pid)."""
        self.sent.append(signum)
        try:
            self.channel.send({"signal": signum})
        except OSError:
            pass  # the server is gone: the wait for the worker's end says so

    def stop(self, signum: int, frame: Any) -> None:
        """Ctrl-Z: stop the worker, then this process, as the shell expects."""
        import _signal

        self.forward(_signal.SIGSTOP, frame)
        _signal.signal(_signal.SIGTSTP, _signal.SIG_DFL)
        os.kill(os.getpid(), _signal.SIGTSTP)

    def resume(self, signum: int, frame: Any) -> None:
        """Continued after Ctrl-Z (``fg``, ``bg``): so is the worker."""
        import _signal

        _signal.signal(_signal.SIGTSTP, self.stop)
        self.forward(_signal.SIGCONT, frame)

    def restore(self, replay: bool = False) -> None:
        """Put the handlers back as they were; with ``replay``, take the signals sent so far back.

        Called once the command is to run in this process after all: a
        Ctrl-C pressed meanwhile then interrupts it here.
        """
        import _signal

        for signum, handler in self.previous.items():
            _signal.signal(signum, handler)
        self.previous = {}
        if replay:
            for signum in dict.fromkeys(self.sent):
                if signum not in (_signal.SIGSTOP, _signal.SIGCONT):
                    os.kill(os.getpid(), signum)
        self.sent = []


def _ignored_signals() -> list[int]:
    import _signal

    return [
        int(getattr(_signal, name))
        for name in FORWARDED_SIGNALS
        if hasattr(_signal, name) and _signal.getsignal(getattr(_signal, name)) == _signal.SIG_IGN
    ]


# Paths that mean something else in another process: a descriptor of this
# one (bash's ``<(...)`` gives ``/dev/fd/63``), this process's own /proc
# entry, or the controlling terminal (a server's worker has none).
_PROCESS_PATHS = ("/dev/fd/", "/proc/self/", "/proc/thread-self/")
_STANDARD_FDS = frozenset({"0", "1", "2"})


def names_process_state(argv: list[str]) -> bool:
    """Whether an argument names something only this process has (then it runs here).

    ``/dev/fd/0`` to ``2`` and ``/dev/stdin``, ``/dev/stdout`` and
    ``/dev/stderr`` are fine: the worker has this process's standard streams.

    >>> names_process_state(["find", "/dev/fd/63", "t.png"])
    True
    >>> names_process_state(["find", "/dev/stdin", "t.png", "--overlay=/dev/fd/1"])
    False
    """
    own = (*_PROCESS_PATHS, f"/proc/{os.getpid()}/")
    for arg in argv:
        if "/dev/tty" in arg:
            return True
        for prefix in own:
            at = arg.find(prefix)
            if at < 0:
                continue
            rest = arg[at + len(prefix) :]
            if prefix == "/dev/fd/":
                if rest.split("/", 1)[0] not in _STANDARD_FDS:
                    return True
            elif not (rest.startswith("fd/") and rest[3:].split("/", 1)[0] in _STANDARD_FDS):
                return True
    return False


def _limits() -> list[list[int]]:
    """The resource limits (``ulimit``) of this process: [resource, soft, hard] for each."""
    try:
        import resource
    except ImportError:
        return []
    limits = []
    for name in dir(resource):
        if name.startswith("RLIMIT_") and name != "RLIMIT_OFILE":  # OFILE is NOFILE
            number = getattr(resource, name)
            try:
                soft, hard = resource.getrlimit(number)
            except (OSError, ValueError):
                continue
            limits.append([number, soft, hard])
    return limits


def _niceness() -> int | None:
    """The scheduling priority (``nice``) of this process, or None where it cannot be read."""
    try:
        return os.getpriority(os.PRIO_PROCESS, 0)
    except (AttributeError, OSError):
        return None


def _streams() -> list[list[Any]] | None:
    """How this process's stdin, stdout and stderr are set up, for the worker to copy."""
    streams = []
    for stream in (sys.stdin, sys.stdout, sys.stderr):
        if stream is None or not hasattr(stream, "buffer"):
            return None
        streams.append(
            [
                stream.encoding,
                stream.errors,
                stream.line_buffering,
                getattr(stream, "write_through", False),
            ]
        )
    return streams


def run_in_server(argv: list[str], auto: bool) -> int | None:
    """Run ``waldo ARGV`` in this installation's server; its exit status, or None to run it here.

    A command killed by a signal kills this process with the same signal.
    """
    if not supported() or names_process_state(argv):
        return None
    streams = _streams()
    if streams is None:  # a closed standard stream: only this process can reproduce that
        return None
    try:
        folder = runtime_dir()
        # a server that does not take the request within this time (stopped,
        # swamped) is not waited for: the command runs here
        sock = connect(socket_path(folder), timeout=_ANSWER_SECONDS)
    except OSError:
        return None
    if sock is None:
        if auto:
            _start_in_background()
        return None
    try:
        return _run(sock, argv, auto, streams)
    finally:
        sock.close()


def _run(sock: Any, argv: list[str], auto: bool, streams: list[list[Any]]) -> int | None:
    """The request, the wait, and the end: ``run_in_server`` once connected."""
    try:
        cwd = os.open(".", os.O_RDONLY)
    except OSError:
        return None
    umask = os.umask(0o022)
    os.umask(umask)
    request = {
        "kind": "run",
        "identity": identity(),
        "argv": argv,
        "env": dict(os.environ),
        "umask": umask,
        "streams": streams,
        "cpus": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "limits": _limits(),
        "nice": _niceness(),
        "ignored": _ignored_signals(),
        "fsencoding": [sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()],
    }
    channel = Channel(sock)
    # signals from here on go to the worker (the server holds them until it exists)
    relay = _Relay(channel)
    worker: Any = None
    try:
        try:
            channel.send(request, [0, 1, 2, cwd])
            reply, _ = channel.receive()
        except (OSError, ValueError):
            reply = None
        finally:
            os.close(cwd)
        if reply is None or not reply.get("ok") or not isinstance(reply.get("worker"), int):
            relay.restore(replay=True)  # this process runs the command: the signals are its own
            if reply is not None and auto and reply.get("stale"):
                pid = reply.get("pid")
                _start_in_background(pid if isinstance(pid, int) else None)
            return None
        worker = reply["worker"]
        sock.settimeout(None)  # the command takes as long as it takes
        while True:
            try:
                message, _ = channel.receive()
            except (OSError, ValueError):
                message = None
            if message is None:
                break
            if isinstance(message.get("exit"), int):
                return int(message["exit"])
            elif isinstance(message.get("signal"), int):
                _die_of(int(message["signal"]))
    finally:
        relay.restore()
    _server_died(worker)
    return 2


def _server_died(worker: Any) -> None:
    """The server died mid-request: stop its worker, say so in one line."""
    import _signal

    # the worker must not write on after we have left (where the server's
    # death did not already end it)
    if isinstance(worker, int):
        try:
            os.kill(worker, _signal.SIGKILL)
        except OSError:
            pass
    try:
        log = log_path()
    except Exception:  # noqa: BLE001 - the one line must come out, whatever the cache dir does
        log = "its log"
    message = (
        f"waldo: error: the waldo server stopped during this command (see {log}); run it again\n"
    )
    os.write(2, message.encode(errors="replace"))


# --- help, answered without Click ------------------------------------------

HELP_FLAGS = ("-h", "--help")
# Bump when the help cache's layout changes.
_HELP_FORMAT = 1


def help_request(argv: list[str]) -> bool:
    """Whether ``argv`` only asks for help: ``waldo``, or command names then ``-h``/``--help``.

    Always False where the user's folders cannot be told private (no ``os.getuid``).
    """
    if not hasattr(os, "getuid") or (argv and argv[-1] not in HELP_FLAGS):
        return False
    return not any(word.startswith("-") for word in argv[:-1])


def _columns() -> int:
    """The terminal's columns as ``shutil.get_terminal_size`` gives them, which Click's help reads.

    ``COLUMNS`` when it is a positive number, else the size of the terminal
    on the standard output, else 80 (``shutil`` costs the client an import).
    """
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


def _help_path() -> str:
    return os.path.join(user_cache_dir(), "help", f"{installation_key()}.marshal")


def _help_stamp() -> tuple[object, ...]:
    """What the help text depends on besides argv and the width: waldo's files, Click, Python."""
    return (_HELP_FORMAT, package_hash(), distribution_version("click"), _python())


def _help_key(argv: list[str]) -> str:
    return "\0".join([str(_columns()), *argv])


def _kept_texts(path: str, stamp: tuple[object, ...]) -> dict[Any, Any] | None:
    """The help texts kept in ``path``, if they carry ``stamp``; None for anything else.

    Read only from a folder and a file of this user's that nobody else may
    write into (``marshal`` must not be fed another user's bytes).
    """
    import marshal

    if not _is_private_dir(os.path.dirname(path)):
        return None
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        with open(fd, "rb") as fh:
            st = os.fstat(fh.fileno())
            if st.st_uid != os.getuid() or st.st_mode & 0o022:
                return None
            saved = marshal.load(fh)
    except (OSError, EOFError, ValueError, TypeError):
        return None
    if not isinstance(saved, dict) or saved.get("stamp") != stamp:
        return None
    texts = saved.get("texts")
    return texts if isinstance(texts, dict) else None


def cached_help(argv: list[str]) -> str | None:
    """The help text Click printed for ``argv`` at this width, if this installation saved it."""
    texts = _kept_texts(_help_path(), _help_stamp())
    text = texts.get(_help_key(argv)) if texts is not None else None
    return text if isinstance(text, str) else None


def save_help(argv: list[str], text: str) -> None:
    """Keep the help text Click printed for ``argv``, for the next ``cached_help`` (best effort).

    One file per installation in waldo's cache folder, written whole and
    renamed into place; stamped with the package's files, Click's version
    and the Python, so any change to them makes it void.
    """
    import marshal

    path = _help_path()
    partial = f"{path}.{os.getpid()}.part"
    stamp = _help_stamp()
    try:
        make_private_dir(os.path.dirname(path))
        texts = _kept_texts(path, stamp) or {}
        texts[_help_key(argv)] = text
        with open(partial, "wb") as fh:
            marshal.dump({"stamp": stamp, "texts": texts}, fh)
        os.replace(partial, path)
    except (OSError, ValueError):
        try:
            os.unlink(partial)
        except OSError:
            pass


def _print_help(text: str) -> int | None:
    """Write the help text and a newline as Click's ``echo`` would; None if nothing could be.

    stdout is written as ``waldo_cli.cli.main`` sets it up (its encoding,
    ``backslashreplace`` for what it cannot take), straight to its file
    descriptor. A failure before the first byte leaves it to the in-process
    run, which reports it as it always does; a closed pipe later ends this
    process by SIGPIPE, as the in-process run ends.
    """
    stream = sys.stdout
    if stream is None:
        return None
    import codecs

    try:
        encoding = codecs.lookup(stream.encoding or "utf-8").name
        if encoding == "ascii":
            # Click takes an ASCII stream for a misconfigured one and writes UTF-8
            data = (text + "\n").encode("utf-8", "replace")
        else:
            data = (text + "\n").encode(encoding, "backslashreplace")
        fd = stream.fileno()
    except (AttributeError, LookupError, OSError, ValueError):
        return None
    written = 0
    while written < len(data):
        try:
            written += os.write(fd, data[written:])
        except InterruptedError:
            continue
        except OSError as exc:
            if written == 0:
                return None
            import _signal
            import errno

            if exc.errno == errno.EPIPE:
                _die_of(_signal.SIGPIPE)
            message = f"waldo: error: cannot write the output: {exc.strerror or exc}\n"
            try:
                os.write(2, message.encode(errors="replace"))
            except OSError:
                pass
            return 2
    return 0


def let_go_of_streams() -> None:
    """Point descriptors 0, 1 and 2 at /dev/null: a forked helper's, done with the user's streams.

    A pipe's reader then sees its end when the process that runs the
    command lets go, not when the helper ends.
    """
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if null > 2:
        os.close(null)


def die_with(parent: int) -> None:
    """Linux: be killed (SIGKILL) when ``parent`` dies; end now if it has already died.

    For a process forked to work for another (a server's worker, a child
    compiling kernels for a ``waldo`` command), so that none works on, or
    holds a descriptor open, after the process it works for is gone.
    Elsewhere nothing is done.
    """
    if not sys.platform.startswith("linux"):
        return
    import _signal
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, _signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it died before we asked
        os._exit(2)


def _die_of(signum: int) -> None:
    """End this process as the worker ended: killed by ``signum`` (SIGPIPE: 141 in a shell)."""
    import _signal

    for step in (
        lambda: _signal.signal(signum, _signal.SIG_DFL),
        lambda: _signal.pthread_sigmask(_signal.SIG_UNBLOCK, [signum]),
        lambda: os.kill(os.getpid(), signum),
    ):
        try:
            step()
        except (OSError, ValueError):
            pass  # SIGKILL and SIGSTOP have no handler to reset
    os._exit(128 + signum)  # where the signal did not end us, the status a shell would show


def main() -> None:
    """Entry point of the ``waldo`` console script."""
    argv = sys.argv[1:]
    if help_request(argv) and "_WALDO_COMPLETE" not in os.environ:
        try:
            text = cached_help(argv)
            status = None if text is None else _print_help(text)
        except KeyboardInterrupt:  # as the in-process run says it
            os.write(2, b"waldo: interrupted\n")
            sys.exit(130)
        if status is not None:
            sys.exit(status)
    mode = os.environ.get("WALDO_SERVER", "").strip().lower()
    if (
        mode != "off"
        and argv
        and argv[0] in COMPUTE_COMMANDS
        and "_WALDO_COMPLETE" not in os.environ  # shell completion: Click, here
    ):
        status = run_in_server(argv, auto=mode == "auto")
        if status is not None:
            sys.exit(status)
    from waldo_cli.cli import main as run_here

    run_here(argv)
