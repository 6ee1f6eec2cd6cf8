"""Assertions shared by the command-line tests."""

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
