"""Shared fixtures: the real Sentinel-2 data beside the project, and real servers on loopback.

The STAC API is `rustac serve` (in-memory backend) and the COGs are served by nginx, which
answers HTTP Range requests: the same code path that reads Earth Search in production.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import httpx
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
ES_ITEM_ID = "S2A_29RKH_20200219_0_L2A"
#: About 6 km × 6 km of desert in tile 29RKH (Mauritania) inside the real Earth Search product,
#: with some thin cirrus that the SCL masks, lying inside one 512-pixel block of the 10 m COGs.
DESERT_AOI = {
    "type": "FeatureCollection",
    "features": [{"type": "Feature", "properties": {"name": "tiris"}, "geometry": {
        "type": "Polygon",
        "coordinates": [[[-11.20, 25.195], [-11.145, 25.195], [-11.145, 25.245],
                         [-11.20, 25.245], [-11.20, 25.195]]]}}],
}


def _data_dir() -> Path | None:
    env = os.environ.get("GEOLULC_TEST_DATA")
    path = Path(env) if env else ROOT.parent / "shared" / "data"
    return path if path.is_dir() else None


def _missing(reason: str) -> None:
    """Skip on a user's machine; under CI=true, which has everything, fail instead."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: CI must have it)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = _data_dir()
    if path is None:
        _missing("real Sentinel-2 test data not found at ../shared/data or $GEOLULC_TEST_DATA")
    return path


#: Loopback ports for the servers the tests start: each pytest-xdist worker takes its own
#: 1,000 below Linux's ephemeral range (32768-60999, where bind(0) and outgoing connections take
#: theirs), and hands each out once. A port asked of bind(0) and closed could be handed to a
#: server of another worker first; that server would then answer the other test's requests.
_FIRST_PORT = 20000 + 1000 * (int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:]) % 12)
_PORTS = iter(range(_FIRST_PORT, _FIRST_PORT + 1000))


def _free_port() -> int:
    """A loopback port no other test (of this or another worker) has been or will be given."""
    for port in _PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:  # taken by something outside the tests
                continue
            return port
    raise RuntimeError("this test worker has used all of its 1,000 loopback ports")


def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 20) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server for {url} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"server at {url} did not come up")


def _tool(name: str, *extra: str) -> str:
    found = shutil.which(name) or next((p for p in extra if Path(p).exists()), None)
    if not found:
        _missing(f"{name} is not installed (.ci/run installs it)")
    return found


