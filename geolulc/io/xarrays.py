"""xarray in and out: maps and changes as `xarray.Dataset`s, and xarray Sentinel-2 data as scenes.

Out: a map's layers on their grid in the convention rioxarray and GDAL read (CF): x and y at cell
centres, a ``spatial_ref`` grid-mapping coordinate carrying the CRS (WKT and the CF attributes)
and the GeoTransform, and every layer's ``grid_mapping`` naming it. Integer layers keep their
no-data code (255) as ``_FillValue``; float layers are NaN where nothing was classified.

In: bands that odc-stac, stackstac or rioxarray loaded (a Dataset with one variable per band, or
a DataArray with a ``band`` dimension) become scenes that the pipeline reads like any other.
Each band of each time step is written to a temporary GeoTIFF one row of dask chunks at a time,
so dask-backed data are never loaded whole, and the map is then made by the same reader,
harmonisation, cloud masking and tiling as ``geolulc map``: the same pixels give the same labels.

xarray and rioxarray are the ``xarray`` extra; only this module imports them, when it is used.
"""

from __future__ import annotations

import contextlib
import functools
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Union, cast

import numpy as np
import rasterio
from affine import Affine
from pyproj import CRS
from rasterio.warp import transform_geom
from rasterio.windows import Window
from shapely.geometry import box, mapping, shape
from shapely.geometry.base import BaseGeometry

from geolulc._version import __version__
from geolulc.core.legend import (
    CHANGE_LEGEND,
    Legend,
    fromto_legend,
    land_cover_legend,
    probability_names,
)
from geolulc.errors import (
    AssumptionWarning,
    DataError,
    DependencyError,
    FallbackWarning,
    ParameterError,
)
from geolulc.io.atmosphere import AOT_QUANTIFICATION
from geolulc.io.bands import ALL_BANDS, AOT_KEYS, SCL_KEYS, asset_key_candidates, normalise_band
from geolulc.io.clouds import L1C_MASK_BANDS
from geolulc.io.harmonize import parse_baseline
from geolulc.io.rasters import NODATA
from geolulc.io.scenes import Scene

if TYPE_CHECKING:
    import xarray as xr

#: Name of the grid-mapping coordinate, as rioxarray and odc-stac call it.
GRID_MAPPING = "spatial_ref"
#: Rows written at a time from data already in memory (dask data go by their own chunks).
IN_MEMORY_ROWS = 1024
#: Reflectance is told from DN by its values: 99 % of a block's reflectance lies below this
#: (bright cloud reaches about 1.5), and the median DN of any land or water is far above
#: `DN_MEDIAN_MIN`.
REFLECTANCE_Q99_MAX = 3.0
DN_MEDIAN_MIN = 10.0
#: STAC item properties read from the data's coordinates (stackstac keeps them, one value per
#: time step) or attributes (where a caller puts back what odc-stac drops).
#: Properties that belong to one acquisition, never to a stack of several.
SUN_ANGLES = ("view:sun_azimuth", "view:sun_elevation")
PROPERTIES = ("id", "s2:processing_baseline", "processing:version", "s2:product_uri",
              "s2:product_type", "product:type", "view:sun_azimuth", "view:sun_elevation",
              "eo:cloud_cover")
#: Variable (or band coordinate) names → geolulc's: B04, Earth Search's `red`, `B04_10m` …
LAYER_NAMES = {
    **{key.lower(): band for band in ALL_BANDS for key in asset_key_candidates(band)},
    **{key.lower(): "SCL" for key in SCL_KEYS},
    **{key.lower(): "AOT" for key in AOT_KEYS},
}

Units = Literal["dn", "reflectance"]
XarrayData = Union["xr.Dataset", "xr.DataArray"]


def _require_xarray() -> None:
    """Import xarray and rioxarray (registering the `.rio` accessor), or fail in one line."""
    try:
        import rioxarray  # noqa: F401
        import xarray  # noqa: F401
    except ImportError as exc:
        raise DependencyError(f"xarray input and output need {exc.name}: "
                              "pip install 'geolulc[xarray]'") from None


# ---------------------------------------------------------------- out

