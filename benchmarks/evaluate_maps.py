"""Real-scene checks of every bundled model: open water by NDWI and scene edges.

Maps each OSCD city scene in ../shared/data with each bundled model (patch classifiers at stride
16, i.e. 160 m cells; per-pixel models at 10 m) and prints, per model, the figures of
`geolulc.mapping.mapcheck` pooled over the scenes (blocks summed), as JSON lines and a Markdown table.

    python benchmarks/evaluate_maps.py [--data ../shared/data] [--models dynamic-world ...]
    python benchmarks/evaluate_maps.py --held-out runs/eurosat-dw/folds

With `--held-out DIR`, each city is mapped by the model in DIR/CITY/, one trained without any
window of that city (`pipelines/train-eurosat-dw.py --folds`): the figures of places never seen.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from geolulc.io.scenes import load_scene
from geolulc.mapping.mapcheck import evaluate_map
from geolulc.mapping.pipeline import run_map
from geolulc.mapping.request import MapRequest
from geolulc.models.model import bundled_models

CITIES = ["bercy", "paris", "rennes", "bordeaux", "aguasclaras", "nantes", "hongkong", "norcia",
          "rio", "montpellier"]


def pooled(checks: list) -> dict:
    """Block-weighted figures over several scenes."""
    def rate(count_key: str, rate_key: str, weight=None):
        pairs = [(getattr(c, count_key) if weight is None else weight(c), getattr(c, rate_key))
                 for c in checks if getattr(c, rate_key) is not None]
        total = sum(n for n, _ in pairs)
        return (round(sum(n * r for n, r in pairs) / total, 4) if total else None), total
    recall, n_open = rate("open_water_blocks", "open_water_recall")
    false, n_dry = rate("dry_blocks", "false_water")
    edge, n_edge = rate("edge_dry_blocks", "edge_false_water")
    inner, _ = rate("dry_blocks", "interior_false_water",
                    lambda c: c.dry_blocks - c.edge_dry_blocks)
    worst = {}
    for c in checks:
        for name, ex in c.edge_class_excess.items():
            worst[name] = max(worst.get(name, -1.0), ex)
    return {"open_water_blocks": n_open, "open_water_recall": recall, "dry_blocks": n_dry,
            "false_water": false, "edge_dry_blocks": n_edge, "edge_false_water": edge,
            "interior_false_water": inner,
            "max_edge_class_excess": max(worst.items(), key=lambda kv: kv[1]) if worst else None}


def scene_checks(model: str, data: Path, cities: list[str], out_dir: Path, held_out: bool = False):
    """(scene, MapCheck) of every date of every city, mapped by `model` at stride 16.

    With `held_out`, `model` is a folder and each city is mapped by the model in its sub-folder.
    """
    for city in cities:
        for date in ("imgs_1", "imgs_2"):
            folder = data / "oscd" / city / date
            used = str(Path(model) / city) if held_out else model
            summary = run_map(MapRequest(scenes=[folder], model=used, stride=16,
                                         out_dir=out_dir, name=f"{city}{date}", progress=False)).to_dict()
            yield f"{city}/{date}", evaluate_map(summary["outputs"]["landcover"],
                                                 [load_scene(folder)])


def check_model(model: str, data: Path, cities: list[str]) -> dict:
    """Pooled figures of one model over the cities' scenes."""
    with tempfile.TemporaryDirectory() as tmp:
        return pooled([check for _, check in scene_checks(model, data, cities, Path(tmp))])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data")
    ap.add_argument("--models", nargs="+", default=bundled_models())
    ap.add_argument("--cities", nargs="+", default=CITIES)
    ap.add_argument("--held-out", help="folder of per-city models, each trained without its city")
    args = ap.parse_args()
    rows = []
    runs = [(args.held_out, True)] if args.held_out else [(m, False) for m in args.models]
    with tempfile.TemporaryDirectory() as tmp:
        for model, held_out in runs:
            checks = []
            for scene, check in scene_checks(model, args.data, args.cities, Path(tmp), held_out):
                checks.append(check)
                print(json.dumps({"model": model, "scene": scene, **check.as_dict()}),
                      flush=True)
            rows.append({"model": model, **pooled(checks)})
            print(json.dumps(rows[-1]), flush=True)
    print("\n| model | open-water recall (blocks) | false water (dry blocks) | edge false water "
          "| interior false water | largest edge excess |\n| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        ex = r["max_edge_class_excess"]
        print(f"| `{r['model']}` | {r['open_water_recall']} ({r['open_water_blocks']}) | "
              f"{r['false_water']} ({r['dry_blocks']}) | {r['edge_false_water']} "
              f"({r['edge_dry_blocks']}) | {r['interior_false_water']} | "
              f"{ex[0]} +{ex[1]:.3f} |" if ex else "")


if __name__ == "__main__":
    main()
