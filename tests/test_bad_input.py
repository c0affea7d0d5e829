"""Bad input ends in one line and a non-zero exit, never a traceback or a silently wrong result.

In-process through click's CliRunner where a subprocess adds nothing.
"""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.transform import from_origin

from conftest import run_cli
from geolulc.cli import main
from geolulc.errors import GeolulcError


def invoke(*args: str):
    result = CliRunner().invoke(main, list(args))
    assert "Traceback" not in result.output
    return result


def test_zero_byte_band_file(tmp_path):
    folder = tmp_path / "scene"
    folder.mkdir()
    (folder / "T31TCJ_20230601T000000_B02.tif").write_bytes(b"")
    result = invoke("map", "--scene", str(folder), "--model", "eurosat-rgb", "--quiet",
                    "--out", str(tmp_path / "o"))
    assert result.exit_code == 1
    assert "Error:" in result.output and "B0" in result.output


def test_out_under_a_file_is_one_line(data_dir, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = invoke("map", "--scene", str(data_dir / "oscd" / "rennes" / "imgs_1"), "--out",
                    str(blocker / "sub"), "--quiet")
    assert result.exit_code == 1 and "Not a directory" in result.output
    assert str(blocker) in result.output


@pytest.mark.parametrize("args,exit_code,message", [
    (["map", "--scene", "x", "--resolution", "0"], 2, "--resolution"),
    (["download", "--aoi", "x", "--date", "2023-06", "--out", "d", "--resolution", "-10"], 2,
     "--resolution"),
    (["map", "--scene", "x", "--out", "README.md"], 2, "is a file"),
])
def test_argument_errors(args, exit_code, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "README.md").write_text("x")
    result = invoke(*args)
    assert result.exit_code == exit_code and message in result.output, result.output


def test_a_grid_larger_than_memory_is_refused_before_allocating():
    from geolulc.core.grid import PatchGrid
    from geolulc.mapping.request import check_grid_fits

    huge = PatchGrid(__import__("pyproj").CRS.from_epsg(32631), 0.01, 0, 0, 10_000_000,
                     10_000_000, 1, 1)
    with pytest.raises(GeolulcError, match="GiB in memory"):
        check_grid_fits(huge, 9)


def test_unknown_collection_is_named(stac_api, desert_aoi):
    result = run_cli("search", "--aoi", str(desert_aoi), "--date", "2020-02", "--catalog",
                     stac_api, "--collection", "sentinel-2-l1c")
    assert result.returncode == 1
    assert "collection 'sentinel-2-l1c' is not in" in result.stderr


def test_change_of_maps_that_do_not_overlap(data_dir, tiny_model, tmp_path):
    maps = []
    for city in ("rennes", "paris"):
        result = run_cli("map", "--scene", str(data_dir / "oscd" / city / "imgs_1"), "--model",
                         str(tiny_model), "--out", str(tmp_path), "--name", city, "--quiet")
        assert result.returncode == 0, result.stderr
        maps.append(str(tmp_path / f"{city}_landcover.tif"))
    result = invoke("change", "--before", maps[0], "--after", maps[1], "--resample", "--out",
                    str(tmp_path / "c"))
    assert result.exit_code == 1 and "do not overlap" in result.output


def test_classify_refuses_a_patch_of_the_wrong_size(tmp_path):
    path = tmp_path / "small.tif"
    with rasterio.open(path, "w", driver="GTiff", width=32, height=32, count=3, dtype="uint16",
                       crs="EPSG:32631", transform=from_origin(0, 0, 10, 10)) as dst:
        dst.write(np.full((3, 32, 32), 1000, dtype=np.uint16))
        for i, band in enumerate(("B04", "B03", "B02"), start=1):
            dst.set_band_description(i, band)
    result = invoke("classify", str(path), "--model", "eurosat-rgb")
    assert result.exit_code == 1 and "32×32" in result.output and "64×64" in result.output


def test_unknown_band_in_train(tmp_path):
    result = invoke("train", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--bands",
                    "B04,B99")
    assert result.exit_code == 1 and "unknown Sentinel-2 band 'B99'" in result.output
