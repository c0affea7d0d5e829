"""Faults of the fresh-clone probe (issue 18) that are fixed: caches heal, styles stay XML,
every layer of an AOI is taken."""

from __future__ import annotations

import contextlib
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import box

from geolulc.core.legend import Legend
from geolulc.io.aoi import load_aoi
from geolulc.io.rasters import write_qgis_style
from geolulc.mapping.chunks import ChunkCache, ChunkResult


def test_a_truncated_cached_chunk_is_computed_again(tmp_path):
    cache = ChunkCache(tmp_path, "key", (2, 3, 4))
    result = ChunkResult(0, np.zeros((2, 3), np.uint8), np.zeros((2, 3, 4), np.uint8), 0,
                         np.ones((2, 3), np.uint8))
    cache.put(result)
    assert cache.get(0) is not None
    path = cache._path(0)
    path.write_bytes(path.read_bytes()[:40])  # a kill or a full disk mid-write
    with pytest.warns(RuntimeWarning, match="unreadable .*computed again"):
        assert cache.get(0) is None
    assert not path.exists()  # healed: the next run does not meet it again
    cache.put(result)
    np.testing.assert_array_equal(cache.get(0).count, result.count)


def test_cached_probabilities_not_written_whole_are_computed_again(tmp_path):
    """A chunk's probabilities live in the cache's raw file, checked against the chunk's
    checksum: bytes changed under it (a kill mid-write, or a COG copy that put no-data in and
    was killed before putting the values back) make the chunk be computed again."""
    rng = np.random.default_rng(0)
    shape = (6, 5, 3)
    cache = ChunkCache(tmp_path, "key", shape)
    chunks = [ChunkResult(r, rng.integers(0, 3, (3, 5), dtype=np.uint8),
                          rng.integers(0, 251, (3, 5, 3), dtype=np.uint8), 0,
                          np.ones((3, 5), np.uint8)) for r in (0, 3)]
    for chunk in chunks:
        cache.put(chunk)
    whole = np.concatenate([c.probs for c in chunks])
    np.testing.assert_array_equal(cache.probabilities(), whole)
    np.testing.assert_array_equal(ChunkCache(tmp_path, "key", shape).get(3).probs,
                                  chunks[1].probs)  # a new run resumes from the same file
    chunks[1].labels[1, 2] = 255  # a cell left unclassified, so its probabilities are 0
    chunks[1].probs[1, 2] = 0
    cache.put(chunks[1])
    cache.probabilities()[4, 2] = 255  # killed while a COG copy had put no-data there
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # healed, not computed again
        np.testing.assert_array_equal(cache.get(3).probs, chunks[1].probs)
    np.testing.assert_array_equal(cache.probabilities()[3:], chunks[1].probs)  # and put back
    cache.probabilities()[4, 1, 1] ^= 1  # one byte of a classified cell changed
    with pytest.warns(RuntimeWarning, match="checksum"):
        assert cache.get(3) is None
    assert cache.get(0) is not None  # the other chunk is intact
    cache.clear()
    np.testing.assert_array_equal(cache.probabilities()[:3], chunks[0].probs)  # still mapped
    assert not cache.dir.exists()


def test_class_names_with_quotes_make_a_well_formed_style(tmp_path):
    names = ['built "dense"', "water & <wet>", "o'clock"]
    write_qgis_style(tmp_path / "s.qml", Legend(tuple(names), ((1, 2, 3),) * 3, "class"))
    root = ET.parse(tmp_path / "s.qml").getroot()  # raises if not well-formed
    assert [e.get("label") for e in root.iter("paletteEntry")] == names


def test_every_layer_of_a_geopackage_is_the_aoi(tmp_path):
    path = tmp_path / "two.gpkg"
    west = gpd.GeoDataFrame(geometry=[box(2.30, 48.80, 2.32, 48.82)], crs=4326)
    east = gpd.GeoDataFrame(geometry=[box(2.40, 48.80, 2.42, 48.82)], crs=4326)
    west.to_file(path, layer="west")
    east.to_file(path, layer="east")
    both = load_aoi(path)
    west.to_file(tmp_path / "west.gpkg")
    assert both.geometry.bounds[0] == pytest.approx(2.30)
    assert both.geometry.bounds[2] == pytest.approx(2.42)  # the second layer is in
    assert both.area_km2 == pytest.approx(2 * load_aoi(tmp_path / "west.gpkg").area_km2, rel=0.01)
    east.to_crs(3857).to_file(path, layer="east", mode="w")
    with pytest.raises(Exception, match="layers in different CRSs"):
        load_aoi(path)


