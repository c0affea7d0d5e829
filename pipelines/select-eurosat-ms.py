"""Choose the training recipe of `eurosat-ms` by cross-validation inside its training patches.

The 54 validation patches of EuroSAT MS (seed 0) are too few to choose a recipe on: one patch is
1.85 points, and choosing on them would make the reported accuracy optimistic. This script never
looks at them. It repeats a stratified 80/20 split of the 216 training patches of `ms/` (seeds
1..K); every candidate is trained on the inner 80 % plus all of `ms-extra/` (77 patches whose
places the RGB model may have trained on, so they are never scored) and scored on the inner
20 %. "0 epochs" is the transferred network as it starts (exactly the RGB model on
B04/B03/B02, the ten other bands at zero weight): it is scored as the baseline but not chosen,
since a 13-band model must use its bands. It prints one line per candidate and the chosen one
as JSON; the recipe
`pipelines/train-eurosat-ms.sh` then trains on all 216 + 77 patches with it. Usage:

    python pipelines/select-eurosat-ms.py [EUROSAT_DIR] [INIT_MODEL] [--splits K]

INIT_MODEL defaults to the three-stage RGB model that the bundled eurosat-ms started from
(`eurosat-rgb-scenes`, step 2 of `pipelines/train-eurosat-rgb.sh`).
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np

from geolulc.models.evaluate import predict
from geolulc.models.model import Model, load_model
from geolulc.models.patchdata import PatchSet, load_patch_folder, stratified_split
from geolulc.models.train import TrainConfig, train

#: (epochs, peak learning rate, loss, distil from the RGB model)
CANDIDATES = [
    (0, 0.0, "label-smoothing", False),
    (20, 3e-4, "label-smoothing", False),
    (20, 3e-4, "bahri", False),
    (20, 3e-4, "label-smoothing", True),
    (20, 3e-4, "bahri", True),
]


def subset(data: PatchSet, idx: np.ndarray) -> PatchSet:
    return PatchSet(data.x[idx], data.y[idx], data.classes, data.bands, data.kind,
                    [data.files[i] for i in idx])


def score(init: Model, data: PatchSet, extra: PatchSet, candidate: tuple, seed: int) -> float:
    """Accuracy on the inner validation part of split `seed` after training on the rest."""
    epochs, lr, loss, distil = candidate
    inner_train, inner_val = stratified_split(data.y, 0.2, seed)
    # train() splits its input again: its own small validation part only monitors; the score
    # is on the inner validation part, which it never sees.
    config = TrainConfig(epochs=epochs, batch_size=32, lr=lr or 1e-4, seed=seed, loss=loss,
                         val_fraction=0.05, name="cv")
    with tempfile.TemporaryDirectory() as tmp:
        model = load_model(train(subset(data, inner_train), tmp, config, init=init, extra=extra,
                                 teacher=init if distil else None))
    val = subset(data, inner_val)
    probs = predict(model, val, model.network.stem[0].weight.device)
    return float((probs.argmax(1) == val.y).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", type=Path, default=Path("../shared/data/eurosat"))
    parser.add_argument("init", nargs="?", default="eurosat-rgb-scenes")
    parser.add_argument("--splits", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    data = load_patch_folder(args.data / "ms")
    extra = load_patch_folder(args.data / "ms-extra", classes=data.classes)
    train_idx, _ = stratified_split(data.y, 0.2, 0)  # the recipe's split; its val is never used
    data = subset(data, train_idx)
    init = load_model(args.init)
    results = []
    for candidate in CANDIDATES:
        t0 = time.perf_counter()
        scores = [score(init, data, extra, candidate, seed)
                  for seed in range(1, args.splits + 1)]
        epochs, lr, loss, distil = candidate
        results.append({"epochs": epochs, "lr": lr, "loss": loss, "teacher": distil,
                        "cv_accuracy": round(float(np.mean(scores)), 4),
                        "per_split": [round(s, 4) for s in scores],
                        "seconds": round(time.perf_counter() - t0, 1)})
        print(f"epochs {epochs:>3} lr {lr:<7g} {loss:<16} teacher {distil!s:<5} cv accuracy "
              f"{np.mean(scores):.4f} ({', '.join(f'{s:.3f}' for s in scores)})", flush=True)
    # ties go to the earlier (simpler) candidate; the untrained transfer is the baseline only
    trained = [r for r in results if r["epochs"]]
    best = max(trained, key=lambda r: (r["cv_accuracy"], -trained.index(r)))
    print(json.dumps({"chosen": best, "n_inner": len(data.y), "n_extra": len(extra.y),
                      "splits": args.splits, "candidates": results}))


if __name__ == "__main__":
    main()
