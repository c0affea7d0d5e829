"""`geolulc models`."""

from __future__ import annotations

import json

import click

from geolulc.cli.main import main
from geolulc.cli.options import friendly_errors


@main.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print the model cards' summaries as JSON.")
@friendly_errors
def models_command(as_json: bool) -> None:
    """The bundled models with their bands, classes, training data and measured accuracy."""
    from geolulc.api import list_models

    rows = [info.to_dict() for info in list_models()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("No bundled models.")
    for row in rows:
        acc = row["metrics"].get("val_accuracy")
        published = row["metrics"].get("published_overall_accuracy")
        score = (f"validation accuracy {acc:.4f}" if acc is not None else
                 f"published accuracy {published:.2f}" if published is not None else "no accuracy")
        if row["views"] > 1:
            score += f" (mean of {row['views']} rotations/flips of each patch)"
        patch_acc = row["metrics"].get("val_patch_accuracy")
        if patch_acc is not None:
            score += (f" (two levels: dynamic-world's group, then the patch CNN within it; the "
                      f"patch CNN alone {patch_acc:.4f})")
        misses = f"{'; '.join(row['misses'])} on unseen cities"
        use = ("for maps" if row["use"] == "maps" else
               f"maps only scenes without a better model's bands ({misses})"
               if row["use"] == "fallback" else f"benchmark only, not for maps ({misses})")
        click.echo(f"{row['name']} ({row['kind']}, {use}): {row['level']} "
                   f"{','.join(row['bands'])}; {len(row['classes'])} classes; {score}; "
                   f"from {row['training_data']}")
