"""The installed ``waldo`` command, as a shell finds it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest


def waldo_executable() -> str:
    """The console script pip installed next to this Python."""
    exe = Path(sys.executable).with_name("waldo")
    if not exe.exists():
        pytest.fail(f"the installed waldo executable is missing next to {sys.executable}")
    return str(exe)


def shell_env(**extra: str) -> dict[str, str]:
    """An environment in which ``waldo`` is the installed one, with no size or colour overrides."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    env["PATH"] = os.pathsep.join([str(Path(waldo_executable()).parent), env.get("PATH", "")])
    env.update(extra)
    return env
