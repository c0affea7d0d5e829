"""The two-level EuroSAT-legend model (issue 33): Dynamic World picks the group, the CNN the class."""

import json

import numpy as np
import pytest
import torch
from shapely.geometry import box

import geolulc
from conftest import run_cli
from geolulc.core.labels import choose_labels
from geolulc.io.rasters import NODATA
from geolulc.io.scenes import load_scene
from geolulc.mapping.mapcheck import evaluate_map
from geolulc.models.levels import is_two_level, patch_levels
from geolulc.models.model import load_model
from geolulc.models.network import (
    TWO_LEVEL_CLASSES,
    WORLD_CLASSES,
    WORLD_GROUPS,
    TwoLevelHead,
)

GROUPS = [[TWO_LEVEL_CLASSES.index(c) for c in names] for _, _, names in WORLD_GROUPS]


def world_shares(**shares: float) -> torch.Tensor:
    out = torch.zeros(len(WORLD_CLASSES))
    for name, value in shares.items():
        out[WORLD_CLASSES.index(name)] = value
    return out


def test_the_patch_head_cannot_move_a_window_out_of_its_group():
    """However strongly the patch CNN prefers AnnualCrop, a window Dynamic World calls 70 %
    water keeps 0.7 for River + SeaLake and is labelled one of them; bare keeps its share."""
    head = TwoLevelHead(4, list(TWO_LEVEL_CLASSES), 10)
    with torch.no_grad():
        head.linear.weight.zero_()
        head.linear.bias.copy_(torch.tensor([50.0, 0, 0, 0, 0, 0, 0, 0, 1.0, 0]))
    pooled = torch.cat([torch.rand(4), world_shares(water=0.7, crops=0.2, bare=0.1)])[None]
    with torch.no_grad():
        p = torch.softmax(head(pooled), -1)[0].numpy()
    names = list(TWO_LEVEL_CLASSES)
    assert p.sum() == pytest.approx(1, abs=1e-5)
    assert p[names.index("River")] + p[names.index("SeaLake")] == pytest.approx(0.7, abs=1e-5)
    assert p[names.index("River")] > p[names.index("SeaLake")]  # the head decides within water
    assert p[names.index("AnnualCrop")] == pytest.approx(0.2, abs=1e-5)  # its whole group share
    assert p[names.index("BareGround")] == pytest.approx(0.1, abs=1e-5)
    assert names[int(choose_labels(p, GROUPS))] == "River"
    # the product's argmax could leave the group: 0.26 / 0.25 water against 0.4 crops
    mixed = np.zeros(12)
    mixed[[8, 9, 0, 6]] = [0.26, 0.25, 0.4, 0.09]
    assert names[int(choose_labels(mixed, GROUPS))] == "River"
    assert names[int(choose_labels(mixed, None))] == "AnnualCrop"


def test_the_bundled_model_is_dynamic_world_times_the_patch_cnn(data_dir):
    """eurosat-dw's probabilities are Dynamic World's group shares times the CNN's
    within-group softmax, computed apart by `patch_levels`."""
    model = load_model("eurosat-dw")
    assert is_two_level(model) and model.classes == list(TWO_LEVEL_CLASSES)
    assert model.card.label_groups == GROUPS
    dw = load_model("dynamic-world")
    trunk = model.network.trunk.state_dict()
    for key, value in dw.network.state_dict().items():  # Dynamic World unchanged, head included
        target = model.network.world.state_dict()[key[5:]] if key.startswith("head.") \
            else trunk[key]
        assert torch.equal(target, value), key
    patches = [data_dir / "eurosat" / "ms" / c / sorted((data_dir / "eurosat" / "ms" / c)
                                                         .iterdir())[0].name
               for c in ("SeaLake", "Industrial", "Pasture")]
    from geolulc.models.evaluate import model_inputs
    from geolulc.models.patchdata import PatchSet, read_patch

    arrays = [read_patch(p) for p in patches]
    data = PatchSet(np.stack([a[0] for a in arrays]), np.zeros(3, dtype=np.int64),
                    model.classes, arrays[0][1], arrays[0][2], patches)
    x, _ = model_inputs(model, data)
    levels = patch_levels(model, x)
    with torch.inference_mode():
        p = torch.softmax(model.network(torch.from_numpy(x).float()), -1).numpy()
    group = np.array(levels.class_group)
    for i in range(3):
        for k in range(10):
            members = group == group[k]
            within = levels.patch_probabilities[i, k] / levels.patch_probabilities[i, members].sum()
            assert p[i, k] == pytest.approx(levels.group_shares[i, group[k]] * within, abs=1e-4)
        assert p[i, 10:] == pytest.approx(levels.group_shares[i, 5:], abs=1e-4)


def test_a_coastal_map_sea_is_river_or_sealake_and_agrees_with_dynamic_world(data_dir, tmp_path):
    """Hong Kong's southern half at stride 16: open water by NDWI is River/SeaLake, no dry land
    is, and every cell whose window Dynamic World labels ≥ 90 % water is River/SeaLake."""
    scene = data_dir / "oscd" / "hongkong" / "imgs_1"
    south = box(114.228, 22.276, 114.279, 22.31)  # hills, shore and sea
    euro = geolulc.classify(scenes=[scene], aoi=south, model="eurosat-dw",
                            options=geolulc.MapOptions(stride=16))
    written = geolulc.write(euro, out_dir=tmp_path, name="euro")
    check = evaluate_map(written["landcover"], [load_scene(scene)])
    assert check.open_water_blocks > 100 and check.open_water_recall >= 0.95
    assert check.false_water <= 0.02
    world = geolulc.classify(scenes=[scene], aoi=south)
    groups = np.full(256, -1)
    for g, (_, names, _) in enumerate(WORLD_GROUPS):
        for name in names:
            groups[WORLD_CLASSES.index(name)] = g
    g_world = groups[world.labels]
    t, u = euro.grid.map_transform, world.grid.map_transform
    checked = 0
    for r, c in zip(*np.nonzero(euro.labels != NODATA)):
        col = round((t.c + c * t.a - u.c) / u.a) - 24
        row = round((u.f - (t.f + r * t.e)) / -u.e) - 24
        window = g_world[max(row, 0):row + 64, max(col, 0):col + 64]
        window = window[window >= 0]
        if window.size > 2048 and (window == 0).mean() >= 0.9:
            checked += 1
            assert TWO_LEVEL_CLASSES[euro.labels[r, c]] in ("River", "SeaLake"), (r, c)
    assert checked > 100


def test_classify_says_which_level_decided(data_dir):
    patch = data_dir / "eurosat" / "ms" / "SeaLake" / sorted(
        (data_dir / "eurosat" / "ms" / "SeaLake").iterdir())[0].name
    two = run_cli("classify", str(patch), "--model", "eurosat-dw", "--json")
    one = run_cli("classify", str(patch), "--model", "eurosat-ms", "--json")
    assert two.returncode == 0 and one.returncode == 0, two.stderr + one.stderr
    row, alone = json.loads(two.stdout)[0], json.loads(one.stdout)[0]
    assert row["decided_by"] == "world-wide group, then patch CNN within it"
    assert row["class"] == "SeaLake" and row["levels"]["group"] == "water"
    assert row["levels"]["patch_class"] == "SeaLake"
    assert sum(row["levels"]["group_shares"].values()) == pytest.approx(1, abs=1e-3)
    assert alone["decided_by"] == "patch CNN" and "levels" not in alone
    assert set(row) - {"levels"} == set(alone) and row["patch"] == alone["patch"] == str(patch)
