"""Convert the Dynamic World TensorFlow SavedModel to a geolulc model and prove the port exact.

One-off step (TensorFlow is needed here only, never by geolulc at run time):

    pip install tensorflow-cpu
    python pipelines/convert-dynamic-world.py [--source ../shared/models/dynamicworld]
                                              [--data ../shared/data] [--out geolulc/models/bundled]

1. Reads the forward network's variables, folds each batch normalisation into the convolution
   before it (y = γ (conv(x) + b − μ) / √(σ² + ε) + β), and writes `dynamic-world.safetensors`
   (float32) with its card `dynamic-world.json`.
2. Runs TensorFlow and the torch port on the same normalised input of real scenes from
   `../shared/data` (OSCD L1C cities, whole scenes) and prints the largest probability difference
   and the argmax agreement; exits non-zero if they miss ≤ 1e-4 and ≥ 99.99 %.
3. Writes `tests/data/dynamic-world-reference.npz`: TensorFlow's probabilities for a small crop
   of a real scene (the crop itself stays in ../shared/data), which the test suite checks always.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import rasterio
import tensorflow as tf
import torch
from rasterio.enums import Resampling
from safetensors.numpy import save_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from geolulc.models.network import DynamicWorldNet  # noqa: E402

BANDS = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B11", "B12"]
P30 = [1.7417268007636313, 1.7261204997060209, 1.6798346251414997, 1.7734969472909623,
       2.289154079164943, 2.382939712192371, 2.3828939530384052, 2.1952484264967844,
       1.554812948247501]
P70 = [2.023298706048351, 2.038905204308012, 2.179592821212937, 2.2890068333026603,
       2.6171674549378166, 2.773418590375327, 2.7578332604178284, 2.789092484314204,
       2.4140534947492487]
CLASSES = ["water", "trees", "grass", "flooded_vegetation", "crops", "shrub_and_scrub", "built",
           "bare", "snow_and_ice"]
PALETTE = ["419bdf", "397d49", "88b053", "7a87c6", "e49635", "dfc35a", "c4281b", "a59b8f",
           "b39fe1"]
BN_EPS = 1e-3
#: torch module → (TensorFlow conv, TensorFlow batch norm); the head has no batch norm.
LAYERS = {
    "stem": ("conv2d", "batch_normalization"),
    "stage1": [("conv2d_2", 3), ("depthwise_conv2d_1", 4), ("conv2d_3", 5),
               ("depthwise_conv2d_2", 6), ("conv2d_4", 7), ("depthwise_conv2d_3", 8)],
    "skip1": ("conv2d_5", "batch_normalization_9"),
    "stage2": [("conv2d_6", 10), ("depthwise_conv2d_4", 11), ("conv2d_7", 12),
               ("depthwise_conv2d_5", 13), ("conv2d_8", 14), ("depthwise_conv2d_6", 15)],
    "skip2": ("conv2d_9", "batch_normalization_16"),
    "branch": [("conv2d_1", 1), ("depthwise_conv2d", 2)],
    "stage3": [("conv2d_10", 17), ("depthwise_conv2d_7", 18), ("conv2d_11", 19),
               ("depthwise_conv2d_8", 20), ("conv2d_12", 21), ("depthwise_conv2d_9", 22)],
    "skip3": ("conv2d_13", "batch_normalization_23"),
}
REFERENCE_CROP = {"scene": "oscd/rennes/imgs_1", "row": 80, "col": 120, "size": 96}


def tf_variables(model) -> dict[str, np.ndarray]:
    return {v.name.split(":")[0]: v.numpy() for v in model.variables}


def fold(var: dict, conv: str, bn: str | None) -> tuple[np.ndarray, np.ndarray]:
    """TensorFlow (kh, kw, in, out) or depthwise (kh, kw, C, 1) kernel → torch layout, with
    the batch norm folded in."""
    depthwise = conv.startswith("depthwise")
    kernel = var[f"{conv}/depthwise_kernel" if depthwise else f"{conv}/kernel"]
    bias = var[f"{conv}/bias"]
    weight = kernel.transpose(2, 3, 0, 1) if depthwise else kernel.transpose(3, 2, 0, 1)
    if bn is None:
        return weight, bias
    scale = var[f"{bn}/gamma"] / np.sqrt(var[f"{bn}/moving_variance"] + BN_EPS)
    weight = weight * scale[:, None, None, None]
    bias = (bias - var[f"{bn}/moving_mean"]) * scale + var[f"{bn}/beta"]
    return weight.astype(np.float32), bias.astype(np.float32)


def convert(var: dict) -> dict[str, np.ndarray]:
    state = {}
    for module, spec in LAYERS.items():
        pairs = ([(f"{module}.conv", *spec)] if isinstance(spec, tuple) else
                 [(f"{module}.{i}.conv", conv, f"batch_normalization_{bn}")
                  for i, (conv, bn) in enumerate(spec)])
        for prefix, conv, bn in pairs:
            state[f"{prefix}.weight"], state[f"{prefix}.bias"] = fold(var, conv, bn)
    state["head.weight"], state["head.bias"] = fold(var, "conv2d_14", None)
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in state.items()}


def normalised(dn: np.ndarray) -> np.ndarray:
    """The README's input transform, (bands, h, w) DN → float32."""
    x = np.log(dn.astype(np.float64) * 0.005 + 1)
    x = (x - np.array(P30)[:, None, None]) / np.array(P70)[:, None, None]
    x = np.exp(5 * x - 1)
    return (x / (x + 1)).astype(np.float32)


