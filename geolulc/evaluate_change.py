"""Scoring change detection against the Onera Satellite Change Detection (OSCD) labels.

An OSCD city folder holds two L1C scenes (``imgs_1``, ``imgs_2``) and ``change-labels.tif``, a
pixel mask (1 no change, 2 change) on the 10 m grid of ``imgs_1``'s B02 without georeference of its
own. geolulc's change is computed on its own UTM cell grid and compared on two levels:

- pixel level, on the label grid: the change probability is resampled (nearest) onto it;
- patch level, on the cell grid: a cell is truly changed when at least ``patch_fraction`` of its
  labelled pixels changed.

OSCD labels mark urban change only, a subset of land-cover change; see the README's limitations.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning
from rasterio.warp import reproject

from .change import compare
from .change_job import _date_maps
from .device import resolve_device
from .errors import GeolulcError
from .model import load_model
from .pipeline import MapRequest, model_for
from .scenes import load_scene


def scores(truth: np.ndarray, pred: np.ndarray) -> dict:
    """Confusion counts, precision, recall and F1 of a binary prediction."""
    tp = int(np.count_nonzero(truth & pred))
    fp = int(np.count_nonzero(~truth & pred))
    fn = int(np.count_nonzero(truth & ~pred))
    tn = int(np.count_nonzero(~truth & ~pred))
    return finish({"tp": tp, "fp": fp, "fn": fn, "tn": tn})


def finish(counts: dict) -> dict:
    tp, fp, fn = counts["tp"], counts["fp"], counts["fn"]
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {**counts, "precision": round(precision, 4), "recall": round(recall, 4),
            "f1": round(f1, 4)}


def total(results: list[dict]) -> dict:
    """Micro-average: scores of the summed confusion counts."""
    return finish({k: sum(r[k] for r in results) for k in ("tp", "fp", "fn", "tn")})


def _label_grid(city: Path):
    b02 = sorted((city / "imgs_1").glob("*_B02.tif"))
    if not b02 or not (city / "change-labels.tif").exists():
        raise GeolulcError(f"{city} is not a labelled OSCD city folder (imgs_1/*_B02.tif and "
                           "change-labels.tif needed)")
    with warnings.catch_warnings():  # the label file has no georeference, by design
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(city / "change-labels.tif") as lab:
            labels = lab.read(1)
    with rasterio.open(b02[0]) as ref:
        if labels.shape != ref.shape:
            raise GeolulcError(f"{city}: change labels {labels.shape} do not match B02 "
                               f"{ref.shape}")
        return labels == 2, ref.crs, ref.transform


def evaluate_city(
    city: Path, req: MapRequest, thresholds: list[float], methods: list[str],
    patch_fraction: float = 0.1,
) -> dict:
    """Classify both dates once, then score every (method, threshold) at both levels."""
    truth_px, label_crs, label_transform = _label_grid(city)
    device = resolve_device(req.device)
    inputs = [("before", [load_scene(city / "imgs_1")]), ("after", [load_scene(city / "imgs_2")])]
    model = load_model(model_for(req.model, inputs[0][1] + inputs[1][1]), device)
    before, after = _date_maps(req, model, None, inputs, device)
    cell_truth = np.zeros(before.labels.shape, dtype=np.float32)
    coverage = np.zeros(before.labels.shape, dtype=np.float32)
    common = {"src_transform": label_transform, "src_crs": label_crs,
              "dst_transform": before.transform, "dst_crs": before.crs.to_wkt(),
              "resampling": Resampling.average}
    reproject(truth_px.astype(np.float32), cell_truth, **common)
    reproject(np.ones(truth_px.shape, dtype=np.float32), coverage, **common)
    results = []
    for method in methods:
        for threshold in thresholds:
            change = compare(before, after, threshold, method)
            on_labels = np.full(truth_px.shape, np.nan, dtype=np.float32)
            reproject(change.probability, on_labels, src_transform=before.transform,
                      src_crs=before.crs.to_wkt(), dst_transform=label_transform,
                      dst_crs=label_crs, src_nodata=np.nan, dst_nodata=np.nan,
                      resampling=Resampling.nearest)
            valid_px = ~np.isnan(on_labels)
            pixel = scores(truth_px[valid_px], on_labels[valid_px] >= threshold)
            valid_cells = (change.mask != 255) & (coverage > 0.5)
            patch = scores(cell_truth[valid_cells] >= patch_fraction,
                           change.mask[valid_cells] == 1)
            results.append({"method": method, "threshold": threshold, "pixel": pixel,
                            "patch": patch, "pixels_scored": int(valid_px.sum()),
                            "pixels_labelled": int(truth_px.size)})
    return {"city": city.name, "cells": list(before.labels.shape),
            "cell_size_m": abs(before.transform.a), "changed_label_share":
            round(float(truth_px.mean()), 4), "results": results}


def evaluate_cities(cities: list[Path], req: MapRequest, thresholds: list[float],
                    methods: list[str], patch_fraction: float) -> dict:
    per_city = [evaluate_city(c, req, thresholds, methods, patch_fraction) for c in cities]
    summary = []
    for i, first in enumerate(per_city[0]["results"]):
        rows = [c["results"][i] for c in per_city]
        summary.append({"method": first["method"], "threshold": first["threshold"],
                        "pixel": total([r["pixel"] for r in rows]),
                        "patch": total([r["patch"] for r in rows])})
    return {"model": req.model, "stride": req.stride, "patch_fraction": patch_fraction,
            "cities": per_city, "total": summary}
