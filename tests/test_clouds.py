"""Cloud masks and composites: constructed stacks with known answers, then real scenes."""

from datetime import datetime

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

from geolulc.core.grid import PatchGrid
from geolulc.errors import GeolulcError
from geolulc.io.clouds import dilate, sun_position
from geolulc.io.read import Masking, StackReader
from geolulc.io.scenes import load_scene

BANDS = ["B02", "B03", "B04", "B08"]
SIZE = 128
ORIGIN = (500000.0, 5000000.0)


def write_scene(folder, name, values, scl, level="L2A"):
    """A per-band folder: every band = `values` (DN), plus an SCL layer for L2A."""
    folder.mkdir(parents=True)
    profile = {"driver": "GTiff", "width": SIZE, "height": SIZE, "count": 1, "dtype": "uint16",
               "crs": "EPSG:32632", "transform": from_origin(*ORIGIN, 10, 10), "nodata": 0}
    for band in BANDS:
        with rasterio.open(folder / f"{name}_{band}.tif", "w", **profile) as dst:
            dst.write(np.asarray(values, dtype=np.uint16) + np.zeros((SIZE, SIZE), np.uint16), 1)
    if scl is not None:
        with rasterio.open(folder / f"{name}_SCL.tif", "w", **{**profile, "dtype": "uint8"}) as d:
            d.write(np.asarray(scl, dtype=np.uint8) + np.zeros((SIZE, SIZE), np.uint8), 1)
    return load_scene(folder)


def grid(patch=64, stride=64):
    from pyproj import CRS
    return PatchGrid(CRS.from_epsg(32632), 10, *ORIGIN, SIZE // stride, SIZE // stride,
                     patch, stride)


def read_all(scenes, masking):
    g = grid()
    with StackReader(scenes, BANDS, g, masking) as reader:
        return reader.read(Window(0, 0, SIZE, SIZE))


def test_median_skips_a_fully_clouded_date(tmp_path):
    clear = write_scene(tmp_path / "a", "S2A_MSIL2A_20230605T103629_N0509_R008", 2000, 4)
    cloudy = write_scene(tmp_path / "b", "S2A_MSIL2A_20230610T103629_N0509_R008", 9000, 9)
    other = write_scene(tmp_path / "c", "S2A_MSIL2A_20230620T103629_N0509_R008", 2400, 5)
    px = read_all([clear, cloudy, other], Masking("median"))
    # baseline 05.09: 2000 - 1000 and 2400 - 1000 → median of the two clear dates, 1200
    assert np.all(px.dn == 1200) and px.clear.all()
    assert np.all(px.count == 2)
    assert px.masked == 0  # every pixel had some clear view


def test_corner_clouded_in_every_date_is_no_data(tmp_path):
    scl = np.full((SIZE, SIZE), 4, np.uint8)
    scl[:40, :40] = 8
    scenes = [write_scene(tmp_path / d, f"S2B_MSIL2A_202306{d}T103629_N0400_R008", 1500 + i,
                          scl) for i, d in enumerate(["05", "15", "25"])]
    px = read_all(scenes, Masking("median"))
    assert (px.count[:40, :40] == 0).all() and (px.count[40:, :] == 3).all()
    assert (px.dn[:, :40, :40] == 0).all() and not px.clear[:40, :40].any()
    assert px.masked == 40 * 40
    assert np.all(px.dn[:, 40:, :] == 501)  # median of 500, 501, 502


def test_mixed_baselines_are_harmonised_before_compositing(tmp_path):
    old = write_scene(tmp_path / "a", "S2A_MSIL2A_20211205T103629_N0301_R008", 1234, 4)
    new = write_scene(tmp_path / "b", "S2A_MSIL2A_20220205T103629_N0400_R008", 2234, 4)
    assert (old.offset, new.offset) == (0, 1000)
    for mode in ("median", "best", "none"):
        assert np.all(read_all([old, new], Masking(mode)).dn == 1234), mode


def test_best_takes_the_clearest_acquisition_per_cell(tmp_path):
    scl_a = np.full((SIZE, SIZE), 4, np.uint8)
    scl_a[:64, :64] = 9  # a is clouded in the top-left cell
    scl_b = np.full((SIZE, SIZE), 4, np.uint8)
    scl_b[:, 64:] = 3  # b is shadowed in the right half
    a = write_scene(tmp_path / "a", "S2A_MSIL2A_20230605T103629_N0212_R008", 1000, scl_a)
    b = write_scene(tmp_path / "b", "S2A_MSIL2A_20230615T103629_N0212_R008", 3000, scl_b)
    px = read_all([a, b], Masking("best"))
    assert np.all(px.dn[:, :64, :64] == 3000)  # only b sees the top-left cell
    assert np.all(px.dn[:, :, 64:] == 1000)  # only a sees the right half
    assert np.all(px.dn[:, 64:, :64] == 1000)  # both see it; a is listed first (less cloudy)


def test_l1c_and_l2a_never_mixed(tmp_path):
    l2a = write_scene(tmp_path / "a", "S2A_MSIL2A_20230605T103629_N0509_R008", 1000, 4)
    l1c = write_scene(tmp_path / "b", "S2A_MSIL1C_20230605T103629_N0509_R008", 1000, None)
    assert l1c.level == "L1C"
    with pytest.raises(GeolulcError, match="cannot be combined"):
        StackReader([l2a, l1c], BANDS, grid())


def test_dilate():
    mask = np.zeros((7, 7), bool)
    mask[3, 3] = True
    assert dilate(mask, 2).sum() == 25 and dilate(mask, 2)[1:6, 1:6].all()
    assert dilate(mask, 0).sum() == 1


def test_sun_position_matches_the_item_metadata():
    # the Earth Search item S2A_29RKH_20200219_0_L2A states azimuth 147.67°, elevation 48.29°
    az, el = sun_position(datetime(2020, 2, 19, 11, 34, 25), -11.4, 24.8)
    assert az == pytest.approx(147.67, abs=0.5) and el == pytest.approx(48.29, abs=0.5)


def test_s2cloudless_on_real_l1c_scenes(data_dir):
    """Paris 2017-11-07 has two small cumulus clouds; 2016-11-30 is clear."""
    from geolulc.core.grid import choose_crs, grid_for_bounds, project_geometry
    from geolulc.mapping.request import scene_extent_wgs84

    shares = {}
    for im in ("imgs_1", "imgs_2"):
        scene = load_scene(data_dir / "oscd" / "paris" / im)
        region = scene_extent_wgs84(scene)
        crs = choose_crs(region, None)
        g = grid_for_bounds(project_geometry(region, crs).bounds, crs, 10, 64, 64)
        window = Window(0, 0, *g.read_shape[::-1])
        with StackReader([scene], ["B02"], g, Masking(detect_l1c=False)) as reader:
            raw = reader.read(window)
        with StackReader([scene], ["B02"], g) as reader:
            masked = reader.read(window)
        shares[im] = 1 - masked.clear.sum() / raw.clear.sum()
        if im == "imgs_2":
            bright = raw.dn[0] > 2500  # the cloud tops are the brightest pixels of the city
            assert masked.clear[bright].mean() < 0.5
    assert shares["imgs_1"] < 0.03 and 0.05 < shares["imgs_2"] < 0.3
