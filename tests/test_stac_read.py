"""Search and read against a real STAC API (rustac) and real COGs over HTTP (nginx)."""

import json

import numpy as np
import pytest
import rasterio
from pyproj import CRS
from rasterio.windows import Window
from shapely.geometry import shape

from conftest import DESERT_AOI, ES_ITEM_ID
from geolulc.core.grid import PatchGrid, grid_for_bounds, project_geometry
from geolulc.errors import GeolulcError
from geolulc.io.catalog import parse_date_range, search_scenes, select_covering
from geolulc.io.read import StackReader
from geolulc.io.scenes import load_scene, scene_from_item

AOI = shape(DESERT_AOI["features"][0]["geometry"])


@pytest.mark.parametrize("text,interval", [
    ("2023-06", "2023-06-01T00:00:00Z/2023-06-30T23:59:59Z"),
    ("2024-02", "2024-02-01T00:00:00Z/2024-02-29T23:59:59Z"),
    ("2023-06-15", "2023-06-15T00:00:00Z/2023-06-15T23:59:59Z"),
    ("2023", "2023-01-01T00:00:00Z/2023-12-31T23:59:59Z"),
    ("2023-06/2023-08", "2023-06-01T00:00:00Z/2023-08-31T23:59:59Z"),
    ("2023-06-10..2023-06-20", "2023-06-10T00:00:00Z/2023-06-20T23:59:59Z"),
])
def test_date_forms(text, interval):
    assert parse_date_range(text) == interval


@pytest.mark.parametrize("text", ["June", "2023-13", "2023-02-30", "2023-08/2023-06"])
def test_bad_dates(text):
    with pytest.raises(GeolulcError):
        parse_date_range(text)


def test_search_finds_items_least_cloudy_first(stac_api):
    scenes = search_scenes(AOI, "2020-02", stac_api)
    assert [s.id for s in scenes] == [ES_ITEM_ID, "S2A_29RKH_20200224_0_L2A"]
    assert scenes[0].cloud_cover == pytest.approx(4.051854)
    assert scenes[0].bands["B02"].startswith("http://127.0.0.1:")
    assert [s.id for s in search_scenes(AOI, "2020-02", stac_api, max_cloud=10)] == [ES_ITEM_ID]
    assert search_scenes(AOI, "2020-03", stac_api) == []
    assert search_scenes(AOI, "2020-02-24", stac_api)[0].cloud_cover == 60
    # both footprints are the same tile: the least cloudy alone covers the AOI
    assert [s.id for s in select_covering(scenes, AOI)] == [ES_ITEM_ID]


def test_unreachable_catalog_is_one_clear_error():
    with pytest.raises(GeolulcError, match="cannot reach STAC API"):
        search_scenes(AOI, "2020-02", "http://127.0.0.1:9")


def test_http_read_equals_local_read_and_uses_ranges(data_dir, stac_api, cog_server, local_es_item):
    """Reading through the STAC API + HTTP gives exactly the pixels of the local COGs, and only
    the needed byte ranges travel."""
    remote = search_scenes(AOI, "2020-02", stac_api)[0]
    local = load_scene(local_es_item)
    utm = CRS.from_epsg(32629)
    grid = grid_for_bounds(project_geometry(AOI, utm).bounds, utm, 10, 64, 64)
    window = Window(0, 0, *grid.read_shape[::-1])
    bands = ["B02", "B04", "B8A", "B11", "B01"]
    log = cog_server[1]
    before = log.read_text() if log.exists() else ""
    with StackReader([remote], bands, grid) as reader:
        http = reader.read(window)
    with StackReader([local], bands, grid) as reader:
        file = reader.read(window)
    dn_http, clear_http, dn_file, clear_file = http.dn, http.clear, file.dn, file.clear
    np.testing.assert_array_equal(dn_http, dn_file)
    np.testing.assert_array_equal(clear_http, clear_file)
    assert dn_http.shape == (5, *grid.read_shape)
    assert 0.5 < clear_http.mean() < 0.99  # some cirrus is masked by the SCL
    requests = log.read_text()[len(before):].splitlines()
    partial = [r for r in requests if '" 206 ' in r]
    assert partial, "expected HTTP Range (206) requests"
    sent = sum(int(r.split('" 206 ')[1].split()[0]) for r in partial)
    whole = sum((data_dir / "earth-search" / "sentinel-2-l2a" / ES_ITEM_ID / f"{b}.tif")
                .stat().st_size for b in [*bands, "SCL"])
    assert sent < whole / 3, f"read {sent} bytes, the whole files are {whole}"


def test_resampling_and_alignment_on_the_native_grid(data_dir, local_es_item):
    """On the product's own UTM grid at its own pixel size, a read is the file's pixels exactly."""
    folder = data_dir / "earth-search" / "sentinel-2-l2a" / ES_ITEM_ID
    scene = load_scene(local_es_item)
    with rasterio.open(folder / "B04.tif") as src:
        res = src.res[0]
        expected = src.read(1, window=Window(100, 200, 64, 64))
        x0, y0 = src.xy(200, 100, offset="ul")
    grid = PatchGrid(CRS.from_epsg(32629), res, x0, y0, 1, 1, 64, 64)
    with StackReader([scene], ["B04"], grid) as reader:
        dn = reader.read(Window(0, 0, 64, 64)).dn
    np.testing.assert_array_equal(dn[0], expected)


def test_missing_band_is_reported(data_dir):
    scene = load_scene(data_dir / "earth-search" / "sentinel-2-l2a" / ES_ITEM_ID /
                       f"{ES_ITEM_ID}.json")
    grid = grid_for_bounds((200000, 2790000, 200640, 2790640), "EPSG:32629", 10, 64, 64)
    with pytest.raises(GeolulcError, match="lacks band.*B10"):
        StackReader([scene], ["B02", "B10"], grid)


