"""Results to text: rich tables for terminals, plain text for pipes, JSON for scripts."""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING, Any

from waldo_cli.results import FindReport, ImageResult, Match

if TYPE_CHECKING:  # rich is imported only where a terminal gets a table
    from rich.console import Console


def format_score(score: float, method: str | None = None) -> str:
    """A score as text (tables, TSV, CSV): one format per kind of method, six digits.

    Normed methods (scores on a fixed scale) with six decimals; raw methods,
    whose scores grow with brightness and template size, with six
    significant digits in scientific notation. Without a method: six
    significant digits, whichever notation is shorter.

    >>> format_score(1.0, "ccoeff_normed"), format_score(0.2741872370, "ccoeff_normed")
    ('1.000000', '0.274187')
    >>> format_score(71272800.0, "ccorr"), format_score(0.0, "sqdiff")
    ('7.12728e+07', '0.00000e+00')
    """
    if method is None:
        return f"{score:.6g}"
    from waldo_cli.methods import is_normed

    return f"{score:.6f}" if is_normed(method) else f"{score:.5e}"


def format_coordinate(value: float) -> str:
    """Pixel coordinates: integers as they are, sub-pixel ones with two decimals.

    >>> format_coordinate(12), format_coordinate(12.3456)
    ('12', '12.35')
    """
    return str(value) if isinstance(value, int) else f"{value:.2f}"


def write_json(console_file: Any, report: FindReport) -> None:
    """Write one JSON document and a newline."""
    console_file.write(json.dumps(report.to_dict()) + "\n")


def plain_table(report: FindReport) -> str:
    """Tab-separated rows with a header, for pipes (no colour, no box drawing).

    >>> from waldo_cli.peaks import Match
    >>> match = Match(1, 2, 2, 2, 3.0)
    >>> print(plain_table(FindReport("a", "b", "ccorr", (8, 6), (2, 2), [match], 0.5)))
    rank	x	y	width	height	score
    1	1	2	2	2	3.00000e+00
    """
    lines = ["rank\tx\ty\twidth\theight\tscore"]
    for rank, m in enumerate(report.matches, 1):
        lines.append(
            f"{rank}\t{format_coordinate(m.x)}\t{format_coordinate(m.y)}\t{m.width}\t"
            f"{m.height}\t{format_score(m.score, report.method)}"
        )
    return "\n".join(lines)


BATCH_COLUMNS = ("image", "rank", "x", "y", "width", "height", "score")
# CSV also carries each match's centre, its template and the corners of a
# turned or scaled one: after the batch columns, which stay where they were
CSV_COLUMNS = (*BATCH_COLUMNS, "cx", "cy", "template", "corners")


# columns that hold a file's name: escaped where the format cannot hold any name
_NAME_COLUMNS = frozenset({"image", "template"})


def batch_columns(fmt: str, templates: int = 1) -> tuple[str, ...]:
    """The columns of batch TSV (``tsv``) or CSV (``csv``) output.

    TSV keeps the columns it had (scripts cut them by position), and gains
    ``template`` at the end only when several templates are searched; CSV
    has every column always.

    >>> batch_columns("tsv"), batch_columns("tsv", templates=2)[-1]
    (('image', 'rank', 'x', 'y', 'width', 'height', 'score'), 'template')
    """
    if fmt == "csv":
        return CSV_COLUMNS
    return BATCH_COLUMNS + (("template",) if templates > 1 else ())


def batch_header(separator: str = "\t", columns: tuple[str, ...] = BATCH_COLUMNS) -> str:
    """The header line of batch text (tab-separated) or CSV output."""
    return separator.join(columns)


