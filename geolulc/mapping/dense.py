"""Dense maps without paying for the overlap: the classifier run fully convolutionally.

The network ends in global average pooling over its last feature map (4×4 for a 64×64 patch at
an output stride of 16). Run over a whole chunk, the features of every 64×64 window at a stride
that is a multiple of 16 are 4×4 averages of one shared feature map, so neighbouring windows share
all their convolutions. Stride 8 runs the chunk at the four 8-pixel offsets. The results differ
from patch-by-patch inference only near window borders, where a lone patch sees zero padding and
the dense run sees the neighbouring pixels (the agreement is measured by the benchmark).
"""

from __future__ import annotations

import weakref
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F

from geolulc.models.inference import Classifier
from geolulc.models.model import Model, ProbabilityNet
from geolulc.models.network import (
    DIHEDRAL_ORDER,
    PatchResNet,
    dihedral_view,
    undo_dihedral_view,
)

_STRIDES: weakref.WeakKeyDictionary[torch.nn.Module, int] = weakref.WeakKeyDictionary()


def output_stride(model: Model) -> int:
    """Pixels per cell of the network's last feature map (16 for the bundled networks).

    Probed once per network.
    """
    net = cast(PatchResNet, model.network)  # dense runs are for patch classifiers only
    if net in _STRIDES:
        return _STRIDES[net]
    size = model.patch_size
    with torch.inference_mode():
        probe = torch.zeros((1, len(model.bands), size, size),
                            device=next(net.parameters()).device)
        feat = net.features(net.stem(probe))
    _STRIDES[net] = size // feat.shape[-1]
    return _STRIDES[net]


def supports(model: Model, stride: int) -> bool:
    """Whether the dense run can replace patch-by-patch inference at this `stride`.

    It can when the stride is smaller than the patch and a multiple or a divisor of the network's
    output stride, and keeps the chunk's sides a multiple of what the network needs.
    """
    os_ = output_stride(model)
    multiple = getattr(model.network, "size_multiple", 1)
    return (stride < model.patch_size and (stride % os_ == 0 or os_ % stride == 0)
            and stride % multiple == 0)


class DenseCells(torch.nn.Module):
    """DNs of a chunk (1, bands, h, w) to the class probabilities (1, rows, cols, K) of its windows.

    The windows are `window` cells of the last feature map wide, every `step` cells. A model that
    averages views of each patch (`ModelCard.views`) sees the same views of the whole chunk, each
    map turned back onto the chunk's grid: the chunk must be exactly tiled by its windows, so that
    the windows of a turned chunk are the turned windows.
    """

    def __init__(self, model: Model, window: int, step: int) -> None:
        super().__init__()
        self.net = ProbabilityNet(model)  # its input scaling and layout, shared with patches
        self.window, self.step = window, step

    def forward(self, dn: torch.Tensor) -> torch.Tensor:
        """Probabilities of every window, with the classifier's input scaling, features and head."""
        x = self.net.prepared(dn)
        total = self.cells(x)
        for code in DIHEDRAL_ORDER[1:self.net.views]:
            view = dihedral_view(x, code).contiguous(memory_format=torch.channels_last)
            total = total + undo_dihedral_view(self.cells(view), code)
        return (total / self.net.views).permute(0, 2, 3, 1)

    def cells(self, x: torch.Tensor) -> torch.Tensor:
        """(1, K, rows, cols) probabilities of the windows of a prepared chunk."""
        net = cast(PatchResNet, self.net.network)
        pooled = F.avg_pool2d(net.features(net.stem(x)), self.window, stride=self.step)
        return torch.softmax(net.head(pooled.permute(0, 2, 3, 1)).float(), dim=-1).permute(0, 3, 1, 2)


def dense_probabilities(model: Model, dn: np.ndarray, stride: int,
                        classifier: Classifier) -> np.ndarray:
    """Class probabilities (rows, cols, K) of every `patch`-sized window of `dn` (bands, h, w).

    The windows lie every `stride` pixels, in the same cell layout as `cut_patches`.
    """
    patch = model.patch_size
    os_ = output_stride(model)
    window = patch // os_
    bands, height, width = dn.shape
    n_rows = (height - patch) // stride + 1
    n_cols = (width - patch) // stride + 1
    out = np.zeros((n_rows, n_cols, len(model.classes)), dtype=np.float32)
    offsets = [0] if stride % os_ == 0 else list(range(0, os_, stride))
    step = max(stride // os_, 1) if stride % os_ == 0 else 1
    run = classifier.runner(f"dense-{window}-{step}", lambda: DenseCells(model, window, step),
                            torch.zeros((1, bands, patch, patch)))
    def tiled(side: int) -> int:  # pixels that the windows of a run cover exactly
        cells = side // os_
        return ((cells - window) // step * step + window) * os_ if cells >= window else side

    for dy in offsets:
        for dx in offsets:
            chunk = dn[None, :, dy:, dx:]
            if model.card.views > 1:
                chunk = chunk[..., :tiled(chunk.shape[2]), :tiled(chunk.shape[3])]
            probs = run(chunk)[0]
            rows = slice(dy // stride if stride < os_ else 0, None,
                         len(offsets) if stride < os_ else 1)
            cols = slice(dx // stride if stride < os_ else 0, None,
                         len(offsets) if stride < os_ else 1)
            target = out[rows, cols]
            h, w = min(target.shape[0], probs.shape[0]), min(target.shape[1], probs.shape[1])
            target[:h, :w] = probs[:h, :w]
    return out
