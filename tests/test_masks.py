"""Masked (transparent) templates: OpenCV's masked definitions, without its NaNs."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from naive import match_template_masked_ref, raw_scale, windows
from PIL import Image

from waldo_cli import match_template
from waldo_cli.cli import cli
from waldo_cli.engine import prepare_template
from waldo_cli.errors import ShapeError
from waldo_cli.methods import METHODS

CV_CODES = {m: getattr(cv2, "TM_" + m.upper()) for m in METHODS}


def _scale(method, image, template):
    return 1.0 if method.endswith("_normed") else raw_scale(image, template)


def _mask(kind, shape, rng):
    h, w, c = shape
    if kind == "binary":
        return (rng.random((h, w)) > 0.3).astype(np.float32)
    if kind == "soft":
        return rng.random((h, w)).astype(np.float32)
    return rng.random((h, w, c)).astype(np.float32)  # one weight per channel


@pytest.mark.parametrize("engine", ["direct", "fft"])
@pytest.mark.parametrize("kind", ["binary", "soft", "per-channel"])
@pytest.mark.parametrize("source", ["camera_sky", "astronaut", "random"])
@pytest.mark.parametrize("method", METHODS)
def test_masked_methods_match_reference_and_opencv(method, source, kind, engine, photo, rng):
    if source == "random":
        image = (rng.random((36, 44, 3)) * 255).astype(np.float32)
    elif source == "camera_sky":  # flat sky: where float32 arithmetic struggles
        grey = photo("camera")[0:40, 100:150].astype(np.float32)
        image = np.repeat(grey[:, :, None], 3, axis=2) + rng.uniform(-0.5, 0.5, (40, 50, 3))
        image = image.astype(np.float32)
    else:
        image = photo("astronaut")[100:140, 150:200].astype(np.float32)
    template = image[8:17, 12:23].copy()
    mask = _mask(kind, template.shape, rng)
    ours = match_template(image, template, method, engine=engine, mask=mask)
    ref, near = match_template_masked_ref(image, template, mask, method)
    assert ours.dtype == np.float32 and np.isfinite(ours).all()
    err = np.abs(ours.astype(np.float64) - ref)[~near].max()
    assert err <= 2e-5 * _scale(method, image, template), err
    theirs = cv2.matchTemplate(image, template, CV_CODES[method], mask=mask)
    comparable = np.isfinite(theirs)
    win = windows(image.astype(np.float64), *template.shape[:2])
    m = np.broadcast_to(mask if mask.ndim == 3 else mask[:, :, None], template.shape)
    energy = ((win * m) ** 2).sum(axis=(2, 3, 4))  # sum (M I)^2
    mean = (win * m).sum(axis=(2, 3)) / m.sum(axis=(0, 1))
    var = (((win - mean[:, :, None, None, :]) * m) ** 2).sum(axis=(2, 3, 4))  # sum I'^2
    if method.endswith("_normed"):
        # windows our degenerate rule scores by fallback (OpenCV divides by ~0 there)
        norm = var if method == "ccoeff_normed" else energy
        comparable &= norm > np.minimum(0.5, 10 * np.finfo(np.float32).eps * energy)
    if method == "ccoeff_normed":
        # OpenCV's float32 error grows as a window's masked variance shrinks
        # relative to its energy; compare where that ratio is modest
        comparable &= energy <= 1e3 * var
    diff = np.abs(ours - theirs)[comparable]
    assert diff.max(initial=0) <= 2e-3 * _scale(method, image, template)


@pytest.mark.parametrize("method", METHODS)
def test_no_nan_on_black_flat_and_fully_masked(method, rng):
    image = rng.integers(0, 256, (30, 40, 3)).astype(np.float32)
    image[:15, :20] = 0  # black
    image[15:, 20:] = 77  # flat
    template = rng.integers(0, 256, (6, 7, 3)).astype(np.float32)
    mask = (rng.random((6, 7)) > 0.5).astype(np.float32)
    for m in (mask, np.zeros((6, 7), np.float32)):
        ours = match_template(image, template, method, mask=m)
        assert np.isfinite(ours).all()
        ref, near = match_template_masked_ref(image, template, m, method)
        assert np.abs(ours - ref)[~near].max() <= 2e-5 * _scale(method, image, template)
    with np.errstate(all="ignore"):
        theirs = cv2.matchTemplate(
            image, template, CV_CODES[method], mask=np.zeros((6, 7), np.float32)
        )
    assert np.isfinite(
        match_template(image, template, method, mask=np.zeros((6, 7), np.float32))
    ).all()
    if method.endswith("normed"):
        assert not np.isfinite(theirs).all() or (theirs == 1).all()  # what we improve on


def test_flat_template_under_mask(rng):
    image = rng.integers(0, 256, (20, 24)).astype(np.float32)
    template = np.full((5, 5), 40.0, np.float32)
    scores = match_template(image, template, "ccoeff_normed", mask=rng.random((5, 5)))
    assert (scores == 1).all()  # OpenCV's flat-template rule, as without a mask


def test_all_ones_mask_equals_no_mask(photo):
    image = photo("coffee")[:60, :80]
    template = image[20:31, 30:43]
    for method in METHODS:
        plain = match_template(image, template, method)
        masked = match_template(image, template, method, mask=np.ones((11, 13)))
        scale = _scale(method, image, template)
        assert np.abs(plain.astype(np.float64) - masked).max() <= 1e-5 * scale


@pytest.fixture(scope="module")
def mid_image():
    """200×260 RGB: a photograph with float noise, a black block and a flat block."""
    import skimage.data

    rng = np.random.default_rng(11)
    image = skimage.data.astronaut()[100:300, 150:410].astype(np.float32)
    image += rng.uniform(-0.5, 0.5, image.shape).astype(np.float32)
    image[:90, :120] = 0  # black
    image[110:, 150:] = 77  # flat
    return image


# windows (top-left corners) whose neighbourhoods are checked against the
# reference: inside the black and flat blocks, across their edges, in the
# photograph, and the last window
MID_WINDOWS = [(10, 10), (60, 90), (130, 170), (95, 135), (0, 150), (176, 236)]


@pytest.mark.parametrize("kind", ["binary", "soft", "per-channel"])
@pytest.mark.parametrize("method", METHODS)
def test_mid_size_fft_masked_matches_reference_and_direct(method, kind, mid_image):
    image = mid_image
    template = image[20:44, 140:164].copy()  # 24×24: auto takes the FFT path here
    mask = _mask(kind, template.shape, np.random.default_rng(12))
    fft = match_template(image, template, method, engine="fft", mask=mask)
    assert np.isfinite(fft).all()
    assert np.array_equal(match_template(image, template, method, mask=mask), fft)
    scale = 1.0
    if not method.endswith("_normed"):  # naive.raw_scale, without its all-windows copies
        energies = windows((image.astype(np.float64) ** 2).sum(axis=2)[:, :, None], 24, 24)
        scale = float(
            np.sqrt((template.astype(np.float64) ** 2).sum() * energies.sum(axis=(2, 3, 4)).max())
        )
    direct = match_template(image, template, method, engine="direct", mask=mask)
    assert np.abs(fft.astype(np.float64) - direct).max() <= 2e-5 * scale
    h, w = template.shape[:2]
    for y, x in MID_WINDOWS:
        crop = image[y : y + h + 3, x : x + w + 3]
        ref, near = match_template_masked_ref(crop, template, mask, method)
        ours = fft[y : y + ref.shape[0], x : x + ref.shape[1]]
        assert np.abs(ours - ref)[~near].max(initial=0) <= 2e-5 * scale, (y, x)
    # OpenCV's degenerate-window rules hold exactly, whatever the FFT's rounding
    inside_black = fft[: 90 - h + 1, : 120 - w + 1]
    if method == "sqdiff_normed":
        assert (inside_black == 1).all()
    elif method.endswith("_normed"):
        assert (inside_black == 0).all()
    if method == "ccoeff_normed":
        assert (fft[110:, 150:] == 0).all()  # flat


@pytest.mark.parametrize("engine", ["direct", "fft"])
@pytest.mark.parametrize("method", ["sqdiff_normed", "ccorr_normed", "ccoeff_normed"])
def test_nearly_black_windows_under_faint_weights(method, engine, rng):
    """Energies of 1e-7 beside pixels of 255: the sums' rounding must not reach the scores."""
    image = rng.integers(0, 256, (64, 80, 3)).astype(np.float32)
    image[:40, :50] = 0
    dim = rng.random((40, 50, 3)) < 0.02
    image[:40, :50][dim] = rng.uniform(0.005, 0.03, dim.sum())
    template = rng.integers(0, 256, (12, 14, 3)).astype(np.float32)
    mask = 0.05 + 0.95 * rng.random((12, 14)) ** 3  # many weights near 0.05
    ours = match_template(image, template, method, engine=engine, mask=mask)
    ref, near = match_template_masked_ref(image, template, mask, method)
    win = windows(image.astype(np.float64), 12, 14)
    m = mask[:, :, None]
    if method == "ccoeff_normed":
        win = win - (win * m).sum(axis=(2, 3), keepdims=True) / m.sum()
    energy = ((win * m) ** 2).sum(axis=(2, 3, 4))
    # energies below 1.4e-14 of the most a window can hold count as 0 (no
    # sum of rounded terms can tell them from 0); the others score exactly
    scored = energy > 1e-13 * (m**2).sum() * 3 * 255**2
    assert (scored & (energy < 1e-11 * (m**2).sum() * 3 * 255**2)).sum() > 20
    # masked sqdiff_normed is not clamped: such windows score up to 1e5, in float32
    err = np.abs(ours - ref) / np.maximum(1.0, np.abs(ref))
    assert err[scored & ~near].max() <= 2e-5


