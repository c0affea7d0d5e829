"""STAC Items that describe what a run wrote, so maps can be searched, served and loaded.

Each `map` and `change` run writes ``NAME.json`` beside its files: a STAC Item whose geometry is
the footprint of the valid data, with the projection (EPSG, shape, transform), raster (data
type, no-data, scale), classification (class names and colours) and file (checksum, size)
extensions, asset roles, ``derived_from`` links to the source scenes, and the geolulc version
and model (with its digest). Asset hrefs are relative, so a folder of runs can be moved, served
(rustac, stac-fastapi, titiler) or loaded with odc-stac and stackstac as it is.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from affine import Affine
from pyproj import CRS
from rasterio.features import shapes
from rasterio.transform import array_bounds
from rasterio.warp import transform_bounds, transform_geom
from shapely.geometry import box, mapping, shape

from geolulc.errors import GeolulcError, MissingInputError, ParameterError
from geolulc.io.atomic import write_text_atomic
from geolulc.io.catalog import parse_date_range

STAC_VERSION = "1.1.0"
EXTENSIONS = {
    "projection": "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "raster": "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "classification": "https://stac-extensions.github.io/classification/v2.0.0/schema.json",
    "file": "https://stac-extensions.github.io/file/v2.1.0/schema.json",
    "processing": "https://stac-extensions.github.io/processing/v1.2.0/schema.json",
}
COG = "image/tiff; application=geotiff; profile=cloud-optimized"
MEDIA_TYPES = {".tif": COG, ".png": "image/png", ".json": "application/json",
               ".csv": "text/csv", ".qml": "application/xml",
               ".gpkg": "application/geopackage+sqlite3"}
#: Longest side of the valid-data mask traced for the footprint (larger masks are decimated).
FOOTPRINT_CELLS = 1024


@dataclass(frozen=True)
class Asset:
    """One file of a run as the Item lists it."""

    path: Path
    roles: list[str]
    title: str
    bands: list[dict[str, Any]] | None = None
    """raster:bands entries (`raster_band`), one per band of a raster."""
    extra: dict[str, Any] = field(default_factory=dict)


def raster_band(dtype: str, nodata: float | None = None, *, scale: float | None = None,
                unit: str | None = None, name: str | None = None,
                classes: list[str] | None = None,
                colors: list[tuple[int, int, int]] | None = None) -> dict[str, Any]:
    """A raster:bands entry; with `classes`, the classification extension's classes too."""
    band: dict[str, Any] = {"data_type": dtype}
    if name:
        band["name"] = name
    if nodata is not None:
        band["nodata"] = nodata
    if scale is not None:
        band["scale"], band["offset"] = scale, 0.0
    if unit:
        band["unit"] = unit
    if classes is not None:
        entries = [{"value": i, "name": _class_name(c), "title": c,
                    **({"color_hint": "{:02X}{:02X}{:02X}".format(*colors[i])} if colors else {})}
                   for i, c in enumerate(classes)]
        if nodata is not None:
            entries.append({"value": int(nodata), "name": "no_data", "nodata": True})
        band["classification:classes"] = entries
    return band


def footprint(valid: np.ndarray, transform: Affine, crs: CRS) -> dict[str, Any]:
    """The outline of `valid` cells in EPSG:4326, as GeoJSON.

    It is traced on a mask of at most `FOOTPRINT_CELLS` a side; with nothing valid, it is the
    grid's extent.
    """
    rows, cols = valid.shape
    step = max(1, math.ceil(max(rows, cols) / FOOTPRINT_CELLS))
    coarse = valid[::step, ::step]
    coarse_transform = transform @ Affine.scale(step)
    parts = [shape(geom) for geom, value in
             shapes(coarse.astype(np.uint8), mask=coarse, transform=coarse_transform) if value]
    if parts:
        outline = shapely.union_all(parts).simplify(abs(coarse_transform.a), preserve_topology=True)
    else:
        outline = box(*_grid_bounds(transform, (rows, cols)))
    return transform_geom(crs, "EPSG:4326", mapping(outline))


