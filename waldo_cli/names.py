r"""File names as text that every output can hold.

A POSIX file name is bytes. Python hands waldo the bytes that are not UTF-8
as lone surrogates (``surrogateescape``: byte 0xE9 becomes U+DCE9), which no
UTF-8 stream, and so no JSON, JSONL or CSV file, can hold. And a name may hold
a tab or a newline, which would break a TSV row in two.

``display_name`` is for JSON, JSONL, CSV and messages: a valid name is kept as
it is; each byte that is not UTF-8 is written ``\xNN`` (two lower-case hex
digits, Python's ``backslashreplace`` convention), and any other lone
surrogate ``\uDXXX``. The result is valid UTF-8 text. It is lossy in one
corner only: a name that really holds the four characters ``\xe9`` reads the
same as the byte 0xE9.

``tsv_field`` is for TSV, where it is lossless: a backslash becomes ``\\``,
a tab ``\t``, a newline ``\n``, a carriage return ``\r``, and then bytes that
are not UTF-8 ``\xNN`` as above; every other character is kept. This module
imports nothing heavy, so the report writers can use it.

>>> display_name("caf\udce9.png"), tsv_field("a\tb\\c.png")
('caf\\xe9.png', 'a\\tb\\\\c.png')
"""

from __future__ import annotations

__all__ = ["display_name", "tsv_field"]

_TSV = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def display_name(name: str) -> str:
    r"""A name as text any UTF-8 output can hold: bytes that are not UTF-8 as ``\xNN``.

    Parameters
    ----------
    name : str
        A file name as Python has it (``os.fsdecode``, ``surrogateescape``).

    Returns
    -------
    str
        ``name`` itself when it is valid Unicode; otherwise each
        surrogate-escaped byte as ``\xNN`` and any other lone surrogate as
        ``\uDXXX`` (backslash, letter, hex digits: plain text).

    Examples
    --------
    >>> import os
    >>> display_name(os.fsdecode(b"caf\xc3\xa9.png")), display_name(os.fsdecode(b"caf\xe9.png"))
    ('café.png', 'caf\\xe9.png')
    >>> import json; json.dumps(display_name("\udce9"), ensure_ascii=False)
    '"\\\\xe9"'
    """
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        pass
    return "".join(_escape(ch) for ch in name)


def _escape(ch: str) -> str:
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # a byte surrogateescape could not decode
        return f"\\x{code - 0xDC00:02x}"
    if 0xD800 <= code <= 0xDFFF:
        return f"\\u{code:04x}"
    return ch


def tsv_field(name: str) -> str:
    r"""A name as one TSV field: ``\\``, ``\t``, ``\n``, ``\r`` escaped C-style, then ``\xNN``.

    Parameters
    ----------
    name : str
        Any text, a file name most often.

    Returns
    -------
    str
        The text with no tab, newline or carriage return in it; reversible
        (read ``\\`` as a backslash, ``\t``, ``\n``, ``\r`` and ``\xNN`` as
        what they name).

    Examples
    --------
    >>> tsv_field("two\nlines.png"), tsv_field("plain.png")
    ('two\\nlines.png', 'plain.png')
    >>> tsv_field("C:\\x\udce9")
    'C:\\\\x\\xe9'
    """
    return display_name(name.translate(_TSV))
