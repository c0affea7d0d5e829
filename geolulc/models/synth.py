"""Synthesised training patches: a class-conditional GAN, judged by what it adds to accuracy.

The generator is a conditional DCGAN (Radford et al. 2016): noise and a learnt class embedding
become a 4 × 4 map that four transposed convolutions with batch norm and ReLU grow to a 64 × 64
patch of every band. The discriminator is five convolutions with spectral norm (Miyato et al.
2018) and leaky ReLU, conditioned by projection (Miyato & Koyama 2018); before its last one it
sees how much the batch's patches of each class differ (a within-class minibatch standard
deviation, Karras et al. 2018), without which the generator collapsed to one patch per class
(measured: `SynthQuality.diversity` 0.005). Both are trained with the hinge loss. Patches are
learnt in the units of the data (DN for 13-band GeoTIFFs, 8-bit values for RGB JPEGs), each band
standardised with the training set's statistics and squashed into tanh's range.

A generator is stored as the project's models are: ``NAME.safetensors`` and a JSON card (classes,
bands, kind, normalisation, sizes) with the SHA-256 of the weights; checkpoints are read with
torch's weights-only loader, so nothing in a file is ever executed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm
from tqdm import tqdm

from geolulc._version import __version__
from geolulc.core.device import resolve_device
from geolulc.errors import DataError, ModelError, ParameterError
from geolulc.io.atomic import atomic_path, check_file_name, safe_name, write_text_atomic
from geolulc.models.checkpoints import load_checkpoint
from geolulc.models.evaluate import fingerprint
from geolulc.models.patchdata import PatchSet, stratified_split

if TYPE_CHECKING:
    from geolulc.models.network import DynamicWorldFusion, PatchResNet

log = logging.getLogger(__name__)

FORMAT = "geolulc-synth"
#: What `write_samples` records beside the patches: the generator and what it was trained on.
MANIFEST = "synthetic.json"
#: Standard deviations of a band that map onto tanh's ±1 (values beyond are clipped).
SPREAD = 3.0
#: Below this diversity (see `SynthQuality.diversity`) a class is reported as collapsed.
COLLAPSED = 0.25
#: The networks' layout, in every checkpoint's identity: one of an earlier layout is refused.
ARCHITECTURE = "cdcgan-within-class-spread"
PATCH = 64


@dataclass(frozen=True)
class SynthConfig:
    """Settings of one generator training run (`geolulc synth train`)."""

    epochs: int = 30
    """Passes over the patches."""
    batch_size: int = 64
    lr: float = 2e-4
    """Adam learning rate of both networks (β = 0, 0.9)."""
    z_dim: int = 128
    """Length of the noise vector."""
    width: int = 64
    """Channels of the generator's last layer (doubling towards its first)."""
    seed: int = 0
    val_fraction: float = 0.2
    """Share of each class held out, as `train` with the same seed holds it out for validation:
    the generator never sees the patches a classifier trained with its samples is judged on."""
    name: str = "synth"

    def __post_init__(self) -> None:
        """Sizes must be positive, the learning rate finite, the name a plain file name."""
        check_file_name(self.name)
        if min(self.epochs, self.batch_size, self.z_dim, self.width) < 1:
            raise ParameterError("`epochs`, `batch_size`, `z_dim` and `width` must be at least 1")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ParameterError(f"`lr` must be a positive number, not {self.lr}")
        if not 0 < self.val_fraction < 1:
            raise ParameterError(f"`val_fraction` is a share, 0–1, not {self.val_fraction}")


