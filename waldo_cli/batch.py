"""Search many images for one template: one result or one error per image, in input order.

Nothing here prints; ``cli.py`` turns the results into output and exit codes.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from waldo_cli.errors import WaldoError
from waldo_cli.io import LoadedImage, read_image, reconcile_channels
from waldo_cli.peaks import Match

# Score maps of template variants searched together, at most: on a huge image
# the variants are searched in groups, each merged before the next is made.
_VARIANT_BYTES = 256 << 20


@dataclass(frozen=True)
class FindReport:
    """Everything ``waldo find`` reports about one search."""

    image: str
    template: str
    method: str
    image_size: tuple[int, int]  # (W, H)
    template_size: tuple[int, int]  # (w, h)
    matches: list[Match]
    seconds: float
    threshold: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``waldo find --json``.

        >>> r = FindReport("a.png", "b.png", "ccorr", (8, 6), (2, 2), [Match(1, 2, 2, 2, 3.0)], 0.5)
        >>> r.to_dict()["matches"], r.to_dict()["image_size"]
        ([{'x': 1, 'y': 2, 'width': 2, 'height': 2, 'score': 3.0}], [8, 6])
        """
        doc: dict[str, Any] = {
            "image": self.image,
            "template": self.template,
            "method": self.method,
            "image_size": list(self.image_size),
            "template_size": list(self.template_size),
            "matches": [m.to_dict() for m in self.matches],
            "seconds": round(self.seconds, 6),
            "threshold": self.threshold,
        }
        doc.update(self.extra)
        return doc


@dataclass(frozen=True)
class SearchOptions:
    """How to search and which peaks to keep (the options of ``waldo find``)."""

    method: str = "ccoeff_normed"
    top_k: int = 1
    threshold: float | None = None
    min_distance: int | None = None
    engine: str = "auto"
    subpixel: bool = False
    pad: str = "none"
    convolve: bool = False
    scales: tuple[float, ...] = (1.0,)
    angles: tuple[float, ...] = (0.0,)
    flip: bool = False

    @property
    def variants(self) -> bool:
        """Whether the template is searched at several sizes, turns or mirrored."""
        return self.scales != (1.0,) or self.angles != (0.0,) or self.flip