def format_centre(value: float) -> str:
    """A centre coordinate: up to two decimals, no trailing zeros (``79``, ``78.5``).

    >>> format_centre(79.0), format_centre(78.5), format_centre(134.23456)
    ('79', '78.5', '134.23')
    """
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _cell(column: str, result: ImageResult, report: FindReport, rank: int, m: Match) -> Any:
    if column == "image":
        return result.image
    if column == "rank":
        return rank
    if column in ("x", "y"):
        return format_coordinate(getattr(m, column))
    if column in ("width", "height"):
        return getattr(m, column)
    if column == "score":
        return format_score(m.score, report.method)
    if column in ("cx", "cy"):
        value = getattr(m, column)
        if value is None:  # a match from find_peaks alone
            value = m.x + m.width / 2 if column == "cx" else m.y + m.height / 2
        return format_centre(value)
    if column == "template":
        return m.template if m.template is not None else report.template
    if column == "corners":
        return "" if m.corners is None else " ".join(f"{v:g}" for c in m.corners for v in c)
    raise KeyError(column)


def batch_rows(
    result: ImageResult, columns: tuple[str, ...] = BATCH_COLUMNS
) -> list[tuple[Any, ...]]:
    """One row per match of one image, every template's in turn (none for an error).

    ``rank`` counts within each template's matches.

    >>> from waldo_cli.peaks import Match
    >>> r = FindReport("a.png", "t.png", "ccorr", (8, 6), (2, 2), [Match(1, 2, 2, 2, 3.0)], 0.5)
    >>> batch_rows(ImageResult(0, "a.png", report=r))
    [('a.png', 1, '1', '2', 2, 2, '3.00000e+00')]
    >>> batch_rows(ImageResult(0, "a.png", report=r), CSV_COLUMNS)[0][7:]
    ('2', '3', 't.png', '')
    """
    return [
        tuple(_cell(column, result, report, rank, m) for column in columns)
        for report in result.reports
        for rank, m in enumerate(report.matches, 1)
    ]


def tsv_lines(result: ImageResult, columns: tuple[str, ...] = BATCH_COLUMNS) -> str:
    r"""Tab-separated rows for one image, each ending in a newline.

    The image's name is one field whatever it holds: a tab, a newline, a
    backslash or a byte that is not UTF-8 is escaped (``names.tsv_field``).

    >>> from waldo_cli.results import Match
    >>> r = FindReport("a\tb.png", "t.png", "ccorr", (8, 6), (2, 2), [Match(1, 2, 2, 2, 3.0)], 0)
    >>> tsv_lines(ImageResult(0, "a\tb.png", report=r))
    'a\\tb.png\t1\t1\t2\t2\t2\t3.00000e+00\n'
    """
    from waldo_cli.names import tsv_field

    names = [column in _NAME_COLUMNS for column in columns]
    return "".join(
        "\t".join(tsv_field(str(v)) if name else str(v) for name, v in zip(names, row, strict=True))
        + "\n"
        for row in batch_rows(result, columns)
    )


def csv_lines(result: ImageResult, columns: tuple[str, ...] = BATCH_COLUMNS) -> str:
    """CSV rows for one image (RFC 4180 quoting); the header is ``batch_header(",", columns)``.

    >>> from waldo_cli.peaks import Match
    >>> r = FindReport("a,b.png", "t.png", "ccorr", (8, 6), (2, 2), [Match(1, 2, 2, 2, 3.0)], 0.1)
    >>> print(csv_lines(ImageResult(0, "a,b.png", report=r)), end="")
    "a,b.png",1,1,2,2,2,3.00000e+00
    """
    from waldo_cli.names import display_name

    buffer = io.StringIO()
    names = [column in _NAME_COLUMNS for column in columns]
    csv.writer(buffer, lineterminator="\n").writerows(
        [display_name(str(v)) if name else v for name, v in zip(names, row, strict=True)]
        for row in batch_rows(result, columns)
    )
    return buffer.getvalue()


def jsonl_line(result: ImageResult) -> str:
    r"""The JSON Lines records of one image (one per template), each with its newline.

    >>> jsonl_line(ImageResult(3, "gone.png", error="gone.png: no such file"))
    '{"image": "gone.png", "error": "gone.png: no such file"}\n'
    """
    return "".join(json.dumps(record) + "\n" for record in result.to_dicts())


