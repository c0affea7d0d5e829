"""Nothing runs that should not, nothing lies: checkpoints, corrupt weights, non-finite maps."""

from __future__ import annotations

import os
import pickle

import numpy as np
import torch

from conftest import make_tiny_model, run_cli
from geolulc.models.model import load_model, save_model


class _Payload:
    """What an attacker would put in a checkpoint: unpickling it runs a shell command."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickled_payload_in_a_checkpoint_is_refused(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, level in (("Dark", 40), ("Bright", 200)):
        folder = tmp_path / "data" / name
        folder.mkdir(parents=True)
        for i in range(6):
            pixels = np.clip(rng.normal(level, 10, (64, 64, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{name}_{i}.jpg")
    out = tmp_path / "run"
    out.mkdir()
    marker = tmp_path / "pwned"
    with open(out / "checkpoint.pt", "wb") as fh:
        pickle.dump({"network": _Payload(str(marker)), "card": {}, "epoch": 1}, fh)
    result = run_cli("train", "--data", str(tmp_path / "data"), "--out", str(out), "--resume")
    assert result.returncode == 1
    assert not marker.exists()  # the payload never ran
    assert "checkpoint" in result.stderr and "Traceback" not in result.stderr


def test_a_truncated_checkpoint_is_refused(tmp_path):
    from geolulc.errors import GeolulcError
    from geolulc.models.checkpoints import load_checkpoint

    path = tmp_path / "checkpoint.pt"
    torch.save({"network": {"w": torch.ones(3)}, "card": {}, "epoch": 1}, path)
    assert load_checkpoint(path, "cpu")["epoch"] == 1  # a plain checkpoint loads
    path.write_bytes(path.read_bytes()[:40])
    try:
        load_checkpoint(path, "cpu")
    except GeolulcError as exc:
        assert "refused" in str(exc)
    else:
        raise AssertionError("a truncated checkpoint loaded")


def test_overflowing_weights_make_an_error_not_a_map(data_dir, tmp_path):
    """Finite but absurd weights give non-finite probabilities: the map run fails in one line
    and the previous good map stays."""
    from geolulc.io.bands import ALL_BANDS

    good = make_tiny_model(tmp_path / "good", list(ALL_BANDS))
    scene = data_dir / "oscd" / "rennes" / "imgs_1"
    out = tmp_path / "out"
    first = run_cli("map", "--scene", str(scene), "--model", str(good), "--out", str(out),
                    "--name", "m", "--quiet")
    assert first.returncode == 0, first.stderr
    before = (out / "m_landcover.tif").read_bytes()
    model = load_model(good)
    with torch.no_grad():
        model.network.stem[0].weight.fill_(3e38)  # finite, but the activations overflow
    bad = save_model(model.network, model.card, tmp_path / "bad" / "bad.json")
    result = run_cli("map", "--scene", str(scene), "--model", str(bad), "--out", str(out),
                     "--name", "m", "--quiet")
    assert result.returncode == 1 and "non-finite probabilities" in result.stderr
    assert (out / "m_landcover.tif").read_bytes() == before


def test_names_from_files_never_become_paths(tmp_path):
    from geolulc.io.atomic import safe_name

    assert safe_name("../../etc/passwd") == "etc_passwd"
    assert safe_name("/abs/x y") == "abs_x_y"
    assert safe_name("..") == "output"
    assert safe_name("eurosat-rgb_ms.v2") == "eurosat-rgb_ms.v2"


def test_staging_of_a_killed_run_is_removed(tmp_path):
    import subprocess

    from geolulc.io.atomic import staged_outputs

    proc = subprocess.Popen(["true"])  # a process that has exited
    proc.wait()
    stale = tmp_path / f".staging-{proc.pid}-abc"
    stale.mkdir()
    (stale / "x_landcover.tif.part").write_bytes(b"half")
    alive = tmp_path / f".staging-{os.getpid()}-def"  # this process: still running, kept
    alive.mkdir()
    with staged_outputs(tmp_path, last=".txt") as stage:
        (stage / "y.txt").write_text("ok")
    assert not stale.exists() and alive.exists() and (tmp_path / "y.txt").exists()


def test_oscd_scenes_carry_their_acquisition_date(data_dir):
    from geolulc.io.scenes import load_scene

    scene = load_scene(data_dir / "oscd" / "rennes" / "imgs_1")
    assert scene.datetime.strftime("%Y-%m-%d") == "2015-08-21"  # not the 2016 processing date


def test_saved_weights_are_as_readable_as_their_card(tmp_path):
    model = load_model("eurosat-rgb")
    card = save_model(model.network, model.card, tmp_path / "m")
    mode = card.stat().st_mode & 0o777
    assert card.with_suffix(".safetensors").stat().st_mode & 0o777 == mode
    assert load_model(card).digest  # and the digest written in the card matches
