"""Reading pixels: only the window a job needs, from local files or COGs over HTTP(S).

Each band of each scene is brought onto the job's read grid (the AOI's UTM grid at 10 m unless
asked otherwise): read directly, or resampled in-process with GDAL's weights where its pixels nest
in the grid (`geolulc.io.resample`: a tile in its own UTM zone), else through a GDAL warped VRT
(scenes from other UTM zones are reprojected on the fly). Only the COG blocks under the window are fetched
(HTTP Range requests). Several scenes are mosaicked least cloudy first, or composited.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from geolulc.core.grid import PatchGrid, transformer
from geolulc.core.windows import window_clear_counts
from geolulc.errors import FallbackWarning, ParameterError, ReadError, SceneError
from geolulc.io.atmosphere import AOT_QUANTIFICATION, DEFAULT_AOT, boa_to_toa, quantise_aot
from geolulc.io.clouds import (
    CLOUD_BLOCK,
    L1C_MASK_BANDS,
    blocks_in_window,
    dilate,
    l1c_cloud_blocks,
    scl_cloudy,
    sun_position,
)
from geolulc.io.gdal import gdal_env, is_remote, open_band, vsi_path
from geolulc.io.harmonize import harmonise
from geolulc.io.resample import NestedBand
from geolulc.io.scenes import Scene

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Masking:
    """How clouds are found and how acquisitions are combined."""

    composite: str = "none"  # none: least cloudy first; median: per-pixel; best: per cell
    dilate: int = 0  # pixels added around every masked pixel
    detect_l1c: bool = True  # s2cloudless + shadow for L1C scenes without an SCL
    restore_toa: bool = False  # put a modelled atmosphere back into L2A (for L1C models)


def finite(raw: np.ndarray) -> np.ndarray:
    """Pixels of a band as read; in a float band file NaN and infinities are no data (0)."""
    return np.where(np.isfinite(raw), raw, 0) if raw.dtype.kind == "f" else raw


@dataclass
class Pixels:
    """A window of the harmonised, cloud-masked composite."""

    dn: np.ndarray  # uint16 (bands, h, w), 0 where there is no clear view
    clear: np.ndarray  # bool (h, w)
    seen: np.ndarray  # bool (h, w): some acquisition has data there (clear or not)
    count: np.ndarray  # uint8 (h, w): acquisitions with a clear view of each pixel

    @property
    def masked(self) -> int:
        """Pixels some acquisition saw but masking removed in every one."""
        return int(np.count_nonzero(self.seen & ~self.clear))

    def crop(self, top: int, bottom: int, left: int, right: int) -> Pixels:
        """The pixels without `top`, `bottom`, `left` and `right` rows and columns of the edges."""
        h, w = self.clear.shape
        rows, cols = slice(top, h - bottom), slice(left, w - right)
        return Pixels(self.dn[:, rows, cols], self.clear[rows, cols], self.seen[rows, cols],
                      self.count[rows, cols])


class _SceneSource:
    """One scene's bands (and SCL) warped onto the read grid, opened once for all chunks."""

    def __init__(self, scene: Scene, bands: list[str], grid: PatchGrid, masking: Masking,
                 stack: contextlib.ExitStack) -> None:
        self.scene = scene
        self.bands = bands
        self.masking = masking
        self.grid = grid
        height, width = grid.read_shape
        # DN 0 is Sentinel-2's no data, declared or not: without src_nodata GDAL warps a 0 it
        # takes for data to 1 (the destination's no data is 0), and an empty band looks valid
        vrt_args = {"crs": grid.crs.to_wkt(), "transform": grid.read_transform,
                    "width": width, "height": height, "src_nodata": 0, "nodata": 0}
        self.detect = (masking.detect_l1c and not scene.scl and scene.level == "L1C"
                       and all(b in scene.bands for b in L1C_MASK_BANDS))
        self.blocks: np.ndarray | None = None  # the L1C cloud mask of the grid's blocks
        self.vrts = {}
        for band in bands:
            src = stack.enter_context(open_band(scene.bands[band], scene.id, band))
            self.vrts[band] = NestedBand.fit(src, grid) or stack.enter_context(
                WarpedVRT(src, resampling=Resampling.bilinear, **vrt_args))
        self.scl = None
        if scene.level == "L2A" and not scene.scl and not scene.harmonised:  # downloads: masked
            warnings.warn(f"L2A scene {scene.id} has no scene classification (SCL): its clouds "
                          "are not masked", FallbackWarning, stacklevel=2)
        if scene.scl:
            src = stack.enter_context(open_band(scene.scl, scene.id, "SCL"))
            self.scl = NestedBand.fit(src, grid, bilinear=False) or stack.enter_context(
                WarpedVRT(src, resampling=Resampling.nearest, **vrt_args))
        first = self.vrts[bands[0]].src_dataset
        west, south, east, north = transform_bounds(first.crs, grid.crs.to_wkt(), *first.bounds)
        t = grid.read_transform
        self.col_range = ((west - t.c) / t.a, (east - t.c) / t.a)
        self.row_range = ((t.f - north) / -t.e, (t.f - south) / -t.e)
        self.toa = masking.restore_toa and scene.level == "L2A"
        need_sun = self.detect or self.toa
        self.sun = self._sun(west, south, east, north) if need_sun else None
        if self.toa and self.sun is None:
            warnings.warn(f"L2A scene {scene.id} has no date or sun angles: its reflectance is "
                          "used as it is, without the atmosphere an L1C model expects",
                          FallbackWarning, stacklevel=2)
            self.toa = False
        self.aot = None
        if self.toa and scene.aot:
            src = stack.enter_context(open_band(scene.aot, scene.id, "AOT"))
            self.aot = NestedBand.fit(src, grid) or stack.enter_context(
                WarpedVRT(src, resampling=Resampling.bilinear, **vrt_args))
        elif self.toa:
            warnings.warn(f"L2A scene {scene.id} has no AOT layer: its atmosphere is restored with "
                          f"AOT {DEFAULT_AOT:.2f} everywhere", FallbackWarning, stacklevel=2)

    def empty_bands(self) -> list[str]:
        """The bands that are 0 (no data) on every pixel of the read grid.

        Asked only when a map found no clear pixel, to name a band file that holds zeros.
        """
        height, width = self.grid.read_shape
        strips = [Window(0, r, width, min(1024, height - r)) for r in range(0, height, 1024)]
        return [band for band in self.vrts
                if not any(self._read(band, strip).any() for strip in strips)]

    def cloud_blocks(self) -> np.ndarray:
        """The L1C cloud and shadow mask of the whole read grid's CLOUD_BLOCK blocks.

        Each band is averaged over the blocks by GDAL (no data left out) in one pass over the
        grid, so every chunk, worker and resumed run cuts its pixels from the same mask.
        """
        height, width = (-(-n // CLOUD_BLOCK) for n in self.grid.read_shape)
        transform = self.grid.read_transform @ Affine.scale(CLOUD_BLOCK)
        means = {}
        fine_height, fine_width = self.grid.read_shape
        with contextlib.ExitStack() as stack:
            for band in L1C_MASK_BANDS:
                src = stack.enter_context(open_band(self.scene.bands[band], self.scene.id, band))
                fine = stack.enter_context(WarpedVRT(
                    src, crs=self.grid.crs.to_wkt(), transform=self.grid.read_transform,
                    width=fine_width, height=fine_height, src_nodata=0, nodata=0,
                    resampling=Resampling.bilinear))
                with WarpedVRT(fine, crs=self.grid.crs.to_wkt(), transform=transform, width=width,
                               height=height, src_nodata=0, nodata=0,
                               resampling=Resampling.average) as vrt:
                    try:
                        means[band] = harmonise(finite(vrt.read(1)), self.scene.offset)
                    except RasterioError as exc:
                        raise ReadError(f"cannot read band {band} of scene {self.scene.id} for "
                                        f"its cloud mask: {str(exc).splitlines()[0]}") from None
        return l1c_cloud_blocks(means, self.sun, self.grid.resolution)

    def _sun(self, west: float, south: float, east: float, north: float
             ) -> tuple[float, float] | None:
        props = self.scene.properties
        if "view:sun_azimuth" in props and "view:sun_elevation" in props:
            return float(props["view:sun_azimuth"]), float(props["view:sun_elevation"])
        when = self.scene.datetime
        if when is None:
            warnings.warn(f"scene {self.scene.id}: no date, so no cloud-shadow estimate",
                          FallbackWarning, stacklevel=2)
            return None
        lon, lat = transformer(self.grid.crs, "EPSG:4326").transform((west + east) / 2,
                                                                    (south + north) / 2)
        if when.hour == 0 and when.minute == 0:  # a date alone: Sentinel-2 passes ~10:30 local
            when = when.replace(tzinfo=None) + timedelta(hours=10.5 - lon / 15)
        return sun_position(when, lon, lat)

    def _read(self, band: str, window: Window) -> np.ndarray:
        vrt = {"SCL": self.scl, "AOT": self.aot}.get(band) or self.vrts[band]
        try:
            return vrt.read(1, window=window)
        except RasterioError as exc:
            first = str(exc.__cause__ or exc).splitlines()[0]
        href = {"SCL": self.scene.scl, "AOT": self.scene.aot}.get(band) or self.scene.bands[band]
        if is_remote(href):  # a truncated or corrupted transfer: fetch it again, uncached
            log.warning("band %s of %s failed to read (%s); fetching it again", band,
                        self.scene.id, first)
            try:
                with rasterio.Env(CPL_VSIL_CURL_NON_CACHED=vsi_path(href)), \
                        rasterio.open(href) as src, WarpedVRT(
                            src, crs=vrt.crs, transform=vrt.transform, width=vrt.width,
                            height=vrt.height, src_nodata=0, nodata=0,
                            resampling=Resampling.nearest
                            if band == "SCL" else Resampling.bilinear) as fresh:
                    return fresh.read(1, window=window)
            except RasterioError as exc:
                first = str(exc.__cause__ or exc).splitlines()[0] + " (also when fetched again)"
        raise ReadError(f"cannot read band {band} of scene {self.scene.id} ({href}): {first}")

    def overlaps(self, window: Window) -> bool:
        return (self.row_range[0] < window.row_off + window.height
                and self.row_range[1] > window.row_off
                and self.col_range[0] < window.col_off + window.width
                and self.col_range[1] > window.col_off)

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Harmonised DNs (bands, h, w), the clear-pixel mask and the has-data mask."""
        if self.toa:
            assert self.sun is not None  # `toa` is turned off for scenes without sun angles
            layer: np.ndarray | float = DEFAULT_AOT
            if self.aot is not None:
                layer = self._read("AOT", window).astype(np.float32) / AOT_QUANTIFICATION
                layer[layer <= 0] = DEFAULT_AOT
            zenith = 90.0 - self.sun[1]
            aot = quantise_aot(layer)  # once for all bands
        # each band read, harmonised and (L2A) restored straight into its plane of the stack
        dn = np.empty((len(self.bands), int(window.height), int(window.width)), dtype=np.uint16)
        planes = {}
        for band in self.vrts:
            plane = harmonise(finite(self._read(band, window)), self.scene.offset)
            if self.toa:
                plane = boa_to_toa(plane, band, zenith, aot)
            if band in self.bands:
                i = self.bands.index(band)
                dn[i] = plane
                plane = dn[i]
            planes[band] = plane
        has_data = planes[self.bands[0]] > 0
        for band in self.bands[1:]:  # band by band: 3× faster than np.all over the stack's axis 0
            has_data &= planes[band] > 0
        if self.scl is not None:
            cloudy = scl_cloudy(self._read("SCL", window))
        elif self.blocks is not None:
            cloudy = blocks_in_window(self.blocks, int(window.row_off), int(window.col_off),
                                      *has_data.shape)
        else:
            cloudy = np.zeros(has_data.shape, dtype=bool)
        clear = has_data & ~dilate(cloudy, self.masking.dilate)
        return dn, clear, has_data


def acquisitions(scenes: list[Scene]) -> list[list[Scene]]:
    """Scenes grouped by acquisition day (the tiles of one overpass), in the given order."""
    groups: dict[object, list[Scene]] = {}
    for scene in scenes:
        key = scene.datetime.date() if scene.datetime else scene.id
        groups.setdefault(key, []).append(scene)
    return list(groups.values())


class StackReader:
    """Reads windows of the harmonised, cloud-masked composite of several scenes.

    Use as a context manager; `read(window)` returns `Pixels`. With composite "none" the scenes
    are mosaicked least cloudy first (each pixel from the first scene that sees it clear); with
    "median" each pixel is the median of its clear observations over the acquisitions; with
    "best" each map cell takes the acquisition that sees its patch clearest.

    The L1C cloud masks of the whole grid are made when the reader opens, unless given as
    `cloud_blocks` (one per scene, as `cloud_blocks` returns them: what a chunk job carries to
    its workers so that no worker makes them again).
    """

    def __init__(self, scenes: list[Scene], bands: list[str], grid: PatchGrid,
                 masking: Masking | None = None,
                 cloud_blocks: list[np.ndarray | None] | None = None) -> None:
        if not scenes:
            raise ParameterError("no scene to read")
        for scene in scenes:
            scene.require(bands)
        levels = {s.level for s in scenes}
        if len(levels) > 1:
            raise SceneError("L1C and L2A scenes cannot be combined in one composite")
        self.scenes, self.bands, self.grid = scenes, bands, grid
        self.masking = masking or Masking()
        self._stack = contextlib.ExitStack()
        self.groups: list[list[_SceneSource]] = []
        self.cloud_blocks = cloud_blocks

    def __enter__(self) -> StackReader:
        try:
            self._stack.enter_context(gdal_env())
            sources = {id(s): _SceneSource(s, self.bands, self.grid, self.masking, self._stack)
                       for s in self.scenes}
            given = self.cloud_blocks or [None] * len(self.scenes)
            for scene, blocks in zip(self.scenes, given, strict=True):
                source = sources[id(scene)]
                if source.detect:
                    source.blocks = source.cloud_blocks() if blocks is None else blocks
        except BaseException:  # nothing opened so far outlives a failed start
            self._stack.close()
            raise
        self.cloud_blocks = [sources[id(s)].blocks for s in self.scenes]
        self.groups = [[sources[id(s)] for s in group] for group in acquisitions(self.scenes)]
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def empty_bands(self) -> dict[str, list[str]]:
        """{scene id: its bands that are 0 on every pixel of the grid}, for scenes that have any."""
        found = {}
        for source in (s for group in self.groups for s in group):
            empty = source.empty_bands()
            if empty:
                found[source.scene.id] = empty
        return found

    def _mosaic(
        self, sources: list[_SceneSource], window: Window, shape: tuple[int, int, int],
        stop_when_full: bool = True,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        dn = np.zeros(shape, dtype=np.uint16)
        filled = np.zeros(shape[1:], dtype=bool)
        seen = np.zeros(shape[1:], dtype=bool)
        for source in sources:
            if stop_when_full and filled.all():
                break
            if not source.overlaps(window):
                continue
            part, clear, has_data = source.read(window)
            take = clear & ~filled
            if not filled.any():  # the first source: its pixels as they are, no copy
                part[:, ~take] = 0
                dn = part
            else:
                np.copyto(dn, part, where=take[None])
            filled |= take
            seen |= has_data
        return dn, filled, seen

    def read(self, window: Window) -> Pixels:
        """The composite's `Pixels` in `window` of the read grid, by the masking's composite rule."""
        shape = (len(self.bands), int(window.height), int(window.width))
        if self.masking.composite == "none":
            dn, filled, seen = self._mosaic([s for g in self.groups for s in g], window, shape)
            return Pixels(dn, filled, seen, filled.astype(np.uint8))
        layers = [self._mosaic(group, window, shape) for group in self.groups]
        clear = np.stack([c for _, c, _ in layers])
        seen = np.any(np.stack([s for _, _, s in layers]), axis=0)
        count = clear.sum(axis=0).astype(np.uint8)
        filled = count > 0
        if self.masking.composite == "median":
            values = np.stack([d for d, _, _ in layers]).astype(np.float32)
            values[np.broadcast_to(~clear[:, None], values.shape)] = np.nan
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels stay no data
                median = np.nanmedian(values, axis=0)
            dn = np.where(np.isnan(median), 0, np.round(median)).astype(np.uint16)
        else:
            dn = self._best(layers, clear, int(window.row_off))
        return Pixels(dn, filled, seen, count)

    def _best(self, layers: list[tuple[np.ndarray, np.ndarray, np.ndarray]], clear: np.ndarray,
              row_off: int) -> np.ndarray:
        """Per map cell, the acquisition whose patch window is clearest.

        Its pixels fill the cell's block (the outer margin takes the acquisition of the nearest
        cell). Cells are those of the grid whatever the window (`row_off`: its first row in the
        read grid), so a pixel takes the same acquisition in every window that holds its cell's
        whole patch.
        """
        grid = self.grid
        _, h, w = clear.shape
        skip = -row_off % grid.stride  # rows above the first cell whose patch starts in the window
        first = (row_off + skip) // grid.stride
        scores = np.stack([window_clear_counts(c[skip:], grid.patch, grid.stride) for c in clear])
        n_rows, n_cols = scores.shape[1:]
        best = scores.argmax(axis=0)  # (n_rows, n_cols)
        # each pixel belongs to the cell whose block holds it (clamped at the window's edges)
        r_cell = np.clip((row_off + np.arange(h) - grid.margin) // grid.stride - first, 0,
                         n_rows - 1)
        c_cell = np.clip((np.arange(w) - grid.margin) // grid.stride, 0, n_cols - 1)
        choice = best[np.ix_(r_cell, c_cell)]
        stack = np.stack([d for d, _, _ in layers])
        dn = np.take_along_axis(stack, choice[None, None], axis=0)[0]
        dn[:, ~np.take_along_axis(clear, choice[None], axis=0)[0]] = 0
        return dn
