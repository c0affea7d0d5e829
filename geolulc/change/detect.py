"""Change detection between two dates on the same grid: land cover and reflectance together.

Two kinds of evidence are combined into one change probability:

- **Land cover.** The per-class probabilities of both dates give the expected *weight of the
  transition* w = Σ_ij p_before(i) · W[i, j] · p_after(j). W says how much a transition is worth
  believing as real change (`transition_weights`, on the categories of `CATEGORY`): conversions
  that persist — anything becoming built, woody land becoming another category — weigh 1, built
  land becoming anything and water appearing or going 0.8; classes that trade places with the
  seasons (crops, grass, bare ground, shrub, flooded vegetation) 0.2, seasonal becoming woody
  0.5, anything with snow 0.05; a class that stays in its category weighs 0.2, built that stays
  built 0.5 (a new building in a town changes the reflectance, not the class).
- **Reflectance** (`geolulc.change.spectral`): the standardised change vector of the normalised bands,
  in units of the scene's own no-change noise (1 = typical noise, 9 = 3 σ in every band).

``combined`` (the default wherever both dates' scenes are at hand): the score s = spectral ×
w, and the change probability p = s² / (s² + 9²), so p = 0.5 — the default threshold — is a
change of 3 σ on a transition of weight 1 (or of 6.7 σ on a seasonal one). The 3 σ rule is a
property of the no-change noise, not a value fitted to any labels.

Maps alone (``--before/--after`` GeoTIFFs) carry no reflectance; there the probability comes
from the class probabilities only: ``tv``, the total variation distance ½ Σ_k |p_b(k) − p_a(k)|
(0 for identical probabilities however uncertain), or ``independent``, 1 − Σ_k p_b(k) p_a(k).

Cells without valid data on either date are no data, never change.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from PIL import Image
from pyproj import CRS
from rasterio.enums import Resampling
from rasterio.warp import reproject

from geolulc.errors import GeolulcError
from geolulc.io.atomic import atomic_path, staged_outputs, write_text_atomic
from geolulc.io.quicklook import render_labels
from geolulc.io.rasters import LANDCOVER_SUFFIX, NODATA, PROB_SCALE, PROBABILITIES_SUFFIX, write_cog

log = logging.getLogger(__name__)

MAX_CLASSES = 15  # from-to codes before·K + after must stay below the no-data code 255
CHANGE_COLORS = {0: (220, 220, 220, 255), 1: (220, 20, 60, 255), NODATA: (0, 0, 0, 0)}
METHODS = ("combined", "tv", "independent")
#: Default threshold of each method's change probability.
DEFAULT_THRESHOLD = {"combined": 0.5, "tv": 0.3, "independent": 0.5}
#: Spectral score × transition weight at which the combined probability is 0.5: 3 σ squared.
HALF_SCORE = 9.0
ROWS_PER_BLOCK = 512  # compare() works in blocks of rows, so whole tiles need no float copies

#: Classes of every bundled model by what their change means (class names as in the cards).
CATEGORY = {
    "water": "water", "River": "water", "SeaLake": "water",
    "trees": "woody", "Forest": "woody", "PermanentCrop": "woody",
    "built": "built", "Residential": "built", "Industrial": "built", "Highway": "built",
    "snow_and_ice": "snow",
}  # everything else (crops, grass, bare, shrub, flooded vegetation, pasture …): "seasonal"


def _rule(before: str, after: str) -> float:
    """Weight of the transition between two categories (see the module docstring)."""
    if "snow" in (before, after):
        return 0.05
    if before == after:
        return 0.5 if before == "built" else 0.2
    if after == "built" or before == "woody":
        return 1.0
    if before == "built" or "water" in (before, after):
        return 0.8
    return 0.5  # seasonal → woody: growth, slower and less certain than a clearing


def transition_weights(classes: list[str]) -> np.ndarray:
    """W (K, K): how much each transition between these classes counts as real change."""
    cats = [CATEGORY.get(c, "seasonal") for c in classes]
    return np.array([[_rule(a, b) for b in cats] for a in cats], dtype=np.float32)


@dataclass
class DateMap:
    """One date's land cover on a grid: labels and per-class probabilities (float32 in [0, 1],
    or uint8 × PROB_SCALE as the map files store them)."""

    name: str
    labels: np.ndarray  # (rows, cols) uint8, NODATA where unknown
    probabilities: np.ndarray  # (rows, cols, classes)
    crs: CRS
    transform: Affine
    model: str
    classes: list[str]
    colors: list[tuple[int, int, int]]

    @property
    def valid(self) -> np.ndarray:
        return self.labels != NODATA

    def probability_rows(self, rows: slice) -> np.ndarray:
        p = self.probabilities[rows]
        return p.astype(np.float32) / PROB_SCALE if p.dtype == np.uint8 else p


@dataclass
class Change:
    """Comparison of two dates on one grid."""

    fromto: np.ndarray  # uint8 before·K + after, NODATA where either date is unknown
    mask: np.ndarray  # uint8 0 no change, 1 change, NODATA
    probability: np.ndarray  # float32 in [0, 1], NaN where unknown
    threshold: float
    method: str = "tv"


def change_probability(before: np.ndarray, after: np.ndarray, method: str = "tv",
                       spectral: np.ndarray | None = None,
                       weights: np.ndarray | None = None) -> np.ndarray:
    """Change probability in [0, 1] from per-class probabilities (..., K) of two dates and, for
    `combined`, the spectral score (...) and the transition weights (K, K)."""
    if method == "tv":
        score = 0.5 * np.sum(np.abs(before - after), axis=-1)
    elif method == "independent":
        score = 1.0 - np.sum(before * after, axis=-1)
    elif method == "combined":
        if spectral is None or weights is None:
            raise GeolulcError("the combined change needs the scenes of both dates (maps alone "
                               "carry no reflectance): use --method tv for maps")
        w = np.einsum("...i,ij,...j->...", before, weights, after)
        s = spectral * w
        score = s * s / (s * s + HALF_SCORE * HALF_SCORE)
    else:
        raise GeolulcError(f"unknown change method {method!r}: use {', '.join(METHODS)}")
    return np.clip(score, 0.0, 1.0)


def compare(before: DateMap, after: DateMap, threshold: float | None = None,
            method: str = "tv", spectral: np.ndarray | None = None) -> Change:
    """From-to codes, change mask and change probability of two maps on the same grid;
    `spectral` is the spectral change of every cell (`geolulc.change.spectral`), needed by
    `combined`. The threshold defaults to the method's own (`DEFAULT_THRESHOLD`)."""
    k = len(before.classes)
    if k > MAX_CLASSES:
        raise GeolulcError(f"change detection supports at most {MAX_CLASSES} classes, not {k}")
    if method not in METHODS:
        raise GeolulcError(f"unknown change method {method!r}: use {', '.join(METHODS)}")
    threshold = DEFAULT_THRESHOLD[method] if threshold is None else threshold
    weights = transition_weights(before.classes)
    valid = before.valid & after.valid
    if spectral is not None:
        valid &= np.isfinite(spectral)
    prob = np.full(valid.shape, np.nan, dtype=np.float32)
    for r0 in range(0, valid.shape[0], ROWS_PER_BLOCK):
        rows = slice(r0, r0 + ROWS_PER_BLOCK)
        block = change_probability(before.probability_rows(rows), after.probability_rows(rows),
                                   method, None if spectral is None else spectral[rows], weights)
        prob[rows] = np.where(valid[rows], block, np.nan)
    fromto = np.full(valid.shape, NODATA, dtype=np.uint8)
    fromto[valid] = before.labels[valid] * k + after.labels[valid]
    mask = np.full(valid.shape, NODATA, dtype=np.uint8)
    mask[valid] = (prob[valid] >= threshold).astype(np.uint8)
    return Change(fromto, mask, prob, threshold, method)


