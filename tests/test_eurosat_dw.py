"""The EuroSAT-legend map model: Dynamic World's spectra beside RGB texture (issue 22), used
only within the group Dynamic World's shares choose (issue 33, `tests/test_two_level.py`)."""

import warnings

import numpy as np
import pytest
import torch
from shapely.geometry import box

import geolulc
from geolulc.errors import TrustWarning
from geolulc.io.rasters import NODATA
from geolulc.io.scenes import load_scene
from geolulc.mapping.mapcheck import evaluate_map
from geolulc.mapping.request import check_trust
from geolulc.models.model import MAP_CLASSIFIER, load_model, trust_misses
from geolulc.models.network import DynamicWorldFusion


def test_it_is_dynamic_world_frozen_with_a_head_and_passes_the_held_out_targets():
    model = load_model("eurosat-dw")
    dw = load_model("dynamic-world")
    assert MAP_CLASSIFIER == "eurosat-dw" and isinstance(model.network, DynamicWorldFusion)
    assert model.bands == dw.bands and model.patch_size == 64
    trunk = model.network.trunk.state_dict()
    for key, value in dw.network.state_dict().items():  # the trunk is Dynamic World, unchanged
        if not key.startswith("head."):
            assert torch.equal(trunk[key], value), key
    held_out = model.card.metrics["real_scene_held_out_cities"]
    assert held_out["open_water_recall"] >= 0.95 and held_out["false_water"] <= 0.02
    assert held_out["scenes"] == 20 and held_out["cities"] == 10
    assert "dynamic-world" in held_out["how"] and trust_misses(model.card) == []
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrustWarning)
        check_trust(model)
    uses = {info.name: info.use for info in geolulc.list_models()}
    assert uses["eurosat-dw"] == "maps" and uses["dynamic-world"] == "maps"
    assert uses["eurosat-rgb"] == "benchmark" and uses["eurosat-ms"] == "benchmark"


def test_a_lone_patch_sees_its_mirror_image_as_context():
    """A lone patch is padded by reflection before the trunk, so its features equal those of
    the same patch inside its mirrored surroundings, never of a zero border."""
    net = load_model("eurosat-dw").network
    rng = np.random.default_rng(0)
    patch = torch.from_numpy(rng.integers(200, 3000, (1, 9, 64, 64)).astype(np.float32))
    c = net.CONTEXT
    mirrored = torch.nn.functional.pad(patch, (c, c, c, c), mode="reflect")
    with torch.inference_mode():
        lone = net.trunk_features(patch)
        inside = net.trunk_features(mirrored)[:, :, c:c + 64, c:c + 64]
        zero_border = net.trunk.features(net.trunk.input_stage(net.trunk_input(patch)))
    assert lone.shape == (1, 144, 64, 64)
    edge = (slice(None), slice(None), slice(0, 8))
    assert (lone[edge] - inside[edge]).abs().max() < 0.05  # the mirror's own edge is farther out
    assert (lone[edge] - zero_border[edge]).abs().max() > 0.05


def test_the_rgb_branch_sees_mirrored_context_and_any_size_gives_whole_cells():
    """Two cells of mirrored context around a lone patch for the ResNet too, and ⌈H/16⌉ cells
    from both branches whatever the input's (even) size, as a dense chunk needs."""
    net = load_model("eurosat-dw").network
    rng = np.random.default_rng(1)
    patch = torch.from_numpy(rng.integers(200, 3000, (1, 9, 64, 64)).astype(np.float32))
    t = net.TEXTURE_CONTEXT
    cells = t // net.CELL
    with torch.inference_mode():
        lone = net.features(patch)
        inside = net.features(torch.nn.functional.pad(patch, (t, t, t, t), mode="reflect"))
        odd = net.features(torch.rand(1, 9, 66, 98) * 3000)
        zero_border = net.texture.features(net.texture.stem(net.texture_input(patch)))
    # 256 texture + 144 spectral features, and Dynamic World's nine class shares per cell
    assert lone.shape == (1, 409, 4, 4) and odd.shape == (1, 409, 5, 7)
    target = inside[:, :256, cells:-cells, cells:-cells].mean(dim=(2, 3))
    with_context = (lone[:, :256].mean(dim=(2, 3)) - target).norm()
    without = (zero_border.mean(dim=(2, 3)) - target).norm()
    assert with_context < 0.6 * without, (with_context, without)


def test_held_out_patches_reach_the_target(data_dir, tmp_path):
    """`evaluate --split val`: the 54 real 13-band patches its training held out. The patch CNN
    alone reaches 98 %; the two-level answer and each level's are reported as in the card."""
    result = geolulc.evaluate(model="eurosat-dw", data=data_dir / "eurosat" / "ms", split="val",
                              out_dir=tmp_path)
    metrics = load_model("eurosat-dw").card.metrics
    assert result.n == 54 and result.levels is not None
    assert result.levels["patch_accuracy"] >= 0.98
    assert result.levels["patch_accuracy"] == pytest.approx(metrics["val_patch_accuracy"], abs=1e-4)
    assert result.levels["within_group_n"] > 30
    assert result.levels["within_group_accuracy"] >= 0.95
    assert result.accuracy == pytest.approx(metrics["val_accuracy"], abs=1e-4)


#: Dense versus patch-by-patch labels of the same cells (measured: 0.877; eurosat-ms, whose
#: lone patches see zero borders, 0.77 on the whole scene); a lone patch sees its mirror image
#: where the map sees the neighbouring pixels.
AGREEMENT = 0.85


def test_a_coastal_map_finds_the_sea_and_the_dense_run_agrees_with_patches(data_dir, tmp_path):
    """Hong Kong at stride 16: the sea (NDWI) is River/SeaLake, and the dense run, which computes
    the features once over the chunk, labels the cells as classifying each window alone does."""
    scene = data_dir / "oscd" / "hongkong" / "imgs_1"
    south = box(114.228, 22.276, 114.279, 22.31)  # the southern half: hills, shore and sea
    dense = geolulc.classify(scenes=[scene], aoi=south, model="eurosat-dw",
                             options=geolulc.MapOptions(stride=16, progress=False))
    alone = geolulc.classify(scenes=[scene], aoi=south, model="eurosat-dw",
                             options=geolulc.MapOptions(stride=16, progress=False, dense=False))
    valid = (dense.labels != NODATA) & (alone.labels != NODATA)
    assert valid.sum() > 300
    agreement = float((dense.labels[valid] == alone.labels[valid]).mean())
    assert agreement >= AGREEMENT, agreement
    written = geolulc.write(dense, out_dir=tmp_path)
    check = evaluate_map(written["landcover"], [load_scene(scene)])
    assert check.open_water_blocks > 100 and check.open_water_recall >= 0.95
