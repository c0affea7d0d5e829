"""Which bands a multispectral model uses: accuracy with each band group removed.

A removed band is set to the model's training mean (`geolulc.models.evaluate.remove_bands`,
what `geolulc evaluate --bands` does), on the patches its training run held out. Prints a
Markdown table and one JSON line.

    python benchmarks/band_ablation.py [--model eurosat-ms] [--data ../shared/data/eurosat/ms]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from geolulc.device import resolve_device
from geolulc.models.evaluate import BAND_GROUPS, predict, remove_bands, validation_subset
from geolulc.models.model import load_model
from geolulc.models.patchdata import load_patch_folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="eurosat-ms")
    ap.add_argument("--data", type=Path,
                    default=Path(__file__).resolve().parents[2] / "shared/data/eurosat/ms")
    args = ap.parse_args()
    device = resolve_device("auto")
    model = load_model(args.model, device)
    data = validation_subset(model, load_patch_folder(args.data, classes=model.classes),
                             args.data)
    rows = {"all bands": model.bands}
    rows.update({f"without {name}": [b for b in model.bands if b not in group]
                 for name, group in BAND_GROUPS.items()})
    rows["B04 B03 B02 only"] = ["B04", "B03", "B02"]
    result = {}
    print(f"| {model.name} on {len(data.y)} held-out patches | accuracy | correct |\n"
          "| --- | --- | --- |")
    for name, keep in rows.items():
        probs = predict(model, remove_bands(model, data, keep), device)
        correct = int((probs.argmax(1) == data.y).sum())
        result[name] = round(correct / len(data.y), 4)
        print(f"| {name} | {result[name]:.4f} | {correct}/{len(data.y)} |", flush=True)
    print(json.dumps({"model": model.name, "n": len(data.y), "accuracy": result}))


if __name__ == "__main__":
    main()
