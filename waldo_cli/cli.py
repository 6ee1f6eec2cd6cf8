"""The ``waldo`` command line: a Click group, the only place that picks exit codes.

Exit status follows grep: 0 a match was found, 1 none was, 2 bad usage or bad
input (always one line on stderr, never a traceback), 130 interrupted.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Any

import click

from waldo_cli import __version__
from waldo_cli.methods import DEFAULT_METHOD, METHODS

EXIT_MATCH, EXIT_NO_MATCH, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130


class WaldoUsageError(click.ClickException):
    """A problem with the user's input: printed as one line, exit status 2."""

    exit_code = EXIT_ERROR


def _one_line(message: str) -> str:
    return " ".join(message.split())


def _die_of_sigpipe() -> None:
    """End as grep does when a reader such as ``head`` closes our stdout: by SIGPIPE.

    Python ignores SIGPIPE, so a closed pipe shows up as BrokenPipeError;
    Click would turn that into exit status 1, which for waldo means "not
    found". Whatever is still buffered goes to /dev/null, so that the exit
    itself does not raise again.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGPIPE)
    sys.exit(128 + 13)  # where there is no SIGPIPE: the status a shell would show


class WaldoGroup(click.Group):
    """A Click group that reports every error as one line on stderr."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; a closed stdout ends the process as it ends grep."""
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            _die_of_sigpipe()

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        """Run the command; report Click's errors as one line and exit with our codes."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        name = "waldo"  # the command users type, whatever Click was told
        try:
            rv = super().main(args, name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":
                # `waldo` or `waldo cache` alone: show the help, as --help would
                click.echo(exc.ctx.get_help() if exc.ctx is not None else exc.format_message())
                sys.exit(0)
            click.echo(f"{name}: error: {_one_line(exc.format_message())}", err=True)
            sys.exit(exc.exit_code)
        except (click.Abort, KeyboardInterrupt):
            click.echo(f"{name}: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=WaldoGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="waldo")
def cli() -> None:
    """Find a picture inside pictures.

    waldo slides a template over an image and scores every window with one of
    OpenCV's six template-matching methods, the cross-correlation a
    convolutional layer computes. Exit status: 0 found, 1 not found, 2 error.
    """


@cli.command("find")
@click.argument("paths", nargs=-1, metavar="IMAGE TEMPLATE | -t TEMPLATE [IMAGE]...")
@click.option("-t", "--template", "template_path", metavar="TEMPLATE", default=None,
              help="Search for TEMPLATE in every image given: then every argument is an "
                   "image (batch mode).")
@click.option("--files-from", metavar="FILE", default=None,
              help="Also read image paths from FILE, one per line ('-' for standard input), "
                   "as tar -T does. Needs -t.")
@click.option("-m", "--method", type=click.Choice(METHODS), default=DEFAULT_METHOD,
              show_default=True, help="How windows are scored (OpenCV's TM_* methods).")
@click.option("--mask", "mask_path", metavar="PATH", default=None,
              help="Weights for the template's pixels, an image of its size (black = ignore, "
                   "white = count fully). Default: the template's alpha channel, if it has one.")
@click.option("--no-mask", is_flag=True, help="Ignore the template's alpha channel.")
@click.option("-k", "--top-k", type=click.IntRange(min=1), default=1, show_default=True,
              help="Report up to this many matches per image, best first.")
@click.option("--threshold", type=float, default=None,
              help="Only scores at least this good count (at most this, for the sqdiff "
                   "methods). Default: 0.5 for ccoeff_normed, 0.9 for ccorr_normed, 0.1 for "
                   "sqdiff_normed, none for the raw methods.")
@click.option("--no-threshold", is_flag=True,
              help="Report the top-k places whatever their score.")
@click.option("--min-distance", type=click.IntRange(min=0), default=None,
              help="Matches are at least this many pixels apart (max of |dx|, |dy|). "
                   "Default: half the template's smaller side.")
@click.option("--pad", type=click.Choice(["none", "zero", "reflect", "edge"]), default="none",
              show_default=True,
              help="Extend the image past its border (zeros, mirror, or edge pixels) so "
                   "windows may hang over it: a Waldo cut off by the edge can still be found. "
                   "Matches keep giving the window's top-left corner, which may then be "
                   "negative.")
@click.option("--convolve", is_flag=True,
              help="Flip the template in both axes before sliding it: true convolution "
                   "instead of the cross-correlation a CNN layer computes.")
@click.option("--scales", default=None, metavar="START:STOP:STEP|LIST",
              help="Also search the template resized by these factors, e.g. 0.5:2:0.1 (stop "
                   "included) or 0.8,1,1.25. Each match reports its scale.")
@click.option("--rotations", default=None, metavar="START:STOP:STEP|LIST",
              help="Also search the template turned by these angles in degrees, counter-"
                   "clockwise, e.g. 0,90,180,270 (exact) or -30:30:5 (the corners a turn adds "
                   "are masked out). Each match reports its angle.")
@click.option("--flip", is_flag=True,
              help="Also search every copy mirrored left to right; matches report flip.")
@click.option("--subpixel", is_flag=True,
              help="Refine each match's x and y to a fraction of a pixel (a quadratic fitted "
                   "to the 3×3 scores around the peak); they are then decimals.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON document on stdout (a list of them in batch mode).")
@click.option("--jsonl", "as_jsonl", is_flag=True,
              help="Print one JSON object per image, each as soon as it is done.")
@click.option("--csv", "as_csv", is_flag=True,
              help="Print CSV: a header, then one row per match.")
@click.option("-q", "--quiet", is_flag=True,
              help="Print nothing; only the exit status tells. Stops at the first match.")
@click.option("--fail-fast", is_flag=True,
              help="Stop at the first image that cannot be searched (default: report it and "
                   "go on).")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None, metavar="N",
              help="Images searched at once in batch mode. Default: all cores.")
@click.option("--heatmap", "heatmap_path", metavar="PATH", default=None,
              help="Write the score map as a picture on the image's pixel grid (each score "
                   "at its window's centre; best = bright end; grey border = no window centre).")
@click.option("--overlay", "overlay_path", metavar="PATH", default=None,
              help="Write the image with a box, rank and score for every match. The format "
                   "follows the extension (.png, .jpg, .webp, .tif, .bmp, .gif).")
@click.option("--colormap", default="viridis", show_default=True, metavar="NAME",
              help="Colormap of the heatmap, any name the cmap package knows (viridis, magma, "
                   "inferno, plasma, cividis, ...).")
@click.option("--no-legend", is_flag=True, help="Leave the legend off the heatmap.")
@click.option("--show", type=click.Choice(["overlay", "heatmap"]), is_flag=False,
              flag_value="overlay", default=None,
              help="On a terminal, draw the overlay (or the heatmap: --show heatmap) with "
                   "coloured half blocks above the table. Does nothing off a terminal or "
                   "with --json.")
@click.option("--engine", type=click.Choice(["auto", "direct", "fft"]), default="auto",
              show_default=True,
              help="How to correlate: a sliding-window kernel, FFT tiles, or whichever a "
                   "cost model predicts is faster. All give the same scores.")
@click.option("--threads", type=click.IntRange(min=1), default=None, metavar="N",
              help="Threads for the search. Default: all cores (NUMBA_NUM_THREADS caps it).")
def find_command(paths: tuple[str, ...], template_path: str | None, files_from: str | None,
                 method: str, mask_path: str | None, no_mask: bool, top_k: int,
                 threshold: float | None, no_threshold: bool,
                 min_distance: int | None, pad: str, convolve: bool, scales: str | None,
                 rotations: str | None, flip: bool, subpixel: bool,
                 as_json: bool, as_jsonl: bool,
                 as_csv: bool,
                 quiet: bool, fail_fast: bool, jobs: int | None, heatmap_path: str | None,
                 overlay_path: str | None, colormap: str, no_legend: bool, show: str | None,
                 engine: str, threads: int | None) -> int:
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

    formats = [name for name, on in (("--json", as_json), ("--jsonl", as_jsonl),
                                      ("--csv", as_csv)) if on]
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
            raise click.UsageError("give IMAGE and TEMPLATE, or -t TEMPLATE and any number of "
                                   "images")
        images, template_path = [paths[0]], paths[1]
    else:
        images = list(paths)
        if files_from is not None:
            images += _read_file_list(files_from)
        if not images:
            raise click.UsageError("no images to search: give them as arguments or with "
                                   "--files-from")
    stdin_users = (images.count("-") + (template_path == "-") + (files_from == "-")
                   + (mask_path == "-"))
    if stdin_users > 1:
        raise click.UsageError("standard input ('-') can be read only once")
    pictures = heatmap_path is not None or overlay_path is not None or show is not None
    if pictures and len(images) != 1:
        raise click.UsageError("--heatmap, --overlay and --show need exactly one image")

    limit = None if no_threshold else (threshold if threshold is not None
                                       else default_threshold(method))
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
    options = SearchOptions(method=method, top_k=top_k, threshold=limit,
                            min_distance=min_distance, engine=engine, subpixel=subpixel,
                            pad=pad, convolve=convolve, scales=scale_values,
                            angles=angle_values, flip=flip, threads=threads)
    searcher = _load_searcher(template_path, options, threads,
                              heatmap_path, overlay_path, colormap, show, images,
                              mask_path, no_mask)
    if single and not (as_jsonl or as_csv):
        return _find_one(searcher, images[0], template_path, as_json, quiet, heatmap_path,
                         overlay_path, colormap, not no_legend, show)
    return _find_many(searcher, images, as_json, as_jsonl, as_csv, quiet, fail_fast,
                      jobs, single)


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
        raise WaldoUsageError(str(ImageReadError(files_from, exc.strerror or str(exc)))
                              ) from None
    return [line for line in text.splitlines() if line.strip()]


def _source(path: str) -> tuple[str, Any]:
    """(name, what to read): the bytes of standard input for '-', else the path."""
    if path == "-":
        return "-", sys.stdin.buffer.read()
    return path, path


def _load_searcher(template_path: str, options: Any, threads: int | None,
                   heatmap_path: str | None, overlay_path: str | None, colormap: str,
                   show: str | None, images: list[str], mask_path: str | None = None,
                   no_mask: bool = False) -> Any:
    """Check the outputs, set the engine up, load the template (and its mask) once."""
    from waldo_cli import jit
    from waldo_cli.batch import Searcher
    from waldo_cli.errors import WaldoError
    from waldo_cli.io import read_image

    try:
        _check_outputs((heatmap_path, overlay_path), (*images, template_path))
        if heatmap_path is not None or show == "heatmap":
            from waldo_cli.render import colormap_table

            colormap_table(colormap)
        jit.skip_extension_scan()
        name, data = _source(template_path)
        template = read_image(data, name=name)
        mask, source = None, None
        if mask_path is not None:
            mask_name, mask_data = _source(mask_path)
            mask = read_image(mask_data, name=mask_name).pixels / 255.0
            source = mask_path
            if mask.shape[:2] != template.pixels.shape[:2]:
                from waldo_cli.errors import ShapeError

                raise ShapeError(f"{mask_path}: the mask is {mask.shape[1]}×{mask.shape[0]}, "
                                 f"the template {template.width}×{template.height}")
        elif template.alpha is not None and not no_mask:
            mask, source = template.alpha, "alpha"
        return Searcher(template, options, mask=mask, mask_source=source)
    except WaldoError as exc:
        raise WaldoUsageError(str(exc)) from None


def _find_one(searcher: Any, image: str, template: str, as_json: bool, quiet: bool,
              heatmap_path: str | None, overlay_path: str | None, colormap: str, legend: bool,
              show: str | None) -> int:
    """``waldo find IMAGE TEMPLATE``: one search, errors as usage errors."""
    from waldo_cli.errors import WaldoError
    from waldo_cli.io import read_image
    from waldo_cli.report import plain_table, print_table, summary_line, write_json

    # rich only for what a terminal may get (its import is felt in shell loops)
    out = None if as_json or quiet else _stdout_console()
    try:
        name, data = _source(image)
        loaded = read_image(data, name=name)
        with _compile_notice(searcher, loaded, quiet):
            result = searcher.search(loaded)
        report = result.report
        # the terminal preview only where it cannot mix with data or silence
        preview = show if out is not None and out.is_terminal else None
        if heatmap_path is not None or overlay_path is not None or preview is not None:
            _write_pictures(result, heatmap_path, overlay_path, colormap,
                            legend, preview, out, (image, template))
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


class _Output:
    """Writes whole records to stdout; Ctrl-C waits until the record is out.

    A SIGINT that arrives while a record is being written is held and raised
    right after it, so an interrupted run never leaves half a line.
    """

    def __init__(self) -> None:
        self._writing = False
        self._pending = False
        self._previous: Any = None

    def __enter__(self) -> _Output:
        import signal

        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc: object) -> None:
        import signal

        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self._writing:
            self._pending = True
            return
        raise KeyboardInterrupt

    def write(self, text: str) -> None:
        """Write and flush ``text`` as one piece."""
        if not text:
            return
        self._writing = True
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        finally:
            self._writing = False
        if self._pending:
            self._pending = False
            raise KeyboardInterrupt


def _find_many(searcher: Any, images: list[str], as_json: bool, as_jsonl: bool, as_csv: bool,
               quiet: bool, fail_fast: bool, jobs: int | None, single: bool) -> int:
    """Batch mode: stream one record per image, in input order."""
    import json
    import time

    from rich.console import Console

    from waldo_cli.batch import run_batch
    from waldo_cli.pool import default_threads
    from waldo_cli.report import batch_header, batch_summary, csv_lines, jsonl_line, tsv_lines

    started = time.perf_counter()
    err = Console(stderr=True)
    progress = None
    if len(images) > 1 and err.is_terminal and not quiet:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        progress = Progress(TextColumn("searching"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[rate]} images/s"), TimeRemainingColumn(),
                            console=err, transient=True)
    sources = (_source(path) for path in images)
    done = matched = failed = 0
    collected: list[Any] = []
    status = None
    with _Output() as out, (progress if progress is not None else contextlib.nullcontext()):
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
        click.echo(batch_summary(done, matched, failed, time.perf_counter() - started),
                   err=True)
    if failed:
        return EXIT_ERROR
    return EXIT_MATCH if matched else EXIT_NO_MATCH


@contextlib.contextmanager
def _compile_notice(searcher: Any, loaded: Any, quiet: bool) -> Any:
    """Say so on stderr when a search waits more than a second for Numba to compile."""
    from waldo_cli import jit
    from waldo_cli.errors import WaldoError

    try:
        names = searcher.kernels_for(loaded.pixels.shape)
    except WaldoError:  # the search itself will say what is wrong
        names = set()
    timer = None
    if not quiet and not all(jit.is_cached(name) for name in names):
        timer = threading.Timer(1.0, click.echo, args=(
            "waldo: compiling the search kernels, once (later runs start at once)…",),
            kwargs={"err": True})
        timer.daemon = True
        timer.start()
    try:
        yield
    finally:
        if timer is not None:
            timer.cancel()


def _check_outputs(paths: tuple[str | None, ...], inputs: tuple[str, ...]) -> None:
    """Refuse bad output paths before any work is done."""
    from waldo_cli.errors import OutputError
    from waldo_cli.io import check_output_path

    given = [p for p in paths if p is not None]
    for path in given:
        check_output_path(path, inputs)
    if len({os.path.abspath(p) for p in given}) < len(given):
        raise OutputError(f"{given[0]}: --heatmap and --overlay name the same file")


def _write_pictures(result: Any, heatmap_path: str | None,
                    overlay_path: str | None, colormap: str, legend: bool, show: str | None,
                    console: Any, inputs: tuple[str, ...]) -> None:
    from waldo_cli.io import save_image
    from waldo_cli.render import render_heatmap, render_overlay, render_preview
    from waldo_cli.report import preview_size, print_preview

    report, pixels, scores = result.report, result.pixels, result.scores
    pictures = {}
    if heatmap_path is not None or show == "heatmap":
        # a centre-indexed map (padded, variants) is drawn as a 1×1 window's
        window = (1, 1) if scores.indexed_by == "window centre" else scores.window
        pictures["heatmap"] = render_heatmap(scores.values, report.method, pixels.shape[:2],
                                             window,
                                             colormap=colormap, legend=legend)
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


def _stdout_console() -> Any:
    from rich.console import Console

    return Console(file=sys.stdout)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``waldo`` console script."""
    cli.main(args=argv, prog_name="waldo")


