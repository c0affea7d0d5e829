"""`geolulc classify`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from geolulc.cli.main import main
from geolulc.cli.options import engine_option, friendly_errors
from geolulc.defaults import DEFAULT_MODEL, Engine, Precision


@main.command("classify")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--model", default=DEFAULT_MODEL, show_default=True,
              help="Bundled model name or path to a model card.")
@click.option("--top", type=click.IntRange(1), default=3, show_default=True,
              help="Classes listed per patch in the table.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto",
              show_default=True, help="Inference arithmetic, as in `map`.")
@engine_option
@click.option("--json", "as_json", is_flag=True,
              help="All class probabilities as JSON, with which level decided (and, for a "
                   "two-level model such as eurosat-dw, each level's answer).")
@friendly_errors
def classify_command(paths: tuple[Path, ...], model: str, top: int, device: str,
                     precision: Precision, engine: Engine, as_json: bool) -> None:
    """Class and probabilities of single patches (13-band GeoTIFF, or RGB JPEG/PNG)."""
    from geolulc.api import classify_patches

    rows = [p.to_dict() for p in classify_patches(paths, model=model, device=device,
                                                  precision=precision, engine=engine)]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        others = sorted(((c, p) for c, p in row["probabilities"].items() if c != row["class"]),
                        key=lambda kv: -kv[1])
        ranked = [(row["class"], row["probability"]), *others][:top]
        levels = row.get("levels")
        decided = (f" (group {levels['group']} {levels['group_share']:.2f} by dynamic-world; "
                   f"the patch CNN alone: {levels['patch_class']} "
                   f"{levels['patch_probability']:.2f})" if levels else "")
        click.echo(f"{row['patch']}: " + ", ".join(f"{c} {p:.3f}" for c, p in ranked) + decided)
