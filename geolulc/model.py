"""The geolulc model file: safetensors weights plus a JSON model card that says everything needed
to use them (bands, processing level, input scaling, normalisation, classes, colours).

A model is stored as two files with the same stem, ``NAME.safetensors`` and ``NAME.json``. The
card is the single source of truth for `map`, `evaluate` and `classify`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from . import __version__
from .atomic import atomic_path, write_text_atomic
from .errors import GeolulcError
from .network import build_network

log = logging.getLogger(__name__)

FORMAT = "geolulc-model"
FORMAT_VERSION = 1
BUNDLED_DIR = Path(__file__).parent / "models"
DEFAULT_MODEL = "auto"
#: Bundled models tried by `auto`, best first: the first whose bands the input has is used.
AUTO_ORDER = ("eurosat-ms", "eurosat-rgb")


@dataclass
class Model:
    """A loaded network with its card."""

    network: torch.nn.Module
    card: dict
    source: Path | None = None  # the card it was loaded from, so workers can load it again
    digest: str = ""  # identity of card and weights: results of other models are never mixed

    @property
    def bands(self) -> list[str]:
        return list(self.card["bands"])

    @property
    def classes(self) -> list[str]:
        return list(self.card["classes"])

    @property
    def colors(self) -> list[tuple[int, int, int]]:
        return [tuple(c) for c in self.card["colors"]]

    @property
    def patch_size(self) -> int:
        return int(self.card.get("patch_size", 64))

    @property
    def name(self) -> str:
        return self.card.get("name", "model")


def scale_dn(dn: torch.Tensor, card: dict) -> torch.Tensor:
    """Scene digital numbers (harmonised reflectance × 10000) to the units the model was fed."""
    spec = card["input"]
    x = dn.to(torch.float32, memory_format=torch.contiguous_format)  # in-place ops below
    x.mul_(float(spec["dn_scale"])).add_(float(spec["dn_offset"]))
    clip = spec.get("clip")
    if clip and isinstance(clip[0], list):  # one [low, high] per band
        bounds = torch.tensor(clip, dtype=x.dtype, device=x.device)
        torch.clamp(x, min=bounds[:, 0].view(1, -1, 1, 1), max=bounds[:, 1].view(1, -1, 1, 1),
                    out=x)
    elif clip:
        x.clamp_(float(clip[0]), float(clip[1]))
    return x


def neutral_dn(card: dict) -> np.ndarray:
    """Per band, the DN that the model's normalisation maps to 0 (the training mean).

    Pixels without a clear view inside a classified patch (cloud, no data at a scene edge) are
    given this value, so the network sees neither black holes nor made-up texture there.
    """
    spec = card["input"]
    mean = np.array(spec["mean"], dtype=np.float64)
    return np.clip(np.round((mean - spec["dn_offset"]) / spec["dn_scale"]), 1, 65535).astype(
        np.uint16)


def normalise(x: torch.Tensor, card: dict) -> torch.Tensor:
    """Per-band standardisation with the statistics of the training split."""
    mean = torch.tensor(card["input"]["mean"], dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(card["input"]["std"], dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - mean).div_(std)


def make_card(
    *, name: str, architecture: dict, bands: list[str], level: str, classes: list[str],
    colors: list, dn_scale: float, dn_offset: float, clip: list | None,
    mean: list[float], std: list[float], patch_size: int = 64, **extra,
) -> dict:
    """Assemble a model card with every field the readers rely on."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "architecture": architecture,
        "bands": bands,
        "processing_level": level,
        "input": {
            "description": "x = clip(DN * dn_scale + dn_offset); x = (x - mean) / std, where DN is "
            "reflectance × 10000 with the baseline-04.00 offset removed; clip is [low, high] or "
            "one [low, high] per band",
            "dn_scale": dn_scale, "dn_offset": dn_offset, "clip": clip,
            "mean": mean, "std": std,
        },
        "classes": classes,
        "colors": [list(c) for c in colors],
        "patch_size": patch_size,
        "geolulc_version": __version__,
        **extra,
    }


