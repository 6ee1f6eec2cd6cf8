"""Batch searches on a Dask cluster: throughput, what Dask adds per image and per task, memory.

Run by hand (never in the test suite); needs the extra (``pip install -e '.[dask]'``):

    python benchmarks/bench_cluster.py                        # every section
    python benchmarks/bench_cluster.py --section throughput   # 640×480 images
    python benchmarks/bench_cluster.py --section overhead     # tiny images, task sizes
    python benchmarks/bench_cluster.py --section memory --paths 100000

Sections:

* throughput: ``waldo find -t T --files-from LIST --jsonl`` over 640×480
  images (a list cycling through 25 of them, as bench_batch.py), locally with
  ``--jobs 2`` and with ``--dask local`` and 1 or 2 worker processes: wall
  time, time to the first record (a local cluster starts and its workers load
  the kernels first), and the steady rate (records from the first tenth to the
  last, over the time between them).
* overhead: tiny images (48×48, an 8×8 template), where the search itself
  costs almost nothing: CPU time an image in this process (no Dask), and on
  a cluster of one worker with fixed task sizes and with waldo's own sizing,
  the CPU time of the worker, the scheduler (this process: its worker's nanny
  sleeps) and the client (another process) while the batch ran. CPU time,
  unlike wall time, hardly depends on what else the machine runs; the
  scheduler's, divided by the tasks, is its cost per task.
* memory: the resident memory of the ``waldo find --dask`` process (the
  client; the scheduler and workers in this process and its children) after
  each tenth of a long list of paths, and its peak.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import rss_kib  # noqa: E402

WALDO = str(Path(sys.executable).with_name("waldo"))


def load_average() -> str:
    try:
        with open("/proc/loadavg") as fh:
            return " ".join(fh.read().split()[:3])
    except OSError:
        return "?"


def photographs(root: Path, width: int, height: int) -> tuple[Path, list[str]]:
    """25 images of WIDTH×HEIGHT cut from a photograph, a 32×32 template pasted in each."""
    import skimage.data

    rng = np.random.default_rng(0)
    photo = skimage.data.astronaut()
    template = photo[200:232, 240:272]
    Image.fromarray(template).save(root / "t.png")
    files = []
    for i in range(25):
        y, x = rng.integers(0, 512 - 128, 2)
        image = np.array(Image.fromarray(photo[y : y + 128, x : x + 128]).resize((width, height)))
        ty, tx = rng.integers(0, height - 32), rng.integers(0, width - 32)
        image[ty : ty + 32, tx : tx + 32] = template
        Image.fromarray(image).save(root / f"{i}.png")
        files.append(str(root / f"{i}.png"))
    return root / "t.png", files


def tiny(root: Path) -> tuple[Path, list[str]]:
    """25 images of 48×48 with an 8×8 template: searching one costs next to nothing."""
    rng = np.random.default_rng(1)
    template = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(template).save(root / "tiny-t.png")
    files = []
    for i in range(25):
        image = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
        image[i : i + 8, 20:28] = template
        Image.fromarray(image).save(root / f"tiny{i}.png")
        files.append(str(root / f"tiny{i}.png"))
    return root / "tiny-t.png", files


def write_list(path: Path, files: list[str], count: int) -> Path:
    path.write_text("".join(files[i % len(files)] + "\n" for i in range(count)))
    return path


def run_command(command: list[str], sample_rss: bool = False) -> dict:
    """Run a waldo command: when each record arrived, its RSS while it ran, its CPU seconds.

    The CPU seconds are those of the process and its descendants (a local
    cluster's workers), counted when they have exited.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    os.set_blocking(proc.stdout.fileno(), False)
    arrivals: list[float] = []
    samples: list[tuple[int, int]] = []
    pending = b""
    while True:
        chunk = proc.stdout.read() or b""
        pending += chunk
        now = time.perf_counter() - started
        lines = pending.count(b"\n")
        arrivals += [now] * lines
        pending = pending[pending.rfind(b"\n") + 1 :] if lines else pending
        if sample_rss:
            rss = rss_kib(proc.pid)
            if rss is not None:
                samples.append((len(arrivals), rss))
        if proc.poll() is not None and not chunk:
            break
        time.sleep(0.01 if chunk else 0.02)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    err = proc.stderr.read().decode()
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(command)} failed ({proc.returncode}):\n{err}")
    return {"seconds": seconds, "arrivals": arrivals, "rss": samples, "cpu": cpu}


