"""The mapping job: AOI → scenes → pixels → patches → predictions → rasters."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rasterio.features import geometry_mask
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry
from tqdm import tqdm

from geolulc.core.device import resolve_device
from geolulc.core.grid import PatchGrid, project_geometry
from geolulc.defaults import PROBABILITY_COMPOSITES
from geolulc.errors import AssumptionWarning, DataError, NoDataError, ParameterError
from geolulc.io.aoi import AOI, load_aoi
from geolulc.io.atomic import remove_stale_staging, safe_name
from geolulc.io.catalog import parse_date_range, select_covering
from geolulc.io.rasters import (
    PROB_SCALE,
)
from geolulc.io.read import Masking, StackReader, acquisitions
from geolulc.io.scenes import Scene, load_scene
from geolulc.mapping.chunks import (
    CACHE_FOLDER,
    ChunkCache,
    ChunkJob,
    ChunkResult,
    job_key,
    run_dask,
    run_local,
)
from geolulc.mapping.classification import Assembly, ChunkSink, ChunkTotals, Classification
from geolulc.mapping.cluster import dask_client
from geolulc.mapping.composite import MAX_COMPOSITE_ACQUISITIONS, ProbabilityComposite
from geolulc.mapping.dense import supports
from geolulc.mapping.outputs import write_map
from geolulc.mapping.request import (
    MapRequest,
    check_scenes,
    check_trust,
    chunk_rows_for,
    composite_mode,
    find_scenes,
    masking_for,
    model_for,
    plan_grid,
    restores_toa,
)
from geolulc.models.inference import Classifier
from geolulc.models.model import DEFAULT_MODEL, Model, load_model, resolve_model_path

if TYPE_CHECKING:
    import torch
    import xarray
    from distributed import Client

log = logging.getLogger(__name__)

#: Above this many pixels, mapping a scene without an AOI says so (a whole tile is 120 M).
WHOLE_SCENE_NOTICE_PIXELS = 10_000_000


def aoi_cells(grid: PatchGrid, aoi_geometry: BaseGeometry | None) -> np.ndarray:
    """Cells touching the AOI polygon (all of them without an AOI).

    Without an AOI it is one True seen as the grid (read-only, no memory: a whole tile's mask
    would be 120 MB).
    """
    if aoi_geometry is None:
        return np.broadcast_to(np.True_, (grid.rows, grid.cols))
    return ~geometry_mask([mapping(project_geometry(aoi_geometry, grid.crs))],
                          (grid.rows, grid.cols), grid.map_transform, all_touched=True)


def classify_grid(
    scenes: list[Scene], model: Model, grid: PatchGrid, inside: np.ndarray,
    classifier: Classifier, min_clear: float = 0.5, chunk_rows: int = 8, progress: bool = True,
    dense: bool = True, cache_root: Path | None = None, client: Client | None = None,
    worker_device: str = "auto", masking: Masking | None = None, worker_batch: int | None = None,
) -> Classification:
    """Classify the grid chunk by chunk (`fold_grid`) and put the chunks together."""
    assembly = Assembly(grid, len(model.classes), cached=cache_root is not None)
    totals = fold_grid(assembly, scenes, model, grid, inside, classifier, min_clear, chunk_rows,
                       progress, dense, cache_root, client, worker_device, masking, worker_batch)
    return assembly.classification(totals)


def fold_grid(
    sink: ChunkSink, scenes: list[Scene], model: Model, grid: PatchGrid, inside: np.ndarray,
    classifier: Classifier, min_clear: float = 0.5, chunk_rows: int = 8, progress: bool = True,
    dense: bool = True, cache_root: Path | None = None, client: Client | None = None,
    worker_device: str = "auto", masking: Masking | None = None, worker_batch: int | None = None,
) -> ChunkTotals:
    """Classify the grid chunk by chunk, in this process or on a Dask `client`, into `sink`.

    Each chunk goes to the sink as it is finished, so what stays in memory is the sink's: a
    map's whole-grid arrays, or a composite's running sums (no acquisition held whole).
    With `dense` (strides below the patch size), each chunk is classified fully convolutionally
    instead of patch by patch, sharing the work of overlapping windows. With `cache_root`,
    finished chunks are kept there until the map is written, and a rerun resumes from them.
    """
    dense = dense and model.kind == "classifier" and supports(model, grid.stride)
    job = ChunkJob(scenes, model.bands, grid, inside, min_clear, dense, chunk_rows,
                   masking or Masking())
    timings = {"read": 0.0, "patch": 0.0, "classify": 0.0}
    n_patches = masked_px = 0
    cache = (ChunkCache(cache_root, job_key(job, model), (grid.rows, grid.cols,
                                                          len(model.classes)))
             if cache_root else None)
    done = [row0 for row0 in job.starts if cache.get(row0) is not None] if cache else []
    if done:
        log.info("resuming: %d of %d chunks already done", len(done), len(job.starts))
    finished = set(done)
    todo = [row0 for row0 in job.starts if row0 not in finished]
    if todo:
        job.with_cloud_masks()
    if client is not None:
        fresh = run_dask(job, todo, model, client, worker_device, worker_batch,
                         classifier.precision, classifier.engine)
    else:
        fresh = run_local(job, todo, model, classifier)
    with tqdm(total=grid.rows * grid.cols, unit="cell", desc="mapping",
              disable=not progress) as bar:
        for result in itertools.chain(_resumed(cache, done), fresh):  # cached as each finishes
            if cache and result.row0 not in finished:
                cache.put(result)
            sink.add_chunk(result)
            n_patches += result.cells
            masked_px += result.masked
            for stage, seconds in result.timings.items():
                timings[stage] += seconds
            bar.update(min(chunk_rows, grid.rows - result.row0) * grid.cols)
            bar.set_postfix(classified=n_patches)
    return ChunkTotals(n_patches, masked_px, timings, cache)


def _resumed(cache: ChunkCache | None, done: list[int]) -> Iterator[ChunkResult]:
    """The chunks found done, read again one at a time (not all held while the rest run)."""
    if cache is None:
        return
    for row0 in done:
        result = cache.get(row0)
        if result is None:
            raise DataError(f"the chunk cache {cache.dir} changed while this run resumed from "
                            "it: run again")
        yield result


@dataclass
class LandCover:
    """A classified area in memory: labels and probabilities on their grid, with their sources.

    The model and scenes they came from are kept with them. `geolulc.write` turns it into files.
    """

    result: Classification
    model: Model
    scenes: list[Scene]
    date: str | None
    name: str  # default stem of the output files
    caches: list[ChunkCache] = field(default_factory=list)  # a composite's acquisitions' caches

    @property
    def grid(self) -> PatchGrid:
        """The map's `PatchGrid`: its CRS, its cells and the patches they were classified from."""
        return self.result.grid

    @property
    def labels(self) -> np.ndarray:
        """uint8 class codes (rows, cols), NODATA (255) where nothing was classified."""
        return self.result.labels

    @property
    def probabilities(self) -> np.ndarray:
        """float32 (rows, cols, classes), 0 where nothing was classified."""
        return self.result.probabilities.astype(np.float32) / PROB_SCALE

    @property
    def classes(self) -> list[str]:
        """Class names, in the order of the codes and of the probabilities' last axis."""
        return self.model.classes

    def to_xarray(self) -> xarray.Dataset:
        """The map as an `xarray.Dataset` that rioxarray reads (needs the `xarray` extra).

        `labels` and `confidence` (uint8, 255 = no data), `probabilities` (float32, class × y
        × x, NaN = no data) at the cells' centres, the CRS as a `spatial_ref` coordinate; the
        classes, their colours, the model and its digest, the date and the scenes as attributes
        (see `geolulc.io.xarrays`).
        """
        from geolulc.io.xarrays import land_cover_dataset

        grid = self.grid
        return land_cover_dataset(
            labels=self.labels, confidence=self.result.confidence,
            probabilities=self.probabilities, classes=self.classes, colors=self.model.colors,
            crs=grid.crs, transform=grid.map_transform,
            attrs={"model": self.model.name, "model_digest": self.model.digest, "date": self.date,
                   "scenes": [s.id for s in self.scenes],
                   "acquired": [s.datetime.isoformat() for s in self.scenes if s.datetime]})


