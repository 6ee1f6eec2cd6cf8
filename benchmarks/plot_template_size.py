"""Time against template side for each waldo engine and OpenCV, as a table and a PNG.

Run by hand (never in the test suite):

    python benchmarks/plot_template_size.py             # docs/bench-template-size.png
    python benchmarks/plot_template_size.py --quick     # 512² image, fewer sides, /tmp

On a 1024×1024 RGB float32 image (the astronaut scaled up), ccoeff_normed,
for template sides 4 to 128: waldo with ``engine="direct"`` (timed once at
the first side where its warm-up takes over ``--direct-limit`` seconds, and
not after), ``engine="fft"``, ``engine="auto"``, and ``cv2.matchTemplate``.
Median of ``--repeats`` runs after a warm-up, in a shuffled order each
round. Besides the listed sides it times the two sides either side of where
``auto`` switches from direct to FFT, and prints a Markdown table saying at
each side whether ``auto`` took the faster engine. The picture is drawn with
Pillow alone (no matplotlib).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).resolve().parent
TIE = 0.1  # engines closer than this are a tie: run-to-run noise is about as large
SIDES = (4, 8, 12, 16, 24, 32, 48, 64, 96, 128)
SERIES = {  # name: colour, line width
    "auto": ((46, 160, 67, 90), 9),
    "direct": ((31, 119, 180, 255), 3),
    "fft": ((255, 127, 14, 255), 3),
    "opencv": ((70, 70, 70, 255), 3),
}
LABELS = {
    "auto": 'waldo engine="auto"',
    "direct": 'waldo engine="direct"',
    "fft": 'waldo engine="fft"',
    "opencv": "OpenCV matchTemplate",
}


def photo(side: int) -> np.ndarray:
    with Image.open(HERE.parent / "sample_images" / "astronaut.png") as picture:
        scaled = picture.convert("RGB").resize((side, side), Image.Resampling.LANCZOS)
    return np.asarray(scaled, dtype=np.float32)


def switch_side(image_side: int, threads: int, largest: int) -> list[int]:
    """Template sides at which ``auto``'s choice changes (the first side with the new choice)."""
    from waldo_cli.engine import choose_engine

    changes, last = [], None
    for t in range(1, largest + 1):
        out = image_side - t + 1
        choice = choose_engine((out, out), (t, t), 3, threads)
        if last is not None and choice != last:
            changes.append(t)
        last = choice
    return changes


def measure(image: np.ndarray, sides, repeats: int, direct_limit: float) -> dict:
    import cv2
    from bench_match import time_runs

    from waldo_cli import match_template
    from waldo_cli.engine import choose_engine, get_threads

    rng = np.random.default_rng(0)
    results = {}
    direct_on = True
    for t in sides:
        y, x = image.shape[0] // 3, image.shape[1] // 2
        template = image[y : y + t, x : x + t] + rng.normal(0, 4, (t, t, 3)).astype(np.float32)
        template = np.ascontiguousarray(template)
        functions = {
            "direct": lambda t=template: match_template(image, t, engine="direct"),
            "fft": lambda t=template: match_template(image, t, engine="fft"),
            "auto": lambda t=template: match_template(image, t, engine="auto"),
            "opencv": lambda t=template: cv2.matchTemplate(image, t, cv2.TM_CCOEFF_NORMED),
        }
        if not direct_on:
            del functions["direct"]
        row, counts = time_runs(functions, repeats, ("direct",), direct_limit)
        results[t] = row
        if counts.get("direct", repeats) < repeats:
            direct_on = False  # a run took over direct_limit: larger templates only take longer
        out = image.shape[0] - t + 1
        row["choice"] = choose_engine((out, out), (t, t), 3, get_threads())
        print(
            f"  {t}×{t}: "
            + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in row.items() if k != "choice"),
            file=sys.stderr,
            flush=True,
        )
    return results


