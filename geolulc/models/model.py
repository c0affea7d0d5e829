"""The geolulc model file: safetensors weights plus a JSON model card.

The card says everything needed to use the weights (bands, processing level, input scaling,
normalisation, classes, colours).

A model is stored as two files with the same stem, ``NAME.safetensors`` and ``NAME.json``. The
card is the single source of truth for `map`, `evaluate` and `classify`. Two kinds exist:
``classifier`` (one label per patch, EuroSAT) and ``segmenter`` (one label per pixel, Dynamic
World). The card carries the SHA-256 of its weights, checked at every load, and loading refuses
non-finite weights and degenerate normalisation, so a corrupt file never makes a confident map.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load, save_file

from geolulc._version import __version__
from geolulc.defaults import DEFAULT_MODEL  # noqa: F401 (re-exported)
from geolulc.errors import DataError, ModelError
from geolulc.io.atomic import atomic_path, make_ordinary, write_text_atomic
from geolulc.models.network import (
    ARCHITECTURES,
    DIHEDRAL_ORDER,
    ConvMish,
    DynamicWorldNet,
    build_network,
    dihedral_view,
    halve_antialiased,
)

log = logging.getLogger(__name__)

FORMAT = "geolulc-model"
FORMAT_VERSION = 1
BUNDLED_DIR = Path(__file__).parent / "bundled"
#: Bundled models tried by `auto` for scenes, best first: the first whose bands the input has is
#: used (a 13-band scene has Dynamic World's nine). RGB-only scenes get the RGB model trained on
#: scene pixels (raw L1C augmentation, real windows), not the benchmark `eurosat-rgb` (far more
#: false water: 0.132 against 0.032).
AUTO_ORDER = ("dynamic-world", "eurosat-rgb-scenes")
#: The same for lone patches (`classify`, `evaluate`): the classifiers best on EuroSAT's patches.
PATCH_AUTO_ORDER = ("eurosat-ms", "eurosat-rgb")
#: The bundled EuroSAT-legend classifier whose maps hold on places it never saw.
MAP_CLASSIFIER = "eurosat-dw"
KINDS = ("classifier", "segmenter")
#: How many of a patch's rotations/flips a classifier's card may average (`ModelCard.views`).
VIEWS = (1, 2, 4, 8)
INPUT_KINDS = ("linear", "dynamic-world")


@dataclass(frozen=True)
class InputSpec:
    """How scene DNs become the network's input (the card's ``input``)."""

    kind: Literal["linear", "dynamic-world"]
    """linear: clip(DN · dn_scale + dn_offset), then (x − mean) / std; dynamic-world: its own."""
    dn_scale: float
    dn_offset: float = 0.0
    clip: list[Any] | None = None
    """[low, high] for every band, or one [low, high] per band; None: no clip."""
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    p30: tuple[float, ...] = ()
    """Dynamic World's per-band log-reflectance percentiles."""
    p70: tuple[float, ...] = ()

    @classmethod
    def of(cls, spec: dict[str, Any]) -> InputSpec:
        """The spec of a card's ``input`` mapping (checked by `card_problem` first)."""
        return cls(kind=spec.get("kind", "linear"), dn_scale=float(spec["dn_scale"]),
                   dn_offset=float(spec.get("dn_offset", 0.0)), clip=spec.get("clip"),
                   mean=tuple(spec.get("mean", ())), std=tuple(spec.get("std", ())),
                   p30=tuple(spec.get("p30", ())), p70=tuple(spec.get("p70", ())))


