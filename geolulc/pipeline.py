"""The mapping job: AOI → scenes → pixels → patches → predictions → rasters."""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rasterio.features import geometry_mask
from rasterio.windows import Window
from shapely.geometry import box, mapping
from tqdm import tqdm

from . import __version__
from .aoi import DEFAULT_MAX_AREA_KM2, load_aoi
from .atomic import staged_outputs, write_text_atomic
from .classify import Classifier
from .dense import dense_probabilities, supports
from .device import resolve_device
from .errors import GeolulcError
from .grid import PatchGrid, bounds_to_wgs84, choose_crs, grid_for_bounds, project_geometry
from .model import DEFAULT_MODEL, Model, auto_model, load_model, resolve_model_path
from .patches import clear_cells, cut_patches
from .quicklook import write_quicklook
from .read import StackReader
from .scenes import Scene, load_scene
from .search import (
    DEFAULT_COLLECTION,
    EARTH_SEARCH,
    parse_date_range,
    search_scenes,
    select_covering,
)
from .stats import areas_csv, class_areas
from .write import NODATA, class_colormap, write_cog, write_qgis_style

log = logging.getLogger(__name__)


@dataclass
class MapRequest:
    """Everything `geolulc map` was asked to do."""

    aoi: Path | None = None
    date: str | None = None
    scenes: list[Path] = field(default_factory=list)
    catalog: str = EARTH_SEARCH
    collection: str = DEFAULT_COLLECTION
    max_cloud: float | None = None
    model: str = DEFAULT_MODEL
    stride: int = 64
    batch_size: int = 256
    device: str = "auto"
    crs: str | None = None
    resolution: float = 10.0
    out_dir: Path = Path("outputs")
    name: str | None = None
    min_clear: float = 0.5
    max_area_km2: float = DEFAULT_MAX_AREA_KM2
    chunk_rows: int = 8
    progress: bool = True
    dense: bool = True


def find_scenes(req: MapRequest, geometry) -> list[Scene]:
    """The least cloudy catalogue scenes that cover the AOI."""
    if geometry is None or not req.date:
        raise GeolulcError("give --aoi and --date to search a catalogue, or --scene for a local scene")
    found = search_scenes(geometry, req.date, req.catalog, req.collection, req.max_cloud)
    if not found:
        raise GeolulcError(f"no {req.collection} scene in {req.catalog} covers the AOI in "
                           f"{req.date}" + (f" with cloud cover ≤ {req.max_cloud}%"
                                             if req.max_cloud is not None else ""))
    return select_covering(found, geometry)


def scene_extent_wgs84(scene: Scene):
    """Footprint of a scene in EPSG:4326, from its metadata or its first band."""
    if scene.footprint is not None:
        return scene.footprint
    import rasterio

    from .read import gdal_env
    with gdal_env(), rasterio.open(next(iter(scene.bands.values()))) as src:
        return box(*bounds_to_wgs84(src.bounds, src.crs))


def plan_grid(req: MapRequest, aoi_geometry, scenes: list[Scene], model: Model) -> PatchGrid:
    region = aoi_geometry if aoi_geometry is not None else scene_extent_wgs84(scenes[0])
    crs = choose_crs(region, req.crs)
    bounds = project_geometry(region, crs).bounds
    return grid_for_bounds(bounds, crs, req.resolution, model.patch_size, req.stride)


