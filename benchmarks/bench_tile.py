"""Whole-tile benchmark of `geolulc map`, against the obvious patch-at-a-time approach.

Builds a full-size Sentinel-2 tile (10980 × 10980 at 10 m) from the real, 10× decimated Earth
Search L2A product in ../shared/data (upsampled ×10 with nearest neighbour, written as COGs laid
out like the real ones: 512-pixel deflate tiles with overviews, each band at its native
resolution), maps it with the default per-pixel model (or a patch classifier at each stride)
and prints one JSON object: wall time, cells and input pixels per second, peak RSS and the time
of each stage (reading runs in a thread beside inference, so stages overlap: the wall time is
the total); the decode floor (time to just decode the bands the model reads); the inference
floor (the network's multiply-adds over the map's pixels ÷ the bf16 matrix-product rate of the
same cores) and how far the run is from it; and the naive approach (open, read one window of
each band, run the network on it alone in fp32, write, next) on a subset, with the speed-up of
geolulc over it. `--engines openvino torch` maps the tile with each engine in the same run.

    python benchmarks/bench_tile.py [--data ../shared/data] [--work /tmp/geolulc-bench]
                                    [--strides 64 16] [--naive 300] [--device cpu]
                                    [--model dynamic-world] [--engines openvino]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.enums import Resampling
from rasterio.windows import Window

ITEM = "S2A_29RKH_20200219_0_L2A"
ASSETS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B11", "B12", "B8A",
          "SCL", "AOT"]


def build_tile(data: Path, work: Path) -> Path:
    """Full-resolution COGs and a STAC item pointing at them (made once, then reused)."""
    src_dir = data / "earth-search" / "sentinel-2-l2a" / ITEM
    item_path = work / "item.json"
    work.mkdir(parents=True, exist_ok=True)
    item = json.loads((src_dir / f"{ITEM}.json").read_text())
    for name in ASSETS:
        if (work / f"{name}.tif").exists():
            continue
        with rasterio.open(src_dir / f"{name}.tif") as src:
            profile = src.profile
            height, width = src.height * 10, src.width * 10
            pixels = src.read(1, out_shape=(height, width), resampling=Resampling.nearest)
            transform = src.transform * src.transform.scale(0.1, 0.1)
        profile.update(driver="COG", height=height, width=width, transform=transform,
                       compress="DEFLATE", blocksize=512, predictor=2,
                       overview_resampling="NEAREST" if name in ("SCL", "AOT") else "AVERAGE")
        for key in ("blockxsize", "blockysize", "tiled", "interleave"):
            profile.pop(key, None)
        with rasterio.open(work / f"{name}.tif", "w", **profile) as dst:
            dst.write(pixels, 1)
        print(f"built {name} {width}x{height}", file=sys.stderr)
    for asset in item["assets"].values():
        name = asset["href"].rsplit("/", 1)[-1]
        asset["href"] = str(work / name)
    item_path.write_text(json.dumps(item))
    return item_path


def run_map(item: Path, out: Path, stride: int, device: str, model: str, engine: str) -> dict:
    """`geolulc map` in a child process (its peak RSS measured alone by `time -v`)."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        ["/usr/bin/time", "-f", "%M", "geolulc", "map", "--scene", str(item), "--model", model,
         "--stride", str(stride), "--device", device, "--engine", engine, "--out", str(out),
         "--name", f"tile-s{stride}-{engine}", "--json", "--quiet"],
        capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(proc.stderr)
    peak_kb = int(proc.stderr.strip().splitlines()[-1])
    summary = json.loads(proc.stdout)
    pixels = summary["shape"][0] * summary["shape"][1] * summary["stride"] ** 2
    return {"stride": stride if summary["model_kind"] == "classifier" else None,
            "engine": engine, "wall_s": round(wall, 1),
            "input_mpx_per_s": round(pixels / wall / 1e6, 3),
            "cells": summary["cells_classified"], "cell_m": summary["cell_size_m"],
            "cells_per_s": round(summary["cells_classified"] / wall, 1),
            "input_pixels_per_s": round(pixels / wall),
            "peak_rss_mb": round(peak_kb / 1024),
            "stages_s": summary["timings_s"], "model": summary["model"],
            "map_shape": summary["shape"]}


def decode_floor(item: Path, bands: list[str]) -> float:
    """Seconds to decode every block of the bands the model reads, plus SCL, and nothing else."""
    folder = item.parent
    t0 = time.perf_counter()
    for name in [*bands, "SCL"]:
        with rasterio.open(folder / f"{name}.tif") as src:
            for _, window in src.block_windows(1):
                src.read(1, window=window)
    return time.perf_counter() - t0


