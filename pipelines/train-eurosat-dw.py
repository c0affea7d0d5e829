"""Train the bundled `eurosat-dw` model: EuroSAT classes from RGB texture and Dynamic World's spectra.

The 347 labelled 13-band EuroSAT patches are too few to learn NIR and SWIR from (the CNNs
trained on them decided from the visible bands and called open sea Forest in cities they never
saw). `DynamicWorldFusion` reads two frozen networks, neither of which saw an OSCD city: the
100-epoch EuroSAT RGB ResNet (texture; trained on RGB JPEGs of other places, runs/rgb100 from
git 2d95a55) and Dynamic World (spectra; real L1C scenes of every continent). Only a linear
head on their window means is trained here, from

1. the EuroSAT MS labels: ms/ split 80/20 (stratified, seed 0, as `eurosat-ms`; the 54
   validation patches are never used to choose anything), all of ms-extra/ for training, each
   patch in its 8 flips and rotations;
2. with `--window-weight` > 0, real windows: every fully clear 64×64 window (stride 32) of the
   OSCD L1C scenes, with Dynamic World's mean class shares as soft targets for groups of EuroSAT
   classes (water → River or SeaLake, trees → Forest, grass and shrub → Pasture or
   HerbaceousVegetation, crops → AnnualCrop or PermanentCrop, built → Residential, Industrial
   or Highway). Which class of a group is the EuroSAT labels' to say. Windows where classes
   without a counterpart (bare, snow, flooded vegetation) hold over 20 % are left out.

With `--folds`, one model per OSCD city is also trained on the windows of the other cities only
(OUT/folds/CITY/), for `benchmarks/evaluate_maps.py --held-out OUT/folds`: every city is then
checked by a model that never saw it. Features are cached in OUT/*-features.npz. The bundled
model is the one of window weight 10 (the candidates' held-out figures are in docs/models.md),
its weights packed losslessly by `python pipelines/pack-model.py … --exact`. Usage:

    mkdir -p runs/rgb100 && for x in json safetensors; do git show \
      2d95a55:geolulc/models/bundled/eurosat-rgb.$x > runs/rgb100/eurosat-rgb-100.$x; done
    python pipelines/train-eurosat-dw.py [--data ../shared/data] [--out runs/eurosat-dw] \
      [--window-weight 10] [--folds]     (10 is the default and the bundled model's)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import rasterio
import torch
import torch.nn.functional as F
from pyproj import Transformer
from shapely.geometry import Point, shape

import geolulc
from geolulc.api import read
from geolulc.core.classes import EUROSAT_COLORS
from geolulc.core.windows import fill_unclear
from geolulc.models.evaluate import fingerprint
from geolulc.models.model import load_model, save_model
from geolulc.models.network import DynamicWorldFusion
from geolulc.models.patchdata import load_patch_folder, stratified_split

CITIES = ["aguasclaras", "bercy", "bordeaux", "hongkong", "montpellier", "nantes", "norcia",
          "paris", "rennes", "rio"]
SIZE, STRIDE = 64, 32
#: Dynamic World class → the EuroSAT classes it stands for (classes absent here have none).
COUNTERPARTS = {
    "water": ("River", "SeaLake"), "trees": ("Forest",),
    "grass": ("Pasture", "HerbaceousVegetation"),
    "shrub_and_scrub": ("Pasture", "HerbaceousVegetation"),
    "crops": ("AnnualCrop", "PermanentCrop"),
    "built": ("Residential", "Industrial", "Highway"),
}
MIN_COVERED = 0.8
#: The network prepares each branch's input itself: the card passes DNs through.
IDENTITY_INPUT = {"description": "x = DN (reflectance × 10000 with the baseline-04.00 offset "
                                 "removed); the network scales each branch's input itself",
                  "dn_scale": 1.0, "dn_offset": 0.0, "clip": None, "mean": [0.0] * 9,
                  "std": [1.0] * 9}
VAL_FRACTION, SEED = 0.2, 0


def dihedral(x: np.ndarray) -> np.ndarray:
    """The 8 flips and rotations of every patch (N, C, H, W) → (8N, C, H, W)."""
    views = [np.rot90(x, k, axes=(2, 3)) for k in range(4)]
    views += [v[..., ::-1] for v in views]
    return np.ascontiguousarray(np.concatenate(views))


def fusion_network(texture: Path) -> DynamicWorldFusion:
    """The fusion network with both frozen branches loaded and their input constants set."""
    dw, rgb = load_model("dynamic-world"), load_model(texture)
    net = DynamicWorldFusion(len(dw.bands), len(rgb.classes))
    net.trunk.load_state_dict({k: v for k, v in dw.network.state_dict().items()
                               if not k.startswith("head.")})
    net.texture.load_state_dict({k: v for k, v in rgb.network.state_dict().items()
                                 if not k.startswith("head.")})
    r, d = rgb.card.input, dw.card.input
    low, high = r.clip if r.clip else (-1e9, 1e9)
    with torch.no_grad():
        net.rgb_scale.copy_(torch.tensor([r.dn_scale, r.dn_offset, low, high]))
        net.rgb_mean.copy_(torch.tensor(r.mean).view(1, 3, 1, 1))
        net.rgb_std.copy_(torch.tensor(r.std).view(1, 3, 1, 1))
        net.dw_scale.fill_(d.dn_scale)
        net.dw_p30.copy_(torch.tensor(d.p30).view(1, -1, 1, 1))
        net.dw_p70.copy_(torch.tensor(d.p70).view(1, -1, 1, 1))
    return net.eval()


@torch.inference_mode()
def patch_features(net: DynamicWorldFusion, dn: np.ndarray) -> np.ndarray:
    """Mean features (N, 400) of DN patches (N, 9, 64, 64), as the classifier computes them."""
    return np.concatenate([net.features(torch.from_numpy(dn[i:i + 128].astype(np.float32)))
                           .mean(dim=(2, 3)).numpy() for i in range(0, len(dn), 128)])


@torch.inference_mode()
def scene_windows(net: DynamicWorldFusion, dw_head: torch.nn.Module, bands: list[str],
                  scene: Path) -> tuple[np.ndarray, np.ndarray]:
    """Mean features (N, 400) and Dynamic World class shares (N, 9) of a scene's clear windows.

    The scene is read as `geolulc map` reads it (harmonised DN on the 10 m UTM grid, unclear
    pixels filled), and its features are computed once over the whole scene, as a dense map does.
    """
    stack = read(scenes=[scene], bands=bands)
    dn = fill_unclear(stack.dn.astype(np.float32), stack.clear)
    h, w = dn.shape[1] // STRIDE * STRIDE, dn.shape[2] // STRIDE * STRIDE
    x = torch.from_numpy(np.ascontiguousarray(dn[None, :, :h, :w]))
    cells = SIZE // net.CELL
    feats = F.avg_pool2d(net.features(x), cells, STRIDE // net.CELL)[0]
    probs = torch.softmax(dw_head(net.trunk_features(x)), dim=1)
    shares = F.avg_pool2d(probs, SIZE, STRIDE)[0]
    clear = torch.from_numpy(stack.clear[None, None, :h, :w].astype(np.float32))
    full = F.avg_pool2d(clear, SIZE, STRIDE)[0, 0] == 1
    return feats.permute(1, 2, 0)[full].numpy(), shares.permute(1, 2, 0)[full].numpy()


def group_targets(shares: np.ndarray, dw_classes: list[str], classes: list[str]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group membership (G, K), soft group targets (N, G) and the rows kept."""
    groups = sorted(set(COUNTERPARTS.values()))
    member = np.zeros((len(groups), len(classes)), dtype=np.float32)
    to_group = np.zeros((len(dw_classes), len(groups)), dtype=np.float32)
    for g, members in enumerate(groups):
        member[g, [classes.index(c) for c in members]] = 1
    for i, name in enumerate(dw_classes):
        if name in COUNTERPARTS:
            to_group[i, groups.index(COUNTERPARTS[name])] = 1
    t = shares @ to_group
    covered = t.sum(1)
    keep = covered >= MIN_COVERED
    return member, t[keep] / covered[keep, None], keep


