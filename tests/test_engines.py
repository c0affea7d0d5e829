"""Inference engines: OpenVINO gives torch's probabilities, falls back when it cannot run, and
never trusts a cached network that does not match its digest."""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from conftest import ROOT, read_bands
from geolulc.errors import FallbackWarning
from geolulc.mapping.dense import dense_probabilities, supports
from geolulc.models import engines
from geolulc.models.inference import Classifier
from geolulc.models.model import Model, ProbabilityNet, load_model, predict_probabilities

pytest.importorskip("openvino")
CPU = torch.device("cpu")


def oscd_bands(folder, bands, size=256):
    """A real OSCD crop on its B02 grid."""
    return read_bands(folder, bands)[:, :size, :size]


def torch_fp32(model, dn):
    with torch.inference_mode():
        return predict_probabilities(model, torch.from_numpy(np.ascontiguousarray(dn))).numpy()


def test_openvino_reproduces_torch_fp32_on_real_scenes(data_dir):
    dw = load_model("dynamic-world")
    dn = np.stack([oscd_bands(data_dir / "oscd" / city / "imgs_1", dw.bands)
                   for city in ("hongkong", "rennes")])
    ref = torch_fp32(dw, dn)
    fp32 = Classifier(dw, CPU, 1, "fp32", engine="openvino")
    assert fp32.engine == "openvino"
    p = fp32.probabilities(dn)
    assert np.abs(p - ref).max() <= 1e-4
    assert (p.argmax(1) == ref.argmax(1)).mean() >= 0.9999
    bf16 = Classifier(dw, CPU, 1, "bf16", engine="openvino").probabilities(dn)
    assert (bf16.argmax(1) == ref.argmax(1)).mean() >= 0.995
    assert np.abs(bf16 - ref).max() > 1e-4  # bf16 really ran in bf16


def test_patch_classifier_runs_through_openvino_patch_by_patch_and_dense(data_dir):
    """eurosat-ms: single patches, RGB-scaled input and the dense cells of a chunk."""
    ms = load_model("eurosat-ms")
    dn = oscd_bands(data_dir / "oscd" / "nantes" / "imgs_1", ms.bands, 192)
    patches = np.stack([dn[:, r:r + 64, c:c + 64] for r in (0, 64, 128) for c in (0, 64, 128)])
    ov = Classifier(ms, CPU, 4, "fp32", engine="openvino")
    pt = Classifier(ms, CPU, 4, "fp32", engine="torch")
    assert np.abs(ov.probabilities(patches) - torch_fp32(ms, patches)).max() <= 1e-4
    dense_ov = dense_probabilities(ms, dn, 16, ov)
    dense_pt = dense_probabilities(ms, dn, 16, pt)
    assert dense_ov.shape == dense_pt.shape == (9, 9, 10)
    assert np.abs(dense_ov - dense_pt).max() <= 1e-4
    rgb = load_model("eurosat-rgb")
    jpeg = np.random.default_rng(0).uniform(0, 255, (5, 3, 64, 64)).astype(np.float32)
    a = Classifier(rgb, CPU, 8, "fp32", engine="openvino").probabilities(jpeg, scaled=True)
    b = Classifier(rgb, CPU, 8, "fp32", engine="torch").probabilities(jpeg, scaled=True)
    assert np.abs(a - b).max() <= 1e-4


def with_views(model, views):
    """The model with its card asking for `views` rotations/flips of each patch (not cached)."""
    return Model(model.network, dataclasses.replace(model.card, views=views))


