"""The hunt (issue #15): a learned filter against NCC templates on unseen `waldo demo` puzzles.

Train on the puzzles of seeds 0–29 (and on 1, 3 and 10 of them for the
learning curve), test on seeds 1000–1199, normal and hard. For each
detector: found (the best match overlaps Waldo's answer box with IoU ≥ 0.5),
found at the default threshold (and so reported by ``waldo find``), the
median margin (Waldo's score minus the best peak elsewhere, on each
detector's own scale) and the search time per puzzle (in this process,
image decoding and kernel loading excluded, searches one after another).

Detectors: NCC with the template cut from the seed-7 puzzle
(``sample_images/puzzle/waldo.png``); the same with ``--scales
0.7:1.3:0.05``; the learned filter, learned from the puzzles of the same
difficulty (seeds 0–29) and searched at its own scales, as ``waldo find
scene.png waldo.npz`` does; and, on hard puzzles, the filter learned from
normal ones.

    python benchmarks/bench_hunt.py                      # 200 + 200 puzzles
    python benchmarks/bench_hunt.py --tests 100          # a subset (seeds 1000-1099)

Puzzles are made once into --work (default /tmp/waldo-hunt) and reused; the
filters are learned afresh every run (their time is measured). The table
goes to benchmarks/results/bench_hunt.txt, the learning curve to
docs/learning-curve.png. Never run by the tests.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe  # noqa: E402

from waldo_cli.demo import render_puzzle, write_puzzle  # noqa: E402
from waldo_cli.filters import load_filter, save_filter  # noqa: E402
from waldo_cli.io import LoadedImage, read_image  # noqa: E402
from waldo_cli.learn import learn_filter  # noqa: E402
from waldo_cli.search import Searcher, SearchOptions  # noqa: E402

TRAIN = range(30)
CURVE = (1, 3, 10, 30)
NCC_SCALES = tuple(round(0.7 + 0.05 * k, 2) for k in range(13))


def _make(job: tuple[str, str, int]) -> None:
    work, difficulty, seed = job
    folder = Path(work) / difficulty / str(seed)
    if not (folder / "answer.json").exists():
        folder.parent.mkdir(parents=True, exist_ok=True)
        write_puzzle(folder, render_puzzle(seed, difficulty=difficulty))


def make_puzzles(work: Path, tests: range) -> None:
    jobs = [(str(work), d, s) for d in ("normal", "hard") for s in (*TRAIN, *tests)]
    missing = [j for j in jobs if not (work / j[1] / str(j[2]) / "answer.json").exists()]
    if missing:
        print(f"making {len(missing)} puzzles in {work} ...", flush=True)
        with ProcessPoolExecutor(2) as pool:
            list(pool.map(_make, missing, chunksize=4))


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    return w * h / (aw * ah + bw * bh - w * h)


def learn(work: Path, difficulty: str, count: int) -> tuple[Path, float]:
    """Learn afresh (never a filter left from another run of other code), timed."""
    out = work / f"learned-{difficulty}-{count}.npz"
    started = time.perf_counter()
    learned = learn_filter([work / difficulty / str(s) for s in TRAIN[:count]])
    save_filter(learned, out)
    return out, time.perf_counter() - started


def hunt(searcher: Searcher, work: Path, difficulty: str, tests: range, threshold=0.5) -> dict:
    """Search every test puzzle; ``threshold``: the default one ``waldo find`` applies."""
    found = at_threshold = 0
    margins, seconds = [], []
    for seed in tests:
        folder = work / difficulty / str(seed)
        answer = json.loads((folder / "answer.json").read_text())
        box = (answer["x"], answer["y"], answer["width"], answer["height"])
        image = read_image(folder / "scene.png")
        loaded = LoadedImage(image.pixels, None, image.mode, str(folder))
        started = time.perf_counter()
        result = searcher.search(loaded)
        seconds.append(time.perf_counter() - started)
        matches = result.matches
        boxes = [(m.x, m.y, m.width, m.height) for m in matches]
        hit = bool(matches) and iou(boxes[0], box) >= 0.5
        found += hit
        at_threshold += hit and matches[0].score >= threshold
        his = [m.score for m, b in zip(matches, boxes, strict=True) if iou(b, box) >= 0.5]
        others = [m.score for m, b in zip(matches, boxes, strict=True) if iou(b, box) < 0.5]
        if his and others:
            margins.append(max(his) - max(others))
        else:
            margins.append(-np.inf)  # Waldo not among the best 20 peaks
    n = len(tests)
    return {
        "found": found / n,
        "at_threshold": at_threshold / n,
        "margin": float(np.median(margins)),
        "seconds": float(np.median(seconds)),
    }


def searcher_for(template, scales=(1.0,)) -> Searcher:
    """The best 20 peaks whatever their score (a filter at its own scales, as waldo find does)."""
    return Searcher(template, SearchOptions(top_k=20, threshold=None, scales=scales))


def plot_curve(
    rows: list[tuple[int, float, float]], path: Path, ncc: tuple[float, float] | None = None
) -> None:
    """Found at the default threshold against the number of training puzzles (Pillow).

    ``ncc``: NCC with scales on normal and hard puzzles, drawn as dotted lines.
    """
    width, height, pad = 640, 400, 60
    picture = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(picture)
    try:
        font = ImageFont.load_default(size=15)
    except TypeError:  # Pillow without FreeType
        font = ImageFont.load_default()
    left, right, top, bottom = pad + 10, width - 30, 40, height - pad
    draw.rectangle([left, top, right, bottom], outline="black")
    lo, hi = np.log10(1) - 0.1, np.log10(30) + 0.1

    def px(n: float, value: float) -> tuple[float, float]:
        x = left + (np.log10(n) - lo) / (hi - lo) * (right - left)
        y = bottom - value * (bottom - top)
        return float(x), float(y)

    for value in (0.0, 0.25, 0.5, 0.75, 1.0):
        _, y = px(1, value)
        draw.line([left, y, right, y], fill=(220, 220, 220))
        draw.text((left - 8, y), f"{value:.0%}", fill="black", anchor="rm", font=font)
    for n, _, _ in rows:
        x, _ = px(n, 0)
        draw.text((x, bottom + 8), str(n), fill="black", anchor="mt", font=font)
    draw.text(((left + right) / 2, height - 18), "training puzzles (seeds 0..n-1)",
              fill="black", anchor="mm", font=font)  # fmt: skip
    draw.text((left, 14), "found at the default threshold, unseen puzzles",
              fill="black", anchor="lm", font=font)  # fmt: skip
    for column, colour, label in ((1, (31, 119, 180), "normal"), (2, (214, 39, 40), "hard")):
        if ncc is not None:
            _, y = px(1, ncc[column - 1])
            for x in range(left + 2, right - 2, 10):
                draw.line([x, y, x + 5, y], fill=colour, width=2)
            draw.text((left + 6, y - 4), f"NCC with scales, {label}", fill=colour, anchor="lb",
                      font=font)  # fmt: skip
        points = [px(row[0], row[column]) for row in rows]
        draw.line(points, fill=colour, width=3)
        for x, y in points:
            draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=colour)
        lx, ly = right - 90, bottom - 20 - 20 * column
        draw.line([lx, ly, lx + 20, ly], fill=colour, width=3)
        draw.text((lx + 26, ly), label, fill="black", anchor="lm", font=font)
    picture.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/waldo-hunt"))
    parser.add_argument("--tests", type=int, default=200, help="test puzzles per difficulty")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/bench_hunt.txt")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs/learning-curve.png")
    args = parser.parse_args()
    tests = range(1000, 1000 + args.tests)
    make_puzzles(args.work, tests)
    lines = [
        f"# python benchmarks/bench_hunt.py --tests {args.tests}",
        f"# {describe()}",
        f"# train: seeds 0-29 (and 1, 3, 10 of them); test: seeds {tests[0]}-{tests[-1]}, "
        "normal and hard",
    ]
    filters = {}
    for difficulty in ("normal", "hard"):
        for count in CURVE:
            path, seconds = learn(args.work, difficulty, count)
            filters[difficulty, count] = path
            print(f"learned {path.name} in {seconds:.1f} s", flush=True)
            if count == 30:
                lines.append(f"# learning from 30 {difficulty} puzzles: {seconds:.1f} s")
    template = read_image(ROOT / "sample_images/puzzle/waldo.png")
    rows = []
    full = {}  # the filters learned from 30 puzzles, on their own difficulty
    for difficulty in ("normal", "hard"):
        detectors = [
            ("NCC, seed-7 template", searcher_for(template)),
            ("NCC, --scales 0.7:1.3:0.05", searcher_for(template, NCC_SCALES)),
            (f"learned ({difficulty} 0-29)", searcher_for(load_filter(filters[difficulty, 30]))),
        ]
        if difficulty == "hard":
            detectors.append(
                ("learned (normal 0-29)", searcher_for(load_filter(filters["normal", 30])))
            )
        for name, searcher in detectors:
            # the first search loads the kernels; not timed with the rest
            searcher.search(LoadedImage(np.zeros((64, 64, 3), np.float32), None, "RGB", "warm"))
            found = hunt(searcher, args.work, difficulty, tests)
            scales = len(searcher.options.scales)
            rows.append((difficulty, name, scales, found))
            if name.startswith(f"learned ({difficulty}"):
                full[difficulty] = found
            print(difficulty, name, found, flush=True)
    lines.append("")
    lines.append("| puzzles | detector | scales | found | found at 0.5 | margin | s/puzzle |")
    lines.append("|---|---|---:|---:|---:|---:|---:|")
    for difficulty, name, scales, r in rows:
        # −inf: in most puzzles Waldo was not even among the best 20 peaks
        margin = f"{r['margin']:+.3f}" if np.isfinite(r["margin"]) else "—"
        lines.append(
            f"| {difficulty} | {name} | {scales} | {r['found']:.1%} | {r['at_threshold']:.1%} "
            f"| {margin} | {r['seconds']:.3f} |"
        )
    curve = []
    lines.append("")
    lines.append(
        "| training puzzles | normal: found | normal: found at 0.5 | hard: found "
        "| hard: found at 0.5 |"
    )
    lines.append("|---:|---:|---:|---:|---:|")
    for count in CURVE:
        results = []
        for difficulty in ("normal", "hard"):
            if count == 30:
                results.append(full[difficulty])
                continue
            searcher = searcher_for(load_filter(filters[difficulty, count]))
            results.append(hunt(searcher, args.work, difficulty, tests))
        curve.append((count, results[0]["at_threshold"], results[1]["at_threshold"]))
        lines.append(
            f"| {count} | {results[0]['found']:.1%} | {results[0]['at_threshold']:.1%} "
            f"| {results[1]['found']:.1%} | {results[1]['at_threshold']:.1%} |"
        )
        print("curve", count, results, flush=True)
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    ncc = tuple(r["at_threshold"] for _, name, _, r in rows if name.startswith("NCC, --scales"))
    plot_curve(curve, args.plot, ncc)  # type: ignore[arg-type]
    print(text)


if __name__ == "__main__":
    main()