def grid_coords(crs: CRS, transform: Affine, shape: tuple[int, int]) -> dict[str, Any]:
    """The x and y of cell centres, and the `spatial_ref` grid mapping, as rioxarray has them."""
    rows, cols = shape
    axes = {axis["axis"]: axis for axis in crs.cs_to_cf() if "axis" in axis}
    mapping = {**crs.to_cf(), "crs_wkt": crs.to_wkt(), "spatial_ref": crs.to_wkt(),
               "GeoTransform": " ".join(str(v) for v in transform.to_gdal())}
    return {
        "x": ("x", transform.c + (np.arange(cols) + 0.5) * transform.a, axes.get("X", {})),
        "y": ("y", transform.f + (np.arange(rows) + 0.5) * transform.e, axes.get("Y", {})),
        GRID_MAPPING: ((), 0, mapping),
    }


def _classes_attrs(legend: Legend, long_name: str | None = None) -> dict[str, Any]:
    """A class layer's CF flags (a code per name), their colours and its no-data code.

    rioxarray's `to_raster` writes these as the GeoTIFF's tags, from which `write_legend` makes
    the colour table, category names, attribute table and QGIS style it cannot write.
    """
    return {"long_name": long_name or legend.description, "_FillValue": np.uint8(NODATA),
            "flag_values": np.arange(len(legend.names), dtype=np.uint8),
            **legend.cf_flags()}


def _dataset(layers: dict[str, tuple[tuple[str, ...], np.ndarray, dict[str, Any]]], crs: CRS,
             transform: Affine, classes: list[str], attrs: dict[str, Any]) -> xr.Dataset:
    """Layers on one grid, each pointing at the grid mapping; attributes without None values.

    Attributes must survive `to_netcdf` and `to_zarr`, which have no None.
    """
    _require_xarray()
    import xarray

    shape = next(iter(layers.values()))[1].shape[-2:]
    coords = {**grid_coords(crs, transform, shape), "class": ("class", np.array(classes))}
    variables = {name: (dims, array, {**layer_attrs, "grid_mapping": GRID_MAPPING})
                 for name, (dims, array, layer_attrs) in layers.items()}
    kept = {k: v for k, v in attrs.items() if v is not None}
    return xarray.Dataset(variables, coords=coords, attrs={
        "Conventions": "CF-1.8", "geolulc_version": __version__, **kept})


def land_cover_dataset(*, labels: np.ndarray, confidence: np.ndarray, probabilities: np.ndarray,
                       classes: list[str], colors: list[tuple[int, int, int]], crs: CRS,
                       transform: Affine, attrs: dict[str, Any]) -> xr.Dataset:
    """A map as a Dataset: `labels`, `confidence` and `probabilities` (class, y, x).

    `probabilities` (rows, cols, classes) float32 is taken over, not copied (a whole tile's is
    several GB): its cells without a label are set to NaN. `attrs` (model, date, scenes …) join
    the classes and their colours as the Dataset's attributes.
    """
    probabilities[labels == NODATA] = np.nan
    return _dataset({
        "labels": (("y", "x"), labels, _classes_attrs(land_cover_legend(classes, colors))),
        "confidence": (("y", "x"), confidence, {
            "long_name": "probability of the mapped class", "units": "%",
            "_FillValue": np.uint8(NODATA)}),
        "probabilities": (("class", "y", "x"), np.moveaxis(probabilities, -1, 0), {
            # a name per band, as rioxarray reads and writes band descriptions
            "long_name": tuple(probability_names(classes)), "units": "1",
            "_FillValue": np.float32(np.nan)}),
    }, crs, transform, classes, {"classes": classes,
                                 "class_colors": land_cover_legend(classes, colors).hex_colors,
                                 **attrs})


def change_dataset(*, before: np.ndarray, after: np.ndarray, fromto: np.ndarray,
                   mask: np.ndarray, probability: np.ndarray, classes: list[str],
                   colors: list[tuple[int, int, int]], crs: CRS, transform: Affine,
                   attrs: dict[str, Any]) -> xr.Dataset:
    """A change between two dates as a Dataset.

    Both dates' labels, the from-to code (before × classes + after), the change mask (0/1) and
    the change probability (NaN where either date is unknown).
    """
    legend = land_cover_legend(classes, colors)
    return _dataset({
        "before_labels": (("y", "x"), before, _classes_attrs(legend, "land-cover class before")),
        "after_labels": (("y", "x"), after, _classes_attrs(legend, "land-cover class after")),
        "fromto": (("y", "x"), fromto, _classes_attrs(fromto_legend(classes, colors))),
        "change_mask": (("y", "x"), mask, _classes_attrs(CHANGE_LEGEND)),
        "change_probability": (("y", "x"), probability, {
            "long_name": "change probability", "units": "1", "_FillValue": np.float32(np.nan)}),
    }, crs, transform, classes, {"classes": classes,
                                 "class_colors": land_cover_legend(classes, colors).hex_colors,
                                 **attrs})


