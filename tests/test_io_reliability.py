"""Reading and writing files when things go wrong (issue #13): one line, nothing lost.

Each class of failure is tested against the API (read_image, save_image,
write_atomically, read_file_list) and, where it is about files on disk,
through the installed ``waldo`` in a subprocess: exit 2, one line on stderr,
no traceback, no ``.part`` file left, inputs byte-identical.

The fuzz tests mutate PNG, JPEG, GIF, BMP, TIFF and WebP bytes with a seeded
mutator. In CI they run a few hundred cases through ``read_image`` (in a
child process, so a hang fails the test instead of stalling it) and a few
dozen through the command. A longer hunt is::

    WALDO_FUZZ_CASES=100000 WALDO_FUZZ_SEED=7 pytest tests/test_io_reliability.py -k fuzz

(``WALDO_FUZZ_CASES`` API cases, a twenty-fifth of them through the command;
``WALDO_FUZZ_SEED`` picks another set of mutations.)
"""

from __future__ import annotations

import io
import json
import os
import resource
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import PIL.ImageFile
import pytest
from PIL import Image

from waldo_cli import io as wio
from waldo_cli.errors import ImageReadError, OutputError
from waldo_cli.io import (
    check_output_paths,
    image_size,
    read_file_list,
    read_image,
    read_source,
    read_stream,
    remove_partial_files,
    save_image,
    write_atomically,
)
from waldo_cli.names import display_name, tsv_field

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_images" / "astronaut.png"
SAMPLE_TEMPLATE = ROOT / "sample_images" / "astronaut-patch.png"
WALDO = shutil.which("waldo") or str(Path(sys.executable).parent / "waldo")
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
# every picture format waldo writes that issue #13 found truncated on a full disk
FORMATS = ["png", "jpg", "tif", "bmp", "ppm", "pcx", "im", "dds", "mpo", "gif", "webp"]


def waldo(*args, env=None, stdin=None, input=None, preexec_fn=None, timeout=120, cwd=None):
    """Run the installed command; stdout and stderr as text (undecodable bytes escaped)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [WALDO, *map(str, args)],
        input=input,
        stdin=stdin if input is None else None,
        capture_output=True,
        env=full_env,
        preexec_fn=preexec_fn,
        timeout=timeout,
        cwd=cwd,
    )


def assert_one_line(result, *needles):
    """Exit 2, one line on stderr holding every needle, no traceback."""
    err = result.stderr.decode("utf-8", "backslashreplace")
    assert result.returncode == 2, (result.returncode, err)
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]


def no_part_files(*folders):
    return [p for folder in folders for p in Path(folder).rglob("*.part")]


def noise(rng, shape=(96, 128, 3)):
    return rng.integers(0, 256, shape).astype(np.uint8)


def encoded(array, fmt, **options):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt, **options)
    return buffer.getvalue()


def fsize_limit(nbytes):
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))

    return limit


@pytest.fixture
def scene(tmp_path):
    """A copy of the sample image and template, and their bytes, to prove them untouched."""
    image, template = tmp_path / "scene.png", tmp_path / "patch.png"
    shutil.copy(SAMPLE, image)
    shutil.copy(SAMPLE_TEMPLATE, template)
    return image, template, {image: image.read_bytes(), template: template.read_bytes()}


def assert_untouched(saved):
    for path, data in saved.items():
        assert path.read_bytes() == data, path


# --------------------------------------------------------------------------
# 1. whatever a decoder raises is ImageReadError


class _Exploding:
    size = (4, 4)
    format = "PNG"
    info: dict = {}

    def __init__(self, exc):
        self.exc = exc

    def load(self):
        raise self.exc


@pytest.mark.parametrize(
    "exc",
    [
        RuntimeError("Failed to decode image"),  # corrupt AVIF
        NotImplementedError("Unimplemented pixel format"),  # some DDS
        TypeError("unsupported operand type(s)"),  # some TIFF
        ValueError("buffer is not large enough"),
        struct.error("unpack requires a buffer of 4 bytes"),
        EOFError(),
        SyntaxError("not a TIFF file"),
        IndexError("list index out of range"),
        KeyError(317),
        ZeroDivisionError("division by zero"),
        MemoryError(),
        OSError("decoder error -2"),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_any_decoder_failure_is_one_image_read_error(exc, monkeypatch):
    monkeypatch.setattr(wio.Image, "open", lambda data: _Exploding(exc))
    with pytest.raises(ImageReadError) as caught:
        read_image(b"anything", name="bad.img")
    message = str(caught.value)
    assert message.startswith("bad.img: ") and "\n" not in message


def test_keyboard_interrupt_is_not_swallowed(monkeypatch):
    monkeypatch.setattr(wio.Image, "open", lambda data: _Exploding(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        read_image(b"anything")


def _without_dac_capabilities():
    """In a child about to exec: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH for good."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_unsearchable_folder_is_one_line(tmp_path, scene):
    image, template, saved = scene
    locked = tmp_path / "locked"
    locked.mkdir()
    shutil.copy(template, locked / "t.png")
    locked.chmod(0o000)
    try:
        drop = None
        if IS_ROOT:  # root searches any folder: a child without the capabilities that let it
            drop = _without_dac_capabilities
        elif os.access(locked, os.X_OK):
            pytest.skip("this user can search a folder with mode 000")
        code = (
            "import sys\n"
            "from waldo_cli.errors import ImageReadError\n"
            "from waldo_cli.io import read_image\n"
            "try:\n    read_image(sys.argv[1])\n"
            "except ImageReadError as exc:\n    print(exc)\n"
        )
        api = subprocess.run(
            [sys.executable, "-c", code, str(locked / "t.png")],
            capture_output=True,
            text=True,
            preexec_fn=drop,
            timeout=120,
        )
        assert api.stdout.strip() == f"{locked / 't.png'}: permission denied", api.stderr
        result = waldo("find", image, locked / "t.png", preexec_fn=drop)
        assert_one_line(result, "t.png", "permission denied")
    finally:
        locked.chmod(0o755)
    assert_untouched(saved)


