"""Pictures of a search: the score heatmap and the overlay of boxes (Pillow only).

Both return Pillow images; ``io.save_image`` writes them to disk atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache, partial

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from waldo_cli.errors import WaldoError
from waldo_cli.methods import check_method, lower_is_better
from waldo_cli.peaks import Match

# Fixed ranges of the normed methods: heatmaps made with them are comparable.
SCORE_RANGES: dict[str, tuple[float, float]] = {
    "ccoeff_normed": (-1.0, 1.0),
    "ccorr_normed": (0.0, 1.0),
    "sqdiff_normed": (0.0, 1.0),
}
DEFAULT_COLORMAP = "viridis"
# Where no window is centred: a grey that no perceptual colormap's ends use.
NEUTRAL = (96, 96, 96)
# Box colours to choose from, loud ones first; the one farthest from the
# image's own colours around the matches is used.
BOX_COLOURS = (
    (255, 0, 255),
    (0, 255, 255),
    (255, 255, 0),
    (0, 255, 0),
    (255, 64, 0),
    (255, 255, 255),
    (0, 0, 0),
)


@cache
def colormap_table(name: str = DEFAULT_COLORMAP) -> np.ndarray:
    """A (256, 3) uint8 lookup table for a colormap from the ``cmap`` package.

    The colormap is sampled at 256 evenly spaced points, as it interpolates
    itself: qualitative colormaps (tab10, set1, paired, ...), which have a
    few colours and no interpolation, become as many equal bands.

    Parameters
    ----------
    name : str
        Any name ``cmap`` knows (viridis, magma, inferno, plasma, cividis, ...).

    Raises
    ------
    WaldoError
        The name is unknown.

    Examples
    --------
    >>> colormap_table("viridis")[[0, -1]].tolist()
    [[68, 1, 84], [253, 231, 37]]
    >>> len(np.unique(colormap_table("tab10"), axis=0))
    10
    """
    from cmap import Colormap

    try:
        # not Colormap.lut(256): a qualitative colormap's lut holds only its N colours
        lut = Colormap(name)(np.linspace(0.0, 1.0, 256))
    except (ValueError, KeyError, TypeError):
        raise WaldoError(
            f"unknown colormap {name!r} (try viridis, magma, inferno, plasma, cividis, turbo)"
        ) from None
    return np.clip(np.round(np.asarray(lut)[:, :3] * 255), 0, 255).astype(np.uint8)


def score_range(scores: np.ndarray, method: str) -> tuple[float, float]:
    """The (low, high) scores the colormap spans: fixed for normed methods, observed otherwise.

    >>> score_range(np.array([[3.0, 7.0]]), "ccorr"), score_range(np.zeros((1, 1)), "ccoeff_normed")
    ((3.0, 7.0), (-1.0, 1.0))
    """
    method = check_method(method)
    if method in SCORE_RANGES:
        return SCORE_RANGES[method]
    # NaN marks places no window was scored
    values = np.asarray(scores)
    low, high = float(np.min(values)), float(np.max(values))
    if not (np.isfinite(low) and np.isfinite(high)):  # only finite scores have a place
        finite = values[np.isfinite(values)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    return low, high


def goodness(scores: np.ndarray, method: str) -> tuple[np.ndarray, float, float]:
    """Scores mapped to [0, 1] with 1 the best match, and the range used.

    The ``sqdiff`` methods are flipped, so the best match is always the
    bright end of the colormap.

    >>> g, lo, hi = goodness(np.array([[0.0, 0.25, 1.0]]), "sqdiff_normed")
    >>> g.tolist(), lo, hi
    ([[1.0, 0.75, 0.0]], 0.0, 1.0)
    """
    lo, hi = score_range(scores, method)
    if not hi > lo:
        # every window scored the same: nothing stands out (NaN: no window there)
        unit = np.where(np.isnan(scores), np.nan, 0.5)
    else:
        # in halves (exactly): neither the range's width nor a distance in it
        # overflows, whatever the finite scores (±1.7e308 in a float64 map)
        half_lo = 0.5 * lo
        unit = np.clip(
            (0.5 * np.asarray(scores, np.float64) - half_lo) / (0.5 * hi - half_lo), 0.0, 1.0
        )
    if lower_is_better(method):
        unit = 1.0 - unit
    return unit, lo, hi


# Marks for the best score, loud ones first; the one farthest from every
# colour of the colormap (and darker than its bright end) is used.
MARK_COLOURS = (
    (255, 0, 255),
    (255, 0, 0),
    (0, 255, 0),
    (255, 128, 0),
    (0, 128, 255),
    (255, 255, 255),
    (0, 0, 0),
)
# Pillow's bitmap font, the fallback without FreeType, is about this many pixels high.
BITMAP_FONT_PX = 11
# Text smaller than this is not read, whatever the picture's size.
MIN_TEXT_PX = 11
# render_heatmap leaves a way to draw it again, smaller, in the picture's info.
REDRAW_KEY = "waldo.redraw"


def _block_starts(length: int, blocks: int) -> np.ndarray:
    # as even as integers allow; every block non-empty because blocks <= length
    return np.arange(blocks) * length // blocks


def _shrink(values: np.ndarray, shape: tuple[int, int], reduce: np.ufunc) -> np.ndarray:
    rows, cols = shape
    if rows > values.shape[0] or cols > values.shape[1] or rows < 1 or cols < 1:
        raise WaldoError(
            f"cannot shrink a {values.shape[1]}×{values.shape[0]} map to {cols}×{rows}"
        )
    out = reduce.reduceat(values, _block_starts(values.shape[0], rows), axis=0)
    return reduce.reduceat(out, _block_starts(values.shape[1], cols), axis=1)


def shrink_scores(scores: np.ndarray, method: str, shape: tuple[int, int]) -> np.ndarray:
    """Downscale a score map keeping its peaks: each cell holds the best score of its block.

    Averaging (what picture resampling does) wipes out a peak one or two
    pixels wide; the best of each block keeps it.

    Parameters
    ----------
    scores : (H', W') array_like
        A score map from ``match_template``.
    method : str
        The method that made it: the best is the maximum, or the minimum for
        the ``sqdiff`` methods. NaN counts only in a block of nothing else.
    shape : (rows, cols)
        The size wanted, at most the map's. Block ``k`` of the rows spans
        rows ``k*H'//rows`` up to ``(k+1)*H'//rows``; the same for columns.

    Returns
    -------
    (rows, cols) ndarray

    Raises
    ------
    WaldoError
        ``shape`` is larger than the map, or empty.

    Examples
    --------
    >>> s = np.zeros((4, 6)); s[1, 4] = 0.75
    >>> shrink_scores(s, "ccoeff_normed", (2, 3)).tolist()
    [[0.0, 0.0, 0.75], [0.0, 0.0, 0.0]]
    >>> shrink_scores(1 - s, "sqdiff_normed", (1, 1)).tolist()
    [[0.25]]
    """
    reduce = np.fmin if lower_is_better(check_method(method)) else np.fmax
    return _shrink(np.asarray(scores), (int(shape[0]), int(shape[1])), reduce)


def _fit_size(size: tuple[int, int], max_width: int, max_height: int) -> tuple[int, int]:
    width, height = size
    scale = min(1.0, max_width / width, max_height / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _luma(colour: Sequence[float]) -> float:
    # ITU-R 601-2, what Pillow's convert("L") uses
    r, g, b = (float(v) for v in colour[:3])
    return r * 0.299 + g * 0.587 + b * 0.114


def legible_text_px(width: int, height: int) -> int:
    """The text size, in pixels, for labels on a picture of this size.

    About a thirtieth of the width (a fifteenth of the height, if smaller), so
    that text keeps about 10 px when the picture is shown 300 px wide, as the
    README shows it; never below 11 px.

    >>> legible_text_px(960, 640), legible_text_px(512, 512), legible_text_px(100, 100)
    (32, 17, 11)
    """
    return max(MIN_TEXT_PX, round(min(width / 30, height / 15)))


@cache
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    # Pillow >= 10.1 with FreeType: its own TrueType font (Aileron) at any
    # size, the same on every machine; otherwise a bitmap font of one size
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow before 10.1
        return ImageFont.load_default()


def _bitmap_zoom(font: ImageFont.ImageFont | ImageFont.FreeTypeFont, size: int) -> int:
    # bitmap glyphs are enlarged (nearest neighbour) rather than left tiny,
    # by a whole factor that keeps them within the size asked for
    if isinstance(font, ImageFont.FreeTypeFont):
        return 1
    return max(1, size // BITMAP_FONT_PX)


def _text_box(text: str, size: int) -> tuple[int, int, int, int]:
    """The ink's (left, top, right, bottom) for ``text`` drawn at the origin."""
    font = _font(size)
    zoom = _bitmap_zoom(font, size)
    left, top, right, bottom = (
        round(v) for v in ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), text, font=font)
    )
    return left * zoom, top * zoom, right * zoom, bottom * zoom


