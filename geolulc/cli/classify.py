"""`geolulc classify`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from geolulc.cli.main import main
from geolulc.cli.options import engine_option, friendly_errors
from geolulc.defaults import DEFAULT_MODEL
from geolulc.errors import GeolulcError


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
@click.option("--json", "as_json", is_flag=True, help="All class probabilities as JSON.")
@friendly_errors
def classify_command(paths, model, top, device, precision, engine, as_json):
    """Class and probabilities of single patches (13-band GeoTIFF, or RGB JPEG/PNG)."""
    import numpy as np

    from geolulc.core.device import resolve_device
    from geolulc.models.evaluate import predict
    from geolulc.models.model import auto_model, load_model
    from geolulc.models.patchdata import PatchSet, read_patch

    loaded = None
    rows = []
    for path in paths:
        if not path.exists():
            raise GeolulcError(f"patch {path} does not exist")
        arr, bands, kind = read_patch(path)
        if loaded is None:
            dev = resolve_device(device)
            loaded = load_model(auto_model(set(bands), ("classifier",)) if model == DEFAULT_MODEL
                                else model, dev)
            if loaded.kind != "classifier":
                raise GeolulcError(f"{loaded.name} labels pixels, not patches: map a scene "
                                   "with it (geolulc map --scene …)")
        if arr.shape[-2:] != (loaded.patch_size, loaded.patch_size):
            raise GeolulcError(f"patch {path} is {arr.shape[-1]}×{arr.shape[-2]} pixels; "
                               f"{loaded.name} classifies {loaded.patch_size}×"
                               f"{loaded.patch_size} patches")
        single = PatchSet(arr[None], np.zeros(1, dtype=np.int64), loaded.classes, bands, kind,
                          [path])
        probs = predict(loaded, single, dev, precision, engine=engine)[0]
        order = np.argsort(-probs)
        rows.append({"path": str(path), "class": loaded.classes[order[0]],
                     "probability": round(float(probs[order[0]]), 4),
                     "probabilities": {c: round(float(p), 4)
                                       for c, p in zip(loaded.classes, probs)}})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        ranked = sorted(row["probabilities"].items(), key=lambda kv: -kv[1])[:top]
        click.echo(f"{row['path']}: " + ", ".join(f"{c} {p:.3f}" for c, p in ranked))
