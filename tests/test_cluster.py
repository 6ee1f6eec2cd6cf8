"""``waldo find --dask``: the local batch's records, order and guarantees on a Dask cluster.

One LocalCluster for the whole file: two single-threaded worker processes on
the loopback interface, small images. Every address here is 127.0.0.1.
"""

from __future__ import annotations

import json
import logging
import os
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
from PIL import Image

from waldo_cli.cli import cli

pytest.importorskip(
    "distributed", reason="the [dask] extra is not installed: pip install 'waldo-cli[dask]'"
)

WALDO = str(Path(sys.executable).with_name("waldo"))
TIMINGS = ("seconds", "compile_seconds")


@pytest.fixture(scope="module")
def dask_cluster():
    """What `--dask local --jobs 2` starts: two worker processes on 127.0.0.1."""
    from waldo_cli.cluster import open_session

    with open_session("local", workers=2) as session:
        yield session.cluster.scheduler_address, session.client


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


def test_unordered_gives_the_same_records(images, address):
    template, paths = images
    local = run("find", "-t", template, *paths, "--jsonl")
    remote = run("find", "-t", template, *paths, "--jsonl", "--dask", address, "--unordered")
    assert remote.exit_code == local.exit_code
    key = lambda record: record["image"]  # noqa: E731
    assert sorted(records(remote.stdout), key=key) == sorted(records(local.stdout), key=key)


def test_image_bytes_from_stdin_travel_with_their_task(images, address):
    template, paths = images
    data = Path(paths[0]).read_bytes()
    local = run("find", "-t", template, paths[1], "-", "--jsonl", input=data)
    remote = run("find", "-t", template, paths[1], "-", "--jsonl", "--dask", address, input=data)
    assert remote.exit_code == local.exit_code == 0
    assert records(remote.stdout) == records(local.stdout)
    assert records(remote.stdout)[1]["image"] == "-"


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


def test_progress_bar_on_a_terminal(images, address):
    template, paths = images
    tty = {"FORCE_COLOR": "1", "COLUMNS": "100"}
    good = [p for p in paths if Path(p).exists() and Path(p).stat().st_size > 100][:6]
    result = run("find", "-t", template, *good, "--jsonl", "--dask", address, env=tty)
    assert "searching" in result.stderr and "6/6" in result.stderr
    assert len(result.stdout.splitlines()) == 6


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
        out = sum(any(i not in yielded for i, _ in items) for _, items in spy.submitted)
        most = max(most, out)
    assert yielded == set(range(len(good)))
    [(data, kwargs, future)] = spy.scattered
    assert data is searcher and kwargs["broadcast"] is True
    assert all(args[0] is future for args in spy.submitted)
    assert 1 <= most <= 2 * 2  # two tasks per worker thread
    assert len(spy.submitted) < len(good) / 2  # several images a task


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


def _worker_busy_with_waldo(client) -> int | None:
    """The pid of a worker that is searching for waldo now, if one is."""
    pids = client.run(os.getpid, on_error="ignore")
    for worker, keys in client.processing().items():
        if any(str(key).startswith("waldo-search") for key in keys):
            return pids[worker]
    return None


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


def test_workers_killed_mid_batch_cost_no_record(images, dask_cluster, address, tmp_path):
    """kill -9 of a worker while it searches, then of every worker: each image exactly once.

    The first: the scheduler runs the dead worker's tasks again elsewhere. The
    second takes every copy of the scattered searcher with it: waldo ships it
    again, to the workers that come back, and sends the cancelled tasks again.
    """
    _, client = dask_cluster
    template, _ = images
    count = 150
    listing, names = _slow_list(images, tmp_path, count)
    proc = subprocess.Popen(
        [WALDO, "find", "-t", template, "--files-from", listing, "--jsonl", "--dask", address],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    fd = proc.stdout.fileno()
    data = _read_line(fd, b"")
    deadline = time.monotonic() + 30
    while (pid := _worker_busy_with_waldo(client)) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pid is not None, "no worker was searching"
    os.kill(pid, signal.SIGKILL)
    data = _read_line(fd, data, data.count(b"\n") + 1)
    everyone = list(client.run(os.getpid, on_error="ignore").values())
    for other in everyone:
        os.kill(other, signal.SIGKILL)
    while chunk := os.read(fd, 1 << 16):
        data += chunk
    proc.wait(timeout=120)
    assert proc.returncode == 0, proc.stderr.read().decode()
    got = [json.loads(line) for line in data.decode().splitlines()]
    assert [r["image"] for r in got] == names  # each image exactly once, in order
    assert all((r["matches"][0]["x"], r["matches"][0]["y"]) == (70, 50) for r in got)
    alive = set(client.run(os.getpid, on_error="ignore").values())
    assert pid not in alive and not alive & set(everyone)  # they really died
