"""Distribution on a real Dask LocalCluster, resuming after an interruption, dense inference."""

import signal
import subprocess
import time

import numpy as np
import pytest
import rasterio
import torch

from conftest import run_cli


def default_sigint() -> None:
    """The child handles Ctrl-C as a user's shell would, even when the suite runs in the
    background (where SIGINT is inherited as ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def read_map(folder, name="r"):
    with rasterio.open(folder / f"{name}_landcover.tif") as a, \
            rasterio.open(folder / f"{name}_probabilities.tif") as p:
        return a.read(1), p.read(), a.transform


def test_dask_cluster_gives_the_identical_map(data_dir, tiny_model, tmp_path):
    distributed = pytest.importorskip("distributed")
    scene = str(data_dir / "oscd" / "rennes" / "imgs_1")
    common = ["map", "--scene", scene, "--model", str(tiny_model), "--stride", "32",
              "--chunk-rows", "3", "--quiet", "--name", "r"]
    single = run_cli(*common, "--out", str(tmp_path / "single"))
    assert single.returncode == 0, single.stderr
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        remote = run_cli(*common, "--scheduler", cluster.scheduler_address, "--out",
                         str(tmp_path / "remote"))
    assert remote.returncode == 0, remote.stderr
    local = run_cli(*common, "--workers", "2", "--out", str(tmp_path / "local"))
    assert local.returncode == 0, local.stderr
    labels, probs, transform = read_map(tmp_path / "single")
    for other in ("remote", "local"):
        other_labels, other_probs, other_transform = read_map(tmp_path / other)
        assert other_transform == transform
        np.testing.assert_array_equal(other_labels, labels)
        np.testing.assert_array_equal(other_probs, probs)


def test_unreachable_scheduler(data_dir, tiny_model, tmp_path):
    result = run_cli("map", "--scene", str(data_dir / "oscd" / "paris" / "imgs_1"), "--model",
                     str(tiny_model), "--scheduler", "tcp://127.0.0.1:9", "--out", str(tmp_path))
    assert result.returncode == 1 and "cannot reach the Dask scheduler" in result.stderr


def wide_model(folder, bands):
    """An untrained but real model file, wide enough that a map takes some seconds."""
    from geolulc.models.model import make_card, save_model
    from geolulc.models.network import build_network

    arch = {"name": "patch-resnet", "widths": [48, 96, 192, 256], "blocks": [1, 1, 1, 1]}
    card = make_card(name="wide", architecture=arch, bands=bands, level="L1C",
                     classes=["a", "b"], colors=[(0, 0, 0), (9, 9, 9)], dn_scale=1e-3,
                     dn_offset=0, clip=None, mean=[1.0] * len(bands), std=[1.0] * len(bands))
    return save_model(build_network(arch, len(bands), 2), card, folder / "wide")


def test_interrupted_run_resumes(data_dir, tiny_model, tmp_path):
    from geolulc.io.bands import ALL_BANDS

    scene = str(data_dir / "oscd" / "rennes" / "imgs_1")
    model = wide_model(tmp_path, list(ALL_BANDS))
    args = ["map", "--scene", scene, "--model", str(model), "--stride", "32",
            "--patchwise", "--chunk-rows", "1", "--quiet", "--name", "r"]
    out = tmp_path / "out"
    proc = subprocess.Popen(["geolulc", *args, "--out", str(out)], stderr=subprocess.DEVNULL,
                            preexec_fn=default_sigint)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob(".geolulc-cache/*/chunk-*.npz"))) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 130
    cached = list(out.glob(".geolulc-cache/*/chunk-*.npz"))
    assert 3 <= len(cached) < 15
    assert not (out / "r_landcover.tif").exists()
    # another model must not reuse these chunks
    other = run_cli("-v", *args, "--model", str(tiny_model), "--out", str(out))
    assert other.returncode == 0 and "resuming" not in other.stderr
    assert len(list(out.glob(".geolulc-cache/*/chunk-*.npz"))) == len(cached)
    resumed = run_cli("-v", *args, "--out", str(out))
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming: {len(cached)} of 15 chunks already done" in resumed.stderr
    assert not (out / ".geolulc-cache").exists()
    fresh = run_cli(*args, "--out", str(tmp_path / "fresh"))
    assert fresh.returncode == 0
    a, pa, _ = read_map(out)
    b, pb, _ = read_map(tmp_path / "fresh")
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(pa, pb)


def test_dense_cells_see_their_own_window(tiny_model):
    """Dense (fully convolutional) cells must sit where their 64-pixel window is: a scene that
    is bright in its top-right quadrant only is mapped Bright exactly in the cells whose
    window lies inside that quadrant and Dark in those that lie outside it (a shifted,
    transposed or flipped window → cell mapping fails this)."""
    import torch

    from geolulc.mapping.dense import dense_probabilities
    from geolulc.models.inference import Classifier
    from geolulc.models.model import load_model

    model = load_model(tiny_model)  # trained on uniform Dark 300 / Medium 1500 / Bright 3500
    cpu = Classifier(model, torch.device("cpu"), 64, precision="fp32")
    size = 64 + 15 * 16  # 16 × 16 cells at stride 16
    dn = np.full((13, size, size), 300, dtype=np.uint16)
    dn[:, :160, 160:] = 3500  # top-right quadrant
    dense = dense_probabilities(model, dn, 16, cpu)
    assert dense.shape == (16, 16, 3)
    np.testing.assert_allclose(dense.sum(-1), 1, atol=1e-5)
    labels = dense.argmax(-1)
    rows, cols = np.indices(labels.shape)
    inside = (rows * 16 + 64 <= 160) & (cols * 16 >= 160)  # window wholly in the quadrant
    outside = (rows * 16 >= 160) | (cols * 16 + 64 <= 160)  # window wholly out of it
    assert inside.sum() == 7 * 6 and (labels[inside] == 2).all()
    assert (labels[outside] == 0).all()
    stride8 = dense_probabilities(model, dn, 8, cpu)
    assert stride8.shape == (31, 31, 3)
    np.testing.assert_allclose(stride8[::2, ::2], dense, atol=1e-5)


def test_dask_workers_get_the_model_as_bytes_not_a_path(data_dir, tiny_model, tmp_path):
    """The model exists only in the client's memory (no file anywhere) and the workers run in
    another working directory: the chunks they return equal the local ones."""
    distributed = pytest.importorskip("distributed")
    from geolulc.io.read import Masking
    from geolulc.io.scenes import load_scene
    from geolulc.mapping.chunks import ChunkJob, run_dask, run_local
    from geolulc.mapping.pipeline import aoi_cells
    from geolulc.mapping.request import MapRequest, plan_grid
    from geolulc.models.inference import Classifier
    from geolulc.models.model import model_from_bytes

    model = model_from_bytes(tiny_model.read_bytes(),
                             tiny_model.with_suffix(".safetensors").read_bytes())
    assert model.source is None
    scenes = [load_scene(data_dir / "oscd" / "rennes" / "imgs_1")]
    grid = plan_grid(MapRequest(stride=32), None, scenes, model)
    job = ChunkJob(scenes, model.bands, grid, aoi_cells(grid, None), 0.5, False, 4, Masking())
    starts = job.starts[:3]
    local = {r.row0: r for r in run_local(job, starts, model,
                                          Classifier(model, torch.device("cpu")))}
    elsewhere = tmp_path / "workers"
    elsewhere.mkdir()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, local_directory=str(elsewhere)) \
            as cluster, distributed.Client(cluster) as client:
        remote = {r.row0: r for r in run_dask(job, starts, model, client, "cpu", None, "auto",
                                              "auto")}
    assert sorted(remote) == sorted(local) == starts
    for row0 in starts:
        np.testing.assert_array_equal(remote[row0].labels, local[row0].labels)
        np.testing.assert_array_equal(remote[row0].probs, local[row0].probs)
