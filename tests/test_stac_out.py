"""Every map and change run is described by a STAC Item built with pystac, whose checksums match
the files, that validates offline against the STAC and extension schemas geolulc bundles, that
links its sources so the folder can move, and that a real STAC API (rustac) serves and
pystac-client finds; `geolulc catalog` links the Items both ways."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio

from conftest import _free_port, _tool, _wait_http, run_cli
from geolulc.errors import DataError
from geolulc.io.stac_items import EXTENSIONS, OfflineValidator, validate_catalog

DAYS = ("2015-08-21", "2017-06-21")


@pytest.fixture(scope="module")
def runs(data_dir, tmp_path_factory) -> Path:
    """In one folder: a mean-probability composite of Rennes' two dates with its series, the change
    between the two series maps, and a map of a scene copied inside the folder."""
    out = tmp_path_factory.mktemp("runs")
    city = data_dir / "oscd" / "rennes"
    result = run_cli("map", "--scene", str(city / "imgs_1"), "--scene", str(city / "imgs_2"),
                     "--composite", "mean-probability", "--series", "--out", str(out),
                     "--name", "rennes", "--quiet")
    assert result.returncode == 0, result.stderr
    result = run_cli("change", "--before", str(out / f"rennes_{DAYS[0]}_landcover.tif"),
                     "--after", str(out / f"rennes_{DAYS[1]}_landcover.tif"), "--out", str(out),
                     "--name", "rennes", "--quiet")
    assert result.returncode == 0, result.stderr
    inside = out / "scenes" / "rennes"
    shutil.copytree(city / "imgs_1", inside / "imgs_1")
    shutil.copy(city / "dates.txt", inside / "dates.txt")  # the OSCD acquisition dates
    result = run_cli("map", "--scene", str(inside / "imgs_1"), "--out", str(out),
                     "--name", "inside", "--quiet")
    assert result.returncode == 0, result.stderr
    result = run_cli("catalog", str(out), "--validate")
    assert result.returncode == 0, result.stderr
    assert "checked offline" in result.stdout
    return out


@pytest.fixture
def offline():
    """pystac's own validation, through geolulc's offline validator (restored afterwards)."""
    before = pystac.validation.RegisteredValidator.get_validator()
    pystac.validation.set_validator(OfflineValidator())
    yield
    pystac.validation.set_validator(before)


def item_json(folder: Path, name: str) -> dict:
    return json.loads((folder / f"{name}.json").read_text())


def derived_from(item: dict) -> list[str]:
    return [link["href"] for link in item["links"] if link["rel"] == "derived_from"]


def test_a_map_item_describes_its_files(runs):
    item = pystac.Item.from_file(str(runs / f"rennes_{DAYS[0]}.json"))
    for key, asset in item.assets.items():
        path = runs / Path(asset.href).name
        assert asset.href == f"./{path.name}", key
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert asset.extra_fields["file:checksum"] == "1220" + digest, key
        assert asset.extra_fields["file:size"] == path.stat().st_size, key
    landcover = item.assets["landcover"]
    assert "data" in landcover.roles and "visual" in item.assets["quicklook"].roles
    with rasterio.open(runs / f"rennes_{DAYS[0]}_landcover.tif") as src:
        assert item.properties["proj:shape"] == [src.height, src.width]
        assert item.properties["proj:transform"] == list(src.transform)[:6]
        assert item.properties["proj:code"] == f"EPSG:{src.crs.to_epsg()}"
        assert item.properties["proj:bbox"] == list(src.bounds)
        classes = json.loads(src.tags()["classes"])
        valid = src.read(1) != 255
    band = landcover.extra_fields["raster:bands"][0]
    assert band["nodata"] == 255 and band["data_type"] == "uint8"
    named = [c for c in band["classification:classes"] if not c.get("nodata")]
    assert [c["name"] for c in named] == classes  # Dynamic World's names are machine names
    titles = [c["title"] for c in named]
    assert "flooded vegetation" in titles and "shrub and scrub" in titles
    assert not any("_" in t for t in titles) and named[0]["color_hint"] == "419BDF"
    assert band["classification:classes"][-1] == {"value": 255, "name": "no_data",
                                                  "title": "no data", "nodata": True}
    probabilities = item.assets["probabilities"].extra_fields["raster:bands"]
    assert [b["name"] for b in probabilities] == [f"p({c})" for c in classes]  # as the COG's bands
    assert probabilities[0]["scale"] == pytest.approx(1 / 250) and probabilities[0]["offset"] == 0
    assert item.properties["geolulc:model"] == "dynamic-world"
    assert len(item.properties["geolulc:model_digest"]) == 20
    assert item.properties["processing:software"]["geolulc"]
    assert sorted(item.stac_extensions) == sorted(EXTENSIONS.values())
    # the footprint is the valid data: its bbox lies within the grid's and covers most of it
    west, south, east, north = item.bbox
    assert -1.7 < west < east < -1.6 and 48.0 < south < north < 48.2 and valid.mean() > 0.9


def test_sources_outside_the_folder_are_named_by_id_inside_linked_relatively(runs):
    # the series' scenes lie outside the output folder: no link (an absolute path would break
    # when the folder moves), their ids are in geolulc:scenes
    series = item_json(runs, f"rennes_{DAYS[0]}")
    assert derived_from(series) == [] and series["properties"]["geolulc:scenes"] == ["rennes-imgs_1"]
    assert len(item_json(runs, "rennes")["properties"]["geolulc:scenes"]) == 2
    inside = item_json(runs, "inside")
    assert derived_from(inside) == ["./scenes/rennes/imgs_1"]
    change = item_json(runs, f"rennes_rennes_{DAYS[0]}_rennes_{DAYS[1]}")
    assert sorted(derived_from(change)) == [f"./rennes_{d}.json" for d in DAYS]
    assert change["properties"]["geolulc:change_method"] == "tv"
    mask = change["assets"]["change_mask"]["raster:bands"][0]["classification:classes"]
    assert [c["name"] for c in mask] == ["no_change", "change", "no_data"]
    assert [c["title"] for c in mask] == ["no change", "change", "no data"]
    fromto = change["assets"]["fromto"]["raster:bands"][0]["classification:classes"]
    assert fromto[1]["name"] == "water_to_trees" and fromto[1]["title"] == "water → trees"
    for name in ("rennes", f"rennes_{DAYS[0]}", "inside"):
        text = (runs / f"{name}.json").read_text()
        assert "file://" not in text and str(runs) not in text, name


def test_series_and_composite_dates_agree(runs):
    composite = item_json(runs, "rennes")["properties"]
    series = [item_json(runs, f"rennes_{d}")["properties"] for d in DAYS]
    assert [s["datetime"] for s in series] == [None, None]
    assert [(s["start_datetime"], s["end_datetime"]) for s in series] == [
        (f"{d}T00:00:00Z", f"{d}T23:59:59Z") for d in DAYS]
    # the composite spans its acquisitions in whole days: from its first series map's start to
    # its last one's end
    assert composite["datetime"] is None
    assert composite["start_datetime"] == series[0]["start_datetime"]
    assert composite["end_datetime"] == series[1]["end_datetime"]
    assert [s["geolulc:date"] for s in series] == list(DAYS)
    assert composite["geolulc:date"] == f"{DAYS[0]}/{DAYS[1]}"
    # one local scene and no date asked: the acquisition's instant, and its day as geolulc:date
    inside = item_json(runs, "inside")["properties"]
    assert inside["datetime"] == f"{DAYS[0]}T00:00:00Z" and inside["geolulc:date"] == DAYS[0]
    change = item_json(runs, f"rennes_rennes_{DAYS[0]}_rennes_{DAYS[1]}")["properties"]
    assert (change["start_datetime"], change["end_datetime"]) == (
        composite["start_datetime"], composite["end_datetime"])


def test_the_catalogue_links_every_item_both_ways_and_validates_offline(runs, offline):
    catalog = pystac.Catalog.from_file(str(runs / "catalog.json"))
    names = {"rennes", *(f"rennes_{d}" for d in DAYS), "inside",
             f"rennes_rennes_{DAYS[0]}_rennes_{DAYS[1]}"}
    assert {i.id for i in catalog.get_items()} == names
    assert sorted(validate_catalog(runs)) == sorted(names)
    catalog.validate_all()  # pystac's own walk, through the offline validator
    for name in names:
        links = {link["rel"]: link["href"] for link in item_json(runs, name)["links"]
                 if link["rel"] in ("root", "parent")}
        assert links == {"root": "./catalog.json", "parent": "./catalog.json"}, name
        item = pystac.Item.from_file(str(runs / f"{name}.json"))
        assert Path(item.get_root_link().get_absolute_href()) == runs / "catalog.json"
        assert Path(item.get_parent().get_self_href()) == runs / "catalog.json"
    links = json.loads((runs / "catalog.json").read_text())["links"]
    assert all(link["href"].startswith("./") for link in links)


def test_a_moved_catalogue_still_resolves_and_validates(runs, tmp_path, offline):
    moved = tmp_path / "elsewhere" / "maps"
    shutil.copytree(runs, moved)
    catalog = pystac.Catalog.from_file(str(moved / "catalog.json"))
    catalog.validate_all()
    assert len(validate_catalog(moved / "catalog.json")) == 5
    inside = next(catalog.get_items("inside"))
    source = next(link for link in inside.links if link.rel == "derived_from")
    assert Path(source.get_absolute_href()) == moved / "scenes" / "rennes" / "imgs_1"
    change = next(i for i in catalog.get_items() if i.id.startswith("rennes_rennes"))
    maps = sorted(Path(link.get_absolute_href()) for link in change.links
                  if link.rel == "derived_from")
    assert maps == [moved / f"rennes_{d}.json" for d in DAYS]
    assert Path(change.assets["fromto"].get_absolute_href()).is_file()


def test_a_catalogue_in_a_folder_with_url_characters(runs, tmp_path):
    """pystac reads hrefs as URLs: a folder named `maps#2 x` must not become `maps`."""
    import geolulc

    odd = tmp_path / "maps#2 x"
    shutil.copytree(runs, odd)
    path = geolulc.catalog(odd, validate=True)
    links = json.loads(path.read_text())["links"]
    items = sorted(link["href"] for link in links if link["rel"] == "item")
    assert items == sorted(f"./{p.name}" for p in odd.glob("*.json") if p.name != "catalog.json"
                           and "processing:software" in p.read_text())
    assert all((odd / href).is_file() for href in items)


@pytest.mark.parametrize("field, value, message", [
    (("properties", "proj:shape"), ["439", 486], r"proj:shape'\]\[0\]: '439' is not of type"),
    (("assets", "landcover", "raster:bands", 0, "classification:classes", 0, "color_hint"),
     "#419BDF", r"color_hint: '#419BDF' does not match .* \(schema classification v2\.0\.0\)"),
    (("assets", "quicklook", "file:size"), -1, r"file:size'\]: -1 is less than the minimum"),
    (("stac_extensions",), [], r"proj:code is used but the projection extension is not"),
])
def test_a_broken_item_fails_validation_in_one_line(runs, tmp_path, field, value, message):
    broken = _broken(runs, tmp_path, field, value)
    with pytest.raises(DataError, match=message) as raised:
        validate_catalog(broken)
    assert "\n" not in str(raised.value) and f"rennes_{DAYS[1]}.json" in str(raised.value)


def test_the_command_fails_on_a_broken_item_in_one_line(runs, tmp_path):
    broken = _broken(runs, tmp_path, ("properties", "proj:transform"), [10, 0, 1])
    result = run_cli("catalog", str(broken), "--validate")
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert f"rennes_{DAYS[1]}.json: properties['proj:transform']" in result.stderr


def _broken(runs: Path, tmp_path: Path, field: tuple, value) -> Path:
    """A copy of the runs where the second series map's Item has `value` at `field`."""
    broken = tmp_path / "broken"
    shutil.copytree(runs, broken, ignore=shutil.ignore_patterns("scenes"))
    path = broken / f"rennes_{DAYS[1]}.json"
    item = json.loads(path.read_text())
    target = item
    for key in field[:-1]:
        target = target[key]
    target[field[-1]] = value
    path.write_text(json.dumps(item))
    return broken