@pytest.mark.parametrize("resolution, crs, advice", [
    (1.0, None, "use a resolution of 10 in this CRS"),
    (60.0, None, "use a resolution of 10 in this CRS"),
    (10.0, "EPSG:3857", r"6.68 m on the ground \(10 units of WGS 84 / Pseudo-Mercator\).*"
                        "use a resolution of 15 in this CRS")])
def test_a_model_is_not_fed_pixels_far_from_its_own(data_dir, tmp_path, resolution, crs,
                                                     advice):
    """--resolution 1 with the 10 m default model gave 70 % crops in a city; 10 m of Web
    Mercator (6.7 m on the ground at Rennes) turned built 89 % into 59 % (issue 18)."""
    from geolulc.errors import GeolulcError
    from geolulc.mapping.pipeline import run_map
    from geolulc.mapping.request import MapRequest

    req = MapRequest(scenes=[data_dir / "oscd" / "rennes" / "imgs_1"], out_dir=tmp_path,
                     resolution=resolution, crs=crs, progress=False)
    with pytest.raises(GeolulcError, match=f"trained on 10 m pixels.*{advice}"):
        run_map(req)
    assert not list(tmp_path.glob("*.tif"))


@pytest.mark.parametrize("options, message", [
    ({"stride": 0}, "`stride` must be a whole number of at least 1"),
    ({"batch_size": -1}, "`batch_size` must be"),
    ({"composite": "bogus"}, "`composite` must be one of auto, median, best, none, "
                             "mean-probability, mode, not 'bogus'"),
    ({"min_clear": 5}, "`min_clear` is a share"),
    ({"engine": "tensorrt"}, "`engine` must be one of auto, openvino, torch, not 'tensorrt'"),
])
def test_the_python_api_validates_like_the_cli(options, message):
    """Options are checked when made, before any scene is read, as `ValueError`s in the API's
    terms."""
    import geolulc

    with pytest.raises(geolulc.GeolulcError, match=message) as raised:
        geolulc.MapOptions(**options)
    assert isinstance(raised.value, ValueError)


def test_one_scene_path_is_one_scene_not_its_characters(data_dir):
    from geolulc.mapping.request import MapRequest

    folder = str(data_dir / "oscd" / "rennes" / "imgs_1")
    assert MapRequest(scenes=folder).scenes == [folder]


def test_classify_takes_one_scene_path(data_dir):
    import geolulc

    landcover = geolulc.classify(scenes=str(data_dir / "oscd" / "norcia" / "imgs_1"))
    assert landcover.labels.shape == (landcover.grid.rows, landcover.grid.cols)


@pytest.mark.parametrize("change, message", [
    (lambda c: c["input"].update(dn_scale=1e300), "dn_scale must lie in"),
    (lambda c: c.update(kind="segmenter", architecture={"name": "dynamic-world"}, views=4),
     r"views must be one of 1, 2, 4, 8 \(a classifier's only\)"),
    (lambda c: c["input"].update(clip="abc"), "clip must be"),
    (lambda c: c["input"].update(clip=[5, 1]), "clip must be"),
    (lambda c: c["architecture"].update(widths=[3000, 64, 128, 256]), "widths must be"),
    (lambda c: c.update(patch_size=100000), "patch_size must be"),
    (lambda c: c.update(kind="segmenter"), "kind 'segmenter' disagrees with its patch-resnet"),
    (lambda c: c.update(views=3), "views must be one of 1, 2, 4, 8"),
    (lambda c: c.update(views=True), "views must be one of"),
    (lambda c: c.update(views=4.0), "views must be one of"),
])
def test_a_card_with_insane_values_is_refused_before_anything_is_built(tmp_path, change,
                                                                        message):
    """A card with dn_scale 1e300 made a 100 % SeaLake map and replaced a good one (issue 18)."""
    import json
    import shutil

    from geolulc.errors import GeolulcError
    from geolulc.models.model import BUNDLED_DIR, load_model

    card = json.loads((BUNDLED_DIR / "eurosat-ms.json").read_text())
    change(card)
    (tmp_path / "m.json").write_text(json.dumps(card))
    shutil.copy(BUNDLED_DIR / "eurosat-ms.safetensors", tmp_path / "m.safetensors")
    with pytest.raises(GeolulcError, match=message):
        load_model(tmp_path / "m.json")