@dataclass(frozen=True)
class ModelCard:
    """A model card, parsed and checked once where it is read; `data` is the card as written."""

    name: str
    kind: Literal["classifier", "segmenter"]
    architecture: dict[str, Any]
    bands: list[str]
    """Input bands, in the order the network takes them."""
    classes: list[str]
    """Class names, in the order of the network's outputs (the map's codes)."""
    colors: list[tuple[int, int, int]]
    processing_level: str
    """L1C or L2A: the data the model was trained on."""
    input: InputSpec
    patch_size: int
    """Side of the patches a classifier labels, in pixels."""
    resolution_m: float
    """Ground pixel size the model was trained at."""
    weights_sha256: str
    views: int
    """Rotations/flips of each patch whose class probabilities a classifier averages (1, 2, 4, 8:
    `DIHEDRAL_ORDER`); 1 labels the patch as it is. Part of the model: every path applies them."""
    training: dict[str, Any]
    metrics: dict[str, Any]
    data: dict[str, Any]
    label_groups: list[list[int]] | None = None
    """Groups of class indices (a two-level model's): a cell's label is then the most probable
    class of the most probable group (`choose_labels`), not the most probable class."""

    @classmethod
    def parse(cls, data: dict[str, Any]) -> ModelCard:
        """The typed card of a mapping that `parse_card` has validated."""
        return cls(name=data.get("name", "model"), kind=data.get("kind", "classifier"),
                   architecture=dict(data["architecture"]), bands=list(data["bands"]),
                   classes=list(data["classes"]),
                   colors=[(int(c[0]), int(c[1]), int(c[2])) for c in data["colors"]],
                   processing_level=data.get("processing_level", "L1C"),
                   input=InputSpec.of(data["input"]), patch_size=int(data.get("patch_size", 64)),
                   resolution_m=float(data.get("resolution_m", NATIVE_RESOLUTION_M)),
                   weights_sha256=data["weights_sha256"], views=int(data.get("views", 1)),
                   training=data.get("training", {}),
                   metrics=data.get("metrics", {}), data=data,
                   label_groups=data.get("label_groups"))


#: Pixel size the bundled models were trained at (Sentinel-2's 10 m bands), for cards that do
#: not state `resolution_m`.
NATIVE_RESOLUTION_M = 10.0


@dataclass
class Model:
    """A loaded network with its card."""

    network: torch.nn.Module
    card: ModelCard
    source: Path | None = None  # the card it was loaded from
    digest: str = ""  # identity of card and weights: results of other models are never mixed
    payload: tuple[bytes, bytes] | None = None  # card and weights bytes, sent to Dask workers

    @property
    def bands(self) -> list[str]:
        """Input bands, in the order the network takes them."""
        return list(self.card.bands)

    @property
    def classes(self) -> list[str]:
        """Class names, in the order of the network's outputs (the map's codes)."""
        return list(self.card.classes)

    @property
    def colors(self) -> list[tuple[int, int, int]]:
        """RGB colour of each class, for the map's colour table and quicklook."""
        return list(self.card.colors)

    @property
    def patch_size(self) -> int:
        """Side of the patches a classifier labels, in pixels (64 unless the card says otherwise)."""
        return self.card.patch_size

    @property
    def name(self) -> str:
        """The model's name from its card ("model" when it has none), recorded with every map."""
        return self.card.name

    @property
    def kind(self) -> str:
        """'classifier' (a label per patch) or 'segmenter' (a label per pixel)."""
        return self.card.kind


