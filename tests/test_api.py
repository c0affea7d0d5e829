"""The Python API does what `geolulc map` does, and the command line starts without torch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import rasterio

from conftest import run_cli


def test_python_api_maps_exactly_like_the_cli(data_dir, tmp_path):
    import geolulc

    scene = data_dir / "oscd" / "rennes" / "imgs_1"
    landcover = geolulc.classify(scenes=[scene])
    assert landcover.classes[0] == "water" and landcover.grid.cell_size == 10.0
    assert landcover.labels.dtype == np.uint8 and landcover.probabilities.shape[2] == 9
    valid = landcover.labels != 255
    assert np.allclose(landcover.probabilities[valid].sum(1), 1, atol=0.05)
    assert (landcover.probabilities[valid].argmax(1) == landcover.labels[valid]).mean() > 0.99
    outputs = geolulc.write(landcover, tmp_path / "api", name="r")
    result = run_cli("map", "--scene", str(scene), "--out", str(tmp_path / "cli"), "--name", "r",
                     "--quiet")
    assert result.returncode == 0, result.stderr
    with rasterio.open(outputs["landcover"]) as a, \
            rasterio.open(tmp_path / "cli" / "r_landcover.tif") as b:
        assert a.transform == b.transform and a.crs == b.crs
        assert (a.read(1) == b.read(1)).all() and (a.read(1) == landcover.labels).all()


def test_help_does_not_import_torch_or_geopandas():
    code = ("import sys; from click.testing import CliRunner; import geolulc.cli as c; "
            "r = CliRunner().invoke(c.main, ['map', '--help']); assert r.exit_code == 0; "
            "r = CliRunner().invoke(c.main, ['map', '--stride', 'x']); assert r.exit_code == 2; "
            "print(sorted(m for m in ('torch', 'geopandas', 'rasterio') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_python_dash_m_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "geolulc", "--version"], capture_output=True,
                         text=True)
    assert out.returncode == 0 and "geolulc" in out.stdout


def test_read_gives_the_bands_on_the_maps_grid(data_dir):
    """`geolulc.read` lies on the grid `classify` maps on, with the scene's real values."""
    import glob

    import geolulc

    scene = data_dir / "oscd" / "nantes" / "imgs_1"
    stack = geolulc.read(scenes=[scene], bands=["B04", "B11"])
    landcover = geolulc.classify(scenes=[scene])
    assert stack.dn.shape[1:] == landcover.labels.shape and stack.bands == ["B04", "B11"]
    assert stack.transform == landcover.grid.map_transform and stack.crs == landcover.grid.crs
    assert stack.dn.dtype == np.uint16 and stack.clear.mean() > 0.9
    # the same ground as the source file: its mean red reflectance, within resampling noise
    with rasterio.open(glob.glob(str(scene / "*_B04.tif"))[0]) as src:
        red = src.read(1).astype(float)
    assert abs(stack.dn[0][stack.clear].mean() - red[red > 0].mean()) < 0.03 * red.mean()
    # the 20 m band is resampled to 10 m, not left at its own grid
    assert stack.dn[1].shape == stack.dn[0].shape


def test_change_returns_pairs_and_writes_only_when_asked(data_dir, tmp_path):
    import geolulc
    import geolulc.change_detection.job  # noqa: F401 (no subpackage may shadow the function)

    city = data_dir / "oscd" / "rennes"
    pairs = geolulc.change(before=city / "imgs_1", after=city / "imgs_2").pairs
    assert len(pairs) == 1 and pairs[0].change.method == "combined"
    change = pairs[0].change
    share = (change.mask == 1).sum() / (change.mask != 255).sum()
    assert 0.01 < share < 0.1  # Rennes 2016 → 2017: a few per cent is new construction
    assert not any(tmp_path.iterdir())
    outputs = geolulc.write_change(pairs[0], tmp_path, name="r")
    with rasterio.open(outputs["change_mask"]) as src:
        assert (src.read(1) == change.mask).all() and src.transform == pairs[0].before.transform
