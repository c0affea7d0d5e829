"""`geolulc serve` started on loopback and used with a real HTTP client: patches classified
with the fields of `geolulc classify --json`, map jobs over the loopback STAC API and nginx COGs
polled to completion and equal to `geolulc map`, their true colour stretched per scene, a scene
of local files shown as the job read it, a server killed mid-job resumes it, bad requests and
failed tiles get one line of JSON."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import rasterio
from PIL import Image

from conftest import DESERT_AOI, ES_ITEM_ID, ROOT, _free_port, _tool, _wait_http, run_cli, start_server

AOI = DESERT_AOI["features"][0]["geometry"]
#: The scene's bands written at half their brightness for the scene of local files.
DIMMED = ("B02.tif", "B03.tif", "B04.tif")


@pytest.fixture(scope="module")
def cli_map(stac_api, desert_aoi, tmp_path_factory) -> np.ndarray:
    """The land cover `geolulc map` makes of the desert AOI on 2020-02-19."""
    out = tmp_path_factory.mktemp("cli")
    result = run_cli("map", "--aoi", str(desert_aoi), "--date", "2020-02-19", "--catalog",
                     stac_api, "--out", str(out), "--name", "m", "--quiet")
    assert result.returncode == 0, result.stderr
    with rasterio.open(out / "m_landcover.tif") as src:
        return src.read(1)


@pytest.fixture(scope="module")
def desert_job(server) -> tuple[str, dict]:
    """A finished map job of the desert AOI on 2020-02-19 (catalogue scene, COGs over HTTP)."""
    answer = httpx.post(f"{server}/maps", json={"aoi": AOI, "date": "2020-02-19"})
    assert answer.status_code == 202, answer.text
    job = answer.json()["id"]
    return job, wait_done(server, job)


@pytest.fixture(scope="module")
def local_jobs(data_dir, tmp_path_factory):
    """Finished map jobs of two scenes of local GeoTIFFs, found in their own catalogue: the
    desert scene with red, green and blue at half brightness, its item beside them.

    `relative` (2020-02-19): the item's own link is its file, red and green relative hrefs, blue
    an absolute path; `absolute` (2020-02-20): the catalogue's link only, every href absolute.
    The other bands are absolute paths to the real files. Yields the server's URL, the jobs'
    ids, the scene's folder and the server's folder.
    """
    real = data_dir / "earth-search" / "sentinel-2-l2a" / ES_ITEM_ID
    folder = tmp_path_factory.mktemp("local-scene")
    for name in DIMMED:
        with rasterio.open(real / name) as src:
            profile, pixels = src.profile, src.read(1)
        with rasterio.open(folder / name, "w", **profile) as dst:
            dst.write(pixels // 2, 1)
            dst.build_overviews([2, 4])
    relative = json.loads((real / f"{ES_ITEM_ID}.json").read_text())
    absolute = json.loads(json.dumps(relative))
    for item in (relative, absolute):
        for asset in item["assets"].values():
            name = asset["href"].rsplit("/", 1)[-1]
            asset["href"] = str(folder / name) if name in DIMMED else str(real / name)
    relative["assets"]["red"]["href"], relative["assets"]["green"]["href"] = "B04.tif", "./B03.tif"
    relative["links"] = [{"rel": "self", "href": (folder / "item.json").as_uri()}]
    (folder / "item.json").write_text(json.dumps(relative))
    absolute["id"] = ES_ITEM_ID.replace("20200219", "20200220")
    absolute["properties"]["datetime"] = "2020-02-20T11:34:25Z"
    absolute["links"] = []
    (folder / "items.json").write_text(json.dumps({"type": "FeatureCollection",
                                                   "features": [relative, absolute]}))
    port = _free_port()
    catalog = f"http://127.0.0.1:{port}"
    stac = subprocess.Popen([_tool("rustac"), "serve", "--create-collections", "--addr",
                             f"127.0.0.1:{port}", str(folder / "items.json")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    data = folder / "serve"
    try:
        _wait_http(f"{catalog}/collections/sentinel-2-l2a", stac)
        proc, url = start_server(data, catalog)
        try:
            jobs = {kind: httpx.post(f"{url}/maps", json={"aoi": AOI, "date": date}).json()["id"]
                    for kind, date in (("relative", "2020-02-19"), ("absolute", "2020-02-20"))}
            for job in jobs.values():
                status = wait_done(url, job)
                assert status["state"] == "done", status
            yield url, jobs, folder, data
        finally:
            proc.terminate()
            proc.wait(10)
    finally:
        stac.terminate()
        stac.wait(10)


def centre_tile(bbox: list[float]) -> tuple[int, int, int]:
    """z, x, y of the zoom-14 tile at the middle of `bbox` (a tile inside the AOI)."""
    import morecantile

    west, south, east, north = bbox
    x, y, z = morecantile.tms.get("WebMercatorQuad").tile((west + east) / 2, (south + north) / 2,
                                                          14)
    return z, x, y


def tile_pixels(url: str, job: str, layer: str, zxy: tuple[int, int, int]) -> np.ndarray:
    """The RGBA pixels of one tile, which must be a PNG."""
    from io import BytesIO

    png = httpx.get(f"{url}/maps/{job}/tiles/{layer}/{zxy[0]}/{zxy[1]}/{zxy[2]}.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png", png.text
    image = np.asarray(Image.open(BytesIO(png.content)).convert("RGBA"))
    assert image.shape == (256, 256, 4) and (image[..., 3] > 0).mean() > 0.5, layer
    return image


def assert_one_line_error(answer: httpx.Response, status: int, *words: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json", answer.text
    error = answer.json()["error"]
    assert "\n" not in error and all(w in error for w in words), error


def wait_done(url: str, job: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = httpx.get(f"{url}/maps/{job}").json()
        if status["state"] in ("done", "failed", "cancelled"):
            return status
        time.sleep(0.2)
    raise AssertionError(f"job {job} not finished in {timeout} s")


def test_patches_are_classified_as_the_api_classifies_them(server, data_dir):
    import geolulc

    tifs = sorted((data_dir / "eurosat" / "ms" / "River").glob("*.tif"))[:2]
    jpg = sorted((data_dir / "eurosat" / "rgb" / "Forest").glob("*.jpg"))[0]
    answer = httpx.post(f"{server}/classify", files=[("files", (p.name, p.read_bytes(),
                                                                 "image/tiff")) for p in tifs])
    assert answer.status_code == 200, answer.text
    expected = geolulc.classify_patches(tifs, model="eurosat-ms", precision="auto")
    printed = run_cli("classify", "--json", *map(str, tifs))
    assert printed.returncode == 0, printed.stderr
    for got, want, cli in zip(answer.json(), expected, json.loads(printed.stdout), strict=True):
        assert got["model"] == cli["model"] == "eurosat-ms" and got["class"] == want.label
        assert list(got) == list(cli)  # the same fields, in the same order, as `classify --json`
        assert got["patch"] == Path(cli["patch"]).name  # the upload's name, the path given
        assert got["class"] == cli["class"] and got["decided_by"] == cli["decided_by"]
        for name, p in want.probabilities.items():
            assert got["probabilities"][name] == pytest.approx(p, abs=2e-4)
    rgb = httpx.post(f"{server}/classify", params={"model": "eurosat-rgb"},
                     files=[("files", (jpg.name, jpg.read_bytes(), "image/jpeg"))])
    assert rgb.status_code == 200 and rgb.json()[0]["class"] == \
        geolulc.classify_patches([jpg], model="eurosat-rgb")[0].label


def test_fifty_concurrent_requests_are_all_answered(server, data_dir):
    patches = sorted((data_dir / "eurosat" / "ms").glob("*/*.tif"))[:50]
    t0 = time.monotonic()

    def ask(path: Path) -> str:
        answer = httpx.post(f"{server}/classify", timeout=120,
                            files=[("files", (path.name, path.read_bytes(), "image/tiff"))])
        assert answer.status_code == 200, answer.text
        return answer.json()[0]["class"]

    with ThreadPoolExecutor(50) as pool:
        classes = list(pool.map(ask, patches))
    import geolulc

    assert classes == [p.label for p in geolulc.classify_patches(patches, model="eurosat-ms")]
    assert time.monotonic() - t0 < 120


def test_a_map_job_makes_the_map_geolulc_map_makes(server, cli_map, desert_job):
    job, status = desert_job
    assert len(job) >= 24  # unguessable
    assert status["state"] == "done", status
    assert status["request"]["aoi"] == AOI and status["request"]["date"] == "2020-02-19"
    assert status["progress"]["done"] == status["progress"]["total"] > 0
    assert {"map_landcover.tif", "map.json", "map_quicklook.png"} <= set(status["files"])
    cog = httpx.get(f"{server}/maps/{job}/files/map_landcover.tif")
    with rasterio.MemoryFile(cog.content) as mem, mem.open() as src:
        np.testing.assert_array_equal(src.read(1), cli_map)
    for layer in ("landcover", "truecolor"):
        tile_pixels(server, job, layer, centre_tile(status["bbox"]))


def test_bright_desert_is_stretched_not_clipped(server, desert_job):
    """A fixed 0–3000 range made 59 % of this desert's red full brightness."""
    job, status = desert_job
    image = tile_pixels(server, job, "truecolor", centre_tile(status["bbox"]))
    shown = image[image[..., 3] > 0][:, :3]
    for band in range(3):
        assert (shown[:, band] == 255).mean() < 0.1 and (shown[:, band] == 0).mean() < 0.1, band
        low, high = np.percentile(shown[:, band], [10, 90])
        assert high - low > 60, band  # the stretch spreads the scene's brightness


