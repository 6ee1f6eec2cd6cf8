r"""Why a convolution: the parameter counts of one layer, step by step.

Dive into Deep Learning's chapter "From Fully Connected Layers to Convolutions"
starts from a layer that connects every input value to every hidden value and
imposes two assumptions on it, translation invariance and locality, until what
is left is a convolutional layer. :func:`param_counts` follows that argument for
one image of H×W pixels with C_in channels ([X]_{i,j,c}) and a hidden
representation of the same H×W grid with C_out channels ([H]_{i,j,d}), with
offsets a, b and the locality radius Δ of the chapter. Every count is an exact
Python integer.

Multiply-adds count, for every row alike, one multiply-add per weight that meets
a pixel inside the image during one forward pass over one image. Bias additions
are not counted, and neither are taps that fall on the zero padding around the
image (the convolution keeps the output H×W, "same" padding).

>>> counts = param_counts(1000, 1000, delta=1, channels_in=1, hidden=1000)
>>> counts.dense.weights == 10**6 * 10**3
True
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from waldo_cli.errors import TemplateTooLargeError, WaldoError

BYTES_PER_FLOAT32 = 4

# Every size must fit a signed 64-bit integer, as any array dimension does. The
# cap keeps each count printable (Python refuses to print integers of more than
# 4300 digits) and each reduction factor finite as a float.
MAX_DIMENSION = 2**63 - 1

ROW_NAMES: tuple[str, ...] = ("dense", "fully_connected", "translation_invariant", "conv")

MULTIPLY_ADDS_RULE = (
    "Multiply-adds: one per weight that meets a pixel inside the image in one forward "
    "pass over one image, the same rule for every row; bias additions and taps that fall "
    "on the zero padding around the image are not counted."
)


@dataclass(frozen=True)
class Row:
    """One step of the argument: a layer and what it costs.

    Parameters
    ----------
    name : str
        ``"dense"``, ``"fully_connected"``, ``"translation_invariant"`` or ``"conv"``.
    label : str
        A short human title for tables.
    weights, biases : int
        The layer's free parameters, exactly.
    multiply_adds : int
        Multiply-adds of one forward pass over one image (see the module docstring).
    reduction : Fraction
        Parameters of the fully connected row divided by this row's parameters.
    formula, equation, assumption : str
        Plain-text explanation in the chapter's notation, for ``--explain``.
    """

    name: str
    label: str
    weights: int
    biases: int
    multiply_adds: int
    reduction: Fraction
    formula: str = field(default="", compare=False, repr=False)
    equation: str = field(default="", compare=False, repr=False)
    assumption: str = field(default="", compare=False, repr=False)

    @property
    def parameters(self) -> int:
        """Weights plus biases."""
        return self.weights + self.biases

    @property
    def bytes_float32(self) -> int:
        """Memory of the parameters stored as float32."""
        return BYTES_PER_FLOAT32 * self.parameters

    def to_dict(self) -> dict[str, Any]:
        """The row as ``waldo params --json`` prints it.

        >>> param_counts(3, 3, delta=1, channels_in=1).conv.to_dict()["parameters"]
        10
        """
        return {
            "name": self.name,
            "label": self.label,
            "weights": self.weights,
            "biases": self.biases,
            "parameters": self.parameters,
            "bytes_float32": self.bytes_float32,
            "multiply_adds": self.multiply_adds,
            "reduction": float(self.reduction),
        }


@dataclass(frozen=True)
class ParamCounts:
    """The four rows for one image size, with notes on corner cases.

    ``rows`` holds, in order, the dense layer, the fully connected layer, the
    translation-invariant layer and the convolutional layer; they are also
    reachable as ``.dense``, ``.fully_connected``, ``.translation_invariant``
    and ``.conv``. ``dead_weights`` counts the convolution's weights that never
    touch a pixel (|a| ≥ H or |b| ≥ W).
    """

    height: int
    width: int
    delta: int
    channels_in: int
    channels_out: int
    hidden: int
    rows: tuple[Row, ...]
    notes: tuple[str, ...] = ()
    dead_weights: int = 0

    def row(self, name: str) -> Row:
        """The row called ``name``.

        >>> param_counts(2, 2, 0).row("conv").weights
        3
        """
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(name)

    @property
    def dense(self) -> Row:
        """Row 1: the flattened image into ``hidden`` units."""
        return self.row("dense")

    @property
    def fully_connected(self) -> Row:
        """Row 2: every hidden value of the H×W×C_out representation sees every input."""
        return self.row("fully_connected")

    @property
    def translation_invariant(self) -> Row:
        """Row 3: the weights depend on the offset (a, b) only."""
        return self.row("translation_invariant")

    @property
    def conv(self) -> Row:
        """Row 4: offsets limited to |a|, |b| ≤ Δ, the convolutional layer."""
        return self.row("conv")

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``waldo params --json``.

        >>> doc = param_counts(4, 5, 1, 2, 3).to_dict()
        >>> [row["name"] for row in doc["rows"]]
        ['dense', 'fully_connected', 'translation_invariant', 'conv']
        """
        return {
            "height": self.height,
            "width": self.width,
            "delta": self.delta,
            "channels_in": self.channels_in,
            "channels_out": self.channels_out,
            "hidden": self.hidden,
            "rows": [row.to_dict() for row in self.rows],
            "notes": list(self.notes),
        }


