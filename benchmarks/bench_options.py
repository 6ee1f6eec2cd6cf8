"""What #16's search region and several templates per run save.

Run by hand (never in the test suite):

    python benchmarks/bench_options.py

A 1920×1080 RGB "screen" (skimage's astronaut, tiled, with noise) and templates cut
from it, searched through ``waldo_cli.search`` as ``waldo find`` searches
(``Searcher``, ``MultiSearcher``), ccoeff_normed, default engine choice.
Medians of alternating runs after a warm-up (``bench_match.time_runs``).

* Region: the whole screen against ``--region`` rectangles of about 25 %,
  5 % and 1 % of it, each holding the template (pyautogui's measured 10×
  with a region of 5 % of the screen is the claim to check).
* Several templates: N templates searched by one ``MultiSearcher`` (the
  image converted once, its FFT tiles shared) against N ``Searcher``s one
  after the other, as N separate runs would search (without their N
  process starts and image reads, which a separate run also pays).

The answers are equal either way (tests/test_options.py checks it).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_match import ms, time_runs  # noqa: E402

WIDTH, HEIGHT = 1920, 1080
TEMPLATE = (48, 64)  # (h, w)
AT = (900, 500)  # (x, y) of the template in the screen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per median")
    args = parser.parse_args()

    import skimage.data
    from machine import describe

    from waldo_cli.engine import get_threads
    from waldo_cli.io import LoadedImage
    from waldo_cli.search import MultiSearcher, Searcher, SearchOptions

    print(describe(get_threads()))
    tiles = np.tile(skimage.data.astronaut(), (3, 4, 1))[:HEIGHT, :WIDTH].astype(np.float32)
    # noise tells the tiles apart: each cut is then found only where it was cut
    tiles += np.random.default_rng(1).normal(0.0, 8.0, tiles.shape).astype(np.float32)
    screen = LoadedImage(np.ascontiguousarray(tiles), None, "RGB", "screen.png")
    h, w = TEMPLATE
    x, y = AT

    def cut(cx: int, cy: int, name: str) -> LoadedImage:
        pixels = np.ascontiguousarray(screen.pixels[cy : cy + h, cx : cx + w])
        return LoadedImage(pixels, None, "RGB", name)

    template = cut(x, y, "t.png")
    print(
        f"\nScreen {WIDTH}×{HEIGHT} RGB, template {w}×{h} at ({x}, {y}); ccoeff_normed. "
        f"Median of {args.repeats} alternating runs after a warm-up.\n"
    )
    print("| search | windows scored | ms | whole screen / this |")
    print("|---|---:|---:|---:|")
    cases: dict[str, tuple[int, int, int, int] | None] = {"whole screen": None}
    for share in (0.25, 0.05, 0.01):
        rw = round(math.sqrt(share * WIDTH * HEIGHT * WIDTH / HEIGHT))
        rh = round(share * WIDTH * HEIGHT / rw)
        rx, ry = max(0, x + w // 2 - rw // 2), max(0, y + h // 2 - rh // 2)
        cases[f"--region {rx},{ry},{rw},{rh} ({share:.0%})"] = (rx, ry, rw, rh)
    searchers = {
        label: Searcher(template, SearchOptions(region=region, threshold=0.5))
        for label, region in cases.items()
    }
    medians, _ = time_runs(
        {label: (lambda s=s: s.search(screen)) for label, s in searchers.items()}, args.repeats
    )
    whole = medians["whole screen"]
    for label, region in cases.items():
        rw, rh = (WIDTH, HEIGHT) if region is None else region[2:]
        found = searchers[label].search(screen).matches[0]
        assert (found.x, found.y) == (x, y), (label, found)
        windows = (rh - h + 1) * (rw - w + 1)
        print(f"| {label} | {windows:,} | {ms(medians[label])} | {whole / medians[label]:.1f}× |")

    print("\n| templates | one MultiSearcher ms | one Searcher each ms | each / shared |")
    print("|---:|---:|---:|---:|")
    rng = np.random.default_rng(0)
    for count in (2, 5, 10):
        places = [(int(rng.integers(0, WIDTH - w)), int(rng.integers(0, HEIGHT - h)))]
        while len(places) < count:
            places.append((int(rng.integers(0, WIDTH - w)), int(rng.integers(0, HEIGHT - h))))
        options = SearchOptions(threshold=0.5)
        alone = [Searcher(cut(px, py, f"t{k}.png"), options) for k, (px, py) in enumerate(places)]
        shared = MultiSearcher(alone)
        medians, _ = time_runs(
            {
                "shared": lambda m=shared: m.search(screen),
                "each": lambda a=alone: [s.search(screen) for s in a],
            },
            args.repeats,
        )
        print(
            f"| {count} | {ms(medians['shared'])} | {ms(medians['each'])} | "
            f"{medians['each'] / medians['shared']:.2f}× |",
            flush=True,
        )


if __name__ == "__main__":
    main()
