"""Issue #16: regions, many templates, every match, grey, a word when nothing matches, and the
rest of what people who match templates ask for."""

from __future__ import annotations

import numpy as np
import pytest

from waldo_cli.errors import ImageReadError, OutputError, ShapeError, WaldoError

# ---------------------------------------------------------------------------
# errors: ValueError and OSError, as scientific Python expects


def test_every_waldo_error_is_a_value_error():
    for error in (WaldoError("x"), ShapeError("x"), ImageReadError("a.png", "gone")):
        assert isinstance(error, ValueError)


def test_file_errors_are_os_errors():
    assert isinstance(ImageReadError("a.png", "no such file"), OSError)
    assert isinstance(OutputError("out.png: the folder x does not exist"), OSError)
    assert not isinstance(ShapeError("x"), OSError)


def test_api_raises_value_error_for_a_bad_argument():
    from waldo_cli import find_peaks, match_template

    with pytest.raises(ValueError, match="unknown method"):
        match_template(np.zeros((5, 5)), np.ones((2, 2)), "nope")
    with pytest.raises(ValueError, match="larger than image"):
        match_template(np.zeros((5, 5)), np.ones((6, 2)))
    with pytest.raises(ValueError, match="top_k"):
        find_peaks(np.zeros((3, 3)), "ccorr", (1, 1), top_k=0)


def test_api_raises_os_error_for_a_file_it_cannot_read(tmp_path):
    from waldo_cli import load_image

    with pytest.raises(OSError, match="no such file"):
        load_image(tmp_path / "gone.png")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(OSError, match="not an image"):
        load_image(tmp_path / "text.png")


@pytest.mark.parametrize(
    ("text", "needle"),
    [("1:2:0", "the step must be positive"), ("2:1:1", "the range is empty")],
)
def test_range_rules_keep_their_messages(text, needle):
    """parse_range's own WaldoErrors are ValueErrors now: its except must not rewrite them."""
    from waldo_cli.variants import parse_range

    with pytest.raises(WaldoError, match=needle):
        parse_range(text, "--scales")


@pytest.mark.parametrize(
    ("head", "needle"), [(b"PK\x03\x04", "an .npz archive"), (b"hello!", "no .npy header")]
)
def test_kernel_file_rules_keep_their_messages(tmp_path, head, needle):
    from waldo_cli.conv import _load_npy

    (tmp_path / "k.npy").write_bytes(head + b"rest of the file")
    with pytest.raises(WaldoError) as caught:
        _load_npy(str(tmp_path / "k.npy"), 1)
    assert needle in str(caught.value) and "damaged" not in str(caught.value)


def test_an_output_error_from_the_writer_keeps_its_message(tmp_path):
    from waldo_cli.io import write_atomically

    def fail(fh):
        raise OutputError("special: already explained")

    with pytest.raises(OutputError) as caught:
        write_atomically(tmp_path / "x.bin", fail)
    assert str(caught.value) == "special: already explained"
    assert list(tmp_path.iterdir()) == []
