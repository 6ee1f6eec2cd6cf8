"""``waldo learn``: a filter learned from examples, written to a .npz file."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

import click

from waldo_cli.cli import WaldoUsageError, usage_error
from waldo_cli.cli.options import FiniteFloat, json_option
from waldo_cli.cli.terminal import stderr_console


def _parse_size(text: str | None) -> tuple[int, int] | None:
    """``WxH`` as (h, w), or None."""
    import re

    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d{1,5})\s*[xX×]\s*(\d{1,5})\s*", text)
    if not match or int(match.group(1)) < 1 or int(match.group(2)) < 1:
        raise usage_error(
            f"--size {text!r}: give the filter's WIDTHxHEIGHT in pixels, such as 19x46"
        )
    return int(match.group(2)), int(match.group(1))


@click.command("learn")
@click.argument("examples", nargs=-1, required=True, metavar="EXAMPLE...")
@click.option(
    "-o",
    "--output",
    required=True,
    metavar="FILTER.npz",
    help="Where to write the filter (written whole or not at all).",
)
@click.option(
    "--negatives",
    "negatives",
    multiple=True,
    metavar="PATH",
    help="An image without the target, or a folder of them: every window is a negative. "
    "Repeat the option for more.",
)
@click.option(
    "--size",
    "size_text",
    default=None,
    metavar="WxH",
    help="The filter's width and height in pixels. Default: the median size of the "
    "examples' boxes.",
)
@click.option(
    "--no-augment",
    is_flag=True,
    help="Learn from the examples alone, not also from 39 copies of each (mirrored, "
    "0.9-1.1 times the size, turned up to 5°, moved, blurred, lightened or darkened a "
    "little).",
)
@click.option(
    "--regularisation",
    type=FiniteFloat(),
    default=0.01,
    show_default=True,
    metavar="λ",
    help="Added to the background covariance's diagonal, as a share of its mean: "
    "larger is smoother and less fitted to the examples.",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="The random numbers of the augmentation and of the held-out folds: the same "
    "examples and seed give the same file, byte for byte.",
)
@click.option("--grey", is_flag=True, help="Learn a filter for grey images.")
@json_option("Print the summary as one JSON document on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing; the exit status tells.")
def learn_command(
    examples: tuple[str, ...],
    output: str,
    negatives: tuple[str, ...],
    size_text: str | None,
    no_augment: bool,
    regularisation: float,
    seed: int,
    grey: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Learn a filter that finds what EXAMPLE... show, and write it to FILTER.npz.

    \b
    waldo learn train/*/ -o waldo.npz          puzzle folders (scene.png + answer.json)
    waldo learn crops/*.png --negatives empty/ -o logo.npz

    An EXAMPLE is an image file (the whole image is one example: a crop), or
    a folder holding answer.json, or an answer.json file: a scene and the
    boxes of the target in it, as `waldo demo` writes them, or with several
    boxes: {"scene": "beach.png", "boxes": [{"x": 12, "y": 40, "width": 20,
    "height": 46}, ...]}. Everything in a scene outside its boxes, and every
    --negatives image, is what the filter must not find.

    The filter is one kernel V (the size of the boxes) and a bias: a
    whitened linear discriminant, learned in closed form, with the decoys
    it finds in the scenes as hard negatives, and calibrated on examples
    held out of the learning so that a score of 1 is a typical example and
    0.5, waldo find's default threshold, means "found". Use it in place of a
    template: waldo find IMAGE FILTER.npz, or waldo find -t FILTER.npz IMAGE...
    """  # noqa: D301 - the backspace keeps Click from rewrapping the examples
    from waldo_cli.errors import WaldoError
    from waldo_cli.filters import save_filter
    from waldo_cli.io import check_output_path
    from waldo_cli.learn import learn_filter

    size = _parse_size(size_text)
    started = time.perf_counter()
    err = stderr_console()
    try:
        check_output_path(output, (*examples, *negatives), image=False)
        _load_kernels(quiet)
        with _progress(err, quiet) as progress:
            learned = learn_filter(
                list(examples),
                list(negatives),
                size=size,
                augment=not no_augment,
                regularisation=regularisation,
                seed=seed,
                grey=grey,
                progress=progress,
            )
        save_filter(learned, output, (*examples, *negatives))
    except WaldoError as exc:
        raise WaldoUsageError(str(exc)) from None
    seconds = time.perf_counter() - started
    if quiet:
        return
    if as_json:
        click.echo(json.dumps({"filter": output, **learned.training, "seconds": round(seconds, 3)}))
        return
    for line in summary_lines(learned.training, output, seconds):
        click.echo(line)