def fit_head(fe: np.ndarray, ye: np.ndarray, fw: np.ndarray, tw: np.ndarray, member: np.ndarray,
             window_weight: float, n_classes: int, steps: int = 600, seed: int = 0
             ) -> torch.nn.Linear:
    """A linear head on standardised features, folded back to raw mean features.

    Cross-entropy on the EuroSAT labels plus `window_weight` × the cross-entropy of the windows'
    group shares against the head's group probabilities; a small L2 penalty.
    """
    torch.manual_seed(seed)
    both = np.concatenate([fe, fw]) if window_weight > 0 else fe
    mean, std = both.mean(0), both.std(0) + 1e-6
    xe = torch.from_numpy((fe - mean) / std)
    xw = torch.from_numpy((fw - mean) / std)
    y, t, m = torch.from_numpy(ye), torch.from_numpy(tw), torch.from_numpy(member)
    head = torch.nn.Linear(fe.shape[1], n_classes)
    opt = torch.optim.Adam(head.parameters(), lr=0.02)
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(head(xe), y) + 1e-3 * head.weight.square().sum()
        if window_weight > 0:
            q = torch.softmax(head(xw), dim=1) @ m.T
            loss = loss - window_weight * (t * torch.log(q.clamp_min(1e-8))).sum(1).mean()
        loss.backward()
        opt.step()
    folded = torch.nn.Linear(fe.shape[1], n_classes)
    with torch.no_grad():
        folded.weight.copy_(head.weight / torch.from_numpy(std))
        folded.bias.copy_(head.bias - (head.weight * torch.from_numpy(mean / std)).sum(1))
    return folded


