"""Change detection: outputs checked on constructed maps where the answer is known, then the
commands end to end on real scenes and over the STAC API."""

import json

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import CRS

from conftest import run_cli
from geolulc.change_detection.detect import Change, DateMap, compare
from geolulc.change_detection.files import write_change, write_change_polygons
from geolulc.errors import GeolulcError

CLASSES = ["Water", "Forest", "Urban"]
COLORS = [(0, 0, 255), (0, 128, 0), (255, 0, 0)]
UTM = CRS.from_epsg(32631)
T = Affine(640, 0, 400000, 0, -640, 5000000)


def date_map(name, labels, confident=True):
    labels = np.array(labels, dtype=np.uint8)
    probs = np.zeros((*labels.shape, 3), dtype=np.float32)
    for code in range(3):
        if confident:
            probs[labels == code] = np.eye(3)[code]
        else:  # the class wins with 0.5, the others share the rest
            probs[labels == code] = np.where(np.arange(3) == code, 0.5, 0.25)
    return DateMap(name, labels, probs, UTM, T, "m", CLASSES, COLORS)


def test_known_transitions_mask_and_nodata():
    before = date_map("a", [[0, 1, 1], [2, 255, 1]])
    after = date_map("b", [[0, 2, 1], [0, 1, 255]])
    change = compare(before, after, 0.5)
    assert change.fromto.tolist() == [[0, 5, 4], [6, 255, 255]]  # before·3 + after
    assert change.mask.tolist() == [[0, 1, 0], [1, 255, 255]]  # no data on either date
    np.testing.assert_allclose(change.probability[0], [0, 1, 0])
    assert np.isnan(change.probability[1, 1:]).all()


def test_probability_methods_on_uncertain_maps():
    same = compare(date_map("a", [[1]], False), date_map("b", [[1]], False), 0.5, "tv")
    assert same.probability[0, 0] == 0 and same.mask[0, 0] == 0
    indep = compare(date_map("a", [[1]], False), date_map("b", [[1]], False), 0.5, "independent")
    # 1 - (0.25² + 0.5² + 0.25²) = 0.625: uncertain but unchanged cells look changed
    assert indep.probability[0, 0] == pytest.approx(0.625)
    moved = compare(date_map("a", [[0]], False), date_map("b", [[2]], False), 0.2, "tv")
    assert moved.probability[0, 0] == pytest.approx(0.25) and moved.mask[0, 0] == 1


def test_written_outputs(tmp_path):
    before = date_map("2018", [[0, 0, 1, 1], [1, 1, 1, 2], [255, 1, 1, 2]])
    after = date_map("2023", [[0, 2, 2, 1], [1, 1, 2, 2], [1, 255, 1, 2]])
    change = compare(before, after)
    out = write_change(tmp_path, "t", before, after, change, vector=True)
    with rasterio.open(out["fromto"]) as src:
        assert src.crs == UTM and src.transform == T and src.nodata == 255
        assert src.colormap(1)[0 * 3 + 2][:3] == (255, 0, 0)  # changed: colour of the new class
        legend = json.loads(src.tags()["legend"])
        assert legend["2"] == "Water → Urban" and legend["5"] == "Forest → Urban"
    with rasterio.open(out["change_mask"]) as src:
        assert src.read(1).tolist() == [[0, 1, 1, 0], [0, 0, 1, 0], [255, 255, 0, 0]]
    cell_km2 = 0.4096
    summary = json.loads((tmp_path / "t_change.json").read_text())
    assert summary["changed_km2"] == pytest.approx(3 * cell_km2)
    assert summary["valid_km2"] == pytest.approx(10 * cell_km2)
    rows = {(r["before"], r["after"]): r["pixels"] for r in summary["transitions"]}
    assert rows == {("Water", "Water"): 1, ("Water", "Urban"): 1, ("Forest", "Urban"): 2,
                    ("Forest", "Forest"): 4, ("Urban", "Urban"): 2}
    matrix = (tmp_path / "t_transitions.csv").read_text().splitlines()
    assert matrix[2] == f"Forest,0.0000,{4 * cell_km2:.4f},{2 * cell_km2:.4f}"
    polygons = gpd.read_file(out["vector"])
    assert polygons.crs.to_epsg() == 32631
    assert sorted(polygons["transition"]) == ["Forest → Urban", "Water → Urban"]
    assert polygons["area_km2"].sum() == pytest.approx(3 * cell_km2)
    assert set(polygons["kind"]) == {"class changed"}