def test_a_card_s_views_are_averaged_on_every_engine_patch_by_patch_and_dense(data_dir):
    """The views are the patch's own rotations/flips (numpy's, not the library's), averaged."""
    rgb = with_views(load_model("eurosat-rgb"), 1)
    dn = oscd_bands(data_dir / "oscd" / "nantes" / "imgs_1", rgb.bands, 192)
    patches = np.stack([dn[:, r:r + 64, c:c + 64] for r in (0, 64, 128) for c in (0, 64, 128)])
    turned = [np.rot90(patches, k, axes=(2, 3)) for k in range(4)]
    views = [turned[0], turned[0][..., ::-1], turned[1], turned[1][..., ::-1]]
    expected = np.mean([torch_fp32(rgb, v) for v in views], axis=0)
    fours = {engine: Classifier(with_views(rgb, 4), CPU, 4, "fp32", engine=engine)
             for engine in ("openvino", "torch")}
    for four in fours.values():
        assert np.abs(four.probabilities(patches) - expected).max() <= 1e-4
    eight = Classifier(with_views(rgb, 8), CPU, 4, "fp32", engine="openvino")
    p = eight.probabilities(patches)
    for k in range(1, 4):  # all eight views: a turned or mirrored patch gets the same answer
        assert np.abs(eight.probabilities(np.ascontiguousarray(turned[k])) - p).max() <= 1e-4
    assert np.abs(p - torch_fp32(rgb, patches)).max() > 1e-3  # the views changed the answer
    # dense maps: the chunk's views turned back onto its grid (200 px: the 9 × 9 windows cover 192)
    chunk = oscd_bands(data_dir / "oscd" / "nantes" / "imgs_1", rgb.bands, 200)
    m8 = eight.model
    dense = dense_probabilities(m8, chunk, 16, eight)
    assert dense.shape == (9, 9, 10)
    # all eight views: the map of a turned chunk is the turned map (a wrong inverse breaks this)
    turned_map = dense_probabilities(m8, np.ascontiguousarray(np.rot90(chunk[:, :192, :192], 1,
                                                                       axes=(1, 2))), 16, eight)
    assert np.abs(np.rot90(dense, 1, axes=(0, 1)) - turned_map).max() <= 1e-4
    # and the windows of the patches above agree with their patch-by-patch views
    assert supports(m8, 16)
    four = fours["openvino"]
    at_patches = dense_probabilities(four.model, chunk, 16, four)[::4, ::4][:3, :3].reshape(9, -1)
    assert (at_patches.argmax(1) == expected.argmax(1)).all()
    assert np.abs(at_patches - expected).max() <= 0.15
    for views in (1, 2, 4, 8):  # a chunk of one window is that patch: same views, same order
        clf = Classifier(with_views(rgb, views), CPU, 4, "fp32", engine="torch")
        one = dense_probabilities(clf.model, patches[1], 16, clf)[0, 0]
        assert np.abs(one - clf.probabilities(patches[1][None])[0]).max() <= 1e-5
    # a map's long strip at stride 8 (two offsets per axis): turned half round, mirrored
    strip = np.ascontiguousarray(chunk[:, :112, :176])
    grid = dense_probabilities(m8, strip, 8, eight)
    assert grid.shape == (7, 15, 10)
    half = dense_probabilities(m8, np.ascontiguousarray(strip[:, ::-1, ::-1]), 8, eight)
    mirror = dense_probabilities(m8, np.ascontiguousarray(strip[..., ::-1]), 8, eight)
    assert np.abs(half[::-1, ::-1] - grid).max() <= 1e-4
    assert np.abs(mirror[:, ::-1] - grid).max() <= 1e-4


def test_a_cached_network_that_does_not_match_its_digest_is_rebuilt(tmp_path, monkeypatch,
                                                                    caplog):
    monkeypatch.setenv("GEOLULC_CACHE_DIR", str(tmp_path))
    dw = load_model("dynamic-world")
    x = np.random.default_rng(1).integers(200, 4000, (1, 9, 64, 64)).astype(np.uint16)
    first = Classifier(dw, CPU, 1, "fp32", engine="openvino").probabilities(x)
    stored = sorted((tmp_path / "openvino").iterdir())
    # one network: its graph, weights and digest
    assert [f.suffix for f in stored] == [".bin", ".sha256", ".xml"]
    assert all(dw.digest in f.name for f in stored)  # keyed by the model's weights and card
    files = stored[:3]
    weights = files[0].read_bytes()
    tampered = bytearray(weights)
    tampered[len(tampered) // 2] ^= 0xFF  # one weight changed: a silently different network
    files[0].write_bytes(bytes(tampered))
    with caplog.at_level(logging.WARNING, logger="geolulc.models.engines"):
        again = Classifier(dw, CPU, 1, "fp32", engine="openvino").probabilities(x)
    assert "does not match its digest" in caplog.text
    np.testing.assert_array_equal(again, first)
    assert files[0].read_bytes() == weights  # rebuilt and stored again
    files[2].write_text("<not a network")  # unreadable, with a digest that matches it
    files[1].write_text(__import__("hashlib").sha256(b"<not a network" + weights).hexdigest())
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="geolulc.models.engines"):
        third = Classifier(dw, CPU, 1, "fp32", engine="openvino").probabilities(x)
    assert "unreadable" in caplog.text
    np.testing.assert_array_equal(third, first)


def test_the_first_run_maps_as_every_later_one(tmp_path, monkeypatch, data_dir):
    """The network converted in memory and the one read back from the cache give the same bf16
    results (before, they differed: 7 labels of this 256² crop, probabilities by 0.012)."""
    dw = load_model("dynamic-world")
    x = read_bands(data_dir / "oscd" / "nantes" / "imgs_1", dw.bands)[:, :256, :256][None]
    runs = []
    (tmp_path / "file").write_text("")  # no folder can be made under a file, even as root
    for cache in (tmp_path / "cache", tmp_path / "cache", tmp_path / "file" / "cache"):
        monkeypatch.setenv("GEOLULC_CACHE_DIR", str(cache))  # converted, cached, uncacheable
        runs.append(Classifier(dw, CPU, 1, "bf16", engine="openvino").probabilities(x))
    np.testing.assert_array_equal(runs[0], runs[1])
    np.testing.assert_array_equal(runs[0], runs[2])