def test_areas_are_ground_areas_whatever_the_output_crs(data_dir, tmp_path):
    """Rennes in Web Mercator reported 46.19 km² against 20.58 in UTM (issue 18)."""
    from geolulc.mapping.pipeline import run_map
    from geolulc.mapping.request import MapRequest

    scene = data_dir / "oscd" / "rennes" / "imgs_1"
    utm = run_map(MapRequest(scenes=[scene], out_dir=tmp_path / "utm", progress=False)).to_dict()
    merc = run_map(MapRequest(scenes=[scene], out_dir=tmp_path / "merc", crs="EPSG:3857",
                              resolution=15.0, progress=False)).to_dict()
    assert utm["crs"] == "EPSG:32630" and merc["crs"] == "EPSG:3857"
    # a 15 m Web Mercator pixel is about 10 m on the ground at 48° N: the same area is mapped
    assert merc["stats"]["pixel_area_m2"] == pytest.approx(225)
    assert merc["stats"]["mapped_km2"] == pytest.approx(utm["stats"]["mapped_km2"], rel=0.03)


@pytest.mark.parametrize("item, message", [
    ([1], "is not a STAC item"),
    ({"type": "Feature", "id": "x", "properties": None, "assets": {"B04": {"href": "b.tif"}}},
     "cannot tell whether STAC item x is L1C or L2A"),
    ({"type": "Feature", "id": "x", "collection": "sentinel-2-l2a", "properties": {},
      "assets": {"red": {"title": "no href"}}}, "malformed: missing 'href'"),
    ({"type": "Feature", "id": "x", "collection": "sentinel-2-l2a",
      "properties": {"datetime": "yesterday"}, "assets": {}}, "malformed: Invalid isoformat"),
    ({"type": "Feature", "id": "x", "collection": "sentinel-2-l2a", "properties": {},
      "geometry": {"type": "Polygon", "coordinates": "abc"}, "assets": {}}, "malformed"),
    ({"type": "Feature", "id": "x", "collection": "sentinel-2-l2a", "properties": {},
      "assets": [1, 2]}, "malformed: its assets are not objects"),
])
def test_malformed_stac_item_files_are_one_line_errors(tmp_path, item, message):
    import json

    from geolulc.errors import GeolulcError
    from geolulc.io.scenes import load_scene

    path = tmp_path / "item.json"
    path.write_text(json.dumps(item))
    with pytest.raises(GeolulcError, match=message):
        load_scene(path)


def test_a_safe_with_broken_metadata_is_a_one_line_error(tmp_path):
    import zipfile

    from geolulc.errors import GeolulcError
    from geolulc.io.scenes import load_scene

    path = tmp_path / "S2A_MSIL1C_20200101T000000_N0208_R001_T31TDH_20200101T000000.SAFE.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("S2A.SAFE/MTD_MSIL1C.xml", "<unclosed>")
    with pytest.raises(GeolulcError, match="MTD_MSIL1C.xml is not readable XML"):
        load_scene(path)


def test_training_on_one_patch_per_class_is_a_one_line_error(tmp_path):
    import subprocess
    import sys

    from PIL import Image

    for name in ("Forest", "SeaLake"):
        (tmp_path / "data" / name).mkdir(parents=True)
        Image.new("RGB", (64, 64), (10, 90, 20)).save(tmp_path / "data" / name / f"{name}_1.jpg")
    proc = subprocess.run([sys.executable, "-m", "geolulc", "train", "--data",
                           str(tmp_path / "data"), "--out", str(tmp_path / "m"), "--epochs", "1"],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "Error: every class needs at least 2 patches (one to train on, one to validate), but "
        "class Forest has 1"]


def test_change_names_the_input_that_is_neither_map_nor_scene(tmp_path):
    from geolulc.change_detection.job import run_change
    from geolulc.errors import GeolulcError
    from geolulc.mapping.request import MapRequest

    fake_map = tmp_path / "a_landcover.tif"
    fake_map.write_bytes(b"II*\x00")
    junk = tmp_path / "passwd"
    junk.write_text("root:x:0:0")
    with pytest.raises(GeolulcError, match=f"cannot read scene {junk}"):
        run_change(MapRequest(out_dir=tmp_path), [], junk, fake_map, None, False, False,
                   "auto")


