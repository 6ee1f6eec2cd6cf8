"""The planner: which engine, tile size, bands and threads a search runs.

This is the ONLY place ``engine="auto"`` becomes an engine. ``plan_search``
takes the real inputs of one search (the shapes after padding, channels,
method, mask, threads) and returns a ``Plan``: what the engine runs, what
``--json`` reports as ``engine`` and what the first-run notice reads. A new
engine is one more entry in ``ENGINES``, its cost function and its kernels
in ``jit.PAIR_KERNELS``.

The cost model was measured with ``python benchmarks/calibrate.py`` on the
project's 2-core machine (AVX-512): the direct kernel's multiply-adds per
second per thread, and the seconds one FFT tile of each side costs with 3
channels (larger tiles cost more per pixel: they fall out of the caches).
The whole-search sweep of ``benchmarks/plot_template_size.py`` showed the
FFT path 1.3 times dearer on 1024² images than the isolated tiles suggest
(the direct kernel's rate held), hence ``_FFT_OVERHEAD``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from waldo_cli.errors import WaldoError
from waldo_cli.jit import PAIR_KERNELS

if TYPE_CHECKING:
    from waldo_cli.templates import MaskedTemplate

ENGINES = ("auto", "direct", "fft")

_DIRECT_MACS_PER_SECOND = 13e9
_FFT_OVERHEAD = 1.3
_FFT_TILE_SECONDS = {
    128: 1.68e-4, 160: 2.62e-4, 192: 3.83e-4, 256: 7.05e-4, 320: 1.20e-3,
    384: 1.89e-3, 512: 3.53e-3, 640: 6.53e-3, 768: 1.09e-2, 1024: 2.22e-2,
}  # fmt: skip
_FFT_SIDES = tuple(sorted(_FFT_TILE_SECONDS))

# The masked kernels' costs, measured as above (one thread, 1024² RGB,
# templates 3×3 to 14×14): the direct kernel's seconds per kept tap and
# channel, and per window, by the maps the method needs (see kernels.py);
# the FFT tiles cost what fft_plan predicts for as many transforms (within
# 10%).
_MASKED_DIRECT_SECONDS = {
    "num": (7.8e-11, 4e-9), "b": (1.02e-10, 6e-9), "a": (1.28e-10, 12e-9),
    "s": (2.06e-10, 12.5e-9),
}  # fmt: skip

# Images whose float32 planes would take more than this are searched in bands
# of rows (each with its template's h - 1 rows of overlap), so that memory
# stays near the image itself plus the score map however large it is.
BAND_BYTES = 64 << 20


@dataclass(frozen=True)
class Plan:
    """How one search runs: decided once, before any pixel is touched.

    Attributes
    ----------
    engine : {"direct", "fft"}
        The engine that runs ("auto" resolved).
    requested : {"auto", "direct", "fft"}
        What the caller asked for.
    threads : int
        Threads the kernels' bands run on.
    masked : bool
        Whether the masked kernels run.
    tile : int or None
        The FFT tile side (None for the direct engine).
    band_rows : int
        Output rows per band (all of them unless the image is huge).
    constant : bool
        Every score is known without the kernels (a flat template under
        ``ccoeff_normed`` scores 1 everywhere, as in OpenCV).
    """

    engine: str
    requested: str
    threads: int
    masked: bool
    tile: int | None
    band_rows: int
    constant: bool = False

    @property
    def kernels(self) -> tuple[str, ...]:
        """The compiled kernels this plan calls (none when the scores are constant)."""
        return () if self.constant else PAIR_KERNELS[self.engine, self.masked]


def check_engine(engine: str) -> str:
    """Return ``engine`` if it is one of ``ENGINES``, else raise WaldoError."""
    if engine not in ENGINES:
        raise WaldoError(f"unknown engine {engine!r}: choose one of {', '.join(ENGINES)}")
    return engine


def _even_fast_side(least: int) -> int:
    """The smallest even side of at least ``least`` with no prime factor above 5 (fast FFTs).

    Even, because a tile's real transform keeps side // 2 + 1 columns and the
    kernels read the side back from that.

    >>> _even_fast_side(2100), _even_fast_side(2049), _even_fast_side(7)
    (2160, 2160, 8)
    """
    best = 2 * least + 2
    five = 1
    while five < best:
        three = five
        while three < best:
            side = three * 2  # even
            while side < least:
                side *= 2
            best = min(best, side)
            three *= 3
        five *= 5
    return best


def _fft_sides(template_side: int, image_side: int) -> tuple[int, ...]:
    """Tile sides to consider for a template's larger side in an image's larger side.

    The calibrated sides at least twice the template's, and, for templates
    too large for the table, sides doubling beyond it that are at least the
    template's (a tile must hold one whole window), up to one tile covering
    the whole image: no larger tile can ever be needed.

    >>> _fft_sides(64, 1024)
    (128, 160, 192, 256, 320, 384, 512, 640, 768, 1024)
    >>> _fft_sides(2049, 2100), _fft_sides(1500, 8000)
    ((2160,), (2048, 4096, 8000))
    """
    sides = [s for s in _FFT_SIDES if s >= 2 * template_side]
    # one tile holds the whole image: the largest tile worth a thought
    whole = _even_fast_side(max(image_side, template_side))
    side = _FFT_SIDES[-1]
    while len(sides) < 3:
        side *= 2
        if side >= whole:
            sides.append(whole)
            break
        if side >= template_side:
            sides.append(side)
    return tuple(sorted(set(sides)))


def _tile_seconds(side: int, channels: int) -> float:
    if side in _FFT_TILE_SECONDS:
        seconds = _FFT_TILE_SECONDS[side]
    else:  # beyond the table: n log n from its last entry
        last = _FFT_SIDES[-1]
        seconds = _FFT_TILE_SECONDS[last] * (side / last) ** 2 * math.log2(side) / math.log2(last)
    return _FFT_OVERHEAD * seconds * (channels + 1) / 4.0  # C forward transforms, 1 inverse


def fft_plan(
    out_shape: tuple[int, int], template_shape: tuple[int, int], channels: int, threads: int
) -> tuple[float, int]:
    """Predicted seconds and tile side of the FFT path, at its best tile size.

    Tiles are square and at least twice the template's larger side (or, for
    templates beyond the calibrated sizes, at least that side, and never
    larger than one tile holding the whole image); a tile count that does
    not divide among the threads is charged for the idle one.

    >>> fft_plan((961, 961), (64, 64), 3, 2)[1]
    256
    """
    out_h, out_w = out_shape
    h, w = template_shape
    best = (float("inf"), 0)
    for side in _fft_sides(max(h, w), max(out_h + h - 1, out_w + w - 1)):
        tiles = -(-out_h // (side - h + 1)) * -(-out_w // (side - w + 1))
        rounds = -(-tiles // max(1, threads))
        best = min(best, (rounds * _tile_seconds(side, channels), side))
    return best


def direct_seconds(
    out_shape: tuple[int, int], template_shape: tuple[int, int], channels: int, threads: int
) -> float:
    """Predicted seconds of the direct kernel.

    >>> round(direct_seconds((1018, 1018), (7, 7), 3, 2) * 1e3, 1)
    5.9
    """
    macs = out_shape[0] * out_shape[1] * template_shape[0] * template_shape[1] * channels
    return macs / (_DIRECT_MACS_PER_SECOND * max(1, threads))


def choose_engine(
    out_shape: tuple[int, int], template_shape: tuple[int, int], channels: int, threads: int
) -> str:
    """``direct`` or ``fft`` for an unmasked search, whichever is predicted to be faster.

    >>> choose_engine((1022, 1022), (3, 3), 3, 2), choose_engine((961, 961), (64, 64), 3, 2)
    ('direct', 'fft')
    """
    direct = direct_seconds(out_shape, template_shape, channels, threads)
    fft, _ = fft_plan(out_shape, template_shape, channels, threads)
    return "direct" if direct <= fft else "fft"


def choose_masked_engine(
    out_shape: tuple[int, int], masked: MaskedTemplate, method: str, threads: int
) -> str:
    """``direct`` or ``fft`` for a masked search, whichever is predicted to be faster."""
    channels, h, w = masked.kern.shape
    planes = len(masked.mask)
    need_b = method not in ("ccorr", "ccoeff")
    need_a = method == "ccoeff_normed"
    need_s = need_a and masked.soft
    per_tap, per_window = _MASKED_DIRECT_SECONDS[
        "s" if need_s else "a" if need_a else "b" if need_b else "num"
    ]
    # the direct kernel skips the pixels the mask leaves out
    direct = out_shape[0] * out_shape[1] * (masked.taps * per_tap + per_window) / max(1, threads)
    transforms = (
        channels + 1 + need_b * (1 + (channels if planes > 1 else 1))
        + need_a * channels + need_s * channels
    )  # fmt: skip
    fft, _ = fft_plan(out_shape, (h, w), transforms - 1, threads)
    return "direct" if direct <= fft else "fft"


def band_rows(
    image_shape: tuple[int, int, int],
    template_shape: tuple[int, int],
    engine: str,
    tile: int | None,
) -> int:
    """Output rows per band: all of them unless the image is huge.

    >>> band_rows((1024, 1024, 3), (32, 32), "fft", 256)
    993
    >>> band_rows((8192, 8192, 3), (9, 9), "direct", None)
    333
    """
    (height, width, channels), h = image_shape, template_shape[0]
    out_h = height - h + 1
    row_bytes = 4 * width * channels
    if height * row_bytes <= BAND_BYTES:
        return out_h
    # half the budget per band: the band's planes and the kernels' buffers
    rows = max(4 * h, BAND_BYTES // 2 // row_bytes - (h - 1))
    if engine == "fft" and tile is not None:  # whole FFT tiles per band
        step = tile - h + 1
        rows = max(step, rows // step * step)
    return min(rows, out_h)


def plan_search(
    image_shape: tuple[int, int, int],
    template_shape: tuple[int, int],
    method: str,
    *,
    engine: str = "auto",
    threads: int = 1,
    masked: MaskedTemplate | None = None,
    constant: bool = False,
) -> Plan:
    """Plan one search of an (H, W, C) image (already padded) with an (h, w) template.

    ``masked``: the masked template when the search has a mask (the masked
    cost model decides then); ``constant``: the scores need no kernel.

    >>> plan_search((1024, 1024, 3), (7, 7), "ccoeff_normed", threads=2).engine
    'direct'
    >>> plan_search((1024, 1024, 3), (64, 64), "ccoeff_normed", threads=2).tile
    256
    """
    check_engine(engine)
    height, width, channels = image_shape
    h, w = template_shape
    out_shape = (height - h + 1, width - w + 1)
    threads = max(1, int(threads))
    chosen = engine
    if engine == "auto":
        chosen = (
            choose_engine(out_shape, (h, w), channels, threads)
            if masked is None
            else choose_masked_engine(out_shape, masked, method, threads)
        )
    tile = fft_plan(out_shape, (h, w), channels, threads)[1] if chosen == "fft" else None
    return Plan(
        engine=chosen,
        requested=engine,
        threads=threads,
        masked=masked is not None,
        tile=tile,
        band_rows=band_rows(image_shape, (h, w), chosen, tile),
        constant=constant,
    )


def engines_used(plans: list[Plan]) -> str:
    """What ``--json`` reports as ``engine`` for several plans (variants): e.g. ``direct+fft``.

    >>> p = plan_search((64, 64, 1), (3, 3), "ccorr", engine="fft")
    >>> engines_used([p, p]), engines_used([])
    ('fft', 'none')
    """
    used = sorted({plan.engine for plan in plans})
    return "+".join(used) if used else "none"
