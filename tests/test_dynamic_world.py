"""The Dynamic World port: exact against TensorFlow, seamless in tiles, right on real scenes."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
import rasterio
import torch

from conftest import ROOT, read_bands
from geolulc.core.windows import fill_unclear
from geolulc.errors import GeolulcError
from geolulc.io.scenes import load_scene
from geolulc.mapping.mapcheck import evaluate_map
from geolulc.mapping.pipeline import run_map
from geolulc.mapping.request import MapRequest
from geolulc.models.inference import Classifier
from geolulc.models.model import load_model, predict_probabilities, prepare_input
from geolulc.models.tiles import HALO, segment

REFERENCE = ROOT / "tests" / "data" / "dynamic-world-reference.npz"


@pytest.fixture(scope="module")
def dw():
    return load_model("dynamic-world")


def probs(model, dn):
    with torch.inference_mode():
        return predict_probabilities(model, torch.from_numpy(np.ascontiguousarray(dn))[None])[0]


@pytest.mark.parametrize("engine", [None, "torch", "openvino"])
def test_matches_stored_tensorflow_output(dw, data_dir, engine):
    """TensorFlow's probabilities for a real crop, stored by pipelines/convert-dynamic-world.py:
    the torch network itself, and the map's inference through each engine in fp32."""
    if engine == "openvino":
        pytest.importorskip("openvino")
    ref = np.load(REFERENCE)
    scene = read_bands(data_dir / str(ref["scene"]), dw.bands)
    r, c, n = int(ref["row"]), int(ref["col"]), int(ref["size"])
    dn = scene[:, r:r + n, c:c + n]
    assert hashlib.sha256(dn.tobytes()).hexdigest() == str(ref["dn_sha256"])  # same input
    if engine is None:
        p = probs(dw, dn).numpy()
    else:
        clf = Classifier(dw, torch.device("cpu"), 1, "fp32", engine=engine)
        assert clf.engine == engine
        p = clf.probabilities(dn[None])[0]
    assert np.abs(p - ref["probabilities"]).max() <= 1e-4
    assert (p.argmax(0) == ref["probabilities"].argmax(0)).mean() >= 0.9999


def test_matches_tensorflow_on_whole_scene(dw, data_dir):
    tf = pytest.importorskip("tensorflow")
    model = tf.saved_model.load(str(ROOT.parent / "shared/models/dynamicworld/model/forward"))
    dn = read_bands(data_dir / "oscd" / "nantes" / "imgs_2", dw.bands)
    with torch.inference_mode():
        x = prepare_input(torch.from_numpy(dn)[None], dw.card.input)
    logits = model(tf.constant(x.numpy().transpose(0, 2, 3, 1))).numpy()[0]
    p_tf = tf.nn.softmax(logits, axis=-1).numpy().transpose(2, 0, 1)
    p = probs(dw, dn).numpy()
    assert np.abs(p - p_tf).max() <= 1e-4
    assert (p.argmax(0) == p_tf.argmax(0)).mean() >= 0.9999


def test_tiles_with_halo_reproduce_a_whole_scene_pass(dw, data_dir):
    dn = read_bands(data_dir / "oscd" / "rennes" / "imgs_1", dw.bands)[:, :256, :384]
    clf = Classifier(dw, torch.device("cpu"), batch_size=4, precision="fp32")
    padded = np.pad(dn, ((0, 0), (HALO, HALO), (HALO, HALO)), mode="edge")
    whole = np.moveaxis(clf.probabilities(padded[None])[0], 0, -1)[HALO:-HALO, HALO:-HALO]
    tiled = segment(padded, clf.probabilities, 9, tile=128, halo=HALO)
    assert tiled.shape == whole.shape == (256, 384, 9)
    assert np.abs(tiled - whole).max() < 1e-4
    seams = segment(dn, clf.probabilities, 9, tile=128, halo=0)  # no context: seams show
    assert (seams.argmax(-1) != whole.argmax(-1)).sum() > 100


def test_fill_mirrors_the_clear_surface_across_the_edge():
    dn = np.arange(2 * 6 * 7, dtype=np.uint16).reshape(2, 6, 7)
    clear = np.zeros((6, 7), dtype=bool)
    clear[:, :4] = True  # columns 4-6 beyond the scene's edge
    out = fill_unclear(dn, clear)
    assert (out[:, :, :4] == dn[:, :, :4]).all()
    assert (out[:, :, 4] == dn[:, :, 2]).all() and (out[:, :, 6] == dn[:, :, 0]).all()
    strip = np.zeros((6, 7), dtype=bool)
    strip[:, 0] = True  # the mirror image would lie outside the array: the nearest pixel
    assert (fill_unclear(dn, strip)[:, :, 5] == dn[:, :, 0]).all()


