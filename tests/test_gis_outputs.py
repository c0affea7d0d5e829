"""Categorical rasters explain themselves to GDAL (and so to ArcGIS and QGIS): category names, a
raster attribute table and colours that agree with the colour table and the QGIS style (issue 37,
first part). Read back with the real `gdalinfo` (Debian's gdal-bin; `.ci/run` installs it)."""

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET

import rasterio

from conftest import _missing, run_cli


def gdalinfo(path) -> dict:
    if shutil.which("gdalinfo") is None:
        _missing("gdalinfo is not installed (apt-get install gdal-bin)")
    done = subprocess.run(["gdalinfo", "-json", str(path)], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout)


def check_categorical(path, names):
    """Categories, attribute table, colour table and QGIS style of one raster all agree."""
    info = gdalinfo(path)
    band = info["bands"][0]
    assert band["categories"] == names
    rows = [row["f"] for row in info["rat"]["row"]]
    assert [r[0] for r in rows] == list(range(len(names))) and [r[1] for r in rows] == names
    with rasterio.open(path) as src:
        table = src.colormap(1)
    assert [tuple(r[2:5]) for r in rows] == [table[i][:3] for i in range(len(names))]
    style = ET.parse(path.with_suffix(".qml")).getroot()
    entries = style.findall(".//paletteEntry")
    assert [e.get("label") for e in entries] == names
    assert [int(e.get("value")) for e in entries] == list(range(len(names)))
    assert [e.get("color") for e in entries] == [
        "#{:02x}{:02x}{:02x}".format(*r[2:5]) for r in rows]


def test_map_and_change_rasters_carry_names_tables_and_styles(data_dir, tmp_path):
    city = data_dir / "oscd" / "rennes"
    done = run_cli("change", "--before", str(city / "imgs_1"), "--after", str(city / "imgs_2"),
                   "--out", str(tmp_path), "--name", "r", "--quiet")
    assert done.returncode == 0, done.stderr
    summary = json.loads(next(tmp_path.glob("*_change.json")).read_text())
    landcover = sorted(tmp_path.glob("*_landcover.tif"))
    assert landcover, list(tmp_path.iterdir())
    with rasterio.open(landcover[0]) as src:
        names = json.loads(src.tags()["classes"])
    for path in landcover:
        check_categorical(path, names)
        probs = gdalinfo(path.with_name(path.name.replace("_landcover", "_probabilities")))
        assert [b["description"] for b in probs["bands"]] == [f"p({c})" for c in names]
    assert {t["before"] for t in summary["transitions"]} <= set(names)
    check_categorical(next(tmp_path.glob("*_changemask.tif")), ["no change", "change"])
    check_categorical(next(tmp_path.glob("*_fromto.tif")),
                      [f"{a} → {b}" for a in names for b in names])
