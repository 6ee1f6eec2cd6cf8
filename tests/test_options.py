"""Issue #16: regions, many templates, every match, grey, a word when nothing matches, and the
rest of what people who match templates ask for."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import record_resampled_scales

from waldo_cli.errors import ImageReadError, OutputError, ShapeError, WaldoError

# ---------------------------------------------------------------------------
# errors: ValueError and OSError, as scientific Python expects


def test_every_waldo_error_is_a_value_error():
    for error in (WaldoError("x"), ShapeError("x"), ImageReadError("a.png", "gone")):
        assert isinstance(error, ValueError)


def test_file_errors_are_os_errors():
    assert isinstance(ImageReadError("a.png", "no such file"), OSError)
    assert isinstance(OutputError("out.png: the folder x does not exist"), OSError)
    assert not isinstance(ShapeError("x"), OSError)


def test_api_raises_value_error_for_a_bad_argument():
    from waldo_cli import find_peaks, match_template

    with pytest.raises(ValueError, match="unknown method"):
        match_template(np.zeros((5, 5)), np.ones((2, 2)), "nope")
    with pytest.raises(ValueError, match="larger than image"):
        match_template(np.zeros((5, 5)), np.ones((6, 2)))
    with pytest.raises(ValueError, match="top_k"):
        find_peaks(np.zeros((3, 3)), "ccorr", (1, 1), top_k=0)


def test_api_raises_os_error_for_a_file_it_cannot_read(tmp_path):
    from waldo_cli import load_image

    with pytest.raises(OSError, match="no such file"):
        load_image(tmp_path / "gone.png")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(OSError, match="not an image"):
        load_image(tmp_path / "text.png")


@pytest.mark.parametrize(
    ("text", "needle"),
    [("1:2:0", "the step must be positive"), ("2:1:1", "the range is empty")],
)
def test_range_rules_keep_their_messages(text, needle):
    """parse_range's own WaldoErrors are ValueErrors now: its except must not rewrite them."""
    from waldo_cli.variants import parse_range

    with pytest.raises(WaldoError, match=needle):
        parse_range(text, "--scales")


@pytest.mark.parametrize(
    ("head", "needle"), [(b"PK\x03\x04", "an .npz archive"), (b"hello!", "no .npy header")]
)
def test_kernel_file_rules_keep_their_messages(tmp_path, head, needle):
    from waldo_cli.conv import _load_npy

    (tmp_path / "k.npy").write_bytes(head + b"rest of the file")
    with pytest.raises(WaldoError) as caught:
        _load_npy(str(tmp_path / "k.npy"), 1)
    assert needle in str(caught.value) and "damaged" not in str(caught.value)


def test_an_output_error_from_the_writer_keeps_its_message(tmp_path):
    from waldo_cli.io import write_atomically

    def fail(fh):
        raise OutputError("special: already explained")

    with pytest.raises(OutputError) as caught:
        write_atomically(tmp_path / "x.bin", fail)
    assert str(caught.value) == "special: already explained"
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------
# every match: -k all, against a full sort with suppression


def _peaks_as_tuples(matches):
    return [(m.x, m.y, m.score, m.margin) for m in matches]


def _assert_same_peaks(got, expected):
    assert [(x, y) for x, y, _, _ in got] == [(x, y) for x, y, _, _ in expected]
    for (_, _, score, margin), (_, _, ref_score, ref_margin) in zip(got, expected, strict=True):
        assert score == pytest.approx(ref_score)
        if ref_margin is None:
            assert margin is None
        else:
            assert margin == pytest.approx(ref_margin, abs=1e-6)


@pytest.mark.parametrize("method", ["ccoeff_normed", "sqdiff_normed"])
@pytest.mark.parametrize("threshold", [None, 0.5])
def test_every_peak_equals_a_full_sort_with_suppression(method, threshold, rng):
    from naive import find_peaks_ref

    from waldo_cli import find_peaks

    # few distinct values: many ties, decided by position
    scores = rng.integers(0, 20, (23, 31)).astype(np.float32) / 19
    lower = method.startswith("sqdiff")
    got = find_peaks(scores, method, (5, 7), top_k=None, threshold=threshold)
    _assert_same_peaks(_peaks_as_tuples(got), find_peaks_ref(scores, lower, threshold, 2))


def test_every_peak_on_a_map_with_thousands_of_peaks(rng):
    from naive import find_peaks_ref

    from waldo_cli import find_peaks

    scores = rng.random((150, 160)).astype(np.float32)
    got = find_peaks(scores, "ccorr_normed", (4, 4), top_k=None, threshold=0.25)
    assert len(got) > 3000
    _assert_same_peaks(_peaks_as_tuples(got), find_peaks_ref(scores, False, 0.25, 2))
    # and -k N is the first N of them
    first = find_peaks(scores, "ccorr_normed", (4, 4), top_k=40, threshold=0.25)
    assert _peaks_as_tuples(first) == _peaks_as_tuples(got)[:40]


def test_nan_is_no_window(rng):
    from naive import find_peaks_ref

    from waldo_cli import find_peaks

    scores = rng.random((20, 20)).astype(np.float32)
    scores[:, :8] = np.nan
    got = find_peaks(scores, "ccoeff_normed", (3, 3), top_k=None)
    assert all(m.x >= 8 for m in got)
    _assert_same_peaks(_peaks_as_tuples(got), find_peaks_ref(scores, False, None, 1))
    lone = np.full((5, 5), np.nan, np.float32)
    lone[2, 2] = 0.3
    [match] = find_peaks(lone, "ccoeff_normed", (3, 3), top_k=None)
    assert (match.x, match.y, match.margin) == (2, 2, None)


def test_margin_tells_a_clear_match_from_a_coin_toss():
    from waldo_cli import find_peaks

    clear = np.zeros((20, 20), np.float32)
    clear[5, 5], clear[15, 15] = 0.9, 0.4
    [best] = find_peaks(clear, "ccoeff_normed", (4, 4))
    assert best.margin == pytest.approx(0.5)
    toss = clear.copy()
    toss[15, 15] = 0.9
    assert find_peaks(toss, "ccoeff_normed", (4, 4))[0].margin == pytest.approx(0.0)
    # sqdiff: lower is better, and a positive margin still means clear
    [best] = find_peaks(1 - clear, "sqdiff_normed", (4, 4))
    assert best.margin == pytest.approx(0.5)


# ---------------------------------------------------------------------------
# the Python API: a search region, grey, several templates, geometry


def _loaded(pixels, name):
    from waldo_cli.io import LoadedImage

    pixels = np.asarray(pixels, np.float32)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    return LoadedImage(np.ascontiguousarray(pixels), None, "RGB", name)


def _search(image, template, **options):
    from waldo_cli.search import Searcher, SearchOptions

    return Searcher(_loaded(template, "t.png"), SearchOptions(**options)).search(
        _loaded(image, "i.png")
    )


def _where(result):
    return [(m.x, m.y, m.width, m.height) for m in result.matches]


