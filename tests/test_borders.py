"""Borders (--pad) and true convolution (--convolve): the chapter's exercises 3 and 6."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from naive import match_template_ref, raw_scale
from PIL import Image

from waldo_cli import match_template
from waldo_cli.cli import cli
from waldo_cli.engine import pad_widths
from waldo_cli.errors import WaldoError
from waldo_cli.methods import METHODS

NUMPY_MODES = {"zero": "constant", "reflect": "reflect", "edge": "edge"}


@pytest.mark.parametrize("template_shape", [(5, 5), (4, 7), (1, 1), (9, 2)])
@pytest.mark.parametrize("mode", ["zero", "reflect", "edge"])
@pytest.mark.parametrize("method", METHODS)
def test_padding_equals_numpy_pad_then_valid(method, mode, template_shape, photo):
    image = photo("coffee")[50:80, 60:100]
    h, w = template_shape
    template = image[10 : 10 + h, 12 : 12 + w].copy()
    ours = match_template(image, template, method, pad=mode)
    assert ours.shape == image.shape[:2]  # the image's own shape
    widths = (*pad_widths(template_shape), (0, 0))
    padded = np.pad(image, widths, mode=NUMPY_MODES[mode])
    np.testing.assert_array_equal(ours, match_template(padded, template, method))
    ref, near = match_template_ref(padded, template, method)
    scale = 1.0 if method.endswith("_normed") else raw_scale(padded, template)
    assert np.abs(ours - ref)[~near].max() <= 2e-5 * scale


def test_padded_scores_are_indexed_by_window_centre(photo):
    image = photo("astronaut")[:60, :80]
    template = image[20:27, 30:35]  # 7×5: centre offset (3, 2)
    scores = match_template(image, template, "sqdiff", pad="zero")
    assert np.unravel_index(np.argmin(scores), scores.shape) == (20 + 3, 30 + 2)
    assert scores[23, 32] == 0.0


def test_waldo_cut_off_by_the_edge_is_found(photo, tmp_path):
    full = photo("astronaut")
    template = full[100:140, 200:236]  # 36×40
    cut = full[112:300, 215:420]  # the template now starts at (-15, -12), a third outside
    Image.fromarray(template).save(tmp_path / "t.png")
    Image.fromarray(cut).save(tmp_path / "cut.png")
    run = CliRunner().invoke
    plain = json.loads(
        run(
            cli,
            [
                "find",
                str(tmp_path / "cut.png"),
                str(tmp_path / "t.png"),
                "--json",
                "--no-threshold",
            ],
        ).stdout
    )
    assert (plain["matches"][0]["x"], plain["matches"][0]["y"]) != (-15, -12)
    # zero padding paints the hidden third black, which a photograph's template
    # does not resemble; edge and reflect continue the scene and find it
    for mode in ("edge", "reflect"):
        doc = json.loads(
            run(
                cli,
                [
                    "find",
                    str(tmp_path / "cut.png"),
                    str(tmp_path / "t.png"),
                    "--json",
                    "--pad",
                    mode,
                ],
            ).stdout
        )
        assert doc["pad"] == mode and doc["scores_indexed_by"] == "window centre"
        best = doc["matches"][0]
        assert (best["x"], best["y"]) == (-15, -12), mode


def test_template_larger_than_image_with_padding(rng):
    image = rng.random((6, 6))
    template = rng.random((9, 9))
    with pytest.raises(WaldoError):
        match_template(image, template)
    assert match_template(image, template, "ccorr", pad="zero").shape == (6, 6)


def test_convolve_flips_the_template(photo):
    image = photo("camera")[:50, :60]
    template = image[5:12, 8:17]
    for method in METHODS:
        np.testing.assert_array_equal(
            match_template(image, template, method, convolve=True),
            match_template(image, template[::-1, ::-1].copy(), method),
        )


def test_convolve_flips_the_mask_too(rng):
    image = rng.random((20, 20)).astype(np.float32)
    template = rng.random((5, 4)).astype(np.float32)
    mask = (rng.random((5, 4)) > 0.4).astype(np.float32)
    np.testing.assert_allclose(
        match_template(image, template, "ccoeff_normed", mask=mask, convolve=True),
        match_template(
            image, template[::-1, ::-1].copy(), "ccoeff_normed", mask=mask[::-1, ::-1].copy()
        ),
        atol=1e-6,
    )


@settings(max_examples=60, deadline=None)
@given(height=st.integers(1, 7), width=st.integers(1, 7), seed=st.integers(0, 2**32 - 1))
def test_convolution_commutes(height, width, seed):
    """f ∗ g = g ∗ f (exercise 6), with zero padding, for true convolution."""
    local = np.random.default_rng(seed)
    f = local.random((height, width))
    g = local.random((height, width))
    fg = match_template(f, g, "ccorr", pad="zero", convolve=True)
    gf = match_template(g, f, "ccorr", pad="zero", convolve=True)
    np.testing.assert_allclose(fg, gf, rtol=1e-5, atol=1e-5)


def test_correlation_does_not_commute(rng):
    f = rng.random((5, 6))
    g = rng.random((5, 6))
    fg = match_template(f, g, "ccorr", pad="zero")
    gf = match_template(g, f, "ccorr", pad="zero")
    assert np.abs(fg - gf).max() > 0.1
    # what does hold for correlation: g ⋆ f is f ⋆ g turned by 180° (odd sizes)
    f, g = rng.random((5, 7)), rng.random((5, 7))
    np.testing.assert_allclose(
        match_template(f, g, "ccorr", pad="zero"),
        match_template(g, f, "ccorr", pad="zero")[::-1, ::-1],
        rtol=1e-5,
        atol=1e-5,
    )


def test_unknown_padding_is_an_error():
    with pytest.raises(WaldoError, match="unknown padding"):
        match_template(np.zeros((5, 5)), np.zeros((2, 2)), pad="wrap")


def test_cli_convolve_and_pad_in_json(photo, tmp_path):
    image = photo("astronaut")[:120, :160]
    Image.fromarray(image).save(tmp_path / "a.png")
    Image.fromarray(image[40:60, 50:75][::-1, ::-1]).save(tmp_path / "flipped.png")
    result = CliRunner().invoke(
        cli,
        ["find", str(tmp_path / "a.png"), str(tmp_path / "flipped.png"), "--convolve", "--json"],
    )
    doc = json.loads(result.stdout)
    assert doc["convolve"] is True and doc["pad"] == "none"
    assert (doc["matches"][0]["x"], doc["matches"][0]["y"]) == (50, 40)
    heat = tmp_path / "h.png"
    result = CliRunner().invoke(
        cli,
        [
            "find",
            str(tmp_path / "a.png"),
            str(tmp_path / "flipped.png"),
            "--convolve",
            "--pad",
            "edge",
            "--heatmap",
            str(heat),
            "--no-legend",
        ],
    )
    assert result.exit_code == 0
    picture = np.asarray(Image.open(heat))
    assert picture.shape == (120, 160, 3)  # the image's grid, no grey border
    from waldo_cli.render import colormap_table

    # the match's centre carries the colormap's bright end
    assert tuple(picture[40 + 9, 50 + 12]) == tuple(colormap_table("viridis")[255])
