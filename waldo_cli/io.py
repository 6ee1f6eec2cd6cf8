"""Files in, pixels out; pictures out, whole or not at all.

Every image waldo reads goes through ``read_image``. Pixels come back as
float32 arrays of shape (H, W, C) with C = 1 (grey) or C = 3 (colour), on the
0–255 scale of an 8-bit image whatever the file's bit depth, so that scores,
thresholds and OpenCV's degenerate-case rules mean the same thing for every
file.

Reading is bounded. An image may hold at most ``max_pixels()`` pixels
(``WALDO_MAX_PIXELS``, default 2**27), checked from the file's header before
any pixel is decoded; standard input, FIFOs, ``/dev/fd/N`` and file lists are
read up to ``max_input_bytes()`` bytes (``WALDO_MAX_INPUT_BYTES``, default
1 GiB). Whatever a decoder raises for one file becomes ``ImageReadError``, and
Pillow's and libtiff's warnings are kept off stderr, so a bad file is one line.
Decoding time follows from the pixel budget (every decoder here is linear in
pixels); a hard wall-clock bound on one decode would need a subprocess, which
this module does not start.

Writing is atomic. ``write_atomically`` encodes into memory, writes the bytes
to a short-named temporary file beside the target (``.waldo-XXXXXXXX.part``),
checks every write, fsyncs, and renames: the target is the whole new file or
untouched, and a failure (a full disk, ``ulimit -f``, Ctrl-C) leaves no
temporary file. ``remove_partial_files`` removes the ones in flight, for a
signal handler.
"""

from __future__ import annotations

import contextlib
import functools
import io as _io
import os
import re
import signal
import stat
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple, cast

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from waldo_cli.errors import ImageReadError, OutputError, WaldoError

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

#: Pixels one image may hold (``WALDO_MAX_PIXELS`` overrides it): 2**27, about
#: 134 Mpx (11585², or 16384×8192). A search costs about 30 bytes a pixel at its
#: peak (float32 RGB pixels, the decoder's buffer, score maps, FFT tiles), so
#: one image at the budget takes about 4 GiB and a 24 GiB machine searches a
#: few at once. It is also below Pillow's own hard limit (179 Mpx, twice
#: ``PIL.Image.MAX_IMAGE_PIXELS``), so waldo's reason is the one users see.
DEFAULT_MAX_PIXELS = 1 << 27
#: Bytes read from a stream (standard input, a FIFO, ``/dev/fd/N``) or a file
#: list (``WALDO_MAX_INPUT_BYTES`` overrides it): 1 GiB, about the largest
#: uncompressed file within the pixel budget (2**27 pixels of 16-bit RGBA).
DEFAULT_MAX_INPUT_BYTES = 1 << 30
#: The longest line a file list may hold: far above PATH_MAX (4096 bytes on
#: Linux), so only garbage (a binary file, /dev/zero) reaches it.
MAX_LIST_LINE_BYTES = 1 << 16
_CHUNK = 1 << 20


def _limit_from_env(variable: str, default: int) -> int:
    text = os.environ.get(variable, "").strip()
    if not text:
        return default
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        value = float("nan")
    if not (1 <= value < 2**63 and value == int(value)):
        raise WaldoError(f"{variable}={text!r}: give a whole number of at least 1")
    return int(value)


def max_pixels() -> int:
    """The pixel budget: how many pixels one image may hold.

    ``DEFAULT_MAX_PIXELS`` (2**27, about 134 Mpx), or the environment variable
    ``WALDO_MAX_PIXELS``, read at each call (``3e8`` and ``300_000_000`` are
    understood). Raising it above Pillow's hard limit (twice
    ``PIL.Image.MAX_IMAGE_PIXELS``, 179 Mpx by default) needs that limit
    raised too, or Pillow refuses the file as a possible decompression bomb.

    Returns
    -------
    int
        The budget, at least 1.

    Raises
    ------
    WaldoError
        The variable is not a whole number of at least 1.

    Examples
    --------
    >>> max_pixels() == int(float(os.environ.get("WALDO_MAX_PIXELS", DEFAULT_MAX_PIXELS)))
    True
    """
    return _limit_from_env("WALDO_MAX_PIXELS", DEFAULT_MAX_PIXELS)


def max_input_bytes() -> int:
    """How many bytes a stream or a file list may hold.

    ``DEFAULT_MAX_INPUT_BYTES`` (1 GiB), or the environment variable
    ``WALDO_MAX_INPUT_BYTES``, read at each call.

    Returns
    -------
    int
        The bound, at least 1.

    Raises
    ------
    WaldoError
        The variable is not a whole number of at least 1.

    Examples
    --------
    >>> max_input_bytes() == int(float(os.environ.get("WALDO_MAX_INPUT_BYTES", 2**30)))
    True
    """
    return _limit_from_env("WALDO_MAX_INPUT_BYTES", DEFAULT_MAX_INPUT_BYTES)


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:.4g} Mpx"


def check_pixel_budget(size: tuple[int, int], name: str) -> None:
    """Refuse an image whose header declares more pixels than ``max_pixels()``.

    Parameters
    ----------
    size : (width, height)
        As the header declares it.
    name : str
        The file, for the message.

    Raises
    ------
    ImageReadError
        The image is over the budget.

    Examples
    --------
    >>> check_pixel_budget((640, 480), "small.png")
    >>> check_pixel_budget((20000, 20000), "huge.png")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    waldo_cli.errors.ImageReadError: huge.png: the image is 20000×20000 (400 Mpx), over ...
    """
    width, height = int(size[0]), int(size[1])
    budget = max_pixels()
    if width * height > budget:
        raise ImageReadError(
            name,
            f"the image is {width}×{height} ({_megapixels(width * height)}), "
            f"over the pixel budget of {_megapixels(budget)} (WALDO_MAX_PIXELS)",
        )


