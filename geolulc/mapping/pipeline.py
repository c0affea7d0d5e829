"""The mapping job: AOI → scenes → pixels → patches → predictions → rasters."""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from affine import Affine
from rasterio.features import geometry_mask
from shapely.geometry import box, mapping
from tqdm import tqdm

from geolulc import __version__
from geolulc.device import resolve_device
from geolulc.errors import GeolulcError
from geolulc.io.aoi import DEFAULT_MAX_AREA_KM2, load_aoi, split_antimeridian
from geolulc.io.atomic import safe_name, staged_outputs, write_text_atomic
from geolulc.io.catalog import (
    DEFAULT_COLLECTION,
    EARTH_SEARCH,
    parse_date_range,
    search_scenes,
    select_covering,
)
from geolulc.io.quicklook import write_quicklook
from geolulc.io.rasters import (
    LANDCOVER_SUFFIX,
    NODATA,
    PROB_SCALE,
    PROBABILITIES_SUFFIX,
    class_colormap,
    write_cog,
    write_qgis_style,
)
from geolulc.io.read import Masking, acquisitions
from geolulc.io.scenes import Scene, load_scene
from geolulc.io.stats import areas_csv, class_areas
from geolulc.mapping.chunks import ChunkCache, ChunkJob, job_key, run_dask, run_local
from geolulc.mapping.dense import supports
from geolulc.mapping.grid import PatchGrid, bounds_to_wgs84, choose_crs, grid_for_bounds, project_geometry
from geolulc.mapping.inference import Classifier
from geolulc.mapping.tiles import HALO, TILE
from geolulc.models.model import DEFAULT_MODEL, Model, auto_model, load_model, resolve_model_path

log = logging.getLogger(__name__)


@dataclass
class MapRequest:
    """Everything `geolulc map` was asked to do."""

    aoi: Path | None = None
    date: str | None = None
    scenes: list[Path | Scene] = field(default_factory=list)  # paths, or scenes already loaded
    catalog: str = EARTH_SEARCH
    collection: str = DEFAULT_COLLECTION
    max_cloud: float | None = None
    model: str = DEFAULT_MODEL
    stride: int = 64
    batch_size: int | None = None  # None: fits the device
    precision: str = "auto"  # auto: bf16 where the hardware has it, else fp32
    device: str = "auto"
    crs: str | None = None
    resolution: float = 10.0
    out_dir: Path = Path("outputs")
    name: str | None = None
    min_clear: float = 0.5
    max_area_km2: float = DEFAULT_MAX_AREA_KM2
    chunk_rows: int | None = None  # None: 8 rows of patches, or one row of tiles per chunk
    progress: bool = True
    dense: bool = True
    composite: str = "auto"  # auto: median over a period of several days, else none
    mask_dilate: int = 0
    max_acquisitions: int = 12
    l2a: str = "auto"  # auto/toa: restore top-of-atmosphere reflectance for L1C models; as-is
    workers: int | None = None  # local Dask cluster of this many processes
    scheduler: str | None = None  # address of an existing Dask scheduler


def composite_mode(req: MapRequest) -> str:
    """`auto` means a median composite over a period of several days, else the single scene."""
    if req.composite != "auto":
        return req.composite
    if req.scenes or not req.date:
        return "none"
    start, end = parse_date_range(req.date).split("/")
    return "median" if start[:10] != end[:10] else "none"


def find_scenes(req: MapRequest, geometry) -> list[Scene]:
    """The least cloudy catalogue scenes that cover the AOI, or for a composite the scenes of
    the `max_acquisitions` least cloudy acquisitions."""
    if geometry is None or not req.date:
        raise GeolulcError("give --aoi and --date to search a catalogue, or --scene for a local scene")
    found = search_scenes(geometry, req.date, req.catalog, req.collection, req.max_cloud)
    if not found:
        raise GeolulcError(f"no {req.collection} scene in {req.catalog} covers the AOI in "
                           f"{req.date}" + (f" with cloud cover ≤ {req.max_cloud}%"
                                             if req.max_cloud is not None else ""))
    if composite_mode(req) == "none":
        return select_covering(found, geometry)
    plain = split_antimeridian(geometry)
    touching = [s for s in found if s.footprint is None or s.footprint.intersects(plain)]
    groups = acquisitions(touching)[: req.max_acquisitions]
    log.info("compositing %d acquisition(s)", len(groups))
    return [s for group in groups for s in group]


def restores_toa(req: MapRequest, model: Model) -> bool:
    """Whether L2A input gets its atmosphere back: always with --l2a toa, with auto when the
    model was trained on L1C (all bundled models)."""
    if req.l2a not in ("auto", "toa", "as-is"):
        raise GeolulcError(f"--l2a must be auto, toa or as-is, not {req.l2a!r}")
    return req.l2a == "toa" or (req.l2a == "auto"
                                and model.card.get("processing_level") == "L1C")