@pytest.fixture(scope="module")
def scene():
    """A 90×120 photograph crop with a 14×18 template cut from it at (x=70, y=40)."""
    import skimage.data

    image = skimage.data.astronaut()[150:240, 120:240].astype(np.float32)
    return image, image[40:54, 70:88].copy()


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"method": "sqdiff_normed", "top_k": None, "threshold": 0.6},
        {"scales": (1.0, 0.8), "angles": (0.0, 90.0), "top_k": 3, "threshold": None},
    ],
)
def test_region_equals_searching_the_crop_and_shifting(scene, options):
    image, template = scene
    x, y, w, h = 50, 25, 60, 45
    region = _search(image, template, region=(x, y, w, h), **options)
    crop = _search(image[y : y + h, x : x + w], template, **options)
    assert _where(region) == [(mx + x, my + y, mw, mh) for mx, my, mw, mh in _where(crop)]
    assert [m.score for m in region.matches] == [m.score for m in crop.matches]
    np.testing.assert_array_equal(region.scores.values, crop.scores.values)
    assert region.scores.origin == (crop.scores.origin[0] + y, crop.scores.origin[1] + x)
    # on the image's grid, the scores sit where the crop's would, shifted; NaN elsewhere
    grid = region.scores.on_grid(image.shape[:2])
    np.testing.assert_array_equal(
        grid[y : y + h, x : x + w], crop.scores.on_grid((h, w)), strict=False
    )
    outside = np.ones(image.shape[:2], bool)
    outside[y : y + h, x : x + w] = False
    assert np.isnan(grid[outside]).all()


REGIONS = {
    "top": (30, 0, 50, 40),
    "bottom": (30, 50, 50, 40),
    "left": (0, 20, 45, 40),
    "right": (75, 20, 45, 40),
    "top-left corner": (0, 0, 40, 35),
    "bottom-right corner": (80, 55, 40, 35),
    "whole image": (0, 0, 120, 90),
}


@pytest.mark.parametrize("where", REGIONS)
def test_region_touching_a_border_equals_the_crop(scene, where):
    """Without --pad, a region at any border is its crop, shifted: no window leaves it."""
    image, template = scene
    x, y, w, h = REGIONS[where]
    options = {"top_k": None, "threshold": 0.2}
    region = _search(image, template, region=(x, y, w, h), **options)
    crop = _search(image[y : y + h, x : x + w], template, **options)
    assert _where(region) == [(mx + x, my + y, mw, mh) for mx, my, mw, mh in _where(crop)]
    np.testing.assert_array_equal(region.scores.values, crop.scores.values)


@pytest.mark.parametrize("pad", ["zero", "reflect", "edge"])
@pytest.mark.parametrize("where", REGIONS)
def test_padded_region_at_an_edge_lets_windows_hang_over_it(scene, pad, where):
    """Reference: the whole image's padded search, keeping the windows inside the region
    or hanging over the image's edge where the region reaches it."""
    from waldo_cli import find_peaks
    from waldo_cli.engine import pad_widths

    image, template = scene
    h, w = template.shape[:2]
    x, y, rw, rh = REGIONS[where]
    whole = _search(image, template, pad=pad, engine="direct").scores
    (top, bottom), (left, right) = pad_widths((h, w))
    height, width = image.shape[:2]
    # window centres allowed: inside the region by half a window, except at the image's edges
    r0 = y if y == 0 else y + top
    r1 = y + rh if y + rh == height else y + rh - bottom
    c0 = x if x == 0 else x + left
    c1 = x + rw if x + rw == width else x + rw - right
    expected = np.full((height, width), np.nan, np.float32)
    expected[r0:r1, c0:c1] = whole.values[r0:r1, c0:c1]
    region = _search(image, template, pad=pad, engine="direct", region=(x, y, rw, rh))
    np.testing.assert_allclose(region.scores.on_grid((height, width)), expected, atol=1e-5)
    reference = [
        (m.x - left, m.y - top)
        for m in find_peaks(expected, "ccoeff_normed", (h, w), top_k=5, threshold=-1.0)
    ]
    got = _search(
        image, template, pad=pad, engine="direct", region=(x, y, rw, rh), top_k=5, threshold=-1.0
    )
    assert [(m.x, m.y) for m in got.matches] == reference
    for m in got.matches:  # inside, or over the image's edge only
        assert (m.x >= x or x == 0) and (m.y >= y or y == 0)
        assert (m.x + w <= x + rw or x + rw == width) and (m.y + h <= y + rh or y + rh == height)


