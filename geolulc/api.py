"""The Python API: keyword-only functions that return data; writing is a separate step.

    import geolulc
    scenes = geolulc.search(aoi="aoi/rennes.geojson", date="2023-06")
    landcover = geolulc.classify(scenes=scenes, aoi="aoi/rennes.geojson")
    print(landcover.classes, landcover.labels.shape, landcover.grid.crs)
    geolulc.write(landcover, "outputs")

The command line (`geolulc map`) is these three calls.
"""

from __future__ import annotations

from pathlib import Path

from geolulc.defaults import DEFAULT_COLLECTION, DEFAULT_MAX_AREA_KM2, DEFAULT_MODEL, EARTH_SEARCH
from geolulc.io.scenes import Scene, load_scene
from geolulc.mapping.pipeline import LandCover, MapRequest, classify_request, write_landcover


def search(*, aoi: str | Path, date: str, catalog: str = EARTH_SEARCH,
           collection: str = DEFAULT_COLLECTION, max_cloud: float | None = None,
           max_area_km2: float = DEFAULT_MAX_AREA_KM2) -> list[Scene]:
    """Scenes of a STAC catalogue that intersect the AOI (a vector file) in the period (day,
    month, year or range), least cloudy first."""
    from geolulc.io.aoi import load_aoi
    from geolulc.io.catalog import search_scenes

    area = load_aoi(Path(aoi), max_area_km2)
    return search_scenes(area.geometry, date, catalog, collection, max_cloud)


def classify(*, scenes: list[Scene | str | Path] | None = None, aoi: str | Path | None = None,
             date: str | None = None, model: str | Path = DEFAULT_MODEL, device: str = "auto",
             **options) -> LandCover:
    """Read and classify an area: `scenes` (from `search`, or local paths as `map --scene`
    takes) or, with `aoi` and `date`, the scenes a search finds. `options` are the other
    fields of `MapRequest` (stride, resolution, crs, composite, l2a, min_clear, batch_size,
    precision, chunk_rows, workers, scheduler, progress, catalog, collection, max_cloud)."""
    items = [s if isinstance(s, Scene) else load_scene(s) for s in scenes or []]
    req = MapRequest(aoi=Path(aoi) if aoi else None, date=date, scenes=items, model=str(model),
                     device=device, **{"progress": False, **options})
    return classify_request(req, cache=False)


def write(landcover: LandCover, out_dir: str | Path = "outputs", *, name: str | None = None
          ) -> dict[str, str]:
    """Write the map (COG with colour table), confidence, probabilities, clear-observation
    count, statistics (JSON, CSV), QGIS style and quicklook; returns {kind: path}."""
    outputs, _ = write_landcover(landcover, Path(out_dir), name)
    return outputs
