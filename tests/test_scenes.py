import json

import pytest

from geolulc.errors import GeolulcError
from geolulc.io.scenes import load_scene, scene_from_item

ITEMS = "metadata/stac-items"


def items_in(path):
    data = json.loads(path.read_text())
    if isinstance(data, list):
        return data
    return data["features"] if data.get("type") == "FeatureCollection" else [data]


@pytest.mark.parametrize("name,level,baseline,offset,blue", [
    ("earthsearch_v1_sentinel-2-l2a_S2A_29RKH_20200219_0_L2A_from_rio-tiler-pds.json",
     "L2A", (2, 14), 0, "/B02.tif"),
    ("earthsearch_v1_sentinel-2-c1-l2a_S2B_T20EPT_20250731T131905_L2A.json",
     "L2A", (5, 11), 1000, "/B02.tif"),
    ("earthsearch_v1_sentinel-2-l1c_S2B_20EPT_20250731_0_L1C.json", "L1C", (5, 11), 1000,
     "/B02.jp2"),
    ("earthsearch_v1_sentinel-2-l2a_S2B_20EPT_20250731_0_L2A.json", "L2A", (5, 11), 1000,
     "/B02.tif"),
    ("cdse_FeatureCollection_T36NYH_20200322_N0500.json", "L2A", (5, 0), 1000, "_B02_10m.jp2"),
    ("pc_sentinel-2-l2a_items_stac-geoparquet.json", "L2A", (5, 10), 1000, "_B02_10m.tif"),
    ("odc-stac_S2A_28QCH_20200714_0_L2A.json", "L2A", None, 0, "B02.tif"),
])
def test_real_items_from_every_provider(data_dir, name, level, baseline, offset, blue):
    """Asset keys differ per provider (common names, B02, B02_10m); the baseline decides the
    offset whatever the provider's own flags or raster:bands offsets say."""
    item = items_in(data_dir / ITEMS / name)[0]
    scene = scene_from_item(item)
    assert scene.level == level
    assert scene.baseline == baseline
    assert scene.offset == offset
    assert scene.bands["B02"].endswith(blue)
    assert {"B02", "B03", "B04", "B08", "B11", "B12", "B8A"} <= set(scene.bands)
    if level == "L2A":
        assert scene.scl is not None and "B10" not in scene.bands
    else:
        assert "B10" in scene.bands


def test_s3_hrefs_become_gdal_paths(data_dir):
    item = items_in(data_dir / ITEMS / "cdse_FeatureCollection_T36NYH_20200322_N0500.json")[0]
    assert scene_from_item(item).bands["B04"].startswith("/vsis3/eodata/Sentinel-2/")


def test_oscd_band_folder(data_dir):
    scene = load_scene(data_dir / "oscd" / "paris" / "imgs_1")
    assert scene.level == "L1C" and len(scene.bands) == 13
    assert scene.datetime.strftime("%Y%m%d") == "20161130"
    assert scene.offset == 0


def test_safe_zip_and_folder(data_dir):
    zipped = load_scene(data_dir / "safe" /
                        "S2A_MSIL1C_20210713T032051_N0301_R032_T48LWP_20210713T054224.zip")
    assert zipped.level == "L1C" and zipped.baseline == (3, 1) and len(zipped.bands) == 13
    assert zipped.bands["B02"].startswith("/vsizip/")
    # this product also ships an empty granule folder; the one with images is chosen
    other = load_scene(data_dir / "safe" /
                       "S2A_MSIL1C_20180629T000241_N0206_R030_T56JMM_20180629T012042.zip")
    assert "A015757_20180629T000241" in other.bands["B8A"]
    partial = load_scene(data_dir / "safe" /
                         "S2A_MSIL1C_20180101T105441_N0206_R051_T31TDH_20180101T124911.SAFE")
    assert set(partial.bands) == {"B01"}
    with pytest.raises(GeolulcError, match="lacks band"):
        partial.require(["B01", "B02"])


def test_bad_scene_paths(tmp_path):
    with pytest.raises(GeolulcError, match="does not exist"):
        load_scene(tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(GeolulcError, match="no per-band rasters"):
        load_scene(empty)
    broken = tmp_path / "x.zip"
    broken.write_bytes(b"PK not really")
    with pytest.raises(GeolulcError, match="cannot open SAFE archive"):
        load_scene(broken)
    notitem = tmp_path / "x.json"
    notitem.write_text('{"type": "FeatureCollection"}')
    with pytest.raises(GeolulcError, match="not a STAC item"):
        load_scene(notitem)
