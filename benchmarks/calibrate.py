"""Measure the constants of waldo's engine cost model on this machine.

    python benchmarks/calibrate.py

Prints the direct kernel's multiply-add rate per thread and the seconds one
FFT tile costs for each tile side (3 channels, all threads busy), which
``waldo_cli/engine.py`` keeps in ``_DIRECT_MACS_PER_SECOND`` and
``_FFT_TILE_SECONDS``.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from waldo_cli import jit, kernels
from waldo_cli.engine import get_threads, prepare_template
from waldo_cli.pool import SHARED

SIDES = (128, 160, 192, 256, 320, 384, 512, 640, 768, 1024)


def best_of(fn, repeats=5):
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def main() -> None:
    rng = np.random.default_rng(0)
    threads = get_threads()
    image = (rng.random((3, 2048, 2048), dtype=np.float32) * 255).astype(np.float32)
    print(f"threads: {threads}")
    for h in (5, 9, 15):
        template = rng.random((3, h, h)) - 0.5
        out = np.empty((2048 - h + 1, 2048 - h + 1), np.float32)
        fastest, _ = best_of(
            lambda t=template, o=out: SHARED.run_bands(
                kernels._correlate_direct,
                (image, t, o),
                o.shape[0],
                threads=threads,
                scratch=lambda o=o: (np.empty((3, o.shape[1])),),
            )
        )
        rate = out.size * h * h * 3 / fastest / threads
        print(f"direct {h}x{h}: {rate / 1e9:.2f} GMAC/s per thread")
    offsets = np.zeros(3)
    print("side  seconds per tile (3 channels)")
    for side in SIDES:
        h = 16
        template = rng.random((3, h, h)) - 0.5
        spectrum = prepare_template(template.transpose(1, 2, 0)).spectrum(side)
        out = np.empty((2048 - h + 1, 2048 - h + 1), np.float32)
        step = side - h + 1
        tiles = (-(-out.shape[0] // step)) ** 2
        rounds = -(-tiles // threads)
        jit.load_fft()
        fastest, _ = best_of(
            lambda s=spectrum, o=out, h=h, n=tiles, t=side: SHARED.run_bands(
                kernels._correlate_fft,
                (
                    image,
                    offsets,
                    s[None],
                    np.array([h]),
                    np.array([h]),
                    o.reshape(-1),
                    np.zeros(1, np.int64),
                    np.arange(2, dtype=np.int64),
                ),
                n,
                threads=threads,
                scratch=lambda: (
                    np.zeros((2, t, t)),
                    np.empty((2, t, t // 2 + 1), np.complex128),
                ),
            ),
            repeats=3,
        )
        print(f"{side:5d} {fastest / rounds:.3e}")


if __name__ == "__main__":
    main()