@cli.group("cache")
def cache_group() -> None:
    """Manage the compiled search kernels (Numba's on-disk cache).

    The first search compiles the kernels it needs (a few seconds) and keeps
    them in the package's folder, or in the user's cache folder when that is
    not writable (NUMBA_CACHE_DIR overrides both); later runs load them.
    """


@cache_group.command("info")
def cache_info() -> None:
    """Show where the kernels are cached and which are compiled."""
    from waldo_cli import jit

    for folder in jit.cache_folders():
        click.echo(f"cache folder: {folder}")
    for name in sorted(jit.kernel_names()):
        click.echo(f"{name}: {'compiled' if jit.is_cached(name) else 'not compiled yet'}")


@cache_group.command("warm")
def cache_warm() -> None:
    """Compile every kernel now, so no later search waits for the compiler."""
    import time

    from waldo_cli import jit

    jit.skip_extension_scan()
    for name in jit.KERNELS:
        started = time.perf_counter()
        jit.warm_kernels(name)
        click.echo(f"{name} kernels ready ({time.perf_counter() - started:.1f} s)")


@cache_group.command("clear")
def cache_clear() -> None:
    """Delete the compiled kernels (the next search compiles them again)."""
    from waldo_cli import jit

    removed = jit.clear_cache()
    click.echo(f"removed {len(removed)} cached file{'s' if len(removed) != 1 else ''}")


