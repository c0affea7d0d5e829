"""`geolulc evaluate-change`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from geolulc.cli.main import main
from geolulc.cli.options import FiniteRange, friendly_errors
from geolulc.defaults import DEFAULT_MODEL, ChangeMethod


@main.command("evaluate-change")
@click.argument("cities", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--model", default=DEFAULT_MODEL, show_default=True, help="Model to classify with.")
@click.option("--stride", type=click.IntRange(1, 64), default=64, show_default=True,
              help="Pixels between patch centres.")
@click.option("--threshold", "thresholds", type=FiniteRange(0, 1), multiple=True,
              help="Change threshold(s) to score; repeat to sweep several in one run "
              "[default: each method's own, as in `change`].")
@click.option("--method", "methods", type=click.Choice(["combined", "tv", "independent"]),
              multiple=True, default=("combined",), show_default=True,
              help="Change method(s) to score (as in `change`); repeat for several.")
@click.option("--patch-fraction", type=FiniteRange(0, 1), default=0.02, show_default=True,
              help="Share of changed pixels from which a 64 × 64-pixel block counts as changed "
              "(in the labels and in the prediction).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path),
              default=Path("outputs/evaluate-change"), show_default=True,
              help="Folder for the chunk caches of the run (removed when it ends).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--json", "as_json", is_flag=True, help="Print all scores as JSON.")
@friendly_errors
def evaluate_change_command(cities: tuple[Path, ...], model: str, stride: int,
                            thresholds: tuple[float, ...], methods: tuple[ChangeMethod, ...],
                            patch_fraction: float, out_dir: Path, device: str,
                            as_json: bool) -> None:
    """Score `change` on OSCD city folders (imgs_1, imgs_2, change-labels.tif).

    Scores are pixel- and 64 × 64-block precision, recall and F1.
    """
    from geolulc.api import evaluate_change

    result = evaluate_change(cities, model=model, stride=stride, thresholds=thresholds,
                             methods=methods, patch_fraction=patch_fraction, out_dir=out_dir,
                             device=device).to_dict()
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"{'method':<12}{'thr':>5}  {'pixel P/R/F1':<22}{'block P/R/F1':<22}")
    for row in result["total"]:
        px, pa = row["pixel"], row["block"]
        click.echo(f"{row['method']:<12}{row['threshold']:>5.2f}  "
                   f"{px['precision']:.3f}/{px['recall']:.3f}/{px['f1']:.3f}        "
                   f"{pa['precision']:.3f}/{pa['recall']:.3f}/{pa['f1']:.3f}")
