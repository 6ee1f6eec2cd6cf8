"""Learned filters on disk: ``save_filter`` and ``load_filter``, and the file's format.

A filter file is a ``.npz`` archive (``numpy.load`` opens it) holding three
members, always in this order:

``kernel.npy``
    V, (h, w, C) float32: the weights.
``bias.npy``
    u, a float64 scalar.
``waldo.json``
    What the filter means: ``{"format": "waldo-filter", "version": 1,
    "waldo": "0.1.0", "method": "learned", "scales": [1.0], "preprocessing": {"colour": "rgb",
    "features": "pixels", "scale": 1/255, "offset": -0.5}, "calibration":
    {...}, "training": {...}}``.

The archive is written with fixed timestamps, no compression and keys in a
fixed order, so that the same filter is the same bytes (``np.savez`` would
stamp the time of writing), and atomically (``io.write_atomically``).
Reading checks every part and says in one line what is wrong: not a zip
archive, an archive that is not a waldo filter, a filter of a newer format,
or a damaged one. ``waldo params --filter`` reads only ``waldo.json``
(``read_filter_info``), without NumPy.
"""

from __future__ import annotations

import io as _io
import json
import os
import zipfile
from typing import TYPE_CHECKING, Any

from waldo_cli.errors import FilterReadError

if TYPE_CHECKING:  # NumPy only where a kernel is read or written
    from waldo_cli.templates import LearnedFilter

FORMAT = "waldo-filter"
FORMAT_VERSION = 1
MEMBERS = ("kernel.npy", "bias.npy", "waldo.json")
# a zip archive's local file header; an .npz file is one
ZIP_MAGIC = b"PK\x03\x04"
# zip's earliest date: the archive carries no time of writing
_EPOCH = (1980, 1, 1, 0, 0, 0)


def is_filter_file(source: str | os.PathLike[str] | bytes) -> bool:
    r"""Whether a file (or bytes) looks like a filter, not an image: a zip archive.

    Images are never zip archives, so ``waldo find`` tells a filter from a
    template by its first bytes, whatever it is called.

    >>> is_filter_file(b"PK\x03\x04..."), is_filter_file(b"\x89PNG")
    (True, False)
    """
    if isinstance(source, (bytes, bytearray)):
        return bytes(source[:4]) == ZIP_MAGIC
    if os.fspath(source).lower().endswith(".npz"):
        return True
    try:
        with open(source, "rb") as fh:
            return fh.read(4) == ZIP_MAGIC
    except OSError:
        return False


def filter_document(learned: LearnedFilter) -> dict[str, Any]:
    """The ``waldo.json`` member of a filter file."""
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "waldo": learned.version,
        "method": "learned",
        "kernel_shape": list(learned.shape),
        "scales": list(learned.scales),
        "preprocessing": {
            "colour": learned.colour,
            "features": learned.features,
            "scale": 1 / 255,
            "offset": -0.5,
        },
        "calibration": learned.calibration,
        "training": learned.training,
    }


def filter_bytes(learned: LearnedFilter) -> bytes:
    r"""The filter as the bytes of its file: the same filter, the same bytes.

    >>> import numpy as np
    >>> from waldo_cli.templates import LearnedFilter
    >>> f = LearnedFilter(np.ones((2, 3, 1), np.float32), 0.5, colour="grey", version="0.1.0")
    >>> filter_bytes(f) == filter_bytes(f), filter_bytes(f)[:4]
    (True, b'PK\x03\x04')
    """
    import numpy as np

    def npy(array: np.ndarray) -> bytes:
        buffer = _io.BytesIO()
        np.lib.format.write_array(buffer, array, allow_pickle=False)
        return buffer.getvalue()

    meta = json.dumps(filter_document(learned), indent=1, ensure_ascii=True) + "\n"
    members = (
        npy(np.ascontiguousarray(learned.kernel, np.float32)),
        npy(np.array(learned.bias, np.float64)),
        meta.encode("ascii"),
    )
    buffer = _io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in zip(MEMBERS, members, strict=True):
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.create_system = 3  # unix, whatever system writes it
            archive.writestr(info, data)
    return buffer.getvalue()


def save_filter(
    learned: LearnedFilter,
    path: str | os.PathLike[str],
    protect: tuple[str | os.PathLike[str], ...] = (),
) -> None:
    """Write a filter file atomically (a ``.npz`` archive; see the module's docstring).

    Parameters
    ----------
    learned : LearnedFilter
        What to write.
    path : path-like
        Where; the folder must exist.
    protect : paths
        Inputs that must not be overwritten (the examples).

    Raises
    ------
    OutputError
        The folder is missing or not writable, the path is a folder or an input.

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> from waldo_cli.templates import LearnedFilter
    >>> path = os.path.join(tempfile.mkdtemp(), "f.npz")
    >>> save_filter(LearnedFilter(np.ones((2, 2, 3), np.float32), 0.0), path)
    >>> sorted(np.load(path).files)
    ['bias', 'kernel', 'waldo.json']
    """
    from waldo_cli.io import check_output_path, write_atomically

    target = check_output_path(path, protect, image=False)
    data = filter_bytes(learned)
    write_atomically(target, lambda fh: fh.write(data))


