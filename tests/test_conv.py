"""``waldo conv``: the engine as the chapter's convolutional layer H = V ⋆ X.

References are written out here in float64: NumPy windows over ``np.pad``
for the named kernels, and plain loops over the chapter's formula
H[i, j, d] = Σ_a Σ_b Σ_c V[a, b, c, d] X[i+a, j+b, c] for a full V.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import assert_one_line_error
from PIL import Image

from waldo_cli.cli import cli
from waldo_cli.conv import apply_layer, make_kernel, to_grey8
from waldo_cli.errors import WaldoError

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_images" / "astronaut.png"

SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float64)
LAPLACE = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float64)


def gauss_plane(sigma, radius=None):
    radius = math.ceil(3 * sigma) if radius is None else radius
    plane = np.array(
        [
            [math.exp(-(a * a + b * b) / (2 * sigma * sigma)) for b in range(-radius, radius + 1)]
            for a in range(-radius, radius + 1)
        ]
    )
    return plane / plane.sum()


NAMED_PLANES = {
    "sobel-x": [SOBEL_X],
    "sobel-y": [SOBEL_X.T],
    "sobel": [SOBEL_X, SOBEL_X.T],  # every channel's x, then every channel's y
    "laplace": [LAPLACE],
    "gauss:1.2": [gauss_plane(1.2)],
    "box:5": [np.full((5, 5), 1 / 25)],
}


def correlate_plane(x, plane, pad="constant"):
    """One channel, one 2-D filter, H the size of x (or smaller with pad=None), float64."""
    h, w = plane.shape
    if pad is not None:
        x = np.pad(x, ((h // 2, h // 2), (w // 2, w // 2)), mode=pad)
    windows = np.lib.stride_tricks.sliding_window_view(x.astype(np.float64), (h, w))
    return np.einsum("yxab,ab->yx", windows, plane)


def depthwise_reference(image, planes, pad="constant"):
    x = image.astype(np.float64)
    return np.stack(
        [correlate_plane(x[:, :, c], p, pad) for p in planes for c in range(x.shape[2])], axis=2
    )


def chapter_layer(x, v):
    """H[i, j, d] = Σ_a Σ_b Σ_c V[a, b, c, d] X[i+a, j+b, c]; X is 0 outside the image."""
    height, width, channels = x.shape
    h, w, _, outputs = v.shape
    dh, dw = h // 2, w // 2
    out = np.zeros((height, width, outputs))
    for i in range(height):
        for j in range(width):
            for d in range(outputs):
                total = 0.0
                for a in range(-dh, dh + 1):
                    for b in range(-dw, dw + 1):
                        if 0 <= i + a < height and 0 <= j + b < width:
                            for c in range(channels):
                                total += v[a + dh, b + dw, c, d] * x[i + a, j + b, c]
                out[i, j, d] = total
    return out


def assert_close(ours, ref):
    """1e-4 relative, measured against the map's own scale (sobel crosses zero)."""
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def run(*args):
    return CliRunner().invoke(cli, ["conv", *[str(a) for a in args]])


@pytest.fixture(scope="module")
def crop(tmp_path_factory):
    """A 32×40 colour crop of the sample photograph (the helmet's rim and the patch)."""
    root = tmp_path_factory.mktemp("conv")
    pixels = np.asarray(Image.open(SAMPLE).convert("RGB"))[330:362, 140:180].copy()
    Image.fromarray(pixels).save(root / "crop.png")
    return root / "crop.png", pixels


def run_npy(image_path, tmp_path, *args):
    out = tmp_path / "h.npy"
    result = run(image_path, "--out", out, *args)
    assert result.exit_code == 0, result.stderr
    return np.load(out)


@pytest.mark.parametrize("spec", list(NAMED_PLANES))
def test_named_kernels_match_float64_reference(spec, crop, tmp_path):
    path, pixels = crop
    features = run_npy(path, tmp_path, "--kernel", spec)
    assert features.dtype == np.float32
    assert features.shape == (32, 40, 3 * len(NAMED_PLANES[spec]))
    assert_close(features, depthwise_reference(pixels, NAMED_PLANES[spec]))


