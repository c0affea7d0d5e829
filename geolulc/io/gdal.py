"""GDAL settings for reading COGs over HTTP(S), and opening band files with one-line errors.

The settings cover timeouts, retries, caching and unsigned access to public buckets.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import rasterio
from rasterio.errors import RasterioError
from rasterio.io import DatasetReader

from geolulc.errors import ReadError
from geolulc.io.atomic import check_readable

log = logging.getLogger(__name__)


GDAL_OPTIONS = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",  # no directory listing of the bucket per file
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_MULTIPLEX": "YES",
    "GDAL_HTTP_MAX_RETRY": 2,  # with backoff, on 429/5xx and dropped connections
    "GDAL_HTTP_RETRY_DELAY": 1,
    "GDAL_HTTP_CONNECTTIMEOUT": 10,  # seconds; a server that never answers is an error
    "GDAL_HTTP_TIMEOUT": 60,
    # a transfer that stalls (no byte for 15 s) is abandoned: with the retries, a server that
    # accepts and never answers costs under a minute, not four (slow transfers go on)
    "GDAL_HTTP_LOW_SPEED_TIME": 15,
    "GDAL_HTTP_LOW_SPEED_LIMIT": 1,
    "VSI_CACHE": "TRUE",
    "GDAL_CACHEMAX": 256,  # MB: a row of blocks of every band of a tile, shared by two chunks
}


@contextlib.contextmanager
def gdal_env() -> Iterator[None]:
    """GDAL settings for reading COGs over HTTP; public buckets are read without signing."""
    options = dict(GDAL_OPTIONS)
    if not os.environ.get("AWS_ACCESS_KEY_ID"):
        options["AWS_NO_SIGN_REQUEST"] = "YES"
    with rasterio.Env(**options):
        yield


def is_remote(href: str) -> bool:
    """Whether `href` is read over the network (HTTP(S), S3, GCS or /vsicurl/) rather than from disk."""
    return href.startswith(("http://", "https://", "/vsis3/", "/vsigs/", "/vsicurl/"))


def vsi_path(href: str) -> str:
    """The GDAL virtual path under which an href is cached."""
    return f"/vsicurl/{href}" if href.startswith("http") else href


def open_band(href: str, scene_id: str, band: str) -> DatasetReader:
    """A band file opened with rasterio, or a one-line error naming the scene and the href."""
    if "://" not in href and not href.startswith("/vsi"):
        check_readable(Path(href), f"band {band} of scene {scene_id}:")
    try:
        src = rasterio.open(href)
    except RasterioError as exc:
        raise ReadError(f"cannot open band {band} of scene {scene_id} at {href}: "
                           f"{str(exc).splitlines()[0]}") from None
    if not src.crs:
        src.close()
        raise ReadError(f"band {band} of scene {scene_id} at {href} has no coordinate reference "
                        "system, so it cannot be placed on a map")
    return src
