"""AlexNet (Krizhevsky et al. 2012, torchvision's single-GPU variant) with torchvision's parameter names.

Used as the LPIPS "alex" backbone (`stylebridge.models.lpips`): torchvision has no working CPU build for our torch,
but users hold torchvision's ``alexnet-owt-7be5be79.pth``; its state dict loads here with strict checking.
Names: ``features.{0,3,6,8,10}`` (the five convs) and ``classifier.{1,4,6}`` (the three linear layers)::

    features:   conv11x11/4 (64) → ReLU → maxpool3/2 → conv5x5 (192) → ReLU → maxpool3/2
                → conv3x3 (384) → ReLU → conv3x3 (256) → ReLU → conv3x3 (256) → ReLU → maxpool3/2
    avgpool:    adaptive 6x6
    classifier: dropout → linear (256·36 → 4096) → ReLU → dropout → linear (4096 → 4096) → ReLU → linear (→ classes)

``num_classes=0`` builds the convolutional part only (what LPIPS needs). Widths are configurable (small test models).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from stylebridge.core.native import CheckpointError, PretrainedModel, check_state_dict

__all__ = ["ALEXNET_CONVS", "AlexNet", "AlexNetConfig", "alexnet_config_from_state_dict", "alexnet_from_state_dict"]

# Index in ``features`` of each conv, and of the ReLU after it (the LPIPS taps relu1 … relu5).
ALEXNET_CONVS = (0, 3, 6, 8, 10)
_RELUS = (1, 4, 7, 9, 11)


@dataclass(frozen=True)
class AlexNetConfig:
    """Architecture of an AlexNet. Defaults: torchvision ``alexnet()``."""

    in_channels: int = 3
    widths: tuple[int, ...] = (64, 192, 384, 256, 256)  # channels of the five convs
    hidden: int = 4096  # width of the two hidden linear layers
    num_classes: int = 1000  # 0: no avgpool / classifier; ``forward`` returns the last feature map
    dropout: float = 0.5

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        if len(self.widths) != 5 or min(self.widths) < 1:
            raise ValueError(f"widths must list 5 positive conv widths, got {self.widths}")
        if self.num_classes < 0 or self.hidden < 1 or self.in_channels < 1:
            raise ValueError("num_classes must be >= 0, hidden and in_channels >= 1")

    def to_dict(self) -> dict:
        return asdict(self)


class AlexNet(PretrainedModel):
    """Images [N, in_channels, H, W] (H, W >= 63: three 3/2 max pools after a stride-4 conv) → logits
    [N, num_classes], or the last feature map [N, widths[4], h, w] when ``num_classes == 0``.

    Input normalisation is the caller's (torchvision: ImageNet mean/std on [0, 1]; LPIPS: its own scaling layer).
    """

    model_type = "alexnet"
    config_class = AlexNetConfig

    def __init__(self, config: AlexNetConfig) -> None:
        super().__init__()
        self.config = c = config
        w = c.widths
        self.features = nn.Sequential(
            nn.Conv2d(c.in_channels, w[0], 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(w[0], w[1], 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(w[1], w[2], 3, padding=1), nn.ReLU(),
            nn.Conv2d(w[2], w[3], 3, padding=1), nn.ReLU(),
            nn.Conv2d(w[3], w[4], 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
        )
        if c.num_classes:
            self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
            self.classifier = nn.Sequential(
                nn.Dropout(c.dropout), nn.Linear(w[4] * 36, c.hidden), nn.ReLU(),
                nn.Dropout(c.dropout), nn.Linear(c.hidden, c.hidden), nn.ReLU(),
                nn.Linear(c.hidden, c.num_classes),
            )

    def taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The five ReLU outputs (LPIPS' relu1 … relu5): [N, widths[k], h_k, w_k]."""
        if x.ndim != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(f"AlexNet input must be [N, {self.config.in_channels}, H, W], got {tuple(x.shape)}")
        out = []
        for i, layer in enumerate(self.features[: _RELUS[-1] + 1]):
            x = layer(x)
            if i in _RELUS:
                out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        if not self.config.num_classes:
            return x
        return self.classifier(torch.flatten(self.avgpool(x), 1))


def alexnet_config_from_state_dict(sd: dict[str, torch.Tensor], src: str) -> AlexNetConfig:
    """The `AlexNetConfig` a torchvision AlexNet state dict (full, or ``features.*`` only) was saved from."""
    try:
        convs = [sd[f"features.{i}.weight"] for i in ALEXNET_CONVS]
    except KeyError as exc:
        raise CheckpointError(f"{src}: not a torchvision AlexNet state dict (missing {exc})") from None
    if tuple(convs[0].shape[2:]) != (11, 11):
        raise CheckpointError(f"{src}: features.0 is a {tuple(convs[0].shape[2:])} conv, AlexNet's is 11x11")
    has_classifier = "classifier.6.weight" in sd
    return AlexNetConfig(in_channels=int(convs[0].shape[1]), widths=tuple(int(w.shape[0]) for w in convs),
                         hidden=int(sd["classifier.1.weight"].shape[0]) if has_classifier else 4096,
                         num_classes=int(sd["classifier.6.weight"].shape[0]) if has_classifier else 0)


def alexnet_from_state_dict(sd: dict[str, torch.Tensor], src: str) -> AlexNet:
    """Build an `AlexNet` from a torchvision ``alexnet`` state dict (strict: every key and shape must match)."""
    model = AlexNet(alexnet_config_from_state_dict(sd, src))
    check_state_dict(model, {k: v.float() for k, v in sd.items()}, src)
    return model.eval()