def test_masked_kernels_compile_once(rng):
    """Grey or colour, any dtype, any mask: one specialisation of each masked kernel."""
    from waldo_cli import kernels

    for image in (rng.random((20, 24)), rng.integers(0, 256, (20, 24, 3), np.uint8)):
        channels = 1 if image.ndim == 2 else 3
        for mask in (np.ones((4, 5), bool), rng.random((4, 5, channels)).astype(np.float32)):
            for engine in ("direct", "fft"):
                match_template(image, image[2:6, 3:8], "sqdiff", engine=engine, mask=mask)
    assert len(kernels._masked_maps.signatures) == 1
    assert len(kernels._masked_rows.signatures) == 1
    assert len(kernels._masked_tile.signatures) == 1


def test_prepared_template_keeps_each_mask_apart(rng):
    image = rng.integers(0, 256, (40, 50, 3)).astype(np.float32)
    prepared = prepare_template(image[5:17, 8:22])
    masks = [_mask("binary", (12, 14, 3), rng), _mask("soft", (12, 14, 3), rng)]
    for engine in ("direct", "fft"):
        fresh = [
            match_template(image, image[5:17, 8:22], "ccoeff_normed", engine=engine, mask=m)
            for m in masks
        ]
        for m, expected in [*zip(masks, fresh, strict=True), (masks[0], fresh[0])]:
            again = match_template(image, prepared, "ccoeff_normed", engine=engine, mask=m)
            assert np.array_equal(again, expected)