def naive(item: Path, model_name: str, n: int, device: str, out: Path) -> dict:
    """The obvious loop: per patch (or 576-pixel tile of a per-pixel model), read each band's
    window, run the network alone in fp32, write its label."""
    from geolulc.models.model import load_model, predict_probabilities

    model = load_model(model_name, device)
    size = 576 if model.kind == "segmenter" else 64
    folder = item.parent
    with rasterio.open(folder / "B02.tif") as ref:
        profile = {"driver": "GTiff", "width": ref.width // size, "height": ref.height // size,
                   "count": 1, "dtype": "uint8", "crs": ref.crs,
                   "transform": ref.transform * ref.transform.scale(size, size)}
    rng = np.random.default_rng(0)
    cells = rng.choice(profile["width"] * profile["height"], n, replace=False)
    t0 = time.perf_counter()
    with rasterio.open(out / "naive.tif", "w", **profile) as dst:
        for cell in cells:
            row, col = divmod(int(cell), profile["width"])
            planes = []
            for band in model.bands:
                with rasterio.open(folder / f"{band}.tif") as src:
                    f = src.width / (profile["width"] * size)
                    win = Window(col * size * f, row * size * f, size * f, size * f)
                    planes.append(src.read(1, window=win, out_shape=(size, size),
                                           resampling=Resampling.bilinear))
            x = torch.from_numpy(np.stack(planes)[None].astype(np.int32)).to(device)
            with torch.inference_mode():
                probs = predict_probabilities(model, x)
            label = int(probs.flatten(2).mean(2).argmax(1)[0] if probs.ndim == 4
                        else probs.argmax(1)[0])
            dst.write(np.array([[label]], dtype=np.uint8), 1, window=Window(col, row, 1, 1))
    seconds = time.perf_counter() - t0
    return {"windows": n, "window_px": size, "seconds": round(seconds, 2),
            "input_pixels_per_s": round(n * size * size / seconds)}


def inference_floor(model, runs: list[dict], device: str) -> dict:
    """Seconds the network's multiply-adds over the tile's input pixels (no halo; for a patch
    classifier, one fully convolutional pass per view of its card) take at the bf16
    matrix-product rate of these cores, and each run's classify stage and wall time over it."""
    from bench_engines import matmul_rate, multiply_adds

    if device != "cpu":
        return {}
    first = runs[0]
    pixels = first["map_shape"][0] * first["map_shape"][1] * (first["stride"] or 1) ** 2
    macs = multiply_adds(model, 64 if model.kind == "classifier" else 1064) * pixels \
        * model.card.views
    rate = matmul_rate(torch.get_num_threads())
    seconds = macs / rate
    key = [f"stride {r['stride']} {r['engine']}" for r in runs]
    return {"multiply_adds": float(f"{macs:.3e}"), "bf16_matmul_gmac_per_s": round(rate / 1e9),
            "views": model.card.views, "floor_s": round(seconds, 1),
            "classify_over_floor": {k: round(r["stages_s"]["classify"] / seconds, 2)
                                    for k, r in zip(key, runs, strict=True)},
            "wall_over_floor": {k: round(r["wall_s"] / seconds, 2)
                                for k, r in zip(key, runs, strict=True)}}


def tile_arguments(parser: argparse.ArgumentParser) -> None:
    """--data (the shared real data) and --work (where the tile is built once), for every
    whole-tile benchmark."""
    root = Path(__file__).resolve().parents[1]
    parser.add_argument("--data", type=Path,
                        default=Path(os.environ.get("GEOLULC_TEST_DATA", root.parent / "shared"
                                                    / "data")))
    parser.add_argument("--work", type=Path, default=Path("/tmp/geolulc-bench"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    tile_arguments(parser)
    parser.add_argument("--strides", type=int, nargs="+", default=[64, 16])
    parser.add_argument("--naive", type=int, default=300,
                        help="windows for the naive loop (patches, or tiles of a pixel model)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="dynamic-world",
                        help="bundled model (the L2A tile has no B10, so eurosat-ms cannot run)")
    parser.add_argument("--engines", nargs="+", default=["openvino"],
                        help="engines to map the tile with, each in its own run")
    args = parser.parse_args()
    item = build_tile(args.data, args.work)
    out = args.work / "out"
    out.mkdir(exist_ok=True)
    from geolulc.models.model import load_model
    model = load_model(args.model)
    floor = decode_floor(item, model.bands)
    strides = args.strides if model.kind == "classifier" else [64]  # a pixel model ignores it
    runs = [run_map(item, out, s, args.device, args.model, engine)
            for engine in args.engines for s in strides]
    slow = naive(item, args.model, args.naive, args.device, out)
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores"
        + (f", {torch.cuda.get_device_name()}" if args.device == "cuda" else ""),
        "tile": "10980 x 10980 at 10 m (real 29RKH L2A upsampled x10)", "model": args.model,
        "decode_floor_s": round(floor, 1),
        "inference_floor": inference_floor(model, runs, args.device),
        "runs": runs,
        "naive": slow,
        "speedup_vs_naive": round(runs[0]["input_pixels_per_s"] / slow["input_pixels_per_s"],
                                  1),
    }
    if len(runs) > 1:
        result["time_ratio_stride"] = {f"{r['stride']}/{runs[0]['stride']}":
                                       round(r["wall_s"] / runs[0]["wall_s"], 2)
                                       for r in runs[1:]}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
