"""A program on a pseudo-terminal, as a user at a real terminal meets it."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time

# Started through this, the program gets the terminal as its controlling one,
# as a login shell has it (job control, Ctrl-C); preexec_fn is unsafe with threads.
_TAKE_TERMINAL = (
    "import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
    "os.execvp(sys.argv[1], sys.argv[1:])"
)


class Terminal:
    """A program on a pseudo-terminal of rows × cols: type into it, wait for what it shows."""

    def __init__(self, argv, *, cwd=None, env=None, rows=24, cols=80):
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.process = subprocess.Popen(
            [sys.executable, "-c", _TAKE_TERMINAL, *argv],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
        os.close(slave)
        self._master = master
        self._shown = b""
        self._read_up_to = 0

    @property
    def shown(self) -> str:
        """Everything the program wrote to the terminal so far."""
        return self._shown.decode(errors="replace")

    def send(self, keys: str) -> None:
        """Type keys, as they are: "\\t" is Tab, "\\r" is Enter, "\\x03" is Ctrl-C."""
        os.write(self._master, keys.encode())

    def _read(self, timeout: float) -> bool:
        """Read what is there within timeout seconds; False once the program closed it."""
        ready, _, _ = select.select([self._master], [], [], timeout)
        if not ready:
            return True
        try:
            chunk = os.read(self._master, 65536)
        except OSError:  # EIO: every process closed the terminal
            return False
        self._shown += chunk
        return bool(chunk)

    def expect(self, pattern: str, timeout: float = 60) -> str:
        """Wait until the output since the last expect matches pattern (a regex); that output."""
        deadline = time.monotonic() + timeout
        while True:
            new = self._shown[self._read_up_to :].decode(errors="replace")
            found = re.search(pattern, new)
            if found:
                self._read_up_to += len(new[: found.end()].encode())
                return new[: found.end()]
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(min(left, 0.5)):
                if re.search(pattern, self._shown[self._read_up_to :].decode(errors="replace")):
                    continue
                raise AssertionError(f"{pattern!r} never appeared; the terminal showed:\n{new}")

    def wait(self, timeout: float = 120) -> int:
        """Read to the end and return the exit status."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._read(0.5):
            pass
        return self.process.wait(timeout=max(deadline - time.monotonic(), 1))

    def close(self) -> None:
        """Stop the program if it still runs, and free the terminal."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        os.close(self._master)

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
