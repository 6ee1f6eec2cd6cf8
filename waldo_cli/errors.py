"""The errors waldo raises: one base class, a few precise subclasses.

Every message names the object and the rule it broke, so the command line can
print it as a single line.

>>> str(TemplateTooLargeError((41, 45), (30, 30)))
'template 45×41 is larger than image 30×30'
"""

from __future__ import annotations


class WaldoError(Exception):
    """Base class of every error waldo raises on bad input."""


class ImageReadError(WaldoError):
    """A file could not be read as an image.

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
    note : str
        Appended to the message (which template variant, say).
    """

    def __init__(
        self, template_shape: tuple[int, int], image_shape: tuple[int, int], note: str = ""
    ):
        self.template_shape = tuple(template_shape)
        self.image_shape = tuple(image_shape)
        (th, tw), (ih, iw) = self.template_shape, self.image_shape
        super().__init__(f"template {tw}×{th} is larger than image {iw}×{ih}{note}")


class ShapeError(WaldoError):
    """An array has a shape, dtype or content the engine cannot use."""


class OutputError(WaldoError):
    """An output file cannot be written where the user asked."""


class FilterReadError(WaldoError):
    """A file could not be read as a learned filter (not one, damaged, or too new).

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
