"""``waldo params``: what a convolution saves over a fully connected layer."""

from __future__ import annotations

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
    """
    import json

    from waldo_cli.errors import WaldoError
    from waldo_cli.params import param_counts

    if size is not None and (height is not None or width is not None):
        raise usage_error("give --size or --height and --width, not both")
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
