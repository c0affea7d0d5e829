"""`geolulc train`, `evaluate`, `classify`: real training runs (small), resume, and bad input."""

import json
import signal
import subprocess
import time

import numpy as np
import pytest
import rasterio
import torch
from PIL import Image
from rasterio.transform import from_origin

from conftest import run_cli

CLASSES = ["Forest", "SeaLake", "Industrial"]


def default_sigint() -> None:
    """The child handles Ctrl-C as a user's shell would, even when the suite runs in the
    background (where SIGINT is inherited as ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def real_subset(data_dir, tmp_path, per_class=12, kind="rgb"):
    """A small labelled folder of real EuroSAT patches (symlinks)."""
    root = tmp_path / f"real-{kind}"
    for name in CLASSES:
        (root / name).mkdir(parents=True)
        for src in sorted((data_dir / "eurosat" / kind / name).iterdir())[:per_class]:
            (root / name / src.name).symlink_to(src)
    return root


def write_tif(path, arr):
    with rasterio.open(path, "w", driver="GTiff", width=arr.shape[2], height=arr.shape[1],
                       count=arr.shape[0], dtype=arr.dtype, crs="EPSG:32631",
                       transform=from_origin(500000, 5000000, 10, 10)) as dst:
        dst.write(arr)


def test_train_resume_evaluate_classify_on_real_patches(data_dir, tmp_path):
    data = real_subset(data_dir, tmp_path)
    out = tmp_path / "model"
    first = run_cli("train", "--data", str(data), "--out", str(out), "--name", "m", "--epochs",
                    "2", "--batch-size", "16", "--widths", "8,16", "--device", "cpu")
    assert first.returncode == 0, first.stderr
    card = json.loads((out / "m.json").read_text())
    assert card["bands"] == ["B04", "B03", "B02"] and card["classes"] == sorted(CLASSES)
    assert card["input"]["dn_scale"] == pytest.approx(0.0917)
    assert card["training"]["n_val"] == 6 and card["training"]["seed"] == 0
    assert len(card["training"]["history"]) == 2
    # an interrupted run resumes from its last checkpoint with the same command
    args = ["train", "--data", str(data), "--out", str(tmp_path / "r"), "--name", "r", "--epochs",
            "40", "--batch-size", "16", "--widths", "8,16", "--device", "cpu", "--resume"]
    proc = subprocess.Popen(["geolulc", *args], stderr=subprocess.DEVNULL,
                            preexec_fn=default_sigint)
    deadline = time.time() + 120
    while not (tmp_path / "r" / "checkpoint.pt").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) != 0
    assert not (tmp_path / "r" / "r.json").exists()  # no final model from a cut-off run
    done_before = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=False)["epoch"]
    assert 1 <= done_before < 40
    resumed = run_cli(*args)
    assert resumed.returncode == 0, resumed.stderr
    history = json.loads((tmp_path / "r" / "r.json").read_text())["training"]["history"]
    assert [h["epoch"] for h in history] == list(range(1, 41))
    changed = run_cli(*args[:-1], "--epochs", "41", "--resume")
    assert changed.returncode == 1 and "resume with the same --epochs" in changed.stderr
    ev = run_cli("evaluate", "--model", str(out / "m.json"), "--data", str(data), "--split",
                 "val", "--json", "--out", str(tmp_path / "ev"))
    assert ev.returncode == 0, ev.stderr
    result = json.loads(ev.stdout)
    assert result["n"] == 6 and set(result["per_class"]) == set(CLASSES)
    cm = np.array(result["confusion_matrix"])
    assert cm.sum() == 6 and result["accuracy"] == round(np.trace(cm) / 6, 4)
    assert [result["per_class"][c]["support"] for c in result["classes"]] == cm.sum(1).tolist()
    assert (tmp_path / "ev" / "m_real-rgb_confusion.png").exists()
    patch = next((data / "SeaLake").iterdir())
    cl = run_cli("classify", str(patch), "--model", str(out / "m.json"), "--json")
    assert cl.returncode == 0, cl.stderr
    row = json.loads(cl.stdout)[0]
    assert sum(row["probabilities"].values()) == pytest.approx(1, abs=1e-3)


def test_metrics_on_a_known_confusion():
    from geolulc.models.evaluate import metrics
    y_true = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
    y_pred = np.array([0, 0, 0, 1, 1, 1, 1, 1, 2, 0])
    m = metrics(y_true, y_pred, ["a", "b", "c"])
    assert m["accuracy"] == 0.8
    assert m["per_class"]["a"] == {"precision": 0.75, "recall": 0.75, "f1": 0.75, "support": 4}
    assert m["per_class"]["b"]["precision"] == 0.8 and m["per_class"]["c"]["recall"] == 0.5
    # kappa: p_o = 0.8, p_e = (4·4 + 4·5 + 2·1) / 100 = 0.38
    assert m["kappa"] == pytest.approx((0.8 - 0.38) / 0.62, abs=1e-4)


def make_folder(tmp_path, spec):
    root = tmp_path / "data"
    for cls, files in spec.items():
        (root / cls).mkdir(parents=True)
        for name, content in files.items():
            path = root / cls / name
            if isinstance(content, bytes):
                path.write_bytes(content)
            elif content.ndim == 3 and content.shape[0] in (3,) and name.endswith(".png"):
                Image.fromarray(content.transpose(1, 2, 0)).save(path)
            else:
                write_tif(path, content)
    return root


ms = np.full((13, 64, 64), 1000, dtype=np.uint16)


@pytest.mark.parametrize("spec,extra,message", [
    ({}, [], "at least two class"),
    ({"A": {"a.tif": ms}}, [], "at least two class"),
    ({"A": {"a.tif": ms}, "B": {"b.tif": b"not a tiff"}}, [], "cannot read patch"),
    ({"A": {"a.tif": ms}, "B": {"b.tif": np.ones((13, 32, 32), np.uint16)}}, [], "mixed patches"),
    ({"A": {"a.png": np.zeros((3, 64, 64), np.uint8)},
      "B": {"b.png": np.zeros((3, 64, 64), np.uint8)}}, ["--bands", "B04,B8A"],
     "(they have 3 bands"),
])
def test_bad_training_data(tmp_path, spec, extra, message):
    root = make_folder(tmp_path, spec)
    root.mkdir(exist_ok=True)
    result = run_cli("train", "--data", str(root), "--out", str(tmp_path / "m"), "--epochs", "1",
                     *extra)
    assert result.returncode == 1 and message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "m").exists() or not list((tmp_path / "m").glob("*.json"))


def test_failed_training_keeps_the_last_good_model(tmp_path):
    rng = np.random.default_rng(0)
    good = make_folder(tmp_path, {c: {f"{i}.tif": rng.integers(1, 3000, (13, 64, 64),
                                                                   dtype=np.uint16)
                                      for i in range(4)} for c in ("A", "B")})
    out = tmp_path / "m"
    ok = run_cli("train", "--data", str(good), "--out", str(out), "--name", "m", "--epochs", "1",
                 "--widths", "8", "--device", "cpu", "--val-fraction", "0.25")
    assert ok.returncode == 0, ok.stderr
    before = {p.name: p.read_bytes() for p in out.glob("m.*")}
    (good / "B" / "0.tif").write_bytes(b"truncated")
    bad = run_cli("train", "--data", str(good), "--out", str(out), "--name", "m", "--epochs", "1",
                  "--widths", "8", "--device", "cpu")
    assert bad.returncode == 1 and "cannot read patch" in bad.stderr
    assert {p.name: p.read_bytes() for p in out.glob("m.*")} == before


def test_model_refuses_a_scene_without_its_bands(tmp_path, tiny_model):
    rgb = make_folder(tmp_path, {"Dark": {"a.png": np.zeros((3, 64, 64), np.uint8)},
                                 "Bright": {"b.png": np.zeros((3, 64, 64), np.uint8)}})
    result = run_cli("evaluate", "--model", str(tiny_model), "--data", str(rgb))
    assert result.returncode == 1 and "lacks band(s) B01" in result.stderr


def dihedral(x, code):
    part = torch.rot90(x, code % 4, dims=(-2, -1))
    return part.flip(-1) if code >= 4 else part


def test_augmentation_is_a_dihedral_transform_of_a_mirrored_shift():
    from geolulc.models.augment import Augmentation, augment
    x = torch.arange(6 * 2 * 16 * 16, dtype=torch.float32).reshape(6, 2, 16, 16)
    geometric = Augmentation(shift=3, gain=0.0)
    out = augment(x, ["B04", "B08"], geometric, [0, 1e9], 0.0917, 1.7,
                  torch.Generator().manual_seed(1))
    assert out.shape == x.shape
    shifted_somewhere = 0
    for sample, result in zip(x, out):
        padded = torch.nn.functional.pad(sample[None], (3,) * 4, mode="reflect")[0]
        matches = [(code, dy, dx) for code in range(8) for dy in range(7) for dx in range(7)
                   if torch.equal(dihedral(padded, code)[:, dy:dy + 16, dx:dx + 16], result)]
        assert matches, "not a dihedral transform of a shifted patch"
        shifted_somewhere += all((dy, dx) != (3, 3) for _, dy, dx in matches)
    assert shifted_somewhere >= 3  # 6 samples, 48 of 49 offsets are real shifts
    gain = augment(x, ["B04", "B08"], Augmentation(shift=0, gain=0.1), [0, 1e9], 0.0917, 1.7,
                   torch.Generator().manual_seed(2))
    ratio = [float(g.sum() / s.sum()) for g, s in zip(gain, x)]
    assert all(0.9 <= r <= 1.1 for r in ratio) and len(set(np.round(ratio, 6))) > 1


def test_haze_falls_with_wavelength_and_is_in_dn():
    """Haze adds path radiance: most in blue, less in red, little in SWIR, in DN × dn_scale."""
    from geolulc.models.augment import Augmentation, radiometry
    bands = ["B02", "B04", "B08", "B12"]
    x = torch.full((400, 4, 4, 4), 50.0)
    hazy = radiometry(x, bands, Augmentation(gain=0.0, haze_dn=400.0), 0.1,
                      torch.Generator().manual_seed(0))
    added = (hazy - x)[:, :, 0, 0]
    assert (added >= -1e-4).all() and (added[:, 0] <= 40 + 1e-4).all()  # ≤ 400 DN × 0.1
    hazed = added[:, 0] > 0
    assert 0.3 < hazed.float().mean() < 0.7  # half of the patches get haze
    assert (added[hazed, 0] > added[hazed, 1]).all() and (added[hazed, 1] > added[hazed, 2]).all()
    assert (added[hazed, 3] < 0.6 * added[hazed, 0]).all()


def test_edge_cuts_are_filled_as_the_map_fills_them():
    from geolulc.core.windows import fill_unclear
    from geolulc.models.augment import edge_mask, partial
    gen = torch.Generator().manual_seed(3)
    x = torch.rand((8, 3, 32, 32), generator=gen)
    out = partial(x, 1.0, torch.Generator().manual_seed(5))
    replay = torch.Generator().manual_seed(5)
    torch.rand(8, generator=replay)  # the draw that chose the patches
    for i in range(8):
        clear = edge_mask(32, replay)
        assert 0.04 <= 1 - clear.mean() <= 0.51
        expected = fill_unclear(x[i].numpy(), clear)
        assert np.array_equal(out[i].numpy(), expected)
        assert torch.equal(out[i][:, torch.from_numpy(clear)], x[i][:, torch.from_numpy(clear)])
        assert not torch.equal(out[i], x[i])


def test_jpeg_recompression_touches_only_the_rgb_bands_of_the_chosen_share():
    from geolulc.models.augment import jpeg
    gen = torch.Generator().manual_seed(0)
    x = torch.rand((20, 4, 64, 64), generator=gen) * 255
    bands = ["B02", "B03", "B04", "B08"]
    out = jpeg(x, bands, 0.5, torch.Generator().manual_seed(1))
    changed = [(out[i] != x[i]).any(dim=(1, 2)) for i in range(20)]
    assert 3 <= sum(bool(c[0]) for c in changed) <= 17
    assert not any(bool(c[3]) for c in changed)  # B08 is not in a JPEG
    assert torch.equal(jpeg(x, ["B02", "B08", "B11", "B12"], 1.0, gen), x)


def test_losses_rank_a_confident_mistake_above_a_confident_success():
    from geolulc.models.losses import classification_loss, distillation_loss
    right = torch.tensor([[6.0, 0.0, 0.0]])
    wrong = torch.tensor([[0.0, 6.0, 0.0]])
    y = torch.tensor([0])
    ce_right, ce_wrong = (float(classification_loss(v, y, "ce")) for v in (right, wrong))
    bahri_right, bahri_wrong = (float(classification_loss(v, y, "bahri")) for v in (right, wrong))
    assert bahri_right == pytest.approx(ce_right)  # no penalty where the patch is right
    p = torch.tensor([6.0, 0.0, 0.0]).softmax(0)
    assert bahri_wrong == pytest.approx(ce_wrong + float(p[0] - p[1]))
    smooth = float(classification_loss(right, y, "label-smoothing", smoothing=0.1))
    assert smooth > ce_right
    with pytest.raises(ValueError, match="unknown loss"):
        classification_loss(right, y, "focal")
    teacher = torch.tensor([[0.7, 0.2, 0.1]])
    assert float(distillation_loss(teacher.log(), teacher.log())) == pytest.approx(0, abs=1e-6)
    assert float(distillation_loss(wrong, teacher.log())) > 0.1


def test_weight_average_follows_the_decay_with_warm_up():
    from geolulc.models.train import WeightAverage
    net = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.constant_(net.weight, 0.0)
    average = WeightAverage(net, decay=0.9)
    expected = 0.0
    for step in range(1, 30):
        torch.nn.init.constant_(net.weight, float(step))
        average.update(net)
        decay = min(0.9, (1 + step) / (10 + step))
        expected = decay * expected + (1 - decay) * step
        assert float(average.network.weight) == pytest.approx(expected, rel=1e-6)
    last = WeightAverage(net, decay=0.0)
    last.update(net)
    assert float(last.network.weight) == 29.0 and net.weight.requires_grad


def test_blocks_must_match_widths(tmp_path):
    result = run_cli("train", "--data", str(tmp_path), "--out", str(tmp_path / "m"), "--widths",
                     "8,16", "--blocks", "1,2,2")
    assert result.returncode == 1 and "one number per stage" in result.stderr


def test_transfer_without_training_is_exactly_the_source_model(data_dir, tmp_path):
    """RGB model → 13-band model with --epochs 0: the other bands' filters are zero, so every
    real 13-band patch gets the probabilities the RGB model gives its B04/B03/B02."""
    rgb = run_cli("train", "--data", str(real_subset(data_dir, tmp_path)), "--out",
                  str(tmp_path / "rgb"), "--name", "rgb", "--epochs", "1", "--batch-size", "16",
                  "--widths", "8,16", "--device", "cpu")
    assert rgb.returncode == 0, rgb.stderr
    ms_data = real_subset(data_dir, tmp_path, per_class=5, kind="ms")
    ms = run_cli("train", "--data", str(ms_data), "--init", str(tmp_path / "rgb" / "rgb.json"),
                 "--out", str(tmp_path / "ms"), "--name", "ms", "--epochs", "0", "--device", "cpu")
    assert ms.returncode == 0, ms.stderr
    card = json.loads((tmp_path / "ms" / "ms.json").read_text())
    assert len(card["bands"]) == 13 and card["training"]["epochs"] == 0
    assert 0 <= card["metrics"]["val_accuracy"] <= 1 and card["metrics"]["n_val"] == 3
    patches = [str(p) for p in sorted(ms_data.glob("*/*.tif"))]
    out = {name: json.loads(run_cli("classify", *patches, "--model", str(tmp_path / name /
                                                                         f"{name}.json"),
                                    "--json").stdout)
           for name in ("rgb", "ms")}
    for a, b in zip(out["rgb"], out["ms"]):
        for cls in CLASSES:
            assert a["probabilities"][cls] == pytest.approx(b["probabilities"][cls], abs=2e-4)
    alone = run_cli("train", "--data", str(ms_data), "--out", str(tmp_path / "x"), "--epochs", "0")
    assert alone.returncode == 1 and "only makes sense with --init" in alone.stderr


def test_thirteen_band_training_with_extra_patches_a_teacher_and_band_ablation(data_dir,
                                                                              tmp_path):
    """--extra-train joins the training split only, --teacher adds distillation, and
    `evaluate --bands` removes the other bands by setting them to their training mean."""
    from geolulc.models.evaluate import remove_bands
    from geolulc.models.model import load_model, normalise, scale_dn
    from geolulc.models.patchdata import load_patch_folder
    rgb = run_cli("train", "--data", str(real_subset(data_dir, tmp_path)), "--out",
                  str(tmp_path / "rgb"), "--name", "rgb", "--epochs", "1", "--batch-size", "16",
                  "--widths", "8,16", "--device", "cpu")
    assert rgb.returncode == 0, rgb.stderr
    teacher = str(tmp_path / "rgb" / "rgb.json")
    ms_data = real_subset(data_dir, tmp_path, per_class=5, kind="ms")
    extra = tmp_path / "extra"
    for name in CLASSES:
        (extra / name).mkdir(parents=True)
        for src in sorted((data_dir / "eurosat" / "ms" / name).iterdir())[5:8]:
            (extra / name / src.name).symlink_to(src)
    ms = run_cli("train", "--data", str(ms_data), "--extra-train", str(extra), "--init", teacher,
                 "--teacher", teacher, "--loss", "bahri", "--out", str(tmp_path / "ms"),
                 "--name", "ms", "--epochs", "2", "--batch-size", "8", "--device", "cpu")
    assert ms.returncode == 0, ms.stderr
    card = json.loads((tmp_path / "ms" / "ms.json").read_text())
    training = card["training"]
    assert training["n_train"] == 12 + 9 and training["n_val"] == 3  # 15 → 12 + 3, 9 extra
    assert training["teacher"] == "rgb" and training["loss"] == "bahri"
    assert training["domain"]["augmentation"]["haze_dn"] > 0
    model = load_model(tmp_path / "ms" / "ms.json")
    stem = model.network.stem[0].weight
    assert stem[:, [model.bands.index(b) for b in ("B08", "B11")]].abs().sum() > 0  # learnt
    data = load_patch_folder(ms_data, classes=model.classes)
    kept = remove_bands(model, data, ["B04", "B03", "B02"])
    x = normalise(scale_dn(torch.from_numpy(kept.x), model.card.input), model.card.input)
    for i, band in enumerate(model.bands):
        removed = band not in ("B04", "B03", "B02")
        assert bool(x[:, i].abs().max() < 1e-3) == removed, band
    ev = run_cli("evaluate", "--model", str(tmp_path / "ms" / "ms.json"), "--data", str(ms_data),
                 "--bands", "B04,B03,B02", "--json", "--out", str(tmp_path / "ev"))
    assert ev.returncode == 0, ev.stderr
    assert json.loads(ev.stdout)["bands"] == ["B04", "B03", "B02"]
    wrong = run_cli("evaluate", "--model", teacher, "--data", str(ms_data), "--bands", "B08")
    assert wrong.returncode == 1 and "does not use" in wrong.stderr
    changed = run_cli("train", "--data", str(ms_data), "--extra-train", str(extra), "--init",
                      teacher, "--teacher", teacher, "--loss", "ce", "--out", str(tmp_path / "ms"),
                      "--name", "ms", "--epochs", "2", "--batch-size", "8", "--device", "cpu",
                      "--resume")
    assert changed.returncode == 1 and "other training data or options" in changed.stderr
    leak = run_cli("train", "--data", str(ms_data), "--extra-train", str(ms_data), "--init",
                   teacher, "--out", str(tmp_path / "leak"), "--epochs", "1", "--device", "cpu")
    assert leak.returncode == 1 and "validation split" in leak.stderr


def test_real_windows_teach_their_water_share(data_dir, tmp_path):
    """--windows: unlabelled windows with a water share join every step. Forest windows told
    they are water end up wetter than with the window loss switched off; a window file that is
    not one (a pickle, the wrong size) is one line, not a traceback."""
    from geolulc.io.bands import ALL_BANDS
    from geolulc.models.evaluate import predict
    from geolulc.models.model import load_model
    from geolulc.models.patchdata import PatchSet, load_patch_folder
    ms = load_patch_folder(data_dir / "eurosat" / "ms")
    forest = ms.y == ms.classes.index("Forest")
    windows = tmp_path / "w.npz"
    np.savez(windows, x=ms.x[forest], water=np.ones(int(forest.sum()), np.float32),
             bands=np.array(ALL_BANDS))
    data = real_subset(data_dir, tmp_path)
    wetness = {}
    for weight in ("0", "5"):
        out = run_cli("train", "--data", str(data), "--windows", str(windows), "--window-weight",
                      weight, "--out", str(tmp_path / weight), "--name", "m", "--epochs", "20",
                      "--ema", "0", "--batch-size", "16", "--widths", "8,16", "--device", "cpu")
        assert out.returncode == 0, out.stderr
        model = load_model(tmp_path / weight / "m.json")
        assert model.card.training["windows"]["n"] == int(forest.sum())
        rgb = PatchSet(ms.x[forest][:, [ALL_BANDS.index(b) for b in model.bands]], ms.y[forest],
                       model.classes, model.bands, "ms", [])
        probs = predict(model, rgb, torch.device("cpu"), "fp32")
        wetness[weight] = float(probs[:, [model.classes.index("SeaLake")]].sum(1).mean())
    assert wetness["5"] > wetness["0"] + 0.2, wetness
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.array([{"a": 1}], dtype=object), water=np.zeros(1), bands=np.array(["B02"]))
    small = tmp_path / "small.npz"
    np.savez(small, x=ms.x[:2, :, :32, :32], water=np.zeros(2), bands=np.array(ALL_BANDS))
    for path, message in ((bad, "not a window file"), (small, "64, 64")):
        refused = run_cli("train", "--data", str(data), "--windows", str(path), "--out",
                          str(tmp_path / "b"), "--epochs", "1", "--device", "cpu")
        assert refused.returncode == 1 and message in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr
