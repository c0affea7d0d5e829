"""Defaults the command line shows in its help, kept apart from the heavy modules.

The heavy modules (torch, GDAL, geopandas) are not imported here, so that `geolulc --help` and
argument errors answer without importing them.
"""

#: Largest AOI accepted without --max-area, in geodesic km².
DEFAULT_MAX_AREA_KM2 = 25_000.0
#: `auto`: the best bundled model for the scenes' bands.
DEFAULT_MODEL = "auto"
EARTH_SEARCH = "https://earth-search.aws.element84.com/v1"
COLLECTIONS = ("sentinel-2-l2a", "sentinel-2-l1c", "sentinel-2-c1-l2a")
DEFAULT_COLLECTION = "sentinel-2-l2a"
#: Inference engines (`geolulc.models.engines`); auto = OpenVINO on the CPU, torch on CUDA.
ENGINES = ("auto", "openvino", "torch")