def one_hot(labels: np.ndarray, k: int) -> np.ndarray:
    """Probabilities of a map that has only labels: 1 for the mapped class."""
    probs = np.zeros((*labels.shape, k), dtype=np.float32)
    rows, cols = np.nonzero(labels != NODATA)
    probs[rows, cols, labels[rows, cols]] = 1.0
    return probs


def read_map(path: Path) -> DateMap:
    """A land-cover GeoTIFF written by geolulc, with its probabilities when they lie beside it."""
    try:
        with rasterio.open(path) as src:
            tags = src.tags()
            labels = src.read(1)
            crs, transform = CRS.from_user_input(src.crs), src.transform
            cmap = src.colormap(1) if "classes" in tags else {}
    except rasterio.errors.RasterioError as exc:
        raise GeolulcError(f"cannot read map {path}: {str(exc).splitlines()[0]}") from None
    if "classes" not in tags or "model" not in tags:
        raise GeolulcError(f"{path} is not a land-cover map written by geolulc (no class tags)")
    classes = json.loads(tags["classes"])
    colors = [tuple(cmap.get(i, (128, 128, 128, 255))[:3]) for i in range(len(classes))]
    prob_path = Path(str(path).replace(LANDCOVER_SUFFIX, PROBABILITIES_SUFFIX))
    if prob_path != path and prob_path.exists():
        try:
            with rasterio.open(prob_path) as src:
                if src.count != len(classes) or src.dtypes[0] != "uint8":
                    raise GeolulcError(f"{prob_path} holds {src.count} {src.dtypes[0]} bands, not "
                                       f"the {len(classes)} uint8 class probabilities of {path}")
                probs = np.moveaxis(src.read(), 0, 2)  # × PROB_SCALE
        except rasterio.errors.RasterioError as exc:
            raise GeolulcError(f"cannot read {prob_path}: {str(exc).splitlines()[0]}") from None
        if probs.shape[:2] != labels.shape:
            raise GeolulcError(f"{prob_path} does not lie on the grid of {path}")
        probs[labels == NODATA] = 0
    else:
        log.warning("%s has no probabilities beside it; change probability is 0 or 1", path)
        probs = one_hot(labels, len(classes))
    name = Path(path).name.removesuffix(LANDCOVER_SUFFIX).removesuffix(".tif")
    return DateMap(name, labels, probs, crs, transform, tags["model"], classes, colors)