def test_corrupt_tiff_says_one_line_without_libtiff_noise(tmp_path, rng, scene):
    image, template, saved = scene
    data = bytearray(encoded(noise(rng), "TIFF", compression="tiff_deflate"))
    # spoil the deflate stream (it starts after the 8-byte header): libtiff's
    # ZIPDecode prints its complaint on fd 2 unless its handler is silenced
    data[8:40] = bytes(range(32))
    bad = tmp_path / "bad.tif"
    bad.write_bytes(bytes(data))
    code = (
        "import sys\n"
        "from waldo_cli.errors import ImageReadError\n"
        "from waldo_cli.io import read_image\n"
        "try:\n    read_image(sys.argv[1])\n"
        "except ImageReadError as exc:\n    print(exc)\n"
    )
    api = subprocess.run(
        [sys.executable, "-c", code, str(bad)], capture_output=True, text=True, timeout=120
    )
    assert api.stderr == "" and api.stdout.startswith(f"{bad}: ")
    assert_one_line(waldo("find", bad, template), "bad.tif")
    assert_untouched(saved)


def _tiff_with_samples_per_pixel(rng, count):
    data = bytearray(encoded(noise(rng), "TIFF"))
    assert data[:4] == b"II*\x00"
    ifd = struct.unpack_from("<I", data, 4)[0]
    for entry in range(struct.unpack_from("<H", data, ifd)[0]):
        at = ifd + 2 + 12 * entry
        if struct.unpack_from("<H", data, at)[0] == 277:  # SamplesPerPixel, a SHORT in place
            struct.pack_into("<H", data, at + 8, count)
    return bytes(data)


def test_pillow_log_records_stay_off_stderr(tmp_path, rng, scene):
    image, template, saved = scene
    bad = tmp_path / "many.tif"
    bad.write_bytes(_tiff_with_samples_per_pixel(rng, 4352))  # Pillow logs an error, then raises
    code = (
        "import sys\n"
        "from waldo_cli.errors import ImageReadError\n"
        "from waldo_cli.io import read_image\n"
        "try:\n    read_image(sys.argv[1])\n"
        "except ImageReadError as exc:\n    print(exc)\n"
    )
    api = subprocess.run(
        [sys.executable, "-c", code, str(bad)], capture_output=True, text=True, timeout=120
    )
    assert api.stderr == "" and api.stdout.startswith(f"{bad}: "), api.stderr
    assert_one_line(waldo("find", bad, template), "many.tif")
    assert_untouched(saved)


