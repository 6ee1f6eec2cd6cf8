"""What searching many template variants (scales, turns, mirror images) costs.

Run by hand (never in the test suite):

    python benchmarks/bench_variants.py

A 1024² RGB photograph (skimage's astronaut, tiled) and a 48×48 template cut
from it; the variants are those `waldo find --scales ... --rotations ...
--flip` makes (waldo_cli.variants.make_variants). For each set of variants
the table gives, as medians of alternating runs after a warm-up:

* waldo one by one: ``match_template`` for each variant in turn;
* waldo shared: ``match_templates`` for all of them, which converts the image
  once and transforms each FFT tile once for every variant;
* OpenCV one by one: ``cv2.matchTemplate`` (float32, TM_CCOEFF_NORMED) for each;

and "per variant": the shared time over the number of variants, against the
time of a search with the template alone. The scores of the shared search
equal those of the single searches (tests/test_variants.py checks it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_match import ms, time_runs  # noqa: E402

SETS = [
    ("scales 0.8:1.2:0.1 (5)", "0.8:1.2:0.1", "0", False),
    ("scales 0.5:1.5:0.1 (11)", "0.5:1.5:0.1", "0", False),
    ("rotations 0,90,180,270 + flip (8)", "1", "0,90,180,270", True),
    ("scales 0.8:1.2:0.1 × rotations 0,90,180,270 (20)", "0.8:1.2:0.1", "0,90,180,270", False),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per median")
    args = parser.parse_args()

    import cv2
    import skimage.data
    from machine import describe

    from waldo_cli.engine import get_threads, match_template, match_templates
    from waldo_cli.variants import make_variants, parse_range

    print(describe(get_threads()))
    image = np.ascontiguousarray(np.tile(skimage.data.astronaut(), (2, 2, 1)).astype(np.float32))
    template = np.ascontiguousarray(image[341:389, 512:560])
    single = time_runs({"one": lambda: match_template(image, template)}, args.repeats)[0]["one"]
    print(
        f"\nImage 1024² RGB, template 48×48; the template alone takes {ms(single)} ms. "
        f"Median of {args.repeats} alternating runs after a warm-up.\n"
    )
    print(
        "| variants | waldo one by one ms | waldo shared ms | shared / one by one | "
        "per variant / template alone | OpenCV one by one ms | OpenCV / waldo shared |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, scales, angles, flip in SETS:
        variants = make_variants(
            template,
            None,
            parse_range(scales, "--scales"),
            parse_range(angles, "--rotations"),
            flip,
        )
        pixels = [np.ascontiguousarray(v.pixels, np.float32) for v in variants]
        masks = [v.mask for v in variants]
        functions = {
            "one by one": lambda ps=pixels, ms=masks: [
                match_template(image, p, mask=m) for p, m in zip(ps, ms, strict=True)
            ],
            "shared": lambda ps=pixels, ms=masks: match_templates(image, ps, masks=ms),
            "opencv": lambda ps=pixels: [
                cv2.matchTemplate(image, p, cv2.TM_CCOEFF_NORMED) for p in ps
            ],
        }
        medians, _ = time_runs(functions, args.repeats)
        count = len(variants)
        print(
            f"| {label} | {ms(medians['one by one'])} | {ms(medians['shared'])} | "
            f"{medians['shared'] / medians['one by one']:.2f} | "
            f"{medians['shared'] / count / single:.2f} | {ms(medians['opencv'])} | "
            f"{medians['opencv'] / medians['shared']:.2f}× |",
            flush=True,
        )


if __name__ == "__main__":
    main()
