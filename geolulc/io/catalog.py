"""Scene search in STAC APIs (Earth Search, Planetary Computer, Copernicus Data Space, any other)."""

from __future__ import annotations

import calendar
import logging
import math
import os
import re
from collections.abc import Callable
from datetime import date
from typing import Any

import shapely
from pystac import STACTypeError
from pystac_client import Client
from pystac_client.errors import ClientTypeError
from pystac_client.exceptions import APIError
from pystac_client.stac_api_io import StacApiIO
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import RetryError, Timeout
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union
from urllib3.util.retry import Retry

from geolulc.core.deadline import DeadlinePassed, within
from geolulc.defaults import COLLECTIONS, DEFAULT_COLLECTION, EARTH_SEARCH  # noqa: F401 (re-exported)
from geolulc.errors import CatalogError, DependencyError, GeolulcError, ParameterError
from geolulc.io.aoi import split_antimeridian
from geolulc.io.scenes import Scene, scene_from_item

log = logging.getLogger(__name__)


#: Seconds to wait for a connection and for each answer of a STAC API.
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 60.0
#: Retries, with exponential backoff, of requests that fail or answer 429/5xx.
RETRIES = 3
#: Total seconds a search may take, retries included ($GEOLULC_SEARCH_DEADLINE overrides):
#: a server that accepts connections and never answers is an error within it, not minutes of
#: silence.
SEARCH_DEADLINE_S = 45.0
#: Seconds between the lines that say a search is still waiting.
WAIT_NOTICE_S = 15.0

# urllib3 logs every retry as a warning; geolulc reports the outcome once, in one line.
logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)

_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_YEAR = re.compile(r"^(\d{4})$")


def _period(text: str) -> tuple[date, date]:
    """First and last day of a day, month or year written as YYYY-MM-DD, YYYY-MM or YYYY."""
    text = text.strip()
    try:
        if m := _DAY.match(text):
            d = date(int(m[1]), int(m[2]), int(m[3]))
            return d, d
        if m := _MONTH.match(text):
            y, mo = int(m[1]), int(m[2])
            return date(y, mo, 1), date(y, mo, calendar.monthrange(y, mo)[1])
        if m := _YEAR.match(text):
            return date(int(m[1]), 1, 1), date(int(m[1]), 12, 31)
    except ValueError:
        pass
    raise ParameterError(f"cannot read date {text!r}: use YYYY-MM-DD, YYYY-MM, YYYY or a range A/B")


def parse_date_range(text: str | date) -> str:
    """A day, month, year or range 'A/B' (or 'A..B') -> a STAC datetime interval.

    A `datetime.date` (or datetime) is its day.
    """
    if isinstance(text, date):
        text = text.strftime("%Y-%m-%d")
    if not isinstance(text, str):
        raise ParameterError(f"`date` must be text such as '2023-06' or '2023-06-01/2023-06-15', "
                             f"not {type(text).__name__} {text!r}")
    parts = re.split(r"/|\.\.", text)
    if len(parts) == 2 and not all(p.strip() for p in parts):
        raise ParameterError(f"date range {text!r} is open-ended: give both ends, such as "
                             "2020-02-01/2020-03-31 (a map needs a bounded period)")
    if len(parts) == 1:
        start, end = _period(parts[0])
    elif len(parts) == 2:
        start, end = _period(parts[0])[0], _period(parts[1])[1]
    else:
        raise ParameterError(f"cannot read date range {text!r}")
    if end < start:
        raise ParameterError(f"date range {text!r} ends before it starts")
    return f"{start.isoformat()}T00:00:00Z/{end.isoformat()}T23:59:59Z"


def _modifier(url: str) -> Callable[[Any], None] | None:
    """Planetary Computer assets need signed URLs; other catalogues need nothing."""
    if "planetarycomputer" not in url:
        return None
    try:
        import planetary_computer
    except ImportError:
        raise DependencyError(
            "the Planetary Computer needs signed URLs: pip install 'geolulc[pc]'") from None
    return planetary_computer.sign_inplace


