"""Choice of compute device and arithmetic."""

from __future__ import annotations

import torch

from geolulc.errors import ParameterError


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when present; asking for CUDA without one is an error, not a fallback."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ParameterError("`device='cuda'` was asked for but no CUDA GPU is available")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise ParameterError(f"unknown device {name!r}: use auto, cpu or cuda")
    return torch.device(name)


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX)."""
    cpu = torch.cpu
    return any(getattr(cpu, f, lambda: False)() for f in
               ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' is bf16 on CUDA and on CPUs with native bf16, else fp32."""
    if precision != "auto":
        return precision
    return "bf16" if device.type == "cuda" or cpu_has_bf16() else "fp32"
