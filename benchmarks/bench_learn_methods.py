"""Which learned filter: LDA (what ``waldo learn`` does) against ridge regression and MOSSE.

Issue #15 asks for the method to be chosen by measurement. All three learn
one kernel over the same features (x / 255 − 1/2, RGB), from the same
training puzzles (``waldo demo`` seeds 0–29, normal), and are searched the
same way: one correlation of the kernel as learned (a single scale, so that
the methods, not the scales, are compared), the best window taken as the
answer. Found: that window overlaps Waldo's ``answer.json`` box with
IoU ≥ 0.5, on unseen puzzles (seeds 1000 onwards, normal and hard).

* **LDA**: ``learn_filter`` as ``waldo learn`` runs it (whitened by the
  covariance of every window of the scenes, with mined hard negatives,
  augmented positives), its kernel at scale 1.
* **ridge**: least squares on patches, w = (XᵀX + λ tr/d I)⁻¹ Xᵀy, with
  y = 1 for Waldo (his box, mirrored and 0.95/1.05 times the size: 6 per
  puzzle) and 0 for 300 random windows per puzzle clear of him, the two
  classes weighted equally; one linear solve of the same size as LDA's.
* **MOSSE** (Bolme et al. 2010), multi-channel: patches twice his size
  around him (the same 6 per puzzle), a Gaussian (σ = 2 px) wanted at his
  place, conj(K_c) = Σ G conj(F_c) / (Σ Σ_c' |F_c'|² + ε), all in the
  Fourier domain; the kernel is the patch's size.

    python benchmarks/bench_learn_methods.py --work /tmp/wl/data --tests 100

Reads the puzzles bench_hunt.py made in --work (run it first). Writes
benchmarks/results/bench_learn_methods.txt. Never run by the tests.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe  # noqa: E402

from waldo_cli.engine import match_template  # noqa: E402
from waldo_cli.examples import read_example  # noqa: E402
from waldo_cli.learn import learn_filter  # noqa: E402
from waldo_cli.templates import LearnedFilter  # noqa: E402
from waldo_cli.variants import warp_box  # noqa: E402

TRAIN = range(30)


def features(pixels: np.ndarray) -> np.ndarray:
    return pixels.astype(np.float32) / np.float32(255) - np.float32(0.5)


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    return w * h / (aw * ah + bw * bh - w * h)


def positives(x: np.ndarray, box, size, margin: int = 0) -> list[np.ndarray]:
    """Waldo's box resampled to size (with margin), as is, mirrored, 0.95 and 1.05 times."""
    return [
        warp_box(x, box, size, margin=margin, scale=scale, flip=flip)
        for scale in (0.95, 1.0, 1.05)
        for flip in (False, True)
    ]


def learn_ridge(scenes, size, rng, lam=0.01) -> LearnedFilter:
    h, w = size
    pos, neg = [], []
    for x, box in scenes:
        pos += [p.ravel() for p in positives(x, box, size)]
        height, width = x.shape[:2]
        taken = 0
        while taken < 300:
            top, left = int(rng.integers(0, height - h)), int(rng.integers(0, width - w))
            if iou((left, top, w, h), box) < 0.1:
                neg.append(x[top : top + h, left : left + w].ravel())
                taken += 1
    rows = np.vstack([np.asarray(pos, np.float64), np.asarray(neg, np.float64)])
    rows = np.hstack([rows, np.ones((len(rows), 1))])
    y = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    weight = np.concatenate([np.full(len(pos), len(neg) / len(pos)), np.ones(len(neg))])
    a = (rows * weight[:, None]).T @ rows
    d = rows.shape[1] - 1
    a[np.arange(d), np.arange(d)] += lam * np.trace(a[:d, :d]) / d
    solved = np.linalg.solve(a, (rows * weight[:, None]).T @ y)
    kernel = solved[:d].reshape(h, w, 3).astype(np.float32)
    return LearnedFilter(kernel, float(solved[d]))


