"""waldo against OpenCV and scikit-image, in one process, on real photographs.

Run by hand (never in the test suite):

    python benchmarks/bench_match.py            # the table for the README
    python benchmarks/bench_match.py --quick    # two small workloads

Each workload is an RGB image built from skimage.data photographs (tiled or
resized up) and a template cut from it with noise added. Every library gets
float32 input and TM_CCOEFF_NORMED (skimage: match_template, which computes
the same normalised correlation). Runs alternate between the libraries; the
table shows the median of the timed runs after one warm-up, the ratio
OpenCV / waldo, and each library's largest error against a float64
reference computed by waldo's own test oracle on a sample of windows.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

WORKLOADS = [
    # name, image side, template side
    ("1024² RGB, 7×7 (Δ = 3)", 1024, 7),
    ("1024² RGB, 32×32", 1024, 32),
    ("1024² RGB, 64×64", 1024, 64),
    ("2048² RGB, 128×128", 2048, 128),
]
QUICK = [("512² RGB, 7×7", 512, 7), ("512² RGB, 32×32", 512, 32)]


def make_workload(side: int, tside: int, rng: np.random.Generator):
    import skimage.data
    from skimage.transform import resize

    photo = skimage.data.astronaut().astype(np.float32)
    reps = max(1, side // 512)
    image = np.tile(photo, (reps, reps, 1))[:side, :side]
    if image.shape[0] < side:
        image = (resize(photo / 255.0, (side, side, 3)) * 255).astype(np.float32)
    y, x = side // 3, side // 2
    template = image[y:y + tside, x:x + tside] + rng.normal(0, 4, (tside, tside, 3))
    return np.ascontiguousarray(image), np.ascontiguousarray(template.astype(np.float32)), (y, x)


def sampled_error(scores: np.ndarray, image, template, rng, count: int = 300) -> float:
    """Largest |score - float64 score| over the true match and random windows."""
    from naive import match_template_ref

    h, w = template.shape[:2]
    ys = rng.integers(0, scores.shape[0], count)
    xs = rng.integers(0, scores.shape[1], count)
    worst = 0.0
    for y, x in zip(ys, xs, strict=True):
        ref, near = match_template_ref(image[y:y + h, x:x + w], template, "ccoeff_normed")
        if not near[0, 0]:
            worst = max(worst, abs(float(scores[y, x]) - float(ref[0, 0])))
    return worst


def time_runs(functions: dict, repeats: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in functions}
    for fn in functions.values():
        fn()  # warm-up: compile, allocate, fill caches
    for _ in range(repeats):
        for name, fn in functions.items():  # alternate, so drift hits all alike
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two small workloads")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-skimage", action="store_true", help="skip scikit-image")
    args = parser.parse_args()

    import cv2
    from skimage.feature import match_template as sk_match

    from waldo_cli import match_template
    from waldo_cli.engine import get_threads

    rng = np.random.default_rng(0)
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"waldo threads {get_threads()}, OpenCV {cv2.__version__} "
          f"(threads {cv2.getNumThreads()}), numpy {np.__version__}")
    print("| workload | waldo ms | OpenCV ms | OpenCV / waldo | scikit-image ms | "
          "waldo max error | OpenCV max error |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, side, tside in (QUICK if args.quick else WORKLOADS):
        image, template, _ = make_workload(side, tside, rng)
        functions = {
            "waldo": lambda i=image, t=template: match_template(i, t, "ccoeff_normed"),
            "opencv": lambda i=image, t=template: cv2.matchTemplate(i, t, cv2.TM_CCOEFF_NORMED),
        }
        if not args.no_skimage:
            functions["skimage"] = lambda i=image, t=template: sk_match(i, t)
        medians = time_runs(functions, args.repeats)
        ours = match_template(image, template, "ccoeff_normed")
        theirs = cv2.matchTemplate(image, template, cv2.TM_CCOEFF_NORMED)
        err_ours = sampled_error(ours, image, template, np.random.default_rng(1))
        err_cv = sampled_error(theirs, image, template, np.random.default_rng(1))
        sk = f"{medians['skimage'] * 1e3:.1f}" if "skimage" in medians else "—"
        print(f"| {name} | {medians['waldo'] * 1e3:.1f} | {medians['opencv'] * 1e3:.1f} | "
              f"{medians['opencv'] / medians['waldo']:.2f}× | {sk} | {err_ours:.1e} | "
              f"{err_cv:.1e} |", flush=True)


if __name__ == "__main__":
    main()
