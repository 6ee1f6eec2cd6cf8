"""``waldo find``: a template in one image, or in any number of them (batch mode)."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from waldo_cli.cli import EXIT_ERROR, EXIT_MATCH, EXIT_NO_MATCH, WaldoUsageError, usage_error
from waldo_cli.cli.options import (
    DIRECTORY,
    FILE,
    FiniteFloat,
    MethodName,
    OptionalValueCommand,
    OptionalValueOption,
    Region,
    TopK,
    convolve_option,
    json_option,
)
from waldo_cli.cli.terminal import (
    Output,
    compile_notice,
    image_source,
    progress_bar,
    stderr_console,
    stdout_console,
)
from waldo_cli.methods import DEFAULT_METHOD

if TYPE_CHECKING:  # rich is imported only where a terminal may get a table
    from rich.console import Console


@click.command("find", cls=OptionalValueCommand)
# TEMPLATE may be a filter learned by `waldo learn` (a .npz file)
@click.argument("paths", nargs=-1, type=FILE, metavar="IMAGE TEMPLATE | -t TEMPLATE [IMAGE]...")
@click.option(
    "-t",
    "--template",
    "template_paths",
    type=FILE,
    metavar="TEMPLATE",
    multiple=True,
    help="Search for TEMPLATE in every image given: then every argument is an image (batch mode). "
    "Give it several times for several templates (each image is read and prepared once for "
    "all), or name a folder for its image files, sorted by name. With one image, a terminal "
    "shows one table with a template column.",
)
@click.option(
    "--files-from",
    type=FILE,
    metavar="FILE",
    default=None,
    help="Also read image paths from FILE, one per line ('-' for standard input), "
    "as tar -T does. Needs -t.",
)
@click.option(
    "-0",
    "--null",
    is_flag=True,
    help="The --files-from list is NUL-separated, as find -print0 writes it.",
)
@click.option(
    "-m",
    "--method",
    type=MethodName(),
    default=DEFAULT_METHOD,
    show_default=True,
    help="How windows are scored (OpenCV's TM_* methods). A learned filter is scored by "
    "its own method, learned.",
)
@click.option(
    "--mask",
    "mask_path",
    type=FILE,
    metavar="PATH",
    default=None,
    help="Weights for the template's pixels, an image of its size (black = ignore, "
    "white = count fully). Default: the template's alpha channel, if it has one.",
)
@click.option("--no-mask", is_flag=True, help="Ignore the template's alpha channel.")
@click.option(
    "-k",
    "--top-k",
    type=TopK(),
    default=1,
    show_default=True,
    help="Report up to this many matches per image (and template), best first; 'all' for "
    "every match that passes the threshold.",
)
@click.option(
    "--all",
    "all_matches",
    is_flag=True,
    help="Report every match that passes the threshold (-k all).",
)
@click.option(
    "--threshold",
    type=FiniteFloat(),
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
    "included) or 0.8,1.25; the template's own size is always searched too. At most 1000 "
    "values, every one finite; sizes larger than the image are skipped. Each match "
    "reports its scale.",
)
@click.option(
    "--rotations",
    default=None,
    metavar="START:STOP:STEP|LIST",
    help="Also search the template turned by these angles in degrees, counter-"
    "clockwise, e.g. 90,180,270 (exact) or -30:30:5 (the corners a turn adds "
    "are masked out); the upright template is always searched too, and angles are "
    "taken modulo 360 (0:360:90 searches 0° once); at most 1000 values. Each match "
    "reports its angle.",
)
@click.option(
    "--flip",
    is_flag=True,
    help="Also search every copy mirrored left to right; matches report flip.",
)
@click.option(
    "--region",
    type=Region(),
    default=None,
    help="Search only windows inside this rectangle of the image: its top-left corner, "
    "width and height in pixels. Matches and pictures stay in the whole image's "
    "coordinates; with --pad, windows may hang over the image's edge where the region "
    "reaches it.",
)
@click.option(
    "--grey",
    "--gray",
    "grey",
    is_flag=True,
    help="Match in luminance only (ITU-R 601 luma, as conv --grey): shape over colour.",
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
    help="Print nothing, not even errors about input files; only the exit status tells "
    "(0 found, 1 not found, 2 error). Stops at the first match. Errors in the command "
    "line itself are still printed.",
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
    help="Images searched at once in batch mode (with --dask local: worker processes). "
    "Default: all cores.",
)
@click.option(
    "--dask",
    metavar="ADDRESS",
    default=None,
    help="Search on a Dask cluster: a scheduler's address (tcp://host:8786), or 'local' "
    "for --jobs worker processes on this machine. Workers read the paths (or fsspec URLs: "
    "s3://, gs://, file://) themselves. Needs pip install 'waldo-cli[dask]'.",
)
@click.option(
    "--unordered",
    is_flag=True,
    help="With --dask: write each record as soon as its image is done, not in input order.",
)
@click.option(
    "--heatmap",
    "heatmap_path",
    type=FILE,
    metavar="PATH",
    default=None,
    help="Write the score map as a picture on the image's pixel grid (each score "
    "at its window's centre; best = bright end; grey border = no window centre).",
)
@click.option(
    "--overlay",
    "overlay_path",
    type=FILE,
    metavar="PATH",
    default=None,
    help="Write the image with a box, rank and score for every match. The format "
    "follows the extension (.png, .jpg, .webp, .tif, .bmp, .gif).",
)
@click.option(
    "--scores",
    "scores_path",
    type=FILE,
    metavar="PATH.npy",
    default=None,
    help="Write the raw scores as a float32 .npy array on the image's pixel grid, as the "
    "heatmap draws them (each at its window's centre; NaN where no window is).",
)
@click.option(
    "--heatmap-dir",
    type=DIRECTORY,
    metavar="DIR",
    default=None,
    help="Write one heatmap per image into DIR, named after the image (.png).",
)
@click.option(
    "--overlay-dir",
    type=DIRECTORY,
    metavar="DIR",
    default=None,
    help="Write one overlay per image into DIR, named after the image (.png).",
)
@click.option(
    "--crops",
    "crops_dir",
    type=DIRECTORY,
    metavar="DIR",
    default=None,
    help="Write each match's window as a PNG into DIR: IMAGE-RANK.png "
    "(IMAGE-TEMPLATE-RANK.png with several templates).",
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
    cls=OptionalValueOption,
    type=click.Choice(["overlay", "heatmap"]),
    is_flag=False,
    flag_value="overlay",
    default=None,
    help="On a terminal, draw the overlay (or the heatmap: --show=heatmap, the value "
    "after '=') with coloured half blocks above the table. Does nothing off a "
    "terminal or with --json.",
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
    help="Threads for the search. Default: the cores this process may use, or "
    "NUMBA_NUM_THREADS if set (which only sets this default). More threads than cores "
    "only wait for each other (a note says so).",
)
def find_command(**kwargs: Any) -> int:
    """Find a template inside images and report the best matches.

    \b
    waldo find IMAGE TEMPLATE            one image
    waldo find -t TEMPLATE IMAGE...      any number of images (batch mode)
    waldo find IMAGE -t A -t B           several templates (or -t FOLDER)
    waldo find -t T --files-from FILE    image paths from FILE, '-' for stdin

    Scores every window of each image against the template, keeps the best
    ones that pass the threshold and are MIN-DISTANCE apart, and prints them:
    a table on a terminal, tab-separated text in a pipe (the timing line then
    goes to stderr), JSON with --json, JSON Lines with --jsonl, CSV with
    --csv. x and y are the top-left corner of a match, in pixels. An image
    path of '-' reads the image from standard input. A grey file matched with
    a colour one is matched in grey.

    TEMPLATE may be a filter learned by `waldo learn` (FILTER.npz): it is
    scored by method "learned", its calibrated "waldoness" (about 1 for a
    typical example, 0.5 the default threshold), at the scales it was
    learned for unless --scales says otherwise; it takes no mask.

    In batch mode the templates are loaded once, images are searched JOBS at a
    time, results come out in the order the images were given, each as soon
    as it and those before it are done, and an image that cannot be searched
    gets an error record (or a line on stderr) while the batch goes on.

    Exit status, as grep: 2 if any image failed (or bad usage), otherwise 0 if
    any image had a match, otherwise 1. With -q a match gives 0 even if
    another image failed. Ctrl-C stops with 130; finished results are kept.
    """  # noqa: D301 - the backspace tells Click to keep those three lines as they are
    args = FindArgs(**kwargs)
    _check_usage(args)
    images, templates = _inputs(args)
    scales, angles = _variants(args)
    pictures = _check_pictures(args, images, templates)
    searcher = _load_searcher(args, templates, scales, angles)
    if args.single and not (args.as_jsonl or args.as_csv):
        return _find_one(args, searcher, images[0], pictures)
    if _one_table(args, images, templates):
        return _find_one(args, searcher, images[0], pictures)
    return _find_many(args, searcher, images, pictures)


def _one_table(args: FindArgs, images: list[str], templates: list[str]) -> bool:
    """``waldo find IMAGE -t A -t B`` on a terminal: one table with a template column.

    Only for a person at a terminal: in a pipe, and with a format flag, it
    is batch output (TSV rows with a template column, a --json list).
    """
    if len(images) != 1 or len(templates) < 2 or args.files_from is not None or args.quiet:
        return False
    if args.as_json or args.as_jsonl or args.as_csv:
        return False
    return bool(stdout_console().is_terminal)


@dataclass(frozen=True)
class FindArgs:
    """The parameters of ``waldo find`` as Click parsed them, one field each, same names."""

    paths: tuple[str, ...]
    template_paths: tuple[str, ...]
    files_from: str | None
    null: bool
    method: str
    mask_path: str | None
    no_mask: bool
    top_k: int | None
    all_matches: bool
    threshold: float | None
    no_threshold: bool
    min_distance: int | None
    pad: str
    convolve: bool
    scales: str | None
    rotations: str | None
    flip: bool
    region: tuple[int, int, int, int] | None
    grey: bool
    subpixel: bool
    as_json: bool
    as_jsonl: bool
    as_csv: bool
    quiet: bool
    fail_fast: bool
    jobs: int | None
    dask: str | None
    unordered: bool
    heatmap_path: str | None
    overlay_path: str | None
    scores_path: str | None
    heatmap_dir: str | None
    overlay_dir: str | None
    crops_dir: str | None
    colormap: str
    no_legend: bool
    show: str | None
    engine: str
    threads: int | None

    @property
    def single(self) -> bool:
        """``waldo find IMAGE TEMPLATE``: no -t, so the last argument is the template."""
        return not self.template_paths

    @property
    def count(self) -> int | None:
        """How many matches per template: -k, or None for every one (-k all, --all)."""
        return None if self.all_matches else self.top_k

    @property
    def limit(self) -> float | None:
        """The threshold scores must pass: --threshold, else the method's default, or none."""
        from waldo_cli.methods import default_threshold

        if self.no_threshold:
            return None
        return self.threshold if self.threshold is not None else default_threshold(self.method)


