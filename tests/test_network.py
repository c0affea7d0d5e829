"""STAC requests never hang and fail in one line: loopback servers that hang, fail, or lie."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from shapely.geometry import box

import geolulc.io.catalog as search
from geolulc.errors import GeolulcError

AOI = box(-1.7, 48.1, -1.6, 48.2)


@pytest.fixture
def fast(monkeypatch):
    monkeypatch.setattr(search, "READ_TIMEOUT_S", 1.0)
    monkeypatch.setattr(search, "CONNECT_TIMEOUT_S", 1.0)
    monkeypatch.setattr(search, "RETRIES", 2)


def serve(answers):
    """An HTTP server on loopback answering each request with the next (status, body); the
    last answer repeats. Returns its URL and the list of requests it saw."""
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            seen.append((self.command, self.path, body))
            status, body = answers[min(len(seen) - 1, len(answers) - 1)]
            if callable(body):
                body = body(self.server.server_address[1])
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _answer

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}", seen


def landing(port: int) -> str:
    return json.dumps({
        "type": "Catalog", "id": "test", "description": "loopback", "stac_version": "1.0.0",
        "conformsTo": ["https://api.stacspec.org/v1.0.0/core",
                       "https://api.stacspec.org/v1.0.0/item-search"],
        "links": [{"rel": "self", "href": f"http://127.0.0.1:{port}/"},
                  {"rel": "search", "href": f"http://127.0.0.1:{port}/search",
                   "type": "application/geo+json", "method": "POST"}]})


EMPTY = json.dumps({"type": "FeatureCollection", "features": [], "links": []})


def test_a_server_that_never_answers_times_out(fast):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)  # accepts connections, never reads or answers
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    t0 = time.perf_counter()
    with pytest.raises(GeolulcError, match=f"{url} did not answer within 1 s"):
        search.search_scenes(AOI, "2023-06", url)
    assert time.perf_counter() - t0 < 15
    sock.close()


def test_server_errors_are_retried(fast):
    server, url, seen = serve([(500, "oops"), (503, "busy"), (200, landing), (200, EMPTY)])
    assert search.search_scenes(AOI, "2023-06", url) == []
    assert [m for m, _, _ in seen[:4]] == ["GET", "GET", "GET", "POST"]
    server.shutdown()


def test_persistent_server_errors_fail_in_one_line(fast):
    server, url, seen = serve([(500, "oops")])
    with pytest.raises(GeolulcError, match=f"{url} kept failing"):
        search.search_scenes(AOI, "2023-06", url)
    assert len(seen) == 3  # the request and two retries
    server.shutdown()


@pytest.mark.parametrize("body", ["<html><body>Welcome to nginx</body></html>",
                                  '{"type": "Catalog", "id": "x", "links": [{"rel": "se'])
def test_html_or_truncated_json_is_named(fast, body):
    server, url, _ = serve([(200, body)])
    with pytest.raises(GeolulcError, match=f"{url} did not answer with STAC JSON"):
        search.search_scenes(AOI, "2023-06", url)
    server.shutdown()


def test_gdal_reads_have_timeouts():
    from geolulc.io.gdal import GDAL_OPTIONS
    assert GDAL_OPTIONS["GDAL_HTTP_TIMEOUT"] > 0 and GDAL_OPTIONS["GDAL_HTTP_CONNECTTIMEOUT"] > 0
    assert GDAL_OPTIONS["GDAL_HTTP_MAX_RETRY"] >= 1


def test_an_aoi_across_the_antimeridian_is_searched_in_two_parts(fast, tmp_path):
    """Fiji, 179.9°E … 179.9°W: one 22 km square, not a box around the globe; its grid is in the
    UTM zone of its centre."""
    from geolulc.core.grid import choose_crs, project_geometry
    from geolulc.io.aoi import load_aoi

    path = tmp_path / "fiji.geojson"
    path.write_text(json.dumps({"type": "Feature", "properties": {}, "geometry": {
        "type": "Polygon", "coordinates": [[[179.9, -16.9], [-179.9, -16.9], [-179.9, -16.7],
                                            [179.9, -16.7], [179.9, -16.9]]]}}))
    aoi = load_aoi(path)
    assert 400 < aoi.area_km2 < 550
    crs = choose_crs(aoi.geometry, None)
    assert crs.to_epsg() in (32701, 32760)
    minx, _, maxx, _ = project_geometry(aoi.geometry, crs).bounds
    assert maxx - minx < 25_000
    server, url, seen = serve([(200, landing), (200, EMPTY)])
    search.search_scenes(aoi.geometry, "2023-06", url)
    body = json.loads(next(b for m, _, b in seen if m == "POST"))
    parts = body["intersects"]["coordinates"]
    assert body["intersects"]["type"] == "MultiPolygon" and len(parts) == 2
    lons = [x for part in parts for ring in part for x, _ in ring]
    assert min(lons) >= -180 and max(lons) <= 180
    assert sorted({round(abs(x), 1) for x in lons}) == [179.9, 180.0]
    server.shutdown()


def silent_server() -> tuple[socket.socket, str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)  # accepts connections, never reads or answers
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_a_search_has_one_total_deadline_and_says_it_is_waiting(monkeypatch, caplog):
    """Long read timeouts and retries no longer multiply into minutes of silence: one
    deadline for the whole search, and a line while it waits."""
    monkeypatch.setattr(search, "READ_TIMEOUT_S", 60.0)
    monkeypatch.setattr(search, "WAIT_NOTICE_S", 0.5)
    monkeypatch.setenv("GEOLULC_SEARCH_DEADLINE", "2")
    sock, url = silent_server()
    t0 = time.perf_counter()
    with pytest.raises(GeolulcError, match=f"{url} gave no complete answer within 2 s"):
        search.search_scenes(AOI, "2023-06", url)
    assert time.perf_counter() - t0 < 4
    assert f"waiting for STAC API {url}" in caplog.text
    sock.close()


def test_a_cog_server_that_never_answers_is_abandoned(monkeypatch, tmp_path):
    """The stall limit of GDAL's transfers (15 s in production, 1 s here) ends a read from a
    server that accepts connections and never answers."""
    from geolulc.io import gdal

    monkeypatch.setitem(gdal.GDAL_OPTIONS, "GDAL_HTTP_LOW_SPEED_TIME", 1)
    monkeypatch.setitem(gdal.GDAL_OPTIONS, "GDAL_HTTP_MAX_RETRY", 1)
    sock, url = silent_server()
    t0 = time.perf_counter()
    with gdal.gdal_env(), pytest.raises(GeolulcError, match="cannot open band B04 of scene s"):
        gdal.open_band(f"{url}/B04.tif", "s", "B04")
    assert time.perf_counter() - t0 < 10
    sock.close()


def test_a_huge_aoi_is_searched_as_its_hull(fast):
    """120 k polygons made the STAC API answer 'HTTP 400 length limit exceeded' (issue 18)."""
    from shapely.geometry import MultiPolygon

    tiles = MultiPolygon([box(-1.7 + i * 0.001, 48.1, -1.6995 + i * 0.001, 48.1005)
                          for i in range(1000)])  # 5,000 vertices
    server, url, seen = serve([(200, landing), (200, EMPTY)])
    assert search.search_scenes(tiles, "2023-06", url) == []
    body = json.loads([b for m, _, b in seen if m == "POST"][0])
    ring = body["intersects"]["coordinates"][0]
    assert body["intersects"]["type"] == "Polygon" and len(ring) < 20
    xs = [x for x, _ in ring]
    assert min(xs) == pytest.approx(-1.7) and max(xs) == pytest.approx(-1.7 + 0.999 + 0.0005)
    server.shutdown()
