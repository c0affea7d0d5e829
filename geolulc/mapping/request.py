"""What a mapping job was asked to do (`MapRequest`) and what follows from it.

What follows is decided before any pixel is read: the scenes, the model, the grid, the masking
and the chunking.
"""

from __future__ import annotations

import datetime
import logging
import os
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import get_args

from pyproj import CRS, Proj
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from geolulc.core.grid import PatchGrid, bounds_to_wgs84, choose_crs, grid_for_bounds, project_geometry
from geolulc.defaults import PROBABILITY_COMPOSITES, Composite, Engine, L2AMode, Precision
from geolulc.errors import (
    AssumptionWarning,
    FallbackWarning,
    NoDataError,
    ParameterError,
    ResourceError,
    SceneError,
    TrustWarning,
)
from geolulc.io.aoi import DEFAULT_MAX_AREA_KM2, AOILike, split_antimeridian
from geolulc.io.catalog import (
    DEFAULT_COLLECTION,
    EARTH_SEARCH,
    parse_date_range,
    search_scenes,
    select_covering,
)
from geolulc.io.read import Masking, acquisitions
from geolulc.io.scenes import Scene, SceneLike
from geolulc.models.model import (
    AUTO_ORDER,
    DEFAULT_MODEL,
    MAP_CLASSIFIER,
    Model,
    auto_model,
    read_card,
    resolve_model_path,
    trust_misses,
)
from geolulc.models.tiles import HALO, TILE, tile_size

log = logging.getLogger(__name__)

#: Largest relative difference between the ground pixel size and the model's own.
RESOLUTION_TOLERANCE = 0.25


@dataclass(frozen=True)
class MapOptions:
    """How scenes are found, read and classified.

    Every option of `geolulc map` but the area, the date, the scenes, the model and the output
    folder.

    Frozen and checked when made, so a wrong value fails here, in the caller's terms, before
    any search or read.
    """

    catalog: str = EARTH_SEARCH
    """STAC API searched for scenes (an http(s) URL)."""
    collection: str = DEFAULT_COLLECTION
    """Collection of the catalogue: L2A or L1C."""
    max_cloud: float | None = None
    """Largest scene cloud cover in percent; None takes every scene."""
    max_area_km2: float = DEFAULT_MAX_AREA_KM2
    """Largest AOI accepted, in geodesic km²."""
    stride: int = 64
    """Patch classifiers only: pixels between patch centres (a cell is stride × resolution)."""
    resolution: float = 10.0
    """Input pixel size in units of the CRS (metres), checked against the model's own."""
    crs: str | None = None
    """Output CRS; None: the UTM zone of the area's centre."""
    composite: Composite = "auto"
    """How several acquisitions make one map: median or best reflectance, then one
    classification; mean-probability or mode of the classified acquisitions; auto: median over
    a period of several days, else the single scene."""
    series: bool = False
    """Also write one map per acquisition (`make_map` only), on the composite's grid."""
    mask_dilate: int = 0
    """Pixels by which cloud and shadow masks are grown."""
    max_acquisitions: int = 12
    """Most acquisitions in a composite (the least cloudy)."""
    l2a: L2AMode = "auto"
    """L2A input: auto/toa restore top-of-atmosphere reflectance for L1C models; as-is keeps it."""
    min_clear: float = 0.5
    """Share of clear pixels a patch needs to be classified."""
    dense: bool = True
    """Strides below the patch size: classify chunks fully convolutionally (shared work)."""
    batch_size: int | None = None
    """Patches (or tiles) per inference batch; None: what fits the device."""
    precision: Precision = "auto"
    """Inference arithmetic; auto: bf16 where the hardware has it, else fp32."""
    engine: Engine = "auto"
    """Inference engine; auto: OpenVINO on the CPU, torch on CUDA."""
    device: str = "auto"
    """auto (CUDA when available), cpu or cuda."""
    chunk_rows: int | None = None
    """Map rows per chunk; None: 16 rows of patches, or one row of tiles."""
    workers: int | None = None
    """Run on a local Dask cluster of this many processes."""
    scheduler: str | None = None
    """Address of an existing Dask scheduler to run on."""
    progress: bool = False
    """Show a progress bar on stderr."""

    def __post_init__(self) -> None:
        """Every option checked once, in the API's terms (the CLI checks its flags too)."""
        choices = {"composite": Composite, "l2a": L2AMode, "precision": Precision,
                   "engine": Engine}
        for name, kind in choices.items():
            if getattr(self, name) not in get_args(kind):
                raise ParameterError(f"`{name}` must be one of {', '.join(get_args(kind))}, not "
                                     f"{getattr(self, name)!r}")
        positive = {"stride": self.stride, "batch_size": self.batch_size,
                    "chunk_rows": self.chunk_rows, "workers": self.workers,
                    "max_acquisitions": self.max_acquisitions}
        for name, value in positive.items():
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                      or value < 1):
                raise ParameterError(f"`{name}` must be a whole number of at least 1, not "
                                     f"{value!r}")
        numbers: dict[str, object] = {
            "min_clear": self.min_clear, "resolution": self.resolution,
            "max_area_km2": self.max_area_km2, "mask_dilate": self.mask_dilate,
            "max_cloud": self.max_cloud}
        for name, number in numbers.items():
            if number is not None and (not isinstance(number, (int, float))
                                       or isinstance(number, bool)):
                raise ParameterError(f"`{name}` must be a number, not {number!r}")
        if self.stride > 64:
            raise ParameterError(f"`stride` is at most 64 (the patch size), not {self.stride}")
        if self.max_cloud is not None and not 0 <= self.max_cloud <= 100:
            raise ParameterError(f"`max_cloud` is a percentage, 0–100, not {self.max_cloud}")
        if self.mask_dilate > 100:
            raise ParameterError(f"`mask_dilate` is at most 100 pixels, not {self.mask_dilate}")
        if not 0 <= self.min_clear <= 1:
            raise ParameterError(f"`min_clear` is a share of clear pixels, 0–1, not "
                                 f"{self.min_clear}")
        if self.composite in PROBABILITY_COMPOSITES and self.max_acquisitions > 255:
            raise ParameterError("`max_acquisitions` is at most 255 for a probability composite")
        if self.mask_dilate < 0 or self.resolution <= 0 or self.max_area_km2 <= 0:
            raise ParameterError("`mask_dilate` must be ≥ 0, `resolution` and `max_area_km2` > 0")