def eurosat_in_cities(files: list[Path], data: Path) -> list[str]:
    """EuroSAT patches whose centre lies inside an OSCD city footprint (a leak of place)."""
    footprints = {c: shape(json.loads((data / "oscd" / c / f"{c}.geojson").read_text())
                           ["features"][0]["geometry"]) for c in CITIES}
    inside = []
    for path in files:
        with rasterio.open(path) as src:
            b = src.bounds
            lon, lat = Transformer.from_crs(src.crs, "EPSG:4326", always_xy=True).transform(
                (b.left + b.right) / 2, (b.bottom + b.top) / 2)
        inside += [f"{path.stem} in {c}" for c, g in footprints.items() if g.contains(Point(lon, lat))]
    return inside


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data")
    ap.add_argument("--out", type=Path, default=Path("runs/eurosat-dw"))
    ap.add_argument("--window-weight", type=float, default=10.0)
    ap.add_argument("--folds", action="store_true", help="also one model per held-out city")
    ap.add_argument("--texture", default="runs/rgb100/eurosat-rgb-100.json",
                    help="the RGB model whose features are the texture branch")
    args = ap.parse_args()
    t0 = time.perf_counter()
    dw = load_model("dynamic-world")
    net = fusion_network(args.texture)
    ms = load_patch_folder(args.data / "eurosat/ms", bands=dw.bands)
    extra = load_patch_folder(args.data / "eurosat/ms-extra", bands=dw.bands, classes=ms.classes)
    train, val = stratified_split(ms.y, VAL_FRACTION, SEED, ms.classes)
    y_train = np.concatenate([ms.y[train], extra.y])
    args.out.mkdir(parents=True, exist_ok=True)
    patches, windows = args.out / "patch-features.npz", args.out / "window-features.npz"
    if not patches.exists():
        leaks = eurosat_in_cities(ms.files + extra.files, args.data)
        print(f"EuroSAT patches inside an OSCD city: {len(leaks)} {leaks[:5]}")
        np.savez(patches, fe=patch_features(net, dihedral(np.concatenate([ms.x[train], extra.x]))),
                 f_val=patch_features(net, ms.x[val]))
    fe, f_val = (np.load(patches)[k] for k in ("fe", "f_val"))
    print(f"EuroSAT features: {len(fe)} training views, {len(val)} validation patches "
          f"({time.perf_counter() - t0:.0f} s)")
    if not windows.exists():
        parts = [(city, *scene_windows(net, dw.network.head, dw.bands,
                                       args.data / "oscd" / city / date))
                 for city in CITIES for date in ("imgs_1", "imgs_2")]
        np.savez(windows, fw=np.concatenate([p[1] for p in parts]),
                 shares=np.concatenate([p[2] for p in parts]),
                 cities=np.array([p[0] for p in parts for _ in range(len(p[1]))]))
    fw_all, shares, cities = (np.load(windows)[k] for k in ("fw", "shares", "cities"))
    ye = np.tile(y_train, 8)
    band_mean = np.concatenate([ms.x[train], extra.x]).mean(axis=(0, 2, 3))
    member, tw, keep = group_targets(shares, dw.classes, ms.classes)
    fw, city_of = fw_all[keep], cities[keep]
    print(f"real windows: {len(fw)} kept of {len(keep)} ({time.perf_counter() - t0:.0f} s)")

    def build(windows: np.ndarray, name: str, out: Path, note: str) -> float:
        head = fit_head(fe, ye, fw[windows], tw[windows], member, args.window_weight,
                        len(ms.classes))
        net.head.load_state_dict(head.state_dict())
        with torch.inference_mode():
            val_acc = float((net.head(torch.from_numpy(f_val)).argmax(1).numpy()
                             == ms.y[val]).mean())
        used = sorted(set(city_of[windows])) if args.window_weight > 0 else []
        card = {
            "format": "geolulc-model", "format_version": 1, "name": name, "kind": "classifier",
            "architecture": {"name": "dynamic-world-fusion"}, "bands": dw.bands,
            "processing_level": "L1C", "input": IDENTITY_INPUT, "classes": ms.classes,
            "colors": [list(EUROSAT_COLORS[c]) for c in ms.classes],
            "patch_size": SIZE, "geolulc_version": geolulc.__version__,
            "training": {
                "data": ("a linear head on the frozen features of dynamic-world and of the "
                         "100-epoch EuroSAT RGB ResNet (means over the 64×64 window), trained on "
                         "EuroSAT MS (216 training patches of ../shared/data/eurosat/ms, 54 held "
                         "out; all 77 of ms-extra) in 8 flips and rotations"
                         + (f", and Dynamic World's class shares of {int(windows.sum())} real "
                            f"OSCD L1C windows of {len(used)} cities" if used else "")),
                "recipe": f"python pipelines/train-eurosat-dw.py --window-weight "
                          f"{args.window_weight:g}", "note": note,
                "data_fingerprint": fingerprint(ms.files, args.data / "eurosat/ms"),
                "excluded_names": [], "val_fraction": VAL_FRACTION, "seed": SEED,
                "n_train": int(len(y_train)), "n_val": int(len(val)),
                "window_weight": args.window_weight, "window_cities": used,
                "counterparts": {k: list(v) for k, v in COUNTERPARTS.items()},
                "frozen": ["dynamic-world", "eurosat-rgb of git 2d95a55 (100 epochs, 97.94 %)"],
                "band_mean_dn": [round(float(v), 1) for v in band_mean],
            },
            "license": "Apache-2.0 (the Dynamic World weights it contains; eurosat-dw.LICENSE)",
            "notice": dw.card.data["notice"],
            "metrics": {"val_accuracy": val_acc, "n_val": int(len(val))},
            "weights_sha256": "",
        }
        save_model(net, card, out / name)
        return val_acc

    name = "eurosat-dw"
    if args.folds:
        for city in CITIES:
            acc = build(city_of != city, name, args.out / "folds" / city,
                        f"held-out fold: no window of {city}")
            print(f"fold without {city}: val accuracy {acc:.4f}")
    acc = build(np.ones(len(fw), bool), name, args.out, "all cities' windows")
    print(f"{args.out / name}.json: val accuracy {acc:.4f} of {len(val)} "
          f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
