"""How much L2A (bottom-of-atmosphere) input changes a map, and how much `--l2a toa` restores.

No product in ../shared/data has both levels of one acquisition, so L2A is simulated from the
real L1C OSCD scenes: each scene is atmospherically corrected with `geolulc.io.atmosphere` under a
*true* aerosol load (Ångström exponent 1.0, unlike the 1.3 the restoration assumes), then mapped
as it is and after restoring with the AOT that an L2A product would report (exact, or off by
±0.1). Prints, per case, the pixel agreement with the map of the L1C scene and the share of the
built class (the class L2A input loses first).

    python benchmarks/bench_l2a.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import torch
from pyproj import Transformer

import geolulc.io.atmosphere as atm
from geolulc.io.clouds import sun_position
from geolulc.io.scenes import load_scene
from geolulc.models.inference import Classifier
from geolulc.models.model import load_model
from geolulc.models.tiles import HALO, segment

CITIES = ["rennes", "bordeaux", "nantes", "hongkong", "paris", "rio", "montpellier", "norcia"]


def read(folder: Path, bands: list[str]) -> tuple[np.ndarray, float]:
    """The bands at 10 m and the sun zenith of the acquisition (dates.txt, 10:30 local)."""
    import rasterio
    from rasterio.enums import Resampling

    scene = load_scene(folder)
    with rasterio.open(scene.bands["B02"]) as src:
        shape, bounds, crs = (src.height, src.width), src.bounds, src.crs
    planes = []
    for band in bands:
        with rasterio.open(scene.bands[band]) as src:
            planes.append(src.read(1, out_shape=shape, resampling=Resampling.bilinear))
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(
        (bounds.left + bounds.right) / 2, (bounds.bottom + bounds.top) / 2)
    dates = dict(line.split(": ") for line in (folder.parent / "dates.txt").read_text().split("\n")
                 if ": " in line)
    day = datetime.strptime(dates["date_1" if folder.name == "imgs_1" else "date_2"], "%Y%m%d")
    _, elevation = sun_position(day + timedelta(hours=10.5 - lon / 15), lon, lat)
    return np.stack(planes), 90.0 - elevation


def labels(clf, dn: np.ndarray) -> np.ndarray:
    padded = np.pad(dn, ((0, 0), (HALO, HALO), (HALO, HALO)), mode="reflect")
    return segment(padded, clf.probabilities, 9).argmax(-1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data")
    args = ap.parse_args()
    model = load_model("dynamic-world")
    clf = Classifier(model, torch.device("cpu"))
    built = model.classes.index("built")
    cases = [("true AOT 0.1", 0.1, [0.1]), ("true AOT 0.3", 0.3, [0.3, 0.2, 0.4])]
    totals: dict[str, list[float]] = {}
    for city in CITIES:
        dn, zenith = read(args.data / "oscd" / city / "imgs_1", model.bands)
        ref = labels(clf, dn)
        row = {"city": city, "sun_zenith": round(zenith, 1),
               "built_l1c": round(float((ref == built).mean()), 4)}
        for name, true_aot, layer_aots in cases:
            angstrom, atm.ANGSTROM = atm.ANGSTROM, 1.0  # the true atmosphere differs from the model
            boa = np.stack([atm.toa_to_boa(p, b, zenith, true_aot) for p, b in zip(dn, model.bands)])
            atm.ANGSTROM = angstrom
            raw = labels(clf, boa)
            row[f"{name}: as-is agreement"] = round(float((raw == ref).mean()), 4)
            row[f"{name}: as-is built"] = round(float((raw == built).mean()), 4)
            for layer in layer_aots:
                toa = np.stack([atm.boa_to_toa(p, b, zenith, layer) for p, b in zip(boa, model.bands)])
                fixed = labels(clf, toa)
                row[f"{name}: toa (AOT layer {layer}) agreement"] = round(float((fixed == ref).mean()), 4)
                row[f"{name}: toa (AOT layer {layer}) built"] = round(float((fixed == built).mean()), 4)
        for key, value in row.items():
            if key not in ("city", "sun_zenith"):
                totals.setdefault(key, []).append(value)
        print(json.dumps(row), flush=True)
    print(json.dumps({"mean over cities": {k: round(float(np.mean(v)), 4) for k, v in totals.items()}},
                     indent=1))


if __name__ == "__main__":
    main()