def masking_for(req: MapRequest, model: Model) -> Masking:
    return Masking(composite_mode(req), req.mask_dilate, restore_toa=restores_toa(req, model))


def scene_extent_wgs84(scene: Scene):
    """Footprint of a scene in EPSG:4326, from its metadata or its first band."""
    if scene.footprint is not None:
        return scene.footprint
    import rasterio
    from rasterio.errors import RasterioError

    from geolulc.io.read import gdal_env
    href = next(iter(scene.bands.values()))
    try:
        with gdal_env(), rasterio.open(href) as src:
            return box(*bounds_to_wgs84(src.bounds, src.crs))
    except RasterioError as exc:
        raise GeolulcError(f"cannot read scene {scene.id} ({href}): "
                           f"{str(exc).splitlines()[0]}") from None


def plan_grid(req: MapRequest, aoi_geometry, scenes: list[Scene], model: Model) -> PatchGrid:
    """The cell grid of the map: patches every `stride` pixels for a classifier, every pixel
    (with a halo of context) for a per-pixel model."""
    region = aoi_geometry if aoi_geometry is not None else scene_extent_wgs84(scenes[0])
    crs = choose_crs(region, req.crs)
    bounds = project_geometry(region, crs).bounds
    if req.resolution <= 0:
        raise GeolulcError(f"--resolution must be positive, not {req.resolution}")
    if model.kind == "segmenter":
        grid = grid_for_bounds(bounds, crs, req.resolution, 1, 1, HALO)
    else:
        grid = grid_for_bounds(bounds, crs, req.resolution, model.patch_size, req.stride)
    check_grid_fits(grid, len(model.classes))
    return grid


def check_grid_fits(grid: PatchGrid, n_classes: int) -> None:
    """Refuse, before allocating anything, a map larger than this machine's memory."""
    cells = grid.rows * grid.cols
    need = cells * (n_classes + 2) + grid.rows * grid.cols * grid.stride ** 2
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return
    if need > 0.8 * memory:
        raise GeolulcError(
            f"the map would be {grid.rows:,} × {grid.cols:,} cells ({need / 2**30:.1f} GiB in "
            f"memory, this machine has {memory / 2**30:.1f} GiB): use a coarser --resolution "
            "or a smaller AOI")


def chunk_rows_for(req: MapRequest, model: Model) -> int:
    """Map rows per chunk: the user's, else 8 rows of patches or one row of tiles."""
    if req.chunk_rows:
        if model.kind == "segmenter" and req.chunk_rows % 2:
            raise GeolulcError("--chunk-rows must be even for a per-pixel model (its network "
                               "halves the resolution)")
        return req.chunk_rows
    return TILE if model.kind == "segmenter" else 8