@pytest.mark.parametrize("hrefs", ["relative", "absolute"])
def test_true_colour_of_a_scene_of_local_files(server, desert_job, local_jobs, hrefs,
                                               tmp_path_factory):
    """Relative and absolute local hrefs are read as the map job read them, and the scene at
    half the brightness gets its own stretch: its tiles look like the bright scene's."""
    url, jobs, scene, data = local_jobs
    status = httpx.get(f"{url}/maps/{jobs[hrefs]}").json()
    assert status["bbox"] == desert_job[1]["bbox"]
    zxy = centre_tile(status["bbox"])
    dim = tile_pixels(url, jobs[hrefs], "truecolor", zxy)
    bright = tile_pixels(server, desert_job[0], "truecolor", zxy)
    both = (dim[..., 3] > 0) & (bright[..., 3] > 0)
    assert both.mean() > 0.5
    # a stretch shared by the scenes would show this one at half the brightness
    assert np.abs(dim[both][:, :3].astype(int) - bright[both][:, :3]).mean() < 4
    stretch = json.loads((data / "jobs" / jobs[hrefs] / "truecolor.json").read_text())
    assert [Path(b).parent for b in stretch["bands"]] == [scene] * 3  # the dimmed copies
    bright_job = f"serve*/jobs/{desert_job[0]}/truecolor.json"  # in the `server` fixture's folder
    bright_stretch = json.loads(next(tmp_path_factory.getbasetemp().glob(bright_job)).read_text())
    for (low, high), (bright_low, bright_high) in zip(stretch["ranges"], bright_stretch["ranges"],
                                                      strict=True):
        assert 0 < low < high
        assert (low, high) == pytest.approx((bright_low / 2, bright_high / 2), rel=0.02, abs=1)