def test_padded_variants_in_a_region_keep_each_variant_to_its_own_overhang(scene):
    """Variants of several sizes in a region at the top-left corner: each variant's windows
    may hang over the image's edge as far as its own padded search lets them, and no
    further into the image than the region. Reference: each variant searched alone over
    the whole padded image, cut to those windows, the best kept at each centre."""
    from waldo_cli.engine import pad_widths
    from waldo_cli.variants import make_variants

    image, template = scene
    scales = (1.0, 0.6, 1.4)
    height, width = image.shape[:2]
    expected = np.full((height, width), -np.inf)
    for variant in make_variants(template, None, scales, (0.0,), False):
        alone = _search(image, variant.pixels, pad="edge", engine="direct").scores.values
        (_, bottom), (_, right) = pad_widths(variant.shape)
        cut = np.full((height, width), -np.inf)
        cut[: 50 - bottom, : 70 - right] = alone[: 50 - bottom, : 70 - right]
        expected = np.maximum(expected, cut)
    expected[np.isinf(expected)] = np.nan
    region = _search(
        image, template, pad="edge", engine="direct", scales=scales, region=(0, 0, 70, 50)
    )
    np.testing.assert_allclose(region.scores.on_grid((height, width)), expected, atol=1e-5)
    every = _search(
        image,
        template,
        pad="edge",
        scales=scales,
        region=(0, 0, 70, 50),
        top_k=None,
        threshold=None,
    )
    for m in every.matches:
        assert m.x >= -((m.width - 1) // 2) and m.y >= -((m.height - 1) // 2)
        assert m.x + m.width <= 70 and m.y + m.height <= 50


def test_variants_larger_than_the_region_are_never_made(scene, monkeypatch):
    """A region bounds the variants as the image does (#13): one that cannot fit in it is
    left out before it is resampled, counted as skipped, and the search equals the crop's."""
    image, template = scene  # 120×90, an 18×14 template at (70, 40)
    made = record_resampled_scales(monkeypatch)
    region = (60, 30, 30, 25)  # 30×25: the 18×14 template fits, its 2× copy (36×28) does not
    found = _search(image, template, region=region, scales=(1.0, 2.0, 0.8), threshold=None)
    assert sorted(made) == [0.8, 1.0]
    doc = found.report.to_dict()
    assert (doc["variants"]["searched"], doc["variants"]["skipped"]) == (2, 1)
    crop = _search(image[30:55, 60:90], template, scales=(1.0, 2.0, 0.8), threshold=None)
    assert [(m.x + 60, m.y + 30, m.scale) for m in crop.matches] == [
        (m.x, m.y, m.scale) for m in found.matches
    ]
    assert (found.matches[0].x, found.matches[0].y) == (70, 40)


@pytest.mark.parametrize(
    ("region", "needle"),
    [
        ((100, 0, 40, 40), "not inside the image (120×90)"),
        ((-1, 0, 40, 40), "not inside"),
        ((0, 0, 0, 40), "not inside"),
        ((10, 10, 17, 40), "smaller than the template (18×14)"),
    ],
)
def test_bad_regions_are_errors(scene, region, needle):
    image, template = scene
    with pytest.raises(WaldoError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        _search(image, template, region=region)


def test_grey_equals_matching_the_luma_images(scene):
    from PIL import Image

    from waldo_cli.io import to_grey

    image, template = scene
    grey = _search(image, template, grey=True, top_k=3, threshold=None)
    luma = _search(to_grey(image), to_grey(template), top_k=3, threshold=None)
    assert grey.matches == luma.matches
    np.testing.assert_array_equal(grey.scores.values, luma.scores.values)
    assert grey.pixels.shape[2] == 1 and grey.report.to_dict()["grey"] is True
    # and the same places as Pillow's L conversion (which rounds to 8 bits)
    as_l = [
        np.asarray(Image.fromarray(a.astype(np.uint8)).convert("L"), np.float32)
        for a in (image, template)
    ]
    pillow = _search(*as_l, top_k=3, threshold=None)
    assert _where(grey) == _where(pillow)
    np.testing.assert_allclose(
        [m.score for m in grey.matches], [m.score for m in pillow.matches], atol=2e-2
    )


def _multi(image, templates, masks=None, **options):
    from waldo_cli.search import MultiSearcher, Searcher, SearchOptions

    masks = masks or [None] * len(templates)
    searchers = [
        Searcher(_loaded(t, f"t{k}.png"), SearchOptions(**options), mask=m)
        for k, (t, m) in enumerate(zip(templates, masks, strict=True))
    ]
    loaded = _loaded(image, "i.png")
    return MultiSearcher(searchers).search(loaded), [s.search(loaded) for s in searchers]


@pytest.mark.parametrize(
    "options",
    [
        {"top_k": 3, "threshold": None},
        {"engine": "fft", "pad": "reflect", "top_k": None, "threshold": 0.4},
        {"engine": "direct", "method": "sqdiff"},
        {"scales": (1.0, 0.75), "angles": (0.0, 180.0), "flip": True, "top_k": 2},
        {"region": (20, 10, 90, 70), "pad": "edge", "top_k": 4, "threshold": None},
        {"grey": True},
    ],
)
def test_several_templates_equal_separate_runs(scene, options):
    image, _ = scene
    templates = [image[40:54, 70:88], image[10:40, 5:35], image[40:54, 70:88], image[60:68, 90:99]]
    mask = np.ones(templates[1].shape[:2], np.float32)
    mask[:8, :8] = 0
    together, alone = _multi(image, templates, masks=[None, mask, None, None], **options)
    assert [r.report.template for r in together] == ["t0.png", "t1.png", "t2.png", "t3.png"]
    for shared, single in zip(together, alone, strict=True):
        assert _where(shared) == _where(single)
        np.testing.assert_allclose(
            [m.score for m in shared.matches], [m.score for m in single.matches], atol=1e-6
        )
        assert all(m.template == single.report.template for m in shared.matches)
        np.testing.assert_allclose(shared.scores.values, single.scores.values, atol=1e-6)
    # duplicates: the same template twice gives the same answer twice
    assert _where(together[0]) == _where(together[2])


def test_several_templates_share_the_image_tiles(scene, monkeypatch):
    """One pass over the image for four templates on the FFT path: match_templates once."""
    from waldo_cli import search

    calls = []
    real = search.match_templates

    def counted(*a, **k):
        calls.append(len(a[1]))
        return real(*a, **k)

    monkeypatch.setattr(search, "match_templates", counted)
    image, _ = scene
    templates = [image[0:30, 0:40], image[30:60, 40:80], image[50:80, 70:110], image[5:25, 5:45]]
    _multi(image, templates, engine="fft")
    assert calls == [4]


def test_every_match_knows_its_centre_template_and_margin(scene):
    image, template = scene
    [match] = _search(image, template).matches
    doc = match.to_dict()
    assert (doc["cx"], doc["cy"]) == (70 + 18 / 2, 40 + 14 / 2)
    assert doc["template"] == "t.png" and doc["margin"] > 0.1
    assert "corners" not in doc  # an upright, unscaled template


def test_best_is_reported_when_nothing_passes(scene):
    image, template = scene
    result = _search(image, template, threshold=1.5)
    assert result.matches == []
    best = result.report.to_dict()["best"]
    assert (best["x"], best["y"]) == (70, 40) and best["score"] == pytest.approx(1.0, abs=1e-5)
    lower = _search(image, template[::-1], method="sqdiff_normed", threshold=0.0)
    best = lower.report.to_dict()["best"]
    expected = np.unravel_index(np.argmin(lower.scores.values), lower.scores.values.shape)
    assert (best["y"], best["x"]) == tuple(int(v) for v in expected)


def _turned_scene(angle, scale=1.0, flip=False):
    """A template with four differently coloured corner blocks, pasted turned into a scene."""
    from PIL import Image

    rng = np.random.default_rng(3)
    template = rng.integers(60, 200, (24, 36, 3)).astype(np.uint8)
    for (r, c), colour in zip(
        [(0, 0), (0, 31), (19, 31), (19, 0)],
        [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)],
        strict=True,
    ):
        template[r : r + 5, c : c + 5] = colour
    picture = Image.fromarray(template)
    if scale != 1.0:
        picture = picture.resize((round(36 * scale), round(24 * scale)), Image.Resampling.LANCZOS)
    turned = picture.rotate(angle, Image.Resampling.BICUBIC, expand=True)
    if flip:
        turned = turned.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    # no pure colours in the scene: the corner blocks are the only ones
    scene = rng.integers(60, 200, (160, 200, 3)).astype(np.uint8)
    x, y = 70, 50
    tw, th = turned.size
    box = np.asarray(turned)
    # paste only the turned template itself (its corners stay the scene's)
    mask = np.asarray(
        Image.new("L", picture.size, 255).rotate(angle, Image.Resampling.NEAREST, expand=True)
    )
    if flip:
        mask = mask[:, ::-1]
    region = scene[y : y + th, x : x + tw]
    region[mask > 0] = box[mask > 0]
    return scene, template, (x, y, tw, th)


def _centroid(image, colour, box):
    x, y, w, h = box
    close = np.all(np.abs(image[y : y + h, x : x + w].astype(int) - colour) < 40, axis=2)
    ys, xs = np.nonzero(close)
    return x + xs.mean() + 0.5, y + ys.mean() + 0.5


@pytest.mark.parametrize(
    ("angle", "scale", "flip"),
    [(90, 1.0, False), (30, 1.0, False), (-40, 1.25, False), (150, 1.0, True), (0, 1.5, False)],
)
def test_turned_corners_against_a_geometric_reference(angle, scale, flip):
    """Each reported corner lies next to the corner block the template had there: the
    block's centre is 2.5 px in from both of the corner's edges, turned with it."""
    import math

    scene, template, box = _turned_scene(angle, scale, flip)
    result = _search(
        scene, template, scales=(1.0, scale), angles=(0.0, float(angle)), flip=flip, top_k=1
    )
    [match] = result.matches
    assert (match.angle, match.scale, match.flip) == (float(angle), scale, flip)
    corners = np.array(match.corners)
    # the template's own edges, as drawn: unit vectors along its top and down its left side
    along = (corners[1] - corners[0]) / np.linalg.norm(corners[1] - corners[0])
    down = (corners[3] - corners[0]) / np.linalg.norm(corners[3] - corners[0])
    assert np.linalg.norm(corners[1] - corners[0]) == pytest.approx(round(36 * scale), abs=2e-3)
    assert np.linalg.norm(corners[3] - corners[0]) == pytest.approx(round(24 * scale), abs=2e-3)
    assert abs(float(along @ down)) < 1e-4  # a rectangle (corners are rounded to 1/1000 px)
    turn = math.degrees(math.atan2(-along[1], along[0]))
    mirrored = 180 - angle if flip else angle
    assert (turn - mirrored + 180) % 360 - 180 == pytest.approx(0, abs=0.01)
    inset = 2.5 * scale
    for corner, sign, colour in zip(
        corners,
        [(1, 1), (-1, 1), (-1, -1), (1, -1)],
        [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)],
        strict=True,
    ):
        expected = corner + inset * (sign[0] * along + sign[1] * down)
        assert np.linalg.norm(np.array(_centroid(scene, colour, box)) - expected) < 1.5
    assert match.to_dict()["corners"] == [list(c) for c in match.corners]
    assert (match.cx, match.cy) == pytest.approx(tuple(corners.mean(axis=0)), abs=2e-3)