def test_pillow_warnings_stay_off_stderr(tmp_path):
    Image.new("L", (300, 300)).save(tmp_path / "a.png")
    code = (
        "import sys\n"
        "from PIL import Image\n"
        "from waldo_cli.io import read_image\n"
        "Image.MAX_IMAGE_PIXELS = 60000  # 90,000 px: Pillow warns, does not refuse\n"
        "print(read_image(sys.argv[1]).pixels.shape)\n"
        "import warnings\n"
        "print(len([f for f in warnings.filters if 'PIL' in str(f)]))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "a.png")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.stderr == ""
    assert run.stdout.split() == ["(300,", "300,", "1)", "0"]  # and the filter is gone again


def test_pillow_warnings_stay_quiet_across_threads(tmp_path):
    Image.new("L", (64, 64)).save(tmp_path / "a.png")
    errors = []

    def read_many():
        try:
            for _ in range(50):
                read_image(tmp_path / "a.png")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=read_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert not [f for f in __import__("warnings").filters if "PIL" in str(f[3])]


# --------------------------------------------------------------------------
# 2. a pixel budget, from the header


def test_pixel_budget_is_checked_before_decoding(tmp_path, monkeypatch):
    Image.new("RGB", (40, 30)).save(tmp_path / "a.png")
    monkeypatch.setenv("WALDO_MAX_PIXELS", "1000")
    loaded = []
    real_load = PIL.ImageFile.ImageFile.load
    monkeypatch.setattr(
        "PIL.ImageFile.ImageFile.load", lambda self: loaded.append(1) or real_load(self)
    )
    with pytest.raises(ImageReadError, match=r"40×30 .* over the pixel budget .*WALDO_MAX_PIXELS"):
        read_image(tmp_path / "a.png")
    assert loaded == []
    monkeypatch.setenv("WALDO_MAX_PIXELS", "1200")
    assert read_image(tmp_path / "a.png").pixels.shape == (30, 40, 3)


def test_pixel_budget_setting_is_checked(monkeypatch):
    monkeypatch.setenv("WALDO_MAX_PIXELS", "lots")
    with pytest.raises(Exception, match="WALDO_MAX_PIXELS='lots'"):
        read_image(encoded(np.zeros((2, 2), np.uint8), "PNG"))
    monkeypatch.setenv("WALDO_MAX_PIXELS", "3e8")
    assert wio.max_pixels() == 300_000_000


def _wide_webp(width=2162752, height=48):
    """An animated WebP of a few hundred bytes whose canvas is width×height."""
    frames = [Image.new("RGB", (16, height), c) for c in ((255, 0, 0), (0, 255, 0))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    data = bytearray(buffer.getvalue())
    assert data[12:16] == b"VP8X"
    data[24:27] = (width - 1).to_bytes(3, "little")
    data[27:30] = (height - 1).to_bytes(3, "little")
    return bytes(data)


def test_webp_canvas_is_checked_before_pillow_allocates_it(monkeypatch):
    data = _wide_webp()
    assert len(data) < 600
    opened = []
    real_open = wio.Image.open
    monkeypatch.setattr(wio.Image, "open", lambda fp: opened.append(1) or real_open(fp))
    monkeypatch.setenv("WALDO_MAX_PIXELS", str(10**7))
    with pytest.raises(ImageReadError, match="2162752×48 .* pixel budget"):
        read_image(data, name="wide.webp")
    assert opened == []
    assert image_size(data) == (2162752, 48)  # still reported, for the CLI's comparison
    assert opened == []


def test_image_size_reads_the_header_only(tmp_path, monkeypatch):
    Image.new("L", (4000, 3000)).save(tmp_path / "big.png")
    monkeypatch.setenv("WALDO_MAX_PIXELS", "1000")
    assert image_size(tmp_path / "big.png") == (4000, 3000)  # over budget: size still told
    assert image_size(tmp_path / "big.png").pixels == 12_000_000
    # EXIF orientation 6 (a quarter turn): the upright size
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (40, 30)).save(tmp_path / "turned.jpg", exif=exif)
    monkeypatch.delenv("WALDO_MAX_PIXELS")
    assert image_size(tmp_path / "turned.jpg") == (30, 40)
    assert read_image(tmp_path / "turned.jpg").pixels.shape[:2] == (40, 30)
    with pytest.raises(ImageReadError, match="no such file"):
        image_size(tmp_path / "missing.png")
    with pytest.raises(ImageReadError, match="not an image"):
        image_size(b"hello")


def _jpeg_declaring(width, height, progressive=False):
    """A few hundred bytes of JPEG whose frame header declares width×height."""
    data = bytearray(encoded(np.full((8, 8, 3), 9, np.uint8), "JPEG", progressive=progressive))
    at = data.index(b"\xff\xc2" if progressive else b"\xff\xc0")
    struct.pack_into(">HH", data, at + 5, height, width)
    return bytes(data)


@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
def test_jpeg_too_short_for_its_size_is_refused_before_decoding(progressive, monkeypatch):
    # libjpeg would fill the missing 132 Mpx with grey, at full cost
    loaded = []
    real_load = PIL.ImageFile.ImageFile.load
    monkeypatch.setattr(
        "PIL.ImageFile.ImageFile.load", lambda self: loaded.append(1) or real_load(self)
    )
    with pytest.raises(ImageReadError, match=r"bytes cannot hold a 11000×12000 JPEG"):
        read_image(_jpeg_declaring(11000, 12000, progressive), name="j.jpg")
    assert loaded == []


@pytest.mark.parametrize("mode", ["L", "RGB"])
@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
def test_flat_jpegs_are_not_taken_for_truncated(mode, progressive):
    # the most compressible JPEGs Pillow writes stay well inside the bound
    data = encoded(
        np.zeros((1500, 2000) if mode == "L" else (1500, 2000, 3), np.uint8),
        "JPEG",
        progressive=progressive,
        quality=1,
    )
    assert read_image(data).pixels.shape[:2] == (1500, 2000)


def test_huge_png_is_refused_by_the_command_in_one_line(tmp_path, scene):
    image, template, saved = scene
    Image.new("L", (12000, 12000)).save(tmp_path / "huge.png")  # 144 Mpx, 150 KB
    assert_one_line(waldo("find", tmp_path / "huge.png", template), "pixel budget")
    assert_untouched(saved)


# --------------------------------------------------------------------------
# 3. streams: FIFOs, /dev/fd/N, stdin, bounded; file lists


def _feed_fifo(path, data):
    def feed():
        with open(path, "wb") as fh:
            fh.write(data)

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    return thread


def test_fifo_is_read_as_a_stream(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    writer = _feed_fifo(fifo, SAMPLE_TEMPLATE.read_bytes())
    assert read_image(fifo).pixels.shape == (68, 72, 3)
    writer.join(5)
    # read once, as bytes, for image_size and read_image both
    writer = _feed_fifo(fifo, SAMPLE_TEMPLATE.read_bytes())
    data = read_source(fifo)
    writer.join(5)
    assert isinstance(data, bytes) and image_size(data) == (72, 68)


def test_process_substitution_works_in_the_command(scene):
    image, template, saved = scene
    result = subprocess.run(
        ["bash", "-c", f'"{WALDO}" find "{image}" <(cat "{template}") --json'],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["matches"]
    assert_untouched(saved)


def test_stdin_is_bounded(scene, monkeypatch):
    image, template, saved = scene
    with open("/dev/zero", "rb") as zero:
        result = waldo("find", "-", template, stdin=zero, env={"WALDO_MAX_INPUT_BYTES": "5e6"})
    assert_one_line(result, "-: more than 5000000 bytes", "WALDO_MAX_INPUT_BYTES")
    # through a pipe too (not seekable)
    result = subprocess.run(
        ["bash", "-c", f'head -c 3000000 /dev/zero | "{WALDO}" find - "{template}"'],
        capture_output=True,
        env={**os.environ, "WALDO_MAX_INPUT_BYTES": "1000000"},
        timeout=120,
    )
    assert_one_line(result, "input limit")
    monkeypatch.setenv("WALDO_MAX_INPUT_BYTES", "10")
    with pytest.raises(ImageReadError, match="more than 10 bytes"):
        read_image(_pipe(b"x" * 100), name="-")
    assert_untouched(saved)


def _pipe(data):
    """The read end of a pipe holding data (not seekable, like stdin in a pipeline)."""
    read_fd, write_fd = os.pipe()
    os.write(write_fd, data)
    os.close(write_fd)
    return os.fdopen(read_fd, "rb")


def test_closed_stdin_is_one_line(scene):
    image, template, saved = scene
    result = subprocess.run(
        ["bash", "-c", f'"{WALDO}" find - "{template}" <&-'], capture_output=True, timeout=120
    )
    assert_one_line(result, "-: standard input is closed")
    with pytest.raises(ImageReadError, match="standard input is closed"):
        read_stream(None, "-")
    assert_untouched(saved)


def test_file_list_splits_on_newlines_only():
    data = b"\xef\xbb\xbfa.png\r\nb\x0cc.png\n\xe2\x80\xa8d.png\r\n\n   \ne\xc2\x85.png"
    assert read_file_list(io.BytesIO(data)) == ["a.png", "b\x0cc.png", "\u2028d.png", "e\x85.png"]


def test_file_list_keeps_names_that_are_not_utf8(tmp_path):
    (tmp_path / "list").write_bytes(b"caf\xe9.png\n")
    names = read_file_list(tmp_path / "list")
    assert names == ["caf\udce9.png"] and os.fsencode(names[0]) == b"caf\xe9.png"


def test_file_list_nul_separated():
    assert read_file_list(io.BytesIO(b"a\nb.png\x00\x00c.png"), null=True) == ["a\nb.png", "c.png"]


def test_file_list_bounds(tmp_path, monkeypatch):
    with pytest.raises(ImageReadError, match="line is longer than 65536 bytes"):
        read_file_list("/dev/zero")
    with pytest.raises(ImageReadError, match="line is longer"):
        read_file_list(io.BytesIO(b"ok.png\n" + b"x" * 70000 + b"\n"))
    monkeypatch.setenv("WALDO_MAX_INPUT_BYTES", str(1 << 21))
    with pytest.raises(ImageReadError, match="input limit"):
        read_file_list("/dev/zero", null=True)
    with pytest.raises(ImageReadError, match="no such file"):
        read_file_list(tmp_path / "missing.txt")
    with pytest.raises(ImageReadError, match="directory"):
        read_file_list(tmp_path)
    monkeypatch.setattr(sys, "stdin", None)
    with pytest.raises(ImageReadError, match="standard input is closed"):
        read_file_list("-")


def test_file_list_from_a_fifo(tmp_path):
    fifo = tmp_path / "list"
    os.mkfifo(fifo)
    writer = _feed_fifo(fifo, b"a.png\nb.png\n")
    assert read_file_list(fifo) == ["a.png", "b.png"]
    writer.join(5)


# --------------------------------------------------------------------------
# 4. writes whole or absent


_WRITE_ALL_FORMATS = """
import json, os, sys
import numpy as np
from waldo_cli.errors import OutputError
from waldo_cli.io import save_image, write_atomically
folder, formats = sys.argv[1], sys.argv[2].split(",")
picture = np.random.default_rng(0).integers(0, 256, (160, 160, 3)).astype(np.uint8)
out = {}
for ext in formats:
    path = os.path.join(folder, "out." + ext)
    try:
        if ext == "npy":
            write_atomically(path, lambda fh: np.save(fh, picture.astype(np.float32)))
        else:
            save_image(picture, path)
        out[ext] = "written"
    except OutputError as exc:
        out[ext] = str(exc)
print(json.dumps(out))
"""


def _write_all_formats(folder, preexec_fn=None, signal_default=False):
    code = _WRITE_ALL_FORMATS
    if signal_default:  # a host that left SIGXFSZ at its default (kill the process)
        code = "import signal; signal.signal(signal.SIGXFSZ, signal.SIG_DFL)\n" + code
    result = subprocess.run(
        [sys.executable, "-c", code, str(folder), ",".join([*FORMATS, "npy"])],
        capture_output=True,
        text=True,
        preexec_fn=preexec_fn,
        timeout=300,
    )
    assert result.returncode == 0 and result.stderr == "", (result.returncode, result.stderr)
    return json.loads(result.stdout)


def _assert_refused_whole(outcome, folder, reason):
    for ext, message in outcome.items():
        assert message.startswith(f"{folder}/out.{ext}: cannot write ({reason}"), (ext, message)
        assert "\n" not in message
    assert sorted(p.name for p in Path(folder).iterdir()) == ["old.png"]
    assert (Path(folder) / "old.png").read_bytes() == b"old"


@pytest.mark.parametrize("signal_default", [False, True], ids=["sigxfsz-ignored", "sigxfsz-dfl"])
def test_ulimit_f_every_format_fails_whole(tmp_path, signal_default):
    (tmp_path / "old.png").write_bytes(b"old")
    outcome = _write_all_formats(tmp_path, fsize_limit(4096), signal_default)
    _assert_refused_whole(outcome, tmp_path, "File too large")


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 16 KiB tmpfs (root only)."""
    if not IS_ROOT:
        pytest.skip("mounting a tmpfs needs root")
    folder = tmp_path / "tiny"
    folder.mkdir()
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def test_full_disk_every_format_fails_whole(tiny_tmpfs):
    (tiny_tmpfs / "old.png").write_bytes(b"old")
    outcome = _write_all_formats(tiny_tmpfs)
    _assert_refused_whole(outcome, tiny_tmpfs, "No space left on device")


@pytest.mark.parametrize("ext", ["tif", "jpg", "bmp"])
def test_command_under_ulimit_f_writes_nothing(tmp_path, scene, ext):
    image, template, saved = scene
    out = tmp_path / f"overlay.{ext}"
    result = waldo("find", image, template, "--overlay", out, preexec_fn=fsize_limit(8192))
    assert_one_line(result, f"overlay.{ext}: cannot write (File too large)")
    assert not out.exists() and no_part_files(tmp_path) == []
    assert_untouched(saved)


def test_command_on_a_full_disk_writes_nothing(tiny_tmpfs, scene):
    image, template, saved = scene
    for option, name in (("--heatmap", "heat.tif"), ("--overlay", "over.png")):
        result = waldo("find", image, template, option, tiny_tmpfs / name)
        assert_one_line(result, name, "No space left on device")
    result = waldo("conv", image, "--kernel", "sobel", "--out", tiny_tmpfs / "h.npy")
    assert_one_line(result, "h.npy", "No space left on device")
    assert list(tiny_tmpfs.iterdir()) == []
    assert_untouched(saved)


def test_conv_npy_under_ulimit_f_writes_nothing(tmp_path, scene):
    image, template, saved = scene
    out = tmp_path / "h.npy"
    result = waldo("conv", image, "--kernel", "sobel", "--out", out, preexec_fn=fsize_limit(65536))
    assert_one_line(result, "h.npy: cannot write (File too large)")
    assert not out.exists() and no_part_files(tmp_path) == []
    assert_untouched(saved)


def test_interrupted_write_leaves_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    calls = []

    def write_then_interrupt(fd, data):
        calls.append(len(data))
        if len(calls) > 1:
            raise KeyboardInterrupt
        return os.write(fd, data[:10])  # a short write: the loop must go on

    monkeypatch.setattr(wio, "_write_all", lambda fd, data: _loop(fd, data, write_then_interrupt))
    with pytest.raises(KeyboardInterrupt):
        write_atomically(target, b"x" * 100)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def _loop(fd, data, write):
    while data:
        data = data[write(fd, data) :]


def test_short_writes_are_completed(tmp_path, monkeypatch):
    real_write = os.write
    monkeypatch.setattr(wio.os, "write", lambda fd, data: real_write(fd, bytes(data[:7])))
    write_atomically(tmp_path / "a.bin", b"0123456789" * 10)
    assert (tmp_path / "a.bin").read_bytes() == b"0123456789" * 10


def test_remove_partial_files_removes_writes_in_flight(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    removed = []
    real_write_all = wio._write_all

    def write_then_signal(fd, data):
        real_write_all(fd, data[: len(data) // 2])
        removed.extend(remove_partial_files())  # what a SIGTERM handler does
        real_write_all(fd, data[len(data) // 2 :])

    monkeypatch.setattr(wio, "_write_all", write_then_signal)
    with pytest.raises(OutputError, match="out.png: cannot write"):
        write_atomically(target, b"x" * 1000)
    assert len(removed) == 1 and Path(removed[0]).name.startswith(".waldo-")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]
    assert remove_partial_files() == []


def test_sigterm_during_a_write_leaves_no_part_file(tmp_path):
    code = textwrap.dedent(
        """
        import os, signal, sys, time
        from waldo_cli import io as wio
        def on_term(signum, frame):
            wio.remove_partial_files()
            os._exit(143)
        signal.signal(signal.SIGTERM, on_term)
        real = wio._write_all
        def slow(fd, data):
            for start in range(0, len(data), 1000):
                real(fd, data[start : start + 1000])
                time.sleep(0.01)
        wio._write_all = slow
        print("writing", flush=True)
        wio.write_atomically(sys.argv[1], b"x" * 1_000_000)
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path / "out.tif")], stdout=subprocess.PIPE
    )
    try:
        assert child.stdout.readline() == b"writing\n"
        for _ in range(500):
            if no_part_files(tmp_path):
                break
            threading.Event().wait(0.01)
        assert no_part_files(tmp_path), "the write never started"
        child.send_signal(signal.SIGTERM)
        assert child.wait(60) == 143
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    assert list(tmp_path.iterdir()) == []


