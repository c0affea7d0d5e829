"""The `geolulc change` job: land cover of several dates on one grid, then their differences."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from geolulc.change_detection.detect import Change, DateMap, compare
from geolulc.change_detection.files import check_comparable, read_map, write_change
from geolulc.change_detection.spectral import SPECTRAL_BANDS, check_levels, spectral_change
from geolulc.core.device import resolve_device
from geolulc.core.grid import PatchGrid
from geolulc.errors import GeolulcError
from geolulc.io.aoi import load_aoi
from geolulc.io.atomic import safe_name
from geolulc.io.catalog import parse_date_range
from geolulc.io.rasters import NODATA
from geolulc.io.read import Masking
from geolulc.io.scenes import Scene, load_scene
from geolulc.mapping.cluster import dask_client
from geolulc.mapping.outputs import write_map
from geolulc.mapping.pipeline import aoi_cells, classify_grid
from geolulc.mapping.request import (
    MapRequest,
    check_scenes,
    chunk_rows_for,
    find_scenes,
    masking_for,
    model_for,
    plan_grid,
    restores_toa,
)
from geolulc.models.inference import Classifier
from geolulc.models.model import Model, load_model

log = logging.getLogger(__name__)


def _is_map(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in (".tif", ".tiff")


@dataclass
class DateInput:
    """One date to compare: its label and the scenes that make it."""

    label: str
    scenes: list[Scene]
    searched: bool = False  # found by a search for this date (drives its compositing)


@dataclass
class DatesOnGrid:
    """Every date classified on one grid, with what the spectral comparison needs."""

    maps: list[DateMap]
    inputs: list[DateInput]
    grid: PatchGrid
    inside: np.ndarray  # map cells inside the AOI
    maskings: list[Masking]
    chunk_rows: int
    caches: list = field(default_factory=list)  # chunk caches, kept until the change is written

    def clear_caches(self) -> None:
        """Remove the chunk caches once the change is written (or not wanted)."""
        for cache in self.caches:
            cache.clear()

    def spectral(self, i: int, j: int) -> np.ndarray:
        """Spectral change from date i to date j on the grid (`geolulc.change_detection.spectral`)."""
        return spectral_change(self.inputs[i].scenes, self.inputs[j].scenes, self.grid,
                               (self.maskings[i], self.maskings[j]), self.chunk_rows,
                               self.inside)


def classify_dates(req: MapRequest, model: Model, aoi, inputs: list[DateInput], device,
                   write: bool = True, cache: bool = True) -> DatesOnGrid:
    """Classify each date's scenes on one grid, resumably and on Dask as `map` does.

    The grid is planned from the AOI or the first date's scenes; with `write`, each date's map is
    written too.
    """
    grid = plan_grid(req, aoi.geometry if aoi else None, inputs[0].scenes, model)
    inside = aoi_cells(grid, aoi.geometry if aoi else None)
    classifier = Classifier(model, device, req.batch_size, req.precision, req.engine)
    chunk_rows = chunk_rows_for(req, model, grid)
    maps, maskings, caches = [], [], []
    with dask_client(req) as client:
        for date in inputs:
            check_scenes(date.scenes, model, restores_toa(req, model))
            masking = masking_for(dataclasses.replace(
                req, date=date.label if date.searched else None), model)
            result = classify_grid(date.scenes, model, grid, inside, classifier, req.min_clear,
                                   chunk_rows, req.progress, req.dense,
                                   cache_root=req.out_dir if cache else None, client=client,
                                   worker_device=req.device, masking=masking,
                                   worker_batch=req.batch_size)
            result.require_patches(date.label)
            if write:
                write_map(req.out_dir, safe_name(f"{req.name}_{date.label}"), result, model,
                          date.scenes, date.label)
            caches += [result.cache] if result.cache else []
            maskings.append(masking)
            maps.append(DateMap(date.label, result.labels, result.probabilities, grid.crs,
                                grid.map_transform, model.name, model.classes, model.colors))
    return DatesOnGrid(maps, inputs, grid, inside, maskings, chunk_rows, caches)


def compare_dates(dates: DatesOnGrid, i: int, j: int, threshold: float | None,
                  method: str) -> Change:
    """Change from date i to date j.

    `combined` reads both dates' reflectance for the spectral score (see
    `geolulc.change_detection.spectral`); the land-cover-only methods use the maps alone.
    """
    spectral = dates.spectral(i, j) if method == "combined" else None
    return compare(dates.maps[i], dates.maps[j], threshold, method, spectral)


def require_overlap(change: Change, before: DateMap, after: DateMap) -> None:
    """Fail when two dates share no clear pixel, rather than report an empty change."""
    if not (change.mask != NODATA).any():
        raise GeolulcError(f"{before.name} and {after.name} have no clear pixel in common: "
                           "there is nothing to compare")


def resolve_method(method: str, scenes: list[Scene] | None) -> str:
    """The change method to use, checked before any work starts.

    `auto`: combined where the scenes (with the spectral bands) are at hand, tv for maps.
    """
    if scenes is None:
        if method == "combined":
            raise GeolulcError("--method combined needs scenes (maps carry no reflectance): "
                               "give --before/--after scenes or --dates, or use --method tv")
        return "tv" if method == "auto" else method
    lacking = sorted({b for s in scenes for b in SPECTRAL_BANDS if b not in s.bands})
    if lacking and method in ("auto", "combined"):
        message = (f"the scenes lack band(s) {', '.join(lacking)} of the spectral change "
                   f"({' '.join(SPECTRAL_BANDS)})")
        if method == "combined":
            raise GeolulcError(message)
        log.warning("%s: change from the land cover only (--method tv)", message)
        return "tv"
    if method == "auto":
        method = "combined"
    if method == "combined":
        check_levels(scenes)
    return method


@dataclass
class DatePair:
    """The change from one date to another, with both dates' maps."""

    before: DateMap
    after: DateMap
    change: Change