def check_scene_dates(scenes: list[Scene], date: str) -> None:
    """Local scenes given with a date must have been acquired in that period.

    The date names the map and its statistics, so a scene from another year is refused, not
    relabelled.
    """
    start, end = (datetime.fromisoformat(t.replace("Z", "+00:00")).date()
                  for t in parse_date_range(date).split("/"))
    for scene in scenes:
        if scene.datetime is None:
            warnings.warn(f"scene {scene.id} has no acquisition date to check against {date}",
                          AssumptionWarning, stacklevel=2)
        elif not start <= scene.datetime.date() <= end:
            raise ParameterError(f"scene {scene.id} was acquired on {scene.datetime.date()}, "
                               f"outside the date {date} it was given with")


@dataclass
class DateInput:
    """One date to classify: its label and the scenes that make it."""

    label: str
    scenes: list[Scene]
    searched: bool = False  # found by a search for this date (drives its compositing)


@dataclass
class OnGrid:
    """Every date classified on one grid, with what a comparison of the dates needs."""

    results: list[Classification]
    inputs: list[DateInput]
    grid: PatchGrid
    inside: np.ndarray  # map cells inside the AOI
    maskings: list[Masking]
    chunk_rows: int

    def clear_caches(self) -> None:
        """Remove the chunk caches once what they make is written."""
        for result in self.results:
            if result.cache:
                result.cache.clear()


