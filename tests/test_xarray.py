"""xarray in and out: maps as rioxarray-readable Datasets, odc-stac/stackstac data as input."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import rasterio
from pyproj import CRS
from rasterio.enums import Resampling
from rasterio.transform import xy
from rasterio.warp import reproject

from conftest import ES_ITEM_ID
from geolulc.errors import GeolulcWarning

xr = pytest.importorskip("xarray")
pytest.importorskip("rioxarray")
odc_stac = pytest.importorskip("odc.stac")


@pytest.fixture(scope="module")
def rennes(data_dir):
    import geolulc

    return geolulc.classify(scenes=[data_dir / "oscd" / "rennes" / "imgs_1"])


def test_a_map_as_a_dataset_lies_where_its_geotiff_does(rennes, tmp_path):
    import geolulc

    ds = rennes.to_xarray()
    assert (ds.labels.values == rennes.labels).all() and ds.labels.dtype == np.uint8
    assert ds.probabilities.dims == ("class", "y", "x") and ds.probabilities.dtype == np.float32
    valid = rennes.labels != 255
    assert np.allclose(ds.probabilities.values[:, valid], np.moveaxis(rennes.probabilities, -1, 0)[:, valid])
    assert np.isnan(ds.probabilities.values[:, ~valid]).all()
    assert (ds.confidence.values == rennes.result.confidence).all()
    with rasterio.open(geolulc.write(rennes, tmp_path, name="r")["landcover"]) as src:
        x, _ = xy(src.transform, np.zeros(src.width), np.arange(src.width))  # cell centres
        _, y = xy(src.transform, np.arange(src.height), np.zeros(src.height))
        assert np.allclose(ds.x, x) and np.allclose(ds.y, y) and (src.read(1) == ds.labels).all()
        assert ds.rio.crs == src.crs and ds.rio.transform() == src.transform
    assert CRS.from_user_input(ds.rio.crs) == rennes.grid.crs
    assert ds.labels.rio.nodata == 255 and ds.confidence.rio.nodata == 255
    assert all(ds[name].attrs["grid_mapping"] == "spatial_ref" for name in ds.data_vars)
    assert ds.spatial_ref.attrs["grid_mapping_name"] == "transverse_mercator"
    assert ds.attrs["classes"] == rennes.classes == list(ds["class"].values)
    assert ds.attrs["class_colors"][0] == "#{:02x}{:02x}{:02x}".format(*rennes.model.colors[0])
    assert ds.attrs["model"] == "dynamic-world" and ds.attrs["model_digest"] == rennes.model.digest
    assert ds.attrs["scenes"] == ["rennes-imgs_1"] and "date" not in ds.attrs  # none was asked
    assert ds.labels.attrs["flag_meanings"].split()[6] == "built"


def test_a_map_keeps_its_names_and_colours_through_rioxarray(rennes, tmp_path):
    """Dataset → rio.to_raster → write_legend, and the COG → open_rasterio → to_raster: the same
    colour table, category names and band names as the map geolulc writes itself."""
    import rioxarray

    import geolulc

    ds = rennes.to_xarray()
    written = geolulc.write(rennes, tmp_path, name="r")
    with rasterio.open(written["landcover"]) as src:
        colours = {i: src.colormap(1)[i] for i in range(len(rennes.classes))}
    ds.probabilities.rio.to_raster(tmp_path / "p.tif")
    with rasterio.open(tmp_path / "p.tif") as src:
        assert src.descriptions == tuple(f"p({c})" for c in rennes.classes)
    reread = rioxarray.open_rasterio(written["landcover"])
    for source, path in ((ds.labels, tmp_path / "labels.tif"), (reread, tmp_path / "cog.tif")):
        source.rio.to_raster(path)
        style = geolulc.write_legend(path)
        with rasterio.open(path) as src:
            assert {i: src.colormap(1)[i] for i in colours} == colours
            assert (src.read(1) == rennes.labels).all()
        info = json.loads(subprocess.run(["gdalinfo", "-json", str(path)], capture_output=True,
                                         text=True, check=True).stdout)
        assert info["bands"][0]["categories"] == rennes.classes
        labels = [e.get("label") for e in ET.parse(style).getroot().iter("paletteEntry")]
        assert labels == rennes.classes and style == path.with_suffix(".qml")
    bare = tmp_path / "bare.tif"
    xr.DataArray(rennes.labels, dims=("y", "x")).rio.to_raster(bare)
    with pytest.raises(geolulc.GeolulcError, match="no flag_meanings"):
        geolulc.write_legend(bare)


def test_odc_stac_loads_a_map_item_as_geolulc_wrote_it(rennes, tmp_path):
    """A map's STAC Item through odc-stac: the land cover pixel for pixel, its no data, and the
    class names and colours from the Item's classification (odc-stac carries no colour table)."""
    import pystac

    import geolulc

    written = geolulc.write(rennes, tmp_path, name="r")
    item = pystac.Item.from_file(written["item"])
    ds = odc_stac.load([item], bands=["landcover", "probabilities.2"], chunks={})
    assert (ds.landcover.isel(time=0).values == rennes.labels).all()
    assert ds.landcover.attrs["nodata"] == 255 and ds.landcover.dtype == np.uint8
    with rasterio.open(written["probabilities"]) as src:
        assert (ds["probabilities.2"].isel(time=0).values == src.read(2)).all()
        assert src.descriptions[1] == f"p({rennes.classes[1]})"
    band = item.assets["landcover"].extra_fields["raster:bands"][0]
    named = [c for c in band["classification:classes"] if not c.get("nodata")]
    assert [c["title"] for c in named] == [c.replace("_", " ") for c in rennes.classes]
    assert [c["color_hint"] for c in named] == [
        "{:02X}{:02X}{:02X}".format(*rgb) for rgb in rennes.model.colors]


