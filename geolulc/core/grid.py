"""Output grids: where the patches lie and where each map cell lies.

A patch of `patch` pixels is read every `stride` pixels; its label is given to the central
stride × stride block (its cell). The map therefore has pixels of stride × resolution metres, and
the pixels read extend (patch - stride) / 2 beyond the cells on each side. A per-pixel model has
patch = stride = 1 (a cell is a pixel) and reads `halo` pixels of context beyond the cells.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from affine import Affine
from pyproj import CRS, Transformer
from rasterio.crs import CRS as RasterioCRS
from rasterio.warp import transform_bounds, transform_geom
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from geolulc.errors import ParameterError


def utm_crs(lon: float, lat: float) -> CRS:
    """The WGS84 / UTM zone CRS containing a point (longitudes beyond ±180 wrap around)."""
    lon = (lon + 180) % 360 - 180
    zone = min(int((lon + 180) // 6) + 1, 60)
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


@dataclass(frozen=True)
class PatchGrid:
    """Geometry of one mapping job: pixel grid to read and cell grid to write."""

    crs: CRS
    resolution: float  # metres per input pixel
    x0: float  # west edge of the first cell
    y0: float  # north edge of the first cell
    rows: int  # map cells
    cols: int
    patch: int
    stride: int
    halo: int = 0  # context read beyond the patches (per-pixel models)

    def __post_init__(self) -> None:
        if self.stride <= 0 or self.stride > self.patch or (self.patch - self.stride) % 2:
            raise ParameterError(
                f"`stride` must be between 1 and {self.patch} and leave an even margin "
                f"(patch {self.patch} - stride {self.stride} must be even)")

    @property
    def margin(self) -> int:
        """Pixels read beyond the cells on each side: half of patch - stride, plus the halo."""
        return (self.patch - self.stride) // 2 + self.halo

    @property
    def reach(self) -> int:
        """Farthest an unclear pixel that a labelled cell's network sees lies from a clear one.

        A cell is labelled only with clear pixels in what its network sees (its patch, or its
        pixel's halo), so every unclear pixel it sees has a clear pixel within the diagonal of
        that square: the fill of unclear pixels (`fill_unclear`) never needs to look further.
        """
        return math.ceil(math.hypot(self.patch - 1 + self.halo, self.patch - 1 + self.halo))

    @property
    def cell_size(self) -> float:
        """Size of a map cell in metres (stride × resolution)."""
        return self.stride * self.resolution

    @property
    def map_transform(self) -> Affine:
        """Affine transform of the map (one pixel per cell)."""
        return Affine(self.cell_size, 0, self.x0, 0, -self.cell_size, self.y0)

    @property
    def read_transform(self) -> Affine:
        """Affine transform of the pixels read: input resolution, shifted out by the margin."""
        m = self.margin * self.resolution
        return Affine(self.resolution, 0, self.x0 - m, 0, -self.resolution, self.y0 + m)

    @property
    def read_shape(self) -> tuple[int, int]:
        """(rows, cols) of input pixels to read: the cells' pixels plus the margin on each side."""
        return (self.rows * self.stride + 2 * self.margin,
                self.cols * self.stride + 2 * self.margin)

    @property
    def map_bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) of the map's cells in the grid's CRS."""
        return (self.x0, self.y0 - self.rows * self.cell_size,
                self.x0 + self.cols * self.cell_size, self.y0)


def grid_for_bounds(
    bounds: tuple[float, float, float, float], crs: CRS, resolution: float, patch: int,
    stride: int, halo: int = 0,
) -> PatchGrid:
    """Smallest cell grid covering `bounds` (in `crs`), aligned to multiples of the cell size.

    Aligning to whole cells keeps the 10 m input pixels on the Sentinel-2 tile grid (whose
    origins are multiples of 60 m) and makes maps of the same area from different runs line up.
    """
    cell = stride * resolution
    minx, miny, maxx, maxy = bounds
    x0 = math.floor(minx / cell) * cell
    y0 = math.ceil(maxy / cell) * cell
    cols = max(1, math.ceil((maxx - x0) / cell - 1e-9))
    rows = max(1, math.ceil((y0 - miny) / cell - 1e-9))
    return PatchGrid(CRS.from_user_input(crs), resolution, x0, y0, rows, cols, patch, stride,
                     halo)


def choose_crs(geometry_wgs84: BaseGeometry, crs: str | None) -> CRS:
    """The user's CRS, or the UTM zone of the geometry's centre."""
    if crs:
        try:
            chosen = CRS.from_user_input(crs)
        except Exception as exc:  # pyproj raises CRSError with a long message
            raise ParameterError(f"unknown CRS {crs!r}: {str(exc).splitlines()[0]}") from None
        if not chosen.is_projected:
            raise ParameterError(f"`crs` {crs} is not a projected CRS in metres")
        return chosen
    centre = geometry_wgs84.centroid
    return utm_crs(centre.x, centre.y)


def project_geometry(geometry_wgs84: BaseGeometry, crs: CRS) -> BaseGeometry:
    """A longitude/latitude (EPSG:4326) geometry in `crs`."""
    return shape(transform_geom("EPSG:4326", crs.to_wkt(), mapping(geometry_wgs84)))


def bounds_to_wgs84(
    bounds: Sequence[float], crs: CRS | RasterioCRS | str,
) -> tuple[float, float, float, float]:
    """`bounds` in `crs` as longitude/latitude bounds, edges densified so curved ones are covered."""
    return transform_bounds(CRS.from_user_input(crs).to_wkt(), "EPSG:4326", *bounds, densify_pts=21)


def transformer(src: CRS | str, dst: CRS | str) -> Transformer:
    """Coordinate transformer from `src` to `dst`, always x (longitude) before y (latitude)."""
    return Transformer.from_crs(src, dst, always_xy=True)