def save_model(network: torch.nn.Module, card: dict, path: str | Path) -> Path:
    """Write NAME.safetensors and NAME.json atomically; `path` may name either file or the stem."""
    stem = Path(path)
    if stem.suffix in (".json", ".safetensors"):
        stem = stem.with_suffix("")
    weights = stem.with_suffix(".safetensors")
    tensors = {k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
    with atomic_path(weights) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT, "name": card.get("name", "")})
    write_text_atomic(stem.with_suffix(".json"), json.dumps(card, indent=2) + "\n")
    return stem.with_suffix(".json")


def bundled_models() -> list[str]:
    return sorted(p.stem for p in BUNDLED_DIR.glob("*.json"))


def auto_model(available: set[str]) -> str:
    """The best bundled model for inputs with these bands (13-band L1C → eurosat-ms; L2A, which
    has no B10, or RGB patches → eurosat-rgb)."""
    for name in AUTO_ORDER:
        path = BUNDLED_DIR / f"{name}.json"
        if path.exists() and set(read_card(path)["bands"]) <= available:
            log.info("model auto: %s", name)
            return name
    raise GeolulcError(f"no bundled model fits inputs with bands {', '.join(sorted(available))}")


def resolve_model_path(name_or_path: str | Path) -> Path:
    """A bundled model name or a path (card, weights, or stem) -> the card's path."""
    text = str(name_or_path)
    if text in bundled_models():
        return BUNDLED_DIR / f"{text}.json"
    path = Path(text)
    if path.is_dir():
        cards = sorted(path.glob("*.json"))
        cards = [c for c in cards if c.with_suffix(".safetensors").exists()]
        if len(cards) != 1:
            raise GeolulcError(f"model folder {path} must hold exactly one NAME.json + "
                               f"NAME.safetensors pair (found {len(cards)})")
        return cards[0]
    if path.suffix in (".safetensors", ""):
        path = path.with_suffix(".json")
    if not path.exists():
        known = ", ".join(bundled_models()) or "none"
        raise GeolulcError(f"model {text!r} not found (bundled models: {known})")
    return path


def read_card(path: Path) -> dict:
    try:
        card = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GeolulcError(f"model card {path} is corrupt: {exc}") from None
    if not isinstance(card, dict) or card.get("format") != FORMAT:
        raise GeolulcError(f"{path} is not a geolulc model card")
    if card.get("format_version") != FORMAT_VERSION:
        raise GeolulcError(
            f"model {path} has format version {card.get('format_version')}, this geolulc "
            f"({__version__}) reads version {FORMAT_VERSION}: upgrade geolulc or re-export the model"
        )
    missing = [k for k in ("architecture", "bands", "classes", "colors", "input") if k not in card]
    if missing:
        raise GeolulcError(f"model card {path} lacks {', '.join(missing)}")
    return card


def load_model(name_or_path: str | Path, device: str | torch.device = "cpu") -> Model:
    """Load a bundled or user model, checking that card and weights agree."""
    card_path = resolve_model_path(name_or_path)
    card = read_card(card_path)
    weights = card_path.with_suffix(".safetensors")
    try:
        state = load_file(str(weights))
    except (OSError, SafetensorError) as exc:
        raise GeolulcError(f"model weights {weights} are unreadable or corrupt: {exc}") from None
    try:
        network = build_network(card["architecture"], len(card["bands"]), len(card["classes"]))
        network.load_state_dict(state)
    except (ValueError, RuntimeError, TypeError) as exc:
        first = str(exc).splitlines()[0]
        raise GeolulcError(f"model {card_path} does not match its weights: {first}") from None
    network.eval().to(device)
    digest = hashlib.sha256(card_path.read_bytes() + weights.read_bytes()).hexdigest()[:20]
    return Model(network, card, card_path.resolve(), digest)


def predict_probabilities(
    model: Model, batch: torch.Tensor, already_scaled: bool = False
) -> torch.Tensor:
    """Class probabilities for a batch of DN patches (N, bands, H, W) on the model's device."""
    x = batch.float() if already_scaled else scale_dn(batch, model.card)
    x = normalise(x, model.card).contiguous(memory_format=torch.channels_last)
    return torch.softmax(model.network(x).float(), dim=1)


def band_indices(available: list[str], wanted: list[str]) -> np.ndarray:
    """Positions of `wanted` bands within `available`, with a clear error for missing ones."""
    missing = [b for b in wanted if b not in available]
    if missing:
        raise GeolulcError(f"input lacks band(s) {', '.join(missing)} that the model needs")
    return np.array([available.index(b) for b in wanted])