@cli.command("params")
@click.option("--size", type=click.IntRange(min=1), default=None,
              help="Height and width of a square image, in pixels (or give --height and --width).")
@click.option("--height", type=click.IntRange(min=1), default=None, help="H, the image's rows.")
@click.option("--width", type=click.IntRange(min=1), default=None, help="W, the image's columns.")
@click.option("--delta", type=click.IntRange(min=0), default=1, show_default=True,
              help="Δ, the locality radius: a (2Δ+1)×(2Δ+1) window; 0 is a 1×1 convolution.")
@click.option("--channels-in", type=click.IntRange(min=1), default=3, show_default=True,
              help="C_in, channels of the image.")
@click.option("--channels-out", type=click.IntRange(min=1), default=1, show_default=True,
              help="C_out, channels of the hidden representation.")
@click.option("--hidden", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Hidden units of the dense layer in the first row.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON document on stdout instead of a table.")
@click.option("--explain", is_flag=True,
              help="Under the table, the equation and the assumption behind each row.")
def params_command(size: int | None, height: int | None, width: int | None, delta: int,
                   channels_in: int, channels_out: int, hidden: int, as_json: bool,
                   explain: bool) -> None:
    """Count what a convolution saves over a fully connected layer, for your image size.

    Follows the chapter "From Fully Connected Layers to Convolutions" (Dive into
    Deep Learning) for an H×W image with C_in channels and a hidden
    representation of the same H×W with C_out channels, one row per step:
    a dense layer to --hidden units, the fully connected layer, translation
    invariance, and locality |a|, |b| ≤ Δ (the convolutional layer).

    Give --size, or both --height and --width. Counts are exact; float32 is 4
    bytes per parameter; reduction is the fully connected row's parameters
    divided by the row's. Multiply-adds count, for one forward pass over one
    image, one per weight that meets a pixel inside the image (no biases, no
    taps on the zero padding). --explain is ignored with --json.
    """
    import json

    from waldo_cli.errors import WaldoError
    from waldo_cli.params import param_counts

    if size is not None and (height is not None or width is not None):
        raise click.UsageError("give --size or --height and --width, not both")
    if size is None and (height is None or width is None):
        raise click.UsageError("give --size, or both --height and --width")
    try:
        counts = param_counts(
            size if size is not None else height, size if size is not None else width, delta,
            channels_in=channels_in, channels_out=channels_out, hidden=hidden,
        )
    except WaldoError as exc:
        raise WaldoUsageError(str(exc)) from None

    if as_json:
        click.echo(json.dumps(counts.to_dict()))
        return
    from rich.console import Console

    out = Console(file=sys.stdout)
    if out.is_terminal:
        from waldo_cli.report import print_param_report

        print_param_report(out, counts, explain=explain)
    else:
        from waldo_cli.report import plain_param_report

        click.echo(plain_param_report(counts, explain=explain))


@cli.command("demo")
@click.argument("outdir", metavar="OUTDIR")
@click.option("--seed", type=click.IntRange(min=0), default=None,
              help="Which puzzle: the same seed, size and crowd give the same files, byte for "
                   "byte. Default: a random seed, printed.")
@click.option("--size", "size_text", default="960x640", show_default=True, metavar="WxH",
              help="Width and height of the scene in pixels, at least 160x120.")
@click.option("--crowd", type=click.IntRange(min=0), default=200, show_default=True,
              help="How many people besides Waldo.")
def demo_command(outdir: str, seed: int | None, size_text: str, crowd: int) -> None:
    """Make a Where's Waldo puzzle in OUTDIR, and the command that solves it.

    Draws a busy seaside crowd with exactly one Waldo (red-and-white striped
    shirt, bobble hat, round glasses) among decoys that share some of his
    traits, and writes scene.png, waldo.png (Waldo cut out of the scene, the
    template) and answer.json (his box: x, y, width, height, and the seed,
    size and crowd). OUTDIR is created if needed; its parent must exist.
    Existing puzzle files in it are overwritten.
    """
    import secrets
    import shlex
    from pathlib import Path

    from waldo_cli.demo import check_outdir, parse_size, render_puzzle, write_puzzle
    from waldo_cli.errors import WaldoError

    if seed is None:
        seed = secrets.randbelow(1_000_000)
    try:
        size = parse_size(size_text)
        check_outdir(outdir)
        puzzle = render_puzzle(seed, size=size, crowd=crowd)
        paths = write_puzzle(outdir, puzzle)
    except WaldoError as exc:
        raise WaldoUsageError(str(exc)) from None

    def shown(path: Path | str) -> str:
        return shlex.quote(str(path))

    width, height = size
    folder = Path(outdir)
    click.echo(f"waldo demo: a {width}x{height} scene, a crowd of {crowd} and one Waldo, "
               f"seed {seed}")
    for label, key in (("scene", "scene"), ("template", "template"), ("answer", "answer")):
        click.echo(f"  {label:<9} {paths[key]}")
    click.echo(f"same puzzle again: waldo demo {shown(outdir)} --seed {seed} "
               f"--size {width}x{height} --crowd {crowd}")
    find = f"waldo find {shown(paths['scene'])} {shown(paths['template'])}"
    if any("--overlay" in param.opts for param in find_command.params):
        find += f" --overlay {shown(folder / 'found.png')}"
    click.echo(f"find him: {find}")


@cli.command("conv")
@click.argument("image_path", metavar="IMAGE")
@click.option("--kernel", "kernel_spec", required=True, metavar="NAME|FILE.npy",
              help="The filter V[a, b, c, d]: sobel-x, sobel-y, sobel (both), laplace, "
                   "gauss:σ, box:k (k odd), or a .npy file of shape (h, w), (h, w, C) or "
                   "(h, w, C, D), h and w odd. Names and (h, w) files act per channel "
                   "(depthwise): output channel d filters input channel d only, so D = C "
                   "(2·C for sobel).")
@click.option("--out", "out_path", required=True, metavar="PATH",
              help="Where H goes: NAME.npy for one float32 (H, W, D) array, or a picture name "
                   "(.png, .tif, ...) for one 8-bit grey picture per output channel, "
                   "NAME-0.png, NAME-1.png, ... (just NAME.png when D = 1).")
@click.option("--delta", type=click.IntRange(min=0), default=None, metavar="Δ",
              help="Require a (2Δ+1)×(2Δ+1) kernel (a usage error otherwise). For gauss:σ it "
                   "sets the size instead of 2·ceil(3σ)+1.")
@click.option("--pad", type=click.Choice(["zero", "reflect", "edge", "none"]), default="zero",
              show_default=True,
              help="Extend the image past its border with zeros, a mirror image, or the edge "
                   "pixels, so H has the image's height and width (H[i, j] from the window "
                   "centred on pixel (i, j)); none keeps only the positions where the whole "
                   "kernel fits inside the image: (H-h+1)×(W-w+1).")
@click.option("--convolve", is_flag=True,
              help="Flip V in both spatial axes: the mathematical convolution instead of the "
                   "cross-correlation a CNN layer computes.")
@click.option("--grey", "--gray", "grey", is_flag=True,
              help="Convert the image to grey (ITU-R 601 luma) first, so C = 1.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON document describing the layer and its outputs instead of "
                   "the table.")
def conv_command(image_path: str, kernel_spec: str, out_path: str, delta: int | None, pad: str,
                 convolve: bool, grey: bool, as_json: bool) -> None:
    """Apply one convolutional layer to IMAGE and write its hidden representation H.

    \b
    H[i, j, d] = Σ_a Σ_b Σ_c V[a, b, c, d] X[i+a, j+b, c],  |a|, |b| ≤ Δ

    X is the image (C channels, 0–255), V the --kernel with D output
    channels. This is the engine of waldo find, used as a layer: each H[:, :, d]
    is the raw ccorr score map of V[:, :, :, d] over X.

    Pictures map each channel to 0–255 on its own: kernels with a negative
    weight (sobel, laplace) symmetrically, 0 → 128 and ±M → 255/1 with
    M = max |H| (read back as H = (p − 128)·M/127); the others from min
    (0) to max (255) (H = min + p·(max − min)/255). stdout gets one
    tab-separated line per channel (channel, file, min, max, mean, mapping),
    so the values can be recovered; a .npy keeps them exactly. Outputs are
    checked before any work and written atomically. IMAGE '-' reads stdin.
    """  # noqa: D301 - the backspace tells Click to keep the formula line as it is
    import json
    import time

    from waldo_cli import jit
    from waldo_cli.conv import (
        apply_layer,
        channel_mappings,
        check_outputs,
        is_depthwise,
        kernel_delta,
        make_kernel,
        write_features,
    )
    from waldo_cli.errors import WaldoError
    from waldo_cli.io import read_image, to_grey

    protect = (image_path, *((kernel_spec,) if kernel_spec.lower().endswith(".npy") else ()))
    try:
        check_outputs(out_path, 1, protect)  # the name itself, before reading anything
        name, data = _source(image_path)
        pixels = read_image(data, name=name).pixels
        if grey and pixels.shape[2] == 3:
            pixels = to_grey(pixels)
        kernel = make_kernel(kernel_spec, pixels.shape[2], delta=delta)
        check_outputs(out_path, kernel.shape[3], protect)
        jit.skip_extension_scan()
        started = time.perf_counter()
        features = apply_layer(pixels, kernel, pad=pad, convolve=convolve)
        seconds = time.perf_counter() - started
        summaries = write_features(features, out_path, channel_mappings(kernel),
                                   protect=protect)
    except WaldoError as exc:
        raise WaldoUsageError(str(exc)) from None

    (height, width, channels), (h, w, _, outputs) = pixels.shape, kernel.shape
    if as_json:
        click.echo(json.dumps({
            "image": image_path, "image_size": [width, height], "channels_in": channels,
            "grey": grey, "kernel": kernel_spec, "kernel_shape": [h, w, channels, outputs],
            "depthwise": is_depthwise(kernel), "delta": kernel_delta(kernel), "pad": pad,
            "convolve": convolve, "parameters": h * w * channels * outputs,
            "output_size": [features.shape[1], features.shape[0]], "channels_out": outputs,
            "outputs": list(dict.fromkeys(s.file for s in summaries)),
            "channels": [s.to_dict() for s in summaries], "seconds": round(seconds, 6),
        }))
        return
    click.echo("channel\tfile\tmin\tmax\tmean\tmapping")
    for s in summaries:
        click.echo(f"{s.channel}\t{s.file}\t{s.minimum:.6g}\t{s.maximum:.6g}\t{s.mean:.6g}\t"
                   f"{s.mapping or 'none'}")
    click.echo(f"waldo conv: {width}×{height}×{channels} → {features.shape[1]}×"
               f"{features.shape[0]}×{outputs} with {kernel_spec} (V {h}×{w}×{channels}×"
               f"{outputs}, {h * w * channels * outputs} weights), pad {pad}, in "
               f"{seconds:.3f} s", err=True)