def test_temp_names_are_short(tmp_path, scene):
    image, template, saved = scene
    long_ok = tmp_path / ("n" * 246 + ".png")  # 250 bytes
    write_atomically(long_ok, b"data")
    assert long_ok.read_bytes() == b"data"
    too_long = tmp_path / ("n" * 252 + ".png")  # 256 bytes
    with pytest.raises(OutputError, match=r"the file name is 256 bytes long; .* at most 255"):
        save_image(np.zeros((2, 2, 3), np.uint8), too_long)
    result = waldo("find", image, template, "--overlay", too_long)
    assert_one_line(result, "256 bytes long")
    result = waldo("find", image, template, "--overlay", tmp_path / ("o" * 246 + ".png"))
    assert result.returncode == 0, result.stderr
    assert no_part_files(tmp_path) == []
    assert_untouched(saved)


def test_what_a_format_cannot_hold_is_refused_first(tmp_path, scene):
    image, template, saved = scene
    with pytest.raises(OutputError, match="16384×1 picture is too large for WEBP"):
        save_image(np.zeros((1, 16384, 3), np.uint8), tmp_path / "wide.webp")
    with pytest.raises(OutputError, match="cannot write BLP"):
        save_image(np.zeros((2, 2, 3), np.uint8), tmp_path / "a.blp")
    with pytest.raises(OutputError, match="too large for ICO"):
        save_image(np.zeros((300, 300, 3), np.uint8), tmp_path / "a.ico")
    assert list(tmp_path.glob("wide.*")) == [] and not (tmp_path / "a.blp").exists()
    for name in ("o.blp", "o.eps", "o.xbm"):
        assert_one_line(waldo("find", image, template, "--overlay", tmp_path / name), name)
    assert not list(tmp_path.glob("o.*"))
    assert_untouched(saved)


