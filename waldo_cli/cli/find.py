"""``waldo find``: a template in one image, or in any number of them (batch mode)."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import Any

import click

from waldo_cli.cli import EXIT_ERROR, EXIT_MATCH, EXIT_NO_MATCH, WaldoUsageError
from waldo_cli.cli.options import convolve_option, json_option
from waldo_cli.cli.terminal import (
    Output,
    compile_notice,
    image_source,
    progress_bar,
    stderr_console,
    stdout_console,
)
from waldo_cli.methods import DEFAULT_METHOD, METHODS


@click.command("find")
@click.argument("paths", nargs=-1, metavar="IMAGE TEMPLATE | -t TEMPLATE [IMAGE]...")
@click.option(
    "-t",
    "--template",
    "template_path",
    metavar="TEMPLATE",
    default=None,
    help="Search for TEMPLATE in every image given: then every argument is an image (batch mode).",
)
@click.option(
    "--files-from",
    metavar="FILE",
    default=None,
    help="Also read image paths from FILE, one per line ('-' for standard input), "
    "as tar -T does. Needs -t.",
)
@click.option(
    "-m",
    "--method",
    type=click.Choice(METHODS),
    default=DEFAULT_METHOD,
    show_default=True,
    help="How windows are scored (OpenCV's TM_* methods).",
)
@click.option(
    "--mask",
    "mask_path",
    metavar="PATH",
    default=None,
    help="Weights for the template's pixels, an image of its size (black = ignore, "
    "white = count fully). Default: the template's alpha channel, if it has one.",
)
@click.option("--no-mask", is_flag=True, help="Ignore the template's alpha channel.")
@click.option(
    "-k",
    "--top-k",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Report up to this many matches per image, best first.",
)
@click.option(
    "--threshold",
    type=float,
    default=None,
    help="Only scores at least this good count (at most this, for the sqdiff "
    "methods). Default: 0.5 for ccoeff_normed, 0.9 for ccorr_normed, 0.1 for "
    "sqdiff_normed, none for the raw methods.",
)
@click.option("--no-threshold", is_flag=True, help="Report the top-k places whatever their score.")
@click.option(
    "--min-distance",
    type=click.IntRange(min=0),
    default=None,
    help="Matches are at least this many pixels apart (max of |dx|, |dy|). "
    "Default: half the template's smaller side.",
)
@click.option(
    "--pad",
    type=click.Choice(["none", "zero", "reflect", "edge"]),
    default="none",
    show_default=True,
    help="Extend the image past its border (zeros, mirror, or edge pixels) so "
    "windows may hang over it: a Waldo cut off by the edge can still be found. "
    "Matches keep giving the window's top-left corner, which may then be "
    "negative.",
)
@convolve_option(
    "Flip the template in both axes before sliding it: true convolution "
    "instead of the cross-correlation a CNN layer computes."
)
@click.option(
    "--scales",
    default=None,
    metavar="START:STOP:STEP|LIST",
    help="Also search the template resized by these factors, e.g. 0.5:2:0.1 (stop "
    "included) or 0.8,1,1.25. Each match reports its scale.",
)
@click.option(
    "--rotations",
    default=None,
    metavar="START:STOP:STEP|LIST",
    help="Also search the template turned by these angles in degrees, counter-"
    "clockwise, e.g. 0,90,180,270 (exact) or -30:30:5 (the corners a turn adds "
    "are masked out). Each match reports its angle.",
)
@click.option(
    "--flip",
    is_flag=True,
    help="Also search every copy mirrored left to right; matches report flip.",
)
@click.option(
    "--subpixel",
    is_flag=True,
    help="Refine each match's x and y to a fraction of a pixel (a quadratic fitted "
    "to the 3×3 scores around the peak); they are then decimals.",
)
@json_option("Print one JSON document on stdout (a list of them in batch mode).")
@click.option(
    "--jsonl",
    "as_jsonl",
    is_flag=True,
    help="Print one JSON object per image, each as soon as it is done.",
)
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV: a header, then one row per match.")
@click.option(
    "-q",
    "--quiet",
    is_flag=True,
    help="Print nothing; only the exit status tells. Stops at the first match.",
)
@click.option(
    "--fail-fast",
    is_flag=True,
    help="Stop at the first image that cannot be searched (default: report it and go on).",
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Images searched at once in batch mode. Default: all cores.",
)
@click.option(
    "--heatmap",
    "heatmap_path",
    metavar="PATH",
    default=None,
    help="Write the score map as a picture on the image's pixel grid (each score "
    "at its window's centre; best = bright end; grey border = no window centre).",
)
@click.option(
    "--overlay",
    "overlay_path",
    metavar="PATH",
    default=None,
    help="Write the image with a box, rank and score for every match. The format "
    "follows the extension (.png, .jpg, .webp, .tif, .bmp, .gif).",
)
@click.option(
    "--colormap",
    default="viridis",
    show_default=True,
    metavar="NAME",
    help="Colormap of the heatmap, any name the cmap package knows (viridis, magma, "
    "inferno, plasma, cividis, ...).",
)
@click.option("--no-legend", is_flag=True, help="Leave the legend off the heatmap.")
@click.option(
    "--show",
    type=click.Choice(["overlay", "heatmap"]),
    is_flag=False,
    flag_value="overlay",
    default=None,
    help="On a terminal, draw the overlay (or the heatmap: --show heatmap) with "
    "coloured half blocks above the table. Does nothing off a terminal or "
    "with --json.",
)
@click.option(
    "--engine",
    type=click.Choice(["auto", "direct", "fft"]),
    default="auto",
    show_default=True,
    help="How to correlate: a sliding-window kernel, FFT tiles, or whichever a "
    "cost model predicts is faster. All give the same scores.",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Threads for the search. Default: all cores (NUMBA_NUM_THREADS caps it).",
)
def find_command(
    paths: tuple[str, ...],
    template_path: str | None,
    files_from: str | None,
    method: str,
    mask_path: str | None,
    no_mask: bool,
    top_k: int,
    threshold: float | None,
    no_threshold: bool,
    min_distance: int | None,
    pad: str,
    convolve: bool,
    scales: str | None,
    rotations: str | None,
    flip: bool,
    subpixel: bool,
    as_json: bool,
    as_jsonl: bool,
    as_csv: bool,
    quiet: bool,
    fail_fast: bool,
    jobs: int | None,
    heatmap_path: str | None,
    overlay_path: str | None,
    colormap: str,
    no_legend: bool,
    show: str | None,
    engine: str,
    threads: int | None,
) -> int:
    """Find a template inside images and report the best matches.

    \b
    waldo find IMAGE TEMPLATE            one image
    waldo find -t TEMPLATE IMAGE...      any number of images (batch mode)
    waldo find -t T --files-from FILE    image paths from FILE, '-' for stdin

    Scores every window of each image against the template, keeps the best
    ones that pass the threshold and are MIN-DISTANCE apart, and prints them:
    a table on a terminal, tab-separated text in a pipe (the timing line then
    goes to stderr), JSON with --json, JSON Lines with --jsonl, CSV with
    --csv. x and y are the top-left corner of a match, in pixels. An image
    path of '-' reads the image from standard input. A grey file matched with
    a colour one is matched in grey.

    In batch mode the template is loaded once, images are searched JOBS at a
    time, results come out in the order the images were given, each as soon
    as it and those before it are done, and an image that cannot be searched
    gets an error record (or a line on stderr) while the batch goes on.

    Exit status, as grep: 2 if any image failed (or bad usage), otherwise 0 if
    any image had a match, otherwise 1. With -q a match gives 0 even if
    another image failed. Ctrl-C stops with 130; finished results are kept.
    """  # noqa: D301 - the backspace tells Click to keep those three lines as they are
    from waldo_cli.methods import default_threshold

    formats = [
        name for name, on in (("--json", as_json), ("--jsonl", as_jsonl), ("--csv", as_csv)) if on
    ]
    if len(formats) > 1:
        raise click.UsageError(f"choose one output format, not {' and '.join(formats)}")
    if no_threshold and threshold is not None:
        raise click.UsageError("give --threshold or --no-threshold, not both")
    if no_mask and mask_path is not None:
        raise click.UsageError("give --mask or --no-mask, not both")
    single = template_path is None
    if single:
        if files_from is not None:
            raise click.UsageError("--files-from needs the template as -t/--template")
        if len(paths) != 2:
            raise click.UsageError(
                "give IMAGE and TEMPLATE, or -t TEMPLATE and any number of images"
            )
        images, template_path = [paths[0]], paths[1]
    else:
        images = list(paths)
        if files_from is not None:
            images += _read_file_list(files_from)
        if not images:
            raise click.UsageError(
                "no images to search: give them as arguments or with --files-from"
            )
    stdin_users = (
        images.count("-") + (template_path == "-") + (files_from == "-") + (mask_path == "-")
    )
    if stdin_users > 1:
        raise click.UsageError("standard input ('-') can be read only once")
    pictures = heatmap_path is not None or overlay_path is not None or show is not None
    if pictures and len(images) != 1:
        raise click.UsageError("--heatmap, --overlay and --show need exactly one image")

    limit = (
        None
        if no_threshold
        else (threshold if threshold is not None else default_threshold(method))
    )
    from waldo_cli.batch import SearchOptions
    from waldo_cli.errors import WaldoError
    from waldo_cli.variants import parse_range

    try:
        scale_values = tuple(parse_range(scales, "--scales")) if scales else (1.0,)
        angle_values = tuple(parse_range(rotations, "--rotations")) if rotations else (0.0,)
    except WaldoError as exc:
        raise click.UsageError(str(exc)) from None
    if any(value <= 0 for value in scale_values):
        raise click.UsageError(f"--scales {scales!r}: every scale must be positive")
    options = SearchOptions(
        method=method,
        top_k=top_k,
        threshold=limit,
        min_distance=min_distance,
        engine=engine,
        subpixel=subpixel,
        pad=pad,
        convolve=convolve,
        scales=scale_values,
        angles=angle_values,
        flip=flip,
    )
    searcher = _load_searcher(
        template_path,
        options,
        threads,
        heatmap_path,
        overlay_path,
        colormap,
        show,
        images,
        mask_path,
        no_mask,
    )
    if single and not (as_jsonl or as_csv):
        return _find_one(
            searcher,
            images[0],
            template_path,
            as_json,
            quiet,
            heatmap_path,
            overlay_path,
            colormap,
            not no_legend,
            show,
        )
    return _find_many(searcher, images, as_json, as_jsonl, as_csv, quiet, fail_fast, jobs, single)


def _read_file_list(files_from: str) -> list[str]:
    """Image paths from a file (or stdin), one per line; blank lines are skipped."""
    from waldo_cli.errors import ImageReadError

    try:
        if files_from == "-":
            text = sys.stdin.read()
        else:
            with open(files_from, encoding="utf-8", errors="surrogateescape") as fh:
                text = fh.read()
    except OSError as exc:
        raise WaldoUsageError(str(ImageReadError(files_from, exc.strerror or str(exc)))) from None
    return [line for line in text.splitlines() if line.strip()]


def _load_searcher(
    template_path: str,
    options: Any,
    threads: int | None,
    heatmap_path: str | None,
    overlay_path: str | None,
    colormap: str,
    show: str | None,
    images: list[str],
    mask_path: str | None = None,
    no_mask: bool = False,
) -> Any:
    """Check the outputs, set the engine up, load the template (and its mask) once."""
    from waldo_cli import kernels
    from waldo_cli.batch import Searcher
    from waldo_cli.engine import set_threads
    from waldo_cli.errors import WaldoError
    from waldo_cli.io import read_image

    try:
        _check_outputs((heatmap_path, overlay_path), (*images, template_path))
        if heatmap_path is not None or show == "heatmap":
            from waldo_cli.render import colormap_table

            colormap_table(colormap)
        kernels.skip_extension_scan()
        set_threads(threads)
        name, data = image_source(template_path)
        template = read_image(data, name=name)
        mask, source = None, None
        if mask_path is not None:
            mask_name, mask_data = image_source(mask_path)
            mask = read_image(mask_data, name=mask_name).pixels / 255.0
            source = mask_path
            if mask.shape[:2] != template.pixels.shape[:2]:
                from waldo_cli.errors import ShapeError

                raise ShapeError(
                    f"{mask_path}: the mask is {mask.shape[1]}×{mask.shape[0]}, "
                    f"the template {template.width}×{template.height}"
                )
        elif template.alpha is not None and not no_mask:
            mask, source = template.alpha, "alpha"
        return Searcher(template, options, mask=mask, mask_source=source)
    except WaldoError as exc:
        raise WaldoUsageError(str(exc)) from None


def _find_one(
    searcher: Any,
    image: str,
    template: str,
    as_json: bool,
    quiet: bool,
    heatmap_path: str | None,
    overlay_path: str | None,
    colormap: str,
    legend: bool,
    show: str | None,
) -> int:
    """``waldo find IMAGE TEMPLATE``: one search, errors as usage errors."""
    from waldo_cli.errors import WaldoError
    from waldo_cli.io import read_image
    from waldo_cli.report import plain_table, print_table, summary_line, write_json

    # rich only for what a terminal may get (its import is felt in shell loops)
    out = None if as_json or quiet else stdout_console()
    try:
        name, data = image_source(image)
        loaded = read_image(data, name=name)
        with compile_notice(searcher.engine_for(loaded.pixels.shape), quiet):
            report, pixels, scores = searcher.search(loaded)
        # the terminal preview only where it cannot mix with data or silence
        preview = show if out is not None and out.is_terminal else None
        if heatmap_path is not None or overlay_path is not None or preview is not None:
            _write_pictures(
                report,
                pixels,
                scores,
                heatmap_path,
                overlay_path,
                colormap,
                legend,
                preview,
                out,
                (image, template),
            )
    except WaldoError as exc:
        if quiet:
            return EXIT_ERROR
        raise WaldoUsageError(str(exc)) from None
    if quiet:
        return EXIT_MATCH if report.matches else EXIT_NO_MATCH
    if as_json or out is None:
        write_json(sys.stdout, report)
    elif out.is_terminal:
        print_table(out, report)
    else:
        click.echo(plain_table(report))
        click.echo(summary_line(report), err=True)
    return EXIT_MATCH if report.matches else EXIT_NO_MATCH


def _find_many(
    searcher: Any,
    images: list[str],
    as_json: bool,
    as_jsonl: bool,
    as_csv: bool,
    quiet: bool,
    fail_fast: bool,
    jobs: int | None,
    single: bool,
) -> int:
    """Batch mode: stream one record per image, in input order."""
    import json

    from waldo_cli.batch import run_batch
    from waldo_cli.engine import default_threads
    from waldo_cli.report import batch_header, batch_summary, csv_lines, jsonl_line, tsv_lines

    started = time.perf_counter()
    err = stderr_console()
    progress = progress_bar(err) if len(images) > 1 and err.is_terminal and not quiet else None
    sources = (image_source(path) for path in images)
    done = matched = failed = 0
    collected: list[Any] = []
    status = None
    with Output() as out, progress if progress is not None else contextlib.nullcontext():
        task = progress.add_task("find", total=len(images), rate="–") if progress else None
        if not quiet:
            if as_csv:
                out.write(batch_header(",") + "\n")
            elif not (as_json or as_jsonl):
                out.write(batch_header() + "\n")
        for result in run_batch(searcher, sources, jobs or default_threads()):
            done += 1
            matched += result.matched
            failed += result.error is not None
            if progress is not None:
                rate = done / max(time.perf_counter() - started, 1e-9)
                progress.update(task, advance=1, rate=f"{rate:.1f}")
            if quiet:
                if result.matched:
                    status = EXIT_MATCH
                    break
            elif result.error is not None and not as_jsonl:
                if as_json:
                    collected.append(result.to_dict())
                click.echo(f"waldo: error: {result.error}", err=True)
            elif as_jsonl:
                out.write(jsonl_line(result))
            elif as_json:
                collected.append(result.to_dict())
            elif as_csv:
                out.write(csv_lines(result))
            else:
                out.write(tsv_lines(result))
            if fail_fast and result.error is not None:
                break
        if as_json and not quiet:
            out.write(json.dumps(collected[0] if single else collected) + "\n")
    if status is not None:
        return status
    if not quiet and not single:
        click.echo(batch_summary(done, matched, failed, time.perf_counter() - started), err=True)
    if failed:
        return EXIT_ERROR
    return EXIT_MATCH if matched else EXIT_NO_MATCH


def _check_outputs(paths: tuple[str | None, ...], inputs: tuple[str, ...]) -> None:
    """Refuse bad output paths before any work is done."""
    from waldo_cli.errors import OutputError
    from waldo_cli.io import check_output_path

    given = [p for p in paths if p is not None]
    for path in given:
        check_output_path(path, inputs)
    if len({os.path.abspath(p) for p in given}) < len(given):
        raise OutputError(f"{given[0]}: --heatmap and --overlay name the same file")


def _write_pictures(
    report: Any,
    pixels: Any,
    scores: Any,
    heatmap_path: str | None,
    overlay_path: str | None,
    colormap: str,
    legend: bool,
    show: str | None,
    console: Any,
    inputs: tuple[str, ...],
) -> None:
    from waldo_cli.io import save_image
    from waldo_cli.render import render_heatmap, render_overlay, render_preview
    from waldo_cli.report import preview_size, print_preview

    pictures = {}
    if heatmap_path is not None or show == "heatmap":
        # a padded or merged map already has the image's shape, indexed by window centre
        window = (
            (1, 1)
            if report.extra.get("scores_indexed_by") == "window centre"
            else (report.template_size[1], report.template_size[0])
        )
        pictures["heatmap"] = render_heatmap(
            scores, report.method, pixels.shape[:2], window, colormap=colormap, legend=legend
        )
    if overlay_path is not None:
        pictures["overlay"] = render_overlay(pixels, report.matches)
    if show == "overlay":
        pictures["preview"] = render_preview(pixels, report.matches, *preview_size(console))
    if heatmap_path is not None:
        save_image(pictures["heatmap"], heatmap_path, inputs)
    if overlay_path is not None:
        save_image(pictures["overlay"], overlay_path, inputs)
    if show is not None:
        print_preview(console, pictures["preview" if show == "overlay" else "heatmap"])