def test_validation_never_downloads_a_schema(runs, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(runs, broken, ignore=shutil.ignore_patterns("scenes"))
    path = broken / "rennes.json"
    item = json.loads(path.read_text())
    item["stac_extensions"].append("https://stac-extensions.github.io/eo/v1.1.0/schema.json")
    path.write_text(json.dumps(item))
    with pytest.raises(DataError, match="eo/v1.1.0/schema.json is not bundled"):
        validate_catalog(broken)
    item["stac_extensions"].pop()
    item["properties"]["proj:projjson"] = {"type": "GeographicCRS"}  # refers to proj.org's schema
    path.write_text(json.dumps(item))
    with pytest.raises(DataError, match="proj.org/schemas/v0.7/projjson.schema.json"):
        validate_catalog(broken)


def test_a_folder_of_runs_is_a_catalogue_a_stac_api_serves(runs, tmp_path):
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
        # the first date's map, and the composite and change that span it
        assert sorted(i.id for i in found) == sorted(
            ["rennes", f"rennes_{DAYS[0]}", f"rennes_rennes_{DAYS[0]}_rennes_{DAYS[1]}"])
        first = next(i for i in found if i.id == f"rennes_{DAYS[0]}")
        assert first.assets["landcover"].href.endswith(f"rennes_{DAYS[0]}_landcover.tif")
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


def test_source_hrefs(tmp_path):
    from geolulc.io.stac_items import source_href

    home = tmp_path / "out"
    (home / "scenes" / "a b").mkdir(parents=True)
    assert source_href("https://earth-search.aws.element84.com/v1/x", home).startswith("https:")
    assert source_href("s3://bucket/item.json", home) == "s3://bucket/item.json"
    assert source_href((home / "scenes" / "a b").as_uri(), home) == "./scenes/a b"
    assert source_href(str(home / "m.json"), home) == "./m.json"
    assert source_href((tmp_path / "elsewhere").as_uri(), home) is None
    assert source_href(str(home / ".." / "out2" / "m.json"), home) is None


def test_period_of_a_map():
    from datetime import datetime, timezone

    from geolulc.io.stac_items import acquisition_days, period_of

    one = [datetime(2020, 6, 1, 10, 56, 19, tzinfo=timezone.utc)]
    assert period_of(one) == {"datetime": "2020-06-01T10:56:19Z"}
    two = [*one, datetime(2020, 6, 11, 10, 46)]
    assert period_of(two) == {"datetime": None, "start_datetime": "2020-06-01T00:00:00Z",
                              "end_datetime": "2020-06-11T23:59:59Z"}
    assert period_of(two, "2020-06", "2020-06")["end_datetime"] == "2020-06-30T23:59:59Z"
    assert period_of(one, "before", "after") == period_of(one)  # labels are no dates
    assert acquisition_days(two) == "2020-06-01/2020-06-11" and acquisition_days(one) == "2020-06-01"
    assert acquisition_days([]) is None
