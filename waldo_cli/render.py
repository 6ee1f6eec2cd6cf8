"""Pictures of a search: the score heatmap and the overlay of boxes (Pillow only).

Both return Pillow images; ``io.save_image`` writes them to disk atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

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
BOX_COLOURS = ((255, 0, 255), (0, 255, 255), (255, 255, 0), (0, 255, 0), (255, 64, 0),
               (255, 255, 255), (0, 0, 0))


@cache
def colormap_table(name: str = DEFAULT_COLORMAP) -> np.ndarray:
    """A (256, 3) uint8 lookup table for a colormap from the ``cmap`` package.

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
    """
    from cmap import Colormap

    try:
        lut = Colormap(name).lut(256)
    except (ValueError, KeyError, TypeError):
        raise WaldoError(f"unknown colormap {name!r} (try viridis, magma, inferno, plasma, "
                         "cividis, turbo)") from None
    return np.clip(np.round(np.asarray(lut)[:, :3] * 255), 0, 255).astype(np.uint8)


def score_range(scores: np.ndarray, method: str) -> tuple[float, float]:
    """The (low, high) scores the colormap spans: fixed for normed methods, observed otherwise.

    >>> score_range(np.array([[3.0, 7.0]]), "ccorr"), score_range(np.zeros((1, 1)), "ccoeff_normed")
    ((3.0, 7.0), (-1.0, 1.0))
    """
    method = check_method(method)
    if method in SCORE_RANGES:
        return SCORE_RANGES[method]
    return float(np.min(scores)), float(np.max(scores))


def goodness(scores: np.ndarray, method: str) -> tuple[np.ndarray, float, float]:
    """Scores mapped to [0, 1] with 1 the best match, and the range used.

    The ``sqdiff`` methods are flipped, so the best match is always the
    bright end of the colormap.

    >>> g, lo, hi = goodness(np.array([[0.0, 0.25, 1.0]]), "sqdiff_normed")
    >>> g.tolist(), lo, hi
    ([[1.0, 0.75, 0.0]], 0.0, 1.0)
    """
    lo, hi = score_range(scores, method)
    span = hi - lo
    if span <= 0:
        # every window scored the same: nothing stands out
        unit = np.full(scores.shape, 0.5)
    else:
        unit = np.clip((scores.astype(np.float64) - lo) / span, 0.0, 1.0)
    if lower_is_better(method):
        unit = 1.0 - unit
    return unit, lo, hi


@cache
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: a fixed bitmap font
        return ImageFont.load_default()


def _text_size(draw: ImageDraw.ImageDraw, text: str, font) -> tuple[int, int]:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return right - left, bottom - top


def _draw_legend(canvas: Image.Image, table: np.ndarray, method: str, lo: float, hi: float,
                 has_border: bool) -> None:
    """A small translucent legend in the bottom-right corner.

    It is drawn dimmer than the colormap's bright end, so the legend never
    outshines the brightest score in the picture.
    """
    width, height = canvas.size
    font_size = max(9, min(width, height) // 40)
    font = _font(font_size)
    draw = ImageDraw.Draw(canvas, "RGBA")
    flipped = lower_is_better(method)
    best, worst = (lo, hi) if flipped else (hi, lo)
    left_label, right_label = f"{worst:.3g}", f"{best:.3g}"
    caption = f"{method}: {left_label} … {right_label} (best)"
    note = "grey: no window centre" if has_border else ""
    bar_w = max(40, width // 5)
    bar_h = max(5, font_size // 2)
    text_w = max(_text_size(draw, caption, font)[0], _text_size(draw, note, font)[0] if note else 0)
    line_h = _text_size(draw, "Ag", font)[1] + 2
    pad = max(3, font_size // 3)
    box_w = max(bar_w, text_w) + 2 * pad
    box_h = bar_h + line_h * (2 if note else 1) + 3 * pad
    if box_w > width or box_h > height:
        return  # too small an image to hold a legend without hiding it
    x0, y0 = width - box_w - pad, height - box_h - pad
    draw.rectangle((x0, y0, x0 + box_w, y0 + box_h), fill=(0, 0, 0, 170))
    ramp = table[np.linspace(0, 255, bar_w).astype(int)]
    dim = (ramp.astype(np.float64) * 0.8).astype(np.uint8)  # below the real bright end
    bar = Image.fromarray(np.repeat(dim[None, :, :], bar_h, axis=0), "RGB")
    canvas.paste(bar, (x0 + pad, y0 + pad))
    text_colour = (175, 175, 175, 255)
    draw.text((x0 + pad, y0 + 2 * pad + bar_h), caption, font=font, fill=text_colour)
    if note:
        draw.text((x0 + pad, y0 + 2 * pad + bar_h + line_h), note, font=font, fill=text_colour)


def render_heatmap(scores: np.ndarray, method: str, image_shape: tuple[int, int],
                   template_shape: tuple[int, int], *, colormap: str = DEFAULT_COLORMAP,
                   legend: bool = True) -> Image.Image:
    """Draw a score map on the image's own pixel grid.

    Parameters
    ----------
    scores : (H-h+1, W-w+1) ndarray
        From ``match_template``.
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
        Draw the range and the meaning of the grey border in a corner.

    Returns
    -------
    PIL.Image.Image
        RGB, H×W. The border no window centre reaches is neutral grey.

    Examples
    --------
    >>> heat = render_heatmap(np.array([[0.0, 1.0]]), "ccorr_normed", (3, 4), (3, 3),
    ...                       legend=False)
    >>> heat.size, heat.getpixel((2, 1)), heat.getpixel((0, 0))
    ((4, 3), (253, 231, 37), (96, 96, 96))
    """
    table = colormap_table(colormap)
    height, width = (int(v) for v in image_shape)
    h, w = (int(v) for v in template_shape)
    unit, lo, hi = goodness(np.asarray(scores), method)
    if unit.shape != (height - h + 1, width - w + 1):
        raise WaldoError(f"scores of shape {unit.shape} do not belong to a {w}×{h} template "
                         f"on a {width}×{height} image")
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = NEUTRAL
    top, left = (h - 1) // 2, (w - 1) // 2
    canvas[top:top + unit.shape[0], left:left + unit.shape[1]] = table[
        np.round(unit * 255).astype(np.intp)]
    picture = Image.fromarray(canvas, "RGB")
    if legend:
        _draw_legend(picture, table, method, lo, hi, has_border=h > 1 or w > 1)
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
        samples = np.concatenate([rgb[y:y + h, x:x + w].reshape(-1, 3) for y, x, h, w in boxes])
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


def render_overlay(pixels: np.ndarray, matches: Sequence[Match]) -> Image.Image:
    """The image with a box, rank and score for every match; the best one emphasised.

    Line width and label size scale with the image. Boxes are outlined in a
    colour that stands out on this image, with a thin dark rim for contrast.

    Parameters
    ----------
    pixels : (H, W, C) ndarray
        The searched image on the 0–255 scale (grey is drawn as RGB).
    matches : sequence of Match
        Best first, as ``find_peaks`` returns them.

    Returns
    -------
    PIL.Image.Image
        RGB, the image's size.

    Examples
    --------
    >>> out = render_overlay(np.zeros((40, 60, 3)), [Match(10, 10, 20, 15, 0.9)])
    >>> out.size, out.getpixel((10, 10)) != (0, 0, 0), out.getpixel((50, 38))
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
    font = _font(max(9, min(width, height) // 42))
    draw = ImageDraw.Draw(picture)
    # worst first, so the best match is drawn on top of any overlap
    for rank in range(len(matches), 0, -1):
        m = matches[rank - 1]
        thick = line * 2 if rank == 1 else line
        x0, y0 = round(m.x), round(m.y)
        x1, y1 = x0 + m.width - 1, y0 + m.height - 1
        draw.rectangle((x0 - thick, y0 - thick, x1 + thick, y1 + thick), outline=rim, width=1)
        draw.rectangle((x0 - thick + 1, y0 - thick + 1, x1 + thick - 1, y1 + thick - 1),
                       outline=colour, width=thick)
        label = f"#{rank} {_short_score(m.score)}"
        tw, th = _text_size(draw, label, font)
        pad = max(1, th // 4)
        lx = min(max(0, x0 - thick), max(0, width - tw - 2 * pad))
        ly = y0 - thick - th - 2 * pad
        if ly < 0:  # no room above: put the label under the box
            ly = min(y1 + thick + 1, max(0, height - th - 2 * pad))
        draw.rectangle((lx, ly, lx + tw + 2 * pad, ly + th + 2 * pad),
                       fill=colour if rank == 1 else rim)
        left, top, _, _ = draw.textbbox((0, 0), label, font=font)
        draw.text((lx + pad - left, ly + pad - top), label, font=font,
                  fill=rim if rank == 1 else colour)
    return picture


def render_preview(pixels: np.ndarray, matches: Sequence[Match], max_width: int,
                   max_height: int) -> Image.Image:
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
        box = (int(m.x * sx) - 1, int(m.y * sy) - 1, int((m.x + m.width) * sx),
               int((m.y + m.height) * sy))
        draw.rectangle(box, outline=colour, width=2 if rank == 1 else 1)
    return small


def thumbnail(picture: Image.Image, max_width: int, max_height: int) -> np.ndarray:
    """Downscale a picture to fit a box (never upscale), as (h, w, 3) uint8.

    >>> thumbnail(Image.new("RGB", (400, 100)), 80, 80).shape
    (20, 80, 3)
    """
    width, height = picture.size
    scale = min(1.0, max_width / width, max_height / height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = picture.convert("RGB").resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.asarray(small)