def test_a_kill_in_the_middle_of_publishing_is_repaired_by_the_next_run(tmp_path):
    """kill -9 between two moves left the old map beside the new style and rasters (issue 18).
    The kill is injected at the second move (a real SIGKILL of the process, at a moment no
    timing could hit reliably); the next run finishes the move of the complete set."""
    import subprocess
    import sys

    from geolulc.io.atomic import remove_stale_staging

    out = tmp_path / "out"
    out.mkdir()
    for name in ("m_confidence.tif", "m_landcover.tif"):
        (out / name).write_text("old")
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from geolulc.io import atomic\n"
        "real, moves = os.replace, []\n"
        "def replace(a, b):\n"
        "    moves.append(b)\n"
        "    if len(moves) == 3:  # the journal, then one output: then killed\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    real(a, b)\n"
        "atomic.os.replace = replace\n"
        "with atomic.staged_outputs(Path(sys.argv[1]), last='_landcover.tif') as stage:\n"
        "    for name in ('m_confidence.tif', 'm_landcover.tif', 'm_stats.json'):\n"
        "        (stage / name).write_text('new')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(out)], capture_output=True)
    assert proc.returncode == -9
    state = {p.name: p.read_text() for p in out.iterdir() if p.is_file()}
    assert state["m_confidence.tif"] == "new" and state["m_landcover.tif"] == "old"  # mixed
    remove_stale_staging(out)
    assert {p.name: p.read_text() for p in out.iterdir()} == {
        "m_confidence.tif": "new", "m_landcover.tif": "new", "m_stats.json": "new"}


@pytest.mark.parametrize("bands, message", [([], "`bands` must be a list"),
                                            ("B04", "`bands` must be a list"),
                                            (["B99"], "`bands`: ")])
def test_read_checks_its_bands(data_dir, bands, message):
    import geolulc

    with pytest.raises(geolulc.GeolulcError, match=message):
        geolulc.read(scenes=[data_dir / "oscd" / "rennes" / "imgs_1"], bands=bands)


@contextlib.contextmanager
def small_disk(tmp_path, size):
    """A real full disk: a tmpfs of `size` (needs the right to mount, as root in CI)."""
    import subprocess

    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)],
                      capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (not root)")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_a_full_disk_is_named_as_such(tmp_path):
    """GDAL reported a full disk as 'TIFFAppendToStrip:Seek error' (issue 18). A real full
    disk: a 4 MB tmpfs (needs the right to mount, as root in CI)."""
    import errno

    from affine import Affine
    from pyproj import CRS

    from geolulc.io.rasters import write_cog

    with small_disk(tmp_path, "4M") as disk:
        noise = np.random.default_rng(0).integers(0, 255, (3000, 3000), dtype=np.uint8)
        with pytest.raises(OSError) as caught:
            write_cog(disk / "map.tif", noise, CRS.from_epsg(32630),
                      Affine(10, 0, 0, 0, -10, 0), 255)
        assert caught.value.errno == errno.ENOSPC
        assert not list(disk.iterdir())  # nothing half-written is left


def run_cli(*args, cwd=None):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "geolulc", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("catalog", ["not a url", "", "/etc/hosts"])
def test_a_catalogue_that_is_no_url_is_named(catalog):
    proc = run_cli("search", "--aoi", "aoi/rennes.geojson", "--date", "2023-06", "--catalog",
                   catalog, cwd=Path(__file__).parents[1])
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"Error: --catalog must be the http(s) URL of a STAC API, not {catalog!r} (local scenes "
        "need no catalogue)"]


def test_probe_findings_are_one_line_errors(data_dir, tmp_path):
    """Inputs a hostile-input probe of this session found printing a bare exception name or
    exiting 0 with a wrong result."""
    import json
    import shutil

    from PIL import Image

    from geolulc.models.model import BUNDLED_DIR

    scene = data_dir / "oscd" / "rennes" / "imgs_1"
    card = json.loads((BUNDLED_DIR / "eurosat-rgb.json").read_text())
    card["architecture"]["widths"] = []
    (tmp_path / "m.json").write_text(json.dumps(card))
    shutil.copy(BUNDLED_DIR / "eurosat-rgb.safetensors", tmp_path / "m.safetensors")
    data = tmp_path / "data"
    for name in ("Forest", "River"):
        (data / name).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (64, 64), (10 * i, 90, 20)).save(data / name / f"{name}_{i}.jpg")
    patch = data / "Forest" / "Forest_0.jpg"
    cases = [
        (["classify", "--model", tmp_path / "m.json", patch], "architecture widths must be"),
        (["map", "--scene", scene, "--scheduler", "notaurl", "--out", tmp_path / "o"],
         "cannot reach the Dask scheduler notaurl"),
        (["map", "--scene", scene, "--date", "2023", "--out", tmp_path / "o"],
         "was acquired on 2015-08-21, outside the date 2023"),
        (["evaluate", "--model", "eurosat-rgb", "--data", data, "--out", tmp_path / "e",
          "--bands", ","], "--bands ',' names no band"),
    ]
    for args, message in cases:
        proc = run_cli(*args)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1, (args, proc.stderr)
        assert len(lines) == 1 and message in lines[0], (args, lines)
    fresh = run_cli("train", "--data", data, "--out", tmp_path / "t2", "--resume", "--epochs",
                    "1", "--widths", "8,16", "--device", "cpu")
    assert fresh.returncode == 0, fresh.stderr
    assert "nothing to resume in" in fresh.stderr  # said, then trained from epoch 1


