"""Accuracy assessment of a model on labelled patches: the numbers a remote-sensing paper reports."""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from geolulc.core.labels import choose_labels
from geolulc.errors import DataError, MissingInputError, ModelError, ParameterError
from geolulc.io.atomic import atomic_path, write_text_atomic
from geolulc.models.model import Model, band_indices
from geolulc.models.patchdata import PatchSet, stratified_split


def fingerprint(files: list[Path], root: Path) -> str:
    """Identity of a patch folder (its relative file names), to find a model's split again."""
    names = "\n".join(sorted(str(f.relative_to(root)) for f in files))
    return hashlib.sha256(names.encode()).hexdigest()[:16]


def model_inputs(model: Model, data: PatchSet) -> tuple[np.ndarray, bool]:
    """The data's bands in the model's order, and whether they are already in model units."""
    idx = band_indices(data.bands, model.bands)
    return data.x[:, idx], data.kind == "rgb"


#: Band groups of the ablation (`geolulc evaluate --bands`, benchmarks/band_ablation.py).
BAND_GROUPS = {
    "visible (B02 B03 B04)": ["B02", "B03", "B04"],
    "red edge (B05 B06 B07 B8A)": ["B05", "B06", "B07", "B8A"],
    "NIR (B08)": ["B08"],
    "SWIR (B11 B12)": ["B11", "B12"],
    "atmospheric (B01 B09 B10)": ["B01", "B09", "B10"],
}


def remove_bands(model: Model, data: PatchSet, keep: list[str]) -> PatchSet:
    """`data` with every band of the model outside `keep` replaced by its mean.

    The mean is the training patches' mean DN where the card records it (``training.band_mean_dn``),
    else the mean of the model's input normalisation, which is zero after normalisation: either way
    the network gets no information from the band, which is what "accuracy without these bands"
    means for a network with fixed inputs.
    """
    unknown = sorted(set(keep) - set(model.bands))
    if unknown:
        raise ParameterError(f"`bands` names {', '.join(unknown)}, which {model.name} does not "
                           f"use (it uses {', '.join(model.bands)})")
    spec = model.card.input
    if spec.kind != "linear":
        raise ParameterError(f"`bands` needs a patch classifier; {model.name} is not one")
    recorded = model.card.training.get("band_mean_dn")
    x = data.x.astype(np.float32, copy=True)
    for band in model.bands:
        if band in keep or band not in data.bands:
            continue
        i = model.bands.index(band)
        if recorded and data.kind != "rgb":
            x[:, data.bands.index(band)] = float(recorded[i])
            continue
        mean = spec.mean[i]
        x[:, data.bands.index(band)] = mean if data.kind == "rgb" else \
            (mean - spec.dn_offset) / spec.dn_scale
    return PatchSet(x, data.y, data.classes, data.bands, data.kind, data.files, data.root,
                    data.excluded)


def predict(model: Model, data: PatchSet, device: torch.device, precision: str = "auto",
            batch_size: int | None = None, engine: str = "auto") -> np.ndarray:
    """Class probabilities of every patch, computed exactly as `map` computes them.

    The same `Classifier` is used (batches, channels-last, bf16 where the hardware has it unless
    `precision` says fp32), so the accuracy reported is the accuracy of the maps.
    """
    from geolulc.models.inference import Classifier

    x, scaled = model_inputs(model, data)
    return Classifier(model, device, batch_size, precision, engine).probabilities(x, scaled=scaled)


def validation_subset(model: Model, data: PatchSet, root: Path) -> PatchSet:
    """The part of `data` that the model's training run held out, identified from its card.

    The card gives the folder's fingerprint, the names it left out, the split's seed and fraction.
    """
    training = model.card.training
    skip = set(training.get("excluded_names", []))
    keep = [i for i, f in enumerate(data.files) if f.stem not in skip]
    data = PatchSet(data.x[keep], data.y[keep], data.classes, data.bands, data.kind,
                    [data.files[i] for i in keep], data.root)
    if training.get("data_fingerprint") != fingerprint(data.files, root):
        raise ParameterError(f"`split='val'` needs the folder {model.name} was trained on; "
                           f"{root} differs from it")
    _, val = stratified_split(data.y, training["val_fraction"], training["seed"])
    return PatchSet(data.x[val], data.y[val], data.classes, data.bands, data.kind,
                    [data.files[i] for i in val])


