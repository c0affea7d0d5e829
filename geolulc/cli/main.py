"""The `geolulc` command group."""

from __future__ import annotations

import logging
import warnings

import click

from geolulc._version import __version__
from geolulc.cli.options import show_warning
from geolulc.errors import GeolulcWarning


@click.group()
@click.version_option(__version__, prog_name="geolulc")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.option("--strict", is_flag=True,
              help="Stop with an error where geolulc would fall back or assume (an L2A scene "
                   "without AOT or SCL, a processing level not stated, OpenVINO missing …) "
                   "instead of warning and going on.")
def main(verbose: int, strict: bool) -> None:
    """geolulc: land-cover maps from Sentinel-2 imagery."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    warnings.showwarning = show_warning
    # geolulc's own warnings are part of what a command says (whatever PYTHONWARNINGS hides)
    warnings.simplefilter("error" if strict else "default", GeolulcWarning)