# ---------------------------------------------------------------------------
# the command line: every item through the installed `waldo`, in every format


def _exe():
    import sys
    from pathlib import Path

    return str(Path(sys.executable).with_name("waldo"))


class _Ran:
    """CliRunner's result with subprocess's names."""

    def __init__(self, result):
        self.returncode = result.exit_code
        self.stdout = result.stdout
        self.stderr = result.stderr


def waldo(*args, input=None):
    """``waldo`` in this process (Click's runner): the kernels stay loaded between calls."""
    from click.testing import CliRunner

    from waldo_cli.cli import cli

    return _Ran(CliRunner().invoke(cli, [str(a) for a in args], input=input))


def waldo_exe(*args, input=None, cwd=None):
    """The installed ``waldo`` in a subprocess: where a user meets it."""
    import subprocess

    return subprocess.run(
        [_exe(), *(str(a) for a in args)],
        capture_output=True,
        text=True,
        input=input,
        cwd=cwd,
        timeout=600,
    )


def assert_one_line(proc, *needles):
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """scene.png (160×128) with waldo.png cut at (40, 30) and b.png at (100, 80); a folder
    of templates with a text file, a hidden file and a subfolder; degenerate templates."""
    import skimage.data
    from PIL import Image

    root = tmp_path_factory.mktemp("options")
    image = skimage.data.astronaut()[100:228, 150:310]
    Image.fromarray(image).save(root / "scene.png")
    Image.fromarray(image[30:54, 40:68]).save(root / "waldo.png")
    Image.fromarray(image[80:100, 100:130]).save(root / "b.png")
    folder = root / "templates"
    folder.mkdir()
    Image.fromarray(image[80:100, 100:130]).save(folder / "b.png")
    Image.fromarray(image[30:54, 40:68]).save(folder / "a.png")
    (folder / "notes.txt").write_text("not a template\n")
    (folder / ".DS_Store").write_bytes(b"\0\0")
    (folder / "sub").mkdir()
    (root / "words").mkdir()
    (root / "words" / "readme.md").write_text("# no images here\n")
    Image.new("RGB", (10, 10), (50, 60, 70)).save(root / "flat.png")
    Image.new("RGB", (1, 1), (50, 60, 70)).save(root / "dot.png")
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(root / "clear.png")
    Image.new("RGB", (8, 8)).save(root / "black.png")
    return root


def _json(proc):
    import json

    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(proc.stdout)


def _jsonl(proc):
    import json

    assert proc.returncode in (0, 1), proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def _csv(proc):
    import csv
    import io

    assert proc.returncode in (0, 1), proc.stderr
    return list(csv.DictReader(io.StringIO(proc.stdout)))


def _tsv(proc):
    lines = proc.stdout.splitlines()
    header = lines[0].split("\t")
    return header, [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:]]


def _api(files, template, **options):
    from waldo_cli.io import read_image
    from waldo_cli.search import Searcher, SearchOptions

    options.setdefault("threshold", 0.5)
    return Searcher(read_image(files / template, name=template), SearchOptions(**options)).search(
        read_image(files / "scene.png", name="scene.png")
    )


def test_k_all_in_every_format(files):
    """-k all (and --all) is every peak that passes, best first, suppressed: the API's
    find_peaks(top_k=None), itself checked against a full sort above."""
    expected = _api(files, "b.png", top_k=None, threshold=0.6)
    where = [(m.x, m.y) for m in expected.matches]
    assert len(where) > 5
    os_ = files
    doc = _json(
        waldo("find", os_ / "scene.png", os_ / "b.png", "-k", "all", "--threshold", 0.6, "--json")
    )
    assert [(m["x"], m["y"]) for m in doc["matches"]] == where
    alias = _json(
        waldo("find", os_ / "scene.png", os_ / "b.png", "--all", "--threshold", 0.6, "--json")
    )
    assert alias["matches"] == doc["matches"]
    header, rows = _tsv(
        waldo("find", os_ / "scene.png", os_ / "b.png", "-k", "ALL", "--threshold", 0.6)
    )
    assert header == ["rank", "x", "y", "width", "height", "score"]
    assert [(int(r["x"]), int(r["y"])) for r in rows] == where
    [record] = _jsonl(
        waldo(
            "find",
            "-t",
            os_ / "b.png",
            os_ / "scene.png",
            "-k",
            "all",
            "--threshold",
            0.6,
            "--jsonl",
        )
    )
    assert record["matches"] == doc["matches"]
    rows = _csv(
        waldo("find", "-t", os_ / "b.png", os_ / "scene.png", "--all", "--threshold", 0.6, "--csv")
    )
    assert [(int(r["x"]), int(r["y"])) for r in rows] == where
    assert [int(r["rank"]) for r in rows] == list(range(1, len(where) + 1))


@pytest.mark.parametrize("value", ["0", "-3", "two", "al"])
def test_bad_k_is_one_line(files, value):
    assert_one_line(waldo("find", files / "scene.png", files / "b.png", "-k", value), "--top-k")


def test_region_in_every_format(files):
    """--region equals searching the cropped image and shifting; results in whole-image
    coordinates in every format."""
    from waldo_cli.io import read_image
    from waldo_cli.search import Searcher, SearchOptions

    scene = read_image(files / "scene.png", name="scene.png")
    x, y, w, h = 60, 50, 90, 70
    crop = read_image(files / "scene.png").pixels[y : y + h, x : x + w]
    from waldo_cli.io import LoadedImage

    alone = Searcher(
        read_image(files / "b.png", name="b.png"), SearchOptions(top_k=3, threshold=0.3)
    ).search(LoadedImage(np.ascontiguousarray(crop), None, "RGB", "crop"))
    where = [(m.x + x, m.y + y) for m in alone.matches]
    assert where[0] == (100, 80) and scene.width == 160
    args = (
        files / "scene.png",
        files / "b.png",
        "--region",
        f"{x},{y},{w},{h}",
        "-k",
        3,
        "--threshold",
        0.3,
    )
    doc = _json(waldo_exe("find", *args, "--json"))
    assert [(m["x"], m["y"]) for m in doc["matches"]] == where
    assert doc["region"] == [x, y, w, h] and doc["image_size"] == [160, 128]
    _, rows = _tsv(waldo("find", *args))
    assert [(int(r["x"]), int(r["y"])) for r in rows] == where
    batch = ("find", "-t", files / "b.png", files / "scene.png", *args[2:])
    assert [(m["x"], m["y"]) for m in _jsonl(waldo(*batch, "--jsonl"))[0]["matches"]] == where
    assert [(int(r["x"]), int(r["y"])) for r in _csv(waldo(*batch, "--csv"))] == where