@dataclass(frozen=True)
class MapRequest(MapOptions):
    """A whole mapping job: the options, and what to map with which model into which folder."""

    aoi: AOILike | None = None
    """Area to map; None: the scenes' extent."""
    date: str | None = None
    """Day, month, year or range searched (and checked against local scenes)."""
    scenes: list[SceneLike] = field(default_factory=list)
    """Local scenes instead of a search."""
    model: str = DEFAULT_MODEL
    """Bundled model name or path to a model card; auto picks by the scenes' bands."""
    out_dir: Path = Path("outputs")
    """Folder of the outputs and of the resumable chunk cache."""
    name: str | None = None
    """Stem of the output files; None: from the AOI and date, or the scene."""

    def __post_init__(self) -> None:
        """Options checked; one scene given alone is a list of one, not its path's characters."""
        super().__post_init__()
        if isinstance(self.scenes, (str, Path, Scene, dict)) or hasattr(self.scenes, "to_dict"):
            object.__setattr__(self, "scenes", [self.scenes])
        else:
            object.__setattr__(self, "scenes", list(self.scenes))

    @classmethod
    def of(cls, options: MapOptions | None, *, aoi: AOILike | None = None, date: str | None = None,
           scenes: list[SceneLike] | None = None, model: str = DEFAULT_MODEL,
           out_dir: Path = Path("outputs"), name: str | None = None) -> MapRequest:
        """The request of the job (aoi, date, scenes, model, out_dir, name) with `options`."""
        if options is not None and not isinstance(options, MapOptions):
            raise ParameterError(f"`options` must be a MapOptions (geolulc.MapOptions(stride=16, "
                                 f"…)), not {type(options).__name__}")
        if isinstance(date, datetime.date):  # a day given as a date object
            date = date.strftime("%Y-%m-%d")
        given = {f.name: getattr(options, f.name) for f in fields(MapOptions)} if options else {}
        return cls(**given, aoi=aoi, date=date, scenes=[] if scenes is None else scenes,
                   model=model, out_dir=out_dir, name=name)