def test_a_network_openvino_cannot_convert_runs_in_torch(monkeypatch, tmp_path):
    """A conversion failure (simulated: no network in the project fails to convert, so the
    converter is replaced by one that raises) gives one warning and torch's numbers."""
    import openvino

    def fail(*args, **kwargs):
        raise RuntimeError("Cannot convert aten::something\nmore detail")

    monkeypatch.setattr(openvino, "convert_model", fail)
    (tmp_path / "file").write_text("")  # uncacheable: under a file, even as root
    monkeypatch.setenv("GEOLULC_CACHE_DIR", str(tmp_path / "file" / "cache"))
    dw = load_model("dynamic-world")
    x = np.random.default_rng(2).integers(200, 4000, (1, 9, 64, 64)).astype(np.uint16)
    with pytest.warns(FallbackWarning, match="OpenVINO could not compile the network "
                      r"\(Cannot convert aten::something\): inference runs in torch"):
        p = Classifier(dw, CPU, 1, "fp32", engine="openvino").probabilities(x)
    np.testing.assert_allclose(p, torch_fp32(dw, x), atol=1e-6)


def test_a_broken_openvino_install_falls_back_to_torch(tmp_path, data_dir):
    """An `openvino` package that cannot be imported (a broken install on the path): the map
    is made by torch, with one warning."""
    broken = tmp_path / "site" / "openvino"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('libopenvino.so: cannot open')\n")
    out = tmp_path / "out"
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); import warnings, json, geolulc\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    s = geolulc.make_map(scenes=[sys.argv[2]], out_dir=sys.argv[3],\n"
        "                         options=geolulc.MapOptions(precision='fp32'))\n"
        "print(json.dumps([str(x.message) for x in w if 'OpenVINO' in str(x.message)]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "site"),
                           str(data_dir / "oscd" / "norcia" / "imgs_1"), str(out)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    messages = __import__("json").loads(proc.stdout.strip().splitlines()[-1])
    assert len(messages) == 1 and "inference runs in torch" in messages[0]
    assert list(out.glob("*_landcover.tif"))


def test_engine_choice_follows_the_device():
    assert engines.resolve_engine("auto", CPU) == "openvino"
    assert engines.resolve_engine("torch", CPU) == "torch"
    assert engines.resolve_engine("auto", torch.device("cuda")) == "torch"
    with pytest.raises(Exception, match="runs on the CPU"):
        engines.resolve_engine("openvino", torch.device("cuda"))
    with pytest.raises(Exception, match="unknown engine 'tensorrt'"):
        engines.resolve_engine("tensorrt", CPU)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        engines.resolve_engine("openvino", CPU)  # installed: no warning


def test_dynamic_world_runs_whole_in_bf16_with_its_input_stage_precise(data_dir):
    """The split input (hi, lo of each input; W_hi, W_lo of the stem) is the input stage in
    fp32 arithmetic, and in bf16 it is closer to fp32 than the plain network in bf16."""
    dw = load_model("dynamic-world")
    dn = np.stack([oscd_bands(data_dir / "oscd" / city / "imgs_1", dw.bands)
                   for city in ("hongkong", "rennes")])
    ref = torch_fp32(dw, dn)
    form = ProbabilityNet(dw).bf16_form()
    bits = form.split(dn)
    assert bits.shape == (2, 18, 256, 256) and bits.dtype == np.uint16
    hi, lo = (torch.from_numpy(bits[:, i:i + 9]).view(torch.bfloat16).float() for i in (0, 9))
    with torch.inference_mode():
        x = ProbabilityNet(dw).prepared(torch.from_numpy(dn)).float()
        assert torch.equal(hi, x.bfloat16().float())  # hi: the input rounded to bf16
        assert (hi + lo - x).abs().max() <= 2 ** -16 * x.abs().max()
        exact = form(torch.cat([hi, lo], dim=1)).numpy()  # the same arithmetic in fp32
    assert np.abs(exact - ref).max() <= 1e-4
    example = torch.zeros((1, 9, 64, 64))
    plain = engines.make_runner(ProbabilityNet(dw), "bf16", example, "openvino", CPU, None)(dn)
    split = Classifier(dw, CPU, 1, "bf16", engine="openvino").probabilities(dn)
    assert np.abs(split - ref).mean() < 0.8 * np.abs(plain - ref).mean()
    assert (split.argmax(1) == ref.argmax(1)).mean() > (plain.argmax(1) == ref.argmax(1)).mean()