def _check_usage(args: FindArgs) -> None:
    """Refuse options that contradict each other."""
    formats = [
        name
        for name, on in (
            ("--json", args.as_json),
            ("--jsonl", args.as_jsonl),
            ("--csv", args.as_csv),
        )
        if on
    ]
    if len(formats) > 1:
        raise usage_error(f"choose one output format, not {' and '.join(formats)}")
    if args.no_threshold and args.threshold is not None:
        raise usage_error("give --threshold or --no-threshold, not both")
    if args.no_mask and args.mask_path is not None:
        raise usage_error("give --mask or --no-mask, not both")
    if args.null and args.files_from is None:
        raise usage_error("-0/--null says how --files-from separates paths: give --files-from")
    if args.mask_path is not None and len(args.template_paths) > 1:
        raise usage_error(
            "--mask needs exactly one template (their own alpha channels still count)"
        )
    folders = [d for d in (args.heatmap_dir, args.overlay_dir, args.crops_dir) if d is not None]
    if len({os.path.abspath(d) for d in folders}) < len(folders):
        raise usage_error("give --heatmap-dir, --overlay-dir and --crops different folders")
    if args.dask is not None or args.unordered:
        from waldo_cli.cli.cluster import check_dask

        check_dask(args)


def _options_for(args: FindArgs, loaded: Any, options: Any) -> Any:
    """The search options for one template: a learned filter's own method and threshold."""
    from dataclasses import replace

    filtered = _check_filter_usage(args, loaded)
    if filtered is args:
        return options
    return replace(
        options, method=filtered.method, threshold=filtered.limit, own_scales=args.scales is None
    )


