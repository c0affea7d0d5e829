"""The `geolulc` command line."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from pathlib import Path

import click

from . import __version__
from .defaults import (
    COLLECTIONS,
    DEFAULT_COLLECTION,
    DEFAULT_MAX_AREA_KM2,
    DEFAULT_MODEL,
    EARTH_SEARCH,
)
from .errors import GeolulcError

log = logging.getLogger("geolulc")


def friendly_errors(func):
    """Turn every failure into one line on stderr and a non-zero exit (GEOLULC_DEBUG=1 re-raises)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except GeolulcError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("Interrupted: nothing half-written was kept; run the same command "
                       "again to resume from the finished chunks or checkpoint.", err=True)
            sys.exit(130)
        except OSError as exc:  # read-only or full disk, a file where a folder should be …
            where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
            click.echo(f"Error: {exc.strerror or type(exc).__name__}{where}", err=True)
            sys.exit(1)
        except Exception as exc:
            if os.environ.get("GEOLULC_DEBUG"):
                raise
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            click.echo(f"Error: {type(exc).__name__}: {first} "
                       "(set GEOLULC_DEBUG=1 for the traceback)", err=True)
            sys.exit(2)

    return wrapper


class BatchSize(click.ParamType):
    """A positive integer, or 'auto' (None)."""

    name = "auto|N"

    def convert(self, value, param, ctx):
        if value in (None, "auto"):
            return None
        try:
            number = int(value)
        except (TypeError, ValueError):
            number = 0
        if number < 1:
            self.fail(f"{value!r} is neither 'auto' nor a positive integer", param, ctx)
        return number


BATCH = BatchSize()


def echo_outputs(outputs: dict[str, str]) -> None:
    """One line per written file, kind then path."""
    width = max(map(len, outputs)) + 2
    for kind, path in outputs.items():
        click.echo(f"  {kind:<{width}}{path}")


def aoi_option(required: bool = False):
    return click.option(
        "--aoi", type=click.Path(path_type=Path), required=required,
        help="Area of interest: GeoJSON, GeoPackage or Shapefile, in any CRS (all features are "
             "merged).")


