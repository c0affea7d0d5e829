"""Accuracy assessment of a model on labelled patches: the numbers a remote-sensing paper reports."""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from geolulc.errors import GeolulcError
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
    """`data` with every band of the model outside `keep` replaced by the mean of the model's
    input normalisation for that band (zero after normalisation): the network then gets no
    information from it, which is what "accuracy without these bands" means for a network
    with fixed inputs."""
    unknown = sorted(set(keep) - set(model.bands))
    if unknown:
        raise GeolulcError(f"--bands names {', '.join(unknown)}, which {model.name} does not "
                           f"use (it uses {', '.join(model.bands)})")
    spec = model.card["input"]
    if spec.get("kind", "linear") != "linear":
        raise GeolulcError(f"--bands needs a patch classifier; {model.name} is not one")
    x = data.x.astype(np.float32, copy=True)
    for band in model.bands:
        if band in keep or band not in data.bands:
            continue
        mean = spec["mean"][model.bands.index(band)]
        x[:, data.bands.index(band)] = mean if data.kind == "rgb" else \
            (mean - spec["dn_offset"]) / spec["dn_scale"]
    return PatchSet(x, data.y, data.classes, data.bands, data.kind, data.files, data.root,
                    data.excluded)


def predict(model: Model, data: PatchSet, device: torch.device, precision: str = "auto",
            batch_size: int | None = None, engine: str = "auto") -> np.ndarray:
    """Class probabilities of every patch, computed exactly as `map` computes them (the same
    `Classifier`: batches, channels-last, bf16 where the hardware has it unless `precision`
    says fp32), so the accuracy reported is the accuracy of the maps."""
    from geolulc.models.inference import Classifier

    x, scaled = model_inputs(model, data)
    return Classifier(model, device, batch_size, precision, engine).probabilities(x, scaled=scaled)


def validation_subset(model: Model, data: PatchSet, root: Path) -> PatchSet:
    """The part of `data` that the model's training run held out, identified from its card
    (the folder's fingerprint, the names it left out, the split's seed and fraction)."""
    training = model.card.get("training", {})
    skip = set(training.get("excluded_names", []))
    keep = [i for i, f in enumerate(data.files) if f.stem not in skip]
    data = PatchSet(data.x[keep], data.y[keep], data.classes, data.bands, data.kind,
                    [data.files[i] for i in keep], data.root)
    if training.get("data_fingerprint") != fingerprint(data.files, root):
        raise GeolulcError(f"--split val needs the folder {model.name} was trained on; "
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
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / f"{stem}_confusion.csv"
    png_path = out_dir / f"{stem}_confusion.png"
    write_text_atomic(csv_path, confusion_csv(result))
    confusion_png(result, png_path)
    return {"confusion_csv": str(csv_path), "confusion_png": str(png_path)}