@pytest.mark.parametrize(
    ("mask", "pattern"),
    [
        (np.ones((4, 4)), "mask is 4×4"),
        (np.ones((5, 6, 2)), "1 or 3 channel"),
        (-np.ones((5, 6)), "negative"),
    ],
)
def test_bad_masks(mask, pattern):
    with pytest.raises(ShapeError, match=pattern):
        match_template(np.zeros((20, 20, 3)), np.ones((5, 6, 3)), mask=mask)


@pytest.fixture(scope="module")
def sprite_files(tmp_path_factory):
    """A round sprite with transparent corners, placed on a background unlike its own."""
    root = tmp_path_factory.mktemp("sprite")
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:21, :21]
    inside = (yy - 10) ** 2 + (xx - 10) ** 2 <= 100
    sprite = rng.integers(0, 256, (21, 21, 3)).astype(np.uint8)
    alpha = np.where(inside, 255, 0).astype(np.uint8)
    Image.fromarray(np.dstack([sprite, alpha]), "RGBA").save(root / "sprite.png")
    Image.fromarray(alpha).save(root / "mask.png")
    scene = np.zeros((80, 100, 3), np.uint8)
    scene[:] = (20, 200, 40)  # a green field...
    scene[::4] = (250, 250, 250)  # ...with white lines, nothing like the corners
    patch = scene[30:51, 55:76].copy()
    patch[inside] = sprite[inside]
    scene[30:51, 55:76] = patch
    Image.fromarray(scene).save(root / "scene.png")
    return root


def _run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_alpha_channel_is_the_mask(sprite_files):
    root = sprite_files
    masked = json.loads(_run("find", root / "scene.png", root / "sprite.png", "--json").stdout)
    assert masked["mask"] == "alpha"
    best = masked["matches"][0]
    assert (best["x"], best["y"]) == (55, 30) and best["score"] == pytest.approx(1.0, abs=1e-5)
    plain = json.loads(
        _run(
            "find", root / "scene.png", root / "sprite.png", "--json", "--no-mask", "--no-threshold"
        ).stdout
    )
    assert plain["mask"] is None
    assert plain["matches"][0]["score"] < 0.9  # the corners spoil the unmasked match


def test_mask_file(sprite_files):
    root = sprite_files
    doc = json.loads(
        _run(
            "find", root / "scene.png", root / "sprite.png", "--json", "--mask", root / "mask.png"
        ).stdout
    )
    assert doc["mask"] == str(root / "mask.png")
    assert doc["matches"][0]["score"] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--mask", "missing-mask.png"], "missing-mask.png"),
        (["--mask", "scene.png"], "the mask is 100×80"),
        (["--mask", "mask.png", "--no-mask"], "--no-mask"),
    ],
)
def test_bad_mask_options(args, needle, sprite_files, monkeypatch):
    monkeypatch.chdir(sprite_files)
    result = _run("find", "scene.png", "sprite.png", *args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0]
