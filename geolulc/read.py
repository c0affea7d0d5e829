"""Reading pixels: only the window a job needs, from local files or COGs over HTTP(S).

Each band of each scene is warped onto the job's read grid (the AOI's UTM grid at 10 m unless
asked otherwise) through a GDAL warped VRT, so 20 m and 60 m bands are resampled to 10 m and scenes
from other UTM zones are reprojected on the fly. Only the COG blocks under the window are fetched
(HTTP Range requests). Several scenes are mosaicked least cloudy first.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from .errors import GeolulcError
from .grid import PatchGrid
from .harmonize import harmonise
from .scenes import Scene

log = logging.getLogger(__name__)

#: Scene classification (L2A SCL) classes that are not a clear view of the surface:
#: 0 no data, 1 saturated or defective, 3 cloud shadow, 8 cloud medium, 9 cloud high, 10 cirrus.
SCL_MASKED = (0, 1, 3, 8, 9, 10)

GDAL_OPTIONS = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",  # no directory listing of the bucket per file
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_MULTIPLEX": "YES",
    "GDAL_HTTP_MAX_RETRY": 3,
    "GDAL_HTTP_RETRY_DELAY": 1,
    "VSI_CACHE": "TRUE",
    "GDAL_CACHEMAX": 512,
}


@contextlib.contextmanager
def gdal_env() -> Iterator[None]:
    """GDAL settings for reading COGs over HTTP; public buckets are read without signing."""
    options = dict(GDAL_OPTIONS)
    if not os.environ.get("AWS_ACCESS_KEY_ID"):
        options["AWS_NO_SIGN_REQUEST"] = "YES"
    with rasterio.Env(**options):
        yield


class _SceneSource:
    """One scene's bands (and SCL) warped onto the read grid, opened once for all chunks."""

    def __init__(self, scene: Scene, bands: list[str], grid: PatchGrid, stack: contextlib.ExitStack):
        self.scene = scene
        self.bands = bands
        height, width = grid.read_shape
        vrt_args = {"crs": grid.crs.to_wkt(), "transform": grid.read_transform,
                    "width": width, "height": height, "nodata": 0}
        self.vrts = []
        for band in bands:
            src = stack.enter_context(_open(scene.bands[band], scene.id, band))
            self.vrts.append(stack.enter_context(
                WarpedVRT(src, resampling=Resampling.bilinear, **vrt_args)))
        self.scl = None
        if scene.scl:
            src = stack.enter_context(_open(scene.scl, scene.id, "SCL"))
            self.scl = stack.enter_context(
                WarpedVRT(src, resampling=Resampling.nearest, **vrt_args))
        first = self.vrts[0].src_dataset
        west, south, east, north = transform_bounds(first.crs, grid.crs.to_wkt(), *first.bounds)
        t = grid.read_transform
        self.col_range = ((west - t.c) / t.a, (east - t.c) / t.a)
        self.row_range = ((t.f - north) / -t.e, (t.f - south) / -t.e)

    def _read(self, vrt: WarpedVRT, band: str, window: Window) -> np.ndarray:
        try:
            return vrt.read(1, window=window)
        except RasterioError as exc:
            cause = exc.__cause__ or exc
            raise GeolulcError(f"cannot read band {band} of scene {self.scene.id} "
                               f"({vrt.src_dataset.name}): {str(cause).splitlines()[0]}") from None

    def overlaps(self, window: Window) -> bool:
        return (self.row_range[0] < window.row_off + window.height
                and self.row_range[1] > window.row_off
                and self.col_range[0] < window.col_off + window.width
                and self.col_range[1] > window.col_off)

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Harmonised DNs (bands, h, w), the clear-pixel mask and the has-data mask."""
        dn = np.stack([self._read(vrt, band, window) for vrt, band in zip(self.vrts, self.bands)])
        scl = self._read(self.scl, "SCL", window) if self.scl is not None else None
        dn = harmonise(dn, self.scene.offset)
        has_data = np.all(dn > 0, axis=0)
        clear = has_data & ~np.isin(scl, SCL_MASKED) if scl is not None else has_data
        return dn, clear, has_data


def _open(href: str, scene_id: str, band: str):
    try:
        return rasterio.open(href)
    except RasterioError as exc:
        raise GeolulcError(f"cannot open band {band} of scene {scene_id} at {href}: "
                           f"{str(exc).splitlines()[0]}") from None


class StackReader:
    """Reads windows of the mosaicked, harmonised band stack of several scenes.

    Use as a context manager; `read(window)` returns (dn, clear, masked) where dn is uint16
    (bands, h, w) with 0 where no scene has a clear view, clear a boolean mask, and masked the
    number of pixels that some scene saw but cloud, shadow or defect masking removed in all.
    """

    def __init__(self, scenes: list[Scene], bands: list[str], grid: PatchGrid):
        if not scenes:
            raise GeolulcError("no scene to read")
        for scene in scenes:
            scene.require(bands)
        self.scenes, self.bands, self.grid = scenes, bands, grid
        self._stack = contextlib.ExitStack()
        self.sources: list[_SceneSource] = []

    def __enter__(self) -> StackReader:
        self._stack.enter_context(gdal_env())
        self.sources = [_SceneSource(s, self.bands, self.grid, self._stack) for s in self.scenes]
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray, int]:
        shape = (len(self.bands), int(window.height), int(window.width))
        dn = np.zeros(shape, dtype=np.uint16)
        filled = np.zeros(shape[1:], dtype=bool)
        seen = np.zeros(shape[1:], dtype=bool)
        for source in self.sources:
            if filled.all():
                break
            if not source.overlaps(window):
                continue
            part, clear, has_data = source.read(window)
            take = clear & ~filled
            dn[:, take] = part[:, take]
            filled |= take
            seen |= has_data
        return dn, filled, int(np.count_nonzero(seen & ~filled))
