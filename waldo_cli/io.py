"""Files in, pixels out: every image waldo reads goes through ``read_image``.

Pixels come back as float32 arrays of shape (H, W, C) with C = 1 (grey) or
C = 3 (colour), on the 0–255 scale of an 8-bit image whatever the file's bit
depth, so that scores, thresholds and OpenCV's degenerate-case rules mean the
same thing for every file.
"""

from __future__ import annotations

import contextlib
import io as _io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from waldo_cli.errors import ImageReadError, WaldoError

# Modes whose pixels are one intensity; everything else becomes RGB.
_GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F", "P;L"}
# Integer modes wider than 8 bits, and the factor that maps them onto 0..255.
_WIDE_MODES = {
    "I": 255.0 / 65535.0,
    "I;16": 255.0 / 65535.0,
    "I;16L": 255.0 / 65535.0,
    "I;16B": 255.0 / 65535.0,
    "I;16N": 255.0 / 65535.0,
}
# ITU-R 601-2 luma, the weights Pillow's convert("L") uses.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float64)


@dataclass(frozen=True)
class LoadedImage:
    """An image as waldo uses it.

    Attributes
    ----------
    pixels : (H, W, C) float32 ndarray
        C is 1 or 3; values on the 0–255 scale (float images are kept as they are).
    alpha : (H, W) float32 ndarray or None
        Opacity in [0, 1] when the file has an alpha channel (kept for masks).
    mode : str
        The Pillow mode the file was stored in.
    path : str
        The name the user gave (``-`` for standard input).
    """

    pixels: np.ndarray
    alpha: np.ndarray | None
    mode: str
    path: str

    @property
    def height(self) -> int:
        """Rows of pixels."""
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        """Columns of pixels."""
        return int(self.pixels.shape[1])

    @property
    def channels(self) -> int:
        """1 for grey, 3 for colour."""
        return int(self.pixels.shape[2])


