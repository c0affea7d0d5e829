"""The classifier network: a compact ResNet for 64×64 patches with any number of bands.

Plain torch (torchvision cannot be used: its wheels need a CUDA build of torch). The network ends
in global average pooling, so it also runs fully convolutionally over larger chunks.
"""

from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with a residual connection (He et al. 2016)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act = nn.ReLU(inplace=True)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act(out + self.shortcut(x))


class PatchResNet(nn.Module):
    """ResNet sized for 64×64 Sentinel-2 patches: a stride-2 stem, then one stage per width."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        widths: tuple[int, ...] = (32, 64, 128, 256),
        blocks: tuple[int, ...] = (1, 1, 1, 1),
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, 2, 1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        layers: list[nn.Module] = []
        cin = widths[0]
        for i, (width, count) in enumerate(zip(widths, blocks)):
            for j in range(count):
                layers.append(BasicBlock(cin, width, 2 if (j == 0 and i > 0) else 1))
                cin = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(self.stem(x))).flatten(1)
        return self.head(self.dropout(x))


ARCHITECTURES = {"patch-resnet": PatchResNet}


def build_network(spec: dict, in_channels: int, num_classes: int) -> nn.Module:
    """Instantiate the network a model card describes."""
    spec = dict(spec)
    name = spec.pop("name")
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}")
    for key in ("widths", "blocks"):
        if key in spec:
            spec[key] = tuple(spec[key])
    return ARCHITECTURES[name](in_channels, num_classes, **spec)