def test_a_change_pair_as_a_dataset(rennes):
    from geolulc.change_detection.detect import DateMap, compare
    from geolulc.change_detection.job import DatePair

    grid, model = rennes.grid, rennes.model
    before = DateMap("before", rennes.labels, rennes.result.probabilities, grid.crs,
                     grid.map_transform, model.name, model.classes, model.colors)
    probs = np.roll(rennes.result.probabilities, 1, axis=2)  # every cell changes class
    after = DateMap("after", probs.argmax(2).astype(np.uint8), probs, grid.crs,
                    grid.map_transform, model.name, model.classes, model.colors)
    after.labels[rennes.labels == 255] = 255
    change = compare(before, after, method="tv")
    ds = DatePair(before, after, change).to_xarray()
    assert (ds.fromto.values == change.fromto).all() and (ds.change_mask.values == change.mask).all()
    assert np.array_equal(ds.change_probability.values, change.probability, equal_nan=True)
    assert (ds.before_labels.values == before.labels).all()
    assert CRS.from_user_input(ds.rio.crs) == grid.crs and ds.rio.transform() == grid.map_transform
    k = len(model.classes)
    code = int(change.fromto[rennes.labels == 6][0])  # a built cell, and what it became
    assert ds.fromto.attrs["flag_meanings"].split()[code] == f"built_to_{model.classes[code % k]}"
    assert ds.attrs["method"] == "tv" and ds.attrs["before"] == "before"


@pytest.fixture(scope="module")
def desert(stac_api, desert_aoi):
    """The desert L2A item from the loopback STAC API, its map, and its bands as odc-stac loads
    them, lazily, onto the pixels that map reads (its grid and the tiles' 32-pixel halo)."""
    import pystac_client
    from odc.geo.geobox import GeoBox

    import geolulc
    from geolulc.io.bands import COMMON_NAMES

    item = next(pystac_client.Client.open(stac_api).search(
        collections=["sentinel-2-l2a"], ids=[ES_ITEM_ID]).items())
    scene_map = geolulc.classify(scenes=[item], aoi=desert_aoi)
    grid = scene_map.grid
    keys = [COMMON_NAMES[b] for b in scene_map.model.bands] + ["scl", "aot"]
    ds = odc_stac.load([item], bands=keys, chunks={"x": 256, "y": 256},
                       geobox=GeoBox(grid.read_shape, grid.read_transform, grid.crs),
                       resampling={"*": "bilinear", "scl": "nearest"})
    return item, scene_map, ds.assign_attrs(item.properties)  # odc-stac drops the properties


@pytest.fixture(scope="module")
def desert_data_map(desert, desert_aoi):
    """The map of the odc-stac data, and the largest array held at once while it was made."""
    import geolulc

    with Largest() as held, warnings.catch_warnings():
        warnings.simplefilter("error", GeolulcWarning)  # level, baseline, sun: from the attrs
        data_map = geolulc.classify(data=desert[2], aoi=desert_aoi)
    return data_map, held.nbytes


class Largest:
    """The largest array any dask task made while active: what was held at once."""

    def __enter__(self):
        from dask.callbacks import Callback

        def post(key, result, dsk, state, worker_id):
            self.nbytes = max(self.nbytes, getattr(result, "nbytes", 0))

        self.nbytes, self.callback = 0, Callback(posttask=post)
        self.callback.__enter__()
        return self

    def __exit__(self, *exc):
        self.callback.__exit__(*exc)