@pytest.fixture(scope="session")
def cog_server(data_dir):
    """nginx serving ../shared/data/earth-search over HTTP with Range support; yields (url, log)."""
    nginx = _tool("nginx", "/usr/sbin/nginx")
    # nginx workers may run as an unprivileged user: the served folder must be world-readable,
    # which pytest's private temporary folders are not.
    prefix = Path(tempfile.mkdtemp(prefix="geolulc-nginx-"))
    prefix.chmod(0o755)
    root = prefix / "root"  # the real product, plus a writable folder for broken files
    (root / "broken").mkdir(parents=True)
    for folder in (root, root / "broken"):
        folder.chmod(0o755)
    (root / "sentinel-2-l2a").symlink_to(data_dir / "earth-search" / "sentinel-2-l2a")
    port = _free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(f"""
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log {prefix}/access.log;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
  types {{ image/tiff tif; application/json json; }}
  server {{
    listen 127.0.0.1:{port};
    root {root};
  }}
}}
""")
    proc = subprocess.Popen([nginx, "-p", str(prefix), "-c", str(conf), "-e",
                             str(prefix / "error.log"), "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{url}/sentinel-2-l2a/{ES_ITEM_ID}/{ES_ITEM_ID}.json", proc)
        yield url, prefix / "access.log", root / "broken"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(prefix, ignore_errors=True)


def served_items(data_dir: Path, cog_url: str) -> list[dict]:
    """The real Earth Search item with hrefs rewritten to the loopback server, plus a copy dated
    five days later with 60 % cloud cover (constructed here, same pixels) for selection tests."""
    folder = data_dir / "earth-search" / "sentinel-2-l2a" / ES_ITEM_ID
    item = json.loads((folder / f"{ES_ITEM_ID}.json").read_text())
    item["links"] = []
    for asset in item["assets"].values():
        name = asset["href"].rsplit("/", 1)[-1]
        asset["href"] = f"{cog_url}/sentinel-2-l2a/{ES_ITEM_ID}/{name}"
    cloudier = json.loads(json.dumps(item))
    cloudier["id"] = ES_ITEM_ID.replace("20200219", "20200224")
    cloudier["properties"]["datetime"] = "2020-02-24T11:34:25Z"
    cloudier["properties"]["eo:cloud_cover"] = 60.0
    return [item, cloudier]


@pytest.fixture(scope="session")
def stac_api(data_dir, cog_server, tmp_path_factory):
    """rustac serve (in-memory) on loopback holding the served items; yields its URL."""
    rustac = _tool("rustac")
    folder = tmp_path_factory.mktemp("stac")
    items = folder / "items.json"
    items.write_text(json.dumps({"type": "FeatureCollection",
                                 "features": served_items(data_dir, cog_server[0])}))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([rustac, "serve", "--create-collections", "--addr",
                             f"127.0.0.1:{port}", str(items)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_http(f"{url}/collections/sentinel-2-l2a", proc)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="session")
def desert_aoi(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("aoi") / "tiris.geojson"
    path.write_text(json.dumps(DESERT_AOI))
    return path


def make_tiny_model(path: Path, bands: list[str], seed: int = 0) -> Path:
    """A small model trained here on synthetic patches: the classes are separable by brightness,
    so the tests exercise real training and inference code without needing the bundled models."""
    from geolulc.models.augment import PRESETS
    from geolulc.models.patchdata import PatchSet
    from geolulc.models.train import TrainConfig, train

    rng = np.random.default_rng(seed)
    classes = ["Dark", "Medium", "Bright"]
    levels = [300, 1500, 3500]
    x = np.concatenate([rng.normal(lv, 80, (24, len(bands), 64, 64)) for lv in levels])
    y = np.repeat(np.arange(3), 24)
    data = PatchSet(np.clip(x, 1, 10000).astype(np.uint16), y, classes, bands, "ms", [])
    config = TrainConfig(epochs=2, batch_size=24, widths=(8, 16), blocks=(1, 1), name="tiny",
                         lr=1e-2, seed=seed, augmentation=PRESETS["basic"])
    return train(data, path, config, device="cpu")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """Tiny 13-band L1C model (OSCD, SAFE scenes)."""
    from geolulc.io.bands import ALL_BANDS
    return make_tiny_model(tmp_path_factory.mktemp("tiny13"), list(ALL_BANDS))


@pytest.fixture(scope="session")
def tiny_l2a_model(tmp_path_factory) -> Path:
    """Tiny model on the four 10 m bands, which every L2A product has."""
    return make_tiny_model(tmp_path_factory.mktemp("tiny4"), ["B02", "B03", "B04", "B08"])


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the installed `geolulc` command as a user would."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("GEOLULC_DEBUG", None)
    return subprocess.run(["geolulc", *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=600)


def start_server(data: Path, catalog: str, *extra: str) -> tuple[subprocess.Popen, str]:
    """`python -m geolulc serve` on a free loopback port, once it answers."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    data.mkdir(parents=True, exist_ok=True)
    log = data.parent / f"{data.name}-server.log"  # a file: a pipe nobody reads would fill up
    with open(log, "ab") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "geolulc", "serve", "--port", str(port),
                                 "--data-dir", str(data), "--catalog", catalog, *extra],
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=sink)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"geolulc serve exited: {log.read_text()[-500:]}")
        try:
            httpx.get(f"{url}/models", timeout=2, headers=_auth(extra))
            return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("geolulc serve did not start within 60 s")


def _auth(extra: tuple[str, ...]) -> dict[str, str]:
    return {"Authorization": f"Bearer {extra[extra.index('--token') + 1]}"} \
        if "--token" in extra else {}


@pytest.fixture(scope="module")
def server(stac_api, tmp_path_factory):
    """`geolulc serve` against the loopback STAC API, one per test module; yields its URL."""
    proc, url = start_server(tmp_path_factory.mktemp("serve"), stac_api)
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="session")
def local_es_item(data_dir, tmp_path_factory) -> Path:
    """The real Earth Search item with its hrefs pointing at the local COGs."""
    folder = data_dir / "earth-search" / "sentinel-2-l2a" / ES_ITEM_ID
    item = json.loads((folder / f"{ES_ITEM_ID}.json").read_text())
    item["links"] = []
    for asset in item["assets"].values():
        asset["href"] = str(folder / asset["href"].rsplit("/", 1)[-1])
    path = tmp_path_factory.mktemp("local-item") / "item.json"
    path.write_text(json.dumps(item))
    return path


def read_bands(folder, bands):
    """An OSCD scene's bands on the grid of its B02 (bilinear), as the Dynamic World conversion
    script reads them, cropped to an even size."""
    import rasterio
    from rasterio.enums import Resampling

    from geolulc.io.scenes import load_scene

    scene = load_scene(folder)
    with rasterio.open(scene.bands["B02"]) as src:
        shape = (src.height, src.width)
    planes = []
    for band in bands:
        with rasterio.open(scene.bands[band]) as src:
            planes.append(src.read(1, out_shape=shape, resampling=Resampling.bilinear))
    return np.stack(planes)[:, :shape[0] // 2 * 2, :shape[1] // 2 * 2]