class Generator(nn.Module):
    """Noise and a class to a 64 × 64 patch in tanh units."""

    def __init__(self, n_classes: int, n_bands: int, z_dim: int, width: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(n_classes, z_dim)
        self.project = nn.Linear(2 * z_dim, width * 8 * 4 * 4)
        self.width = width
        layers: list[nn.Module] = [nn.BatchNorm2d(width * 8), nn.ReLU(inplace=True)]
        channels = [width * 8, width * 4, width * 2, width, n_bands]
        for i, (cin, cout) in enumerate(zip(channels[:-1], channels[1:], strict=True)):
            layers.append(nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=i == 3))
            if i < 3:
                layers += [nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers, nn.Tanh())

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Patches (N, bands, 64, 64) for noise `z` (N, z_dim) and classes `y` (N,)."""
        h = self.project(torch.cat([z, self.embed(y)], dim=1))
        return self.body(h.view(-1, self.width * 8, 4, 4))


def within_class_spread(h: torch.Tensor, y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """One channel (N, 1, H, W): how much the batch's patches of each one's class differ.

    The minibatch standard deviation of Karras et al. (2018), taken within each class: a
    generator that draws one patch per class gives 0 where real batches do not, so the
    discriminator can tell, and the generator cannot collapse unnoticed.
    """
    shape = (-1,) + (1,) * (h.dim() - 1)
    counts = torch.bincount(y, minlength=n_classes).clamp(min=1).to(h.dtype).view(shape)
    means = torch.zeros((n_classes, *h.shape[1:]), dtype=h.dtype, device=h.device)
    means = means.index_add(0, y, h) / counts
    var = torch.zeros_like(means).index_add(0, y, (h - means[y]) ** 2) / counts
    spread = (var + 1e-8).sqrt().mean(dim=tuple(range(1, h.dim())))
    return spread[y].view(-1, 1, 1, 1).expand(-1, 1, *h.shape[2:])


class Discriminator(nn.Module):
    """A patch and its class to a realness score (projection discriminator)."""

    def __init__(self, n_classes: int, n_bands: int, width: int) -> None:
        super().__init__()
        channels = [n_bands, width, width * 2, width * 4, width * 8]
        layers: list[nn.Module] = []
        for cin, cout in zip(channels[:-1], channels[1:], strict=True):
            layers += [spectral_norm(nn.Conv2d(cin, cout, 4, 2, 1)),
                       nn.LeakyReLU(0.2, inplace=True)]
        self.body = nn.Sequential(*layers)
        self.n_classes = n_classes
        self.last = nn.Sequential(spectral_norm(nn.Conv2d(width * 8 + 1, width * 8, 3, 1, 1)),
                                  nn.LeakyReLU(0.2, inplace=True))
        self.linear = spectral_norm(nn.Linear(width * 8, 1))
        self.embed = spectral_norm(nn.Embedding(n_classes, width * 8))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Scores (N,): higher for patches that look real for their class, and as varied."""
        h = self.body(x)
        h = self.last(torch.cat([h, within_class_spread(h, y, self.n_classes)], dim=1))
        h = h.sum(dim=(2, 3))
        return self.linear(h).squeeze(1) + (self.embed(y) * h).sum(dim=1)


@dataclass(frozen=True)
class SynthCard:
    """What a generator makes and how its output maps back to the data's units."""

    name: str
    classes: list[str]
    bands: list[str]
    kind: str  # "ms" (DN) or "rgb" (8-bit)
    mean: list[float]
    std: list[float]
    z_dim: int
    width: int
    weights_sha256: str = ""
    training: dict[str, Any] | None = None

    def to_units(self, g: torch.Tensor) -> np.ndarray:
        """Generator output (tanh units) back to the data's units, clipped to its range."""
        mean = torch.tensor(self.mean).view(1, -1, 1, 1)
        std = torch.tensor(self.std).view(1, -1, 1, 1)
        x = g.detach().float().cpu() * SPREAD * std + mean
        high = 255.0 if self.kind == "rgb" else 65535.0
        return x.clamp(0, high).round().numpy().astype(np.uint8 if self.kind == "rgb" else np.uint16)


