"""`geolulc catalog`."""

from __future__ import annotations

from pathlib import Path

import click

from geolulc.cli.main import main
from geolulc.cli.options import friendly_errors


@main.command("catalog")
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--title", default=None, help="Title of the catalogue (default: from the folder).")
@click.option("--validate", is_flag=True,
              help="Then check the catalogue and every Item against the STAC and extension "
                   "schemas bundled with geolulc (offline); fail on the first error.")
@friendly_errors
def catalog_command(out_dir: Path, title: str | None, validate: bool) -> None:
    """Write a STAC Catalog (catalog.json) over the maps and changes in OUT_DIR.

    Every `map` and `change` run writes a STAC Item beside its files; the catalogue links them
    and each Item links back to it, so the folder can be served or browsed as a STAC catalogue.
    """
    from geolulc.api import catalog

    path = catalog(out_dir, title=title, validate=validate)
    click.echo(f"Saved {path}" + (" (valid STAC, checked offline)" if validate else ""))
