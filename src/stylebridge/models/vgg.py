"""VGG (Simonyan & Zisserman 2015, without batch norm) with torchvision's parameter names.

Used as the LPIPS "vgg" backbone (`stylebridge.models.lpips`): a torchvision ``vgg16-397923af.pth`` state dict
loads here with strict checking. ``features`` is one Sequential of conv3x3 → ReLU pairs with a 2x2 max pool after
each of the five stages (VGG-16: convs at 0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28); ``classifier.{0,3,6}``
are the three linear layers after a 7x7 adaptive average pool. ``num_classes=0`` builds the convolutional part
only (what LPIPS needs). Widths are configurable (small test models).
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import torch
from torch import nn

from stylebridge.core.native import CheckpointError, PretrainedModel, check_state_dict

__all__ = ["VGG", "VGG_CONVS_PER_STAGE", "VGGConfig", "vgg_config_from_state_dict", "vgg_from_state_dict"]

# Convs per stage for each depth (torchvision cfgs A, B, D, E).
VGG_CONVS_PER_STAGE: dict[int, tuple[int, ...]] = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3),
                                                   19: (2, 2, 4, 4, 4)}


@dataclass(frozen=True)
class VGGConfig:
    """Architecture of a plain VGG. Defaults: torchvision ``vgg16()``."""

    depth: int = 16  # 11, 13, 16 or 19
    in_channels: int = 3
    widths: tuple[int, ...] = (64, 128, 256, 512, 512)  # channels of the five stages
    hidden: int = 4096
    num_classes: int = 1000  # 0: no avgpool / classifier; ``forward`` returns the last feature map
    dropout: float = 0.5

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        if self.depth not in VGG_CONVS_PER_STAGE:
            raise ValueError(f"depth must be one of {sorted(VGG_CONVS_PER_STAGE)}, got {self.depth}")
        if len(self.widths) != 5 or min(self.widths) < 1:
            raise ValueError(f"widths must list 5 positive stage widths, got {self.widths}")
        if self.num_classes < 0 or self.hidden < 1 or self.in_channels < 1:
            raise ValueError("num_classes must be >= 0, hidden and in_channels >= 1")

    def to_dict(self) -> dict:
        return asdict(self)


def _layout(c: VGGConfig) -> tuple[list[tuple[int, int, int]], list[int]]:
    """((index, in, out) of every conv, index of the last ReLU of every stage) in ``features``."""
    convs, stage_relus, i, prev = [], [], 0, c.in_channels
    for width, count in zip(c.widths, VGG_CONVS_PER_STAGE[c.depth]):
        for _ in range(count):
            convs.append((i, prev, width))
            prev, i = width, i + 2  # conv, ReLU
        stage_relus.append(i - 1)
        i += 1  # max pool
    return convs, stage_relus


class VGG(PretrainedModel):
    """Images [N, in_channels, H, W] (H, W >= 32) → logits [N, num_classes], or the last feature map
    [N, widths[4], H/32, W/32] when ``num_classes == 0``. Input normalisation is the caller's."""

    model_type = "vgg"
    config_class = VGGConfig

    def __init__(self, config: VGGConfig) -> None:
        super().__init__()
        self.config = c = config
        convs, self._stage_relus = _layout(c)
        layers: list[nn.Module] = []
        for (_, cin, cout), nxt in zip(convs, [*convs[1:], None]):
            layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU()]
            if nxt is None or nxt[0] != len(layers):  # the stage ends here
                layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        if c.num_classes:
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
            self.classifier = nn.Sequential(
                nn.Linear(c.widths[4] * 49, c.hidden), nn.ReLU(), nn.Dropout(c.dropout),
                nn.Linear(c.hidden, c.hidden), nn.ReLU(), nn.Dropout(c.dropout),
                nn.Linear(c.hidden, c.num_classes),
            )

    def taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The last ReLU output of each stage (VGG-16: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3)."""
        if x.ndim != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(f"VGG input must be [N, {self.config.in_channels}, H, W], got {tuple(x.shape)}")
        out = []
        for i, layer in enumerate(self.features[: self._stage_relus[-1] + 1]):
            x = layer(x)
            if i in self._stage_relus:
                out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        if not self.config.num_classes:
            return x
        return self.classifier(torch.flatten(self.avgpool(x), 1))


def vgg_config_from_state_dict(sd: dict[str, torch.Tensor], src: str) -> VGGConfig:
    """The `VGGConfig` a torchvision plain-VGG state dict (full, or ``features.*`` only) was saved from."""
    if any(k.endswith("running_mean") for k in sd):
        raise CheckpointError(f"{src}: a batch-norm VGG (vgg*_bn); only plain VGGs are supported")
    idx = sorted(int(k.split(".")[1]) for k in sd if k.startswith("features.") and k.endswith(".weight"))
    if not idx or idx[0] != 0:
        raise CheckpointError(f"{src}: not a torchvision VGG state dict (no features.0.weight)")
    # A gap of 3 between consecutive convs is a max pool: that splits the stages.
    counts, n = [], 1
    for a, b in itertools.pairwise(idx):
        if b - a == 3:
            counts.append(n)
            n = 1
        elif b - a == 2:
            n += 1
        else:
            raise CheckpointError(f"{src}: unexpected features layout around features.{a} / features.{b}")
    counts.append(n)
    depth = {v: k for k, v in VGG_CONVS_PER_STAGE.items()}.get(tuple(counts))
    if depth is None:
        raise CheckpointError(f"{src}: convs per stage {tuple(counts)} match no VGG-11/13/16/19")
    firsts = [idx[sum(counts[:s])] for s in range(5)]
    widths = tuple(int(sd[f"features.{i}.weight"].shape[0]) for i in firsts)
    has_classifier = "classifier.6.weight" in sd
    return VGGConfig(depth=depth, in_channels=int(sd["features.0.weight"].shape[1]), widths=widths,
                     hidden=int(sd["classifier.0.weight"].shape[0]) if has_classifier else 4096,
                     num_classes=int(sd["classifier.6.weight"].shape[0]) if has_classifier else 0)


def vgg_from_state_dict(sd: dict[str, torch.Tensor], src: str) -> VGG:
    """Build a `VGG` from a torchvision ``vgg11/13/16/19`` state dict (strict: every key and shape must match)."""
    model = VGG(vgg_config_from_state_dict(sd, src))
    check_state_dict(model, {k: v.float() for k, v in sd.items()}, src)
    return model.eval()