def to_tanh(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> torch.Tensor:
    """Patches in the data's units to the generator's (standardised, within ±1)."""
    t = (torch.from_numpy(x.astype(np.float32)) - torch.from_numpy(mean).view(1, -1, 1, 1)) \
        / (SPREAD * torch.from_numpy(std).view(1, -1, 1, 1))
    return t.clamp(-1, 1)


def train_generator(data: PatchSet, out_dir: Path, config: SynthConfig, device: str = "auto",
                    resume: bool = False) -> Path:
    """Train a conditional generator on `data`; checkpoint and sample grid every epoch.

    Returns the card of the final generator (``out_dir/NAME.json`` beside its weights).
    """
    if data.x.shape[-2:] != (PATCH, PATCH):
        raise DataError(f"the generator makes {PATCH}×{PATCH} patches; these are "
                        f"{data.x.shape[-1]}×{data.x.shape[-2]}")
    out_dir.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    torch.manual_seed(config.seed)
    train_idx, val_idx = stratified_split(data.y, config.val_fraction, config.seed, data.classes)
    x_seen = data.x[train_idx]
    mean = x_seen.mean(axis=(0, 2, 3)).astype(np.float32)
    std = (x_seen.std(axis=(0, 2, 3)) + 1.0).astype(np.float32)
    x_all = to_tanh(x_seen, mean, std)
    y_all = torch.from_numpy(data.y[train_idx].astype(np.int64))
    k, n_bands = len(data.classes), len(data.bands)
    gen = Generator(k, n_bands, config.z_dim, config.width).to(dev)
    disc = Discriminator(k, n_bands, config.width).to(dev)
    opt_g = torch.optim.Adam(gen.parameters(), lr=config.lr, betas=(0.0, 0.9))
    opt_d = torch.optim.Adam(disc.parameters(), lr=config.lr, betas=(0.0, 0.9))
    card = SynthCard(config.name, list(data.classes), list(data.bands), data.kind,
                     mean.tolist(), std.tolist(), config.z_dim, config.width)
    identity = {"classes": card.classes, "bands": card.bands, "kind": card.kind,
                "config": asdict(config), "n": int(len(data.y)),
                "data_fingerprint": fingerprint(data.files, data.root) if data.root else None,
                "held_out": int(len(val_idx)), "architecture": ARCHITECTURE}
    ckpt_path, start, history = out_dir / "checkpoint.pt", 0, []
    if resume and ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path, dev, ("generator", "discriminator", "identity"),
                               "generator")
        if ckpt["identity"] != identity:
            raise ModelError(f"{ckpt_path} was made from other patches or settings, or by an "
                             "earlier layout of the networks; resume with the same ones or use a "
                             "new `out_dir`")
        gen.load_state_dict(ckpt["generator"])
        disc.load_state_dict(ckpt["discriminator"])
        opt_g.load_state_dict(ckpt["opt_g"])
        opt_d.load_state_dict(ckpt["opt_d"])
        start, history = int(ckpt["epoch"]), list(ckpt["history"])
        log.info("resuming %s at epoch %d", ckpt_path, start + 1)
    elif resume:
        log.warning("nothing to resume in %s (no checkpoint.pt): starting at epoch 1", out_dir)
    rng = torch.Generator().manual_seed(config.seed + start)
    fixed = torch.randn(8 * k, config.z_dim, generator=torch.Generator().manual_seed(config.seed))
    steps = math.ceil(len(y_all) / config.batch_size)
    for epoch in range(start, config.epochs):
        t0 = time.perf_counter()
        gen.train()
        disc.train()
        order = torch.randperm(len(y_all), generator=rng)
        d_sum = g_sum = 0.0
        for step in tqdm(range(steps), desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch",
                         leave=False, disable=None):
            idx = order[step * config.batch_size:(step + 1) * config.batch_size]
            real, y = x_all[idx].to(dev), y_all[idx].to(dev)
            z = torch.randn(len(idx), config.z_dim, generator=rng).to(dev)
            fake = gen(z, y)
            d_loss = (torch.relu(1 - disc(real, y)).mean()
                      + torch.relu(1 + disc(fake.detach(), y)).mean())
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            g_loss = -disc(fake, y).mean()
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            d_sum, g_sum = d_sum + d_loss.item(), g_sum + g_loss.item()
        history.append({"epoch": epoch + 1, "d_loss": d_sum / steps, "g_loss": g_sum / steps,
                        "seconds": round(time.perf_counter() - t0, 1)})
        log.info("epoch %d: discriminator %.3f, generator %.3f", epoch + 1, d_sum / steps,
                 g_sum / steps)
        _sample_grid(gen, card, fixed, out_dir / f"samples_epoch{epoch + 1:03d}.png", dev)
        with atomic_path(ckpt_path) as tmp:
            torch.save({"generator": gen.state_dict(), "discriminator": disc.state_dict(),
                        "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
                        "epoch": epoch + 1, "history": history, "identity": identity}, tmp)
    return save_generator(gen, SynthCard(**{**asdict(card), "training": {
        **identity, "history": history, "geolulc_version": __version__}}), out_dir)


