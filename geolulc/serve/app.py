"""The HTTP API and the map page: an ASGI app (FastAPI) over the Python API.

Routes: ``POST /classify`` (patches → class probabilities), ``POST /maps`` (an AOI and a date →
a map job), ``GET /maps/{id}`` (state, progress, files, bounds), ``GET /maps/{id}/files/{name}``,
``DELETE /maps/{id}``, ``GET /maps/{id}/tiles/{layer}/{z}/{x}/{y}.png`` (the land cover with its
colour table, or the scene's true colour, read from the COGs with rio-tiler), ``GET /models``,
and ``/`` (the page). Every error, an unexpected one included, is a JSON body
``{"error": "one line"}`` with its status.
"""

from __future__ import annotations

import hmac
import io
import ipaddress
import json
import logging
import math
import re
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from rasterio.errors import RasterioError
from rio_tiler.errors import RioTilerError, TileOutsideBounds
from rio_tiler.io import Reader
from rio_tiler.models import ImageData
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware

from geolulc._version import __version__
from geolulc.errors import AOIError, GeolulcError, ParameterError
from geolulc.io.atomic import write_text_atomic
from geolulc.io.gdal import gdal_env
from geolulc.io.scenes import Scene
from geolulc.serve.jobs import MAP_NAME, JobRunner, JobSpec, JobStore

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
#: Names of files a job may serve: one path component of ordinary characters.
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
LAYERS = ("landcover", "truecolor")
#: The scene's bands shown as red, green and blue.
TRUE_COLOUR_BANDS = ("B04", "B03", "B02")
#: Percentiles of each band over the job's area shown as black and as full brightness: a fixed
#: range saturates bright desert and leaves dark forest black.
STRETCH_PERCENTILES = (2.0, 98.0)
#: Longest side, in pixels, of the decimated read (overviews) the stretch is computed from.
STRETCH_READ_SIZE = 1024
#: A job's true-colour bands (GDAL paths) and stretch, kept in its folder once computed.
TRUE_COLOUR_FILE = "truecolor.json"
#: Seconds a job's failed true colour (its catalogue down, its scene gone) is answered from
#: memory before it is tried again.
TRUE_COLOUR_RETRY_S = 60.0


@dataclass(frozen=True)
class ServeConfig:
    """How the server runs; the defaults are the safe ones."""

    data_dir: Path
    catalog: str
    collection: str = "sentinel-2-l2a"
    host: str = "127.0.0.1"
    token: str | None = None
    workers: int = 1
    max_queue: int = 16
    max_area_km2: float = 2500.0
    max_upload_bytes: int = 4 * 2**20
    max_patches: int = 64
    cors_origins: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        """A server reachable from other machines needs a token."""
        if not is_loopback(self.host) and not self.token:
            raise GeolulcError(f"serving on {self.host} (not loopback) needs `token`: every "
                               "request must then carry it")


def is_loopback(host: str) -> bool:
    """Whether `host` is only reachable from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ApiError(Exception):
    """An error the API answers with: a status and one line."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _error(status: int, message: str) -> JSONResponse:
    """The body of every error: one line, whatever the message held."""
    return JSONResponse({"error": " ".join(message.split())}, status_code=status)


def _first_line(exc: BaseException) -> str:
    """An exception's message cut to its first line, for an error body."""
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:200]


