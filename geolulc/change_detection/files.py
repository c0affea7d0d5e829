"""Change on disk: reading maps written by `map`, regridding them and writing change outputs.

Reading land-cover maps written by `map` (with their probabilities), putting one onto the grid
of another, and writing every output of a change (COGs, CSV, JSON, PNG, GeoPackage).
"""

from __future__ import annotations

import json
import logging
import warnings
from datetime import datetime
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from PIL import Image
from pyproj import CRS
from rasterio.enums import Resampling
from rasterio.warp import reproject

from geolulc._version import __version__
from geolulc.change_detection.detect import Change, DateMap
from geolulc.core.legend import CHANGE_LEGEND, Legend, fromto_legend
from geolulc.errors import DataError, FallbackWarning, NoDataError, ReadError
from geolulc.io.atomic import atomic_path, staged_outputs, write_text_atomic
from geolulc.io.blocks import row_blocks
from geolulc.io.quicklook import render_labels
from geolulc.io.rasters import (
    LANDCOVER_SUFFIX,
    NODATA,
    PROBABILITIES_SUFFIX,
    class_colormap,
    write_cog,
    write_styles,
)
from geolulc.io.stac_items import Asset, item_dates, period_of, raster_band, write_item

log = logging.getLogger(__name__)


def one_hot(labels: np.ndarray, k: int) -> np.ndarray:
    """Probabilities of a map that has only labels: 1 for the mapped class."""
    probs = np.zeros((*labels.shape, k), dtype=np.float32)
    rows, cols = np.nonzero(labels != NODATA)
    probs[rows, cols, labels[rows, cols]] = 1.0
    return probs


def read_map(path: Path) -> DateMap:
    """A land-cover GeoTIFF written by geolulc, with its probabilities when they lie beside it."""
    try:
        with rasterio.open(path) as src:
            tags = src.tags()
            labels = src.read(1)
            crs, transform = CRS.from_user_input(src.crs), src.transform
            cmap = src.colormap(1) if "classes" in tags else {}
    except rasterio.errors.RasterioError as exc:
        raise ReadError(f"cannot read map {path}: {str(exc).splitlines()[0]}") from None
    if "classes" not in tags or "model" not in tags:
        raise DataError(f"{path} is not a land-cover map written by geolulc (no class tags)")
    classes = json.loads(tags["classes"])
    colors = [tuple(cmap.get(i, (128, 128, 128, 255))[:3]) for i in range(len(classes))]
    prob_path = Path(str(path).replace(LANDCOVER_SUFFIX, PROBABILITIES_SUFFIX))
    if prob_path != path and prob_path.exists():
        try:
            with rasterio.open(prob_path) as src:
                if src.count != len(classes) or src.dtypes[0] != "uint8":
                    raise DataError(f"{prob_path} holds {src.count} {src.dtypes[0]} bands, not "
                                       f"the {len(classes)} uint8 class probabilities of {path}")
                probs = np.moveaxis(src.read(), 0, 2)  # × PROB_SCALE
        except rasterio.errors.RasterioError as exc:
            raise ReadError(f"cannot read {prob_path}: {str(exc).splitlines()[0]}") from None
        if probs.shape[:2] != labels.shape:
            raise DataError(f"{prob_path} does not lie on the grid of {path}")
        probs[labels == NODATA] = 0
    else:
        warnings.warn(f"{path} has no probabilities beside it; change probability is 0 or 1",
                      FallbackWarning, stacklevel=2)
        probs = one_hot(labels, len(classes))
    name = Path(path).name.removesuffix(LANDCOVER_SUFFIX).removesuffix(".tif")
    return DateMap(name, labels, probs, crs, transform, tags["model"], classes, colors)


def resample_onto(source: DateMap, target: DateMap) -> DateMap:
    """`source` on the grid of `target` (nearest neighbour: classes are categories)."""
    shape = target.labels.shape
    labels = np.full(shape, NODATA, dtype=np.uint8)
    reproject(source.labels, labels, src_transform=source.transform, src_crs=source.crs.to_wkt(),
              dst_transform=target.transform, dst_crs=target.crs.to_wkt(), src_nodata=NODATA,
              dst_nodata=NODATA, resampling=Resampling.nearest)
    probs = np.zeros((*shape, source.probabilities.shape[2]), dtype=source.probabilities.dtype)
    for i in range(probs.shape[2]):
        band = np.zeros(shape, dtype=probs.dtype)
        reproject(source.probabilities[..., i], band, src_transform=source.transform,
                  src_crs=source.crs.to_wkt(), dst_transform=target.transform,
                  dst_crs=target.crs.to_wkt(), resampling=Resampling.nearest)
        probs[..., i] = band
    probs[labels == NODATA] = 0
    return DateMap(source.name, labels, probs, target.crs, target.transform, source.model,
                   source.classes, source.colors)