@dataclass
class Classification:
    """Per-cell results of classifying one date on a grid."""

    grid: PatchGrid
    labels: np.ndarray  # uint8 class codes, NODATA where not classified
    probabilities: np.ndarray  # float32 (rows, cols, classes), 0 where not classified
    patches: int
    masked_pixels: int
    timings: dict[str, float]

    @property
    def confidence(self) -> np.ndarray:
        conf = np.round(self.probabilities.max(axis=2) * 100).astype(np.uint8)
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
    dense: bool = True,
) -> Classification:
    """Read, cut and classify the grid chunk by chunk, reading the next chunk while the model
    works on the current one (GDAL and torch both release the GIL).

    With `dense` (strides below the patch size), each chunk is classified fully convolutionally
    instead of patch by patch, sharing the work of overlapping windows.
    """
    dense = dense and supports(model, grid.stride)
    k = len(model.classes)
    labels = np.full((grid.rows, grid.cols), NODATA, dtype=np.uint8)
    probabilities = np.zeros((grid.rows, grid.cols, k), dtype=np.float32)
    timings = {"read": 0.0, "patch": 0.0, "classify": 0.0}
    n_patches = masked_px = 0
    _, read_width = grid.read_shape
    starts = list(range(0, grid.rows, chunk_rows))

    def read_chunk(row0: int):
        t0 = time.perf_counter()
        n_rows = min(chunk_rows, grid.rows - row0)
        window = Window(0, row0 * grid.stride, read_width, n_rows * grid.stride + 2 * grid.margin)
        return reader.read(window), time.perf_counter() - t0

    with StackReader(scenes, model.bands, grid) as reader, ThreadPoolExecutor(1) as pool, tqdm(
        total=grid.rows * grid.cols, unit="cell", desc="mapping", disable=not progress,
    ) as bar:
        pending = pool.submit(read_chunk, starts[0])
        for i, row0 in enumerate(starts):
            (dn, clear, masked), read_s = pending.result()
            if i + 1 < len(starts):
                pending = pool.submit(read_chunk, starts[i + 1])
            timings["read"] += read_s
            masked_px += masked
            t1 = time.perf_counter()
            if dense:
                rows, cols = clear_cells(clear, grid.patch, grid.stride, min_clear)
                rows = rows + row0
                keep = inside[rows, cols]
                rows, cols = rows[keep], cols[keep]
                t2 = time.perf_counter()
                if len(rows):
                    probs = dense_probabilities(model, dn, grid.stride, classifier.device)
                    probs = probs[rows - row0, cols]
            else:
                cut = cut_patches(dn, clear, grid.patch, grid.stride, row0, min_clear)
                keep = inside[cut.rows, cut.cols]
                pixels, rows, cols = cut.pixels[keep], cut.rows[keep], cut.cols[keep]
                t2 = time.perf_counter()
                if len(rows):
                    probs = classifier.probabilities(pixels)
            if len(rows):
                probabilities[rows, cols] = probs
                labels[rows, cols] = probs.argmax(1)
            n_patches += len(rows)
            timings["patch"] += t2 - t1
            timings["classify"] += time.perf_counter() - t2
            bar.update(min(chunk_rows, grid.rows - row0) * grid.cols)
            bar.set_postfix(patches=n_patches)
    return Classification(grid, labels, probabilities, n_patches, masked_px, timings)


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
        "patches_classified": result.patches, "cloud_masked_pixels": result.masked_pixels,
    }
    tags = {"classes": model.classes, "model": model.name, "scenes": [s.id for s in scenes],
            "geolulc_version": __version__, "date": date or ""}
    colors = model.colors
    probs = np.round(np.moveaxis(result.probabilities, 2, 0) * 250).astype(np.uint8)
    probs[:, result.labels == NODATA] = NODATA
    files = {}
    with staged_outputs(out_dir) as stage:
        files["confidence"] = write_cog(
            stage / f"{name}_confidence.tif", result.confidence, grid.crs, grid.map_transform,
            NODATA, tags={"units": "percent", "model": model.name},
            description="probability of the predicted class (%)", resampling="AVERAGE")
        files["probabilities"] = write_cog(
            stage / f"{name}_probabilities.tif", probs, grid.crs, grid.map_transform, NODATA,
            tags={**tags, "scale": "probability = value / 250"}, description=model.classes,
            resampling="AVERAGE")
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
            stage / f"{name}_landcover.tif", result.labels, grid.crs, grid.map_transform, NODATA,
            colormap=class_colormap(colors), tags=tags, description="land cover class")
    outputs = {k: str(Path(out_dir) / Path(v).name) for k, v in files.items()}
    return outputs, {**run_info, "stats": stats}


def model_for(name: str, scenes: list[Scene]) -> str:
    """The model asked for, or with `auto` the best bundled one for the scenes' bands."""
    if name != DEFAULT_MODEL:
        return name
    return auto_model(set.intersection(*(set(s.bands) for s in scenes)))


def check_scenes(scenes: list[Scene], model: Model) -> None:
    for scene in scenes:
        scene.require(model.bands)
        if scene.level != model.card.get("processing_level", scene.level):
            log.warning("model %s was trained on %s data, scene %s is %s", model.name,
                        model.card["processing_level"], scene.id, scene.level)


def run_map(req: MapRequest) -> dict:
    """Produce the land-cover map, confidence, statistics and quicklook; return a summary."""
    t_start = time.perf_counter()
    if req.date:
        parse_date_range(req.date)  # the user's input is checked before any work starts
    aoi = load_aoi(req.aoi, req.max_area_km2) if req.aoi else None
    local = [load_scene(p) for p in req.scenes]
    device = resolve_device(req.device)
    if req.model != DEFAULT_MODEL:
        resolve_model_path(req.model)  # an unknown model is reported before any search
    scenes = local or find_scenes(req, aoi.geometry if aoi else None)
    model = load_model(model_for(req.model, scenes), device)
    check_scenes(scenes, model)
    grid = plan_grid(req, aoi.geometry if aoi else None, scenes, model)
    log.info("grid %s: %d×%d cells of %.0f m, %d scene(s)", grid.crs.to_string(), grid.rows,
             grid.cols, grid.cell_size, len(scenes))
    result = classify_grid(scenes, model, grid, aoi_cells(grid, aoi.geometry if aoi else None),
                           Classifier(model, device, req.batch_size), req.min_clear,
                           req.chunk_rows, req.progress, req.dense)
    if result.patches == 0:
        raise GeolulcError("no clear patch to classify: the scenes do not cover the AOI, or "
                           "every patch is mostly cloud or no data")
    t_write = time.perf_counter()
    name = req.name or (f"{aoi.name}_{req.date}" if aoi and req.date else
                        (aoi.name if aoi else scenes[0].id))
    outputs, info = write_map(req.out_dir, name.replace("/", "_"), result, model, scenes,
                              req.date)
    timings = {**result.timings, "write": time.perf_counter() - t_write}
    return {
        "outputs": outputs,
        **info,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "wall_time_s": round(time.perf_counter() - t_start, 3),
    }
