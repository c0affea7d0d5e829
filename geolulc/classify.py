"""Batched inference of patches through a model, on CPU or GPU."""

from __future__ import annotations

import contextlib
import logging

import numpy as np
import torch

from .model import Model, predict_probabilities

log = logging.getLogger(__name__)


class Classifier:
    """Runs a model over batches of DN patches and returns class probabilities."""

    def __init__(self, model: Model, device: torch.device, batch_size: int = 256):
        self.model = model
        self.device = device
        self.batch_size = batch_size
        model.network.to(device).eval()
        if device.type == "cuda":
            model.network.to(memory_format=torch.channels_last)

    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """(N, bands, P, P) uint16 DN -> (N, classes) float32 probabilities."""
        out = np.empty((len(pixels), len(self.model.classes)), dtype=np.float32)
        with torch.inference_mode(), self._autocast():
            for i in range(0, len(pixels), self.batch_size):
                batch = torch.from_numpy(pixels[i:i + self.batch_size].astype(np.int32))
                if self.device.type == "cuda":
                    batch = batch.pin_memory().to(self.device, non_blocking=True)
                    batch = batch.contiguous(memory_format=torch.channels_last)
                probs = predict_probabilities(self.model, batch)
                out[i:i + len(batch)] = probs.float().cpu().numpy()
        return out
