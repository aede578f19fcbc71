"""Perceptual distance for training and evaluation: LPIPS when the user gives its weights, otherwise the domain
network's distance (DESIGN: nothing is downloaded; third-party weights are explicit file paths).

    dist = perceptual_distance()                               # synthfaces-domain distance
    dist = perceptual_distance(lpips_backbone="alexnet-owt-7be5be79.pth", lpips_heads="alex.pth")   # LPIPS v0.1
    dist(x, y)  # [N]
    dist.name   # what every report prints
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from stylebridge.models.domain import DomainNetwork
from stylebridge.models.lpips import LPIPS, load_lpips
from stylebridge.models.vgg import VGG, VGGConfig, vgg_config_from_state_dict

__all__ = ["DEFAULT_DOMAIN_NETWORK", "PerceptualDistance", "VGG19FeatureLoss", "perceptual_distance"]

DEFAULT_DOMAIN_NETWORK = "synthfaces-domain"


class PerceptualDistance(nn.Module):
    """Frozen perceptual distance: images x, y [N, 3, H, W] in [-1, 1] → [N] (≥ 0 for LPIPS' official weights
    and the domain network; 0 for identical images). ``name`` names the network and its weights."""

    def __init__(self, net: LPIPS | DomainNetwork, name: str) -> None:
        super().__init__()
        self.net, self.name = net, name
        self.net.requires_grad_(False).eval()

    @property
    def kind(self) -> str:
        return "lpips" if isinstance(self.net, LPIPS) else "domain"

    def train(self, mode: bool = True) -> PerceptualDistance:
        return super().train(False)  # frozen metric: BatchNorm/Dropout never switch to training behaviour

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape or x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"perceptual distance compares two [N, 3, H, W] batches, got {tuple(x.shape)} and "
                             f"{tuple(y.shape)}")
        if isinstance(self.net, LPIPS):
            return self.net(x, y).float()
        return self.net.distance(x, y).float()


def perceptual_distance(network: str = "auto", lpips_backbone: str | os.PathLike | None = None,
                        lpips_heads: str | os.PathLike | None = None,
                        domain: str = DEFAULT_DOMAIN_NETWORK) -> PerceptualDistance:
    """Build the perceptual distance a run asked for.

    Args:
        network: "auto" (LPIPS when ``lpips_backbone`` is given, else the domain network ``domain``), "lpips"
            (LPIPS; error without its files), or a model path / shipped name that loads as an LPIPS or
            domain network (e.g. "synthfaces-domain", a native LPIPS folder).
        lpips_backbone: a torchvision AlexNet / VGG-16 state dict file, or a native LPIPS folder.
        lpips_heads: the official LPIPS linear-head file (``alex.pth`` / ``vgg.pth``); None with a native folder.
        domain: the domain network "auto" falls back to.
    """
    if network == "auto":
        network = "lpips" if lpips_backbone else domain
    if network == "lpips":
        if not lpips_backbone:
            raise ValueError("LPIPS needs its weights: give lpips_backbone (a torchvision AlexNet/VGG-16 state "
                             "dict, or a native LPIPS folder) and lpips_heads (the lpips package's alex.pth/vgg.pth)")
        if lpips_heads is None and not Path(lpips_backbone).is_dir():
            raise ValueError(f"{lpips_backbone}: a backbone file needs lpips_heads (alex.pth / vgg.pth) beside it")
        model = load_lpips(lpips_backbone, lpips_heads)
        source = (f"backbone {Path(lpips_backbone).name}, heads {Path(lpips_heads).name}" if lpips_heads
                  else str(lpips_backbone))
        return PerceptualDistance(model, f"LPIPS v0.1 ({model.config.net}; {source})")
    from stylebridge.formats.loading import load

    model = load(network, expect=(LPIPS, DomainNetwork))
    if isinstance(model, LPIPS):
        return PerceptualDistance(model, f"LPIPS v0.1 ({model.config.net}; {network})")
    return PerceptualDistance(model, f"{_label(network)} distance (domain network trained by stylebridge, "
                                     "in place of LPIPS)")


def _label(spec: str) -> str:
    """A short name for a model spec: the shipped name, or the folder's name."""
    p = Path(spec)
    return spec if not p.exists() else (p.name if p.name not in ("model", "") else str(p))


# pix2pixHD's Vgg19 slices end at relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 (torchvision vgg19 ``features``
# indices); its VGGLoss weights them 1/32, 1/16, 1/8, 1/4, 1.
VGG19_TAPS = (1, 6, 11, 20, 29)
VGG19_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)


class VGG19FeatureLoss(nn.Module):
    """pix2pixHD's ``VGGLoss``: Σ_i w_i · L1(VGG19_i(x), VGG19_i(y).detach()) over relu1_1 … relu5_1 with weights
    1/32 … 1, on the images as they are (pix2pixHD feeds [-1, 1] images to VGG without ImageNet normalisation).
    x, y [N, 3, H, W] → scalar. Frozen; ``name`` says which weights file it uses."""

    def __init__(self, vgg: VGG, name: str) -> None:
        super().__init__()
        if vgg.config.depth != 19:
            raise ValueError(f"pix2pixHD's perceptual loss needs a VGG-19, got a VGG-{vgg.config.depth}")
        self.net, self.name = vgg.requires_grad_(False).eval(), name

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> VGG19FeatureLoss:
        """From a torchvision ``vgg19-dcbb9e9d.pth`` state dict (or its ``features.*`` only; the classifier, if
        present, is checked for shape and dropped)."""
        from stylebridge.models.lpips import _state_dict

        sd, src = _state_dict(path, "VGG-19")
        cfg = vgg_config_from_state_dict(sd, src)
        if cfg.depth != 19:
            raise ValueError(f"{path}: a VGG-{cfg.depth}; pix2pixHD's perceptual loss uses VGG-19")
        vgg = VGG(VGGConfig(depth=19, in_channels=cfg.in_channels, widths=cfg.widths, num_classes=0))
        from stylebridge.core.native import check_state_dict

        check_state_dict(vgg, {k: v.float() for k, v in sd.items() if k.startswith("features.")}, src)
        return cls(vgg, f"VGG-19 feature L1 (pix2pixHD; {Path(path).name})")

    def train(self, mode: bool = True) -> VGG19FeatureLoss:
        return super().train(False)

    def taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, layer in enumerate(self.net.features[: VGG19_TAPS[-1] + 1]):
            x = layer(x)
            if i in VGG19_TAPS:
                out.append(x)
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape or x.ndim != 4 or x.shape[1] != self.net.config.in_channels:
            raise ValueError(f"the VGG-19 loss compares two [N, {self.net.config.in_channels}, H, W] batches, got "
                             f"{tuple(x.shape)} and {tuple(y.shape)}")
        fx, fy = self.taps(x), self.taps(y)
        return sum(w * (a.float() - b.detach().float()).abs().mean()
                   for w, a, b in zip(VGG19_WEIGHTS, fx, fy, strict=True))  # type: ignore[return-value]