def check_comparable(before: DateMap, after: DateMap, resample: bool) -> DateMap:
    """Refuse maps of different models; different grids only when asked to resample."""
    if before.model != after.model or before.classes != after.classes:
        raise DataError(f"maps were made with different models ({before.model} and "
                           f"{after.model}); compare maps of one model")
    same_grid = (before.crs == after.crs and before.transform.almost_equals(after.transform)
                 and before.labels.shape == after.labels.shape)
    if same_grid:
        return after
    if not resample:
        raise DataError("the maps lie on different grids (CRS, pixel size or extent); "
                           "pass `resample` to resample the second onto the first")
    resampled = resample_onto(after, before)
    if not ((resampled.labels != NODATA) & (before.labels != NODATA)).any():
        raise NoDataError("the two maps do not overlap: there is nothing to compare")
    return resampled


def transitions(change: Change, classes: list[str], cell_area_m2: float) -> list[dict]:
    """Area of each (before, after) pair that occurs, largest first."""
    k = len(classes)
    counts = np.bincount(change.fromto[change.fromto != NODATA].ravel(), minlength=k * k)
    rows = [{"code": int(code), "before": classes[code // k], "after": classes[code % k],
             "changed": code // k != code % k, "pixels": int(n),
             "area_km2": round(float(n) * cell_area_m2 / 1e6, 4)}
            for code, n in enumerate(counts) if n]
    return sorted(rows, key=lambda r: -r["pixels"])


def transition_matrix_csv(change: Change, classes: list[str], cell_area_m2: float) -> str:
    """The from-to transition matrix as CSV: km² of each class before (rows) and after (columns)."""
    k = len(classes)
    counts = np.bincount(change.fromto[change.fromto != NODATA].ravel(),
                         minlength=k * k).reshape(k, k)
    lines = ["before \\ after (km²)," + ",".join(classes)]
    for name, row in zip(classes, counts):
        lines.append(name + "," + ",".join(f"{n * cell_area_m2 / 1e6:.4f}" for n in row))
    return "\n".join(lines) + "\n"


def _side_by_side(path: Path, before: DateMap, after: DateMap, change: Change) -> None:
    colors = before.colors
    panels = [render_labels(before.labels, colors, 400), render_labels(after.labels, colors, 400),
              render_labels(change.mask, list(CHANGE_LEGEND.colors), 400)]  # subsampled first
    width = sum(p.width for p in panels) + 40
    canvas = Image.new("RGB", (width, max(p.height for p in panels) + 20), (255, 255, 255))
    x = 10
    for panel in panels:
        canvas.paste(panel, (x, 10))
        x += panel.width + 10
    with atomic_path(path) as tmp:
        canvas.save(tmp, format="PNG")


def write_change(
    out_dir: Path, name: str, before: DateMap, after: DateMap, change: Change,
    vector: bool = False, sources: list[str] | None = None,
    acquired: list[datetime] | None = None,
) -> dict[str, str]:
    """All change outputs for one pair of dates, staged and moved into `out_dir` together.

    `sources` are the hrefs of the dates' maps (their STAC Items) and `acquired` the times of
    their scenes, for the change's own Item.
    """
    classes, crs, transform = before.classes, before.crs, before.transform
    cell_area = abs(transform.a * transform.e)
    occurring = transitions(change, classes, cell_area)
    changed_px = int(np.count_nonzero(change.mask == 1))
    valid_px = int(np.count_nonzero(change.mask != NODATA))
    summary = {
        "before": before.name, "after": after.name, "model": before.model,
        "method": change.method, "threshold": change.threshold,
        "valid_km2": round(valid_px * cell_area / 1e6, 4),
        "changed_km2": round(changed_px * cell_area / 1e6, 4),
        "changed_percent": round(100 * changed_px / valid_px, 2) if valid_px else 0.0,
        "transitions": occurring,
    }
    legend = {str(t["code"]): f"{t['before']} → {t['after']}" for t in occurring}
    prob = np.empty(change.probability.shape, dtype=np.uint8)
    for rows in row_blocks(prob.shape, 1 << 20):  # percent, without whole-grid float temporaries
        p = change.probability[rows]
        prob[rows] = np.where(np.isnan(p), NODATA, np.round(np.nan_to_num(p) * 100))
    files = {}
    with staged_outputs(out_dir, last="_change.json") as stage:
        fromto = fromto_legend(classes, before.colors)
        files["fromto"] = write_cog(
            stage / f"{name}_fromto.tif", change.fromto, crs, transform, NODATA,
            colormap=class_colormap(list(fromto.colors)),
            tags={"classes": classes, "model": before.model, "legend": legend,
                  "code": f"before * {len(classes)} + after", **fromto.cf_flags()},
            description=fromto.description)
        files["change_mask"] = write_cog(
            stage / f"{name}_changemask.tif", change.mask, crs, transform, NODATA,
            colormap=class_colormap(list(CHANGE_LEGEND.colors)),
            tags={"threshold": str(change.threshold), **CHANGE_LEGEND.cf_flags()},
            description=CHANGE_LEGEND.description)
        # names and colours of every code, for GDAL, ArcGIS (attribute table) and QGIS (style)
        files["fromto_style"] = write_styles(files["fromto"], fromto)
        files["change_mask_style"] = write_styles(files["change_mask"], CHANGE_LEGEND)
        files["change_probability"] = write_cog(
            stage / f"{name}_changeprob.tif", prob, crs, transform, NODATA,
            tags={"method": change.method}, unit="percent",
            description=f"change probability (%, {change.method})",
            resampling="AVERAGE")
        write_text_atomic(stage / f"{name}_transitions.csv",
                          transition_matrix_csv(change, classes, cell_area))
        files["transitions_csv"] = stage / f"{name}_transitions.csv"
        _side_by_side(stage / f"{name}_change.png", before, after, change)
        files["png"] = stage / f"{name}_change.png"
        if vector:
            files["vector"] = write_change_polygons(stage / f"{name}_changes.gpkg", change,
                                                    classes, crs, transform)
        write_text_atomic(stage / f"{name}_change.json", json.dumps(summary, indent=2) + "\n")
        files["summary"] = stage / f"{name}_change.json"
        files["item"] = _write_change_item(stage, name, files, before, after, change, fromto,
                                           sources or [], acquired or [])
    return {k: str(Path(out_dir) / Path(v).name) for k, v in files.items()}


def write_change_polygons(path: Path, change: Change, classes: list[str], crs: CRS,
                          transform: Affine) -> Path:
    """Changed cells as polygons (one per connected area of one transition) in a GeoPackage.

    A polygon whose class is the same on both dates (built → built) changed by the change
    probability of `change.method` (the class probabilities or the reflectance moved: a new
    building, a cut field) without the mapped class changing; its `kind` says so.
    """
    import geopandas as gpd
    from rasterio.features import shapes
    from shapely.geometry import shape

    k = len(classes)
    codes = np.where(change.mask == 1, change.fromto, NODATA).astype(np.uint8)
    records = [(shape(geom), int(code)) for geom, code in
               shapes(codes, mask=codes != NODATA, transform=transform)]
    frame = gpd.GeoDataFrame({
        "transition": [f"{classes[c // k]} → {classes[c % k]}" for _, c in records],
        "before": [classes[c // k] for _, c in records],
        "after": [classes[c % k] for _, c in records],
        "kind": ["class changed" if c // k != c % k else
                 f"same class, changed by {change.method} change probability" for _, c in records],
        "area_km2": [g.area / 1e6 for g, _ in records],
    }, geometry=[g for g, _ in records], crs=crs.to_wkt())
    frame.to_file(path, driver="GPKG", layer="changes")  # `path` is inside the staging folder
    return path


def _write_change_item(stage: Path, name: str, files: dict[str, Path], before: DateMap,
                       after: DateMap, change: Change, fromto: Legend, sources: list[str],
                       acquired: list[datetime]) -> Path:
    """The STAC Item of one change's files (`geolulc.io.stac_items`), in the rasters' legends."""
    roles = {"fromto": ["data"], "change_mask": ["data"], "change_probability": ["data"],
             "transitions_csv": ["metadata"], "png": ["overview", "visual"],
             "summary": ["metadata"], "vector": ["data"], "fromto_style": ["metadata"],
             "change_mask_style": ["metadata"]}
    titles = {"fromto": f"from-to class (before × {len(before.classes)} + after)",
              "change_mask": "change mask (0 no change, 1 change)",
              "change_probability": f"change probability (%, {change.method})",
              "transitions_csv": "transition matrix (km²)", "png": "before, after and change",
              "summary": "change summary", "vector": "change polygons",
              "fromto_style": "QGIS style of the from-to classes",
              "change_mask_style": "QGIS style of the change mask"}
    # the legends the rasters' colour tables come from: one source for COG, QML, RAT and STAC
    bands = {"fromto": [raster_band("uint8", NODATA, legend=fromto)],
             "change_mask": [raster_band("uint8", NODATA, legend=CHANGE_LEGEND)],
             "change_probability": [raster_band("uint8", NODATA, unit="percent")]}
    assets = {key: Asset(path, roles[key], titles[key], bands.get(key))
              for key, path in files.items()}
    # the dates asked, else the scenes' acquisitions, else the periods of the maps compared
    when = period_of(acquired or item_dates(sources), before.name, after.name)
    properties = {
        "title": f"{name}: land-cover change {before.name} → {after.name} ({before.model})",
        "processing:software": {"geolulc": __version__}, "geolulc:model": before.model,
        "geolulc:before": before.name, "geolulc:after": after.name,
        "geolulc:change_method": change.method, "geolulc:threshold": change.threshold,
    }
    return write_item(stage, name, crs=before.crs, transform=before.transform,
                      shape_=change.mask.shape, valid=change.mask != NODATA, when=when,
                      assets=assets, sources=sources, properties=properties,
                      home=stage.parent)  # staged inside the output folder