def test_a_change_that_keeps_its_class_says_why(tmp_path):
    fromto = np.array([[0, 1], [3, 3]], np.uint8)  # Water → Water, Water → Forest, Forest → Forest
    change = Change(fromto, np.array([[1, 1], [0, 0]], np.uint8),
                    np.array([[0.9, 0.8], [0.1, 0.1]], np.float32), 0.5, "combined")
    polygons = gpd.read_file(write_change_polygons(tmp_path / "c.gpkg", change,
                                                   ["Water", "Forest"], UTM, T))
    kinds = dict(zip(polygons["transition"], polygons["kind"]))
    assert kinds == {"Water → Water": "same class, changed by combined change probability",
                     "Water → Forest": "class changed"}


def test_more_than_fifteen_classes_refused():
    many = DateMap("a", np.zeros((1, 1), np.uint8), np.ones((1, 1, 16), np.float32), UTM, T,
                   "m", [str(i) for i in range(16)], [(0, 0, 0)] * 16)
    with pytest.raises(GeolulcError, match="at most 15"):
        compare(many, many)


def test_change_from_scenes_then_from_maps(data_dir, tiny_model, tmp_path):
    city = data_dir / "oscd" / "rennes"
    out = tmp_path / "scenes"
    result = run_cli("change", "--before", str(city / "imgs_1"), "--after", str(city / "imgs_2"),
                     "--model", str(tiny_model), "--stride", "32", "--out", str(out), "--name",
                     "rennes", "--json", "--vector", "--method", "tv")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["dates"] == ["before", "after"]
    for kind in ("fromto", "change_mask", "change_probability", "transitions_csv", "png",
                 "vector", "summary"):
        assert (tmp_path / summary["changes"][0]["outputs"][kind]).exists(), kind
    before_map = out / "rennes_before_landcover.tif"
    after_map = out / "rennes_after_landcover.tif"
    again = run_cli("change", "--before", str(before_map), "--after", str(after_map), "--out",
                    str(tmp_path / "maps"), "--name", "m", "--json")
    assert again.returncode == 0, again.stderr
    with rasterio.open(summary["changes"][0]["outputs"]["change_mask"]) as a, rasterio.open(
            json.loads(again.stdout)["changes"][0]["outputs"]["change_mask"]) as b:
        # from the maps (probabilities stored to 1/250) the same cells change
        assert (a.read(1) != b.read(1)).mean() < 0.01
    # a map made with another stride lies on another grid
    coarse = run_cli("map", "--scene", str(city / "imgs_2"), "--model", str(tiny_model),
                     "--out", str(tmp_path / "coarse"), "--name", "c", "--quiet")
    assert coarse.returncode == 0, coarse.stderr
    coarse_map = tmp_path / "coarse" / "c_landcover.tif"
    refused = run_cli("change", "--before", str(before_map), "--after", str(coarse_map),
                      "--out", str(tmp_path / "x"))
    assert refused.returncode == 1 and "different grids" in refused.stderr
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())
    resampled = run_cli("change", "--before", str(before_map), "--after", str(coarse_map),
                        "--resample", "--out", str(tmp_path / "r"), "--name", "r")
    assert resampled.returncode == 0, resampled.stderr


