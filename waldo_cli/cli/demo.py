"""``waldo demo``: a Where's Waldo puzzle, and the command that solves it."""

from __future__ import annotations

import click

from waldo_cli.cli import WaldoUsageError
from waldo_cli.cli.find import find_command
from waldo_cli.cli.options import DIRECTORY


@click.command("demo")
@click.argument("outdir", type=DIRECTORY, metavar="OUTDIR")
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=None,
    help="Which puzzle: the same seed, size and crowd give the same files, byte for "
    "byte. Default: a random seed, printed.",
)
@click.option(
    "--size",
    "size_text",
    default="960x640",
    show_default=True,
    metavar="WxH",
    help="Width and height of the scene in pixels, at least 160x120.",
)
@click.option(
    "--crowd",
    type=click.IntRange(min=0),
    default=200,
    show_default=True,
    help="How many people besides Waldo: at most one per 100 pixels of scene (200 is "
    "always allowed, 5000 at most).",
)
@click.option(
    "--difficulty",
    type=click.Choice(["easy", "normal", "hard"]),
    default="normal",
    show_default=True,
    help="normal: the puzzles waldo always made (the same bytes for a seed); easy: no "
    "decoys with two of Waldo's traits; hard: people 0.7-1.3 times their size with depth, "
    "Waldo sometimes partly hidden (up to a third), more decoys with two of his traits, "
    "a slightly blurred or JPEG-compressed picture.",
)
def demo_command(
    outdir: str, seed: int | None, size_text: str, crowd: int, difficulty: str
) -> None:
    """Make a Where's Waldo puzzle in OUTDIR, and the command that solves it.

    Draws a busy seaside crowd with exactly one Waldo (red-and-white striped
    shirt, bobble hat, round glasses) among decoys that share some of his
    traits, and writes scene.png, waldo.png (Waldo cut out of the scene, the
    template) and answer.json (his box as drawn: x, y, width, height, and the
    seed, size and crowd; other difficulties than normal add difficulty,
    scale, hidden and degraded). OUTDIR is created if needed; its parent must
    exist. Existing puzzle files in it are overwritten.
    """
    import secrets
    import shlex
    from pathlib import Path

    from waldo_cli.demo import check_outdir, parse_size, render_puzzle, write_puzzle
    from waldo_cli.errors import WaldoError

    if seed is None:
        seed = secrets.randbelow(1_000_000)
    try:
        size = parse_size(size_text)
        check_outdir(outdir)
        puzzle = render_puzzle(seed, size=size, crowd=crowd, difficulty=difficulty)
        paths = write_puzzle(outdir, puzzle)
    except WaldoError as exc:
        raise WaldoUsageError(str(exc)) from None

    def shown(path: Path | str) -> str:
        return shlex.quote(str(path))

    width, height = size
    folder = Path(outdir)
    level = "" if difficulty == "normal" else f", {difficulty}"
    click.echo(
        f"waldo demo: a {width}x{height} scene, a crowd of {crowd} and one Waldo, "
        f"seed {seed}{level}"
    )
    for label, key in (("scene", "scene"), ("template", "template"), ("answer", "answer")):
        click.echo(f"  {label:<9} {paths[key]}")
    again = "" if difficulty == "normal" else f" --difficulty {difficulty}"
    click.echo(
        f"same puzzle again: waldo demo {shown(outdir)} --seed {seed} "
        f"--size {width}x{height} --crowd {crowd}{again}"
    )
    find = f"waldo find {shown(paths['scene'])} {shown(paths['template'])}"
    if any("--overlay" in param.opts for param in find_command.params):
        find += f" --overlay {shown(folder / 'found.png')}"
    click.echo(f"find him: {find}")