def precision_recall_f1(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """The three scores of one class (or of change), 0 where undefined."""
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return float(precision), float(recall), float(f1)


def metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict:
    """Overall accuracy, Cohen's kappa, per-class precision/recall/F1, confusion matrix."""
    k = len(classes)
    cm = np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)
    n = int(cm.sum())
    accuracy = float(np.trace(cm) / n) if n else 0.0
    expected = float((cm.sum(0) * cm.sum(1)).sum() / n**2) if n else 0.0
    kappa = (accuracy - expected) / (1 - expected) if expected < 1 else 1.0
    per_class = {}
    for i, name in enumerate(classes):
        tp = int(cm[i, i])
        precision, recall, f1 = precision_recall_f1(tp, int(cm[:, i].sum()) - tp,
                                                    int(cm[i].sum()) - tp)
        per_class[name] = {"precision": round(float(precision), 4),
                           "recall": round(float(recall), 4), "f1": round(float(f1), 4),
                           "support": int(cm[i].sum())}
    return {"accuracy": round(accuracy, 4), "kappa": round(float(kappa), 4), "n": n,
            "per_class": per_class, "confusion_matrix": cm.tolist(), "classes": classes}


def confusion_csv(result: dict) -> str:
    """The confusion matrix as CSV: one row per true class, one column per predicted class."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["true \\ predicted", *result["classes"]])
    for name, row in zip(result["classes"], result["confusion_matrix"]):
        writer.writerow([name, *row])
    return buf.getvalue()


def confusion_png(result: dict, path: Path) -> None:
    """Row-normalised confusion matrix as a heat map with counts."""
    cm = np.array(result["confusion_matrix"], dtype=float)
    share = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    k, cell, left, top = len(cm), 44, 150, 150
    img = Image.new("RGB", (left + k * cell + 10, top + k * cell + 30), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    for i, name in enumerate(result["classes"]):
        draw.text((5, top + i * cell + cell // 3), name[:22], fill="black", font=font)
        label = Image.new("RGB", (140, 14), "white")
        ImageDraw.Draw(label).text((0, 0), name[:22], fill="black", font=font)
        img.paste(label.rotate(90, expand=True), (left + i * cell + cell // 3, 5))
        for j in range(k):
            shade = int(255 * (1 - share[i, j]))
            box = [left + j * cell, top + i * cell, left + (j + 1) * cell - 1,
                   top + (i + 1) * cell - 1]
            draw.rectangle(box, fill=(shade, shade, 255), outline=(200, 200, 200))
            draw.text((box[0] + 4, box[1] + cell // 3), str(int(cm[i, j])),
                      fill="white" if shade < 120 else "black", font=font)
    draw.text((left, top + k * cell + 8), f"accuracy {result['accuracy']:.4f}, "
              f"kappa {result['kappa']:.4f}, n={result['n']} (rows: true class)",
              fill="black", font=font)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")


def write_reports(result: dict, out_dir: Path, stem: str) -> dict[str, str]:
    """Write the confusion matrix as CSV and PNG into `out_dir`; returns {kind: path}."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / f"{stem}_confusion.csv"
    png_path = out_dir / f"{stem}_confusion.png"
    write_text_atomic(csv_path, confusion_csv(result))
    confusion_png(result, png_path)
    return {"confusion_csv": str(csv_path), "confusion_png": str(png_path)}


@dataclass(frozen=True)
class PatchPrediction:
    """The class of one patch, the probability of every class, and which level decided.

    A two-level model (`geolulc.models.levels`) also gives each level's answer: Dynamic World's
    group shares over the patch and the patch CNN's own class.
    """

    patch: str
    model: str
    label: str
    probability: float
    probabilities: dict[str, float]
    decided_by: str
    """"patch CNN", or "world-wide group, then patch CNN within it" (two-level)."""
    levels: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """As `geolulc classify --json` and the service's `/classify` give it."""
        out = {"patch": self.patch, "model": self.model, "class": self.label,
               "probability": self.probability, "probabilities": self.probabilities,
               "decided_by": self.decided_by}
        return out if self.levels is None else {**out, "levels": self.levels}


def classify_patch_files(paths: list[Path], model: str, device: str = "auto",
                         precision: str = "auto", engine: str = "auto") -> list[PatchPrediction]:
    """Classify single patch files with one model (auto: the bundled one for their bands)."""
    from geolulc.core.device import resolve_device
    from geolulc.defaults import DEFAULT_MODEL
    from geolulc.models.model import auto_model, load_model
    from geolulc.models.patchdata import read_patch

    loaded, dev, rows = None, resolve_device(device), []
    for path in paths:
        if not path.exists():
            raise MissingInputError(f"patch {path} does not exist")
        patch = read_patch(path)
        if loaded is None:
            loaded = load_model(auto_model(set(patch[1]), patches=True) if model == DEFAULT_MODEL
                                else model, dev)
        rows.append(predict_patch(loaded, patch, str(path), dev, precision, engine))
    return rows


def _group_of(model: Model, label: int) -> int:
    """Index of the group of `label` in a two-level model's `label_groups`."""
    groups = model.card.label_groups or []
    return next(i for i, members in enumerate(groups) if label in members)