class BatchWriter:
    """How one output format writes a batch: a header, one piece per image, an ending.

    Subclasses are registered in ``WRITERS`` under the format's name; a new
    output format is one more subclass there (and its flag in ``cli/find.py``).
    ``inline_errors``: an image that could not be searched gets a record in
    the output itself; ``errors_on_stderr``: the command also says so on
    stderr.
    """

    inline_errors = False
    errors_on_stderr = True

    def __init__(self, single: bool = False, templates: int = 1) -> None:
        self.single = single
        self.templates = templates

    def header(self) -> str:
        """What comes before the first record."""
        return ""

    def record(self, result: ImageResult) -> str:
        """One image's record (possibly several lines, possibly none)."""
        raise NotImplementedError

    def error(self, result: ImageResult) -> str:
        """What an image that could not be searched adds to the output."""
        return self.record(result) if self.inline_errors else ""

    def end(self) -> str:
        """What comes after the last record."""
        return ""


class TsvWriter(BatchWriter):
    """Tab-separated rows, one per match, under a header (the default in a pipe).

    >>> from waldo_cli.results import Match
    >>> r = FindReport("a.png", "t.png", "ccorr", (8, 6), (2, 2), [Match(1, 2, 2, 2, 3.0)], 0.5)
    >>> w = TsvWriter()
    >>> print(w.header() + w.record(ImageResult(0, "a.png", report=r)), end="")
    image	rank	x	y	width	height	score
    a.png	1	1	2	2	2	3.00000e+00
    """

    def header(self) -> str:
        """The column names."""
        return batch_header("\t", batch_columns("tsv", self.templates)) + "\n"

    def record(self, result: ImageResult) -> str:
        """One row per match."""
        return tsv_lines(result, batch_columns("tsv", self.templates))


class CsvWriter(TsvWriter):
    """CSV (RFC 4180 quoting): a header, then one row per match, with every column."""

    def header(self) -> str:
        """The column names."""
        return batch_header(",", CSV_COLUMNS) + "\n"

    def record(self, result: ImageResult) -> str:
        """One row per match."""
        return csv_lines(result, CSV_COLUMNS)


class JsonlWriter(BatchWriter):
    """One JSON object per image, as soon as it is done; errors are records, not stderr lines."""

    inline_errors = True
    errors_on_stderr = False

    def record(self, result: ImageResult) -> str:
        """The image's JSON Lines record."""
        return jsonl_line(result)


class JsonWriter(BatchWriter):
    r"""One JSON document at the end: a list of records (one record for a single image).

    >>> w = JsonWriter(single=True)
    >>> w.error(ImageResult(0, "gone.png", error="gone.png: no such file")), w.end()
    ('', '{"image": "gone.png", "error": "gone.png: no such file"}\n')
    """

    inline_errors = True

    def __init__(self, single: bool = False, templates: int = 1) -> None:
        super().__init__(single, templates)
        self._records: list[dict[str, Any]] = []

    def record(self, result: ImageResult) -> str:
        """Kept for the document at the end (one record per template)."""
        self._records.extend(result.to_dicts())
        return ""

    def end(self) -> str:
        """The document."""
        if self.single:
            return json.dumps(self._records[0]) + "\n" if self._records else ""
        return json.dumps(self._records) + "\n"


WRITERS: dict[str, type[BatchWriter]] = {
    "tsv": TsvWriter,
    "csv": CsvWriter,
    "jsonl": JsonlWriter,
    "json": JsonWriter,
}


def batch_summary(images: int, matched: int, failed: int, seconds: float) -> str:
    """The closing line of a batch.

    >>> batch_summary(50, 40, 3, 2.5)
    '50 images: 40 with a match, 7 without, 3 errors, in 2.50 s'
    """
    without = images - matched - failed
    return (
        f"{images} image{'s' if images != 1 else ''}: {matched} with a match, "
        f"{without} without, {failed} error{'s' if failed != 1 else ''}, in {seconds:.2f} s"
    )