class PatchModels:
    """Loaded patch classifiers, one per model name, shared by every /classify request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded: dict[str, Any] = {}

    def classify(self, model: str, paths: list[Path], names: list[str]) -> list[dict[str, Any]]:
        """Class probabilities of patch files with `model` (loaded once, then kept)."""
        from geolulc.core.device import resolve_device
        from geolulc.models.evaluate import predict_patch
        from geolulc.models.model import auto_model, load_model
        from geolulc.models.patchdata import read_patch

        patches = [read_patch(p, name) for p, name in zip(paths, names, strict=True)]
        cpu = resolve_device("cpu")
        with self._lock:
            name = model if model != "auto" else auto_model(set(patches[0][1]), patches=True)
            if name not in self._loaded:
                self._loaded[name] = load_model(name, cpu)
            loaded = self._loaded[name]
            return [predict_patch(loaded, patch, upload, cpu).to_dict()
                    for patch, upload in zip(patches, names, strict=True)]


def create_app(config: ServeConfig) -> FastAPI:
    """The app: its routes, the job runner over `config.data_dir`, the page."""
    from geolulc.io.catalog import check_catalog_url
    from geolulc.models.model import bundled_models

    check_catalog_url(config.catalog)  # a service whose every job would fail is refused
    if config.data_dir.exists() and not config.data_dir.is_dir():
        raise ParameterError(f"`data_dir` {config.data_dir} is a file, not a folder")
    config.data_dir.mkdir(parents=True, exist_ok=True)
    store = JobStore(config.data_dir / "jobs.sqlite")
    runner = JobRunner(store, config.data_dir / "jobs", config.catalog, config.collection,
                       config.max_area_km2, config.workers, config.max_queue)
    patch_models = PatchModels()
    # a job's stretch is computed by one tile request only, and a failure is not retried by
    # every waiting tile: each job has its lock, and its last failure is kept a while
    true_colour_locks: dict[str, threading.Lock] = {}
    true_colour_failed: dict[str, tuple[float, ApiError]] = {}
    locks_lock = threading.Lock()
    app = FastAPI(title="geolulc", summary="Land-cover maps from Sentinel-2 imagery",
                  version=__version__, docs_url=None, redoc_url=None)  # their scripts need a CDN

    @app.middleware("http")
    async def guard(request: Request,
                    call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        """Token (off loopback) and request size, before any route runs.

        Whatever a route raises that no handler answers is logged and answered as a one-line
        500, not as bare text.
        """
        public = request.method == "GET" and (request.url.path == "/"
                                               or request.url.path.startswith("/static/"))
        if config.token and not public:  # the page and its scripts hold no data
            given = request.headers.get("authorization", "").removeprefix("Bearer ")
            if not hmac.compare_digest(given.encode(), config.token.encode()):
                return _error(401, "a valid token is needed (Authorization: Bearer …)")
        size = request.headers.get("content-length")
        if request.method in ("POST", "PUT", "PATCH") and size is None:
            return _error(411, "send the request with a Content-Length (no chunked bodies)")
        limit = config.max_upload_bytes * config.max_patches if request.url.path == "/classify" \
            else 2**20
        if size is not None and (not size.isdigit() or int(size) > limit):
            return _error(413, f"the request is larger than {limit:,} bytes")
        try:
            return await call_next(request)
        except Exception as exc:  # noqa: BLE001 - every error is one line of JSON
            log.exception("%s %s", request.method, request.url.path)
            return _error(500, f"internal error: {type(exc).__name__}: {_first_line(exc)}")

    if config.cors_origins:  # added last, so it runs first: preflights and 401s get its headers
        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins),
                           allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "Content-Type"])

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, str(exc))

    @app.exception_handler(GeolulcError)
    async def geolulc_error(request: Request, exc: GeolulcError) -> JSONResponse:
        return _error(400, str(exc).replace("`", ""))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(400, f"{where}: {first.get('msg', 'invalid request')}".strip(": "))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        """The map page: draw or upload an area, pick a month, watch it map, look, download."""
        return FileResponse(STATIC / "index.html")

    @app.get("/models")
    def models() -> list[dict[str, Any]]:
        """The bundled models: name, kind, bands, classes."""
        from geolulc.api import list_models

        return [{k: v for k, v in m.to_dict().items() if k != "metrics"} for m in list_models()]

    @app.post("/classify")
    async def classify(files: list[UploadFile], model: str = "auto") -> list[dict[str, Any]]:
        """Class probabilities of patches: 13-band GeoTIFFs, or RGB PNG/JPEG for an RGB model."""
        if model != "auto" and model not in bundled_models():
            raise ApiError(400, f"unknown model {model!r} (bundled: {', '.join(bundled_models())})")
        if not files or len(files) > config.max_patches:
            raise ApiError(400, f"post 1 to {config.max_patches} patches as `files`")
        with tempfile.TemporaryDirectory(prefix="geolulc-serve-") as scratch:
            paths = []
            for i, upload in enumerate(files):
                data = await upload.read(config.max_upload_bytes + 1)
                if len(data) > config.max_upload_bytes:
                    raise ApiError(413, f"patch {i} is larger than {config.max_upload_bytes:,} bytes")
                suffix = Path(upload.filename or "").suffix.lower()
                if suffix not in (".tif", ".tiff", ".png", ".jpg", ".jpeg"):
                    raise ApiError(400, f"patch {i}: send a GeoTIFF (.tif) or an RGB PNG/JPEG")
                path = Path(scratch) / f"patch{i}{suffix}"
                path.write_bytes(data)
                _check_patch_header(path, i)
                paths.append(path)
            from starlette.concurrency import run_in_threadpool

            rows = await run_in_threadpool(patch_models.classify, model, paths,
                                           [f.filename or f"patch {i}" for i, f in enumerate(files)])
        return rows

    @app.post("/maps", status_code=202)
    def submit(body: dict[str, Any]) -> dict[str, Any]:
        """Start a map job: `aoi` (GeoJSON), `date`, optional `model`, `composite`, `stride`."""
        spec = _checked_spec(body, config, bundled_models())
        job_id = runner.submit(spec)
        if job_id is None:
            raise ApiError(503, f"{config.max_queue} jobs are waiting already: try again later")
        return _status(job_id)

    @app.get("/maps/{job_id}")
    def status(job_id: str) -> dict[str, Any]:
        """State, progress (cells done/total), error, files and bounds of a job."""
        return _status(job_id)

    @app.delete("/maps/{job_id}")
    def cancel(job_id: str) -> dict[str, Any]:
        """Cancel a queued or running job and remove its files; a finished job stays as it is."""
        record = _record(job_id)
        if record["state"] in ("queued", "running"):
            runner.cancel(job_id)
        return _status(job_id)

    @app.get("/maps/{job_id}/files/{name}")
    def file(job_id: str, name: str) -> FileResponse:
        """One file of a finished job (COGs, stats, quicklook, STAC Item)."""
        return FileResponse(_job_file(job_id, name))

    @app.get("/maps/{job_id}/tiles/{layer}/{z}/{x}/{y}.png")
    def tile(job_id: str, layer: str, z: int, x: int, y: int) -> Response:
        """A 256-pixel Web Mercator tile of the land cover or of the scene's true colour."""
        if layer not in LAYERS:
            raise ApiError(404, f"no layer {layer!r}: {', '.join(LAYERS)}")
        if not (0 <= z <= 30 and 0 <= x < 2**z and 0 <= y < 2**z):
            raise ApiError(404, f"no tile {z}/{x}/{y} in Web Mercator")
        return Response(_render_tile(job_id, layer, z, x, y), media_type="image/png")

    def _record(job_id: str) -> dict[str, Any]:
        record = store.get(job_id)
        if record is None:
            raise ApiError(404, "no such job")
        return record

    def _status(job_id: str) -> dict[str, Any]:
        record = _record(job_id)
        out = runner.folder(job_id) / "out"
        files = sorted(p.name for p in out.iterdir() if p.is_file() and not p.name.startswith(".")
                       ) if record["state"] == "done" and out.is_dir() else []
        item_path = out / f"{MAP_NAME}.json"
        bbox, stats = None, None
        if record["state"] == "done" and item_path.is_file():
            item = json.loads(item_path.read_text())
            bbox = item["bbox"]
            band = item["assets"]["landcover"]["raster:bands"][0]
            colours = {c["value"]: f"#{c['color_hint']}" for c in band["classification:classes"]
                       if "color_hint" in c}
            stats = [{**row, "color": colours.get(row["code"])} for row in
                     json.loads((out / f"{MAP_NAME}_stats.json").read_text())["classes"]]
        return {"id": job_id, "state": record["state"], "error": record["error"],
                "progress": {"done": record["done"], "total": record["total"]},
                "request": record["spec"], "files": files, "bbox": bbox,
                "classes": stats}

    def _job_file(job_id: str, name: str) -> Path:
        record = _record(job_id)
        if record["state"] != "done":
            raise ApiError(409, f"the job is {record['state']}, not done")
        out = (runner.folder(job_id) / "out").resolve()
        path = out / name
        if not _FILE_NAME.match(name) or path.is_symlink() or path.resolve().parent != out \
                or not path.is_file():
            raise ApiError(404, "no such file")
        return path

    def _render_tile(job_id: str, layer: str, z: int, x: int, y: int) -> bytes:
        # rio_tiler is imported with the module: its first import by concurrent tile requests
        # (threads) races ("cannot import name … from partially initialized module").
        landcover = _job_file(job_id, f"{MAP_NAME}_landcover.tif")
        if layer == "landcover":
            try:
                with Reader(str(landcover)) as src:
                    image = src.tile(x, y, z, tilesize=256, indexes=1)
                    colormap = src.dataset.colormap(1)
            except TileOutsideBounds:
                return _empty_tile()
            return image.render(img_format="PNG", colormap=colormap)
        shown = _true_colour(job_id, landcover.with_name(f"{MAP_NAME}.json"))
        try:
            with gdal_env():
                bands = [_read_band(href, lambda src: src.tile(x, y, z, tilesize=256, indexes=1,
                                                               nodata=0))
                         for href in shown["bands"]]
        except TileOutsideBounds:
            return _empty_tile()
        image = ImageData.create_from_list(bands)
        image.rescale(in_range=[(lo, hi) for lo, hi in shown["ranges"]])
        return image.render(img_format="PNG")

    def _true_colour(job_id: str, item_path: Path) -> dict[str, Any]:
        """The job's true-colour bands and stretch: computed by the first tile, then kept."""
        folder = runner.folder(job_id)
        path = folder / TRUE_COLOUR_FILE
        if not path.is_file():
            with locks_lock:
                lock = true_colour_locks.setdefault(job_id, threading.Lock())
            with lock:
                failed = true_colour_failed.get(job_id)
                if failed and time.monotonic() - failed[0] < TRUE_COLOUR_RETRY_S:
                    raise failed[1]
                if not path.is_file():
                    try:
                        item = json.loads(item_path.read_text())
                        scene = _job_scene(folder / "aoi.geojson",
                                           _record(job_id)["spec"]["date"],
                                           item["properties"].get("geolulc:scenes") or [])
                        found = _true_colour_of(scene, tuple(item["bbox"]))
                    except ApiError as exc:
                        true_colour_failed[job_id] = (time.monotonic(), exc)
                        raise
                    write_text_atomic(path, json.dumps(found))
        shown: dict[str, Any] = json.loads(path.read_text())
        return shown

    def _job_scene(aoi: Path, date: str, scene_ids: list[str]) -> Scene:
        """The map's first scene, found as the job found it.

        The same search of the same catalogue, so its hrefs (URLs, or local paths relative to
        their item or absolute) are resolved as the job resolved them. The map's Item names its
        scenes by id: a scene of local files has no link there.
        """
        from geolulc.io.aoi import load_aoi
        from geolulc.io.catalog import search_scenes

        if not scene_ids:
            raise ApiError(404, "the map names no source scene to show in true colour")
        try:
            found = search_scenes(load_aoi(aoi, math.inf).geometry, date, runner.catalog,
                                  runner.collection)
        except GeolulcError as exc:  # the catalogue's failure, not the request's
            raise ApiError(502, str(exc).replace("`", "")) from None
        scene = next((s for s in found if s.id == scene_ids[0]), None)
        if scene is None:
            raise ApiError(502, f"scene {scene_ids[0]} of the map is no longer in {runner.catalog}")
        return scene

    return app


