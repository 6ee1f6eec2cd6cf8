"""``waldo find --dask``: the local batch's records, order and guarantees on a Dask cluster.

One LocalCluster for the whole file: two single-threaded worker processes on
the loopback interface, small images. Every address here is 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import assert_one_line_error
from installed import shell_env
from PIL import Image
from terminal_session import Terminal

from waldo_cli.cli import cli

pytest.importorskip(
    "distributed", reason="the [dask] extra is not installed: pip install 'waldo-cli[dask]'"
)

WALDO = str(Path(sys.executable).with_name("waldo"))
TIMINGS = ("seconds", "compile_seconds")


@pytest.fixture(scope="module")
def local_session():
    """What `--dask local --jobs 2` starts: two worker processes on 127.0.0.1."""
    from waldo_cli.cluster import open_session

    with open_session("local", workers=2) as session:
        yield session


@pytest.fixture(scope="module")
def dask_cluster(local_session):
    return local_session.cluster.scheduler_address, local_session.client


@pytest.fixture
def address(dask_cluster):
    """The scheduler's address, once it has both workers (a killed one comes back)."""
    address, client = dask_cluster
    client.wait_for_workers(2, timeout=60)
    return address


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """40 small images: most with the template pasted, some without, some bad or missing."""
    root = tmp_path_factory.mktemp("cluster")
    rng = np.random.default_rng(17)
    template = rng.integers(0, 256, (10, 8, 3), dtype=np.uint8)
    Image.fromarray(template).save(root / "t.png")
    paths = []
    for i in range(40):
        path = root / f"scan{i:02d}.png"
        paths.append(str(path))
        if i in (7, 23):
            path.write_bytes(b"not an image")
            continue
        if i == 31:
            continue  # missing
        if i == 12:
            path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)  # truncated
            continue
        image = rng.integers(0, 256, (32 + 4 * (i % 5), 40 + 4 * (i % 3), 3), dtype=np.uint8)
        if i % 6 != 5:
            y, x = i % 17, (3 * i) % 25
            image[y : y + 10, x : x + 8] = template
        Image.fromarray(image).save(path)
    return root / "t.png", paths


def run(*args, input=None, env=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input, env=env)


def records(stdout: str) -> list[dict]:
    """JSON Lines without the timings, which differ from run to run."""
    docs = [json.loads(line) for line in stdout.splitlines()]
    return [{k: v for k, v in doc.items() if k not in TIMINGS} for doc in docs]


def without_summary(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if " images: " not in line]


@pytest.mark.parametrize("fmt", ["--jsonl", "--csv", "--json", None])
def test_records_equal_the_local_batch_in_input_order(fmt, images, address):
    template, paths = images
    flags = [fmt] if fmt else []
    local = run("find", "-t", template, *paths, *flags, "--jobs", "2")
    remote = run("find", "-t", template, *paths, *flags, "--dask", address)
    assert remote.exit_code == local.exit_code == 2  # bad and missing files: errors win
    if fmt == "--jsonl":
        assert records(remote.stdout) == records(local.stdout)
        assert [r["image"] for r in records(remote.stdout)] == paths
        errors = [r for r in records(remote.stdout) if "error" in r]
        assert len(errors) == 4 and all(r["error"].startswith(r["image"]) for r in errors)
    elif fmt == "--json":
        strip = [{k: v for k, v in d.items() if k not in TIMINGS} for d in json.loads(local.stdout)]
        assert [
            {k: v for k, v in d.items() if k not in TIMINGS} for d in json.loads(remote.stdout)
        ] == strip
    else:  # CSV and TSV carry no timings: the same bytes
        assert remote.stdout == local.stdout
    assert without_summary(remote.stderr) == without_summary(local.stderr)


