"""Assertions and probes shared by the tests."""

from __future__ import annotations


def assert_one_line_error(result, *needles):
    """Exit status 2, nothing on stdout, one line on stderr containing every needle."""
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def record_resampled_scales(monkeypatch) -> list[float]:
    """The scale of every template copy waldo resamples from now on, in order (a spy)."""
    from waldo_cli import variants

    made: list[float] = []
    real = variants._transform

    def spy(pixels, mask, scale, angle, flip):
        made.append(scale)
        return real(pixels, mask, scale, angle, flip)

    monkeypatch.setattr(variants, "_transform", spy)
    return made
