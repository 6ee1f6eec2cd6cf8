"""load_image / read_image: every Pillow mode, orientation, and every way a file can be bad."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from waldo_cli import load_image, read_image
from waldo_cli.errors import ImageReadError, WaldoError
from waldo_cli.io import reconcile_channels, to_grey


def _rgb(rng, h=6, w=9):
    return rng.integers(0, 256, (h, w, 3)).astype(np.uint8)


@pytest.mark.parametrize(
    ("mode", "channels"),
    [
        ("1", 1),
        ("L", 1),
        ("LA", 1),
        ("RGB", 3),
        ("RGBA", 3),
        ("P", 3),
        ("CMYK", 3),
        ("I;16", 1),
        ("I", 1),
        ("F", 1),
        ("YCbCr", 3),
    ],
)
def test_every_mode_loads_as_float32_hwc(mode, channels, tmp_path, rng):
    source = Image.fromarray(_rgb(rng))
    image = source.convert(mode) if mode not in ("I;16", "I") else source.convert("L")
    if mode == "I;16":
        image = Image.fromarray(np.asarray(source.convert("L")).astype(np.uint16) * 257)
    elif mode == "I":
        image = Image.fromarray(np.asarray(source.convert("L")).astype(np.int32) * 257)
    ext = "tiff" if mode in ("CMYK", "F", "I", "YCbCr") else "png"
    path = tmp_path / f"x.{ext}"
    if mode == "YCbCr":
        path = tmp_path / "x.jpg"
    image.save(path)
    pixels = load_image(path)
    assert pixels.dtype == np.float32
    assert pixels.shape == (6, 9, channels)
    assert pixels.min() >= 0.0 and pixels.max() <= 255.0 + 1e-3


def test_rgb_values_are_kept_exactly(tmp_path, rng):
    rgb = _rgb(rng)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    np.testing.assert_array_equal(load_image(tmp_path / "a.png"), rgb.astype(np.float32))


def test_sixteen_bit_is_scaled_to_0_255(tmp_path):
    data = np.array([[0, 257, 65535]], np.uint16)
    Image.fromarray(data).save(tmp_path / "g.png")
    np.testing.assert_allclose(load_image(tmp_path / "g.png")[..., 0], [[0, 1, 255]], atol=1e-4)


def test_alpha_is_kept_apart(tmp_path, rng):
    rgba = np.dstack([_rgb(rng), np.linspace(0, 255, 54).reshape(6, 9).astype(np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "t.png")
    loaded = read_image(tmp_path / "t.png")
    assert loaded.pixels.shape == (6, 9, 3)
    assert loaded.alpha is not None and loaded.alpha.shape == (6, 9)
    np.testing.assert_allclose(loaded.alpha, rgba[..., 3] / 255.0, atol=1e-6)
    np.testing.assert_array_equal(loaded.pixels, rgba[..., :3].astype(np.float32))
    assert loaded.mode == "RGBA"


def test_palette_transparency_becomes_alpha(tmp_path):
    image = Image.new("P", (4, 3), 1)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.info["transparency"] = 0
    image.putpixel((0, 0), 0)
    image.save(tmp_path / "p.png", transparency=0)
    loaded = read_image(tmp_path / "p.png")
    assert loaded.alpha is not None
    assert loaded.alpha[0, 0] == 0.0 and loaded.alpha[1, 1] == 1.0
    np.testing.assert_array_equal(loaded.pixels[1, 1], [255, 0, 0])


def test_exif_orientation_is_applied(tmp_path, rng):
    rgb = _rgb(rng, 4, 10)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    Image.fromarray(rgb).save(tmp_path / "o.png", exif=exif)
    pixels = load_image(tmp_path / "o.png")
    assert pixels.shape == (10, 4, 3)
    np.testing.assert_array_equal(pixels, np.rot90(rgb, k=-1).astype(np.float32))


def test_bytes_and_streams_load(tmp_path, rng):
    rgb = _rgb(rng)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    data = (tmp_path / "a.png").read_bytes()
    np.testing.assert_array_equal(read_image(data, name="-").pixels, rgb)
    with open(tmp_path / "a.png", "rb") as fh:
        np.testing.assert_array_equal(read_image(fh).pixels, rgb)


def test_missing_file(tmp_path):
    with pytest.raises(ImageReadError, match=r"nope\.png: no such file"):
        load_image(tmp_path / "nope.png")


def test_directory(tmp_path):
    with pytest.raises(ImageReadError, match="is a directory"):
        load_image(tmp_path)


def test_empty_file(tmp_path):
    (tmp_path / "e.png").write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty"):
        load_image(tmp_path / "e.png")


def test_not_an_image(tmp_path):
    (tmp_path / "notes.png").write_text("hello, this is text\n")
    with pytest.raises(ImageReadError, match="not an image"):
        load_image(tmp_path / "notes.png")


@pytest.mark.parametrize("ext", ["png", "jpg"])
def test_truncated_file(ext, tmp_path, rng):
    Image.fromarray(rng.integers(0, 256, (64, 64, 3)).astype(np.uint8)).save(tmp_path / f"a.{ext}")
    data = (tmp_path / f"a.{ext}").read_bytes()
    (tmp_path / f"cut.{ext}").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match=r"cut\.\w+: .*(truncated|decode)"):
        load_image(tmp_path / f"cut.{ext}")


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    Image.new("L", (100, 100)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageReadError, match="decompression bomb"):
        load_image(tmp_path / "big.png")


def test_grey_and_colour_reconcile_to_grey(rng):
    colour = rng.random((5, 6, 3)).astype(np.float32) * 255
    grey = rng.random((2, 2, 1)).astype(np.float32)
    a, b = reconcile_channels(colour, grey)
    assert a.shape == (5, 6, 1) and b is grey
    expected = colour @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(a[..., 0], expected, rtol=1e-6)
    a, b = reconcile_channels(grey, colour)
    assert a is grey and b.shape == (5, 6, 1)


def test_to_grey_matches_pillow(rng):
    rgb = _rgb(rng, 20, 20)
    ours = to_grey(rgb.astype(np.float32))[..., 0]
    pillow = np.asarray(Image.fromarray(rgb).convert("L"), np.float32)
    assert np.abs(ours - pillow).max() <= 0.5 + 1e-4  # Pillow rounds to integers


def test_unreconcilable_channels():
    with pytest.raises(WaldoError, match="channel"):
        reconcile_channels(np.zeros((4, 4, 2), np.float32), np.zeros((2, 2, 3), np.float32))
