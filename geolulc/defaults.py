"""Defaults the command line shows in its help, kept apart from the heavy modules.

The heavy modules (torch, GDAL, geopandas) are not imported here, so that `geolulc --help` and
argument errors answer without importing them.
"""

from typing import Literal, get_args

#: Largest AOI accepted without --max-area, in geodesic km².
DEFAULT_MAX_AREA_KM2 = 25_000.0
#: `auto`: the best bundled model for the scenes' bands.
DEFAULT_MODEL = "auto"
EARTH_SEARCH = "https://earth-search.aws.element84.com/v1"
COLLECTIONS = ("sentinel-2-l2a", "sentinel-2-l1c", "sentinel-2-c1-l2a")
DEFAULT_COLLECTION = "sentinel-2-l2a"

# The choices of the API's string options, as types a checker can verify (`typing.get_args`
# gives the allowed values).
#: How several acquisitions make one map: median/best composite the reflectance and classify
#: once; mean-probability/mode classify every acquisition and composite the probabilities
#: (their mean) or the labels (their mode); auto is a median over a period of several days.
Composite = Literal["auto", "median", "best", "none", "mean-probability", "mode"]
#: The composites made from classified acquisitions (`geolulc.mapping.composite`).
PROBABILITY_COMPOSITES = ("mean-probability", "mode")
#: What L2A input becomes: auto/toa restore top-of-atmosphere reflectance for L1C models.
L2AMode = Literal["auto", "toa", "as-is"]
#: Inference arithmetic: auto is bf16 where the hardware computes it natively.
Precision = Literal["auto", "fp32", "bf16"]
#: Inference engine: auto is OpenVINO on the CPU, torch on CUDA.
Engine = Literal["auto", "openvino", "torch"]
#: How the change probability between two dates is made.
ChangeMethod = Literal["auto", "combined", "tv", "independent"]
#: Which patches an evaluation scores: all, or those the model's training held out.
Split = Literal["all", "val"]

#: Inference engines (`geolulc.models.engines`).
ENGINES: tuple[str, ...] = get_args(Engine)
