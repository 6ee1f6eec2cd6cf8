"""``--help`` without Click: the text Click printed, kept per installation, the same bytes.

Every check runs the installed ``waldo`` script twice in one cache folder:
the first run has nothing kept, so Click prints the help (and keeps it); the
second prints what was kept, without importing Click. Both must match.
"""

from __future__ import annotations

import marshal
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.terminal_session import Terminal
from waldo_cli import client

WALDO = str(Path(sys.executable).with_name("waldo"))


def _env(cache: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "WALDO_SERVER")}
    env.update(XDG_CACHE_HOME=str(cache), WALDO_SERVER="off", **extra)
    return env


def _waldo(args, env, *, importtime=False, stdout=subprocess.PIPE):
    """The installed script; with importtime, stderr lists every module it imported."""
    prefix = [sys.executable, "-X", "importtime", WALDO] if importtime else [WALDO]
    return subprocess.run(
        [*prefix, *args], stdout=stdout, stderr=subprocess.PIPE, env=env, timeout=120
    )


def _imported(result) -> set[str]:
    """The modules a ``-X importtime`` run imported."""
    return {
        line.rsplit("|", 1)[1].strip()
        for line in result.stderr.decode().splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    }


@pytest.mark.parametrize(
    ("args", "encoding"),
    [
        ([], None),
        (["--help"], None),
        (["-h"], None),
        (["find", "--help"], None),
        (["cache", "warm", "-h"], None),
        (["server", "-h"], None),
        # Click writes UTF-8 to a stream it finds ASCII; find's help has × and °
        (["find", "--help"], "ascii"),
        (["conv", "-h"], "latin-1"),
    ],
)
def test_help_is_printed_again_without_click_byte_for_byte(args, encoding, tmp_path):
    env = _env(tmp_path, COLUMNS="100")
    if encoding:
        env["PYTHONIOENCODING"] = encoding
    first = _waldo(args, env, importtime=True)
    again = _waldo(args, env, importtime=True)
    assert first.returncode == again.returncode == 0
    assert first.stdout == again.stdout and first.stdout.startswith(b"Usage: waldo")
    assert "click" in _imported(first)  # the first run: Click printed it
    assert not {"click", "waldo_cli.cli"} & _imported(again)
    help_dir = tmp_path / "waldo" / "help"
    assert help_dir.stat().st_mode & 0o777 == 0o700


def test_each_width_keeps_its_own_text(tmp_path):
    """COLUMNS, then the terminal's size, set Click's width: each has its own entry."""
    shown = {}
    for columns in ("60", "120", "60"):
        env = _env(tmp_path, COLUMNS=columns)
        fresh = _waldo(["find", "-h"], _env(tmp_path / f"fresh{columns}", COLUMNS=columns))
        kept = _waldo(["find", "-h"], env)
        assert kept.returncode == fresh.returncode == 0
        assert kept.stdout == fresh.stdout
        shown[columns] = kept.stdout
    assert shown["60"] != shown["120"]
    # not a terminal, no COLUMNS: 80, kept by the first run and printed by the second
    piped = [_waldo(["find", "-h"], _env(tmp_path)).stdout for _ in range(2)]
    assert piped[0] == piped[1] == _waldo(["find", "-h"], _env(tmp_path / "fresh80")).stdout


@pytest.mark.parametrize("cols", [72, 132])
def test_help_at_a_terminal_is_the_same_when_kept(cols, tmp_path):
    """No COLUMNS: the width comes from the terminal on stdout, for Click and for the client."""
    env = _env(tmp_path)
    shown = []
    for _ in range(2):
        term = Terminal([WALDO, "find", "--help"], env=env, rows=24, cols=cols)
        assert term.wait() == 0
        shown.append(term.shown)
    assert shown[0] == shown[1] and "Usage: waldo find" in shown[0]
    # the terminal's width, as COLUMNS would give it to Click in a fresh cache
    piped = _waldo(["find", "--help"], _env(tmp_path / "fresh", COLUMNS=str(cols)))
    assert shown[0].replace("\r\n", "\n") == piped.stdout.decode()


def _plant(tmp_path, monkeypatch, text, stamp=None):
    """Write a kept help text for ``waldo --help`` at width 100 into tmp_path's cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "100")
    path = Path(client._help_path())
    client.make_private_dir(str(path.parent))
    key = client._help_key(["--help"])
    with open(path, "wb") as fh:
        marshal.dump({"stamp": stamp or client._help_stamp(), "texts": {key: text}}, fh)
    return path


def test_what_is_kept_is_what_is_printed(tmp_path, monkeypatch):
    """The check on the next test: a planted text with the right stamp is printed as it is."""
    _plant(tmp_path, monkeypatch, "planted")
    shown = _waldo(["--help"], _env(tmp_path, COLUMNS="100"))
    assert shown.returncode == 0 and shown.stdout == b"planted\n"


def test_a_text_kept_by_other_files_or_in_an_open_folder_is_not_used(tmp_path, monkeypatch):
    """Other files of waldo (or Click, or Python) void it; so does a folder others may write."""
    stamp = list(client._help_stamp())
    stamp[1] = "0" * 32  # other package files
    path = _plant(tmp_path, monkeypatch, "stale", tuple(stamp))
    env = _env(tmp_path, COLUMNS="100")
    shown = _waldo(["--help"], env)
    assert shown.returncode == 0 and shown.stdout.startswith(b"Usage: waldo")
    _plant(tmp_path, monkeypatch, "planted")
    path.parent.chmod(0o777)
    try:
        shown = _waldo(["--help"], env)
    finally:
        path.parent.chmod(0o700)
    assert shown.stdout.startswith(b"Usage: waldo")


def test_help_that_cannot_be_written_is_one_line_as_in_process(tmp_path):
    """stdout on a full disk: the same line and status whether the help was kept or not."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    env = _env(tmp_path, COLUMNS="100")
    results = []
    for _ in range(2):
        with open("/dev/full", "wb") as full:
            results.append(_waldo(["find", "--help"], env, stdout=full))
    assert results[0].returncode == results[1].returncode == 2
    assert results[0].stderr == results[1].stderr
    assert results[0].stderr.count(b"\n") == 1 and b"No space left" in results[0].stderr


class _Stdout:
    """A text stream whose descriptor is fake: what ``_print_help`` writes goes to ``os.write``."""

    encoding = "utf-8"

    def fileno(self) -> int:
        return 1


def test_help_cut_short_by_a_closed_pipe_ends_by_sigpipe(monkeypatch):
    """Part written, then EPIPE (`| head -c 100` on a pipe smaller than the help): SIGPIPE."""
    import errno
    import signal

    writes = iter([100, OSError(errno.EPIPE, "Broken pipe")])

    def write(fd, data):
        step = next(writes)
        if isinstance(step, OSError):
            raise step
        return step

    died = []

    def die_of(signum):
        died.append(signum)
        raise SystemExit(128 + signum)

    monkeypatch.setattr(sys, "stdout", _Stdout())
    monkeypatch.setattr(client.os, "write", write)
    monkeypatch.setattr(client, "_die_of", die_of)
    with pytest.raises(SystemExit):
        client._print_help("x" * 1000)
    assert died == [signal.SIGPIPE]


def test_help_that_cannot_be_written_at_all_is_left_to_click(monkeypatch):
    """Nothing written (a full disk, a closed stdout): Click runs, and reports it as it does."""
    import errno

    def write(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sys, "stdout", _Stdout())
    monkeypatch.setattr(client.os, "write", write)
    assert client._print_help("help") is None