def test_odc_stac_data_map_like_the_scene(desert, desert_data_map, desert_aoi):
    """odc-stac's bands of the real item give the scene's map, on the same grid.

    The one difference: the test COGs are decimated 10× (100 m pixels for the 10 m bands), so
    every band is upsampled on the 10 m grid, by odc-stac (GDAL's warper) for the data and by
    geolulc's in-process GDAL weights (`geolulc.io.resample`) for the scene. The bilinear weights
    are then multiples of 0.05 (0.025 for 20 m bands), many values fall exactly halfway between
    two DN, and the two implementations' floating-point arithmetic puts such a value a hair
    above or below .5: it rounds to neighbouring DN. Asserted below: the bands differ only
    there, by 1 DN, and that moves 0.025 % of the labels (a 1 DN nudge flips near-ties).
    """
    import geolulc

    item, scene_map, ds = desert
    data_map, held = desert_data_map
    assert ds.blue.chunks is not None  # lazy: dask-backed
    assert 0 < held < ds.blue.isel(time=0).nbytes  # a row of chunks at a time, never a band
    assert data_map.grid == scene_map.grid
    assert data_map.scenes[0].level == "L2A" and data_map.scenes[0].baseline == (2, 14)
    agree = (data_map.labels == scene_map.labels).mean()
    assert agree >= 0.999, agree

    grid = scene_map.grid
    bands = scene_map.model.bands
    read = geolulc.read(scenes=[item], aoi=desert_aoi, bands=bands)
    core = slice(grid.margin, -grid.margin)
    for i, (band, key) in enumerate(zip(bands, ds.data_vars)):
        loaded = ds[key].isel(time=0).values[core, core].astype(int)
        exact = np.zeros(loaded.shape)  # GDAL's bilinear value before rounding
        with rasterio.open(item.assets[str(key)].href) as src:
            reproject(rasterio.band(src, 1), exact, dst_transform=read.transform,
                      dst_crs=read.crs.to_wkt(), resampling=Resampling.bilinear)
        differs = (loaded != read.dn[i]) & read.clear
        halfway = np.abs(exact - np.floor(exact) - 0.5) < 1e-6
        assert (np.abs(loaded - read.dn[i])[read.clear] <= 1).all(), band
        assert not (differs & ~halfway).any(), band


def test_stackstac_like_reflectance_with_time_is_a_composite(desert, desert_data_map, desert_aoi):
    """A DataArray with a band dimension, float reflectance (NaN = no data) and STAC properties
    as coordinates along time, as stackstac gives them: two acquisitions make a median, which
    of two identical ones is the one acquisition's map."""
    import geolulc

    _, _, ds = desert
    planes = [ds[k].where(ds[k] > 0) / 10000 for k in ds.data_vars if k not in ("scl", "aot")]
    planes += [ds.scl.astype("float32"), ds.aot / 1000]  # rescaled as their items declare
    one = xr.concat([p.astype("float32") for p in planes], dim="band").assign_coords(
        band=list(ds.data_vars))
    times = np.array(["2020-02-19T11:34:25", "2020-02-24T11:34:25"], dtype="datetime64[ns]")
    stack = xr.concat([one.isel(time=0)] * 2, dim="time").assign_coords(time=times)
    stack = stack.assign_coords({key: ("time", [ds.attrs[key]] * 2) for key in (
        "s2:processing_baseline", "s2:product_type", "view:sun_azimuth", "view:sun_elevation")})
    stack = stack.assign_coords(id=("time", ["a", "b"]))
    stack.attrs = {"crs": f"epsg:{ds.odc.geobox.crs.epsg}"}  # stackstac's: no spatial_ref
    stack = stack.drop_vars("spatial_ref")
    with warnings.catch_warnings():
        warnings.simplefilter("error", GeolulcWarning)
        composite = geolulc.classify(data=stack, aoi=desert_aoi)
    single, _ = desert_data_map
    assert [s.id for s in composite.scenes] == ["a", "b"] and composite.scenes[0].harmonised
    assert composite.result.count.max() == 2  # both acquisitions seen: a median of two
    assert (composite.labels == single.labels).all()


def dataset(bands, dtype="uint16", values=None, crs="EPSG:32630"):
    """A small Dataset of `bands` on a 10 m UTM grid."""
    data = np.full((80, 80), 1500, dtype) if values is None else values.astype(dtype)
    shape = data.shape
    ds = xr.Dataset({b: (("y", "x"), data) for b in bands},
                    coords={"x": 600005.0 + 10 * np.arange(shape[1]),
                            "y": 5330995.0 - 10 * np.arange(shape[0])})
    return ds.rio.write_crs(crs) if crs else ds