def test_a_server_killed_mid_job_resumes_it(stac_api, cli_map, tmp_path):
    data = tmp_path / "serve"
    proc, url = start_server(data, stac_api)
    try:
        job = httpx.post(f"{url}/maps", json={"aoi": AOI, "date": "2020-02-19",
                                              "chunk_rows": 8}).json()["id"]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            progress = httpx.get(f"{url}/maps/{job}").json()["progress"]
            if 0 < progress["done"] < progress["total"] // 2:
                break
            time.sleep(0.05)
        else:
            pytest.fail("no progress seen")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    time.sleep(1)  # the map process dies with the server
    cached = list((data / "jobs" / job / "out").glob(".geolulc-cache/*/chunk-*.npz"))
    assert cached  # finished chunks kept: the restarted job resumes from them
    proc, url = start_server(data, stac_api)
    try:
        status = wait_done(url, job)
        assert status["state"] == "done", status
        cog = httpx.get(f"{url}/maps/{job}/files/map_landcover.tif")
        with rasterio.MemoryFile(cog.content) as mem, mem.open() as src:
            np.testing.assert_array_equal(src.read(1), cli_map)
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize("body, status, message", [
    ({"aoi": {"type": "Polygon", "coordinates": "x"}, "date": "2020-02"}, 400, "GeoJSON"),
    ({"aoi": {"type": "Polygon", "coordinates": [[[-12, 20], [-2, 20], [-2, 30], [-12, 30],
                                                  [-12, 20]]]}, "date": "2020-02"}, 400, "km²"),
    ({"aoi": AOI, "date": "2020-02", "model": "../../etc/passwd"}, 400, "unknown model"),
    ({"aoi": AOI, "date": "2020-13"}, 400, "cannot read date"),
    ({"aoi": AOI, "date": "2020-02", "stride": 0}, 400, "stride"),
    ({"aoi": AOI, "date": "2020-02", "out": "/tmp"}, 400, "unknown field"),
])
def test_bad_map_requests_get_one_line_and_write_nothing(server, body, status, message):
    jobs_before = httpx.get(f"{server}/models")  # the server is up
    assert jobs_before.status_code == 200
    answer = httpx.post(f"{server}/maps", json=body)
    assert answer.status_code == status and message in answer.json()["error"], answer.text
    assert "\n" not in answer.json()["error"]