def test_grey_option_filters_the_luma(crop, tmp_path):
    path, pixels = crop
    luma = (pixels.astype(np.float64) @ [0.299, 0.587, 0.114]).astype(np.float32)[:, :, None]
    features = run_npy(path, tmp_path, "--kernel", "laplace", "--grey")
    assert features.shape == (32, 40, 1)
    assert_close(features, depthwise_reference(luma, [LAPLACE]))


def test_full_kernel_equals_chapter_formula(rng, tmp_path):
    pixels = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "tiny.png")
    v = rng.normal(size=(3, 3, 3, 4))
    np.save(tmp_path / "v.npy", v)
    features = run_npy(tmp_path / "tiny.png", tmp_path, "--kernel", tmp_path / "v.npy")
    ref = chapter_layer(pixels.astype(np.float64), v)
    assert_close(features, ref)
    assert_close(apply_layer(pixels, v), ref)


def test_convolve_flips_the_kernel(rng, crop, tmp_path):
    path, pixels = crop
    v = rng.normal(size=(3, 5, 3, 2))  # asymmetric, and not square
    np.save(tmp_path / "v.npy", v)
    features = run_npy(path, tmp_path, "--kernel", tmp_path / "v.npy", "--convolve")
    assert_close(features, chapter_layer(pixels.astype(np.float64), v[::-1, ::-1]))
    plain = run_npy(path, tmp_path, "--kernel", tmp_path / "v.npy")
    assert not np.allclose(plain, features)


def test_pad_none_keeps_windows_inside(crop, tmp_path):
    path, pixels = crop
    features = run_npy(path, tmp_path, "--kernel", "box:5", "--pad", "none")
    assert features.shape == (32 - 5 + 1, 40 - 5 + 1, 3)
    assert_close(features, depthwise_reference(pixels, [np.full((5, 5), 1 / 25)], pad=None))


@pytest.mark.parametrize("pad", ["reflect", "edge"])
def test_other_paddings_equal_numpy_pad(pad, crop):
    _, pixels = crop
    v = make_kernel("sobel-y", 3)
    assert_close(apply_layer(pixels, v, pad=pad), depthwise_reference(pixels, [SOBEL_X.T], pad))


def test_delta_zero_is_a_per_pixel_linear_map(rng, crop, tmp_path):
    # the chapter's exercise 1: a 1×1 kernel mixes channels at each pixel, an MLP layer
    path, pixels = crop
    v = rng.normal(size=(1, 1, 3, 5))
    expected = pixels.astype(np.float64) @ v[0, 0]
    assert_close(apply_layer(pixels, v), expected)
    np.save(tmp_path / "v.npy", v)
    assert_close(run_npy(path, tmp_path, "--kernel", tmp_path / "v.npy", "--delta", "0"), expected)


def test_gauss_size_from_sigma_or_delta():
    assert make_kernel("gauss:1", 1).shape == (7, 7, 1, 1)
    cut = make_kernel("gauss:1", 1, delta=1)[:, :, 0, 0]
    np.testing.assert_allclose(cut, gauss_plane(1, radius=1))
    assert cut.sum() == pytest.approx(1.0)


def test_named_kernels_are_depthwise():
    v = make_kernel("sobel", 3)
    assert v.shape == (3, 3, 3, 6)
    for c in range(3):
        for d in range(6):
            expected = (SOBEL_X if d < 3 else SOBEL_X.T) if d % 3 == c else np.zeros((3, 3))
            np.testing.assert_array_equal(v[:, :, c, d], expected)


def read_table(stdout):
    lines = stdout.splitlines()
    assert lines[0].split("\t") == ["channel", "file", "min", "max", "mean", "mapping"]
    return [dict(zip(lines[0].split("\t"), line.split("\t"), strict=True)) for line in lines[1:]]