def test_region_errors_are_one_line(files):
    assert_one_line(
        waldo_exe("find", files / "scene.png", files / "b.png", "--region", "150,0,40,40"),
        "scene.png",
        "region 150,0,40,40 is not inside the image (160×128)",
    )
    assert_one_line(
        waldo("find", files / "scene.png", files / "b.png", "--region", "0,0,20,20"),
        "smaller than the template (30×20)",
    )
    assert_one_line(
        waldo("find", files / "scene.png", files / "b.png", "--region", "0,0,20"), "--region"
    )


def test_region_in_a_batch_is_an_error_for_the_images_it_misses(files, tmp_path):
    from PIL import Image

    Image.open(files / "scene.png").crop((0, 0, 60, 60)).save(tmp_path / "small.png")
    proc = waldo_exe(
        "find",
        "-t",
        files / "b.png",
        files / "scene.png",
        tmp_path / "small.png",
        "--region",
        "90,70,60,40",
        "--jsonl",
    )
    assert proc.returncode == 2
    good, bad = [__import__("json").loads(line) for line in proc.stdout.splitlines()]
    assert (good["matches"][0]["x"], good["matches"][0]["y"]) == (100, 80)
    assert "not inside the image (60×60)" in bad["error"]


def test_region_with_pad_at_the_edge(files, tmp_path):
    """A Waldo cut off by the image's corner, a region at that corner, --pad: found hanging
    over the edge where the whole image's padded search finds him, and nothing reaches
    past the region's inner sides."""
    from PIL import Image

    Image.open(files / "scene.png").crop((50, 38, 160, 128)).save(tmp_path / "cut.png")
    common = ("find", tmp_path / "cut.png", files / "waldo.png", "--pad", "edge", "--json")
    whole = _json(waldo(*common))
    corner = _json(waldo(*common, "--region", "0,0,40,30", "-k", "all", "--no-threshold"))
    assert (whole["matches"][0]["x"], whole["matches"][0]["y"]) == (-10, -8)
    assert corner["matches"][0] == whole["matches"][0] | {"margin": corner["matches"][0]["margin"]}
    for m in corner["matches"]:
        assert m["x"] >= -13 and m["y"] >= -11  # at most the template's own half over the edge
        assert m["x"] + m["width"] <= 40 and m["y"] + m["height"] <= 30


def test_several_templates_in_every_format(files):
    """-t A -t B: the image read once, a record per template, equal to separate runs."""
    a = _json(
        waldo(
            "find", files / "scene.png", files / "waldo.png", "--json", "-k", 2, "--threshold", 0.4
        )
    )
    b = _json(
        waldo("find", files / "scene.png", files / "b.png", "--json", "-k", 2, "--threshold", 0.4)
    )
    common = (
        "-t",
        files / "waldo.png",
        "-t",
        files / "b.png",
        files / "scene.png",
        "-k",
        2,
        "--threshold",
        0.4,
    )
    records = _jsonl(waldo_exe("find", *common, "--jsonl"))
    assert [r["template"] for r in records] == [a["template"], b["template"]]
    for record, alone in zip(records, (a, b), strict=True):
        assert [(m["x"], m["y"], m["template"]) for m in record["matches"]] == [
            (m["x"], m["y"], m["template"]) for m in alone["matches"]
        ]
        assert [m["score"] for m in record["matches"]] == pytest.approx(
            [m["score"] for m in alone["matches"]], abs=1e-6
        )
    listing = _json(waldo("find", *common, "--json"))
    assert isinstance(listing, list) and [r["template"] for r in listing] == [
        r["template"] for r in records
    ]
    header, rows = _tsv(waldo("find", *common))
    assert header == ["image", "rank", "x", "y", "width", "height", "score", "template"]
    assert [(r["template"], r["rank"]) for r in rows] == [
        (r["template"], str(k)) for r in records for k in range(1, len(r["matches"]) + 1)
    ]
    csv_rows = _csv(waldo("find", *common, "--csv"))
    assert [(r["template"], r["x"], r["y"]) for r in csv_rows] == [
        (r["template"], r["x"], r["y"]) for r in rows
    ]


def test_exit_status_counts_a_match_of_any_template(files):
    both = ("-t", files / "waldo.png", "-t", files / "b.png", files / "scene.png")
    assert waldo_exe("find", *both, "-q").returncode == 0
    assert waldo("find", *both, "--threshold", 1.5, "-q").returncode == 1
    one = waldo("find", *both, "--region", "0,0,90,70", "--threshold", 0.9, "--csv")
    assert one.returncode == 0  # only waldo.png lies in the region
    assert {r["template"] for r in _csv(one)} == {str(files / "waldo.png")}


def test_a_folder_of_templates(files):
    """A folder gives its image files sorted by name; other files are skipped, each with a
    note on stderr; hidden files and subfolders quietly."""
    proc = waldo_exe("find", "-t", files / "templates", files / "scene.png", "--jsonl")
    assert proc.returncode == 0
    assert [r["template"] for r in _jsonl(proc)] == [
        str(files / "templates" / "a.png"),
        str(files / "templates" / "b.png"),
    ]
    notes = [line for line in proc.stderr.splitlines() if "note" in line]
    assert notes == [
        f"waldo: note: {files / 'templates' / 'notes.txt'}: not an image file; skipped"
    ]
    quiet = waldo("find", "-t", files / "templates", files / "scene.png", "-q")
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")
    empty = waldo("find", "-t", files / "words", files / "scene.png")
    assert empty.returncode == 2 and empty.stdout == ""
    assert empty.stderr.splitlines()[-1].endswith("words: the folder holds no image files")


def test_duplicate_templates_are_searched_once(files, tmp_path):
    import os

    os.symlink(files / "b.png", tmp_path / "same-b.png")
    proc = waldo(
        "find",
        "-t",
        files / "b.png",
        "-t",
        files / "templates",
        "-t",
        tmp_path / "same-b.png",
        "-t",
        files / "b.png",
        files / "scene.png",
        "--jsonl",
    )
    records = _jsonl(proc)
    templates = [r["template"] for r in records]
    # templates/b.png is another file with the same pixels: a template of its own
    assert templates == [
        str(files / "b.png"),
        str(files / "templates" / "a.png"),
        str(files / "templates" / "b.png"),
    ]
    notes = [line for line in proc.stderr.splitlines() if "searched once" in line]
    assert len(notes) == 2 and all(str(files / "b.png") in line for line in notes)
    assert records[0]["matches"] == [
        {**m, "template": records[0]["template"]} for m in records[2]["matches"]
    ]


def test_mask_with_several_templates_is_a_usage_error(files):
    assert_one_line(
        waldo(
            "find",
            "-t",
            files / "b.png",
            "-t",
            files / "waldo.png",
            files / "scene.png",
            "--mask",
            files / "b.png",
        ),
        "--mask needs exactly one template",
    )


def test_grey_in_every_format(files, tmp_path):
    """--grey (--gray) equals matching the L-converted files, up to Pillow's 8-bit rounding."""
    from PIL import Image

    for name in ("scene.png", "b.png"):
        Image.open(files / name).convert("L").save(tmp_path / name)
    args = ("-k", 3, "--no-threshold")
    grey = _json(waldo_exe("find", files / "scene.png", files / "b.png", "--grey", "--json", *args))
    gray = _json(waldo("find", files / "scene.png", files / "b.png", "--gray", "--json", *args))
    luma = _json(waldo("find", tmp_path / "scene.png", tmp_path / "b.png", "--json", *args))
    assert grey["grey"] is True and gray["matches"] == grey["matches"]
    assert [(m["x"], m["y"]) for m in grey["matches"]] == [
        (m["x"], m["y"]) for m in luma["matches"]
    ]
    assert [m["score"] for m in grey["matches"]] == pytest.approx(
        [m["score"] for m in luma["matches"]], abs=2e-2
    )
    assert grey["parameters"]["conv"] == 30 * 20  # one channel
    rows = _csv(waldo("find", "-t", files / "b.png", files / "scene.png", "--grey", "--csv", *args))
    assert [(int(r["x"]), int(r["y"])) for r in rows] == [(m["x"], m["y"]) for m in grey["matches"]]


