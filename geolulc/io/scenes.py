"""Scenes: one Sentinel-2 acquisition with the location of each band, whatever it came from.

Every source (STAC API item, STAC item JSON, SAFE folder or zip, folder of per-band rasters) is
turned into the same `Scene`, so the rest of the pipeline never cares where pixels live.
"""

from __future__ import annotations

import json
import logging
import re
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, TypeAlias
from urllib.parse import unquote, urljoin
from xml.etree import ElementTree

import pystac
import shapely.errors
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from geolulc.errors import AssumptionWarning, MissingInputError, SceneError
from geolulc.io.atomic import check_readable
from geolulc.io.bands import ALL_BANDS, AOT_KEYS, SCL_KEYS, asset_key_candidates
from geolulc.io.harmonize import baseline_offset, parse_baseline

log = logging.getLogger(__name__)


@dataclass
class Scene:
    """One acquisition: where its bands are, and what is needed to read them correctly."""

    id: str
    level: str  # "L1C" or "L2A"
    bands: dict[str, str]  # canonical band name -> GDAL-readable path or URL
    datetime: datetime | None = None
    baseline: tuple[int, int] | None = None
    scl: str | None = None
    aot: str | None = None  # L2A aerosol optical thickness layer
    cloud_cover: float | None = None
    footprint: BaseGeometry | None = None  # EPSG:4326
    harmonised: bool = False  # True when the stored DNs already had the baseline offset removed
    properties: dict = field(default_factory=dict)
    href: str | None = None  # where the scene was found: its STAC item, or its local path

    @property
    def baseline_text(self) -> str | None:
        """The processing baseline as the catalogue writes it ("05.09"), or None when unknown."""
        return f"{self.baseline[0]:02d}.{self.baseline[1]:02d}" if self.baseline else None

    @property
    def offset(self) -> int:
        """DN offset still to remove from this scene's pixels."""
        return 0 if self.harmonised else baseline_offset(self.baseline)

    def require(self, bands: list[str]) -> None:
        """Fail with a one-line error naming the bands the model needs that this scene lacks."""
        missing = [b for b in bands if b not in self.bands]
        if missing:
            raise SceneError(
                f"scene {self.id} lacks band(s) {', '.join(missing)} that the model needs "
                f"(it has {', '.join(sorted(self.bands)) or 'none'})"
            )


# ---------------------------------------------------------------- STAC items

def _gdal_href(href: str) -> str:
    """Turn object-store URLs into GDAL virtual paths; leave HTTP(S) and files alone."""
    if href.startswith("s3://"):
        return "/vsis3/" + href[len("s3://"):]
    if href.startswith("gs://"):
        return "/vsigs/" + href[len("gs://"):]
    if href.startswith("file://"):
        return unquote(href[len("file://"):])
    return href


def _item_level(item: dict) -> str:
    props = item.get("properties") or {}
    text = " ".join(
        str(x) for x in (
            props.get("s2:product_type"), props.get("product:type"), item.get("collection"),
            item.get("id"), props.get("s2:product_uri"),
        ) if x
    ).upper()
    if "L1C" in text or "MSI1C" in text:
        return "L1C"
    if "L2A" in text or "MSI2A" in text:
        return "L2A"
    raise SceneError(f"cannot tell whether STAC item {item.get('id')} is L1C or L2A")


def _item_baseline(item: dict) -> tuple[int, int] | None:
    props = item.get("properties") or {}
    for key in ("s2:processing_baseline", "processing:version", "s2:product_uri"):
        found = parse_baseline(props.get(key))
        if found:
            return found
    hrefs = [str(a.get("href", "")) for a in (item.get("assets") or {}).values()]
    for text in (item.get("id", ""), *hrefs):
        found = parse_baseline(text)
        if found:
            return found
    return None


def _find_asset(assets: dict, keys: list[str], band: str | None = None) -> dict | None:
    for key in keys:
        if key in assets:
            return assets[key]
    if band:  # fall back on the band name declared inside the asset
        for asset in assets.values():
            declared = asset.get("eo:bands") or asset.get("bands") or []
            if len(declared) == 1 and declared[0].get("name") in (band, keys[0]):
                return asset
    return None


def scene_from_item(item: dict, base_href: str | None = None) -> Scene:
    """Build a Scene from a STAC item dict; relative hrefs are resolved against `base_href`.

    An item that does not have the shape of a STAC item is a one-line error naming what is
    wrong, never an exception from deep inside.
    """
    if not isinstance(item, dict):
        raise SceneError(f"a STAC item must be a JSON object, not {type(item).__name__}")
    try:
        return _scene_from_item(item, base_href)
    except (KeyError, TypeError, ValueError, AttributeError, shapely.errors.ShapelyError) as exc:
        what = f"missing {exc}" if isinstance(exc, KeyError) else str(exc).splitlines()[0]
        raise SceneError(f"STAC item {str(item.get('id', '?'))[:80]} is malformed: "
                           f"{what[:160]}") from None