def _check_int(name: str, value: Any, minimum: int) -> int:
    # bool is an int subclass, but --delta True is a mistake, not Δ = 1
    if isinstance(value, bool) or not hasattr(type(value), "__index__"):
        raise WaldoError(f"{name} must be an integer, got {value!r}")
    number = operator.index(value)
    if number < minimum:
        raise WaldoError(f"{name} must be at least {minimum}, got {number}")
    if number > MAX_DIMENSION:
        raise WaldoError(f"{name} must be at most 2**63 - 1, got {number}")
    return number


def _in_image_taps(n: int, delta: int) -> int:
    # Pairs (i, k) in range(n) with |k - i| <= delta: n on the diagonal, and
    # n - t on each side for every distance t = 1..m.
    m = min(delta, n - 1)
    return n * (2 * m + 1) - m * (m + 1)


def param_counts(
    height: int,
    width: int,
    delta: int,
    channels_in: int = 3,
    channels_out: int = 1,
    hidden: int = 1000,
) -> ParamCounts:
    """Count weights, biases and multiply-adds of each step from dense to convolution.

    Parameters
    ----------
    height, width : int
        H and W of the image and of the hidden representation, at least 1.
    delta : int
        Δ, the locality radius: the convolution sees offsets |a|, |b| ≤ Δ, a
        (2Δ+1)×(2Δ+1) window. Δ = 0 is the 1×1 convolution.
    channels_in, channels_out : int
        C_in channels of the image (indexed by c), C_out of the hidden
        representation (indexed by d).
    hidden : int
        Hidden units of the dense layer in row 1 (the chapter takes 1000).

    Returns
    -------
    ParamCounts
        The four rows and any notes, all counts exact integers.

    Raises
    ------
    WaldoError
        If an argument is not an integer (or is a bool), a size or channel
        count is below 1, Δ is negative, or anything exceeds 2**63 - 1.

    Examples
    --------
    >>> counts = param_counts(1024, 1024, delta=3, channels_in=1)
    >>> counts.conv.weights, counts.conv.biases
    (49, 1)
    """
    height = _check_int("height", height, 1)
    width = _check_int("width", width, 1)
    delta = _check_int("delta", delta, 0)
    channels_in = _check_int("channels_in", channels_in, 1)
    channels_out = _check_int("channels_out", channels_out, 1)
    hidden = _check_int("hidden", hidden, 1)

    pixels = height * width
    inputs = pixels * channels_in
    outputs = pixels * channels_out
    channel_pairs = channels_in * channels_out
    window = 2 * delta + 1

    fc_weights = inputs * outputs
    fc_biases = outputs
    fc_parameters = fc_weights + fc_biases

    def reduction(weights: int, biases: int) -> Fraction:
        return Fraction(fc_parameters, weights + biases)

    dense_weights = inputs * hidden
    ti_weights = (2 * height - 1) * (2 * width - 1) * channel_pairs
    conv_weights = window * window * channel_pairs
    live_window = (2 * min(delta, height - 1) + 1) * (2 * min(delta, width - 1) + 1)
    dead_weights = conv_weights - live_window * channel_pairs

    rows = (
        Row(
            name="dense",
            label=f"dense ({hidden:,} hidden unit{'s' if hidden != 1 else ''})",
            weights=dense_weights,
            biases=hidden,
            multiply_adds=dense_weights,
            reduction=reduction(dense_weights, hidden),
            formula="weights H·W·C_in·n, biases n (n hidden units)",
            equation="[h]_n = [b]_n + Σ_i Σ_j Σ_c [W]_{n,i,j,c} [X]_{i,j,c}",
            assumption=(
                "No structure at all: the image is flattened into one vector of H·W·C_in "
                "numbers and each hidden unit has its own weight for every one of them."
            ),
        ),
        Row(
            name="fully_connected",
            label="fully connected",
            weights=fc_weights,
            biases=fc_biases,
            multiply_adds=fc_weights,
            reduction=Fraction(1),
            formula="weights (H·W·C_in)·(H·W·C_out), biases H·W·C_out",
            equation=(
                "[H]_{i,j,d} = [U]_{i,j,d} + Σ_k Σ_l Σ_c [W]_{i,j,k,l,c,d} [X]_{k,l,c}"
                " = [U]_{i,j,d} + Σ_a Σ_b Σ_c [V]_{i,j,a,b,c,d} [X]_{i+a,j+b,c}"
            ),
            assumption=(
                "The hidden representation keeps the image's H×W grid, but each of its "
                "values still owns a weight for every input value and a bias of its own; "
                "writing k = i+a, l = j+b only renames the weights."
            ),
        ),
        Row(
            name="translation_invariant",
            label="translation invariant",
            weights=ti_weights,
            biases=channels_out,
            # Each output pixel meets every input pixel once: H·W in-image taps.
            multiply_adds=pixels * pixels * channel_pairs,
            reduction=reduction(ti_weights, channels_out),
            formula="weights (2H−1)·(2W−1)·C_in·C_out, biases C_out",
            equation=(
                "[H]_{i,j,d} = u_d + Σ_a Σ_b Σ_c [V]_{a,b,c,d} [X]_{i+a,j+b,c}, "
                "|a| ≤ H−1, |b| ≤ W−1"
            ),
            assumption=(
                "A shift of X only shifts H, so V and the bias cannot depend on (i, j): one "
                "weight per offset that can still land in the image and one bias u_d per "
                "output channel. Every output still reads every pixel, so sharing weights "
                "saves parameters, not arithmetic."
            ),
        ),
        Row(
            name="conv",
            label=f"convolution (Δ = {delta:,}, {window:,}×{window:,})",
            weights=conv_weights,
            biases=channels_out,
            multiply_adds=(
                _in_image_taps(height, delta) * _in_image_taps(width, delta) * channel_pairs
            ),
            reduction=reduction(conv_weights, channels_out),
            formula="weights (2Δ+1)²·C_in·C_out, biases C_out",
            equation=(
                "[H]_{i,j,d} = u_d + Σ_{a=-Δ..Δ} Σ_{b=-Δ..Δ} Σ_c [V]_{a,b,c,d} [X]_{i+a,j+b,c}"
            ),
            assumption=(
                "Only nearby pixels matter as well: [V]_{a,b,c,d} = 0 when |a| > Δ or "
                "|b| > Δ. This is the convolutional layer (strictly a cross-correlation), "
                "and its parameter count no longer depends on H and W."
            ),
        ),
    )

    notes = []
    if delta == 0:
        notes.append(
            f"Δ = 0 is the 1×1 convolution: a fully connected layer from the C_in = "
            f"{channels_in:,} input channels to the C_out = {channels_out:,} output channels, "
            f"applied to every pixel on its own with the same weights (an MLP across channels)."
        )
    if window > height or window > width:
        if dead_weights:
            fate = (
                f"{dead_weights:,} of its {conv_weights:,} weights (those with |a| ≥ H or "
                f"|b| ≥ W) never touch a pixel"
            )
        else:
            fate = "every weight still touches some pixel, but no output sees its whole window"
        notes.append(
            f"the {window:,}×{window:,} window (2Δ+1 = {window:,}) is larger than the "
            f"{height:,}×{width:,} image (H×W): taps past the border read zero padding, "
            f"and {fate}."
        )

    return ParamCounts(
        height=height,
        width=width,
        delta=delta,
        channels_in=channels_in,
        channels_out=channels_out,
        hidden=hidden,
        rows=rows,
        notes=tuple(notes),
        dead_weights=dead_weights,
    )


