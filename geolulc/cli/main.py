"""The `geolulc` command group."""

from __future__ import annotations

import logging

import click

from geolulc import __version__


@click.group()
@click.version_option(__version__, prog_name="geolulc")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def main(verbose: int) -> None:
    """geolulc: land-cover maps from Sentinel-2 imagery."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
