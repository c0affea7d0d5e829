"""geolulc: land-cover maps from Sentinel-2 imagery.

    import geolulc
    scenes = geolulc.search(aoi="aoi/rennes.geojson", date="2023-06")
    landcover = geolulc.classify(scenes=scenes, aoi="aoi/rennes.geojson")
    geolulc.write(landcover, "outputs")

The functions are imported on first use, so `import geolulc` (and `geolulc --help`) stays fast;
type checkers see them through the imports below.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from geolulc._version import __version__

if TYPE_CHECKING:
    from geolulc.api import (
        MapOptions,
        Stack,
        catalog,
        change,
        classify,
        classify_patches,
        download,
        evaluate,
        evaluate_change,
        list_models,
        make_change,
        make_map,
        read,
        search,
        synth_quality,
        synth_sample,
        synth_train,
        train,
        write,
        write_change,
        write_legend,
    )
    from geolulc.core.legend import Legend
    from geolulc.errors import GeolulcError, GeolulcWarning
    from geolulc.io.scenes import Scene, load_scene
    from geolulc.mapping.pipeline import LandCover, MapResult
    from geolulc.models.model import load_model
    from geolulc.models.synth import SynthConfig
    from geolulc.models.train import TrainConfig

_API = ("search", "download", "catalog", "classify", "make_map", "write", "read", "change", "write_change",
        "make_change", "write_legend", "classify_patches", "train", "evaluate", "evaluate_change",
        "list_models",
        "synth_train", "synth_sample", "synth_quality",
        "MapOptions", "Stack")
_EXPORTS = {
    **dict.fromkeys(_API, "geolulc.api"),
    "load_model": "geolulc.models.model", "TrainConfig": "geolulc.models.train",
    "SynthConfig": "geolulc.models.synth",
    "LandCover": "geolulc.mapping.pipeline", "MapResult": "geolulc.mapping.pipeline",
    "Legend": "geolulc.core.legend", "Scene": "geolulc.io.scenes", "load_scene": "geolulc.io.scenes",
    "GeolulcError": "geolulc.errors", "GeolulcWarning": "geolulc.errors",
}
__all__ = [  # written out (the names of _EXPORTS) so that linters see the re-exports above
    "__version__", "search", "download", "catalog", "classify", "make_map", "write", "read",
    "change", "write_change", "make_change", "write_legend", "classify_patches", "train", "evaluate",
    "evaluate_change", "list_models", "synth_train", "synth_sample", "synth_quality",
    "MapOptions", "Stack", "load_model", "TrainConfig", "SynthConfig", "LandCover", "MapResult",
    "Legend", "Scene",
    "load_scene", "GeolulcError", "GeolulcWarning",
]


def __getattr__(name: str) -> Any:  # noqa: ANN401 - a function, class or exception by name
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'geolulc' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