@dataclass
class _Plan:
    """The grid of a job and what classifying any date on it needs."""

    grid: PatchGrid
    inside: np.ndarray
    classifier: Classifier
    chunk_rows: int


def _plan(req: MapRequest, model: Model, aoi: AOI | None, inputs: list[DateInput],
          device: torch.device) -> _Plan:
    """The grid, planned from the AOI or the first date's scenes, and the classifier."""
    grid = plan_grid(req, aoi.geometry if aoi else None, inputs[0].scenes, model)
    log.info("grid %s: %d×%d cells of %.0f m, %d date(s)", grid.crs.to_string(), grid.rows,
             grid.cols, grid.cell_size, len(inputs))
    pixels = grid.read_shape[0] * grid.read_shape[1]
    if aoi is None and pixels > WHOLE_SCENE_NOTICE_PIXELS:  # a long job nobody asked for by name
        log.warning("no AOI: mapping the whole of %s, %.0f km² (%.0f M pixels); give an AOI to "
                    "map less", inputs[0].scenes[0].id, pixels * grid.resolution ** 2 / 1e6,
                    pixels / 1e6)
    return _Plan(grid, aoi_cells(grid, aoi.geometry if aoi else None),
                 Classifier(model, device, req.batch_size, req.precision, req.engine),
                 chunk_rows_for(req, model, grid))


def _classify_date(req: MapRequest, model: Model, plan: _Plan, date: DateInput,
                   client: Client | None, cache: bool) -> tuple[Classification, Masking]:
    """One date's scenes classified on the plan's grid, chunk by chunk and resumably."""
    assembly = Assembly(plan.grid, len(model.classes), cached=cache)
    totals, masking = _fold_date(req, model, plan, date, client, cache, assembly)
    return assembly.classification(totals), masking


def _fold_date(req: MapRequest, model: Model, plan: _Plan, date: DateInput,
               client: Client | None, cache: bool, sink: ChunkSink) -> tuple[ChunkTotals, Masking]:
    """One date's scenes classified on the plan's grid into `sink`; no clear cell is an error."""
    check_scenes(date.scenes, model, restores_toa(req, model))
    masking = masking_for(dataclasses.replace(
        req, date=date.label if date.searched else None), model)
    totals = fold_grid(sink, date.scenes, model, plan.grid, plan.inside, plan.classifier,
                       req.min_clear, plan.chunk_rows, req.progress, req.dense,
                       cache_root=req.out_dir if cache else None, client=client,
                       worker_device=req.device, masking=masking,
                       worker_batch=req.batch_size)
    try:
        totals.require_patches(date.label)
    except NoDataError:
        with StackReader(date.scenes, model.bands, plan.grid, masking) as reader:
            empty = reader.empty_bands()
        if empty:
            said = "; ".join(f"scene {scene}: {', '.join(bands)}" for scene, bands in empty.items())
            raise NoDataError(f"{date.label}: band(s) holding no data (0) on every pixel of the "
                              f"area, so nothing can be classified: {said}") from None
        raise
    return totals, masking