def test_a_path_that_is_not_utf8_is_one_line(data_dir, tmp_path):
    import subprocess
    import sys

    out = bytes(tmp_path) + b"/o\xff"
    proc = subprocess.run([sys.executable, "-m", "geolulc", "map", "--scene",
                           str(data_dir / "oscd" / "norcia" / "imgs_1"), "--model", "eurosat-ms",
                           "--out", out, "--quiet"], capture_output=True, text=True)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and "not valid UTF-8" in lines[0], lines


def test_a_full_disk_fails_the_map_and_keeps_the_good_one(data_dir, tmp_path):
    """A map that does not fit fails with one line and a non-zero exit, and a rerun onto a
    nearly full disk leaves the earlier, whole map as it was (issue 36). A 4 MB tmpfs: the map
    and, while it is written, its probabilities in the chunk cache (1.3 MB) fit."""
    import hashlib
    import shutil

    import rasterio

    with small_disk(tmp_path, "4000k") as disk:
        scene = data_dir / "oscd" / "bercy" / "imgs_1"
        first = run_cli("map", "--scene", scene, "--out", disk, "--name", "X", "--quiet")
        assert first.returncode == 0, first.stderr
        before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in disk.iterdir()
                  if p.is_file()}
        free = shutil.disk_usage(disk).free
        (disk / "filler").write_bytes(b"\0" * max(free - 400_000, 0))  # 0.4 MB left
        again = run_cli("map", "--scene", scene, "--out", disk, "--name", "X", "--quiet")
        assert again.returncode == 1, again.stderr
        errors = [ln for ln in again.stderr.splitlines() if ln.startswith("Error")]
        assert errors == [errors[0]] and "No space left on device" in errors[0]
        after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in disk.iterdir()
                 if p.is_file() and p.name != "filler"}
        assert after == before
        with rasterio.open(disk / "X_probabilities.tif") as src:
            assert src.read().shape[0] == 9


def test_names_keep_their_letters_and_never_leave_the_output_folder(data_dir, tmp_path):
    """'é' and '東京' are two maps, not both `map_*`; a training name with folders is refused."""
    from geolulc.io.atomic import safe_name

    done = run_cli("map", "--scene", data_dir / "oscd" / "norcia" / "imgs_1", "--out",
                   tmp_path / "out", "--name", "東京", "--quiet")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "東京_landcover.tif").exists()
    assert [safe_name(n) for n in ("é", "東京", "ü 空 name")] == ["é", "東京", "ü_空_name"]
    refused = run_cli("train", "--data", data_dir / "eurosat" / "ms", "--out", tmp_path / "t",
                      "--name", "../../evil", "--epochs", "1")
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1].startswith("Error: --name must be a plain")
    from geolulc.errors import ParameterError
    from geolulc.models.synth import SynthConfig
    from geolulc.models.train import TrainConfig

    for config in (TrainConfig, SynthConfig):
        with pytest.raises(ParameterError, match="must be a plain file name"):
            config(name="/abs/path")
    assert not (tmp_path.parent / "evil.json").exists()