# ---------------------------------------------------------------- in

@dataclass
class _Step:
    """One time step of the data: one acquisition, a scene of the request."""

    id: str
    when: datetime | None
    level: str
    baseline: tuple[int, int] | None
    properties: dict[str, Any]


@dataclass
class DataSource:
    """Sentinel-2 bands of an xarray object, checked, and the scenes its time steps make.

    Made by `open_data`; `scenes` writes what a model needs to temporary GeoTIFFs.
    """

    layers: dict[str, xr.DataArray]
    """geolulc's band names (B02 …, SCL, AOT) → their (time, y, x) data."""
    crs: CRS
    transform: Affine
    """Of the data's pixels, north up."""
    steps: list[_Step]
    units: Units | None
    """DN or reflectance; None until told from the values of the first block holding any."""
    nodata: dict[str, float | None] = field(default_factory=dict)

    @property
    def bands(self) -> list[str]:
        """The Sentinel-2 bands the data holds."""
        return [b for b in ALL_BANDS if b in self.layers]

    @property
    def map_crs(self) -> str | None:
        """The CRS a map of the data is made in: its own when projected (None: the UTM zone)."""
        if not self.crs.is_projected:
            return None
        epsg = self.crs.to_epsg()
        return f"EPSG:{epsg}" if epsg else self.crs.to_wkt()

    @property
    def several_days(self) -> bool:
        """Whether the time steps span several days, which `composite="auto"` takes as a median."""
        return len({s.when.date() for s in self.steps if s.when}) > 1

    def require(self, bands: Sequence[str]) -> None:
        """Fail with one line naming the bands a model needs that the data lacks."""
        missing = [b for b in bands if b not in self.layers]
        if missing:
            raise DataError(f"`data` lacks band(s) {', '.join(missing)} that the model needs (it "
                            f"has {', '.join(self.bands) or 'none'}; bands are variables, or "
                            "values of a `band` coordinate, named like B04 or red)")

    @contextlib.contextmanager
    def scenes(self, bands: Sequence[str]) -> Iterator[list[Scene]]:
        """One scene per time step, in a temporary folder removed on exit.

        The scene holds `bands`, the L1C cloud detector's bands where the data have all of
        them, and for L2A the SCL and AOT layers where present: what `geolulc map` would read
        of the same product. The scenes are made directly (not read back from their folder), so
        they keep what file names cannot say: the time of day, the baseline, the sun angles.
        """
        with tempfile.TemporaryDirectory(prefix="geolulc-xarray-") as tmp:
            files = [self._write_step(i, Path(tmp), list(bands)) for i in range(len(self.steps))]
            yield [self._scene(step, paths) for step, paths in zip(self.steps, files)]

    def _write_step(self, index: int, folder: Path, bands: list[str]) -> dict[str, str]:
        step = self.steps[index]
        masks = L1C_MASK_BANDS if step.level == "L1C" and set(L1C_MASK_BANDS) <= set(self.layers) \
            else []
        extra = ["SCL", "AOT"] if step.level == "L2A" else []
        wanted = [n for n in dict.fromkeys(bands + masks + extra) if n in self.layers]
        paths = {}
        for name in wanted:
            path = folder / f"{index:03d}_{name}.tif"  # the layout of a folder of band rasters
            layer = self.layers[name].isel(time=index)
            dtype = "uint8" if name == "SCL" else "uint16"
            write_geotiff(layer, path, self.crs, self.transform, dtype,
                          functools.partial(self._stored, name))
            paths[name] = str(path)
        return paths

    def _scene(self, step: _Step, paths: dict[str, str]) -> Scene:
        reflectance = self.units == "reflectance"
        if reflectance and step.level == "L2A" and "SCL" not in paths:  # the reader is silent
            warnings.warn(f"L2A `data` ({step.id}) has no scene classification (scl): its "
                          "clouds are not masked", FallbackWarning, stacklevel=4)
        return Scene(
            id=step.id, level=step.level,
            bands={b: p for b, p in paths.items() if b in ALL_BANDS},
            datetime=step.when, baseline=step.baseline, scl=paths.get("SCL"),
            aot=paths.get("AOT"), cloud_cover=step.properties.get("eo:cloud_cover"),
            footprint=self._footprint(),
            harmonised=reflectance,  # reflectance is physical: no baseline offset is left in it
            properties=step.properties)

    def _footprint(self) -> BaseGeometry:
        """The data's extent in EPSG:4326, a quarter of a pixel inside its edges.

        A map without an AOI covers its first scene's footprint, snapped outwards to whole
        cells; inside the edges, the snap lands on the data's own edges, not one cell beyond.
        """
        t = self.transform
        height, width = self.layers[next(iter(self.layers))].shape[-2:]
        inset = abs(t.a) / 4
        west, north = t.c + inset, t.f - inset
        east, south = t.c + width * t.a - inset, t.f + height * t.e + inset
        outline = box(west, south, east, north).segmentize(max(east - west, north - south) / 32)
        return shape(transform_geom(self.crs.to_wkt(), "EPSG:4326", mapping(outline)))

    def _stored(self, name: str, block: np.ndarray) -> np.ndarray:
        """A block of a layer as the GeoTIFF stores it: DN (0 = no data), SCL codes, AOT × 1000."""
        values = block.astype(np.float64, copy=False)
        valid = np.isfinite(values)
        nodata = self.nodata.get(name)
        if nodata is not None:
            valid &= values != nodata
        out = np.zeros(block.shape, dtype=np.uint8 if name == "SCL" else np.uint16)
        if not valid.any():
            return out  # whatever the units: nothing to convert
        floating = block.dtype.kind == "f"
        if name in ALL_BANDS and floating and self.units is None:
            self._settle(_units_of(values[valid], name))
        scaled = floating and self.units == "reflectance"
        if name in ALL_BANDS and scaled:
            out[valid] = np.clip(np.round(values[valid] * 10000), 1, 65535)
        else:
            factor = AOT_QUANTIFICATION if name == "AOT" and scaled else 1
            out[valid] = np.clip(np.round(values[valid] * factor), 0, np.iinfo(out.dtype).max)
        return out

    def _settle(self, units: Units) -> None:
        """Fix the units; DN of a product whose baseline nobody gave is taken as pre-04.00."""
        self.units = units
        unknown = [s.id for s in self.steps if s.baseline is None]
        if units == "dn" and unknown:
            warnings.warn(f"`data` does not say the processing baseline of {', '.join(unknown)}:"
                          " its DN are taken as stored before baseline 04.00, with no +1000 "
                          "offset to remove; give `baseline`", AssumptionWarning, stacklevel=5)


