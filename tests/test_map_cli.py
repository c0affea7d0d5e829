"""`geolulc map`, `search` and `download` run as a user runs them (subprocess), results opened
with rasterio and checked against the AOI and the model card."""

import json

import numpy as np
import pytest
import rasterio
from PIL import Image
from pyproj import CRS
from shapely.geometry import shape

from conftest import DESERT_AOI, ES_ITEM_ID, run_cli
from geolulc.core.grid import project_geometry

AOI = shape(DESERT_AOI["features"][0]["geometry"])


def check_map_outputs(out_dir, name, model_path, epsg):
    card = json.loads(model_path.read_text())
    landcover = out_dir / f"{name}_landcover.tif"
    with rasterio.open(landcover) as src:
        assert src.crs.to_epsg() == epsg
        assert src.dtypes[0] == "uint8" and src.nodata == 255 and src.count == 1
        assert src.profile["tiled"] and src.profile["compress"] == "deflate"
        assert src.res == (640.0, 640.0)
        assert json.loads(src.tags()["classes"]) == card["classes"]
        cmap = src.colormap(1)
        for code, color in enumerate(card["colors"]):
            assert cmap[code][:3] == tuple(color)
        labels = src.read(1)
        transform, bounds = src.transform, src.bounds
    valid = labels[labels != 255]
    assert valid.size and valid.max() < len(card["classes"])
    with rasterio.open(out_dir / f"{name}_confidence.tif") as conf:
        assert conf.transform == transform and conf.crs.to_epsg() == epsg
        c = conf.read(1)
        np.testing.assert_array_equal(c == 255, labels == 255)
        assert 100 / len(card["classes"]) - 1 <= c[c != 255].min() and c[c != 255].max() <= 100
    with rasterio.open(out_dir / f"{name}_probabilities.tif") as prob:
        assert prob.count == len(card["classes"]) and prob.transform == transform
        assert list(prob.descriptions) == [f"p({c})" for c in card["classes"]]
        p = prob.read().astype(int)
        total = p.sum(0)[labels != 255]
        assert np.all(np.abs(total - 250) <= len(card["classes"]))  # rounding of each class
        # the mapped class has the highest probability (up to rounding to 1/250)
        rows, cols = np.nonzero(labels != 255)
        assert np.all(p[valid, rows, cols] >= p.max(0)[rows, cols] - 1)
    stats = json.loads((out_dir / f"{name}_stats.json").read_text())
    assert sum(r["pixels"] for r in stats["classes"]) == valid.size
    # ground areas on the ellipsoid: within UTM's scale (0.9996–1.001) of the grid's own
    assert stats["mapped_km2"] == pytest.approx(valid.size * 0.4096, rel=2e-3)
    csv_lines = (out_dir / f"{name}_stats.csv").read_text().splitlines()
    assert csv_lines[0] == "code,class,pixels,area_km2,percent"
    assert len(csv_lines) == len(card["classes"]) + 1
    with Image.open(out_dir / f"{name}_quicklook.png") as png:
        assert png.width > 200
    assert 'label="' in (out_dir / f"{name}_landcover.qml").read_text()
    assert not list(out_dir.glob(".*")), "no temporary files are left behind"
    return bounds, stats


