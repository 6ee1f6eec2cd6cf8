"""Shared fixtures: a seeded generator, real photographs, a warm engine."""

from __future__ import annotations

import functools
import os

import numpy as np
import pytest

# A waldo server the developer has running would serve the suite's `waldo`
# subprocesses; they run in-process instead (test_server.py starts its own).
os.environ["WALDO_SERVER"] = "off"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261125)


@functools.cache
def _photo(name: str) -> np.ndarray:
    import skimage.data

    image = getattr(skimage.data, name)()
    image.setflags(write=False)
    return image


@pytest.fixture(scope="session")
def photo():
    """photo(name) -> a fresh copy of a skimage.data photograph (uint8)."""

    def get(name: str) -> np.ndarray:
        return _photo(name).copy()

    return get


@pytest.fixture(scope="session", autouse=True)
def warm_kernels():
    """Compile (or load from cache) the kernels once, before any test times out on it."""
    from waldo_cli import match_template

    match_template(np.zeros((4, 4, 3), np.float32), np.ones((2, 2, 3), np.float32), "sqdiff")
