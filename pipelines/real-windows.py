"""Cut unlabelled 64×64 windows from real L1C scenes, with Dynamic World's water share of each.

EuroSAT has no hazy subtropical forest, no Mediterranean karst, no raw sensor texture; the OSCD
scenes do. This script cuts every fully clear 64×64 window (stride 32) of the given scenes,
exactly as `geolulc map` reads them (harmonised DN on the 10 m UTM grid), and stores with each
window the mean probability of water that the bundled `dynamic-world` model (world-wide
annotations, NIR and SWIR) gives its pixels. `geolulc train --windows` then teaches a patch
classifier that water share (its River + SeaLake probability) beside the EuroSAT labels. The
file holds derived Copernicus data: keep it out of the repository (runs/ is ignored). Usage:

    python pipelines/real-windows.py OUT.npz SCENE_FOLDER [SCENE_FOLDER ...]
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

import geolulc
from geolulc.io.bands import ALL_BANDS
from geolulc.io.rasters import NODATA
from geolulc.mapping.patches import cut_patches

SIZE, STRIDE = 64, 32


def windows_of(scene: Path) -> tuple[np.ndarray, np.ndarray]:
    """(N, 13, 64, 64) uint16 DN and (N,) Dynamic World water share of one scene."""
    stack = geolulc.read(scenes=[scene], bands=list(ALL_BANDS))
    cover = geolulc.classify(scenes=[scene], model="dynamic-world")
    if cover.labels.shape != stack.clear.shape or cover.grid.crs != stack.crs:
        raise SystemExit(f"{scene}: map and bands are not on one grid")
    water = cover.probabilities[..., cover.classes.index("water")]
    clear = stack.clear & (cover.labels != NODATA)
    # the windows the map would cut, kept only where every pixel is clear
    x = cut_patches(stack.dn, clear, SIZE, STRIDE, min_clear=1.0).pixels
    share = cut_patches(water[None], clear, SIZE, STRIDE, min_clear=1.0).pixels.mean(axis=(1, 2, 3))
    return x.astype(np.uint16), share.astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("scenes", nargs="+", type=Path)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    xs, shares, names = [], [], []
    for scene in args.scenes:
        x, share = windows_of(scene)
        xs.append(x)
        shares.append(share)
        names += [str(scene)] * len(x)
        print(f"{scene}: {len(x)} windows, {float((share > 0.5).mean()):.3f} mostly water")
    np.savez_compressed(args.out, x=np.concatenate(xs), water=np.concatenate(shares),
                        bands=np.array(ALL_BANDS), scenes=np.array(names))
    print(f"{args.out}: {sum(len(x) for x in xs)} windows")


if __name__ == "__main__":
    main()
