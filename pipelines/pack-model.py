"""Store a model's floating-point weights as float16 for shipping in the package.

Halves the file (2.8 M parameters: 11 MB → 5.6 MB); loading casts them back to float32. The
card beside the weights gets their new SHA-256. Check the
packed model with `geolulc evaluate --split val` before shipping it. Usage:

    python pipelines/pack-model.py MODEL.safetensors [OUT.safetensors] [--exact] [--views N]

With `--exact`, only the tensors that float16 holds exactly are stored as float16 (weights that
came from a packed model), and the rest stay float32: the packed model computes exactly what
the unpacked one does. `--views N` (1, 2, 4, 8) writes into the card how many rotations/flips of
each patch the classifier averages (`geolulc.models.model.ModelCard.views`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from geolulc.models.model import VIEWS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", help="the model's .safetensors (its card beside it)")
    parser.add_argument("out", nargs="?", help="where to write the packed weights (default: SRC)")
    parser.add_argument("--exact", action="store_true",
                        help="float16 only for tensors it holds exactly")
    parser.add_argument("--views", type=int, choices=VIEWS,
                        help="rotations/flips of each patch the classifier averages")
    args = parser.parse_args()
    src, exact, views = args.src, args.exact, args.views
    out = args.out or src
    if views is not None and not Path(out).with_suffix(".json").exists():
        parser.error(f"--views needs the card {Path(out).with_suffix('.json')}")
    with safe_open(src, "pt") as f:
        metadata = f.metadata()
    tensors = {k: v.half() if v.is_floating_point() and (
        not exact or torch.equal(v.half().float(), v.float())) else v
        for k, v in load_file(src).items()}
    for name, value in tensors.items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise SystemExit(f"{name} does not fit in float16")
    save_file(tensors, out, metadata=metadata)
    Path(out).chmod(0o644)  # safetensors writes a private (0600) file
    card = Path(out).with_suffix(".json")
    if card.exists():  # the card carries the digest of its weights, checked at every load
        data = json.loads(card.read_text())
        data["weights_sha256"] = hashlib.sha256(Path(out).read_bytes()).hexdigest()
        if views is not None:
            data["views"] = views
        card.write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    main()
