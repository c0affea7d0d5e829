"""The networks: a compact ResNet patch classifier and the Dynamic World per-pixel segmenter.

Plain torch (torchvision cannot be used: its wheels need a CUDA build of torch). The patch
classifier ends in global average pooling, so it also runs fully convolutionally over larger
chunks; the segmenter returns logits at the input's resolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
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
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Both convolutions plus the shortcut, then ReLU."""
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act(out + self.shortcut(x))


class PatchResNet(nn.Module):
    """ResNet sized for 64×64 Sentinel-2 patches: a stride-2 stem, then one stage per width."""

    kind = "classifier"  # one label per patch

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

    def embedding(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features (N, width) of a batch of patches: what the head reads."""
        return self.pool(self.features(self.stem(x))).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, classes) of a batch of patches: features, global average pooling, head."""
        return self.head(self.dropout(self.embedding(x)))


class ConvMish(nn.Module):
    """Convolution (batch norm folded into its weights and bias) followed by Mish."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, depthwise: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, padding=kernel // 2,
                              groups=cin if depthwise else 1)
        self.act = nn.Mish()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolution, then Mish."""
        return self.act(self.conv(x))


def _separable_stack(cin: int, width: int) -> nn.Sequential:
    """Three pointwise + depthwise 3×3 pairs: the body of each Dynamic World stage."""
    layers: list[nn.Module] = []
    for i in range(3):
        layers += [ConvMish(cin if i == 0 else width, width), ConvMish(width, width, 3, True)]
    return nn.Sequential(*layers)


#: The eight rotations/flips of a square patch (`dihedral_view`'s codes), in the order views are
#: added: the patch, its mirror, its quarter turn, that turn's mirror, and so on.
DIHEDRAL_ORDER = (0, 4, 1, 5, 2, 6, 3, 7)


def dihedral_view(x: torch.Tensor, code: int) -> torch.Tensor:
    """One of the eight rotations/flips of (N, C, H, W) images.

    `code` % 4 quarter turns, then a mirror for codes 4–7. Overhead imagery has no 'up', so every
    view is an equally good picture.
    """
    x = torch.rot90(x, code % 4, dims=(2, 3))
    return x.flip(3) if code >= 4 else x


def undo_dihedral_view(x: torch.Tensor, code: int) -> torch.Tensor:
    """The inverse of `dihedral_view`: maps computed on a view back onto the original grid."""
    x = x.flip(3) if code >= 4 else x
    return torch.rot90(x, -(code % 4), dims=(2, 3))


def halve_antialiased(x: torch.Tensor) -> torch.Tensor:
    """Halve height and width as `tf.image.resize(..., antialias=True)` does for bilinear.

    The antialiased triangle kernel at scale 1/2 weights input rows 2o-1…2o+2 by (1, 3, 3, 1)/8;
    at the borders the weights that fall outside are dropped and the rest renormalised (7/8),
    exactly as TensorFlow's ScaleAndTranslate kernel does.
    """
    n, c, h, w = x.shape
    if h % 2 or w % 2:
        raise ValueError(f"Dynamic World needs an even height and width, got {h}×{w}")
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0], dtype=x.dtype, device=x.device) / 8
    kernel = (taps[:, None] * taps[None, :]).expand(c, 1, 4, 4)
    out = F.conv2d(F.pad(x, (1, 1, 1, 1)), kernel, stride=2, groups=c)
    rows = torch.ones(h // 2, dtype=x.dtype, device=x.device)
    cols = torch.ones(w // 2, dtype=x.dtype, device=x.device)
    rows[0] = rows[-1] = cols[0] = cols[-1] = 7 / 8
    if h == 2:
        rows[:] = 6 / 8
    if w == 2:
        cols[:] = 6 / 8
    return out / (rows[:, None] * cols[None, :])


class DynamicWorldNet(nn.Module):
    """The Dynamic World land-cover network (Brown et al. 2022), re-implemented from its graph.

    It follows the published TensorFlow graph: a 3×3 stem at 10 m, an antialiased halving, three
    residual stages of separable convolutions plus a short branch at 20 m, bilinear upsampling back
    to 10 m, L2 normalisation of the features and a 1×1 classifier. Mish activations throughout.
    The context it sees is about ±24 pixels, which is what lets tiles with a halo reproduce a
    whole-scene forward pass exactly.
    """

    kind = "segmenter"  # one label per pixel

    def __init__(self, in_channels: int = 9, num_classes: int = 9) -> None:
        super().__init__()
        self.stem = ConvMish(in_channels, 64, 3)
        self.stage1 = _separable_stack(64, 96)
        self.skip1 = ConvMish(64, 96)
        self.stage2 = _separable_stack(96, 144)
        self.skip2 = ConvMish(96, 144)
        self.branch = nn.Sequential(ConvMish(64, 48), ConvMish(48, 48, 3, True))
        self.stage3 = _separable_stack(192, 144)
        self.skip3 = ConvMish(192, 144)
        self.head = nn.Conv2d(144, num_classes, 1)

    def input_stage(self, x: torch.Tensor) -> torch.Tensor:
        """The stem and the halving: 10 m input to 64 features at 20 m.

        Rounding this stage's input and weights to bf16 is what moves labels, so bf16 inference
        runs the network as `geolulc.models.model.SplitInputNet`, which keeps this stage's
        precision.
        """
        return halve_antialiased(self.stem(x))

    def features(self, low: torch.Tensor) -> torch.Tensor:
        """The 144 L2-normalised features per pixel that the classifier reads, from `input_stage`."""
        a = self.stage1(low) + self.skip1(low)
        b = self.stage2(a) + self.skip2(a)
        cat = torch.cat([b, self.branch(low)], dim=1)
        f = self.stage3(cat) + self.skip3(cat)
        f = F.interpolate(f, scale_factor=2, mode="bilinear", align_corners=False)
        return f * torch.rsqrt(torch.clamp((f * f).sum(dim=1, keepdim=True), min=1e-12))

    def body(self, low: torch.Tensor) -> torch.Tensor:
        """Everything after `input_stage`: logits at twice the resolution of `low`."""
        return self.head(self.features(low))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, classes, H, W) at the input's resolution."""
        return self.body(self.input_stage(x))


class DynamicWorldFusion(nn.Module):
    """A patch classifier that reads texture from an RGB ResNet and spectra from Dynamic World.

    EuroSAT's 347 labelled 13-band patches are too few to learn NIR and SWIR from: CNNs trained
    on them decide from the visible bands and call open sea Forest in cities they never saw.
    Dynamic World was trained on real L1C scenes of every continent and its 144 features per
    pixel separate water, vegetation and built land by NIR and SWIR, but alone they tell
    EuroSAT's finer classes apart poorly (85 % in cross-validation), for which the RGB ResNet's
    texture features are made. Both are frozen; a linear head reads their means over the window.

    The network takes scene DNs of Dynamic World's nine bands (the card's input is the identity)
    and prepares each branch's input itself, with the constants of the two source models. Both
    branches end in 16-pixel cells, so a dense map averages them over a window like any patch
    classifier. Both branches see context around their input (`CONTEXT`, `TEXTURE_CONTEXT`),
    mirrored when a patch comes alone, so a lone patch and the same window of a map agree.
    """

    kind = "classifier"
    #: Pixels of context the Dynamic World branch sees on each side (its receptive field).
    CONTEXT = 24
    #: Pixels of context the RGB branch sees on each side, two of its cells (without it a lone
    #: patch's zero border moved its features by half their norm from those of the same window
    #: in a scene, and dense and patch-by-patch maps of Hong Kong agreed on 57 % of the cells).
    TEXTURE_CONTEXT = 32
    #: Side of the cells both branches end in.
    CELL = 16
    #: Inputs must have an even height and width (Dynamic World halves them).
    size_multiple = 2
    #: Positions of B04, B03, B02 among Dynamic World's bands (B02 B03 B04 B05 B06 B07 B08 B11 B12).
    RGB = (2, 1, 0)
    # each branch's input preparation, from its source model's card (buffers, loaded with the weights)
    rgb_scale: torch.Tensor  # dn_scale, dn_offset, clip low, clip high
    rgb_mean: torch.Tensor
    rgb_std: torch.Tensor
    dw_scale: torch.Tensor
    dw_p30: torch.Tensor
    dw_p70: torch.Tensor

    def __init__(self, in_channels: int = 9, num_classes: int = 10,
                 widths: tuple[int, ...] = (32, 64, 128, 256),
                 blocks: tuple[int, ...] = (2, 2, 2, 2)) -> None:
        super().__init__()
        self.texture = PatchResNet(3, num_classes, widths, blocks)
        self.texture.head = nn.Identity()  # type: ignore[assignment]  # replaced by `head`
        self.trunk = DynamicWorldNet(in_channels)
        self.trunk.head = nn.Identity()  # type: ignore[assignment]
        self.stem = nn.Identity()  # the layout `geolulc.mapping.dense` runs: stem, features, head
        self.head = nn.Linear(widths[-1] + 144, num_classes)
        self.register_buffer("rgb_scale", torch.ones(4))
        self.register_buffer("rgb_mean", torch.zeros(1, 3, 1, 1))
        self.register_buffer("rgb_std", torch.ones(1, 3, 1, 1))
        self.register_buffer("dw_scale", torch.ones(1))
        self.register_buffer("dw_p30", torch.zeros(1, in_channels, 1, 1))
        self.register_buffer("dw_p70", torch.ones(1, in_channels, 1, 1))

    def trunk_input(self, dn: torch.Tensor) -> torch.Tensor:
        """DNs (N, 9, H, W) as Dynamic World takes them (its card's log-sigmoid scaling)."""
        return torch.sigmoid(5 * (torch.log1p(dn * self.dw_scale) - self.dw_p30) / self.dw_p70 - 1)

    def texture_input(self, dn: torch.Tensor) -> torch.Tensor:
        """B04/B03/B02 of DNs (N, 9, H, W) as the RGB ResNet takes them (JPEG scaling, standardised)."""
        s = self.rgb_scale
        rgb = torch.clamp(dn[:, list(self.RGB)] * s[0] + s[1], min=s[2], max=s[3])
        return (rgb - self.rgb_mean) / self.rgb_std

    def trunk_features(self, dn: torch.Tensor) -> torch.Tensor:
        """Dynamic World's features per pixel (N, 144, H, W), with `CONTEXT` mirrored around."""
        c = self.CONTEXT
        x = F.pad(self.trunk_input(dn), (c, c, c, c), mode="reflect")
        f = self.trunk.features(self.trunk.input_stage(x))
        # constant bounds only: a converted network must not keep the shape it was traced with
        return f[:, :, c:-c, c:-c]

    def texture_features(self, dn: torch.Tensor) -> torch.Tensor:
        """The RGB ResNet's features per 16-pixel cell, with `TEXTURE_CONTEXT` mirrored around."""
        t = self.TEXTURE_CONTEXT
        rgb = F.pad(self.texture_input(dn), (t, t, t, t), mode="reflect")
        cells = t // self.CELL
        return self.texture.features(self.texture.stem(rgb))[:, :, cells:-cells, cells:-cells]

    def per_pixel(self, dn: torch.Tensor) -> torch.Tensor:
        """What the spectral branch gives per pixel, averaged over each cell by `features`."""
        return self.trunk_features(dn)

    def features(self, dn: torch.Tensor) -> torch.Tensor:
        """Both branches' features per 16-pixel cell (N, 256 + 144, ⌈H/16⌉, ⌈W/16⌉)."""
        # the ResNet's strided convolutions give ⌈H/16⌉ cells; so does a ceil-mode pooling
        spectra = F.avg_pool2d(self.per_pixel(dn), self.CELL, ceil_mode=True)
        return torch.cat([self.texture_features(dn), spectra], dim=1)

    def embedding(self, x: torch.Tensor) -> torch.Tensor:
        """Mean features (N, 400) of a batch of DN patches: what the head reads."""
        return self.features(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, classes) of a batch of DN patches: mean features over the patch, then the head."""
        return self.head(self.embedding(x))


#: Dynamic World's classes (in its order) that make each group of EuroSAT classes, and the
#: EuroSAT classes of each group; a group without EuroSAT classes keeps its own name.
WORLD_GROUPS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("water", ("water",), ("River", "SeaLake")),
    ("trees", ("trees",), ("Forest",)),
    ("grass and shrub", ("grass", "flooded_vegetation", "shrub_and_scrub"),
     ("Pasture", "HerbaceousVegetation")),
    ("crops", ("crops",), ("AnnualCrop", "PermanentCrop")),
    ("built", ("built",), ("Residential", "Industrial", "Highway")),
    ("bare", ("bare",), ("BareGround",)),
    ("snow and ice", ("snow_and_ice",), ("SnowAndIce",)),
)
#: The legend of a two-level map: EuroSAT's ten classes (their order in EuroSAT's models) and
#: the two groups that hold none of them.
TWO_LEVEL_CLASSES = ("AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial",
                     "Pasture", "PermanentCrop", "Residential", "River", "SeaLake", "BareGround",
                     "SnowAndIce")
WORLD_CLASSES = ("water", "trees", "grass", "flooded_vegetation", "crops", "shrub_and_scrub",
                 "built", "bare", "snow_and_ice")


class TwoLevelHead(nn.Module):
    """Log-probabilities of the two-level legend from pooled features and world-wide shares.

    P(class) = P(group) × P(class | group): P(group) is the sum of Dynamic World's class
    shares over the window (the last `len(WORLD_CLASSES)` inputs), P(class | group) the patch
    head's softmax over the group's members only. A group with one member (Forest, and the
    declared BareGround and SnowAndIce) takes its share whole, so the patch head can never move
    a window from one group to another: it only tells SeaLake from River, Residential from
    Industrial from Highway, and so on.
    """

    group_of_world: torch.Tensor  # (world classes, groups) one-hot
    group_of_class: torch.Tensor  # (classes,) long
    members: torch.Tensor  # (groups, head classes) bool: the head's classes of each group

    def __init__(self, features: int, classes: list[str], head_classes: int) -> None:
        super().__init__()
        self.features = features
        head = classes[:head_classes]  # the patch head's classes, in its order; then the declared
        self.linear = nn.Linear(features, len(head))
        world = torch.zeros(len(WORLD_CLASSES), len(WORLD_GROUPS))
        members = torch.zeros(len(WORLD_GROUPS), len(head), dtype=torch.bool)
        group_of_class = torch.zeros(len(classes), dtype=torch.long)
        for g, (_, world_names, names) in enumerate(WORLD_GROUPS):
            for name in world_names:
                world[WORLD_CLASSES.index(name), g] = 1
            for name in names:
                group_of_class[classes.index(name)] = g
                if name in head:
                    members[g, head.index(name)] = True
        self.register_buffer("group_of_world", world)
        self.register_buffer("group_of_class", group_of_class)
        self.register_buffer("members", members)
        self.head_classes = len(head)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """(…, features + world classes) → (…, classes) log-probabilities."""
        logits = self.linear(pooled[..., :self.features]).float()
        group = pooled[..., self.features:].float() @ self.group_of_world
        # each group's softmax over its own members (a large negative elsewhere, never -inf)
        within = torch.softmax(torch.where(self.members, logits.unsqueeze(-2),
                                           torch.full_like(logits.unsqueeze(-2), -1e4)), dim=-1)
        within = (within * self.members).sum(dim=-2)  # each class is in one group
        alone = torch.ones(pooled.shape[:-1] + (len(self.group_of_class) - self.head_classes,),
                           dtype=within.dtype, device=within.device)
        p = torch.cat([within, alone], dim=-1) * group[..., self.group_of_class]
        return torch.log(torch.clamp(p, min=1e-12))


class DynamicWorldTwoLevel(DynamicWorldFusion):
    """The EuroSAT-legend map that cannot contradict Dynamic World (`TwoLevelHead`).

    The fusion network's features per 16-pixel cell, plus Dynamic World's own class
    probabilities (its classifier on the same trunk features) averaged over the cell, so a
    window's pooled input carries the world-wide model's class shares over the window.
    """

    def __init__(self, in_channels: int = 9, num_classes: int = 12,
                 widths: tuple[int, ...] = (32, 64, 128, 256),
                 blocks: tuple[int, ...] = (2, 2, 2, 2)) -> None:
        super().__init__(in_channels, 10, widths, blocks)
        self.world = nn.Conv2d(144, len(WORLD_CLASSES), 1)  # Dynamic World's classifier
        self.head = TwoLevelHead(widths[-1] + 144, list(TWO_LEVEL_CLASSES), 10)  # type: ignore[assignment]
        if num_classes != len(TWO_LEVEL_CLASSES):
            raise ValueError(f"a two-level network has {len(TWO_LEVEL_CLASSES)} classes, not "
                             f"{num_classes}")

    def per_pixel(self, dn: torch.Tensor) -> torch.Tensor:
        """Dynamic World's features and its class probabilities per pixel (N, 144 + 9, H, W)."""
        trunk = self.trunk_features(dn)
        return torch.cat([trunk, torch.softmax(self.world(trunk), dim=1)], dim=1)


ARCHITECTURES: dict[str, type[PatchResNet] | type[DynamicWorldNet] | type[DynamicWorldFusion]] = {
    "patch-resnet": PatchResNet, "dynamic-world": DynamicWorldNet,
    "dynamic-world-fusion": DynamicWorldFusion, "dynamic-world-two-level": DynamicWorldTwoLevel}


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
