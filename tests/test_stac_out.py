"""Every map and change run is described by a STAC Item that pystac reads, whose checksums match
the files, and that a real STAC API (rustac) serves and pystac-client finds."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio

from conftest import _free_port, _tool, _wait_http, run_cli


@pytest.fixture(scope="module")
def runs(data_dir, tmp_path_factory) -> Path:
    """Two dates of Rennes mapped, then their change from the two maps, in one folder."""
    out = tmp_path_factory.mktemp("runs")
    for date in ("imgs_1", "imgs_2"):
        result = run_cli("map", "--scene", str(data_dir / "oscd" / "rennes" / date), "--out",
                         str(out), "--name", f"rennes{date[-1]}", "--quiet")
        assert result.returncode == 0, result.stderr
    result = run_cli("change", "--before", str(out / "rennes1_landcover.tif"), "--after",
                     str(out / "rennes2_landcover.tif"), "--out", str(out), "--name", "rennes",
                     "--quiet")
    assert result.returncode == 0, result.stderr
    return out


def test_a_map_item_describes_its_files(runs, data_dir):
    item = pystac.Item.from_file(str(runs / "rennes1.json"))
    item.validate = None  # the extension schemas cannot be fetched offline (see the docs)
    assert item.id == "rennes1" and item.datetime.date().isoformat() == "2015-08-21"
    for key, asset in item.assets.items():
        path = runs / Path(asset.href).name
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert asset.extra_fields["file:checksum"] == "1220" + digest, key
        assert asset.extra_fields["file:size"] == path.stat().st_size, key
    landcover = item.assets["landcover"]
    assert "data" in landcover.roles and "visual" in item.assets["quicklook"].roles
    with rasterio.open(runs / "rennes1_landcover.tif") as src:
        assert item.properties["proj:shape"] == [src.height, src.width]
        assert item.properties["proj:transform"] == list(src.transform)[:6]
        assert item.properties["proj:code"] == f"EPSG:{src.crs.to_epsg()}"
        classes = json.loads(src.tags()["classes"])
        valid = src.read(1) != 255
    band = landcover.extra_fields["raster:bands"][0]
    assert band["nodata"] == 255 and band["data_type"] == "uint8"
    named = [c["title"] for c in band["classification:classes"] if not c.get("nodata")]
    assert named == classes and band["classification:classes"][0]["color_hint"] == "419BDF"
    probabilities = item.assets["probabilities"].extra_fields["raster:bands"]
    assert len(probabilities) == len(classes) and probabilities[0]["scale"] == pytest.approx(1 / 250)
    assert item.properties["geolulc:model"] == "dynamic-world"
    assert len(item.properties["geolulc:model_digest"]) == 20
    source = (data_dir / "oscd" / "rennes" / "imgs_1").resolve().as_uri()
    assert [link.href for link in item.links if link.rel == "derived_from"] == [source]
    # the footprint is the valid data: its bbox lies within the grid's and covers most of it
    west, south, east, north = item.bbox
    assert -1.7 < west < east < -1.6 and 48.0 < south < north < 48.2 and valid.mean() > 0.9


def test_a_change_item_links_the_maps_it_compares(runs):
    item = pystac.Item.from_file(str(runs / "rennes_rennes1_rennes2.json"))
    sources = sorted(link.href for link in item.links if link.rel == "derived_from")
    assert sources == sorted((runs / f"rennes{i}.json").resolve().as_uri() for i in (1, 2))
    mask = item.assets["change_mask"].extra_fields["raster:bands"][0]
    assert [c["name"] for c in mask["classification:classes"]] == ["no_change", "change", "no_data"]
    assert item.properties["geolulc:change_method"] == "tv"


def test_a_folder_of_runs_is_a_catalogue_a_stac_api_serves(runs, tmp_path):
    result = run_cli("catalog", str(runs))
    assert result.returncode == 0, result.stderr
    catalog = pystac.Catalog.from_file(str(runs / "catalog.json"))
    assert {i.id for i in catalog.get_items()} == {"rennes1", "rennes2", "rennes_rennes1_rennes2"}
    features = []
    for path in sorted(runs.glob("rennes*.json")):
        item = json.loads(path.read_text())
        if item.get("type") == "Feature":
            features.append({**item, "collection": "geolulc-maps"})
    (tmp_path / "items.json").write_text(json.dumps({"type": "FeatureCollection",
                                                     "features": features}))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([_tool("rustac"), "serve", "--create-collections", "--addr",
                             f"127.0.0.1:{port}", str(tmp_path / "items.json")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_http(f"{url}/collections/geolulc-maps", proc)
        import pystac_client

        found = pystac_client.Client.open(url).search(
            collections=["geolulc-maps"], bbox=[-1.66, 48.10, -1.64, 48.12],
            datetime="2015-08-01/2015-08-31").item_collection()
        assert [i.id for i in found] == ["rennes1"]
        assert found[0].assets["landcover"].href.endswith("rennes1_landcover.tif")
    finally:
        proc.terminate()
        proc.wait(10)


def test_an_asset_outside_the_items_folder_is_refused(tmp_path):
    from affine import Affine
    from pyproj import CRS

    from geolulc.errors import ParameterError
    from geolulc.io.stac_items import Asset, write_item

    (tmp_path / "a").mkdir()
    outside = tmp_path / "x.tif"
    outside.write_bytes(b"x")
    with pytest.raises(ParameterError, match="outside the item's folder"):
        write_item(tmp_path / "a", "m", crs=CRS.from_epsg(32630),
                   transform=Affine(10, 0, 500000, 0, -10, 5300000), shape_=(4, 4),
                   valid=np.ones((4, 4), bool), when={"datetime": "2020-01-01T00:00:00Z"},
                   assets={"x": Asset(tmp_path / "a" / ".." / "x.tif", ["data"], "x")},
                   sources=[], properties={})
    assert not (tmp_path / "a" / "m.json").exists()
