"""Build the two-level EuroSAT-legend model from a fusion model and Dynamic World's classifier.

`pipelines/train-eurosat-dw.py` trains a linear head on the frozen features of Dynamic World and
of the RGB ResNet (`DynamicWorldFusion`). The two-level model (`DynamicWorldTwoLevel`) keeps all
of those weights, adds Dynamic World's own 1×1 classifier on the same trunk features, and uses
the trained head only within the group of EuroSAT classes that Dynamic World's shares choose:
P(class) = P(group) × P(class | group). Nothing is trained here. Usage:

    python pipelines/pack-two-level.py FUSION.json OUT_STEM
    python pipelines/pack-model.py OUT_STEM.safetensors --exact

then `python benchmarks/evaluate_maps.py` and `pipelines/record-real-scene-checks.py` for the
card's real-scene figures, and `geolulc evaluate --model OUT_STEM.json --split val`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from geolulc.models.model import load_model, save_model
from geolulc.models.network import (
    TWO_LEVEL_CLASSES,
    WORLD_CLASSES,
    WORLD_GROUPS,
    DynamicWorldTwoLevel,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fusion", type=Path, help="card of a dynamic-world-fusion model")
    parser.add_argument("out", type=Path, help="stem of the two-level model to write")
    args = parser.parse_args()
    fusion = load_model(args.fusion)
    world = load_model("dynamic-world")
    if fusion.card.data["architecture"]["name"] != "dynamic-world-fusion":
        parser.error(f"{args.fusion} is not a dynamic-world-fusion model")
    if tuple(world.classes) != WORLD_CLASSES:
        parser.error(f"dynamic-world's classes are {world.classes}, not {list(WORLD_CLASSES)}")
    if fusion.classes != list(TWO_LEVEL_CLASSES[:10]):
        parser.error(f"the fusion model's classes are {fusion.classes}")
    net = DynamicWorldTwoLevel(len(fusion.bands), len(TWO_LEVEL_CLASSES))
    state = {k: v for k, v in fusion.network.state_dict().items() if not k.startswith("head.")}
    state.update({f"head.linear.{k}": v for k, v in fusion.network.head.state_dict().items()})
    state.update({f"world.{k}": v for k, v in world.network.head.state_dict().items()})
    state.update({k: v for k, v in net.state_dict().items()
                  if k.startswith("head.") and not k.startswith("head.linear.")})  # buffers
    net.load_state_dict(state)
    with torch.inference_mode():  # the trunk is Dynamic World's, weight for weight
        for key, value in world.network.state_dict().items():
            if key.startswith("head."):
                continue
            if not torch.equal(net.trunk.state_dict()[key], value):
                parser.error(f"the fusion model's trunk differs from dynamic-world at {key}")
    card = json.loads(json.dumps(fusion.card.data))
    world_colors = dict(zip(world.classes, world.colors))
    card.update({
        "name": args.out.name,
        "architecture": {"name": "dynamic-world-two-level"},
        "classes": list(TWO_LEVEL_CLASSES),
        "colors": [list(c) for c in fusion.colors]
        + [list(world_colors["bare"]), list(world_colors["snow_and_ice"])],
        "label_groups": [[TWO_LEVEL_CLASSES.index(c) for c in names]
                         for _, _, names in WORLD_GROUPS],
        "metrics": {},
        "weights_sha256": "",
    })
    card["training"] = {
        **card["training"],
        "two_level": ("P(class) = P(group) × P(class | group): the group from dynamic-world's "
                      "class shares over the window, the class within it from the head above "
                      "(python pipelines/pack-two-level.py)"),
    }
    save_model(net, card, args.out)
    print(f"wrote {args.out}.json and {args.out}.safetensors")


if __name__ == "__main__":
    main()
