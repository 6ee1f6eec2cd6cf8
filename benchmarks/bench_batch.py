"""Memory and throughput of a long batch: does peak memory stay flat?

    python benchmarks/bench_batch.py                 # 2,000 images of 640×480
    python benchmarks/bench_batch.py --images 200    # a quick look

Runs ``waldo find -t TEMPLATE --files-from LIST --jsonl`` in a subprocess over
a list that cycles through 25 different photographs-like images, samples the
process's resident memory (VmRSS) while it works, and prints the RSS after
each tenth of the batch, the peak, and the throughput. Flat means the RSS
after 10% of the images is the RSS after 100%.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import rss_kib  # the script's folder is on sys.path
from PIL import Image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--waldo", default=str(Path(sys.executable).with_name("waldo")))
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))

    import skimage.data

    rng = np.random.default_rng(0)
    photo = skimage.data.astronaut()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        template = photo[200:232, 240:272]
        Image.fromarray(template).save(root / "t.png")
        files = []
        for i in range(25):
            y, x = rng.integers(0, 512 - 128, 2)
            crop = Image.fromarray(photo[y : y + 128, x : x + 128])
            image = np.array(crop.resize((width, height)))
            ty, tx = rng.integers(0, height - 32), rng.integers(0, width - 32)
            image[ty : ty + 32, tx : tx + 32] = template
            Image.fromarray(image).save(root / f"{i}.png")
            files.append(str(root / f"{i}.png"))
        (root / "list.txt").write_text("".join(files[i % 25] + "\n" for i in range(args.images)))
        command = [
            args.waldo,
            "find",
            "-t",
            str(root / "t.png"),
            "--files-from",
            str(root / "list.txt"),
            "--jsonl",
        ]
        if args.jobs:
            command += ["--jobs", str(args.jobs)]
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        samples: list[tuple[int, int]] = []  # (records written so far, RSS KiB)
        done = 0
        os.set_blocking(proc.stdout.fileno(), False)
        pending = b""
        while proc.poll() is None:
            chunk = proc.stdout.read() or b""
            pending += chunk
            done += pending.count(b"\n")
            pending = pending[pending.rfind(b"\n") + 1 :] if b"\n" in pending else pending
            rss = rss_kib(proc.pid)
            if rss is not None:
                samples.append((done, rss))
            time.sleep(0.02)
        rest = proc.stdout.read() or b""
        done += (pending + rest).count(b"\n")
        seconds = time.perf_counter() - started

    print(
        f"# waldo find -t over {args.images} images of {width}×{height}, "
        f"{os.cpu_count()} cores, jobs {args.jobs or 'all'}"
    )
    print(f"records: {done}, wall time {seconds:.1f} s, {done / seconds:.0f} images/s")
    print("| images done | RSS MiB |")
    print("|---:|---:|")
    for tenth in range(1, 11):
        mark = args.images * tenth // 10
        before = [rss for count, rss in samples if count <= mark]
        if before:
            print(f"| {mark} | {before[-1] / 1024:.0f} |")
    print(f"peak RSS: {max(rss for _, rss in samples) / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
