"""Training of patch classifiers, with per-epoch checkpoints and resume.

A failed or interrupted run never touches the last good model: the final files are written
atomically only after the last epoch, and checkpoints go to their own file.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import platform
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from geolulc.core.classes import WATER_CLASSES, colors_for
from geolulc.core.device import resolve_device, resolve_precision
from geolulc.defaults import Precision
from geolulc.errors import DataError, ModelError, ParameterError, TrustWarning
from geolulc.io.atomic import atomic_path, check_file_name
from geolulc.models.augment import PRESETS, Augmentation, augment
from geolulc.models.checkpoints import load_checkpoint
from geolulc.models.evaluate import fingerprint
from geolulc.models.losses import classification_loss, distillation_loss
from geolulc.models.model import (
    InputSpec,
    Model,
    band_indices,
    clip_bounds,
    load_model,
    make_card,
    normalise,
    save_model,
)
from geolulc.models.network import build_network
from geolulc.models.patchdata import (
    PatchSet,
    WaterWindows,
    load_patch_folder,
    load_water_windows,
    stratified_split,
)

log = logging.getLogger(__name__)

#: EuroSAT RGB JPEGs are L1C DN scaled linearly: JPEG ≈ DN × 0.0917 + 1.7 (see the data README).
JPEG_SCALE, JPEG_OFFSET = 0.0917, 1.7


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run (`geolulc train`'s options); checked when made."""

    epochs: int = 20
    """Passes over the training split; 0 with an `init` model writes it untrained."""
    batch_size: int = 128
    """Patches per training step."""
    lr: float = 3e-3
    """Peak learning rate of the one-cycle schedule."""
    weight_decay: float = 0.05
    """AdamW weight decay."""
    val_fraction: float = 0.2
    """Share of each class kept out for validation."""
    seed: int = 0
    """Seed of the split, initialisation and augmentation."""
    widths: tuple[int, ...] = (32, 64, 128, 256)
    """Channels of each ResNet stage."""
    blocks: tuple[int, ...] = (1, 1, 1, 1)
    """Residual blocks in each stage (one number per width)."""
    loss: Literal["label-smoothing", "ce", "bahri"] = "label-smoothing"
    """Cross-entropy with label smoothing, plain, or Bahri et al. 2020's improved one."""
    label_smoothing: float = 0.05
    """Smoothing of the targets with the label-smoothing loss."""
    augmentation: Augmentation = field(default_factory=lambda: PRESETS["raw"])
    """Augmentation preset (`geolulc.models.augment.PRESETS`: raw or basic)."""
    distill_weight: float = 1.0
    """Weight of a teacher's soft targets against the labels."""
    window_weight: float = 1.0
    """Weight of the real windows' water-share loss against the labels."""
    ema: float = 0.999
    """Decay of the weight average that is saved and validated (0: the last step's weights)."""
    precision: Precision = "auto"
    """bf16 autocast where the hardware has it (auto), or fp32."""
    name: str = "model"
    """Name of the model (and of its files)."""
    level: Literal["L1C", "L2A"] = "L1C"
    """Processing level the training patches come from."""
    extra_card: dict[str, Any] = field(default_factory=dict)
    """Entries added to the model card."""
    strict: bool = False
    """Refuse to save a model whose training diverged or ended at chance (else a warning)."""

    def __post_init__(self) -> None:
        """Stages agree, numbers are finite, the name is a plain file name (no folders)."""
        check_file_name(self.name)
        if not self.widths or any(w < 1 for w in self.widths):
            raise ParameterError(f"`widths` must be positive channel counts, not {self.widths}")
        if len(self.blocks) != len(self.widths) or any(b < 1 for b in self.blocks):
            raise ParameterError(f"`blocks` needs one number per stage of `widths` "
                                 f"({len(self.widths)}), each at least 1, not {self.blocks}")
        for name in ("lr", "weight_decay", "label_smoothing", "ema", "val_fraction"):
            value = getattr(self, name)
            if not math.isfinite(value):
                raise ParameterError(f"`{name}` must be a finite number, not {value}")


