"""Bands whose pixels nest in the read grid, resampled in-process with GDAL's own weights.

A Sentinel-2 tile mapped in its own UTM zone is the usual case: the 20 m and 60 m bands lie on
the 10 m grid (same CRS, pixel size an integer multiple, edges on grid lines). There the warped
VRT's work reduces to fixed 1-D weights per row and column, which numpy applies several times
faster than GDAL's general warper (with the other read changes, the read stage of
`benchmarks/bench_tile.py` went from 171 s to 55 s for a tile). The results are GDAL's:

- bilinear: each grid pixel centre at source position u takes the source pixels floor(u - ½)
  and the next, weighted 1 - f and f (f the fraction); taps outside the source or on no data
  (0, declared by the file or not) are left out and the others renormalised, and the value is
  rounded half up; a pixel whose centre lies outside the source, or on a no-data source pixel,
  is no data;
- nearest: the source pixel under the grid pixel's centre.

`tests/test_read_nested.py` compares every band with a warped VRT's output on the real product.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pyproj import CRS
from rasterio.io import DatasetReader
from rasterio.windows import Window

from geolulc.core.grid import PatchGrid
from geolulc.io.blocks import row_blocks

#: Accumulated weight below which GDAL's bilinear kernel gives no data.
MIN_WEIGHT = 1e-5


@dataclass(frozen=True)
class Taps:
    """1-D bilinear taps of a run of grid pixels.

    The taps are source indices and weights, and which grid pixels have their centre inside the
    source.
    """

    first: np.ndarray  # int64 source index of the left/upper tap
    weight: np.ndarray  # float64 weight of the right/lower tap (the left one has 1 - weight)
    inside: np.ndarray  # bool


def taps(start: int, size: int, origin: int, factor: int, n_src: int) -> Taps:
    """Taps of grid pixels start…start+size-1 for a source nested in the grid.

    The source's pixel 0 begins at grid pixel `origin` and each source pixel spans `factor` grid
    pixels (`n_src` pixels in all).
    """
    u = (np.arange(start, start + size) - origin + 0.5) / factor
    first = np.floor(u - 0.5).astype(np.int64)
    return Taps(first, (u - 0.5) - first, (u >= 0) & (u < n_src))


class NestedBand:
    """A band file whose pixels nest in the read grid (`fit`), read window by window."""

    def __init__(self, src: DatasetReader, factor: int, row0: int, col0: int, grid: PatchGrid,
                 bilinear: bool) -> None:
        self.src_dataset = src
        self.factor, self.row0, self.col0 = factor, row0, col0
        self.bilinear = bilinear and factor > 1
        self.crs = grid.crs.to_wkt()
        self.transform = grid.read_transform
        self.height, self.width = grid.read_shape

    @classmethod
    def fit(cls, src: DatasetReader, grid: PatchGrid, bilinear: bool = True) -> NestedBand | None:
        """The band as a `NestedBand` if its pixels nest in the grid's, else None (warp it)."""
        t, g = src.transform, grid.read_transform
        if (src.crs is None or CRS.from_user_input(src.crs) != grid.crs or t.b or t.d or g.b
                or g.d or src.nodata not in (None, 0) or t.a <= 0 or t.e >= 0):
            return None
        factor = t.a / g.a
        if abs(factor - round(factor)) > 1e-9 or abs(t.e / g.e - factor) > 1e-9 or factor < 1:
            return None
        col, row = (t.c - g.c) / g.a, (t.f - g.f) / g.e
        if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
            return None
        return cls(src, round(factor), round(row), round(col), grid, bilinear)

    def read(self, band: int, window: Window) -> np.ndarray:
        """The grid window's pixels, 0 (no data) where the source does not reach."""
        h, w = int(window.height), int(window.width)
        r0, c0 = int(window.row_off), int(window.col_off)
        src = self.src_dataset
        dtype = src.dtypes[band - 1]
        if not self.bilinear:  # nearest (or the grid itself): the source pixel under each centre
            k = self.factor
            rows = (np.arange(r0, r0 + h) - self.row0) // k
            cols = (np.arange(c0, c0 + w) - self.col0) // k
            rin = np.flatnonzero((rows >= 0) & (rows < src.height))
            cin = np.flatnonzero((cols >= 0) & (cols < src.width))
            out = np.zeros((h, w), dtype=dtype)
            if len(rin) and len(cin):
                top, left = rows[rin[0]], cols[cin[0]]
                block = src.read(band, window=Window(left, top, cols[cin[-1]] - left + 1,
                                                     rows[rin[-1]] - top + 1))
                if k > 1:  # each source pixel covers k × k grid pixels, the first ones cut
                    dr, dc = (r0 + rin[0] - self.row0) % k, (c0 + cin[0] - self.col0) % k
                    block = block.repeat(k, axis=0)[dr:dr + len(rin)].repeat(k, axis=1)
                    block = block[:, dc:dc + len(cin)]
                out[rin[0]:rin[-1] + 1, cin[0]:cin[-1] + 1] = block
            return out
        rt = taps(r0, h, self.row0, self.factor, src.height)
        ct = taps(c0, w, self.col0, self.factor, src.width)
        out = np.zeros((h, w), dtype=dtype)
        if not (rt.inside.any() and ct.inside.any()):
            return out
        top = max(int(rt.first[rt.inside].min()), 0)
        bottom = min(int(rt.first[rt.inside].max()) + 2, src.height)
        left = max(int(ct.first[ct.inside].min()), 0)
        right = min(int(ct.first[ct.inside].max()) + 2, src.width)
        block = src.read(band, window=Window(left, top, right - left, bottom - top))
        rows, cols = np.flatnonzero(rt.inside), np.flatnonzero(ct.inside)
        target = out[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        rt = Taps(rt.first[rows], rt.weight[rows], rt.inside[rows])
        ct = Taps(ct.first[cols], ct.weight[cols], ct.inside[cols])
        # dyadic weights (factor 2 or 4) are exact in float32; others need GDAL's doubles
        exact = np.float32 if self.factor in (2, 4) else np.float64
        beyond = any((t.first < 0).any() or (t.first + 1 >= n).any()
                     for t, n in ((rt, src.height), (ct, src.width)))
        limit = np.iinfo(dtype).max
        for part in row_blocks(target.shape):  # blocks whose temporaries stay in the cache
            sub = Taps(rt.first[part], rt.weight[part], rt.inside[part])
            lo = max(int(sub.first.min()) - top, 0)
            hi = min(int(sub.first.max()) + 2 - top, block.shape[0])
            source = block[lo:hi]
            value = _interpolate(source.astype(exact), sub, ct, top + lo, left)
            # renormalise over valid taps: DN 0 is Sentinel-2's no data, declared or not
            if beyond or not source.all():
                valid = source != 0
                weight = _interpolate(valid.astype(exact), sub, ct, top + lo, left)
                # GDAL gives no data where the source pixel under the centre is no data
                centre = valid[np.ix_(sub.first + (sub.weight >= 0.5) - top - lo,
                                      ct.first + (ct.weight >= 0.5) - left)]
                value = np.divide(value, weight, out=np.zeros_like(value),
                                  where=(weight >= MIN_WEIGHT) & centre)
            value += 0.5
            np.floor(value, out=value)
            target[part] = np.clip(value, 0, limit)
        return out


def _axis(x: np.ndarray, t: Taps, offset: int, axis: int) -> np.ndarray:
    """Bilinear taps along one axis of the source block `x` (which starts at source index `offset`).

    Taps outside the block (beyond the source) contribute nothing.
    """
    n = x.shape[axis]
    first = t.first - offset
    weight = t.weight.astype(x.dtype)
    lo_ok, hi_ok = (first >= 0) & (first < n), (first + 1 >= 0) & (first + 1 < n)
    lo = np.take(x, np.clip(first, 0, n - 1), axis=axis)
    hi = np.take(x, np.clip(first + 1, 0, n - 1), axis=axis)
    shape = [1, 1]
    shape[axis] = -1
    w_lo = np.where(lo_ok, 1 - weight, 0).astype(x.dtype).reshape(shape)
    w_hi = np.where(hi_ok, weight, 0).astype(x.dtype).reshape(shape)
    lo *= w_lo
    hi *= w_hi
    lo += hi
    return lo


def _interpolate(block: np.ndarray, rt: Taps, ct: Taps, top: int, left: int) -> np.ndarray:
    """Separable bilinear of a source block onto the grid pixels of the taps.

    The block's first pixel is source row `top`, column `left`.
    """
    return _axis(_axis(block, ct, left, 1), rt, top, 0)