@dataclass
class Searcher:
    """One template, loaded and prepared once, searched for in any number of images.

    Preparation is kept per channel count, since a grey image is searched
    with a grey version of a colour template.
    """

    template: LoadedImage
    options: SearchOptions
    mask: np.ndarray | None = None
    mask_source: str | None = None
    _prepared: dict[int, Any] = field(default_factory=dict, repr=False)

    def _prepared_for(self, channels: int) -> tuple[np.ndarray, Any, np.ndarray | None]:
        from waldo_cli.engine import prepare_template

        if channels not in self._prepared:
            probe = np.zeros((1, 1, channels), np.float32)
            _, pixels = reconcile_channels(probe, self.template.pixels)
            mask = self.mask
            if mask is not None and mask.ndim == 3 and mask.shape[2] != pixels.shape[2]:
                _, mask = reconcile_channels(np.zeros((1, 1, pixels.shape[2])), mask)
            self._prepared[channels] = (pixels, prepare_template(pixels), mask)
        return self._prepared[channels]

    def _variants_for(self, channels: int) -> list[tuple[Any, Any, np.ndarray | None]]:
        from waldo_cli.engine import prepare_template
        from waldo_cli.variants import make_variants

        key = ("variants", channels)
        if key not in self._prepared:
            pixels, _, mask = self._prepared_for(channels)
            variants = make_variants(pixels, mask, self.options.scales, self.options.angles,
                                     self.options.flip)
            self._prepared[key] = [(v, prepare_template(v.pixels), v.mask) for v in variants]
        return self._prepared[key]

    def _search_variants(self, pixels: np.ndarray) -> tuple[list[Match], np.ndarray]:
        """Every variant on one image; matches suppressed across all of them."""
        from waldo_cli.engine import match_templates
        from waldo_cli.peaks import find_peaks
        from waldo_cli.variants import best_over_variants

        height, width, channels = pixels.shape
        prepared = self._variants_for(channels)
        padded = self.options.pad != "none"

        def maps() -> Iterator[np.ndarray | None]:
            # the image is converted (and, on the FFT path, transformed) once
            # per group of variants; groups keep at most _VARIANT_BYTES of
            # score maps alive, however large the image
            group: list[Any] = []
            size = 0
            for index, (variant, _, _) in enumerate(prepared):
                h, w = (1, 1) if padded else variant.shape
                size += 4 * max(0, height - h + 1) * max(0, width - w + 1)
                group.append(prepared[index])
                if size >= _VARIANT_BYTES or index == len(prepared) - 1:
                    yield from match_templates(
                        pixels, [t for _, t, _ in group], self.options.method,
                        engine=self.options.engine, masks=[m for _, _, m in group],
                        pad=self.options.pad, convolve=self.options.convolve)
                    group, size = [], 0

        # padded maps are already on the image's grid, indexed by window centre
        shapes = [(1, 1) if padded else v.shape for v, _, _ in prepared]
        best, which = best_over_variants((height, width), maps(), shapes, self.options.method)
        th, tw = self.template.pixels.shape[:2]
        peaks = find_peaks(best, self.options.method, (th, tw), top_k=self.options.top_k,
                           threshold=self.options.threshold,
                           min_distance=self.options.min_distance,
                           subpixel=self.options.subpixel)
        matches = []
        for peak in peaks:
            variant = prepared[which[round(peak.y), round(peak.x)]][0]
            h, w = variant.shape
            matches.append(Match(x=peak.x - (w - 1) // 2, y=peak.y - (h - 1) // 2, width=w,
                                 height=h, score=peak.score, scale=variant.scale,
                                 angle=variant.angle, flip=variant.flip))
        return matches, best

    def engine_for(self, image_shape: tuple[int, ...]) -> str:
        """The engine a search of an (H, W, C) image runs: ``auto`` resolved by the cost model.

        Stays ``auto`` for variant searches (each variant decides for itself)
        and for a template that does not fit, which the engine then refuses.
        """
        from waldo_cli.engine import choose_engine, get_threads

        engine = self.options.engine
        height, width, channels = image_shape
        h, w = self.template.pixels.shape[:2]
        padded = self.options.pad != "none"
        if engine != "auto" or self.options.variants or (
                not padded and (h > height or w > width)):
            return engine
        out_shape = (height, width) if padded else (height - h + 1, width - w + 1)
        return choose_engine(out_shape, (h, w), channels, get_threads())

    def search(self, loaded: LoadedImage) -> tuple[FindReport, np.ndarray, np.ndarray]:
        """Search one image; return the report, the pixels searched and the score map.

        Raises
        ------
        WaldoError
            The image cannot be searched (too small, channels that cannot be
            reconciled).
        """
        from waldo_cli.engine import get_threads, match_template, pad_widths
        from waldo_cli.params import template_param_counts
        from waldo_cli.peaks import find_peaks

        pixels, _ = reconcile_channels(loaded.pixels, self.template.pixels)
        if self.options.variants:
            return self._report_variants(loaded, pixels)
        kernel, prepared, mask = self._prepared_for(pixels.shape[2])
        (height, width, channels), (h, w) = pixels.shape, kernel.shape[:2]
        padded = self.options.pad != "none"
        engine = self.engine_for(pixels.shape)
        started = time.perf_counter()
        scores = match_template(pixels, prepared, self.options.method, engine=engine, mask=mask,
                                pad=self.options.pad, convolve=self.options.convolve)
        matches = find_peaks(scores, self.options.method, (h, w), top_k=self.options.top_k,
                             threshold=self.options.threshold,
                             min_distance=self.options.min_distance,
                             subpixel=self.options.subpixel)
        if padded:
            # the map is indexed by window centre; report top-left corners as always
            (top, _), (left, _) = pad_widths((h, w))
            matches = [replace(m, x=m.x - left, y=m.y - top) for m in matches]
        seconds = time.perf_counter() - started
        report = FindReport(
            image=loaded.path, template=self.template.path, method=self.options.method,
            image_size=(loaded.width, loaded.height),
            template_size=(self.template.width, self.template.height),
            matches=matches, seconds=seconds, threshold=self.options.threshold,
            extra={"engine": engine, "threads": get_threads(), "mask": self.mask_source,
                   "pad": self.options.pad, "convolve": self.options.convolve,
                   "scores_indexed_by": "window centre" if padded else "window top-left",
                   "parameters": template_param_counts(height, width, h, w, channels)},
        )
        return report, pixels, scores


    def _report_variants(self, loaded: LoadedImage, pixels: np.ndarray
                         ) -> tuple[FindReport, np.ndarray, np.ndarray]:
        from waldo_cli.engine import get_threads

        started = time.perf_counter()
        matches, best = self._search_variants(pixels)
        report = FindReport(
            image=loaded.path, template=self.template.path, method=self.options.method,
            image_size=(loaded.width, loaded.height),
            template_size=(self.template.width, self.template.height),
            matches=matches, seconds=time.perf_counter() - started,
            threshold=self.options.threshold,
            extra={"engine": self.options.engine, "threads": get_threads(),
                   "mask": self.mask_source, "pad": self.options.pad,
                   "convolve": self.options.convolve, "scores_indexed_by": "window centre",
                   "variants": {"scales": list(self.options.scales),
                                "angles": list(self.options.angles),
                                "flip": self.options.flip}},
        )
        return report, pixels, best