def steady_rate(arrivals: list[float]) -> float:
    """Records per second from the first tenth of the records to the last."""
    first = len(arrivals) // 10
    span = arrivals[-1] - arrivals[first]
    return (len(arrivals) - 1 - first) / span if span > 0 else float("nan")


def throughput(root: Path, images: int) -> None:
    template, files = photographs(root, 640, 480)
    few = max(10, images // 10)
    lists = {n: write_list(root / f"list{n}.txt", files, n) for n in (few, images)}
    runs = [
        ("local batch, `--jobs 2` (threads)", ["--jobs", "2"]),
        ("`--dask local --jobs 1` (1 worker process)", ["--dask", "local", "--jobs", "1"]),
        ("`--dask local --jobs 2` (2 worker processes)", ["--dask", "local", "--jobs", "2"]),
    ]
    print(f"\n## Throughput: {images} images of 640×480, a 32×32 template\n")
    print(
        f"Wall-clock figures depend on what else the machine runs (its load average is given); "
        f"CPU time much less: 'CPU ms an image' is the CPU time of the whole process tree "
        f"(waldo and its workers) of this run less that of a run over {few} images, over "
        f"the {images - few} images more; 'start-up CPU s' is the rest.\n"
    )
    print(
        "| run | wall s | first record s | steady images/s | CPU ms an image "
        "| start-up CPU s | load avg |"
    )
    print("|---|---:|---:|---:|---:|---:|---|")
    for label, extra in runs:
        load = load_average()
        base = [WALDO, "find", "-t", str(template), "--jsonl", *extra, "--files-from"]
        small = run_command([*base, str(lists[few])])
        result = run_command([*base, str(lists[images])])
        per_image = (result["cpu"] - small["cpu"]) / (images - few)
        start_up = small["cpu"] - few * per_image
        arrivals = result["arrivals"]
        print(
            f"| {label} | {result['seconds']:.1f} | {arrivals[0]:.1f} | "
            f"{steady_rate(arrivals):.1f} | {per_image * 1e3:.1f} | {start_up:.1f} | {load} |"
        )


_CLIENT = """
import json, sys, time
from distributed import Client
from waldo_cli.cluster import search_on_cluster
from waldo_cli.io import read_image
from waldo_cli.search import Searcher, SearchOptions

class Counting:
    def __init__(self, client):
        self.client, self.tasks = client, 0
    def submit(self, fn, *args, **kwargs):
        self.tasks += fn.__name__ == "search_task"  # not the one that ships the searcher
        return self.client.submit(fn, *args, **kwargs)
    def __getattr__(self, name):
        return getattr(self.client, name)

def cpu(client):
    workers = sum(client.run(time.process_time).values())
    return workers, client.run_on_scheduler(time.process_time), time.process_time()

address, template, listing, size = sys.argv[1:5]
paths = open(listing).read().split()
searcher = Searcher(read_image(template), SearchOptions(threads=1))
with Client(address) as client:
    # warm: the worker imports waldo and loads the kernels before the clock starts
    list(search_on_cluster(client, searcher, [(p, p) for p in paths[:4]]))
    counting = Counting(client)
    idle = cpu(client)
    time.sleep(5)  # what the scheduler and the worker spend doing nothing: heartbeats
    before, started = cpu(client), time.perf_counter()
    idle = [(b - a) / 5 for a, b in zip(idle, before)]
    count = sum(1 for _ in search_on_cluster(
        counting, searcher, [(p, p) for p in paths], total=len(paths),
        images_per_task=None if size == "auto" else int(size)))
    seconds, after = time.perf_counter() - started, cpu(client)
    worker, scheduler, here = (b - a for a, b in zip(before, after))
    print(json.dumps({"seconds": seconds, "images": count, "tasks": counting.tasks,
                      "worker": worker, "scheduler": scheduler, "client": here,
                      "idle_worker": idle[0], "idle_scheduler": idle[1]}))
"""


def overhead(root: Path, images: int) -> None:
    from waldo_cli.cluster import open_session
    from waldo_cli.io import read_image
    from waldo_cli.search import Searcher, SearchOptions

    template, files = tiny(root)
    listing = write_list(root / "tiny.txt", files, images)
    paths = listing.read_text().split()
    searcher = Searcher(read_image(str(template)), SearchOptions(threads=1))
    searcher.search(read_image(paths[0]))
    started, cpu = time.perf_counter(), time.process_time()
    for path in paths:
        searcher.search(read_image(path))
    alone = (time.process_time() - cpu) / len(paths)
    alone_wall = (time.perf_counter() - started) / len(paths)

    print(f"\n## What Dask adds: {images} images of 48×48, an 8×8 template, one worker\n")
    print(
        f"Read and searched in one process without Dask: {alone * 1e3:.2f} CPU ms an image "
        f"({1 / alone_wall:.0f} images/s, load avg {load_average()}). On a cluster of one "
        f"worker process (the scheduler in another, the client in a third), CPU time of each "
        f"while the batch ran (after a warm-up):\n"
    )
    print(
        "| images per task | tasks | images/s | CPU ms an image: worker | scheduler | client "
        "| Dask adds, CPU ms an image | scheduler CPU ms a task (idle ticking apart) | load avg |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    session = open_session("local", workers=1)  # as `--dask local --jobs 1` starts it
    cluster = session.cluster
    try:
        for size in ("1", "8", "64", "auto"):
            load = load_average()
            proc = subprocess.run(
                [sys.executable, "-c", _CLIENT, cluster.scheduler_address, str(template)]
                + [str(listing), size],
                capture_output=True,
                text=True,
                check=True,
            )
            r = json.loads(proc.stdout.splitlines()[-1])
            n = r["images"]
            total = (r["worker"] + r["scheduler"] + r["client"]) / n
            busy = r["scheduler"] - r["idle_scheduler"] * r["seconds"]
            print(
                f"| {size} | {r['tasks']} | {n / r['seconds']:.0f} | {r['worker'] / n * 1e3:.2f} "
                f"| {r['scheduler'] / n * 1e3:.2f} | {r['client'] / n * 1e3:.2f} "
                f"| {(total - alone) * 1e3:.2f} | {r['scheduler'] / r['tasks'] * 1e3:.2f} "
                f"({busy / r['tasks'] * 1e3:.2f}) | {load} |"
            )
    finally:
        session.close()


def memory(root: Path, paths: int) -> None:
    from waldo_cli.cluster import open_session

    template, files = tiny(root)
    listing = write_list(root / "many.txt", files, paths)
    session = open_session("local", workers=2)
    try:
        command = [WALDO, "find", "-t", str(template), "--files-from", str(listing), "--jsonl"]
        address = session.cluster.scheduler_address
        result = run_command(command + ["--dask", address], sample_rss=True)
    finally:
        session.close()
    done, samples = len(result["arrivals"]), result["rss"]
    print(
        f"\n## Client memory: `waldo find --dask tcp://…` over {paths} paths "
        f"(48×48 images, 2 worker processes)\n"
    )
    print(f"records: {done}, wall time {result['seconds']:.0f} s, load avg {load_average()}\n")
    print("| images done | client RSS MiB |")
    print("|---:|---:|")
    for tenth in range(1, 11):
        mark = paths * tenth // 10
        before = [rss for count, rss in samples if count <= mark]
        if before:
            print(f"| {mark} | {before[-1] / 1024:.0f} |")
    print(f"\npeak client RSS: {max(rss for _, rss in samples) / 1024:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--section", action="append", choices=["throughput", "overhead", "memory"], default=None
    )
    parser.add_argument("--images", type=int, default=600, help="640×480 images (throughput)")
    parser.add_argument("--tiny", type=int, default=2000, help="tiny images (overhead)")
    parser.add_argument("--paths", type=int, default=100_000, help="paths (memory)")
    args = parser.parse_args()
    sections = args.section or ["throughput", "overhead", "memory"]

    from machine import describe

    print(describe(extra=(f"distributed {_version('distributed')}",)))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if "throughput" in sections:
            throughput(root, args.images)
        if "overhead" in sections:
            overhead(root, args.tiny)
        if "memory" in sections:
            memory(root, args.paths)


def _version(package: str) -> str:
    from machine import version

    return version(package)


if __name__ == "__main__":
    main()
