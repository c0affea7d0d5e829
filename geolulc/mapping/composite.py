"""Composites of classified acquisitions: the mean of each class's probability, or the mode.

Each acquisition of the period is classified on its own (its clear cells only); the composite
keeps running sums per cell — the sum of each class's probability, the votes for each class
and the number of clear observations — so its memory does not grow with the number of
acquisitions. The label is the mean probabilities' label, as a single acquisition's is chosen
(the most probable class, or a two-level model's group first) for ``mean-probability``, or the
most frequent label with ties broken by the mean probability (``mode``). This is how Dynamic
World's own composites are made from its per-image probabilities.
"""

from __future__ import annotations

import numpy as np

from geolulc.core.grid import PatchGrid
from geolulc.core.labels import choose_labels
from geolulc.defaults import PROBABILITY_COMPOSITES
from geolulc.io.blocks import row_blocks
from geolulc.io.rasters import NODATA
from geolulc.mapping.chunks import ChunkResult
from geolulc.mapping.classification import ChunkTotals, Classification

#: Most acquisitions one composite takes: its sums are uint16 (≤ 250 × 262) and counts uint8.
MAX_COMPOSITE_ACQUISITIONS = 255


class ProbabilityComposite:
    """Running sums of classified acquisitions on one grid; `result()` gives the composite."""

    def __init__(self, grid: PatchGrid, n_classes: int, method: str,
                 label_groups: list[list[int]] | None = None) -> None:
        if method not in PROBABILITY_COMPOSITES:
            raise ValueError(f"unknown probability composite {method!r}")
        self.grid, self.method, self.label_groups = grid, method, label_groups
        self.sums = np.zeros((grid.rows, grid.cols, n_classes), dtype=np.uint16)
        self.votes = (np.zeros((grid.rows, grid.cols, n_classes), dtype=np.uint8)
                      if method == "mode" else None)
        self.clear = np.zeros((grid.rows, grid.cols), dtype=np.uint8)
        self.count = np.zeros((grid.rows * grid.stride, grid.cols * grid.stride), dtype=np.uint8)
        self.acquisitions = 0
        self.patches = self.masked = 0
        self.timings: dict[str, float] = {}

    def add(self, result: Classification) -> None:
        """Add one acquisition's classification (its clear cells) to the sums."""
        self._fold(0, result.labels, result.probabilities, result.count)
        self.add_totals(ChunkTotals(result.patches, result.masked_pixels, result.timings))

    def add_chunk(self, result: ChunkResult) -> None:
        """Add the rows of one classified chunk (`fold_grid`); `add_totals` ends the acquisition."""
        self._fold(result.row0, result.labels, result.probs, result.count)

    def add_totals(self, totals: ChunkTotals) -> None:
        """Count one acquisition whose chunks were all added."""
        if self.acquisitions >= MAX_COMPOSITE_ACQUISITIONS:
            raise ValueError(f"a composite takes at most {MAX_COMPOSITE_ACQUISITIONS} acquisitions")
        self.acquisitions += 1
        self.patches = int(np.count_nonzero(self.clear))  # cells seen clear at least once
        self.masked += totals.masked_pixels
        for stage, seconds in totals.timings.items():
            self.timings[stage] = self.timings.get(stage, 0.0) + seconds

    def _fold(self, row0: int, labels: np.ndarray, probabilities: np.ndarray,
              count: np.ndarray) -> None:
        """Rows `row0`… of one acquisition into the sums, votes, clear and count."""
        for block in row_blocks(labels.shape, 1 << 16):  # no whole-map temporaries
            rows = slice(row0 + block.start, row0 + min(block.stop, len(labels)))
            valid = labels[block] != NODATA
            self.sums[rows] += probabilities[block] * valid[..., None]
            self.clear[rows] += valid
            if self.votes is not None:
                for k in range(self.votes.shape[2]):
                    self.votes[rows][..., k] += labels[block] == k
        top = row0 * self.grid.stride
        mine = self.count[top:top + count.shape[0]]
        np.add(mine, count, out=mine, where=mine < 255)

    def result(self) -> Classification:
        """The composite: mean probabilities, the label they (or the votes) give, the counts."""
        rows_, cols_, k = self.sums.shape
        labels = np.full((rows_, cols_), NODATA, dtype=np.uint8)
        probabilities = np.zeros((rows_, cols_, k), dtype=np.uint8)
        for rows in row_blocks(self.clear.shape, 1 << 16):
            clear = self.clear[rows]
            seen = clear > 0
            mean = (self.sums[rows] + clear[..., None] // 2) // np.maximum(clear, 1)[..., None]
            probabilities[rows] = mean.astype(np.uint8)
            if self.votes is not None:  # most votes; equal votes: the higher mean probability
                key = self.votes[rows].astype(np.uint32) * 65536 + self.sums[rows]
                chosen = key.argmax(axis=2)
            else:  # the mean probabilities' label, as one acquisition's is chosen
                chosen = choose_labels(self.sums[rows], self.label_groups)
            labels[rows] = np.where(seen, chosen, NODATA)
        return Classification(self.grid, labels, probabilities, self.patches, self.masked,
                              self.timings, self.count)