def test_several_templates_give_the_local_batchs_records(images, address, tmp_path):
    """-t A -t B (#16): one searcher for both, a record per image and template, as locally."""
    template, paths = images
    other = tmp_path / "other.png"
    Image.fromarray(np.asarray(Image.open(paths[0]))[2:12, 3:11]).save(other)
    argv = ["find", "-t", template, "-t", other, *paths[:12], "--jsonl"]
    local, remote = run(*argv), run(*argv, "--dask", address)
    assert remote.exit_code == local.exit_code
    assert records(remote.stdout) == records(local.stdout)
    assert {r.get("template") for r in records(remote.stdout)} >= {str(template), str(other)}


def test_unordered_gives_the_same_records(images, address):
    template, paths = images
    local = run("find", "-t", template, *paths, "--jsonl")
    remote = run("find", "-t", template, *paths, "--jsonl", "--dask", address, "--unordered")
    assert remote.exit_code == local.exit_code
    key = lambda record: record["image"]  # noqa: E731
    assert sorted(records(remote.stdout), key=key) == sorted(records(local.stdout), key=key)


def test_streams_of_this_machine_are_read_here(images, address):
    """Standard input (a real one, which a worker could not unpickle) and `<(cat a.png)`.

    <(...) names this shell's pipe, /dev/fd/63: the workers have fds of their own.
    """
    template, paths = images

    def find(*flags):
        argv = [WALDO, "find", "-t", template, "--jsonl", *flags]
        return subprocess.run(
            ["bash", "-c", 'exec "$@" - <(cat "$IMAGE") /dev/null', "bash", *map(str, argv)],
            input=Path(paths[1]).read_bytes(),
            capture_output=True,
            timeout=300,
            env={**os.environ, "IMAGE": paths[0]},
        )

    local, remote = find(), find("--dask", address)
    assert remote.returncode == local.returncode == 2, remote.stderr  # /dev/null is empty
    assert records(remote.stdout.decode()) == records(local.stdout.decode())
    stdin, piped, null = records(remote.stdout.decode())
    assert stdin["image"] == "-" and stdin["matches"] != []
    assert piped["image"].startswith("/dev/fd/") and piped["matches"] != []
    assert null["image"] == "/dev/null" and null["error"].startswith("/dev/null: ")


def test_a_closed_stdin_is_that_images_error_record(images, address):
    template, paths = images
    argv = [WALDO, "find", "-t", template, "-", paths[1], "--jsonl", "--dask", address]
    proc = subprocess.run(
        ["sh", "-c", 'exec "$@" <&-', "sh", *map(str, argv)], capture_output=True, timeout=300
    )
    assert proc.returncode == 2, proc.stderr
    first, second = records(proc.stdout.decode())
    assert first == {"image": "-", "error": "-: standard input is closed"}
    assert second["image"] == paths[1] and second["matches"] != []


def test_paths_a_worker_cannot_read_get_error_records(images, address, tmp_path):
    import fsspec

    template, paths = images
    # memory:// lives in this process, the client's: the workers do not have it
    with fsspec.open("memory://waldo/only-here.png", "wb") as fh:
        fh.write(Path(paths[0]).read_bytes())
    url = Path(paths[0]).as_uri()  # file:// works on a worker
    wanted = ["memory://waldo/only-here.png", url, str(tmp_path), "nosuch://x.png", paths[0]]
    result = run("find", "-t", template, *wanted, "--jsonl", "--dask", address)
    assert result.exit_code == 2
    got = records(result.stdout)
    assert [r["image"] for r in got] == wanted
    assert got[0]["error"] == "memory://waldo/only-here.png: no such file"
    assert got[1]["matches"] == got[4]["matches"] != []
    assert got[2]["error"] == f"{tmp_path}: is a directory, not an image file"
    assert got[3]["error"].startswith("nosuch://x.png: cannot read it here (")


def _at_a_terminal(command: str, **env: str) -> Terminal:
    """A shell command line, run as a user at a terminal (80×24) runs it."""
    return Terminal(["sh", "-c", command], env=shell_env(TERM="xterm-256color", **env))