def print_table(results: dict, switches: list[int]) -> list[str]:
    print(
        "| template | direct ms | fft ms | auto ms | auto chose | faster engine | "
        "verdict | OpenCV ms | OpenCV / auto |"
    )
    print("|---|---:|---:|---:|---|---|---|---:|---:|")
    wrong = []
    for t, row in sorted(results.items()):
        direct = row.get("direct")
        if direct is None:
            faster, verdict = "fft", "right (direct not run: too slow)"
        else:
            faster = "direct" if direct <= row["fft"] else "fft"
            slower, quicker = row[row["choice"]], row[faster]
            if row["choice"] == faster:
                verdict = "right"
            elif slower < quicker * (1 + TIE):
                verdict = f"a tie (the other is {100 * (slower / quicker - 1):.0f}% faster)"
            else:
                verdict = f"**slower**, by {100 * (slower / quicker - 1):.0f}%"
                wrong.append(
                    f"{t}×{t}: auto chose {row['choice']} ({slower * 1e3:.1f} ms), "
                    f"{faster} takes {quicker * 1e3:.1f} ms"
                )
        mark = " ◂ switch" if t in switches else ""
        print(
            f"| {t}×{t}{mark} | {'—' if direct is None else f'{direct * 1e3:.1f}'} | "
            f"{row['fft'] * 1e3:.1f} | {row['auto'] * 1e3:.1f} | {row['choice']} | {faster} | "
            f"{verdict} | {row['opencv'] * 1e3:.1f} | {row['opencv'] / row['auto']:.2f}× |"
        )
    return wrong


def font(size: int):
    return ImageFont.load_default(size=size)


def dashed(
    draw: ImageDraw.ImageDraw, x: float, y0: float, y1: float, fill, width=2, dash=10, gap=7
) -> None:
    y = y0
    while y < y1:
        draw.line([(x, y), (x, min(y + dash, y1))], fill=fill, width=width)
        y += dash + gap


