"""The `geolulc change` job: land cover of several dates on one grid, then their differences."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from .aoi import load_aoi
from .atomic import safe_name
from .catalog import parse_date_range
from .change import DateMap, check_comparable, compare, read_map, write_change
from .device import resolve_device
from .errors import GeolulcError
from .inference import Classifier
from .model import Model, load_model
from .pipeline import (
    MapRequest,
    aoi_cells,
    check_scenes,
    chunk_rows_for,
    classify_grid,
    find_scenes,
    masking_for,
    model_for,
    plan_grid,
    restores_toa,
    write_map,
)
from .rasters import PROB_SCALE
from .scenes import Scene, load_scene

log = logging.getLogger(__name__)


def _is_map(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in (".tif", ".tiff")


def _date_maps(req: MapRequest, model: Model, aoi, inputs: list[tuple[str, list[Scene]]],
               device, searched: bool = False) -> list[DateMap]:
    """Classify each date's scenes on one grid (planned from the AOI or the first scene)."""
    grid = plan_grid(req, aoi.geometry if aoi else None, inputs[0][1], model)
    inside = aoi_cells(grid, aoi.geometry if aoi else None)
    classifier = Classifier(model, device, req.batch_size, req.precision)
    maps = []
    for label, scenes in inputs:
        check_scenes(scenes, model, restores_toa(req, model))
        result = classify_grid(scenes, model, grid, inside, classifier, req.min_clear,
                               chunk_rows_for(req, model), req.progress, req.dense,
                               masking=masking_for(dataclasses.replace(
                                   req, date=label if searched else None), model))
        result.require_patches(label)
        write_map(req.out_dir, safe_name(f"{req.name}_{label}"), result, model, scenes, label)
        maps.append(DateMap(label, result.labels,
                            result.probabilities.astype(np.float32) / PROB_SCALE, grid.crs,
                            grid.map_transform, model.name, model.classes, model.colors))
    return maps


def run_change(
    req: MapRequest, dates: list[str], before: Path | None, after: Path | None,
    threshold: float = 0.3, resample: bool = False, vector: bool = False, method: str = "tv",
) -> dict:
    """Maps of every date, then changes between consecutive dates and first → last."""
    if dates and (before or after):
        raise GeolulcError("give either --dates or --before/--after, not both")
    if dates:
        if len(dates) < 2:
            raise GeolulcError("change detection needs at least two dates")
        if req.aoi is None:
            raise GeolulcError("--dates needs --aoi")
        for date in dates:
            parse_date_range(date)
    elif not (before and after):
        raise GeolulcError("give --aoi with --dates D1 D2 [...], or --before and --after")
    aoi = load_aoi(req.aoi, req.max_area_km2) if req.aoi else None
    req = dataclasses.replace(req, name=safe_name(req.name or (aoi.name if aoi else "change")))
    if before and after and _is_map(before) and _is_map(after):
        first = read_map(before)
        maps = [first, check_comparable(first, read_map(after), resample)]
    elif before and after and not _is_map(before) and not _is_map(after):
        inputs = [("before", [load_scene(before)]), ("after", [load_scene(after)])]
        device = resolve_device(req.device)
        model = load_model(model_for(req.model, inputs[0][1] + inputs[1][1]), device)
        maps = _date_maps(req, model, aoi, inputs, device)
    elif before and after:
        raise GeolulcError("--before and --after must both be maps or both be scenes")
    else:
        device = resolve_device(req.device)
        inputs = []
        for date in dates:
            try:
                inputs.append((date, find_scenes(dataclasses.replace(req, date=date),
                                                 aoi.geometry)))
            except GeolulcError as exc:
                raise GeolulcError(f"date {date}: {exc}") from None
        scenes = [s for _, found in inputs for s in found]
        maps = _date_maps(req, load_model(model_for(req.model, scenes), device), aoi, inputs,
                          device, searched=True)
    pairs = list(zip(maps, maps[1:]))
    if len(maps) > 2:
        pairs.append((maps[0], maps[-1]))
    results = []
    for a, b in pairs:
        change = compare(a, b, threshold, method)
        outputs = write_change(req.out_dir, safe_name(f"{req.name}_{a.name}_{b.name}"), a, b,
                               change, vector)
        results.append({"before": a.name, "after": b.name, "outputs": outputs,
                        "changed_cells": int((change.mask == 1).sum()),
                        "valid_cells": int((change.mask != 255).sum())})
    return {"dates": [m.name for m in maps], "model": maps[0].model, "changes": results}
