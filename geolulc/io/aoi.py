"""Areas of interest: read any vector format GDAL knows, validate, and return one WGS84 geometry."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeAlias

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import shapely.affinity
import shapely.errors
import shapely.geometry
from pyproj import Geod
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity

from geolulc.defaults import DEFAULT_MAX_AREA_KM2
from geolulc.errors import AOIError, GeolulcError, MissingInputError

log = logging.getLogger(__name__)

#: The ellipsoid areas are measured on.
_GEOD = Geod(ellps="WGS84")


#: What an AOI may be given as: a vector file, a shapely geometry, a GeoJSON mapping, or any
#: object with `__geo_interface__` (a geopandas frame's geometry, a pystac item's geometry …).
class SupportsGeoInterface(Protocol):
    """Any object that describes its geometry as GeoJSON (the `__geo_interface__` protocol)."""

    @property
    def __geo_interface__(self) -> dict[str, Any]: ...


AOILike: TypeAlias = str | Path | BaseGeometry | Mapping[str, Any] | SupportsGeoInterface


@dataclass(frozen=True)
class AOI:
    """An area of interest in EPSG:4326 (longitude, latitude)."""

    geometry: BaseGeometry
    name: str

    @property
    def area_km2(self) -> float:
        """Geodesic area in km², the figure checked against the AOI size limit."""
        return geodesic_area_km2(self.geometry)


def geodesic_area_km2(geometry: BaseGeometry) -> float:
    """Area on the WGS84 ellipsoid, independent of any map projection."""
    return abs(_GEOD.geometry_area_perimeter(geometry)[0]) / 1e6


def unwrap_antimeridian(geometry: BaseGeometry) -> BaseGeometry:
    """An AOI written across the antimeridian as one compact shape (longitudes up to 360).

    As it stands such an AOI (179.9 … −179.9) spans 359.8°: its western-hemisphere longitudes are
    moved by +360. Only a shape that this makes narrower by more than half the globe is taken
    to cross the antimeridian: one from −20° to 170° is as wide as it is written (RFC 7946 reads
    an unsplit ring that way), not 170° … 340°. Geometries narrower than 180° are unchanged.
    """
    minx, _, maxx, _ = geometry.bounds
    if maxx - minx <= 180:
        return geometry
    unwrapped = shapely.transform(
        geometry, lambda xy: np.column_stack([np.where(xy[:, 0] < 0, xy[:, 0] + 360, xy[:, 0]),
                                              xy[:, 1]]))
    return unwrapped if unwrapped.bounds[2] - unwrapped.bounds[0] < maxx - minx - 180 else geometry


def split_antimeridian(geometry: BaseGeometry) -> BaseGeometry:
    """The AOI in plain −180…180 longitudes for catalogue searches.

    A shape that crosses the antimeridian becomes two parts, one on each side, instead of a box
    around the globe.
    """
    if geometry.bounds[2] <= 180:
        return geometry
    east = geometry.intersection(box(-180, -90, 180, 90))
    west = shapely.affinity.translate(geometry.intersection(box(180, -90, 540, 90)), xoff=-360)
    return shapely.union_all([g for g in (east, west) if not g.is_empty])


def _read_layers(path: Path) -> gpd.GeoDataFrame:
    """Every layer of the file (a GeoPackage may hold several), in one CRS.

    An AOI is all of what the user named, never its first layer alone.
    """
    import pyogrio

    layers = [name for name, kind in pyogrio.list_layers(path) if kind is not None]
    if len(layers) <= 1:
        return gpd.read_file(path)
    frames = [gpd.read_file(path, layer=name) for name in layers]
    crs = {str(f.crs) for f in frames if len(f)}
    if len(crs) > 1:
        raise AOIError(f"AOI {path} has {len(layers)} layers in different CRSs "
                           f"({', '.join(sorted(crs))}): put the area in one layer")
    frames = [f for f in frames if len(f)] or frames[:1]
    log.info("AOI %s: %d layers read (%s)", path.name, len(layers), ", ".join(layers))
    return gpd.GeoDataFrame(pd.concat([f[["geometry"]] for f in frames], ignore_index=True),
                            geometry="geometry", crs=frames[0].crs)


def load_aoi(aoi: AOILike, max_area_km2: float = DEFAULT_MAX_AREA_KM2) -> AOI:
    """An AOI from a vector file, a geometry or a GeoJSON mapping, validated; every problem is one line.

    The file may be in any format GDAL reads; a shapely geometry, a GeoJSON mapping or anything with
    `__geo_interface__` is taken too (geometries without a CRS are EPSG:4326, as GeoJSON says). The
    AOI is validated and checked against `max_area_km2`.
    """
    if isinstance(aoi, AOI):
        return _checked([aoi.geometry], 4326, aoi.name, f"AOI {aoi.name}", max_area_km2)
    if isinstance(aoi, (str, Path)):
        return _read_aoi(Path(aoi), max_area_km2)
    geometry = aoi
    if not isinstance(geometry, BaseGeometry):
        mapping = getattr(aoi, "__geo_interface__", aoi)
        if not isinstance(mapping, dict):
            raise AOIError(f"`aoi` must be a vector file, a shapely geometry or a GeoJSON "
                           f"mapping, not {type(aoi).__name__}")
        try:
            geometry = (shapely.geometry.shape(mapping) if "coordinates" in mapping
                        or mapping.get("type") == "GeometryCollection"
                        else _features_geometry(mapping))
        except (KeyError, TypeError, ValueError, AttributeError, shapely.errors.GEOSException) as exc:
            raise AOIError(f"`aoi` is not a GeoJSON geometry or feature collection "
                           f"({type(exc).__name__}: {str(exc)[:120]})") from None
    return _checked([geometry], 4326, "aoi", "the AOI geometry", max_area_km2)


def _features_geometry(mapping: dict) -> BaseGeometry:
    """The union of a GeoJSON Feature's or FeatureCollection's geometries."""
    features = mapping["features"] if mapping.get("type") == "FeatureCollection" else [mapping]
    shapes = [shapely.geometry.shape(f["geometry"]) for f in features if f.get("geometry")]
    if not shapes:
        raise ValueError("no geometry")
    return shapely.union_all(shapes)


def _read_aoi(path: Path, max_area_km2: float) -> AOI:
    """Read an AOI file: every layer, in one CRS."""
    if not path.exists():
        raise MissingInputError(f"AOI file {path} does not exist")
    try:
        frame = _read_layers(path)
    except GeolulcError:
        raise
    except Exception as exc:  # pyogrio/fiona raise many types for unreadable files
        if _non_finite_coordinates(path):
            raise AOIError(f"AOI {path} has coordinates that are not numbers (NaN or "
                           "Infinity)") from None
        raise AOIError(f"cannot read AOI {path}: {str(exc).splitlines()[0]}") from None
    geoms = [g for g in frame.geometry if g is not None and not g.is_empty]
    if frame.crs is None and geoms:
        raise AOIError(f"AOI {path} has an unknown CRS (add a .prj or a CRS to the file)")
    aoi = _checked(geoms, frame.crs, path.stem, f"AOI {path}", max_area_km2)
    log.info("AOI %s: %.1f km²", path.name, aoi.area_km2)
    return aoi


def _non_finite_coordinates(path: Path) -> bool:
    """Whether a GeoJSON file holds NaN or infinite numbers (which GEOS reports as bad rings)."""
    if path.suffix.lower() not in (".json", ".geojson") or path.stat().st_size > 50 * 2**20:
        return False
    found = False

    def constant(_: str) -> float:
        nonlocal found
        found = True
        return 0.0

    try:
        json.loads(path.read_text(errors="replace"), parse_constant=constant)
    except (ValueError, RecursionError):
        return False
    return found


def _checked(geoms: list[BaseGeometry], crs: object, name: str, what: str,
             max_area_km2: float) -> AOI:
    """Polygons, valid, on the globe and within the area limit, merged into one in EPSG:4326."""
    geoms = [g for g in geoms if g is not None and not g.is_empty]
    if not geoms:
        raise AOIError(f"{what} has no geometry (empty file or empty features)")
    kinds = {g.geom_type for g in geoms}
    if not kinds <= {"Polygon", "MultiPolygon"}:
        raise AOIError(f"{what} must contain polygons, found {', '.join(sorted(kinds))}")
    for i, geom in enumerate(geoms):
        if not geom.is_valid:
            raise AOIError(f"{what} feature {i} is invalid: {explain_validity(geom)}")
    as_given = gpd.GeoSeries(geoms, crs=crs).to_crs(4326)
    merged = gpd.GeoSeries([shapely.union_all(geoms)], crs=crs)
    wgs84 = unwrap_antimeridian(merged.to_crs(4326).iloc[0])
    minx, miny, maxx, maxy = wgs84.bounds
    if not (-180 <= minx <= maxx <= 360 and maxx - minx <= 360 and -90 <= miny <= maxy <= 90):
        raise AOIError(f"{what} lies outside the globe in EPSG:4326; is its CRS right?")
    west, south, east, north = as_given.total_bounds
    circles = east - west > 180 and maxx - minx < 1e-6  # all longitudes, unwrapped to a line
    if circles or maxx - minx > 180 or north - south > 90:  # no geodesic area past that
        raise AOIError(f"{what} spans {east - west:.0f}° of longitude and {north - south:.0f}° "
                       f"of latitude, more than a hemisphere: map a smaller area (the limit is "
                       f"{max_area_km2:,.0f} km²)")
    aoi = AOI(wgs84, name)
    area = aoi.area_km2
    if area <= 0:
        raise AOIError(f"{what} has zero area")
    if area > max_area_km2:
        raise AOIError(f"{what} covers {area:,.0f} km², more than the limit of "
                       f"{max_area_km2:,.0f} km² (raise it with `max_area_km2`)")
    return aoi
