"""The files ``waldo find`` writes beside its output: heatmaps, overlays, raw scores, crops.

One image: ``--heatmap PATH``, ``--overlay PATH``, ``--scores PATH.npy``. Any
number of images: ``--heatmap-dir``, ``--overlay-dir`` (one picture per
image, named after it) and ``--crops`` (each match's window). Names are fixed
before the first search, from the image and template names: two images (or
templates) with the same stem get ``-2``, ``-3``, ... in input order, and the
command says so. With several templates, the per-template files (heatmaps,
raw scores, crops) add the template's stem to the name.

Writing happens where the search ran (``PictureSearcher``), so a batch's
workers write their own images' pictures.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def stem_of(name: str) -> str:
    """The stem a picture named after an input gets (``stdin`` for ``-``).

    >>> stem_of("scans/a.b.png"), stem_of("-")
    ('a.b', 'stdin')
    """
    return "stdin" if name == "-" else Path(name).stem or "image"


def unique_stems(names: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """A stem for every distinct name, ``-2``, ``-3``, ... added where stems collide.

    Returns the stems and one note per renamed input. The same name given
    twice is one input and keeps one stem.

    >>> stems, notes = unique_stems(["a/x.png", "b/x.jpg", "a/x.png", "x-2.png"])
    >>> stems
    {'a/x.png': 'x', 'b/x.jpg': 'x-3', 'x-2.png': 'x-2'}
    >>> notes
    ["b/x.jpg: its pictures are named x-3 (another input's stem is 'x')"]
    """
    stems: dict[str, str] = {}
    taken: set[str] = set()
    wanted = {name: stem_of(name) for name in dict.fromkeys(names)}
    # stems that are free as they are come first, so a later input named
    # "x-2" keeps its own name rather than being pushed aside by a renamed "x"
    first = {}
    for name, stem in wanted.items():
        if stem not in first:
            first[stem] = name
    taken.update(first)
    notes = []
    for name, stem in wanted.items():
        if first[stem] == name:
            stems[name] = stem
            continue
        k = 2
        while f"{stem}-{k}" in taken:
            k += 1
        stems[name] = f"{stem}-{k}"
        taken.add(stems[name])
        notes.append(
            f"{name}: its pictures are named {stems[name]} (another input's stem is {stem!r})"
        )
    return stems, notes


def with_suffix(path: str, part: str) -> str:
    """``PATH`` with ``-part`` before its extension: one file per template.

    >>> with_suffix("out/heat.png", "waldo")
    'out/heat-waldo.png'
    """
    p = Path(path)
    return str(p.with_name(f"{p.stem}-{part}{p.suffix}"))


@dataclass
class Pictures:
    """Where one run's pictures go, and how they are drawn.

    ``image_stems`` and ``template_stems`` come from ``unique_stems``; with a
    single template the template's stem is left out of every name.
    """

    templates: tuple[str, ...]
    heatmap: str | None = None
    overlay: str | None = None
    scores: str | None = None
    heatmap_dir: str | None = None
    overlay_dir: str | None = None
    crops_dir: str | None = None
    colormap: str = "viridis"
    legend: bool = True
    image_stems: dict[str, str] = field(default_factory=dict)
    template_stems: dict[str, str] = field(default_factory=dict)
    # the inputs, by name and by file identity: no picture may replace one
    _input_names: frozenset[str] = frozenset()
    _input_files: frozenset[tuple[int, int]] = frozenset()

    def guard_inputs(self, inputs: Sequence[str | None]) -> None:
        """Remember the inputs, and refuse now any picture named after an image that is one.

        Raises
        ------
        OutputError
            A heatmap or overlay in a folder would replace an input file.
        """
        names, files = set(), set()
        for name in inputs:
            if name is None or name == "-":
                continue
            names.add(os.path.abspath(name))
            try:
                stat = os.stat(name)
            except (OSError, ValueError):  # missing, or no possible name (a NUL in it)
                continue
            files.add((stat.st_dev, stat.st_ino))
        self._input_names, self._input_files = frozenset(names), frozenset(files)
        for image in self.image_stems:
            for folder, per_template in ((self.heatmap_dir, True), (self.overlay_dir, False)):
                if folder is None:
                    continue
                for template in self.templates if per_template else (None,):
                    self._guard(self._in_dir(folder, image, template, None))

    def _guard(self, path: str) -> str:
        from waldo_cli.errors import OutputError

        same = os.path.abspath(path) in self._input_names
        if not same and self._input_files:
            try:
                stat = os.stat(path)
            except (OSError, ValueError):
                pass
            else:
                same = (stat.st_dev, stat.st_ino) in self._input_files
        if same:
            raise OutputError(f"{path}: refusing to overwrite an input file")
        return path

    @property
    def any(self) -> bool:
        """Whether any file is to be written."""
        return any(
            p is not None
            for p in (
                self.heatmap,
                self.overlay,
                self.scores,
                self.heatmap_dir,
                self.overlay_dir,
                self.crops_dir,
            )
        )

    def _per_template(self, path: str, template: str) -> str:
        if len(self.templates) == 1:
            return path
        return with_suffix(path, self.template_stems[template])

    def fixed_paths(self) -> list[tuple[str, bool]]:
        """Every file of the one-image options, and whether it is a picture (else ``.npy``)."""
        paths = []
        for template in self.templates:
            if self.heatmap is not None:
                paths.append((self._per_template(self.heatmap, template), True))
            if self.scores is not None:
                paths.append((self._per_template(self.scores, template), False))
        if self.overlay is not None:
            paths.append((self.overlay, True))
        return paths

    def _in_dir(self, folder: str, image: str, template: str | None, rank: int | None) -> str:
        parts = [self.image_stems.get(image, stem_of(image))]
        if template is not None and len(self.templates) > 1:
            parts.append(self.template_stems[template])
        if rank is not None:
            parts.append(str(rank))
        return os.path.join(folder, "-".join(parts) + ".png")

    def write_template(self, loaded: Any, index: int, result: Any) -> None:
        """The files of one template's result: heatmap, raw scores, crops."""
        import numpy as np

        from waldo_cli.io import save_image, write_atomically
        from waldo_cli.render import render_heatmap, to_rgb8

        template = self.templates[index]
        shape = result.pixels.shape[:2]
        heatmaps = []
        if self.heatmap is not None:
            heatmaps.append(self._per_template(self.heatmap, template))
        if self.heatmap_dir is not None:
            heatmaps.append(self._in_dir(self.heatmap_dir, loaded.path, template, None))
        grid = result.scores.on_grid(shape) if heatmaps or self.scores is not None else None
        if heatmaps and grid is not None:
            picture = render_heatmap(
                grid,
                result.report.method,
                shape,
                (1, 1),
                colormap=self.colormap,
                legend=self.legend,
            )
            for path in heatmaps:
                save_image(picture, self._guard(path))
        if self.scores is not None and grid is not None:
            values = grid
            path = self._guard(self._per_template(self.scores, template))
            write_atomically(path, lambda fh: np.save(fh, values))
        if self.crops_dir is not None:
            rgb = to_rgb8(loaded.pixels)
            height, width = rgb.shape[:2]
            for rank, m in enumerate(result.report.matches, 1):
                x0, y0 = max(0, round(m.x)), max(0, round(m.y))
                x1 = min(width, round(m.x) + m.width)
                y1 = min(height, round(m.y) + m.height)
                if x1 <= x0 or y1 <= y0:
                    continue
                path = self._in_dir(self.crops_dir, loaded.path, template, rank)
                save_image(rgb[y0:y1, x0:x1], self._guard(path))

    def write_overlay(self, loaded: Any, pixels: Any, reports: Sequence[Any]) -> None:
        """The overlay of one image: every template's matches on one picture."""
        from waldo_cli.io import save_image
        from waldo_cli.render import match_label, render_overlay

        paths = []
        if self.overlay is not None:
            paths.append(self.overlay)
        if self.overlay_dir is not None:
            paths.append(self._in_dir(self.overlay_dir, loaded.path, None, None))
        if not paths:
            return
        matches = [m for report in reports for m in report.matches]
        labels = None
        if len(self.templates) > 1:
            labels = [
                f"{self.template_stems[report.template]} {match_label(rank, m.score)}"
                for report in reports
                for rank, m in enumerate(report.matches, 1)
            ]
        picture = render_overlay(pixels, matches, labels=labels)
        for path in paths:
            save_image(picture, self._guard(path))