def best_note(report: FindReport) -> str | None:
    """Where the best score was, when no match passed the threshold (else None).

    >>> r = FindReport("a.png", "t.png", "ccoeff_normed", (8, 6), (2, 2), [], 0.0, 0.5,
    ...                {"best": {"x": 120, "y": 88, "score": 0.41}})
    >>> best_note(r)
    'best 0.410000 at (120, 88), below the threshold 0.5'
    """
    from waldo_cli.methods import lower_is_better

    best = report.extra.get("best")
    if report.matches or best is None or report.threshold is None:
        return None
    side = "above" if lower_is_better(report.method) else "below"
    return (
        f"best {format_score(best['score'], report.method)} at ({best['x']}, {best['y']}), "
        f"{side} the threshold {report.threshold:g}"
    )


def summary_line(report: FindReport) -> str:
    """One line: how many matches, with which method, in how long (and, for none, the best).

    >>> r = FindReport("a.png", "t.png", "ccoeff_normed", (8, 6), (2, 2), [], 0.0, 0.5,
    ...                {"best": {"x": 120, "y": 88, "score": 0.41}})
    >>> summary_line(r)  # doctest: +NORMALIZE_WHITESPACE
    'no match for t.png in a.png with ccoeff_normed (threshold 0.5), searched in 0.000 s;
     best 0.410000 at (120, 88), below the threshold 0.5'
    """
    count = len(report.matches)
    found = f"{count} match{'es' if count != 1 else ''}" if count else "no match"
    limit = "" if report.threshold is None else f" (threshold {report.threshold:g})"
    note = best_note(report)
    return (
        f"{found} for {report.template} in {report.image} with {report.method}{limit}, "
        f"searched in {report.seconds:.3f} s" + ("" if note is None else f"; {note}")
    )


def print_table(console: Console, report: FindReport) -> None:
    """A rich table of the matches and the summary line, for a terminal."""
    from rich.table import Table

    if report.matches:
        table = Table(title=None, header_style="bold")
        for name in ("rank", "x", "y", "width", "height", "score"):
            table.add_column(name, justify="right")
        for rank, m in enumerate(report.matches, 1):
            style = "bold green" if rank == 1 else None
            table.add_row(
                str(rank),
                format_coordinate(m.x),
                format_coordinate(m.y),
                str(m.width),
                str(m.height),
                format_score(m.score, report.method),
                style=style,
            )
        console.print(table)
    console.print(
        summary_line(report), style="dim" if report.matches else "yellow", highlight=False
    )


def print_tables(console: Console, reports: list[FindReport]) -> None:
    """Several templates' matches in one image: one rich table with a template column.

    Each template's rows follow in the order the templates were given,
    ``rank`` counting within each; a long template name folds inside its
    column rather than losing its end. Then each template's summary line
    (for one with no match, where it came closest).
    """
    from rich.table import Table
    from rich.text import Text

    from waldo_cli.names import display_name

    if any(report.matches for report in reports):
        table = Table(title=None, header_style="bold")
        table.add_column("template", overflow="fold")
        for name in ("rank", "x", "y", "width", "height", "score"):
            table.add_column(name, justify="right", no_wrap=True)
        for report in reports:
            for rank, m in enumerate(report.matches, 1):
                table.add_row(
                    Text(display_name(str(report.template))),  # a name, not markup
                    str(rank),
                    format_coordinate(m.x),
                    format_coordinate(m.y),
                    str(m.width),
                    str(m.height),
                    format_score(m.score, report.method),
                    style="bold green" if rank == 1 else None,
                )
        console.print(table)
    for report in reports:
        console.print(
            summary_line(report), style="dim" if report.matches else "yellow", highlight=False
        )