def save_generator(gen: Generator, card: SynthCard, out_dir: Path) -> Path:
    """Write NAME.safetensors, then NAME.json with the weights' SHA-256, as models are written."""
    from geolulc.models.model import save_model

    return save_model(gen, {"format": FORMAT, **asdict(card)}, out_dir / card.name)


def load_generator(path: Path, device: str = "cpu") -> tuple[Generator, SynthCard]:
    """A generator and its card from a folder or a card path, its weights checked."""
    card_path = path if path.suffix == ".json" else next(iter(sorted(path.glob("*.json"))), path)
    try:
        data = json.loads(card_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read generator card {card_path}: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ModelError(f"{card_path} is not a geolulc generator card")
    data.pop("format")
    try:
        card = SynthCard(**data)
    except TypeError as exc:
        raise ModelError(f"generator card {card_path} is malformed: {exc}") from None
    unsafe = [c for c in card.classes if not isinstance(c, str) or safe_name(c) != c]
    if unsafe:  # class names become folder names when sampling
        raise ModelError(f"generator card {card_path} has class names that are no plain folder "
                         f"names: {unsafe[:3]}")
    weights = card_path.with_suffix(".safetensors")
    try:
        blob = weights.read_bytes()
    except OSError as exc:
        raise ModelError(f"generator weights {weights} are unreadable: {exc.strerror}") from None
    if hashlib.sha256(blob).hexdigest() != card.weights_sha256:
        raise ModelError(f"generator weights {weights} do not match the SHA-256 in their card")
    gen = Generator(len(card.classes), len(card.bands), card.z_dim, card.width)
    gen.load_state_dict(load_file(str(weights)))
    return gen.to(resolve_device(device)).eval(), card


def generate(gen: Generator, card: SynthCard, classes: list[str], per_class: int,
             seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`per_class` patches of each of `classes`, in the data's units, with their labels."""
    unknown = [c for c in classes if c not in card.classes]
    if unknown:
        raise ParameterError(f"the generator knows no class {', '.join(unknown)} (it makes "
                             f"{', '.join(card.classes)})")
    y = torch.tensor([card.classes.index(c) for c in classes for _ in range(per_class)])
    z = torch.randn(len(y), card.z_dim, generator=torch.Generator().manual_seed(seed))
    device = next(gen.parameters()).device
    with torch.no_grad():
        out = [card.to_units(gen(z[i:i + 256].to(device), y[i:i + 256].to(device)))
               for i in range(0, len(y), 256)]
    return np.concatenate(out), y.numpy()


def _sample_grid(gen: Generator, card: SynthCard, z: torch.Tensor, path: Path,
                 device: torch.device) -> None:
    """A PNG of 8 samples per class (rows), in true colour."""
    from PIL import Image

    k = len(card.classes)
    gen.eval()
    with torch.no_grad():
        y = torch.arange(k).repeat_interleave(8)
        patches = card.to_units(gen(z.to(device), y.to(device))).astype(np.float32)
    gen.train()
    rgb = ([card.bands.index(b) for b in ("B04", "B03", "B02")]
           if {"B04", "B03", "B02"} <= set(card.bands) else [0, 0, 0])
    scale = 255.0 if card.kind == "rgb" else 2750.0  # about the EuroSAT JPEGs' white
    tiles = np.clip(patches[:, rgb] / scale * 255, 0, 255).astype(np.uint8)
    grid = tiles.reshape(k, 8, 3, PATCH, PATCH).transpose(0, 3, 1, 4, 2)
    image = Image.fromarray(grid.reshape(k * PATCH, 8 * PATCH, 3))
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


def write_samples(x: np.ndarray, y: np.ndarray, card: SynthCard, out_dir: Path) -> list[Path]:
    """Patches in the EuroSAT layout (``out_dir/CLASS/synth_CLASS_N``), each marked synthetic.

    13-band patches are GeoTIFFs (uint16, band names as descriptions, no georeference: they
    show no place) with a ``synthetic`` tag; RGB patches are PNGs with a ``synthetic`` text chunk.
    """
    import rasterio
    from PIL import Image, PngImagePlugin
    from rasterio.errors import NotGeoreferencedWarning

    marks = {"synthetic": "true", "generator": card.name,
             "generator_sha256": card.weights_sha256, "geolulc_version": __version__}
    manifest = out_dir / MANIFEST
    trained_on = {k: (card.training or {}).get(k) for k in ("data_fingerprint", "held_out")}
    trained_on |= {k: (card.training or {}).get("config", {}).get(k)
                   for k in ("seed", "val_fraction")}
    if manifest.exists():
        earlier = json.loads(manifest.read_text())
        if earlier.get("generator_sha256") != card.weights_sha256:
            raise ParameterError(f"{out_dir} holds samples of another generator: sample into a "
                                 "new folder")
    written = []
    counts = {c: len(list((out_dir / c).glob("synth_*"))) if (out_dir / c).is_dir() else 0
              for c in card.classes}  # numbering goes on: earlier samples are kept
    for patch, label in zip(x, y, strict=True):
        name = card.classes[int(label)]
        folder = out_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"synth_{name}_{counts[name]}"
        counts[name] += 1
        if card.kind == "rgb":
            path = folder / f"{stem}.png"
            info = PngImagePlugin.PngInfo()
            for key, value in marks.items():
                info.add_text(key, value)
            with atomic_path(path) as tmp:
                Image.fromarray(patch.transpose(1, 2, 0)).save(tmp, format="PNG", pnginfo=info)
        else:
            path = folder / f"{stem}.tif"
            with atomic_path(path) as tmp, warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                with rasterio.open(tmp, "w", driver="GTiff", width=PATCH, height=PATCH,
                                   count=len(card.bands), dtype="uint16") as dst:
                    dst.write(patch)
                    dst.descriptions = tuple(card.bands)
                    dst.update_tags(**marks)
        written.append(path)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(manifest, json.dumps({
        "generator": card.name, "generator_sha256": card.weights_sha256,
        "trained_on": trained_on, "count": sum(counts.values())}, indent=2) + "\n")
    return written


def check_no_leak(folder: Path, data: PatchSet, seed: int, val_fraction: float) -> None:
    """Refuse synthetic patches whose generator saw what this training run validates on."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError):
        raise DataError(f"{folder} holds no {MANIFEST}: not patches written by synth_sample, "
                        "so what their generator saw cannot be checked") from None
    seen = manifest.get("trained_on", {})
    same = (seen.get("data_fingerprint") == (fingerprint(data.files, data.root) if data.root
                                              else None)
            and seen.get("seed") == seed and seen.get("val_fraction") == val_fraction)
    if not same:
        raise DataError(f"the generator of {folder} was trained on other patches, or another "
                        f"split (seed {seen.get('seed')}, val_fraction {seen.get('val_fraction')})"
                        ": it may have seen this run's validation patches")


@dataclass(frozen=True)
class SynthQuality:
    """How real generated patches look to the bundled classifier, and whether they are copies."""

    frechet_distance: float
    """Fréchet distance of the classifier's pooled features, real vs generated (not Inception's
    FID: only comparable between runs judged by the same classifier)."""
    per_class: dict[str, dict[str, float]]
    """Precision and recall of the generated patches' classes as the classifier sees them."""
    nearest_real_ratio: float
    """Median distance (in the classifier's features) of a generated patch to its nearest
    training patch, over the median distance of a training patch to its nearest other one."""
    near_copies: float
    """Share of generated patches nearer a training patch than 95 % of the training patches are
    to their nearest other one: about 0.05 or less unless the generator copies."""
    diversity: float | None
    """Median distance between two generated patches of a class over that between two real ones,
    averaged over the classes: about 1 as varied as the real patches, near 0 when the generator
    has collapsed to one patch per class (which the other figures do not show). None where no
    class has two real patches to compare with."""
    classifier: str
    n_generated: int

    def to_dict(self) -> dict[str, Any]:
        """As `geolulc synth quality --json` prints it."""
        return asdict(self)


def class_diversity(fake: np.ndarray, real: np.ndarray) -> float | None:
    """Median pairwise distance of generated features over that of real ones (one class).

    None where either side has fewer than two patches, or the real ones are all alike.
    """
    if len(fake) < 2 or len(real) < 2:
        return None
    spread = [float(torch.pdist(torch.from_numpy(f)).median()) for f in (fake, real)]
    return round(spread[0] / spread[1], 3) if spread[1] > 0 else None


def judge(gen: Generator, card: SynthCard, data: PatchSet, classifier: str,
          per_class: int = 64, seed: int = 1) -> SynthQuality:
    """Quality figures of a generator against the real patches it was trained on."""
    from scipy import linalg

    from geolulc.models.evaluate import metrics, model_inputs, predict
    from geolulc.models.model import ProbabilityNet, load_model

    model = load_model(classifier)
    if model.kind != "classifier" or set(model.bands) - set(card.bands):
        raise ParameterError(f"{classifier} must be a patch classifier of the generator's bands")
    width = cast("PatchResNet", model.network).head.in_features
    if per_class * len(card.classes) <= width:
        raise ParameterError(f"a Fréchet distance in {model.name}'s {width} features needs more "
                             f"than {width} generated patches: raise `per_class`")
    x, y = generate(gen, card, card.classes, per_class, seed)
    fake = PatchSet(x, y, card.classes, card.bands, card.kind, [])

    def features(patches: PatchSet) -> np.ndarray:
        units, scaled = model_inputs(model, patches)
        net = ProbabilityNet(model, scaled)
        network = cast("PatchResNet | DynamicWorldFusion", model.network)  # checked above
        out = []
        with torch.no_grad():
            for i in range(0, len(units), 256):
                h = net.prepared(torch.from_numpy(units[i:i + 256]))
                out.append(network.embedding(h).numpy())
        return np.concatenate(out).astype(np.float64)

    real_f, fake_f = features(data), features(fake)
    mu_r, mu_f = real_f.mean(0), fake_f.mean(0)
    cov_r, cov_f = np.cov(real_f, rowvar=False), np.cov(fake_f, rowvar=False)
    with warnings.catch_warnings():  # fewer real patches than features: a singular covariance
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root = linalg.sqrtm(cov_r @ cov_f)
    frechet = float(((mu_r - mu_f) ** 2).sum() + np.trace(cov_r + cov_f - 2 * np.real(root)))
    names = model.classes
    judged = predict(model, PatchSet(x, np.array([names.index(card.classes[i]) for i in y]),
                                     names, card.bands, card.kind, []), torch.device("cpu"))
    scores = metrics(np.array([names.index(card.classes[i]) for i in y]), judged.argmax(1), names)
    per = {c: {"precision": r["precision"], "recall": r["recall"]}
           for c, r in scores["per_class"].items() if c in card.classes}
    real_y = np.array([card.classes.index(data.classes[i]) if data.classes[i] in card.classes
                       else -1 for i in data.y])
    for i, name in enumerate(card.classes):
        per[name]["diversity"] = class_diversity(fake_f[y == i], real_f[real_y == i])
    known = [row["diversity"] for row in per.values() if row["diversity"] is not None]
    diversity = round(float(np.mean(known)), 3) if known else None
    collapsed = [name for name, row in per.items()
                 if row["diversity"] is not None and row["diversity"] < COLLAPSED]
    if collapsed:
        log.warning("the generated patches of %s vary less than %.0f %% as much as the real ones: "
                    "the generator has collapsed towards one patch per class there",
                    ", ".join(collapsed), 100 * COLLAPSED)
    to_real = torch.cdist(torch.from_numpy(fake_f), torch.from_numpy(real_f)).min(dim=1).values
    among = torch.cdist(torch.from_numpy(real_f), torch.from_numpy(real_f))
    among.fill_diagonal_(float("inf"))
    real_nn = among.min(dim=1).values
    ratio = float(to_real.median() / real_nn.median())
    copies = float((to_real < torch.quantile(real_nn, 0.05)).double().mean())
    return SynthQuality(round(frechet, 3), per, round(ratio, 3), round(copies, 4), diversity,
                        model.name, int(len(y)))
