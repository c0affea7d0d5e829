"""`geolulc train`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import click

from geolulc.cli.main import main
from geolulc.cli.options import (
    FiniteRange,
    friendly_errors,
    parse_bands,
)
from geolulc.defaults import Precision
from geolulc.errors import GeolulcError


def _int_list(option: str, text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(w) for w in text.split(","))
    except ValueError:
        raise GeolulcError(f"{option} must be integers separated by commas, not {text!r}") \
            from None
    if not values or min(values) < 1:
        raise GeolulcError(f"{option} must be positive integers, not {text!r}")
    return values


@main.command("train")
@click.option("--data", "data_dir", type=click.Path(path_type=Path), required=True,
              help="Labelled patch folder: one sub-folder per class of 13-band GeoTIFFs "
                   "(EuroSAT MS) or RGB JPEG/PNG patches (EuroSAT RGB).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True,
              help="Folder for checkpoint.pt and the final NAME.json + NAME.safetensors.")
@click.option("--name", default="model", show_default=True, help="Model name.")
@click.option("--bands", default=None,
              help="Comma-separated subset of the patches' bands, e.g. B04,B03,B02.")
@click.option("--exclude", type=click.Path(path_type=Path), default=None,
              help="Leave out patches whose file name (without extension) occurs in this "
                   "folder, e.g. keep the EuroSAT MS places unseen when training on RGB.")
@click.option("--epochs", type=click.IntRange(0), default=20, show_default=True,
              help="Passes over the training split; 0 with --init writes the transferred "
                   "network untrained (with its validation accuracy).")
@click.option("--batch-size", type=click.IntRange(1), default=128, show_default=True,
              help="Patches per training step.")
@click.option("--lr", type=FiniteRange(min=0, min_open=True), default=3e-3,
              show_default=True, help="Peak learning rate of the one-cycle schedule.")
@click.option("--widths", default="32,64,128,256", show_default=True,
              help="Channels of each ResNet stage.")
@click.option("--blocks", default=None,
              help="Residual blocks in each stage, e.g. 2,2,2,2 (default: one per stage).")
@click.option("--weight-decay", type=FiniteRange(min=0), default=0.05, show_default=True,
              help="AdamW weight decay.")
@click.option("--augment", "augment_preset", type=click.Choice(["raw", "basic"]), default="raw",
              show_default=True,
              help="raw: flips, shifts, gain, per-band offsets, haze, sensor noise, "
                   "blur/sharpening, JPEG re-compression and scene-edge cuts filled as the map "
                   "fills them, so that patches look like raw scene windows; basic: flips, "
                   "shifts and gain only.")
@click.option("--shift", type=click.IntRange(0, 16), default=None,
              help="Largest random shift in pixels (mirrored borders) [default: 4].")
@click.option("--loss", type=click.Choice(["label-smoothing", "ce", "bahri"]),
              default="label-smoothing", show_default=True,
              help="Cross-entropy with label smoothing, plain cross-entropy, or the improved "
                   "cross-entropy of Bahri et al. 2020 (a penalty on misclassified patches).")
@click.option("--label-smoothing", type=FiniteRange(0, 0.5), default=0.05,
              show_default=True, help="Smoothing of the targets with --loss label-smoothing.")
@click.option("--ema", type=FiniteRange(0, 1, max_open=True), default=0.999,
              show_default=True, help="Decay of the weight average that is saved and "
                                      "validated (0: the last step's weights).")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto",
              show_default=True, help="bf16 autocast (auto: on CUDA and on CPUs with native "
                                      "bf16, 3-4× faster training there) or fp32.")
@click.option("--val-fraction", type=FiniteRange(0.01, 0.9), default=0.2,
              show_default=True, help="Share of each class kept out for validation.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the split, initialisation and augmentation.")
@click.option("--init", "init_model", default=None,
              help="Start from this model (bundled name or path): its weights are copied and "
                   "filters for bands it lacks start at zero (transfer, e.g. RGB to 13 bands).")
@click.option("--extra-train", type=click.Path(path_type=Path), default=None,
              help="Labelled folder whose patches join the training split only (never "
                   "validated on), e.g. EuroSAT ms-extra beside --data ms.")
@click.option("--teacher", "teacher_model", default=None,
              help="Model (bundled name or path) whose soft predictions on the same augmented "
                   "patches are learnt too (distillation), e.g. eurosat-rgb for a 13-band net.")
@click.option("--distill-weight", type=FiniteRange(min=0), default=1.0, show_default=True,
              help="Weight of the teacher's soft targets against the labels.")
@click.option("--windows", "window_files", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Unlabelled real-scene windows with their water share (.npz from "
                   "pipelines/real-windows.py); repeatable. Each step also learns those shares.")
@click.option("--synthetic", type=click.Path(path_type=Path), default=None,
              help="Folder of generated patches (`geolulc synth sample`) that join the training "
                   "split only, never validation.")
@click.option("--window-weight", type=FiniteRange(min=0), default=1.0, show_default=True,
              help="Weight of the windows' water-share loss against the labels.")
@click.option("--level", type=click.Choice(["L1C", "L2A"]), default="L1C", show_default=True,
              help="Processing level the training patches come from.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--resume", is_flag=True, help="Continue from OUT/checkpoint.pt.")
@click.option("--strict", is_flag=True,
              help="Refuse to save a model whose training diverged or ended at chance (without "
                   "it such a model is saved with a warning).")
@friendly_errors
def train_command(data_dir: Path, out_dir: Path, name: str, bands: str | None,
                  exclude: Path | None, epochs: int, batch_size: int, lr: float, widths: str,
                  blocks: str | None, weight_decay: float, augment_preset: str, shift: int | None,
                  loss: Literal["label-smoothing", "ce", "bahri"], label_smoothing: float,
                  ema: float, precision: Precision, val_fraction: float, seed: int,
                  init_model: str | None, extra_train: Path | None, teacher_model: str | None,
                  distill_weight: float, window_files: tuple[Path, ...], synthetic: Path | None,
                  window_weight: float,
                  level: Literal["L1C", "L2A"], device: str, resume: bool, strict: bool
                  ) -> None:
    """Train a patch classifier; a failed run never overwrites the last good model."""
    from dataclasses import replace

    from geolulc.api import AUGMENTATION_PRESETS, TrainConfig, train

    width_tuple = _int_list("--widths", widths)
    block_tuple = _int_list("--blocks", blocks) if blocks else (1,) * len(width_tuple)
    augmentation = AUGMENTATION_PRESETS[augment_preset]
    if shift is not None:
        augmentation = replace(augmentation, shift=shift)
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, widths=width_tuple,
                         blocks=block_tuple, weight_decay=weight_decay, ema=ema,
                         augmentation=augmentation, loss=loss, label_smoothing=label_smoothing,
                         distill_weight=distill_weight, window_weight=window_weight,
                         precision=precision, val_fraction=val_fraction, seed=seed,
                         name=name, level=level, strict=strict)
    trained = train(data=data_dir, out_dir=out_dir, config=config, bands=parse_bands(bands),
                    exclude=exclude, init=init_model, extra_train=extra_train,
                    teacher=teacher_model, windows=window_files, synthetic=synthetic,
                    device=device, resume=resume)
    click.echo(f"Saved {trained.card} (validation accuracy {trained.val_accuracy:.4f} on "
               f"{trained.n_val} patches)")