def _text_size(text: str, size: int) -> tuple[int, int]:
    left, top, right, bottom = _text_box(text, size)
    return right - left, bottom - top


def _draw_text(
    canvas: Image.Image, xy: tuple[int, int], text: str, size: int, fill: tuple[int, ...]
) -> None:
    """Draw one line of text: its ink starts at x; y is the top of the line.

    The top of the line is where the ink of "Ag" starts, so that lines of
    different text share a baseline.
    """
    font = _font(size)
    zoom = _bitmap_zoom(font, size)
    origin = (xy[0] - _text_box(text, size)[0], xy[1] - _text_box("Ag", size)[1])
    if zoom == 1:
        ImageDraw.Draw(canvas).text(origin, text, font=font, fill=fill)
        return
    left, top, right, bottom = (
        round(v) for v in ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), text, font=font)
    )
    small = Image.new("L", (right - left, bottom - top))
    ImageDraw.Draw(small).text((-left, -top), text, font=font, fill=255)
    mask = small.resize((small.width * zoom, small.height * zoom), Image.Resampling.NEAREST)
    canvas.paste(
        Image.new("RGB", mask.size, fill[:3]),
        (origin[0] + left * zoom, origin[1] + top * zoom),
        mask,
    )


def _intersects(a: tuple[int, int, int, int], b: tuple[int, int, int, int] | None) -> bool:
    return b is not None and a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _draw_legend(
    canvas: Image.Image,
    table: np.ndarray,
    method: str,
    lo: float,
    hi: float,
    has_border: bool,
    avoid: tuple[int, int, int, int] | None = None,
) -> None:
    """A translucent legend in a corner: the method, the colour ramp, the grey border.

    Text is sized to the picture (``legible_text_px``) and the legend goes in
    the first corner (bottom right, bottom left, top right, top left) that
    does not hide ``avoid`` (the best-match mark). It is drawn dimmer than the
    colormap's bright end, so it never outshines the best score. A picture too
    small to hold it legibly gets none.
    """
    width, height = canvas.size
    size = legible_text_px(width, height)
    flipped = lower_is_better(method)
    best, worst = (lo, hi) if flipped else (hi, lo)
    worst_label, best_label = f"{worst:.3g}", f"{best:.3g} best"
    note = "no window centre" if has_border else ""

    def layout(size: int) -> tuple[int, int, int, int, int]:
        pad, gap = max(3, size // 3), max(2, size // 5)
        line_h = _text_size("Ag", size)[1]
        bar_w = 3 * size
        rows = [
            _text_size(method, size)[0],
            _text_size(worst_label, size)[0] + bar_w + _text_size(best_label, size)[0] + 2 * gap,
        ]
        if note:
            rows.append(line_h + gap + _text_size(note, size)[0])
        lines = len(rows)
        return (max(rows) + 2 * pad, lines * line_h + (lines - 1) * gap + 2 * pad, pad, gap, line_h)

    box_w, box_h, pad, gap, line_h = layout(size)
    while (box_w > 0.6 * width or box_h > 0.45 * height) and size > MIN_TEXT_PX:
        size -= 1
        box_w, box_h, pad, gap, line_h = layout(size)
    if box_w + 2 * pad > width or box_h + 2 * pad > height:
        return  # too small a picture to hold a legend legibly without hiding it
    corners = [
        (width - box_w - pad, height - box_h - pad),
        (pad, height - box_h - pad),
        (width - box_w - pad, pad),
        (pad, pad),
    ]
    x0, y0 = next(
        (c for c in corners if not _intersects((*c, c[0] + box_w, c[1] + box_h), avoid)), corners[0]
    )
    draw = ImageDraw.Draw(canvas, "RGBA")
    draw.rectangle((x0, y0, x0 + box_w - 1, y0 + box_h - 1), fill=(0, 0, 0, 170))
    grey = int(np.clip(_luma(table[255]) - 25, 150, 220))
    text_colour = (grey, grey, grey)
    x, y = x0 + pad, y0 + pad
    _draw_text(canvas, (x, y), method, size, text_colour)
    y += line_h + gap
    _draw_text(canvas, (x, y), worst_label, size, text_colour)
    bar_x = x + _text_size(worst_label, size)[0] + gap
    bar_w, bar_h = 3 * size, max(4, line_h // 2)
    ramp = table[np.linspace(0, 255, bar_w).astype(int)]
    dim = (ramp.astype(np.float64) * 0.8).astype(np.uint8)  # below the real bright end
    canvas.paste(
        Image.fromarray(np.repeat(dim[None, :, :], bar_h, axis=0), "RGB"),
        (bar_x, y + (line_h - bar_h) // 2),
    )
    _draw_text(canvas, (bar_x + bar_w + gap, y), best_label, size, text_colour)
    if note:
        y += line_h + gap
        draw.rectangle((x, y, x + line_h - 1, y + line_h - 1), fill=NEUTRAL, outline=text_colour)
        _draw_text(canvas, (x + line_h + gap, y), note, size, text_colour)


def mark_colour(table: np.ndarray) -> tuple[int, int, int]:
    """The colour that rings the best score: unlike every colour of the colormap.

    Only colours darker than the colormap's bright end are candidates (when
    any is), so the mark never outshines the best score itself.

    >>> mark_colour(colormap_table("viridis"))
    (255, 0, 255)
    """
    bright = _luma(table[255])
    candidates = [c for c in MARK_COLOURS if _luma(c) < bright - 20] or list(MARK_COLOURS)
    colours = table.astype(np.float64)
    return max(candidates, key=lambda c: float(np.min(np.linalg.norm(colours - c, axis=1))))


def _mark_geometry(width: int, height: int) -> tuple[int, int]:
    # (line width, ring radius): about 1.5 and 8 px when shown 300 px wide
    side = max(width, height)
    line = max(1, round(side / 200))
    return line, max(3 + line, round(side / 36))


def _draw_mark(
    canvas: Image.Image, centre: tuple[int, int], colour: tuple[int, int, int]
) -> tuple[int, int, int, int]:
    """Ring the pixel ``centre`` (x, y), leaving it and its neighbours visible; its box."""
    line, radius = _mark_geometry(*canvas.size)
    x, y = centre
    outer = radius + line // 2
    draw = ImageDraw.Draw(canvas)
    if line > 1:  # a dark rim on both sides keeps the ring visible on any colour
        draw.ellipse(
            (x - outer - 1, y - outer - 1, x + outer + 1, y + outer + 1),
            outline=(0, 0, 0),
            width=line + 2,
        )
    draw.ellipse((x - outer, y - outer, x + outer, y + outer), outline=colour, width=line)
    reach = outer + 1
    return x - reach, y - reach, x + reach + 1, y + reach + 1


def render_heatmap(
    scores: np.ndarray,
    method: str,
    image_shape: tuple[int, int],
    template_shape: tuple[int, int],
    *,
    colormap: str = DEFAULT_COLORMAP,
    legend: bool = True,
    mark: bool | None = None,
    max_size: tuple[int, int] | None = None,
    over: np.ndarray | None = None,
    alpha: float = 0.6,
) -> Image.Image:
    """Draw a score map on the image's own pixel grid.

    Parameters
    ----------
    scores : (H-h+1, W-w+1) ndarray
        From ``match_template``; NaN where no window was scored (drawn grey,
        as the border), as ``ScoreMap.on_grid`` gives with a 1×1 window.
    method : str
        The method that made the scores (fixes the range and direction).
    image_shape : (H, W)
        The searched image's size: the picture is this size.
    template_shape : (h, w)
        Each score is drawn at the centre of its window, pixel
        (y + (h-1)//2, x + (w-1)//2), so the bright spot sits on the match.
    colormap : str
        A ``cmap`` colormap name; the best score is its bright end.
    legend : bool
        Draw the method, the colour range and the meaning of the grey border
        in a corner, in text sized to the picture.
    mark : bool, optional
        Ring the best score in a colour the colormap does not use, sized to
        the picture. By default, whenever there is a legend: ``legend=False``
        alone gives the bare map. A map where every score is the same has no
        best and gets no mark.
    max_size : (width, height), optional
        Draw the picture smaller, to fit this box (never larger). Each
        picture pixel then shows the best score of the window centres it
        covers (``shrink_scores``), so a peak a pixel wide stays visible.
    over : (H, W[, C]) array_like, optional
        The searched image on the 0–255 scale: blend the map over it.
    alpha : float
        With ``over``: the map's opacity, from 0 (only the image) to 1 (only
        the map). The mark and the legend are drawn opaque on top.

    Returns
    -------
    PIL.Image.Image
        RGB, H×W (or fitted to ``max_size``). The border no window centre
        reaches is neutral grey. ``thumbnail`` draws it again smaller from
        its scores, keeping peaks.

    Raises
    ------
    WaldoError
        The scores, or ``over``, do not fit the image's size; ``alpha`` is
        outside [0, 1].

    Examples
    --------
    >>> heat = render_heatmap(np.array([[0.0, 1.0]]), "ccorr_normed", (3, 4), (3, 3),
    ...                       legend=False)
    >>> heat.size, heat.getpixel((2, 1)), heat.getpixel((0, 0))
    ((4, 3), (253, 231, 37), (96, 96, 96))

    Blended half and half over a light grey image:

    >>> blend = render_heatmap(np.array([[0.0, 1.0]]), "ccorr_normed", (3, 4), (3, 3),
    ...                        legend=False, over=np.full((3, 4), 200.0), alpha=0.5)
    >>> blend.getpixel((2, 1)), blend.getpixel((0, 0))
    ((226, 216, 118), (148, 148, 148))
    """
    table = colormap_table(colormap)
    height, width = (int(v) for v in image_shape)
    h, w = (int(v) for v in template_shape)
    unit, lo, hi = goodness(np.asarray(scores), method)
    if unit.shape != (height - h + 1, width - w + 1):
        raise WaldoError(
            f"scores of shape {unit.shape} do not belong to a {w}×{h} template "
            f"on a {width}×{height} image"
        )
    if not 0.0 <= alpha <= 1.0:
        raise WaldoError(f"heatmap opacity {alpha:g} is outside 0 … 1")
    photo = None
    if over is not None:
        photo = np.asarray(over, dtype=np.float64)
        photo = to_rgb8(photo[:, :, None] if photo.ndim == 2 else photo)
        if photo.shape[:2] != (height, width):
            raise WaldoError(
                f"the image to blend under the heatmap is {photo.shape[1]}×"
                f"{photo.shape[0]}, the heatmap {width}×{height}"
            )
    # goodness on the image's grid, NaN where no window is centred
    grid = np.full((height, width), np.nan)
    top, left = (h - 1) // 2, (w - 1) // 2
    grid[top : top + unit.shape[0], left : left + unit.shape[1]] = unit
    best = None
    if (legend if mark is None else mark) and np.nanmax(unit, initial=-1.0) > np.nanmin(
        unit, initial=2.0
    ):
        row, col = np.unravel_index(np.nanargmax(unit), unit.shape)
        best = int(row) + top, int(col) + left
    size = (width, height) if max_size is None else _fit_size((width, height), *max_size)
    if size != (width, height):
        grid = _shrink(grid, (size[1], size[0]), np.fmax)
        if best is not None:
            best = (
                int(np.searchsorted(_block_starts(height, size[1]), best[0], "right")) - 1,
                int(np.searchsorted(_block_starts(width, size[0]), best[1], "right")) - 1,
            )
        if photo is not None:
            photo = np.asarray(
                Image.fromarray(photo, "RGB").resize(
                    size, Image.Resampling.LANCZOS, reducing_gap=3.0
                )
            )
    canvas = np.empty((*grid.shape, 3), np.uint8)
    canvas[:] = NEUTRAL
    known = np.isfinite(grid)
    canvas[known] = table[np.round(grid[known] * 255).astype(np.intp)]
    if photo is not None:
        canvas = np.round(alpha * canvas + (1.0 - alpha) * photo).astype(np.uint8)
    picture = Image.fromarray(canvas, "RGB")
    mark_box = None
    if best is not None:
        mark_box = _draw_mark(picture, (best[1], best[0]), mark_colour(table))
    if legend:
        # grey where no window is centred: a border, or places a map leaves NaN (a region)
        border = h > 1 or w > 1 or bool(np.isnan(unit).any())
        _draw_legend(picture, table, method, lo, hi, has_border=border, avoid=mark_box)
    picture.info[REDRAW_KEY] = partial(
        render_heatmap,
        scores,
        method,
        image_shape,
        template_shape,
        colormap=colormap,
        legend=legend,
        mark=mark,
        over=over,
        alpha=alpha,
    )
    return picture


def to_rgb8(pixels: np.ndarray) -> np.ndarray:
    """(H, W, C) float pixels on the 0–255 scale as (H, W, 3) uint8 for drawing.

    >>> to_rgb8(np.full((1, 1, 1), 300.0)).tolist()
    [[[255, 255, 255]]]
    """
    rgb = np.clip(np.round(pixels), 0, 255).astype(np.uint8)
    if rgb.shape[2] == 1:
        rgb = np.repeat(rgb, 3, axis=2)
    return rgb


def pick_box_colour(rgb: np.ndarray, matches: Sequence[Match]) -> tuple[int, int, int]:
    """The candidate colour farthest from the image's colours where boxes will be drawn.

    >>> pick_box_colour(np.full((10, 10, 3), (255, 0, 255), np.uint8), [])
    (0, 255, 0)
    """
    if matches:
        boxes = [(max(0, round(m.y)), max(0, round(m.x)), m.height, m.width) for m in matches]
        samples = np.concatenate([rgb[y : y + h, x : x + w].reshape(-1, 3) for y, x, h, w in boxes])
        if samples.size == 0:
            samples = rgb.reshape(-1, 3)
    else:
        samples = rgb.reshape(-1, 3)
    step = max(1, len(samples) // 4096)
    samples = samples[::step].astype(np.float64)
    best, best_distance = BOX_COLOURS[0], -1.0
    for colour in BOX_COLOURS:
        # a low percentile: the colour must stand out against most pixels,
        # not merely against their average
        distance = float(np.percentile(np.linalg.norm(samples - colour, axis=1), 10))
        if distance > best_distance:
            best, best_distance = colour, distance
    return best


def _short_score(score: float) -> str:
    return f"{score:.3f}" if abs(score) < 1000 else f"{score:.3g}"


def match_label(rank: int, score: float) -> str:
    """The label of a match on the overlay: rank, a colon, a space, the score.

    The colon keeps the rank from running into the score ("#1 0.835" read as
    "#10.835" in a small font).

    >>> match_label(1, 0.8351), match_label(10, -0.5)
    ('#1: 0.835', '#10: -0.500')
    """
    return f"#{rank}: {_short_score(score)}"


def _turned(match: Match) -> bool:
    """Whether a match's template was turned by other than a multiple of 90°."""
    return match.corners is not None and match.angle is not None and match.angle % 90 != 0


def render_overlay(
    pixels: np.ndarray, matches: Sequence[Match], *, labels: Sequence[str] | None = None
) -> Image.Image:
    """The image with a box, rank and score for every match; the best one emphasised.

    Line width and label size scale with the image (``legible_text_px``). Boxes are outlined in a
    colour that stands out on this image, with a thin dark rim for contrast. A match of a
    template turned by other than a multiple of 90° (with ``corners``) is outlined turned,
    along the template's own edges, not its window's.

    Parameters
    ----------
    pixels : (H, W, C) ndarray
        The searched image on the 0–255 scale (grey is drawn as RGB).
    matches : sequence of Match
        Best first, as ``find_peaks`` returns them.
    labels : sequence of str, optional
        One label per match (default: ``match_label(rank, score)``), for
        the matches of several templates on one picture.

    Returns
    -------
    PIL.Image.Image
        RGB, the image's size.

    Examples
    --------
    >>> out = render_overlay(np.zeros((40, 60, 3)), [Match(10, 10, 20, 15, 0.9)])
    >>> out.size, out.getpixel((10, 10)) != (0, 0, 0), out.getpixel((58, 2))
    ((60, 40), True, (0, 0, 0))
    """
    rgb = to_rgb8(pixels)
    picture = Image.fromarray(rgb, "RGB")
    if not matches:
        return picture
    height, width = rgb.shape[:2]
    colour = pick_box_colour(rgb, matches)
    rim = (0, 0, 0) if sum(colour) > 300 else (255, 255, 255)
    line = max(1, round(min(width, height) / 250))
    size = legible_text_px(width, height)
    line_top = _text_box("Ag", size)[1]
    draw = ImageDraw.Draw(picture)
    # worst first, so the best match is drawn on top of any overlap
    for rank in range(len(matches), 0, -1):
        m = matches[rank - 1]
        thick = line * 2 if rank == 1 else line
        x0, y0 = round(m.x), round(m.y)
        x1, y1 = x0 + m.width - 1, y0 + m.height - 1
        if _turned(m):
            # the template as drawn, turned: its own four corners
            outline = [(float(x), float(y)) for x, y in m.corners or ()]
            draw.line([*outline, outline[0]], fill=rim, width=thick + 2, joint="curve")
            draw.line([*outline, outline[0]], fill=colour, width=thick, joint="curve")
            x0, y0 = (round(min(c[k] for c in outline)) for k in (0, 1))
            y1 = round(max(c[1] for c in outline))
        else:
            draw.rectangle((x0 - thick, y0 - thick, x1 + thick, y1 + thick), outline=rim, width=1)
            draw.rectangle(
                (x0 - thick + 1, y0 - thick + 1, x1 + thick - 1, y1 + thick - 1),
                outline=colour,
                width=thick,
            )
        label = match_label(rank, m.score) if labels is None else labels[rank - 1]
        left, top, right, bottom = _text_box(label, size)
        tw, th = right - left, bottom - top
        pad = max(1, th // 4)
        lx = min(max(0, x0 - thick), max(0, width - tw - 2 * pad))
        ly = y0 - thick - th - 2 * pad
        if ly < 0:  # no room above: put the label under the box
            ly = min(y1 + thick + 1, max(0, height - th - 2 * pad))
        draw.rectangle(
            (lx, ly, lx + tw + 2 * pad, ly + th + 2 * pad), fill=colour if rank == 1 else rim
        )
        _draw_text(
            picture,
            (lx + pad, ly + pad - (top - line_top)),
            label,
            size,
            rim if rank == 1 else colour,
        )
    return picture


def render_preview(
    pixels: np.ndarray, matches: Sequence[Match], max_width: int, max_height: int
) -> Image.Image:
    """A small overlay for a terminal: the image shrunk first, then the boxes drawn on it.

    Boxes drawn at full size would blur away when shrunk; labels would not
    fit, so only boxes are drawn (the table beside it has the numbers).

    >>> small = render_preview(np.zeros((400, 800, 3)), [Match(100, 100, 40, 40, 1.0)], 80, 80)
    >>> small.size, small.getpixel((10, 10)) != (0, 0, 0)
    ((80, 40), True)
    """
    rgb = to_rgb8(pixels)
    height, width = rgb.shape[:2]
    small = Image.fromarray(thumbnail(Image.fromarray(rgb, "RGB"), max_width, max_height))
    if not matches:
        return small
    sx, sy = small.size[0] / width, small.size[1] / height
    colour = pick_box_colour(rgb, matches)
    draw = ImageDraw.Draw(small)
    for rank in range(len(matches), 0, -1):
        m = matches[rank - 1]
        if _turned(m):
            outline = [(x * sx, y * sy) for x, y in m.corners or ()]
            draw.line([*outline, outline[0]], fill=colour, width=2 if rank == 1 else 1)
            continue
        box = (
            int(m.x * sx) - 1,
            int(m.y * sy) - 1,
            int((m.x + m.width) * sx),
            int((m.y + m.height) * sy),
        )
        draw.rectangle(box, outline=colour, width=2 if rank == 1 else 1)
    return small


def thumbnail(picture: Image.Image, max_width: int, max_height: int) -> np.ndarray:
    """Downscale a picture to fit a box (never upscale), as (h, w, 3) uint8.

    A heatmap from ``render_heatmap`` is drawn again at the small size from
    its scores, so its peaks and its mark survive (``max_size``); any other
    picture is resampled (Lanczos), which averages.

    >>> thumbnail(Image.new("RGB", (400, 100)), 80, 80).shape
    (20, 80, 3)
    >>> scores = np.zeros((40, 40)); scores[13, 27] = 1.0
    >>> heat = render_heatmap(scores, "ccorr_normed", (40, 40), (1, 1), legend=False)
    >>> small = thumbnail(heat, 10, 10)  # the peak's 4×4 block keeps its colour
    >>> small.shape, tuple(small[3, 6].tolist())
    ((10, 10, 3), (253, 231, 37))
    """
    size = _fit_size(picture.size, max_width, max_height)
    redraw = picture.info.get(REDRAW_KEY)
    if redraw is not None and size != picture.size:
        return np.asarray(redraw(max_size=(max_width, max_height)))
    small = picture.convert("RGB").resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.asarray(small)
