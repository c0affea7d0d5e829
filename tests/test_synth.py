"""Synthesised patches: a short generator training on real EuroSAT patches, its samples (shape,
range, marks), resuming only its own checkpoint, quality figures, and `train --synthetic`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from conftest import run_cli

CLASSES = ("Forest", "River", "SeaLake")


@pytest.fixture(scope="module")
def patches(data_dir, tmp_path_factory) -> Path:
    """Twelve real 13-band EuroSAT patches of each of three classes."""
    root = tmp_path_factory.mktemp("ms")
    for name in CLASSES:
        (root / name).mkdir()
        for src in sorted((data_dir / "eurosat" / "ms" / name).glob("*.tif"))[:12]:
            (root / name / src.name).symlink_to(src)
    return root


@pytest.fixture(scope="module")
def generator(patches, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gen")
    result = run_cli("synth", "train", "--data", str(patches), "--out", str(out), "--epochs", "2",
                     "--width", "8", "--batch-size", "12", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    return out


def test_a_generator_trains_checkpoints_and_draws_its_samples(generator):
    card = json.loads((generator / "synth.json").read_text())
    assert card["classes"] == list(CLASSES) and len(card["bands"]) == 13
    assert [h["epoch"] for h in card["training"]["history"]] == [1, 2]
    assert (generator / "checkpoint.pt").exists()
    assert sorted(p.name for p in generator.glob("samples_epoch*.png")) == [
        "samples_epoch001.png", "samples_epoch002.png"]


def test_samples_have_the_data_s_shape_range_and_are_marked(generator, patches, tmp_path):
    result = run_cli("synth", "sample", "--model", str(generator), "--per-class", "4", "--out",
                     str(tmp_path / "s"), "--classes", "River,SeaLake")
    assert result.returncode == 0, result.stderr
    files = sorted((tmp_path / "s").glob("*/*.tif"))
    assert [f.parent.name for f in files] == ["River"] * 4 + ["SeaLake"] * 4
    with rasterio.open(files[0]) as src:
        assert (src.count, src.height, src.width, src.dtypes[0]) == (13, 64, 64, "uint16")
        assert src.tags()["synthetic"] == "true" and src.descriptions[1] == "B02"
        values = src.read()
    assert 0 < values.mean() < 10000
    unknown = run_cli("synth", "sample", "--model", str(generator), "--per-class", "1", "--out",
                      str(tmp_path / "u"), "--classes", "Desert")
    assert unknown.returncode == 1 and "knows no class Desert" in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1 and not (tmp_path / "u").exists()


def test_resume_refuses_a_checkpoint_of_other_patches(generator, patches, tmp_path):
    other = tmp_path / "other"
    for name in CLASSES[:2]:
        (other / name).mkdir(parents=True)
        for src in sorted((patches / name).iterdir())[:6]:
            (other / name / src.name).symlink_to(src.resolve())
    result = run_cli("synth", "train", "--data", str(other), "--out", str(generator), "--epochs",
                     "3", "--width", "8", "--resume", "--device", "cpu")
    assert result.returncode == 1 and "made from other patches or settings" in result.stderr
    # a checkpoint of the networks' earlier layout (no within-class spread in the discriminator)
    old = torch.load(generator / "checkpoint.pt", weights_only=True)
    del old["identity"]["architecture"]
    (tmp_path / "old").mkdir()
    torch.save(old, tmp_path / "old" / "checkpoint.pt")
    result = run_cli("synth", "train", "--data", str(patches), "--out", str(tmp_path / "old"),
                     "--epochs", "3", "--width", "8", "--batch-size", "12", "--resume",
                     "--device", "cpu")
    assert result.returncode == 1 and "earlier layout" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    tampered = tmp_path / "t"
    tampered.mkdir()
    (tampered / "checkpoint.pt").write_bytes(b"\x80\x04cos\nsystem\n.")  # a pickle that runs code
    result = run_cli("synth", "train", "--data", str(patches), "--out", str(tampered), "--epochs",
                     "2", "--width", "8", "--resume", "--device", "cpu")
    assert result.returncode == 1 and "refused" in result.stderr


def test_bad_folders_are_one_line(patches, tmp_path):
    single = tmp_path / "single" / "Forest"
    single.mkdir(parents=True)
    for src in sorted((patches / "Forest").iterdir())[:3]:
        (single / src.name).symlink_to(src.resolve())
    one = run_cli("synth", "train", "--data", str(single.parent), "--out", str(tmp_path / "o"))
    assert one.returncode == 1 and "at least two class" in one.stderr
    mixed = tmp_path / "mixed"
    for name in ("Forest", "River"):
        (mixed / name).mkdir(parents=True)
        (mixed / name / "a.tif").symlink_to(sorted((patches / name).iterdir())[0].resolve())
    from PIL import Image

    Image.new("RGB", (64, 64)).save(mixed / "River" / "b.png")
    result = run_cli("synth", "train", "--data", str(mixed), "--out", str(tmp_path / "m"))
    assert result.returncode == 1 and "mixed patches" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_diversity_is_one_for_real_variety_and_zero_for_one_patch():
    from geolulc.models.synth import class_diversity

    real = np.random.default_rng(0).normal(size=(50, 16))
    assert class_diversity(real[::-1].copy(), real) == 1.0
    assert class_diversity(np.repeat(real[:1], 30, axis=0), real) == 0.0
    assert class_diversity(0.5 * real, real) == 0.5
    assert class_diversity(real, real[:1]) is None and class_diversity(real[:1], real) is None


def test_quality_and_synthetic_training_patches(generator, patches, tmp_path):
    import geolulc

    quality = geolulc.synth_quality(model=generator, data=patches, classifier="eurosat-ms",
                                    per_class=100)
    assert quality.n_generated == 300 and np.isfinite(quality.frechet_distance)
    assert quality.frechet_distance > 0 and quality.nearest_real_ratio > 0
    assert set(quality.per_class) == set(CLASSES)
    assert quality.diversity > 0 and all(r["diversity"] > 0 for r in quality.per_class.values())
    # A generator that ignores its noise draws one patch per class: diversity 0, nothing else shows it
    from geolulc.models.synth import load_generator, save_generator

    gen, card = load_generator(generator / "synth.json")
    with torch.no_grad():
        gen.project.weight[:, :card.z_dim] = 0
    collapsed = save_generator(gen, card, tmp_path / "collapsed")
    judged = geolulc.synth_quality(model=collapsed, data=patches, classifier="eurosat-ms",
                                   per_class=100)
    assert judged.diversity == 0 and np.isfinite(judged.frechet_distance)
    geolulc.synth_sample(model=generator, per_class=5, out_dir=tmp_path / "s")
    config = geolulc.TrainConfig(epochs=1, batch_size=8, widths=(8, 16), blocks=(1, 1))
    plain = geolulc.train(data=patches, out_dir=tmp_path / "plain", config=config, device="cpu")
    mixed = geolulc.train(data=patches, out_dir=tmp_path / "mixed", config=config, device="cpu",
                          synthetic=tmp_path / "s")
    cards = [json.loads(t.card.read_text())["training"] for t in (plain, mixed)]
    assert cards[1]["n_train"] == cards[0]["n_train"] + 15  # training side only
    assert cards[1]["n_val"] == cards[0]["n_val"] and plain.n_val == mixed.n_val
    assert cards[1]["synthetic"]["n"] == 15 and cards[0]["synthetic"] is None
    from geolulc.errors import DataError

    other_split = geolulc.TrainConfig(epochs=1, batch_size=8, widths=(8, 16), blocks=(1, 1),
                                      seed=1)
    with pytest.raises(DataError, match="may have seen this run's validation patches"):
        geolulc.train(data=patches, out_dir=tmp_path / "leak", config=other_split,
                      device="cpu", synthetic=tmp_path / "s")
    card = json.loads((tmp_path / "s" / "synthetic.json").read_text())
    assert card["trained_on"]["held_out"] == 6 and card["count"] == 15  # 2 of 12 per class