def _check_filter_usage(args: FindArgs, loaded: Any) -> FindArgs:
    """With a learned filter: its own method (an explicit other one is refused), no mask."""
    from dataclasses import replace

    from waldo_cli.methods import LEARNED
    from waldo_cli.templates import LearnedFilter

    if not isinstance(loaded, LearnedFilter):
        return args
    ctx = click.get_current_context(silent=True)
    given = (
        ctx is not None
        and ctx.get_parameter_source("method") is not click.core.ParameterSource.DEFAULT
    )
    if given and args.method != LEARNED.name:
        raise usage_error(
            f"{loaded.name} is a learned filter, scored by its own method: leave out --method"
        )
    if args.mask_path is not None:
        raise usage_error(f"{loaded.name} is a learned filter: it takes no --mask")
    return replace(args, method=LEARNED.name)


def _inputs(args: FindArgs) -> tuple[list[str], list[str]]:
    """The images to search and the templates, from the arguments and --files-from."""
    if args.single:
        if args.files_from is not None:
            raise usage_error("--files-from needs the template as -t/--template")
        if len(args.paths) != 2:
            raise usage_error("give IMAGE and TEMPLATE, or -t TEMPLATE and any number of images")
        images, templates = [args.paths[0]], [args.paths[1]]
    else:
        images = list(args.paths)
        templates = _template_list(args)
        if args.files_from is not None:
            images += _read_file_list(args.files_from, args.quiet, args.null)
        if not images:
            raise usage_error("no images to search: give them as arguments or with --files-from")
    stdin_users = (
        images.count("-")
        + templates.count("-")
        + (args.files_from == "-")
        + (args.mask_path == "-")
    )
    if stdin_users > 1:
        raise usage_error("standard input ('-') can be read only once")
    pictures = (args.heatmap_path, args.overlay_path, args.show, args.scores_path)
    if pictures != (None, None, None, None) and len(images) != 1:
        raise usage_error("--heatmap, --overlay, --scores and --show need exactly one image")
    return images, templates


