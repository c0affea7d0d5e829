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


def test_dense_matches_patchwise_on_the_interior_of_uniform_input():
    """On a uniform scene there is no context to disagree about: dense = patch by patch."""
    import torch

    from geolulc.mapping.dense import dense_probabilities
    from geolulc.mapping.inference import Classifier
    from geolulc.models.model import Model, make_card
    from geolulc.models.network import build_network

    torch.manual_seed(0)
    arch = {"name": "patch-resnet", "widths": [8, 16, 16, 16], "blocks": [1, 1, 1, 1]}
    net = build_network(arch, 2, 3).eval()
    card = make_card(name="t", architecture=arch, bands=["B02", "B03"], level="L1C",
                     classes=["a", "b", "c"], colors=[(0, 0, 0)] * 3, dn_scale=1e-3,
                     dn_offset=0, clip=None, mean=[0, 0], std=[1, 1])
    model = Model(net, card)
    cpu = Classifier(model, torch.device("cpu"), 64, precision="fp32")
    rng = np.random.default_rng(0)
    dn = rng.integers(100, 3000, (2, 64 + 5 * 16, 64 + 7 * 16)).astype(np.uint16)
    dense = dense_probabilities(model, dn, 16, cpu)
    assert dense.shape == (6, 8, 3)
    np.testing.assert_allclose(dense.sum(-1), 1, atol=1e-5)
    # the first window of a dense run only differs from a lone patch by its right/bottom context
    from geolulc.models.model import predict_probabilities
    with torch.inference_mode():
        lone = predict_probabilities(model, torch.from_numpy(dn[None, :, :64, :64]
                                                             .astype(np.int32)))
        lone_flat = predict_probabilities(model, torch.full((1, 2, 64, 64), 1500,
                                                            dtype=torch.int32))
    assert np.abs(dense[0, 0] - lone[0].numpy()).max() < 0.5
    flat = np.full((2, 64 + 2 * 16, 64 + 2 * 16), 1500, dtype=np.uint16)
    dense_flat = dense_probabilities(model, flat, 16, cpu)
    # interior windows of a uniform input equal a lone patch, up to the zero-padded border
    np.testing.assert_allclose(dense_flat[1, 1], lone_flat[0].numpy(), atol=0.2)
    stride8 = dense_probabilities(model, dn, 8, cpu)
    assert stride8.shape == (11, 15, 3)
    np.testing.assert_allclose(stride8[::2, ::2], dense, atol=1e-5)


def test_dask_workers_get_the_model_as_bytes_not_a_path(data_dir, tiny_model, tmp_path):
    """The model exists only in the client's memory (no file anywhere) and the workers run in
    another working directory: the chunks they return equal the local ones."""
    distributed = pytest.importorskip("distributed")
    from geolulc.io.read import Masking
    from geolulc.io.scenes import load_scene
    from geolulc.mapping.chunks import ChunkJob, run_dask, run_local
    from geolulc.mapping.inference import Classifier
    from geolulc.mapping.pipeline import MapRequest, aoi_cells, plan_grid
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
        remote = {r.row0: r for r in run_dask(job, starts, model, client, "cpu", None, "auto")}
    assert sorted(remote) == sorted(local) == starts
    for row0 in starts:
        np.testing.assert_array_equal(remote[row0].labels, local[row0].labels)
        np.testing.assert_array_equal(remote[row0].probs, local[row0].probs)
