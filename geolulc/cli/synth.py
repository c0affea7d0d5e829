"""`geolulc synth`: synthesised training patches (train a generator, sample it, judge it)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from geolulc.cli.main import main
from geolulc.cli.options import FiniteRange, friendly_errors, parse_bands


@main.group("synth")
def synth_group() -> None:
    """Synthesised training patches from a class-conditional GAN (an experiment).

    Whether they help is measured, not assumed: see the documentation's models page.
    """


@synth_group.command("train")
@click.option("--data", "data_dir", type=click.Path(path_type=Path), required=True,
              help="Labelled patch folder (EuroSAT layout: one sub-folder per class).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True,
              help="Folder for checkpoint.pt, a sample grid per epoch and NAME.json/.safetensors.")
@click.option("--name", default="synth", show_default=True, help="Generator name.")
@click.option("--bands", default=None, help="Comma-separated subset of the patches' bands.")
@click.option("--epochs", type=click.IntRange(1), default=30, show_default=True,
              help="Passes over the patches.")
@click.option("--batch-size", type=click.IntRange(1), default=64, show_default=True,
              help="Patches per step.")
@click.option("--lr", type=FiniteRange(min=0, min_open=True), default=2e-4,
              show_default=True, help="Adam learning rate of both networks.")
@click.option("--width", type=click.IntRange(4, 256), default=64, show_default=True,
              help="Channels of the generator's last layer (doubling towards its first).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of everything.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--resume", is_flag=True, help="Continue from OUT/checkpoint.pt.")
@friendly_errors
def synth_train_command(data_dir: Path, out_dir: Path, name: str, bands: str | None,
                        epochs: int, batch_size: int, lr: float, width: int, seed: int,
                        device: str, resume: bool) -> None:
    """Train a class-conditional patch generator (checkpoints, --resume, sample grids)."""
    from geolulc.api import SynthConfig, synth_train

    config = SynthConfig(epochs=epochs, batch_size=batch_size, lr=lr, width=width, seed=seed,
                         name=name)
    card = synth_train(data=data_dir, out_dir=out_dir, config=config, bands=parse_bands(bands),
                       device=device, resume=resume)
    click.echo(f"Saved {card}")


@synth_group.command("sample")
@click.option("--model", type=click.Path(path_type=Path), required=True,
              help="Generator folder or card written by `geolulc synth train`.")
@click.option("--per-class", type=click.IntRange(1), required=True,
              help="Patches to write for each class.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True,
              help="Folder to write the patches to (EuroSAT layout).")
@click.option("--classes", default=None, help="Comma-separated classes (default: all).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the noise.")
@friendly_errors
def synth_sample_command(model: Path, per_class: int, out_dir: Path, classes: str | None,
                         seed: int) -> None:
    """Write generated patches (GeoTIFF for 13 bands, PNG for RGB), each marked synthetic."""
    from geolulc.api import synth_sample

    names = [c.strip() for c in classes.split(",") if c.strip()] if classes else None
    paths = synth_sample(model=model, per_class=per_class, out_dir=out_dir, classes=names,
                         seed=seed)
    click.echo(f"Wrote {len(paths)} patches to {out_dir}")


@synth_group.command("quality")
@click.option("--model", type=click.Path(path_type=Path), required=True,
              help="Generator folder or card.")
@click.option("--data", "data_dir", type=click.Path(path_type=Path), required=True,
              help="The real patches to compare with (the generator's training folder).")
@click.option("--classifier", default="auto", show_default=True,
              help="Bundled patch classifier that judges (auto: the one for the bands).")
@click.option("--per-class", type=click.IntRange(2), default=64, show_default=True,
              help="Patches generated per class for the figures.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@friendly_errors
def synth_quality_command(model: Path, data_dir: Path, classifier: str, per_class: int,
                          as_json: bool) -> None:
    """Fréchet distance in the classifier's features, per-class precision/recall, copies check."""
    from geolulc.api import synth_quality

    quality = synth_quality(model=model, data=data_dir, classifier=classifier,
                            per_class=per_class)
    if as_json:
        click.echo(json.dumps(quality.to_dict(), indent=2))
        return
    click.echo(f"Fréchet distance ({quality.classifier} features): {quality.frechet_distance}")
    click.echo(f"nearest training patch, generated / real: {quality.nearest_real_ratio}; "
               f"near copies {quality.near_copies:.1%}")
    click.echo(f"diversity within a class, generated / real: {quality.diversity}")
    for name, row in quality.per_class.items():
        spread = "n/a" if row["diversity"] is None else f"{row['diversity']:.3f}"
        click.echo(f"  {name:<22} precision {row['precision']:.3f}  recall {row['recall']:.3f}  "
                   f"diversity {spread}")