def _scene_from_item(item: dict, base_href: str | None) -> Scene:
    assets = item.get("assets") or {}
    props = item.get("properties") or {}
    if not isinstance(assets, dict) or not all(isinstance(a, dict) for a in assets.values()):
        raise ValueError("its assets are not objects")
    if not isinstance(props, dict):
        raise ValueError("its properties are not an object")

    def resolve(asset: dict) -> str:
        href = asset["href"]
        if not isinstance(href, str) or not href:
            raise ValueError(f"an asset's href is {href!r}")
        if base_href and not re.match(r"^[a-z][a-z0-9+.-]*://", href) and not href.startswith("/"):
            href = urljoin(base_href, href)
        return _gdal_href(href)

    bands = {}
    for band in ALL_BANDS:
        asset = _find_asset(assets, asset_key_candidates(band), band)
        if asset is not None:
            bands[band] = resolve(asset)
    scl_asset = _find_asset(assets, SCL_KEYS)
    aot_asset = _find_asset(assets, AOT_KEYS)
    when = props.get("datetime") or props.get("start_datetime")
    return Scene(
        id=item.get("id", "item"),
        level=_item_level(item),
        bands=bands,
        datetime=datetime.fromisoformat(when.replace("Z", "+00:00")) if when else None,
        baseline=_item_baseline(item),
        scl=resolve(scl_asset) if scl_asset else None,
        aot=resolve(aot_asset) if aot_asset else None,
        cloud_cover=props.get("eo:cloud_cover"),
        footprint=shape(item["geometry"]) if item.get("geometry") else None,
        harmonised=bool(props.get("geolulc:harmonised", False)),
        properties=props,
        href=base_href,
    )


def _item_from_file(path: Path) -> Scene:
    try:
        item = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SceneError(f"cannot read STAC item {path}: {exc}") from None
    if not isinstance(item, dict) or item.get("type") != "Feature" or "assets" not in item:
        raise SceneError(f"{path} is not a STAC item (no Feature with assets)")
    return scene_from_item(item, base_href=path.resolve().as_uri())


# ---------------------------------------------------------------- SAFE products

_SAFE_BAND = re.compile(r"_(B\d[\dA])(?:_(\d0)m)?\.jp2$")
_SAFE_SCL = re.compile(r"_SCL_(\d0)m\.jp2$")


def _safe_members(path: Path) -> tuple[list[str], str, Callable[[str], bytes]]:
    """List a SAFE's files and give GDAL's prefix and a reader, for folders and zips alike."""
    if path.is_dir():
        names = [str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()]
        return names, str(path) + "/", lambda n: (path / n).read_bytes()
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise SceneError(f"cannot open SAFE archive {path}: {exc}") from None
    return archive.namelist(), f"/vsizip/{path.resolve()}/", archive.read


def _scene_from_safe(path: Path) -> Scene:
    names, prefix, read = _safe_members(path)
    mtd = [n for n in names if re.search(r"(^|/)MTD_MSIL(1C|2A)\.xml$", n, re.I)]
    if not mtd:
        raise SceneError(f"{path} is not a SAFE product (no MTD_MSIL1C.xml / MTD_MSIL2A.xml)")
    try:
        root = ElementTree.fromstring(read(mtd[0]))
    except (ElementTree.ParseError, KeyError, OSError) as exc:
        raise SceneError(f"SAFE product {path}: its {Path(mtd[0]).name} is not readable XML "
                           f"({exc})") from None
    texts = {el.tag.split("}")[-1]: (el.text or "").strip() for el in root.iter()}
    level = "L2A" if Path(mtd[0]).name.upper() == "MTD_MSIL2A.XML" else "L1C"
    best: dict[str, tuple[int, str]] = {}
    scl = None
    for name in names:
        if "/IMG_DATA/" not in name:
            continue
        m = _SAFE_BAND.search(name)
        if m:
            res = int(m.group(2) or 0)
            if m.group(1) not in best or res < best[m.group(1)][0]:
                best[m.group(1)] = (res, prefix + name)
        m = _SAFE_SCL.search(name)
        if m and (scl is None or m.group(1) == "20"):
            scl = prefix + name
    if not best:
        raise SceneError(f"SAFE product {path} holds no band images (empty granule?)")
    when = texts.get("PRODUCT_START_TIME") or texts.get("DATATAKE_SENSING_START")
    try:
        return _safe_scene(path, level, best, when, texts, scl)
    except ValueError as exc:
        raise SceneError(f"SAFE product {path} has malformed metadata: {exc}") from None


