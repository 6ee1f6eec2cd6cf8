"""One search of one image: a template (and its mask and variants) → a typed SearchResult.

``Searcher`` holds a template loaded once (or a learned filter), with what
every image needs of it (prepared per channel count, variants made once),
and searches images one at a time, from any number of threads. A search is
planned before it runs (``engine.plan_match``/``plan_matches``: the Plan is what runs, what
``--json`` reports and what the first-run notice reads), then scored, then
its peaks found and turned into image coordinates, in this one place.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from waldo_cli.engine import match_template, match_templates, plan_match, plan_matches
from waldo_cli.errors import TemplateTooLargeError, WaldoError
from waldo_cli.io import LoadedImage, reconcile_channels, reconcile_filter
from waldo_cli.jit import load_kernels
from waldo_cli.methods import DEFAULT_METHOD
from waldo_cli.peaks import best_over_variants, find_peaks
from waldo_cli.plan import Plan, engines_used
from waldo_cli.pool import SHARED
from waldo_cli.results import FindReport, Match
from waldo_cli.templates import LearnedFilter, PreparedTemplate, prepare_template

# Score maps of template variants searched together, at most: on a huge image
# the variants are searched in groups, each merged before the next is made.
_VARIANT_BYTES = 256 << 20

TOP_LEFT, CENTRE = "window top-left", "window centre"

T = TypeVar("T")


@dataclass(frozen=True)
class SearchOptions:
    """How to search and which peaks to keep (the options of ``waldo find``)."""

    method: str = DEFAULT_METHOD
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
    threads: int | None = None
    own_scales: bool = True

    @property
    def variants(self) -> bool:
        """Whether the template is searched at several sizes, turns or mirrored.

        ``own_scales``: a learned filter given ``scales=(1.0,)`` is searched at
        the scales it was learned for (``LearnedFilter.scales``).
        """
        return self.scales != (1.0,) or self.angles != (0.0,) or self.flip


@dataclass(frozen=True)
class ScoreMap:
    """A score map and where it lies on the image.

    Attributes
    ----------
    values : (H', W') float32 ndarray
        The scores.
    indexed_by : {"window top-left", "window centre"}
        ``values[y, x]`` scores the window whose top-left corner, or whose
        centre pixel ((h-1)//2, (w-1)//2), is the image pixel (y, x). Padded
        and variant searches give centre-indexed maps of the image's shape.
    window : (h, w)
        The template's size (of the original template, for variants).
    """

    values: np.ndarray
    indexed_by: str
    window: tuple[int, int]

    @property
    def centre_offset(self) -> tuple[int, int]:
        """(rows, columns) from ``values[0, 0]`` to the image pixel its window is centred on.

        >>> ScoreMap(np.zeros((2, 2)), TOP_LEFT, (5, 4)).centre_offset
        (2, 1)
        """
        if self.indexed_by == CENTRE:
            return 0, 0
        return (self.window[0] - 1) // 2, (self.window[1] - 1) // 2


@dataclass(frozen=True)
class SearchResult:
    """The outcome of one search: what ``waldo find`` prints, draws and reports.

    Attributes
    ----------
    report : FindReport
        The matches, in image coordinates (top-left corners), and the rest of
        the JSON document.
    pixels : (H, W, C) float32 ndarray
        The image as searched (in grey when the template is grey).
    scores : ScoreMap
        The score map and its geometry.
    plans : tuple of Plan
        What ran: one plan, or one per template variant.
    """

    report: FindReport
    pixels: np.ndarray
    scores: ScoreMap
    plans: tuple[Plan, ...]

    @property
    def matches(self) -> list[Match]:
        """The matches, best first."""
        return self.report.matches

    @property
    def engine(self) -> str:
        """The engine(s) that ran, as ``--json`` reports them."""
        return engines_used(list(self.plans))


def _variant_match(
    peak: Match, shape: tuple[int, int], centred: bool, variant: Any = None
) -> Match:
    """A peak of a map turned into a match in image coordinates: the one translation."""
    h, w = shape
    dy, dx = ((h - 1) // 2, (w - 1) // 2) if centred else (0, 0)
    return Match(
        x=peak.x - dx,
        y=peak.y - dy,
        width=w,
        height=h,
        score=peak.score,
        scale=None if variant is None else variant.scale,
        angle=None if variant is None else variant.angle,
        flip=None if variant is None else variant.flip,
    )


@dataclass
class Searcher:
    """One template, loaded and prepared once, searched for in any number of images.

    Preparation is kept per channel count, since a grey image is searched
    with a grey version of a colour template. A searcher may be shared by
    threads (its caches are filled under a lock) and pickled (for process
    or cluster executors; the caches are rebuilt there).

    ``template`` may be a learned filter (``load_filter``): it is then
    searched with its own method, ``learned`` (``options.method`` must say
    so), with no mask; a grey filter searches colour images made grey, a
    colour filter refuses grey images. Its copies for ``scales``, ``angles``
    and ``flip`` are its kernel resized (and divided by the scale squared, so
    that a larger copy sums as many pixels' worth of evidence), turned or
    mirrored; the bias stays.
    """

    template: LoadedImage | LearnedFilter
    options: SearchOptions
    mask: np.ndarray | None = None
    mask_source: str | None = None
    _cache: dict[Any, Any] = field(default_factory=dict, repr=False)
    # reentrant: variants are made from the prepared template, under the lock
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def __post_init__(self) -> None:
        from dataclasses import replace

        from waldo_cli.errors import WaldoError
        from waldo_cli.methods import DEFAULT_METHOD, LEARNED

        learned = self.learned
        if learned is None:
            return
        if self.options.method not in (DEFAULT_METHOD, LEARNED.name):
            raise WaldoError(
                f"{learned.name} is a learned filter, scored by method 'learned', "
                f"not {self.options.method!r}"
            )
        if self.mask is not None:
            raise WaldoError(f"{learned.name} is a learned filter: it takes no mask")
        options = replace(self.options, method=LEARNED.name)
        if options.scales == (1.0,) and options.own_scales and learned.scales != (1.0,):
            options = replace(options, scales=(1.0, *(s for s in learned.scales if s != 1.0)))
        self.options = options

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_cache"], state["_lock"] = {}, None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()

    @property
    def threads(self) -> int:
        """Threads each search runs on."""
        return self.options.threads or SHARED.threads

    @property
    def learned(self) -> LearnedFilter | None:
        """The learned filter searched for, or None for a template."""
        return self.template if isinstance(self.template, LearnedFilter) else None

    @property
    def _size(self) -> tuple[int, int]:
        """(h, w) of the template or the filter's kernel."""
        if isinstance(self.template, LearnedFilter):
            return self.template.shape[:2]
        return self.template.height, self.template.width

    def _reconcile(self, pixels: np.ndarray) -> np.ndarray:
        """The image in the channels it is searched in (grey if either is grey)."""
        if isinstance(self.template, LearnedFilter):
            return reconcile_filter(pixels, self.template)
        return reconcile_channels(pixels, self.template.pixels)[0]

    def _cached(self, key: Any, make: Callable[[], T]) -> T:
        with self._lock:
            if key not in self._cache:
                self._cache[key] = make()
            return self._cache[key]

    def _prepared_for(self, channels: int) -> tuple[np.ndarray, Any, np.ndarray | None]:
        learned = self.learned
        if learned is not None:
            return learned.kernel, learned, None
        assert isinstance(self.template, LoadedImage)
        template = self.template

        def make() -> tuple[np.ndarray, PreparedTemplate, np.ndarray | None]:
            probe = np.zeros((1, 1, channels), np.float32)
            _, pixels = reconcile_channels(probe, template.pixels)
            mask = self.mask
            if mask is not None and mask.ndim == 3 and mask.shape[2] != pixels.shape[2]:
                _, mask = reconcile_channels(np.zeros((1, 1, pixels.shape[2])), mask)
            return pixels, prepare_template(pixels), mask

        return self._cached(channels, make)

    def _variants_for(self, image_shape: tuple[int, ...]) -> list[tuple[Any, Any, Any]]:
        """The variants searched in an (H, W, C) image: those no larger than it.

        Each is made (resampled and prepared) once, when an image first
        needs it; sizes are known beforehand, so a variant larger than the
        image is never made.
        """
        from waldo_cli.variants import make_variant

        channels = self._channels(image_shape)
        height, width = int(image_shape[0]), int(image_shape[1])
        every = self._specs(channels)
        if not every:
            raise WaldoError("no template variants: give at least one scale and one angle")
        chosen = [spec for spec in every if spec.fits((height, width))]
        if not chosen:
            smallest = min(every, key=lambda spec: (spec.shape[0] * spec.shape[1], spec.shape))
            raise TemplateTooLargeError(
                smallest.shape,
                (height, width),
                f" (the smallest of {len(every)} template variant(s), at scale "
                f"{smallest.scale:g} and angle {smallest.angle:g})",
            )

        def made(spec: Any) -> tuple[Any, Any, Any]:
            def make() -> tuple[Any, Any, Any]:
                pixels, _, mask = self._prepared_for(channels)
                variant = make_variant(pixels, mask, spec)
                learned = self.learned
                if learned is not None:
                    # a copy s times larger sums s² times as many pixels; the
                    # corners a turn adds are zero weights, so no mask is needed
                    scale = np.float32(variant.scale * variant.scale)
                    return variant, learned.with_kernel(variant.pixels / scale), None
                return variant, prepare_template(variant.pixels), variant.mask

            return self._cached(("variant", channels, spec), make)

        return [made(spec) for spec in chosen]

    def _specs(self, channels: int) -> list[Any]:
        """Every variant to be searched (``variants.list_variants``), made or not."""
        from waldo_cli.variants import list_variants

        def make() -> list[Any]:
            pixels = self._prepared_for(channels)[0]
            shape = (int(pixels.shape[0]), int(pixels.shape[1]))
            o = self.options
            return list_variants(shape, o.scales, o.angles, o.flip)

        return self._cached(("variants", channels), make)

    def _channels(self, image_shape: tuple[int, ...]) -> int:
        """The channels a search of an (H, W, C) image runs in (grey if either is grey).

        A colour filter keeps the image's own channels (and refuses a grey one).
        """
        if isinstance(self.template, LearnedFilter) and self.template.channels == 3:
            return int(image_shape[2])
        return min(int(image_shape[2]), self.template.channels)

    def _groups(self, image_shape: tuple[int, ...]) -> Iterator[list[int]]:
        """Variants searched together, keeping at most _VARIANT_BYTES of score maps alive."""
        height, width = image_shape[:2]
        variants = self._variants_for(image_shape)
        padded = self.options.pad != "none"
        group: list[int] = []
        size = 0
        for index, (variant, _, _) in enumerate(variants):
            h, w = (1, 1) if padded else variant.shape
            size += 4 * max(0, height - h + 1) * max(0, width - w + 1)
            group.append(index)
            if size >= _VARIANT_BYTES or index == len(variants) - 1:
                yield group
                group, size = [], 0

    def _plan_group(self, image_shape: tuple[int, ...], group: list[int]) -> list[Plan | None]:
        variants = self._variants_for(image_shape)
        o = self.options
        return plan_matches(
            image_shape[:2] + (self._channels(image_shape),),
            [variants[i][1] for i in group],
            o.method,
            engine=o.engine,
            masks=[variants[i][2] for i in group],
            pad=o.pad,
            convolve=o.convolve,
            threads=self.threads,
        )

    def plans_for(self, image_shape: tuple[int, ...]) -> list[Plan]:
        """What a search of an (H, W, C) image would run, without running it.

        Raises WaldoError when the template cannot be searched in such an
        image (too large, channels that cannot be reconciled).
        """
        o = self.options
        channels = self._channels(image_shape)
        shape = (int(image_shape[0]), int(image_shape[1]), channels)
        if o.variants:
            return [
                plan
                for group in self._groups(shape)
                for plan in self._plan_group(shape, group)
                if plan is not None
            ]
        _, prepared, mask = self._prepared_for(channels)
        return [
            plan_match(
                shape,
                prepared,
                o.method,
                engine=o.engine,
                mask=mask,
                pad=o.pad,
                convolve=o.convolve,
                threads=self.threads,
            )
        ]

    def check_fits(self, width: int, height: int) -> None:
        """Refuse an image of this size before it is decoded, if the template cannot fit in it.

        Only for a plain search (variants may be smaller, padding lets any
        template fit): the size comes from the file's header.

        Raises
        ------
        TemplateTooLargeError
            The template is taller or wider than the image.
        """
        o = self.options
        h, w = self._size
        if not o.variants and o.pad == "none" and (h > height or w > width):
            raise TemplateTooLargeError((h, w), (height, width))

    def kernels_for(self, image_shape: tuple[int, ...]) -> set[str]:
        """The compiled kernels a search of an (H, W, C) image would call."""
        return {name for plan in self.plans_for(image_shape) for name in plan.kernels}

    def search(self, loaded: LoadedImage) -> SearchResult:
        """Search one image.

        Raises
        ------
        WaldoError
            The image cannot be searched (too small, channels that cannot be
            reconciled).
        """
        pixels = self._reconcile(loaded.pixels)
        planned = self.plans_for(pixels.shape)
        # the one-time loading of the kernels is not the search's own time
        compile_seconds = load_kernels(planned)
        started = time.perf_counter()
        if self.options.variants:
            matches, scores, plans, extra = self._search_variants(pixels)
        else:
            matches, scores, plans, extra = self._search_one(pixels, planned[0])
        seconds = time.perf_counter() - started
        o = self.options
        learned = self.learned
        th, tw = self._size
        template = self.template
        report = FindReport(
            image=loaded.path,
            template=template.name if isinstance(template, LearnedFilter) else template.path,
            method=o.method,
            image_size=(loaded.width, loaded.height),
            template_size=(tw, th),
            matches=matches,
            seconds=seconds,
            threshold=o.threshold,
            extra={
                **({"filter": learned.name} if learned is not None else {}),
                "engine": engines_used(plans),
                "threads": self.threads,
                "mask": self.mask_source,
                "pad": o.pad,
                "convolve": o.convolve,
                "scores_indexed_by": scores.indexed_by,
                "compile_seconds": round(compile_seconds, 6),
                **extra,
            },
        )
        return SearchResult(report=report, pixels=pixels, scores=scores, plans=tuple(plans))

    def _peaks(self, values: np.ndarray) -> list[Match]:
        o = self.options
        th, tw = self._size
        return find_peaks(
            values,
            o.method,
            (th, tw),
            top_k=o.top_k,
            threshold=o.threshold,
            min_distance=o.min_distance,
            subpixel=o.subpixel,
        )

    def _search_one(
        self, pixels: np.ndarray, plan: Plan
    ) -> tuple[list[Match], ScoreMap, list[Plan], dict[str, Any]]:
        from waldo_cli.params import template_param_counts

        o = self.options
        _, prepared, mask = self._prepared_for(pixels.shape[2])
        (height, width, _), (h, w, channels) = pixels.shape, prepared.shape
        values = match_template(
            pixels, prepared, o.method, mask=mask, pad=o.pad, convolve=o.convolve, plan=plan
        )
        centred = o.pad != "none"
        scores = ScoreMap(values, CENTRE if centred else TOP_LEFT, (h, w))
        matches = [_variant_match(peak, (h, w), centred) for peak in self._peaks(values)]
        return (
            matches,
            scores,
            [plan],
            {
                "parameters": template_param_counts(
                    height, width, h, w, channels, bias=self.learned is not None
                )
            },
        )

    def _search_variants(
        self, pixels: np.ndarray
    ) -> tuple[list[Match], ScoreMap, list[Plan], dict[str, Any]]:
        """Every variant on one image; matches suppressed across all of them."""
        o = self.options
        height, width, channels = pixels.shape
        variants = self._variants_for(pixels.shape)
        padded = o.pad != "none"
        plans: list[Plan] = []

        def maps() -> Iterator[np.ndarray | None]:
            # the image is converted (and, on the FFT path, transformed) once
            # per group of variants
            for group in self._groups(pixels.shape):
                group_plans = self._plan_group(pixels.shape, group)
                plans.extend(p for p in group_plans if p is not None)
                yield from match_templates(
                    pixels,
                    [variants[i][1] for i in group],
                    o.method,
                    masks=[variants[i][2] for i in group],
                    pad=o.pad,
                    convolve=o.convolve,
                    plans=group_plans,
                )

        # padded maps are already on the image's grid, indexed by window centre
        shapes = [(1, 1) if padded else v.shape for v, _, _ in variants]
        best, which = best_over_variants((height, width), maps(), shapes, o.method)
        matches = []
        for peak in self._peaks(best):
            variant = variants[which[round(peak.y), round(peak.x)]][0]
            matches.append(_variant_match(peak, variant.shape, True, variant))
        th, tw = self._size
        extra: dict[str, Any] = {
            "variants": {
                "scales": list(o.scales),
                "angles": list(o.angles),
                "flip": o.flip,
                "searched": len(variants),
                # larger than the image (or MAX_VARIANT_PIXELS): left out, never made
                "skipped": len(self._specs(channels)) - len(variants),
            }
        }
        if self.learned is not None and th <= height and tw <= width:
            from waldo_cli.params import template_param_counts

            # the learned layer as it was learned (its copies are resampled from it)
            extra["parameters"] = template_param_counts(
                height, width, th, tw, self.learned.shape[2], bias=True
            )
        return matches, ScoreMap(best, CENTRE, (th, tw)), plans, extra
