"""Windows of a raster: how clear each patch window is, and filling the gaps a window sees."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import distance_transform_edt


def window_clear_counts(clear: np.ndarray, patch: int, stride: int) -> np.ndarray:
    """Clear pixels in every patch window, from a summed-area table.

    The table makes it O(pixels), not O(windows × patch²).
    """
    height, width = clear.shape
    n_rows = (height - patch) // stride + 1
    n_cols = (width - patch) // stride + 1
    integral = np.zeros((height + 1, width + 1), dtype=np.int64)
    integral[1:, 1:] = clear.cumsum(0).cumsum(1)
    r0 = np.arange(n_rows) * stride
    c0 = np.arange(n_cols) * stride
    return (integral[np.ix_(r0 + patch, c0 + patch)] - integral[np.ix_(r0, c0 + patch)]
            - integral[np.ix_(r0 + patch, c0)] + integral[np.ix_(r0, c0)])


def fill_unclear(dn: np.ndarray, clear: np.ndarray, inplace: bool = False,
                 reach: int | None = None) -> np.ndarray:
    """`dn` (bands, h, w) with every unclear pixel replaced by the clear surface mirrored into it.

    The surface is mirrored across the unclear pixel's nearest clear pixel (`inplace`: in `dn`
    itself, which is safe because only unclear pixels are written and only clear ones read).
    With `reach`, pixels farther than that from every clear pixel are left as they are: then
    a pixel's fill depends only on the pixels within 2 × `reach` of it, which is what lets a
    chunk with that much context fill its pixels as a map of the whole grid would.

    The networks see context beyond the pixels they label. At a scene edge or around a cloud
    that context is the real surface reflected into the gap, with its texture, so a window
    running off the data sees land where there is land. Zeros or any constant (read as water or
    snow) and repeating the nearest pixel (smooth streaks, read as water) both bias edges.
    """
    if clear.all() or not clear.any():
        return dn
    near_r, near_c = distance_transform_edt(~clear, return_distances=False, return_indices=True)
    rows, cols = np.nonzero(~clear)  # clear pixels are their own nearest: left as they are
    near_r, near_c = near_r[rows, cols], near_c[rows, cols]
    if reach is not None:
        close = (near_r - rows) ** 2 + (near_c - cols) ** 2 <= reach * reach
        rows, cols, near_r, near_c = rows[close], cols[close], near_r[close], near_c[close]
    mirror_r, mirror_c = 2 * near_r - rows, 2 * near_c - cols
    inside = ((mirror_r >= 0) & (mirror_r < clear.shape[0]) & (mirror_c >= 0)
              & (mirror_c < clear.shape[1]))
    np.clip(mirror_r, 0, clear.shape[0] - 1, out=mirror_r)
    np.clip(mirror_c, 0, clear.shape[1] - 1, out=mirror_c)
    usable = inside & clear[mirror_r, mirror_c]
    out = dn if inplace else dn.copy()
    out[:, rows, cols] = dn[:, np.where(usable, mirror_r, near_r), np.where(usable, mirror_c, near_c)]
    return out
