"""The errors waldo raises: one base class, a few precise subclasses.

Every message names the object and the rule it broke, so the command line can
print it as a single line. As scientific Python expects, every one of them is a
``ValueError`` (an argument value waldo cannot use), and the three about files,
``ImageReadError``, ``FilterReadError`` and ``OutputError``, are also an ``OSError``: ``except
ValueError`` and ``except OSError`` catch what they would catch from NumPy or
Pillow, and ``except WaldoError`` everything waldo raises.

>>> str(TemplateTooLargeError((41, 45), (30, 30)))
'template 45×41 is larger than image 30×30'
>>> isinstance(ImageReadError("a.png", "no such file"), (ValueError, OSError))
True
"""

from __future__ import annotations


class WaldoError(ValueError):
    """Base class of every error waldo raises on bad input: a ``ValueError``.

    >>> from waldo_cli import match_template
    >>> try:
    ...     match_template([[1.0]], [[1.0]], "tm_nothing")
    ... except ValueError as exc:
    ...     print(type(exc).__name__, isinstance(exc, WaldoError))
    WaldoError True
    """


class ImageReadError(WaldoError, OSError):
    """A file could not be read as an image: an ``OSError`` as well as a ``WaldoError``.

    Parameters
    ----------
    path : str
        The file, as the user named it.
    reason : str
        What went wrong, in a few words.
    """

    def __init__(self, path: str, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class TemplateTooLargeError(WaldoError):
    """The template does not fit inside the image.

    Parameters
    ----------
    template_shape, image_shape : (rows, columns)
        The two shapes; the message prints them as width×height.
    name : str, optional
        The template's name, for a search of several (then in the message).
    note : str
        Appended to the message (which template variant, say).

    Examples
    --------
    >>> str(TemplateTooLargeError((41, 45), (30, 30), name="b.png"))
    'template b.png 45×41 is larger than image 30×30'
    """

    def __init__(
        self,
        template_shape: tuple[int, int],
        image_shape: tuple[int, int],
        name: str | None = None,
        note: str = "",
    ):
        self.template_shape = tuple(template_shape)
        self.image_shape = tuple(image_shape)
        (th, tw), (ih, iw) = self.template_shape, self.image_shape
        named = "" if name is None else f"{name} "
        super().__init__(f"template {named}{tw}×{th} is larger than image {iw}×{ih}{note}")


class ShapeError(WaldoError):
    """An array has a shape, dtype or content the engine cannot use."""


class OutputError(WaldoError, OSError):
    """An output file cannot be written where the user asked (an ``OSError`` too)."""


class FilterReadError(WaldoError, OSError):
    """A file could not be read as a learned filter (not one, damaged, or too new).

    An ``OSError`` as well as a ``WaldoError``, as ``ImageReadError`` is.

    Parameters
    ----------
    path : str
        The file, as the user named it.
    reason : str
        What went wrong, in a few words.

    Examples
    --------
    >>> str(FilterReadError("logo.npz", "not a waldo filter"))
    'logo.npz: not a waldo filter'
    """

    def __init__(self, path: str, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")