def test_default_map_is_10m_dynamic_world_with_water_right(data_dir, tmp_path):
    """Hong Kong: sea, hills of forest and towns. The default model maps every clear pixel at
    10 m; open water by NDWI is water and dry land is not, at the edges too."""
    folder = data_dir / "oscd" / "hongkong" / "imgs_1"
    summary = run_map(MapRequest(scenes=[folder], out_dir=tmp_path, progress=False)).to_dict()
    assert summary["model"] == "dynamic-world" and summary["model_kind"] == "segmenter"
    with rasterio.open(summary["outputs"]["landcover"]) as src:
        assert src.res == (10.0, 10.0) and src.nodata == 255 and src.crs.to_epsg() == 32650
        assert json.loads(src.tags()["classes"])[0] == "water"
        assert src.colormap(1)[0][:3] == (0x41, 0x9b, 0xdf)
    with rasterio.open(summary["outputs"]["probabilities"]) as src:
        assert src.count == 9 and src.scales[0] == pytest.approx(1 / 250)
    check = evaluate_map(summary["outputs"]["landcover"], [load_scene(folder)])
    assert check.open_water_blocks > 100 and check.open_water_recall >= 0.95
    assert check.dry_blocks > 100 and check.false_water <= 0.02
    assert check.edge_dry_blocks > 50 and check.edge_false_water <= 0.02


def test_edges_have_no_class_of_their_own(data_dir, tmp_path):
    """Cut a real scene in half (its right half no data) and map it: along the new edge the
    labels are those of the full scene, because context comes from the real pixels."""
    src_dir = data_dir / "oscd" / "paris" / "imgs_1"
    cut = tmp_path / "cut"
    cut.mkdir()
    for path in src_dir.glob("*.tif"):
        with rasterio.open(path) as src:
            profile, data = src.profile, src.read(1)
        data[:, data.shape[1] // 2:] = 0
        with rasterio.open(cut / path.name, "w", **{**profile, "nodata": 0}) as dst:
            dst.write(data, 1)
    full = run_map(MapRequest(scenes=[src_dir], out_dir=tmp_path / "a", progress=False)).to_dict()
    half = run_map(MapRequest(scenes=[cut], out_dir=tmp_path / "b", progress=False)).to_dict()
    with rasterio.open(full["outputs"]["landcover"]) as a, \
            rasterio.open(half["outputs"]["landcover"]) as b:
        assert a.transform == b.transform
        la, lb = a.read(1), b.read(1)
    valid = lb != 255
    cols = np.nonzero(valid.any(0))[0]
    interior = valid.copy()
    interior[:, cols.max() - 63:] = False
    assert (la[interior] == lb[interior]).mean() > 0.999  # context beyond the halo: identical
    for width, agreement in ((16, 0.88), (32, 0.93)):
        edge = valid.copy()
        edge[:, :cols.max() - width + 1] = False  # the columns along the cut
        assert edge.sum() > 2000 and (la[edge] == lb[edge]).mean() > agreement
        full_mix = np.bincount(la[edge], minlength=9)[:9] / edge.sum()
        cut_mix = np.bincount(lb[edge], minlength=9)[:9] / edge.sum()
        assert np.abs(cut_mix - full_mix).max() < 0.03, (full_mix, cut_mix)


def test_corrupt_models_are_refused(tmp_path):
    src = ROOT / "geolulc" / "models" / "bundled"
    for name in ("dynamic-world.json", "dynamic-world.safetensors"):
        shutil.copy(src / name, tmp_path / name)
    card_path, weights = tmp_path / "dynamic-world.json", tmp_path / "dynamic-world.safetensors"
    card = json.loads(card_path.read_text())
    good = weights.read_bytes()
    weights.write_bytes(good[:-8] + b"\x00" * 8)
    with pytest.raises(GeolulcError, match="SHA-256"):
        load_model(card_path)
    weights.write_bytes(good)
    for change, message in (({"p70": [0.0] * 9}, "positive"), ({"p30": [1.0] * 8}, "p30"),
                            ({"p30": [float("nan")] + [1.0] * 8}, "p30")):
        card_path.write_text(json.dumps({**card, "input": {**card["input"], **change}}))
        with pytest.raises(GeolulcError, match=message):
            load_model(card_path)
    card_path.write_text(json.dumps({**card, "colors": card["colors"][:-1]}))
    with pytest.raises(GeolulcError, match="colours"):
        load_model(card_path)
    card_path.write_text(json.dumps({**card, "bands": card["bands"][:-1] + ["B99"]}))
    with pytest.raises(GeolulcError, match="band"):
        load_model(card_path)


def test_nan_weights_are_refused(tmp_path):
    from safetensors.torch import load_file, save_file
    state = load_file(str(ROOT / "geolulc/models/bundled/dynamic-world.safetensors"))
    state["head.bias"][3] = float("nan")
    weights = tmp_path / "m.safetensors"
    save_file(state, str(weights))
    card = json.loads((ROOT / "geolulc/models/bundled/dynamic-world.json").read_text())
    card["weights_sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
    (tmp_path / "m.json").write_text(json.dumps(card))
    with pytest.raises(GeolulcError, match="non-finite"):
        load_model(tmp_path / "m.json")