def test_png_outputs_follow_the_symmetric_mapping(crop, tmp_path):
    path, pixels = crop
    result = run(path, "--kernel", "sobel-x", "--out", tmp_path / "features.png")
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "features-0.png",
        "features-1.png",
        "features-2.png",
    ]
    rows = read_table(result.stdout)
    ref = depthwise_reference(pixels, [SOBEL_X])
    for d, row in enumerate(rows):
        assert row["file"] == str(tmp_path / f"features-{d}.png")
        assert row["mapping"] == "symmetric"
        picture = Image.open(row["file"])
        assert (picture.mode, picture.size) == ("L", (40, 32))
        grey = np.asarray(picture).astype(np.int64)
        top = np.abs(ref[:, :, d]).max()
        expected = np.clip(np.rint(128 + 127 * ref[:, :, d] / top), 1, 255)
        assert np.abs(grey - expected).max() <= 1  # float32 may round the other way
        # the printed range is enough to read the values back, to half a grey step
        m = max(-float(row["min"]), float(row["max"]))
        assert m == pytest.approx(top, rel=1e-4)
        assert np.abs((grey - 128) * m / 127 - ref[:, :, d]).max() <= 1.01 * m / 127


def test_one_output_channel_keeps_the_name_and_uses_min_max(crop, tmp_path):
    path, pixels = crop
    out = tmp_path / "blur.png"
    result = run(path, "--kernel", "box:3", "--grey", "--out", out)
    assert result.exit_code == 0, result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["blur.png"]
    (row,) = read_table(result.stdout)
    assert row["mapping"] == "min-max"
    grey = np.asarray(Image.open(out)).astype(np.float64)
    low, high = float(row["min"]), float(row["max"])
    assert grey.min() == 0 and grey.max() == 255
    luma = (pixels.astype(np.float64) @ [0.299, 0.587, 0.114]).astype(np.float32)[:, :, None]
    ref = depthwise_reference(luma, [np.full((3, 3), 1 / 9)])[:, :, 0]
    assert np.abs(low + grey * (high - low) / 255 - ref).max() <= 1.01 * (high - low) / 255


def test_to_grey8_mappings():
    assert to_grey8(np.array([-4.0, -2.0, 0.0, 4.0]), "symmetric").tolist() == [1, 64, 128, 255]
    assert to_grey8(np.zeros(3), "symmetric").tolist() == [128] * 3
    assert to_grey8(np.array([10.0, 20.0]), "min-max").tolist() == [0, 255]
    assert to_grey8(np.full(2, 7.0), "min-max").tolist() == [0, 0]


def test_npy_output_and_table(crop, tmp_path):
    path, pixels = crop
    out = tmp_path / "h.npy"
    result = run(path, "--kernel", "sobel", "--out", out)
    assert result.exit_code == 0, result.stderr
    features = np.load(out)
    assert (features.shape, features.dtype) == ((32, 40, 6), np.float32)
    rows = read_table(result.stdout)
    assert [row["channel"] for row in rows] == [str(d) for d in range(6)]
    assert {row["file"] for row in rows} == {str(out)}
    assert {row["mapping"] for row in rows} == {"none"}
    for d, row in enumerate(rows):
        assert float(row["max"]) == pytest.approx(float(features[:, :, d].max()), rel=1e-5)
    assert "waldo conv: 40×32×3 → 40×32×6" in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["h.npy"]


def test_json_describes_the_layer(crop, tmp_path):
    path, _ = crop
    result = run(
        path, "--kernel", "gauss:1", "--pad", "none", "--json", "--out", tmp_path / "g.png"
    )
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    doc = json.loads(result.stdout)
    assert set(doc) == {
        "image",
        "image_size",
        "channels_in",
        "grey",
        "kernel",
        "kernel_shape",
        "depthwise",
        "delta",
        "pad",
        "convolve",
        "parameters",
        "output_size",
        "channels_out",
        "outputs",
        "channels",
        "seconds",
    }
    assert doc["image_size"] == [40, 32] and doc["kernel"] == "gauss:1"
    assert doc["kernel_shape"] == [7, 7, 3, 3] and doc["delta"] == 3
    assert doc["parameters"] == 7 * 7 * 3 * 3 and doc["depthwise"] is True
    assert (doc["pad"], doc["convolve"], doc["grey"]) == ("none", False, False)
    assert doc["output_size"] == [34, 26] and doc["channels_out"] == 3
    assert doc["outputs"] == [str(tmp_path / f"g-{d}.png") for d in range(3)]
    assert [set(c) for c in doc["channels"]] == [
        {"channel", "file", "min", "max", "mean", "mapping"}
    ] * 3
    assert all(c["mapping"] == "min-max" and c["min"] >= 0 for c in doc["channels"])