def file_checksum(path: Path) -> str:
    """The file extension's checksum: a SHA2-256 multihash, hex-encoded."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return "1220" + digest.hexdigest()


def period_of(dates: list[datetime], first: str | None = None,
              last: str | None = None) -> dict[str, str | None]:
    """STAC's datetime fields of a map or a change.

    The period from date `first` to date `last` where both are dates (a day, month, year or
    range), else that of the acquisitions `dates`: one instant, or a start and an end.
    """
    try:  # labels such as "before" and "after" (local scenes, maps) are no dates
        start = parse_date_range(first).split("/")[0] if first else None
        end = parse_date_range(last).split("/")[1] if last else None
    except GeolulcError:
        start = end = None
    if start and end:
        return {"datetime": None, "start_datetime": start, "end_datetime": end}
    stamps = sorted(d if d.tzinfo else d.replace(tzinfo=timezone.utc) for d in dates)
    if not stamps:
        return {"datetime": _iso(datetime.now(timezone.utc))}
    if stamps[0] == stamps[-1]:
        return {"datetime": _iso(stamps[0])}
    return {"datetime": None, "start_datetime": _iso(stamps[0]),
            "end_datetime": _iso(stamps[-1])}


def write_item(folder: Path, item_id: str, *, crs: CRS, transform: Affine,
               shape_: tuple[int, int], valid: np.ndarray, when: dict[str, str | None],
               assets: dict[str, Asset], sources: list[str], properties: dict[str, Any]) -> Path:
    """Write ``folder/item_id.json`` describing `assets`, which must lie in `folder`."""
    geometry = footprint(valid, transform, crs)
    bounds = shapely.bounds(shape(geometry)).tolist()
    if not all(math.isfinite(v) for v in bounds):
        bounds = list(transform_bounds(crs, "EPSG:4326", *_grid_bounds(transform, shape_)))
    item_assets = {}
    for key, asset in assets.items():
        path = Path(asset.path)
        if path.parent.resolve() != folder.resolve() or path.name.startswith("."):
            raise ParameterError(f"asset {path} would lie outside the item's folder {folder}")
        entry: dict[str, Any] = {
            "href": f"./{path.name}", "type": MEDIA_TYPES.get(path.suffix.lower(),
                                                           "application/octet-stream"),
            "title": asset.title, "roles": asset.roles,
            "file:checksum": file_checksum(path), "file:size": path.stat().st_size,
            **asset.extra,
        }
        if asset.bands is not None:
            entry["raster:bands"] = asset.bands
        item_assets[key] = entry
    epsg = crs.to_epsg()
    item = {
        "type": "Feature", "stac_version": STAC_VERSION,
        "stac_extensions": sorted(EXTENSIONS.values()),
        "id": item_id, "geometry": geometry, "bbox": bounds,
        "properties": {
            **when,
            "created": _iso(datetime.now(timezone.utc)),
            "proj:code": f"EPSG:{epsg}" if epsg else None,
            **({} if epsg else {"proj:wkt2": crs.to_wkt()}),
            "proj:shape": list(shape_), "proj:transform": list(transform)[:6],
            "proj:bbox": list(_grid_bounds(transform, shape_)),
            **properties,
        },
        "links": [{"rel": "derived_from", "href": href} for href in sources],
        "assets": item_assets,
    }
    path = folder / f"{item_id}.json"
    write_text_atomic(path, json.dumps(item, indent=2) + "\n")
    return path


def _grid_bounds(transform: Affine, shape_: tuple[int, int]) -> tuple[float, float, float, float]:
    west, south, east, north = array_bounds(shape_[0], shape_[1], transform)
    return min(west, east), min(south, north), max(west, east), max(south, north)


def _class_name(name: str) -> str:
    """A class name in the extension's form (letters, digits, underscores)."""
    return "".join(c if c.isalnum() else "_" for c in name).strip("_").lower() or "class"


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_catalog(folder: Path, title: str | None = None) -> tuple[Path, list[str]]:
    """Write ``folder/catalog.json``, a STAC Catalog of the Items geolulc wrote in `folder`.

    Only JSON files directly in `folder` that are STAC Items are linked, by relative href, so
    the catalogue moves with the folder. Returns its path and the Items' ids.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingInputError(f"folder {folder} does not exist")
    links = [{"rel": "root", "href": "./catalog.json", "type": "application/json"}]
    ids = []
    for path in sorted(folder.glob("*.json")):
        try:
            item = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if not (isinstance(item, dict) and item.get("type") == "Feature"
                and "stac_version" in item and "processing:software" in item.get("properties", {})):
            continue  # not an Item geolulc wrote (stats, summaries, other files)
        ids.append(str(item.get("id")))
        links.append({"rel": "item", "href": f"./{path.name}", "type": "application/geo+json",
                      "title": item.get("properties", {}).get("title")})
    catalog = {"type": "Catalog", "stac_version": STAC_VERSION, "id": folder.resolve().name,
               "title": title or f"geolulc outputs in {folder.resolve().name}",
               "description": "Land-cover maps and changes written by geolulc", "links": links}
    path = folder / "catalog.json"
    write_text_atomic(path, json.dumps(catalog, indent=2) + "\n")
    return path, ids