def test_nothing_matches_says_the_best_and_where(files):
    proc = waldo_exe("find", files / "scene.png", files / "b.png", "--threshold", 1.5)
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == ["rank\tx\ty\twidth\theight\tscore"]
    assert "best 1.000000 at (100, 80), below the threshold 1.5" in proc.stderr
    doc = _json(
        waldo_exe("find", files / "scene.png", files / "b.png", "--threshold", 1.5, "--json")
    )
    assert doc["matches"] == [] and doc["best"] == {"x": 100, "y": 80, "score": 1.0}
    sq = waldo(
        "find", files / "scene.png", files / "b.png", "-m", "sqdiff_normed", "--threshold", -1
    )
    assert "best 0.000000 at (100, 80), above the threshold -1" in sq.stderr
    one = waldo(
        "find",
        files / "scene.png",
        "-t",
        files / "b.png",
        "-t",
        files / "waldo.png",
        "--threshold",
        1.5,
        "--csv",
    )
    notes = [line for line in one.stderr.splitlines() if line.startswith("waldo: no match")]
    assert notes == [
        f"waldo: no match for {files / 'b.png'} in {files / 'scene.png'}: best 1.000000 at "
        "(100, 80), below the threshold 1.5",
        f"waldo: no match for {files / 'waldo.png'} in {files / 'scene.png'}: best 1.000000 at "
        "(40, 30), below the threshold 1.5",
    ]
    records = _jsonl(
        waldo(
            "find",
            "-t",
            files / "b.png",
            files / "scene.png",
            files / "scene.png",
            "--threshold",
            1.5,
            "--jsonl",
        )
    )
    assert [r["best"]["x"] for r in records] == [100, 100]


def _on_terminal(*args, cwd, cols=80):
    """The installed waldo on an 80-column pseudo-terminal: (status, what it showed, no escapes)."""
    import re

    from installed import shell_env, waldo_executable
    from terminal_session import Terminal

    argv = [waldo_executable(), *map(str, args)]
    env = shell_env(TERM="xterm-256color")
    with Terminal(argv, cwd=cwd, env=env, rows=40, cols=cols) as terminal:
        status = terminal.wait(timeout=300)
        shown = terminal.shown
    return status, re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\r", "", shown)


def test_nothing_matches_on_a_terminal(files):
    status, shown = _on_terminal("find", "scene.png", "b.png", "--threshold", 1.5, cwd=files)
    assert status == 1, shown
    assert "┃ rank" not in shown  # no empty table
    words = " ".join(shown.split())
    assert (
        "no match for b.png in scene.png with ccoeff_normed (threshold 1.5), searched in" in words
    )
    assert "best 1.000000 at (100, 80), below the threshold 1.5" in words
    assert all(len(line) <= 80 for line in shown.splitlines()), shown


def test_several_templates_are_one_table_on_an_80_column_terminal(files):
    """IMAGE -t A -t B on a terminal: one table with a template column, ranks per template,
    every line within 80 columns, a long path folded in its cell (never cut), then a line
    per template (where the one that found nothing came closest)."""
    long_name = files / "templates" / "b.png"  # a path longer than the column allows
    status, shown = _on_terminal(
        "find", "scene.png", "-t", "waldo.png", "-t", long_name, "-t", "b.png", "-k", 2,
        "--threshold", 0.99, cwd=files,
    )  # fmt: skip
    assert status == 0, shown
    lines = shown.splitlines()
    assert all(len(line) <= 80 for line in lines), shown
    header = next(line for line in lines if "┃" in line and "rank" in line)
    assert [cell.strip() for cell in header.strip("┃").split("┃")] == [
        "template", "rank", "x", "y", "width", "height", "score",
    ]  # fmt: skip
    rows = [[cell.strip() for cell in line.strip("│").split("│")] for line in lines if "│" in line]
    # a folded name continues on the next row, its other cells empty
    names, cells = [], []
    for row in rows:
        if row[1]:
            names.append(row[0])
            cells.append(row[1:])
        else:
            names[-1] += row[0]
    assert names == ["waldo.png", str(long_name), "b.png"]
    assert cells == [
        ["1", "40", "30", "28", "24", "1.000000"],
        ["1", "100", "80", "30", "20", "1.000000"],
        ["1", "100", "80", "30", "20", "1.000000"],
    ]
    words = " ".join(shown.split())
    for name in ("waldo.png", str(long_name), "b.png"):
        assert f"1 match for {name} in scene.png with ccoeff_normed (threshold 0.99)" in words
    none = _on_terminal(
        "find", "scene.png", "-t", "waldo.png", "-t", "b.png", "--region", "0,0,90,70",
        "--threshold", 0.9, cwd=files,
    )  # fmt: skip
    status, shown = none
    assert status == 0, shown
    words = " ".join(shown.split())
    assert "1 match for waldo.png" in words
    assert "no match for b.png in scene.png" in words
    assert "below the threshold 0.9" in words
    # in a pipe, the same command is batch output: TSV with the template column
    piped = waldo("find", files / "scene.png", "-t", files / "waldo.png", "-t", files / "b.png")
    assert piped.stdout.splitlines()[0].split("\t")[-1] == "template"


def test_margin_in_json_and_best(files):
    doc = _json(
        waldo("find", files / "scene.png", files / "waldo.png", "-k", 2, "--json", "--no-threshold")
    )
    first, second = doc["matches"]
    assert first["margin"] == pytest.approx(first["score"] - second["score"], abs=1e-6)
    assert second["margin"] < 0 and first["margin"] > 0.3


@pytest.mark.parametrize(
    ("template", "args", "needle"),
    [
        ("flat.png", (), "has no variance (one flat colour"),
        ("dot.png", (), "has no variance"),
        ("clear.png", (), "has no variance"),
        ("black.png", ("-m", "ccorr_normed"), "has no energy (all black"),
        ("waldo.png", ("--scales", "0.02"), "has no variance (1×1 at scale 0.02"),
    ],
)
def test_degenerate_templates_are_refused(files, template, args, needle):
    proc = waldo_exe("find", files / "scene.png", files / template, *args)
    assert_one_line(proc, template, needle, "try -m sqdiff_normed")
    batch = waldo("find", "-t", files / template, "-t", files / "b.png", files / "scene.png", *args)
    assert_one_line(batch, template, needle)


def test_degenerate_templates_keep_opencv_numbers_in_the_api():
    from waldo_cli import match_template

    image = np.random.default_rng(0).random((12, 12)).astype(np.float32) * 255
    assert (match_template(image, np.full((3, 3), 7.0)) == 1).all()
    assert (match_template(image, np.zeros((3, 3)), "ccorr_normed") == 0).all()


def test_flat_template_under_sqdiff_normed_is_searched(files):
    proc = waldo("find", files / "scene.png", files / "flat.png", "-m", "sqdiff_normed")
    assert proc.returncode in (0, 1) and "error" not in proc.stderr


