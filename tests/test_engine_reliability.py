"""Issue #13, the engine's slice: numbers and limits that used to crash, overflow or run forever.

One test per class of defect. Numbers are checked against the float64
references of ``naive.py`` and between engines; promises about the command
line through the installed ``waldo`` in a subprocess (exit 2, exactly one
line on stderr, no traceback).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from helpers import record_resampled_scales
from naive import match_template_masked_ref, match_template_ref, raw_scale, windows
from PIL import Image

from waldo_cli import jit, match_template
from waldo_cli.conv import MAX_OUTPUTS, MAX_WEIGHTS
from waldo_cli.demo import MAX_CROWD, max_crowd
from waldo_cli.errors import TemplateTooLargeError
from waldo_cli.plan import _fft_sides, plan_search
from waldo_cli.render import colormap_table, render_heatmap
from waldo_cli.variants import MAX_VALUES, list_variants, parse_range

FLT_MAX = float(np.finfo(np.float32).max)
METHODS = ("sqdiff", "sqdiff_normed", "ccorr", "ccorr_normed", "ccoeff", "ccoeff_normed")
RAW = ("sqdiff", "ccorr", "ccoeff")


def waldo(*args, env=None, timeout=120, cwd=None):
    exe = Path(sys.executable).with_name("waldo")
    return subprocess.run(
        [str(exe), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=cwd,
    )


def assert_one_line(proc, *needles):
    """Exit 2, nothing on stdout, exactly one line on stderr holding every needle."""
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    """A small photograph and a patch of it, as PNG files."""
    import skimage.data

    root = tmp_path_factory.mktemp("pictures")
    image = skimage.data.astronaut()[100:160, 120:200]
    Image.fromarray(image).save(root / "scene.png")
    Image.fromarray(image[20:36, 30:52]).save(root / "patch.png")
    return root


# --- 1. templates larger than the FFT tile table ---------------------------------


def test_every_fft_tile_holds_a_whole_template():
    for side in (*range(1, 80), *range(500, 5000, 37), 2048, 2049, 4096, 4097):
        for image_side in (side, side + 1, 2 * side + 3, 8191):
            sides = _fft_sides(side, max(side, image_side))
            assert sides and all(s >= side and s % 2 == 0 for s in sides), (side, sides)


@pytest.mark.parametrize(
    ("image_shape", "corner", "template_shape"),
    [((46, 2060), (4, 7), (40, 2049)), ((2510, 36), (6, 3), (2500, 30))],
)
@pytest.mark.parametrize("masked", [False, True])
def test_templates_beyond_2048_px_are_searched_by_both_engines(
    rng, image_shape, corner, template_shape, masked
):
    image = rng.random(image_shape) * 255
    (y, x), (h, w) = corner, template_shape
    template = image[y : y + h, x : x + w] + rng.normal(0, 2, (h, w))
    mask = (rng.random((h, w)) > 0.3).astype(np.float64) if masked else None
    if masked:
        reference, _ = match_template_masked_ref(image, template, mask, "ccoeff_normed")
    else:
        reference, _ = match_template_ref(image, template, "ccoeff_normed")
    plan = plan_search((*image_shape, 1), template_shape, "ccoeff_normed", engine="fft")
    assert plan.tile is not None and plan.tile >= max(template_shape)
    for engine in ("direct", "fft", "auto"):
        scores = match_template(image, template, "ccoeff_normed", engine=engine, mask=mask)
        assert scores.shape == reference.shape
        assert np.abs(scores - reference).max() <= 1e-5, engine
        assert np.unravel_index(scores.argmax(), scores.shape) == (y, x)


# --- 2. huge values: finite scores, engines that agree, heatmaps that draw -------


def _masked_raw_scale(image, template, mask):
    """sqrt(sum W T^2 * max sum W I^2) in float64: what masked raw scores are compared against."""
    weights = mask.astype(np.float64)[:, :, None] ** 2
    t = template.astype(np.float64)
    win = windows(image.astype(np.float64), *template.shape[:2])
    return float(
        np.sqrt((weights * t * t).sum() * np.einsum("yxijc,ijc->yx", win**2, weights).max())
    )


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("magnitude", [1e17, 3e38])
def test_huge_values_give_finite_scores_that_engines_agree_on(rng, masked, magnitude):
    """Pixels up to ±3e38, mask weights of 1e30: raw methods saturate, normed ones are exact."""
    image = ((rng.random((18, 22, 3)) * 2 - 1) * magnitude).astype(np.float32)
    template = image[4:11, 6:15].copy()
    mask = (rng.random((7, 9)) * 1e30).astype(np.float32) if masked else None
    for method in METHODS:
        if masked:
            reference, _ = match_template_masked_ref(image, template, mask, method)
            scale = _masked_raw_scale(image, template, mask)
        else:
            reference, _ = match_template_ref(image, template, method)
            scale = raw_scale(image, template)
        expected = np.clip(reference, -FLT_MAX, FLT_MAX)
        # raw scores to 1e-6 of the largest a window can reach; normed ones to 1e-6
        tolerance = 1e-6 * scale if method in RAW else 1e-6 * max(1.0, np.abs(reference).max())
        maps = {
            engine: match_template(image, template, method, engine=engine, mask=mask)
            for engine in ("direct", "fft")
        }
        for engine, scores in maps.items():
            assert np.isfinite(scores).all(), (method, engine)
            assert np.abs(scores - expected).max() <= tolerance, (method, engine)
        difference = maps["direct"].astype(np.float64) - maps["fft"]
        assert np.abs(difference).max() <= tolerance, method
        if method in RAW and magnitude > 1e30:
            # beyond float32: saturated at its largest value, never inf
            assert np.abs(maps["direct"]).max() == FLT_MAX


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_heatmap_draws_any_finite_map(dtype):
    """A range wider than float32 or float64 can hold (±FLT_MAX, ±1.7e308) still draws."""
    big = float(np.finfo(dtype).max)
    scores = np.array([[-big, 0.0, big], [-big / 2, 1.0, big / 2]], dtype)
    for method in ("ccorr", "sqdiff"):
        heat = render_heatmap(scores, method, (4, 5), (3, 3), legend=False, mark=False)
        table = colormap_table("viridis")
        best, worst = (0, 2) if method == "sqdiff" else (2, 0)
        assert heat.getpixel((1 + best, 1)) == tuple(table[255])
        assert heat.getpixel((1 + worst, 1)) == tuple(table[0])
        render_heatmap(scores, method, (4, 5), (3, 3))  # with legend and mark


def test_huge_float_tiffs_give_valid_json_and_a_heatmap(tmp_path, rng):
    image = ((rng.random((30, 40)) * 2 - 1) * 3e38).astype(np.float32)
    Image.fromarray(image, "F").save(tmp_path / "scene.tif")
    Image.fromarray(image[8:18, 10:22].copy(), "F").save(tmp_path / "tpl.tif")
    for method in ("sqdiff", "ccoeff_normed"):
        heat = tmp_path / f"heat-{method}.png"
        proc = waldo(
            "find", tmp_path / "scene.tif", tmp_path / "tpl.tif", "--method", method,
            "--json", "--heatmap", heat, "--no-threshold",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(proc.stdout, parse_constant=lambda name: pytest.fail(name))
        assert all(np.isfinite(m["score"]) for m in doc["matches"])
        assert Image.open(heat).size == (40, 30)
        if method == "ccoeff_normed":
            assert (doc["matches"][0]["x"], doc["matches"][0]["y"]) == (10, 8)


# --- 3. qualitative colormaps -------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "colours"),
    [("tab10", 10), ("tab20", 20), ("set1", 9), ("dark2", 8), ("paired", 12), ("accent", 8)],
)
def test_qualitative_colormaps_draw_as_bands_of_their_colours(name, colours):
    from cmap import Colormap

    table = colormap_table(name)
    assert table.shape == (256, 3)
    own = np.round(np.asarray(Colormap(name).lut())[:, :3] * 255).astype(np.uint8)
    # the N colours in order, in N bands as even as 256 allows
    changes = np.flatnonzero(np.any(table[1:] != table[:-1], axis=1)) + 1
    assert len(changes) == colours - 1
    assert (table[np.r_[0, changes]] == own).all()
    assert np.ptp(np.diff(np.r_[0, changes, 256])) <= 1
    heat = render_heatmap(np.linspace(0, 1, 12).reshape(3, 4), "ccorr", (5, 6), (3, 3),
                          colormap=name)  # fmt: skip
    assert heat.size == (6, 5)


def test_qualitative_colormap_from_the_command_line(pictures, tmp_path):
    heat = tmp_path / "heat.png"
    proc = waldo("find", pictures / "scene.png", pictures / "patch.png", "--heatmap", heat,
                 "--colormap", "tab10")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert Image.open(heat).size == (80, 60)


# --- 4. variant limits ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--scales", "inf"], ["--scales", "finite"]),
        (["--scales", "nan"], ["--scales", "finite"]),
        (["--scales", "1:inf:1"], ["finite"]),
        (["--scales", "0:1:inf"], ["finite"]),
        (["--rotations", "inf"], ["--rotations", "finite"]),
        (["--rotations", "nan"], ["--rotations", "finite"]),
        (["--scales", "0.5:1:1e-300"], [f"at most {MAX_VALUES}"]),
        (["--scales", "1:100000000:1"], [f"at most {MAX_VALUES}"]),
        (["--rotations", "0:1e12:1"], [f"at most {MAX_VALUES}"]),
    ],
)
def test_variant_options_that_ran_away_are_one_line(pictures, args, needles):
    proc = waldo("find", pictures / "scene.png", pictures / "patch.png", *args, timeout=60)
    assert_one_line(proc, *needles)


@pytest.mark.parametrize("scale", ["1e300", "400", "1000"])
def test_scales_larger_than_the_image_are_skipped_beside_the_template_itself(pictures, scale):
    """#12 made --scales "also search": the template's own size runs, the huge one is skipped.

    (Before #12 these were the only variant, so every variant was too large: one line, exit
    2 — still tested by the API in test_variants_larger_than_the_image_are_never_made.)
    """
    proc = waldo("find", pictures / "scene.png", pictures / "patch.png", "--scales", scale,
                 "--json", timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["variants"]["searched"] == 1 and doc["variants"]["skipped"] == 1
    assert doc["matches"][0]["scale"] == 1.0


def test_variants_larger_than_the_image_are_never_made(pictures, monkeypatch):
    """--scales 400,1: the 400× variant is left out before resampling, and said so."""
    from click.testing import CliRunner

    from waldo_cli.cli import cli

    made = record_resampled_scales(monkeypatch)
    result = CliRunner().invoke(
        cli,
        ["find", str(pictures / "scene.png"), str(pictures / "patch.png"), "--scales", "400,1",
         "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert made == [1.0]
    assert doc["variants"]["searched"] == 1 and doc["variants"]["skipped"] == 1
    assert doc["matches"][0]["scale"] == 1.0


def test_angles_equal_modulo_360_and_scales_of_one_size_are_searched_once():
    angles = parse_range("0:360:90", "--rotations")
    assert angles == [0.0, 90.0, 180.0, 270.0, 360.0]
    specs = list_variants((16, 22), [1.0, 1.01, 0.5], angles + [-90.0, 720.0], False)
    assert [(s.scale, s.angle) for s in specs] == [
        (scale, angle) for scale in (1.0, 0.5) for angle in (0.0, 90.0, 180.0, 270.0)
    ]


def test_every_variant_too_large_is_one_error():
    from waldo_cli.io import LoadedImage
    from waldo_cli.search import Searcher, SearchOptions

    def loaded(pixels, path):
        return LoadedImage(pixels=pixels, alpha=None, mode="L", path=path)

    template = loaded(np.ones((8, 8, 1), np.float32), "t.png")
    searcher = Searcher(template, SearchOptions(scales=(3.0, 4.0)))
    with pytest.raises(TemplateTooLargeError, match=r"template 24×24 is larger than image 20×20"):
        searcher.search(loaded(np.zeros((20, 20, 1), np.float32), "i.png"))


# --- 5. kernel files that declare huge arrays -----------------------------------------


def _npy_header_only(path, shape, dtype="<f8", data=b""):
    from numpy.lib import format as npy

    with open(path, "wb") as fh:
        npy.write_array_header_1_0(
            fh, {"descr": dtype, "fortran_order": False, "shape": tuple(shape)}
        )
        fh.write(data)
    return path


@pytest.mark.parametrize(
    ("shape", "needles"),
    [
        ((1, 1, 3, 100_000), ["100000 output channels", f"at most {MAX_OUTPUTS}"]),
        ((1, 1, 3, 10**10), [f"at most {MAX_OUTPUTS}"]),
        ((99_999, 100_001), [f"at most {MAX_WEIGHTS}"]),
        ((3, 3, 3, 2), ["damaged", "shorter"]),
    ],
)
def test_kernel_files_are_checked_from_their_header(pictures, tmp_path, shape, needles):
    kernel = _npy_header_only(tmp_path / "k.npy", shape, data=b"\0" * 64)
    proc = waldo("conv", pictures / "scene.png", "--kernel", kernel, "--out", tmp_path / "h.npy",
                 timeout=60)  # fmt: skip
    assert_one_line(proc, "k.npy", *needles)
    assert not (tmp_path / "h.npy").exists()


def test_a_kernel_of_many_real_output_channels_is_refused_before_loading(tmp_path, pictures):
    np.save(tmp_path / "wide.npy", np.zeros((1, 1, 3, MAX_OUTPUTS + 1)))
    proc = waldo("conv", pictures / "scene.png", "--kernel", tmp_path / "wide.npy", "--out",
                 tmp_path / "h.npy")  # fmt: skip
    assert_one_line(proc, f"{MAX_OUTPUTS + 1} output channels")


# --- 6. demo crowds ---------------------------------------------------------------------


def test_demo_crowd_has_a_documented_bound(tmp_path):
    assert max_crowd((160, 120)) == 200 and max_crowd((960, 640)) == MAX_CROWD
    for crowd in (10**30, 100_000, max_crowd((200, 150)) + 1):
        proc = waldo("demo", tmp_path / "out", "--size", "200x150", "--crowd", crowd, timeout=60)
        assert_one_line(proc, f"crowd {crowd} is too large", "at most 300")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


# --- 7. cache clear deletes only what Numba wrote ------------------------------------------


def test_cache_clear_deletes_only_numba_files(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    info = waldo("cache", "info", env=env)
    assert info.returncode == 0, info.stderr
    folder = Path(info.stdout.splitlines()[0].removeprefix("cache folder: "))
    assert folder.is_dir() and str(tmp_path / "cache") in str(folder)
    tag = f"py{sys.version_info[0]}{sys.version_info[1]}"
    numba_files = [
        folder / f"kernels._finish_scores-191.{tag}.nbi",
        folder / f"kernels._finish_scores-191.{tag}.1.nbc",
        folder / f"kernels._masked_tile-7.{tag}.12.nbc",
        # an older waldo's kernel, by a name this one no longer has
        folder / f"kernels._masked_direct-400.{tag}.nbi",
        folder / f"kernels._masked_direct-400.{tag}.3.nbc",
    ]
    for path in numba_files:
        path.write_bytes(b"stale")
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me")
    kept = [
        folder / f"kernels._finish_scores-9.{tag}.nbi",  # a directory of that name
        folder / "kernels._finish_scores-notes.txt",
        folder / "kernels._correlate_direct-backup",
        folder / f"kernels._correlate_direct-5.{tag}.nbi",  # a symlink
        folder / f"other._finish_scores-191.{tag}.nbi",
    ]
    kept[0].mkdir()
    kept[1].write_text("mine")
    kept[2].write_text("mine")
    kept[3].symlink_to(outside)
    kept[4].write_text("someone else's")
    cleared = waldo("cache", "clear", env=env)
    assert cleared.returncode == 0 and cleared.stderr == "", cleared.stderr
    assert cleared.stdout.strip() == f"removed {len(numba_files)} cached files"
    assert not any(path.exists() for path in numba_files)
    assert all(path.is_symlink() or path.exists() for path in kept)
    assert outside.read_text() == "keep me"


# --- 8. a cache folder for other users and read-only installs ---------------------------------


def test_cache_falls_back_to_a_private_folder_when_nothing_else_is_writable(tmp_path, monkeypatch):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()

    def writable(folder):  # the package, the user's caches: all read-only
        return folder.startswith(str(tmp_path / "tmp")) and jit._writable(folder)

    folder, root = jit._decide_cache(writable)
    assert root is not None and folder.startswith(root + os.sep)
    # a private folder, and in it one folder per waldo version, Python and CPU
    assert Path(root).parent.parent == tmp_path / "tmp"
    assert stat.S_IMODE(os.stat(Path(root).parent).st_mode) == 0o700
    assert Path(root).name == jit._cache_key()
    # the user's cache folder, when it can be written: waldo/kernels/KEY there, never
    # the package's own __pycache__ (writable here, as in any venv)
    folder, root = jit._decide_cache(lambda f: f.startswith(str(tmp_path / "xdg" / "waldo")))
    assert root == str(tmp_path / "xdg" / "waldo" / "kernels" / jit._cache_key())
    folder, root = jit._decide_cache(lambda f: True)
    assert root == str(tmp_path / "xdg" / "waldo" / "kernels" / jit._cache_key())
    # the user's own NUMBA_CACHE_DIR: Numba's choice, nothing to set
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "mine"))
    folder, root = jit._decide_cache(lambda f: True)
    assert root is None and folder.startswith(str(tmp_path / "mine") + os.sep)


def test_cache_folder_someone_else_made_is_not_used(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    uid = os.getuid()
    (tmp_path / f"waldo-numba-{uid}").mkdir(mode=0o777)
    os.chmod(tmp_path / f"waldo-numba-{uid}", 0o777)  # not private: someone could plant files
    root = jit._private_temp_root()
    assert root != str(tmp_path / f"waldo-numba-{uid}")
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o700


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root (to run as nobody) and setpriv",
)
def test_search_as_another_user_with_no_home_and_a_read_only_package():
    """As nobody: the package folder is root's, HOME is unset, nothing else is writable.

    The kernels go where they would for that user: a private folder in the
    temporary directory (kept, so only the first run compiles).
    """
    code = (
        "import numpy as np\n"
        "from waldo_cli import jit, match_template\n"
        "image = np.arange(144, dtype=np.float32).reshape(12, 12) % 7\n"
        "scores = match_template(image, image[2:5, 3:6], engine='direct')\n"
        "print(jit.cache_dir())\n"
        "print(float(scores[2, 3]))\n"
    )
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    proc = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", code],
        capture_output=True, text=True, timeout=300, env=env, cwd="/",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    folder, score = proc.stdout.split()
    assert float(score) == 1.0
    root = Path(folder).parent.parent  # .../waldo-numba-UID/KEY/SUBPATH
    assert root.parent == Path(tempfile.gettempdir()) and root.name.startswith("waldo-numba-")
    assert root.stat().st_uid == 65534 and stat.S_IMODE(root.stat().st_mode) == 0o700
    assert list(Path(folder).glob("kernels._correlate_direct-*.nbi"))


def test_kernels_are_imported_through_jit():
    """The engine imports the kernels only through jit.kernels(), which prepares the cache."""
    import ast

    package = Path(jit.__file__).parent
    for path in package.rglob("*.py"):
        if path.name in ("jit.py", "kernels.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "waldo_cli":
                assert "kernels" not in {a.name for a in node.names}, path
            if isinstance(node, ast.Import):
                assert "waldo_cli.kernels" not in {a.name for a in node.names}, path
