"""Which bands a multispectral model uses: accuracy with each band group removed.

A removed band is set to the model's training mean (`geolulc.models.evaluate.remove_bands`,
what `geolulc evaluate --bands` does), on the patches its training run held out. With `--maps`
the same ablation is measured on real scenes: a band at its mean is zero after normalisation,
exactly as if the stem's filters for it were zero, so a copy of the model with those filters
zeroed maps the 20 OSCD scenes (`evaluate_maps.py`'s checks). Prints a Markdown table and
one JSON line.

    python benchmarks/band_ablation.py [--model eurosat-ms] [--data ../shared/data/eurosat/ms]
                                       [--maps ../shared/data]
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
from pathlib import Path

import torch
from evaluate_maps import CITIES, check_model

from geolulc.core.device import resolve_device
from geolulc.models.evaluate import BAND_GROUPS, predict, remove_bands, validation_subset
from geolulc.models.model import Model, load_model, save_model
from geolulc.models.network import DynamicWorldFusion
from geolulc.models.patchdata import load_patch_folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="eurosat-ms")
    ap.add_argument("--data", type=Path,
                    default=Path(__file__).resolve().parents[2] / "shared/data/eurosat/ms")
    ap.add_argument("--maps", type=Path, default=None,
                    help="shared data folder: also measure false water on the OSCD scenes")
    args = ap.parse_args()
    device = resolve_device("auto")
    model = load_model(args.model, device)
    data = validation_subset(model, load_patch_folder(args.data, classes=model.classes),
                             args.data)
    rows = {"all bands": model.bands}
    rows.update({f"without {name}": [b for b in model.bands if b not in group]
                 for name, group in BAND_GROUPS.items()})
    rows["B04 B03 B02 only"] = ["B04", "B03", "B02"]
    result, maps = {}, {}
    print(f"| {model.name} on {len(data.y)} held-out patches | accuracy | correct |"
          + (" false water (OSCD) | open-water recall |" if args.maps else "") + "\n"
          "| --- | --- | --- |" + (" --- | --- |" if args.maps else ""))
    for name, keep in rows.items():
        if isinstance(model.network, DynamicWorldFusion):  # the same copy as the maps use
            probs = predict(Model(without_bands(model, keep), model.card), data, device)
        else:
            probs = predict(model, remove_bands(model, data, keep), device)
        correct = int((probs.argmax(1) == data.y).sum())
        result[name] = round(correct / len(data.y), 4)
        line = f"| {name} | {result[name]:.4f} | {correct}/{len(data.y)} |"
        if args.maps:
            maps[name] = map_check(model, keep, args.maps)
            line += f" {maps[name]['false_water']} | {maps[name]['open_water_recall']} |"
        print(line, flush=True)
    print(json.dumps({"model": model.name, "n": len(data.y), "accuracy": result,
                      "real_scene": maps or None}))


def without_bands(model: Model, keep: list[str]) -> torch.nn.Module:
    """A copy of `model`'s network that reads every band outside `keep` as constant at its mean.

    A patch ResNet's stem filters of those bands are zeroed (the band at its normalisation mean
    is zero). In a `DynamicWorldFusion` the band's contribution at its training mean DN moves
    into the first layer's bias (Dynamic World) or batch-norm mean (the RGB branch).
    """
    network = copy.deepcopy(model.network)
    removed = [i for i, band in enumerate(model.bands) if band not in keep]
    if not isinstance(network, DynamicWorldFusion):
        with torch.no_grad():
            for i in removed:
                network.stem[0].weight[:, i] = 0
        return network
    mean_dn = torch.tensor(model.card.training["band_mean_dn"]).view(1, -1, 1, 1)
    with torch.no_grad():
        prepared = network.trunk_input(mean_dn).flatten()
        rgb = network.texture_input(mean_dn).flatten()
        conv = network.trunk.stem.conv
        for i in removed:
            conv.bias += conv.weight[:, i].sum(dim=(1, 2)) * prepared[i]
            conv.weight[:, i] = 0
            if i in network.RGB:
                j = network.RGB.index(i)
                stem, bn = network.texture.stem[0], network.texture.stem[1]
                bn.running_mean -= stem.weight[:, j].sum(dim=(1, 2)) * rgb[j]
                stem.weight[:, j] = 0
    return network


def map_check(model: Model, keep: list[str], data: Path) -> dict:
    """Real-scene figures of a copy of `model` that reads the bands outside `keep` at their mean."""
    network = without_bands(model, keep)
    card = {k: v for k, v in model.card.data.items() if k != "weights_sha256"}
    with tempfile.TemporaryDirectory() as tmp:
        path = save_model(network, card, Path(tmp) / model.name)
        return check_model(str(path), data, CITIES)


if __name__ == "__main__":
    main()
