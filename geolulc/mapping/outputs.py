"""Every file of a map: land cover, confidence, probabilities, count (COGs), stats, style, quicklook."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from affine import Affine

from geolulc._version import __version__
from geolulc.core.legend import land_cover_legend, probability_names
from geolulc.io.atomic import staged_outputs, write_text_atomic
from geolulc.io.quicklook import write_quicklook
from geolulc.io.rasters import (
    LANDCOVER_SUFFIX,
    NODATA,
    PROB_SCALE,
    PROBABILITIES_SUFFIX,
    class_colormap,
    write_cog,
    write_styles,
)
from geolulc.io.rowstore import release
from geolulc.io.scenes import Scene
from geolulc.io.stac_items import Asset, acquisition_days, period_of, raster_band, write_item
from geolulc.io.stats import areas_csv, class_areas
from geolulc.mapping.classification import Classification
from geolulc.models.model import Model

log = logging.getLogger(__name__)


def scene_summary(scenes: list[Scene]) -> list[dict]:
    """What the statistics record of each scene: id, date, level, cloud cover, baseline and offset."""
    return [{"id": s.id, "datetime": s.datetime.isoformat() if s.datetime else None,
             "level": s.level, "cloud_cover": s.cloud_cover,
             "processing_baseline": s.baseline_text, "offset_removed": s.offset}
            for s in scenes]


def write_map(
    out_dir: Path, name: str, result: Classification, model: Model, scenes: list[Scene],
    date: str | None,
) -> tuple[dict[str, str], dict]:
    """All outputs of one map, staged and moved into `out_dir` together."""
    grid = result.grid
    stats = class_areas(result.labels, model.classes, grid.map_transform, grid.crs)
    run_info = {
        "geolulc_version": __version__, "model": model.name, "scenes": scene_summary(scenes),
        "date": date, "crs": grid.crs.to_string(), "transform": list(grid.map_transform)[:6],
        "shape": [grid.rows, grid.cols], "cell_size_m": grid.cell_size, "stride": grid.stride,
        "model_kind": model.kind, "cells_classified": result.patches,
        "cloud_masked_pixels": result.masked_pixels,
        "clear_observations": {"pixels_never_clear": int(np.count_nonzero(result.count == 0)),
                               "mean": round(float(result.count.mean()), 3)},
    }
    tags = {"classes": model.classes, "model": model.name, "scenes": [s.id for s in scenes],
            "geolulc_version": __version__, "date": date or ""}
    colors = model.colors
    probs = np.moveaxis(result.probabilities, 2, 0)  # a view: written band by band below
    files = {}
    with staged_outputs(out_dir, last=LANDCOVER_SUFFIX) as stage:
        files["confidence"] = write_cog(
            stage / f"{name}_confidence.tif", result.confidence, grid.crs, grid.map_transform,
            NODATA, tags={"model": model.name}, unit="percent",
            description="probability of the predicted class (%)", resampling="AVERAGE")
        fine = Affine(grid.resolution, 0, grid.x0, 0, -grid.resolution, grid.y0)
        files["count"] = write_cog(
            stage / f"{name}_count.tif", result.count, grid.crs, fine, None,
            tags={"meaning": "acquisitions with a clear view of the pixel"},
            description="clear observations", resampling="AVERAGE", unit="acquisitions")
        files["probabilities"] = write_cog(
            stage / f"{name}{PROBABILITIES_SUFFIX}", probs, grid.crs, grid.map_transform, NODATA,
            tags={**tags, "scale": f"probability = value / {PROB_SCALE}"},
            description=probability_names(model.classes), resampling="AVERAGE",
            scale=1 / PROB_SCALE,
            nodata_where=result.labels == NODATA)
        release(result.probabilities)  # a file mapping's pages go back to the file
        write_text_atomic(stage / f"{name}_stats.json",
                          json.dumps({**stats, "run": run_info}, indent=2) + "\n")
        files["stats_json"] = stage / f"{name}_stats.json"
        write_text_atomic(stage / f"{name}_stats.csv", areas_csv(stats))
        files["stats_csv"] = stage / f"{name}_stats.csv"
        files["quicklook"] = write_quicklook(
            stage / f"{name}_quicklook.png", result.labels, model.classes, colors,
            title=f"{name} ({model.name})")
        legend = land_cover_legend(model.classes, colors)
        files["landcover"] = write_cog(
            stage / f"{name}{LANDCOVER_SUFFIX}", result.labels, grid.crs, grid.map_transform, NODATA,
            colormap=class_colormap(list(legend.colors)), tags={**tags, **legend.cf_flags()},
            description=legend.description)
        files["qgis_style"] = write_styles(files["landcover"], legend)
        files["item"] = write_map_item(stage, name, files, result, model, scenes, date)
    outputs = {k: str(Path(out_dir) / Path(v).name) for k, v in files.items()}
    return outputs, {**run_info, "stats": stats}


def write_map_item(stage: Path, name: str, files: dict[str, Path], result: Classification,
                   model: Model, scenes: list[Scene], date: str | None) -> Path:
    """The STAC Item of a map's files (`geolulc.io.stac_items`)."""
    grid = result.grid
    classes, colors = model.classes, model.colors
    label = raster_band("uint8", NODATA, name="land cover",
                        legend=land_cover_legend(classes, colors))
    assets = {
        "landcover": Asset(files["landcover"], ["data"], "land cover class", [label]),
        "confidence": Asset(files["confidence"], ["data", "quality"],
                            "probability of the mapped class (%)",
                            [raster_band("uint8", NODATA, unit="percent")]),
        "probabilities": Asset(files["probabilities"], ["data"], "probability of each class",
                               [raster_band("uint8", NODATA, scale=1 / PROB_SCALE, name=band)
                                for band in probability_names(classes)]),
        "count": Asset(files["count"], ["data", "quality"], "clear observations per pixel",
                       [raster_band("uint8", unit="acquisitions")]),
        "quicklook": Asset(files["quicklook"], ["overview", "visual"], "quicklook with legend"),
        "stats_json": Asset(files["stats_json"], ["metadata"], "area per class (JSON)"),
        "stats_csv": Asset(files["stats_csv"], ["metadata"], "area per class (CSV)"),
        "qgis_style": Asset(files["qgis_style"], ["metadata"], "QGIS style of the land cover"),
    }
    acquired = [s.datetime for s in scenes if s.datetime]
    when = period_of(acquired, date, date)  # asked, or seen
    properties = {
        "title": f"{name}: land cover ({model.name})",
        "processing:software": {"geolulc": __version__},
        "geolulc:model": model.name, "geolulc:model_digest": model.digest,
        "geolulc:model_kind": model.kind, "geolulc:date": date or acquisition_days(acquired),
        "geolulc:scenes": [s.id for s in scenes],
        "gsd": grid.cell_size,
    }
    return write_item(stage, name, crs=grid.crs, transform=grid.map_transform,
                      shape_=(grid.rows, grid.cols), valid=result.labels != NODATA, when=when,
                      assets=assets, sources=[s.href for s in scenes if s.href],
                      properties=properties, home=stage.parent)  # staged inside the output folder