def test_the_sample_photograph(tmp_path):
    out = tmp_path / "edges.png"
    result = run(SAMPLE, "--kernel", "sobel-x", "--grey", "--out", out)
    assert result.exit_code == 0, result.stderr
    picture = Image.open(out)
    assert (picture.mode, picture.size) == ("L", (512, 512))
    grey = np.asarray(picture)
    assert np.median(grey) == 128  # flat areas have no horizontal gradient
    assert grey.max() == 255 or grey.min() == 1  # +M is 255, −M is 1: one of them occurs
    (row,) = read_table(result.stdout)
    assert float(row["min"]) < 0 < float(row["max"])


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    root = tmp_path_factory.mktemp("kernels")
    np.save(root / "even.npy", np.ones((4, 3)))
    np.save(root / "rgb.npy", np.ones((3, 3, 3)))
    np.save(root / "rgb4.npy", np.ones((3, 3, 3, 2)))
    np.save(root / "five.npy", np.ones((3, 3, 1, 1, 1)))
    np.save(root / "nan.npy", np.full((3, 3), np.nan))
    np.save(root / "huge.npy", np.full((3, 3), 1e300))  # inf once in float32
    np.save(root / "complex.npy", np.ones((3, 3), complex))
    np.save(root / "objects.npy", np.array([1, None], dtype=object), allow_pickle=True)
    np.savez(root / "archive.npz", v=np.ones((3, 3)))
    (root / "archive.npz").rename(root / "archive.npy")
    (root / "text.npy").write_text("not an array\n")
    (root / "empty.npy").write_bytes(b"")
    (root / "truncated.npy").write_bytes((root / "even.npy").read_bytes()[:100])
    return root