@dataclass
class ChangeSet:
    """Every compared pair of a change job, and the chunk caches that let it resume.

    The pairs are consecutive dates, and first → last for more than two; the caches let an
    interrupted job resume until it is written.
    """

    pairs: list[DatePair]
    dates: list[str]
    model: str
    name: str  # stem of the output files: the request's name, the AOI's, or "change"
    on_grid: DatesOnGrid | None = None

    def clear_caches(self) -> None:
        """Remove the dates' chunk caches once the change is written."""
        if self.on_grid:
            self.on_grid.clear_caches()


def _search(req: MapRequest, date: str, aoi) -> list[Scene]:
    try:
        return find_scenes(dataclasses.replace(req, date=date), aoi.geometry)
    except GeolulcError as exc:
        raise GeolulcError(f"date {date}: {exc}") from None


def detect_changes(
    req: MapRequest, dates: list[str], before: Path | None, after: Path | None,
    threshold: float | None = None, resample: bool = False, method: str = "auto",
    write_maps: bool = True, cache: bool = True,
) -> ChangeSet:
    """Classify every date on one grid and compare consecutive dates and first → last.

    Each date's map is written with `write_maps`; nothing of the change itself is written.
    """
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
    on_grid = None
    if before and after and _is_map(before) and _is_map(after):
        method = resolve_method(method, None)
        first = read_map(before)
        maps = [first, check_comparable(first, read_map(after), resample)]
    else:
        if before and after and (_is_map(before) or _is_map(after)):
            scene = after if _is_map(before) else before
            load_scene(scene)  # not a scene either: its own one-line error says what it is not
            raise GeolulcError(f"{before} and {after} must both be land-cover maps or both be "
                               f"scenes; {scene} is a scene")
        device = resolve_device(req.device)
        inputs = ([DateInput("before", [load_scene(before)]),
                   DateInput("after", [load_scene(after)])] if before
                  else [DateInput(date, _search(req, date, aoi), searched=True)
                        for date in dates])
        scenes = [s for date in inputs for s in date.scenes]
        method = resolve_method(method, scenes)
        model = load_model(model_for(req.model, scenes), device)
        on_grid = classify_dates(req, model, aoi, inputs, device, write_maps, cache)
        maps = on_grid.maps
    pairs = [(i, i + 1) for i in range(len(maps) - 1)]
    if len(maps) > 2:
        pairs.append((0, len(maps) - 1))
    found = []
    for i, j in pairs:
        change = (compare_dates(on_grid, i, j, threshold, method) if on_grid
                  else compare(maps[i], maps[j], threshold, method))
        require_overlap(change, maps[i], maps[j])
        found.append(DatePair(maps[i], maps[j], change))
    return ChangeSet(found, [m.name for m in maps], maps[0].model, req.name, on_grid)


def run_change(
    req: MapRequest, dates: list[str], before: Path | None, after: Path | None,
    threshold: float | None = None, resample: bool = False, vector: bool = False,
    method: str = "auto",
) -> dict:
    """`geolulc change`: maps of every date, the changes between them, all written."""
    found = detect_changes(req, dates, before, after, threshold, resample, method)
    results = []
    for pair in found.pairs:
        a, b, change = pair.before, pair.after, pair.change
        outputs = write_change(req.out_dir, safe_name(f"{found.name}_{a.name}_{b.name}"), a, b,
                               change, vector)
        results.append({"before": a.name, "after": b.name, "method": change.method,
                        "threshold": change.threshold, "outputs": outputs,
                        "changed_cells": int((change.mask == 1).sum()),
                        "valid_cells": int((change.mask != NODATA).sum())})
    found.clear_caches()
    return {"dates": found.dates, "model": found.model, "changes": results}