def composite_mode(req: MapRequest) -> str:
    """`auto` means a median composite over a period of several days, else the single scene."""
    if req.composite != "auto":
        return req.composite
    if req.scenes or not req.date:
        return "none"
    start, end = parse_date_range(req.date).split("/")
    return "median" if start[:10] != end[:10] else "none"


def find_scenes(req: MapRequest, geometry: BaseGeometry | None) -> list[Scene]:
    """The least cloudy catalogue scenes that cover the AOI.

    For a composite, the scenes of the `max_acquisitions` least cloudy acquisitions.
    """
    if geometry is None or not req.date:
        raise ParameterError("give `aoi` and `date` to search a catalogue, or `scenes` for a local scene")
    found = search_scenes(geometry, req.date, req.catalog, req.collection, req.max_cloud)
    if not found:
        raise NoDataError(f"no {req.collection} scene in {req.catalog} covers the AOI in "
                           f"{req.date}" + (f" with cloud cover ≤ {req.max_cloud}%"
                                             if req.max_cloud is not None else ""))
    if composite_mode(req) == "none" and not req.series:
        return select_covering(found, geometry)
    plain = split_antimeridian(geometry)
    touching = [s for s in found if s.footprint is None or s.footprint.intersects(plain)]
    groups = acquisitions(touching)[: req.max_acquisitions]
    log.info("compositing %d acquisition(s)", len(groups))
    return [s for group in groups for s in group]


def restores_toa(req: MapRequest, model: Model) -> bool:
    """Whether L2A input gets its atmosphere back.

    Always with --l2a toa, with auto when the model was trained on L1C (all bundled models).
    """
    return req.l2a == "toa" or (req.l2a == "auto"
                                and model.card.processing_level == "L1C")


def masking_for(req: MapRequest, model: Model) -> Masking:
    """How the scenes are read for this request and model: composite, dilation, atmosphere.

    The acquisitions of a probability composite are read one by one, so without a reflectance
    composite.
    """
    mode = composite_mode(req)
    return Masking("none" if mode in PROBABILITY_COMPOSITES else mode, req.mask_dilate,
                   restore_toa=restores_toa(req, model))


def scene_extent_wgs84(scene: Scene) -> BaseGeometry:
    """Footprint of a scene in EPSG:4326, from its metadata or its first band."""
    if scene.footprint is not None:
        return scene.footprint
    from geolulc.io.gdal import gdal_env, open_band
    band, href = next(iter(scene.bands.items()))
    with gdal_env(), open_band(href, scene.id, band) as src:
        return box(*bounds_to_wgs84(src.bounds, src.crs))


def plan_grid(req: MapRequest, aoi_geometry: BaseGeometry | None, scenes: list[Scene],
              model: Model) -> PatchGrid:
    """The cell grid of the map.

    Patches every `stride` pixels for a classifier, every pixel (with a halo of context) for a
    per-pixel model.
    """
    region = aoi_geometry if aoi_geometry is not None else scene_extent_wgs84(scenes[0])
    crs = choose_crs(region, req.crs)
    bounds = project_geometry(region, crs).bounds
    check_resolution(req.resolution, crs, region, model)
    if model.kind == "segmenter":
        grid = grid_for_bounds(bounds, crs, req.resolution, 1, 1, HALO)
    else:
        grid = grid_for_bounds(bounds, crs, req.resolution, model.patch_size, req.stride)
    check_grid_fits(grid, len(model.classes))
    return grid


