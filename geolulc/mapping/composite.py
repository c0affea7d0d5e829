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

from pathlib import Path

import numpy as np

from geolulc.core.grid import PatchGrid
from geolulc.core.labels import choose_labels
from geolulc.defaults import PROBABILITY_COMPOSITES
from geolulc.io.blocks import row_blocks
from geolulc.io.rasters import NODATA
from geolulc.io.rowstore import RowStore, rows_of
from geolulc.mapping.chunks import ChunkResult
from geolulc.mapping.classification import ChunkTotals, Classification

#: Most acquisitions one composite takes: its sums are uint16 (≤ 250 × 262) and counts uint8.
MAX_COMPOSITE_ACQUISITIONS = 255


class ProbabilityComposite:
    """Running sums of classified acquisitions on one grid; `result()` gives the composite.

    With `folder`, the sums (2.2 GB for a whole tile), the votes and the composite's
    probabilities are kept in nameless files there (`RowStore`), read and written a chunk's
    rows at a time, instead of in memory.
    """

    def __init__(self, grid: PatchGrid, n_classes: int, method: str,
                 label_groups: list[list[int]] | None = None, folder: Path | None = None
                 ) -> None:
        if method not in PROBABILITY_COMPOSITES:
            raise ValueError(f"unknown probability composite {method!r}")
        self.grid, self.method, self.label_groups = grid, method, label_groups
        self.folder = folder
        shape = (grid.rows, grid.cols, n_classes)
        self.sums = self._array(shape, np.uint16)
        self.votes = self._array(shape, np.uint8) if method == "mode" else None
        self.clear = np.zeros((grid.rows, grid.cols), dtype=np.uint8)
        self.count = np.zeros((grid.rows * grid.stride, grid.cols * grid.stride), dtype=np.uint8)
        self.acquisitions = 0
        self.patches = self.masked = 0
        self.timings: dict[str, float] = {}

    def _array(self, shape: tuple[int, int, int], dtype: type) -> np.ndarray | RowStore:
        """A zeroed whole-grid array: in a nameless file of `folder`, else in memory."""
        if self.folder is None:
            return np.zeros(shape, dtype=dtype)
        return RowStore(Path(self.folder) / "composite", shape, dtype, temporary=True)

    def add(self, result: Classification) -> None:
        """Add one acquisition's classification (its clear cells) to the sums."""
        stride = self.grid.stride
        for rows in row_blocks(result.labels.shape, 1 << 22):  # ~4 M cells at a time
            self._fold(rows.start, result.labels[rows], rows_of(result.probabilities, rows),
                       result.count[rows.start * stride:rows.stop * stride])
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
        n = len(labels)
        sums = _rows(self.sums, row0, n)
        votes = None if self.votes is None else _rows(self.votes, row0, n)
        for block in row_blocks(labels.shape, 1 << 16):  # no whole-map temporaries
            valid = labels[block] != NODATA
            sums[block] += probabilities[block] * valid[..., None]
            self.clear[row0:row0 + n][block] += valid
            if votes is not None:
                for k in range(votes.shape[2]):
                    votes[block][..., k] += labels[block] == k
        _put_rows(self.sums, row0, sums)
        _put_rows(self.votes, row0, votes)
        top = row0 * self.grid.stride
        mine = self.count[top:top + count.shape[0]]
        np.add(mine, count, out=mine, where=mine < 255)

    def result(self) -> Classification:
        """The composite: mean probabilities, the label they (or the votes) give, the counts."""
        rows_, cols_, k = self.sums.shape
        labels = np.full((rows_, cols_), NODATA, dtype=np.uint8)
        probabilities = self._array((rows_, cols_, k), np.uint8)
        for rows in row_blocks(self.clear.shape, 1 << 20):
            n = len(self.clear[rows])
            clear, sums = self.clear[rows], _rows(self.sums, rows.start, n)
            seen = clear > 0
            mean = (sums + clear[..., None] // 2) // np.maximum(clear, 1)[..., None]
            _put_rows(probabilities, rows.start, mean.astype(np.uint8))
            if self.votes is not None:  # most votes; equal votes: the higher mean probability
                votes = _rows(self.votes, rows.start, n).astype(np.uint32)
                chosen = (votes * 65536 + sums).argmax(axis=2)
            else:  # the mean probabilities' label, as one acquisition's is chosen
                chosen = choose_labels(sums, self.label_groups)
            labels[rows] = np.where(seen, chosen, NODATA)
        return Classification(self.grid, labels,
                              probabilities.array() if isinstance(probabilities, RowStore)
                              else probabilities, self.patches, self.masked, self.timings,
                              self.count)


def _rows(array: np.ndarray | RowStore, row0: int, n: int) -> np.ndarray:
    """Rows of a whole-grid array: a view of one in memory, a copy read from a store."""
    return array.read(row0, n) if isinstance(array, RowStore) else array[row0:row0 + n]


def _put_rows(array: np.ndarray | RowStore | None, row0: int, rows: np.ndarray | None) -> None:
    """Store rows at `row0` (rows that `_rows` gave as a view are already there)."""
    if isinstance(array, RowStore) and rows is not None:
        array.write(row0, rows)
    elif isinstance(array, np.ndarray) and rows is not None and not np.may_share_memory(array, rows):
        array[row0:row0 + len(rows)] = rows
