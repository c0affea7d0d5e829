"""Probability composites against the reflectance median on the OSCD cities.

Each labelled OSCD city has two acquisitions (years apart) on one grid. Taken as the two
acquisitions of one period, they are composited three ways: the median of the reflectance then
one classification (`median`), the mean of the two classifications' probabilities
(`mean-probability`) and their mode (`mode`). On the pixels the OSCD labels call unchanged, the
land cover is the same at both dates, so:

- where the two single-date maps agree (consensus), a composite should keep that class;
- where they disagree, a composite should pick one of the two classes, not a third one that
  neither acquisition shows (the median of two reflectances is their mean: a mixed spectrum).

Also the time per acquisition of each method. Prints a Markdown table; run:

    python benchmarks/composites.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from rasterio.warp import Resampling, reproject

import geolulc

CITIES = ("aguasclaras", "bercy", "bordeaux", "hongkong", "nantes", "paris", "rennes")
METHODS = ("median", "mean-probability", "mode")


def unchanged_on(grid_shape: tuple[int, int], crs: object, transform: object,
                 city: Path) -> np.ndarray:
    """The OSCD 'no change' pixels on the map's grid (nearest neighbour)."""
    b02 = sorted((city / "imgs_1").glob("*_B02.tif"))[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(city / "change-labels.tif") as lab:
            labels = lab.read(1)
    with rasterio.open(b02) as ref:
        out = np.zeros(grid_shape, dtype=np.uint8)
        reproject(labels, out, src_transform=ref.transform, src_crs=ref.crs,
                  dst_transform=transform, dst_crs=crs, src_nodata=0, dst_nodata=0,
                  resampling=Resampling.nearest)
    return out == 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    args = parser.parse_args()
    totals = {m: {"kept": 0, "consensus": 0, "one_of_two": 0, "disagree": 0, "s": 0.0}
              for m in METHODS}
    stable = [0, 0]
    print("| city | unchanged px | dates agree | " + " | ".join(
        f"{m}: consensus kept / one of the two" for m in METHODS) + " |")
    print("| --- | --- | --- |" + " --- |" * len(METHODS))
    for name in CITIES:
        city = args.data / "oscd" / name
        singles = [geolulc.classify(scenes=[city / d]) for d in ("imgs_1", "imgs_2")]
        grid = singles[0].grid
        unchanged = unchanged_on(singles[0].labels.shape, grid.crs, grid.map_transform, city)
        d1, d2 = (s.labels for s in singles)
        valid = unchanged & (d1 != 255) & (d2 != 255)
        agree, differ = valid & (d1 == d2), valid & (d1 != d2)
        stable[0] += int(agree.sum())
        stable[1] += int(valid.sum())
        row = [name, f"{int(valid.sum()):,}", f"{agree.sum() / valid.sum():.3f}"]
        for method in METHODS:
            t0 = time.perf_counter()
            composite = geolulc.classify(scenes=[city / "imgs_1", city / "imgs_2"],
                                         options=geolulc.MapOptions(composite=method)).labels
            seconds = time.perf_counter() - t0
            kept = int((composite[agree] == d1[agree]).sum())
            one_of = int(((composite[differ] == d1[differ]) | (composite[differ] == d2[differ])).sum())
            t = totals[method]
            t["kept"] += kept
            t["consensus"] += int(agree.sum())
            t["one_of_two"] += one_of
            t["disagree"] += int(differ.sum())
            t["s"] += seconds
            row.append(f"{kept / max(agree.sum(), 1):.4f} / {one_of / max(differ.sum(), 1):.3f}")
        print("| " + " | ".join(row) + " |")
    row = ["**all**", f"{stable[1]:,}", f"{stable[0] / stable[1]:.3f}"]
    for method in METHODS:
        t = totals[method]
        row.append(f"**{t['kept'] / t['consensus']:.4f} / {t['one_of_two'] / t['disagree']:.3f}**")
    print("| " + " | ".join(row) + " |")
    print()
    print("| method | seconds for the 7 cities (2 acquisitions each) | per acquisition |")
    print("| --- | --- | --- |")
    for method in METHODS:
        s = totals[method]["s"]
        print(f"| {method} | {s:.1f} | {s / (2 * len(CITIES)):.2f} |")


if __name__ == "__main__":
    main()