@pytest.mark.parametrize("fmt", sorted(wio._WRITABLE))
def test_every_writable_format_round_trips(fmt, tmp_path, rng):
    Image.init()
    ext = next(e for e, f in Image.EXTENSION.items() if f == fmt)
    for mode_array in (noise(rng, (20, 30, 3)), noise(rng, (20, 30))):
        save_image(mode_array, tmp_path / f"a{ext}")
        if fmt == "PDF":  # Pillow writes PDF, and cannot read it back
            assert (tmp_path / f"a{ext}").read_bytes().startswith(b"%PDF")
            continue
        with Image.open(tmp_path / f"a{ext}") as back:
            assert back.size == (30, 20) or fmt == "ICO"
    assert no_part_files(tmp_path) == []


# --------------------------------------------------------------------------
# 5. inputs protected, through links


def test_mask_named_as_output_is_refused(tmp_path, scene):
    image, template, saved = scene
    mask = tmp_path / "mask.png"
    Image.new("L", Image.open(template).size, 255).save(mask)
    saved[mask] = mask.read_bytes()
    for option in ("--overlay", "--heatmap"):
        result = waldo("find", image, template, "--mask", mask, option, mask)
        assert_one_line(result, "refusing to overwrite an input")
    assert_untouched(saved)


def test_outputs_reaching_an_input_through_links_are_refused(tmp_path, scene):
    image, template, saved = scene
    (tmp_path / "soft.png").symlink_to(image)
    os.link(template, tmp_path / "hard.png")
    for link in ("soft.png", "hard.png"):
        assert_one_line(
            waldo("find", image, template, "--overlay", tmp_path / link), "refusing to overwrite"
        )
        with pytest.raises(OutputError, match="refusing to overwrite an input"):
            save_image(np.zeros((2, 2, 3), np.uint8), tmp_path / link, protect=(image, template))
    assert_untouched(saved)


