"""`geolulc change`."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import click

from geolulc.cli.main import main
from geolulc.cli.options import (
    BATCH,
    FiniteRange,
    aoi_option,
    echo_outputs,
    friendly_errors,
    masking_options,
    output_options,
    scale_options,
    search_options,
)
from geolulc.defaults import (
    DEFAULT_MODEL,
    ChangeMethod,
    Composite,
    Engine,
    L2AMode,
    Precision,
)


class SpacedDates(click.Command):
    """`--dates A B C` as the README writes it: every word after --dates up to the next option.

    Each such word is a date; click's own options take one value each, so they are rewritten to
    `--dates A --dates B --dates C` before parsing.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Rewrite the spaced dates (and `--dates=A`) to one `--dates` per date, then parse."""
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
@click.option("--threshold", type=FiniteRange(0, 1), default=None,
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
def change_command(aoi: Path | None, composite: Composite, mask_dilate: int, max_acquisitions: int,
                   l2a: L2AMode, dates: tuple[str, ...], before: Path | None, after: Path | None,
                   threshold: float | None, method: ChangeMethod, resample: bool, vector: bool,
                   catalog: str, collection: str, max_cloud: float | None, max_area: float,
                   model: str, stride: int, batch_size: int | None, device: str,
                   precision: Precision, engine: Engine, chunk_rows: int | None,
                   workers: int | None, scheduler: str | None, min_clear: float, out_dir: Path,
                   name: str | None, as_json: bool, quiet: bool) -> None:
    """Land-cover change between dates (from-to classes, change mask and probability).

    Either --aoi with --dates (each date mapped on one common grid), or --before/--after with
    two local scenes or two land-cover maps written by `geolulc map`.
    """
    from geolulc.api import MapOptions, make_change

    date_list = [d for text in dates for d in text.split()]
    options = MapOptions(catalog=catalog, collection=collection, max_cloud=max_cloud,
                         max_area_km2=max_area, stride=stride, composite=composite,
                         mask_dilate=mask_dilate, max_acquisitions=max_acquisitions, l2a=l2a,
                         min_clear=min_clear, batch_size=batch_size, precision=precision,
                         engine=engine, device=device, chunk_rows=chunk_rows, workers=workers,
                         scheduler=scheduler, progress=not quiet and not as_json)
    summary = make_change(aoi=aoi, dates=date_list, before=before, after=after, model=model,
                          method=method, threshold=threshold, resample=resample, vector=vector,
                          options=options, out_dir=out_dir, name=name).to_dict()
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    for change in summary["changes"]:
        share = 100 * change["changed_cells"] / max(change["valid_cells"], 1)
        click.echo(f"{change['before']} → {change['after']}: {change['changed_cells']} of "
                   f"{change['valid_cells']} cells changed ({share:.1f} %)")
        echo_outputs(change["outputs"])