# ---------------------------------------------------------------------------
# waldo params: the dense-versus-convolution table (counts from waldo_cli.params)

PARAM_HEADERS: tuple[str, ...] = (
    "layer",
    "weights",
    "biases",
    "parameters",
    "float32",
    "multiply-adds",
    "reduction",
)

_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def half_block_lines(rgb: Any) -> list[Any]:
    """Rows of '▀' characters, each showing two pixel rows (foreground top, background bottom).

    ``rgb`` is an (h, w, 3) uint8 array; an odd last row is paired with black.

    >>> import numpy as np
    >>> lines = half_block_lines(np.zeros((3, 2, 3), np.uint8))
    >>> len(lines), lines[0].plain
    (2, '▀▀')
    """
    import numpy as np
    from rich.color import Color
    from rich.style import Style
    from rich.text import Text

    if rgb.shape[0] % 2:
        rgb = np.concatenate([rgb, np.zeros((1, *rgb.shape[1:]), rgb.dtype)])
    lines = []
    for y in range(0, rgb.shape[0], 2):
        text = Text(no_wrap=True, overflow="crop")
        for top, bottom in zip(rgb[y].tolist(), rgb[y + 1].tolist(), strict=True):
            text.append("▀", Style(color=Color.from_rgb(*top), bgcolor=Color.from_rgb(*bottom)))
        lines.append(text)
    return lines


def preview_size(console: Console, reserve: int = 8) -> tuple[int, int]:
    """The pixels a preview may use: the terminal's width, and two pixel rows per line.

    ``reserve`` lines are left free below the picture, so that it does not
    scroll away: a table of k matches takes k + 4 lines, the summary one or
    two (it wraps), the shell's next prompt one. The default fits ``-k 1``
    with a summary that wraps once. At least 8 lines are used for the picture.
    """
    return console.size.width, max(8, console.size.height - reserve) * 2


def print_preview(console: Console, picture: Any) -> None:
    """Draw a picture on a terminal with half blocks, fitted to its width.

    Nothing is printed when the console is not a terminal.
    """
    if not console.is_terminal:
        return
    from waldo_cli.render import thumbnail

    for line in half_block_lines(thumbnail(picture, *preview_size(console))):
        console.print(line, soft_wrap=True)


