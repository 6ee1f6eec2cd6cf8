"""``waldo conv``: one convolutional layer applied to an image, its output H written."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from waldo_cli.cli import WaldoUsageError
from waldo_cli.cli.options import FILE, convolve_option, json_option
from waldo_cli.cli.terminal import compile_notice, image_source

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

# waldo_cli.conv.KERNEL_NAMES as they are typed, up to their parameter. Not
# imported from there: completion runs at every Tab, and that module loads
# NumPy and the engine (tests/test_completion.py keeps the two lists equal).
KERNEL_WORDS = ("sobel-x", "sobel-y", "sobel", "laplace", "gauss:", "box:")


def complete_kernel(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """``--kernel``: the kernel names that start with what is typed, and file names.

    >>> [item.value for item in complete_kernel(None, None, "so")]
    ['so', 'sobel-x', 'sobel-y', 'sobel']
    """
    from click.shell_completion import CompletionItem

    names = [CompletionItem(name) for name in KERNEL_WORDS if name.startswith(incomplete)]
    # The file item goes first: Click's bash script empties its list at a file
    # item and lets readline complete file names only if nothing else is listed,
    # so bash offers the names that match and file names when none does.
    return [CompletionItem(incomplete, type="file"), *names]


@click.command("conv")
@click.argument("image_path", type=FILE, metavar="IMAGE")
@click.option(
    "--kernel",
    "kernel_spec",
    type=FILE,
    shell_complete=complete_kernel,
    required=True,
    metavar="NAME|FILE.npy",
    help="The filter V[a, b, c, d]: sobel-x, sobel-y, sobel (both), laplace, "
    "gauss:σ, box:k (k odd), or a .npy file of shape (h, w), (h, w, C) or "
    "(h, w, C, D), h and w odd. Names and (h, w) files act per channel "
    "(depthwise): output channel d filters input channel d only, so D = C "
    "(2·C for sobel).",
)
@click.option(
    "--out",
    "out_path",
    type=FILE,
    required=True,
    metavar="PATH",
    help="Where H goes: NAME.npy for one float32 (H, W, D) array, or a picture name "
    "(.png, .tif, ...) for one 8-bit grey picture per output channel, "
    "NAME-0.png, NAME-1.png, ... (just NAME.png when D = 1).",
)
@click.option(
    "--delta",
    type=click.IntRange(min=0),
    default=None,
    metavar="Δ",
    help="Require a (2Δ+1)×(2Δ+1) kernel (a usage error otherwise). For gauss:σ it "
    "sets the size instead of 2·ceil(3σ)+1.",
)
@click.option(
    "--pad",
    type=click.Choice(["zero", "reflect", "edge", "none"]),
    default="zero",
    show_default=True,
    help="Extend the image past its border with zeros, a mirror image, or the edge "
    "pixels, so H has the image's height and width (H[i, j] from the window "
    "centred on pixel (i, j)); none keeps only the positions where the whole "
    "kernel fits inside the image: (H-h+1)×(W-w+1).",
)
@convolve_option(
    "Flip V in both spatial axes: the mathematical convolution instead of the "
    "cross-correlation a CNN layer computes."
)
@click.option(
    "--grey",
    "--gray",
    "grey",
    is_flag=True,
    help="Convert the image to grey (ITU-R 601 luma) first, so C = 1.",
)
@json_option("Print one JSON document describing the layer and its outputs instead of the table.")
def conv_command(
    image_path: str,
    kernel_spec: str,
    out_path: str,
    delta: int | None,
    pad: str,
    convolve: bool,
    grey: bool,
    as_json: bool,
) -> None:
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
    import time

    from waldo_cli import jit
    from waldo_cli.conv import (
        LayerReport,
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
    from waldo_cli.report import conv_json, conv_summary_line, conv_tsv_lines

    protect = (image_path, *((kernel_spec,) if kernel_spec.lower().endswith(".npy") else ()))
    try:
        check_outputs(out_path, 1, protect)  # the name itself, before reading anything
        name, data = image_source(image_path)
        pixels = read_image(data, name=name).pixels
        if grey and pixels.shape[2] == 3:
            pixels = to_grey(pixels)
        kernel = make_kernel(kernel_spec, pixels.shape[2], delta=delta)
        check_outputs(out_path, kernel.shape[3], protect)
        jit.skip_extension_scan(only_waldo=True)
        with compile_notice(as_json):  # --json: stderr stays silent
            started = time.perf_counter()
            features = apply_layer(pixels, kernel, pad=pad, convolve=convolve)
            seconds = time.perf_counter() - started
        summaries = write_features(features, out_path, channel_mappings(kernel), protect=protect)
    except WaldoError as exc:
        raise WaldoUsageError(str(exc)) from None

    layer = LayerReport(
        image=image_path,
        image_size=(pixels.shape[1], pixels.shape[0]),
        grey=grey,
        kernel=kernel_spec,
        kernel_shape=kernel.shape,
        depthwise=is_depthwise(kernel),
        delta=kernel_delta(kernel),
        pad=pad,
        convolve=convolve,
        output_size=(features.shape[1], features.shape[0]),
        channels=summaries,
        seconds=seconds,
    )
    if as_json:
        click.echo(conv_json(layer))
        return
    click.echo(conv_tsv_lines(layer), nl=False)
    click.echo(conv_summary_line(layer), err=True)
