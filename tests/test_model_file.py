import json

import pytest
import torch

from geolulc.errors import GeolulcError
from geolulc.models.model import load_model, predict_probabilities, save_model


def test_round_trip_keeps_weights_and_card(tiny_model, tmp_path):
    model = load_model(tiny_model)
    assert model.bands[0] == "B01" and len(model.bands) == 13
    assert model.classes == ["Dark", "Medium", "Bright"]
    assert model.card.processing_level == "L1C"
    assert model.card.training["epochs"] == 2
    copy_path = save_model(model.network, model.card, tmp_path / "copy")
    copy = load_model(copy_path)
    x = torch.full((2, 13, 64, 64), 1500, dtype=torch.int32)
    torch.testing.assert_close(predict_probabilities(model, x), predict_probabilities(copy, x))
    assert json.loads(copy_path.read_text()) == model.card.data


def test_a_run_name_with_dots_keeps_them(tiny_model, tmp_path):
    """`--name eurosat-rgb-1.5` writes eurosat-rgb-1.5.json, not eurosat-rgb-1.json."""
    model = load_model(tiny_model)
    card = save_model(model.network, model.card, tmp_path / "eurosat-rgb-1.5")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eurosat-rgb-1.5.json",
                                                          "eurosat-rgb-1.5.safetensors"]
    assert card.name == "eurosat-rgb-1.5.json"
    assert load_model(tmp_path / "eurosat-rgb-1.5").card.data == model.card.data


def test_tiny_model_learned_brightness(tiny_model):
    """A real (small) training run: the three brightness levels are told apart."""
    model = load_model(tiny_model)
    x = torch.stack([torch.full((13, 64, 64), v) for v in (300, 1500, 3500)])
    assert predict_probabilities(model, x).argmax(1).tolist() == [0, 1, 2]


def test_corrupt_and_foreign_model_files(tiny_model, tmp_path):
    card = json.loads(tiny_model.read_text())
    weights = tiny_model.with_suffix(".safetensors").read_bytes()

    def variant(name, card_text, weight_bytes=weights):
        (tmp_path / f"{name}.json").write_text(card_text)
        (tmp_path / f"{name}.safetensors").write_bytes(weight_bytes)
        return tmp_path / f"{name}.json"

    with pytest.raises(GeolulcError, match="is corrupt"):
        load_model(variant("a", "{truncated"))
    with pytest.raises(GeolulcError, match="format version 99"):
        load_model(variant("b", json.dumps({**card, "format_version": 99})))
    with pytest.raises(GeolulcError, match="weights .* corrupt"):
        load_model(variant("c", json.dumps(card), weights[: len(weights) // 2]))
    with pytest.raises(GeolulcError, match="does not match its weights"):
        load_model(variant("d", json.dumps({**card, "classes": card["classes"] + ["X"],
                                            "colors": card["colors"] + [[1, 2, 3]]})))
    with pytest.raises(GeolulcError, match="colours"):
        load_model(variant("e", json.dumps({**card, "classes": card["classes"] + ["X"]})))
    with pytest.raises(GeolulcError, match="std must be positive"):
        load_model(variant("f", json.dumps(
            {**card, "input": {**card["input"], "std": [0.0] * len(card["bands"])}})))
    with pytest.raises(GeolulcError, match="not found"):
        load_model(tmp_path / "missing.json")
