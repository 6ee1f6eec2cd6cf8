"""Heatmaps, overlays, the terminal preview and safe output files."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageFont

from waldo_cli import find_peaks, load_image, match_template, render
from waldo_cli.cli import cli
from waldo_cli.errors import OutputError, WaldoError
from waldo_cli.io import write_atomically
from waldo_cli.peaks import Match
from waldo_cli.render import (
    NEUTRAL,
    colormap_table,
    goodness,
    mark_colour,
    match_label,
    render_heatmap,
    render_overlay,
    shrink_scores,
    thumbnail,
)

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_images" / "astronaut.png"
SAMPLE_TEMPLATE = ROOT / "sample_images" / "astronaut-patch.png"
TRUE_BOX = (134, 350, 72, 68)  # x, y, w, h of the patch in the sample photograph
RELIABLE = ["sqdiff", "sqdiff_normed", "ccorr_normed", "ccoeff_normed"]


def run(*args, env=None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


def _brightest(path):
    grey = np.asarray(Image.open(path).convert("L"), np.float64)
    y, x = np.unravel_index(np.argmax(grey), grey.shape)
    return int(x), int(y)


def _inside(point, box):
    x, y = point
    bx, by, bw, bh = box
    return bx <= x < bx + bw and by <= y < by + bh


@pytest.fixture(scope="module")
def sample_scores():
    image = load_image(SAMPLE)
    template = load_image(SAMPLE_TEMPLATE)
    return image, template, {m: match_template(image, template, m) for m in RELIABLE}


PUZZLE = ROOT / "sample_images" / "puzzle"
SOURCES = {
    "photograph": (SAMPLE, SAMPLE_TEMPLATE, TRUE_BOX),
    "puzzle": (
        PUZZLE / "scene.png",
        PUZZLE / "waldo.png",
        tuple(
            json.loads((PUZZLE / "answer.json").read_text())[k]
            for k in ("x", "y", "width", "height")
        ),
    ),
}


@pytest.mark.parametrize("source", list(SOURCES))
@pytest.mark.parametrize("legend", [True, False])
@pytest.mark.parametrize("method", RELIABLE)
def test_heatmap_brightest_pixel_inside_true_box(method, legend, source, tmp_path):
    image, template, box = SOURCES[source]
    heat = tmp_path / "heat.png"
    args = ["find", image, template, "--method", method, "--heatmap", heat]
    result = run(*args, *([] if legend else ["--no-legend"]))
    assert result.exit_code in (0, 1), result.stderr
    assert Image.open(heat).size == Image.open(image).size
    assert _inside(_brightest(heat), box)


def test_heatmap_scores_drawn_at_window_centres(sample_scores):
    image, template, scores = sample_scores
    s = scores["ccoeff_normed"]
    heat = np.asarray(
        render_heatmap(s, "ccoeff_normed", image.shape[:2], template.shape[:2], legend=False)
    )
    h, w = template.shape[:2]
    top, left = (h - 1) // 2, (w - 1) // 2
    table = colormap_table("viridis")
    unit, lo, hi = goodness(s, "ccoeff_normed")
    expected = table[np.round(unit * 255).astype(int)]
    np.testing.assert_array_equal(heat[top : top + s.shape[0], left : left + s.shape[1]], expected)
    # the border no window centre reaches is neutral
    assert (heat[:top] == NEUTRAL).all() and (heat[:, :left] == NEUTRAL).all()
    assert (heat[top + s.shape[0] :] == NEUTRAL).all()
    assert (heat[:, left + s.shape[1] :] == NEUTRAL).all()
    # the peak colour sits at the centre of the true box
    assert tuple(heat[TRUE_BOX[1] + top, TRUE_BOX[0] + left]) == tuple(table[255])


def test_normed_range_is_fixed_raw_range_is_observed():
    table = colormap_table("viridis")
    zeros = np.zeros((4, 4), np.float32)
    heat = np.asarray(render_heatmap(zeros, "ccoeff_normed", (4, 4), (1, 1), legend=False))
    assert tuple(heat[0, 0]) == tuple(table[128])  # 0 is the middle of [-1, 1]
    raw = np.array([[5.0, 10.0], [7.5, 5.0]], np.float32)
    heat = np.asarray(render_heatmap(raw, "ccorr", (2, 2), (1, 1), legend=False))
    assert tuple(heat[0, 0]) == tuple(table[0]) and tuple(heat[0, 1]) == tuple(table[255])
    # sqdiff: the smallest score is the bright end
    heat = np.asarray(render_heatmap(raw, "sqdiff", (2, 2), (1, 1), legend=False))
    assert tuple(heat[0, 0]) == tuple(table[255]) and tuple(heat[0, 1]) == tuple(table[0])


def test_legend_only_touches_a_corner(sample_scores):
    image, template, scores = sample_scores
    args = (scores["ccoeff_normed"], "ccoeff_normed", image.shape[:2], template.shape[:2])
    # the best-match mark has its own test; here only the legend differs
    with_legend = np.asarray(render_heatmap(*args, legend=True, mark=False)).astype(int)
    without = np.asarray(render_heatmap(*args, legend=False)).astype(int)
    changed = np.argwhere((with_legend != without).any(axis=2))
    assert len(changed) > 100  # a legend was drawn
    assert changed[:, 0].min() > 512 * 0.75 and changed[:, 1].min() > 512 * 0.5


def test_colormap_option(tmp_path):
    a, b = tmp_path / "v.png", tmp_path / "m.png"
    assert run("find", SAMPLE, SAMPLE_TEMPLATE, "--heatmap", a, "--no-legend").exit_code == 0
    assert (
        run(
            "find", SAMPLE, SAMPLE_TEMPLATE, "--heatmap", b, "--no-legend", "--colormap", "magma"
        ).exit_code
        == 0
    )
    centre = np.asarray(Image.open(b))[350 + 33, 134 + 35]
    assert tuple(centre) == tuple(colormap_table("magma")[255])
    assert not np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))


def test_overlay_differs_only_near_boxes(tmp_path):
    out = tmp_path / "found.png"
    result = run(
        "find", SAMPLE, SAMPLE_TEMPLATE, "-k", "3", "--threshold", "0.2", "--overlay", out, "--json"
    )
    matches = json.loads(result.stdout)["matches"]
    assert len(matches) == 3
    before = np.asarray(Image.open(SAMPLE).convert("RGB")).astype(int)
    after = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert after.shape == before.shape
    changed = (before != after).any(axis=2)
    near = np.zeros_like(changed)
    margin = 30  # line width plus the label above the box
    for m in matches:
        near[
            max(0, m["y"] - margin) : m["y"] + m["height"] + 8,
            max(0, m["x"] - 8) : m["x"] + m["width"] + margin + 40,
        ] = True
    assert changed.any()
    assert not (changed & ~near).any()
    # every box is drawn: pixels on each box's outline changed
    for m in matches:
        assert changed[m["y"], m["x"] : m["x"] + m["width"]].mean() > 0.9


def test_best_match_is_emphasised():
    pixels = np.full((100, 160, 3), 40.0)
    from waldo_cli.peaks import Match

    out = np.asarray(
        render_overlay(pixels, [Match(10, 40, 30, 30, 0.9), Match(100, 40, 30, 30, 0.5)])
    )
    changed = (out != 40).any(axis=2)
    first = changed[30:80, 0:50].sum()
    second = changed[30:80, 90:140].sum()
    assert first > second  # thicker outline and a filled label


def test_overlay_on_grey_image_is_colour(tmp_path):
    Image.fromarray(np.asarray(Image.open(SAMPLE).convert("L"))).save(tmp_path / "g.png")
    out = tmp_path / "o.png"
    assert run("find", tmp_path / "g.png", SAMPLE_TEMPLATE, "--overlay", out).exit_code == 0
    assert Image.open(out).mode == "RGB"


@pytest.mark.parametrize(
    ("name", "fmt"), [("o.jpg", "JPEG"), ("o.webp", "WEBP"), ("o.tif", "TIFF"), ("o.PNG", "PNG")]
)
def test_overlay_format_follows_file_name(name, fmt, tmp_path):
    assert run("find", SAMPLE, SAMPLE_TEMPLATE, "--overlay", tmp_path / name).exit_code == 0
    assert Image.open(tmp_path / name).format == fmt


def _assert_refused(result, *needles):
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_unknown_extension_is_refused(tmp_path):
    _assert_refused(
        run("find", SAMPLE, SAMPLE_TEMPLATE, "--overlay", tmp_path / "o.xyz"),
        "o.xyz",
        "unknown image format",
    )
    _assert_refused(
        run("find", SAMPLE, SAMPLE_TEMPLATE, "--heatmap", tmp_path / "heat"), "unknown image format"
    )
    assert list(tmp_path.iterdir()) == []


def test_output_onto_an_input_is_refused(tmp_path, monkeypatch):
    image = tmp_path / "scene.png"
    image.write_bytes(SAMPLE.read_bytes())
    before = image.read_bytes()
    _assert_refused(run("find", image, SAMPLE_TEMPLATE, "--overlay", image), "input file")
    _assert_refused(run("find", image, SAMPLE_TEMPLATE, "--heatmap", SAMPLE_TEMPLATE), "input file")
    # the same file under another name
    monkeypatch.chdir(tmp_path)
    _assert_refused(
        run("find", "scene.png", SAMPLE_TEMPLATE, "--overlay", "./scene.png"), "input file"
    )
    assert image.read_bytes() == before


def test_missing_folder_is_refused(tmp_path):
    _assert_refused(
        run("find", SAMPLE, SAMPLE_TEMPLATE, "--heatmap", tmp_path / "nope" / "heat.png"),
        "does not exist",
    )


def test_same_path_twice_is_refused(tmp_path):
    _assert_refused(
        run(
            "find",
            SAMPLE,
            SAMPLE_TEMPLATE,
            "--heatmap",
            tmp_path / "a.png",
            "--overlay",
            tmp_path / "a.png",
        ),
        "same file",
    )


def test_unwritable_folder_is_refused(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):  # root ignores permission bits
            folder = Path("/proc")
        result = run("find", SAMPLE, SAMPLE_TEMPLATE, "--overlay", folder / "o.png")
        _assert_refused(result, "o.png")
        assert not (folder / "o.png").exists()
    finally:
        (tmp_path / "locked").chmod(0o755)


def test_interrupted_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")

    def explode(fh):
        fh.write(b"half an image")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomically(target, explode)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]

    def fail(fh):
        raise OSError(28, "No space left on device")

    with pytest.raises(OutputError, match="No space left"):
        write_atomically(tmp_path / "new.png", fail)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_unknown_colormap_is_refused(tmp_path):
    _assert_refused(
        run(
            "find",
            SAMPLE,
            SAMPLE_TEMPLATE,
            "--heatmap",
            tmp_path / "h.png",
            "--colormap",
            "no-such-map",
        ),
        "colormap",
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("what", ["overlay", "heatmap"])
def test_show_draws_half_blocks_on_a_terminal(what):
    result = run(
        "find",
        SAMPLE,
        SAMPLE_TEMPLATE,
        f"--show={what}",
        env={"FORCE_COLOR": "1", "COLUMNS": "60", "LINES": "40"},
    )
    assert result.exit_code == 0
    picture, _, table = result.stdout.partition("rank")
    rows = [line for line in picture.splitlines() if "▀" in line]
    assert len(rows) >= 10  # the picture comes above the table
    assert {row.count("▀") for row in rows} == {60}  # as wide as the terminal
    assert "134" in table


def test_show_is_silent_off_a_terminal():
    result = run("find", SAMPLE, SAMPLE_TEMPLATE, "--show")
    assert result.exit_code == 0
    assert "▀" not in result.stdout and "▀" not in result.stderr


def test_show_keeps_json_clean():
    result = run(
        "find",
        SAMPLE,
        SAMPLE_TEMPLATE,
        "--show",
        "--json",
        env={"FORCE_COLOR": "1", "COLUMNS": "60"},
    )
    assert json.loads(result.stdout)["matches"][0]["x"] == 134


def test_peaks_and_heatmap_agree(sample_scores):
    image, template, scores = sample_scores
    for method in RELIABLE:
        best = find_peaks(scores[method], method, template.shape[:2])[0]
        assert (best.x, best.y) == TRUE_BOX[:2]


# ---------------------------------------------------------------------------
# Pictures people can read (issue #12): peaks kept when shrinking, the best
# match marked, text sized to the picture, a preview that fits the terminal.


def _block_best_reference(scores, shape, best):
    """Loop over the blocks (rows k*H//rows up to (k+1)*H//rows, the same for columns)."""
    rows, cols = shape
    out = np.empty(shape)
    for i in range(rows):
        for j in range(cols):
            out[i, j] = best(
                scores[
                    i * scores.shape[0] // rows : (i + 1) * scores.shape[0] // rows,
                    j * scores.shape[1] // cols : (j + 1) * scores.shape[1] // cols,
                ]
            )
    return out


@pytest.mark.parametrize("method", ["ccoeff_normed", "ccorr", "sqdiff", "sqdiff_normed"])
def test_shrink_scores_is_block_best(method, rng):
    best = np.min if method.startswith("sqdiff") else np.max
    scores = rng.random((24, 36))
    # whole blocks: a reshape does it
    expected = best(scores.reshape(6, 4, 9, 4), axis=(1, 3))
    np.testing.assert_array_equal(shrink_scores(scores, method, (6, 9)), expected)
    # uneven blocks
    odd = rng.random((25, 37))
    np.testing.assert_array_equal(
        shrink_scores(odd, method, (6, 9)), _block_best_reference(odd, (6, 9), best)
    )
    np.testing.assert_array_equal(shrink_scores(odd, method, odd.shape), odd)


def test_shrink_scores_refuses_to_grow():
    with pytest.raises(WaldoError, match="cannot shrink"):
        shrink_scores(np.zeros((4, 4)), "ccorr", (5, 4))


def test_one_pixel_peak_survives_shrinking_to_300_px():
    table = colormap_table("viridis")
    scores = np.zeros((640, 960))
    scores[301, 437] = 1.0  # one pixel: 0.3 of a pixel at 300 px wide
    heat = render_heatmap(scores, "ccorr_normed", scores.shape, (1, 1), legend=False)
    # resampling averages the peak away: what the README and --show used to show
    averaged = np.asarray(heat.resize((300, 200), Image.Resampling.LANCZOS))
    assert not (averaged == table[255]).all(axis=2).any()
    for small in (
        np.asarray(
            render_heatmap(
                scores, "ccorr_normed", scores.shape, (1, 1), legend=False, max_size=(300, 300)
            )
        ),
        thumbnail(heat, 300, 300),
    ):
        assert small.shape == (200, 300, 3)
        bright = np.argwhere((small == table[255]).all(axis=2))
        # block 94 of rows (301 * 200 // 640) and 136 of columns (437 * 300 // 960)
        assert bright.tolist() == [[94, 136]]


def _changed(a, b):
    return np.argwhere((np.asarray(a).astype(int) != np.asarray(b).astype(int)).any(axis=2))


@pytest.mark.parametrize("method", ["ccorr_normed", "sqdiff"])
def test_mark_rings_the_best_score(method, rng):
    scores = rng.uniform(0.3, 0.6, (92, 146))
    scores[37, 101] = 0.0 if method == "sqdiff" else 1.0
    args = (scores, method, (100, 150), (9, 5))
    marked = render_heatmap(*args, legend=False, mark=True)
    bare = render_heatmap(*args, legend=False)
    changed = _changed(marked, bare)
    centre = (37 + 4, 101 + 2)  # the best window's centre on the image's grid
    assert len(changed) > 20
    np.testing.assert_allclose(changed.mean(axis=0), centre, atol=1.0)
    ring = np.abs(changed - centre).max(axis=1)
    assert ring.min() >= 2  # the best pixel and its neighbours stay visible
    assert marked.getpixel(centre[::-1]) == tuple(colormap_table("viridis")[255])
    # the mark never outshines the best score
    grey = np.asarray(marked.convert("L"))
    assert grey[centre] == grey.max()


def test_mark_follows_the_peak_when_shrunk(rng):
    scores = rng.uniform(0.0, 0.5, (300, 450))
    scores[200, 60] = 1.0
    args = (scores, "ccorr_normed", scores.shape, (1, 1))
    marked = render_heatmap(*args, legend=False, mark=True, max_size=(90, 90))
    bare = render_heatmap(*args, legend=False, max_size=(90, 90))
    assert marked.size == (90, 60)
    np.testing.assert_allclose(_changed(marked, bare).mean(axis=0), (200 // 5, 60 // 5), atol=1.0)


def test_flat_map_has_no_mark():
    flat = np.zeros((20, 30))
    assert not len(
        _changed(
            render_heatmap(flat, "ccorr", (20, 30), (1, 1), legend=False, mark=True),
            render_heatmap(flat, "ccorr", (20, 30), (1, 1), legend=False),
        )
    )


def _legend_text_rows(width, height):
    """Rows of the legend's grey text: the lines are dim grey, the bar coloured."""
    args = (np.zeros((height, width)), "ccorr_normed", (height, width), (1, 1))
    picture = np.asarray(render_heatmap(*args, mark=False)).astype(int)
    bare = np.asarray(render_heatmap(*args, legend=False)).astype(int)
    grey = (picture != bare).any(axis=2) & (np.ptp(picture, axis=2) < 8) & (picture[:, :, 0] > 120)
    rows = np.flatnonzero(grey.any(axis=1))
    assert len(rows), "no legend text"
    return rows.max() - rows.min() + 1


@pytest.mark.parametrize("font", ["truetype", "bitmap"])
def test_legend_text_grows_with_the_picture(font, monkeypatch):
    if font == "bitmap":  # Pillow without FreeType: its one bitmap font, enlarged
        monkeypatch.setattr(
            render.ImageFont, "load_default", lambda size=None: ImageFont.load_default_imagefont()
        )
    render._font.cache_clear()
    try:
        heights = [_legend_text_rows(w, w // 2) for w in (400, 800, 1600)]
    finally:
        render._font.cache_clear()
    assert 1.6 < heights[1] / heights[0] < 2.4 and 1.6 < heights[2] / heights[1] < 2.4
    # two lines of text, each about a thirtieth of the width high
    assert heights[2] > 1600 / 30


def test_overlay_label_separates_rank_and_score():
    for rank, score in [(1, 0.8351), (10, -0.25), (3, 12345.0)]:
        label = match_label(rank, score)
        found = re.fullmatch(r"#(\d+): (\S+)", label)
        assert found and int(found[1]) == rank
        assert float(found[2]) == pytest.approx(score, rel=1e-2, abs=1e-3)


def test_overlay_label_is_legible_at_the_pictures_size():
    pixels = np.zeros((640, 960, 3))
    box = Match(400, 300, 21, 47, 0.835)
    out = np.asarray(render_overlay(pixels, [box]))
    label_rows = np.flatnonzero((out[: 300 - 6] != 0).any(axis=(1, 2)))
    # shown 300 px wide (as in the README) the label is still about 10 px high
    assert len(label_rows) * 300 / 960 >= 9


def test_heatmap_blends_over_the_image(rng):
    scores = rng.random((28, 38))
    pixels = rng.uniform(0, 255, (32, 40, 3))
    args = (scores, "ccorr", (32, 40), (5, 3))
    heat = np.asarray(render_heatmap(*args, legend=False)).astype(float)
    for alpha in (0.0, 0.35, 1.0):
        blend = np.asarray(render_heatmap(*args, legend=False, over=pixels, alpha=alpha))
        expected = alpha * heat + (1 - alpha) * np.clip(np.round(pixels), 0, 255)
        assert np.abs(blend - expected).max() <= 0.5 + 1e-9
    with pytest.raises(WaldoError, match="40×32"):
        render_heatmap(*args, over=pixels[:30])
    with pytest.raises(WaldoError, match="opacity"):
        render_heatmap(*args, over=pixels, alpha=1.5)


def test_preview_size_leaves_room_for_the_lines_below():
    from rich.console import Console

    from waldo_cli.report import preview_size

    tall = Image.new("RGB", (100, 1000))
    for reserve in (6, 8, 12):
        console = Console(width=80, height=24, force_terminal=True)
        width, rows = preview_size(console, reserve)
        assert (width, rows) == (80, 2 * (24 - reserve))  # two pixel rows per line
        lines = -(-thumbnail(tall, width, rows).shape[0] // 2)
        assert lines + reserve <= 24
    # the default: a table of one match (5 lines), a summary wrapped once, the prompt
    assert 24 - preview_size(Console(width=80, height=24))[1] // 2 >= 5 + 2 + 1


def _run_in_pty(args, rows, cols):
    """Run a command on a pseudo-terminal of rows × cols; its output as text."""
    import fcntl
    import pty
    import struct
    import subprocess
    import sys
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    env.update(TERM="xterm-256color", COLORTERM="truecolor")
    child = subprocess.Popen(
        [sys.executable, "-m", "waldo_cli", *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=ROOT,
        env=env,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert child.wait(timeout=120) == 0
    return b"".join(chunks).decode()


def test_show_heatmap_fits_an_80x24_terminal_and_shows_the_peak():
    out = _run_in_pty(
        [
            "find",
            "sample_images/puzzle/scene.png",
            "sample_images/puzzle/waldo.png",
            "--show=heatmap",
        ],
        24,
        80,
    )
    # a first run may print a one-line compiling notice before the picture
    lines = out.replace("\r\n", "\n").rstrip("\n").split("\n")
    lines = lines[next(i for i, line in enumerate(lines) if "▀" in line) :]
    picture = [line for line in lines if "▀" in line]
    assert len(picture) >= 10
    assert len(lines) + 1 <= 24  # and the shell's next prompt
    assert "1 match" in lines[-1] or "1 match" in lines[-2]
    drawn = "".join(picture)
    for colour in (colormap_table("viridis")[255], mark_colour(colormap_table("viridis"))):
        assert re.search(r"8;2;{};{};{}[m;]".format(*colour), drawn), colour
