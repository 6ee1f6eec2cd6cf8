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


@pytest.fixture(scope="session")
def cold_search(tmp_path_factory) -> dict:
    """The installed ``waldo find --engine direct --json`` in an empty kernel cache, then again.

    Compiling kernels costs seconds of CPU each: the tests that need a cold
    cache share this one. tests/test_cli.py goes on in the same folder (its
    masked batch and the ``cache`` commands); tests/test_promises.py reads the
    two runs' seconds. Returns cache (the NUMBA_CACHE_DIR), env, scene,
    template, and cold and warm (``subprocess.CompletedProcess``, text).
    """
    import subprocess
    import sys
    from pathlib import Path

    from PIL import Image

    exe = Path(sys.executable).with_name("waldo")
    if not exe.exists():
        pytest.fail(f"the installed waldo executable is missing next to {sys.executable}")
    root = tmp_path_factory.mktemp("cold")
    scene, template = root / "scene.png", root / "waldo.png"
    image = _photo("astronaut")[100:228, 150:310]
    Image.fromarray(image).save(scene)
    Image.fromarray(image[30:54, 40:68]).save(template)
    env = {**os.environ, "NUMBA_CACHE_DIR": str(root / "cache")}
    args = [str(exe), "find", str(scene), str(template), "--engine", "direct", "--json"]
    runs = [
        subprocess.run(args, capture_output=True, text=True, timeout=600, env=env)
        for _ in ("cold", "warm")
    ]
    return {
        "cache": root / "cache",
        "env": env,
        "scene": scene,
        "template": template,
        "cold": runs[0],
        "warm": runs[1],
    }
