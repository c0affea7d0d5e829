"""`geolulc evaluate`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from geolulc.cli.main import main
from geolulc.cli.options import (
    echo_outputs,
    engine_option,
    friendly_errors,
)
from geolulc.defaults import Engine, Precision, Split


@main.command("evaluate")
@click.option("--model", required=True, help="Bundled model name or path to a model card.")
@click.option("--data", "data_dir", type=click.Path(path_type=Path), required=True,
              help="Labelled patch folder (one sub-folder per class).")
@click.option("--split", type=click.Choice(["all", "val"]), default="all", show_default=True,
              help="val: only the patches the model's training run held out (needs the same "
                   "folder it was trained on).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("outputs"),
              show_default=True, help="Folder for the confusion matrix CSV and PNG.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto",
              show_default=True, help="Inference arithmetic, as in `map` (auto: bf16 where "
              "the hardware has it), so the accuracy is that of the maps.")
@click.option("--bands", default=None,
              help="Comma-separated bands the model may use; its other bands are replaced by "
                   "their training mean (no information), e.g. B04,B03,B02 to measure what the "
                   "other ten bands of a 13-band model add.")
@engine_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@friendly_errors
def evaluate_command(model: str, data_dir: Path, split: Split, out_dir: Path, device: str,
                     precision: Precision, engine: Engine, bands: str | None,
                     as_json: bool) -> None:
    """Accuracy, per-class precision/recall/F1, Cohen's kappa and confusion matrix."""
    from geolulc.api import evaluate
    from geolulc.cli.options import parse_bands

    keep = parse_bands(bands)
    result = evaluate(model=model, data=data_dir, split=split, out_dir=out_dir, device=device,
                      precision=precision, engine=engine, bands=keep).to_dict()
    if as_json:
        click.echo(json.dumps(result))
        return
    using = f", bands {','.join(keep)} only" if keep else ""
    click.echo(f"{result['model']} on {data_dir} ({split}, n={result['n']}{using}): accuracy "
               f"{result['accuracy']:.4f}, kappa {result['kappa']:.4f}")
    click.echo(f"{'class':<22}{'precision':>10}{'recall':>8}{'f1':>8}{'n':>7}")
    for name, row in result["per_class"].items():
        click.echo(f"{name:<22}{row['precision']:>10.4f}{row['recall']:>8.4f}{row['f1']:>8.4f}"
                   f"{row['support']:>7}")
    echo_outputs(result["reports"])