def test_no_data_is_never_classified(data_dir, tmp_path):
    """DN 0 is no data whether or not a file declares it: an all-zero band is named, never
    warped to 1 and mapped; an all-zero or NaN patch is refused (issue 36)."""
    import rasterio

    src = data_dir / "oscd" / "rennes" / "imgs_1"
    empty = tmp_path / "empty"
    empty.mkdir()
    for band in src.glob("*.tif"):
        with rasterio.open(band) as s:
            profile, data = s.profile, s.read()
        assert profile.get("nodata") is None  # OSCD declares no no-data value
        if "_B11" in band.name:
            data[:] = 0
        with rasterio.open(empty / band.name, "w", **profile) as d:
            d.write(data)
    result = run_cli("map", "--scene", empty, "--out", tmp_path / "out", "--quiet")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Error: the scenes: band(s) holding no data (0) on every pixel of the area, so nothing "
        "can be classified: scene empty: B11"]
    patch = next((data_dir / "eurosat" / "ms" / "SeaLake").glob("*.tif"))
    with rasterio.open(patch) as s:
        profile, data = s.profile, s.read()
    for label, values in (("zero", data * 0), ("nan", data.astype("float32") * np.nan)):
        profile.update(dtype=values.dtype.name)
        with rasterio.open(tmp_path / f"{label}.tif", "w", **profile) as d:
            d.write(values)
        refused = run_cli("classify", tmp_path / f"{label}.tif")
        assert refused.returncode == 1, refused.stdout
        assert refused.stderr.strip().splitlines()[-1].startswith(f"Error: patch {tmp_path}")


def test_training_that_diverges_says_so_and_strict_refuses_it(data_dir, tmp_path):
    """`train --lr 1e30` used to save a model at chance without a word (issue 36)."""
    args = ["train", "--data", data_dir / "eurosat" / "ms", "--epochs", "1", "--lr", "1e30",
            "--widths", "8,16", "--blocks", "1,1"]
    strict = run_cli(*args, "--out", tmp_path / "strict", "--strict")
    assert strict.returncode == 1 and not (tmp_path / "strict" / "model.json").exists()
    assert strict.stderr.strip().splitlines()[-1] == (
        "Error: training diverged (a loss became NaN or infinite; try a smaller --lr); nothing "
        "was saved (strict)")
    from geolulc.errors import TrustWarning
    from geolulc.models.train import check_learned

    with pytest.warns(TrustWarning, match="training ended at chance: validation accuracy 0.120"):
        check_learned([{"train_loss": 2.3, "val_loss": 2.3}], 0.12, 10, strict=False)
    with pytest.warns(TrustWarning, match="training diverged .*the model is saved"):
        check_learned([{"train_loss": float("nan"), "val_loss": 2.3}], 0.5, 10, strict=False)
    check_learned([{"train_loss": 0.3, "val_loss": 0.4}], 0.9, 10, strict=True)  # learnt: silent


@pytest.mark.parametrize("args", [["map", "--scene", "x", "--max-area", "nan"],
                                  ["change", "--before", "a", "--after", "b", "--threshold", "nan"],
                                  ["train", "--data", "x", "--out", "y", "--lr", "nan"],
                                  ["train", "--data", "x", "--out", "y", "--lr", "inf"]])
def test_non_finite_numbers_are_refused(args):
    refused = run_cli(*args)
    assert refused.returncode == 2 and "is not a finite number." in refused.stderr


