"""Choose the fine-tuning recipe of `eurosat-ms` by cross-validation inside its training split.

The 54 validation patches of EuroSAT MS (seed 0) are too few to choose a recipe on: one patch is
1.85 points, and choosing on them would make the reported accuracy optimistic. This script never
looks at them. It repeats the split of the 216 training patches (stratified, 20 %, seeds 1..K),
fine-tunes the RGB model on each inner training part with every candidate recipe and scores it on
the inner validation part; "0 epochs" is the transferred network as it starts (exactly the RGB
model on B04/B03/B02). It prints one line per candidate and the chosen one as JSON; the recipe
`pipelines/train-eurosat-ms.sh` then trains on all 216 patches with it. Usage:

    python pipelines/select-eurosat-ms.py [EUROSAT_MS_DIR] [INIT_MODEL] [--splits K]
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time

import numpy as np

from geolulc.models.evaluate import predict
from geolulc.models.model import load_model
from geolulc.models.patchdata import PatchSet, load_patch_folder, stratified_split
from geolulc.models.train import TrainConfig, train

CANDIDATES = [(0, 0.0), (5, 1e-4), (10, 1e-4), (10, 3e-4), (20, 1e-4)]


def subset(data: PatchSet, idx: np.ndarray) -> PatchSet:
    return PatchSet(data.x[idx], data.y[idx], data.classes, data.bands, data.kind,
                    [data.files[i] for i in idx])


def score(init, data: PatchSet, epochs: int, lr: float, seed: int) -> float:
    """Accuracy on the inner validation part of split `seed` after fine-tuning on the rest."""
    inner_train, inner_val = stratified_split(data.y, 0.2, seed)
    # train() splits its input again: it gets the inner training part only (its own small
    # validation part just monitors; the score is on the inner validation part).
    config = TrainConfig(epochs=epochs, batch_size=32, lr=lr or 1e-4, seed=seed,
                         val_fraction=0.05, name="cv")
    with tempfile.TemporaryDirectory() as tmp:
        model = load_model(train(subset(data, inner_train), tmp, config, init=init))
    val = subset(data, inner_val)
    probs = predict(model, val, model.network.stem[0].weight.device)
    return float((probs.argmax(1) == val.y).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default="../shared/data/eurosat/ms")
    parser.add_argument("init", nargs="?", default="eurosat-rgb")
    parser.add_argument("--splits", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    data = load_patch_folder(args.data)
    train_idx, _ = stratified_split(data.y, 0.2, 0)  # the recipe's split; its val is never used
    data = subset(data, train_idx)
    init = load_model(args.init)
    results = []
    for epochs, lr in CANDIDATES:
        t0 = time.perf_counter()
        scores = [score(init, data, epochs, lr, seed) for seed in range(1, args.splits + 1)]
        results.append({"epochs": epochs, "lr": lr, "cv_accuracy": round(float(np.mean(scores)), 4),
                        "per_split": [round(s, 4) for s in scores],
                        "seconds": round(time.perf_counter() - t0, 1)})
        print(f"epochs {epochs:>3} lr {lr:<7g} cv accuracy {np.mean(scores):.4f} "
              f"({', '.join(f'{s:.3f}' for s in scores)})", flush=True)
    # ties go to the gentler recipe (fewer epochs, then lower learning rate)
    best = max(results, key=lambda r: (r["cv_accuracy"], -r["epochs"], -r["lr"]))
    print(json.dumps({"chosen": best, "n_inner": len(data.y), "splits": args.splits,
                      "candidates": results}))


if __name__ == "__main__":
    main()
