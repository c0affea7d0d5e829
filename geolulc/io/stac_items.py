"""STAC Items that describe what a run wrote, so maps can be searched, served, loaded and checked.

Each `map` and `change` run writes ``NAME.json`` beside its files: a STAC Item built with pystac
whose geometry is the footprint of the valid data, with the projection (code, shape, transform,
bbox), raster (data type, no-data, scale), classification (class names, titles and colours) and
file (checksum, size) extensions through pystac's extension classes, the processing extension's
``processing:software`` (pystac has no class for it), asset roles, and the model (with its digest)
as ``geolulc:*`` properties. Asset hrefs are relative (``./NAME_landcover.tif``), so a folder of
runs can be moved, served (rustac, stac-fastapi, titiler) or loaded with odc-stac and stackstac.

Sources. ``derived_from`` links name what a run was made from. A URL (http, https, s3, gs: a
searched scene's STAC item) is kept as it is. A local source (a scene folder or item JSON, an
earlier map's Item) inside the Item's folder tree gets a relative href (``./rennes1.json``,
``./scenes/imgs_1``), which survives moving the folder. A local source outside that tree gets
no link, since an absolute ``file://`` href breaks as soon as the folder is moved or served; the
Item still names it by id: a map's ``geolulc:scenes`` lists its scenes, a change's
``geolulc:before`` and ``geolulc:after`` name the maps it compares.

Dates. A period asked for (``--date``) runs from its first day's 00:00:00 to its last day's
23:59:59 (``start_datetime``/``end_datetime``). Without one, a single acquisition is its instant
(``datetime``) and several (a composite, a change) span their first acquisition's day to their
last one's, in whole days as a series' per-acquisition Items do: a composite starts with its
first series Item and ends with its last. A change of two maps spans the maps' periods. A
map's ``geolulc:date`` is the date asked or else its acquisition day or days (``2015-08-21``,
``2015-08-21/2017-06-21``).

Catalogue. `write_catalog` builds ``catalog.json`` with pystac over the Items geolulc wrote in a
folder, self-contained (every href relative), and gives each Item ``root`` and ``parent`` links
to it; each file is replaced atomically, so a failure leaves every Item whole.

Validation. `validate_catalog` checks the catalogue and its Items against the STAC 1.1.0 schemas
pystac ships and the extension schemas bundled in ``geolulc/io/stac_schemas`` (their origin is in
NOTICE there), offline: a schema that is not bundled is an error, never a download.
`OfflineValidator` is the same check as a pystac validator (``pystac.validation.set_validator``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import jsonschema
import numpy as np
import pystac
import shapely
from affine import Affine
from pyproj import CRS
from pystac.errors import STACValidationError
from pystac.extensions.classification import Classification, ClassificationExtension
from pystac.extensions.file import FileExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, RasterBand, RasterExtension
from pystac.layout import AsIsLayoutStrategy
from pystac.stac_io import DefaultStacIO
from pystac.validation.local_validator import get_local_schema_cache
from pystac.validation.stac_validator import STACValidator
from rasterio.features import shapes
from rasterio.transform import array_bounds
from rasterio.warp import transform_bounds, transform_geom
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from shapely.geometry import box, mapping, shape

from geolulc.core.legend import Legend
from geolulc.errors import DataError, GeolulcError, MissingInputError, ParameterError
from geolulc.io.atomic import write_text_atomic
from geolulc.io.catalog import parse_date_range

STAC_VERSION = "1.1.0"
#: The extensions geolulc's Items declare, and the bundled schema of each (geolulc/io/stac_schemas).
EXTENSIONS = {
    "projection": "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "raster": "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "classification": "https://stac-extensions.github.io/classification/v2.0.0/schema.json",
    "file": "https://stac-extensions.github.io/file/v2.1.0/schema.json",
    "processing": "https://stac-extensions.github.io/processing/v1.1.0/schema.json",
}
COG = "image/tiff; application=geotiff; profile=cloud-optimized"
MEDIA_TYPES = {".tif": COG, ".png": "image/png", ".json": "application/json",
               ".csv": "text/csv", ".qml": "application/xml",
               ".gpkg": "application/geopackage+sqlite3"}
#: Field prefixes of the extensions whose prefix is not their name.
PREFIXES = {"projection": "proj"}
#: Longest side of the valid-data mask traced for the footprint (larger masks are decimated).
FOOTPRINT_CELLS = 1024
#: Schemes whose hrefs stay valid wherever the Item goes.
URL_SCHEMES = ("http", "https", "s3", "gs")
CATALOG_FILE = "catalog.json"


@dataclass(frozen=True)
class Asset:
    """One file of a run as the Item lists it."""

    path: Path
    roles: list[str]
    title: str
    bands: list[RasterBand] | None = None
    """raster:bands entries (`raster_band`), one per band of a raster."""
    extra: dict[str, Any] = field(default_factory=dict)


def raster_band(dtype: str, nodata: float | None = None, *, scale: float | None = None,
                unit: str | None = None, name: str | None = None,
                legend: Legend | None = None) -> RasterBand:
    """A raster:bands entry; with a `legend`, the classification extension's classes too.

    A class's `name` is its machine form (``built_area``), its `title` the words people read
    (``built area``, `Legend.titles`); the no-data value is a class of its own marked `nodata`.
    """
    band = RasterBand.create(data_type=DataType(dtype), nodata=nodata, unit=unit, scale=scale,
                             offset=0.0 if scale is not None else None)
    if name:
        band.properties["name"] = name
    if legend is not None:
        entries = [Classification.create(
            value=i, name=name.lower(), title=title,
            color_hint="{:02X}{:02X}{:02X}".format(*color))
            for i, (name, title, color) in enumerate(zip(legend.identifiers, legend.titles,
                                                         legend.colors))]
        if nodata is not None:
            entries.append(Classification.create(value=int(nodata), name="no_data",
                                                 title="no data", nodata=True))
        ClassificationExtension.ext(band).classes = entries
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
    range), else that of the acquisitions `dates`: one instant, or the whole days from the first
    acquisition's to the last one's (as the days of a series' maps).
    """
    try:  # labels such as "before" and "after" (local scenes, maps) are no dates
        start = parse_date_range(first).split("/")[0] if first else None
        end = parse_date_range(last).split("/")[1] if last else None
    except GeolulcError:
        start = end = None
    if start and end:
        return {"datetime": None, "start_datetime": start, "end_datetime": end}
    stamps = _utc(dates)
    if not stamps:
        return {"datetime": _iso(datetime.now(timezone.utc))}
    if stamps[0] == stamps[-1]:
        return {"datetime": _iso(stamps[0])}
    return {"datetime": None, "start_datetime": f"{stamps[0].date().isoformat()}T00:00:00Z",
            "end_datetime": f"{stamps[-1].date().isoformat()}T23:59:59Z"}


