"""Area statistics of a land-cover map."""

from __future__ import annotations

import csv
import io

import numpy as np
from affine import Affine
from pyproj import CRS, Geod, Transformer

from geolulc.io.blocks import row_blocks
from geolulc.io.rasters import NODATA

#: Side, in pixels, of the blocks over which the ground area of a pixel is taken as constant.
AREA_BLOCK = 64


def class_areas(labels: np.ndarray, classes: list[str], transform: Affine, crs: CRS) -> dict:
    """Area in km² on the WGS84 ellipsoid and share of the mapped area for every class.

    The no-data area is given too.

    A pixel's ground area is not its area in the grid's units except where the projection keeps
    areas: 1.00 × in UTM near the central meridian, 2.24 × off in Web Mercator at Rennes. The
    geodesic area of every block of `AREA_BLOCK`² pixels (its corners taken to longitude and
    latitude) is shared among its pixels, so areas are right in any projected CRS.
    """
    height, width = labels.shape
    per_block = _block_pixel_areas(height, width, transform, crs)
    block_index = ((np.arange(height) // AREA_BLOCK)[:, None] * per_block.shape[1]
                   + (np.arange(width) // AREA_BLOCK)[None, :])
    counts = np.zeros((per_block.size, 256), dtype=np.int64)
    for rows in row_blocks(labels.shape, 1 << 22):  # bincount of (block, label) pairs
        keys = block_index[rows].astype(np.int64) * 256 + labels[rows]
        counts += np.bincount(keys.ravel(), minlength=per_block.size * 256).reshape(-1, 256)
    area_m2 = per_block.ravel() @ counts  # per label code
    pixels = counts.sum(axis=0)
    mapped = float(area_m2[: len(classes)].sum())
    rows_out = []
    for code, name in enumerate(classes):
        rows_out.append({"code": code, "class": name, "pixels": int(pixels[code]),
                         "area_km2": round(float(area_m2[code]) / 1e6, 4),
                         "percent": round(100 * float(area_m2[code]) / mapped, 2)
                         if mapped else 0.0})
    return {
        "classes": rows_out,
        "mapped_km2": round(mapped / 1e6, 4),
        "nodata_km2": round(float(area_m2[NODATA]) / 1e6, 4),
        "pixel_area_m2": abs(transform.a * transform.e),
        "area": "geodesic, WGS84 ellipsoid",
    }


def _block_pixel_areas(height: int, width: int, transform: Affine, crs: CRS) -> np.ndarray:
    """Ground area (m²) of one pixel in each block of `AREA_BLOCK`² pixels."""
    n_rows, n_cols = -(-height // AREA_BLOCK), -(-width // AREA_BLOCK)
    to_lonlat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    geod = Geod(ellps="WGS84")
    out = np.empty((n_rows, n_cols))
    cols = np.minimum(np.arange(n_cols + 1) * AREA_BLOCK, width)
    rows = np.minimum(np.arange(n_rows + 1) * AREA_BLOCK, height)
    # affine types `*` for one (x, y) pair only; arrays of them map alike
    xs, ys = transform * np.meshgrid(cols, rows)  # type: ignore[operator]
    lon, lat = to_lonlat.transform(xs, ys)
    for i in range(n_rows):
        for j in range(n_cols):
            ring_lon = [lon[i, j], lon[i, j + 1], lon[i + 1, j + 1], lon[i + 1, j]]
            ring_lat = [lat[i, j], lat[i, j + 1], lat[i + 1, j + 1], lat[i + 1, j]]
            area, _ = geod.polygon_area_perimeter(ring_lon, ring_lat)
            n = (rows[i + 1] - rows[i]) * (cols[j + 1] - cols[j])
            out[i, j] = abs(area) / n
    return out


def areas_csv(stats: dict) -> str:
    """The per-class statistics as CSV (code, class, pixels, area_km2, percent) for spreadsheets."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["code", "class", "pixels", "area_km2", "percent"],
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(stats["classes"])
    return buf.getvalue()
