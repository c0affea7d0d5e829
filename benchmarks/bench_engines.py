"""Inference engines side by side on the same network, weights, input and cores.

Runs Dynamic World (or another bundled model) over one tile of the size `geolulc map` uses, cut
from a real OSCD city scene (its nine bands, mirrored to fill the tile), with every engine
available here: torch eager (fp32 NCHW, fp32 channels-last, bf16 channels-last: what `map` ran
before), optionally torch.compile, onnxruntime and the original TensorFlow SavedModel when those
are installed (never dependencies), and OpenVINO fp32/bf16 through geolulc's own runner (what
`map` runs now). For each: Mpx/s (median of --repeat runs), argmax agreement with torch fp32 and
the largest probability difference. Then the floor: the network's multiply-adds per pixel
divided by the bf16 matrix-product rate of the same cores.

    python benchmarks/bench_engines.py [--scene oscd/paris/imgs_1] [--threads 2] [--compile]
    python benchmarks/bench_engines.py --agreement    # every OSCD scene, OpenVINO vs torch

`--agreement` maps the whole of every OSCD scene (both dates) as `map` does (tiles with a
halo) with OpenVINO fp32 and bf16 and with torch fp32, and prints the per-scene and pooled label
agreement and the largest probability difference.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.enums import Resampling

from geolulc.io.scenes import load_scene
from geolulc.models.inference import Classifier
from geolulc.models.model import ProbabilityNet, load_model, prepare_input
from geolulc.models.tiles import HALO, TILE, segment, tile_size

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("GEOLULC_TEST_DATA", ROOT.parent / "shared" / "data"))
TF_MODEL = ROOT.parent / "shared" / "models" / "dynamicworld" / "model" / "forward"


def scene_bands(folder: Path, bands: list[str]) -> np.ndarray:
    """An OSCD scene's bands on its B02 grid (bilinear), cropped to an even size."""
    scene = load_scene(folder)
    with rasterio.open(scene.bands["B02"]) as src:
        shape = (src.height, src.width)
    planes = []
    for band in bands:
        with rasterio.open(scene.bands[band]) as src:
            planes.append(src.read(1, out_shape=shape, resampling=Resampling.bilinear))
    return np.stack(planes)[:, :shape[0] // 2 * 2, :shape[1] // 2 * 2]


def one_tile(dn: np.ndarray, size: int) -> np.ndarray:
    """(1, bands, size, size): the scene mirrored until it fills a map tile."""
    while dn.shape[1] < size or dn.shape[2] < size:
        dn = np.pad(dn, ((0, 0), (0, min(size, dn.shape[1])), (0, min(size, dn.shape[2]))),
                    mode="reflect")
    return np.ascontiguousarray(dn[None, :, :size, :size])


def timed(run, x: np.ndarray, repeat: int) -> tuple[np.ndarray, float]:
    out = run(x)  # warm-up (and compilation)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = run(x)
        times.append(time.perf_counter() - t0)
    return out, float(np.median(times))


def multiply_adds(model, size: int) -> float:
    """Multiply-adds per output pixel of the network, counted over its convolutions."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        k = module.kernel_size[0] * module.kernel_size[1]
        total += output.numel() * module.in_channels // module.groups * k

    handles = [m.register_forward_hook(hook) for m in model.network.modules()
               if isinstance(m, torch.nn.Conv2d)]
    with torch.inference_mode():
        model.network(torch.zeros((1, len(model.bands), size, size)))
    for h in handles:
        h.remove()
    return total / size ** 2


def matmul_rate(threads: int) -> float:
    """bf16 multiply-adds per second of a large matrix product on these cores."""
    a = torch.randn(4096, 4096, dtype=torch.bfloat16)
    a @ a
    t0 = time.perf_counter()
    for _ in range(5):
        a @ a
    return 5 * 4096 ** 3 / (time.perf_counter() - t0)


def torch_runner(model, precision: str, layout) -> callable:
    net = ProbabilityNet(model).eval()
    net.network.to(memory_format=layout)

    def run(x):
        ctx = (torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16"
               else torch.autocast("cpu", enabled=False))
        with torch.inference_mode(), ctx:
            t = torch.from_numpy(x)
            if layout == torch.contiguous_format:  # plain NCHW, as a first port would run it
                xin = prepare_input(t, model.card.input)
                return torch.softmax(model.network(xin).float(), dim=1).numpy()
            return net(t).float().numpy()
    return run


def engines_table(args) -> dict:
    model = load_model(args.model)
    size = tile_size(TILE[1], TILE[1]) + 2 * HALO
    dn = one_tile(scene_bands(DATA / args.scene, model.bands), size)
    runs: list[tuple[str, callable]] = [
        ("torch eager fp32, NCHW", torch_runner(model, "fp32", torch.contiguous_format)),
        ("torch eager fp32, channels-last", torch_runner(model, "fp32", torch.channels_last)),
        ("torch eager bf16, channels-last (map before)", torch_runner(model, "bf16",
                                                                      torch.channels_last)),
    ]
    if args.compile:
        compiled = torch.compile(ProbabilityNet(model).eval())

        def run_compiled(x):
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                return compiled(torch.from_numpy(x)).float().numpy()
        runs.append(("torch.compile bf16", run_compiled))
    try:
        import onnxruntime as ort

        path = Path(args.work) / f"{model.name}.onnx"
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.onnx.export(ProbabilityNet(model).eval(), torch.zeros((1, len(model.bands), 64, 64)),
                          path, input_names=["x"], dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}})
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = args.threads
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        runs.append(("onnxruntime fp32", lambda x: session.run(None, {"x": x.astype(np.float32)})[0]))
    except ImportError:
        pass
    if model.name == "dynamic-world" and TF_MODEL.is_dir():
        try:
            import tensorflow as tf

            tf.config.threading.set_intra_op_parallelism_threads(args.threads)
            forward = tf.saved_model.load(str(TF_MODEL))

            def run_tf(x):
                with torch.inference_mode():
                    xin = prepare_input(torch.from_numpy(x), model.card.input).numpy()
                logits = forward(tf.constant(xin.transpose(0, 2, 3, 1))).numpy()
                return tf.nn.softmax(logits, axis=-1).numpy().transpose(0, 3, 1, 2)
            runs.append(("TensorFlow SavedModel fp32 (the original)", run_tf))
        except ImportError:
            pass
    cpu = torch.device("cpu")
    for precision in ("fp32", "bf16"):
        clf = Classifier(model, cpu, 1, precision, engine="openvino")
        runs.append((f"OpenVINO {precision}" + (" (map now)" if precision == "bf16" else ""),
                     clf.probabilities))
    reference = None
    rows = []
    for name, run in runs:
        out, seconds = timed(run, dn, args.repeat)
        if reference is None:
            reference = out
        rows.append({"engine": name, "mpx_per_s": round(dn[0, 0].size / seconds / 1e6, 3),
                     "argmax_agreement": round(float((out.argmax(1) == reference.argmax(1))
                                                     .mean()), 4),
                     "max_abs_dp": float(f"{np.abs(out - reference).max():.2e}")})
        print(f"{name:48s} {rows[-1]['mpx_per_s']:7.3f} Mpx/s  agreement "
              f"{rows[-1]['argmax_agreement']:.4f}  max|Δp| {rows[-1]['max_abs_dp']:.1e}",
              file=sys.stderr, flush=True)
    macs = multiply_adds(model, size)
    rate = matmul_rate(args.threads)
    floor = rate / macs / 1e6
    return {"machine": f"{platform.machine()}, {args.threads} threads", "model": model.name,
            "input": f"{args.scene}, one {size}x{size} tile", "runs": rows,
            "multiply_adds_per_pixel": round(macs), "bf16_matmul_gmac_per_s": round(rate / 1e9),
            "floor_mpx_per_s": round(floor, 2)}


def agreement(args) -> dict:
    """Whole OSCD scenes as `map` classifies them: OpenVINO fp32/bf16 against torch fp32."""
    model = load_model(args.model)
    cpu = torch.device("cpu")
    ref_clf = Classifier(model, cpu, 1, "fp32", engine="torch")
    ov = {p: Classifier(model, cpu, 1, p, engine="openvino") for p in ("fp32", "bf16")}
    pooled = {"fp32": [0, 0], "bf16": [0, 0]}
    scenes = []
    for folder in sorted((DATA / "oscd").glob("*/imgs_[12]")):
        dn = np.pad(scene_bands(folder, model.bands), ((0, 0), (HALO, HALO), (HALO, HALO)),
                    mode="edge")
        ref = segment(dn, ref_clf.probabilities, len(model.classes))
        row = {"scene": f"{folder.parent.name}/{folder.name}", "pixels": int(ref[..., 0].size)}
        for precision, clf in ov.items():
            p = segment(dn, clf.probabilities, len(model.classes))
            same = int((p.argmax(-1) == ref.argmax(-1)).sum())
            pooled[precision][0] += same
            pooled[precision][1] += ref[..., 0].size
            row[f"{precision}_agreement"] = round(same / ref[..., 0].size, 6)
            row[f"{precision}_max_abs_dp"] = float(f"{np.abs(p - ref).max():.2e}")
        scenes.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    return {"model": model.name, "scenes": scenes,
            "pooled": {p: round(s / n, 6) for p, (s, n) in pooled.items()},
            "min_fp32_agreement": min(r["fp32_agreement"] for r in scenes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="dynamic-world")
    parser.add_argument("--scene", default="oscd/paris/imgs_1")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="also torch.compile (slow start)")
    parser.add_argument("--agreement", action="store_true")
    parser.add_argument("--work", default="/tmp/geolulc-bench")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = agreement(args) if args.agreement else engines_table(args)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