def _describe_os_error(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if isinstance(exc, IsADirectoryError):
        return "is a directory, not an image file"
    if isinstance(exc, PermissionError):
        return "permission denied"
    text = str(exc).strip() or type(exc).__name__
    if "truncated" in text:
        return "the image data is truncated (an incomplete or damaged file)"
    return f"cannot decode the image ({text})"


def _head(source: str | os.PathLike[str] | BinaryIO, size: int = 64) -> bytes:
    try:
        if isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as fh:
                return fh.read(size)
        source.seek(0)
        return source.read(size)
    except (OSError, ValueError, AttributeError):
        return b""


def _declares_no_pixels(head: bytes) -> bool:
    r"""Whether a header Pillow refused says the image is 0 pixels wide or high.

    Pillow's plugins refuse such files as unidentified; this tells the user why.

    >>> import struct
    >>> _declares_no_pixels(b"\x89PNG\r\n\x1a\n" + struct.pack(">I4sII", 13, b"IHDR", 0, 7))
    True
    >>> _declares_no_pixels(b"P5 0 4 255 "), _declares_no_pixels(b"P5 3 4 255 ")
    (True, False)
    """
    import re
    import struct

    if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR" and len(head) >= 24:
        width, height = struct.unpack(">II", head[16:24])
        return width == 0 or height == 0
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        width, height = struct.unpack("<HH", head[6:10])
        return width == 0 or height == 0
    pnm = re.match(rb"P[1-7]\s+(\d+)\s+(\d+)", head)
    if pnm:
        return int(pnm.group(1)) == 0 or int(pnm.group(2)) == 0
    return False


def _open(source: str | os.PathLike[str] | BinaryIO, name: str) -> Image.Image:
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise ImageReadError(name, "no such file")
        if path.is_dir():
            raise ImageReadError(name, "is a directory, not an image file")
        if path.stat().st_size == 0:
            raise ImageReadError(name, "the file is empty")
    try:
        with warnings.catch_warnings():
            # Pillow's bomb guard stays on: above its hard limit it raises,
            # which we report; its softer warning should not spill onto stderr.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(source)
            image.load()
            return ImageOps.exif_transpose(image)
    except Image.DecompressionBombError as exc:
        raise ImageReadError(name, f"refused as a possible decompression bomb ({exc})") from None
    except UnidentifiedImageError:
        if _declares_no_pixels(_head(source)):
            raise ImageReadError(name, "the image has no pixels (zero width or height)") from None
        raise ImageReadError(name, "not an image file Pillow can read") from None
    except OSError as exc:
        raise ImageReadError(name, _describe_os_error(exc)) from None
    except (ValueError, SyntaxError, EOFError) as exc:
        # Some of Pillow's decoders signal corrupt data this way.
        raise ImageReadError(name, f"cannot decode the image ({exc})") from None


def _to_pixels(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    mode = image.mode
    alpha = None
    if "A" in image.getbands() or (mode == "P" and "transparency" in image.info):
        # Palette images with a transparent index become RGBA first.
        rgba = image.convert("LA" if mode in ("LA", "La", "P;L") else "RGBA")
        alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32) / np.float32(255.0)
        image = rgba.convert("L" if rgba.mode == "LA" else "RGB")
        mode_for_pixels = image.mode
    else:
        mode_for_pixels = mode
    # 8-bit data goes straight to float32 (exact): a float64 detour would
    # take eight bytes per value at the peak of loading a huge photograph
    if mode_for_pixels in _WIDE_MODES:
        pixels = np.asarray(image, dtype=np.float64) * _WIDE_MODES[mode_for_pixels]
    elif mode_for_pixels == "F":
        pixels = np.asarray(image, dtype=np.float32)
    elif mode_for_pixels in _GREY_MODES:
        pixels = np.asarray(image.convert("L")).astype(np.float32)
    elif mode_for_pixels == "RGB":
        pixels = np.asarray(image).astype(np.float32)
    else:  # CMYK, YCbCr, LAB, HSV, P without transparency, ...
        pixels = np.asarray(image.convert("RGB")).astype(np.float32)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    return np.ascontiguousarray(pixels, dtype=np.float32), alpha


def read_image(
    source: str | os.PathLike[str] | BinaryIO | bytes, name: str | None = None
) -> LoadedImage:
    """Read an image file into float32 pixels, keeping its alpha channel apart.

    Parameters
    ----------
    source : path, binary file object or bytes
        What to read. EXIF orientation is applied, so pixels are upright.
    name : str, optional
        The name to use in error messages (default: the path).

    Returns
    -------
    LoadedImage
        Pixels of shape (H, W, 1) or (H, W, 3) on the 0–255 scale, and alpha.

    Raises
    ------
    ImageReadError
        Missing, empty, truncated, undecodable or oversized (decompression
        bomb) files, and images with no pixels.

    Examples
    --------
    >>> import io
    >>> from PIL import Image
    >>> buf = io.BytesIO(); Image.new("RGBA", (4, 2), (255, 0, 0, 128)).save(buf, "PNG")
    >>> img = read_image(buf.getvalue(), name="red.png")
    >>> img.pixels.shape, img.pixels.dtype, float(img.pixels[0, 0, 0])
    ((2, 4, 3), dtype('float32'), 255.0)
    >>> round(float(img.alpha[0, 0]), 3)
    0.502
    """
    if isinstance(source, (bytes, bytearray)):
        label = name or "<bytes>"
        if not source:
            raise ImageReadError(label, "no image data (empty input)")
        stream: str | os.PathLike[str] | BinaryIO = _io.BytesIO(source)
    else:
        label = name or str(
            os.fspath(source)
            if isinstance(source, (str, os.PathLike))
            else getattr(source, "name", "<stream>")
        )
        stream = source
    image = _open(stream, label)
    mode = image.mode
    if image.width == 0 or image.height == 0:
        raise ImageReadError(label, "the image has no pixels (zero width or height)")
    pixels, alpha = _to_pixels(image)
    # only float files can hold NaN or inf (the check costs a pass over the pixels)
    if mode == "F" and not np.isfinite(pixels).all():
        raise ImageReadError(label, "the image holds NaN or infinite values")
    return LoadedImage(pixels=pixels, alpha=alpha, mode=mode, path=label)


def load_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file as float32 pixels of shape (H, W, C).

    Parameters
    ----------
    path : str or path-like
        Any file Pillow opens, in any mode (L, LA, RGB, RGBA, P, I;16, CMYK, ...).

    Returns
    -------
    (H, W, C) float32 ndarray
        C = 1 for grey modes and C = 3 for everything else; values on the
        0–255 scale (16-bit files are scaled by 255/65535, float files are
        kept as stored). Alpha is dropped here; ``read_image`` keeps it.

    Examples
    --------
    >>> import tempfile, os
    >>> from PIL import Image
    >>> path = os.path.join(tempfile.mkdtemp(), "grey.png")
    >>> Image.new("I;16", (3, 2), 65535).save(path)
    >>> pixels = load_image(path)
    >>> pixels.shape, float(pixels.max())
    ((2, 3, 1), 255.0)
    """
    return read_image(path).pixels


def to_grey(pixels: np.ndarray) -> np.ndarray:
    """Convert (H, W, 3) colour pixels to (H, W, 1) luma with Pillow's weights.

    >>> to_grey(np.full((1, 1, 3), 100, np.float32))[0, 0, 0]
    np.float32(100.0)
    """
    grey = np.tensordot(pixels.astype(np.float64), _LUMA, axes=([2], [0]))
    return grey[:, :, None].astype(np.float32)


def reconcile_channels(image: np.ndarray, template: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Give image and template the same channel count.

    A grey file matched with a colour one is matched in grey: the colour one
    is converted to luma, since colour cannot be invented for the grey one.

    >>> a, b = reconcile_channels(np.zeros((4, 4, 3), np.float32), np.zeros((2, 2, 1), np.float32))
    >>> a.shape, b.shape
    ((4, 4, 1), (2, 2, 1))
    """
    ci, ct = image.shape[2], template.shape[2]
    if ci == ct:
        return image, template
    if ci == 3 and ct == 1:
        return to_grey(image), template
    if ci == 1 and ct == 3:
        return image, to_grey(template)
    raise WaldoError(f"cannot match a {ct}-channel template against a {ci}-channel image")


def reconcile_filter(image: np.ndarray, learned: Any) -> np.ndarray:
    """The image in the channels a learned filter reads, as ``reconcile_channels`` does.

    A grey filter searches a colour image made grey (luma); a colour filter
    cannot search a grey image, since colour cannot be invented for it.

    >>> from waldo_cli.templates import LearnedFilter
    >>> grey = LearnedFilter(np.ones((2, 2, 1), np.float32), 0.0, colour="grey")
    >>> reconcile_filter(np.zeros((4, 4, 3), np.float32), grey).shape
    (4, 4, 1)
    """
    channels = image.shape[2]
    if channels == learned.channels:
        return image
    if channels == 3 and learned.channels == 1:
        return to_grey(image)
    if channels == 1 and learned.channels == 3:
        raise WaldoError(
            f"{learned.name} was learned on colour images; it cannot search a grey image "
            "(colour cannot be invented for it)"
        )
    raise WaldoError(
        f"cannot search a {channels}-channel image with a {learned.channels}-channel filter"
    )


def _output_format(path: Path) -> str:
    """The Pillow format a file name asks for, or raise OutputError."""
    from waldo_cli.errors import OutputError

    Image.init()
    fmt = Image.EXTENSION.get(path.suffix.lower())
    if fmt is None or fmt not in Image.SAVE:
        known = sorted(
            {
                ext
                for ext, f in Image.EXTENSION.items()
                if f in Image.SAVE and f in ("PNG", "JPEG", "WEBP", "TIFF", "BMP", "GIF")
            }
        )
        raise OutputError(
            f"{path}: unknown image format {path.suffix or '(no extension)'!r}; "
            f"use one of {', '.join(known)}"
        )
    return fmt


def check_output_path(
    path: str | os.PathLike[str],
    protect: tuple[str | os.PathLike[str], ...] = (),
    *,
    image: bool = True,
) -> Path:
    """Refuse an output path before any work is done, with a one-line reason.

    Parameters
    ----------
    path : path-like
        Where the user wants a file.
    protect : paths
        Inputs that must never be overwritten (the image, the template).
    image : bool
        Whether the file is a picture (then its extension must name a format).

    Returns
    -------
    Path
        The path, unchanged.

    Raises
    ------
    OutputError
        The folder does not exist or is not writable, the path is a folder or
        an input, or the extension names no image format.

    Examples
    --------
    >>> import tempfile
    >>> check_output_path(os.path.join(tempfile.mkdtemp(), "heat.png")).suffix
    '.png'
    """
    from waldo_cli.errors import OutputError

    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"{target}: the folder {folder} does not exist")
    if target.is_dir():
        raise OutputError(f"{target}: is a directory")
    for other in protect:
        if other is None or str(other) == "-":
            continue
        same = os.path.abspath(target) == os.path.abspath(other) or (
            target.exists() and Path(other).exists() and os.path.samefile(target, other)
        )
        if same:
            raise OutputError(f"{target}: refusing to overwrite an input file")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"{target}: the folder {folder} is not writable")
    if image:
        _output_format(target)
    return target


