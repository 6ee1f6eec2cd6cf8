"""Make a "Where's Waldo" puzzle: a busy crowd scene with exactly one Waldo in it.

``render_puzzle`` draws a seaside scene (sea, beach, promenade, park) full of small
people and things with Pillow's ``ImageDraw``, hides one Waldo (red-and-white
striped shirt, red-and-white bobble hat, round glasses) among decoys that share
some of his traits, and cuts the template out of the finished scene at his box.
``write_puzzle`` saves ``scene.png``, ``waldo.png`` and ``answer.json``.

This package is a renderer, like ``render.py``, so it imports Pillow. It uses no
text, no clock and no hash order: one seed, size and crowd always give the same
pixels, and the same bytes on disk.

One room per stage, each importing only the rooms after it:

- ``files``: `parse_size`, `check_outdir`, `write_puzzle` (command line to disk);
- ``scene``: `render_puzzle` and `Puzzle`, the ground, and placing everybody;
- ``people``: `Person`, a random look, drawing a person with hats and glasses;
- ``things``: `Thing`, and drawing umbrellas, towels, stalls, dogs, ...;
- ``draw``: `PALETTE`, the 3× drawing scale, striped fills and ink outlines.
"""

from waldo_cli.demo.draw import PALETTE, RGB
from waldo_cli.demo.files import FILES, check_outdir, parse_size, write_puzzle
from waldo_cli.demo.people import Person
from waldo_cli.demo.scene import (
    DEFAULT_CROWD,
    DEFAULT_SIZE,
    MAX_CROWD,
    MIN_SIZE,
    Puzzle,
    max_crowd,
    render_puzzle,
)
from waldo_cli.demo.things import Thing

__all__ = [
    "DEFAULT_CROWD",
    "DEFAULT_SIZE",
    "FILES",
    "MAX_CROWD",
    "MIN_SIZE",
    "PALETTE",
    "RGB",
    "Person",
    "Puzzle",
    "Thing",
    "check_outdir",
    "max_crowd",
    "parse_size",
    "render_puzzle",
    "write_puzzle",
]