#: Upper bound of the input units: 255 where the EuroSAT JPEGs clip (bands a model initialised
#: from an RGB model inherits), else far above any real reflectance.
JPEG_MAX, DN_MAX_UNITS = 255.0, 2000.0


def input_clip(data: PatchSet, init: Model | None) -> list:
    """The card's input clip for a new model trained on `data`.

    [0, 255] (where the EuroSAT JPEGs clip) for RGB patches and for the bands a model initialised
    from `init` inherits; [0, `DN_MAX_UNITS`] for the other bands of multispectral patches.
    """
    if data.kind == "rgb":
        return [0, JPEG_MAX]
    inherited = set(init.bands) if init is not None else set()
    return [[0, JPEG_MAX if band in inherited else DN_MAX_UNITS] for band in data.bands]


def input_units(x: np.ndarray, kind: str, clip: list) -> np.ndarray:
    """Patches in the model's input units: 8-bit JPEG units for every kind of patch.

    "rgb" patches are JPEGs already; "ms" patches and scene windows are DN.
    """
    if kind == "rgb":
        return x.astype(np.float32)
    low, high = (b.numpy() for b in clip_bounds(clip, x.shape[1]))
    return np.clip(x.astype(np.float32) * JPEG_SCALE + JPEG_OFFSET, low, high)


class WeightAverage:
    """Exponential moving average of a network's weights and batch-norm statistics.

    The averaged network generalises better than the last step's (it smooths the noise of the
    final steps); the decay warms up so that short runs are not dominated by the initial weights.
    """

    def __init__(self, network: nn.Module, decay: float) -> None:
        self.network = copy.deepcopy(network).eval()
        self.decay, self.updates = decay, 0

    @torch.no_grad()
    def update(self, network: nn.Module) -> None:
        """Move the average towards `network`'s weights (copying its integer buffers) after a step."""
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for avg, cur in zip(self.network.state_dict().values(), network.state_dict().values()):
            if avg.dtype.is_floating_point:
                avg.lerp_(cur, 1 - decay)
            else:
                avg.copy_(cur)


def _autocast(precision: str, device: torch.device) -> torch.autocast:
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def _accuracy_loss(network: nn.Module, spec: InputSpec, x: np.ndarray, y: np.ndarray,
                   device: torch.device, precision: str, layout: torch.memory_format,
                   batch: int = 512) -> tuple[float, float]:
    network.eval()
    correct, loss_sum = 0, 0.0
    with torch.inference_mode(), _autocast(precision, device):
        for i in range(0, len(x), batch):
            xb = normalise(torch.from_numpy(x[i:i + batch]).to(device), spec)
            yb = torch.from_numpy(y[i:i + batch]).to(device)
            logits = network(xb.contiguous(memory_format=layout)).float()
            loss_sum += float(nn.functional.cross_entropy(logits, yb, reduction="sum"))
            correct += int((logits.argmax(1) == yb).sum())
    return correct / max(len(x), 1), loss_sum / max(len(x), 1)