def _units_of(values: np.ndarray, band: str) -> Units:
    """DN or reflectance, from the valid values of one block of float data."""
    median, q99 = np.percentile(values, [50, 99])
    if q99 <= REFLECTANCE_Q99_MAX:
        return "reflectance"
    if median >= DN_MEDIAN_MIN:
        return "dn"
    raise DataError(f"cannot tell whether `data` holds reflectance (0–1.5) or DN (reflectance × "
                    f"10000): {band} has median {median:.3g} and 99th percentile {q99:.3g}; set "
                    "its attribute units to 'reflectance' or 'DN'")


def write_geotiff(layer: xr.DataArray, path: Path, crs: CRS, transform: Affine, dtype: str,
                  convert: Callable[[np.ndarray], np.ndarray]) -> None:
    """Write a (y, x) layer to a tiled GeoTIFF, one row of its dask chunks at a time.

    Only that row is ever computed and held (dask data are never loaded whole); data already in
    memory go by `IN_MEMORY_ROWS`. `convert` turns each block into what is stored.
    """
    height, width = layer.shape
    if layer.chunks:
        sizes = list(layer.chunks[layer.get_axis_num("y")])
    else:
        sizes = [IN_MEMORY_ROWS] * -(-height // IN_MEMORY_ROWS)
    edges = np.minimum(np.cumsum([0, *sizes]), height)
    profile = {"driver": "GTiff", "width": width, "height": height, "count": 1, "dtype": dtype,
               "crs": crs.to_wkt(), "transform": transform, "nodata": 0, "tiled": True,
               "blockxsize": 256, "blockysize": 256, "compress": "deflate", "zlevel": 1,
               "predictor": 2, "bigtiff": "if_safer"}
    with rasterio.open(path, "w", **profile) as dst:
        for top, bottom in zip(edges[:-1], edges[1:]):
            if bottom > top:
                block = np.asarray(layer.isel(y=slice(int(top), int(bottom))).values)
                dst.write(convert(block), 1, window=Window(0, int(top), width, int(bottom - top)))


def open_data(data: object, *, level: str | None = None,
              baseline: str | None = None) -> DataSource:
    """Check xarray Sentinel-2 data and say how to read it: bands, grid, time steps, units.

    `data` is a Dataset with a variable per band, or a DataArray with a `band` dimension, with a
    CRS (rioxarray's, a `spatial_ref` coordinate, a `crs` attribute) and x/y dimensions; a
    `time` dimension makes one scene per step. `level` and `baseline` (such as "05.09") apply
    to every step; where not given they are read from STAC properties among the data's
    coordinates or attributes (`s2:product_type`, `s2:processing_baseline`). Nothing is loaded.
    """
    _require_xarray()
    import xarray

    if not isinstance(data, (xarray.Dataset, xarray.DataArray)):
        raise ParameterError(f"`data` must be an xarray Dataset or DataArray, not "
                             f"{type(data).__name__}")
    if level not in (None, "L1C", "L2A"):
        raise ParameterError(f"`level` must be L1C or L2A, not {level!r}")
    given = parse_baseline(baseline) if baseline is not None else None
    if baseline is not None and given is None:
        raise ParameterError(f"`baseline` must be a processing baseline such as '05.09', not "
                             f"{baseline!r}")
    crs, transform, data = _georeference(data)
    dataset = data if isinstance(data, xarray.Dataset) else _as_dataset(data)
    layers, nodata = {}, {}
    for key, variable in dataset.data_vars.items():
        name = _layer_name(str(key))
        if name is None or name in layers:
            continue
        extra = set(variable.dims) - {"time", "y", "x"}
        if extra:
            raise DataError(f"`data` variable {key} has dimension(s) {', '.join(map(str, extra))}"
                            ": only time, y and x are understood")
        if variable.dtype.kind not in "iuf":
            raise DataError(f"`data` variable {key} holds {variable.dtype}, not numbers")
        if "time" not in variable.dims:
            variable = variable.expand_dims("time")
        layers[name] = variable.transpose("time", "y", "x")
        nodata[name] = _nodata(variable)
    if not any(name in ALL_BANDS for name in layers):
        raise DataError("`data` holds no Sentinel-2 band: name its variables (or the values of "
                        "its `band` coordinate) like B04 or red")
    steps = _steps(dataset, data.attrs, level, given, has_scl="SCL" in layers)
    source = DataSource(layers, crs, transform, steps, None, nodata)
    spectral = [layers[b] for b in source.bands]
    if all(v.dtype.kind in "iu" for v in spectral):
        source._settle("dn")
    else:
        declared = _declared_units([data.attrs, *(v.attrs for v in spectral)])
        if declared:
            source._settle(declared)
    return source


def _georeference(data: XarrayData) -> tuple[CRS, Affine, XarrayData]:
    """The data's CRS and north-up transform (the data flipped to match), x/y named x and y."""
    from rioxarray.exceptions import MissingSpatialDimensionError

    rio = cast(Any, data).rio  # rioxarray's accessor, which the type checker cannot see
    try:
        x_dim, y_dim = rio.x_dim, rio.y_dim
    except MissingSpatialDimensionError:
        raise DataError("`data` has no x/y (or longitude/latitude) dimensions") from None
    if rio.crs is None:
        raise DataError("`data` has no CRS: give it one (rioxarray's data.rio.write_crs, a "
                        "spatial_ref coordinate with crs_wkt, or load it with odc-stac/stackstac)")
    crs = CRS.from_user_input(rio.crs.to_wkt())
    t = rio.transform(recalc=True)
    data = data.rename({x_dim: "x", y_dim: "y"}) if (x_dim, y_dim) != ("x", "y") else data
    if t.b or t.d:
        raise DataError("`data` lies on a rotated grid; reproject it north up first")
    if t.a < 0:  # columns east to west: turned round, so the GeoTIFFs are written west first
        data = data.isel(x=slice(None, None, -1))
        t = Affine(-t.a, 0, t.c + t.a * data.sizes["x"], 0, t.e, t.f)
    if t.e > 0:  # rows south to north
        data = data.isel(y=slice(None, None, -1))
        t = Affine(t.a, 0, t.c, 0, -t.e, t.f + t.e * data.sizes["y"])
    return crs, t, data


def _as_dataset(data: xr.DataArray) -> xr.Dataset:
    """A Dataset with a variable per band: the DataArray split along its `band` dimension."""
    if "band" in data.dims:
        return data.to_dataset(dim="band")
    if data.name is not None:
        return data.to_dataset()
    raise DataError("a DataArray as `data` needs a `band` dimension whose coordinate names the "
                    "bands (B04 or red …)")


def _layer_name(key: str) -> str | None:
    """The name geolulc gives a variable (B04, SCL, AOT), or None for what it does not read."""
    name = LAYER_NAMES.get(key.lower())
    if name:
        return name
    try:
        return normalise_band(key)
    except ValueError:
        return None


def _nodata(variable: xr.DataArray) -> float | None:
    """The no-data value a variable declares (odc-stac: `nodata`; CF: `_FillValue`)."""
    for key in ("nodata", "_FillValue", "missing_value"):
        if variable.attrs.get(key) is not None:
            return float(variable.attrs[key])
    fill = variable.encoding.get("_FillValue")
    return None if fill is None else float(fill)


def _declared_units(attrs: list[dict[Any, Any]]) -> Units | None:
    """Units the metadata declare: CF's "1" (dimensionless) or "reflectance", or "DN"."""
    for entry in attrs:
        text = str(entry.get("units", "")).strip().lower()
        if text in ("1", "reflectance"):
            return "reflectance"
        if text == "dn":
            return "dn"
    return None


def _steps(dataset: xr.Dataset, attrs: dict[Any, Any], level: str | None,
           baseline: tuple[int, int] | None, has_scl: bool) -> list[_Step]:
    """Each time step's acquisition: its id, time, level, baseline and STAC properties."""
    count = dataset.sizes.get("time", 1)
    known = "time" in dataset.coords and dataset["time"].size == count
    times = dataset["time"].values.reshape(-1) if known else [None] * count
    steps: list[_Step] = []
    assumed = False
    shared = [k for k in PROPERTIES if k not in dataset.coords and attrs.get(k) is not None]
    if count > 1 and shared:  # one set of attributes cannot describe several acquisitions
        warnings.warn(f"`data` has {count} time steps but its STAC properties "
                      f"({', '.join(shared[:3])} …) are dataset attributes: each step is taken "
                      "to have them, and their sun angles are computed from each step's time "
                      "instead (keep per-step properties as coordinates, as stackstac does)",
                      AssumptionWarning, stacklevel=4)
        attrs = {k: v for k, v in attrs.items() if k not in ("id", *SUN_ANGLES)}
    for i, value in enumerate(times):
        props = _properties(dataset, attrs, i)
        when = _datetime(value)
        told = level or _level_of(props) or ("L2A" if has_scl else None)
        assumed = assumed or told is None
        name = str(props.get("id") or (f"xarray-{when:%Y%m%d}" if when else "xarray"))
        taken = {s.id for s in steps}
        steps.append(_Step(name if name not in taken else f"{name}-{i}", when, told or "L1C",
                           baseline or _baseline_of(props), props))
    if assumed:
        warnings.warn("`data` does not say its processing level; assuming L1C (give `level`)",
                      AssumptionWarning, stacklevel=4)
    return steps


def _properties(dataset: xr.Dataset, attrs: dict[Any, Any], index: int) -> dict[str, Any]:
    """The STAC properties of time step `index` among the coordinates, else the attributes."""
    found = {}
    for key in PROPERTIES:
        if key in dataset.coords:
            coord = dataset.coords[key]
            value = coord.values[index] if coord.dims == ("time",) else coord.values
            value = np.asarray(value).item()
        else:
            value = attrs.get(key)
        if value is not None and not (isinstance(value, float) and np.isnan(value)):
            found[key] = value
    return found


def _datetime(value: object) -> datetime | None:
    """A time coordinate's value as a UTC datetime (None for none, or NaT)."""
    if value is None:
        return None
    try:
        stamp = np.datetime64(cast(Any, value), "us")
    except (TypeError, ValueError):
        raise DataError(f"`data` has a time coordinate that holds no dates ({value!r})") from None
    if np.isnat(stamp):
        return None
    return cast(datetime, stamp.astype(datetime)).replace(tzinfo=timezone.utc)


def _level_of(props: dict[str, Any]) -> str | None:
    """L1C or L2A from the product type or name among STAC properties, None when they do not say."""
    text = " ".join(str(props.get(k, "")) for k in ("s2:product_type", "product:type",
                                                     "s2:product_uri")).upper()
    if "L1C" in text or "MSI1C" in text:
        return "L1C"
    if "L2A" in text or "MSI2A" in text:
        return "L2A"
    return None


def _baseline_of(props: dict[str, Any]) -> tuple[int, int] | None:
    """The processing baseline among STAC properties, where they carry one."""
    for key in ("s2:processing_baseline", "processing:version", "s2:product_uri"):
        found = parse_baseline(props.get(key))
        if found:
            return found
    return None
