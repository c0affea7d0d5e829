"""What a mapping job was asked to do (`MapRequest`) and what follows from it before any pixel is
read: the scenes, the model, the grid, the masking and the chunking."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from pyproj import Proj
from shapely.geometry import box

from geolulc.core.grid import PatchGrid, bounds_to_wgs84, choose_crs, grid_for_bounds, project_geometry
from geolulc.defaults import ENGINES
from geolulc.errors import GeolulcError
from geolulc.io.aoi import DEFAULT_MAX_AREA_KM2, split_antimeridian
from geolulc.io.catalog import (
    DEFAULT_COLLECTION,
    EARTH_SEARCH,
    parse_date_range,
    search_scenes,
    select_covering,
)
from geolulc.io.read import Masking, acquisitions
from geolulc.io.scenes import Scene
from geolulc.models.model import DEFAULT_MODEL, Model, auto_model
from geolulc.models.tiles import HALO, TILE, tile_size

log = logging.getLogger(__name__)

#: Pixel size the bundled models were trained at (Sentinel-2's 10 m bands), for cards that do
#: not state `resolution_m`.
NATIVE_RESOLUTION_M = 10.0
#: Largest relative difference between the ground pixel size and the model's own.
RESOLUTION_TOLERANCE = 0.25


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
    engine: str = "auto"  # auto: OpenVINO on the CPU where installed, else torch
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

    def __post_init__(self) -> None:
        """Every parameter checked once, in the API's terms (the CLI checks its flags too)."""
        if isinstance(self.scenes, (str, Path, Scene)):
            self.scenes = [self.scenes]  # one scene, not the characters of its path
        choices = {"composite": ("auto", "median", "best", "none"),
                   "l2a": ("auto", "toa", "as-is"), "precision": ("auto", "fp32", "bf16"),
                   "engine": ENGINES}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise GeolulcError(f"{name}={getattr(self, name)!r} is not one of "
                                   f"{', '.join(allowed)}")
        positive = {"stride": self.stride, "batch_size": self.batch_size,
                    "chunk_rows": self.chunk_rows, "workers": self.workers,
                    "max_acquisitions": self.max_acquisitions}
        for name, value in positive.items():
            if value is not None and (not isinstance(value, int) or value < 1):
                raise GeolulcError(f"{name} must be a whole number of at least 1, not {value!r}")
        if not 0 <= self.min_clear <= 1:
            raise GeolulcError(f"min_clear is a share of clear pixels, 0–1, not {self.min_clear}")
        if self.mask_dilate < 0 or self.resolution <= 0 or self.max_area_km2 <= 0:
            raise GeolulcError("mask_dilate must be ≥ 0, resolution and max_area_km2 > 0")


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

    from geolulc.io.gdal import gdal_env
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
    check_resolution(req.resolution, crs, region, model)
    if model.kind == "segmenter":
        grid = grid_for_bounds(bounds, crs, req.resolution, 1, 1, HALO)
    else:
        grid = grid_for_bounds(bounds, crs, req.resolution, model.patch_size, req.stride)
    check_grid_fits(grid, len(model.classes))
    return grid


def check_resolution(resolution: float, crs, region_wgs84, model: Model) -> None:
    """Refuse pixels whose size on the ground is far from the model's own: a network trained
    on 10 m pixels fed 1 m ones (or 10 Web Mercator metres, 6.7 m on the ground at 48° N) sees
    another world and maps it silently wrong."""
    native = float(model.card.get("resolution_m", NATIVE_RESOLUTION_M))
    centre = region_wgs84.centroid
    factors = Proj(crs).get_factors(centre.x, centre.y)
    ground = resolution / factors.meridional_scale
    low, high = native * (1 - RESOLUTION_TOLERANCE), native * (1 + RESOLUTION_TOLERANCE)
    if not low <= ground <= high:
        grid_units = f" ({resolution:g} units of {crs.name})" if abs(ground - resolution) > 1e-3 \
            else ""
        raise GeolulcError(
            f"model {model.name} was trained on {native:g} m pixels; a resolution of "
            f"{ground:.3g} m on the ground{grid_units} would make a silently wrong map: "
            f"use a resolution of {native * factors.meridional_scale:.3g} in this CRS")


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


def chunk_rows_for(req: MapRequest, model: Model, grid: PatchGrid) -> int:
    """Map rows per chunk: the user's, else 8 rows of patches or one row of tiles of about
    `TILE[0]` rows (the grid's rows split evenly, so the last chunk is not mostly padding)."""
    if req.chunk_rows:
        if model.kind == "segmenter" and req.chunk_rows % 2:
            raise GeolulcError("--chunk-rows must be even for a per-pixel model (its network "
                               "halves the resolution)")
        return req.chunk_rows
    return tile_size(grid.rows, TILE[0]) if model.kind == "segmenter" else 8


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