def write_atomically(path: str | os.PathLike[str], write: Any) -> None:
    """Call ``write(fileobj)`` on a temporary file beside ``path``, then rename it into place.

    An interrupted run leaves either the old file or the new one, never half
    of one. The temporary file is removed if ``write`` fails.

    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "a.txt")
    >>> write_atomically(p, lambda fh: fh.write(b"hi"))
    >>> open(p, "rb").read()
    b'hi'
    """
    import tempfile

    from waldo_cli.errors import OutputError

    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=folder)
    except OSError as exc:
        raise OutputError(f"{target}: cannot write ({exc.strerror or exc})") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise OutputError(f"{target}: cannot write ({exc.strerror or exc})") from None
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_image(
    picture: Image.Image | np.ndarray,
    path: str | os.PathLike[str],
    protect: tuple[str | os.PathLike[str], ...] = (),
) -> Path:
    """Save a picture atomically, in the format its file name asks for.

    Parameters
    ----------
    picture : PIL.Image.Image or (H, W[, C]) uint8 ndarray
        What to write.
    path : path-like
        Destination; its extension picks the format (PNG, JPEG, WebP, ...).
    protect : paths
        Inputs that must not be overwritten.

    Returns
    -------
    Path
        The path written.

    Examples
    --------
    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "x.png")
    >>> save_image(np.zeros((2, 3, 3), np.uint8), p).name, Image.open(p).size
    ('x.png', (3, 2))
    """
    target = check_output_path(path, protect)
    fmt = _output_format(target)
    if isinstance(picture, np.ndarray):
        picture = Image.fromarray(
            np.squeeze(picture) if picture.ndim == 3 and picture.shape[2] == 1 else picture
        )
    if fmt == "JPEG" and picture.mode not in ("RGB", "L", "CMYK"):
        picture = picture.convert("RGB")
    write_atomically(target, lambda fh: picture.save(fh, format=fmt))
    return target
