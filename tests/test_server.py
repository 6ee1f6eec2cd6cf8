"""The waldo server: the same bytes and statuses as in-process, private, never stale, robust.

Every behaviour is run twice through the installed ``waldo`` script: once
through a live server (started by the fixture in a temporary runtime
folder, XDG_RUNTIME_DIR) and once with WALDO_SERVER=off, and stdout, stderr
and the exit status are compared; only timings are masked.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import select
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from waldo_cli import client, server

pytestmark = pytest.mark.skipif(not client.supported(), reason="no Unix sockets or fork here")

ROOT = Path(__file__).resolve().parent.parent
WALDO = str(Path(sys.executable).with_name("waldo"))


def _base_env(runtime: Path) -> dict[str, str]:
    """This process's environment, minus what would change how output looks, in ``runtime``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR", "WALDO_SERVER")
    }
    env["XDG_RUNTIME_DIR"] = str(runtime)
    env["TERM"] = "xterm-256color"
    return env


def _start(runtime: Path, env: dict[str, str]) -> dict:
    runtime.mkdir(mode=0o700, exist_ok=True)
    proc = subprocess.run(
        [WALDO, "server", "start", "--idle-timeout", "10m"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr
    status = _status(runtime)
    assert status is not None
    return status


def _status(runtime: Path) -> dict | None:
    return client.ask("status", path=client.socket_path(str(runtime / "waldo")))


def _spare_other_than(runtime: Path, old: int | None) -> int:
    """The pid of the server's spare worker, once it has one other than ``old``.

    A client learns how its command ended from the worker itself, before the
    server has reaped it and forked the next spare: this waits for that.
    """
    deadline = time.monotonic() + 30
    while True:
        spare = (_status(runtime) or {}).get("spare")
        if isinstance(spare, int) and spare != old:
            return spare
        assert time.monotonic() < deadline, f"no new spare worker: {spare}"
        time.sleep(0.02)


def _held(pid: int) -> set[str]:
    """What process PID's descriptors name now (one it closes while we look is left out).

    A spare worker warms up as we look, opening and closing its pictures.
    """
    held = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(FileNotFoundError):
            held.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
    return held


def _stop(runtime: Path, env: dict[str, str]) -> None:
    subprocess.run([WALDO, "server", "stop"], env=env, capture_output=True, timeout=300)


def _leftover(runtime: Path) -> int | None:
    """The pid of a server still holding ``runtime``'s lock (killed now), or None.

    A server holds its lock (which holds its pid) for its whole life, so a
    lock that can be taken means no server is left, whatever went wrong.
    """
    try:
        fd = os.open(client.lock_path(str(runtime / "waldo")), os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return None
        except BlockingIOError:
            pid = int(os.read(fd, 32).split()[0])
        os.kill(pid, signal.SIGKILL)  # its workers die with it (PR_SET_PDEATHSIG)
        fcntl.flock(fd, fcntl.LOCK_SH)  # until it is gone
        return pid
    finally:
        os.close(fd)


def _stop_for_sure(runtime: Path, env: dict[str, str]) -> None:
    """Stop the server started in ``runtime``; fail if one had to be killed."""
    _stop(runtime, env)
    pid = _leftover(runtime)
    assert pid is None, f"`waldo server stop` left server {pid} running (killed now)"


class Live:
    """A running server and the environments that use it or not."""

    def __init__(self, runtime: Path) -> None:
        self.runtime = runtime
        self.env = _base_env(runtime)
        self.off = dict(self.env, WALDO_SERVER="off")
        self.pid = 0

    def served(self) -> int:
        status = _status(self.runtime)
        assert status is not None, "the server is not running"
        return int(status["served"])


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    runtime = tmp_path_factory.mktemp("runtime")
    runtime.chmod(0o700)
    live = Live(runtime)
    try:
        live.pid = _start(runtime, live.env)["pid"]
        yield live
    finally:
        _stop_for_sure(runtime, live.env)


@pytest.fixture(scope="module")
def files(tmp_path_factory, photo):
    """scene.png with waldo.png cut from it at (x=40, y=30), a file list, and 8 shifted scenes."""
    root = tmp_path_factory.mktemp("files")
    image = photo("astronaut")[100:228, 150:310]
    Image.fromarray(image).save(root / "scene.png")
    Image.fromarray(image[30:54, 40:68]).save(root / "waldo.png")
    (root / "list.txt").write_text("scene.png\nmissing.png\nscene.png\n")
    rng = np.random.default_rng(14)
    Image.fromarray(rng.integers(0, 256, (24, 28, 3), dtype=np.uint8)).save(root / "noise.png")
    patch = image[30:54, 40:68]
    for k in range(8):
        noise = rng.integers(0, 256, (120, 150, 3), dtype=np.uint8)
        noise[5 + 9 * k : 29 + 9 * k, 7 * k : 28 + 7 * k] = patch
        Image.fromarray(noise).save(root / f"shifted-{k}.png")
    return root


# --- running waldo ---------------------------------------------------------------

_TIMES = [
    (re.compile(rb'"(compile_)?seconds": [-0-9.e]+'), rb'"\1seconds": #'),
    (re.compile(rb"\d+(\.\d+)? s\b"), b"# s"),
    (re.compile(rb"\d+(\.\d+)?( images/s)"), rb"#\2"),
]


def masked(data: bytes) -> bytes:
    """Output with its timings masked: what must match byte for byte."""
    for pattern, replacement in _TIMES:
        data = pattern.sub(replacement, data)
    return data


def run(env, *args, cwd=None, stdin=None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [WALDO, *map(str, args)],
        env=env,
        cwd=cwd,
        stdin=stdin if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        timeout=600,
        **kwargs,
    )


def both(live: Live, *args, cwd=None, stdin_file=None):
    """Run through the server and in-process; assert the server ran it; both results."""
    before = live.served()
    results = []
    for env in (live.env, live.off):
        stdin = open(stdin_file, "rb") if stdin_file else None  # noqa: SIM115
        try:
            results.append(run(env, *args, cwd=cwd, stdin=stdin))
        finally:
            if stdin:
                stdin.close()
    assert live.served() == before + 1, "the server did not run the command"
    return results


def assert_same(served, alone):
    assert served.returncode == alone.returncode, (served.stderr, alone.stderr)
    assert masked(served.stdout) == masked(alone.stdout)
    assert masked(served.stderr) == masked(alone.stderr)


def on_terminal(env, args, cwd, stdout_file=None, size=(40, 100)):
    """Run waldo with stdin, stderr (and stdout, unless ``stdout_file``) on a pseudo-terminal.

    Returns (what the terminal got, exit status).
    """
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
    out = open(stdout_file, "wb") if stdout_file else slave  # noqa: SIM115
    proc = subprocess.Popen(
        [WALDO, *map(str, args)], stdin=slave, stdout=out, stderr=slave, env=env, cwd=cwd
    )
    os.close(slave)
    if stdout_file:
        out.close()
    seen = b""
    while True:
        try:
            chunk = os.read(master, 1 << 16)
        except OSError:  # EIO: every writer is gone
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    return seen, proc.wait(timeout=600)


def terminal_both(live: Live, args, cwd, stdout_file=None):
    before = live.served()
    served = on_terminal(live.env, args, cwd, stdout_file)
    served_file = Path(stdout_file).read_bytes() if stdout_file else None
    alone = on_terminal(live.off, args, cwd, stdout_file)
    alone_file = Path(stdout_file).read_bytes() if stdout_file else None
    assert live.served() == before + 1, "the server did not run the command"
    return served, alone, served_file, alone_file


# --- the same output, byte for byte -------------------------------------------------


def test_table_on_a_terminal(live, files):
    (served, status), (alone, status_alone), _, _ = terminal_both(
        live, ["find", "scene.png", "waldo.png", "-k", "3", "--threshold", "0.2"], files
    )
    assert status == status_alone == 0
    assert "┏" in served.decode() and b"\x1b[" in served  # a rich table, in colour
    assert masked(served) == masked(alone)


def test_show_on_a_terminal(live, files):
    (served, status), (alone, status_alone), _, _ = terminal_both(
        live, ["find", "scene.png", "waldo.png", "--show"], files
    )
    assert status == status_alone == 0
    assert "▀" in served.decode() or "▄" in served.decode()  # the half-block picture
    assert masked(served) == masked(alone)


def test_progress_bar_on_a_terminal_records_in_a_file(live, files, tmp_path):
    args = ["find", "-t", "waldo.png", *["scene.png"] * 40, "--jsonl", "-j", "1"]
    (served, status), (alone, status_alone), served_file, alone_file = terminal_both(
        live, args, files, stdout_file=tmp_path / "out.jsonl"
    )
    assert status == status_alone == 0
    assert masked(served_file) == masked(alone_file)
    assert len(served_file.splitlines()) == 40
    # the bar itself is drawn as time passes; both draw it, and end with the same summary
    for terminal in (served, alone):
        text = terminal.decode(errors="replace")
        assert "searching" in text and "images/s" in text
    summary = [masked(t).rstrip().splitlines()[-1] for t in (served, alone)]
    assert summary[0] == summary[1] and b"40 images" in summary[0]


@pytest.mark.parametrize("fmt", [[], ["--json"], ["--jsonl"], ["--csv"]])
def test_batch_formats(live, files, fmt):
    served, alone = both(
        live, "find", "-t", "waldo.png", "scene.png", "missing.png", *fmt, cwd=files
    )
    assert served.returncode == 2  # one image failed
    assert_same(served, alone)


def test_single_json_and_relative_paths(live, files):
    served, alone = both(live, "find", "scene.png", "waldo.png", "--json", cwd=files)
    assert served.returncode == 0
    doc = json.loads(served.stdout)
    assert (doc["matches"][0]["x"], doc["matches"][0]["y"]) == (40, 30)
    assert_same(served, alone)


def test_image_from_stdin(live, files):
    served, alone = both(
        live, "find", "-", "waldo.png", "--json", cwd=files, stdin_file=files / "scene.png"
    )
    assert served.returncode == 0 and json.loads(served.stdout)["image"] == "-"
    assert_same(served, alone)


def test_file_list_from_stdin(live, files):
    served, alone = both(
        live,
        "find",
        "-t",
        "waldo.png",
        "--files-from",
        "-",
        "--csv",
        cwd=files,
        stdin_file=files / "list.txt",
    )
    assert served.returncode == 2 and b"missing.png" in served.stderr
    assert_same(served, alone)


@pytest.mark.parametrize(
    ("args", "status"),
    [
        (["scene.png", "waldo.png"], 0),
        (["scene.png", "noise.png"], 1),
        (["scene.png", "gone.png"], 2),
        (["scene.png", "waldo.png", "--method", "nope"], 2),
    ],
)
def test_exit_status(live, files, args, status):
    served, alone = both(live, "find", *args, cwd=files)
    assert served.returncode == status
    assert_same(served, alone)


def test_new_find_options_pass_through_unchanged(live, files, tmp_path):
    """#16's options reach the server's worker as typed: the same click command runs there."""
    before = live.served()
    for name in ("served", "alone"):
        (tmp_path / name).mkdir()
    served, alone = [
        run(
            env,
            "find",
            "scene.png",
            "waldo.png",
            "--region",
            "20,10,80,60",
            "--crops",
            tmp_path / name,
            "--json",
            cwd=files,
        )
        for env, name in ((live.env, "served"), (live.off, "alone"))
    ]
    assert live.served() == before + 1
    assert served.returncode == alone.returncode == 0, served.stderr
    assert json.loads(served.stdout)["matches"][0]["x"] == 40
    assert masked(served.stdout) == masked(alone.stdout.replace(b"alone", b"served"))
    assert masked(served.stderr) == masked(alone.stderr.replace(b"alone", b"served"))
    crops = [sorted(p.name for p in (tmp_path / name).iterdir()) for name in ("served", "alone")]
    assert crops[0] == crops[1] and crops[0]


def test_conv_runs_in_the_server(live, files, tmp_path):
    served, alone = both(
        live, "conv", "scene.png", "--kernel", "sobel-x", "--out", tmp_path / "e.npy", cwd=files
    )
    assert served.returncode == 0
    assert_same(served, alone)


def test_learn_runs_in_the_server_and_writes_the_same_filter(live, files, tmp_path):
    """`waldo learn` computes too: the server runs it, with the same output and the same file."""
    negatives = tmp_path / "noise.png"
    rng = np.random.default_rng(5)
    Image.fromarray(rng.integers(0, 256, (90, 110, 3), dtype=np.uint8)).save(negatives)
    outputs = []
    before = live.served()
    for env, name in ((live.env, "served"), (live.off, "alone")):
        folder = tmp_path / name
        folder.mkdir()
        args = ["learn", files / "waldo.png", "--negatives", negatives, "--seed", 3]
        proc = run(env, *args, "-o", "filter.npz", "--no-augment", cwd=folder)
        assert proc.returncode == 0, proc.stderr
        outputs.append((proc, (folder / "filter.npz").read_bytes()))
    assert live.served() == before + 1, "the server did not run learn"
    (served, served_file), (alone, alone_file) = outputs
    assert_same(served, alone)
    assert served_file == alone_file


def test_a_file_size_limit_is_the_clients(live, files, tmp_path):
    """`ulimit -f 0`: the overlay cannot be written, in the server's worker as in-process."""
    before = live.served()
    script = f"ulimit -f 0; exec '{WALDO}' find scene.png waldo.png --overlay '{tmp_path}/o.png'"
    results = [
        subprocess.run(["bash", "-c", script], cwd=files, env=env, capture_output=True, timeout=600)
        for env in (live.env, live.off)
    ]
    assert live.served() == before + 1
    served, alone = results
    assert served.returncode == 2 and b"o.png" in served.stderr, served.stderr
    assert_same(served, alone)
    assert not (tmp_path / "o.png").exists()


def test_a_process_substitution_runs_in_process(live, files):
    """bash's `<(...)` is /dev/fd/63, a descriptor of the client alone: never the server's."""
    before = live.served()
    script = f"exec '{WALDO}' find <(cat scene.png) waldo.png --json"
    results = [
        subprocess.run(["bash", "-c", script], cwd=files, env=env, capture_output=True, timeout=600)
        for env in (live.env, live.off)
    ]
    assert live.served() == before  # neither went to the server
    served, alone = results
    assert served.returncode == 0, served.stderr
    assert json.loads(served.stdout)["matches"][0]["x"] == 40
    assert_same(served, alone)


def test_without_unix_sockets_commands_run_in_process(live, files):
    """A platform without AF_UNIX (Windows): the console script runs every command itself."""
    code = (
        "import sys, _socket\n"
        "del _socket.AF_UNIX\n"
        "from waldo_cli import client\n"
        "assert not client.supported()\n"
        "sys.argv = ['waldo', *sys.argv[1:]]\n"
        "client.main()\n"
    )
    before = live.served()
    args = ["find", "scene.png", "waldo.png", "--json"]
    without = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=files, env=live.env, capture_output=True
    )
    assert live.served() == before
    assert_same(without, run(live.off, *args, cwd=files))
    assert json.loads(without.stdout)["matches"][0]["x"] == 40


def _long_batch(env, files):
    """A batch of 4,000 searches, one at a time: long enough to be interrupted under load."""
    return subprocess.Popen(
        [WALDO, "find", "-t", "waldo.png", *["scene.png"] * 4000, "--jsonl", "-j", "1"],
        cwd=files,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _interrupted(env, files):
    """A long batch, Ctrl-C'd once its first record is out: (status, stdout, stderr)."""
    proc = _long_batch(env, files)
    first = proc.stdout.readline()
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=300)
    return proc.returncode, first + rest, err


def test_ctrl_c_ends_with_130_and_whole_records(live, files):
    before = live.served()
    for env in (live.env, live.off):
        status, out, err = _interrupted(env, files)
        assert status == 130, err
        assert err.decode().endswith("waldo: interrupted\n"), err
        lines = out.decode().splitlines()
        assert 1 <= len(lines) < 4000
        for line in lines:  # every record whole
            assert json.loads(line)["image"] == "scene.png"
    assert live.served() == before + 1


def test_closed_pipe_ends_with_sigpipe(live, files):
    before = live.served()
    script = (
        f"'{WALDO}' find -t waldo.png {' '.join(['scene.png'] * 60)} -j 1 | head -1; "
        'echo "status ${PIPESTATUS[0]}" >&2'
    )
    results = [
        subprocess.run(["bash", "-c", script], cwd=files, env=env, capture_output=True, timeout=600)
        for env in (live.env, live.off)
    ]
    assert live.served() == before + 1
    for result in results:
        assert result.stderr.decode().splitlines()[-1] == "status 141", result.stderr
    assert results[0].stdout == results[1].stdout == b"image\trank\tx\ty\twidth\theight\tscore\n"


def test_eight_clients_at_once_get_their_own_answers(live, files):
    before = live.served()
    procs = [
        subprocess.Popen(
            [WALDO, "find", f"shifted-{k}.png", "waldo.png", "--json"],
            cwd=files,
            env=live.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for k in range(8)
    ]
    for k, proc in enumerate(procs):
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        doc = json.loads(out)
        assert doc["image"] == f"shifted-{k}.png"
        assert (doc["matches"][0]["x"], doc["matches"][0]["y"]) == (7 * k, 5 + 9 * k)
    assert live.served() == before + 8


# --- security ---------------------------------------------------------------------


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads /proc")
def test_the_spare_worker_takes_the_next_request_and_holds_no_clients_pipe(live, files):
    """A worker forked ahead of the request warms up, runs the next command, and exits.

    It is forked when the server holds no client's descriptor: a pipe the
    last command wrote to ends when that command does.
    """
    read_end, write_end = os.pipe()
    try:
        proc = subprocess.run(
            [WALDO, "find", "scene.png", "waldo.png", "--json"],
            env=live.env,
            cwd=files,
            stdin=subprocess.DEVNULL,
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=120,
        )
        os.close(write_end)
        write_end = -1
        assert proc.returncode == 0, proc.stderr
        ready, _, _ = select.select([read_end], [], [], 30)
        output = b""
        while ready and (chunk := os.read(read_end, 1 << 16)):
            output += chunk
        assert json.loads(output)["matches"][0]["x"] == 40  # and the pipe ended
        spare = _spare_other_than(live.runtime, None)
        pipe = f"pipe:[{os.fstat(read_end).st_ino}]"
        assert pipe not in _held(spare)
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
    served, alone = both(live, "find", "scene.png", "waldo.png", cwd=files)
    assert_same(served, alone)
    assert not Path(f"/proc/{spare}").exists()  # it ran that command, and is gone
    _spare_other_than(live.runtime, spare)  # a new one waits


def test_the_spare_warm_up_starts_no_thread(tmp_path):
    """A search thread started before the request would keep the server's CPU affinity."""
    out = tmp_path / "threads.txt"
    code = (
        "import sys, threading\n"
        "from waldo_cli import server\n"
        "server.load_everything()\n"
        "server._warm_up()\n"
        "open(sys.argv[1], 'w').write(str(threading.active_count()))\n"
    )
    subprocess.run([sys.executable, "-c", code, str(out)], check=True, timeout=300)
    assert out.read_text() == "1"


def test_a_worker_reports_its_status_and_lets_go_of_the_streams_before_it_ends(tmp_path):
    """server._report: the client has the status, and a pipe's reader its end, at once.

    The worker here then lingers for 30 s, as a slow teardown would: neither
    may wait for it.
    """
    ours, theirs = socket.socketpair()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker
        try:
            ours.close()
            os.close(read_end)
            os.dup2(write_end, 1)
            os.close(write_end)
            os.write(1, b"record\n")
            server._report(theirs.detach(), 7)
            time.sleep(30)
        finally:
            os._exit(0)
    theirs.close()
    os.close(write_end)
    try:
        ours.settimeout(20)
        message, _ = client.Channel(ours).receive()
        assert message == {"exit": 7}
        with os.fdopen(read_end, "rb") as pipe:
            assert pipe.read() == b"record\n"  # its end came: the worker let go of stdout
        assert os.waitpid(pid, os.WNOHANG) == (0, 0)  # and it is still there
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        ours.close()


def test_an_event_of_a_connection_closed_in_the_same_round_is_ignored(tmp_path):
    """A client that leaves as its worker ends: ``_reap`` may close its connection first.

    The worker tells the client how the command ended, the client closes its
    end, and one ``select`` round holds both the worker's end and the
    client's; the second event must find the connection closed, not crash
    the server.
    """
    import selectors

    srv = server.Server(str(tmp_path), {}, 0)
    ours, theirs = socket.socketpair()
    try:
        srv.selector.register(ours, selectors.EVENT_READ, srv._from_client)
        srv.selector.unregister(ours)  # as _reap does, earlier in the round
        ours.close()
        srv._from_client(ours)  # the round's event for it
    finally:
        theirs.close()
        srv.selector.close()


def test_socket_folder_is_private(live):
    folder = live.runtime / "waldo"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    sock = Path(client.socket_path(str(folder)))
    assert stat.S_ISSOCK(sock.stat().st_mode)
    assert stat.S_IMODE(sock.stat().st_mode) & 0o077 == 0


@pytest.mark.parametrize("xdg", [None, "/somewhere/cache"])
def test_the_clients_cache_folder_is_platformdirs(monkeypatch, xdg):
    import platformdirs

    if xdg is None:
        monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_CACHE_HOME", xdg)
    assert client.user_cache_dir() == platformdirs.user_cache_dir("waldo", appauthor=False)


def test_a_folder_open_to_others_is_not_used(tmp_path):
    folder = tmp_path / "waldo"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    with pytest.raises(PermissionError):
        client.make_private_dir(str(folder))
    assert client.connect(client.socket_path(str(folder))) is None


def _bound(tmp_path, peer_uid):
    srv = server.Server(str(tmp_path / "rt"), client.identity(), peer_uid=peer_uid)
    srv.bind()
    return srv


def test_a_connection_from_another_user_is_refused(tmp_path):
    srv = _bound(tmp_path, lambda sock: os.getuid() + 1)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(srv.path)
            client.Channel(sock).send({"kind": "status"})
            select.select([srv.listener], [], [], 5)
            srv._accept(srv.listener)
            sock.settimeout(5)
            try:
                said = sock.recv(100)
            except ConnectionResetError:  # closed with our request unread
                said = b""
            assert said == b""  # closed, nothing said
        assert srv.refused == 1
    finally:
        srv.close()


def test_a_connection_from_the_same_user_is_answered(tmp_path):
    srv = _bound(tmp_path, client.peer_uid)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(srv.path)
            channel = client.Channel(sock)
            channel.send({"kind": "status"})
            select.select([srv.listener], [], [], 5)
            srv._accept(srv.listener)
            sock.settimeout(5)
            assert channel.receive()[0]["pid"] == os.getpid()
        assert srv.refused == 0
    finally:
        srv.close()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("version", "0.0.1"),
        ("files", "0" * 64),
        ("protocol", 0),
        ("python", "/usr/bin/python3 (/usr)"),
        ("numba", "0.1"),
    ],
)
def test_a_server_of_another_installation_refuses_as_stale(tmp_path, field, value):
    srv = server.Server(str(tmp_path), client.identity())
    request = {
        "identity": dict(client.identity(), **{field: value}),
        "env": dict(os.environ),
        "argv": [],
        "fsencoding": srv.fsencoding,
    }
    why, stale = srv.refusal(request, [0, 1, 2, 3])
    assert stale and field in why


def test_other_numba_settings_run_in_process(tmp_path):
    srv = server.Server(str(tmp_path), client.identity())
    request = {
        "identity": client.identity(),
        "env": dict(os.environ, NUMBA_OPT="0"),
        "argv": [],
        "fsencoding": srv.fsencoding,
    }
    why, stale = srv.refusal(request, [0, 1, 2, 3])
    assert not stale and "environment" in why
    request["env"] = dict(os.environ, NUMBA_NUM_THREADS="1")  # read by waldo at each search
    assert srv.refusal(request, [0, 1, 2, 3]) is None


def test_limits_the_server_cannot_take_on_run_in_process(tmp_path):
    """A hard limit above the server's, or a higher priority, cannot be given to a worker."""
    import resource

    srv = server.Server(str(tmp_path), client.identity())
    request = {
        "identity": client.identity(),
        "env": dict(os.environ),
        "argv": [],
        "fsencoding": srv.fsencoding,
        "limits": client._limits(),
        "nice": client._niceness(),
    }
    assert srv.refusal(request, [0, 1, 2, 3]) is None  # the same process's own: fine
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    request["limits"] = [[resource.RLIMIT_NOFILE, soft, resource.RLIM_INFINITY]]
    why, stale = srv.refusal(request, [0, 1, 2, 3])
    assert not stale and "limit" in why
    request["limits"] = [[resource.RLIMIT_NOFILE, min(soft, 64), min(hard, 64)]]  # lower: fine
    assert srv.refusal(request, [0, 1, 2, 3]) is None
    request["nice"] = os.getpriority(os.PRIO_PROCESS, 0) - 1
    why, stale = srv.refusal(request, [0, 1, 2, 3])
    assert not stale and "priority" in why


def _ended(pid: int) -> bool:
    """Whether a process has exited: gone, or a zombie its new parent has not reaped yet.

    A server started by `waldo server start` is adopted by PID 1 once that
    command exits, and this machine's PID 1 reaps when it gets round to it.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state == "Z"


def test_a_stale_server_is_not_used_and_auto_replaces_it(tmp_path, files):
    """The installed files change under a running server (an upgrade, an edit)."""
    runtime = tmp_path / "runtime"
    env = _base_env(runtime)
    probe = Path(client.__file__).with_name("_stale_probe.txt")
    try:
        old = _start(runtime, env)["pid"]
        probe.write_text("the package changed after the server started\n")
        proc = run(env, "find", "scene.png", "waldo.png", "--json", cwd=files)
        assert proc.returncode == 0 and json.loads(proc.stdout)["matches"][0]["x"] == 40
        assert _status(runtime)["served"] == 0  # it ran in-process
        proc = run(dict(env, WALDO_SERVER="auto"), "find", "scene.png", "waldo.png", cwd=files)
        assert proc.returncode == 0  # in-process again, while a new server starts
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            status = _status(runtime)
            if status is not None and status["pid"] != old:
                break
            time.sleep(0.2)
        else:
            pytest.fail("no new server answered")
        assert client.mismatch(status["identity"], client.identity()) is None
        deadline = time.monotonic() + 30
        while not _ended(old) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _ended(old), f"the stale server {old} still runs"
    finally:
        probe.unlink(missing_ok=True)
        _stop_for_sure(runtime, env)


# --- faults --------------------------------------------------------------------


def test_a_server_killed_mid_request(tmp_path, files):
    """One line on stderr, status 2, and the next call runs in-process (a server of its own)."""
    runtime = tmp_path / "runtime"
    env = _base_env(runtime)
    try:
        pid = _start(runtime, env)["pid"]
        proc = _long_batch(env, files)
        first = proc.stdout.readline()
        os.kill(pid, signal.SIGKILL)
        rest, err = proc.communicate(timeout=300)
        assert proc.returncode == 2
        lines = err.decode().splitlines()
        assert len(lines) == 1 and lines[0].startswith("waldo: error: the waldo server stopped")
        for line in (first + rest).decode().splitlines():
            json.loads(line)  # whatever came out is whole records
        after = run(env, "find", "scene.png", "waldo.png", "--json", cwd=files)
        assert after.returncode == 0 and json.loads(after.stdout)["matches"][0]["y"] == 30
        assert _status(runtime) is None
    finally:
        _stop_for_sure(runtime, env)


# --- the README's set-up, in a fresh clone ---------------------------------------


def _readme_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = re.findall(r"```sh\n(python3 -m venv \.venv[^\n]*)\n```", readme)
    assert len(commands) == 2, commands
    return commands


@pytest.mark.slow
def test_readme_setup_commands_in_order_in_one_fresh_clone(tmp_path):
    """`pip install .`, then `pip install -e '.[test]'`, in one clone: both work.

    The inner pytest runs one quick test (PYTEST_ADDOPTS), not the suite again.
    """
    if shutil.which("git") is None:
        pytest.skip("no git")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "WALDO_SERVER")}
    env["PYTEST_ADDOPTS"] = "-q -p no:cacheprovider tests/test_layout.py -k light_commands"
    env["WALDO_SERVER"] = "off"
    for command in _readme_commands():
        proc = subprocess.run(
            ["bash", "-c", command], cwd=clone, env=env, capture_output=True, timeout=1500
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    site = next((clone / ".venv" / "lib").glob("python3*/site-packages"))
    assert not (site / "waldo_cli").exists()  # nothing left of the first install
    helped = subprocess.run(
        [str(clone / ".venv" / "bin" / "waldo"), "--help"], capture_output=True, timeout=120
    )
    assert helped.returncode == 0 and b"Usage:" in helped.stdout