@dataclass
class _Split:
    """The training and validation arrays of a run, in the model's input units."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    n_data_train: int  # patches of `data` in the training split (the rest are extra)


def _split(data: PatchSet, extra: PatchSet | None, config: TrainConfig, clip: list,
           synthetic: PatchSet | None = None) -> _Split:
    """The stratified split of `data`, with `extra` patches on the training side only.

    An extra patch that is a validation patch of `data` (the same file name) is refused as a leak.
    """
    train_idx, val_idx = stratified_split(data.y, config.val_fraction, config.seed,
                                          data.classes)
    x_all = input_units(data.x, data.kind, clip)
    x_train, y_train = x_all[train_idx], data.y[train_idx]
    if extra is not None:
        if extra.classes != data.classes or extra.bands != data.bands or extra.kind != data.kind:
            raise DataError("`extra_train` patches must have the classes, bands and kind of "
                            "`data`")
        held_out = {data.files[i].stem for i in val_idx}
        leaked = sorted(p.stem for p in extra.files if p.stem in held_out)
        if leaked:
            raise DataError(f"`extra_train` holds {len(leaked)} patch(es) of the validation "
                            f"split (e.g. {leaked[0]}); they would be trained on")
        x_train = np.concatenate([x_train, input_units(extra.x, extra.kind, clip)])
        y_train = np.concatenate([y_train, extra.y])
    if synthetic is not None:  # generated patches: training only, never validated on
        if synthetic.classes != data.classes or synthetic.bands != data.bands \
                or synthetic.kind != data.kind:
            raise DataError("`synthetic` patches must have the classes, bands and kind of `data`")
        x_train = np.concatenate([x_train, input_units(synthetic.x, synthetic.kind, clip)])
        y_train = np.concatenate([y_train, synthetic.y])
    return _Split(x_train, y_train, x_all[val_idx], data.y[val_idx], len(train_idx))


@dataclass
class _TeacherView:
    """What a distillation teacher sees of a batch: its bands, clipped as its card says."""

    model: Model
    bands: torch.Tensor
    low: torch.Tensor
    high: torch.Tensor

    def soft_targets(self, xb: torch.Tensor) -> torch.Tensor:
        """The teacher's logits for the same augmented batch.

        One view, whatever the teacher's card says: the batch is already randomly turned.
        """
        seen = torch.clamp(xb[:, self.bands], min=self.low, max=self.high)
        return self.model.network(normalise(seen, self.model.card.input)).float()


def _teacher_view(teacher: Model, data: PatchSet, dev: torch.device) -> _TeacherView:
    """A teacher of the same classes and input scaling, on the device, in eval mode."""
    spec = teacher.card.input
    if teacher.classes != data.classes or teacher.kind != "classifier" \
            or spec.kind != "linear" or not spec.clip \
            or (spec.dn_scale, spec.dn_offset) != (JPEG_SCALE, JPEG_OFFSET):
        raise ModelError(f"teacher {teacher.name} must be a patch classifier of the same "
                         f"classes with the same input scaling")
    teacher.network.to(dev).eval()
    low, high = clip_bounds(spec.clip, len(teacher.bands), dev)
    return _TeacherView(teacher, torch.from_numpy(band_indices(data.bands, teacher.bands)),
                        low, high)


def _new_card(data: PatchSet, config: TrainConfig, init: Model | None, x_train: np.ndarray,
              clip: list) -> dict[str, Any]:
    """The card of the model being trained.

    Its normalisation comes from the training split (or, for transfer, from `init` where the
    bands coincide), its architecture from the config or `init`.
    """
    mean = x_train.mean(axis=(0, 2, 3)).tolist()
    std = (x_train.std(axis=(0, 2, 3)) + 1e-3).tolist()
    arch: dict[str, Any] = {"name": "patch-resnet", "widths": list(config.widths),
                            "blocks": list(config.blocks)}
    if init is not None:  # transfer: keep the teacher's normalisation where bands coincide
        for i, band in enumerate(data.bands):
            if band in init.bands:
                j = init.bands.index(band)
                mean[i], std[i] = init.card.input.mean[j], init.card.input.std[j]
        arch = dict(init.card.architecture)
    return make_card(
        name=config.name, architecture=arch, bands=data.bands, level=config.level,
        classes=data.classes, colors=colors_for(data.classes), dn_scale=JPEG_SCALE,
        dn_offset=JPEG_OFFSET, clip=clip,
        mean=mean, std=std, patch_size=int(data.x.shape[-1]), **config.extra_card,
    )


def _checkpoint_to_resume(ckpt_path: Path, dev: torch.device, card: dict[str, Any],
                          settings: dict[str, Any], epochs: int) -> dict[str, Any]:
    """The run's checkpoint, refused unless the same run made it.

    The same run means the same classes, bands, training data and options, and number of epochs.
    """
    ckpt = load_checkpoint(ckpt_path, dev)
    if ckpt["card"]["classes"] != card["classes"] or ckpt["card"]["bands"] != card["bands"]:
        raise ModelError(f"{ckpt_path} was made for other classes or bands; cannot resume")
    if ckpt.get("settings") != settings:
        raise ModelError(f"{ckpt_path} was made with other training data or options "
                         f"(extra patches, windows, teacher, loss or augmentation); "
                         f"resume with the same ones or use a new `out_dir`")
    if ckpt.get("total_epochs") != epochs:
        raise ModelError(f"{ckpt_path} belongs to a run of {ckpt.get('total_epochs')} "
                         f"epochs; resume with the same `epochs`")
    return ckpt


@dataclass
class _Run:
    """Everything one training step reads or updates."""

    config: TrainConfig
    bands: list[str]
    clip: list
    split: _Split
    network: nn.Module
    average: WeightAverage
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    spec: InputSpec
    layout: torch.memory_format
    precision: str
    dev: torch.device
    teacher: _TeacherView | None
    windows: WaterWindows | None
    x_windows: np.ndarray | None
    water_codes: torch.Tensor

    def epoch(self, label: str, rng: np.random.Generator, gen: torch.Generator
              ) -> tuple[float, float]:
        """One pass over the training split in random order; returns (loss, accuracy)."""
        config, x_train, y_train = self.config, self.split.x_train, self.split.y_train
        steps = math.ceil(len(x_train) / config.batch_size)
        order = rng.permutation(len(x_train))
        seen = correct = 0
        loss_sum = 0.0
        bar = tqdm(range(steps), desc=label, unit="batch", leave=False, disable=None)
        for step in bar:
            idx = order[step * config.batch_size:(step + 1) * config.batch_size]
            batch = torch.from_numpy(x_train[idx])
            if self.windows is not None and self.x_windows is not None:
                w_idx = rng.integers(0, len(self.x_windows), max(1, len(idx) // 4))
                batch = torch.cat([batch, torch.from_numpy(self.x_windows[w_idx])])
            xb = augment(batch, self.bands, config.augmentation, self.clip, JPEG_SCALE,
                         JPEG_OFFSET, gen).to(self.dev)
            yb = torch.from_numpy(y_train[idx]).to(self.dev)
            with _autocast(self.precision, self.dev):
                out = self.network(normalise(xb, self.spec).contiguous(memory_format=self.layout))
            logits = out[:len(idx)]
            xb = xb[:len(idx)]
            loss = classification_loss(logits, yb, config.loss, config.label_smoothing)
            if self.windows is not None:
                p_water = out[len(idx):].float().softmax(1)[:, self.water_codes].sum(1)
                target = torch.from_numpy(self.windows.water[w_idx]).to(self.dev)
                loss = loss + config.window_weight * nn.functional.binary_cross_entropy(
                    p_water.clamp(1e-6, 1 - 1e-6), target)
            if self.teacher is not None:
                with torch.no_grad(), _autocast(self.precision, self.dev):
                    soft = self.teacher.soft_targets(xb)
                loss = loss + config.distill_weight * distillation_loss(logits, soft)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.sched.step()
            self.average.update(self.network)
            seen += len(idx)
            loss_sum += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == yb).sum())
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
        return loss_sum / seen, correct / seen

    def validate(self) -> tuple[float, float]:
        """Accuracy and loss of the weight average on the validation split."""
        return _accuracy_loss(self.average.network, self.spec, self.split.x_val, self.split.y_val,
                              self.dev, self.precision, self.layout)


def train(
    data: PatchSet, out_dir: str | Path, config: TrainConfig, device: str = "auto",
    resume: bool = False, init: Model | None = None, extra: PatchSet | None = None,
    teacher: Model | None = None, windows: WaterWindows | None = None,
    synthetic: PatchSet | None = None,
) -> Path:
    """Train on `data`, checkpoint each epoch in `out_dir`, write the final model there.

    Zero epochs with `init` writes the transferred network as it starts (validated, untrained):
    the choice when fine-tuning on a small set does worse than the source model. `extra`
    patches join the training split only, so the validation split of `data` stays the one its
    card names (e.g. places an initialising model never saw). With a `teacher`, the loss adds
    its soft targets on the same augmented batch (the teacher sees the bands it knows). With
    `windows` of real scenes, each step also learns their water share: the probability of the
    water classes is pulled to it (binary cross-entropy), so the network meets raw scene
    texture, haze and land covers EuroSAT lacks without a label of EuroSAT's legend.
    """
    if config.epochs == 0 and init is None:
        raise ParameterError("0 epochs only makes sense with `init` (transfer without training)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    torch.manual_seed(config.seed)
    clip = input_clip(data, init)
    split = _split(data, extra, config, clip, synthetic)
    water_codes = torch.tensor([i for i, c in enumerate(data.classes) if c in WATER_CLASSES])
    x_windows = None
    if windows is not None:
        if not len(water_codes):
            raise ParameterError("`windows` needs a model with water classes (River, SeaLake)")
        x_windows = input_units(windows.x, "ms", clip)  # windows are DN
    view = _teacher_view(teacher, data, dev) if teacher is not None else None
    precision = resolve_precision(config.precision, dev)
    card = _new_card(data, config, init, split.x_train, clip)
    network = build_network(card["architecture"], len(data.bands), len(data.classes)).to(dev)
    if init is not None:
        transfer_weights(init, network, data.bands)
    # channels-last is 2× faster on CPU, but torch 2.13's oneDNN crashes in its backward pass for
    # layers narrower than 16 channels with odd batch sizes (measured), so tiny nets keep NCHW.
    layout = (torch.channels_last if min(card["architecture"]["widths"]) >= 16
              else torch.contiguous_format)
    # documented by `Module.to`, but missing from torch's typed overloads
    network = network.to(memory_format=layout)  # type: ignore[call-overload]
    average = WeightAverage(network, config.ema)
    steps_per_epoch = math.ceil(len(split.x_train) / config.batch_size)
    log.info("training on %d patches (%d of them extra), validating on %d", len(split.x_train),
             len(split.x_train) - split.n_data_train, len(split.x_val))
    opt = torch.optim.AdamW(network.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=config.lr, total_steps=max(config.epochs * steps_per_epoch, 1), pct_start=0.15)
    ckpt_path = out_dir / "checkpoint.pt"
    settings = {"n_train": int(len(split.x_train)),
                "augmentation": config.augmentation.as_dict(),
                "loss": config.loss, "label_smoothing": config.label_smoothing,
                "teacher": teacher.digest if teacher is not None else None,
                "distill_weight": config.distill_weight,
                "windows": [str(f) for f in windows.files] if windows is not None else None,
                "window_weight": config.window_weight,
                "synthetic": _fingerprint_of(synthetic)}
    start_epoch, history, elapsed = 0, [], 0.0
    if resume and not ckpt_path.exists():  # the same command starts and resumes a run
        log.warning("nothing to resume in %s (no checkpoint.pt): starting at epoch 1",
                    ckpt_path.parent)
    if resume and ckpt_path.exists():
        ckpt = _checkpoint_to_resume(ckpt_path, dev, card, settings, config.epochs)
        network.load_state_dict(ckpt["network"])
        average.network.load_state_dict(ckpt["average"])
        average.updates = ckpt["average_updates"]
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        start_epoch, history, elapsed = ckpt["epoch"], ckpt["history"], ckpt["elapsed"]
        card = ckpt["card"]
        log.info("resuming %s at epoch %d", ckpt_path, start_epoch + 1)
    run = _Run(config, data.bands, clip, split, network, average, opt, sched,
               InputSpec.of(card["input"]), layout, precision, dev, view, windows, x_windows,
               water_codes)
    gen = torch.Generator().manual_seed(config.seed + start_epoch)
    rng = np.random.default_rng(config.seed + start_epoch)
    for epoch in range(start_epoch, config.epochs):
        t0 = time.perf_counter()
        network.train()
        if init is not None:
            freeze_batchnorm(network)
        train_loss, train_acc = run.epoch(f"epoch {epoch + 1}/{config.epochs}", rng, gen)
        val_acc, val_loss = run.validate()
        elapsed += time.perf_counter() - t0
        history.append({"epoch": epoch + 1, "train_loss": train_loss,
                        "train_accuracy": train_acc, "val_loss": val_loss,
                        "val_accuracy": val_acc, "elapsed_s": round(elapsed, 1)})
        log.info("epoch %d: train loss %.3f acc %.4f, val loss %.3f acc %.4f (%.0f s)",
                 epoch + 1, train_loss, train_acc, val_loss, val_acc, elapsed)
        with atomic_path(ckpt_path) as tmp:
            torch.save({"network": network.state_dict(), "average": average.network.state_dict(),
                        "average_updates": average.updates, "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict(), "epoch": epoch + 1,
                        "history": history, "elapsed": elapsed, "card": card,
                        "total_epochs": config.epochs, "settings": settings}, tmp)
    card = _final_card(card, data, extra, config, split, teacher, windows, init, precision,
                       elapsed, dev, history)
    card["training"]["synthetic"] = ({"fingerprint": _fingerprint_of(synthetic),
                                      "n": int(len(synthetic.y))} if synthetic is not None
                                     else None)
    card["metrics"] = {"val_accuracy": history[-1]["val_accuracy"] if history
                       else run.validate()[0], "n_val": int(len(split.x_val))}
    check_learned(history, card["metrics"]["val_accuracy"], len(card["classes"]), config.strict)
    # documented by `Module.to`, but missing from torch's typed overloads
    final = average.network.to(memory_format=torch.contiguous_format).eval()  # type: ignore[call-overload]
    return save_model(final, card, out_dir / config.name)


#: Validation accuracy within this many points of chance (1 / classes) counts as not learnt.
CHANCE_MARGIN = 0.05


def check_learned(history: list[dict], val_accuracy: float, n_classes: int, strict: bool) -> None:
    """Say when training diverged (a non-finite loss) or ended at chance; `strict` refuses it."""
    losses = [h[k] for h in history for k in ("train_loss", "val_loss")]
    chance = 1 / n_classes
    problem = ("training diverged (a loss became NaN or infinite; try a smaller --lr)"
               if not all(math.isfinite(v) for v in losses) else
               f"training ended at chance: validation accuracy {val_accuracy:.3f} against "
               f"{chance:.3f} for {n_classes} classes (try a smaller --lr or more epochs)"
               if val_accuracy <= chance + CHANCE_MARGIN else None)
    if problem is None:
        return
    if strict:
        raise ModelError(f"{problem}; nothing was saved (strict)")
    warnings.warn(f"{problem}; the model is saved, but it has not learnt", TrustWarning,
                  stacklevel=3)


def _fingerprint_of(patches: PatchSet | None) -> str | None:
    """Identity of a patch folder for the card and the resume check (None without one)."""
    return fingerprint(patches.files, patches.root) if patches is not None and patches.root else None


def _final_card(card: dict[str, Any], data: PatchSet, extra: PatchSet | None,
                config: TrainConfig, split: _Split, teacher: Model | None,
                windows: WaterWindows | None, init: Model | None, precision: str,
                elapsed: float, dev: torch.device, history: list[dict[str, Any]]
                ) -> dict[str, Any]:
    """The card with the record of the run: data, options, hardware and every epoch's figures."""
    card = dict(card)
    card["training"] = {
        **card.get("training", {}),
        "data_fingerprint": fingerprint(data.files, data.root) if data.root else None,
        "excluded_names": data.excluded,
        "n_train": int(len(split.x_train)), "n_val": int(len(split.x_val)),
        "extra_train": (fingerprint(extra.files, extra.root) if extra.root else None)
        if extra is not None else None,
        "domain": {"level": config.level,
                   "input": f"DN × {JPEG_SCALE} + {JPEG_OFFSET} (the map's scaling), clipped "
                            f"as the card says",
                   "augmentation": config.augmentation.as_dict()},
        "loss": config.loss, "label_smoothing": config.label_smoothing,
        "teacher": teacher.name if teacher is not None else None,
        "windows": {"files": [Path(f).name for f in windows.files], "n": int(len(windows.x)),
                    "weight": config.window_weight, "target": "dynamic-world water share"}
        if windows is not None else None,
        "distill_weight": config.distill_weight if teacher is not None else None,
        "val_fraction": config.val_fraction, "seed": config.seed, "epochs": config.epochs,
        "batch_size": config.batch_size, "lr": config.lr, "weight_decay": config.weight_decay,
        "weight_average_decay": config.ema, "precision": precision,
        "wall_time_s": round(elapsed, 1),
        "initialised_from": init.name if init is not None else None,
        "batchnorm_frozen": init is not None,
        "hardware": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores"
        + (f", {torch.cuda.get_device_name(dev)}" if dev.type == "cuda" else ""),
        "history": history,
    }
    return card


