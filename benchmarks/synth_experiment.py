"""Do synthesised patches help? A reduced version of issue 23's experiment, on EuroSAT RGB.

For each labelled fraction (1 %, 5 %, 20 % of the RGB training folder) and seed: a stratified
subset; a conditional generator trained on that subset's training split only (a fixed budget of
about 600 steps); as many synthetic patches as real ones sampled from it; a small patch
classifier trained on the subset with and without them (same seed, same validation split); both
scored on the same 1,000 held-out RGB patches (100 per class) that no subset contains.

This is not the bundled recipe (hundreds of epochs, transfer, real-scene windows): it answers
whether the generator adds anything in the low-data regime at a budget this machine can run.
Each classifier is also checked on the real scenes (`evaluate_maps.check_model`: the 20 OSCD
scenes at stride 16, open water by the scene's own NDWI). Prints a Markdown table (mean ±
standard deviation over seeds); runs already finished in --out are reused, not retrained. Run:

    python benchmarks/synth_experiment.py [--data ../shared/data] [--seeds 3] [--out runs/synth-exp]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from evaluate_maps import CITIES, check_model  # benchmarks/evaluate_maps.py, beside this script

import geolulc
from geolulc.models.synth import ARCHITECTURE, SynthConfig

FRACTIONS = (0.01, 0.05, 0.20)
HELD_OUT_PER_CLASS = 100
GAN_STEPS = 600
GAN_BATCH = 64


def split_folder(rgb: Path, out: Path, fraction: float, seed: int) -> tuple[Path, Path]:
    """Symlinked folders: the fixed held-out patches, and a stratified subset of the rest."""
    held, subset = out / "held-out", out / f"subset-{fraction:g}-seed{seed}"
    for cls in sorted(p for p in rgb.iterdir() if p.is_dir()):
        files = sorted(cls.glob("*.jpg"))
        rng = np.random.default_rng(12345)  # the held-out set is the same for every run
        order = rng.permutation(len(files))
        held_files = [files[i] for i in order[:HELD_OUT_PER_CLASS]]
        pool = [files[i] for i in order[HELD_OUT_PER_CLASS:]]
        take = max(5, round(fraction * len(pool)))
        chosen = [pool[i] for i in np.random.default_rng(seed).permutation(len(pool))[:take]]
        for folder, group in ((held, held_files), (subset, chosen)):
            (folder / cls.name).mkdir(parents=True, exist_ok=True)
            for f in group:
                link = folder / cls.name / f.name
                if not link.exists():
                    link.symlink_to(f.resolve())  # a relative --data would dangle
    return held, subset


def finished_generator(card: Path, config: SynthConfig) -> bool:
    """Whether `card` is a generator this run would train: same settings, same networks."""
    try:
        training = json.loads(card.read_text()).get("training") or {}
    except (OSError, ValueError):
        return False
    return training.get("config") == asdict(config) and \
        training.get("architecture") == ARCHITECTURE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("runs/synth-exp"))
    parser.add_argument("--fractions", type=float, nargs="+", default=list(FRACTIONS))
    parser.add_argument("--gan-steps", type=int, default=GAN_STEPS,
                        help="generator training steps (batches of 64) per run")
    args = parser.parse_args()
    rows: dict[float, dict[str, list[float]]] = {}
    for fraction in args.fractions:
        rows[fraction] = {"plain": [], "synthetic": [], "fid": [], "copies": [], "n": [],
                          "plain_recall": [], "synthetic_recall": [], "plain_false": [],
                          "synthetic_false": []}
        for seed in range(args.seeds):
            t0 = time.perf_counter()
            held, subset = split_folder(args.data / "eurosat" / "rgb", args.out, fraction, seed)
            n = sum(1 for _ in subset.glob("*/*.jpg"))
            run = args.out / f"f{fraction:g}-s{seed}"
            epochs = max(1, args.gan_steps // math.ceil(0.8 * n / GAN_BATCH))
            gen_config = SynthConfig(epochs=epochs, batch_size=GAN_BATCH, width=32, seed=seed)
            gen = run / "gen" / "synth.json"
            if not finished_generator(gen, gen_config):
                shutil.rmtree(run, ignore_errors=True)  # samples and classifiers came from it
                gen = geolulc.synth_train(data=subset, out_dir=run / "gen", config=gen_config,
                                          device="cpu")
            quality = geolulc.synth_quality(model=gen, data=subset, per_class=40)
            samples = run / "samples"
            if not (samples / "synthetic.json").exists():  # written last: the samples are whole
                for stale in (samples, run / "with-synthetic"):
                    shutil.rmtree(stale, ignore_errors=True)
                geolulc.synth_sample(model=gen, per_class=max(1, round(0.8 * n / 10)),
                                     out_dir=samples, seed=seed)
            config = geolulc.TrainConfig(epochs=15, batch_size=64, widths=(16, 32, 64, 128),
                                         blocks=(1, 1, 1, 1), seed=seed)
            for variant, folder, synthetic in (("plain", "plain", None),
                                               ("synthetic", "with-synthetic", samples)):
                card = run / folder / "model.json"
                if not card.exists():
                    card = geolulc.train(data=subset, out_dir=run / folder, config=config,
                                         synthetic=synthetic, device="cpu").card
                score = geolulc.evaluate(model=card, data=held, out_dir=run / folder / "eval",
                                         device="cpu")
                rows[fraction][variant].append(score.accuracy)
                scenes = check_model(str(card), args.data, CITIES)
                rows[fraction][f"{variant}_recall"].append(scenes["open_water_recall"])
                rows[fraction][f"{variant}_false"].append(scenes["false_water"])
            rows[fraction]["fid"].append(quality.frechet_distance)
            rows[fraction]["copies"].append(quality.near_copies)
            rows[fraction]["n"].append(n)
            print(f"fraction {fraction:g} seed {seed}: n={n}, plain "
                  f"{rows[fraction]['plain'][-1]:.4f}, synthetic "
                  f"{rows[fraction]['synthetic'][-1]:.4f}, FD {quality.frechet_distance:.1f}, "
                  f"open-water recall {rows[fraction]['plain_recall'][-1]} / "
                  f"{rows[fraction]['synthetic_recall'][-1]}, false water "
                  f"{rows[fraction]['plain_false'][-1]} / {rows[fraction]['synthetic_false'][-1]}, "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
    print()
    print("| labelled patches | real only | real + synthetic (as many) | gain | Fréchet distance "
          "(eurosat-rgb features) | near copies | open-water recall (real only / + synthetic) "
          "| false water (real only / + synthetic) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")

    def spread(values: list[float | None], digits: int = 4) -> str:
        known = [v for v in values if v is not None]  # a scene set without open water: None
        return f"{np.mean(known):.{digits}f} ± {np.std(known):.{digits}f}" if known else "n/a"

    for fraction, r in rows.items():
        gain = list(np.array(r["synthetic"]) - np.array(r["plain"]))
        print(f"| {fraction:.0%} ({int(np.mean(r['n']))}) | {spread(r['plain'])} "
              f"| {spread(r['synthetic'])} | {'+' if np.mean(gain) >= 0 else ''}{spread(gain)} "
              f"| {np.mean(r['fid']):.1f} | {np.mean(r['copies']):.3f} "
              f"| {spread(r['plain_recall'], 3)} / {spread(r['synthetic_recall'], 3)} "
              f"| {spread(r['plain_false'], 3)} / {spread(r['synthetic_false'], 3)} |")
    print(f"\n{args.seeds} seeds; held-out: {HELD_OUT_PER_CLASS} RGB patches per class, in no "
          f"subset; generator: {args.gan_steps} steps; accuracy of a small patch-resnet (16-128, "
          "15 epochs); real scenes: 20 OSCD scenes, 160 m blocks, water by NDWI.")


if __name__ == "__main__":
    main()