def test_scores_npy_is_the_heatmap_grid(files, tmp_path):
    """--scores: float32 on the image's grid, each score at its window's centre, NaN where no
    window is (the border; outside a region)."""
    from waldo_cli import match_template
    from waldo_cli.io import load_image

    proc = waldo_exe("find", files / "scene.png", files / "b.png", "--scores", tmp_path / "s.npy")
    assert proc.returncode == 0, proc.stderr
    grid = np.load(tmp_path / "s.npy")
    assert grid.dtype == np.float32 and grid.shape == (128, 160)
    scores = match_template(load_image(files / "scene.png"), load_image(files / "b.png"))
    top, left = (20 - 1) // 2, (30 - 1) // 2
    np.testing.assert_array_equal(grid[top : top + 109, left : left + 131], scores)
    assert np.isnan(grid[:top]).all() and np.isnan(grid[:, left + 131 :]).all()
    region = waldo(
        "find",
        files / "scene.png",
        files / "b.png",
        "--region",
        "60,50,90,70",
        "--scores",
        tmp_path / "r.npy",
        "--json",
    )
    assert region.returncode == 0
    part = np.load(tmp_path / "r.npy")
    inside = np.zeros(part.shape, bool)
    inside[50 + top : 50 + 70 - 10, 60 + left : 60 + 90 - 15] = True
    np.testing.assert_allclose(part[inside], grid[inside], atol=1e-6)
    assert np.isnan(part[~inside]).all()
    several = waldo(
        "find",
        files / "scene.png",
        "-t",
        files / "b.png",
        "-t",
        files / "waldo.png",
        "--scores",
        tmp_path / "m.npy",
    )
    assert several.returncode == 0, several.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "m-b.npy"), grid)
    assert np.load(tmp_path / "m-waldo.npy").shape == (128, 160)
    assert_one_line(
        waldo("find", files / "scene.png", files / "b.png", "--scores", tmp_path / "s.png"),
        "ending in .npy",
    )
    assert_one_line(
        waldo(
            "find",
            "-t",
            files / "b.png",
            files / "scene.png",
            files / "scene.png",
            "--scores",
            tmp_path / "x.npy",
        ),
        "exactly one image",
    )


def test_batch_picture_folders_name_pictures_after_images(files, tmp_path):
    """--overlay-dir, --heatmap-dir: one picture per image, named after it; two images with
    one stem get -2, and the command says so."""
    import shutil

    from PIL import Image

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    shutil.copy(files / "scene.png", tmp_path / "a" / "x.png")
    Image.open(files / "scene.png").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(
        tmp_path / "b" / "x.png"
    )
    proc = waldo_exe(
        "find",
        "-t",
        files / "b.png",
        tmp_path / "a" / "x.png",
        tmp_path / "b" / "x.png",
        "--overlay-dir",
        tmp_path / "over",
        "--heatmap-dir",
        tmp_path / "heat",
        "--jsonl",
        "-j",
        2,
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "over").iterdir()) == ["x-2.png", "x.png"]
    assert sorted(p.name for p in (tmp_path / "heat").iterdir()) == ["x-2.png", "x.png"]
    assert f"{tmp_path / 'b' / 'x.png'}: its pictures are named x-2" in proc.stderr
    first = np.asarray(Image.open(tmp_path / "over" / "x.png"))
    second = np.asarray(Image.open(tmp_path / "over" / "x-2.png"))
    assert first.shape == second.shape == (128, 160, 3)
    assert not np.array_equal(first, second)  # each its own image's
    heat = np.asarray(Image.open(tmp_path / "heat" / "x.png").convert("L"))
    y, x = np.unravel_index(np.argmax(heat), heat.shape)
    assert abs(x - (100 + 14)) <= 1 and abs(y - (80 + 9)) <= 1
    several = waldo(
        "find",
        "-t",
        files / "b.png",
        "-t",
        files / "waldo.png",
        files / "scene.png",
        "--heatmap-dir",
        tmp_path / "heat2",
        "--overlay-dir",
        tmp_path / "over2",
    )
    assert several.returncode == 0, several.stderr
    assert sorted(p.name for p in (tmp_path / "heat2").iterdir()) == [
        "scene-b.png",
        "scene-waldo.png",
    ]
    assert [p.name for p in (tmp_path / "over2").iterdir()] == ["scene.png"]


def test_picture_folders_never_replace_an_input(files, tmp_path):
    import shutil

    shutil.copy(files / "scene.png", tmp_path / "scene.png")
    proc = waldo("find", "-t", files / "b.png", tmp_path / "scene.png", "--overlay-dir", tmp_path)
    assert_one_line(proc, "refusing to overwrite an input file")
    assert_one_line(
        waldo(
            "find",
            "-t",
            files / "b.png",
            files / "scene.png",
            "--overlay-dir",
            tmp_path / "o",
            "--heatmap-dir",
            tmp_path / "o",
        ),
        "different folders",
    )
    assert_one_line(
        waldo("find", "-t", files / "b.png", files / "scene.png", "--crops", tmp_path / "no" / "c"),
        "does not exist",
    )


def test_crops_are_each_matchs_window(files, tmp_path):
    from PIL import Image

    proc = waldo_exe(
        "find",
        files / "scene.png",
        files / "b.png",
        "-k",
        3,
        "--threshold",
        0.5,
        "--crops",
        tmp_path / "c",
        "--json",
    )
    doc = _json(proc)
    scene = np.asarray(Image.open(files / "scene.png"))
    names = sorted(p.name for p in (tmp_path / "c").iterdir())
    assert names == [f"scene-{k}.png" for k in range(1, len(doc["matches"]) + 1)]
    for rank, m in enumerate(doc["matches"], 1):
        crop = np.asarray(Image.open(tmp_path / "c" / f"scene-{rank}.png"))
        np.testing.assert_array_equal(
            crop, scene[m["y"] : m["y"] + m["height"], m["x"] : m["x"] + m["width"]]
        )
    batch = waldo(
        "find",
        "-t",
        files / "b.png",
        "-t",
        files / "waldo.png",
        files / "scene.png",
        "--crops",
        tmp_path / "d",
    )
    assert batch.returncode == 0
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == [
        "scene-b-1.png",
        "scene-waldo-1.png",
    ]


def test_turned_matches_in_every_format(tmp_path):
    """--rotations: every format carries cx, cy and the corners; the overlay draws the
    match turned."""
    from PIL import Image

    scene, template, box = _turned_scene(30)
    Image.fromarray(scene).save(tmp_path / "scene.png")
    Image.fromarray(template).save(tmp_path / "t.png")
    args = (tmp_path / "scene.png", tmp_path / "t.png", "--rotations", "30")
    doc = _json(waldo_exe("find", *args, "--json", "--overlay", tmp_path / "o.png"))
    [m] = doc["matches"]
    assert (m["x"], m["y"], m["angle"]) == (box[0], box[1], 30.0)
    assert (m["cx"], m["cy"]) == (box[0] + box[2] / 2, box[1] + box[3] / 2)
    assert len(m["corners"]) == 4
    [row] = _csv(
        waldo(
            "find", "-t", tmp_path / "t.png", tmp_path / "scene.png", "--rotations", "30", "--csv"
        )
    )
    assert [float(v) for v in row["corners"].split()] == [v for c in m["corners"] for v in c]
    assert (float(row["cx"]), float(row["cy"])) == (m["cx"], m["cy"])
    [record] = _jsonl(
        waldo(
            "find", "-t", tmp_path / "t.png", tmp_path / "scene.png", "--rotations", "30", "--jsonl"
        )
    )
    assert record["matches"][0]["corners"] == m["corners"]
    # the overlay follows the template's turned edges: the middle of its top edge is drawn
    # over, the window's own top-left corner (outside the turned template) is not
    overlay = np.asarray(Image.open(tmp_path / "o.png"))
    (x0, y0), (x1, y1) = m["corners"][0], m["corners"][1]
    mid = (round((x0 + x1) / 2 - 0.5), round((y0 + y1) / 2 - 0.5))
    assert not np.array_equal(overlay[mid[1], mid[0]], scene[mid[1], mid[0]])
    assert np.array_equal(overlay[box[1] + 1, box[0] + 1], scene[box[1] + 1, box[0] + 1])


