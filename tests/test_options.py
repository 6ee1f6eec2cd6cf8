"""Issue #16: regions, many templates, every match, grey, a word when nothing matches, and the
rest of what people who match templates ask for."""

from __future__ import annotations

import numpy as np
import pytest

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