def _safe_scene(path: Path, level: str, best: dict, when: str | None, texts: dict,
                scl: str | None) -> Scene:
    return Scene(
        id=path.name.removesuffix(".zip").removesuffix(".SAFE"),
        level=level,
        bands={band: href for band, (_, href) in best.items()},
        datetime=datetime.fromisoformat(when.replace("Z", "+00:00")) if when else None,
        baseline=parse_baseline(texts.get("PROCESSING_BASELINE")) or parse_baseline(path.name),
        scl=scl,
        cloud_cover=float(texts["Cloud_Coverage_Assessment"])
        if texts.get("Cloud_Coverage_Assessment") else None,
    )


# ---------------------------------------------------------------- band folders

_BAND_FILE = re.compile(r"(?:^|_)(B\d[\dA])\.(tif|tiff|jp2)$", re.I)


def _oscd_date(path: Path) -> datetime | None:
    """The acquisition date of an OSCD `imgs_1`/`imgs_2` folder from the `dates.txt` beside it.

    Old products' file names carry the processing date, not the acquisition's.
    """
    dates = path.parent / "dates.txt"
    if path.name not in ("imgs_1", "imgs_2") or not dates.is_file():
        return None
    key = "date_1" if path.name == "imgs_1" else "date_2"
    for line in dates.read_text(errors="replace").splitlines():
        name, _, value = line.partition(":")
        if name.strip() == key:
            try:
                return datetime.strptime(value.strip(), "%Y%m%d")
            except ValueError:
                return None
    return None


def _scene_from_band_folder(path: Path) -> Scene:
    bands = {}
    for file in sorted(path.iterdir()):
        m = _BAND_FILE.search(file.name)
        if m:
            bands[m.group(1).upper()] = str(file)
    scl = next((str(f) for f in path.iterdir() if re.search(r"(^|_)SCL\.tif$", f.name, re.I)), None)
    aot = next((str(f) for f in path.iterdir() if re.search(r"(^|_)AOT\.tif$", f.name, re.I)), None)
    if not bands:
        raise SceneError(f"{path} holds no per-band rasters (expected names like *_B02.tif)")
    names = " ".join(Path(b).name for b in bands.values()).upper()
    level = "L2A" if ("L2A" in names or scl) else "L1C"
    if "L1C" not in names and level == "L1C":
        warnings.warn(f"{path} does not say its processing level; assuming L1C",
                      AssumptionWarning, stacklevel=2)
    when = re.search(r"(20\d{6})T\d{5,6}", names)  # BigEarthNet drops a leading 0
    acquired = _oscd_date(path) or (datetime.strptime(when.group(1), "%Y%m%d") if when else None)
    return Scene(
        id=path.name if path.name not in ("imgs_1", "imgs_2") else f"{path.parent.name}-{path.name}",
        level=level,
        bands=bands,
        datetime=acquired,
        baseline=parse_baseline(names),
        scl=scl,
        aot=aot,
    )


#: What a scene may be given as: a `Scene`, a path (STAC item JSON, SAFE folder or .zip, folder
#: of band rasters), a `pystac.Item`, or a STAC item as a dict.
SceneLike: TypeAlias = Scene | str | Path | pystac.Item | dict[str, Any]


def load_scene(scene: SceneLike) -> Scene:
    """Open a scene from a path, a `pystac.Item` or a STAC item dict; a `Scene` is returned as it is.

    The path may be a STAC item JSON, a SAFE folder or .zip, or a folder of band rasters.
    """
    if isinstance(scene, Scene):
        return scene
    if isinstance(scene, dict):
        return scene_from_item(scene)
    if hasattr(scene, "to_dict") and hasattr(scene, "get_self_href"):  # a pystac.Item
        return scene_from_item(scene.to_dict(), base_href=scene.get_self_href())
    if not isinstance(scene, (str, Path)):
        raise SceneError(f"a scene is a path, a pystac.Item or a STAC item dict, not "
                         f"{type(scene).__name__}")
    path = Path(scene)
    if not path.exists():
        raise MissingInputError(f"scene {path} does not exist")
    check_readable(path, "scene")
    found = _scene_at(path)
    if found is None:
        raise SceneError(
            f"cannot read scene {path}: expected a STAC item .json, a SAFE folder or .zip, "
            "or a folder of per-band rasters"
        )
    return found if found.href else replace(found, href=path.resolve().as_uri())


def _scene_at(path: Path) -> Scene | None:
    """The scene a local path holds, or None when it is no kind of scene."""
    if path.suffix.lower() == ".json":
        return _item_from_file(path)
    if path.suffix.lower() == ".zip" or path.name.upper().endswith(".SAFE"):
        return _scene_from_safe(path)
    if path.is_dir():
        if (path / "item.json").exists():
            return _item_from_file(path / "item.json")
        if any(path.glob("MTD_MSIL*.xml")):
            return _scene_from_safe(path)
        return _scene_from_band_folder(path)
    return None