def _archive(source: str | os.PathLike[str] | bytes, name: str) -> dict[str, bytes]:
    """The members of a filter file, checked to be a waldo filter of a format we read."""
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        try:
            with open(source, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            raise FilterReadError(name, "no such file") from None
        except IsADirectoryError:
            raise FilterReadError(name, "is a directory, not a filter file") from None
        except OSError as exc:
            raise FilterReadError(name, f"cannot read ({exc.strerror or exc})") from None
    if data[:4] != ZIP_MAGIC:
        raise FilterReadError(name, "not a waldo filter (not a .npz archive)")
    try:
        with zipfile.ZipFile(_io.BytesIO(data)) as archive:
            names = set(archive.namelist())
            if "waldo.json" not in names:
                raise FilterReadError(
                    name, "not a waldo filter (a .npz archive without waldo.json)"
                )
            members = {n: archive.read(n) for n in MEMBERS if n in names}
    except FilterReadError:  # a ValueError and an OSError too: keep its message
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as exc:
        raise FilterReadError(name, f"not a waldo filter (a damaged archive: {exc})") from None
    meta = _document(members["waldo.json"], name)
    missing = [n for n in MEMBERS if n not in members]
    if missing:
        raise FilterReadError(name, f"a damaged waldo filter ({', '.join(missing)} missing)")
    members["waldo.json"] = json.dumps(meta).encode()
    return members


def _document(data: bytes, name: str) -> dict[str, Any]:
    """The parsed ``waldo.json``, checked to be of a format version this waldo reads."""
    from waldo_cli import __version__

    try:
        meta = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise FilterReadError(name, "not a waldo filter (waldo.json is not JSON)") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise FilterReadError(name, "not a waldo filter (waldo.json names another format)")
    version = meta.get("version")
    if version != FORMAT_VERSION:
        raise FilterReadError(
            name,
            f"a waldo filter of format version {version!r}, written by waldo "
            f"{meta.get('waldo', '?')}; this waldo ({__version__}) reads version "
            f"{FORMAT_VERSION}: learn it again with this waldo, or use a newer one",
        )
    return meta


def read_filter_info(source: str | os.PathLike[str] | bytes, name: str | None = None) -> dict:
    """The ``waldo.json`` of a filter file, checked, without reading its kernel (or NumPy).

    Raises
    ------
    FilterReadError
        Not a waldo filter, damaged, or of another format version.
    """
    label = name or ("<bytes>" if isinstance(source, (bytes, bytearray)) else os.fspath(source))
    members = _archive(source, str(label))
    return dict(json.loads(members["waldo.json"]))


def load_filter(source: str | os.PathLike[str] | bytes, name: str | None = None) -> LearnedFilter:
    """Read a filter written by ``waldo learn`` (or ``save_filter``), checking every part.

    Parameters
    ----------
    source : path-like or bytes
        The ``.npz`` file.
    name : str, optional
        The name reports and errors give it (default: the path).

    Returns
    -------
    LearnedFilter
        Ready for ``match_template(image, filter)`` and ``waldo find``.

    Raises
    ------
    FilterReadError
        Missing, not a waldo filter, damaged, or of a format version this
        waldo does not read; the message says which, in one line.

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> from waldo_cli.templates import LearnedFilter
    >>> path = os.path.join(tempfile.mkdtemp(), "f.npz")
    >>> save_filter(LearnedFilter(np.ones((4, 2, 3), np.float32), -0.25), path)
    >>> f = load_filter(path)
    >>> f.shape, f.bias, f.parameters
    ((4, 2, 3), -0.25, 25)
    """
    import numpy as np

    from waldo_cli.errors import ShapeError
    from waldo_cli.templates import LearnedFilter

    label = str(
        name or ("<bytes>" if isinstance(source, (bytes, bytearray)) else os.fspath(source))
    )
    members = _archive(source, label)
    meta = json.loads(members["waldo.json"])
    try:
        kernel = np.lib.format.read_array(_io.BytesIO(members["kernel.npy"]), allow_pickle=False)
        bias = np.lib.format.read_array(_io.BytesIO(members["bias.npy"]), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise FilterReadError(label, f"a damaged waldo filter ({exc})") from None
    if kernel.ndim != 3 or kernel.dtype.kind != "f" or bias.shape != () or bias.dtype.kind != "f":
        raise FilterReadError(
            label,
            f"a damaged waldo filter (kernel {kernel.shape} {kernel.dtype}, "
            f"bias {bias.shape} {bias.dtype})",
        )
    pre = meta.get("preprocessing")
    if not isinstance(pre, dict):
        raise FilterReadError(label, "a damaged waldo filter (no preprocessing in waldo.json)")
    try:
        return LearnedFilter(
            kernel=kernel,
            bias=float(bias),
            colour=str(pre.get("colour")),
            features=str(pre.get("features")),
            calibration=dict(meta.get("calibration") or {}),
            training=dict(meta.get("training") or {}),
            version=str(meta.get("waldo", "")),
            name=label,
            scales=tuple(meta.get("scales") or (1.0,)),
        )
    except (TypeError, ValueError) as exc:
        raise FilterReadError(label, f"a damaged waldo filter ({exc})") from None
    except ShapeError as exc:
        raise FilterReadError(label, f"a damaged waldo filter ({exc})") from None
