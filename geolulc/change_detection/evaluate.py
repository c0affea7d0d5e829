"""Scoring change detection against the Onera Satellite Change Detection (OSCD) labels.

An OSCD city folder holds two L1C scenes (``imgs_1``, ``imgs_2``) and ``change-labels.tif``, a
pixel mask (1 no change, 2 change) on the 10 m grid of ``imgs_1``'s B02 without georeference of its
own. geolulc's change is computed on its own UTM cell grid and compared on two levels:

- pixel level, on the label grid: the change probability is resampled (nearest) onto it;
- block level, on 64 × 64-pixel squares of the label grid: a square has changed when at least
  ``patch_fraction`` of its pixels changed, in the labels and in the prediction alike.

OSCD labels mark urban change only, a subset of land-cover change; see the README's change section.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning
from rasterio.warp import reproject

from geolulc.change_detection.detect import DEFAULT_THRESHOLD, compare
from geolulc.change_detection.job import DateInput, classify_dates
from geolulc.core.device import resolve_device
from geolulc.errors import DataError
from geolulc.io.scenes import load_scene
from geolulc.mapping.request import MapRequest, model_for
from geolulc.models.evaluate import precision_recall_f1
from geolulc.models.model import load_model


def scores(truth: np.ndarray, pred: np.ndarray) -> dict:
    """Confusion counts, precision, recall and F1 of a binary prediction."""
    tp = int(np.count_nonzero(truth & pred))
    fp = int(np.count_nonzero(~truth & pred))
    fn = int(np.count_nonzero(truth & ~pred))
    tn = int(np.count_nonzero(~truth & ~pred))
    return finish({"tp": tp, "fp": fp, "fn": fn, "tn": tn})


def finish(counts: dict) -> dict:
    """Confusion counts completed with their precision, recall and F1 (4 decimals)."""
    precision, recall, f1 = precision_recall_f1(counts["tp"], counts["fp"], counts["fn"])
    return {**counts, "precision": round(precision, 4), "recall": round(recall, 4),
            "f1": round(f1, 4)}


def total(results: list[dict]) -> dict:
    """Micro-average: scores of the summed confusion counts."""
    return finish({k: sum(r[k] for r in results) for k in ("tp", "fp", "fn", "tn")})


def _label_grid(city: Path) -> tuple[np.ndarray, rasterio.crs.CRS, Affine]:
    b02 = sorted((city / "imgs_1").glob("*_B02.tif"))
    if not b02 or not (city / "change-labels.tif").exists():
        raise DataError(f"{city} is not a labelled OSCD city folder (imgs_1/*_B02.tif and "
                           "change-labels.tif needed)")
    with warnings.catch_warnings():  # the label file has no georeference, by design
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(city / "change-labels.tif") as lab:
            labels = lab.read(1)
    with rasterio.open(b02[0]) as ref:
        if labels.shape != ref.shape:
            raise DataError(f"{city}: change labels {labels.shape} do not match B02 "
                               f"{ref.shape}")
        return labels == 2, ref.crs, ref.transform


def block_scores(truth: np.ndarray, pred: np.ndarray, scored: np.ndarray, block: int,
                 fraction: float) -> dict:
    """P/R/F1 of whole `block` × `block` squares of the label grid that are at least half scored.

    A square has changed when at least `fraction` of its scored pixels changed (in the labels, and
    in the prediction).
    """
    hits, calls = [], []
    for r in range(0, truth.shape[0] - block + 1, block):
        for c in range(0, truth.shape[1] - block + 1, block):
            seen = scored[r:r + block, c:c + block]
            if seen.mean() < 0.5:
                continue
            hits.append(truth[r:r + block, c:c + block][seen].mean() >= fraction)
            calls.append(pred[r:r + block, c:c + block][seen].mean() >= fraction)
    return scores(np.array(hits, dtype=bool), np.array(calls, dtype=bool))


def evaluate_city(
    city: Path, req: MapRequest, thresholds: list[float], methods: list[str],
    patch_fraction: float = 0.02, block: int = 64,
) -> dict:
    """Classify both dates once (nothing written), then score every (method, threshold).

    Scores are at the pixel level and on `block`-pixel squares of the label grid. No threshold:
    each method's default.
    """
    truth_px, label_crs, label_transform = _label_grid(city)
    device = resolve_device(req.device)
    inputs = [DateInput("before", [load_scene(city / "imgs_1")]),
              DateInput("after", [load_scene(city / "imgs_2")])]
    model = load_model(model_for(req.model, inputs[0].scenes + inputs[1].scenes), device)
    dates = classify_dates(req, model, None, inputs, device, write=False)
    before, after = dates.maps
    spectral = dates.spectral(0, 1) if "combined" in methods else None
    dates.clear_caches()
    results = []
    for method in methods:
        for threshold in thresholds or [DEFAULT_THRESHOLD[method]]:
            change = compare(before, after, threshold, method,
                             spectral if method == "combined" else None)
            on_labels = np.full(truth_px.shape, np.nan, dtype=np.float32)
            reproject(change.probability, on_labels, src_transform=before.transform,
                      src_crs=before.crs.to_wkt(), dst_transform=label_transform,
                      dst_crs=label_crs, src_nodata=np.nan, dst_nodata=np.nan,
                      resampling=Resampling.nearest)
            scored = ~np.isnan(on_labels)
            pred = np.nan_to_num(on_labels) >= threshold
            results.append({"method": method, "threshold": threshold,
                            "pixel": scores(truth_px[scored], pred[scored]),
                            "block": block_scores(truth_px, pred, scored, block, patch_fraction),
                            "pixels_scored": int(scored.sum()),
                            "pixels_labelled": int(truth_px.size)})
    return {"city": city.name, "cells": list(before.labels.shape),
            "cell_size_m": abs(before.transform.a), "block_px": block,
            "changed_label_share": round(float(truth_px.mean()), 4), "results": results}


@dataclass(frozen=True)
class ChangeScores:
    """Scores of `change` on OSCD cities (`geolulc evaluate-change --json` prints `to_dict()`)."""

    model: str
    stride: int
    patch_fraction: float
    cities: list[dict[str, Any]]
    """Per city: its grid and, per method and threshold, pixel and block scores."""
    total: list[dict[str, Any]]
    """Per method and threshold: pixel and block scores of the pooled confusion counts."""

    def to_dict(self) -> dict[str, Any]:
        """The scores as JSON-ready data."""
        return asdict(self)


def evaluate_cities(cities: list[Path], req: MapRequest, thresholds: list[float],
                    methods: list[str], patch_fraction: float) -> ChangeScores:
    """Score every city, then the micro-average over all of them of each (method, threshold)."""
    per_city = [evaluate_city(c, req, thresholds, methods, patch_fraction) for c in cities]
    summary = []
    for i, first in enumerate(per_city[0]["results"]):
        rows = [c["results"][i] for c in per_city]
        summary.append({"method": first["method"], "threshold": first["threshold"],
                        "pixel": total([r["pixel"] for r in rows]),
                        "block": total([r["block"] for r in rows])})
    return ChangeScores(req.model, req.stride, patch_fraction, per_city, summary)
