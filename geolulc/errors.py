"""The errors and warnings geolulc raises, in one place, as rasterio and pystac-client do.

Every error is a `GeolulcError` and also the built-in exception a caller would catch for that
kind of problem: a wrong argument is a `ValueError`, a missing input a `FileNotFoundError`, a
failing catalogue an `OSError` that carries the HTTP status. Messages name the Python API's
parameters in backticks (`` `aoi` ``); the command line shows its flags instead (``--aoi``).

Fallbacks that change what a map is made from are `GeolulcWarning`s issued with `warnings.warn`,
so that ``warnings.simplefilter("error", GeolulcWarning)`` (``geolulc --strict`` on the command
line) makes them errors for a caller who would rather stop than get a less exact map.
"""

from __future__ import annotations


class GeolulcError(Exception):
    """A problem with the caller's input or environment, explained in one line."""


class ParameterError(GeolulcError, ValueError):
    """An argument, or a combination of arguments, that cannot be used."""


class AOIError(ParameterError):
    """An area of interest that cannot be read or used (no polygon, no CRS, too large …)."""


class MissingInputError(GeolulcError, FileNotFoundError):
    """A file or folder the caller named does not exist."""


class SceneError(GeolulcError, ValueError):
    """A scene (SAFE product, STAC item, band folder) that is malformed or lacks what is needed."""


class DataError(GeolulcError, ValueError):
    """Training or evaluation data, or a map file, that cannot be used as it is."""


class ReadError(GeolulcError, OSError):
    """Pixels or a file that could not be read (a broken raster, a failing server)."""


class ModelError(GeolulcError, ValueError):
    """A model, its card, its weights or a training checkpoint that cannot be used."""


class CatalogError(GeolulcError, OSError):
    """A STAC API that cannot be reached or answers with an error; `status` is its HTTP status."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NoDataError(GeolulcError, LookupError):
    """Nothing to work on: no scene found, no clear patch, no pixel two dates share."""


class DependencyError(GeolulcError, ImportError):
    """An optional package that the requested feature needs is not installed."""


class ClusterError(GeolulcError, ConnectionError):
    """The Dask scheduler asked for cannot be reached."""


class ResourceError(GeolulcError, MemoryError):
    """The job would need more memory than this machine has."""


class GeolulcWarning(UserWarning):
    """Base of geolulc's warnings: make them errors with a `warnings` filter."""


class FallbackWarning(GeolulcWarning):
    """A less exact or slower way was taken because something was missing (AOT, SCL, OpenVINO …)."""


class AssumptionWarning(GeolulcWarning):
    """Metadata was missing and a value was assumed (processing level, acquisition date …)."""


class TrustWarning(GeolulcWarning):
    """The model's own measured figures on places it never saw miss what a map needs."""