@dataclass
class PictureSearcher:
    """A searcher that writes each image's pictures as soon as the image is searched.

    It runs wherever ``run_batch`` runs the searches (its workers), and
    passes everything else through to the searcher it wraps.
    """

    searcher: Any
    pictures: Pictures

    @property
    def options(self) -> Any:
        """The wrapped searcher's options."""
        return self.searcher.options

    def plans_for(self, image_shape: tuple[int, ...]) -> Any:
        """The wrapped searcher's plans."""
        return self.searcher.plans_for(image_shape)

    def kernels_for(self, image_shape: tuple[int, ...]) -> set[str]:
        """The wrapped searcher's kernels."""
        return set(self.searcher.kernels_for(image_shape))

    def check_fits(self, width: int, height: int) -> None:
        """The wrapped searcher's check of an image's size, from its header."""
        self.searcher.check_fits(width, height)

    def search_iter(self, loaded: Any) -> Iterator[Any]:
        """Search one image and write its pictures; the results, as the searcher gives them."""
        reports = []
        pixels = None
        for index, result in enumerate(self.searcher.search_iter(loaded)):
            self.pictures.write_template(loaded, index, result)
            reports.append(result.report)
            pixels = result.pixels
            yield result
        if pixels is not None:
            self.pictures.write_overlay(loaded, pixels, reports)

    def search(self, loaded: Any) -> Any:
        """All the results of ``search_iter``: one, or a list for several templates."""
        results = list(self.search_iter(loaded))
        return results[0] if len(self.pictures.templates) == 1 else results