def read_scene(folder: Path) -> np.ndarray:
    """The nine bands of an OSCD scene at 10 m (20 m bands bilinearly), cropped to even size."""
    with rasterio.open(next(folder.glob("*_B02.tif"))) as src:
        shape = (src.height, src.width)
    planes = []
    for band in BANDS:
        with rasterio.open(next(folder.glob(f"*_{band}.tif"))) as src:
            full = src.read(1, out_shape=shape, resampling=Resampling.bilinear)
        planes.append(full[:shape[0] // 2 * 2, :shape[1] // 2 * 2])
    return np.stack(planes)


def probabilities_tf(model, x: np.ndarray) -> np.ndarray:
    logits = model(tf.constant(x.transpose(1, 2, 0)[None])).numpy()[0]
    return tf.nn.softmax(logits, axis=-1).numpy().transpose(2, 0, 1)


def probabilities_torch(net, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return torch.softmax(net(torch.from_numpy(x)[None]), dim=1)[0].numpy()


def card(digest: str) -> dict:
    return {
        "format": "geolulc-model", "format_version": 1, "name": "dynamic-world",
        "kind": "segmenter",
        "architecture": {"name": "dynamic-world"},
        "bands": BANDS, "processing_level": "L1C",
        "input": {
            "kind": "dynamic-world",
            "description": "x = log(DN * dn_scale + 1); x = (x - p30) / p70; "
                           "x = sigmoid(5 x - 1), per band; DN is L1C top-of-atmosphere "
                           "reflectance × 10000 with the baseline-04.00 offset removed",
            "dn_scale": 0.005, "p30": P30, "p70": P70,
        },
        "classes": CLASSES,
        "colors": [[int(h[i:i + 2], 16) for i in (0, 2, 4)] for h in PALETTE],
        "weights_sha256": digest,
        "source": {
            "project": "Dynamic World (Google, World Resources Institute, National Geographic)",
            "repository": "google/dynamicworld", "commit": "0dd288fae5fb5291d988e5ea3c12eb91df481ec5",
            "paper": "Brown et al. 2022, Scientific Data 9:251, doi:10.1038/s41597-022-01307-4",
            "converted_by": "pipelines/convert-dynamic-world.py (batch norms folded into the "
                            "convolutions, float32)",
        },
        "license": "Apache-2.0",
        "notice": "This code is produced for the Dynamic World Project by Google in partnership "
                  "with National Geographic and the World Resources Institute.",
        "metrics": {"published_overall_accuracy": 0.72,
                    "published_reference": "Venter et al. 2022, Remote Sensing 14:4101"},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=ROOT.parent / "shared/models/dynamicworld")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/data")
    ap.add_argument("--out", type=Path, default=ROOT / "geolulc/models/bundled")
    ap.add_argument("--cities", nargs="+", default=["rennes", "bordeaux", "nantes", "hongkong",
                                                     "paris", "rio", "montpellier"])
    args = ap.parse_args()
    model = tf.saved_model.load(str(args.source / "model/forward"))
    state = convert(tf_variables(model))
    weights = args.out / "dynamic-world.safetensors"
    save_file(state, str(weights))
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    (args.out / "dynamic-world.json").write_text(json.dumps(card(digest), indent=2) + "\n")
    net = DynamicWorldNet()
    net.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    net.eval()
    worst, agree, total = 0.0, 0, 0
    for city in args.cities:
        for date in ("imgs_1", "imgs_2"):
            x = normalised(read_scene(args.data / "oscd" / city / date))
            p_tf, p_torch = probabilities_tf(model, x), probabilities_torch(net, x)
            diff = float(np.abs(p_tf - p_torch).max())
            same = int((p_tf.argmax(0) == p_torch.argmax(0)).sum())
            worst, agree, total = max(worst, diff), agree + same, total + p_tf[0].size
            print(f"{city}/{date} {x.shape[1]}×{x.shape[2]}: max |Δp| {diff:.2e}, "
                  f"argmax agreement {same / p_tf[0].size:.6f}")
    print(f"all: max |Δp| {worst:.2e}, argmax agreement {agree / total:.6f} of {total} pixels")
    crop = REFERENCE_CROP
    scene = read_scene(args.data / crop["scene"])
    rows = slice(crop["row"], crop["row"] + crop["size"])
    cols = slice(crop["col"], crop["col"] + crop["size"])
    dn = scene[:, rows, cols]
    reference = probabilities_tf(model, normalised(dn))
    np.savez_compressed(ROOT / "tests/data/dynamic-world-reference.npz",
                        probabilities=reference.astype(np.float32),
                        dn_sha256=np.array(hashlib.sha256(dn.tobytes()).hexdigest()),
                        **{k: np.array(v) for k, v in crop.items()})
    return 0 if worst <= 1e-4 and agree / total >= 0.9999 else 1


if __name__ == "__main__":
    sys.exit(main())