def test_tile_errors_are_one_line_json(local_jobs):
    url, jobs, scene, data = local_jobs
    job = jobs["relative"]
    tiles = f"{url}/maps/{job}/tiles"
    z, x, y = centre_tile(httpx.get(f"{url}/maps/{job}").json()["bbox"])
    assert_one_line_error(httpx.get(f"{tiles}/ndvi/{z}/{x}/{y}.png"), 404, "no layer")
    assert_one_line_error(httpx.get(f"{tiles}/truecolor/40/{x}/{y}.png"), 404, "no tile")
    assert_one_line_error(httpx.get(f"{tiles}/truecolor/{z}/{x}/y.png"), 400)
    red = scene / "B04.tif"
    red.rename(scene / "moved.tif")  # a scene file gone since the job read it
    try:
        assert_one_line_error(httpx.get(f"{tiles}/truecolor/{z}/{x}/{y}.png"), 502, "B04.tif")
    finally:
        (scene / "moved.tif").rename(red)
    item = data / "jobs" / job / "out" / "map.json"
    text = item.read_text()
    item.write_text(text[:100])  # a broken file of the job: an error no route expects
    try:
        assert_one_line_error(httpx.get(f"{url}/maps/{job}"), 500, "internal error",
                              "JSONDecodeError")
    finally:
        item.write_text(text)
    log = (scene / "serve-server.log").read_text()
    assert "Traceback" in log and "JSONDecodeError" in log  # the details are in the log
    tile_pixels(url, job, "truecolor", (z, x, y))


def test_files_stay_inside_their_job_and_uploads_are_bounded(server, data_dir, desert_job):
    job = desert_job[0]
    for name in ("..%2F..%2Fjobs.sqlite", "%2Fetc%2Fpasswd", ".hidden", "map.json%00.tif"):
        answer = httpx.get(f"{server}/maps/{job}/files/{name}")
        assert answer.status_code == 404, (name, answer.text)
    assert httpx.get(f"{server}/maps/{'x' * 24}").status_code == 404
    big = b"\0" * (5 * 2**20)
    answer = httpx.post(f"{server}/classify", files=[("files", ("big.tif", big, "image/tiff"))])
    assert answer.status_code == 413 and "larger than" in answer.json()["error"]
    answer = httpx.post(f"{server}/classify", params={"model": "nope"},
                        files=[("files", ("a.tif", b"x", "image/tiff"))])
    assert answer.status_code == 400 and "unknown model" in answer.json()["error"]
    answer = httpx.post(f"{server}/classify", files=[("files", ("a.tif", b"not a tiff", "x"))])
    assert answer.status_code == 400 and "\n" not in answer.json()["error"], answer.text


