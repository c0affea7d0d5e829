"""Cutting a chunk of the band stack into overlapping georeferenced patches."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from geolulc.core.windows import window_clear_counts


@dataclass
class Patches:
    """Patches of one chunk: pixels (N, bands, P, P) and the map cell (row, col) of each."""

    pixels: np.ndarray
    rows: np.ndarray
    cols: np.ndarray


def clear_cells(
    clear: np.ndarray, patch: int, stride: int, min_clear: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """(row, col) of every window whose share of clear pixels reaches `min_clear`.

    A window needs one clear pixel at least, whatever `min_clear`: one without any is no data,
    never classified from the fill alone.
    """
    counts = window_clear_counts(clear, patch, stride)
    rows, cols = np.nonzero(counts >= max(min_clear * patch * patch, 1))
    return rows, cols


def cut_patches(
    dn: np.ndarray, clear: np.ndarray, patch: int, stride: int, first_row: int = 0,
    min_clear: float = 0.5,
) -> Patches:
    """Cut every patch whose share of clear pixels reaches `min_clear`.

    `dn` (bands, h, w) covers whole cell rows of the read grid, starting at map row `first_row`;
    patches that are mostly no-data or cloud are skipped, and their cells stay no-data.
    """
    keep_r, keep_c = clear_cells(clear, patch, stride, min_clear)
    windows = sliding_window_view(dn, (patch, patch), axis=(1, 2))[:, ::stride, ::stride]
    pixels = np.ascontiguousarray(windows[:, keep_r, keep_c].transpose(1, 0, 2, 3))
    return Patches(pixels, keep_r + first_row, keep_c)