def search_options(func, with_date: bool = True):
    """Options shared by every command that searches a STAC catalogue."""
    date = click.option("--date", help="Required with --aoi: a day (2023-06-15), a month "
                        "(2023-06), a year (2023) or a range (2023-06-01/2023-07-15).")
    options = [
        *([date] if with_date else []),
        click.option("--catalog", default=EARTH_SEARCH, show_default=True,
                     help="STAC API URL (Earth Search, Planetary Computer, Copernicus Data "
                     "Space, or any other)."),
        click.option("--collection", default=DEFAULT_COLLECTION, show_default=True,
                     help=f"Collection to search, e.g. {', '.join(COLLECTIONS)}."),
        click.option("--max-cloud", type=click.FloatRange(0, 100), default=None,
                     help="Skip scenes whose cloud cover (%) is above this."),
        click.option("--max-area", type=click.FloatRange(min=0, min_open=True),
                     default=DEFAULT_MAX_AREA_KM2, show_default=True,
                     help="Largest AOI accepted, in km²."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def output_options(func):
    """Options shared by `map` and `change` for patch selection and outputs."""
    options = [
        click.option("--min-clear", type=click.FloatRange(0, 1), default=0.5,
                     show_default=True, help="Share of clear (not cloud, not no-data) pixels a "
                     "patch needs to be classified."),
        click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
                     default=Path("outputs"), show_default=True, help="Output folder."),
        click.option("--name", default=None,
                     help="Output file prefix (default: the AOI's name, and for map the date)."),
        click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout."),
        click.option("--quiet", is_flag=True, help="No progress bar."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def masking_options(func):
    """Cloud masking and compositing options shared by `map` and `change`."""
    options = [
        click.option("--composite", type=click.Choice(["auto", "median", "best", "none"]),
                     default="auto", show_default=True,
                     help="Combine the acquisitions of the period: median per pixel of the clear "
                     "observations, best = per cell the clearest acquisition, none = least "
                     "cloudy scenes only; auto = median for a period of several days."),
        click.option("--mask-dilate", type=click.IntRange(0, 100), default=0, show_default=True,
                     help="Grow cloud and shadow masks by this many pixels."),
        click.option("--max-acquisitions", type=click.IntRange(1), default=12,
                     show_default=True, help="Least cloudy acquisitions used by a composite."),
        click.option("--l2a", type=click.Choice(["auto", "toa", "as-is"]), default="auto",
                     show_default=True,
                     help="L2A input: toa = put a modelled atmosphere back (from the item's sun "
                     "angle and AOT layer) so models trained on L1C see L1C-like reflectance; "
                     "as-is = feed bottom-of-atmosphere values; auto = toa for L1C models (all "
                     "bundled ones)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.group()
@click.version_option(__version__, prog_name="geolulc")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def main(verbose: int) -> None:
    """geolulc: land-cover maps from Sentinel-2 imagery."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def scale_options(func):
    """Arithmetic, streaming and distribution options shared by `map` and `change`."""
    for option in reversed([
        click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]),
                     default="auto", show_default=True,
                     help="Inference arithmetic; auto: bf16 on GPUs and on CPUs with native "
                     "bf16 (2.2× faster there), else fp32."),
        click.option("--chunk-rows", type=click.IntRange(1), default=None,
                     help="Map rows read and classified at a time (the unit of streaming, "
                     "resuming and distribution); fewer rows use less memory. Default: 8 for a "
                     "patch classifier, 512 (one row of tiles) for a per-pixel model."),
        click.option("--workers", type=click.IntRange(1), default=None,
                     help="Run the chunks on a local Dask cluster of this many processes."),
        click.option("--scheduler", default=None,
                     help="Run the chunks on an existing Dask cluster (tcp://HOST:PORT)."),
    ]):
        func = option(func)
    return func


@main.command("map")
@aoi_option()
@search_options
@masking_options
@click.option("--scene", "scenes", multiple=True, type=click.Path(path_type=Path),
              help="Local scene instead of a search: SAFE folder or .zip, folder of per-band "
                   "rasters (*_B02.tif …), or STAC item JSON. Repeat to mosaic several.")
@click.option("--model", default=DEFAULT_MODEL, show_default=True,
              help="Bundled model name (see `geolulc models`) or path to a model card; auto "
                   "takes dynamic-world (a 10 m per-pixel model) where the scenes have its nine "
                   "bands, else eurosat-ms (13 bands) or eurosat-rgb.")
@click.option("--stride", type=click.IntRange(1, 64), default=64, show_default=True,
              help="Patch classifiers only: pixels between patch centres; the map's cells are "
                   "stride × resolution. A per-pixel model always maps every pixel.")
@click.option("--dense/--patchwise", default=True, show_default=True,
              help="For strides below 64, classify each chunk fully convolutionally (shared "
                   "work, fast) or patch by patch (exactly a lone patch's input, slower).")
@click.option("--batch-size", type=BATCH, default="auto", show_default=True,
              help="Patches (or 576-pixel tiles of a per-pixel model) per inference batch; "
                   "auto: 256 patches or 2 tiles on CPU, on a GPU the largest that fits in half "
                   "its free memory.")
@click.option("--device", default="auto", show_default=True,
              help="auto (CUDA when available), cpu or cuda.")
@click.option("--crs", default=None, help="Output CRS (default: UTM zone of the AOI centre).")
@click.option("--resolution", type=click.FloatRange(min=1.0), default=10.0, show_default=True,
              help="Input pixel size in metres that bands are resampled to.")
@scale_options
@output_options
@friendly_errors
def map_command(aoi, date, catalog, collection, max_cloud, max_area, composite, mask_dilate, l2a,
                max_acquisitions, scenes, model, stride, dense, batch_size, precision, device,
                crs, resolution, chunk_rows, workers, scheduler, min_clear, out_dir, name,
                as_json, quiet):
    """Map land cover over an AOI for a date, or over local scenes.

    Writes NAME_landcover.tif (COG, class codes, colour table, no-data 255),
    NAME_confidence.tif, NAME_stats.json/.csv (km² per class) and NAME_quicklook.png.
    """
    from .pipeline import MapRequest, run_map

    if not scenes and (aoi is None or not date):
        raise GeolulcError("give --aoi and --date, or --scene")
    req = MapRequest(aoi=aoi, date=date, scenes=list(scenes), catalog=catalog,
                     collection=collection, max_cloud=max_cloud, model=model, stride=stride,
                     batch_size=batch_size, precision=precision, device=device, crs=crs,
                     resolution=resolution, out_dir=out_dir, name=name, min_clear=min_clear,
                     max_area_km2=max_area,
                     progress=not quiet and not as_json, dense=dense, chunk_rows=chunk_rows,
                     workers=workers, scheduler=scheduler, composite=composite,
                     mask_dilate=mask_dilate, max_acquisitions=max_acquisitions, l2a=l2a)
    summary = run_map(req)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    unit = "pixels" if summary["model_kind"] == "segmenter" else "patches"
    click.echo(f"Mapped {summary['cells_classified']} {unit} from "
               f"{len(summary['scenes'])} scene(s) in {summary['wall_time_s']:.1f} s")
    for row in summary["stats"]["classes"]:
        if row["pixels"]:
            click.echo(f"  {row['class']:<22}{row['area_km2']:>12.2f} km²{row['percent']:>8.1f} %")
    echo_outputs(summary["outputs"])


@main.command("search")
@aoi_option(required=True)
@search_options
@click.option("--limit", type=click.IntRange(1), default=200, show_default=True,
              help="Most items to fetch.")
@click.option("--json", "as_json", is_flag=True, help="Print the scenes as JSON.")
@friendly_errors
def search_command(aoi, date, catalog, collection, max_cloud, max_area, limit, as_json):
    """List the scenes a catalogue holds for an AOI and date, least cloudy first."""
    from .aoi import load_aoi
    from .catalog import search_scenes

    if not date:
        raise GeolulcError("--date is required")
    area = load_aoi(aoi, max_area)
    scenes = search_scenes(area.geometry, date, catalog, collection, max_cloud, limit)
    rows = [{
        "id": s.id, "datetime": s.datetime.isoformat() if s.datetime else None,
        "level": s.level, "cloud_cover": s.cloud_cover,
        "processing_baseline": s.baseline_text,
        "aoi_coverage": round(s.footprint.intersection(area.geometry).area
                              / area.geometry.area, 3) if s.footprint is not None else None,
        "bands": sorted(s.bands),
    } for s in scenes]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("No scenes found.")
        return
    click.echo(f"{'id':<48}{'date':<12}{'level':<6}{'cloud%':>7}{'baseline':>9}{'cover':>7}")
    for r in rows:
        cloud = f"{r['cloud_cover']:.1f}" if r["cloud_cover"] is not None else "-"
        cover = f"{100 * r['aoi_coverage']:.0f}%" if r["aoi_coverage"] is not None else "-"
        click.echo(f"{r['id']:<48}{(r['datetime'] or '-')[:10]:<12}{r['level']:<6}"
                   f"{cloud:>7}{r['processing_baseline'] or '-':>9}{cover:>7}")
    click.echo(f"{len(rows)} scene(s)")


@main.command("download")
@aoi_option(required=True)
@search_options
@click.option("--bands", default=None,
              help="Comma-separated bands to save (default: all 13, or 12 for L2A).")
@click.option("--crs", default=None, help="Output CRS (default: UTM zone of the AOI centre).")
@click.option("--resolution", type=click.FloatRange(min=1.0), default=10.0, show_default=True,
              help="Pixel size in metres.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True,
              help="Folder for the per-band COGs and their STAC item (item.json).")
@friendly_errors
def download_command(aoi, date, catalog, collection, max_cloud, max_area, bands, crs,
                     resolution, out_dir):
    """Save the harmonised band stack of an AOI locally, for later runs without network.

    The folder can then be mapped with `geolulc map --scene FOLDER`.
    """
    from .download import download_stack

    if not date:
        raise GeolulcError("--date is required")
    band_list = parse_bands(bands)
    item_path = download_stack(aoi, date, out_dir, catalog=catalog, collection=collection,
                               max_cloud=max_cloud, max_area_km2=max_area, bands=band_list,
                               crs=crs, resolution=resolution)
    click.echo(f"Saved {item_path}")


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
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=3e-3,
              show_default=True, help="Peak learning rate of the one-cycle schedule.")
@click.option("--widths", default="32,64,128,256", show_default=True,
              help="Channels of each ResNet stage.")
@click.option("--blocks", default=None,
              help="Residual blocks in each stage, e.g. 2,2,2,2 (default: one per stage).")
@click.option("--weight-decay", type=click.FloatRange(min=0), default=0.05, show_default=True,
              help="AdamW weight decay.")
@click.option("--shift", type=click.IntRange(0, 16), default=4, show_default=True,
              help="Largest random shift in pixels (mirrored borders) of the augmentation.")
@click.option("--ema", type=click.FloatRange(0, 1, max_open=True), default=0.999,
              show_default=True, help="Decay of the weight average that is saved and "
                                      "validated (0: the last step's weights).")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto",
              show_default=True, help="bf16 autocast (auto: on CUDA and on CPUs with native "
                                      "bf16, 3-4× faster training there) or fp32.")
@click.option("--val-fraction", type=click.FloatRange(0.01, 0.9), default=0.2,
              show_default=True, help="Share of each class kept out for validation.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the split, initialisation and augmentation.")
@click.option("--init", "init_model", default=None,
              help="Start from this model (bundled name or path): its weights are copied and "
                   "filters for bands it lacks start at zero (transfer, e.g. RGB to 13 bands).")
@click.option("--level", type=click.Choice(["L1C", "L2A"]), default="L1C", show_default=True,
              help="Processing level the training patches come from.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--resume", is_flag=True, help="Continue from OUT/checkpoint.pt.")
@friendly_errors
def train_command(data_dir, out_dir, name, bands, exclude, epochs, batch_size, lr, widths, blocks,
                  weight_decay, shift, ema, precision, val_fraction, seed, init_model, level,
                  device, resume):
    """Train a patch classifier; a failed run never overwrites the last good model."""
    from .model import load_model
    from .patchdata import load_patch_folder
    from .train import TrainConfig, train

    width_tuple = _int_list("--widths", widths)
    block_tuple = _int_list("--blocks", blocks) if blocks else (1,) * len(width_tuple)
    if len(block_tuple) != len(width_tuple):
        raise GeolulcError(f"--blocks needs one number per stage of --widths "
                           f"({len(width_tuple)}), not {blocks!r}")
    band_list = parse_bands(bands)
    data = load_patch_folder(data_dir, band_list, exclude=exclude)
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, widths=width_tuple,
                         blocks=block_tuple, weight_decay=weight_decay, shift=shift, ema=ema,
                         precision=precision, val_fraction=val_fraction, seed=seed,
                         name=name, level=level,
                         extra_card={"training": {
                             "data": str(data_dir),
                             "excluded_names_from": str(exclude) if exclude else None}})
    init = load_model(init_model) if init_model else None
    path = train(data, out_dir, config, device=device, resume=resume, init=init)
    card = json.loads(path.read_text())
    click.echo(f"Saved {path} (validation accuracy "
               f"{card['metrics']['val_accuracy']:.4f} on {card['metrics']['n_val']} patches)")


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
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@friendly_errors
def evaluate_command(model, data_dir, split, out_dir, device, as_json):
    """Accuracy, per-class precision/recall/F1, Cohen's kappa and confusion matrix."""
    from .atomic import safe_name
    from .device import resolve_device
    from .evaluate import metrics, predict, validation_subset, write_reports
    from .model import load_model
    from .patchdata import load_patch_folder

    dev = resolve_device(device)
    loaded = load_model(model, dev)
    data = load_patch_folder(data_dir, classes=loaded.classes)
    if split == "val":
        data = validation_subset(loaded, data, Path(data_dir))
    probs = predict(loaded, data, dev)
    result = metrics(data.y, probs.argmax(1), loaded.classes)
    result["model"] = loaded.name
    result["data"] = str(data_dir)
    result["split"] = split
    result["reports"] = write_reports(result, out_dir,
                                      safe_name(f"{loaded.name}_{Path(data_dir).name}"))
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"{loaded.name} on {data_dir} ({split}, n={result['n']}): accuracy "
               f"{result['accuracy']:.4f}, kappa {result['kappa']:.4f}")
    click.echo(f"{'class':<22}{'precision':>10}{'recall':>8}{'f1':>8}{'n':>7}")
    for name, row in result["per_class"].items():
        click.echo(f"{name:<22}{row['precision']:>10.4f}{row['recall']:>8.4f}{row['f1']:>8.4f}"
                   f"{row['support']:>7}")
    echo_outputs(result["reports"])


@main.command("classify")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--model", default=DEFAULT_MODEL, show_default=True,
              help="Bundled model name or path to a model card.")
@click.option("--top", type=click.IntRange(1), default=3, show_default=True,
              help="Classes listed per patch in the table.")
@click.option("--json", "as_json", is_flag=True, help="All class probabilities as JSON.")
@friendly_errors
def classify_command(paths, model, top, as_json):
    """Class and probabilities of single patches (13-band GeoTIFF, or RGB JPEG/PNG)."""
    import numpy as np
    import torch

    from .evaluate import predict
    from .model import auto_model, load_model
    from .patchdata import PatchSet, read_patch

    loaded = None
    rows = []
    for path in paths:
        if not path.exists():
            raise GeolulcError(f"patch {path} does not exist")
        arr, bands, kind = read_patch(path)
        if loaded is None:
            loaded = load_model(auto_model(set(bands), ("classifier",)) if model == DEFAULT_MODEL
                                else model)
            if loaded.kind != "classifier":
                raise GeolulcError(f"{loaded.name} labels pixels, not patches: map a scene "
                                   "with it (geolulc map --scene …)")
        if arr.shape[-2:] != (loaded.patch_size, loaded.patch_size):
            raise GeolulcError(f"patch {path} is {arr.shape[-1]}×{arr.shape[-2]} pixels; "
                               f"{loaded.name} classifies {loaded.patch_size}×"
                               f"{loaded.patch_size} patches")
        single = PatchSet(arr[None], np.zeros(1, dtype=np.int64), loaded.classes, bands, kind,
                          [path])
        probs = predict(loaded, single, torch.device("cpu"))[0]
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


@main.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print the model cards' summaries as JSON.")
@friendly_errors
def models_command(as_json):
    """The bundled models with their bands, classes, training data and measured accuracy."""
    from .model import BUNDLED_DIR, bundled_models, read_card

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


def parse_bands(text: str | None) -> list[str] | None:
    """`--bands B04,B03,B02` (or red,green,blue) as canonical names; an unknown band is a
    one-line error."""
    if not text:
        return None
    from .bands import normalise_band

    try:
        return [normalise_band(b) for b in text.split(",") if b.strip()]
    except ValueError as exc:
        raise GeolulcError(f"--bands: {exc} (use B01…B12, B8A or common names)") from None


class SpacedDates(click.Command):
    """`--dates A B C` as the README writes it: every word after --dates up to the next option
    is a date (click's own options take one value each, so they are rewritten to
    `--dates A --dates B --dates C` before parsing)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        out: list[str] = []
        greedy = False
        for arg in args:
            if arg == "--dates":
                greedy = True
                continue
            if arg.startswith("--dates="):
                out += ["--dates", arg.split("=", 1)[1]]
                greedy = True
                continue
            if greedy and not arg.startswith("-"):
                out += ["--dates", arg]
                continue
            greedy = False
            out.append(arg)
        return super().parse_args(ctx, out)


@main.command("change", cls=SpacedDates)
@aoi_option()
@masking_options
@click.option("--dates", multiple=True, help="Two or more dates (day, month, year or range); "
              "separate with spaces (--dates 2018-06 2023-06) or repeat the option "
              "(--dates 2018-06 --dates 2023-06).")
@click.option("--before", type=click.Path(path_type=Path), default=None,
              help="Earlier scene (as for `map --scene`) or land-cover GeoTIFF from `map`.")
@click.option("--after", type=click.Path(path_type=Path), default=None,
              help="Later scene or land-cover GeoTIFF.")
@click.option("--threshold", type=click.FloatRange(0, 1), default=None,
              help="Change probability from which a pixel counts as changed in the mask "
                   "[default: 0.5 for combined (a 3 σ spectral change on a lasting transition), "
                   "0.3 for tv, 0.5 for independent].")
@click.option("--method", type=click.Choice(["auto", "combined", "tv", "independent"]),
              default="auto", show_default=True,
              help="How the change probability is made. combined: the spectral change of the "
              "normalised reflectance (in σ of the scene's no-change noise) weighted by how "
              "lasting the land-cover transition is (needs scenes); tv: total variation "
              "distance of the two dates' class probabilities; independent: 1 - Σ p_before·"
              "p_after. auto: combined for scenes, tv for maps.")
@click.option("--resample", is_flag=True,
              help="Resample the --after map onto the grid of --before when the grids differ.")
@click.option("--vector", is_flag=True, help="Also write change polygons (GeoPackage).")
@functools.partial(search_options, with_date=False)
@click.option("--model", default=DEFAULT_MODEL, show_default=True,
              help="Model for the dates that are classified here.")
@click.option("--stride", type=click.IntRange(1, 64), default=64, show_default=True,
              help="Pixels between patch centres.")
@click.option("--batch-size", type=BATCH, default="auto", show_default=True,
              help="Patches per inference batch (auto: fits the device).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@scale_options
@output_options
@friendly_errors
def change_command(aoi, composite, mask_dilate, max_acquisitions, l2a, dates, before, after,
                   threshold, method, resample, vector, catalog, collection,
                   max_cloud, max_area, model, stride, batch_size, device, precision, chunk_rows,
                   workers, scheduler, min_clear, out_dir, name, as_json, quiet):
    """Land-cover change between dates (from-to classes, change mask and probability).

    Either --aoi with --dates (each date mapped on one common grid), or --before/--after with
    two local scenes or two land-cover maps written by `geolulc map`.
    """
    from .change_job import run_change
    from .pipeline import MapRequest

    date_list = [d for text in dates for d in text.split()]
    req = MapRequest(aoi=aoi, catalog=catalog, collection=collection, max_cloud=max_cloud,
                     model=model, stride=stride, batch_size=batch_size, device=device,
                     out_dir=out_dir, name=name, min_clear=min_clear, max_area_km2=max_area,
                     progress=not quiet and not as_json, composite=composite,
                     mask_dilate=mask_dilate, max_acquisitions=max_acquisitions, l2a=l2a,
                     precision=precision, chunk_rows=chunk_rows, workers=workers,
                     scheduler=scheduler)
    summary = run_change(req, date_list, before, after, threshold, resample, vector, method)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    for change in summary["changes"]:
        share = 100 * change["changed_cells"] / max(change["valid_cells"], 1)
        click.echo(f"{change['before']} → {change['after']}: {change['changed_cells']} of "
                   f"{change['valid_cells']} cells changed ({share:.1f} %)")
        echo_outputs(change["outputs"])


@main.command("evaluate-change")
@click.argument("cities", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--model", default=DEFAULT_MODEL, show_default=True, help="Model to classify with.")
@click.option("--stride", type=click.IntRange(1, 64), default=64, show_default=True,
              help="Pixels between patch centres.")
@click.option("--threshold", "thresholds", type=click.FloatRange(0, 1), multiple=True,
              help="Change threshold(s) to score; repeat to sweep several in one run "
              "[default: each method's own, as in `change`].")
@click.option("--method", "methods", type=click.Choice(["combined", "tv", "independent"]),
              multiple=True, default=("combined",), show_default=True,
              help="Change method(s) to score (as in `change`); repeat for several.")
@click.option("--patch-fraction", type=click.FloatRange(0, 1), default=0.02, show_default=True,
              help="Share of changed pixels from which a 64 × 64-pixel block counts as changed "
              "(in the labels and in the prediction).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path),
              default=Path("outputs/evaluate-change"), show_default=True,
              help="Folder for the chunk caches of the run (removed when it ends).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--json", "as_json", is_flag=True, help="Print all scores as JSON.")
@friendly_errors
def evaluate_change_command(cities, model, stride, thresholds, methods, patch_fraction, out_dir,
                            device, as_json):
    """Score `change` on OSCD city folders (imgs_1, imgs_2, change-labels.tif): pixel- and
    64 × 64-block precision, recall and F1."""
    from .evaluate_change import evaluate_cities
    from .pipeline import MapRequest

    req = MapRequest(model=model, stride=stride, device=device, out_dir=out_dir, name="oscd",
                     progress=False)
    result = evaluate_cities(list(cities), req, list(thresholds), list(methods), patch_fraction)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"{'method':<12}{'thr':>5}  {'pixel P/R/F1':<22}{'block P/R/F1':<22}")
    for row in result["total"]:
        px, pa = row["pixel"], row["block"]
        click.echo(f"{row['method']:<12}{row['threshold']:>5.2f}  "
                   f"{px['precision']:.3f}/{px['recall']:.3f}/{px['f1']:.3f}        "
                   f"{pa['precision']:.3f}/{pa['recall']:.3f}/{pa['f1']:.3f}")
