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

from geolulc.models.model import BUNDLED_DIR


def main() -> None:
    results = Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results-maps.txt")
    pooled = {}
    for line in results.read_text().splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            if "scene" not in row:
                pooled[Path(row.pop("model")).stem] = row
    for name, row in pooled.items():
        card_path = BUNDLED_DIR / f"{name}.json"
        if not card_path.exists():
            print(f"{name}: no bundled card, skipped")
            continue
        card = json.loads(card_path.read_text())
        card.setdefault("metrics", {})["real_scene"] = {
            **row, "scenes": "20 OSCD L1C scenes (10 cities, 2 dates), 160 m blocks",
            "measured_by": "python benchmarks/evaluate_maps.py"}
        card_path.write_text(json.dumps(card, indent=2) + "\n")
        print(f"{name}: recorded {row}")


if __name__ == "__main__":
    main()
