"""ResNet-18/34 (He et al. 2016, basic blocks) with torchvision's parameter names, in plain PyTorch.

torchvision has no working CPU build for our torch, but users hold torchvision weight files (``resnet34-*.pth``,
the backbone of ReStyle/HyperStyle-style encoders): their state dicts load here with strict checking. Names:
``conv1``, ``bn1``, ``layer1..4.N.conv1/bn1/conv2/bn2``, ``layer{k}.0.downsample.0/1`` (1x1 conv + BN where the
shape changes) and ``fc``. Widths and input channels are configurable (tiny test models, 1-channel sketches).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from stylebridge.core.native import PretrainedModel

__all__ = ["RESNET_BLOCKS", "BasicBlock", "ResNet", "ResNetConfig"]

# Basic blocks per stage.
RESNET_BLOCKS: dict[int, tuple[int, int, int, int]] = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}


@dataclass(frozen=True)
class ResNetConfig:
    """Architecture of a basic-block ResNet. Defaults: torchvision ``resnet34()``."""

    depth: int = 34  # 18 or 34
    in_channels: int = 3
    input_width: int = 64  # channels of the 7x7 stem conv
    widths: tuple[int, ...] = (64, 128, 256, 512)  # channels of layer1..layer4
    num_classes: int = 1000  # size of ``fc``; 0: no classifier, ``forward`` returns the pooled features

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        if self.depth not in RESNET_BLOCKS:
            raise ValueError(f"depth must be one of {sorted(RESNET_BLOCKS)} (basic-block ResNets), got {self.depth}")
        if len(self.widths) != 4:
            raise ValueError(f"widths must list the 4 stage widths, got {self.widths}")
        if self.num_classes < 0 or self.in_channels < 1 or self.input_width < 1:
            raise ValueError("num_classes must be >= 0, in_channels and input_width >= 1")

    def to_dict(self) -> dict:
        return asdict(self)


class BasicBlock(nn.Module):
    """conv3x3(stride) → BN → ReLU → conv3x3 → BN, plus the (downsampled) input, → ReLU."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, channels, 1, stride, bias=False),
                                            nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + identity)


class ResNet(PretrainedModel):
    """Images [N, in_channels, H, W] → logits [N, num_classes] (or pooled features [N, widths[-1]]).

    The stem (7x7 stride-2 conv, 3x3 stride-2 max pool) and layers 2-4 (stride 2 each) divide the side by 32.
    """

    model_type = "resnet"
    config_class = ResNetConfig

    def __init__(self, config: ResNetConfig) -> None:
        super().__init__()
        self.config = c = config
        self.conv1 = nn.Conv2d(c.in_channels, c.input_width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(c.input_width)
        prev = c.input_width
        for k, (width, count) in enumerate(zip(c.widths, RESNET_BLOCKS[c.depth])):
            blocks = [BasicBlock(prev, width, 1 if k == 0 else 2)]
            blocks += [BasicBlock(width, width) for _ in range(count - 1)]
            self.add_module(f"layer{k + 1}", nn.Sequential(*blocks))
            prev = width
        self.fc = nn.Linear(prev, c.num_classes) if c.num_classes else None
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @property
    def stages(self) -> list[nn.Sequential]:
        return [self.layer1, self.layer2, self.layer3, self.layer4]

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Outputs of layer1..layer4: [N, widths[k], H/2**(k+2), W/2**(k+2)] for k = 0..3."""
        if x.ndim != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(f"input must be [N, {self.config.in_channels}, H, W], got {tuple(x.shape)}")
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        out = []
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = torch.flatten(F.adaptive_avg_pool2d(self.features(x)[-1], 1), 1)
        return feat if self.fc is None else self.fc(feat)
