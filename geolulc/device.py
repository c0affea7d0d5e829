"""Choice of compute device."""

from __future__ import annotations

import torch

from geolulc.errors import GeolulcError


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when present; asking for CUDA without one is an error, not a fallback."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise GeolulcError("--device cuda was asked for but no CUDA GPU is available")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise GeolulcError(f"unknown device {name!r}: use auto, cpu or cuda")
    return torch.device(name)