def classify_on_grid(req: MapRequest, model: Model, aoi: AOI | None, inputs: list[DateInput],
                     device: torch.device, cache: bool = True) -> OnGrid:
    """Classify each date's scenes on one grid: the one classification path of `map` and `change`.

    The grid is planned from the AOI or the first date's scenes; classification runs chunk by chunk,
    resumably (`cache`: finished chunks kept in `req.out_dir`) and on Dask where asked, for `map`
    (one date) and `change` (several).
    """
    plan = _plan(req, model, aoi, inputs, device)
    results, maskings = [], []
    with dask_client(req) as client:
        for date in inputs:
            result, masking = _classify_date(req, model, plan, date, client, cache)
            results.append(result)
            maskings.append(masking)
    return OnGrid(results, inputs, plan.grid, plan.inside, maskings, plan.chunk_rows)


#: What a series does with each acquisition's classification as it is made (write its map):
#: called with the map's name, the model, the acquisition and its classification.
EachAcquisition = Callable[[str, Model, DateInput, Classification], None]


def classify_acquisitions(req: MapRequest, model: Model, aoi: AOI | None,
                          inputs: list[DateInput], device: torch.device, cache: bool,
                          method: str | None, each: Callable[[DateInput, Classification], None]
                          | None = None) -> tuple[Classification | None, list[ChunkCache]]:
    """Classify every acquisition on one grid, one at a time, and composite their probabilities.

    `method` is mean-probability or mode (None: no composite, for a series of a reflectance
    composite); `each` sees every acquisition's classification as it is made. Acquisitions with
    no clear cell are skipped. Without `each`, each chunk is folded into the running sums as
    it is classified, so no acquisition is ever held whole; with it, one at a time is.
    """
    plan = _plan(req, model, aoi, inputs, device)
    composite = (ProbabilityComposite(plan.grid, len(model.classes), method,
                                      model.card.label_groups,
                                      Path(req.out_dir) / CACHE_FOLDER if cache else None)
                 if method else None)
    caches, clear = [], 0
    with dask_client(req) as client:
        for date in inputs:
            try:
                if each is None and composite is not None:  # folded in chunk by chunk
                    totals, _ = _fold_date(req, model, plan, date, client, cache, composite)
                    composite.add_totals(totals)
                    cache_of = totals.cache
                else:
                    result, _ = _classify_date(req, model, plan, date, client, cache)
                    if each is not None:
                        each(date, result)
                    if composite is not None:
                        composite.add(result)
                    cache_of = result.cache
            except NoDataError:
                log.info("acquisition %s: no clear cell, skipped", date.label)
                continue
            clear += 1
            if cache_of:
                caches.append(cache_of)
    if not clear:
        raise NoDataError(f"none of the {len(inputs)} acquisition(s) of {req.date or 'the scenes'}"
                          " has a clear view of the area")
    log.info("%s composite of %d acquisition(s)", method or "series", clear)
    return (composite.result() if composite else None), caches


