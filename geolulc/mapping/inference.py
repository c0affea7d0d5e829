"""Batched inference of patches through a model, on CPU or GPU."""

from __future__ import annotations

import contextlib
import logging

import numpy as np
import torch

from geolulc.models.model import Model, predict_probabilities

log = logging.getLogger(__name__)


CPU_BATCH = 256
MAX_GPU_BATCH = 16384
#: Tiles per forward pass of a segmenter on CPU: two 576² tiles already fill the cores.
CPU_TILE_BATCH = 2


def auto_batch_size(model: Model, device: torch.device) -> int:
    """Largest power-of-two batch of patches (or tiles) that fits in half the free GPU memory
    (on CPU 256 patches or 2 tiles, where larger batches only cost memory)."""
    if device.type != "cuda":
        return CPU_TILE_BATCH if model.kind == "segmenter" else CPU_BATCH
    from geolulc.mapping.tiles import HALO, TILE

    probe, size = (2, TILE + 2 * HALO) if model.kind == "segmenter" else (64, model.patch_size)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    x = torch.ones((probe, len(model.bands), size, size),
                   dtype=torch.int32, device=device)
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        predict_probabilities(model, x.contiguous(memory_format=torch.channels_last))
    per_patch = max((torch.cuda.max_memory_allocated(device) - base) / probe, 1)
    free, _ = torch.cuda.mem_get_info(device)
    batch = 1 << int(np.log2(max(free * 0.5 / per_patch, 1)))
    log.info("batch size auto: %d (%.1f MB per patch, %.1f GB free)", min(batch, MAX_GPU_BATCH),
             per_patch / 1e6, free / 1e9)
    return min(batch, MAX_GPU_BATCH)


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


class Classifier:
    """Runs a model over batches of DN patches and returns class probabilities.

    Channels-last memory layout everywhere (2× faster on CPU with oneDNN, needed for tensor
    cores on GPU) and bfloat16 autocast where the hardware has it (another 2.2× on an AVX512-BF16
    CPU; eurosat-rgb labels agree with fp32 on 99.86 % of its 4,266 validation patches).
    """

    def __init__(self, model: Model, device: torch.device, batch_size: int | None = None,
                 precision: str = "auto"):
        self.model = model
        self.device = device
        self.precision = resolve_precision(precision, device)
        model.network.to(device).eval()
        model.network.to(memory_format=torch.channels_last)
        self.batch_size = batch_size or auto_batch_size(model, device)

    def autocast(self):
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def probabilities(self, pixels: np.ndarray, scaled: bool = False) -> np.ndarray:
        """(N, bands, P, P) DN -> (N, classes) float32 probabilities for a classifier,
        (N, classes, P, P) for a segmenter. `scaled`: the pixels are already in the model's
        input units (EuroSAT's RGB JPEGs), so only the normalisation is applied."""
        per_pixel = pixels.shape[2:] if self.model.kind == "segmenter" else ()
        out = np.empty((len(pixels), len(self.model.classes), *per_pixel), dtype=np.float32)
        with torch.inference_mode(), self.autocast():
            for i in range(0, len(pixels), self.batch_size):
                batch = torch.from_numpy(np.ascontiguousarray(pixels[i:i + self.batch_size]))
                if self.device.type == "cuda":
                    batch = batch.pin_memory().to(self.device, non_blocking=True)
                probs = predict_probabilities(self.model, batch, already_scaled=scaled)
                out[i:i + len(batch)] = probs.float().cpu().numpy()
        return out
