"""Real L2A patches with reference labels: Dynamic World on BigEarthNet-S2 L2A, as it is and
with its atmosphere restored (`--l2a toa`), beside the patches' CORINE land-cover labels.

    python benchmarks/bigearthnet_l2a.py [--data ../shared/data] [--figures docs]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import rasterio

from geolulc.mapping.pipeline import run_map
from geolulc.mapping.request import MapRequest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data")
    args = ap.parse_args()
    root = args.data / "bigearthnet-example" / "BigEarthNet-S2-Example"
    with tempfile.TemporaryDirectory() as tmp:
        for patch in sorted(p for p in root.iterdir() if p.is_dir()):
            labels = json.loads(next(patch.glob("*_labels_metadata.json")).read_text())["labels"]
            row = {"patch": patch.name, "corine": labels}
            for mode in ("as-is", "toa"):
                summary = run_map(MapRequest(scenes=[patch], l2a=mode, out_dir=Path(tmp) / mode,
                                             progress=False)).to_dict()
                with rasterio.open(summary["outputs"]["landcover"]) as src:
                    lab = src.read(1)
                classes = summary["stats"]["classes"]
                shares = {c["class"]: round(c["percent"], 1) for c in classes if c["pixels"]}
                row[mode] = dict(sorted(shares.items(), key=lambda kv: -kv[1]))
                row[f"{mode}_pixels"] = int((lab != 255).sum())
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
