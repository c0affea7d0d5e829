"""`geolulc map`."""

from __future__ import annotations

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
from geolulc.defaults import DEFAULT_MODEL, Composite, Engine, L2AMode, Precision
from geolulc.errors import GeolulcError


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
                   "bands, else eurosat-rgb-scenes (RGB only).")
@click.option("--stride", type=click.IntRange(1, 64), default=64, show_default=True,
              help="Patch classifiers only: pixels between patch centres; the map's cells are "
                   "stride × resolution. A per-pixel model always maps every pixel.")
@click.option("--series", is_flag=True,
              help="Also write one map per acquisition of the period (NAME_YYYY-MM-DD_*), on "
                   "the composite's grid, resumably; with --composite mean-probability or mode "
                   "the composite is made from them.")
@click.option("--dense/--patchwise", default=True, show_default=True,
              help="For strides below 64, classify each chunk fully convolutionally (shared "
                   "work, fast) or patch by patch (exactly a lone patch's input, slower).")
@click.option("--batch-size", type=BATCH, default="auto", show_default=True,
              help="Patches (or tiles of about 564 × 1064 pixels of a per-pixel model) per inference "
                   "batch; auto: 256 patches or 1 tile on CPU, on a GPU the largest that fits in "
                   "half its free memory.")
@click.option("--device", default="auto", show_default=True,
              help="auto (CUDA when available), cpu or cuda.")
@click.option("--crs", default=None, help="Output CRS (default: UTM zone of the AOI centre).")
@click.option("--resolution", type=FiniteRange(min=1.0), default=10.0, show_default=True,
              help="Input pixel size in metres that bands are resampled to.")
@scale_options
@output_options
@friendly_errors
def map_command(aoi: Path | None, date: str | None, catalog: str, collection: str,
                max_cloud: float | None, max_area: float, composite: Composite, mask_dilate: int,
                l2a: L2AMode, max_acquisitions: int, scenes: tuple[Path, ...], model: str,
                stride: int, series: bool, dense: bool, batch_size: int | None,
                precision: Precision,
                engine: Engine, device: str, crs: str | None, resolution: float,
                chunk_rows: int | None, workers: int | None, scheduler: str | None,
                min_clear: float, out_dir: Path, name: str | None, as_json: bool,
                quiet: bool) -> None:
    """Map land cover over an AOI for a date, or over local scenes.

    Writes NAME_landcover.tif (COG, class codes, colour table, no-data 255),
    NAME_confidence.tif, NAME_stats.json/.csv (km² per class) and NAME_quicklook.png.
    """
    from geolulc.api import MapOptions, make_map

    if not scenes and (aoi is None or not date):
        raise GeolulcError("give --aoi and --date, or --scene")
    options = MapOptions(catalog=catalog, collection=collection, max_cloud=max_cloud,
                         max_area_km2=max_area, stride=stride, resolution=resolution, crs=crs,
                         composite=composite, mask_dilate=mask_dilate,
                         max_acquisitions=max_acquisitions, l2a=l2a, min_clear=min_clear,
                         series=series, dense=dense, batch_size=batch_size, precision=precision,
                         engine=engine,
                         device=device, chunk_rows=chunk_rows, workers=workers,
                         scheduler=scheduler, progress=not quiet and not as_json)
    summary = make_map(aoi=aoi, date=date, scenes=list(scenes), model=model, options=options,
                       out_dir=out_dir, name=name).to_dict()
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