def acquisition_days(dates: list[datetime]) -> str | None:
    """The day of the acquisitions `dates` (UTC), or their first and last day as 'A/B'."""
    days = sorted({d.date().isoformat() for d in _utc(dates)})
    if not days:
        return None
    return days[0] if len(days) == 1 else f"{days[0]}/{days[-1]}"


def item_dates(hrefs: list[str]) -> list[datetime]:
    """The datetime, or start and end, of each local STAC Item among `hrefs` (a change's maps)."""
    stamps = []
    for href in hrefs:
        parsed = urlparse(href)
        if parsed.scheme not in ("", "file"):
            continue
        try:
            item = json.loads(Path(unquote(parsed.path) if parsed.scheme else href).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        properties = item.get("properties") if isinstance(item, dict) else None
        for key in ("datetime", "start_datetime", "end_datetime"):
            value = properties.get(key) if isinstance(properties, dict) else None
            if isinstance(value, str):
                with contextlib.suppress(ValueError):  # not a date: the Item says nothing
                    stamps.append(datetime.fromisoformat(value.replace("Z", "+00:00")))
    return stamps


def write_item(folder: Path, item_id: str, *, crs: CRS, transform: Affine,
               shape_: tuple[int, int], valid: np.ndarray, when: dict[str, str | None],
               assets: dict[str, Asset], sources: list[str], properties: dict[str, Any],
               home: Path | None = None) -> Path:
    """Write ``folder/item_id.json`` describing `assets`, which must lie in `folder`.

    `home` is the folder the Item is published in when `folder` stages it (default `folder`):
    local `sources` inside it are linked by relative href, those outside only by id.
    """
    geometry = footprint(valid, transform, crs)
    bounds = shapely.bounds(shape(geometry)).tolist()
    if not all(math.isfinite(v) for v in bounds):
        bounds = list(transform_bounds(crs, "EPSG:4326", *_grid_bounds(transform, shape_)))
    item = pystac.Item(
        item_id, geometry, bounds, datetime=_stamp(when.get("datetime")),
        start_datetime=_stamp(when.get("start_datetime")),
        end_datetime=_stamp(when.get("end_datetime")),
        properties={"created": _iso(datetime.now(timezone.utc))})
    epsg = crs.to_epsg()
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    proj.code = f"EPSG:{epsg}" if epsg else None
    proj.wkt2 = None if epsg else crs.to_wkt()
    proj.shape = list(shape_)
    proj.transform = list(transform)[:6]
    proj.bbox = list(_grid_bounds(transform, shape_))
    item.properties.update(properties)
    if any(key.startswith("processing:") for key in properties):
        item.stac_extensions.append(EXTENSIONS["processing"])
    for key, spec in assets.items():
        path = Path(spec.path)
        if path.parent.resolve() != folder.resolve() or path.name.startswith("."):
            raise ParameterError(f"asset {path} would lie outside the item's folder {folder}")
        asset = pystac.Asset(f"./{path.name}", title=spec.title, roles=list(spec.roles),
                             media_type=MEDIA_TYPES.get(path.suffix.lower(),
                                                        "application/octet-stream"),
                             extra_fields=dict(spec.extra))
        item.add_asset(key, asset)
        files_ext = FileExtension.ext(asset, add_if_missing=True)
        files_ext.checksum, files_ext.size = file_checksum(path), path.stat().st_size
        if spec.bands is not None:
            RasterExtension.ext(asset, add_if_missing=True).bands = spec.bands
            if any("classification:classes" in band.properties for band in spec.bands):
                ClassificationExtension.add_to(item)
    for href in sources:
        link = source_href(href, home or folder)
        if link:
            item.add_link(pystac.Link("derived_from", link))
    path = folder / f"{item_id}.json"
    write_text_atomic(path, json.dumps(item.to_dict(include_self_link=False,
                                                    transform_hrefs=False), indent=2) + "\n")
    return path


def source_href(href: str, home: Path) -> str | None:
    """The ``derived_from`` href of source `href` for an Item in `home` (see the module's Sources).

    A URL as it is, a local path inside `home` relative to it, None for a local path outside.
    """
    parsed = urlparse(href)
    if parsed.scheme in URL_SCHEMES:
        return href
    if parsed.scheme not in ("", "file") and len(parsed.scheme) > 1:  # another store's URL
        return href
    local = Path(unquote(parsed.path)) if parsed.scheme == "file" else Path(href)
    try:
        inside = local.resolve().relative_to(Path(home).resolve())
    except ValueError:
        return None
    return f"./{inside.as_posix()}"


def write_catalog(folder: Path, title: str | None = None) -> tuple[Path, list[str]]:
    """Write ``folder/catalog.json``, a STAC Catalog of the Items geolulc wrote in `folder`.

    Only JSON files directly in `folder` that are STAC Items geolulc wrote are linked, by
    relative href, and each gets root and parent links back, so the catalogue moves with the
    folder. Items keep their file names. Returns the catalogue's path and the Items' ids.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingInputError(f"folder {folder} does not exist")
    here = folder.resolve()
    catalog = pystac.Catalog(here.name, "Land-cover maps and changes written by geolulc",
                             title=title or f"geolulc outputs in {here.name}",
                             catalog_type=pystac.CatalogType.SELF_CONTAINED)
    # file:// URLs, not paths: pystac reads hrefs as URLs (a folder `maps#2` would be `maps`)
    catalog.set_self_href((here / CATALOG_FILE).as_uri())
    ids = []
    for path in sorted(here.glob("*.json")):
        data = _geolulc_item(path)
        if data is None:
            continue
        try:
            item = pystac.Item.from_dict(data, href=path.as_uri(), migrate=False)
        except (KeyError, TypeError, ValueError, pystac.STACError) as exc:
            raise DataError(f"{path} is a geolulc STAC Item pystac cannot read ({exc!r})") from None
        catalog.add_item(item, title=item.properties.get("title"), strategy=AsIsLayoutStrategy())
        ids.append(item.id)
    catalog.save(stac_io=_AtomicStacIO())
    return folder / CATALOG_FILE, ids


def _geolulc_item(path: Path) -> dict[str, Any] | None:
    """The JSON of `path` if it is a STAC Item geolulc wrote (not stats, summaries or others)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not (isinstance(data, dict) and data.get("type") == "Feature" and "stac_version" in data):
        return None
    properties = data.get("properties")
    software = properties.get("processing:software") if isinstance(properties, dict) else None
    return data if isinstance(software, dict) and "geolulc" in software else None


class _AtomicStacIO(DefaultStacIO):
    """pystac's file IO with each file replaced atomically: a failure leaves the old one whole."""

    def write_text_to_href(self, href: str, txt: str) -> None:
        # a path is a path (a folder may be named `maps#2`); only a file:// URL is parsed
        parsed = urlparse(href)
        write_text_atomic(Path(unquote(parsed.path)) if parsed.scheme == "file" else Path(href),
                          txt)


class OfflineValidator(STACValidator):
    """pystac's validator interface over the schemas on this machine: it never downloads.

    The core schemas are pystac's bundled STAC 1.1.0 ones, the extensions' those bundled in
    ``geolulc/io/stac_schemas``. A failure raises pystac's `STACValidationError` in one line
    naming the object and the failing field.
    """

    def validate_core(self, stac_dict: dict[str, Any], stac_object_type: pystac.STACObjectType,
                      stac_version: str, href: str | None = None) -> str:
        """Check `stac_dict` against STAC's own schema for its type and version."""
        kind = str(stac_object_type).lower()
        spec = "item" if kind == "feature" else kind
        uri = f"https://schemas.stacspec.org/v{stac_version}/{spec}-spec/json-schema/{spec}.json"
        _check(stac_dict, uri, href)
        return uri

    def validate_extension(self, stac_dict: dict[str, Any],
                           stac_object_type: pystac.STACObjectType, stac_version: str,
                           extension_id: str, href: str | None = None) -> str:
        """Check `stac_dict` against the bundled schema of extension `extension_id`."""
        _check(stac_dict, extension_id, href)
        return extension_id


def validate_catalog(path: str | Path) -> list[str]:
    """Check a catalogue (its folder or catalog.json) and every Item it links, offline.

    Each object is checked against its schemas (`OfflineValidator`), and each Item's root,
    parent and asset hrefs must lead to files that exist. Returns the Items' ids; the first
    failure raises `DataError` naming the file and the field.
    """
    path = Path(path)
    catalog_path = path / CATALOG_FILE if path.is_dir() else path
    catalog = _read_json(catalog_path)
    validator = OfflineValidator()
    _validate(validator, catalog, catalog_path)
    ids = []
    for link in catalog.get("links", []):
        if link.get("rel") != "item":
            continue
        item_path = _linked(catalog_path, link["href"], f"item link {link['href']}")
        item = _read_json(item_path)
        _validate(validator, item, item_path)
        for other in item.get("links", []):
            if other.get("rel") in ("root", "parent"):
                _linked(item_path, other["href"], f"{other['rel']} link {other['href']}")
        for key, asset in item.get("assets", {}).items():
            _linked(item_path, asset["href"], f"asset {key} ({asset['href']})")
        ids.append(str(item.get("id")))
    return ids


def _validate(validator: OfflineValidator, data: dict[str, Any], path: Path) -> None:
    kinds = {"Feature": pystac.STACObjectType.ITEM, "Catalog": pystac.STACObjectType.CATALOG,
             "Collection": pystac.STACObjectType.COLLECTION}
    kind = kinds.get(data.get("type", ""))
    if kind is None:
        raise DataError(f"{path}: not a STAC Item, Catalog or Collection")
    declared = list(data.get("stac_extensions", []))
    try:
        validator.validate(data, kind, str(data.get("stac_version")), declared, href=str(path))
    except STACValidationError as exc:
        raise DataError(str(exc)) from None
    for name, url in EXTENSIONS.items():  # a field of an undeclared extension goes unchecked
        used = _field_with_prefix(f"{PREFIXES.get(name, name)}:", [data.get("properties"),
                                                                  data.get("assets")])
        if used and not any(u.startswith(url.rsplit("/v", 1)[0] + "/") for u in declared):
            raise DataError(f"{path}: {used} is used but the {name} extension is not in "
                            "stac_extensions")


def _field_with_prefix(prefix: str, values: list[Any]) -> str | None:
    """The first key starting with `prefix` anywhere in `values` (dicts and lists, nested)."""
    for value in values:
        if isinstance(value, dict):
            found = next((k for k in value if str(k).startswith(prefix)), None)
            found = found or _field_with_prefix(prefix, list(value.values()))
        elif isinstance(value, list):
            found = _field_with_prefix(prefix, value)
        else:
            continue
        if found:
            return found
    return None


def _linked(start: Path, href: str, what: str) -> Path:
    """The local file `href` (relative to file `start`) leads to; DataError where there is none."""
    if urlparse(href).scheme in URL_SCHEMES:
        raise DataError(f"{start}: {what} is a URL, not a file of the catalogue")
    target = (start.parent / href).resolve()
    if not target.is_file():  # a percent-encoded href (`a%20b.tif`) names `a b.tif`
        target = (start.parent / unquote(href)).resolve()
    if not target.is_file():
        raise DataError(f"{start}: {what} leads to no file")
    return target


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise MissingInputError(f"{path} does not exist")
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path} is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path} is not a STAC object")
    return data