def test_relative_hrefs_resolve_against_the_item(tmp_path, local_es_item):
    item = json.loads(local_es_item.read_text())
    target = tmp_path / "sub"
    target.mkdir()
    for asset in item["assets"].values():
        name = asset["href"].rsplit("/", 1)[-1]
        (target / name).symlink_to(asset["href"])
        asset["href"] = f"sub/{name}"
    path = tmp_path / "my item.json"
    path.write_text(json.dumps(item))
    assert load_scene(path).bands["B02"] == str(target / "B02.tif")


def test_scenes_in_two_utm_zones_are_mosaicked_on_one_grid(data_dir, tmp_path, local_es_item):
    """Half of the area comes from a copy of the product reprojected into UTM zone 28: the
    mosaic on the zone-29 grid must match the original there too (up to resampling)."""
    from rasterio.warp import Resampling as R
    from rasterio.warp import calculate_default_transform, reproject

    folder = data_dir / "earth-search" / "sentinel-2-l2a" / ES_ITEM_ID
    east_half = tmp_path / "zone28"
    east_half.mkdir()
    with rasterio.open(folder / "B04.tif") as src:
        # keep only the western half of the tile in the zone-28 copy
        data = src.read(1)
        data[:, data.shape[1] // 2:] = 0
        transform, width, height = calculate_default_transform(
            src.crs, "EPSG:32628", src.width, src.height, *src.bounds)
        out = np.zeros((height, width), dtype=np.uint16)
        reproject(data, out, src_transform=src.transform, src_crs=src.crs,
                  dst_transform=transform, dst_crs="EPSG:32628", resampling=R.nearest,
                  src_nodata=0, dst_nodata=0)
        profile = {**src.profile, "driver": "GTiff", "crs": "EPSG:32628",
                   "transform": transform, "width": width, "height": height}
    with rasterio.open(east_half / "T28_20200219T112111_L1C_B04.tif", "w", **profile) as dst:
        dst.write(out, 1)
    zone28 = load_scene(east_half)
    original = load_scene(local_es_item)
    utm29 = CRS.from_epsg(32629)
    grid = grid_for_bounds((220000, 2750000, 280000, 2760000), utm29, 100, 64, 64)
    window = Window(0, 0, *grid.read_shape[::-1])
    with StackReader([zone28], ["B04"], grid) as reader:
        from_28 = reader.read(window).dn[0].astype(int)
    with StackReader([original], ["B04"], grid) as reader:
        reference = reader.read(window).dn[0].astype(int)
    both = (from_28 > 0) & (reference > 0)
    west = np.zeros_like(both)
    west[:, : both.shape[1] // 3] = True  # well inside the half the zone-28 copy keeps
    assert both[west].mean() > 0.95
    # two resamplings (to zone 28 and back) move values by about one 100 m pixel at most
    assert np.median(np.abs(from_28 - reference)[both & west]) < 0.05 * np.median(reference)
    assert (from_28[:, -both.shape[1] // 4:] == 0).all()  # the eastern part is not in the copy


def test_truncated_remote_file_is_fetched_again_and_never_used(data_dir, cog_server,
                                                                local_es_item):
    """A COG cut short in transfer: the read fails, is retried uncached, and then reported."""
    url, log, broken = cog_server
    folder = data_dir / "earth-search" / "sentinel-2-l2a" / ES_ITEM_ID
    whole = (folder / "B04.tif").read_bytes()
    (broken / "B04.tif").write_bytes(whole[: len(whole) // 3])
    item = json.loads(local_es_item.read_text())
    item["assets"]["red"]["href"] = f"{url}/broken/B04.tif"
    scene = scene_from_item(item)
    utm = CRS.from_epsg(32629)
    grid = grid_for_bounds((280000, 2700000, 300000, 2720000), utm, 10, 64, 64)  # south-east
    before = log.read_text() if log.exists() else ""
    with StackReader([scene], ["B04"], grid) as reader, \
            pytest.raises(GeolulcError, match="B04.*also when fetched again"):
        reader.read(Window(0, 0, 256, 256))
    requests = [r for r in log.read_text()[len(before):].splitlines() if "/broken/B04.tif" in r]
    assert len(requests) >= 2


def test_direct_read_on_the_grid_equals_the_warped_read(data_dir):
    """Bands already on the grid skip warping; the values must be those of the warped path,
    including where the window runs past the file's edge."""
    from rasterio.vrt import WarpedVRT

    from geolulc.io.resample import NestedBand

    folder = data_dir / "earth-search" / "sentinel-2-l2a" / ES_ITEM_ID
    with rasterio.open(folder / "B04.tif") as src:
        x0, y0 = src.transform.c, src.transform.f
        grid = PatchGrid(CRS.from_epsg(32629), 100, x0 - 6400, y0 + 6400, 3, 20, 64, 64)
        direct = NestedBand.fit(src, grid)
        assert direct is not None and (direct.factor, direct.row0, direct.col0) == (1, 64, 64)
        height, width = grid.read_shape
        with WarpedVRT(src, crs=grid.crs.to_wkt(), transform=grid.read_transform,
                       width=width, height=height, nodata=0,
                       resampling=rasterio.enums.Resampling.bilinear) as vrt:
            for window in (Window(0, 0, width, height), Window(100, 30, 500, 100)):
                np.testing.assert_array_equal(direct.read(1, window),
                                              vrt.read(1, window=window))
        shifted = PatchGrid(CRS.from_epsg(32629), 100, x0 + 50, y0, 1, 1, 64, 64)
        assert NestedBand.fit(src, shifted) is None  # half a pixel off: warped
