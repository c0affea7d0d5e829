"""The Python API: keyword-only functions that return data; writing is a separate step.

    import geolulc
    scenes = geolulc.search(aoi="aoi/rennes.geojson", date="2023-06")
    landcover = geolulc.classify(scenes=scenes, aoi="aoi/rennes.geojson")
    print(landcover.classes, landcover.labels.shape, landcover.grid.crs)
    geolulc.write(landcover, "outputs")

The command line (`geolulc map`) is these three calls; `read` gives the harmonised bands of an
area on its grid, `change` the change between dates and `write_change` its files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from affine import Affine
from pyproj import CRS

from geolulc.defaults import DEFAULT_COLLECTION, DEFAULT_MAX_AREA_KM2, DEFAULT_MODEL, EARTH_SEARCH
from geolulc.errors import GeolulcError
from geolulc.io.scenes import Scene, load_scene
from geolulc.mapping.pipeline import LandCover, classify_request, run_map, write_landcover
from geolulc.mapping.request import MapRequest


def search(*, aoi: str | Path, date: str, catalog: str = EARTH_SEARCH,
           collection: str = DEFAULT_COLLECTION, max_cloud: float | None = None,
           max_area_km2: float = DEFAULT_MAX_AREA_KM2) -> list[Scene]:
    """Scenes of a STAC catalogue that intersect the AOI in the period, least cloudy first.

    The AOI is a vector file; the period a day, month, year or range.
    """
    from geolulc.io.aoi import load_aoi
    from geolulc.io.catalog import search_scenes

    area = load_aoi(Path(aoi), max_area_km2)
    return search_scenes(area.geometry, date, catalog, collection, max_cloud)


def classify(*, scenes: list[Scene | str | Path] | None = None, aoi: str | Path | None = None,
             date: str | None = None, model: str | Path = DEFAULT_MODEL, device: str = "auto",
             **options) -> LandCover:
    """Read and classify an area, returning the `LandCover` without writing anything.

    The area is given by `scenes` (from `search`, or local paths as `map --scene` takes) or, with
    `aoi` and `date`, by the scenes a search finds. `options` are the other fields of `MapRequest`
    (stride, resolution, crs, composite, l2a, min_clear, batch_size, precision, chunk_rows, workers,
    scheduler, progress, catalog, collection, max_cloud).
    """
    items = [s if isinstance(s, Scene) else load_scene(s) for s in _scene_list(scenes)]
    req = MapRequest(aoi=Path(aoi) if aoi else None, date=date, scenes=items, model=str(model),
                     device=device, **{"progress": False, **options})
    return classify_request(req, cache=False)


def make_map(*, scenes: list[Scene | str | Path] | None = None, aoi: str | Path | None = None,
             date: str | None = None, out_dir: str | Path = "outputs", **options) -> dict:
    """`classify` then `write`, resumably: what `geolulc map` does.

    Finished chunks are kept in `out_dir` until the map is written. Returns the summary it prints:
    outputs, statistics, scenes, grid, stage timings. `options` as for `classify`.
    """
    return run_map(MapRequest(aoi=Path(aoi) if aoi else None, date=date,
                              scenes=_scene_list(scenes), out_dir=Path(out_dir),
                              **{"progress": False, **options}))


def write(landcover: LandCover, out_dir: str | Path = "outputs", *, name: str | None = None
          ) -> dict[str, str]:
    """Write every output of a classified map into `out_dir`; returns {kind: path}.

    The outputs are the map (COG with colour table), confidence, probabilities, clear-observation
    count, statistics (JSON, CSV), QGIS style and quicklook.
    """
    outputs, _ = write_landcover(landcover, Path(out_dir), name)
    return outputs


@dataclass
class Stack:
    """Harmonised, cloud-masked bands of an area on its grid."""

    dn: np.ndarray  # uint16 (bands, rows, cols): reflectance × 10000, 0 where not clear
    clear: np.ndarray  # bool (rows, cols)
    bands: list[str]
    crs: CRS
    transform: Affine


def read(*, scenes: list[Scene | str | Path], aoi: str | Path | None = None,
         bands: list[str] | tuple[str, ...] = ("B02", "B03", "B04", "B08"),
         resolution: float = 10.0, crs: str | None = None, composite: str = "none",
         mask_dilate: int = 0, toa: bool = False,
         max_area_km2: float = DEFAULT_MAX_AREA_KM2) -> Stack:
    """The scenes' bands over the AOI (or the first scene's extent), harmonised and cloud-masked.

    The grid is aligned to the map's (UTM zone of the centre, or `crs`) and the bands are harmonised
    to one processing baseline; `composite` median/best/none as in `map`; `toa` restores
    top-of-atmosphere reflectance for L2A.
    """
    from rasterio.windows import Window

    from geolulc.core.grid import choose_crs, grid_for_bounds, project_geometry
    from geolulc.io.aoi import load_aoi
    from geolulc.io.bands import normalise_band
    from geolulc.io.read import Masking, StackReader
    from geolulc.mapping.request import check_grid_fits, scene_extent_wgs84

    items = [s if isinstance(s, Scene) else load_scene(s) for s in _scene_list(scenes)]
    if not items:
        raise GeolulcError("read needs at least one scene")
    if isinstance(bands, str) or not bands:
        raise GeolulcError(f"bands must be a list of band names such as ['B04', 'B08'], not "
                           f"{bands!r}")
    try:
        bands = [normalise_band(b) for b in bands]
    except ValueError as exc:
        raise GeolulcError(f"bands: {exc}") from None
    if composite not in ("none", "median", "best") or mask_dilate < 0 or resolution <= 0:
        raise GeolulcError("composite must be none, median or best, mask_dilate ≥ 0 and "
                           "resolution > 0")
    region = (load_aoi(Path(aoi), max_area_km2).geometry if aoi else
              scene_extent_wgs84(items[0]))
    grid_crs = choose_crs(region, crs)
    grid = grid_for_bounds(project_geometry(region, grid_crs).bounds, grid_crs, resolution, 1, 1)
    check_grid_fits(grid, len(bands))
    with StackReader(items, list(bands), grid, Masking(composite, mask_dilate,
                                                       restore_toa=toa)) as reader:
        pixels = reader.read(Window(0, 0, grid.cols, grid.rows))
    return Stack(pixels.dn, pixels.clear, list(bands), grid.crs, grid.map_transform)


def change(*, before: str | Path | None = None, after: str | Path | None = None,
           aoi: str | Path | None = None, dates: list[str] | None = None,
           model: str | Path = DEFAULT_MODEL, method: str = "auto",
           threshold: float | None = None, resample: bool = False, device: str = "auto",
           **options) -> list:
    """Change between two scenes or maps (`before`, `after`) or between `dates` over `aoi`.

    Returns a `DatePair` (before, after, change) per consecutive pair, and first → last for more
    than two dates. Nothing is written; `options` are those of `classify`.
    """
    from geolulc.change_detection.job import detect_changes

    req = MapRequest(aoi=Path(aoi) if aoi else None, model=str(model), device=device,
                     **{"progress": False, **options})
    found = detect_changes(req, list(dates or []), Path(before) if before else None,
                           Path(after) if after else None, threshold, resample, method,
                           write_maps=False, cache=False)
    return found.pairs


def write_change(pair, out_dir: str | Path = "outputs", *, name: str = "change",
                 vector: bool = False) -> dict[str, str]:
    """Write one `DatePair` of `change` into `out_dir`; returns {kind: path}.

    The files are the from-to COG, change mask and probability, transitions CSV, summary JSON,
    side-by-side PNG and, with `vector`, polygons (GeoPackage).
    """
    from geolulc.change_detection.files import write_change as write_files
    from geolulc.io.atomic import safe_name

    stem = safe_name(f"{name}_{pair.before.name}_{pair.after.name}", "change")
    return write_files(Path(out_dir), stem, pair.before, pair.after, pair.change, vector)


def _scene_list(scenes) -> list:
    """`scenes` as a list: one path or scene is one scene, not the characters of its path."""
    if scenes is None:
        return []
    if isinstance(scenes, (str, Path, Scene)):
        return [scenes]
    return list(scenes)