def search_scenes(
    geometry: BaseGeometry, dates: str, catalog: str = EARTH_SEARCH,
    collection: str = DEFAULT_COLLECTION, max_cloud: float | None = None, limit: int = 500,
) -> list[Scene]:
    """All scenes intersecting `geometry` in the period, least cloudy first.

    The search keeps within one total deadline (`SEARCH_DEADLINE_S`), saying every
    `WAIT_NOTICE_S` that it is still waiting.
    """
    interval = parse_date_range(dates)
    check_catalog_url(catalog)
    items = _within_deadline(catalog, lambda deadline: _search(
        geometry, interval, catalog, collection, limit, deadline))
    scenes = _to_scenes(items)
    if max_cloud is not None:  # filtered here: not every STAC API implements the query extension
        scenes = [s for s in scenes if s.cloud_cover is None or s.cloud_cover <= max_cloud]
    scenes.sort(key=lambda s: (s.cloud_cover if s.cloud_cover is not None else 100.0, s.id))
    log.info("%d scene(s) in %s for %s", len(scenes), collection, interval)
    return scenes


def check_catalog_url(catalog: str) -> None:
    """A catalogue is the http(s) URL of a STAC API; a path here is a user's slip."""
    if not re.match(r"^https?://[^/\s]+", catalog or ""):
        raise ParameterError(f"`catalog` must be the http(s) URL of a STAC API, not "
                             f"{catalog!r} (local scenes need no catalogue)")


def search_deadline() -> float:
    """Seconds a search may take: `$GEOLULC_SEARCH_DEADLINE`, else `SEARCH_DEADLINE_S`."""
    text = os.environ.get("GEOLULC_SEARCH_DEADLINE", "").strip()
    if not text:
        return SEARCH_DEADLINE_S
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ParameterError(f"GEOLULC_SEARCH_DEADLINE must be a positive number of seconds, "
                             f"not {text!r}")
    return value


def _within_deadline(catalog: str, search: Callable[[float], list[dict]]) -> list[dict]:
    """Run `search(deadline)` and wait at most the deadline, saying every so often it waits.

    A request stuck past the deadline is abandoned (`geolulc.core.deadline.within`), and the
    process exits as soon as the error is said instead of waiting for the request's timeouts.
    """
    deadline = search_deadline()
    try:
        return within(lambda: search(deadline), deadline, "geolulc-stac",
                      lambda elapsed: log.warning("waiting for STAC API %s (%.0f s)", catalog,
                                                  elapsed), WAIT_NOTICE_S)
    except DeadlinePassed:
        raise CatalogError(f"STAC API {catalog} gave no complete answer within "
                           f"{deadline:.0f} s (set GEOLULC_SEARCH_DEADLINE to wait longer)") \
            from None


def _to_scenes(items: list[dict]) -> list[Scene]:
    """Scenes of the items, their relative asset links resolved against each item's own URL."""
    scenes = []
    for item in items:
        self_href = next((ln["href"] for ln in item.get("links", []) if ln.get("rel") == "self"),
                         None)
        scenes.append(scene_from_item(item, base_href=self_href))
    return scenes


#: Vertices above which an AOI is sent to the catalogue as its convex hull (APIs refuse
#: requests of megabytes); the scenes are then chosen and the map clipped with the whole AOI.
MAX_QUERY_VERTICES = 2000


def _query_geometry(geometry: BaseGeometry) -> BaseGeometry:
    """What the catalogue is asked about: the AOI, or for a huge one its convex hull."""
    parts = split_antimeridian(geometry)
    if shapely.get_num_coordinates(parts) <= MAX_QUERY_VERTICES:
        return parts
    hull = split_antimeridian(geometry.convex_hull)
    log.info("AOI of %d vertices searched as its convex hull", shapely.get_num_coordinates(parts))
    return hull


