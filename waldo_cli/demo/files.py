"""From the command line to disk: `parse_size`, `check_outdir` and `write_puzzle`.

`write_puzzle` saves ``scene.png``, ``waldo.png`` and ``answer.json``, each
written to a temporary name and renamed into place; the PNGs are saved with
fixed options and no metadata, so a seed always gives the same bytes on disk.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from PIL import Image

from waldo_cli.demo.scene import Puzzle, _check_size
from waldo_cli.errors import OutputError, WaldoError
from waldo_cli.io import check_output_path, write_atomically

FILES = {"scene": "scene.png", "template": "waldo.png", "answer": "answer.json"}


def parse_size(text: str) -> tuple[int, int]:
    """Read a size written ``WxH`` (``960x640``) and check it can hold a crowd.

    Parameters
    ----------
    text : str
        Width and height in pixels, separated by ``x`` (or ``×``).

    Returns
    -------
    (width, height)

    Raises
    ------
    WaldoError
        Malformed text, or a size below `MIN_SIZE`.

    Examples
    --------
    >>> parse_size("960x640")
    (960, 640)
    """
    match = re.fullmatch(r"\s*(\d{1,6})\s*[xX×]\s*(\d{1,6})\s*", text)
    if not match:
        raise WaldoError(f"size {text!r}: expected WIDTHxHEIGHT in pixels, such as 960x640")
    size = (int(match.group(1)), int(match.group(2)))
    _check_size(size)
    return size


def check_outdir(outdir: str | os.PathLike[str]) -> Path:
    """Refuse an output folder before any work is done.

    Parameters
    ----------
    outdir : path-like
        Where the puzzle goes. It may exist (its puzzle files are then
        overwritten); if it does not, its parent folder must.

    Returns
    -------
    Path
        The folder.

    Raises
    ------
    OutputError
        The parent folder does not exist, ``outdir`` is a file, or one of the
        puzzle's file names is taken by a folder.

    Examples
    --------
    >>> import tempfile
    >>> check_outdir(os.path.join(tempfile.mkdtemp(), "puzzle")).name
    'puzzle'
    """
    folder = Path(outdir)
    if folder.exists():
        if not folder.is_dir():
            raise OutputError(f"{folder}: is a file, not a folder")
        for name in FILES.values():
            check_output_path(folder / name, image=name.endswith(".png"))
        return folder
    parent = folder.parent if str(folder.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"{folder}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"{folder}: the folder {parent} is not writable")
    return folder


def write_puzzle(outdir: str | os.PathLike[str], puzzle: Puzzle) -> dict[str, Path]:
    """Write ``scene.png``, ``waldo.png`` and ``answer.json`` into a folder.

    The folder is created if it does not exist (its parent must). Every file
    is written to a temporary name and renamed into place, so an interrupted
    run leaves whole files; existing puzzle files are overwritten. PNGs are
    saved with fixed options and no metadata, so a seed always gives the
    same bytes.

    Parameters
    ----------
    outdir : path-like
        The folder.
    puzzle : Puzzle
        What to write.

    Returns
    -------
    dict of str to Path
        ``{"scene": ..., "template": ..., "answer": ...}``.

    Raises
    ------
    OutputError
        The folder cannot be made or written (see `check_outdir`).

    Examples
    --------
    >>> import tempfile
    >>> from waldo_cli.demo import render_puzzle
    >>> paths = write_puzzle(os.path.join(tempfile.mkdtemp(), "p"),
    ...                      render_puzzle(2, size=(160, 120), crowd=3))
    >>> sorted(p.name for p in paths.values())
    ['answer.json', 'scene.png', 'waldo.png']
    """
    folder = check_outdir(outdir)
    try:
        folder.mkdir(exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{folder}: cannot create the folder ({exc.strerror or exc})") from None
    paths = {key: folder / name for key, name in FILES.items()}
    answer = (json.dumps(puzzle.answer(), separators=(",", ":")) + "\n").encode("ascii")
    write_atomically(paths["scene"], lambda fh: _save_png(puzzle.scene, fh))
    write_atomically(paths["template"], lambda fh: _save_png(puzzle.template, fh))
    write_atomically(paths["answer"], lambda fh: fh.write(answer))
    return paths


def _save_png(picture: Image.Image, fh: Any) -> None:
    # Fixed options, a fresh image with no info: no timestamps, no text chunks.
    clean = Image.frombytes(picture.mode, picture.size, picture.tobytes())
    clean.save(fh, format="PNG", compress_level=9, optimize=False)
