"""Real-scene checks of every bundled model: open water by NDWI and scene edges.

Maps each OSCD city scene in ../shared/data with each bundled model (patch classifiers at stride
16, i.e. 160 m cells; per-pixel models at 10 m) and prints, per model, the figures of
`geolulc.mapping.mapcheck` pooled over the scenes (blocks summed), as JSON lines and a Markdown table.

    python benchmarks/evaluate_maps.py [--data ../shared/data] [--models dynamic-world ...]
    python benchmarks/evaluate_maps.py --held-out runs/eurosat-dw/folds

With `--held-out DIR`, each city is mapped by the model in DIR/CITY/, one trained without any
window of that city (`pipelines/train-eurosat-dw.py --folds`): the figures of places never seen.

A two-level model (`eurosat-dw`) is also checked against its first level: each scene is mapped
by `dynamic-world` at 10 m as well, and for every 160 m cell the group of the class it was given
is compared with the group of Dynamic World's majority class over the cell's 64 × 64 window
(`group_agreement`), and the cells whose window Dynamic World calls ≥ 90 % water are counted
with the share given River or SeaLake (`world_water_cells`, `world_water_recall`).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import rasterio

from geolulc.io.scenes import load_scene
from geolulc.mapping.mapcheck import evaluate_map
from geolulc.mapping.pipeline import run_map
from geolulc.mapping.request import MapRequest
from geolulc.models.levels import is_two_level
from geolulc.models.model import bundled_models, load_model
from geolulc.models.network import TWO_LEVEL_CLASSES, WORLD_CLASSES, WORLD_GROUPS

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


def world_agreement(landcover: str, world: str) -> dict:
    """How a two-level map's cells agree with Dynamic World's 10 m map over their windows."""
    group_of_world = {w: g for g, (_, names, _) in enumerate(WORLD_GROUPS) for w in names}
    group_of_class = {c: g for g, (_, _, names) in enumerate(WORLD_GROUPS) for c in names}
    with rasterio.open(landcover) as a, rasterio.open(world) as b:
        cells, t = a.read(1), a.transform
        labels, u = b.read(1), b.transform
    to_group = np.full(256, -1)
    for i, name in enumerate(WORLD_CLASSES):
        to_group[i] = group_of_world[name]
    groups = to_group[labels]
    stride = round(t.a / u.a)
    margin = (64 - stride) // 2
    agree = total = water = water_hit = 0
    for r, c in zip(*np.nonzero(cells != 255)):
        col = round((t.c + c * t.a - u.c) / u.a) - margin
        row = round((u.f - (t.f + r * t.e)) / -u.e) - margin
        window = groups[max(row, 0):row + 64, max(col, 0):col + 64]
        window = window[window >= 0]
        if window.size < 64 * 64 // 2:
            continue
        counts = np.bincount(window, minlength=len(WORLD_GROUPS))
        mine = group_of_class[TWO_LEVEL_CLASSES[cells[r, c]]]
        total += 1
        agree += int(counts.argmax() == mine)
        if counts[0] >= 0.9 * window.size:
            water += 1
            water_hit += int(mine == 0)
    return {"cells": total, "group_agreement": round(agree / total, 4) if total else None,
            "world_water_cells": water,
            "world_water_recall": round(water_hit / water, 4) if water else None}


def scene_checks(model: str, data: Path, cities: list[str], out_dir: Path, held_out: bool = False):
    """(scene, MapCheck, agreement) of every date of every city, mapped by `model` at stride 16.

    With `held_out`, `model` is a folder and each city is mapped by the model in its sub-folder.
    The agreement with Dynamic World is None unless the model is two-level.
    """
    two_level = not held_out and is_two_level(load_model(model))
    for city in cities:
        for date in ("imgs_1", "imgs_2"):
            folder = data / "oscd" / city / date
            used = str(Path(model) / city) if held_out else model
            summary = run_map(MapRequest(scenes=[folder], model=used, stride=16,
                                         out_dir=out_dir, name=f"{city}{date}", progress=False)).to_dict()
            agreement = None
            if two_level:
                world = run_map(MapRequest(scenes=[folder], model="dynamic-world", out_dir=out_dir,
                                           name=f"{city}{date}-world", progress=False))
                agreement = world_agreement(summary["outputs"]["landcover"], str(world.landcover))
            yield f"{city}/{date}", evaluate_map(summary["outputs"]["landcover"],
                                                 [load_scene(folder)]), agreement


def pooled_agreement(rows: list[dict]) -> dict:
    """Cell-weighted agreement of a two-level model with Dynamic World over several scenes."""
    cells = sum(r["cells"] for r in rows)
    water = sum(r["world_water_cells"] for r in rows)
    return {"cells": cells,
            "group_agreement": round(sum(r["group_agreement"] * r["cells"] for r in rows
                                         if r["cells"]) / cells, 4),
            "world_water_cells": water,
            "world_water_recall": round(sum(r["world_water_recall"] * r["world_water_cells"]
                                            for r in rows if r["world_water_cells"]) / water, 4)
            if water else None}


def check_model(model: str, data: Path, cities: list[str]) -> dict:
    """Pooled figures of one model over the cities' scenes."""
    with tempfile.TemporaryDirectory() as tmp:
        return pooled([check for _, check, _ in scene_checks(model, data, cities, Path(tmp))])


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
            checks, agreements = [], []
            for scene, check, agreement in scene_checks(model, args.data, args.cities, Path(tmp),
                                                        held_out):
                checks.append(check)
                extra = {"world": agreement} if agreement else {}
                print(json.dumps({"model": model, "scene": scene, **check.as_dict(), **extra}),
                      flush=True)
                if agreement:
                    agreements.append(agreement)
            extra = {"world": pooled_agreement(agreements)} if agreements else {}
            rows.append({"model": model, **pooled(checks), **extra})
            print(json.dumps(rows[-1]), flush=True)
    print("\n| model | open-water recall (blocks) | false water (dry blocks) | edge false water "
          "| interior false water | largest edge excess |\n| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        ex = r["max_edge_class_excess"]
        print(f"| `{r['model']}` | {r['open_water_recall']} ({r['open_water_blocks']}) | "
              f"{r['false_water']} ({r['dry_blocks']}) | {r['edge_false_water']} "
              f"({r['edge_dry_blocks']}) | {r['interior_false_water']} | "
              f"{ex[0]} +{ex[1]:.3f} |" if ex else "")
    for r in rows:
        if "world" in r:
            w = r["world"]
            print(f"\n`{r['model']}` against its first level (dynamic-world at 10 m, "
                  f"{w['cells']} cells of {len(args.cities) * 2} scenes): group of the cell's class "
                  f"= group of the window's majority class in {w['group_agreement']:.2%} of cells; "
                  f"of the {w['world_water_cells']} cells whose window is ≥ 90 % water, "
                  f"{w['world_water_recall']:.2%} River or SeaLake")


if __name__ == "__main__":
    main()