def _true_colour_of(scene: Scene, bbox: tuple[float, float, float, float]) -> dict[str, Any]:
    """The red, green and blue of `scene` and their stretch.

    The stretch is each band's 2nd–98th percentile over the map's `bbox`, from a decimated read.
    """
    missing = [b for b in TRUE_COLOUR_BANDS if b not in scene.bands]
    if missing:
        raise ApiError(404, f"scene {scene.id} has no {', '.join(missing)} to show in true colour")
    ranges = []
    with gdal_env():
        for band in TRUE_COLOUR_BANDS:
            image = _read_band(scene.bands[band], lambda src: src.part(
                bbox, max_size=STRETCH_READ_SIZE, indexes=1, nodata=0))
            valid = image.array.compressed()
            if not valid.size:
                raise ApiError(404, f"scene {scene.id} has no {band} pixels in the map's area")
            low, high = (float(v) for v in np.percentile(valid, STRETCH_PERCENTILES))
            ranges.append([low, max(high, low + 1)])
    return {"scene": scene.id, "bands": [scene.bands[b] for b in TRUE_COLOUR_BANDS],
            "ranges": ranges}


def _read_band(href: str, read: Callable[[Reader], ImageData]) -> ImageData:
    """`read` of one band file; a file that cannot be read is a one-line 502."""
    try:
        with Reader(href) as src:
            return read(src)
    except TileOutsideBounds:
        raise
    except (RasterioError, RioTilerError) as exc:
        raise ApiError(502, f"cannot read the scene's band {href}: {_first_line(exc)}") from None


