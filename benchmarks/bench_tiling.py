"""How big a halo a per-pixel model needs, and what it costs: tiles against a whole-scene pass.

For real OSCD scenes in ../shared/data, runs the Dynamic World network once over the whole scene
(with `halo` pixels of edge-repeated context around it) and again tile by tile with the same
halo, and prints, per tile size and halo: argmax agreement, the largest probability difference,
the halo's compute overhead ((tile + 2·halo)² / tile²) and the CPU time per megapixel.

    python benchmarks/bench_tiling.py [--data ../shared/data] [--tiles 128 256 512 1024]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from geolulc.io.scenes import load_scene
from geolulc.models.inference import Classifier
from geolulc.models.model import load_model
from geolulc.models.tiles import segment

CITIES = ["rennes", "bordeaux", "nantes", "hongkong", "paris"]


def scene_dn(folder: Path, bands: list[str]) -> np.ndarray:
    """The scene's bands on the grid of its B02 (20 m bands bilinearly), cropped to even size."""
    import rasterio
    from rasterio.enums import Resampling

    scene = load_scene(folder)
    with rasterio.open(scene.bands["B02"]) as src:
        shape = (src.height // 2 * 2, src.width // 2 * 2)
    planes = []
    for band in bands:
        with rasterio.open(scene.bands[band]) as src:
            planes.append(src.read(1, out_shape=shape, resampling=Resampling.bilinear))
    return np.stack(planes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data")
    ap.add_argument("--tiles", type=int, nargs="+", default=[128, 256])
    ap.add_argument("--halos", type=int, nargs="+", default=[0, 8, 16, 24, 32])
    args = ap.parse_args()
    torch.set_num_threads(2)
    model = load_model("dynamic-world")
    clf = Classifier(model, torch.device("cpu"), batch_size=4, precision="fp32")
    rows = []
    for tile in args.tiles:
        for halo in args.halos:
            agree = total = 0
            worst = 0.0
            seconds = 0.0
            for city in CITIES:
                dn = scene_dn(args.data / "oscd" / city / "imgs_1", model.bands)
                padded = np.pad(dn, ((0, 0), (halo, halo), (halo, halo)), mode="edge")
                ref = np.moveaxis(clf.probabilities(padded[None])[0], 0, -1)
                ref = ref[halo:ref.shape[0] - halo, halo:ref.shape[1] - halo]
                t0 = time.perf_counter()
                tiled = segment(padded, clf.probabilities, len(model.classes), tile, halo)
                seconds += time.perf_counter() - t0
                agree += int((ref.argmax(-1) == tiled.argmax(-1)).sum())
                total += ref.shape[0] * ref.shape[1]
                worst = max(worst, float(np.abs(ref - tiled).max()))
            rows.append({"tile": tile, "halo": halo, "argmax_agreement": round(agree / total, 6),
                         "max_abs_prob_diff": float(f"{worst:.2e}"),
                         "halo_overhead": round((tile + 2 * halo) ** 2 / tile ** 2, 3),
                         "cpu_s_per_megapixel": round(seconds / total * 1e6, 2)})
            print(json.dumps(rows[-1]), flush=True)


if __name__ == "__main__":
    main()