def format_param_bytes(size: int) -> str:
    """A byte count in binary units (1 KiB = 1024 B), exact below 1 KiB.

    >>> format_param_bytes(200), format_param_bytes(4_000_004_000)
    ('200 B', '3.7 GiB')
    """
    if size < 1024:
        return f"{size} B"
    exponent = min((size.bit_length() - 1) // 10, len(_BINARY_UNITS) - 1)
    value = size / 1024**exponent
    number = f"{value:.3g}" if value >= 1e6 else f"{value:,.1f}"
    return f"{number} {_BINARY_UNITS[exponent]}"


def format_param_reduction(ratio: Any) -> str:
    """A reduction factor: exact with separators when it is a whole number below a million.

    >>> from fractions import Fraction
    >>> [format_param_reduction(Fraction(n, d)) for n, d in [(1, 1), (5, 2), (10**9, 7)]]
    ['1×', '2.5×', '1.43e+08×']
    """
    if ratio >= 10**6 or ratio < 100:
        return f"{float(ratio):.3g}×"
    return f"{round(ratio):,}×"


def param_table_rows(counts: Any) -> list[tuple[str, ...]]:
    """The cells of the ``waldo params`` table, one tuple per row, as text.

    >>> from waldo_cli.params import param_counts
    >>> param_table_rows(param_counts(3, 3, 1, 1, 1))[-1]
    ('convolution (Δ = 1, 3×3)', '9', '1', '10', '40 B', '49', '9×')
    """
    return [
        (
            row.label,
            f"{row.weights:,}",
            f"{row.biases:,}",
            f"{row.parameters:,}",
            format_param_bytes(row.bytes_float32),
            f"{row.multiply_adds:,}",
            format_param_reduction(row.reduction),
        )
        for row in counts.rows
    ]


def param_title(counts: Any) -> str:
    """One line naming the sizes the table is for.

    >>> from waldo_cli.params import param_counts
    >>> param_title(param_counts(2, 3, 1))
    'image H×W×C_in = 2×3×3 → hidden H×W×C_out = 2×3×1, Δ = 1'
    """
    return (
        f"image H×W×C_in = {counts.height}×{counts.width}×{counts.channels_in} → "
        f"hidden H×W×C_out = {counts.height}×{counts.width}×{counts.channels_out}, "
        f"Δ = {counts.delta}"
    )


def _param_explain_blocks(counts: Any) -> list[tuple[str, str, str]]:
    return [
        (f"{number}. {row.label}: {row.formula}", row.equation, row.assumption)
        for number, row in enumerate(counts.rows, 1)
    ]


def plain_param_report(counts: Any, explain: bool = False) -> str:
    """The ``waldo params`` table as aligned plain text, for pipes.

    >>> from waldo_cli.params import param_counts
    >>> print(plain_param_report(param_counts(1, 1, 0, 1, 1, 1)).splitlines()[2])
    dense (1 hidden unit)  1        1       2           8 B      1              1×
    """
    import textwrap

    from waldo_cli.params import MULTIPLY_ADDS_RULE

    table = [PARAM_HEADERS, *param_table_rows(counts)]
    widths = [max(len(line[k]) for line in table) for k in range(len(PARAM_HEADERS))]
    lines = [param_title(counts)]
    for line in table:
        cells = [line[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(line[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells).rstrip())
    lines += [f"note: {note}" for note in counts.notes]
    if explain:
        lines.append("")
        for heading, equation, assumption in _param_explain_blocks(counts):
            lines.append(heading)
            lines.append(f"   {equation}")
            lines += textwrap.wrap(assumption, 88, initial_indent="   ", subsequent_indent="   ")
        lines += textwrap.wrap(MULTIPLY_ADDS_RULE, 91)
    return "\n".join(lines)


def print_param_report(console: Console, counts: Any, explain: bool = False) -> None:
    """The ``waldo params`` table as a rich table, with notes and explanations, for a terminal.

    The table has one line per layer when it fits the console; on a narrower
    console each layer becomes a block of quantity-value lines instead, so that
    long exact counts are never folded or cut.
    """
    from rich.table import Table
    from rich.text import Text

    from waldo_cli.params import MULTIPLY_ADDS_RULE

    cells = param_table_rows(counts)
    widths = [
        max(len(line[k]) for line in [PARAM_HEADERS, *cells]) for k in range(len(PARAM_HEADERS))
    ]
    title = Text(param_title(counts))
    if sum(widths) + 3 * len(widths) + 1 <= console.width:
        table = Table(title=title, header_style="bold", title_justify="left")
        table.add_column(PARAM_HEADERS[0], no_wrap=True)
        for header in PARAM_HEADERS[1:]:
            table.add_column(header, justify="right", no_wrap=True)
        for row, line in zip(counts.rows, cells, strict=True):
            style = "bold green" if row.name == "conv" else None
            table.add_row(*(Text(cell) for cell in line), style=style)
    else:
        table = Table(title=title, header_style="bold", title_justify="left")
        table.add_column("quantity")
        table.add_column("value", justify="right", no_wrap=True)
        for row, line in zip(counts.rows, cells, strict=True):
            style = "bold green" if row.name == "conv" else "bold"
            table.add_row(Text(line[0], style=style), "")
            for header, cell in zip(PARAM_HEADERS[1:], line[1:], strict=True):
                table.add_row(Text(f"  {header}"), Text(cell))
            if row is not counts.rows[-1]:
                table.add_section()
    console.print(table)
    for note in counts.notes:
        console.print(Text(f"note: {note}", style="yellow"))
    if explain:
        for heading, equation, assumption in _param_explain_blocks(counts):
            console.print()
            console.print(Text(heading, style="bold"))
            console.print(Text(f"   {equation}", style="cyan"))
            console.print(Text(f"   {assumption}"))
        console.print()
        console.print(Text(MULTIPLY_ADDS_RULE, style="dim"))


# ---------------------------------------------------------------------------
# waldo conv: the layer applied and the channels written (a waldo_cli.conv.LayerReport)


def conv_json(layer: Any) -> str:
    """The ``waldo conv --json`` document, on one line, without its newline.

    >>> from waldo_cli.conv import ChannelSummary, LayerReport
    >>> h = [ChannelSummary(0, "h.npy", -2.0, 2.0, 0.0, None)]
    >>> layer = LayerReport("x.png", (4, 3), False, "laplace", (3, 3, 1, 1), True, 1, "zero",
    ...                     False, (4, 3), h, 0.0123456789)
    >>> doc = json.loads(conv_json(layer))
    >>> doc["parameters"], doc["outputs"], doc["seconds"]
    (9, ['h.npy'], 0.012346)
    """
    (h, w, channels, outputs) = layer.kernel_shape
    return json.dumps(
        {
            "image": layer.image,
            "image_size": list(layer.image_size),
            "channels_in": channels,
            "grey": layer.grey,
            "kernel": layer.kernel,
            "kernel_shape": [h, w, channels, outputs],
            "depthwise": layer.depthwise,
            "delta": layer.delta,
            "pad": layer.pad,
            "convolve": layer.convolve,
            "parameters": layer.parameters,
            "output_size": list(layer.output_size),
            "channels_out": outputs,
            "outputs": list(dict.fromkeys(s.file for s in layer.channels)),
            "channels": [s.to_dict() for s in layer.channels],
            "seconds": round(layer.seconds, 6),
        }
    )


def conv_tsv_lines(layer: Any) -> str:
    """A header and one tab-separated line per output channel, each ending in a newline.

    The values are H's, so that a picture's grey levels can be mapped back.

    >>> from waldo_cli.conv import ChannelSummary, LayerReport
    >>> h = [ChannelSummary(0, "h.png", -2.0, 2.0, 0.0, "symmetric")]
    >>> layer = LayerReport("x.png", (4, 3), False, "laplace", (3, 3, 1, 1), True, 1, "zero",
    ...                     False, (4, 3), h, 0.0)
    >>> print(conv_tsv_lines(layer), end="")
    channel	file	min	max	mean	mapping
    0	h.png	-2	2	0	symmetric
    """
    lines = ["channel\tfile\tmin\tmax\tmean\tmapping\n"]
    for s in layer.channels:
        lines.append(
            f"{s.channel}\t{s.file}\t{s.minimum:.6g}\t{s.maximum:.6g}\t{s.mean:.6g}\t"
            f"{s.mapping or 'none'}\n"
        )
    return "".join(lines)


def conv_summary_line(layer: Any) -> str:
    """One line for stderr: the sizes in and out, the kernel, the padding and the time.

    >>> from waldo_cli.conv import LayerReport
    >>> print(conv_summary_line(LayerReport("x.png", (4, 3), False, "sobel", (3, 3, 1, 2), True,
    ...                                     1, "zero", False, (4, 3), [], 0.25)))
    waldo conv: 4×3×1 → 4×3×2 with sobel (V 3×3×1×2, 18 weights), pad zero, in 0.250 s
    """
    (width, height), (out_width, out_height) = layer.image_size, layer.output_size
    h, w, channels, outputs = layer.kernel_shape
    return (
        f"waldo conv: {width}×{height}×{channels} → {out_width}×{out_height}×{outputs} with "
        f"{layer.kernel} (V {h}×{w}×{channels}×{outputs}, {layer.parameters} weights), "
        f"pad {layer.pad}, in {layer.seconds:.3f} s"
    )