def resample_onto(source: DateMap, target: DateMap) -> DateMap:
    """`source` on the grid of `target` (nearest neighbour: classes are categories)."""
    shape = target.labels.shape
    labels = np.full(shape, NODATA, dtype=np.uint8)
    reproject(source.labels, labels, src_transform=source.transform, src_crs=source.crs.to_wkt(),
              dst_transform=target.transform, dst_crs=target.crs.to_wkt(), src_nodata=NODATA,
              dst_nodata=NODATA, resampling=Resampling.nearest)
    probs = np.zeros((*shape, source.probabilities.shape[2]), dtype=source.probabilities.dtype)
    for i in range(probs.shape[2]):
        band = np.zeros(shape, dtype=probs.dtype)
        reproject(source.probabilities[..., i], band, src_transform=source.transform,
                  src_crs=source.crs.to_wkt(), dst_transform=target.transform,
                  dst_crs=target.crs.to_wkt(), resampling=Resampling.nearest)
        probs[..., i] = band
    probs[labels == NODATA] = 0
    return DateMap(source.name, labels, probs, target.crs, target.transform, source.model,
                   source.classes, source.colors)


def check_comparable(before: DateMap, after: DateMap, resample: bool) -> DateMap:
    """Refuse maps of different models; different grids only when asked to resample."""
    if before.model != after.model or before.classes != after.classes:
        raise GeolulcError(f"maps were made with different models ({before.model} and "
                           f"{after.model}); compare maps of one model")
    same_grid = (before.crs == after.crs and before.transform.almost_equals(after.transform)
                 and before.labels.shape == after.labels.shape)
    if same_grid:
        return after
    if not resample:
        raise GeolulcError("the maps lie on different grids (CRS, pixel size or extent); "
                           "pass --resample to resample the second onto the first")
    resampled = resample_onto(after, before)
    if not ((resampled.labels != NODATA) & (before.labels != NODATA)).any():
        raise GeolulcError("the two maps do not overlap: there is nothing to compare")
    return resampled


