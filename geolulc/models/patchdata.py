"""Labelled patch folders (EuroSAT layout): one sub-folder per class of GeoTIFF or JPEG/PNG patches."""

from __future__ import annotations

import logging
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from PIL import Image, UnidentifiedImageError
from rasterio.errors import RasterioError

from geolulc.errors import DataError, MissingInputError, ParameterError, ReadError
from geolulc.io.atomic import check_readable
from geolulc.io.bands import ALL_BANDS, normalise_band

log = logging.getLogger(__name__)

RGB_BANDS = ["B04", "B03", "B02"]
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
RASTER_SUFFIXES = {".tif", ".tiff"}


@dataclass
class PatchSet:
    """Patches (N, bands, H, W), integer labels, and what the numbers mean."""

    x: np.ndarray
    y: np.ndarray
    classes: list[str]
    bands: list[str]
    kind: str  # "rgb": 8-bit JPEG units; "ms": reflectance × 10000 DN
    files: list[Path]
    root: Path | None = None
    excluded: list[str] = field(default_factory=list)  # names left out with `exclude`


def _raster_bands(src: rasterio.DatasetReader) -> list[str]:
    """Band names from the file's descriptions, else the EuroSAT MS order for 13 bands."""
    described = []
    for desc in src.descriptions:
        try:
            described.append(normalise_band(desc or ""))
        except ValueError:
            break
    if len(described) == src.count:
        return described
    if src.count == len(ALL_BANDS):
        return list(ALL_BANDS)
    if src.count == 3:
        return list(RGB_BANDS)
    raise DataError(f"{src.name}: cannot tell which Sentinel-2 bands its {src.count} bands are")


def read_patch(path: Path, name: str | None = None) -> tuple[np.ndarray, list[str], str]:
    """One patch as (bands, H, W) with its band names and kind (`name`: what messages call it)."""
    check_readable(path, "patch")
    suffix = path.suffix.lower()
    try:
        if suffix in IMAGE_SUFFIXES:
            with Image.open(path) as img:
                arr = np.asarray(img.convert("RGB")).transpose(2, 0, 1)
            return arr, list(RGB_BANDS), "rgb"
        with rasterio.open(path) as src:
            return src.read(), _raster_bands(src), "ms"
    except (OSError, UnidentifiedImageError, RasterioError) as exc:
        first = (str(exc).splitlines() or [""])[0]
        if not first or "See previous exception" in first:  # GDAL's words for a cut-off file
            first = "the file is truncated or corrupt (its pixels cannot be decoded)"
        raise ReadError(f"cannot read patch {name or path}: {first}") from None


def list_patch_files(folder: Path) -> dict[str, list[Path]]:
    """Patch files of a folder by class: one subfolder per class, images and rasters only."""
    suffixes = IMAGE_SUFFIXES | RASTER_SUFFIXES
    return {
        d.name: sorted(p for p in d.iterdir() if p.suffix.lower() in suffixes)
        for d in sorted(folder.iterdir()) if d.is_dir()
    }


