"""Area statistics of a land-cover map."""

from __future__ import annotations

import csv
import io

import numpy as np

from geolulc.io.rasters import NODATA


def class_areas(labels: np.ndarray, classes: list[str], pixel_area_m2: float) -> dict:
    """Area in km² and share of the mapped area for every class, plus the no-data area.

    Areas are pixel counts times the pixel area of the projected grid; in UTM this is within
    0.1 % of the true area inside the zone (scale factor 0.9996 to about 1.001).
    """
    counts = np.bincount(labels.ravel(), minlength=256)
    mapped = int(counts[: len(classes)].sum())
    rows = []
    for code, name in enumerate(classes):
        n = int(counts[code])
        rows.append({"code": code, "class": name, "pixels": n,
                     "area_km2": round(n * pixel_area_m2 / 1e6, 4),
                     "percent": round(100 * n / mapped, 2) if mapped else 0.0})
    return {
        "classes": rows,
        "mapped_km2": round(mapped * pixel_area_m2 / 1e6, 4),
        "nodata_km2": round(int(counts[NODATA]) * pixel_area_m2 / 1e6, 4),
        "pixel_area_m2": pixel_area_m2,
    }


def areas_csv(stats: dict) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["code", "class", "pixels", "area_km2", "percent"],
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(stats["classes"])
    return buf.getvalue()
