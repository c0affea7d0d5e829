"""Areas of interest: read any vector format GDAL knows, validate, and return one WGS84 geometry."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import shapely.affinity
from pyproj import Geod
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity

from geolulc.defaults import DEFAULT_MAX_AREA_KM2
from geolulc.errors import GeolulcError

log = logging.getLogger(__name__)

#: Default upper bound on the AOI area: about two Sentinel-2 tiles.
_GEOD = Geod(ellps="WGS84")


@dataclass
class AOI:
    """An area of interest in EPSG:4326 (longitude, latitude)."""

    geometry: BaseGeometry
    name: str

    @property
    def area_km2(self) -> float:
        return geodesic_area_km2(self.geometry)


def geodesic_area_km2(geometry: BaseGeometry) -> float:
    """Area on the WGS84 ellipsoid, independent of any map projection."""
    return abs(_GEOD.geometry_area_perimeter(geometry)[0]) / 1e6


def unwrap_antimeridian(geometry: BaseGeometry) -> BaseGeometry:
    """An AOI written across the antimeridian (179.9 … −179.9) spans 359.8° as it stands: move
    its western-hemisphere longitudes by +360 so it is one compact shape (longitudes up to
    360). Geometries narrower than 180° are returned unchanged."""
    minx, _, maxx, _ = geometry.bounds
    if maxx - minx <= 180:
        return geometry
    unwrapped = shapely.transform(
        geometry, lambda xy: np.column_stack([np.where(xy[:, 0] < 0, xy[:, 0] + 360, xy[:, 0]),
                                              xy[:, 1]]))
    return unwrapped if unwrapped.bounds[2] - unwrapped.bounds[0] < maxx - minx else geometry


def split_antimeridian(geometry: BaseGeometry) -> BaseGeometry:
    """The AOI in plain −180…180 longitudes for catalogue searches: a shape that crosses the
    antimeridian becomes two parts, one on each side, instead of a box around the globe."""
    if geometry.bounds[2] <= 180:
        return geometry
    east = geometry.intersection(box(-180, -90, 180, 90))
    west = shapely.affinity.translate(geometry.intersection(box(180, -90, 540, 90)), xoff=-360)
    return shapely.union_all([g for g in (east, west) if not g.is_empty])


def _read_layers(path: Path) -> gpd.GeoDataFrame:
    """Every layer of the file (a GeoPackage may hold several), in one CRS: an AOI is all of
    what the user named, never its first layer alone."""
    import pyogrio

    layers = [name for name, kind in pyogrio.list_layers(path) if kind is not None]
    if len(layers) <= 1:
        return gpd.read_file(path)
    frames = [gpd.read_file(path, layer=name) for name in layers]
    crs = {str(f.crs) for f in frames if len(f)}
    if len(crs) > 1:
        raise GeolulcError(f"AOI {path} has {len(layers)} layers in different CRSs "
                           f"({', '.join(sorted(crs))}): put the area in one layer")
    frames = [f for f in frames if len(f)] or frames[:1]
    log.info("AOI %s: %d layers read (%s)", path.name, len(layers), ", ".join(layers))
    return gpd.GeoDataFrame(pd.concat([f[["geometry"]] for f in frames], ignore_index=True),
                            geometry="geometry", crs=frames[0].crs)


def load_aoi(path: str | Path, max_area_km2: float = DEFAULT_MAX_AREA_KM2) -> AOI:
    """Read, validate and reproject an AOI file; every problem is a one-line GeolulcError."""
    path = Path(path)
    if not path.exists():
        raise GeolulcError(f"AOI file {path} does not exist")
    try:
        frame = _read_layers(path)
    except GeolulcError:
        raise
    except Exception as exc:  # pyogrio/fiona raise many types for unreadable files
        raise GeolulcError(f"cannot read AOI {path}: {str(exc).splitlines()[0]}") from None
    geoms = [g for g in frame.geometry if g is not None and not g.is_empty]
    if not geoms:
        raise GeolulcError(f"AOI {path} has no geometry (empty file or empty features)")
    if frame.crs is None:
        raise GeolulcError(f"AOI {path} has an unknown CRS (add a .prj or a CRS to the file)")
    kinds = {g.geom_type for g in geoms}
    if not kinds <= {"Polygon", "MultiPolygon"}:
        raise GeolulcError(f"AOI {path} must contain polygons, found {', '.join(sorted(kinds))}")
    for i, geom in enumerate(geoms):
        if not geom.is_valid:
            raise GeolulcError(f"AOI {path} feature {i} is invalid: {explain_validity(geom)}")
    merged = gpd.GeoSeries([shapely.union_all(geoms)], crs=frame.crs)
    wgs84 = unwrap_antimeridian(merged.to_crs(4326).iloc[0])
    minx, miny, maxx, maxy = wgs84.bounds
    if not (-180 <= minx <= maxx <= 360 and maxx - minx <= 360 and -90 <= miny <= maxy <= 90):
        raise GeolulcError(f"AOI {path} lies outside the globe in EPSG:4326; is its CRS right?")
    aoi = AOI(wgs84, path.stem)
    area = aoi.area_km2
    if area <= 0:
        raise GeolulcError(f"AOI {path} has zero area")
    if area > max_area_km2:
        raise GeolulcError(f"AOI {path} covers {area:,.0f} km², more than the limit of "
                           f"{max_area_km2:,.0f} km² (raise it with --max-area)")
    log.info("AOI %s: %.1f km²", path.name, area)
    return aoi
