"""The `geolulc` command line: a thin layer over the Python API, one module per command.

Importing it loads no torch, GDAL or geopandas; each command imports what it needs when it runs,
so `geolulc --help` and argument errors answer at once.
"""

# each module registers its command on `main`
import geolulc.cli.catalog
import geolulc.cli.change
import geolulc.cli.classify
import geolulc.cli.download
import geolulc.cli.evaluate
import geolulc.cli.evaluate_change
import geolulc.cli.map
import geolulc.cli.models
import geolulc.cli.search
import geolulc.cli.serve
import geolulc.cli.synth
import geolulc.cli.train  # noqa: F401
from geolulc.cli.main import main

__all__ = ["main"]