def _load_kernels(quiet: bool) -> None:
    """Load the correlation kernels the learning searches with, saying so if they must compile."""
    from waldo_cli import jit
    from waldo_cli.cli.terminal import compile_notice

    jit.skip_extension_scan(only_waldo=True)
    with compile_notice(quiet):  # Numba says which kernels compile (jit.on_compile)
        for engine in jit.KERNELS:
            jit.warm_plain(engine)


@contextlib.contextmanager
def _progress(console: Any, quiet: bool) -> Any:
    """A progress bar on stderr when it is a terminal (and not -q): a callback for learn_filter."""
    if quiet or not console.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    bar = Progress(
        TextColumn("learning"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[stage]}"),
        console=console,
        transient=True,
        redirect_stdout=False,
        redirect_stderr=False,
    )
    with bar:
        task = bar.add_task("learn", total=None, stage="")

        def update(stage: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, stage=stage)

        yield update


def summary_lines(training: dict[str, Any], output: str, seconds: float) -> list[str]:
    r"""The summary ``waldo learn`` prints: what it learned from, and how well it separates.

    >>> doc = {"examples": 2, "scenes": 2, "crops": 0, "negative_images": 0, "size": [5, 9],
    ...        "positives": 80, "hard_negatives": 10, "colour": "rgb", "parameters": 136,
    ...        "scales": [1.0], "regularisation": 0.01,
    ...        "trained": {"found": 2, "of": 2, "examples": [0.9, 1.0, 1.1],
    ...                    "best_clear": [0.0, 0.1, 0.2]},
    ...        "held_out": {"folds": 2, "found": 1, "of": 2, "examples": [0.4, 1.0, 1.6],
    ...                     "best_clear": [0.1, 0.2, 0.3]}}
    >>> print("\n".join(summary_lines(doc, "f.npz", 1.5)))
    waldo learn: 2 examples (2 in scenes, 0 crops); negatives from 2 scenes and 0 images
    filter 5×9×3 (rgb) = 136 parameters; 80 positives with copies, 10 hard negatives, λ 0.01
    held out (2-fold): found 1 of 2 at 0.5; examples 0.40–1.60 (median 1.00); best other peak 0.30
    trained on: found 2 of 2 at 0.5; examples 0.90–1.10 (median 1.00); best other peak 0.20
    wrote f.npz in 1.50 s
    """
    w, h = training["size"]
    channels = 1 if training.get("colour") == "grey" else 3
    lines = [
        f"waldo learn: {training['examples']} example{'s' if training['examples'] != 1 else ''} "
        f"({training['examples'] - training['crops']} in scenes, {training['crops']} crop"
        f"{'s' if training['crops'] != 1 else ''}); negatives from {training['scenes']} "
        f"scene{'s' if training['scenes'] != 1 else ''} and {training['negative_images']} "
        f"image{'s' if training['negative_images'] != 1 else ''}",
        f"filter {w}×{h}×{channels} ({training.get('colour', 'rgb')}) = "
        f"{training.get('parameters', w * h * channels + 1):,} parameters; "
        f"{training['positives']:,} positives with copies, "
        f"{training['hard_negatives']:,} hard negatives, λ {training['regularisation']:g}",
    ]
    scales = training.get("scales") or [1.0]
    if len(scales) > 1:
        lines.append(
            "searched by default at scales "
            + ", ".join(f"{s:g}" for s in scales)
            + " (its examples' sizes)"
        )
    for label, key in (("held out", "held_out"), ("trained on", "trained")):
        part = training.get(key) or {}
        if not part or not part.get("of"):
            continue
        low, mid, high = part["examples"]
        clear = part.get("best_clear") or part.get("best_elsewhere") or [0, 0, 0]
        folds = f" ({part['folds']}-fold)" if "folds" in part else ""
        lines.append(
            f"{label}{folds}: found {part['found']} of {part['of']} at 0.5; examples "
            f"{low:.2f}–{high:.2f} (median {mid:.2f}); best other peak {clear[-1]:.2f}"
        )
    if not training.get("held_out"):
        lines.append(
            "note: calibrated on the training examples themselves (hold-out needs two images or "
            "more): new examples will score lower than these"
        )
    lines.append(f"wrote {output} in {seconds:.2f} s")
    return lines