def template_param_counts(
    image_height: int,
    image_width: int,
    template_height: int,
    template_width: int,
    channels: int,
    *,
    bias: bool = False,
) -> dict[str, int]:
    """Weights of template matching seen as a layer, against a dense layer doing the same.

    A template of h×w pixels with C channels slid over an H×W image is a
    convolution with one output channel and no padding: its weights are the
    template's h·w·C values, and it produces an (H−h+1)×(W−w+1) score map. A
    fully connected layer producing that same score map needs a weight from
    every image value to every score. Both counts are weights only: a template
    score has no bias. A learned filter (``bias=True``) has one, u: its layer
    counts h·w·C + 1 parameters, and the dense layer one bias per score.

    Parameters
    ----------
    image_height, image_width : int
        H and W of the image.
    template_height, template_width : int
        h and w of the template, at most H and W.
    channels : int
        C, the channels both share.

    Returns
    -------
    dict
        ``{"conv": h·w·C, "dense": (H·W·C)·(H−h+1)·(W−w+1)}``, exact integers
        (with ``bias``: h·w·C + 1, and (H·W·C + 1)·(H−h+1)·(W−w+1)).

    Raises
    ------
    WaldoError
        If a size is not an integer of at least 1
        (:class:`~waldo_cli.errors.TemplateTooLargeError` if the template does
        not fit in the image).

    Examples
    --------
    >>> template_param_counts(480, 640, 32, 24, 3)
    {'conv': 2304, 'dense': 255313612800}
    >>> template_param_counts(480, 640, 32, 24, 3, bias=True)
    {'conv': 2305, 'dense': 255313889833}
    """
    height = _check_int("image height", image_height, 1)
    width = _check_int("image width", image_width, 1)
    h = _check_int("template height", template_height, 1)
    w = _check_int("template width", template_width, 1)
    channels = _check_int("channels", channels, 1)
    if h > height or w > width:
        raise TemplateTooLargeError((h, w), (height, width))
    scores = (height - h + 1) * (width - w + 1)
    extra = 1 if bias else 0
    return {
        "conv": h * w * channels + extra,
        "dense": (height * width * channels + extra) * scores,
    }