def ambiguous():
    values = np.full((80, 80), 0.5)
    values[:, :8] = 200  # median 0.5: reflectance? 10 % at 200: DN?
    return dataset(["red", "green", "blue"], "float32", values)


@pytest.mark.parametrize("kwargs,error,message", [
    ({"data": dataset(["B04", "B03", "B02"], crs=None)}, "DataError", "`data` has no CRS"),
    ({"data": dataset(["red", "nir"]), "model": "dynamic-world"}, "DataError",
     "`data` lacks band(s) B02, B03, B05, B06, B07, B11, B12 that the model needs"),
    ({"data": dataset(["red", "nir"])}, "ModelError", "no bundled model fits inputs with bands"),
    ({"data": ambiguous(), "level": "L1C", "baseline": "02.04"}, "DataError",
     "cannot tell whether `data` holds reflectance (0–1.5) or DN"),
    ({"data": dataset(["red"]).red.values}, "ParameterError", "`data` must be an xarray"),
    ({"data": dataset(["red"]), "scenes": ["x"]}, "ParameterError", "`scenes` or `data`"),
    ({"data": dataset(["red"]).red.rename(None)}, "DataError", "needs a `band` dimension"),
    ({"data": dataset(["red"]), "baseline": "new"}, "ParameterError", "`baseline` must be"),
])
def test_bad_data_is_one_line(kwargs, error, message):
    import geolulc
    from geolulc import errors

    with pytest.raises(getattr(errors, error)) as caught, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        geolulc.classify(**kwargs)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_missing_metadata_is_a_warning_not_a_guess_in_silence():
    from geolulc.errors import AssumptionWarning
    from geolulc.io.xarrays import open_data

    with pytest.warns(AssumptionWarning, match="does not say its processing level"), \
            pytest.warns(AssumptionWarning, match="processing baseline of xarray"):
        source = open_data(dataset(["red"]))
    assert source.units == "dn" and source.steps[0].level == "L1C"
    assert open_data(dataset(["red"], "float32", np.full((80, 80), 0.2)), level="L1C",
                     baseline="05.09").units is None  # told from the values when written
    reflectance = dataset(["red"], "float32", np.full((80, 80), 0.2)).assign_attrs(units="1")
    assert open_data(reflectance, level="L2A").units == "reflectance"


def test_no_xarray_import_for_help_or_a_plain_map():
    code = ("import sys; from click.testing import CliRunner; import geolulc.cli as c; "
            "import geolulc.api, geolulc.mapping.pipeline, geolulc.change_detection.job; "
            "r = CliRunner().invoke(c.main, ['map', '--help']); assert r.exit_code == 0; "
            "print(sorted(m for m in ('xarray', 'rioxarray', 'odc', 'dask') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_without_an_aoi_the_map_is_the_datas_own_grid(desert):
    """The map of data without an AOI covers the data's pixels, not one cell beyond them."""
    from geolulc.io.xarrays import open_data
    from geolulc.mapping.request import MapRequest, plan_grid

    _, scene_map, ds = desert
    source = open_data(ds)
    with source.scenes(scene_map.model.bands) as scenes:
        grid = plan_grid(MapRequest(crs=source.map_crs), None, scenes, scene_map.model)
    assert grid.map_transform == source.transform == scene_map.grid.read_transform
    assert (grid.rows, grid.cols) == (ds.sizes["y"], ds.sizes["x"])


def test_geotiffs_are_written_block_by_block_north_up(tmp_path):
    """In-memory data go by rows, dask data by chunks; a south-up grid is turned north up."""
    from geolulc.io.xarrays import open_data, write_geotiff

    values = np.arange(2500 * 30, dtype="uint16").reshape(2500, 30)  # three in-memory blocks
    south_up = dataset(["B04"], values=values).isel(y=slice(None, None, -1))
    for data in (south_up, south_up.chunk({"y": 700})):
        source = open_data(data, level="L1C", baseline="02.04")
        assert source.transform.e < 0 and source.transform.f == 5331000.0
        write_geotiff(source.layers["B04"].isel(time=0), tmp_path / "b.tif", source.crs,
                      source.transform, "uint16", lambda block: block.astype("uint16"))
        with rasterio.open(tmp_path / "b.tif") as src:
            assert (src.read(1) == values).all() and src.transform == source.transform