def test_a_token_guards_the_server_and_is_needed_off_loopback(stac_api, tmp_path):
    refused = subprocess.run([sys.executable, "-m", "geolulc", "serve", "--host", "0.0.0.0",
                              "--data-dir", str(tmp_path / "x"), "--catalog", stac_api],
                             capture_output=True, text=True, cwd=ROOT, timeout=60,
                             env={**os.environ, "GEOLULC_TOKEN": ""})
    assert refused.returncode == 1 and "needs --token" in refused.stderr
    proc, url = start_server(tmp_path / "t", stac_api, "--token", "s3cret")
    try:
        assert httpx.get(f"{url}/models").status_code == 401
        assert httpx.get(f"{url}/maps/{'x' * 24}").status_code == 401
        page = httpx.get(f"{url}/")  # the page holds no data: a browser opens it without token
        assert page.status_code == 200 and "<html" in page.text.lower()
        chunked = httpx.post(f"{url}/maps", content=iter([b"{}"]),
                             headers={"Authorization": "Bearer s3cret"})
        assert chunked.status_code == 411
        ok = httpx.get(f"{url}/models", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and {m["name"] for m in ok.json()} >= {"dynamic-world"}
        assert "access-control-allow-origin" not in ok.headers  # no CORS unless configured
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_review_s_server_fixes_hold(tmp_path, data_dir):
    """In-process: a restarted server with more unfinished jobs than its queue starts; a CORS
    preflight passes a token-guarded server with CORS headers; a tiny upload that declares a huge
    image is refused from its header."""
    import threading

    from fastapi.testclient import TestClient

    from geolulc.serve.app import ServeConfig, create_app
    from geolulc.serve.jobs import JobSpec, JobStore

    data = tmp_path / "serve"
    data.mkdir()
    store = JobStore(data / "jobs.sqlite")
    for _ in range(3):
        store.add(JobSpec(AOI, "2020-02-19", "auto", "auto", 64))
    config = ServeConfig(data_dir=data, catalog="http://127.0.0.1:9", max_queue=2,
                         token="s3cret", cors_origins=("http://example.org",))
    started = threading.Thread(target=create_app, args=(config,), daemon=True)
    started.start()
    started.join(30)
    assert not started.is_alive()  # before: blocked forever re-queueing 3 jobs into 2 places
    client = TestClient(create_app(ServeConfig(data_dir=tmp_path / "s2", catalog="http://x",
                                               token="s3cret",
                                               cors_origins=("http://example.org",))))
    preflight = client.options("/maps", headers={
        "Origin": "http://example.org", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "http://example.org"
    denied = client.get("/models", headers={"Origin": "http://example.org"})
    assert denied.status_code == 401 and "access-control-allow-origin" in denied.headers
    import rasterio

    bomb = tmp_path / "bomb.tif"
    with rasterio.open(bomb, "w", driver="GTiff", width=20000, height=20000, count=13,
                       dtype="uint16", compress="deflate", tiled=True, sparse_ok=True) as dst:
        dst.write(np.zeros((13, 16, 16), dtype=np.uint16),
                  window=rasterio.windows.Window(0, 0, 16, 16))
    assert bomb.stat().st_size < 4 * 2**20
    answer = client.post("/classify", headers={"Authorization": "Bearer s3cret"},
                         files=[("files", ("bomb.tif", bomb.read_bytes(), "image/tiff"))])
    assert answer.status_code == 413 and "20000×20000" in answer.json()["error"]
