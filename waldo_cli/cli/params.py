"""``waldo params``: what a convolution saves over a fully connected layer."""

from __future__ import annotations

from typing import Any

import click

from waldo_cli.cli import WaldoUsageError, usage_error
from waldo_cli.cli.options import json_option
from waldo_cli.cli.terminal import stdout_console


@click.command("params")
@click.option(
    "--size",
    type=click.IntRange(min=1),
    default=None,
    help="Height and width of a square image, in pixels (or give --height and --width).",
)
@click.option("--height", type=click.IntRange(min=1), default=None, help="H, the image's rows.")
@click.option("--width", type=click.IntRange(min=1), default=None, help="W, the image's columns.")
@click.option(
    "--delta",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Δ, the locality radius: a (2Δ+1)×(2Δ+1) window; 0 is a 1×1 convolution.",
)
@click.option(
    "--channels-in",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="C_in, channels of the image.",
)
@click.option(
    "--channels-out",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="C_out, channels of the hidden representation.",
)
@click.option(
    "--hidden",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Hidden units of the dense layer in the first row.",
)
@json_option("Print one JSON document on stdout instead of a table.")
@click.option(
    "--explain",
    is_flag=True,
    help="Under the table, the equation and the assumption behind each row.",
)
@click.option(
    "--filter",
    "filter_path",
    metavar="FILTER.npz",
    default=None,
    help="Count a filter learned by `waldo learn`: its h·w·C weights and one bias, against "
    "a dense layer giving the same score map. The image size defaults to its training "
    "images'.",
)
def params_command(
    size: int | None,
    height: int | None,
    width: int | None,
    delta: int,
    channels_in: int,
    channels_out: int,
    hidden: int,
    as_json: bool,
    explain: bool,
    filter_path: str | None,
) -> None:
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

    With --filter FILTER.npz, counts the layer a learned filter is: one
    kernel V of h×w×C weights and one bias u, sliding over an H×W image to
    give an (H−h+1)×(W−w+1) score map, against the fully connected layer
    that gives the same map (a weight from every pixel value to every
    score, and a bias for each).
    """
    import json

    from waldo_cli.errors import WaldoError
    from waldo_cli.params import param_counts

    if size is not None and (height is not None or width is not None):
        raise usage_error("give --size or --height and --width, not both")
    if filter_path is not None:
        _filter_params(filter_path, size, height, width, as_json)
        return
    if size is None and (height is None or width is None):
        raise usage_error("give --size, or both --height and --width")
    rows, columns = (size, size) if size is not None else (height, width)
    assert rows is not None and columns is not None  # checked just above
    try:
        counts = param_counts(
            rows,
            columns,
            delta,
            channels_in=channels_in,
            channels_out=channels_out,
            hidden=hidden,
        )
    except WaldoError as exc:
        raise WaldoUsageError(str(exc)) from None

    if as_json:
        click.echo(json.dumps(counts.to_dict()))
        return
    out = stdout_console()
    if out.is_terminal:
        from waldo_cli.report import print_param_report

        print_param_report(out, counts, explain=explain)
    else:
        from waldo_cli.report import plain_param_report

        click.echo(plain_param_report(counts, explain=explain))


def _filter_params(
    path: str, size: int | None, height: int | None, width: int | None, as_json: bool
) -> None:
    """``waldo params --filter``: the learned layer against the dense one, for one image size.

    Reads only the filter's description (no NumPy): its kernel's shape and
    the size of the images it learned from.
    """
    import json

    from waldo_cli.errors import WaldoError
    from waldo_cli.filters import read_filter_info
    from waldo_cli.params import template_param_counts

    ctx = click.get_current_context()
    for name in ("delta", "channels_in", "channels_out", "hidden", "explain"):
        if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT:
            option = "--" + name.replace("_", "-")
            raise usage_error(f"{option} does not apply to --filter (the filter has its own shape)")
    if (height is None) != (width is None):
        raise usage_error("give both --height and --width (or --size)")
    try:
        info = read_filter_info(path)
        h, w, channels = (int(v) for v in info["kernel_shape"])
        if size is not None:
            rows, columns = size, size
        elif height is not None and width is not None:
            rows, columns = height, width
        else:
            found = (info.get("training") or {}).get("image_size")
            if not found:
                raise WaldoError(f"{path} does not say what images it learned from: give --size")
            columns, rows = (int(v) for v in found)
        counts = template_param_counts(rows, columns, h, w, channels, bias=True)
    except WaldoError as exc:  # a ValueError too: caught first, to keep its message
        raise WaldoUsageError(str(exc)) from None
    except (KeyError, TypeError, ValueError):
        raise WaldoUsageError(f"{path}: a damaged waldo filter (no kernel_shape)") from None
    scores = (rows - h + 1) * (columns - w + 1)
    conv, dense = counts["conv"], counts["dense"]
    doc: dict[str, Any] = {
        "filter": path,
        "kernel_shape": [h, w, channels],
        "image_size": [columns, rows],
        "score_map": [columns - w + 1, rows - h + 1],
        "learned": {"weights": conv - 1, "biases": 1, "parameters": conv},
        "dense": {"weights": dense - scores, "biases": scores, "parameters": dense},
        "reduction": dense / conv,
    }
    if as_json:
        click.echo(json.dumps(doc))
        return
    from waldo_cli.report import format_param_bytes, format_param_reduction

    lines = [
        f"{path}: V {w}×{h}×{channels} and one bias, on a {columns}×{rows}×{channels} image "
        f"→ a {columns - w + 1}×{rows - h + 1} score map",
    ]
    table = [("layer", "weights", "biases", "parameters", "float32")]
    for label, part in (("learned filter", doc["learned"]), ("dense, same map", doc["dense"])):
        table.append(
            (
                label,
                f"{part['weights']:,}",
                f"{part['biases']:,}",
                f"{part['parameters']:,}",
                format_param_bytes(4 * part["parameters"]),
            )
        )
    widths = [max(len(row[k]) for row in table) for k in range(5)]
    for row in table:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(n) for c, n in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells))
    from fractions import Fraction

    lines.append(f"reduction: {format_param_reduction(Fraction(dense, conv))}")
    click.echo("\n".join(lines))