def _empty_tile() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGBA", (256, 256), (0, 0, 0, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def _checked_spec(body: dict[str, Any], config: ServeConfig, known: list[str]) -> JobSpec:
    """The job a request asks for, every field checked before anything is written."""
    from geolulc.io.aoi import load_aoi
    from geolulc.io.catalog import parse_date_range
    from geolulc.mapping.request import MapOptions

    unknown = sorted(set(body) - {"aoi", "date", "model", "composite", "stride", "chunk_rows"})
    if unknown:
        raise ApiError(400, f"unknown field(s): {', '.join(unknown)}")
    if not isinstance(body.get("aoi"), dict):
        raise ApiError(400, "aoi must be a GeoJSON geometry, Feature or FeatureCollection")
    if not isinstance(body.get("date"), str):
        raise ApiError(400, "date is needed: a day, month, year or range (2023-06)")
    parse_date_range(body["date"])
    try:
        load_aoi(body["aoi"], config.max_area_km2)  # polygons, valid, on the globe, small enough
    except AOIError as exc:  # the limit is this server's, not an argument the client can raise
        raise ApiError(400, str(exc).split(" (raise it")[0].replace("`", "")) from None
    model = str(body.get("model", "auto"))
    if model != "auto" and model not in known:
        raise ApiError(400, f"unknown model {model!r} (bundled: {', '.join(known)})")
    composite = str(body.get("composite", "auto"))
    stride, chunk_rows = body.get("stride", 64), body.get("chunk_rows")
    MapOptions(composite=composite, stride=stride, chunk_rows=chunk_rows)  # type: ignore[arg-type]
    if chunk_rows is not None and chunk_rows % 2:
        raise ApiError(400, "chunk_rows must be even (a per-pixel model halves the resolution)")
    return JobSpec(body["aoi"], body["date"], model, composite, stride, chunk_rows)


