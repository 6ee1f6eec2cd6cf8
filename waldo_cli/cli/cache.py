"""``waldo cache``: Numba's on-disk cache of the compiled search kernels."""

from __future__ import annotations

import click


@click.group("cache")
def cache_group() -> None:
    """Manage the compiled search kernels (Numba's on-disk cache).

    The first search compiles the kernels it needs (a few seconds) and keeps
    them in the user's cache folder (~/.cache/waldo/kernels on Linux, a
    private temporary folder where that cannot be written), one folder per
    waldo version, Python and CPU; NUMBA_CACHE_DIR overrides it. Later runs
    load them.
    """


@cache_group.command("info")
def cache_info() -> None:
    """Show where the kernels are cached and which are compiled."""
    from waldo_cli import jit

    for folder in jit.cache_folders():
        click.echo(f"cache folder: {folder}")
    for name in sorted(jit.kernel_names()):
        click.echo(f"{name}: {'compiled' if jit.is_cached(name) else 'not compiled yet'}")


@cache_group.command("warm")
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Processes compiling at once. Default: the usable cores.",
)
def cache_warm(jobs: int | None) -> None:
    """Compile every kernel now, so no later search waits for the compiler.

    Prints how long each kernel took to compile (Numba's event API); a
    kernel already in the cache is only loaded.
    """
    import time

    from waldo_cli import jit
    from waldo_cli.pool import usable_cores

    jobs = min(jobs or usable_cores(), len(jit.kernel_names()))
    started = time.perf_counter()
    seconds = jit.warm_all(jobs)
    for name in sorted(jit.kernel_names()):
        took = seconds.get(name)
        click.echo(f"{name}: " + ("loaded from the cache" if took is None else f"{took:.1f} s"))
    click.echo(
        f"direct and fft kernels ready in {time.perf_counter() - started:.1f} s "
        f"({jobs} process{'es' if jobs > 1 else ''})"
    )


@cache_group.command("clear")
def cache_clear() -> None:
    """Delete the compiled kernels (the next search compiles them again), old names too."""
    from waldo_cli import jit

    removed = jit.clear_cache()
    click.echo(f"removed {len(removed)} cached file{'s' if len(removed) != 1 else ''}")
