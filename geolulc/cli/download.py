"""`geolulc download`."""

from __future__ import annotations

from pathlib import Path

import click

from geolulc.cli.main import main
from geolulc.cli.options import (
    FiniteRange,
    aoi_option,
    friendly_errors,
    parse_bands,
    search_options,
)
from geolulc.errors import GeolulcError


@main.command("download")
@aoi_option(required=True)
@search_options
@click.option("--bands", default=None,
              help="Comma-separated bands to save (default: all 13, or 12 for L2A).")
@click.option("--crs", default=None, help="Output CRS (default: UTM zone of the AOI centre).")
@click.option("--resolution", type=FiniteRange(min=1.0), default=10.0, show_default=True,
              help="Pixel size in metres.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True,
              help="Folder for the per-band COGs and their STAC item (item.json).")
@friendly_errors
def download_command(aoi: Path, date: str | None, catalog: str, collection: str,
                     max_cloud: float | None, max_area: float, bands: str | None,
                     crs: str | None, resolution: float, out_dir: Path) -> None:
    """Save the harmonised band stack of an AOI locally, for later runs without network.

    The folder can then be mapped with `geolulc map --scene FOLDER`.
    """
    from geolulc.api import download

    if not date:
        raise GeolulcError("--date is required")
    item_path = download(aoi=aoi, date=date, out_dir=out_dir, catalog=catalog,
                         collection=collection, max_cloud=max_cloud, max_area_km2=max_area,
                         bands=parse_bands(bands), crs=crs, resolution=resolution)
    click.echo(f"Saved {item_path}")
