"""Copy the pooled real-scene figures of `benchmarks/evaluate_maps.py` into the model cards.

The card is what travels with a model; its `metrics.real_scene` says how its maps hold against
the scenes themselves (open water by NDWI, edges), next to its test-set accuracy. Only the
card's text changes (the weights' digest covers the weights). Usage:

    python benchmarks/evaluate_maps.py | tee benchmarks/results-maps.txt
    python pipelines/record-real-scene-checks.py [benchmarks/results-maps.txt]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from geolulc.io.atomic import write_text_atomic
from geolulc.models.model import BUNDLED_DIR, bundled_models


def main() -> None:
    results = Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results-maps.txt")
    pooled, scenes = {}, {}
    for line in results.read_text().splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            if "scene" in row:
                scenes.setdefault(row["model"], []).append(row["scene"])
            else:
                pooled[row.pop("model")] = row
    for name, row in pooled.items():
        if name not in bundled_models():  # a trial run's path: never written into a card
            print(f"{name}: not a bundled model name, skipped")
            continue
        card_path = BUNDLED_DIR / f"{name}.json"
        card = json.loads(card_path.read_text())
        card.setdefault("metrics", {})["real_scene"] = {
            **row, "scenes": scenes.get(name, []), "blocks": "160 m",
            "measured_by": "python benchmarks/evaluate_maps.py"}
        write_text_atomic(card_path, json.dumps(card, indent=2) + "\n")
        print(f"{name}: recorded {row}")


if __name__ == "__main__":
    main()
