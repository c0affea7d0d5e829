"""Inference throughput of the bundled models (patches/s), on this machine.

    python benchmarks/bench_models.py [--device cpu] [--batch 256] [--update-cards] [--models …]

With --update-cards the measured CPU throughput is written into each bundled model card
(`throughput.cpu_patches_per_s`), where `geolulc models` shows it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import torch

from geolulc.models.inference import Classifier
from geolulc.models.model import BUNDLED_DIR, bundled_models, load_model


def throughput(name: str, device: str, batch: int, n: int) -> float:
    model = load_model(name, device)
    classifier = Classifier(model, torch.device(device), batch)
    rng = np.random.default_rng(0)
    pixels = rng.integers(1, 4000, (n, len(model.bands), 64, 64), dtype=np.uint16)
    classifier.probabilities(pixels[:batch])  # warm-up
    t0 = time.perf_counter()
    classifier.probabilities(pixels)
    return n / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--patches", type=int, default=4096)
    parser.add_argument("--update-cards", action="store_true")
    parser.add_argument("--models", nargs="+", default=None, help="bundled models (default: all)")
    args = parser.parse_args()
    machine = f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}"
    rows = {}
    for name in args.models or bundled_models():
        rate = throughput(name, args.device, args.batch, args.patches)
        rows[name] = round(rate, 1)
        if args.update_cards and args.device == "cpu":
            path = BUNDLED_DIR / f"{name}.json"
            card = json.loads(path.read_text())
            card["throughput"] = {"cpu_patches_per_s": round(rate, 1), "machine": machine,
                                  "batch_size": args.batch}
            path.write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps({"device": args.device, "machine": machine, "patches_per_s": rows},
                     indent=2))


if __name__ == "__main__":
    main()