def _template_list(args: FindArgs) -> list[str]:
    """The templates of -t, each folder replaced by its image files, each file once.

    A folder's files are taken in name order; files whose extension names no
    image format (nor ``.npz``, a learned filter) are skipped, each with a
    note (not with -q); hidden files
    and subfolders are left out. A folder with no image file, or a file
    given twice (by any name), is said: the first an error, the second a
    note, and the file is searched once.
    """
    from waldo_cli.io import image_extensions

    known = image_extensions() | {".npz"}  # and filters learned by waldo learn
    templates: list[str] = []
    seen: dict[str, str] = {}
    for given in args.template_paths:
        if given != "-" and os.path.isdir(given):
            found = []
            for entry in sorted(os.scandir(given), key=lambda e: e.name):
                if entry.name.startswith(".") or entry.is_dir():
                    continue
                if os.path.splitext(entry.name)[1].lower() not in known:
                    _note(args, f"{entry.path}: not an image file; skipped")
                    continue
                found.append(entry.path)
            if not found:
                raise _input_error(args, f"{given}: the folder holds no image files")
        else:
            found = [given]
        for path in found:
            key = "-" if path == "-" else os.path.realpath(path)
            if key in seen:
                _note(args, f"{path}: the same template as {seen[key]}; searched once")
                continue
            seen[key] = path
            templates.append(path)
    return templates


def _note(args: FindArgs, message: str) -> None:
    """One ``waldo: note:`` line on stderr, unless -q."""
    if not args.quiet:
        click.echo(f"waldo: note: {message}", err=True)


