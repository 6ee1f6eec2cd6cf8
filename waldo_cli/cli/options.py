"""Options that several commands share: one spelling and one parameter name for each.

Each command says in its own words what the option does there, so the help
text is an argument.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def json_option(help_text: str) -> Decorator:
    """``--json``, passed as ``as_json``: one JSON document on stdout (find, conv, params)."""
    return click.option("--json", "as_json", is_flag=True, help=help_text)


def convolve_option(help_text: str) -> Decorator:
    """``--convolve``: flip the template or kernel first, true convolution (find, conv)."""
    return click.option("--convolve", is_flag=True, help=help_text)