def learn_mosse(scenes, size, eps=1e-2) -> tuple[LearnedFilter, int]:
    h, w = size
    margin = max(h, w) // 2
    ph, pw = h + 2 * margin, w + 2 * margin
    yy, xx = np.mgrid[0:ph, 0:pw]
    # the correlation at zero shift is where the patch lies on its window:
    # the wanted output peaks there (wrapped Gaussian)
    dy, dx = np.minimum(yy, ph - yy), np.minimum(xx, pw - xx)
    g = np.fft.fft2(np.exp(-(dy**2 + dx**2) / (2 * 2.0**2)))
    top = np.zeros((ph, pw, 3), np.complex128)
    bottom = np.zeros((ph, pw), np.float64)
    window = np.outer(np.hanning(ph), np.hanning(pw))[:, :, None]
    for x, box in scenes:
        for patch in positives(x, box, size, margin=margin):
            f = np.fft.fft2((patch - patch.mean(axis=(0, 1))) * window, axes=(0, 1))
            top += g[:, :, None] * np.conj(f)
            bottom += (np.abs(f) ** 2).sum(axis=2)
    conj_k = top / (bottom[:, :, None] + eps * bottom.mean())
    # c = Σ k(x) f(x + τ)  ⇔  C = conj(K) F: the spatial kernel is ifft(K)
    kernel = np.real(np.fft.ifft2(np.conj(conj_k), axes=(0, 1)))
    kernel = (kernel * window).astype(np.float32)
    return LearnedFilter(kernel, 0.0), margin


def hunt(learned: LearnedFilter, folders, margin: int, size) -> tuple[float, float]:
    h, w = size
    found, seconds = 0, []
    for folder in folders:
        answer = json.loads((folder / "answer.json").read_text())
        truth = (answer["x"], answer["y"], answer["width"], answer["height"])
        pixels = read_example(folder).pixels
        started = time.perf_counter()
        scores = match_template(pixels, learned)
        seconds.append(time.perf_counter() - started)
        y, x = np.unravel_index(int(np.argmax(scores)), scores.shape)
        found += iou((x + margin, y + margin, w, h), truth) >= 0.5
    return found / len(folders), float(np.median(seconds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/waldo-hunt"))
    parser.add_argument("--tests", type=int, default=100)
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks/results/bench_learn_methods.txt"
    )
    args = parser.parse_args()
    train = [args.work / "normal" / str(s) for s in TRAIN]
    scenes = []
    for folder in train:
        example = read_example(folder)
        scenes.append((features(example.pixels), example.boxes[0]))
    rows = []
    started = time.perf_counter()
    lda = learn_filter(train)
    lda_seconds = time.perf_counter() - started
    size = lda.shape[:2]
    lda = LearnedFilter(lda.kernel, lda.bias)  # its kernel at scale 1 only
    started = time.perf_counter()
    ridge = learn_ridge(scenes, size, np.random.default_rng(0))
    ridge_seconds = time.perf_counter() - started
    started = time.perf_counter()
    mosse, margin = learn_mosse(scenes, size)
    mosse_seconds = time.perf_counter() - started
    tests = range(1000, 1000 + args.tests)
    for name, learned, offset, seconds in (
        ("LDA, hard negatives (waldo learn)", lda, 0, lda_seconds),
        ("ridge regression on patches", ridge, 0, ridge_seconds),
        ("MOSSE, multi-channel", mosse, margin, mosse_seconds),
    ):
        found = {
            d: hunt(learned, [args.work / d / str(s) for s in tests], offset, size)
            for d in ("normal", "hard")
        }
        kh, kw, kc = learned.shape
        rows.append(
            f"| {name} | {kw}×{kh}×{kc} | {seconds:.1f} | {found['normal'][0]:.1%} "
            f"| {found['hard'][0]:.1%} | {found['normal'][1]:.3f} |"
        )
        print(rows[-1], flush=True)
    lines = [
        f"# python benchmarks/bench_learn_methods.py --work {args.work} --tests {args.tests}",
        f"# {describe()}",
        f"# train: normal seeds 0-29; test: seeds {tests[0]}-{tests[-1]}, normal and hard; "
        "one scale, best window",
        "",
        "| method | kernel | learning (s) | normal: found | hard: found | s/puzzle |",
        "|---|---|---:|---:|---:|---:|",
        *rows,
    ]
    text = "\n".join(lines) + "\n"
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