def plot(results: dict, switches: list[int], path: Path, title: str, caption: str) -> None:
    scale = 2  # drawn at twice the size and shrunk, for smooth lines
    width, height = 1200 * scale, 680 * scale
    left, right, top, bottom = 100 * scale, 300 * scale, 70 * scale, 80 * scale
    picture = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(picture, "RGBA")

    sides = sorted(results)
    values = [row[k] * 1e3 for row in results.values() for k in SERIES if k in row]
    steps = [d * m for d in (10.0**k for k in range(-3, 6)) for m in (1, 2, 5)]
    y_lo = max(v for v in steps if v <= min(values) / 1.1)
    y_hi = min(v for v in steps if v >= max(values) * 1.1)
    x_lo, x_hi = math.log2(sides[0]) - 0.15, math.log2(sides[-1]) + 0.15

    def px(side: float) -> float:
        return left + (math.log2(side) - x_lo) / (x_hi - x_lo) * (width - left - right)

    def py(ms: float) -> float:
        span = math.log10(y_hi) - math.log10(y_lo)
        return top + (math.log10(y_hi) - math.log10(ms)) / span * (height - top - bottom)

    grid, axis, text = (225, 225, 225), (60, 60, 60), (30, 30, 30)
    small, medium, large = font(15 * scale), font(17 * scale), font(21 * scale)
    # horizontal grid: 1, 2, 5 per decade, labels on the decades and their 2s and 5s
    decade = 10 ** math.floor(math.log10(y_lo))
    while decade <= y_hi * 1.0001:
        for step in (1, 2, 5):
            value = decade * step
            if value < y_lo / 1.0001 or value > y_hi * 1.0001:
                continue
            y = py(value)
            draw.line(
                [(left, y), (width - right, y)], fill=grid if step > 1 else (200,) * 3, width=scale
            )
            label = f"{value:g}" if value >= 1 else f"{value:.2g}"
            draw.text((left - 12 * scale, y), label, fill=text, font=small, anchor="rm")
        decade *= 10
    for side in sides:
        x = px(side)
        draw.line([(x, top), (x, height - bottom)], fill=grid, width=scale)
        draw.text((x, height - bottom + 10 * scale), str(side), fill=text, font=small, anchor="mt")
    draw.rectangle([left, top, width - right, height - bottom], outline=axis, width=2 * scale)

    for t in switches:  # auto's switch: between the last side on one engine and t
        x = (px(t - 1) + px(t)) / 2
        dashed(
            draw,
            x,
            top + 2 * scale,
            height - bottom,
            fill=(46, 140, 60),
            width=2 * scale,
            dash=12 * scale,
            gap=8 * scale,
        )
        chosen = results.get(t, {}).get("choice", "fft")
        note = f"auto: {chosen}\nfrom {t}x{t} on"
        box = draw.multiline_textbbox(
            (x + 10 * scale, top + 12 * scale), note, font=medium, spacing=4 * scale
        )
        draw.rectangle(
            [box[0] - 4 * scale, box[1] - 4 * scale, box[2] + 4 * scale, box[3] + 4 * scale],
            fill=(255, 255, 255, 230),
        )
        draw.multiline_text(
            (x + 10 * scale, top + 12 * scale),
            note,
            fill=(30, 110, 45),
            font=medium,
            spacing=4 * scale,
        )

    for name, (colour, line) in SERIES.items():
        points = [(px(t), py(results[t][name] * 1e3)) for t in sides if name in results[t]]
        if len(points) > 1:
            draw.line(points, fill=colour, width=line * scale, joint="curve")
        radius = (line + 2) * scale
        for x, y in points:
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour)

    # legend, right of the plot
    lx, ly = width - right + 30 * scale, top + 8 * scale
    rows = list(SERIES)
    box_w = right - 40 * scale
    draw.rectangle(
        [lx - 10 * scale, ly - 8 * scale, lx + box_w, ly + len(rows) * 30 * scale],
        fill=(255, 255, 255, 235),
        outline=(190, 190, 190),
        width=scale,
    )
    for i, name in enumerate(rows):
        colour, line = SERIES[name]
        y = ly + 11 * scale + i * 30 * scale
        draw.line([(lx, y), (lx + 44 * scale, y)], fill=colour, width=line * scale)
        draw.ellipse(
            [
                lx + 22 * scale - (line + 2) * scale,
                y - (line + 2) * scale,
                lx + 22 * scale + (line + 2) * scale,
                y + (line + 2) * scale,
            ],
            fill=colour,
        )
        draw.text((lx + 56 * scale, y), LABELS[name], fill=text, font=medium, anchor="lm")

    draw.text((width / 2, 24 * scale), title, fill=text, font=large, anchor="mm")
    draw.text((width / 2, 48 * scale), caption, fill=(110, 110, 110), font=small, anchor="mm")
    draw.text(
        ((left + width - right) / 2, height - 30 * scale),
        "template side h = w (pixels, log scale)",
        fill=text,
        font=medium,
        anchor="mm",
    )
    label = "time per search (ms, log scale)"
    box = draw.textbbox((0, 0), label, font=medium)
    tag = Image.new("RGBA", (box[2] + 4, box[3] + 4), (255, 255, 255, 0))
    ImageDraw.Draw(tag).text((2, 2), label, fill=text, font=medium)
    tag = tag.rotate(90, expand=True)
    picture.paste(tag, (int(28 * scale), int((top + height - bottom) / 2 - tag.height / 2)), tag)

    picture = picture.resize((width // scale, height // scale), Image.Resampling.LANCZOS)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="a 512² image, sides up to 64, the picture in /tmp"
    )
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per median")
    parser.add_argument(
        "--direct-limit",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="stop timing the direct engine after a run this long (default 1)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where the PNG goes (default docs/bench-template-size.png)",
    )
    args = parser.parse_args()

    sys.path.insert(0, str(HERE))
    from machine import describe

    from waldo_cli.engine import get_threads

    side = 512 if args.quick else 1024
    listed = tuple(s for s in SIDES if s <= (64 if args.quick else 128))
    out = args.out or (
        Path("/tmp/bench-template-size.png")
        if args.quick
        else HERE.parent / "docs" / "bench-template-size.png"
    )
    threads = get_threads()
    switches = switch_side(side, threads, listed[-1])
    sides = sorted(set(listed) | {s for t in switches for s in (t - 1, t)})

    print(describe(threads))
    print(f"\n### Time against template side ({side}×{side} RGB)\n")
    print(
        f"{side}×{side} RGB float32 image, ccoeff_normed, median of {args.repeats} "
        f"alternating runs after a warm-up, {threads} threads. `auto` changes engine at "
        f"{', '.join(f'{t}×{t}' for t in switches) or 'no side in this range'} (the cost "
        "model's prediction); the sides either side of each switch are timed too. "
        f"The direct engine stops after the first side where a run takes over "
        f"{args.direct_limit:g} s.\n",
        flush=True,
    )
    results = measure(photo(side), sides, args.repeats, args.direct_limit)
    wrong = print_table(results, switches)
    print()
    if wrong:
        print(
            "`auto` chose the engine slower by more than "
            f"{100 * TIE:.0f}% at " + "; ".join(wrong) + "."
        )
    else:
        print(
            f"`auto` chose the faster engine, or one within {100 * TIE:.0f}% of it, at every "
            "side timed."
        )
    # the default font has no ×
    title = (
        f"Time per search against template side: {side}x{side} RGB image, ccoeff_normed, "
        f"{threads} threads"
    )
    sys.path.insert(0, str(HERE))
    from machine import cpu_model

    caption = (
        f"median of {args.repeats} runs after a warm-up, in shuffled order; "
        f"{cpu_model()}, {os.cpu_count()} cores"
    )
    plot(results, switches, out, title, caption)
    shown = out.relative_to(HERE.parent) if out.is_relative_to(HERE.parent) else out
    print(f"\nPicture: `{shown}`")


if __name__ == "__main__":
    main()