def test_two_outputs_that_are_one_file_are_refused(tmp_path, scene):
    image, template, saved = scene
    (tmp_path / "link.png").symlink_to(tmp_path / "a.png")
    result = waldo(
        "find", image, template, "--heatmap", tmp_path / "a.png", "--overlay", tmp_path / "link.png"
    )
    assert_one_line(result, "same file")
    with pytest.raises(OutputError, match="names the same file"):
        check_output_paths([tmp_path / "a.png", tmp_path / "link.png"])
    assert not (tmp_path / "a.png").exists()
    assert_untouched(saved)


def test_a_symlinked_output_is_written_through(tmp_path, scene):
    image, template, saved = scene
    real = tmp_path / "pictures" / "overlay.png"
    real.parent.mkdir()
    real.write_bytes(b"old")
    real.chmod(0o640)
    link = tmp_path / "overlay.png"
    link.symlink_to(real)
    result = waldo("find", image, template, "--overlay", link)
    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert Image.open(real).size == Image.open(image).size
    assert oct(real.stat().st_mode & 0o777) == oct(0o640)  # a replaced file keeps its mode
    assert no_part_files(tmp_path) == []
    assert_untouched(saved)


# --------------------------------------------------------------------------
# 6. names any output can hold


def test_display_name_is_valid_utf8_json():
    name = os.fsdecode(b"caf\xe9 \xff.png")
    shown = display_name(name)
    assert shown == "caf\\xe9 \\xff.png"
    text = json.dumps({"image": shown}, ensure_ascii=False)
    assert json.loads(text.encode("utf-8").decode("utf-8"))["image"] == shown
    assert display_name("café.png") == "café.png"
    assert display_name("\ud800x") == "\\ud800x"


