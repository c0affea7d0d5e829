"""What classifying one date on a grid gives: labels, probabilities, counts and the chunk cache."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from geolulc.core.grid import PatchGrid
from geolulc.errors import NoDataError
from geolulc.io.blocks import row_blocks
from geolulc.io.rasters import NODATA, PROB_SCALE
from geolulc.io.rowstore import rows_of
from geolulc.mapping.chunks import ChunkCache, ChunkResult


class ChunkSink(Protocol):
    """What takes each classified chunk as it comes (`fold_grid`): a map, a composite's sums."""

    def add_chunk(self, result: ChunkResult) -> None:
        """Take the rows `result` holds."""


@dataclass
class ChunkTotals:
    """What folding one date's chunks leaves besides the sink's own arrays."""

    patches: int  # cells classified
    masked_pixels: int
    timings: dict[str, float]
    cache: ChunkCache | None = None  # finished chunks, removed once the map is written

    def require_patches(self, what: str) -> None:
        """A map without a single classified patch is an error, not an empty map.

        Its chunk cache, which holds nothing worth resuming, is removed.
        """
        if self.patches == 0:
            if self.cache:
                self.cache.clear()
            raise NoDataError(f"{what}: no clear patch to classify (the scenes do not cover "
                               "the area, or every patch is mostly cloud or no data)")


class Assembly:
    """A date's chunks put together into whole-grid labels, probabilities and counts.

    With `cached`, the probabilities are not held: the chunk cache keeps them in a file as
    chunks are put (`ChunkCache.probabilities`), so a whole tile's 1.1 GB stays out of memory.
    """

    def __init__(self, grid: PatchGrid, n_classes: int, cached: bool = False) -> None:
        self.grid = grid
        self.count = np.zeros((grid.rows * grid.stride, grid.cols * grid.stride), dtype=np.uint8)
        self.labels = np.full((grid.rows, grid.cols), NODATA, dtype=np.uint8)
        self.probabilities = (None if cached else
                              np.zeros((grid.rows, grid.cols, n_classes), dtype=np.uint8))

    def add_chunk(self, result: ChunkResult) -> None:
        """Put the chunk's rows in place."""
        rows = slice(result.row0, result.row0 + len(result.labels))
        self.labels[rows] = result.labels
        if self.probabilities is not None:
            self.probabilities[rows] = result.probs
        top = result.row0 * self.grid.stride
        self.count[top:top + result.count.shape[0]] = result.count

    def classification(self, totals: ChunkTotals) -> Classification:
        """The assembled date with its totals."""
        probabilities = self.probabilities
        if probabilities is None:
            if totals.cache is None:
                raise ValueError("an Assembly of cached chunks was folded without a cache")
            probabilities = totals.cache.probabilities()
        return Classification(self.grid, self.labels, probabilities, totals.patches,
                              totals.masked_pixels, totals.timings, self.count, totals.cache)


@dataclass
class Classification:
    """Per-cell results of classifying one date on a grid."""

    grid: PatchGrid
    labels: np.ndarray  # uint8 class codes, NODATA where not classified
    #: uint8 (rows, cols, classes), probability × PROB_SCALE; mapped from the chunk cache's
    #: file when there is one (pages come in as they are read)
    probabilities: np.ndarray
    patches: int  # cells classified (patches of a classifier, pixels of a per-pixel model)
    masked_pixels: int
    timings: dict[str, float]
    count: np.ndarray  # uint8 clear observations per input pixel of the cells' extent
    cache: ChunkCache | None = None  # finished chunks, removed once the map is written

    @property
    def confidence(self) -> np.ndarray:
        """Probability of the mapped class in percent, NODATA where not classified."""
        conf = np.empty(self.labels.shape, dtype=np.uint8)
        for rows in row_blocks(self.probabilities.shape[:2], 1 << 18):  # no whole-map temporaries
            labels = np.minimum(self.labels[rows], self.probabilities.shape[2] - 1)  # NODATA: any
            top = np.take_along_axis(rows_of(self.probabilities, rows), labels[..., None].astype(np.intp),
                                     axis=2)[..., 0].astype(np.uint16)
            conf[rows] = (top * 100 + PROB_SCALE // 2) // PROB_SCALE
        conf[self.labels == NODATA] = NODATA
        return conf
