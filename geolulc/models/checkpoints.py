"""Checkpoints of training runs (classifiers and generators), read without running their code."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from geolulc.errors import ModelError


def load_checkpoint(path: Path, device: torch.device | str,
                    keys: tuple[str, ...] = ("network", "card", "epoch"),
                    kind: str = "training") -> dict:
    """A checkpoint (a classifier's training, or a generator's), read by a weights-only loader.

    Tensors and plain types only, so a crafted file cannot run code; anything else is refused,
    and so is a checkpoint without the `keys` of its `kind`.
    """
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise ModelError(f"checkpoint {path} refused: not a plain geolulc checkpoint "
                           f"(truncated, or it holds objects other than tensors: {first})") from None
    if not isinstance(ckpt, dict) or not set(keys) <= set(ckpt):
        raise ModelError(f"checkpoint {path} is not a geolulc {kind} checkpoint")
    return ckpt
