"""match_template against a float64 reference and against cv2.matchTemplate."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from naive import match_template_ref, raw_scale, reference_terms

from waldo_cli import match_template
from waldo_cli.errors import ShapeError, TemplateTooLargeError, WaldoError
from waldo_cli.methods import METHODS

TOL_REF = 2e-5  # against the float64 reference (the bound)
TOL_CV = 2e-3  # against OpenCV, which computes in float32
CV_CODES = {m: getattr(cv2, "TM_" + m.upper()) for m in METHODS}

# (h, w) of the templates: 1×1, small odd, even, rectangular both ways, and
# None for "the whole image".
TEMPLATE_SIZES = [(1, 1), (5, 5), (6, 8), (3, 11), (13, 4), None]
PHOTOS = {
    # name -> (skimage.data function, crop): textured, flat sky, dark sky with stars
    "astronaut": ("astronaut", (slice(0, 48), slice(150, 214))),
    "camera_sky": ("camera", (slice(0, 48), slice(100, 164))),
    "coffee": ("coffee", (slice(100, 148), slice(200, 264))),
    "hubble": ("hubble_deep_field", (slice(0, 48), slice(0, 64))),
}


def _scale(method, image, template):
    return 1.0 if method.endswith("_normed") else raw_scale(image, template)


def _cut_template(image, size, rng):
    if size is None:
        return image.copy()
    h, w = size
    y = int(rng.integers(0, image.shape[0] - h + 1))
    x = int(rng.integers(0, image.shape[1] - w + 1))
    return image[y : y + h, x : x + w].copy()


def _source(kind, name, channels, dtype, photo, rng):
    """An image of the requested kind, channels and dtype."""
    if kind == "photo":
        fn, crop = PHOTOS[name]
        base = photo(fn)
        if base.ndim == 2:
            base = np.repeat(base[:, :, None], 3, axis=2)
        base = base[crop]
        if channels == 1:
            base = cv2.cvtColor(np.ascontiguousarray(base), cv2.COLOR_RGB2GRAY)
    else:
        shape = (40, 52) if channels == 1 else (40, 52, 3)
        base = rng.integers(0, 256, shape).astype(np.uint8)
    if dtype == "float32":
        # non-integer values, so exact integer arithmetic cannot hide errors
        noise = rng.uniform(-0.5, 0.5, base.shape)
        return (base.astype(np.float64) + noise).astype(np.float32)
    return np.ascontiguousarray(base)


ENGINES = ["direct", "fft"]


def _check_against_reference(image, template, method, engine="auto"):
    ours = match_template(image, template, method, engine=engine)
    ref, near = match_template_ref(image, template, method)
    assert ours.dtype == np.float32
    assert ours.shape == ref.shape
    assert np.isfinite(ours).all()
    err = np.abs(ours.astype(np.float64) - ref)[~near].max(initial=0.0)
    assert err <= TOL_REF * _scale(method, image, template), (method, err)
    return ours


def _check_against_opencv(image, template, method, ours):
    theirs = cv2.matchTemplate(image, template, CV_CODES[method])
    # OpenCV's float32 error grows with sum I^2 / sum (I - mean)^2 of the
    # window (it subtracts two large sums); compare where that ratio is modest.
    terms = reference_terms(image, template)
    ok = (
        terms["sum2"] <= 1e3 * terms["var"]
        if method == "ccoeff_normed"
        else np.ones(ours.shape, bool)
    )
    err = np.abs(ours.astype(np.float64) - theirs)[ok].max(initial=0.0)
    assert err <= TOL_CV * _scale(method, image, template), (method, err)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("size", TEMPLATE_SIZES, ids=str)
@pytest.mark.parametrize("dtype", ["uint8", "float32"])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", list(PHOTOS))
@pytest.mark.parametrize("method", METHODS)
def test_photographs_match_reference_and_opencv(
    method, name, channels, dtype, size, engine, photo, rng
):
    image = _source("photo", name, channels, dtype, photo, rng)
    template = _cut_template(image, size, rng)
    ours = _check_against_reference(image, template, method, engine)
    _check_against_opencv(image, template, method, ours)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("size", TEMPLATE_SIZES, ids=str)
@pytest.mark.parametrize("dtype", ["uint8", "float32"])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("method", METHODS)
def test_random_arrays_match_reference_and_opencv(method, channels, dtype, size, engine, rng):
    image = _source("random", None, channels, dtype, None, rng)
    # an independent random template, not a cut-out: no perfect match exists
    template = _source("random", None, channels, dtype, None, rng)
    if size is not None:
        template = template[: size[0], : size[1]].copy()
    ours = _check_against_reference(image, template, method, engine)
    _check_against_opencv(image, template, method, ours)


@pytest.mark.parametrize("engine", ENGINES)
def test_unit_scale_float_images_match_reference(engine, rng):
    # values in [0, 1], as scikit-image users hold them
    image = rng.random((30, 40, 3), dtype=np.float32)
    template = rng.random((7, 9, 3), dtype=np.float32)
    for method in METHODS:
        _check_against_reference(image, template, method, engine)


@pytest.mark.parametrize("method", METHODS)
def test_fft_tiles_cover_large_images(method, photo):
    """Several overlap-save tiles, uneven edges, a template near the tile size."""
    image = photo("coffee")[:300, :450]
    for h, w in [(9, 13), (70, 41)]:
        template = image[100 : 100 + h, 200 : 200 + w]
        ours = match_template(image, template, method, engine="fft")
        direct = match_template(image, template, method, engine="direct")
        scale = (
            1.0
            if method.endswith("_normed")
            else float(
                np.sqrt(
                    (template.astype(np.float64) ** 2).sum() * (image.astype(np.float64) ** 2).sum()
                )
            )
        )
        assert np.abs(ours.astype(np.float64) - direct).max() <= 1e-6 * scale
        # the reference on a neighbourhood of the match (it is slow)
        crop = image[80 : 100 + h, 185 : 205 + w]
        ref, near = match_template_ref(crop, template, method)
        sub = ours[80 : 80 + ref.shape[0], 185 : 185 + ref.shape[1]]
        assert np.abs(sub - ref)[~near].max() <= TOL_REF * _scale(method, crop, template)


@pytest.mark.parametrize("masked", [False, True], ids=["plain", "masked"])
@pytest.mark.parametrize("engine", ["direct", "fft"])
def test_huge_images_searched_in_bands_give_the_same_scores(
    engine, masked, photo, monkeypatch, rng
):
    """Band by band (what memory forces on huge images) equals all at once."""
    from waldo_cli import plan as plan_module

    image = photo("coffee")[:, :300]
    template = image[100:117, 200:223]
    mask = (rng.random(template.shape[:2]) > 0.2).astype(np.float32) if masked else None
    whole = match_template(image, template, engine=engine, mask=mask)
    # a budget that makes bands of a few dozen rows: several, and a short last one
    monkeypatch.setattr(plan_module, "BAND_BYTES", 4 * 300 * 3 * 80)
    tile = plan_module.fft_plan((image.shape[0] - 16, image.shape[1] - 22), (17, 23), 3, 2)[1]
    rows = plan_module.band_rows(image.shape, template.shape[:2], engine, tile)
    assert rows < whole.shape[0] and whole.shape[0] % rows != 0
    banded = match_template(image, template, engine=engine, mask=mask)
    assert np.abs(banded.astype(np.float64) - whole).max() <= 1e-6


def test_auto_engine_picks_by_cost():
    from waldo_cli.engine import choose_engine

    assert choose_engine((1022, 1022), (3, 3), 3, 2) == "direct"
    assert choose_engine((961, 961), (64, 64), 3, 2) == "fft"
    assert choose_engine((100, 100), (1, 1), 1, 1) == "direct"


def test_unknown_engine_is_an_error():
    with pytest.raises(WaldoError, match="unknown engine"):
        match_template(np.zeros((5, 5)), np.zeros((2, 2)), engine="gpu")


@pytest.mark.parametrize("method", METHODS)
def test_flat_template_scored_as_opencv(method, photo):
    image = photo("astronaut")[:40, 200:260]
    template = np.full((6, 7, 3), 90, np.uint8)
    ours = match_template(image, template, method)
    theirs = cv2.matchTemplate(image, template, CV_CODES[method])
    ref, near = match_template_ref(image, template, method)
    assert np.isfinite(ours).all()
    assert np.abs(ours - ref)[~near].max() <= TOL_REF * _scale(method, image, template)
    if method == "ccoeff_normed":
        assert (ours == 1).all() and (theirs == 1).all()
    assert np.abs(ours - theirs).max() <= TOL_CV * _scale(method, image, template)


@pytest.mark.parametrize("method", METHODS)
def test_no_nan_on_flat_windows(method, rng):
    image = rng.integers(0, 256, (30, 40, 3)).astype(np.uint8)
    image[5:20, 5:25] = (120, 30, 200)  # a flat patch
    image[22:, 25:] = 0  # a black patch
    template = rng.integers(0, 256, (5, 6, 3)).astype(np.uint8)
    ours = match_template(image, template, method)
    theirs = cv2.matchTemplate(image, template, CV_CODES[method])
    assert np.isfinite(ours).all()
    flat = ours[5:15, 5:19]
    black = ours[22:, 25:]
    if method in ("ccoeff_normed",):
        assert (flat == 0).all() and (black == 0).all()
        assert (theirs[5:15, 5:19] == 0).all()
    if method == "ccorr_normed":
        assert (black == 0).all() and (theirs[22:, 25:] == 0).all()
    if method == "sqdiff_normed":
        assert (black == 1).all() and (theirs[22:, 25:] == 1).all()
    ref, near = match_template_ref(image, template, method)
    assert np.abs(ours - ref)[~near].max() <= TOL_REF * _scale(method, image, template)


@pytest.mark.parametrize("method", METHODS)
def test_all_black_image_and_template(method):
    zeros = np.zeros((12, 10, 3), np.uint8)
    ours = match_template(zeros, zeros[:4, :5], method)
    theirs = cv2.matchTemplate(zeros, zeros[:4, :5], CV_CODES[method])
    assert np.isfinite(ours).all()
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("method", ["ccorr_normed", "ccoeff_normed", "sqdiff_normed"])
def test_normed_scores_stay_in_range(method, photo):
    image = photo("coffee")[:60, :70]
    scores = match_template(image, image[20:32, 30:41], method)
    low = 0.0 if method != "ccoeff_normed" else -1.0
    assert scores.min() >= low and scores.max() <= 1.0


def test_sqdiff_best_is_minimum(photo):
    image = photo("astronaut")[100:180, 150:250]
    template = image[30:45, 40:60]
    scores = match_template(image, template, "sqdiff")
    assert scores[30, 40] == 0.0
    assert np.unravel_index(np.argmin(scores), scores.shape) == (30, 40)


def test_exact_match_scores_one(photo):
    image = photo("astronaut")[100:180, 150:250]
    template = image[30:45, 40:60]
    for method in ("ccorr_normed", "ccoeff_normed"):
        scores = match_template(image, template, method)
        assert scores[30, 40] == pytest.approx(1.0, abs=1e-6)
        assert scores.argmax() == np.ravel_multi_index((30, 40), scores.shape)


def test_template_found_under_noise_and_lighting_change(photo, rng):
    image = photo("astronaut")
    y, x, h, w = 200, 230, 40, 36
    template = image[y : y + h, x : x + w].astype(np.float64)
    # a different exposure and sensor noise: contrast 0.7, brightness +25
    template = np.clip(0.7 * template + 25 + rng.normal(0, 12, template.shape), 0, 255)
    scores = match_template(image, template.astype(np.uint8), "ccoeff_normed")
    assert np.unravel_index(np.argmax(scores), scores.shape) == (y, x)
    assert scores[y, x] > 0.6  # noise of std 12 costs some correlation


def test_grey_and_colour_shapes_accepted(photo):
    grey = photo("camera")[:50, :60]
    a = match_template(grey, grey[10:20, 5:15], "ccorr")
    b = match_template(grey[:, :, None], grey[10:20, 5:15, None], "ccorr")
    np.testing.assert_array_equal(a, b)
    assert a.shape == (41, 51)


@pytest.mark.parametrize("dtype", [np.uint16, np.int32, np.float64, np.bool_])
def test_any_real_dtype(dtype, rng):
    image = (rng.random((20, 24)) * 200).astype(dtype)
    template = image[3:8, 4:10]
    ref, near = match_template_ref(
        image.astype(np.float32), template.astype(np.float32), "ccoeff_normed"
    )
    ours = match_template(image, template)
    assert np.abs(ours - ref)[~near].max() <= TOL_REF


@settings(max_examples=40, deadline=None)
@given(
    dy=st.integers(0, 6),
    dx=st.integers(0, 6),
    seed=st.integers(0, 2**32 - 1),
    method=st.sampled_from(METHODS),
)
def test_shift_moves_scores(dy, dx, seed, method):
    """Translation equivariance: moving the image moves the score map with it."""
    local = np.random.default_rng(seed)
    big = local.integers(0, 256, (30, 34, 3)).astype(np.uint8)
    template = local.integers(0, 256, (4, 5, 3)).astype(np.uint8)
    base = match_template(big[6:, 6:], template, method)
    shifted = match_template(big[6 - dy : 30 - dy, 6 - dx : 34 - dx], template, method)
    # shifted[y + dy, x + dx] scores the same pixels as base[y, x]
    overlap = base[: base.shape[0] - dy, : base.shape[1] - dx]
    moved = shifted[dy : dy + overlap.shape[0], dx : dx + overlap.shape[1]]
    np.testing.assert_allclose(moved, overlap, rtol=1e-6, atol=1e-6 * _scale(method, big, template))


def test_template_larger_than_image_is_an_error():
    with pytest.raises(TemplateTooLargeError, match=r"template 12×5 is larger than image 10×10"):
        match_template(np.zeros((10, 10)), np.zeros((5, 12)))


@pytest.mark.parametrize(
    ("image", "template", "pattern"),
    [
        (np.zeros((0, 5)), np.zeros((1, 1)), "image is empty"),
        (np.zeros((5, 5)), np.zeros((0, 1)), "template is empty"),
        (np.zeros((5, 5, 3)), np.zeros((2, 2)), "channel"),
        (np.zeros(5), np.zeros((1, 1)), "dimensions"),
        (np.zeros((5, 5), complex), np.zeros((1, 1)), "dtype"),
        (np.full((5, 5), np.nan), np.zeros((1, 1)), "NaN"),
        (np.zeros((5, 5)), np.full((2, 2), np.inf), "NaN or infinite"),
    ],
)
def test_bad_arrays_raise_shape_error(image, template, pattern):
    with pytest.raises(ShapeError, match=pattern):
        match_template(image, template)


def test_unknown_method_is_an_error():
    # "TM_CCOEFF" was the unknown name here until #16 made OpenCV's spellings aliases
    with pytest.raises(WaldoError, match="unknown method"):
        match_template(np.zeros((5, 5)), np.zeros((2, 2)), "TM_CROSS")


@pytest.mark.parametrize("spelling", ["TM_CCOEFF", "cv2.TM_CCOEFF", "CCOEFF", "cv.tm_ccoeff"])
def test_opencv_spellings_name_the_same_method(spelling, rng):
    image, template = rng.random((12, 14, 3)), rng.random((3, 4, 3))
    np.testing.assert_array_equal(
        match_template(image, template, spelling), match_template(image, template, "ccoeff")
    )
