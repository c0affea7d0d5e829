"""geolulc: land-cover maps from Sentinel-2 imagery.

    import geolulc
    scenes = geolulc.search(aoi="aoi/rennes.geojson", date="2023-06")
    landcover = geolulc.classify(scenes=scenes, aoi="aoi/rennes.geojson")
    geolulc.write(landcover, "outputs")

The functions are imported on first use, so `import geolulc` (and `geolulc --help`) stays fast.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "search": "geolulc.api", "classify": "geolulc.api", "write": "geolulc.api",
    "read": "geolulc.api", "Stack": "geolulc.api", "change": "geolulc.api",
    "write_change": "geolulc.api", "make_map": "geolulc.api",
    "load_model": "geolulc.models.model", "LandCover": "geolulc.mapping.pipeline",
    "Scene": "geolulc.io.scenes", "load_scene": "geolulc.io.scenes",
    "GeolulcError": "geolulc.errors",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'geolulc' has no attribute {name!r}")
