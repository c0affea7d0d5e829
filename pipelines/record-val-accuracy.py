"""Measure a bundled classifier on its validation patches and write the figures into its card.

`geolulc evaluate --split val` on the folder the model was trained on; the card's
`metrics.val_accuracy` and `n_val` get the result, and for a two-level model
(`geolulc.models.levels`) also each level's: `val_patch_accuracy` (the patch CNN alone),
`val_group_accuracy` (Dynamic World's largest group is the true class's) and
`val_within_group_accuracy` over `val_within_group_n` patches. Only the card's text changes.

    python pipelines/record-val-accuracy.py eurosat-dw [--data ../shared/data/eurosat/ms]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import geolulc
from geolulc.io.atomic import write_text_atomic
from geolulc.models.model import BUNDLED_DIR, bundled_models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=bundled_models())
    parser.add_argument("--data", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared/data/eurosat/ms")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = geolulc.evaluate(model=args.model, data=args.data, split="val", out_dir=tmp)
    card_path = BUNDLED_DIR / f"{args.model}.json"
    card = json.loads(card_path.read_text())
    metrics = card.setdefault("metrics", {})
    metrics.update({"val_accuracy": result.accuracy, "n_val": result.n})
    if result.levels:
        metrics.update({f"val_{k}": v for k, v in result.levels.items()})
    write_text_atomic(card_path, json.dumps(card, indent=2) + "\n")
    print(json.dumps(metrics))


if __name__ == "__main__":
    main()
