"""Batched inference of patches through a model, on CPU or GPU."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch

from geolulc.core.device import resolve_precision
from geolulc.models.engines import code_digest, make_runner, resolve_engine
from geolulc.models.model import Model, ProbabilityNet, predict_probabilities, prepare_input
from geolulc.models.network import (
    DIHEDRAL_ORDER,
    dihedral_view,
    halve_antialiased,
    undo_dihedral_view,
)

log = logging.getLogger(__name__)


CPU_BATCH = 256
MAX_GPU_BATCH = 16384
#: Tiles per forward pass of a segmenter on CPU: one tile of about 564 × 1064 fills the cores.
CPU_TILE_BATCH = 1


def auto_batch_size(model: Model, device: torch.device) -> int:
    """Largest power-of-two batch of patches (or tiles) that fits in half the free GPU memory.

    On CPU 256 patches or 1 tile (which fills the cores), where larger batches only cost memory.
    """
    if device.type != "cuda":
        return CPU_TILE_BATCH if model.kind == "segmenter" else CPU_BATCH
    from geolulc.models.tiles import HALO, TILE

    probe, size = ((2, (TILE[0] + 2 * HALO, TILE[1] + 2 * HALO)) if model.kind == "segmenter"
                   else (64, (model.patch_size, model.patch_size)))
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    x = torch.ones((probe, len(model.bands), *size),
                   dtype=torch.int32, device=device)
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        predict_probabilities(model, x.contiguous(memory_format=torch.channels_last))
    per_patch = max((torch.cuda.max_memory_allocated(device) - base) / probe, 1)
    free, _ = torch.cuda.mem_get_info(device)
    batch = 1 << int(np.log2(max(free * 0.5 / per_patch, 1)))
    log.info("batch size auto: %d (%.1f MB per patch, %.1f GB free)", min(batch, MAX_GPU_BATCH),
             per_patch / 1e6, free / 1e9)
    return min(batch, MAX_GPU_BATCH)


class Classifier:
    """Runs a model over batches of DN patches (or tiles) and returns class probabilities.

    Every computation goes through an engine (`geolulc.models.engines`): OpenVINO on the CPU,
    torch on CUDA or where OpenVINO is missing. bfloat16 where the hardware has it (eurosat-rgb
    labels agree with fp32 on 99.86 % of its 4,266 validation patches; Dynamic World's, run as
    `SplitInputNet`, on 99.72 % of the OSCD pixels).
    """

    def __init__(self, model: Model, device: torch.device, batch_size: int | None = None,
                 precision: str = "auto", engine: str = "auto") -> None:
        self.model = model
        self.device = device
        self.precision = resolve_precision(precision, device)
        self.engine = resolve_engine(engine, device)
        model.network.to(device).eval()
        self.batch_size = batch_size or auto_batch_size(model, device)
        self._runners: dict[str, Callable[[np.ndarray], np.ndarray]] = {}

    def runner(self, name: str, program: Callable[[], torch.nn.Module],
               example: torch.Tensor) -> Callable[[np.ndarray], np.ndarray]:
        """The runner of a computation of this model, built on first use.

        `program` makes its torch module, `example` is an input of the right rank and bands for the
        conversion. In bf16, a module with a `bf16_form` (Dynamic World: `SplitInputNet`) runs as
        that form, its input split by the form's tables.
        """
        if name not in self._runners:
            module = program()
            form_of = getattr(module, "bf16_form", None)  # see `ProbabilityNet.bf16_form`
            form = form_of() if form_of is not None and self.precision == "bf16" else None
            key = None
            if self.model.digest:  # models built in memory (training) are never cached
                kinds = {type(m) for m in self.model.network.modules()}
                code = code_digest(prepare_input, halve_antialiased, dihedral_view,
                                   undo_dihedral_view, DIHEDRAL_ORDER, type(module),
                                   *sorted(kinds, key=lambda k: k.__qualname__),
                                   *([type(form)] if form is not None else []))
                key = f"{self.model.digest}-{name}-{code}"
            if form is None:
                self._runners[name] = make_runner(module, self.precision, example, self.engine,
                                                  self.device, key)
            else:
                whole = make_runner(form, "bf16", torch.cat([example, example], dim=1),
                                    self.engine, self.device, key and f"{key}-split", True)
                self._runners[name] = lambda x: whole(form.split(x))
        return self._runners[name]

    def probabilities(self, pixels: np.ndarray, scaled: bool = False) -> np.ndarray:
        """(N, bands, P, P) DN -> (N, classes) float32 probabilities for a classifier.

        (N, classes, P, P) for a segmenter. `scaled`: the pixels are already in the model's input units
        (EuroSAT's RGB JPEGs), so only the normalisation is applied.
        """
        per_pixel = pixels.shape[2:] if self.model.kind == "segmenter" else ()
        out = np.empty((len(pixels), len(self.model.classes), *per_pixel), dtype=np.float32)
        example = torch.zeros((1, len(self.model.bands), self.model.patch_size,
                               self.model.patch_size))
        run = self.runner("scaled" if scaled else "dn",
                          lambda: ProbabilityNet(self.model, scaled), example)
        for i in range(0, len(pixels), self.batch_size):
            batch = pixels[i:i + self.batch_size]
            out[i:i + len(batch)] = run(batch)
        return out
