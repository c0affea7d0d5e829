"""Categorical rasters explain themselves to GDAL (and so to ArcGIS and QGIS): category names, a
raster attribute table and colours that agree with the colour table and the QGIS style (issue 37,
first part). Read back with the real `gdalinfo` (Debian's gdal-bin; `.ci/run` installs it)."""

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import rasterio
from affine import Affine

from conftest import _missing, run_cli
from geolulc.api import write_legend
from geolulc.core.legend import Legend


def gdalinfo(path) -> dict:
    if shutil.which("gdalinfo") is None:
        _missing("gdalinfo is not installed (apt-get install gdal-bin)")
    done = subprocess.run(["gdalinfo", "-json", str(path)], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout)


def check_categorical(path, names):
    """Category names of one raster, and its attribute table, colour table and QGIS style agree."""
    assert gdalinfo(path)["bands"][0]["categories"] == names
    check_style_is_table(path)


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
        confidence = gdalinfo(path.with_name(path.name.replace("_landcover", "_confidence")))
        count = gdalinfo(path.with_name(path.name.replace("_landcover", "_count")))
        assert confidence["bands"][0]["unit"] == "percent"  # the band's unit, not a tag
        assert count["bands"][0]["unit"] == "acquisitions"
    assert gdalinfo(next(tmp_path.glob("*_changeprob.tif")))["bands"][0]["unit"] == "percent"
    assert {t["before"] for t in summary["transitions"]} <= set(names)
    check_categorical(next(tmp_path.glob("*_changemask.tif")), ["no change", "change"])
    check_categorical(next(tmp_path.glob("*_fromto.tif")),
                      [f"{a} → {b}" for a in names for b in names])


#: GDAL's field usages (gdal.h, GDALRATFieldUsage) of the attribute-table fields compared
VALUE, NAME, RED, GREEN, BLUE, ALPHA = 5, 2, 6, 7, 8, 9


def table_rows(info: dict) -> list[tuple]:
    """(value, class, #rrggbb, alpha) of each attribute-table row GDAL reads, fields by usage."""
    col = {field["usage"]: field["index"] for field in info["rat"]["fieldDefn"]}
    return [(f[col[VALUE]], f[col[NAME]], "#{:02x}{:02x}{:02x}".format(*(f[col[u]] for u in (
        RED, GREEN, BLUE))), f[col[ALPHA]]) for f in (row["f"] for row in info["rat"]["row"])]


def style_rows(path) -> list[tuple]:
    """(value, label, colour, alpha) of the palette in the style QGIS loads with the raster.

    QGIS's default style of a raster is the .qml of the same name in the same folder.
    """
    renderer = ET.parse(path.with_suffix(".qml")).getroot().find("pipe/rasterrenderer")
    assert (renderer.get("type"), renderer.get("band")) == ("paletted", "1"), path
    return [(int(e.get("value")), e.get("label"), e.get("color").lower(), int(e.get("alpha")))
            for e in renderer.iter("paletteEntry")]


def check_style_is_table(path) -> None:
    """The QGIS style's palette is, row for row, the attribute table GDAL reads, and both are
    the band's category names and colour table."""
    info = gdalinfo(path)
    band, rows = info["bands"][0], table_rows(info)
    assert rows and style_rows(path) == rows, path
    assert [band["categories"][value] for value, *_ in rows] == [r[1] for r in rows]
    table = band["colorTable"]["entries"]
    assert ["#{:02x}{:02x}{:02x}".format(*table[value][:3]) for value, *_ in rows] == [
        r[2] for r in rows]


def test_style_and_attribute_table_agree_for_any_class_name(tmp_path):
    names = ["water & wetland", 'say "built"', "<bare>", "it's crops", "café → 東京"]
    colors = [(0, 0, 255), (255, 0, 0), (128, 128, 128), (228, 150, 53), (1, 2, 3)]
    path = tmp_path / "t_landcover.tif"
    with rasterio.open(path, "w", driver="GTiff", width=5, height=1, count=1, dtype="uint8",
                       crs="EPSG:32630", transform=Affine(10, 0, 0, 0, -10, 10), nodata=255) as dst:
        dst.write(np.arange(5, dtype=np.uint8)[None, :], 1)
    style = write_legend(path, Legend(tuple(names), tuple(colors), "land cover class"))
    assert style == path.with_suffix(".qml")
    check_style_is_table(path)
    assert [r[1] for r in style_rows(path)] == names
    style.write_text(  # a label changed in the style alone is caught
        style.read_text().replace("it&apos;s crops", "crops").replace(
        "it's crops", "crops"))
    with pytest.raises(AssertionError):
        check_style_is_table(path)