def classify_request(req: MapRequest, cache: bool = True,
                     each: EachAcquisition | None = None) -> LandCover:
    """Search (or load) the scenes, read them and classify the area.

    Nothing is written but the chunk cache in `req.out_dir` (when `cache`), which lets an
    interrupted run resume. With `req.series`, `each` gets every acquisition's classification.
    """
    if req.series and each is None:
        raise ParameterError("`series` writes one map per acquisition: use `make_map`")
    if req.date:
        parse_date_range(req.date)  # the user's input is checked before any work starts
    aoi = load_aoi(req.aoi, req.max_area_km2) if req.aoi is not None else None
    local = [load_scene(p) for p in req.scenes]
    if local and req.date:
        check_scene_dates(local, req.date)
    device = resolve_device(req.device)
    if req.model != DEFAULT_MODEL:
        resolve_model_path(req.model)  # an unknown model is reported before any search
    scenes = local or find_scenes(req, aoi.geometry if aoi else None)
    model = load_model(model_for(req.model, scenes), device)
    name = req.name or (f"{aoi.name}_{req.date}" if aoi and req.date else
                        (aoi.name if aoi else scenes[0].id))
    method = composite_mode(req)
    caches: list[ChunkCache] = []
    result = None
    if method in PROBABILITY_COMPOSITES or req.series:
        groups = acquisitions(scenes)
        if method in PROBABILITY_COMPOSITES and len(groups) > MAX_COMPOSITE_ACQUISITIONS:
            raise ParameterError(f"a {method} composite takes at most "
                                 f"{MAX_COMPOSITE_ACQUISITIONS} acquisitions, not {len(groups)}")
        inputs = [DateInput(acquisition_label(group), group) for group in groups]
        result, caches = classify_acquisitions(
            req, model, aoi, inputs, device, cache,
            method if method in PROBABILITY_COMPOSITES else None,
            (lambda date, one: each(name, model, date, one)) if each else None)
    if result is None:  # one date, or the reflectance composite beside a series
        if req.series and method == "none" and aoi is not None and not local:
            scenes = select_covering(scenes, aoi.geometry)  # as without a series: least cloudy
        date = DateInput(req.date or "the scenes", scenes, searched=not local)
        result = classify_on_grid(req, model, aoi, [date], device, cache).results[0]
    return LandCover(result, model, scenes, req.date, safe_name(name, "map"), caches)


def acquisition_label(scenes: list[Scene]) -> str:
    """The name of one acquisition in a series: its day, or its first scene's id."""
    when = scenes[0].datetime
    return when.date().isoformat() if when else safe_name(scenes[0].id, "scene")


def write_landcover(landcover: LandCover, out_dir: Path, name: str | None = None
                    ) -> tuple[dict[str, str], dict]:
    """Every output of a map, staged and moved into `out_dir` together.

    The chunk cache of the run is removed once the map is in place.
    """
    outputs, info = write_map(Path(out_dir), safe_name(name or landcover.name, "map"),
                              landcover.result, landcover.model, landcover.scenes,
                              landcover.date)
    for cache in [landcover.result.cache, *landcover.caches]:
        if cache:
            cache.clear()
    return outputs, info


@dataclass(frozen=True)
class MapResult:
    """What a map run wrote and measured (`geolulc map --json` prints `to_dict()`)."""

    outputs: dict[str, str]
    """{kind: path} of every file written: landcover, confidence, probabilities, count, …"""
    stats: dict[str, Any]
    """Area of each class (km², percent, pixels), as in NAME_stats.json."""
    run: dict[str, Any]
    """The run's facts: model, scenes, date, grid (CRS, transform, shape), cells classified …"""
    timings_s: dict[str, float]
    """Seconds spent reading, cutting, classifying and writing."""
    wall_time_s: float

    @property
    def landcover(self) -> Path:
        """The land-cover COG."""
        return Path(self.outputs["landcover"])

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready data: outputs, the run's facts, stats and timings."""
        return {"outputs": self.outputs, **self.run, "stats": self.stats,
                "timings_s": self.timings_s, "wall_time_s": self.wall_time_s}


def run_map(req: MapRequest) -> MapResult:
    """Produce the land-cover map, confidence, statistics and quicklook; return a summary."""
    t_start = time.perf_counter()
    if Path(req.out_dir).is_dir():  # finish the move of a set a killed run was publishing
        remove_stale_staging(Path(req.out_dir))
    series: list[str] = []

    def write_acquisition(name: str, model: Model, date: DateInput,
                          result: Classification) -> None:
        outputs, _ = write_map(Path(req.out_dir), safe_name(f"{name}_{date.label}", "map"),
                               result, model, date.scenes, date.label)
        series.append(outputs["landcover"])

    landcover = classify_request(req, each=write_acquisition if req.series else None)
    t_write = time.perf_counter()
    outputs, info = write_landcover(landcover, req.out_dir)
    check_trust(landcover.model)  # once the map is written: a failed run shows its error alone
    timings = {**landcover.result.timings, "write": time.perf_counter() - t_write}
    run = {k: v for k, v in info.items() if k != "stats"}
    run["composite"] = composite_mode(req)
    if req.series:
        run["series"] = series
    return MapResult(outputs, info["stats"], run, {k: round(v, 3) for k, v in timings.items()},
                     round(time.perf_counter() - t_start, 3))