def test_upright_matches_carry_their_centre_in_csv(files):
    rows = _csv(waldo("find", "-t", files / "b.png", files / "scene.png", "--csv"))
    assert [(r["cx"], r["cy"], r["corners"], r["template"]) for r in rows] == [
        ("115", "90", "", str(files / "b.png"))
    ]


def test_files_from_null_separated(files, tmp_path):
    """-0/--null: NUL-separated names, as find -print0 writes them (a newline is a name's)."""
    import shutil

    odd = tmp_path / "two\nlines.png"
    shutil.copy(files / "scene.png", odd)
    listing = f"{odd}\0{files / 'scene.png'}\0"
    proc = waldo_exe(
        "find", "-t", files / "b.png", "--files-from", "-", "-0", "--jsonl", input=listing
    )
    assert proc.returncode == 0, proc.stderr
    assert [r["image"] for r in _jsonl(proc)] == [str(odd), str(files / "scene.png")]
    (tmp_path / "list").write_text(listing)
    alias = waldo(
        "find", "-t", files / "b.png", "--files-from", tmp_path / "list", "--null", "--jsonl"
    )
    assert [r["image"] for r in _jsonl(alias)] == [str(odd), str(files / "scene.png")]
    lines = waldo("find", "-t", files / "b.png", "--files-from", tmp_path / "list", "--jsonl")
    assert lines.returncode == 2  # read by lines, the names are wrong
    assert_one_line(waldo("find", "-t", files / "b.png", files / "scene.png", "-0"), "--files-from")


# ---------------------------------------------------------------------------
# the Python API as scientific Python expects it


API = [
    "waldo_cli.engine.match_template",
    "waldo_cli.engine.match_templates",
    "waldo_cli.engine.plan_match",
    "waldo_cli.engine.plan_matches",
    "waldo_cli.templates.prepare_template",
    "waldo_cli.peaks.find_peaks",
    "waldo_cli.peaks.refine_peak",
    "waldo_cli.peaks.best_over_variants",
    "waldo_cli.io.load_image",
    "waldo_cli.io.read_image",
    "waldo_cli.io.save_image",
    "waldo_cli.io.to_grey",
    "waldo_cli.render.render_heatmap",
    "waldo_cli.render.render_overlay",
    "waldo_cli.batch.run_batch",
    "waldo_cli.variants.make_variants",
    "waldo_cli.variants.template_corners",
    "waldo_cli.conv.make_kernel",
    "waldo_cli.conv.apply_layer",
    "waldo_cli.params.param_counts",
]


def _resolve(path):
    import importlib

    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("path", API)
def test_public_functions_have_shapes_and_a_doctest(path):
    import inspect

    doc = inspect.getdoc(_resolve(path)) or ""
    assert ">>>" in doc, path
    assert "Parameters\n----------" in doc or "Parameters are those of" in doc, path
    if "array" in doc:  # array arguments say their shape in the type slot
        assert "(H" in doc or "(h" in doc or "(C" in doc or "shape" in doc, path


def test_every_top_level_name_has_a_doctest():
    import inspect

    import waldo_cli

    for name in waldo_cli.__all__:
        if name.startswith("__"):
            continue
        assert ">>>" in (inspect.getdoc(getattr(waldo_cli, name)) or ""), name


@pytest.mark.parametrize(
    ("path", "positional"),
    [
        ("waldo_cli.engine.match_template", {"image", "template", "method"}),
        ("waldo_cli.engine.match_templates", {"image", "templates", "method"}),
        ("waldo_cli.engine.plan_match", {"image_shape", "template", "method"}),
        ("waldo_cli.peaks.find_peaks", {"scores", "method", "template_shape"}),
        ("waldo_cli.peaks.refine_peak", {"scores", "x", "y"}),
        ("waldo_cli.io.read_image", {"source"}),
        ("waldo_cli.io.save_image", {"picture", "path"}),
        ("waldo_cli.render.render_heatmap", {"scores", "method", "image_shape", "template_shape"}),
        ("waldo_cli.render.render_overlay", {"pixels", "matches"}),
        ("waldo_cli.conv.apply_layer", {"image", "kernel"}),
    ],
)
def test_options_are_keyword_only_after_the_arrays(path, positional):
    import inspect

    parameters = inspect.signature(_resolve(path)).parameters.values()
    assert {p.name for p in parameters if p.kind != p.KEYWORD_ONLY} == positional


def test_a_template_name_that_is_not_utf8_is_escaped_in_every_format(files, tmp_path):
    """The template column and key hold any file name as valid UTF-8, as the image's do."""
    import os
    import shutil
    import subprocess

    from installed import waldo_executable

    odd = os.fsencode(tmp_path) + b"/b\xe9.png"
    shutil.copyfile(files / "b.png", odd)
    escaped = str(tmp_path / "b\\xe9.png")  # the byte written \xNN, as for image names
    base = [waldo_executable(), "find", os.fsencode(files / "scene.png"), "-t",
            os.fsencode(files / "waldo.png"), "-t", odd]  # fmt: skip
    for fmt in ([], ["--csv"], ["--json"], ["--jsonl"]):
        proc = subprocess.run([*base, *fmt], capture_output=True, timeout=300, check=False)
        assert proc.returncode == 0, proc.stderr
        text = proc.stdout.decode("utf-8")  # valid UTF-8, or this raises
        if fmt in (["--json"], ["--jsonl"]):
            import json

            docs = [json.loads(line) for line in text.splitlines()]
            docs = docs[0] if fmt == ["--json"] else docs
            assert docs[1]["template"] == escaped
            assert [m["template"] for m in docs[1]["matches"]] == [escaped]
        else:
            assert escaped in text.splitlines()[2], (fmt, text)


@pytest.mark.parametrize(
    ("spelling", "method"),
    [
        ("TM_CCOEFF_NORMED", "ccoeff_normed"),
        ("cv2.TM_SQDIFF_NORMED", "sqdiff_normed"),
        ("CCORR_NORMED", "ccorr_normed"),
        ("cv.tm_sqdiff", "sqdiff"),
    ],
)
def test_method_names_as_people_type_them_on_the_command_line(files, spelling, method):
    """-m in any case, and OpenCV's spellings: the same search, reported by waldo's name."""
    common = (files / "scene.png", files / "waldo.png", "-k", 2, "--no-threshold", "--json")
    typed = _json(waldo_exe("find", *common, "-m", spelling))
    plain = _json(waldo("find", *common, "-m", method))
    assert typed["method"] == method
    assert typed["matches"] == plain["matches"]
    bad = waldo("find", files / "scene.png", files / "waldo.png", "-m", "TM_CROSS")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "TM_CROSS" in bad.stderr