@dataclass
class Classification:
    """Per-cell results of classifying one date on a grid."""

    grid: PatchGrid
    labels: np.ndarray  # uint8 class codes, NODATA where not classified
    probabilities: np.ndarray  # uint8 (rows, cols, classes), probability × PROB_SCALE
    patches: int  # cells classified (patches of a classifier, pixels of a per-pixel model)
    masked_pixels: int
    timings: dict[str, float]
    count: np.ndarray  # uint8 clear observations per input pixel of the cells' extent
    cache: ChunkCache | None = None  # finished chunks, removed once the map is written

    def require_patches(self, what: str) -> None:
        """A map without a single classified patch is an error, not an empty map."""
        if self.patches == 0:
            raise GeolulcError(f"{what}: no clear patch to classify (the scenes do not cover "
                               "the area, or every patch is mostly cloud or no data)")

    @property
    def confidence(self) -> np.ndarray:
        """Probability of the mapped class in percent, NODATA where not classified."""
        top = self.probabilities.max(axis=2).astype(np.uint16)
        conf = ((top * 100 + PROB_SCALE // 2) // PROB_SCALE).astype(np.uint8)
        conf[self.labels == NODATA] = NODATA
        return conf


def aoi_cells(grid: PatchGrid, aoi_geometry) -> np.ndarray:
    """Cells touching the AOI polygon (all of them without an AOI)."""
    if aoi_geometry is None:
        return np.ones((grid.rows, grid.cols), dtype=bool)
    return ~geometry_mask([mapping(project_geometry(aoi_geometry, grid.crs))],
                          (grid.rows, grid.cols), grid.map_transform, all_touched=True)


def classify_grid(
    scenes: list[Scene], model: Model, grid: PatchGrid, inside: np.ndarray,
    classifier: Classifier, min_clear: float = 0.5, chunk_rows: int = 8, progress: bool = True,
    dense: bool = True, cache_root: Path | None = None, client=None,
    worker_device: str = "auto", masking: Masking | None = None, worker_batch: int | None = None,
) -> Classification:
    """Classify the grid chunk by chunk, in this process or on a Dask `client`.

    With `dense` (strides below the patch size), each chunk is classified fully convolutionally
    instead of patch by patch, sharing the work of overlapping windows. With `cache_root`,
    finished chunks are kept there until the map is written, and a rerun resumes from them.
    """
    dense = dense and model.kind == "classifier" and supports(model, grid.stride)
    job = ChunkJob(scenes, model.bands, grid, inside, min_clear, dense, chunk_rows,
                   masking or Masking())
    count = np.zeros((grid.rows * grid.stride, grid.cols * grid.stride), dtype=np.uint8)
    labels = np.full((grid.rows, grid.cols), NODATA, dtype=np.uint8)
    probabilities = np.zeros((grid.rows, grid.cols, len(model.classes)), dtype=np.uint8)
    timings = {"read": 0.0, "patch": 0.0, "classify": 0.0}
    n_patches = masked_px = 0
    cache = ChunkCache(cache_root, job_key(job, model)) if cache_root else None
    done = {row0: cache.get(row0) for row0 in job.starts} if cache else {}
    done = {row0: r for row0, r in done.items() if r is not None}
    if done:
        log.info("resuming: %d of %d chunks already done", len(done), len(job.starts))
    todo = [row0 for row0 in job.starts if row0 not in done]
    if client is not None:
        fresh = run_dask(job, todo, model, client, worker_device, worker_batch,
                         classifier.precision)
    else:
        fresh = run_local(job, todo, model, classifier)
    with tqdm(total=grid.rows * grid.cols, unit="cell", desc="mapping",
              disable=not progress) as bar:
        for result in itertools.chain(done.values(), fresh):  # cached as each one finishes
            if cache and result.row0 not in done:
                cache.put(result)
            rows = slice(result.row0, result.row0 + len(result.labels))
            labels[rows] = result.labels
            probabilities[rows] = result.probs
            n_patches += result.cells
            masked_px += result.masked
            top = result.row0 * grid.stride
            count[top:top + result.count.shape[0]] = result.count
            for stage, seconds in result.timings.items():
                timings[stage] += seconds
            bar.update(min(chunk_rows, grid.rows - result.row0) * grid.cols)
            bar.set_postfix(classified=n_patches)
    return Classification(grid, labels, probabilities, n_patches, masked_px, timings, count,
                          cache)


def scene_summary(scenes: list[Scene]) -> list[dict]:
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
    stats = class_areas(result.labels, model.classes, grid.cell_size ** 2)
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
            NODATA, tags={"units": "percent", "model": model.name},
            description="probability of the predicted class (%)", resampling="AVERAGE")
        fine = Affine(grid.resolution, 0, grid.x0, 0, -grid.resolution, grid.y0)
        files["count"] = write_cog(
            stage / f"{name}_count.tif", result.count, grid.crs, fine, None,
            tags={"meaning": "acquisitions with a clear view of the pixel"},
            description="clear observations", resampling="AVERAGE")
        files["probabilities"] = write_cog(
            stage / f"{name}{PROBABILITIES_SUFFIX}", probs, grid.crs, grid.map_transform, NODATA,
            tags={**tags, "scale": f"probability = value / {PROB_SCALE}"},
            description=model.classes, resampling="AVERAGE", scale=1 / PROB_SCALE,
            nodata_where=result.labels == NODATA)
        write_text_atomic(stage / f"{name}_stats.json",
                          json.dumps({**stats, "run": run_info}, indent=2) + "\n")
        files["stats_json"] = stage / f"{name}_stats.json"
        write_text_atomic(stage / f"{name}_stats.csv", areas_csv(stats))
        files["stats_csv"] = stage / f"{name}_stats.csv"
        files["quicklook"] = write_quicklook(
            stage / f"{name}_quicklook.png", result.labels, model.classes, colors,
            title=f"{name} ({model.name})")
        write_qgis_style(stage / f"{name}_landcover.qml", model.classes, colors)
        files["qgis_style"] = stage / f"{name}_landcover.qml"
        files["landcover"] = write_cog(
            stage / f"{name}{LANDCOVER_SUFFIX}", result.labels, grid.crs, grid.map_transform, NODATA,
            colormap=class_colormap(colors), tags=tags, description="land cover class")
    outputs = {k: str(Path(out_dir) / Path(v).name) for k, v in files.items()}
    return outputs, {**run_info, "stats": stats}


@contextlib.contextmanager
def dask_client(req: MapRequest) -> Iterator[object | None]:
    """A dask.distributed client for --scheduler or --workers, or None to run in-process."""
    if not req.scheduler and not req.workers:
        yield None
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise GeolulcError("--workers/--scheduler need dask: pip install 'geolulc[dask]'") \
            from None
    if req.scheduler:
        try:
            client = Client(req.scheduler, timeout="10s")
        except OSError as exc:
            raise GeolulcError(f"cannot reach the Dask scheduler {req.scheduler}: {exc}") \
                from None
        with client:
            yield client
        return
    quiet = logging.WARNING if log.getEffectiveLevel() >= logging.WARNING else logging.INFO
    if not req.progress:  # --quiet: the cluster's own INFO lines too
        quiet = logging.ERROR
        logging.getLogger("distributed").setLevel(logging.ERROR)
    with LocalCluster(n_workers=req.workers, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=quiet) as cluster, \
            Client(cluster) as client:
        yield client


def model_for(name: str, scenes: list[Scene]) -> str:
    """The model asked for, or with `auto` the best bundled one for the scenes' bands."""
    if name != DEFAULT_MODEL:
        return name
    return auto_model(set.intersection(*(set(s.bands) for s in scenes)))


def check_scenes(scenes: list[Scene], model: Model, toa: bool = False) -> None:
    for scene in scenes:
        scene.require(model.bands)
        if toa and scene.level == "L2A":
            log.info("scene %s: L2A, top-of-atmosphere reflectance restored for %s", scene.id,
                     model.name)
        elif scene.level != model.card.get("processing_level", scene.level):
            log.warning("model %s was trained on %s data, scene %s is %s", model.name,
                        model.card["processing_level"], scene.id, scene.level)


@dataclass
class LandCover:
    """A classified area in memory: labels and probabilities on their grid, with the model and
    scenes they came from. `geolulc.write` turns it into files."""

    result: Classification
    model: Model
    scenes: list[Scene]
    date: str | None
    name: str  # default stem of the output files

    @property
    def grid(self) -> PatchGrid:
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
        return self.model.classes


def classify_request(req: MapRequest, cache: bool = True) -> LandCover:
    """Search (or load) the scenes, read them and classify the area; nothing is written but the
    chunk cache in `req.out_dir` (when `cache`), which lets an interrupted run resume."""
    if req.date:
        parse_date_range(req.date)  # the user's input is checked before any work starts
    aoi = load_aoi(req.aoi, req.max_area_km2) if req.aoi else None
    local = [p if isinstance(p, Scene) else load_scene(p) for p in req.scenes]
    device = resolve_device(req.device)
    if req.model != DEFAULT_MODEL:
        resolve_model_path(req.model)  # an unknown model is reported before any search
    scenes = local or find_scenes(req, aoi.geometry if aoi else None)
    model = load_model(model_for(req.model, scenes), device)
    check_scenes(scenes, model, restores_toa(req, model))
    grid = plan_grid(req, aoi.geometry if aoi else None, scenes, model)
    log.info("grid %s: %d×%d cells of %.0f m, %d scene(s)", grid.crs.to_string(), grid.rows,
             grid.cols, grid.cell_size, len(scenes))
    with dask_client(req) as client:
        result = classify_grid(
            scenes, model, grid, aoi_cells(grid, aoi.geometry if aoi else None),
            Classifier(model, device, req.batch_size, req.precision), req.min_clear,
            chunk_rows_for(req, model), req.progress, req.dense,
            cache_root=req.out_dir if cache else None, client=client,
            worker_device=req.device, masking=masking_for(req, model), worker_batch=req.batch_size)
    result.require_patches(req.date or "the scenes")
    name = req.name or (f"{aoi.name}_{req.date}" if aoi and req.date else
                        (aoi.name if aoi else scenes[0].id))
    return LandCover(result, model, scenes, req.date, safe_name(name, "map"))


def write_landcover(landcover: LandCover, out_dir: Path, name: str | None = None
                    ) -> tuple[dict[str, str], dict]:
    """Every output of a map, staged and moved into `out_dir` together; the chunk cache of the
    run is removed once the map is in place."""
    outputs, info = write_map(Path(out_dir), safe_name(name or landcover.name, "map"),
                              landcover.result, landcover.model, landcover.scenes,
                              landcover.date)
    if landcover.result.cache:
        landcover.result.cache.clear()
    return outputs, info


def run_map(req: MapRequest) -> dict:
    """Produce the land-cover map, confidence, statistics and quicklook; return a summary."""
    t_start = time.perf_counter()
    landcover = classify_request(req)
    t_write = time.perf_counter()
    outputs, info = write_landcover(landcover, req.out_dir)
    timings = {**landcover.result.timings, "write": time.perf_counter() - t_write}
    return {
        "outputs": outputs,
        **info,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "wall_time_s": round(time.perf_counter() - t_start, 3),
    }