def test_tsv_field_has_no_tab_or_newline():
    name = os.fsdecode(b"a\tb\nc\rd\\e\xe9.png")
    field = tsv_field(name)
    assert not {"\t", "\n", "\r"} & set(field)
    assert field == "a\\tb\\nc\\rd\\\\e\\xe9.png"
    field.encode("utf-8")


def test_names_module_is_light():
    code = "import sys, waldo_cli.names; print(sorted({'numpy', 'PIL'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------
# fuzzing


FUZZ_CASES = int(os.environ.get("WALDO_FUZZ_CASES", "300"))
FUZZ_SEED = int(os.environ.get("WALDO_FUZZ_SEED", "13"))
_FUZZ_FORMATS = {
    "png": ("PNG", {}),
    "jpg": ("JPEG", {"quality": 90}),
    "gif": ("GIF", {}),
    "bmp": ("BMP", {}),
    "tif": ("TIFF", {"compression": "tiff_deflate"}),
    "webp": ("WEBP", {"quality": 80}),
}


def _seeds():
    """Small valid files of each format: a gradient with noise, colour and grey."""
    rng = np.random.default_rng(FUZZ_SEED)
    y, x = np.mgrid[0:48, 0:64]
    base = np.dstack([x * 4, y * 5, (x + y) * 2]).astype(np.uint8)
    colour = np.clip(base + rng.integers(0, 30, base.shape), 0, 255).astype(np.uint8)
    seeds = {}
    for ext, (fmt, options) in _FUZZ_FORMATS.items():
        seeds[ext] = [encoded(colour, fmt, **options), encoded(colour[:, :, 0], fmt, **options)]
    return seeds


_INTERESTING = [b"\x00", b"\xff", b"\x7f", b"\x80", b"\xff\xff", b"\x00\x00", b"\xff\xff\xff\x7f"]