def _check(data: dict[str, Any], uri: str, href: str | None) -> None:
    """Validate `data` against schema `uri`; raise a one-line STACValidationError."""
    where = href or data.get("id", "the object")
    key = uri.rstrip("#")
    schemas = _schemas()
    if key not in schemas:
        raise STACValidationError(f"{where}: schema {key} is not bundled with geolulc "
                                  "(validation runs offline)")
    schema = schemas[key]
    validator = jsonschema.validators.validator_for(schema)(schema, registry=_registry())
    try:
        errors = list(validator.iter_errors(data))
    except Unresolvable as exc:  # a $ref to a schema this machine does not hold
        raise STACValidationError(f"{where}: schema {key} refers to a schema that is not "
                                  f"bundled ({_one_line(str(exc))})") from None
    if errors:
        best = _leaf(max(errors, key=jsonschema.exceptions.relevance))
        field_ = best.json_path.removeprefix("$.") if best.json_path != "$" else "the object"
        raise STACValidationError(f"{where}: {field_}: {_one_line(best.message)} "
                                  f"(schema {_schema_name(key)})", source=errors)


def _leaf(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """The failing field under a oneOf/anyOf error, in the branch meant for the value's kind.

    Schemas wrap things in a oneOf of kinds (Item, Collection …; Point, Polygon …): branches
    that fail on `type` are for other kinds, the one with fewest errors is the closest, and its
    deepest error names the field. A value that fits no kind is named as a whole.
    """
    if not error.context:
        return error
    branches: dict[object, list[jsonschema.ValidationError]] = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    fitting = [errors for errors in branches.values()
               if not any(sub.validator in ("const", "enum") and list(sub.relative_path) == ["type"]
                          for sub in errors)]
    if not fitting:
        return error
    return max((_leaf(sub) for sub in min(fitting, key=len)), key=lambda e: len(e.absolute_path))


@cache
def _schemas() -> dict[str, dict[str, Any]]:
    """Every schema on this machine by URL (no trailing '#'): pystac's core, geolulc's extensions."""
    found = {uri.rstrip("#"): schema for uri, schema in get_local_schema_cache().items()}
    bundled = files("geolulc.io") / "stac_schemas"
    for entry in bundled.iterdir():
        if entry.name.endswith(".json"):
            schema = json.loads(entry.read_text(encoding="utf-8"))
            found[str(schema["$id"]).rstrip("#")] = schema
    return found


@cache
def _registry() -> Registry:
    """The schemas as a referencing registry that refuses to fetch anything else."""
    return Registry(retrieve=_refuse).with_resources(  # type: ignore[call-arg]  # attrs alias
        (uri, Resource.from_contents(schema)) for uri, schema in _schemas().items())


def _refuse(uri: str) -> Resource:
    raise LookupError(f"{uri} is not bundled and geolulc does not download schemas")


def _schema_name(uri: str) -> str:
    match = re.search(r"stac-extensions\.github\.io/([^/]+)/(v[^/]+)/", uri) or re.search(
        r"schemas\.stacspec\.org/(v[^/]+)/([a-z]+)-spec/", uri)
    if not match:
        return uri
    return f"{match[1]} {match[2]}" if "stac-extensions" in uri else f"STAC {match[2]} {match[1]}"


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _grid_bounds(transform: Affine, shape_: tuple[int, int]) -> tuple[float, float, float, float]:
    west, south, east, north = array_bounds(shape_[0], shape_[1], transform)
    return min(west, east), min(south, north), max(west, east), max(south, north)


def _utc(dates: list[datetime]) -> list[datetime]:
    return sorted(d.astimezone(timezone.utc) if d.tzinfo else d.replace(tzinfo=timezone.utc)
                  for d in dates)


def _stamp(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