@dataclass(frozen=True)
class TrainedModel:
    """A model a training run wrote: its card (beside its weights) and validation figures."""

    card: Path
    val_accuracy: float
    n_val: int


def train_folder(data_dir: Path, out_dir: Path, config: TrainConfig, bands: list[str] | None = None,
                 exclude: Path | None = None, init: str | None = None,
                 extra_train: Path | None = None, teacher: str | None = None,
                 windows: list[Path] | None = None, device: str = "auto",
                 resume: bool = False, synthetic: Path | None = None) -> TrainedModel:
    """Load the patch folders and models a run names, train, and say what was written."""
    data = load_patch_folder(data_dir, bands, exclude=exclude)
    extra = (load_patch_folder(extra_train, data.bands, classes=data.classes)
             if extra_train else None)
    config = replace(config, extra_card={**config.extra_card, "training": {
        "data": str(data_dir), "excluded_names_from": str(exclude) if exclude else None}})
    found = (load_water_windows(windows, data.bands, int(data.x.shape[-1]))
             if windows else None)
    generated = None
    if synthetic:
        from geolulc.models.synth import check_no_leak

        check_no_leak(synthetic, data, config.seed, config.val_fraction)
        generated = load_patch_folder(synthetic, data.bands, classes=data.classes)
    path = train(data, out_dir, config, device=device, resume=resume,
                 init=load_model(init) if init else None, extra=extra,
                 teacher=load_model(teacher) if teacher else None, windows=found,
                 synthetic=generated)
    metrics = json.loads(path.read_text())["metrics"]
    return TrainedModel(path, metrics["val_accuracy"], metrics["n_val"])


def freeze_batchnorm(network: nn.Module) -> None:
    """Keep the transferred normalisation statistics.

    Re-estimating them on a few hundred fine-tuning patches would shift every layer away from what
    the source learnt.
    """
    for module in network.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.eval()


def transfer_weights(source: Model, target: nn.Module, target_bands: list[str]) -> None:
    """Copy a trained network into one with other input bands.

    Every layer but the first is copied as is; the first convolution's filters for bands the
    source knew are copied, the others start at zero, so the new network begins exactly where the
    source was and learns what the extra bands add.
    """
    state = {k: v.clone() for k, v in source.network.state_dict().items()}
    stem_key = "stem.0.weight"
    old = state[stem_key]
    new = torch.zeros((old.shape[0], len(target_bands), *old.shape[2:]), dtype=old.dtype)
    for i, band in enumerate(target_bands):
        if band in source.bands:
            new[:, i] = old[:, source.bands.index(band)]
    state[stem_key] = new
    target.load_state_dict(state)