def load_patch_folder(
    folder: str | Path, bands: list[str] | None = None, classes: list[str] | None = None,
    exclude: str | Path | None = None,
) -> PatchSet:
    """Read a labelled folder; `classes` fixes the label order (e.g. a model's), `bands` a subset.

    Patches whose name (without extension) also occurs in the folder `exclude` are left out,
    e.g. the EuroSAT RGB places that the multispectral set holds, to keep those unseen.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingInputError(f"data folder {folder} does not exist")
    skip: set[str] = set()
    if exclude is not None:
        if not Path(exclude).is_dir():
            raise MissingInputError(f"`exclude` folder {exclude} does not exist")
        skip = {p.stem for files in list_patch_files(Path(exclude)).values() for p in files}
    listed = list_patch_files(folder)
    found = {k: [p for p in v if p.stem not in skip] for k, v in listed.items()}
    excluded = sorted(p.stem for v in listed.values() for p in v if p.stem in skip)
    found = {k: v for k, v in found.items() if v}
    if classes is None:
        if len(found) < 2:
            raise DataError(f"{folder} needs at least two class sub-folders with patches "
                               f"(found {len(found)})")
        classes = sorted(found)
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise DataError(f"{folder} has classes the model does not know: {', '.join(unknown)}")
    arrays, labels, files = [], [], []
    first: tuple | None = None
    for label, name in enumerate(classes):
        for path in found.get(name, []):
            arr, names, kind = read_patch(path)
            if first is None:
                first = (arr.shape, names, kind)
            elif (arr.shape, names, kind) != first:
                raise DataError(
                    f"mixed patches: {path} is {kind} {arr.shape}, the first was {first[2]} "
                    f"{first[0]}")
            arrays.append(arr)
            labels.append(label)
            files.append(path)
    if first is None:
        raise DataError(f"{folder} holds no patches")
    shape, names, kind = first
    x = np.stack(arrays)
    if bands:
        wanted = [normalise_band(b) for b in bands]
        missing = [b for b in wanted if b not in names]
        if missing:
            raise ParameterError(  # the bands asked for, or a model's: no option named here
                f"the patches of {folder} lack {', '.join(missing)} (they have {len(names)} "
                f"bands: {', '.join(names)})")
        x = x[:, [names.index(b) for b in wanted]]
        names = wanted
    log.info("loaded %d %s patches of %d classes from %s", len(x), kind, len(classes), folder)
    return PatchSet(x, np.array(labels, dtype=np.int64), list(classes), list(names), kind, files,
                    folder, excluded)


def stratified_split(y: np.ndarray, val_fraction: float, seed: int,
                     classes: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a train/validation split with each class in the same proportion.

    Every class needs a patch on each side: a class with one patch is an error, not an empty
    training set.
    """
    rng = np.random.default_rng(seed)
    train: list[np.integer] = []
    val: list[np.integer] = []
    labels, counts = np.unique(y, return_counts=True)
    if len(labels) and counts.min() < 2:
        worst = int(labels[counts.argmin()])
        raise DataError(f"every class needs at least 2 patches (one to train on, one to "
                           f"validate), but class {classes[worst] if classes else worst} has "
                           f"{int(counts.min())}")
    for label in labels:
        idx = rng.permutation(np.flatnonzero(y == label))
        n_val = max(1, int(round(len(idx) * val_fraction)))
        val.extend(idx[:n_val])
        train.extend(idx[n_val:])
    return np.sort(np.array(train)), np.sort(np.array(val))


@dataclass
class WaterWindows:
    """Unlabelled windows of real scenes (N, bands, H, W, DN) with their water share.

    The share is of their pixels that a per-pixel model calls water (made by
    pipelines/real-windows.py).
    """

    x: np.ndarray
    water: np.ndarray
    files: list[Path]


def load_water_windows(paths: list[Path], bands: list[str], size: int) -> WaterWindows:
    """Read window files (`.npz` with x, water, bands; no pickles) and keep `bands`."""
    xs, shares = [], []
    for path in paths:
        try:
            with np.load(path, allow_pickle=False) as f:
                x, water, names = f["x"], f["water"], [str(b) for b in f["bands"]]
        except (OSError, KeyError, ValueError, TypeError, AttributeError,
                zipfile.BadZipFile) as exc:
            raise DataError(f"`windows` {path}: not a window file "
                               f"({str(exc).splitlines()[0][:120]})") from None
        missing = [b for b in bands if b not in names]
        if missing:
            raise DataError(f"`windows` {path} lacks band(s) {', '.join(missing)}")
        if x.ndim != 4 or x.shape[1] != len(names) or x.shape[2:] != (size, size) \
                or water.shape != (len(x),) or not np.isfinite(water).all() \
                or water.min() < 0 or water.max() > 1:
            raise DataError(f"`windows` {path}: x must be (N, {len(names)} bands, {size}, "
                               f"{size}) and water N shares in [0, 1]")
        xs.append(x[:, [names.index(b) for b in bands]])
        shares.append(water.astype(np.float32))
    return WaterWindows(np.concatenate(xs), np.concatenate(shares), list(paths))