def test_identical_runs_into_one_folder_never_fail_on_each_other(data_dir, tmp_path):
    """They share a chunk cache, which the first to finish removes (issue 36: one in four
    failed on a vanished chunk file)."""
    import subprocess
    import sys

    args = [sys.executable, "-m", "geolulc", "map", "--scene",
            str(data_dir / "oscd" / "norcia" / "imgs_1"), "--out", str(tmp_path), "--name", "n",
            "--chunk-rows", "20", "--quiet"]
    runs = [subprocess.Popen(args, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for run in runs:
        _, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
    assert (tmp_path / "n_landcover.tif").exists()
    assert not list(tmp_path.glob(".staging-*")) and not (tmp_path / ".geolulc-cache").exists()


def test_named_pipes_are_refused_not_waited_on(data_dir, tmp_path):
    """A FIFO as a scene, a patch or an item's band blocked for ever (issue 36)."""
    import json
    import os

    pipe = tmp_path / "B04.tif"
    os.mkfifo(pipe)
    for args in (["map", "--scene", pipe, "--out", tmp_path / "o"], ["classify", pipe]):
        refused = run_cli(*args)
        assert refused.returncode == 1
        assert "is not a regular file or folder (a pipe, socket or device)" in refused.stderr
    item = json.loads((data_dir / "metadata" / "stac-items" /
                       "earthsearch_v1_sentinel-2-l1c_S2B_20EPT_20250731_0_L1C.json").read_text())
    for asset in item["assets"].values():
        asset["href"] = str(pipe)
    (tmp_path / "item.json").write_text(json.dumps(item))
    refused = run_cli("map", "--scene", tmp_path / "item.json", "--out", tmp_path / "o")
    assert refused.returncode == 1, refused.stderr
    assert "is not a regular file or folder" in refused.stderr.strip().splitlines()[-1]


def test_open_ended_dates_and_unknown_baselines_are_said():
    from geolulc.errors import AssumptionWarning, ParameterError
    from geolulc.io.catalog import parse_date_range
    from geolulc.io.harmonize import baseline_offset

    for text in ("2020-02-01/", "/2020-02", "2020-02-01.."):
        with pytest.raises(ParameterError, match="is open-ended: give both ends"):
            parse_date_range(text)
    assert parse_date_range("2020-02-01/2020-02") == "2020-02-01T00:00:00Z/2020-02-29T23:59:59Z"
    with pytest.warns(AssumptionWarning, match="99.99 is newer than any known here"):
        assert baseline_offset((99, 99)) == 1000
    assert baseline_offset((5, 9)) == 1000 and baseline_offset((2, 14)) == 0


def test_more_probe_findings_are_one_line_errors(data_dir, tmp_path):
    """Bare exception names and misleading lines of the hostile-input probe (issue 36)."""
    import json

    import rasterio

    from geolulc.errors import GeolulcError
    from geolulc.io.scenes import load_scene
    from geolulc.mapping.request import scene_extent_wgs84
    from geolulc.models.model import read_card
    from geolulc.models.patchdata import read_patch

    globe = tmp_path / "globe.geojson"
    globe.write_text(json.dumps({"type": "Polygon", "coordinates": [
        [[-180, -90], [180, -90], [180, 90], [-180, 90], [-180, -90]]]}))
    with pytest.raises(GeolulcError, match="spans 360° of longitude and 180° of latitude, more "
                                           "than a hemisphere"):
        load_aoi(globe)
    wide = tmp_path / "wide.geojson"  # as wide as written, not 170…340 across the antimeridian
    wide.write_text(json.dumps({"type": "Polygon", "coordinates": [
        [[-20, 0], [170, 0], [170, 1], [-20, 1], [-20, 0]]]}))
    with pytest.raises(GeolulcError, match="spans 190° of longitude"):
        load_aoi(wide, max_area_km2=1e9)
    nan = tmp_path / "nan.geojson"
    nan.write_text('{"type": "Polygon", "coordinates": [[[NaN, 1], [2, 1], [2, 2], [1, 2], '
                   '[NaN, 1]]]}')
    with pytest.raises(GeolulcError, match="has coordinates that are not numbers"):
        load_aoi(nan)
    patch = next((data_dir / "eurosat" / "ms" / "SeaLake").glob("*.tif")).read_bytes()
    (tmp_path / "cut.tif").write_bytes(patch[:len(patch) // 2])
    with pytest.raises(GeolulcError, match="cut.tif: the file is truncated or corrupt"):
        read_patch(tmp_path / "cut.tif")
    scene = tmp_path / "nocrs"
    scene.mkdir()
    for band in (data_dir / "oscd" / "rennes" / "imgs_1").glob("*.tif"):
        with rasterio.open(band) as s:
            profile, data = s.profile, s.read()
        profile.pop("crs")
        with rasterio.open(scene / band.name, "w", **profile) as d:
            d.write(data)
    with pytest.raises(GeolulcError, match="has no coordinate reference system"):
        scene_extent_wgs84(load_scene(scene))
    (tmp_path / "deep.json").write_text('{"a":' * 100_000 + "1" + "}" * 100_000)
    with pytest.raises(GeolulcError, match="nested too deeply"):
        read_card(tmp_path / "deep.json")


def test_serve_says_serving_only_once_it_is(tmp_path):
    """A busy port, a file as --data-dir and a catalogue that is no URL fail with one line and
    never print "serving on" first (issue 36)."""
    import socket

    pytest.importorskip("uvicorn")
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    (tmp_path / "file").write_text("")
    try:
        failed = run_cli("serve", "--data-dir", tmp_path / "jobs", "--port",
                         busy.getsockname()[1])
        assert failed.returncode == 1, failed.stderr
        lines = failed.stderr.strip().splitlines()
        assert len(lines) == 1 and "Address already in use" in lines[0], lines
    finally:
        busy.close()
    from geolulc.errors import ParameterError
    from geolulc.serve.app import ServeConfig, create_app

    with pytest.raises(ParameterError, match="is a file, not a folder"):
        create_app(ServeConfig(data_dir=tmp_path / "file", catalog="http://127.0.0.1:9"))
    with pytest.raises(ParameterError, match="must be the http\\(s\\) URL of a STAC API"):
        create_app(ServeConfig(data_dir=tmp_path / "jobs", catalog="file:///etc"))


def test_nan_in_float_band_files_is_no_data(data_dir, tmp_path):
    import warnings

    import rasterio

    import geolulc

    for band in (data_dir / "oscd" / "rennes" / "imgs_1").glob("*.tif"):
        with rasterio.open(band) as s:
            profile, data = s.profile, s.read().astype("float32")
        data[:, :20] = np.nan  # the top rows of every band
        profile.update(dtype="float32")
        with rasterio.open(tmp_path / band.name, "w", **profile) as d:
            d.write(data)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # numpy's invalid-cast warning
        stack = geolulc.read(scenes=[tmp_path], bands=["B02", "B04"])
    whole = geolulc.read(scenes=[data_dir / "oscd" / "rennes" / "imgs_1"], bands=["B02", "B04"])
    assert (stack.clear <= whole.clear).all()  # NaN never became a clear pixel
    assert stack.clear.sum() < whole.clear.sum() - 5000  # the NaN rows are no data
    assert (stack.dn[:, ~stack.clear] == 0).all()


def test_writing_a_cog_leaves_the_callers_array_as_it_was(tmp_path):
    """write_cog lets GDAL read the array where it lies and writes `nodata_where` into it for
    the copy: the caller's (rows, cols, classes) stack must come back unchanged, also when the
    copy fails (a real full disk), and arrays GDAL cannot read in place are copied."""
    import rasterio
    from affine import Affine
    from pyproj import CRS

    from geolulc.io.rasters import write_cog

    crs, transform = CRS.from_epsg(32630), Affine(10, 0, 0, 0, -10, 0)
    probs = np.random.default_rng(1).integers(0, 250, (300, 400, 3), dtype=np.uint8)
    before = probs.copy()
    nodata = np.zeros((300, 400), bool)
    nodata[:50] = True
    write_cog(tmp_path / "p.tif", np.moveaxis(probs, 2, 0), crs, transform, 255,
              nodata_where=nodata, resampling="AVERAGE")
    assert (probs == before).all()
    with rasterio.open(tmp_path / "p.tif") as src:
        assert (src.read(2)[:50] == 255).all() and (src.read(2)[50:] == probs[50:, :, 1]).all()
    for odd in (np.broadcast_to(np.uint8(7), (300, 400)), before[..., 0].astype(">u2"),
                before[..., 0] > 100):  # read-only, big-endian, bool
        write_cog(tmp_path / "odd.tif", odd, crs, transform, 255, nodata_where=nodata)
        with rasterio.open(tmp_path / "odd.tif") as src:
            assert (src.read(1)[50:] == odd[50:]).all() and (src.read(1)[:50] == 255).all()
    noise = np.random.default_rng(0).integers(0, 250, (3, 3000, 3000), dtype=np.uint8)
    kept = noise.copy()
    some = np.zeros((3000, 3000), bool)
    some[:10] = True
    with small_disk(tmp_path, "4M") as disk, pytest.raises(OSError):
        write_cog(disk / "map.tif", noise, crs, transform, 255, nodata_where=some)
    assert (noise == kept).all()


def test_a_legend_keeps_what_the_sidecar_already_held(tmp_path):
    """GDAL keeps statistics (and more) in RASTER.aux.xml: write_legend adds names and a table
    for band 1 without losing them."""
    import json
    import subprocess

    import rasterio
    from affine import Affine

    import geolulc

    path = tmp_path / "classes.tif"
    with rasterio.open(path, "w", driver="GTiff", width=8, height=8, count=1, dtype="uint8",
                       crs="EPSG:32630", transform=Affine(10, 0, 0, 0, -10, 0)) as dst:
        dst.write(np.arange(64, dtype=np.uint8).reshape(8, 8) % 2, 1)
    subprocess.run(["gdalinfo", "-stats", str(path)], capture_output=True, check=True)
    assert "STATISTICS_MEAN" in (tmp_path / "classes.tif.aux.xml").read_text()
    geolulc.write_legend(path, Legend(("land", "sea"), ((1, 2, 3), (4, 5, 6)), "class"))
    band = json.loads(subprocess.run(["gdalinfo", "-json", str(path)], capture_output=True,
                                     text=True, check=True).stdout)["bands"][0]
    assert band["categories"] == ["land", "sea"] and band["description"] == "class"
    assert float(band["metadata"][""]["STATISTICS_MEAN"]) == 0.5
    assert band["colorTable"]["entries"][1] == [4, 5, 6, 255]
