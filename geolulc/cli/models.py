"""`geolulc models`."""

from __future__ import annotations

import json

import click

from geolulc.cli.main import main
from geolulc.cli.options import friendly_errors


@main.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print the model cards' summaries as JSON.")
@friendly_errors
def models_command(as_json):
    """The bundled models with their bands, classes, training data and measured accuracy."""
    from geolulc.models.model import BUNDLED_DIR, bundled_models, read_card

    rows = []
    for name in bundled_models():
        card = read_card(BUNDLED_DIR / f"{name}.json")
        training = card.get("training", {})
        rows.append({"name": name, "kind": card.get("kind", "classifier"), "bands": card["bands"],
                     "level": card["processing_level"], "classes": card["classes"],
                     "training_data": training.get("data") or card.get("source", {}).get("project"),
                     "metrics": card.get("metrics", {}),
                     "patches_per_s_cpu": card.get("throughput", {}).get("cpu_patches_per_s")})
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
        click.echo(f"{row['name']} ({row['kind']}): {row['level']} {','.join(row['bands'])}; "
                   f"{len(row['classes'])} classes; {score}; from {row['training_data']}")
