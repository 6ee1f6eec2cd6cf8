"""One search of one image: a template (and its mask and variants) → a typed SearchResult.

``Searcher`` holds a template loaded once, with what every image needs of
it (prepared per channel count, variants made once), and searches images
one at a time, from any number of threads; ``MultiSearcher`` searches for
several templates at once, each image converted once and its FFT tiles
transformed once for all of them. A search is laid out before it runs: the
part of the image it reads (a region, and the padding beyond the image's
edges, made here once), the templates and variants to correlate, in groups
of bounded memory, and their Plans (``engine.plan_match``/``plan_matches``:
the Plan is what runs, what ``--json`` reports and what the first-run
notice reads). Then it is scored, its peaks found and turned into image
coordinates, in one place (``_to_image``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeVar

import numpy as np

from waldo_cli.engine import match_template, match_templates, pad_widths, plan_match, plan_matches
from waldo_cli.errors import TemplateTooLargeError, WaldoError
from waldo_cli.io import LoadedImage, reconcile_channels, to_grey
from waldo_cli.jit import load_kernels
from waldo_cli.methods import DEFAULT_METHOD, lower_is_better
from waldo_cli.peaks import best_over_variants, find_peaks
from waldo_cli.plan import Plan, engines_used
from waldo_cli.pool import SHARED
from waldo_cli.results import FindReport, Match
from waldo_cli.templates import LearnedFilter, PreparedTemplate, prepare_template

__all__ = [
    "CENTRE",
    "TOP_LEFT",
    "MultiSearcher",
    "ScoreMap",
    "SearchOptions",
    "SearchResult",
    "Searcher",
]

# Score maps of template variants searched together, at most: on a huge image
# the variants are searched in groups, each merged before the next is made.
_VARIANT_BYTES = 256 << 20

TOP_LEFT, CENTRE = "window top-left", "window centre"

T = TypeVar("T")


@dataclass(frozen=True)
class SearchOptions:
    """How to search and which peaks to keep (the options of ``waldo find``).

    ``top_k=None`` keeps every peak that passes (``-k all``). ``region`` is
    (x, y, width, height) in image pixels: only windows inside it are
    scored (with ``pad``, windows may hang over the image's edge where the
    region reaches it). ``grey`` searches in luminance only (ITU-R 601
    luma, as ``io.to_grey``).

    >>> SearchOptions(top_k=None, region=(10, 20, 64, 48), grey=True).variants
    False
    """

    method: str = DEFAULT_METHOD
    top_k: int | None = 1
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
    region: tuple[int, int, int, int] | None = None
    grey: bool = False
    own_scales: bool = True

    @property
    def variants(self) -> bool:
        """Whether the template is searched at several sizes, turns or mirrored.

        ``own_scales``: a learned filter given ``scales=(1.0,)`` is searched at
        the scales it was learned for (``LearnedFilter.scales``).
        """
        return self.scales != (1.0,) or self.angles != (0.0,) or self.flip

    def shared(self) -> SearchOptions:
        """The options every template of one search shares (not those a filter sets itself)."""
        return replace(self, method=DEFAULT_METHOD, threshold=None, scales=(1.0,), own_scales=True)


@dataclass(frozen=True)
class ScoreMap:
    """A score map and where it lies on the image.

    Attributes
    ----------
    values : (H', W') float32 ndarray
        The scores; NaN where no window was scored (a variant search's
        border that no variant's window is centred on).
    indexed_by : {"window top-left", "window centre"}
        ``values[y, x]`` scores the window whose top-left corner, or whose
        centre pixel ((h-1)//2, (w-1)//2), is the image pixel
        (origin[0] + y, origin[1] + x). Padded and variant searches give
        centre-indexed maps.
    window : (h, w)
        The template's size (of the original template, for variants).
    origin : (row, column)
        Where ``values[0, 0]`` lies on the image: (0, 0), but for a search
        region, or a padded search region reaching the image's edge.

    Examples
    --------
    >>> m = ScoreMap(np.zeros((3, 4), np.float32), TOP_LEFT, (5, 5), origin=(10, 20))
    >>> m.centre_offset, m.on_grid((20, 30))[12, 22]
    ((2, 2), np.float32(0.0))
    """

    values: np.ndarray
    indexed_by: str
    window: tuple[int, int]
    origin: tuple[int, int] = (0, 0)

    @property
    def centre_offset(self) -> tuple[int, int]:
        """(rows, columns) from ``values[0, 0]``'s place to the pixel its window is centred on.

        >>> ScoreMap(np.zeros((2, 2)), TOP_LEFT, (5, 4)).centre_offset
        (2, 1)
        """
        if self.indexed_by == CENTRE:
            return 0, 0
        return (self.window[0] - 1) // 2, (self.window[1] - 1) // 2

    def on_grid(self, shape: tuple[int, int]) -> np.ndarray:
        """The scores on the image's pixel grid, each at its window's centre, as the heatmap.

        Parameters
        ----------
        shape : (H, W)
            The image's size.

        Returns
        -------
        (H, W) float32 ndarray
            NaN where no scored window is centred (the border a window
            cannot reach, outside a search region).

        Examples
        --------
        >>> ScoreMap(np.ones((2, 3), np.float32), TOP_LEFT, (3, 2)).on_grid((4, 4))[1]
        array([ 1.,  1.,  1., nan], dtype=float32)
        """
        grid = np.full(shape, np.nan, np.float32)
        oy, ox = self.centre_offset
        top, left = self.origin[0] + oy, self.origin[1] + ox
        rows, cols = self.values.shape
        y0, x0 = max(0, top), max(0, left)
        y1, x1 = min(shape[0], top + rows), min(shape[1], left + cols)
        if y1 > y0 and x1 > x0:
            grid[y0:y1, x0:x1] = self.values[y0 - top : y1 - top, x0 - left : x1 - left]
        return grid


@dataclass(frozen=True)
class SearchResult:
    """The outcome of one search: what ``waldo find`` prints, draws and reports.

    Attributes
    ----------
    report : FindReport
        The matches, in image coordinates (top-left corners), and the rest of
        the JSON document.
    pixels : (H, W, C) float32 ndarray
        The image as searched (in grey when the template is grey, or with
        ``grey``).
    scores : ScoreMap
        The score map and its geometry.
    plans : tuple of Plan
        What ran: one plan, or one per template variant.

    Examples
    --------
    >>> image = LoadedImage(np.arange(120, dtype=np.float32).reshape(10, 12, 1) % 7, None,
    ...                     "L", "i.png")
    >>> template = LoadedImage(image.pixels[2:5, 3:7].copy(), None, "L", "t.png")
    >>> result = Searcher(template, SearchOptions(pad="zero")).search(image)
    >>> result.pixels.shape, result.scores.values.shape, result.scores.indexed_by
    ((10, 12, 1), (10, 12), 'window centre')
    >>> result.engine, result.report.to_dict()["best"]["score"]
    ('direct', 1.0)
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


_NUMPY_MODES: dict[str, Literal["constant", "reflect", "edge"]] = {
    "zero": "constant",
    "reflect": "reflect",
    "edge": "edge",
}


@dataclass(frozen=True)
class _View:
    """The part of an image a search reads, in image coordinates.

    ``rect`` (y0, y1, x0, x1) is the region (or the whole image); ``margins``
    (top, bottom, left, right) the rows and columns of padding beyond the
    image's edges where the rect reaches them (0 elsewhere, and without
    --pad); the searched array starts at image pixel (y0 - top, x0 - left).
    """

    rect: tuple[int, int, int, int]
    margins: tuple[int, int, int, int]
    image: tuple[int, int]
    pad: str

    @property
    def origin(self) -> tuple[int, int]:
        """The image pixel of the searched array's [0, 0]."""
        return self.rect[0] - self.margins[0], self.rect[2] - self.margins[2]

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of the searched array."""
        y0, y1, x0, x1 = self.rect
        top, bottom, left, right = self.margins
        return y1 - y0 + top + bottom, x1 - x0 + left + right

    def windows(self, shape: tuple[int, int]) -> tuple[int, int, int, int]:
        """Where an h×w window's top-left corner may be: (row, last row, column, last column).

        In image coordinates; a last before its first means nowhere. Inside
        the rect; past the image's edge, with padding, as far as the
        window's own pad widths let its centre stay on the image.
        """
        h, w = shape
        (top, bottom), (left, right) = pad_widths((h, w))
        y0, y1, x0, x1 = self.rect
        height, width = self.image
        padded = self.pad != "none"
        return (
            y0 - (top if padded and y0 == 0 else 0),
            y1 + (bottom if padded and y1 == height else 0) - h,
            x0 - (left if padded and x0 == 0 else 0),
            x1 + (right if padded and x1 == width else 0) - w,
        )

    def crop(self, pixels: np.ndarray) -> np.ndarray:
        """The searched array: the rect of ``pixels``, padded past the image's edges."""
        y0, y1, x0, x1 = self.rect
        top, bottom, left, right = self.margins
        if not any(self.margins):
            return pixels[y0:y1, x0:x1]
        height, width = self.image
        # the rows and columns a mirror image reads come from beyond the rect
        by0 = min(y0, max(0, height - 1 - bottom)) if bottom else y0
        by1 = max(y1, min(height, top + 1)) if top else y1
        bx0 = min(x0, max(0, width - 1 - right)) if right else x0
        bx1 = max(x1, min(width, left + 1)) if left else x1
        padded = np.pad(
            pixels[by0:by1, bx0:bx1],
            ((top, bottom), (left, right), (0, 0)),
            mode=_NUMPY_MODES[self.pad],
        )
        rows, cols = self.shape
        return padded[y0 - by0 : y0 - by0 + rows, x0 - bx0 : x0 - bx0 + cols]


@dataclass(frozen=True)
class _Job:
    """One template (or variant) to correlate: whose, which, and where its windows may be."""

    owner: int
    index: int
    variant: Any
    prepared: PreparedTemplate
    mask: np.ndarray | None
    channels: int
    windows: tuple[int, int, int, int]

    @property
    def shape(self) -> tuple[int, int]:
        """(h, w) of the template as correlated."""
        return int(self.prepared.shape[0]), int(self.prepared.shape[1])

    @property
    def runs(self) -> bool:
        """Whether any window of it is searched."""
        r0, r1, c0, c1 = self.windows
        return r1 >= r0 and c1 >= c0


@dataclass
class _Layout:
    """A search before it runs: per owner its jobs, and the groups that run with their plans."""

    views: dict[int, _View]
    jobs: list[list[_Job]]
    groups: list[tuple[list[_Job], list[Plan]]]

    @property
    def plans(self) -> list[Plan]:
        """Every plan, in the order they run."""
        return [plan for _, plans in self.groups for plan in plans]


@dataclass
class Searcher:
    """One template, loaded and prepared once, searched for in any number of images.

    Preparation is kept per channel count, since a grey image is searched
    with a grey version of a colour template. A searcher may be shared by
    threads (its caches are filled under a lock) and pickled (for process
    or cluster executors; the caches are rebuilt there).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> image = LoadedImage(rng.random((40, 50, 1), np.float32) * 255, None, "L", "i.png")
    >>> template = LoadedImage(image.pixels[10:18, 20:26].copy(), None, "L", "t.png")
    >>> result = Searcher(template, SearchOptions()).search(image)
    >>> m = result.matches[0]
    >>> (m.x, m.y, m.width, m.height), result.scores.values.shape
    ((20, 10, 6, 8), (33, 45))

    ``template`` may be a learned filter (``load_filter``): it is then
    searched with its own method, ``learned`` (``options.method`` must be
    that or the default), with no mask; a grey filter searches colour images
    made grey, a colour filter refuses grey images. Its copies for
    ``scales``, ``angles`` and ``flip`` are its kernel resized (and divided
    by the scale squared, so that a larger copy sums as many pixels' worth
    of evidence), turned or mirrored; the bias stays. Given ``scales=(1.0,)``
    (and ``own_scales``), it is searched at the scales it was learned for.
    """

    template: LoadedImage | LearnedFilter
    options: SearchOptions
    mask: np.ndarray | None = None
    mask_source: str | None = None
    _cache: dict[Any, Any] = field(default_factory=dict, repr=False)
    # reentrant: variants are made from the prepared template, under the lock
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def __post_init__(self) -> None:
        from waldo_cli.methods import LEARNED

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

    @property
    def learned(self) -> LearnedFilter | None:
        """The learned filter searched for, or None for a template."""
        return self.template if isinstance(self.template, LearnedFilter) else None

    @property
    def name(self) -> str:
        """The template's path (or the filter's file), for reports."""
        if isinstance(self.template, LearnedFilter):
            return self.template.name
        return self.template.path

    @property
    def _size(self) -> tuple[int, int]:
        """(h, w) of the template or of the filter's kernel."""
        if isinstance(self.template, LearnedFilter):
            return self.template.shape[:2]
        return self.template.height, self.template.width

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

    def _cached(self, key: Any, make: Callable[[], T]) -> T:
        with self._lock:
            if key not in self._cache:
                self._cache[key] = make()
            return self._cache[key]

    def _prepared_for(self, channels: int) -> tuple[np.ndarray, Any, np.ndarray | None]:
        learned = self.learned
        if learned is not None:
            # the engine preprocesses the image and correlates the kernel
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

    def _variants_for(
        self, channels: int, bound: tuple[int, int] | None, name: str | None = None
    ) -> list[tuple[Any, PreparedTemplate, Any]]:
        """The variants that fit in ``bound`` (rows, columns), where windows may lie.

        Each is made (resampled and prepared) once, when a search first
        needs it; sizes are known beforehand, so a variant larger than the
        image (or its search region) is never made.

        Raises
        ------
        TemplateTooLargeError
            No variant fits (naming the template when ``name`` is given).
        """
        every = self._specs(channels)
        if not every:
            raise WaldoError("no template variants: give at least one scale and one angle")
        chosen = [spec for spec in every if spec.fits(bound)]
        if not chosen:
            assert bound is not None  # without a bound only MAX_VARIANT_PIXELS leaves one out
            smallest = min(every, key=lambda spec: (spec.shape[0] * spec.shape[1], spec.shape))
            raise TemplateTooLargeError(
                smallest.shape,
                bound,
                name=name,
                note=f" (the smallest of {len(every)} template variant(s), at scale "
                f"{smallest.scale:g} and angle {smallest.angle:g})",
            )
        return [self._variant(channels, spec) for spec in chosen]

    def _variant(self, channels: int, spec: Any) -> tuple[Any, Any, Any]:
        """One variant (``variants.make_variant``), made and prepared once."""
        from waldo_cli.variants import make_variant

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

    def _specs(self, channels: int) -> list[Any]:
        """Every variant to be searched (``variants.list_variants``), made or not."""
        from waldo_cli.variants import list_variants

        def make() -> list[Any]:
            pixels = self._prepared_for(channels)[0]
            shape = (int(pixels.shape[0]), int(pixels.shape[1]))
            o = self.options
            return list_variants(shape, o.scales, o.angles, o.flip)

        return self._cached(("variants", channels), make)

    def _templates_for(
        self, channels: int, bound: tuple[int, int] | None, name: str | None = None
    ) -> list[tuple[Any, PreparedTemplate, Any]]:
        """What a search in ``channels`` correlates: (variant or None, prepared, mask).

        With variants, those that fit in ``bound`` (``_variants_for``).
        """
        if self.options.variants:
            return self._variants_for(channels, bound, name)
        _, prepared, mask = self._prepared_for(channels)
        return [(None, prepared, mask)]

    def _channels(self, image_shape: tuple[int, ...]) -> int:
        """The channels a search of an (H, W, C) image runs in (grey if either is grey).

        A colour filter keeps the image's own channels (and refuses a grey one).
        """
        if self.options.grey:
            return 1
        if isinstance(self.template, LearnedFilter) and self.template.channels == 3:
            return int(image_shape[2])
        return min(int(image_shape[2]), self.template.channels)

    def degenerate(self, channels: int | None = None) -> str | None:
        """Why this template has no defined score under its method, or None.

        ``ccoeff_normed`` divides by the template's variance: a flat
        template (one colour, 1×1, fully transparent, or shrunk to a point
        by a scale) has none, and OpenCV then scores every window 1;
        ``ccorr_normed`` divides by its energy: an all-black (or fully
        transparent) template has none, and every window scores 0.
        ``match_template`` keeps OpenCV's numbers; ``waldo find`` refuses
        the search with this reason.

        Parameters
        ----------
        channels : int, optional
            The channels the search runs in (default: the template's own, or
            1 with ``grey``).

        Examples
        --------
        >>> flat = LoadedImage(np.full((4, 4, 1), 9, np.float32), None, "L", "f.png")
        >>> Searcher(flat, SearchOptions()).degenerate()
        'has no variance (one flat colour, 1×1 or fully transparent)'
        >>> Searcher(flat, SearchOptions(method="sqdiff_normed")).degenerate() is None
        True
        """
        from waldo_cli.arrays import as_mask

        method = self.options.method
        # a learned filter is scored by u + Σ V·X: defined for any image
        if method not in ("ccoeff_normed", "ccorr_normed") or self.learned is not None:
            return None
        if channels is None:
            channels = 1 if self.options.grey else self.template.channels
        if self.options.variants:
            # a copy loses its variance by shrinking (to a point, at worst), at
            # any turn; an enlarged copy keeps what the template has (and is not
            # made for this: an image may never need it)
            found = [
                self._variant(channels, spec) for spec in self._specs(channels) if spec.scale <= 1.0
            ]
        else:
            found = self._templates_for(channels, None)
        for variant, prepared, mask in found:
            if mask is not None:
                masked = prepared.masked(as_mask(mask, prepared.shape), method == "ccoeff_normed")
                flat, energy = masked.flat, masked.t_sq
            else:
                flat, energy = prepared.flat, prepared.sq
            kinds = ("one flat colour, 1×1 or fully transparent", "all black or fully transparent")
            if variant is not None and (variant.scale != 1.0 or variant.angle or variant.flip):
                h, w = variant.shape
                # what made the copy degenerate: its size (or a turn) says it
                kinds = (f"{w}×{h} at scale {variant.scale:g}, angle {variant.angle:g}",) * 2
            if method == "ccoeff_normed" and flat:
                return f"has no variance ({kinds[0]})"
            if method == "ccorr_normed" and energy <= 0:
                return f"has no energy ({kinds[1]})"
        return None

    def plans_for(self, image_shape: tuple[int, ...]) -> list[Plan]:
        """What a search of an (H, W, C) image would run, without running it.

        Raises WaldoError when the template cannot be searched in such an
        image (too large, channels that cannot be reconciled, a region
        outside it).
        """
        return _lay_out([self], image_shape).plans

    def check_fits(self, width: int, height: int) -> None:
        """Refuse an image of this size before it is decoded, if the template cannot fit in it.

        Only for a plain search (variants may be smaller, padding lets any
        template fit): the size comes from the file's header.

        Raises
        ------
        TemplateTooLargeError
            The template is taller or wider than the image.
        """
        self._check_fits(width, height)

    def _check_fits(self, width: int, height: int, name: str | None = None) -> None:
        o = self.options
        h, w = self._size
        if not o.variants and o.pad == "none" and (h > height or w > width):
            raise TemplateTooLargeError((h, w), (height, width), name=name)

    def kernels_for(self, image_shape: tuple[int, ...]) -> set[str]:
        """The compiled kernels a search of an (H, W, C) image would call."""
        return {name for plan in self.plans_for(image_shape) for name in plan.kernels}

    def search(self, loaded: LoadedImage) -> SearchResult:
        """Search one image.

        Raises
        ------
        WaldoError
            The image cannot be searched (too small, channels that cannot be
            reconciled, a region outside it or smaller than the template).
        """
        [result] = _search([self], loaded)
        return result

    def search_iter(self, loaded: LoadedImage) -> Iterator[SearchResult]:
        """``search`` as an iterator of its one result (as ``MultiSearcher.search_iter``)."""
        return _search([self], loaded)

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


@dataclass
class MultiSearcher:
    """Several templates searched for in each image, with the same options.

    Each image is loaded, converted and cropped once for all of them, and
    on the FFT path each of its tiles is transformed once for all their
    variants; ``-k``, the threshold and suppression apply to each template
    alone. The results are those of each template's ``Searcher`` alone.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> image = LoadedImage(rng.random((40, 50, 1), np.float32) * 255, None, "L", "i.png")
    >>> a = LoadedImage(image.pixels[5:12, 8:15].copy(), None, "L", "a.png")
    >>> b = LoadedImage(image.pixels[20:30, 30:38].copy(), None, "L", "b.png")
    >>> both = MultiSearcher([Searcher(t, SearchOptions()) for t in (a, b)])
    >>> [(r.report.template, r.matches[0].x, r.matches[0].y) for r in both.search(image)]
    [('a.png', 8, 5), ('b.png', 30, 20)]
    """

    searchers: list[Searcher]

    def __post_init__(self) -> None:
        if not self.searchers:
            raise WaldoError("a MultiSearcher needs at least one template")
        # a learned filter sets its own method, threshold and scales
        shared = self.searchers[0].options.shared()
        if any(s.options.shared() != shared for s in self.searchers):
            raise WaldoError("the templates of a MultiSearcher share their options")

    @property
    def options(self) -> SearchOptions:
        """The options every template is searched with."""
        return self.searchers[0].options

    @property
    def threads(self) -> int:
        """Threads each search runs on."""
        return self.searchers[0].threads

    def check_fits(self, width: int, height: int) -> None:
        """``Searcher.check_fits`` for every template, naming the one that cannot fit."""
        for searcher in self.searchers:
            searcher._check_fits(width, height, name=searcher.name)

    def plans_for(self, image_shape: tuple[int, ...]) -> list[Plan]:
        """What a search of an (H, W, C) image would run, for every template, without running it."""
        return _lay_out(self.searchers, image_shape).plans

    def kernels_for(self, image_shape: tuple[int, ...]) -> set[str]:
        """The compiled kernels a search of an (H, W, C) image would call."""
        return {name for plan in self.plans_for(image_shape) for name in plan.kernels}

    def search(self, loaded: LoadedImage) -> list[SearchResult]:
        """Search one image for every template: one result per template, in their order."""
        return list(_search(self.searchers, loaded))

    def search_iter(self, loaded: LoadedImage) -> Iterator[SearchResult]:
        """The results of ``search`` one at a time, each as soon as its template is done.

        Only the score maps of the templates not yet finished are kept, so a
        caller that keeps only the reports keeps memory flat however many
        templates there are.
        """
        return _search(self.searchers, loaded)


def _rect(options: SearchOptions, image_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) of the part of an (H, W, C) image searched: the region, or all of it."""
    height, width = int(image_shape[0]), int(image_shape[1])
    if options.region is None:
        return 0, height, 0, width
    x, y, w, h = options.region
    if w < 1 or h < 1 or x < 0 or y < 0 or x + w > width or y + h > height:
        raise WaldoError(
            f"region {x},{y},{w},{h} is not inside the image ({width}×{height}): "
            "X,Y,W,H must give a rectangle of it"
        )
    return y, y + h, x, x + w


def _view(
    options: SearchOptions,
    image_shape: tuple[int, ...],
    rect: tuple[int, int, int, int],
    margins: tuple[int, ...],
) -> _View:
    """Where a search of an (H, W, C) image reads, given the largest pad widths of its templates."""
    height, width = int(image_shape[0]), int(image_shape[1])
    padded = options.pad != "none"
    top, bottom, left, right = margins
    y0, y1, x0, x1 = rect
    return _View(
        rect=rect,
        margins=(
            top if padded and y0 == 0 else 0,
            bottom if padded and y1 == height else 0,
            left if padded and x0 == 0 else 0,
            right if padded and x1 == width else 0,
        ),
        image=(height, width),
        pad=options.pad,
    )


def _lay_out(searchers: Sequence[Searcher], image_shape: tuple[int, ...]) -> _Layout:
    """Everything about a search that the image's shape decides: jobs, groups, plans."""
    o = searchers[0].options
    rect = _rect(o, image_shape)
    if o.region is not None:
        x, y, w, h = o.region
        for s in searchers:
            th, tw = s._size
            if th > h or tw > w:
                named = f" {s.name}" if len(searchers) > 1 else ""
                raise WaldoError(
                    f"region {x},{y},{w},{h} ({w}×{h}) is smaller than the template{named} "
                    f"({tw}×{th})"
                )
    channels_of = [s._channels(image_shape) for s in searchers]
    # variants larger than the searched part of the image are never made
    bound = (rect[1] - rect[0], rect[3] - rect[2])
    several = len(searchers) > 1
    templates = [
        s._templates_for(c, bound, s.name if several else None)
        for s, c in zip(searchers, channels_of, strict=True)
    ]
    shapes = [p.shape[:2] for found in templates for _, p, _ in found]
    widths = [pad_widths(shape) for shape in shapes]
    margins = tuple(max(w[axis][side] for w in widths) for axis in (0, 1) for side in (0, 1))
    view = _view(o, image_shape, rect, margins)
    views = {c: view for c in set(channels_of)}
    rows, cols = view.shape
    jobs: list[list[_Job]] = []
    for owner, (found, channels) in enumerate(zip(templates, channels_of, strict=True)):
        own = []
        for index, (variant, prepared, mask) in enumerate(found):
            h, w = prepared.shape[:2]
            job = _Job(owner, index, variant, prepared, mask, channels, view.windows((h, w)))
            if variant is None and (h > rows or w > cols):
                name = searchers[owner].name if len(searchers) > 1 else None
                raise TemplateTooLargeError((h, w), (rows, cols), name=name)
            own.append(job)
        jobs.append(own)
    groups: list[tuple[list[_Job], list[Plan]]] = []
    group: list[_Job] = []
    size = 0
    runnable = [job for own in jobs for job in own if job.runs]
    methods = [s.options.method for s in searchers]
    threads = searchers[0].threads
    for position, job in enumerate(runnable):
        # a group is correlated at once: one channel count and one method
        # (templates and learned filters are never mixed)
        if group and (group[-1].channels, methods[group[-1].owner]) != (
            job.channels,
            methods[job.owner],
        ):
            groups.append((group, _plan_group(o, view, group, threads, methods[group[0].owner])))
            group, size = [], 0
        h, w = job.shape
        size += 4 * max(0, rows - h + 1) * max(0, cols - w + 1)
        group.append(job)
        if size >= _VARIANT_BYTES or position == len(runnable) - 1:
            groups.append((group, _plan_group(o, view, group, threads, methods[group[0].owner])))
            group, size = [], 0
    return _Layout(views, jobs, groups)


def _plan_group(
    o: SearchOptions, view: _View, group: list[_Job], threads: int, method: str
) -> list[Plan]:
    """The plans of one group of jobs, on the searched array (padded already)."""
    shape = (*view.shape, group[0].channels)
    if len(group) == 1 and group[0].variant is None:
        job = group[0]
        return [
            plan_match(
                shape,
                job.prepared,
                method,
                engine=o.engine,
                mask=job.mask,
                convolve=o.convolve,
                threads=threads,
            )
        ]
    plans = plan_matches(
        shape,
        [job.prepared for job in group],
        method,
        engine=o.engine,
        masks=[job.mask for job in group],
        convolve=o.convolve,
        threads=threads,
    )
    if any(plan is None for plan in plans):  # channels that cannot be reconciled
        raise WaldoError("a template does not fit the image it is searched in")
    return [plan for plan in plans if plan is not None]


def _pixels_in(pixels: np.ndarray, channels: int) -> np.ndarray:
    """The image in the channels a search runs in (luma for a grey search of colour)."""
    if pixels.shape[2] == channels:
        return pixels
    if channels == 1 and pixels.shape[2] == 3:
        return to_grey(pixels)
    raise WaldoError(f"cannot search a {pixels.shape[2]}-channel image in {channels} channels")


def _search(searchers: Sequence[Searcher], loaded: LoadedImage) -> Iterator[SearchResult]:
    """Search one image for every searcher's template; one result per searcher, in order.

    The groups of the layout run in order, their maps handed to the
    template they belong to; each template is finished (peaks, report) as
    soon as its last map is in, so only unfinished maps are kept.
    """
    layout = _lay_out(searchers, loaded.pixels.shape)
    o = searchers[0].options
    # the one-time loading of the kernels is not the search's own time
    compile_seconds = load_kernels(layout.plans)
    started = time.perf_counter()
    pixels = {c: _pixels_in(loaded.pixels, c) for c in layout.views}
    arrays: dict[int, np.ndarray] = {}
    pending: dict[tuple[int, int], np.ndarray] = {}
    groups = iter(layout.groups)

    def searched(channels: int) -> np.ndarray:
        if channels not in arrays:
            arrays[channels] = layout.views[channels].crop(pixels[channels])
        return arrays[channels]

    def run_next_group() -> None:
        group, plans = next(groups)
        array = searched(group[0].channels)
        method = searchers[group[0].owner].options.method
        if len(group) == 1 and group[0].variant is None:
            job = group[0]
            maps: list[np.ndarray | None] = [
                match_template(
                    array,
                    job.prepared,
                    method,
                    mask=job.mask,
                    convolve=o.convolve,
                    plan=plans[0],
                )
            ]
        else:
            maps = match_templates(
                array,
                [job.prepared for job in group],
                method,
                masks=[job.mask for job in group],
                convolve=o.convolve,
                plans=list(plans),
            )
        for job, scores in zip(group, maps, strict=True):
            assert scores is not None
            pending[(job.owner, job.index)] = _windows_of(scores, job, layout.views[job.channels])

    def maps_of(owner: int) -> Iterator[np.ndarray | None]:
        for job in layout.jobs[owner]:
            if not job.runs:
                yield None
                continue
            while (owner, job.index) not in pending:
                run_next_group()
            yield pending.pop((owner, job.index))

    for owner, searcher in enumerate(searchers):
        jobs = layout.jobs[owner]
        view = layout.views[jobs[0].channels]
        which = None
        if searcher.options.variants:
            scores, which = _merge_variants(searcher, jobs, view, maps_of(owner))
        else:
            values = next(maps_of(owner))
            assert values is not None  # a template alone always runs (or raised)
            centred = o.pad != "none"
            scores = ScoreMap(
                values,
                CENTRE if centred else TOP_LEFT,
                jobs[0].shape,
                _map_origin(jobs[0], centred),
            )
        plans = [
            plan
            for group, group_plans in layout.groups
            for job, plan in zip(group, group_plans, strict=True)
            if job.owner == owner
        ]
        yield _result(
            searcher,
            loaded,
            pixels[jobs[0].channels],
            (scores, which, jobs, view),
            plans,
            (time.perf_counter() - started, compile_seconds),
        )


def _windows_of(scores: np.ndarray, job: _Job, view: _View) -> np.ndarray:
    """A job's map over the searched array cut to the windows it may have."""
    r0, r1, c0, c1 = job.windows
    oy, ox = view.origin
    return scores[r0 - oy : r1 - oy + 1, c0 - ox : c1 - ox + 1]


def _map_origin(job: _Job, centred: bool) -> tuple[int, int]:
    """Where a job's (cut) map starts on the image: its first window's top-left or centre."""
    r0, _, c0, _ = job.windows
    if not centred:
        return r0, c0
    h, w = job.shape
    return r0 + (h - 1) // 2, c0 + (w - 1) // 2


def _merge_variants(
    searcher: Searcher, jobs: list[_Job], view: _View, maps: Iterator[np.ndarray | None]
) -> tuple[ScoreMap, np.ndarray]:
    """The best score over the variants at each window centre in the rect, and its variant.

    NaN, and variant -1, where no variant's window is centred.
    """
    y0, y1, x0, x1 = view.rect
    offsets = [
        (origin[0] - y0, origin[1] - x0) for origin in (_map_origin(job, True) for job in jobs)
    ]
    best, which = best_over_variants(
        (y1 - y0, x1 - x0), maps, [job.shape for job in jobs], searcher.options.method, offsets
    )
    # no variant's window is centred there: not a place any match can be
    best[which < 0] = np.nan
    return ScoreMap(best, CENTRE, searcher._size, (y0, x0)), which


def _to_image(peak: Match, scores: ScoreMap, job: _Job, searcher: Searcher) -> Match:
    """A peak of a map turned into a match in image coordinates: the one translation."""
    h, w = job.shape
    dy, dx = ((h - 1) // 2, (w - 1) // 2) if scores.indexed_by == CENTRE else (0, 0)
    x = peak.x - dx + scores.origin[1]
    y = peak.y - dy + scores.origin[0]
    variant = job.variant
    corners = None
    if variant is not None and (variant.scale != 1.0 or variant.angle % 360 != 0):
        from waldo_cli.variants import template_corners

        corners = template_corners(variant, searcher._size, x, y)
    return Match(
        x=x,
        y=y,
        width=w,
        height=h,
        score=peak.score,
        scale=None if variant is None else variant.scale,
        angle=None if variant is None else variant.angle,
        flip=None if variant is None else variant.flip,
        cx=x + w / 2,
        cy=y + h / 2,
        margin=peak.margin,
        template=searcher.name,
        corners=corners,
    )


def _best_place(values: np.ndarray, method: str) -> tuple[int, int] | None:
    """(row, column) of the best score in a map (the first, in reading order), or None."""
    if values.size == 0:
        return None
    lower = lower_is_better(method)
    # argmax and argmin stop at a NaN: one pass when there is none
    flat = int(np.argmin(values) if lower else np.argmax(values))
    if np.isnan(values.flat[flat]):
        if np.isnan(values).all():
            return None
        flat = int(np.nanargmin(values) if lower else np.nanargmax(values))
    row, col = divmod(flat, values.shape[1])
    return row, col


def _result(
    searcher: Searcher,
    loaded: LoadedImage,
    pixels: np.ndarray,
    found: tuple[ScoreMap, np.ndarray | None, list[_Job], _View],
    plans: list[Plan],
    timing: tuple[float, float],
) -> SearchResult:
    """Peaks, matches in image coordinates, the best place, and the report of one template."""
    from waldo_cli.results import float32_value

    scores, which, jobs, view = found
    o = searcher.options

    def job_at(y: float, x: float) -> _Job:
        return jobs[0] if which is None else jobs[int(which[round(y), round(x)])]

    matches = [
        _to_image(peak, scores, job_at(peak.y, peak.x), searcher)
        for peak in searcher._peaks(scores.values)
    ]
    best = None
    place = _best_place(scores.values, o.method)
    if place is not None:
        y, x = place
        score = float(scores.values[y, x])
        spot = _to_image(Match(x, y, 1, 1, score), scores, job_at(y, x), searcher)
        best = {"x": spot.x, "y": spot.y, "score": float32_value(score)}
    y0, y1, x0, x1 = view.rect
    if o.variants:
        extra: dict[str, Any] = {
            "variants": {
                "scales": list(o.scales),
                "angles": list(o.angles),
                "flip": o.flip,
                "searched": len(jobs),
                # larger than the image (or its region, or MAX_VARIANT_PIXELS): never made
                "skipped": len(searcher._specs(jobs[0].channels)) - len(jobs),
            }
        }
    else:
        from waldo_cli.params import template_param_counts

        h, w = jobs[0].shape
        counts = template_param_counts(
            y1 - y0, x1 - x0, h, w, pixels.shape[2], bias=searcher.learned is not None
        )
        extra = {"parameters": counts}
    learned = searcher.learned
    if learned is not None and o.variants:
        from waldo_cli.params import template_param_counts

        # the learned layer as it was learned (its copies are resampled from it)
        h, w, channels = learned.shape
        if h <= y1 - y0 and w <= x1 - x0:
            extra["parameters"] = template_param_counts(y1 - y0, x1 - x0, h, w, channels, bias=True)
    seconds, compile_seconds = timing
    th, tw = searcher._size
    report = FindReport(
        image=loaded.path,
        template=searcher.name,
        method=o.method,
        image_size=(loaded.width, loaded.height),
        template_size=(tw, th),
        matches=matches,
        seconds=seconds,
        threshold=o.threshold,
        extra={
            **({"filter": learned.name} if learned is not None else {}),
            "engine": engines_used(plans),
            "threads": searcher.threads,
            "mask": searcher.mask_source,
            "pad": o.pad,
            "convolve": o.convolve,
            "scores_indexed_by": scores.indexed_by,
            "compile_seconds": round(compile_seconds, 6),
            **extra,
            "region": None if o.region is None else list(o.region),
            "grey": o.grey,
            "best": best,
        },
    )
    return SearchResult(report=report, pixels=pixels, scores=scores, plans=tuple(plans))