def _assert_refused(result, folder, *needles):
    assert_one_line_error(result, *needles)
    assert list(folder.iterdir()) == []  # nothing written


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--kernel", "sobel-z"], ("unknown kernel 'sobel-z'", "laplace")),
        (["--kernel", "gauss:abc"], ("gauss:abc", "σ must be a positive number")),
        (["--kernel", "gauss:-1"], ("gauss:-1", "positive")),
        (["--kernel", "gauss:0"], ("gauss:0", "positive")),
        (["--kernel", "gauss:nan"], ("gauss:nan",)),
        (["--kernel", "gauss"], ("gauss", "needs its parameter")),
        (["--kernel", "gauss:500"], ("too large",)),
        (["--kernel", "box:2"], ("box:2", "odd")),
        (["--kernel", "box:0"], ("box:0", "positive odd integer")),
        (["--kernel", "box:2.5"], ("box:2.5",)),
        (["--kernel", "laplace:3"], ("unknown kernel",)),
        (
            ["--kernel", "sobel-x", "--delta", "2"],
            ("--delta 2 means a 5×5 kernel, but sobel-x is 3×3",),
        ),
        (["--kernel", "box:5", "--delta", "1"], ("--delta 1 means a 3×3 kernel", "box:5")),
        (["--kernel", "sobel-x", "--delta", "-1"], ("--delta",)),
        (["--kernel", "sobel-x", "--pad", "wrap"], ("--pad",)),
        (["--kernel", "box:41", "--pad", "none"], ("kernel 41×41 is larger than image 40×32",)),
        (["--kernel", "missing.npy"], ("missing.npy", "no such file")),
        (["--kernel", "{k}/even.npy"], ("even.npy", "(4, 3)", "odd")),
        (["--kernel", "{k}/rgb.npy", "--grey"], ("rgb.npy", "(3, 3, 3)", "image has 1")),
        (["--kernel", "{k}/rgb4.npy", "--grey"], ("rgb4.npy", "(3, 3, 3, 2)", "image has 1")),
        (["--kernel", "{k}/five.npy"], ("five.npy", "(3, 3, 1, 1, 1)")),
        (["--kernel", "{k}/nan.npy"], ("nan.npy", "NaN")),
        (["--kernel", "{k}/huge.npy"], ("huge.npy", "infinite")),
        (["--kernel", "{k}/complex.npy"], ("complex.npy", "complex128")),
        (["--kernel", "{k}/objects.npy"], ("objects.npy", "Python objects")),
        (["--kernel", "{k}/archive.npy"], ("archive.npy", ".npz")),
        (["--kernel", "{k}/text.npy"], ("text.npy", "not a NumPy .npy file")),
        (["--kernel", "{k}/empty.npy"], ("empty.npy", "not a NumPy .npy file")),
        (["--kernel", "{k}/truncated.npy"], ("truncated.npy", "damaged")),
        (["--kernel", "{k}"], ("unknown kernel",)),
        ([], ("Missing option '--kernel'",)),
    ],
)
def test_bad_kernels_are_one_line_usage_errors(args, needles, crop, kernels, tmp_path):
    path, _ = crop
    args = [a.replace("{k}", str(kernels)) for a in args]
    _assert_refused(run(path, *args, "--out", tmp_path / "h.png"), tmp_path, *needles)


@pytest.mark.parametrize(
    ("out", "needles"),
    [
        ("h.txt", ("h.txt", "unknown image format '.txt'", ".npy")),
        ("h", ("unknown image format",)),
        ("nowhere/h.png", ("nowhere", "does not exist")),
        ("{image}", ("refusing to overwrite an input file",)),
        ("{kernel}", ("refusing to overwrite an input file",)),
    ],
)
def test_bad_output_paths_are_refused_before_any_work(out, needles, rng, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray(rng.integers(0, 256, (8, 9, 3), dtype=np.uint8)).save(inputs / "x.png")
    np.save(inputs / "v.npy", np.ones((3, 3, 3, 1)))
    before = {p: p.read_bytes() for p in inputs.iterdir()}
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = out.replace("{image}", str(inputs / "x.png")).replace(
        "{kernel}", str(inputs / "v.npy")
    )
    result = run(inputs / "x.png", "--kernel", inputs / "v.npy", "--out", out_dir / target)
    _assert_refused(result, out_dir, *needles)
    assert {p: p.read_bytes() for p in inputs.iterdir()} == before


def test_a_missing_image_is_one_line(tmp_path):
    _assert_refused(
        run(tmp_path / "nope.png", "--kernel", "sobel-x", "--out", tmp_path / "h.png"),
        tmp_path,
        "nope.png",
        "no such file",
    )


def test_derived_names_are_checked_too(crop, tmp_path):
    # features-1.png would be the image itself: refused before features-0.png is written
    path, pixels = crop
    image = tmp_path / "features-1.png"
    Image.fromarray(pixels).save(image)
    result = run(image, "--kernel", "sobel-x", "--out", tmp_path / "features.png")
    assert result.exit_code == 2 and "refusing to overwrite" in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["features-1.png"]


def test_apply_layer_checks_the_kernel_against_the_image():
    with pytest.raises(WaldoError, match="image has shape"):
        apply_layer(np.zeros((5, 5, 3)), np.ones((3, 3, 1, 1)))
    with pytest.raises(WaldoError, match=r"expected \(h, w, C, D\)"):
        apply_layer(np.zeros((5, 5)), np.ones((3, 3)))
    with pytest.raises(WaldoError, match="odd"):
        apply_layer(np.zeros((5, 5)), np.ones((2, 3, 1, 1)))