#: Largest patch side and band count /classify decodes (a bundled patch is 64², 13 bands).
MAX_PATCH_SIDE, MAX_PATCH_BANDS = 1024, 16


def _check_patch_header(path: Path, index: int) -> None:
    """Refuse, from its header alone, a patch whose pixels would not fit in memory.

    A few compressed megabytes can declare gigabytes of pixels.
    """
    import warnings

    import rasterio
    from PIL import Image, UnidentifiedImageError
    from rasterio.errors import NotGeoreferencedWarning, RasterioError

    try:
        if path.suffix in (".png", ".jpg", ".jpeg"):
            with Image.open(path) as img:  # reads the header only
                (width, height), count = img.size, len(img.getbands())
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                with rasterio.open(path) as src:
                    width, height, count = src.width, src.height, src.count
    except (OSError, UnidentifiedImageError, RasterioError, Image.DecompressionBombError) as exc:
        raise ApiError(400, f"patch {index} is not a readable image: "
                            f"{str(exc).splitlines()[0][:160]}") from None
    if max(width, height) > MAX_PATCH_SIDE or count > MAX_PATCH_BANDS:
        raise ApiError(413, f"patch {index} is {width}×{height} pixels × {count} bands; at most "
                            f"{MAX_PATCH_SIDE}² × {MAX_PATCH_BANDS} are decoded")