# --------------------------------------------------------------------------
# Streams and file lists


def _over_limit(name: str, bound: int) -> ImageReadError:
    return ImageReadError(name, f"more than {bound} bytes, the input limit (WALDO_MAX_INPUT_BYTES)")


def read_stream(stream: BinaryIO | None, name: str, *, limit: int | None = None) -> bytes:
    """Read a stream to its end, refusing more than ``limit`` bytes.

    Parameters
    ----------
    stream : binary file object or None
        Standard input's buffer, an open FIFO, ... ``None`` is a closed
        standard input (Python sets ``sys.stdin`` to None when fd 0 is closed).
    name : str
        The name for messages (``-`` for standard input).
    limit : int, optional
        Most bytes to read; by default ``max_input_bytes()``.

    Returns
    -------
    bytes
        Everything the stream held.

    Raises
    ------
    ImageReadError
        The stream is closed, unreadable, or holds more than ``limit`` bytes
        (it is read no further than that).

    Examples
    --------
    >>> import io
    >>> read_stream(io.BytesIO(b"abc"), "-")
    b'abc'
    >>> read_stream(io.BytesIO(b"abcdef"), "-", limit=4)
    Traceback (most recent call last):
    ...
    waldo_cli.errors.ImageReadError: -: more than 4 bytes, the input limit (WALDO_MAX_INPUT_BYTES)
    """
    bound = max_input_bytes() if limit is None else limit
    if stream is None:
        raise ImageReadError(name, "standard input is closed" if name == "-" else "closed")
    chunks: list[bytes] = []
    total = 0
    try:
        while chunk := stream.read(min(_CHUNK, bound + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > bound:
                raise _over_limit(name, bound)
    except ImageReadError:  # an OSError too: it says what went wrong already
        raise
    except OSError as exc:
        raise ImageReadError(name, f"cannot read ({exc.strerror or exc})") from None
    except ValueError:  # I/O on a closed file
        raise ImageReadError(
            name, "standard input is closed" if name == "-" else "closed"
        ) from None
    return b"".join(chunks)


def _stdin() -> BinaryIO | None:
    return None if sys.stdin is None else getattr(sys.stdin, "buffer", None)


def stdin_stream() -> BinaryIO:
    """Standard input as a binary stream, for ``read_image`` to read (bounded) when it must.

    Reading it is left to ``read_image``, so that in a batch a closed or
    oversized standard input is that image's error and the batch goes on.

    Returns
    -------
    binary file object
        ``sys.stdin.buffer``; when fd 0 was closed (``<&-``), a closed stream,
        which ``read_image`` reports as ``-: standard input is closed``.

    Examples
    --------
    >>> import io, sys
    >>> sys.stdin, saved = None, sys.stdin
    >>> try:
    ...     read_image(stdin_stream(), name="-")
    ... finally:
    ...     sys.stdin = saved
    Traceback (most recent call last):
    ...
    waldo_cli.errors.ImageReadError: -: standard input is closed
    """
    stream = _stdin()
    if stream is None:
        stream = _io.BytesIO()
        stream.close()
    return stream


def _stat(path: str | os.PathLike[str], name: str) -> os.stat_result:
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise ImageReadError(name, "no such file") from None
    except PermissionError:  # also a folder on the way that cannot be searched
        raise ImageReadError(name, "permission denied") from None
    except OSError as exc:  # ELOOP, ENAMETOOLONG, EIO, ...
        raise ImageReadError(name, (exc.strerror or str(exc)).lower()) from None
    except ValueError:  # a NUL byte in the name
        raise ImageReadError(name, "not a valid file name") from None


def _read_special(path: str | os.PathLike[str], name: str) -> bytes:
    try:
        with open(path, "rb") as stream:
            return read_stream(stream, name)
    except ImageReadError:  # an OSError too: it says what went wrong already
        raise
    except OSError as exc:
        raise ImageReadError(name, _describe_os_error(exc)) from None


def read_source(name: str | os.PathLike[str]) -> str | os.PathLike[str] | bytes:
    """What ``read_image`` and ``image_size`` should be given for a name the user typed.

    ``-`` is standard input. A FIFO, ``/dev/fd/N`` (as in ``<(cat a.png)``),
    a character device or a socket is a stream too. A stream is read once,
    here, up to ``max_input_bytes()``, and its bytes returned; a regular file
    is returned as its path, to be read lazily.

    Parameters
    ----------
    name : str or path-like
        ``-`` or a path.

    Returns
    -------
    str, path-like or bytes
        The path, or the stream's bytes.

    Raises
    ------
    ImageReadError
        Missing or unreadable; a directory; standard input closed; a stream
        over the limit.

    Examples
    --------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.png")
    >>> _ = open(path, "wb").write(b"x")
    >>> read_source(path) == path
    True
    """
    if os.fspath(name) == "-":
        return read_stream(_stdin(), "-")
    label = str(os.fspath(name))
    info = _stat(name, label)
    if stat.S_ISDIR(info.st_mode):
        raise ImageReadError(label, "is a directory, not an image file")
    if stat.S_ISREG(info.st_mode):
        return name
    return _read_special(name, label)


def read_file_list(
    path_or_stream: str | os.PathLike[str] | BinaryIO | None, *, null: bool = False
) -> list[str]:
    r"""Read a list of file names, one per line (or separated by NUL bytes).

    Lines are split on ``\n`` only (never on ``\f``, ``\v``, U+2028 or
    U+0085, which may be part of a name), and one ``\r`` at the end of a line
    is dropped, so lists written on Windows work. A UTF-8 byte-order mark at
    the start is dropped. Empty lines and lines of white space alone are
    skipped (with ``null=True``, empty names only). Names are decoded as
    UTF-8 with ``surrogateescape``, so a name that is not valid UTF-8 still
    names its file (``os.fsencode`` gives its bytes back).

    Parameters
    ----------
    path_or_stream : path, ``-``, binary file object or None
        The list: a file (a FIFO works), ``-`` for standard input, or an open
        binary stream (``None`` is a closed standard input).
    null : bool
        Names are separated by NUL bytes (as ``find -print0`` writes them),
        and may hold newlines.

    Returns
    -------
    list of str
        The names, in order.

    Raises
    ------
    ImageReadError
        The list cannot be read, a line is longer than ``MAX_LIST_LINE_BYTES``
        (64 KiB, where a path is at most 4 KiB), or the list is longer than
        ``max_input_bytes()``.

    Examples
    --------
    >>> import io
    >>> read_file_list(io.BytesIO(b"\xef\xbb\xbfa.png\r\n\n  \nb\fc.png\n\xe9.png"))
    ['a.png', 'b\x0cc.png', '\udce9.png']
    >>> read_file_list(io.BytesIO(b"a\nb.png\x00 c.png\x00"), null=True)
    ['a\nb.png', ' c.png']
    """
    if isinstance(path_or_stream, (str, os.PathLike)) and os.fspath(path_or_stream) != "-":
        label = str(os.fspath(path_or_stream))
        if stat.S_ISDIR(_stat(path_or_stream, label).st_mode):
            raise ImageReadError(label, "is a directory, not a list of files")
        try:
            with open(path_or_stream, "rb") as stream:
                return _split_list(stream, label, null)
        except ImageReadError:  # an OSError too: it says what went wrong already
            raise
        except OSError as exc:
            raise ImageReadError(label, _describe_os_error(exc)) from None
    if path_or_stream is None or isinstance(path_or_stream, (str, os.PathLike)):
        return _split_list(_stdin(), "-", null)
    return _split_list(path_or_stream, str(getattr(path_or_stream, "name", "<stream>")), null)


# Runs of separators at once: a list of a billion empty lines is split fast.
_LINES = re.compile(rb"\n+")
_NULS = re.compile(rb"\x00+")


def _split_list(stream: BinaryIO | None, label: str, null: bool) -> list[str]:
    if stream is None:
        raise ImageReadError(label, "standard input is closed")
    separators = _NULS if null else _LINES
    bound = max_input_bytes()
    names: list[str] = []
    pending = b""
    total = 0
    try:
        while chunk := stream.read(_CHUNK):
            if total == 0:
                chunk = chunk.removeprefix(b"\xef\xbb\xbf")
            total += len(chunk)
            if total > bound:
                raise _over_limit(label, bound)
            *complete, pending = separators.split(pending + chunk)
            _take_names(complete, names, label, null)
            if len(pending) > MAX_LIST_LINE_BYTES:
                raise _long_line(label)
    except ImageReadError:  # an OSError too: it says what went wrong already
        raise
    except OSError as exc:
        raise ImageReadError(label, f"cannot read ({exc.strerror or exc})") from None
    except ValueError:  # I/O on a closed file
        raise ImageReadError(label, "closed") from None
    _take_names([pending], names, label, null)
    return names


def _take_names(lines: Iterable[bytes], names: list[str], label: str, null: bool) -> None:
    for line in lines:
        if len(line) > MAX_LIST_LINE_BYTES:
            raise _long_line(label)
        if not null:
            line = line.removesuffix(b"\r")
            if line.isspace():
                continue
        if line:
            names.append(line.decode("utf-8", "surrogateescape"))


def _long_line(label: str) -> ImageReadError:
    return ImageReadError(
        label, f"a line is longer than {MAX_LIST_LINE_BYTES} bytes (not a list of file names?)"
    )


# --------------------------------------------------------------------------
# Decoding


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
    text = _one_line(exc)
    if "truncated" in text:
        return "the image data is truncated (an incomplete or damaged file)"
    if text.startswith("decoder error"):
        return f"the image data is damaged ({text})"
    return f"cannot decode the image ({text})"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if len(text) > 200:
        text = text[:197] + "..."
    return text or type(exc).__name__


class _QuietPillow:
    """Keeps Pillow's warnings off stderr while any decode runs, in any thread.

    ``warnings.catch_warnings`` saves and restores the process's filter list,
    which threads decoding at once would undo for each other; this adds one
    filter while at least one decode runs and takes it away after the last.
    """

    _MODULES = r"(PIL|waldo_cli\.io)(\.|$)"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0

    def __enter__(self) -> None:
        with self._lock:
            self._users += 1
            if self._users == 1:
                warnings.filterwarnings("ignore", category=Warning, module=self._MODULES)

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0:
                mine = [f for f in warnings.filters if _is_quiet_filter(f, self._MODULES)]
                for entry in mine:
                    with contextlib.suppress(ValueError):
                        cast(list[object], warnings.filters).remove(entry)
                mutated = getattr(warnings, "_filters_mutated", None)
                if mine and mutated is not None:
                    mutated()


def _is_quiet_filter(entry: tuple[object, ...], modules: str) -> bool:
    action, message, category, module, _ = entry
    pattern = getattr(module, "pattern", None)
    return action == "ignore" and message is None and category is Warning and pattern == modules


_QUIET_PILLOW = _QuietPillow()


@functools.cache
def _silence_decoder_noise() -> bool:
    """Keep what decoders print off stderr, once per process.

    Pillow logs some refusals (``More samples per pixel than can be
    decoded``) through ``logging``, which prints them on stderr when the
    program configured no logging: a ``NullHandler`` on the ``PIL`` logger,
    as a library should have, stops that (a program's own handlers still get
    the records). libtiff reports to a C handler that writes to fd 2
    (``ZIPDecode: Decoding error ...``), below Python's reach; Pillow still
    gets the error code and raises. Its handlers are set to NULL in the
    libtiff that Pillow loaded (found in /proc/self/maps; elsewhere nothing
    is done). Returns whether a libtiff was found.
    """
    import logging

    logging.getLogger("PIL").addHandler(logging.NullHandler())
    import ctypes

    libraries = loaded_libraries("libtiff")
    for library in libraries:
        for setter in ("TIFFSetWarningHandler", "TIFFSetErrorHandler"):
            function = getattr(library, setter, None)
            if function is not None:
                function.restype = ctypes.c_void_p
                function.argtypes = [ctypes.c_void_p]
                function(None)
    return bool(libraries)


def loaded_libraries(name: str) -> list[Any]:
    """The native libraries this process has loaded whose file name holds ``name``, opened.

    Found in /proc/self/maps (Linux); elsewhere, or where one cannot be
    opened, none. ctypes hands back the library already in memory: its
    settings are the ones the process uses.

    >>> all(hasattr(lib, "_name") for lib in loaded_libraries("libc"))
    True
    """
    try:
        import ctypes

        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            maps = fh.read()
    except (ImportError, OSError):
        return []
    pattern = rf"(/\S*/[^/\s]*{re.escape(name)}[^/\s]*\.so[^/\s]*)$"
    opened = []
    for path in sorted(set(re.findall(pattern, maps, re.MULTILINE))):
        with contextlib.suppress(OSError):
            opened.append(ctypes.CDLL(path))
    return opened


@contextlib.contextmanager
def _decoding(name: str, data: str | os.PathLike[str] | BinaryIO) -> Iterator[None]:
    """Turn whatever decoding one file raises into ``ImageReadError(name, reason)``."""
    _silence_decoder_noise()
    with _QUIET_PILLOW:
        try:
            yield
        except WaldoError:
            raise
        except Image.DecompressionBombError as exc:
            raise ImageReadError(
                name, f"refused as a possible decompression bomb ({_one_line(exc)})"
            ) from None
        except UnidentifiedImageError:
            if _declares_no_pixels(_head(data)):
                raise ImageReadError(
                    name, "the image has no pixels (zero width or height)"
                ) from None
            raise ImageReadError(name, "not an image file Pillow can read") from None
        except MemoryError:
            raise ImageReadError(name, "not enough memory to decode the image") from None
        except OSError as exc:
            raise ImageReadError(name, _describe_os_error(exc)) from None
        # The one place that must catch broadly: a decoder fails on a damaged
        # file in whatever way it fails (RuntimeError for AVIF,
        # NotImplementedError for DDS, TypeError for TIFF, ValueError,
        # struct.error, EOFError, SyntaxError, ...). That is this file's
        # error, one line, and never the end of a batch.
        except Exception as exc:  # noqa: BLE001
            raise ImageReadError(name, f"cannot decode the image ({_one_line(exc)})") from None


def _head(source: str | os.PathLike[str] | BinaryIO, size: int = 64) -> bytes:
    try:
        if isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as fh:
                return fh.read(size)
        position = source.tell()
        head = source.read(size)
        source.seek(position)
        return head
    except (OSError, ValueError, AttributeError):
        return b""


def _webp_canvas(head: bytes) -> tuple[int, int] | None:
    r"""The canvas a WebP header declares, or None.

    Pillow's WebP plugin creates libwebp's decoder, which allocates the
    canvas, inside ``Image.open``; the budget is checked before that.

    >>> _webp_canvas(b"RIFF\0\0\0\0WEBPVP8X" + bytes(8) + bytes.fromhex("3f0021" "2f0000"))
    (2162752, 48)
    """
    if len(head) < 30 or head[:4] != b"RIFF" or head[8:12] != b"WEBP":
        return None
    chunk = head[12:16]
    if chunk == b"VP8X":
        return int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1
    if chunk == b"VP8 " and head[23:26] == b"\x9d\x01\x2a":
        return (
            int.from_bytes(head[26:28], "little") & 0x3FFF,
            int.from_bytes(head[28:30], "little") & 0x3FFF,
        )
    if chunk == b"VP8L" and head[20] == 0x2F:
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


class ImageSize(NamedTuple):
    """An image's size as its header declares it, upright (EXIF orientation applied)."""

    width: int
    height: int

    @property
    def pixels(self) -> int:
        """How many pixels: width × height."""
        return self.width * self.height


def _prepare(
    source: str | os.PathLike[str] | BinaryIO | bytes | bytearray | memoryview, name: str | None
) -> tuple[str | os.PathLike[str] | BinaryIO, str]:
    """(what Pillow should open, the name for messages); streams are read, bounded."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        label = name or "<bytes>"
        if not source:
            raise ImageReadError(label, "no image data (empty input)")
        return _io.BytesIO(bytes(source)), label
    if isinstance(source, (str, os.PathLike)):
        label = name or str(os.fspath(source))
        info = _stat(source, label)
        if stat.S_ISDIR(info.st_mode):
            raise ImageReadError(label, "is a directory, not an image file")
        if stat.S_ISREG(info.st_mode):
            if info.st_size == 0:
                raise ImageReadError(label, "the file is empty")
            return source, label
        # a FIFO, /dev/fd/N, a character device: a stream, read as '-' is
        return _prepare(_read_special(source, label), label)
    label = name or str(getattr(source, "name", "<stream>"))
    try:  # a regular file is read lazily; a pipe or a device (/dev/zero seeks!) is bounded
        lazy = stat.S_ISREG(os.fstat(source.fileno()).st_mode)
    except (OSError, ValueError, AttributeError):
        try:
            lazy = source.seekable()
        except (OSError, ValueError, AttributeError):
            lazy = False
    if lazy:
        return source, label
    return _prepare(read_stream(source, label), label)


def _open_header(data: str | os.PathLike[str] | BinaryIO, name: str) -> Image.Image:
    """Image.open, with the pixel budget checked before anything is decoded."""
    canvas = _webp_canvas(_head(data, 30))
    if canvas is not None:
        check_pixel_budget(canvas, name)
    image = Image.open(data)
    check_pixel_budget(image.size, name)
    _check_jpeg_length(image, data, name)
    return image


# A Huffman-coded JPEG spends at least one bit on each 8×8 block's DC
# coefficient (a progressive file's first scan too), so a whole file holds at
# least pixels / 512 bytes; half of that is the bound, for margin. (An
# arithmetic-coded one can spend less, and is not checked.)
_JPEG_PIXELS_PER_BYTE = 1024


def _check_jpeg_length(
    image: Image.Image, data: str | os.PathLike[str] | BinaryIO, name: str
) -> None:
    """Refuse a JPEG too short for the size it declares, before libjpeg decodes it.

    libjpeg fills what a truncated file lacks with grey and Pillow accepts the
    result: a 631-byte file declaring 11000×12000 took 25 s and 2.9 GiB to
    become a grey picture.
    """
    if image.format not in ("JPEG", "MPO"):
        return
    try:
        if isinstance(data, (str, os.PathLike)):
            with open(data, "rb") as fh:
                head, length = fh.read(1 << 16), os.fstat(fh.fileno()).st_size
        else:
            position = data.tell()
            data.seek(0)
            head = data.read(1 << 16)
            length = data.seek(0, os.SEEK_END)
            data.seek(position)
    except (OSError, ValueError, AttributeError):
        return
    width, height = image.size
    if length * _JPEG_PIXELS_PER_BYTE < width * height and _huffman_coded(head):
        raise ImageReadError(
            name,
            f"{length} bytes cannot hold a {width}×{height} JPEG (the image data is truncated)",
        )


def _huffman_coded(head: bytes) -> bool:
    """Whether a JPEG's frame header (SOF0-3, 5-7) says Huffman coding, walking its markers.

    >>> baseline, arithmetic = bytes.fromhex("ffd8 ffc0 0002"), bytes.fromhex("ffd8 ffc9 0002")
    >>> _huffman_coded(baseline), _huffman_coded(arithmetic)
    (True, False)
    """
    at = 2
    while at + 4 <= len(head) and head[at] == 0xFF:
        marker = head[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7):
            return True
        if marker in (0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xDA):
            return False  # arithmetic coding, or scan data before any frame header
        at += 2 + int.from_bytes(head[at + 2 : at + 4], "big")
    return False


def _orientation(image: Image.Image) -> int:
    # PNG keeps its eXIf chunk wherever it likes: reading it may mean decoding
    if image.format == "PNG" and "exif" not in image.info:
        return 1
    return int(image.getexif().get(0x0112, 1))


def image_size(
    source: str | os.PathLike[str] | BinaryIO | bytes, name: str | None = None
) -> ImageSize:
    """The size an image's header declares, upright, without decoding its pixels.

    Cheap enough to compare a template with an image before decoding either.
    The pixel budget is not applied (``read_image`` applies it), so an image
    over the budget still reports its size.

    Parameters
    ----------
    source : path, binary file object or bytes
        As for ``read_image``. A FIFO or ``/dev/fd/N`` path is read to its
        end (bounded): give ``read_source(name)``'s bytes to both functions
        instead, so the stream is read once.
    name : str, optional
        The name to use in error messages (default: the path).

    Returns
    -------
    ImageSize
        ``(width, height)``, after EXIF orientation (quarter turns swap them).

    Raises
    ------
    ImageReadError
        Missing, empty or unreadable files, and headers no decoder accepts.

    Examples
    --------
    >>> import io
    >>> buf = io.BytesIO(); Image.new("L", (640, 480)).save(buf, "PNG")
    >>> image_size(buf.getvalue())
    ImageSize(width=640, height=480)
    """
    data, label = _prepare(source, name)
    with _decoding(label, data):
        canvas = _webp_canvas(_head(data, 30))
        if canvas is not None and canvas[0] * canvas[1] > max_pixels():
            return ImageSize(*canvas)  # too large for Pillow to open cheaply; refused later
        with Image.open(data) as image:
            width, height = image.size
            if _orientation(image) in (5, 6, 7, 8):
                width, height = height, width
    return ImageSize(int(width), int(height))


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
    source: str | os.PathLike[str] | BinaryIO | bytes, *, name: str | None = None
) -> LoadedImage:
    """Read an image file into float32 pixels, keeping its alpha channel apart.

    Parameters
    ----------
    source : path, binary file object or bytes
        What to read. EXIF orientation is applied, so pixels are upright. A
        path that is a FIFO, ``/dev/fd/N`` or a character device, and a
        stream that cannot seek, are read to their end first, up to
        ``max_input_bytes()``.
    name : str, optional
        The name to use in error messages (default: the path).

    Returns
    -------
    LoadedImage
        Pixels of shape (H, W, 1) or (H, W, 3) on the 0–255 scale, and alpha.

    Raises
    ------
    ImageReadError
        Missing, unreadable, empty, truncated or undecodable files, whatever
        the decoder raised; images over the pixel budget (``max_pixels()``,
        checked from the header before decoding) or Pillow's decompression
        bomb limit; images with no pixels or with NaN or infinite values. An
        ``OSError`` (and a ``ValueError``, as every ``WaldoError``).

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
    data, label = _prepare(source, name)
    with _decoding(label, data):
        image = _open_header(data, label)
        image.load()
        image = ImageOps.exif_transpose(image)
        mode = image.mode
        if image.width == 0 or image.height == 0:
            raise ImageReadError(label, "the image has no pixels (zero width or height)")
        pixels, alpha = _to_pixels(image)
        image.close()
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


def image_extensions() -> frozenset[str]:
    """The file extensions Pillow reads as images, in lower case with their dot.

    What ``waldo find -t FOLDER`` takes from a folder.

    >>> {".png", ".jpg", ".tif"} <= image_extensions(), ".txt" in image_extensions()
    (True, False)
    """
    Image.init()
    return frozenset(ext.lower() for ext in Image.registered_extensions())


def to_grey(pixels: np.ndarray) -> np.ndarray:
    """Convert (H, W, 3) colour pixels to (H, W, 1) luma with Pillow's weights.

    Parameters
    ----------
    pixels : (H, W, 3) ndarray
        Colour pixels on the 0–255 scale.

    Returns
    -------
    (H, W, 1) float32 ndarray
        ITU-R 601 luma, 0.299 R + 0.587 G + 0.114 B, not rounded (Pillow's
        ``convert("L")`` rounds to 8 bits).

    Examples
    --------
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


# --------------------------------------------------------------------------
# Writing

_ANY = 2**31 - 1
# The formats waldo writes its pictures in (8-bit RGB or grey), with the
# widest and tallest picture each can hold (measured with Pillow 13 and its
# libraries). Others Pillow lists cannot hold these pictures (BLP, MSP, XBM
# and PALM take other modes), need a program (EPS: Ghostscript), have no
# encoder (BUFR, GRIB, HDF5, WMF) or resize what they are given (ICNS).
_WRITABLE: dict[str, tuple[int, int]] = {
    "PNG": (_ANY, _ANY),
    "JPEG": (65500, 65500),
    "MPO": (65500, 65500),
    "PDF": (65500, 65500),
    "WEBP": (16383, 16383),
    "GIF": (65535, 65535),
    "PCX": (65534, 65535),
    "SGI": (65535, 65535),
    "TGA": (65535, 65535),
    "AVIF": (32768, 32768),
    "ICO": (256, 256),
    "TIFF": (_ANY, _ANY),
    "BMP": (_ANY, _ANY),
    "DIB": (_ANY, _ANY),
    "PPM": (_ANY, _ANY),
    "IM": (_ANY, _ANY),
    "DDS": (_ANY, _ANY),
    "JPEG2000": (_ANY, _ANY),
    "QOI": (_ANY, _ANY),
}
# Modes each format needs, when a picture's mode is not among them.
_MODES = {"JPEG": ("RGB", "L"), "MPO": ("RGB", "L"), "PDF": ("RGB", "L"), "QOI": ("RGB", "RGBA")}


def _output_format(path: Path) -> str:
    """The Pillow format a file name asks for, or raise OutputError."""
    Image.init()
    fmt = Image.EXTENSION.get(path.suffix.lower())
    if fmt is None or fmt not in _WRITABLE or fmt not in Image.SAVE:
        known = ("png", "jpg", "webp", "tif", "bmp", "gif")
        what = "unknown image format" if fmt is None else f"waldo cannot write {fmt} pictures"
        raise OutputError(
            f"{path}: {what} {path.suffix or '(no extension)'!r}; "
            f"use one of {', '.join('.' + ext for ext in known)}"
        )
    return fmt


def _check_fits(fmt: str, size: tuple[int, int], path: Path) -> None:
    width, height = size
    most_wide, most_high = _WRITABLE[fmt]
    if width > most_wide or height > most_high:
        raise OutputError(
            f"{path}: a {width}×{height} picture is too large for {fmt}, which holds at most "
            f"{most_wide}×{most_high}; use .png or .tif"
        )


def _name_max(folder: Path) -> int:
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return 255


def _same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two names reach one file, through symbolic and hard links."""
    try:
        return os.path.samefile(a, b)  # the same (st_dev, st_ino)
    except (OSError, ValueError):
        pass
    # one does not exist (yet): the same place once links are followed
    return os.path.realpath(a) == os.path.realpath(b)


def check_output_path(
    path: str | os.PathLike[str],
    protect: Iterable[str | os.PathLike[str] | None] = (),
    *,
    image: bool = True,
    size: tuple[int, int] | None = None,
) -> Path:
    """Refuse an output path before any work is done, with a one-line reason.

    A path that is a symbolic link is written through: its target is
    replaced, the link stays, so the checks apply to the target.

    Parameters
    ----------
    path : path-like
        Where the user wants a file.
    protect : paths
        Inputs that must never be overwritten (image, template, mask, file
        list, kernel); compared as files, through symbolic and hard links.
        ``None`` and ``-`` are skipped.
    image : bool
        Whether the file is a picture (then its extension must name a format
        waldo writes).
    size : (width, height), optional
        The picture's size, when known: refused if the format cannot hold it
        (WebP at most 16383 px a side, JPEG 65500, GIF 65535, ...).

    Returns
    -------
    Path
        The path, unchanged.

    Raises
    ------
    OutputError
        The folder does not exist or is not writable, the path is a folder or
        an input, its name is longer than the file system allows, or the
        extension names no format waldo writes, or one too small for ``size``.

    Examples
    --------
    >>> import tempfile
    >>> check_output_path(os.path.join(tempfile.mkdtemp(), "heat.png")).suffix
    '.png'
    >>> check_output_path(os.path.join(tempfile.mkdtemp(), "h.webp"), size=(20000, 10))
    Traceback (most recent call last):
    ...
    waldo_cli.errors.OutputError: ...h.webp: a 20000×10 picture is too large for WEBP, ...
    """
    target = Path(path)
    given = target.parent if str(target.parent) else Path(".")
    # first: any look at a name that is too long fails with ENAMETOOLONG
    length, most = len(os.fsencode(target.name)), _name_max(given)
    if length > most:
        raise OutputError(
            f"{target}: the file name is {length} bytes long; the file system takes at most {most}"
        )
    real = Path(os.path.realpath(target))
    folder = real.parent if os.path.islink(target) else given
    if not folder.is_dir():
        raise OutputError(f"{target}: the folder {folder} does not exist")
    if real.is_dir():
        raise OutputError(f"{target}: is a directory")
    for other in protect:
        if other is None or os.fspath(other) == "-":
            continue
        if _same_file(target, other):
            raise OutputError(f"{target}: refusing to overwrite an input file")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"{target}: the folder {folder} is not writable")
    if image:
        fmt = _output_format(target)
        if size is not None:
            _check_fits(fmt, size, target)
    return target


def check_output_paths(
    paths: Iterable[str | os.PathLike[str] | None],
    protect: Iterable[str | os.PathLike[str] | None] = (),
    *,
    image: bool = True,
    size: tuple[int, int] | None = None,
) -> list[Path]:
    """``check_output_path`` for several outputs, and no two of them one file.

    Parameters
    ----------
    paths : paths or None
        The outputs (``None``: an output not asked for, skipped).
    protect, image, size
        As for ``check_output_path``.

    Returns
    -------
    list of Path
        The outputs checked, in order.

    Raises
    ------
    OutputError
        One output fails ``check_output_path``, or two reach one file (the
        same name, or through links).

    Examples
    --------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> check_output_paths([os.path.join(folder, "a.png"), None, os.path.join(folder, "./a.png")])
    Traceback (most recent call last):
    ...
    waldo_cli.errors.OutputError: ...a.png: names the same file as ...a.png
    """
    inputs = list(protect)
    checked = [check_output_path(p, inputs, image=image, size=size) for p in paths if p is not None]
    for later, path in enumerate(checked):
        for earlier in checked[:later]:
            if _same_file(path, earlier):
                raise OutputError(f"{path}: names the same file as {earlier}")
    return checked


class _PartialFiles:
    """The temporary files being written now, so that a signal handler can remove them.

    One per process (a signal handler has no other way to find them), behind
    a re-entrant lock: a handler runs in the main thread, perhaps while that
    thread holds the lock to add a file.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._paths: set[str] = set()

    def add(self, path: str) -> None:
        with self._lock:
            self._paths.add(path)

    def discard(self, path: str) -> None:
        with self._lock:
            self._paths.discard(path)

    def remove_all(self) -> list[str]:
        with self._lock:
            paths, self._paths = sorted(self._paths), set()
        removed = []
        for path in paths:
            with contextlib.suppress(OSError):
                os.unlink(path)
                removed.append(path)
        return removed


_PARTIAL_FILES = _PartialFiles()


def remove_partial_files() -> list[str]:
    """Remove the temporary files of every write in flight, for a signal handler.

    A write interrupted this way then fails (its rename finds no file) and
    leaves the target untouched. Safe to call from a signal handler in the
    main thread, and from any thread.

    Returns
    -------
    list of str
        The temporary files removed.

    Examples
    --------
    >>> remove_partial_files()
    []
    """
    return _PARTIAL_FILES.remove_all()


def _ignore_sigxfsz() -> None:
    """Make a write past ``ulimit -f`` fail with EFBIG instead of killing the process.

    CPython ignores SIGXFSZ at start-up; a program that embeds Python, or
    resets the signal, may not. Only the main thread may change it.
    """
    number = getattr(signal, "SIGXFSZ", None)
    if number is None:
        return
    with contextlib.suppress(ValueError, OSError):
        if signal.getsignal(number) == signal.SIG_DFL:
            signal.signal(number, signal.SIG_IGN)


def _umask() -> int:
    # /proc says it without changing it; os.umask would, for every thread
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o22)
    os.umask(mask)
    return mask


def _write_all(fd: int, data: memoryview) -> None:
    # os.write may write less than asked (a signal, a nearly full disk): loop,
    # and a write of nothing means no room
    while data:
        written = os.write(fd, data[:_CHUNK])
        if written <= 0:
            raise OSError(28, os.strerror(28))
        data = data[written:]


def write_atomically(
    path: str | os.PathLike[str],
    write: Callable[[BinaryIO], object] | bytes | bytearray | memoryview,
) -> None:
    """Write a whole file or nothing: encode in memory, write, fsync, rename into place.

    ``write(fileobj)`` is called on an in-memory buffer (or ``write`` is the
    bytes themselves); the bytes then go to a temporary file beside the
    target, ``.waldo-XXXXXXXX.part`` (short, so any valid target name
    works), with every write checked and fsynced before the rename. The
    target is then the whole new file or what it was; on any failure,
    Ctrl-C included, the temporary file is removed. A target that is a
    symbolic link is written through: its target is replaced, the link
    stays. A file that existed keeps its permissions.

    Parameters
    ----------
    path : path-like
        The file to write.
    write : callable or bytes
        ``write(fileobj)`` writes the content to a binary file object, or the
        content itself.

    Raises
    ------
    OutputError
        Anything the system refuses (a full disk, ``ulimit -f``, a read-only
        folder, a name too long), in one line.

    Examples
    --------
    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "a.txt")
    >>> write_atomically(p, lambda fh: fh.write(b"hi"))
    >>> open(p, "rb").read(), sorted(os.listdir(os.path.dirname(p)))
    (b'hi', ['a.txt'])
    """
    target = Path(path)
    if isinstance(write, (bytes, bytearray, memoryview)):
        data = memoryview(write)
    else:
        buffer = _io.BytesIO()
        try:
            write(buffer)
        except WaldoError:  # an OutputError is an OSError too, and says what went wrong
            raise
        except OSError as exc:
            raise OutputError(f"{target}: cannot write ({exc.strerror or exc})") from None
        data = buffer.getbuffer()
    real = Path(os.path.realpath(target))
    _ignore_sigxfsz()
    try:
        fd, tmp = tempfile.mkstemp(prefix=".waldo-", suffix=".part", dir=real.parent)
    except OSError as exc:
        raise OutputError(f"{target}: cannot write ({exc.strerror or exc})") from None
    _PARTIAL_FILES.add(tmp)
    try:
        try:
            _write_all(fd, data)
            try:
                mode = stat.S_IMODE(os.stat(real).st_mode)
            except OSError:
                mode = 0o666 & ~_umask()
            os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, real)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        # an OutputError or ImageReadError from ``write`` is an OSError too,
        # and already says what went wrong
        if isinstance(exc, OSError) and not isinstance(exc, WaldoError):
            raise OutputError(f"{target}: cannot write ({exc.strerror or exc})") from None
        raise
    finally:
        _PARTIAL_FILES.discard(tmp)
    _sync_folder(real.parent)


def _sync_folder(folder: Path) -> None:
    # the rename is durable once the folder is on disk too (best effort)
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def save_image(
    picture: Image.Image | np.ndarray,
    path: str | os.PathLike[str],
    *,
    protect: Iterable[str | os.PathLike[str] | None] = (),
) -> Path:
    """Save a picture atomically, in the format its file name asks for.

    The picture is encoded in memory first, then written with
    ``write_atomically``: every format behaves the same on a full disk (one
    error, no file), and a format that cannot hold the picture is refused
    before anything is written.

    Parameters
    ----------
    picture : PIL.Image.Image or (H, W[, C]) uint8 ndarray
        What to write.
    path : path-like
        Destination; its extension picks the format (PNG, JPEG, WebP, ...).
        A symbolic link is written through.
    protect : paths
        Inputs that must not be overwritten.

    Returns
    -------
    Path
        The path written.

    Raises
    ------
    OutputError
        The path is refused (see ``check_output_path``), the format cannot
        hold the picture, or the file cannot be written.

    Examples
    --------
    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "x.png")
    >>> save_image(np.zeros((2, 3, 3), np.uint8), p).name, Image.open(p).size
    ('x.png', (3, 2))
    """
    if isinstance(picture, np.ndarray):
        picture = Image.fromarray(
            np.squeeze(picture, axis=2) if picture.ndim == 3 and picture.shape[2] == 1 else picture
        )
    target = check_output_path(path, protect, size=picture.size)
    fmt = _output_format(target)
    modes = _MODES.get(fmt)
    if modes is not None and picture.mode not in modes:
        picture = picture.convert(modes[0])
    buffer = _io.BytesIO()
    _silence_decoder_noise()  # its encoder reports on fd 2 too
    try:
        with _QUIET_PILLOW:  # IM's deprecation, ...
            picture.save(buffer, format=fmt)
    except (OSError, ValueError, ArithmeticError, KeyError, MemoryError) as exc:
        # an encoder that still refuses this picture (the table above missed a case)
        raise OutputError(f"{target}: cannot write it as {fmt} ({_one_line(exc)})") from None
    write_atomically(target, buffer.getbuffer())
    return target
