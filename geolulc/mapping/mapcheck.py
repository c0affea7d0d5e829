"""Checks of a map against what the scene itself shows: open water by NDWI, and edges.

A test-set score says little about a map. These figures are measured on the scene that was
mapped, in blocks of `BLOCK` × `BLOCK` input pixels (160 m, the cell of a stride-16 patch map;
a per-pixel map is judged by the majority label of each block):

- open-water recall: of the blocks whose pixels are ≥ 90 % open water by
  NDWI = (B03 − B08) / (B03 + B08) > 0.2 (McFeeters 1996, with the margin that keeps the
  building shadows of a winter city out), the share the map calls water;
- false water: of the blocks without a single pixel of NDWI > 0, the share the map calls water;
- edges: the same false-water share and the class mix of the blocks within `EDGE` pixels of the
  scene's no-data boundary, against the interior. A map whose windows run off the data and see
  a fill that looks like water shows it here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy.ndimage import distance_transform_edt

from geolulc.core.classes import WATER_CLASSES
from geolulc.io.rasters import NODATA

if TYPE_CHECKING:  # the scene and reading modules are imported by `evaluate_map` only
    from pathlib import Path

    from geolulc.io.scenes import Scene

BLOCK = 16
EDGE = 64
OPEN_WATER_SHARE = 0.9
OPEN_WATER_NDWI = 0.2


@dataclass
class MapCheck:
    """Figures of a map against its scene (see the module); None where no block qualifies."""

    open_water_blocks: int
    open_water_recall: float | None
    dry_blocks: int
    false_water: float | None
    edge_dry_blocks: int
    edge_false_water: float | None
    interior_false_water: float | None
    edge_class_excess: dict  # class → edge share − interior share (blocks with data)

    def as_dict(self) -> dict:
        """The figures as a plain dict, for JSON output."""
        return asdict(self)


def _blocks(a: np.ndarray, block: int) -> np.ndarray:
    h, w = a.shape[0] // block * block, a.shape[1] // block * block
    return a[:h, :w].reshape(h // block, block, w // block, block, *a.shape[2:]).swapaxes(1, 2)


def _share(hits: np.ndarray) -> float | None:
    return round(float(hits.mean()), 4) if hits.size else None


def check_map(labels: np.ndarray, classes: list[str], green: np.ndarray, nir: np.ndarray,
              has_data: np.ndarray, nodata: int = NODATA, block: int = BLOCK,
              edge: int = EDGE) -> MapCheck:
    """Figures for a map given at the input resolution, against the scene's green and NIR DN.

    `labels` (h, w) is a patch map repeated to its pixels; the scene's green and NIR DN and its
    data mask are on the same grid.
    """
    water_codes = [i for i, c in enumerate(classes) if c in WATER_CLASSES]
    g, n = green.astype(np.float32), nir.astype(np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        ndwi = (g - n) / (g + n)
    edge_px = distance_transform_edt(has_data) <= edge  # near the scene's no-data boundary
    lab = _blocks(labels, block).reshape(-1, block * block)
    full = _blocks(has_data & (labels != nodata), block).reshape(-1, block * block).all(1)
    wet = _blocks(ndwi > 0, block).reshape(-1, block * block).mean(1)
    open_share = _blocks(ndwi > OPEN_WATER_NDWI, block).reshape(-1, block * block).mean(1)
    near = _blocks(edge_px, block).reshape(-1, block * block).any(1)
    counts = np.stack([(lab == k).sum(1) for k in range(len(classes))], axis=1)
    majority = counts.argmax(1)
    called_water = np.isin(majority, water_codes)
    open_water = full & (open_share >= OPEN_WATER_SHARE)
    dry = full & (wet == 0)
    excess = {}
    for k, name in enumerate(classes):
        at_edge, inside = majority[full & near] == k, majority[full & ~near] == k
        if at_edge.size and inside.size:
            excess[name] = round(float(at_edge.mean() - inside.mean()), 4)
    return MapCheck(
        int(open_water.sum()), _share(called_water[open_water]), int(dry.sum()),
        _share(called_water[dry]), int((dry & near).sum()), _share(called_water[dry & near]),
        _share(called_water[dry & ~near]), excess)


def evaluate_map(landcover: str | Path, scenes: list[Scene], resolution: float = 10.0) -> MapCheck:
    """Check a land-cover GeoTIFF written by geolulc against the scenes it was mapped from."""
    import json

    import rasterio
    from pyproj import CRS
    from rasterio.windows import Window

    from geolulc.core.grid import PatchGrid
    from geolulc.io.read import Masking, StackReader

    with rasterio.open(landcover) as src:
        cells, transform, crs = src.read(1), src.transform, CRS.from_user_input(src.crs)
        classes = json.loads(src.tags()["classes"])
    factor = round(transform.a / resolution)
    labels = np.repeat(np.repeat(cells, factor, axis=0), factor, axis=1)
    grid = PatchGrid(crs, resolution, transform.c, transform.f, labels.shape[0],
                     labels.shape[1], 1, 1)
    with StackReader(scenes, ["B03", "B08"], grid, Masking(detect_l1c=False)) as reader:
        pixels = reader.read(Window(0, 0, labels.shape[1], labels.shape[0]))
    return check_map(labels, classes, pixels.dn[0], pixels.dn[1], pixels.clear)