def _mutate(data, rng):
    data = bytearray(data)
    for _ in range(int(rng.integers(1, 5))):
        kind = int(rng.integers(0, 6))
        at = int(rng.integers(0, len(data)))
        if kind == 0:  # flip bytes
            for _ in range(int(rng.integers(1, 9))):
                data[int(rng.integers(0, len(data)))] = int(rng.integers(0, 256))
        elif kind == 1:  # an interesting value (sizes, counts, offsets)
            value = _INTERESTING[int(rng.integers(0, len(_INTERESTING)))]
            data[at : at + len(value)] = value
        elif kind == 2:  # truncate
            del data[max(at, 8) :]
        elif kind == 3:  # repeat a slice
            end = min(len(data), at + int(rng.integers(1, 64)))
            data[at:at] = data[at:end] * int(rng.integers(1, 8))
        elif kind == 4:  # delete a slice
            del data[at : at + int(rng.integers(1, 32))]
        else:  # insert random bytes
            data[at:at] = rng.integers(0, 256, int(rng.integers(1, 16))).astype(np.uint8).tobytes()
        if not data:
            data = bytearray(b"\x00")
    return bytes(data)


def _fuzz_cases(count, salt=0):
    seeds = _seeds()
    rng = np.random.default_rng([FUZZ_SEED, salt])
    exts = sorted(seeds)
    for index in range(count):
        ext = exts[index % len(exts)]
        seed = seeds[ext][int(rng.integers(0, len(seeds[ext])))]
        yield index, ext, _mutate(seed, rng)


_FUZZ_CHILD = """
import json, sys, time, traceback
from waldo_cli.errors import ImageReadError
from waldo_cli.io import image_size, read_image
results = {"ok": 0, "error": 0, "other": [], "slowest": 0.0}
for line in sys.stdin:
    index, ext, path = line.split()
    started = time.perf_counter()
    try:
        image_size(path)
    except ImageReadError:
        pass
    try:
        read_image(path)
        results["ok"] += 1
    except ImageReadError as exc:
        assert "\\n" not in str(exc), str(exc)
        results["error"] += 1
    except BaseException as exc:
        results["other"].append([index, ext, traceback.format_exc()])
    results["slowest"] = max(results["slowest"], time.perf_counter() - started)
print(json.dumps(results))
"""


def test_fuzz_read_image_ends_in_a_result_or_one_error(tmp_path):
    listing = []
    for index, ext, data in _fuzz_cases(FUZZ_CASES):
        path = tmp_path / f"case{index:06d}.{ext}"
        path.write_bytes(data)
        listing.append(f"{index} {ext} {path}\n")
    # a child process, so that a hang fails the test (timeout) instead of stalling CI;
    # a budget of 2**24 px keeps a header mutated to a huge size cheap to reject
    result = subprocess.run(
        [sys.executable, "-c", _FUZZ_CHILD],
        input="".join(listing),
        capture_output=True,
        text=True,
        env={**os.environ, "WALDO_MAX_PIXELS": str(1 << 24)},
        timeout=60 + FUZZ_CASES * 0.5,
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr[-3000:]
    outcome = json.loads(result.stdout)
    assert outcome["other"] == [], outcome["other"][:3]
    assert outcome["ok"] + outcome["error"] == FUZZ_CASES
    assert outcome["error"] > 0 and outcome["ok"] > 0  # the mutator does both


def test_fuzz_command_ends_in_a_result_or_one_line(tmp_path):
    template = tmp_path / "t.png"
    # not flat: a flat template is refused under ccoeff_normed since #16, whatever the image
    ramp = np.arange(36, dtype=np.uint8).reshape(6, 6) * 7
    Image.fromarray(np.dstack([ramp] * 3)).save(template)
    saved = {template: template.read_bytes()}
    count = max(12, FUZZ_CASES // 25)
    cases = list(_fuzz_cases(count, salt=1))
    paths = []
    for index, ext, data in cases:
        path = tmp_path / f"case{index:05d}.{ext}"
        path.write_bytes(data)
        paths.append(path)
    env = {"WALDO_MAX_PIXELS": str(1 << 24)}
    # one image of each format at a time, as users meet it: a result, or exit 2 and one line
    for path in paths[: len(_FUZZ_FORMATS)]:
        result = waldo("find", path, template, "--json", env=env, timeout=120)
        err = result.stderr.decode("utf-8", "backslashreplace")
        assert "Traceback" not in err, (path.name, err)
        if result.returncode == 2:
            assert_one_line(result, path.name)
        else:
            assert result.returncode in (0, 1) and err == "", (path.name, result.returncode, err)
            json.loads(result.stdout)
    # the rest in one batch: one record each, in order, and the batch goes on
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"{p}\n" for p in paths))
    result = waldo("find", "-t", template, "--files-from", listing, "--jsonl", env=env, timeout=600)
    err = result.stderr.decode("utf-8", "backslashreplace")
    assert result.returncode in (0, 1, 2) and "Traceback" not in err, err
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["image"] for r in records] == [str(p) for p in paths]
    for record in records:
        assert "error" in record or "matches" in record
        if "error" in record:
            assert "\n" not in record["error"]
    # only the summary line on stderr: no decoder noise
    assert len(err.strip().splitlines()) <= 1, err
    assert no_part_files(tmp_path) == []
    assert_untouched(saved)