@dataclass(frozen=True)
class ImageResult:
    """The outcome for one image of a batch: a report, or the error that stopped it."""

    index: int
    image: str
    report: FindReport | None = None
    error: str | None = None

    @property
    def matched(self) -> bool:
        """Whether at least one match passed the threshold."""
        return self.report is not None and bool(self.report.matches)

    def to_dict(self) -> dict[str, Any]:
        """The JSON Lines record: the report's document, or ``{"image", "error"}``.

        >>> ImageResult(0, "gone.png", error="gone.png: no such file").to_dict()
        {'image': 'gone.png', 'error': 'gone.png: no such file'}
        """
        if self.report is None:
            return {"image": self.image, "error": self.error}
        return self.report.to_dict()


Source = tuple[str, Any]  # (name to report, path or bytes to read)


def _search_one(searcher: Searcher, index: int, source: Source) -> ImageResult:
    name, data = source
    try:
        loaded = read_image(data, name=name)
        report, _, _ = searcher.search(loaded)
    except WaldoError as exc:
        return ImageResult(index, name, error=str(exc))
    return ImageResult(index, name, report=report)


def run_batch(searcher: Searcher, sources: Iterable[Source], jobs: int = 1
              ) -> Iterator[ImageResult]:
    """Search every image and yield one result per image, in input order.

    Parameters
    ----------
    searcher : Searcher
        The prepared template and options.
    sources : iterable of (name, path or bytes)
        The images; read lazily, one at a time.
    jobs : int
        Images searched at once. At most ``2 * jobs`` images are read ahead,
        so memory stays bounded however long the batch is; results still
        come out in input order.

    Yields
    ------
    ImageResult
        A report, or the error for an image that could not be searched (the
        batch goes on).

    Examples
    --------
    >>> tpl = LoadedImage(np.ones((2, 2, 1), np.float32), None, "L", "t.png")
    >>> results = run_batch(Searcher(tpl, SearchOptions()), [("missing.png", "missing.png")])
    >>> [r.to_dict() for r in results]
    [{'image': 'missing.png', 'error': 'missing.png: no such file'}]
    """
    numbered = enumerate(sources)
    if jobs <= 1:
        for index, source in numbered:
            yield _search_one(searcher, index, source)
        return
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="waldo-job") as pool:
        pending: deque[Future[ImageResult]] = deque()

        def submit_next() -> None:
            for index, source in numbered:
                pending.append(pool.submit(_search_one, searcher, index, source))
                return

        try:
            for _ in range(2 * jobs):
                submit_next()
            while pending:
                result = pending.popleft().result()
                submit_next()
                yield result
        finally:
            # a consumer that stops early (Ctrl-C, -q, --fail-fast) cancels
            # whatever has not started; running images finish on their own
            for future in pending:
                future.cancel()
