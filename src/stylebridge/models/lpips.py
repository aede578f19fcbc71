"""LPIPS: "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric" (Zhang et al. 2018), v0.1.

Re-implemented from richzhang/PerceptualSimilarity ``lpips/lpips.py`` (and pSp's ``criteria/lpips``), without
torchvision or the ``lpips`` package::

    x, y in [-1, 1]  →  scaling layer: (x - shift) / scale, shift = (-.030, -.088, -.188), scale = (.458, .448, .450)
    → backbone taps (alex: relu1 … relu5; vgg16: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3)
    → per tap: unit-normalise over channels (x / (sqrt(sum_c x²) + 1e-10)), squared difference,
      1x1 conv to one channel (the learned ``lin{k}`` weights, no bias), mean over space
    → sum over taps  =  distance [N]

Weights are the user's files (nothing is downloaded): a torchvision AlexNet / VGG-16 state dict for the backbone
and the LPIPS linear-head file from the ``lpips`` package (``weights/v0.1/alex.pth`` / ``vgg.pth``, keys
``lin0.model.1.weight`` … ``lin4.model.1.weight`` of shape [1, C_k, 1, 1]: index 1 because the official
``NetLinLayer`` puts a Dropout at index 0). `LPIPS.from_official` builds the model from the two files; a native
folder (`save_pretrained`) then holds both in one place. Without these files the toolkit's losses use the domain
network's distance instead (`stylebridge.losses.perceptual`).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from stylebridge.core.native import CheckpointError, PretrainedModel, check_state_dict
from stylebridge.models.alexnet import AlexNet, AlexNetConfig, alexnet_config_from_state_dict
from stylebridge.models.vgg import VGG, VGGConfig, vgg_config_from_state_dict

__all__ = ["LPIPS", "LPIPS_NETS", "LPIPSConfig", "load_lpips", "lpips_head_keys"]

LPIPS_NETS = ("alex", "vgg")
# The official ScalingLayer constants (lpips v0.1): inputs in [-1, 1] are mapped to ImageNet statistics.
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
EPS = 1e-10  # normalize_tensor's epsilon


@dataclass(frozen=True)
class LPIPSConfig:
    """Architecture of an LPIPS metric. Defaults: LPIPS v0.1 with torchvision's AlexNet."""

    net: str = "alex"  # "alex" (AlexNet) or "vgg" (VGG-16)
    widths: tuple[int, ...] | None = None  # backbone widths (None: torchvision's; smaller ones only for tests)

    def __post_init__(self) -> None:
        if self.net not in LPIPS_NETS:
            raise ValueError(f"net must be one of {LPIPS_NETS}, got {self.net!r}")
        if self.widths is not None:
            object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))

    def backbone_config(self) -> AlexNetConfig | VGGConfig:
        kw = {} if self.widths is None else {"widths": self.widths}
        return AlexNetConfig(num_classes=0, **kw) if self.net == "alex" else VGGConfig(num_classes=0, **kw)

    @property
    def tap_channels(self) -> tuple[int, ...]:
        """Channels of the five taps (alex: 64, 192, 384, 256, 256; vgg: 64, 128, 256, 512, 512)."""
        return self.backbone_config().widths

    def to_dict(self) -> dict:
        return asdict(self)


