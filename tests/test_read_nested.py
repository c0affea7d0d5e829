"""Bands that nest in the read grid are resampled in-process to exactly GDAL's values, and the
read stage's other shortcuts (AOT lookup, fill of unclear pixels) change no number."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import CRS
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from conftest import ES_ITEM_ID
from geolulc.core.grid import PatchGrid
from geolulc.io import atmosphere
from geolulc.io.atmosphere import AOT_QUANTIFICATION, _terms, boa_to_toa, quantise_aot
from geolulc.io.resample import NestedBand

UTM29 = CRS.from_epsg(32629)
#: West and north edges of tile 29RKH: like every Sentinel-2 tile, multiples of 20 and 60 m.
WEST, NORTH = 199980.0, 2800020.0


def product(data_dir):
    return data_dir / "earth-search" / "sentinel-2-l2a" / ES_ITEM_ID


def native(data_dir, tmp_path, asset: str, pixel: float, crop: int = 300, zeros: bool = False):
    """Real pixels of the Earth Search product written at a native Sentinel-2 pixel size on the
    tile's own grid (the shared files are decimated 10×), as the product's COGs lay them out."""
    with rasterio.open(product(data_dir) / f"{asset}.tif") as src:
        pixels = src.read(1, window=Window(40, 60, crop, crop))
        nodata = src.nodata
    if zeros:  # a scene edge and a hole of no data: GDAL leaves those taps out
        pixels[:, :37] = 0
        pixels[100:130, 150:170] = 0
    path = tmp_path / f"{asset}-{pixel:g}.tif"
    with rasterio.open(path, "w", driver="GTiff", width=crop, height=crop, count=1,
                       dtype=pixels.dtype, crs=UTM29, nodata=nodata, tiled=True,
                       blockxsize=128, blockysize=128,
                       transform=Affine(pixel, 0, WEST, 0, -pixel, NORTH)) as dst:
        dst.write(pixels, 1)
    return path


def grid_10m(offset_px: int = -40) -> PatchGrid:
    """A 10 m read grid that starts `offset_px` pixels from the tile's corner (so windows run
    off the band's edges too), with Dynamic World's halo."""
    x0 = WEST + (offset_px + 32) * 10
    y0 = NORTH - (offset_px + 32) * 10
    return PatchGrid(UTM29, 10.0, x0, y0, 700, 700, 1, 1, 32)


def warped(src, grid: PatchGrid, window: Window, resampling: Resampling) -> np.ndarray:
    height, width = grid.read_shape
    with WarpedVRT(src, crs=grid.crs.to_wkt(), transform=grid.read_transform, width=width,
                   height=height, nodata=0, resampling=resampling) as vrt:
        return vrt.read(1, window=window)


WINDOWS = [Window(0, 0, 764, 300), Window(13, 301, 500, 211), Window(0, 500, 764, 264),
           Window(700, 700, 64, 64)]


@pytest.mark.parametrize("zeros", [False, True], ids=["full", "with-no-data"])
def test_20m_bands_equal_gdal_bilinear_exactly(data_dir, tmp_path, zeros):
    path = native(data_dir, tmp_path, "B05", 20.0, zeros=zeros)
    grid = grid_10m()
    with rasterio.open(path) as src:
        band = NestedBand.fit(src, grid)
        assert band is not None and band.factor == 2
        for window in WINDOWS:
            ours, gdal = band.read(1, window=window), warped(src, grid, window,
                                                            Resampling.bilinear)
            np.testing.assert_array_equal(ours, gdal)
            if window.row_off == 0:  # the band's corner, edges and no data are in view
                assert (gdal > 0).mean() > 0.5 and (gdal == 0).any()


def test_scl_equals_gdal_nearest(data_dir, tmp_path):
    path = native(data_dir, tmp_path, "SCL", 20.0)
    grid = grid_10m(-3)
    with rasterio.open(path) as src:
        band = NestedBand.fit(src, grid, bilinear=False)
        for window in WINDOWS:
            np.testing.assert_array_equal(band.read(1, window=window),
                                          warped(src, grid, window, Resampling.nearest))


def test_60m_bands_differ_from_gdal_only_on_exact_half_way_ties(data_dir, tmp_path):
    """At a factor of 6 the weights are not binary fractions: a value that is exactly half-way
    between two integers rounds up here and, after GDAL's own floating-point steps, sometimes
    down there. Every other pixel is equal."""
    path = native(data_dir, tmp_path, "B01", 60.0, crop=120)
    grid = grid_10m()
    with rasterio.open(path) as src:
        band = NestedBand.fit(src, grid)
        assert band.factor == 6
        src_pixels = src.read(1).astype(np.float64)
        for window in WINDOWS[:3]:
            ours = band.read(1, window=window).astype(int)
            gdal = warped(src, grid, window, Resampling.bilinear).astype(int)
            diff = np.argwhere(ours != gdal)
            assert len(diff) < 0.02 * ours.size  # about 1 in 144 values is a tie
            for r, c in diff[:200]:
                assert abs(ours[r, c] - gdal[r, c]) == 1
                # the exact value at this pixel is half-way: recompute it from the source
                u = (np.array([window.row_off + r, window.col_off + c]) + 0.5
                     - np.array([band.row0, band.col0])) / 6 - 0.5
                i, j = np.floor(u).astype(int)
                fr, fc = u - [i, j]
                if 0 <= i < 119 and 0 <= j < 119:
                    block = src_pixels[i:i + 2, j:j + 2]
                    value = ((1 - fr) * ((1 - fc) * block[0, 0] + fc * block[0, 1])
                             + fr * ((1 - fc) * block[1, 0] + fc * block[1, 1]))
                    assert abs(value - np.floor(value) - 0.5) < 1e-6


def test_bands_that_do_not_nest_are_warped(data_dir, tmp_path):
    grid = grid_10m()
    for name, transform, crs in [
        ("shifted", Affine(20, 0, WEST + 5, 0, -20, NORTH), UTM29),  # half a pixel off
        ("other-zone", Affine(20, 0, WEST, 0, -20, NORTH), CRS.from_epsg(32630)),
        ("non-integer", Affine(15, 0, WEST, 0, -15, NORTH), UTM29),
    ]:
        path = tmp_path / f"{name}.tif"
        with rasterio.open(path, "w", driver="GTiff", width=8, height=8, count=1,
                           dtype="uint16", crs=crs, transform=transform, nodata=0) as dst:
            dst.write(np.ones((8, 8), dtype=np.uint16), 1)
        with rasterio.open(path) as src:
            assert NestedBand.fit(src, grid) is None, name


def test_aot_lookup_gives_the_per_pixel_numbers(data_dir):
    """The real AOT layer: terms looked up per quantised value equal terms per pixel."""
    with rasterio.open(product(data_dir) / "AOT.tif") as src:
        raw = src.read(1, out_shape=(549, 549), resampling=Resampling.bilinear)
    with rasterio.open(product(data_dir) / "B02.tif") as src:
        dn = src.read(1, window=Window(0, 0, 549, 549))
    aot = raw.astype(np.float32) / AOT_QUANTIFICATION
    aot[aot <= 0] = 0.15
    quantised = quantise_aot(aot)
    assert len(quantised.values) < 1000 and len(np.unique(aot)) > 5
    fast = boa_to_toa(dn, "B02", 40.0, quantised)
    path, trans, albedo, gas = _terms("B02", 40.0, aot)
    rho = dn.astype(np.float32) / 10000
    toa = gas * (path + trans * rho / (1 - albedo * rho))
    slow = np.where(dn > 0, np.clip(np.round(toa * 10000), 1, 65535), 0).astype(np.uint16)
    np.testing.assert_array_equal(fast, slow)
    np.testing.assert_array_equal(boa_to_toa(dn, "B02", 40.0, aot), slow)
    off_grid = aot + np.float32(0.0004)  # not Sen2Cor's quantisation: computed per pixel
    assert not hasattr(quantise_aot(off_grid), "codes")


@pytest.mark.parametrize("aot", ["layer", "value"])
def test_restoration_table_gives_the_computed_numbers(aot, monkeypatch):
    """The (AOT value, DN) table that `boa_to_toa` looks up holds exactly what computing each
    pixel gives, over the whole DN range, for a quantised layer and for one AOT value."""
    rng = np.random.default_rng(5)
    dn = rng.integers(0, 65536, (300, 700)).astype(np.uint16)
    dn[:, :40] = rng.integers(0, 3, (300, 40))  # no data and the darkest DNs
    layer = rng.integers(150, 210, dn.shape).astype(np.float32) / AOT_QUANTIFICATION
    given = quantise_aot(layer) if aot == "layer" else 0.2
    for band in ("B02", "B8A", "B12"):
        looked_up = boa_to_toa(dn, band, 47.5, given)
        monkeypatch.setattr(atmosphere, "LOOKUP_ENTRIES", 0)
        computed = boa_to_toa(dn, band, 47.5, given)
        monkeypatch.undo()
        np.testing.assert_array_equal(looked_up, computed)
        assert looked_up[dn == 0].max() == 0 and looked_up[dn > 0].min() >= 1