def test_maps_of_different_models_refused(data_dir, tiny_model, tiny_l2a_model, tmp_path):
    scene = data_dir / "oscd" / "paris" / "imgs_1"
    for name, model in (("a", tiny_model), ("b", tiny_l2a_model)):
        done = run_cli("map", "--scene", str(scene), "--model", str(model), "--out",
                       str(tmp_path), "--name", name, "--quiet")
        assert done.returncode == 0, done.stderr
    # both models are named "tiny" but have other bands: the grids match, the models do not
    card_b = json.loads(tiny_l2a_model.read_text())
    card_b["name"] = "tiny4"
    other = tmp_path / "m2"
    other.mkdir()
    (other / "tiny4.json").write_text(json.dumps(card_b))
    (other / "tiny4.safetensors").write_bytes(tiny_l2a_model.with_suffix(".safetensors")
                                              .read_bytes())
    done = run_cli("map", "--scene", str(scene), "--model", str(other / "tiny4.json"), "--out",
                   str(tmp_path), "--name", "c", "--quiet")
    assert done.returncode == 0, done.stderr
    refused = run_cli("change", "--before", str(tmp_path / "a_landcover.tif"), "--after",
                      str(tmp_path / "c_landcover.tif"), "--out", str(tmp_path / "x"))
    assert refused.returncode == 1 and "different models (tiny and tiny4)" in refused.stderr


@pytest.mark.parametrize("dates", [["--dates", "2020-02-19", "2020-02-24"],  # the README's
                                   ["--dates", "2020-02-19", "--dates", "2020-02-24"]])
def test_change_over_stac_api_dates(stac_api, desert_aoi, tiny_l2a_model, tmp_path, dates):
    """The two served items share their pixels, so nothing may change between the dates."""
    result = run_cli("change", "--aoi", str(desert_aoi), *dates,
                     "--catalog", stac_api, "--model", str(tiny_l2a_model), "--out",
                     str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    change = json.loads(result.stdout)["changes"][0]
    assert change["changed_cells"] == 0 and change["valid_cells"] > 50
    assert (tmp_path / "tiris_2020-02-19_landcover.tif").exists()
    with rasterio.open(change["outputs"]["change_probability"]) as src:
        p = src.read(1)
        assert p[p != 255].max() == 0


@pytest.mark.parametrize("args,message", [
    (["--dates", "2020-02"], "at least two dates"),
    (["--dates", "2020-02 2021-07"], "date 2021-07: no sentinel-2-l2a scene"),
    (["--dates", "2020-02 2020-99"], "cannot read date"),
    ([], "give --aoi with --dates"),
])
def test_change_bad_input(stac_api, desert_aoi, tiny_l2a_model, tmp_path, args, message):
    aoi = ["--aoi", str(desert_aoi)] if args else []
    result = run_cli("change", *aoi, *args, "--catalog", stac_api, "--model",
                     str(tiny_l2a_model), "--out", str(tmp_path / "o"))
    assert result.returncode == 1 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_evaluate_change_on_a_labelled_city(data_dir, tiny_model, tmp_path):
    result = run_cli("evaluate-change", str(data_dir / "oscd" / "paris"), "--model",
                     str(tiny_model), "--threshold", "0.2", "--threshold", "0.6", "--out",
                     str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    city = scores["cities"][0]
    assert city["city"] == "paris" and 0 < city["changed_label_share"] < 0.5
    low, high = city["results"]
    assert low["pixel"]["tp"] + low["pixel"]["fp"] >= high["pixel"]["tp"] + high["pixel"]["fp"]
    for row in city["results"]:
        px = row["pixel"]
        assert px["tp"] + px["fp"] + px["fn"] + px["tn"] == row["pixels_scored"]
        # not scored: edge cells less than half covered at stride 64, and the two clouds
        # (with a shadow) that s2cloudless finds in the 2017 image
        assert 0.6 * row["pixels_labelled"] < row["pixels_scored"] < 0.9 * row["pixels_labelled"]