def test_progress_bar_on_a_terminal(images, address, tmp_path):
    """`waldo find ... --dask ADDRESS > hits.jsonl` at a terminal: the bar there, records not."""
    template, paths = images
    good = [p for p in paths if Path(p).exists() and Path(p).stat().st_size > 100]
    out = tmp_path / "hits.jsonl"
    argv = " ".join(shlex.quote(str(a)) for a in ["-t", template, *good, "--jsonl"])
    with _at_a_terminal(f"exec waldo find {argv} --dask {address} > {out}") as term:
        term.expect("searching")
        term.expect(f"{len(good)} images: ")
        assert term.wait() == 0, term.shown
    assert f"{len(good)}/{len(good)}" in term.shown  # moved by the finished tasks
    assert "images/s" in term.shown
    assert [json.loads(line)["image"] for line in out.read_text().splitlines()] == good
    assert good[3] not in term.shown  # no record on the terminal


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_scheduler_is_one_line_within_the_timeout(images):
    template, paths = images
    env = {**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"}
    address = f"tcp://127.0.0.1:{_closed_port()}"
    started = time.monotonic()
    proc = subprocess.run(
        [WALDO, "find", "-t", template, *paths[:3], "--csv", "--dask", address],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    seconds = time.monotonic() - started
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""  # not even the CSV header
    [line] = proc.stderr.splitlines()
    assert line.startswith(f"waldo: error: cannot reach the Dask scheduler at {address} within 2 s")
    assert seconds < 30  # 2 s of trying, the rest is starting Python on a busy machine


def test_dask_without_the_extra_is_one_line(images, tmp_path):
    """Simulated: modules on PYTHONPATH that fail to import as missing packages do."""
    template, paths = images
    for name in ("distributed", "dask", "fsspec"):
        (tmp_path / f"{name}.py").write_text(
            f"raise ModuleNotFoundError({f'No module named {name!r}'!r}, name={name!r})\n"
        )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.run(
        [WALDO, "find", "-t", template, paths[0], "--dask", "local"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    [line] = proc.stderr.splitlines()
    assert "pip install 'waldo-cli[dask]'" in line and "No module named" in line


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["a.png", "t.png", "--dask", "local"], "-t"),
        (["-t", "t.png", "a.png", "--unordered"], "--unordered goes with --dask"),
        (["-t", "t.png", "a.png", "--dask", "tcp://127.0.0.1:1", "--jobs", "2"], "--jobs"),
        (["-t", "t.png", "a.png", "--dask", "local", "--overlay", "o.png"], "--overlay"),
        (["-t", "t.png", "a.png", "--dask", "local", "--scores", "s.npy"], "--scores"),
        (["-t", "t.png", "a.png", "b.png", "--dask", "local", "--crops", "c"], "--crops"),
    ],
)
def test_options_that_do_not_go_with_dask(args, needle):
    assert_one_line_error(run("find", *args), needle)


def test_run_batch_takes_a_dask_executor(images, dask_cluster, address):
    from waldo_cli import run_batch
    from waldo_cli.io import read_image
    from waldo_cli.search import Searcher, SearchOptions

    _, client = dask_cluster
    template, paths = images
    searcher = Searcher(read_image(str(template)), SearchOptions(threads=1))
    sources = [(p, p) for p in paths]
    here = [r.to_dict() for r in run_batch(searcher, sources, 2)]
    # the searcher scattered first: shipped once per worker, not once per image
    shipped = client.scatter(searcher, broadcast=True, hash=False)
    for searcher_there in (searcher, shipped):
        with client.get_executor() as executor:
            there = [r.to_dict() for r in run_batch(searcher_there, sources, 4, executor=executor)]
        assert [{k: v for k, v in d.items() if k not in TIMINGS} for d in there] == [
            {k: v for k, v in d.items() if k not in TIMINGS} for d in here
        ]


class _Spy:
    """A client that notes what is scattered and submitted, and hands on the rest."""

    def __init__(self, client):
        self.client, self.scattered, self.submitted = client, [], []

    def scatter(self, data, **kwargs):
        future = self.client.scatter(data, **kwargs)
        self.scattered.append((data, kwargs, future))
        return future

    def submit(self, fn, *args, **kwargs):
        self.submitted.append(args)
        return self.client.submit(fn, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.client, name)


def test_template_is_shipped_once_and_tasks_in_flight_are_bounded(images, dask_cluster, address):
    from waldo_cli.cluster import search_on_cluster
    from waldo_cli.io import read_image
    from waldo_cli.search import Searcher, SearchOptions

    _, client = dask_cluster
    template, paths = images
    good = [(p, p) for p in paths if Path(p).exists()] * 8  # 296 images
    searcher = Searcher(read_image(str(template)), SearchOptions(threads=1))
    spy = _Spy(client)
    yielded: set[int] = set()
    most = 0
    for result in search_on_cluster(spy, searcher, good, total=len(good)):
        yielded.add(result.index)
        # tasks out: submitted, some of whose images are not yet yielded
        out = sum(any(i not in yielded for i, _ in args[1]) for args in spy.submitted[1:])
        most = max(most, out)
    assert yielded == set(range(len(good)))
    assert spy.scattered == []
    # the searcher itself travels in one task; every search task names that task's result
    [ship, *tasks] = spy.submitted
    assert ship == (searcher,)
    [key] = {args[0].key for args in tasks}
    assert str(key).endswith("-searcher-1")

    def fetched(dask_worker):
        return sum(key in entry["keys"] for entry in dask_worker.transfer_incoming_log)

    # a worker gets it once at most: by running that task, or from a peer that has it
    assert set(client.run(fetched).values()) <= {0, 1}
    assert 1 <= most <= 2 * 2  # two tasks per worker thread
    assert len(tasks) < len(good) / 2  # several images a task


def test_a_task_is_let_go_once_its_records_are_out(images, dask_cluster, address):
    """The client lets go of a task as its records come out, not when the next task ends.

    A result the client still held a reference to was computed again when its
    worker died, for nothing (#17).
    """
    from waldo_cli.cluster import search_on_cluster
    from waldo_cli.io import read_image
    from waldo_cli.search import Searcher, SearchOptions

    _, client = dask_cluster
    template, paths = images
    searcher = Searcher(read_image(str(template)), SearchOptions(threads=1))
    results = search_on_cluster(client, searcher, [(paths[0], paths[0])], total=1)

    def searches():
        """the client to let go of the search task"""
        return not [k for k in list(client.futures) if "-searcher-" not in str(k)]

    try:
        assert next(results).index == 0
        _until(searches, seconds=10)  # the generator waits here, suspended
    finally:
        results.close()


def test_a_task_whose_workers_kept_dying_is_tried_image_by_image():
    """Dask gives up on a task after its workers died three times: which image was it?"""
    from collections import deque
    from types import SimpleNamespace

    from distributed.scheduler import KilledWorker

    from waldo_cli.cluster import _Run, _Slot

    run = _Run.__new__(_Run)  # the bookkeeping alone, without a cluster
    submitted: list = []
    run.ordered, run.waiting, run._submit = True, deque(), submitted.append
    slots = [_Slot([(0, ("a", "a"))]), _Slot([(1, ("b", "b")), (2, ("c", "c"))])]
    slots.append(_Slot([(3, ("d", "d"))]))
    run.waiting.extend(slots)
    killed = KilledWorker("task", SimpleNamespace(address="tcp://127.0.0.1:1"), 3)
    assert run._finish(slots[1], "error", (KilledWorker, killed, None)) == []
    assert [slot.items[0][0] for slot in run.waiting] == [0, 1, 2, 3]  # in its place
    assert submitted == [run.waiting[1], run.waiting[2]]  # one task per image
    [record] = run._finish(run.waiting[1], "error", (KilledWorker, killed, None))
    assert (record.index, record.image) == (1, "b")
    assert record.error == "b: 4 Dask workers died searching it (out of memory, or a crash?)"
    [record] = run._finish(run.waiting[2], "error", (ValueError, ValueError("boom"), None))
    assert record.error == "c: the search failed on a Dask worker (ValueError: boom)"


def test_a_cluster_without_waldo_ends_the_batch_with_one_line():
    """Workers, or a scheduler, that cannot import waldo: not an error record per image."""
    from types import SimpleNamespace

    from waldo_cli.cluster import ClusterError, _Run, _Slot

    run = _Run.__new__(_Run)  # the bookkeeping alone, without a cluster
    run.client = SimpleNamespace(scheduler=SimpleNamespace(address="tcp://10.0.0.1:8786"))
    slot = _Slot([(0, ("a", "a"))])
    missing = ModuleNotFoundError("No module named 'waldo_cli'")
    with pytest.raises(ClusterError, match="workers of tcp://10.0.0.1:8786 cannot run waldo"):
        run._finish(slot, "error", (type(missing), missing, None))
    # what Dask's scheduler raises when it cannot unpickle a graph
    unread = RuntimeError("Error during deserialization of the task graph. This frequently...")
    unread.__cause__ = missing
    with pytest.raises(ClusterError) as caught:
        run._finish(slot, "error", (RuntimeError, unread, None))
    assert str(caught.value) == (
        "the Dask scheduler at tcp://10.0.0.1:8786 cannot read waldo's tasks "
        "(No module named 'waldo_cli'): install waldo-cli there, the same version"
    )


def test_a_scheduler_lost_mid_batch_is_one_line(images, tmp_path):
    """A cluster in this process, closed while a `waldo find` in another searches on it."""
    from distributed import LocalCluster

    template, _ = images
    listing, _ = _slow_list(images, tmp_path, 1000)
    cluster = LocalCluster(
        n_workers=1,
        processes=False,
        protocol="tcp://",
        host="127.0.0.1",
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        silence_logs=logging.ERROR,
    )
    proc = subprocess.Popen(
        [WALDO, "find", "-t", template, "--files-from", listing, "--jsonl"]
        + ["--dask", cluster.scheduler_address],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # how long the client tries to reconnect before it gives up
        env={**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "3s"},
    )
    fd = proc.stdout.fileno()
    data = _read_line(fd, b"")
    cluster.close()
    while chunk := os.read(fd, 1 << 16):
        data += chunk
    proc.wait(timeout=60)
    err = proc.stderr.read().decode()
    assert proc.returncode == 2, err
    assert data.endswith(b"\n") and 1 <= len(data.splitlines()) < 1000
    [line] = err.splitlines()  # the workers may go first, their data with them
    assert line.startswith("waldo: error: ") and cluster.scheduler_address in line, line


def _read_line(fd: int, data: bytes, lines: int = 1) -> bytes:
    """DATA and what comes after it on FD, until it holds LINES whole lines (or FD ends)."""
    while data.count(b"\n") < lines:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        data += chunk
    return data


def _slow_list(images, tmp_path, count: int) -> tuple[Path, list[str]]:
    """A list of COUNT larger images (a few hundredths of a second each), each its own name."""
    template, _ = images
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    image[50:60, 70:78] = np.asarray(Image.open(template))
    Image.fromarray(image).save(tmp_path / "big.png")
    names = []
    for i in range(count):
        (tmp_path / f"{i}.png").symlink_to(tmp_path / "big.png")
        names.append(str(tmp_path / f"{i}.png"))
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"{name}\n" for name in names))
    return listing, names