def _read_file_list(files_from: str, quiet: bool = False, null: bool = False) -> list[str]:
    """Image paths from a file (or stdin), as ``io.read_file_list`` reads them.

    One per line, split on newlines only (one trailing carriage return and a
    byte-order mark dropped; blank lines skipped), or with ``null`` (-0)
    separated by NUL bytes; with bounded lines and total; names that are not
    UTF-8 still name their files.
    """
    from waldo_cli.errors import WaldoError
    from waldo_cli.io import read_file_list

    try:
        return read_file_list(files_from, null=null)
    except WaldoError as exc:
        if quiet:
            raise click.exceptions.Exit(EXIT_ERROR) from None
        raise WaldoUsageError(str(exc)) from None


def _variants(args: FindArgs) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The scales and the angles (degrees) to search the template at."""
    from waldo_cli.errors import WaldoError
    from waldo_cli.variants import parse_range

    try:
        scales = tuple(parse_range(args.scales, "--scales")) if args.scales else (1.0,)
        angles = tuple(parse_range(args.rotations, "--rotations")) if args.rotations else (0.0,)
    except WaldoError as exc:
        raise usage_error(str(exc)) from None
    if any(value <= 0 for value in scales):
        raise usage_error(f"--scales {args.scales!r}: every scale must be positive")
    # "also search": the template as it is comes first, then the other copies;
    # a turn by a multiple of 360° is the upright template again
    scales = (1.0, *dict.fromkeys(s for s in scales if s != 1.0))
    turns = {0.0: 0.0}
    for angle in angles:
        turns.setdefault(angle % 360.0, angle)
    return scales, tuple(turns.values())


def _check_pictures(args: FindArgs, images: list[str], templates: list[str]) -> Any:
    """Refuse bad picture paths and colormaps before any work is done; where pictures go."""
    from waldo_cli.cli.pictures import Pictures, unique_stems
    from waldo_cli.errors import OutputError, WaldoError
    from waldo_cli.io import check_output_path, check_output_paths

    folders = {
        "--heatmap-dir": args.heatmap_dir,
        "--overlay-dir": args.overlay_dir,
        "--crops": args.crops_dir,
    }
    image_stems: dict[str, str] = {}
    if args.heatmap_dir is not None or args.overlay_dir is not None or args.crops_dir:
        image_stems, notes = unique_stems(images)
        for note in notes:
            _note(args, note)
    template_stems, notes = unique_stems(templates)
    for note in notes:
        _note(args, note)
    # every input is protected, through links: the mask and the file list as much as the
    # images; and no two outputs may be one file
    inputs = (*images, *templates, args.mask_path, args.files_from)
    pictures = Pictures(
        templates=tuple(templates),
        heatmap=args.heatmap_path,
        overlay=args.overlay_path,
        scores=args.scores_path,
        heatmap_dir=args.heatmap_dir,
        overlay_dir=args.overlay_dir,
        crops_dir=args.crops_dir,
        colormap=args.colormap,
        legend=not args.no_legend,
        image_stems=image_stems,
        template_stems=template_stems,
    )
    try:
        given = pictures.fixed_paths()
        for path, picture in given:
            if not picture and not path.lower().endswith(".npy"):
                raise OutputError(
                    f"{path}: --scores writes a NumPy array; give a name ending in .npy"
                )
            check_output_path(path, inputs, image=picture)
        check_output_paths((path for path, _ in given), inputs, image=False)
        for option, folder in folders.items():
            if folder is not None:
                _make_folder(option, folder)
        if pictures.any:
            pictures.guard_inputs(inputs)
        if args.heatmap_path is not None or args.heatmap_dir is not None or args.show == "heatmap":
            from waldo_cli.render import colormap_table

            colormap_table(args.colormap)
    except WaldoError as exc:
        raise _input_error(args, str(exc)) from None
    return pictures


def _make_folder(option: str, folder: str) -> None:
    """An output folder: made if missing (its parent must exist), and writable."""
    from waldo_cli.errors import OutputError

    path = os.path.abspath(folder)
    if os.path.exists(path) and not os.path.isdir(path):
        raise OutputError(f"{folder}: {option} needs a folder, and this is a file")
    if not os.path.isdir(path):
        if not os.path.isdir(os.path.dirname(path)):
            raise OutputError(
                f"{folder}: the folder {os.path.dirname(folder) or '.'} does not exist"
            )
        try:
            os.mkdir(path)
        except OSError as exc:
            raise OutputError(
                f"{folder}: cannot create the folder ({exc.strerror or exc})"
            ) from None
    if not os.access(path, os.W_OK):
        raise OutputError(f"{folder}: the folder is not writable")


def _load_searcher(
    args: FindArgs, templates: list[str], scales: tuple[float, ...], angles: tuple[float, ...]
) -> Any:
    """Set the engine up and load the templates (and a mask) once, ready to search.

    One of the three functions that call the search library (with ``_search``
    and ``_search_all``). A template under a normed method that has no
    defined score (``Searcher.degenerate``) is refused here, naming it.
    """
    from waldo_cli import jit
    from waldo_cli.errors import WaldoError
    from waldo_cli.search import MultiSearcher, Searcher, SearchOptions

    options = SearchOptions(
        method=args.method,
        top_k=args.count,
        threshold=args.limit,
        min_distance=args.min_distance,
        engine=args.engine,
        subpixel=args.subpixel,
        pad=args.pad,
        convolve=args.convolve,
        scales=scales,
        angles=angles,
        flip=args.flip,
        threads=args.threads,
        region=args.region,
        grey=args.grey,
    )
    searchers = []
    try:
        jit.skip_extension_scan(only_waldo=True)
        for template in templates:
            loaded, mask, source = _read_template(args, template)
            searcher = Searcher(
                loaded, _options_for(args, loaded, options), mask=mask, mask_source=source
            )
            reason = searcher.degenerate()
            if reason is not None:
                raise WaldoError(
                    f"{template}: the template {reason}, so {args.method} gives every window the "
                    "same score and finds nothing; try -m sqdiff_normed"
                )
            searchers.append(searcher)
    except WaldoError as exc:
        raise _input_error(args, str(exc)) from None
    _note_threads(args)
    return searchers[0] if len(searchers) == 1 else MultiSearcher(searchers)


def _input_error(args: FindArgs, message: str) -> click.ClickException | click.exceptions.Exit:
    """What a bad input file ends the command with: one line and exit 2, or with -q silence.

    -q is grep's -q and -s together: nothing on stdout or stderr, the exit
    status alone tells; errors in the command line itself still print.
    """
    if args.quiet:
        return click.exceptions.Exit(EXIT_ERROR)
    return WaldoUsageError(message)


def _note_threads(args: FindArgs) -> None:
    """Say so when --threads asks for more threads than the cores the process may use."""
    from waldo_cli.pool import usable_cores

    cores = usable_cores()
    if args.threads is not None and args.threads > cores and not args.quiet:
        click.echo(
            f"waldo: note: --threads {args.threads} is more than the {cores} core"
            f"{'s' if cores != 1 else ''} this process may use; the extra threads only wait",
            err=True,
        )


def _image_error(exc: Exception, image: str, single: bool) -> str:
    """An error about one image, as one line that names the image.

    In ``waldo find IMAGE TEMPLATE``, a template larger than an image that
    would fit inside it suggests the two were given the wrong way round; so
    does a learned filter (.npz) given as the image.
    """
    from waldo_cli.errors import ImageReadError, TemplateTooLargeError

    if isinstance(exc, ImageReadError):  # names its file already
        if image.lower().endswith(".npz"):
            return f"{exc} (a learned filter goes where a template does: waldo find IMAGE {image})"
        return str(exc)
    message = f"{image}: {exc}"
    if single and isinstance(exc, TemplateTooLargeError):
        (th, tw), (ih, iw) = exc.template_shape, exc.image_shape
        if ih <= th and iw <= tw:
            message += " (swapped? the image comes first: waldo find IMAGE TEMPLATE)"
    return message


def _read_template(args: FindArgs, template: str) -> tuple[Any, Any, str | None]:
    """The template, its mask (--mask, else its alpha unless --no-mask) and where that came from.

    Raises
    ------
    WaldoError
        The template or the mask cannot be read, or they differ in size.
    """
    from waldo_cli.errors import ShapeError
    from waldo_cli.filters import is_filter_file, load_filter
    from waldo_cli.io import read_image, read_source

    # a stream (stdin, <(...), a FIFO) is read once, here: looking at its first
    # bytes for a filter must not consume what the image reader needs
    name, data = template, read_source(template)
    if is_filter_file(data):
        return load_filter(data, name=name), None, None
    loaded = read_image(data, name=name)
    if args.mask_path is not None:
        mask_name, mask_data = image_source(args.mask_path)
        mask = read_image(mask_data, name=mask_name).pixels / 255.0
        if mask.shape[:2] != loaded.pixels.shape[:2]:
            raise ShapeError(
                f"{args.mask_path}: the mask is {mask.shape[1]}×{mask.shape[0]}, "
                f"the template {loaded.width}×{loaded.height}"
            )
        return loaded, mask, args.mask_path
    if loaded.alpha is not None and not args.no_mask:
        return loaded, loaded.alpha, "alpha"
    return loaded, None, None


def _search(searcher: Any, loaded: Any, quiet: bool) -> list[Any]:
    """Search one loaded image: a SearchResult per template.

    Says so on stderr if the search waits for the compiler (not with -q).
    """
    with compile_notice(quiet):
        return list(searcher.search_iter(loaded))


def _search_all(
    searcher: Any, images: list[str], jobs: int | None, pictures: Any = None
) -> Iterator[Any]:
    """Search every image, JOBS at a time; one result per image, in input order.

    With pictures to write per image (--heatmap-dir, --overlay-dir,
    --crops), each search writes its own, where it runs.
    """
    from waldo_cli.batch import run_batch
    from waldo_cli.cli.pictures import PictureSearcher
    from waldo_cli.pool import default_threads

    if pictures is not None and pictures.any:
        searcher = PictureSearcher(searcher, pictures)
    sources = (image_source(path) for path in images)
    return run_batch(searcher, sources, jobs or default_threads())


def _search_with_pictures(
    args: FindArgs, searcher: Any, image: str, pictures: Any, fmt: str
) -> Iterator[Any]:
    """One image in batch form (-t, --jsonl, --csv) with its pictures written: its one result.

    The preview (--show) is drawn only where stdout is a terminal that gets
    the tab-separated rows, never into JSON or CSV data.
    """
    from waldo_cli.errors import WaldoError
    from waldo_cli.io import read_image
    from waldo_cli.results import ImageResult

    name, data = image_source(image)
    out = stdout_console() if args.show is not None and fmt == "tsv" else None
    preview = args.show if out is not None and out.is_terminal else None
    try:
        loaded = read_image(data, name=name)
        results = _search(searcher, loaded, args.quiet)
        _write_pictures(args, pictures, loaded, results, preview, out)
    except WaldoError as exc:
        yield ImageResult(0, name, error=_image_error(exc, name, single=False))
        return
    reports = [result.report for result in results]
    yield ImageResult(0, name, report=reports[0], others=tuple(reports[1:]))


def _find_one(args: FindArgs, searcher: Any, image: str, pictures: Any) -> int:
    """``waldo find IMAGE TEMPLATE`` (or ``IMAGE -t A -t B`` on a terminal): one search.

    Errors are usage errors: one line, exit 2.
    """
    from waldo_cli.errors import WaldoError
    from waldo_cli.io import image_size, read_image, read_source

    # rich only for what a terminal may get (its import is felt in shell loops)
    out = None if args.as_json or args.quiet else stdout_console()
    try:
        name, data = image_source(image)
        if isinstance(data, str):
            # a FIFO or device read once; a file's header checked before decoding
            data = read_source(data)
            if isinstance(data, str):
                searcher.check_fits(*image_size(data, name))
        loaded = read_image(data, name=name)
        results = _search(searcher, loaded, args.quiet)
        # the terminal preview only where it cannot mix with data or silence
        preview = args.show if out is not None and out.is_terminal else None
        if pictures.any or preview is not None:
            _write_pictures(args, pictures, loaded, results, preview, out)
    except WaldoError as exc:
        if args.quiet:
            return EXIT_ERROR
        raise WaldoUsageError(_image_error(exc, image, single=args.single)) from None
    reports = [result.report for result in results]
    if not args.quiet:
        if len(reports) == 1:
            _print_report(reports[0], out)
        elif out is not None:  # several templates: only on a terminal (_one_table)
            from waldo_cli.report import print_tables

            print_tables(out, reports)
    return EXIT_MATCH if any(report.matches for report in reports) else EXIT_NO_MATCH


def _print_report(report: Any, out: Console | None) -> None:
    """JSON without a console (--json), a table on a terminal, else TSV and a summary line."""
    from waldo_cli.report import plain_table, print_table, summary_line, write_json

    if out is None:
        write_json(sys.stdout, report)
    elif out.is_terminal:
        print_table(out, report)
    else:
        click.echo(plain_table(report))
        click.echo(summary_line(report), err=True)


def _write_pictures(
    args: FindArgs,
    pictures: Any,
    loaded: Any,
    results: list[Any],
    show: str | None,
    console: Console | None,
) -> None:
    """Write the files of one image (``cli.pictures``), and draw the --show preview."""
    from waldo_cli.render import render_heatmap, render_preview
    from waldo_cli.report import preview_size, print_preview

    for index, result in enumerate(results):
        pictures.write_template(loaded, index, result)
    pictures.write_overlay(loaded, results[0].pixels, [r.report for r in results])
    if show is None or console is None:
        return
    first = results[0]
    pixels = first.pixels
    if show == "overlay":
        matches = [m for result in results for m in result.report.matches]
        picture = render_preview(pixels, matches, *preview_size(console))
    else:  # the first template's map
        picture = render_heatmap(
            first.scores.on_grid(pixels.shape[:2]),
            first.report.method,
            pixels.shape[:2],
            (1, 1),
            colormap=args.colormap,
            legend=not args.no_legend,
        )
    print_preview(console, picture)


def _find_many(args: FindArgs, searcher: Any, images: list[str], pictures: Any) -> int:
    """Batch mode: stream one record per image (a record per template), in input order."""
    from waldo_cli.report import WRITERS, batch_summary, best_note

    fmt = "json" if args.as_json else "jsonl" if args.as_jsonl else "csv" if args.as_csv else "tsv"
    writer = WRITERS[fmt](single=args.single, templates=len(pictures.templates))

    started = time.perf_counter()
    err = stderr_console()
    show_progress = len(images) > 1 and err.is_terminal and not args.quiet
    progress = progress_bar(err) if show_progress else None
    done = matched = failed = 0
    status = None
    with (
        Output() as out,
        progress if progress is not None else contextlib.nullcontext(),
        compile_notice(args.quiet, err if progress is not None else None),
    ):
        task = progress.add_task("find", total=len(images), rate="–") if progress else None
        one_image = (args.heatmap_path, args.overlay_path, args.scores_path, args.show)
        if one_image != (None, None, None, None):  # one image (checked up front)
            results = _search_with_pictures(args, searcher, images[0], pictures, fmt)
        elif args.dask is not None:  # connects now: an unreachable cluster prints no header
            from waldo_cli.cli.cluster import search_on_dask

            results = search_on_dask(args, searcher, images)
        else:
            results = _search_all(searcher, images, args.jobs, pictures)
        if not args.quiet:
            out.write(writer.header())
        for result in results:
            done += 1
            matched += result.matched
            failed += result.error is not None
            if progress is not None and task is not None:
                rate = done / max(time.perf_counter() - started, 1e-9)
                progress.update(task, advance=1, rate=f"{rate:.1f}")
            if args.quiet:
                if result.matched:
                    status = EXIT_MATCH
                    break
            elif result.error is not None:
                out.write(writer.error(result))
                if writer.errors_on_stderr:
                    click.echo(f"waldo: error: {result.error}", err=True)
            else:
                out.write(writer.record(result))
                # one image (IMAGE -t A -t B): say, for a person, where each template came
                # closest; with many, the JSON records say it
                for report in result.reports if len(images) == 1 else ():
                    note = best_note(report)
                    if note is not None:
                        click.echo(
                            f"waldo: no match for {report.template} in {report.image}: {note}",
                            err=True,
                        )
            if args.fail_fast and result.error is not None:
                break
        if not args.quiet:
            out.write(writer.end())
    if status is not None:
        return status
    if not args.quiet and not args.single:
        click.echo(batch_summary(done, matched, failed, time.perf_counter() - started), err=True)
    if failed:
        return EXIT_ERROR
    return EXIT_MATCH if matched else EXIT_NO_MATCH