def predict_patch(model: Model, patch: tuple[np.ndarray, list[str], str], name: str,
                  device: torch.device, precision: str = "auto",
                  engine: str = "auto") -> PatchPrediction:
    """One patch's prediction as `classify` and the service give it (`name`: what it is called)."""
    from geolulc.models.levels import is_two_level, patch_levels

    probs = patch_probabilities(model, patch, name, device, precision, engine)
    best = int(choose_labels(probs, model.card.label_groups))
    levels = None
    if is_two_level(model):
        x, _ = model_inputs(model, PatchSet(patch[0][None], np.zeros(1, dtype=np.int64),
                                            model.classes, patch[1], patch[2], [Path(name)]))
        found = patch_levels(model, x)
        shares, cnn = found.group_shares[0], found.patch_probabilities[0]
        group = _group_of(model, best)  # the label's group: the level that decided it
        levels = {
            "group": found.groups[group], "group_share": round(float(shares[group]), 4),
            "group_shares": {g: round(float(v), 4) for g, v in zip(found.groups, shares)},
            "patch_class": found.patch_classes[int(cnn.argmax())],
            "patch_probability": round(float(cnn.max()), 4),
        }
    return PatchPrediction(name, model.name, model.classes[best], round(float(probs[best]), 4),
                           {c: round(float(p), 4) for c, p in zip(model.classes, probs)},
                           "world-wide group, then patch CNN within it" if levels else "patch CNN",
                           levels)


def patch_probabilities(model: Model, patch: tuple[np.ndarray, list[str], str], name: str,
                        device: torch.device, precision: str = "auto",
                        engine: str = "auto") -> np.ndarray:
    """Class probabilities of one patch as `read_patch` gives it, computed as `map` does.

    `name` names the patch in messages (a path, or an upload's file name).
    """
    arr, bands, kind = patch
    if model.kind != "classifier":
        raise ModelError(f"{model.name} labels pixels, not patches: map an area with it")
    if not np.isfinite(arr).all():
        raise DataError(f"patch {name} holds NaN or infinite values: not reflectance")
    if not np.any(arr):
        raise DataError(f"patch {name} holds no data (every pixel is 0, Sentinel-2's no data)")
    if arr.shape[-2:] != (model.patch_size, model.patch_size):
        raise DataError(f"patch {name} is {arr.shape[-1]}×{arr.shape[-2]} pixels; "
                        f"{model.name} classifies {model.patch_size}×{model.patch_size} patches")
    single = PatchSet(arr[None], np.zeros(1, dtype=np.int64), model.classes, bands, kind,
                      [Path(name)])
    return predict(model, single, device, precision, engine=engine)[0]


@dataclass(frozen=True)
class Evaluation:
    """Scores of a model on a labelled patch folder (`geolulc evaluate --json` prints `to_dict()`)."""

    model: str
    data: str
    split: str
    precision: str
    engine: str
    bands: list[str]
    """The bands the model was allowed to use."""
    accuracy: float
    kappa: float
    n: int
    per_class: dict[str, dict[str, float]]
    """Precision, recall, F1 and support of each class."""
    confusion_matrix: list[list[int]]
    """Rows: true class; columns: predicted class."""
    classes: list[str]
    reports: dict[str, str]
    """{kind: path} of the confusion matrix as CSV and PNG."""
    levels: dict[str, float | int] | None = None
    """A two-level model's levels apart (`geolulc.models.levels.level_scores`): the patch CNN's
    own ten-class accuracy, the world-wide group's, and the CNN's within the true group."""

    def to_dict(self) -> dict[str, Any]:
        """The scores as JSON-ready data."""
        return asdict(self)


def evaluate_folder(model: str, data_dir: Path, split: str = "all", out_dir: Path = Path("outputs"),
                    device: str = "auto", precision: str = "auto", engine: str = "auto",
                    bands: list[str] | None = None) -> Evaluation:
    """Score `model` on the patches of `data_dir` (all, or its training's validation split)."""
    from geolulc.core.device import resolve_device
    from geolulc.io.atomic import safe_name
    from geolulc.models.levels import is_two_level, level_scores, patch_levels
    from geolulc.models.model import load_model
    from geolulc.models.patchdata import load_patch_folder

    if split not in ("all", "val"):
        raise ParameterError(f"`split` must be all or val, not {split!r}")
    dev = resolve_device(device)
    loaded = load_model(model, dev)
    data = load_patch_folder(data_dir, classes=loaded.classes)
    if split == "val":
        data = validation_subset(loaded, data, data_dir)
    if bands:
        data = remove_bands(loaded, data, bands)
    probs = predict(loaded, data, dev, precision, engine=engine)
    scores = metrics(data.y, choose_labels(probs, loaded.card.label_groups), loaded.classes)
    reports = write_reports(scores, out_dir, safe_name(f"{loaded.name}_{data_dir.name}"))
    levels = None
    if is_two_level(loaded):
        levels = level_scores(patch_levels(loaded, model_inputs(loaded, data)[0]), data.y,
                              loaded.classes)
    return Evaluation(model=loaded.name, data=str(data_dir), split=split, precision=precision,
                      engine=engine, bands=list(bands or loaded.bands), reports=reports,
                      levels=levels, **scores)
