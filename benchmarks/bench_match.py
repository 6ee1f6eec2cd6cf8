"""waldo against OpenCV and scikit-image, in one process, on real photographs.

Run by hand (never in the test suite):

    python benchmarks/bench_match.py            # the tables for the README
    python benchmarks/bench_match.py --quick    # small workloads, for trying changes

Each workload is an RGB image built from skimage.data photographs (tiled or
resized up) and a template cut from it with noise added. Every library gets
float32 input and TM_CCOEFF_NORMED (skimage: match_template, which computes
the same normalised correlation, but over all three channels at once: see
the footnote it prints). Runs alternate between the libraries, in a new
shuffled order each round; the table shows the median of the timed runs
after one warm-up (scikit-image: of one run when its warm-up takes over
``--skimage-limit`` seconds, as it does on the largest workloads), the ratios
OpenCV / waldo and scikit-image / waldo (above 1: waldo is faster), and
each library's largest error against a float64 reference computed by
waldo's own test oracle (tests/naive.py) on a sample of windows.

Three sections, all printed as Markdown:

* ``table``: the workloads above.
* ``methods``: all six methods on the 1024² RGB, 32×32 workload, waldo
  against OpenCV; errors of the raw methods (sqdiff, ccorr, ccoeff) are
  relative to sqrt(ΣT² · max over windows of ΣI²), as in the tests.
* ``flops``: the machine's peak floating-point rate, measured as NumPy
  matrix products, and the rate waldo's direct kernel reaches on the 7×7
  workload, counting 2·(H−h+1)(W−w+1)·h·w·C flops per search.
* ``masked``: masked templates on the 1024² RGB image, 7×7 and 32×32, with
  an alpha-like 0/1 mask (a disc) and a soft one (the disc with a feathered
  edge): waldo against ``cv2.matchTemplate(..., mask=...)``, and waldo's
  masked time against its unmasked time; then all six methods with the 0/1
  mask at 32×32. Errors against the float64 masked reference of the tests
  (tests/naive.py, ``match_template_masked_ref``), on sampled windows.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

WORKLOADS = [
    # name, image side (or a skimage.data photograph), template side
    ("1024² RGB, 7×7 (Δ = 3)", 1024, 7),
    ("1024² RGB, 32×32", 1024, 32),
    ("1024² RGB, 64×64", 1024, 64),
    ("2048² RGB, 128×128", 2048, 128),
    ("4096² RGB, 64×64", 4096, 64),
    ("Hubble deep field 1000×872 RGB, 24×24", "hubble_deep_field", 24),
]
QUICK = [("512² RGB, 7×7", 512, 7), ("512² RGB, 32×32", 512, 32)]
METHODS = ("sqdiff", "sqdiff_normed", "ccorr", "ccorr_normed", "ccoeff", "ccoeff_normed")
SECTIONS = ("table", "methods", "flops", "masked")
# one seeded stream for every time_runs call: the same order each call would
# favour the same function at every workload
ORDER = random.Random(0)


def make_workload(side, tside: int, rng: np.random.Generator):
    import skimage.data
    from skimage.transform import resize

    if isinstance(side, str):  # a photograph as it is
        image = getattr(skimage.data, side)().astype(np.float32)
        y, x = image.shape[0] // 3, image.shape[1] // 2
        template = image[y : y + tside, x : x + tside] + rng.normal(0, 4, (tside, tside, 3))
        return image, np.ascontiguousarray(template.astype(np.float32)), (y, x)
    photo = skimage.data.astronaut().astype(np.float32)
    reps = max(1, side // 512)
    image = np.tile(photo, (reps, reps, 1))[:side, :side]
    if image.shape[0] < side:
        image = (resize(photo / 255.0, (side, side, 3)) * 255).astype(np.float32)
    y, x = side // 3, side // 2
    template = image[y : y + tside, x : x + tside] + rng.normal(0, 4, (tside, tside, 3))
    return np.ascontiguousarray(image), np.ascontiguousarray(template.astype(np.float32)), (y, x)


def raw_scale(image: np.ndarray, template: np.ndarray) -> float:
    """naive.raw_scale without its all-windows einsum: sqrt(ΣT² · max over windows of ΣI²)."""
    h, w = template.shape[:2]
    squares = np.square(image.astype(np.float64)).sum(axis=2)
    table = np.zeros((squares.shape[0] + 1, squares.shape[1] + 1))
    table[1:, 1:] = squares.cumsum(axis=0).cumsum(axis=1)
    window = table[h:, w:] - table[:-h, w:] - table[h:, :-w] + table[:-h, :-w]
    t_sq = float(np.square(template.astype(np.float64)).sum())
    return float(np.sqrt(max(t_sq, 1e-300) * max(float(window.max()), 1e-300)))


def sampled_error(
    scores: np.ndarray,
    image,
    template,
    rng,
    method: str = "ccoeff_normed",
    scale: float = 1.0,
    count: int = 300,
    at=None,
    pooled: bool = False,
) -> float:
    """Largest |score - float64 score| / scale over random windows (and ``at``, the match).

    ``pooled``: the reference takes one mean over all channels of the window
    and of the template, as scikit-image does (it correlates an RGB image as
    a volume), instead of OpenCV's mean per channel.
    """
    from naive import match_template_ref

    h, w = template.shape[:2]
    if pooled:  # one channel of h rows of w·C values: its mean is the pooled one
        template = template.reshape(h, -1)
    ys = list(rng.integers(0, scores.shape[0], count))
    xs = list(rng.integers(0, scores.shape[1], count))
    if at is not None:
        ys.append(at[0])
        xs.append(at[1])
    worst = 0.0
    for y, x in zip(ys, xs, strict=True):
        window = image[y : y + h, x : x + w]
        if pooled:
            window = window.reshape(h, -1)
        ref, near = match_template_ref(window, template, method)
        if not near[0, 0]:
            worst = max(worst, abs(float(scores[y, x]) - float(ref[0, 0])) / scale)
    return worst


def time_runs(
    functions: dict, repeats: int, slow: tuple[str, ...] = (), slow_limit: float = float("inf")
) -> tuple[dict[str, float], dict[str, int]]:
    """Median seconds per function, and how many runs each median is of.

    Every function runs once to warm up; those named in ``slow`` whose warm-up
    took longer than ``slow_limit`` seconds then run only once more. The runs
    alternate, in a new shuffled order each round: a search runs at another
    speed just after another search (threads asleep or awake, data in the
    caches or not), so no function may always follow the same one.
    """
    counts = {}
    for name, fn in functions.items():
        start = time.perf_counter()
        fn()  # warm-up: compile, allocate, fill caches
        first = time.perf_counter() - start
        counts[name] = 1 if name in slow and first > slow_limit else repeats
    times: dict[str, list[float]] = {name: [] for name in functions}
    for round_ in range(repeats):
        names = list(functions)
        ORDER.shuffle(names)
        for name in names:  # alternate, so drift hits all alike
            if round_ < counts[name]:
                start = time.perf_counter()
                functions[name]()
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}, counts


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f}"


def workload_table(workloads, args) -> None:
    import cv2
    from skimage.feature import match_template as sk_match

    from waldo_cli import match_template
    from waldo_cli.engine import choose_engine, get_threads

    rng = np.random.default_rng(0)
    print(
        f"Median of {args.repeats} alternating runs after a warm-up; ccoeff_normed, float32 "
        "RGB input; error = largest |score − float64 score| over 300 random windows and the "
        "true match.\n"
    )
    print(
        "| workload | waldo engine | waldo ms | OpenCV ms | OpenCV / waldo | scikit-image ms | "
        "scikit-image / waldo | waldo max error | OpenCV max error | scikit-image max error |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    once = False
    sk_largest = 0.0
    for name, side, tside in workloads:
        image, template, at = make_workload(side, tside, rng)
        functions = {
            "waldo": lambda i=image, t=template: match_template(i, t, "ccoeff_normed"),
            "opencv": lambda i=image, t=template: cv2.matchTemplate(i, t, cv2.TM_CCOEFF_NORMED),
        }
        if not args.no_skimage:
            functions["skimage"] = lambda i=image, t=template: sk_match(i, t)
        medians, counts = time_runs(functions, args.repeats, ("skimage",), args.skimage_limit)
        out_shape = (image.shape[0] - tside + 1, image.shape[1] - tside + 1)
        engine = choose_engine(out_shape, (tside, tside), 3, get_threads())
        ours = match_template(image, template, "ccoeff_normed")
        errors = [
            sampled_error(ours, image, template, np.random.default_rng(1), at=at),
            sampled_error(
                cv2.matchTemplate(image, template, cv2.TM_CCOEFF_NORMED),
                image,
                template,
                np.random.default_rng(1),
                at=at,
            ),
        ]
        sk = sk_ratio = sk_err = "—"
        if "skimage" in medians:
            sk = ms(medians["skimage"])
            if counts["skimage"] < args.repeats:
                sk += " ¹"
                once = True
            sk_ratio = f"{medians['skimage'] / medians['waldo']:.2f}×"
            # skimage pads nothing here (pad_input=False): its map is OpenCV's shape
            sk_scores = sk_match(image, template)[..., 0]
            sk_largest = max(sk_largest, float(np.abs(sk_scores).max()))
            sk_err = sampled_error(
                sk_scores, image, template, np.random.default_rng(1), at=at, pooled=True
            )
            sk_err = f"{sk_err:.1e} ²"
        print(
            f"| {name} | {engine} | {ms(medians['waldo'])} | {ms(medians['opencv'])} | "
            f"{medians['opencv'] / medians['waldo']:.2f}× | {sk} | {sk_ratio} | "
            f"{errors[0]:.1e} | {errors[1]:.1e} | {sk_err} |",
            flush=True,
        )
    if once:
        print(
            "\n¹ one timed run after the warm-up: the warm-up took over "
            f"{args.skimage_limit:g} s (`--skimage-limit`)."
        )
    if not args.no_skimage:
        print(
            "\n² against scikit-image's own definition: `skimage.feature.match_template` "
            "correlates an RGB image as a volume, so it subtracts one mean over all three "
            "channels of the window (and of the template) where OpenCV and waldo subtract "
            "each channel's mean (a different score for colour images). Its error against "
            "that definition comes from computing each window's variance as ΣI² − (ΣI)²/n in "
            "float32 (with float64 input it is below 1e-12): it scored some windows up to "
            f"{sk_largest:.2f}, where a correlation coefficient is at most 1."
        )


def methods_table(workload, args) -> None:
    import cv2

    from waldo_cli import match_template

    name, side, tside = workload
    image, template, at = make_workload(side, tside, np.random.default_rng(0))
    scale = raw_scale(image, template)
    print(
        f"All six methods on {name}: median of {args.repeats} alternating runs after a "
        "warm-up; error over 300 random windows and the true match, relative to "
        f"sqrt(ΣT² · max ΣI²) = {scale:.3g} for the raw methods.\n"
    )
    print("| method | waldo ms | OpenCV ms | OpenCV / waldo | waldo max error | OpenCV max error |")
    print("|---|---:|---:|---:|---:|---:|")
    for method in METHODS:
        code = getattr(cv2, f"TM_{method.upper()}")
        functions = {
            "waldo": lambda m=method: match_template(image, template, m),
            "opencv": lambda c=code: cv2.matchTemplate(image, template, c),
        }
        medians, _ = time_runs(functions, args.repeats)
        relative = 1.0 if method.endswith("_normed") else scale
        errors = [
            sampled_error(
                scores, image, template, np.random.default_rng(1), method, relative, at=at
            )
            for scores in (
                match_template(image, template, method),
                cv2.matchTemplate(image, template, code),
            )
        ]
        print(
            f"| {method} | {ms(medians['waldo'])} | {ms(medians['opencv'])} | "
            f"{medians['opencv'] / medians['waldo']:.2f}× | {errors[0]:.1e} | "
            f"{errors[1]:.1e} |",
            flush=True,
        )


def matmul_rate(n: int, dtype, repeats: int = 3) -> float:
    """Best flops per second of an n×n by n×n NumPy matrix product (2·n³ flops)."""
    rng = np.random.default_rng(0)
    a = rng.random((n, n)).astype(dtype)
    b = rng.random((n, n)).astype(dtype)
    out = np.empty((n, n), dtype)
    np.matmul(a, b, out=out)  # warm-up: BLAS threads, pages
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.matmul(a, b, out=out)
        best = min(best, time.perf_counter() - start)
    return 2.0 * n**3 / best


def flops_table(workload, n: int, args) -> None:
    from waldo_cli import kernels, match_template
    from waldo_cli.engine import get_threads
    from waldo_cli.pool import SHARED

    peak32 = matmul_rate(n, np.float32)
    peak64 = matmul_rate(n, np.float64)
    name, side, tside = workload
    image, template, _ = make_workload(side, tside, np.random.default_rng(0))
    (height, width, channels), (h, w) = image.shape, template.shape[:2]
    flops = 2.0 * (height - h + 1) * (width - w + 1) * h * w * channels

    planar = np.ascontiguousarray(image.transpose(2, 0, 1))
    centred = template.astype(np.float64) - template.mean(axis=(0, 1), dtype=np.float64)
    taps = np.ascontiguousarray(centred.transpose(2, 0, 1))
    out = np.empty((height - h + 1, width - w + 1), np.float32)  # as the engine allocates
    medians, _ = time_runs(
        {
            "search": lambda: match_template(image, template, "ccoeff_normed", engine="direct"),
            "kernel": lambda: SHARED.run_bands(
                kernels._correlate_direct,
                (planar, taps, out),
                out.shape[0],
                threads=get_threads(),
                scratch=lambda: (np.empty((3, out.shape[1])),),
            ),
        },
        args.repeats,
    )
    print(
        f"Peak rate: best of 3 NumPy {n}×{n} @ {n}×{n} products (2·n³ flops, all cores, "
        f"NumPy's BLAS). Direct kernel: {name}, {flops / 1e9:.2f} GFLOP per search "
        f"(2·(H−h+1)(W−w+1)·h·w·C), median of {args.repeats} runs, {get_threads()} threads; "
        "the kernel reads float32 pixels and multiplies and adds in float64.\n"
    )
    print("| what | ms | GFLOP/s | % of float32 peak | % of float64 peak |")
    print("|---|---:|---:|---:|---:|")
    print(
        f"| NumPy float32 matmul (peak) | {2.0 * n**3 / peak32 * 1e3:.1f} | "
        f"{peak32 / 1e9:.1f} | 100% | |"
    )
    print(
        f"| NumPy float64 matmul (peak) | {2.0 * n**3 / peak64 * 1e3:.1f} | "
        f"{peak64 / 1e9:.1f} | | 100% |"
    )
    for label, key in (
        ('`match_template(..., engine="direct")`', "search"),
        ("`_correlate_direct` alone (on the thread pool)", "kernel"),
    ):
        rate = flops / medians[key]
        print(
            f"| {label} | {ms(medians[key])} | {rate / 1e9:.1f} | "
            f"{100 * rate / peak32:.1f}% | {100 * rate / peak64:.1f}% |",
            flush=True,
        )


def masks(side: int) -> dict[str, np.ndarray]:
    """An alpha-like 0/1 disc and a soft mask (the disc with a feathered edge), side×side."""
    yy, xx = np.mgrid[:side, :side]
    radius = np.hypot(yy - (side - 1) / 2, xx - (side - 1) / 2) / (side / 2)
    return {
        "0/1": (radius <= 1).astype(np.float32),
        "soft": np.clip(1.2 - radius, 0, 1).astype(np.float32),
    }


def masked_error(
    scores: np.ndarray,
    image,
    template,
    mask,
    rng,
    method: str,
    scale: float | None = 1.0,
    count: int = 100,
    at=None,
) -> tuple[float, int]:
    """Largest |score - float64 masked score| / scale over random windows, and how many
    windows had a NaN or infinite score (OpenCV's masked path gives them on black windows).

    ``scale`` None: relative to the score where it exceeds 1 (masked
    sqdiff_normed is not clamped, and scores nearly black windows in the
    thousands, where float32 alone rounds by more than 1e-5).
    """
    from naive import match_template_masked_ref

    h, w = template.shape[:2]
    ys = list(rng.integers(0, scores.shape[0], count))
    xs = list(rng.integers(0, scores.shape[1], count))
    if at is not None:
        ys.append(at[0])
        xs.append(at[1])
    worst, bad = 0.0, 0
    for y, x in zip(ys, xs, strict=True):
        ref, near = match_template_masked_ref(image[y : y + h, x : x + w], template, mask, method)
        if not np.isfinite(scores[y, x]):
            bad += 1
        elif not near[0, 0]:
            relative = max(1.0, abs(float(ref[0, 0]))) if scale is None else scale
            worst = max(worst, abs(float(scores[y, x]) - float(ref[0, 0])) / relative)
    return worst, bad


def masked_table(args) -> None:
    import cv2

    from waldo_cli import match_template
    from waldo_cli.engine import plan_match

    def engine_for(image, template, mask, method):
        return plan_match(image.shape, template, method, mask=mask).engine

    def error(scores, image, template, mask, method, scale, at):
        worst, bad = masked_error(
            scores, image, template, mask, np.random.default_rng(1), method, scale, at=at
        )
        return f"{worst:.1e}" + (f" ({bad} NaN/inf)" if bad else "")

    def rows(cases, header):
        print(header)
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for label, image, template, mask, method, scale, at in cases:
            code = getattr(cv2, f"TM_{method.upper()}")
            functions = {
                "masked": lambda i=image, t=template, m=mask, me=method: match_template(
                    i, t, me, mask=m
                ),
                "plain": lambda i=image, t=template, me=method: match_template(i, t, me),
                "opencv": lambda i=image, t=template, m=mask, c=code: cv2.matchTemplate(
                    i, t, c, mask=m
                ),
            }
            medians, _ = time_runs(functions, args.repeats)
            with np.errstate(all="ignore"):
                theirs = cv2.matchTemplate(image, template, code, mask=mask)
            ours = match_template(image, template, method, mask=mask)
            print(
                f"| {label} | {engine_for(image, template, mask, method)} | "
                f"{ms(medians['masked'])} | {ms(medians['plain'])} | "
                f"{medians['masked'] / medians['plain']:.2f}× | {ms(medians['opencv'])} | "
                f"{medians['opencv'] / medians['masked']:.2f}× | "
                f"{error(ours, image, template, mask, method, scale, at)} | "
                f"{error(theirs, image, template, mask, method, scale, at)} |",
                flush=True,
            )

    print(
        f"Median of {args.repeats} alternating runs after a warm-up, float32 RGB input; "
        "masked/unmasked = waldo's masked time over its time for the same search without "
        "the mask; error = largest |score − float64 masked score| over 100 random windows "
        "and the true match (relative to sqrt(ΣT² · max ΣI²) for the raw methods, and to "
        "the score where it exceeds 1: masked sqdiff_normed is not clamped).\n"
    )
    cases = []
    for side, tside in ((1024, 7), (1024, 32)):
        image, template, at = make_workload(side, tside, np.random.default_rng(0))
        for kind, mask in masks(tside).items():
            cases.append(
                (
                    f"{side}² RGB, {tside}×{tside}, {kind} mask",
                    image,
                    template,
                    mask,
                    "ccoeff_normed",
                    None,
                    at,
                )
            )
    header = (
        "| ccoeff_normed | waldo engine | waldo masked ms | waldo unmasked ms | "
        "masked / unmasked | OpenCV masked ms | OpenCV / waldo | waldo max error | "
        "OpenCV max error |"
    )
    rows(cases, header)
    image, template, at = make_workload(1024, 32, np.random.default_rng(0))
    mask = masks(32)["0/1"]
    scale = raw_scale(image, template)
    print(
        f"\nAll six methods on 1024² RGB, 32×32 with the 0/1 mask (raw methods' errors "
        f"relative to {scale:.3g}):\n"
    )
    cases = [
        (method, image, template, mask, method, None if method.endswith("_normed") else scale, at)
        for method in METHODS
    ]
    rows(cases, header.replace("ccoeff_normed", "method"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="small workloads and a 2048² matrix product"
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per median")
    parser.add_argument("--no-skimage", action="store_true", help="skip scikit-image")
    parser.add_argument(
        "--skimage-limit",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="time scikit-image once when its warm-up takes longer (default 5)",
    )
    parser.add_argument(
        "--section",
        choices=SECTIONS,
        action="append",
        help="run only this section (repeatable; default: all)",
    )
    args = parser.parse_args()
    sections = args.section or SECTIONS

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from machine import describe

    from waldo_cli.engine import get_threads

    print(describe(get_threads()))
    if "table" in sections:
        print("\n### waldo, OpenCV and scikit-image\n")
        workload_table(QUICK if args.quick else WORKLOADS, args)
    if "methods" in sections:
        print("\n### Every method\n")
        methods_table(QUICK[1] if args.quick else WORKLOADS[1], args)
    if "flops" in sections:
        print("\n### Peak rate and the direct kernel\n")
        flops_table(QUICK[0] if args.quick else WORKLOADS[0], 2048 if args.quick else 4096, args)
    if "masked" in sections:
        print("\n### Masked templates\n")
        masked_table(args)


if __name__ == "__main__":
    main()