def test_map_over_stac_api(stac_api, desert_aoi, tiny_l2a_model, tmp_path):
    out = tmp_path / "out"
    result = run_cli("map", "--aoi", str(desert_aoi), "--date", "2020-02", "--catalog", stac_api,
                     "--model", str(tiny_l2a_model), "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    # a month is a median composite of its acquisitions, least cloudy first
    assert [s["id"] for s in summary["scenes"]] == [ES_ITEM_ID, "S2A_29RKH_20200224_0_L2A"]
    assert summary["scenes"][0]["processing_baseline"] == "02.14"
    with rasterio.open(out / "tiris_2020-02_count.tif") as count:
        assert count.res == (10.0, 10.0) and count.crs.to_epsg() == 32629
        # both served acquisitions have the same pixels and SCL: clear in both or in neither
        assert set(np.unique(count.read(1))) == {0, 2}
    single = run_cli("map", "--aoi", str(desert_aoi), "--date", "2020-02", "--catalog", stac_api,
                     "--model", str(tiny_l2a_model), "--out", str(tmp_path / "single"),
                     "--composite", "none", "--json")
    assert [s["id"] for s in json.loads(single.stdout)["scenes"]] == [ES_ITEM_ID]
    with rasterio.open(out / "tiris_2020-02_landcover.tif") as a, \
            rasterio.open(tmp_path / "single" / "tiris_2020-02_landcover.tif") as b:
        np.testing.assert_array_equal(a.read(1), b.read(1))  # the median of equal values
    assert summary["crs"] == "EPSG:32629"
    bounds, stats = check_map_outputs(out, "tiris_2020-02", tiny_l2a_model, 32629)
    # the map covers the AOI, and by less than one 640 m cell on each side
    minx, miny, maxx, maxy = project_geometry(AOI, CRS.from_epsg(32629)).bounds
    assert bounds.left <= minx < bounds.left + 640 and bounds.right - 640 < maxx <= bounds.right
    assert bounds.bottom <= miny < bounds.bottom + 640 and bounds.top - 640 < maxy <= bounds.top
    assert stats["run"]["cloud_masked_pixels"] > 0  # the SCL removed the cirrus
    assert summary["cells_classified"] == summary["stats"]["classes"][0]["pixels"] + sum(
        r["pixels"] for r in summary["stats"]["classes"][1:])


def test_map_local_oscd_scene(data_dir, tiny_model, tmp_path):
    out = tmp_path / "out"
    result = run_cli("map", "--scene", str(data_dir / "oscd" / "rennes" / "imgs_1"),
                     "--model", str(tiny_model), "--stride", "32", "--out", str(out),
                     "--name", "rennes")
    assert result.returncode == 0, result.stderr
    assert "Mapped" in result.stdout and "km²" in result.stdout
    with rasterio.open(out / "rennes_landcover.tif") as src:
        assert src.res == (320.0, 320.0)
        assert src.crs.to_epsg() == 32630  # the OSCD grid is EPSG:4326; T30 → UTM 30N
        # the map lies over the scene's footprint
        with rasterio.open(sorted((data_dir / "oscd/rennes/imgs_1").glob("*_B02.tif"))[0]) as b:
            from geolulc.core.grid import bounds_to_wgs84
            west, south, east, north = bounds_to_wgs84(src.bounds, src.crs)
            assert west <= b.bounds.left + 0.01 and east >= b.bounds.right - 0.01
            assert south <= b.bounds.bottom + 0.01 and north >= b.bounds.top - 0.01


def test_map_safe_zip_within_an_aoi(data_dir, tiny_model, tmp_path):
    """A zipped SAFE read in place (/vsizip/), clipped to an AOI inside its tile (T48LWP)."""
    zipped = data_dir / "safe" / "S2A_MSIL1C_20210713T032051_N0301_R032_T48LWP_20210713T054224.zip"
    aoi = tmp_path / "aoi.geojson"
    aoi.write_text(json.dumps({"type": "Polygon", "coordinates": [[
        [105.40, -10.50], [105.45, -10.50], [105.45, -10.45], [105.40, -10.45], [105.40, -10.50]]]}))
    result = run_cli("map", "--scene", str(zipped), "--aoi", str(aoi), "--model", str(tiny_model),
                     "--out", str(tmp_path), "--name", "safe", "--quiet", "--min-clear", "0")
    assert result.returncode == 0, result.stderr
    with rasterio.open(tmp_path / "safe_landcover.tif") as src:
        assert src.crs.to_epsg() == 32748  # UTM 48S, south of the equator
        assert src.shape == (10, 10)  # 5.5 km square on 640 m cells aligned to multiples of 640 m


def test_search_command(stac_api, desert_aoi):
    result = run_cli("search", "--aoi", str(desert_aoi), "--date", "2020-02", "--catalog",
                     stac_api, "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["id"] for r in rows] == [ES_ITEM_ID, "S2A_29RKH_20200224_0_L2A"]
    assert rows[0]["aoi_coverage"] == 1.0 and rows[0]["level"] == "L2A"
    table = run_cli("search", "--aoi", str(desert_aoi), "--date", "2020-02", "--catalog",
                    stac_api, "--max-cloud", "20")
    assert "1 scene(s)" in table.stdout and "02.14" in table.stdout


def test_download_then_map_offline_gives_the_same_map(stac_api, desert_aoi, tiny_l2a_model,
                                                      tmp_path):
    stack = tmp_path / "stack"
    result = run_cli("download", "--aoi", str(desert_aoi), "--date", "2020-02", "--catalog",
                     stac_api, "--bands", "B02,B03,B04,B08", "--out", str(stack))
    assert result.returncode == 0, result.stderr
    item = json.loads((stack / "item.json").read_text())
    assert item["properties"]["geolulc:harmonised"] is True
    with rasterio.open(stack / "B02.tif") as src:
        assert src.crs.to_epsg() == 32629 and src.res == (10.0, 10.0) and src.nodata == 0
    online = run_cli("map", "--aoi", str(desert_aoi), "--date", "2020-02", "--catalog", stac_api,
                     "--model", str(tiny_l2a_model), "--out", str(tmp_path / "a"), "--quiet")
    offline = run_cli("map", "--scene", str(stack), "--aoi", str(desert_aoi), "--model",
                      str(tiny_l2a_model), "--out", str(tmp_path / "b"), "--name",
                      "tiris_2020-02", "--quiet")
    assert online.returncode == 0 and offline.returncode == 0, offline.stderr
    assert "not masked" not in offline.stderr  # the download was masked already
    with rasterio.open(tmp_path / "a" / "tiris_2020-02_landcover.tif") as a, \
            rasterio.open(tmp_path / "b" / "tiris_2020-02_landcover.tif") as b:
        assert a.transform == b.transform
        np.testing.assert_array_equal(a.read(1), b.read(1))


# ------------------------------------------------------------------ bad input


def bad_aoi(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("args_fn,message", [
    (lambda t, d: ["--aoi", str(bad_aoi(t, "e.geojson", '{"type":"FeatureCollection",'
                                        '"features":[]}')), "--date", "2020-02"],
     "has no geometry"),
    (lambda t, d: ["--aoi", str(bad_aoi(t, "b.geojson", json.dumps({
        "type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}))),
        "--date", "2020-02"], "Self-intersection"),
    (lambda t, d: ["--aoi", str(bad_aoi(t, "n.geojson", "nonsense")), "--date", "2020-02"],
     "cannot read AOI"),
    (lambda t, d: ["--aoi", str(d / "x.geojson"), "--date", "2020-02"], "does not exist"),
    (lambda t, d: ["--aoi", "AOI", "--date", "2020-13"], "cannot read date"),
    (lambda t, d: ["--scene", str(t)], "no per-band rasters"),
    (lambda t, d: [], "give --aoi and --date, or --scene"),
])
def test_bad_input_is_one_line_and_leaves_nothing(tmp_path, args_fn, message, desert_aoi,
                                                 stac_api):
    out = tmp_path / "out"
    args = [a.replace("AOI", str(desert_aoi)) for a in args_fn(tmp_path, tmp_path)]
    result = run_cli("map", *args, "--catalog", stac_api, "--out", str(out))
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists() or not any(out.iterdir())


def test_no_scene_and_missing_band_messages(stac_api, desert_aoi, tiny_model, tmp_path):
    none = run_cli("map", "--aoi", str(desert_aoi), "--date", "2021-06", "--catalog", stac_api,
                   "--model", str(tiny_model), "--out", str(tmp_path))
    assert none.returncode == 1 and "no sentinel-2-l2a scene" in none.stderr
    # the 13-band L1C model needs B10, which L2A products do not have
    l2a = run_cli("map", "--aoi", str(desert_aoi), "--date", "2020-02", "--catalog", stac_api,
                  "--model", str(tiny_model), "--out", str(tmp_path))
    assert l2a.returncode == 1 and "lacks band(s) B10" in l2a.stderr
    assert not any(tmp_path.iterdir())


def test_failed_run_keeps_the_previous_good_map(data_dir, tiny_model, tmp_path):
    scene = tmp_path / "scene"
    scene.mkdir()
    for band in sorted((data_dir / "oscd" / "paris" / "imgs_1").glob("*.tif")):
        (scene / band.name).write_bytes(band.read_bytes())
    out = tmp_path / "out"
    good = run_cli("map", "--scene", str(scene), "--model", str(tiny_model), "--out", str(out),
                   "--name", "paris", "--quiet")
    assert good.returncode == 0, good.stderr
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    b08 = next(scene.glob("*_B08.tif"))
    b08.write_bytes(b08.read_bytes()[:2000])  # a truncated download
    bad = run_cli("map", "--scene", str(scene), "--model", str(tiny_model), "--out", str(out),
                  "--name", "paris", "--quiet")
    assert bad.returncode == 1 and "B08" in bad.stderr and "Traceback" not in bad.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