def _search(geometry: BaseGeometry, interval: str, catalog: str, collection: str, limit: int,
            deadline: float) -> list[dict]:
    """The items of one search (the request and its retries), every failure one line."""
    retry = Retry(total=RETRIES, backoff_factor=0.5, status_forcelist=(429, 500, 502, 503, 504),
                  allowed_methods=None, raise_on_status=False)
    timeout = (min(CONNECT_TIMEOUT_S, deadline), min(READ_TIMEOUT_S, deadline))
    try:  # Client.open resets the I/O's timeout to its own argument: give it both
        client = Client.open(catalog, modifier=_modifier(catalog), timeout=timeout,
                             stac_io=StacApiIO(timeout=timeout, max_retries=retry))
        search = client.search(
            collections=[collection], intersects=mapping(_query_geometry(geometry)),
            datetime=interval,
            max_items=limit, limit=min(limit, 100),
        )
        items = [item.to_dict() for item in search.items()]
        if not items:  # an unknown collection is an error, not "no scenes"
            known = [c.id for c in client.get_collections()]
            if known and collection not in known:
                raise ParameterError(f"collection {collection!r} is not in {catalog} (it has "
                                     f"{', '.join(sorted(known)[:12])})")
    except (APIError, Timeout, RetryError, RequestsConnectionError, ValueError, STACTypeError,
            KeyError, TypeError, ClientTypeError, OSError) as exc:
        if isinstance(exc, GeolulcError):
            raise
        raise _catalog_error(exc, catalog) from None
    return items


def _catalog_error(exc: Exception, catalog: str) -> CatalogError:
    """What went wrong with a search, in one line, with the HTTP status where there was one."""
    unreachable = (f"cannot reach STAC API {catalog} (no network?); local data needs no "
                   "catalogue: give `scenes` instead")
    too_slow = f"STAC API {catalog} did not answer within {READ_TIMEOUT_S:.0f} s ({RETRIES} retries)"
    overloaded = f"STAC API {catalog} kept failing (HTTP 429/5xx after {RETRIES} retries)"
    if isinstance(exc, APIError):
        status = getattr(exc, "status_code", None)
        if status is None:  # no HTTP answer at all
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, Timeout) or "timed out" in str(exc).lower():
                return CatalogError(too_slow)
            if isinstance(cause, RetryError) or "too many" in str(exc).lower():
                return CatalogError(overloaded)
            return CatalogError(unreachable)
        detail = (str(exc).strip().splitlines() or [""])[0][:200]
        if status == 429 or status >= 500:
            return CatalogError(f"STAC API {catalog} kept failing (HTTP {status} after "
                                f"{RETRIES} retries): {detail}", status)
        return CatalogError(f"STAC API {catalog} refused the request (HTTP {status}): {detail}",
                            status)
    if isinstance(exc, Timeout):
        return CatalogError(too_slow)
    if isinstance(exc, RetryError):
        return CatalogError(overloaded)
    if isinstance(exc, RequestsConnectionError):
        return CatalogError(unreachable)
    if isinstance(exc, (ValueError, STACTypeError, KeyError, TypeError, ClientTypeError)):
        return CatalogError(f"{catalog} did not answer with STAC JSON ({type(exc).__name__}): "
                            "is it a STAC API URL?")  # an HTML page, a JSON that is not STAC …
    return CatalogError(f"cannot reach STAC API {catalog}: {type(exc).__name__}")


def select_covering(scenes: list[Scene], geometry: BaseGeometry) -> list[Scene]:
    """Least cloudy scenes, in order, until their footprints cover the AOI.

    Scenes that add no coverage are dropped, so a month of overpasses over one tile reads one
    acquisition, while an AOI across two tiles or UTM zones reads one scene of each.
    """
    geometry = split_antimeridian(geometry)  # footprints are in −180…180
    chosen, covered = [], None
    for scene in scenes:
        footprint = scene.footprint
        if footprint is None or not footprint.intersects(geometry):
            continue
        if covered is not None and geometry.difference(covered).area <= 1e-12:
            break
        if covered is not None and footprint.intersection(geometry).difference(covered).area <= 0:
            continue
        chosen.append(scene)
        covered = footprint if covered is None else unary_union([covered, footprint])
    return chosen