def check_resolution(resolution: float, crs: CRS, region_wgs84: BaseGeometry, model: Model) -> None:
    """Refuse pixels whose size on the ground is far from the model's own.

    A network trained on 10 m pixels fed 1 m ones (or 10 Web Mercator metres, 6.7 m on the ground
    at 48° N) sees another world and maps it silently wrong.
    """
    native = model.card.resolution_m
    centre = region_wgs84.centroid
    factors = Proj(crs).get_factors(centre.x, centre.y)
    ground = resolution / factors.meridional_scale
    low, high = native * (1 - RESOLUTION_TOLERANCE), native * (1 + RESOLUTION_TOLERANCE)
    if not low <= ground <= high:
        grid_units = f" ({resolution:g} units of {crs.name})" if abs(ground - resolution) > 1e-3 \
            else ""
        raise ParameterError(
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
        raise ResourceError(
            f"the map would be {grid.rows:,} × {grid.cols:,} cells ({need / 2**30:.1f} GiB in "
            f"memory, this machine has {memory / 2**30:.1f} GiB): use a coarser `resolution` "
            "or a smaller AOI")


def chunk_rows_for(req: MapRequest, model: Model, grid: PatchGrid) -> int:
    """Map rows per chunk: the user's, else 16 rows of patches or one row of tiles.

    Sixteen rows keep the context rows a chunk reads (`ChunkJob.context`) a modest share of it:
    a whole Hong Kong scene at stride 16 with `eurosat-dw` took 7.5 s with 8 rows, 6.0 s with 16.

    A row of tiles is about `TILE[0]` rows (the grid's rows split evenly, so the last chunk is not
    mostly padding).
    """
    if req.chunk_rows:
        if model.kind == "segmenter" and req.chunk_rows % 2:
            raise ParameterError("`chunk_rows` must be even for a per-pixel model (its network "
                               "halves the resolution)")
        return req.chunk_rows
    return tile_size(grid.rows, TILE[0]) if model.kind == "segmenter" else 16


def model_for(name: str, scenes: list[Scene]) -> str:
    """The model asked for, or with `auto` the best bundled one for the scenes' bands.

    Scenes without the world-wide model's bands (RGB only) get a model that decides alone: said
    in one warning, never silently.
    """
    if name != DEFAULT_MODEL:
        return name
    available = set.intersection(*(set(s.bands) for s in scenes))
    chosen = auto_model(available)
    if chosen != AUTO_ORDER[0]:
        missing = sorted(set(read_card(resolve_model_path(AUTO_ORDER[0])).bands) - available)
        warnings.warn(f"the scenes lack {', '.join(missing)}: the world-wide model "
                      f"({AUTO_ORDER[0]}) and so the two-level EuroSAT legend ({MAP_CLASSIFIER}) "
                      f"cannot run; mapping with {chosen} alone", FallbackWarning, stacklevel=2)
    return chosen


def check_scenes(scenes: list[Scene], model: Model, toa: bool = False) -> None:
    """Fail on a scene that lacks the model's bands; warn when its level is not the model's.

    An L2A scene whose top-of-atmosphere reflectance is restored (`toa`) is only noted in the log;
    any other mismatch of processing level is a warning, not an error.
    """
    for scene in scenes:
        missing = [b for b in model.bands if b not in scene.bands]
        if missing and model.card.label_groups is not None:
            raise SceneError(
                f"scene {scene.id} lacks {', '.join(missing)}: {model.name}'s first level (the "
                f"world-wide model's groups) needs them; for a scene with only "
                f"{', '.join(sorted(scene.bands))} use --model auto (an RGB model alone, which "
                "warns that it misses the real-scene targets)")
        scene.require(model.bands)
        if toa and scene.level == "L2A":
            log.info("scene %s: L2A, top-of-atmosphere reflectance restored for %s", scene.id,
                     model.name)
        elif scene.level != model.card.processing_level:
            warnings.warn(f"model {model.name} was trained on {model.card.processing_level} "
                          f"data, scene {scene.id} is {scene.level}", AssumptionWarning,
                          stacklevel=2)


def check_trust(model: Model) -> None:
    """Warn, once per map, when a patch classifier's held-out real-scene figures miss the targets.

    The figures are the card's ``metrics.real_scene_held_out_cities`` (places the model never
    trained on); a model without them is not judged here.
    """
    misses = trust_misses(model.card)
    if misses:
        warnings.warn(f"model {model.name} misses the real-scene targets on places it never "
                      f"saw ({', '.join(misses)}, its card's held-out cities): its map may call "
                      f"land water or water land; for maps use the default model "
                      f"({AUTO_ORDER[0]}) or, for the EuroSAT legend, {MAP_CLASSIFIER}",
                      TrustWarning, stacklevel=2)