class ScalingLayer(nn.Module):
    """(x - shift) / scale with the official constants, as buffers ``shift`` / ``scale`` [1, 3, 1, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor(SHIFT)[None, :, None, None])
        self.register_buffer("scale", torch.tensor(SCALE)[None, :, None, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.shift) / self.scale


class NetLinLayer(nn.Module):
    """The official head: ``model`` = Sequential(Dropout, 1x1 conv C → 1 without bias); keys ``model.1.weight``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, 1, bias=False))
        # Before official weights are loaded: all ones, the official "baseline" (lpips=False: a plain channel sum).
        nn.init.ones_(self.model[1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def lpips_head_keys(net: str = "alex") -> dict[str, tuple[int, ...]]:
    """Key → shape of the official linear-head file for ``net`` (what ``alex.pth`` / ``vgg.pth`` hold)."""
    return {f"lin{k}.model.1.weight": (1, c, 1, 1) for k, c in enumerate(LPIPSConfig(net).tap_channels)}


def _normalize(x: torch.Tensor) -> torch.Tensor:
    return x / (torch.sqrt(torch.sum(x * x, dim=1, keepdim=True)) + EPS)


class LPIPS(PretrainedModel):
    """LPIPS distance: images x, y [N, 3, H, W] in [-1, 1] → [N] (0 for identical images, symmetric).

    AlexNet needs H, W >= 48 (its three stride-2 max pools), VGG-16 >= 16. Always frozen and in eval mode
    (the heads' Dropout is off), as the official metric; it still passes gradients to its inputs.
    """

    model_type = "lpips"
    config_class = LPIPSConfig

    def __init__(self, config: LPIPSConfig) -> None:
        super().__init__()
        self.config = c = config
        self.scaling_layer = ScalingLayer()
        bc = c.backbone_config()
        self.net: AlexNet | VGG = AlexNet(bc) if c.net == "alex" else VGG(bc)  # type: ignore[arg-type]
        for k, ch in enumerate(c.tap_channels):
            self.add_module(f"lin{k}", NetLinLayer(ch))
        self.requires_grad_(False)
        self.eval()

    @property
    def lins(self) -> list[NetLinLayer]:
        return [getattr(self, f"lin{k}") for k in range(len(self.config.tap_channels))]

    def train(self, mode: bool = True) -> LPIPS:
        return super().train(False)  # the metric never runs in training mode (no Dropout)

    def forward(self, x: torch.Tensor, y: torch.Tensor, per_layer: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Distances [N]; with ``per_layer`` also the five per-tap terms ([N] each) that sum to it."""
        if x.shape != y.shape or x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"LPIPS compares two [N, 3, H, W] batches, got {tuple(x.shape)} and {tuple(y.shape)}")
        fx = self.net.taps(self.scaling_layer(x))
        fy = self.net.taps(self.scaling_layer(y))
        terms = [lin((_normalize(a) - _normalize(b)).square()).mean(dim=(1, 2, 3))
                 for a, b, lin in zip(fx, fy, self.lins)]
        total = terms[0]
        for t in terms[1:]:
            total = total + t
        return (total, terms) if per_layer else total

    @classmethod
    def from_official(cls, backbone: str | os.PathLike | dict[str, torch.Tensor],
                      heads: str | os.PathLike | dict[str, torch.Tensor]) -> LPIPS:
        """LPIPS from a torchvision AlexNet / VGG-16 state dict (file or dict; a full model file or only its
        ``features.*``) and the official linear-head file (``alex.pth`` / ``vgg.pth``). The backbone kind comes
        from the backbone's keys; both are checked strictly (every key present, every shape right)."""
        bsd, bsrc = _state_dict(backbone, "LPIPS backbone")
        hsd, hsrc = _state_dict(heads, "LPIPS heads")
        if "features.0.weight" in bsd and tuple(bsd["features.0.weight"].shape[2:]) == (11, 11):
            net, bcfg = "alex", alexnet_config_from_state_dict(bsd, bsrc)
            full: AlexNet | VGG = _on_meta(AlexNet, bcfg)
        else:
            net, bcfg = "vgg", vgg_config_from_state_dict(bsd, bsrc)
            if bcfg.depth != 16:
                raise CheckpointError(f"{bsrc}: a VGG-{bcfg.depth}; LPIPS uses VGG-16")
            full = _on_meta(VGG, bcfg)
        _check_shapes(full, bsd, bsrc)  # the whole file (classifier included) is what it claims to be
        if bcfg.in_channels != 3:
            raise CheckpointError(f"{bsrc}: the backbone takes {bcfg.in_channels} channels; LPIPS needs 3")
        default = LPIPSConfig(net).backbone_config().widths
        model = cls(LPIPSConfig(net, None if bcfg.widths == default else bcfg.widths))
        features = {k: v.float() for k, v in bsd.items() if k.startswith("features.")}
        check_state_dict(model.net, features, bsrc)
        expected = {f"lin{k}.model.1.weight": (1, c, 1, 1) for k, c in enumerate(model.config.tap_channels)}
        _check_heads(hsd, expected, hsrc, net)
        for k, lin in enumerate(model.lins):
            lin.model[1].weight.data.copy_(hsd[f"lin{k}.model.1.weight"].float())
        model.requires_grad_(False)
        return model.eval()


def load_lpips(backbone: str | os.PathLike, heads: str | os.PathLike | None = None) -> LPIPS:
    """An LPIPS model: from a native folder (``heads`` None), or from the two official files."""
    if heads is None:
        model = LPIPS.from_pretrained(backbone)
        assert isinstance(model, LPIPS)
        return model
    return LPIPS.from_official(backbone, heads)


def _state_dict(obj: str | os.PathLike | dict[str, torch.Tensor], what: str) -> tuple[dict[str, torch.Tensor], str]:
    if isinstance(obj, dict):
        return obj, what
    from stylebridge.core.safe_pickle import load_torch_file  # restricted unpickler: a weights file runs no code

    path = Path(obj)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} file not found")
    sd = load_torch_file(path)
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{path}: not a state dict of tensors ({what})")
    return dict(sd), str(path)


def _on_meta(cls: type, config: object) -> nn.Module:
    with torch.device("meta"):  # shapes only: a full VGG-16 would allocate 550 MB for its classifier
        return cls(config)


def _check_shapes(model: nn.Module, sd: dict[str, torch.Tensor], src: str) -> None:
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    shapes = [f"{k}: {tuple(sd[k].shape)} vs {own[k]}" for k in own if k in sd and tuple(sd[k].shape) != own[k]]
    if missing or unexpected or shapes:
        raise CheckpointError(f"{src}: does not match torchvision's {type(model).__name__}: missing {missing[:6]}, "
                              f"unexpected {unexpected[:6]}, shape mismatches {shapes[:6]}")


def _check_heads(sd: dict[str, torch.Tensor], expected: dict[str, tuple[int, ...]], src: str, net: str) -> None:
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    shapes = [f"{k}: {tuple(sd[k].shape)} vs {v}" for k, v in expected.items() if k in sd and tuple(sd[k].shape) != v]
    if missing or unexpected or shapes:
        raise CheckpointError(f"{src}: not the LPIPS linear heads for the {net} backbone (expected keys "
                              f"{list(expected)}): missing {missing}, unexpected {unexpected[:6]}, "
                              f"shape mismatches {shapes}")