def transitions(change: Change, classes: list[str], cell_area_m2: float) -> list[dict]:
    """Area of each (before, after) pair that occurs, largest first."""
    k = len(classes)
    counts = np.bincount(change.fromto[change.fromto != NODATA].ravel(), minlength=k * k)
    rows = [{"code": int(code), "before": classes[code // k], "after": classes[code % k],
             "changed": code // k != code % k, "pixels": int(n),
             "area_km2": round(float(n) * cell_area_m2 / 1e6, 4)}
            for code, n in enumerate(counts) if n]
    return sorted(rows, key=lambda r: -r["pixels"])


def transition_matrix_csv(change: Change, classes: list[str], cell_area_m2: float) -> str:
    k = len(classes)
    counts = np.bincount(change.fromto[change.fromto != NODATA].ravel(),
                         minlength=k * k).reshape(k, k)
    lines = ["before \\ after (km²)," + ",".join(classes)]
    for name, row in zip(classes, counts):
        lines.append(name + "," + ",".join(f"{n * cell_area_m2 / 1e6:.4f}" for n in row))
    return "\n".join(lines) + "\n"


def fromto_colormap(classes: list[str], colors) -> dict[int, tuple[int, int, int, int]]:
    """Changed pairs take the colour of the new class; unchanged ones a pale version of theirs."""
    k = len(classes)
    cmap = {NODATA: (0, 0, 0, 0)}
    for b in range(k):
        for a in range(k):
            r, g, bl = colors[a]
            cmap[b * k + a] = ((r, g, bl, 255) if a != b else
                               ((r + 3 * 255) // 4, (g + 3 * 255) // 4, (bl + 3 * 255) // 4, 255))
    return cmap


def _side_by_side(path: Path, before: DateMap, after: DateMap, change: Change) -> None:
    colors = before.colors
    panels = [render_labels(before.labels, colors, 400), render_labels(after.labels, colors, 400),
              render_labels(np.where(change.mask == 1, 0, np.where(change.mask == 0, 1, NODATA))
                            .astype(np.uint8), [(220, 20, 60), (220, 220, 220)], 400)]
    width = sum(p.width for p in panels) + 40
    canvas = Image.new("RGB", (width, max(p.height for p in panels) + 20), (255, 255, 255))
    x = 10
    for panel in panels:
        canvas.paste(panel, (x, 10))
        x += panel.width + 10
    with atomic_path(path) as tmp:
        canvas.save(tmp, format="PNG")


def write_change(
    out_dir: Path, name: str, before: DateMap, after: DateMap, change: Change,
    vector: bool = False,
) -> dict[str, str]:
    """All change outputs for one pair of dates, staged and moved into `out_dir` together."""
    classes, crs, transform = before.classes, before.crs, before.transform
    cell_area = abs(transform.a * transform.e)
    occurring = transitions(change, classes, cell_area)
    changed_px = int(np.count_nonzero(change.mask == 1))
    valid_px = int(np.count_nonzero(change.mask != NODATA))
    summary = {
        "before": before.name, "after": after.name, "model": before.model,
        "method": change.method, "threshold": change.threshold,
        "valid_km2": round(valid_px * cell_area / 1e6, 4),
        "changed_km2": round(changed_px * cell_area / 1e6, 4),
        "changed_percent": round(100 * changed_px / valid_px, 2) if valid_px else 0.0,
        "transitions": occurring,
    }
    legend = {str(t["code"]): f"{t['before']} → {t['after']}" for t in occurring}
    prob = np.where(np.isnan(change.probability), NODATA,
                    np.round(np.nan_to_num(change.probability) * 100)).astype(np.uint8)
    files = {}
    with staged_outputs(out_dir, last="_change.json") as stage:
        files["fromto"] = write_cog(
            stage / f"{name}_fromto.tif", change.fromto, crs, transform, NODATA,
            colormap=fromto_colormap(classes, before.colors),
            tags={"classes": classes, "model": before.model, "legend": legend,
                  "code": f"before * {len(classes)} + after"}, description="from-to class")
        files["change_mask"] = write_cog(
            stage / f"{name}_changemask.tif", change.mask, crs, transform, NODATA,
            colormap=CHANGE_COLORS, tags={"threshold": str(change.threshold)},
            description="0 no change, 1 change")
        files["change_probability"] = write_cog(
            stage / f"{name}_changeprob.tif", prob, crs, transform, NODATA,
            tags={"units": "percent", "method": change.method},
            description=f"change probability (%, {change.method})",
            resampling="AVERAGE")
        write_text_atomic(stage / f"{name}_transitions.csv",
                          transition_matrix_csv(change, classes, cell_area))
        files["transitions_csv"] = stage / f"{name}_transitions.csv"
        _side_by_side(stage / f"{name}_change.png", before, after, change)
        files["png"] = stage / f"{name}_change.png"
        if vector:
            files["vector"] = write_change_polygons(stage / f"{name}_changes.gpkg", change,
                                                    classes, crs, transform)
        write_text_atomic(stage / f"{name}_change.json", json.dumps(summary, indent=2) + "\n")
        files["summary"] = stage / f"{name}_change.json"
    return {k: str(Path(out_dir) / Path(v).name) for k, v in files.items()}


def write_change_polygons(path: Path, change: Change, classes: list[str], crs: CRS,
                          transform: Affine) -> Path:
    """Changed cells as polygons (one per connected area of one transition) in a GeoPackage."""
    import geopandas as gpd
    from rasterio.features import shapes
    from shapely.geometry import shape

    k = len(classes)
    codes = np.where(change.mask == 1, change.fromto, NODATA).astype(np.uint8)
    records = [(shape(geom), int(code)) for geom, code in
               shapes(codes, mask=codes != NODATA, transform=transform)]
    frame = gpd.GeoDataFrame({
        "transition": [f"{classes[c // k]} → {classes[c % k]}" for _, c in records],
        "before": [classes[c // k] for _, c in records],
        "after": [classes[c % k] for _, c in records],
        "area_km2": [g.area / 1e6 for g, _ in records],
    }, geometry=[g for g, _ in records], crs=crs.to_wkt())
    frame.to_file(path, driver="GPKG", layer="changes")  # `path` is inside the staging folder
    return path