def test_ctrl_c_cancels_and_leaves_whole_records(images, dask_cluster, address, tmp_path):
    _, client = dask_cluster
    template, _ = images
    listing, _ = _slow_list(images, tmp_path, 1000)
    proc = subprocess.Popen(
        [WALDO, "find", "-t", template, "--files-from", listing, "--jsonl", "-k", "30"]
        + ["--no-threshold", "--dask", address],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    fd = proc.stdout.fileno()
    data = _read_line(fd, b"")
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    while chunk := os.read(fd, 1 << 16):
        data += chunk
    proc.wait(timeout=60)
    err = proc.stderr.read().decode()
    assert proc.returncode == 130, err
    assert data.endswith(b"\n")
    lines = data.decode().splitlines()
    assert 1 <= len(lines) < 1000
    assert all(len(json.loads(line)["matches"]) == 30 for line in lines)
    assert err.strip().splitlines()[-1] == "waldo: interrupted"
    assert "Traceback" not in err

    def waldo_tasks(dask_scheduler):
        return [k for k in dask_scheduler.tasks if str(k).startswith("waldo-search")]

    deadline = time.monotonic() + 20
    while client.run_on_scheduler(waldo_tasks) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert client.run_on_scheduler(waldo_tasks) == []  # nothing left running for nobody


def _processes_with(marker: str) -> list[int]:
    """This user's processes whose environment holds MARKER."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if marker.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
    return found


def test_ctrl_c_at_a_terminal_stops_a_local_cluster(images, tmp_path):
    """Ctrl-C reaches waldo and its worker processes alike: 130, whole records, none left over."""
    template, _ = images
    listing, _ = _slow_list(images, tmp_path, 1000)
    out = tmp_path / "hits.jsonl"
    marker = f"waldo-ctrl-c-{os.getpid()}-{time.monotonic_ns()}"
    command = (
        f"exec waldo find -t {template} --files-from {listing} --jsonl --dask local --jobs 2"
        f" > {out}"
    )
    with _at_a_terminal(command, WALDO_TEST_MARK=marker) as term:
        term.expect("searching")
        _until(lambda: out.exists() and out.read_bytes().count(b"\n") >= 3)
        term.send("\x03")
        status = term.wait()
        screen = term.shown
    assert status == 130, screen
    assert "waldo: interrupted" in screen and "Traceback" not in screen
    data = out.read_bytes()
    assert data.endswith(b"\n")
    lines = data.decode().splitlines()
    assert 3 <= len(lines) < 1000
    assert all(json.loads(line)["matches"][0]["x"] == 70 for line in lines)
    # the scheduler and worker processes went with it
    _until(lambda: not _processes_with(marker), seconds=30)


def _worker_pids(cluster) -> set[int]:
    """The worker processes now alive, as their nannies know them (no message to any worker)."""
    return {pid for nanny in list(cluster.workers.values()) if (pid := nanny.pid) is not None}


def _open_files(pid: int) -> list[str]:
    """The paths process PID has open now ([] for one that just died)."""
    with contextlib.suppress(OSError):
        return [os.path.realpath(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
    return []


def _reading(pids: set[int], fifo: Path) -> set[int]:
    """Which of these processes have FIFO open."""
    return {pid for pid in pids if str(fifo) in _open_files(pid)}


def _until(what, seconds: float = 90, proc=None, state=None):
    """Poll what() until it is true, and return its value; fail if PROC ends first.

    On a timeout the message says what state() (if given) returns then.
    """
    deadline = time.monotonic() + seconds
    while not (value := what()):
        if proc is not None and proc.poll() is not None:
            _, err = proc.communicate()
            told = err.decode() if err is not None else state() if state else ""
            pytest.fail(f"waldo ended ({proc.returncode}) first: {told!r}")
        if time.monotonic() > deadline:
            pytest.fail(
                f"waited {seconds} s for {what.__doc__ or what}; {state() if state else ''}"
            )
        time.sleep(0.05)
    return value


def _search_tasks(client) -> dict[str, tuple[str, str | None]]:
    """The waldo tasks the scheduler holds that are not done: state, and the worker running each."""

    def states(dask_scheduler):
        return {
            str(k): (ts.state, ts.processing_on and ts.processing_on.address)
            for k, ts in dask_scheduler.tasks.items()
            if str(k).startswith("waldo-search") and ts.state != "memory"
        }

    return client.run_on_scheduler(states)


def _what_workers_read(cluster) -> dict[int, list[str]]:
    """The images each live worker holds open now."""
    return {
        pid: [path for path in _open_files(pid) if path.endswith(".png")]
        for pid in _worker_pids(cluster)
    }


def _writer_once_read(fifo: Path, proc, state=None) -> int:
    """A write end of FIFO, opened once a worker is reading it (its search then waits for us)."""

    def opened():
        """a worker to open the FIFO"""
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # ENXIO: nobody reads it yet
            return None

    return _until(opened, proc=proc, state=state)


def test_workers_killed_mid_batch_cost_no_record(images, local_session, address, tmp_path):
    """kill -9 of a worker while it searches, then of every worker: each image exactly once.

    Two of the images are FIFOs: a worker reading one waits until the test
    writes the image into it, so each kill lands mid-task, whatever the load.
    The first: the scheduler runs the dead worker's tasks again elsewhere. The
    second takes every copy of the searcher with it: the scheduler rebuilds it
    on the workers that come back. A gate is an image again before it is
    written: Dask may run a task once more (a result lost with its worker
    while the client fetched it), and a FIFO nobody writes would hold that
    worker's one thread forever, and the tasks queued behind it (#17).
    """
    cluster = local_session.cluster
    template, _ = images
    count = 160
    listing, names = _slow_list(images, tmp_path, count)
    picture = (tmp_path / "big.png").read_bytes()
    # The second gate lies beyond what the other worker can reach while the
    # first holds its task: four tasks of one image each, then the first gate's
    # (images 4-42, a quarter of those left), and with it out at most three
    # more (two tasks per worker thread), each at most a quarter of the images
    # left: they end by image 111 (114 if a recount saw a third thread, a dead
    # worker still listed beside its replacement). With 120 images they reached
    # 83, past a second gate at 80: a worker waiting there while the first was
    # killed held the one thread the task run again could be given, and nothing
    # moved until the test timed out (CI, 9d1ce64).
    gates = [Path(names[k]) for k in (15, 150)]
    for gate in gates:
        gate.unlink()
        os.mkfifo(gate)
    # files, not pipes: records nobody reads while the test waits at a gate
    # would fill a pipe and stop the batch (150 records are over 64 KiB)
    records, errors = tmp_path / "records.jsonl", tmp_path / "errors.txt"
    with records.open("wb") as out, errors.open("wb") as err:
        proc = subprocess.Popen(
            [WALDO, "find", "-t", template, "--files-from", listing, "--jsonl", "--dask", address],
            stdout=out,
            stderr=err,
        )
    killed: set[int] = set()

    def state() -> str:
        tasks = _search_tasks(local_session.client)
        done = len(records.read_bytes().splitlines())
        return (
            f"{done} records; workers read {_what_workers_read(cluster)}; tasks {tasks}; "
            f"stderr {errors.read_text()!r}"
        )

    for gate, everyone in zip(gates, (False, True), strict=True):
        writer = _writer_once_read(gate, proc, state)
        [reader] = _until(
            lambda gate=gate: _reading(_worker_pids(cluster), gate), proc=proc, state=state
        )
        for other in gates[gates.index(gate) + 1 :]:
            assert not _reading(_worker_pids(cluster), other), f"{other} is read early"
        victims = _worker_pids(cluster) | {reader} if everyone else {reader}
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        killed |= victims
        # the task runs again on a worker that lives: it opens the FIFO anew
        _until(
            lambda gate=gate, gone=set(killed): _reading(_worker_pids(cluster) - gone, gate),
            proc=proc,
            state=state,
        )
        os.set_blocking(writer, True)
        spare = gate.with_name(f"{gate.name}.image")
        spare.symlink_to(tmp_path / "big.png")
        os.replace(spare, gate)  # the reader keeps the FIFO it opened
        with open(writer, "wb") as fh:
            fh.write(picture)
    try:
        proc.wait(timeout=180)
    except subprocess.TimeoutExpired:
        then = state()
        proc.kill()
        proc.wait()
        pytest.fail(f"waldo hung: {then}")
    assert proc.returncode == 0, errors.read_text()
    got = [json.loads(line) for line in records.read_text().splitlines()]
    assert [r["image"] for r in got] == names  # each image exactly once, in order
    assert all((r["matches"][0]["x"], r["matches"][0]["y"]) == (70, 50) for r in got)
    assert not killed & _worker_pids(cluster)  # they really died, and others took over