def scale_dn(dn: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    """Scene digital numbers (harmonised reflectance × 10000) to the units the model was fed."""
    x = dn.to(torch.float32, memory_format=torch.contiguous_format, copy=True)  # in-place ops below
    x.mul_(spec.dn_scale).add_(spec.dn_offset)
    if spec.clip:
        low, high = clip_bounds(spec.clip, x.shape[1], x.device)
        x = torch.clamp(x, min=low, max=high)
    return x


def clip_bounds(clip: list, n_bands: int, device: torch.device | str = "cpu",
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """A card's input clip as float32 tensors (1, n_bands, 1, 1) that broadcast over a batch.

    The clip is [low, high] for every band, or one [low, high] per band.
    """
    pairs = clip if isinstance(clip[0], (list, tuple)) else [clip] * n_bands
    bounds = torch.tensor([[float(lo), float(hi)] for lo, hi in pairs], device=device)
    return bounds[:, 0].view(1, -1, 1, 1), bounds[:, 1].view(1, -1, 1, 1)


def normalise(x: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    """Per-band standardisation with the statistics of the training split."""
    mean = torch.tensor(spec.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(spec.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - mean).div_(std)


def prepare_input(dn: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    """Scene DNs (N, bands, H, W) to the network's input, as the card's `input` prescribes."""
    if spec.kind == "dynamic-world":
        # x = log(DN·s + 1); x = (x − p30) / p70; x = exp(5x − 1) / (exp(5x − 1) + 1)
        x = dn.to(torch.float32, memory_format=torch.contiguous_format, copy=True)
        p30 = torch.tensor(spec.p30, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        p70 = torch.tensor(spec.p70, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        x.mul_(spec.dn_scale).log1p_().sub_(p30).div_(p70)
        return x.mul_(5).sub_(1).sigmoid_()
    return normalise(scale_dn(dn, spec), spec)


def make_card(
    *, name: str, architecture: dict, bands: list[str], level: str, classes: list[str],
    colors: list, dn_scale: float, dn_offset: float, clip: list | None,
    mean: list[float], std: list[float], patch_size: int = 64, **extra: object,
) -> dict:
    """Assemble a model card with every field the readers rely on."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "kind": "classifier",
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


def save_model(network: torch.nn.Module, card: ModelCard | dict[str, Any], path: str | Path
               ) -> Path:
    """Write NAME.safetensors and NAME.json atomically; `path` may name either file or the stem.

    The weights' metadata names the card's `format` (a model's, or a generator's).
    """
    if isinstance(card, ModelCard):
        card = card.data
    stem = Path(path)
    if stem.suffix in (".json", ".safetensors"):
        stem = stem.with_suffix("")
    weights, card_path = (stem.with_name(stem.name + ext) for ext in (".safetensors", ".json"))
    tensors = {k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
    with atomic_path(weights) as tmp:
        # One metadata key: safetensors writes a map's keys in a random order, and the card's
        # digest must not depend on it (the name is in the card).
        save_file(tensors, str(tmp), metadata={"format": str(card.get("format", FORMAT))})
        make_ordinary(tmp)  # safetensors replaces the file with a private (0600) one
        card = {**card, "weights_sha256": hashlib.sha256(tmp.read_bytes()).hexdigest()}
    write_text_atomic(card_path, json.dumps(card, indent=2) + "\n")
    return card_path


def bundled_models() -> list[str]:
    """Names of the models shipped in `bundled/`, sorted."""
    return sorted(p.stem for p in BUNDLED_DIR.glob("*.json"))


def auto_model(available: set[str], patches: bool = False) -> str:
    """The best bundled model for scenes (or, with `patches`, lone patches) with these bands.

    Scenes: dynamic-world where its nine bands exist, else (RGB) eurosat-rgb-scenes.
    Patches: 13-band L1C → eurosat-ms (1,030 patches/s on two cores; eurosat-dw, by name,
    answers in two levels at 94 patches/s); RGB → eurosat-rgb.
    """
    for name in PATCH_AUTO_ORDER if patches else AUTO_ORDER:
        path = BUNDLED_DIR / f"{name}.json"
        if not path.exists():
            continue
        card = read_card(path)
        if (card.kind == "classifier" or not patches) and set(card.bands) <= available:
            log.info("model auto: %s", name)
            return name
    raise ModelError(f"no bundled model fits inputs with bands {', '.join(sorted(available))}")


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
            raise ModelError(f"model folder {path} must hold exactly one NAME.json + "
                               f"NAME.safetensors pair (found {len(cards)})")
        return cards[0]
    if path.suffix.lower() == ".safetensors":
        path = path.with_suffix(".json")
    elif path.suffix.lower() != ".json":  # a stem, whose name may hold dots ("run-1.5")
        path = path.with_name(path.name + ".json")
    if not path.exists():
        known = ", ".join(bundled_models()) or "none"
        raise ModelError(f"model {text!r} not found (bundled models: {known})")
    return path


def read_card(path: Path) -> ModelCard:
    """The card at `path`, validated; an unreadable file is a one-line error."""
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"model card {path} is corrupt: {exc}") from None
    return parse_card(text, path)


def parse_card(text: bytes, path: Path | str) -> ModelCard:
    """A card from its bytes, validated; `path` names it in messages."""
    try:
        card = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"model card {path} is corrupt: {exc}") from None
    except RecursionError:
        raise ModelError(f"model card {path} is nested too deeply to be a model card") from None
    if not isinstance(card, dict) or card.get("format") != FORMAT:
        raise ModelError(f"{path} is not a geolulc model card")
    if card.get("format_version") != FORMAT_VERSION:
        raise ModelError(
            f"model {path} has format version {card.get('format_version')}, this geolulc "
            f"({__version__}) reads version {FORMAT_VERSION}: upgrade geolulc or re-export the model"
        )
    missing = [k for k in ("architecture", "bands", "classes", "colors", "input",
                           "weights_sha256") if k not in card]
    if missing:
        raise ModelError(f"model card {path} lacks {', '.join(missing)}")
    problem = card_problem(card)
    if problem:
        raise ModelError(f"model card {path} is inconsistent: {problem}")
    return ModelCard.parse(card)


def _finite_list(values: object, length: int) -> bool:
    return (isinstance(values, list) and len(values) == length
            and all(isinstance(v, (int, float)) and np.isfinite(v) for v in values))


def card_problem(card: dict) -> str | None:
    """What makes a card unusable (None when it is sound).

    Classes, colours, bands and the input normalisation must agree with each other and be finite and
    non-degenerate.
    """
    from geolulc.io.bands import BAND_RESOLUTION

    classes, colors, bands = card["classes"], card["colors"], card["bands"]
    if card.get("kind", "classifier") not in KINDS:
        return f"kind {card.get('kind')!r} is not one of {', '.join(KINDS)}"
    if not isinstance(classes, list) or len(classes) < 2 or len(set(classes)) != len(classes):
        return "it needs at least two distinct class names"
    if not isinstance(colors, list) or len(colors) != len(classes) or not all(
            isinstance(c, list) and len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255
                                                        for v in c) for c in colors):
        return f"{len(classes)} classes need {len(classes)} RGB colours of 0–255"
    if not isinstance(bands, list) or not bands or any(b not in BAND_RESOLUTION for b in bands) \
            or len(set(bands)) != len(bands):
        return f"bands {bands} are not distinct Sentinel-2 band names (B01…B12, B8A)"
    problem = _size_problem(card)
    if problem:
        return problem
    views = card.get("views", 1)
    if not isinstance(views, int) or isinstance(views, bool) or views not in VIEWS or (
            views != 1 and card.get("kind", "classifier") != "classifier"):
        return f"views must be one of {', '.join(map(str, VIEWS))} (a classifier's only), not {views!r}"
    groups = card.get("label_groups")
    if groups is not None:
        flat = [i for g in groups for i in g] if isinstance(groups, list) and all(
            isinstance(g, list) and g for g in groups) else None
        if flat is None or sorted(map(repr, flat)) != sorted(
                map(repr, range(len(card["classes"])))):
            return ("label_groups must be lists of class indices that hold every class once, "
                    f"not {str(groups)[:80]}")
    spec = card["input"]
    kind = spec.get("kind", "linear") if isinstance(spec, dict) else None
    if kind not in INPUT_KINDS:
        return f"input kind {kind!r} is not one of {', '.join(INPUT_KINDS)}"
    n = len(bands)
    if kind == "dynamic-world":
        if not (_finite_list(spec.get("p30"), n) and _finite_list(spec.get("p70"), n)):
            return f"input p30/p70 need {n} finite values each"
        if not _in_range(spec.get("dn_scale"), *DN_SCALE_RANGE) \
                or min(abs(v) for v in spec["p70"]) < 1e-6:
            return (f"input dn_scale must lie in {DN_SCALE_RANGE[0]:g}–{DN_SCALE_RANGE[1]:g} "
                    "and p70 must be positive")
        return None
    if not (_finite_list(spec.get("mean"), n) and _finite_list(spec.get("std"), n)):
        return f"input mean/std need {n} finite values each"
    if min(spec["std"]) <= 1e-6:
        return "input std must be positive (a zero std divides by zero)"
    if not _in_range(spec.get("dn_scale"), *DN_SCALE_RANGE) \
            or not _in_range(spec.get("dn_offset"), -1e5, 1e5):
        return (f"input dn_scale must lie in {DN_SCALE_RANGE[0]:g}–{DN_SCALE_RANGE[1]:g} (DN to "
                "the model's units) and dn_offset in ±1e5")
    if max(abs(v) for v in spec["mean"] + spec["std"]) > 1e6:
        return "input mean/std are beyond ±1e6: not statistics of scaled reflectance"
    clip = spec.get("clip")
    if clip is not None:
        pairs = clip if clip and isinstance(clip[0], (list, tuple)) else [clip]
        if not isinstance(clip, list) or len(pairs) not in (1, n) or not all(
                isinstance(p, (list, tuple)) and len(p) == 2 and all(_in_range(v, -1e6, 1e6)
                                                                      for v in p)
                and p[0] < p[1] for p in pairs):
            return f"input clip must be [low, high] or {n} such pairs, with low < high"
    return None


#: Sane scales from scene DNs to a model's input units (reflectance: 1e-4; EuroSAT's JPEG
#: scaling: 0.09; Dynamic World: 0.005): a card outside them is corrupt, never a map.
DN_SCALE_RANGE = (1e-7, 10.0)


def _in_range(value: object, low: float, high: float) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and bool(np.isfinite(value)) and low <= value <= high)


def _size_problem(card: dict) -> str | None:
    """Sizes that would build or allocate an absurd network, caught before any is built.

    The weights cannot be compared with a network until it exists, and a card with widths of 16384
    asked for 120 GB.
    """
    arch = card.get("architecture")
    if not isinstance(arch, dict) or not isinstance(arch.get("name"), str):
        return "architecture must name a network"
    if arch["name"] not in ARCHITECTURES:
        return f"architecture {arch['name']!r} is not one of {', '.join(ARCHITECTURES)}"
    kind = ARCHITECTURES[arch["name"]].kind
    if card.get("kind", "classifier") != kind:
        return f"kind {card.get('kind', 'classifier')!r} disagrees with its {arch['name']} " \
               f"network, which is a {kind}"
    for key, limit in (("widths", 2048), ("blocks", 16)):
        values = arch.get(key, [1])
        if not isinstance(values, list) or not 1 <= len(values) <= 8 or not all(
                isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= limit
                for v in values):
            return f"architecture {key} must be 1 to 8 whole numbers of 1–{limit}"
    patch = card.get("patch_size", 64)
    if not isinstance(patch, int) or isinstance(patch, bool) or not 8 <= patch <= 1024:
        return f"patch_size must be a whole number of 8–1024 pixels, not {patch!r}"
    return None


def load_model(name_or_path: str | Path, device: str | torch.device = "cpu") -> Model:
    """Load a bundled or user model, checking that card and weights agree."""
    card_path = resolve_model_path(name_or_path)
    weights = card_path.with_suffix(".safetensors")
    card_text = card_path.read_bytes() if card_path.is_file() else b""
    try:
        blob = weights.read_bytes()
    except OSError as exc:
        read_card(card_path)  # a bad card is the better message
        raise ModelError(f"model weights {weights} are unreadable: {exc.strerror}") from None
    model = model_from_bytes(card_text, blob, device, card_path)
    model.source = card_path.resolve()
    return model


def model_from_bytes(card_text: bytes, blob: bytes, device: str | torch.device = "cpu",
                     where: Path | str = "(in memory)") -> Model:
    """A model from the bytes of its card and weights, with every check of `load_model`.

    This is how Dask workers get a model without sharing the client's files.
    """
    card = parse_card(card_text, where)
    if hashlib.sha256(blob).hexdigest() != card.weights_sha256:
        raise ModelError(f"model weights of {where} do not match the SHA-256 in their card: "
                           "corrupt or replaced")
    try:
        state = load(blob)
    except (SafetensorError, ValueError) as exc:
        raise ModelError(f"model weights of {where} are corrupt: {exc}") from None
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ModelError(f"model weights of {where} hold non-finite values ({bad[0]})")
    try:
        network = build_network(card.architecture, len(card.bands), len(card.classes))
        network.load_state_dict(state)
    except (ValueError, RuntimeError, TypeError) as exc:
        first = str(exc).splitlines()[0]
        raise ModelError(f"model {where} does not match its weights: {first}") from None
    network.eval().to(device)
    digest = hashlib.sha256(card_text + blob).hexdigest()[:20]
    return Model(network, card, None, digest, (card_text, blob))


class ProbabilityNet(torch.nn.Module):
    """DNs to class probabilities: the whole computation of a model in one module.

    With `scaled`, the input is values already in the model's input units. The inference engines run
    or convert this module (`geolulc.models.engines`).
    """

    def __init__(self, model: Model, scaled: bool = False) -> None:
        super().__init__()
        self.network = model.network
        self.spec = model.card.input
        self.scaled = scaled
        self.views = model.card.views

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """Class probabilities of a batch: input scaling, the network, then softmax.

        Averaged over the card's `views` of each patch, computed one view at a time (the batch's
        memory, not `views` times it).
        """
        x = self.prepared(batch)
        if self.views == 1:
            return self.output(self.network(x))
        total = self.output(self.network(x))
        for code in DIHEDRAL_ORDER[1:self.views]:
            view = dihedral_view(x, code).contiguous(memory_format=torch.channels_last)
            total = total + self.output(self.network(view))
        return total / self.views

    def prepared(self, batch: torch.Tensor) -> torch.Tensor:
        """The batch as the network takes it: scaled and normalised by the card, channels-last."""
        x = normalise(batch.float(), self.spec) if self.scaled else prepare_input(batch, self.spec)
        return x.contiguous(memory_format=torch.channels_last)

    @staticmethod
    def output(logits: torch.Tensor) -> torch.Tensor:
        """Softmax over the class axis, in float32 whatever precision the network ran in."""
        return torch.softmax(logits.float(), dim=1)

    def bf16_form(self) -> SplitInputNet | None:
        """The computation as one bf16 network that keeps its input stage's precision.

        `SplitInputNet` for a network with an `input_stage` (Dynamic World); else None.
        """
        if self.scaled or self.views != 1 or not hasattr(self.network, "input_stage"):
            return None
        return SplitInputNet(self)


#: DN values an input table holds: every uint16.
DN_VALUES = 1 << 16


class SplitInputNet(torch.nn.Module):
    """Dynamic World whole in bf16 without losing what its input stage needs fp32 for.

    Rounding the network's input and its first convolution's weights to bf16 moves labels: on
    the 20 OSCD images (10 cities) the whole network in bf16 agrees with fp32 on 99.65 % of the pixels,
    99.74 % with the input stage in fp32. Here each input value x comes as two bf16 numbers,
    hi (x rounded) and lo (x − hi), and the stem's weights W likewise; the stem convolves
    [hi, lo, hi] with [W_hi, W_hi, W_lo], which is W·x to about 2⁻¹⁶ in bf16 arithmetic with
    fp32 sums (99.73 %), and the whole network compiles as one (`benchmarks/bench_engines.py`).
    A DN is an integer, so hi and lo of every DN of every band are tabulated once and looked
    up (`split`).
    """

    def __init__(self, net: ProbabilityNet) -> None:
        super().__init__()
        self.net = net
        conv = cast("DynamicWorldNet", net.network).stem.conv
        self.bands = conv.in_channels
        weight = conv.weight.detach().float()
        w_hi = weight.bfloat16().float()
        self.stem = ConvMish(3 * self.bands, conv.out_channels, conv.kernel_size[0])
        self.stem.to(weight.device)
        with torch.no_grad():
            self.stem.conv.weight.copy_(torch.cat([w_hi, w_hi, weight - w_hi], 1))
            cast(torch.Tensor, self.stem.conv.bias).copy_(cast(torch.Tensor, conv.bias))
        dn = torch.arange(DN_VALUES, dtype=torch.float32, device=weight.device)
        with torch.inference_mode():
            x = net.prepared(dn.expand(1, self.bands, 1, DN_VALUES))[0, :, 0].float().cpu()
        hi = x.bfloat16()
        lo = (x - hi.float()).bfloat16()
        #: (2, bands, DN_VALUES) bf16 bit patterns of hi and lo of each band's input for each DN.
        self.tables = np.stack([t.view(torch.int16).numpy().view(np.uint16) for t in (hi, lo)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Probabilities from the inputs' hi and lo (N, 2 bands, H, W), as `split` gives them."""
        network = cast("DynamicWorldNet", self.net.network)  # `bf16_form`: it has an input_stage
        low = halve_antialiased(self.stem(torch.cat([x, x[:, :self.bands]], dim=1)))
        return self.net.output(network.body(low))

    def split(self, dn: np.ndarray) -> np.ndarray:
        """DNs (N, bands, H, W) → bf16 bit patterns (N, 2 bands, H, W) of their inputs' hi, lo.

        Sentinel-2 DNs are integers (uint16); other values are rounded to one and clipped.
        """
        if dn.dtype != np.uint16:
            dn = np.clip(np.rint(dn), 0, DN_VALUES - 1).astype(np.uint16)
        out = np.empty((dn.shape[0], 2 * self.bands, *dn.shape[2:]), dtype=np.uint16)
        for part, table in enumerate(self.tables):
            for band in range(self.bands):
                np.take(table[band], dn[:, band], out=out[:, part * self.bands + band], mode="clip")
        return out


def predict_probabilities(
    model: Model, batch: torch.Tensor, already_scaled: bool = False
) -> torch.Tensor:
    """Class probabilities for a batch of DN patches (N, bands, H, W) on the model's device.

    (N, classes) for a classifier, (N, classes, H, W) for a segmenter. Torch alone, in the caller's
    arithmetic: the reference that the engines are checked against.
    """
    return ProbabilityNet(model, already_scaled)(batch)


def band_indices(available: list[str], wanted: list[str]) -> np.ndarray:
    """Positions of `wanted` bands within `available`, with a clear error for missing ones."""
    missing = [b for b in wanted if b not in available]
    if missing:
        raise DataError(f"input lacks band(s) {', '.join(missing)} that the model needs")
    return np.array([available.index(b) for b in wanted])


#: What a map model must reach on real scenes of places it never saw (issue 22): open water
#: found, and dry land not called water, in 160 m blocks checked against the scenes' own NDWI.
OPEN_WATER_RECALL_TARGET = 0.95
FALSE_WATER_TARGET = 0.02


def trust_misses(card: ModelCard) -> list[str]:
    """The held-out real-scene targets a patch classifier's card misses (empty: none missed).

    The figures are the card's ``metrics.real_scene_held_out_cities`` (places the model never
    trained on); a model without them is not judged.
    """
    held_out = card.metrics.get("real_scene_held_out_cities")
    if card.kind != "classifier" or not isinstance(held_out, dict):
        return []
    recall, false_water = held_out.get("open_water_recall"), held_out.get("false_water")
    if recall is None or false_water is None:
        return []
    return ([f"open-water recall {recall:.3f} < {OPEN_WATER_RECALL_TARGET}"]
            if recall < OPEN_WATER_RECALL_TARGET else []) + \
        ([f"false water {false_water:.3f} > {FALSE_WATER_TARGET}"]
         if false_water > FALSE_WATER_TARGET else [])


@dataclass(frozen=True)
class ModelInfo:
    """A bundled model as `geolulc models` lists it, from its card."""

    name: str
    kind: str
    bands: list[str]
    level: str
    classes: list[str]
    training_data: str | None
    metrics: dict[str, Any]
    """Measured figures of the card (validation accuracy, real-scene checks …)."""
    patches_per_s_cpu: float | None
    views: int
    """Rotations/flips of each patch whose probabilities the classifier averages."""
    use: str
    """"maps"; for a patch classifier whose maps of unseen places miss the targets, "fallback" if
    `auto` still maps scenes that lack better models' bands with it, else "benchmark"."""
    misses: list[str]
    """The held-out real-scene targets it misses."""

    def to_dict(self) -> dict[str, Any]:
        """As `geolulc models --json` prints it."""
        return asdict(self)


def bundled_model_info() -> list[ModelInfo]:
    """Every bundled model's summary, read from its card."""
    rows = []
    for name in bundled_models():
        card = read_card(BUNDLED_DIR / f"{name}.json")
        misses = trust_misses(card)
        rows.append(ModelInfo(
            name=name, kind=card.kind, bands=card.bands, level=card.processing_level,
            classes=card.classes,
            training_data=card.training.get("data") or card.data.get("source", {}).get("project"),
            metrics=card.metrics,
            patches_per_s_cpu=card.data.get("throughput", {}).get("cpu_patches_per_s"),
            views=card.views, misses=misses,
            use="maps" if not misses else "fallback" if name in AUTO_ORDER else "benchmark"))
    return rows
