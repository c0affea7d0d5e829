"""Change detection on the OSCD cities in ../shared/data: pooled pixel and 64 × 64-block scores
of every method at several thresholds, the threshold a leave-one-city-out choice would make,
and the false-alarm share where little or nothing changed.

    python benchmarks/evaluate_change.py [--quick]

Prints a table and writes benchmarks/results-change.json. Nothing here is fitted or shipped:
the default threshold (0.5, a 3 σ change on a lasting transition) comes from the noise model;
the leave-one-city-out figure shows what choosing it on labels would give on an unseen city.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from geolulc.change_detection.evaluate import evaluate_city, total
from geolulc.change_detection.job import DateInput, classify_dates, compare_dates
from geolulc.core.device import resolve_device
from geolulc.io.scenes import load_scene
from geolulc.mapping.request import MapRequest
from geolulc.models.model import load_model

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "oscd"
LABELLED = ["bercy", "paris", "rennes", "bordeaux", "aguasclaras", "nantes", "hongkong"]
UNLABELLED = ["norcia", "montpellier", "rio"]
THRESHOLDS = [0.3, 0.4, 0.5, 0.6, 0.7, 0.74, 0.8, 0.85, 0.9]


def main() -> None:
    out = Path(tempfile.mkdtemp(prefix="geolulc-change-"))
    req = MapRequest(out_dir=out, name="oscd", progress=False)
    results = {}
    t0 = time.perf_counter()
    for fraction in (0.02, 0.1):
        cities = {}
        for city in LABELLED:
            cities[city] = evaluate_city(DATA / city, req, THRESHOLDS, ["combined", "tv"],
                                         fraction)["results"]
        pooled = []
        for i, first in enumerate(cities[LABELLED[0]]):
            rows = [cities[c][i] for c in LABELLED]
            pooled.append({"method": first["method"], "threshold": first["threshold"],
                           "pixel": total([r["pixel"] for r in rows]),
                           "block": total([r["block"] for r in rows])})
        combined = [i for i, r in enumerate(pooled) if r["method"] == "combined"]
        loco_px, loco_bl, chosen = [], [], []
        for held in LABELLED:
            train = [c for c in LABELLED if c != held]
            best = max(combined, key=lambda i: total([cities[c][i]["pixel"] for c in train])["f1"])
            chosen.append(pooled[best]["threshold"])
            loco_px.append(cities[held][best]["pixel"])
            loco_bl.append(cities[held][best]["block"])
        results[f"block_fraction_{fraction}"] = {
            "pooled": pooled, "per_city": cities,
            "leave_one_city_out": {"thresholds_chosen": chosen, "pixel": total(loco_px),
                                   "block": total(loco_bl)}}
        print(f"block = changed when >= {fraction:.0%} of its pixels changed")
        print(f"{'method':<10}{'thr':>6}  pixel P / R / F1       block P / R / F1")
        for r in pooled:
            px, bl = r["pixel"], r["block"]
            print(f"{r['method']:<10}{r['threshold']:>6.2f}  {px['precision']:.3f} / "
                  f"{px['recall']:.3f} / {px['f1']:.3f}    {bl['precision']:.3f} / "
                  f"{bl['recall']:.3f} / {bl['f1']:.3f}")
        loco = results[f"block_fraction_{fraction}"]["leave_one_city_out"]
        print(f"leave-one-city-out (combined): thresholds {chosen}, pixel F1 "
              f"{loco['pixel']['f1']:.3f}, block F1 {loco['block']['f1']:.3f}")
    model = load_model("dynamic-world")
    alarms = {}
    for city in UNLABELLED + ["nantes-self"]:
        name = city.removesuffix("-self")
        second = "imgs_1" if city.endswith("-self") else "imgs_2"
        inputs = [DateInput("before", [load_scene(DATA / name / "imgs_1")]),
                  DateInput("after", [load_scene(DATA / name / second)])]
        dates = classify_dates(req, model, None, inputs, resolve_device("cpu"), write=False)
        change = compare_dates(dates, 0, 1, None, "combined")
        dates.clear_caches()
        valid = int((change.mask != 255).sum())
        alarms[city] = {"changed_share": round(float((change.mask == 1).sum()) / valid, 5),
                        "valid_pixels": valid}
        print(f"{city}: {100 * alarms[city]['changed_share']:.2f} % of {valid} pixels changed")
    results["unlabelled_changed_share"] = alarms
    results["wall_time_s"] = round(time.perf_counter() - t0, 1)
    if "--quick" not in sys.argv:
        path = Path(__file__).with_name("results-change.json")
        path.write_text(json.dumps(results, indent=1) + "\n")
        print(f"written {path}")


if __name__ == "__main__":
    main()
