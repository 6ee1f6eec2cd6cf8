"""Scale, rotation and mirroring: --scales, --rotations, --flip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from waldo_cli.cli import cli
from waldo_cli.errors import WaldoError
from waldo_cli.variants import best_over_variants, make_variants, parse_range

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_images" / "astronaut.png"
PATCH = ROOT / "sample_images" / "astronaut-patch.png"
WHERE = (134, 350)  # top-left of the patch in the photograph
CENTRE = (134 + 36, 350 + 34)


def find(*args):
    result = CliRunner().invoke(cli, ["find", *[str(a) for a in args], "--json"])
    assert result.exit_code in (0, 1), result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def variants_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("variants")
    patch = Image.open(PATCH)
    for factor in (0.7, 1.4):
        size = (round(72 * factor), round(68 * factor))
        patch.resize(size, Image.Resampling.LANCZOS).save(root / f"scaled-{factor}.png")
    pixels = np.asarray(patch)
    Image.fromarray(np.rot90(pixels)).save(root / "turned-90.png")
    Image.fromarray(np.fliplr(pixels)).save(root / "mirrored.png")
    # turned with transparent corners, as a user would save a turned sprite
    patch.convert("RGBA").rotate(20, Image.Resampling.BICUBIC, expand=True).save(
        root / "turned-20.png"
    )
    return root


@pytest.mark.parametrize("factor", [0.7, 1.4])
def test_resized_template_found_with_its_scale(factor, variants_dir):
    doc = find(SAMPLE, variants_dir / f"scaled-{factor}.png", "--scales", "0.5:2:0.02")
    best = doc["matches"][0]
    assert best["scale"] == pytest.approx(1 / factor, abs=0.05)
    assert abs(best["x"] - WHERE[0]) <= 2 and abs(best["y"] - WHERE[1]) <= 2
    # width and height are the template's as it matched, near the patch's own size
    assert abs(best["width"] - 72) <= 3 and abs(best["height"] - 68) <= 3
    assert best["angle"] == 0.0 and best["flip"] is False


def test_quarter_turn_found_with_its_angle(variants_dir):
    doc = find(SAMPLE, variants_dir / "turned-90.png", "--rotations", "0,90,180,270")
    best = doc["matches"][0]
    assert (best["x"], best["y"]) == WHERE
    assert best["angle"] == 270.0  # turning the given template by 270° undoes its 90°
    assert best["score"] == pytest.approx(1.0, abs=1e-5)
    assert (best["width"], best["height"]) == (72, 68)


def test_mirrored_template_found_with_flip(variants_dir):
    doc = find(SAMPLE, variants_dir / "mirrored.png", "--flip")
    best = doc["matches"][0]
    assert (best["x"], best["y"]) == WHERE and best["flip"] is True
    assert best["score"] == pytest.approx(1.0, abs=1e-5)


def test_arbitrary_angle_with_masked_corners(variants_dir):
    doc = find(SAMPLE, variants_dir / "turned-20.png", "--rotations", "-30:30:5")
    best = doc["matches"][0]
    assert best["angle"] == -20.0
    centre = (best["x"] + (best["width"] - 1) / 2, best["y"] + (best["height"] - 1) / 2)
    assert abs(centre[0] - CENTRE[0]) <= 3 and abs(centre[1] - CENTRE[1]) <= 3
    assert best["score"] > 0.8


def test_one_waldo_gives_one_match_across_variants():
    doc = find(
        SAMPLE,
        PATCH,
        "--scales",
        "0.8:1.25:0.05",
        "--rotations",
        "-10:10:5",
        "-k",
        "4",
        "--no-threshold",
    )
    matches = doc["matches"]
    assert (matches[0]["x"], matches[0]["y"]) == WHERE and matches[0]["scale"] == 1.0
    centres = [(m["x"] + (m["width"] - 1) // 2, m["y"] + (m["height"] - 1) // 2) for m in matches]
    for i, a in enumerate(centres):
        for b in centres[i + 1 :]:
            assert max(abs(a[0] - b[0]), abs(a[1] - b[1])) >= 34  # half the patch's side


def test_variants_of_a_huge_image_are_searched_in_groups(monkeypatch):
    """With little memory to spare the variants go in groups: the same matches."""
    from waldo_cli import search

    args = ("--scales", "0.9:1.1:0.1", "--rotations", "0,90", "-k", "3", "--no-threshold")
    whole = find(SAMPLE, PATCH, *args)
    calls = []
    real = search.match_templates

    def counted(*a, **k):
        calls.append(len(a[1]))
        return real(*a, **k)

    monkeypatch.setattr(search, "match_templates", counted)
    monkeypatch.setattr(search, "_VARIANT_BYTES", 1)  # one variant per group
    grouped = find(SAMPLE, PATCH, *args)
    assert calls == [1] * 6
    assert grouped["matches"] == whole["matches"]


def test_heatmap_is_best_over_variants(tmp_path, variants_dir):
    heat = tmp_path / "heat.png"
    result = CliRunner().invoke(
        cli,
        [
            "find",
            str(SAMPLE),
            str(variants_dir / "turned-90.png"),
            "--rotations",
            "0,90,180,270",
            "--heatmap",
            str(heat),
            "--no-legend",
        ],
    )
    assert result.exit_code == 0
    picture = np.asarray(Image.open(heat).convert("L"))
    assert picture.shape == (512, 512)
    y, x = np.unravel_index(np.argmax(picture), picture.shape)
    assert abs(x - (134 + 35)) <= 1 and abs(y - (350 + 33)) <= 1


def test_best_over_variants_keeps_the_best_and_its_index():
    a = np.array([[0.1, 0.9], [0.3, 0.2]])  # a 2×2 template on a 3×3 image
    b = np.full((3, 3), 0.5)  # a 1×1 template
    best, which = best_over_variants((3, 3), [a, b], [(2, 2), (1, 1)], "ccorr")
    assert best[0, 1] == pytest.approx(0.9) and which[0, 1] == 0
    assert best[2, 2] == pytest.approx(0.5) and which[2, 2] == 1
    best, which = best_over_variants((3, 3), [a, b], [(2, 2), (1, 1)], "sqdiff")
    assert best[0, 0] == pytest.approx(0.1) and which[0, 0] == 0


def test_make_variants_sizes_and_masks():
    pixels = np.ones((10, 20, 3), np.float32)
    [plain, turned] = make_variants(pixels, None, [1.0], [0, 30], False)
    assert plain.mask is None and turned.mask is not None
    assert turned.shape[0] > 10 and turned.mask[0, 0, 0] == 0.0  # an added corner
    assert turned.mask[turned.shape[0] // 2, turned.shape[1] // 2, 0] == pytest.approx(1.0)
    [half] = make_variants(pixels, None, [0.5], [0], False)
    assert half.shape == (5, 10)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.5:2:0.5", [0.5, 1.0, 1.5, 2.0]),
        ("1", [1.0]),
        ("-30:30:30", [-30.0, 0.0, 30.0]),
        ("0.8, 1, 1.25", [0.8, 1.0, 1.25]),
    ],
)
def test_parse_range(text, expected):
    assert parse_range(text, "--scales") == expected


@pytest.mark.parametrize("text", ["2:1:0.1", "1:2:0", "a,b", "1:2", ""])
def test_parse_range_rejects(text):
    with pytest.raises(WaldoError):
        parse_range(text, "--scales")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--scales", "abc"], "--scales"),
        (["--scales", "0,1"], "positive"),
        (["--rotations", "5:1:1"], "--rotations"),
    ],
)
def test_bad_variant_options(args, needle):
    result = CliRunner().invoke(cli, ["find", str(SAMPLE), str(PATCH), *args])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0]


@pytest.fixture(scope="module")
def shared_case():
    """A photograph and templates of several sizes cut from it (noisy, not flat)."""
    import skimage.data

    rng = np.random.default_rng(7)
    image = skimage.data.astronaut()[:260, :330].astype(np.float32)
    templates = [
        image[40 : 40 + h, 50 : 50 + w] + rng.normal(0, 3, (h, w, 3)).astype(np.float32)
        for h, w in ((61, 47), (40, 52), (33, 33), (20, 26), (6, 5))
    ]
    return image, templates


@pytest.mark.parametrize("engine", ["auto", "fft", "direct"])
@pytest.mark.parametrize("method", ["ccoeff_normed", "sqdiff", "ccorr_normed", "ccoeff"])
def test_shared_search_gives_each_templates_own_scores(shared_case, method, engine):
    from waldo_cli.engine import match_template, match_templates

    image, templates = shared_case
    maps = match_templates(image, templates, method, engine=engine)
    for template, scores in zip(templates, maps, strict=True):
        alone = match_template(image, template, method, engine=engine)
        assert scores.shape == alone.shape and scores.dtype == np.float32
        # the same computation either way: compare raw methods relative to their size
        scale = 1.0 if method.endswith("_normed") else float(np.abs(alone).max())
        assert np.abs(scores.astype(np.float64) - alone).max() <= 1e-6 * scale


def test_shared_search_transforms_the_image_once(shared_case, monkeypatch):
    from waldo_cli import engine, kernels

    image, templates = shared_case
    planar_calls, templates_per_pass = [], []
    planar, fft = engine.as_planar, kernels._correlate_fft

    def counted_planar(*args):
        planar_calls.append(1)
        return planar(*args)

    def counted_fft(image, offsets, spectra, *args):
        templates_per_pass.append(spectra.shape[0])
        return fft(image, offsets, spectra, *args)

    monkeypatch.setattr(engine, "as_planar", counted_planar)
    monkeypatch.setattr(kernels, "_correlate_fft", counted_fft)
    engine.set_threads(1)  # one band: one kernel call per pass over the image
    try:
        engine.match_templates(image, templates[:4], engine="fft")
    finally:
        engine.set_threads(None)
    assert planar_calls == [1] and templates_per_pass == [4]


def test_shared_search_handles_masks_misfits_and_convolution(shared_case, rng):
    from waldo_cli.engine import match_template, match_templates

    image, templates = shared_case
    mask = (rng.random(templates[2].shape[:2]) > 0.3).astype(np.float32)
    too_big = np.zeros((300, 10, 3), np.float32)
    maps = match_templates(
        image,
        [templates[0], templates[2], too_big],
        "ccoeff_normed",
        masks=[None, mask, None],
        convolve=True,
    )
    assert maps[2] is None
    np.testing.assert_allclose(
        maps[0], match_template(image, templates[0], convolve=True), atol=1e-6
    )
    np.testing.assert_allclose(
        maps[1], match_template(image, templates[2], mask=mask, convolve=True), atol=1e-6
    )
    with pytest.raises(WaldoError, match="2 masks for 3 templates"):
        match_templates(image, [templates[0]] * 3, masks=[None, None])


@pytest.mark.parametrize("pad", ["zero", "reflect", "edge"])
def test_shared_search_with_padding_equals_each_padded_search(shared_case, pad):
    from waldo_cli.engine import match_template, match_templates

    image, templates = shared_case
    chosen = [templates[0], templates[3], templates[4]]  # odd and even sides, big and small
    maps = match_templates(image, chosen, "ccoeff_normed", pad=pad)
    for template, scores in zip(chosen, maps, strict=True):
        alone = match_template(image, template, "ccoeff_normed", pad=pad)
        assert scores.shape == alone.shape == image.shape[:2]
        assert np.abs(scores.astype(np.float64) - alone).max() <= 1e-6


def test_cut_off_waldo_found_at_another_scale_with_padding(tmp_path):
    """--pad with --scales: a scaled Waldo hanging over the edge is found, scale and all."""
    photo = Image.open(SAMPLE).convert("RGB")
    x, y = WHERE
    # the photograph shrunk by 0.8, cut so that a quarter of the patch hangs
    # off its left edge: found with the patch at scale 0.8
    cut = photo.crop((x + 18, 0, photo.width, photo.height))
    cut = cut.resize((round(cut.width * 0.8), round(cut.height * 0.8)), Image.Resampling.LANCZOS)
    cut.save(tmp_path / "cut.png")
    report = find(tmp_path / "cut.png", PATCH, "--pad", "edge", "--scales", "0.7:1:0.1")
    assert report["pad"] == "edge" and report["scores_indexed_by"] == "window centre"
    match = report["matches"][0]
    assert match["scale"] == pytest.approx(0.8, abs=0.05)
    assert match["x"] < 0  # the window hangs over the left edge
    assert abs(match["x"] - (-18 * 0.8)) <= 3 and abs(match["y"] - y * 0.8) <= 3
