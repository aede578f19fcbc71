"""Identity / feature-similarity loss (pSp's ``IDLoss``, e4e's ``MocoLoss``), with the network the user has.

Formula (both references): embeddings f are unit vectors; per sample ``1 - <f(y_hat), f(y)>`` with the target's
embedding detached, averaged over the batch. ``id_improve`` (logged, not optimised) is
``<f(y_hat), f(y)> - <f(y), f(x)>``, defined when the input x is an RGB image.

Networks:

* ``"arcface"`` — ArcFace IR-SE50 (``model_ir_se50.pth``, TreB1eN's ``Backbone``) on pSp's face crop: images
  are brought to 256 px as pSp's ``face_pool`` does (adaptive average pooling), cropped to rows 35:223 and
  columns 32:220, and average-pooled to 112 px (`arcface_crop`).
* ``"moco"`` — e4e's MoCo-style variant for non-face domains: the whole image, nearest-resized to 224 px,
  globally pooled last-stage features of a torchvision ResNet-18/34 (the official MoCo v2 weights are a
  ResNet-50, which this toolkit does not implement).
* a domain network (default ``synthfaces-domain``) — its unit-norm identity embedding on the whole image (the
  MoCo-style use: no face crop), trained by stylebridge in place of ArcFace.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from stylebridge.models.domain import DomainNetwork
from stylebridge.models.irse import IRSEBackbone
from stylebridge.models.resnet import ResNet

__all__ = ["PSP_CROP", "PSP_FACE_POOL", "IdentityLoss", "arcface_crop", "identity_loss"]

PSP_FACE_POOL = 256  # pSp's images are 256 px when the identity loss sees them
PSP_CROP = (35, 223, 32, 220)  # criteria/id_loss.py: x[:, :, 35:223, 32:220] (rows, then columns)
MOCO_SIZE = 224


def arcface_crop(images: torch.Tensor, size: int = 112) -> torch.Tensor:
    """pSp's ArcFace preprocessing: [N, C, S, S] → [N, C, size, size].

    Images not already 256 px are average-pooled to 256 first (pSp's ``face_pool``; smaller images are
    replicated), then cropped to ``[35:223, 32:220]`` (188 × 188) and average-pooled to ``size``.
    """
    if images.ndim != 4 or images.shape[-1] != images.shape[-2]:
        raise ValueError(f"arcface_crop expects square images [N, C, S, S], got {tuple(images.shape)}")
    if images.shape[-1] != PSP_FACE_POOL:
        images = F.adaptive_avg_pool2d(images, (PSP_FACE_POOL, PSP_FACE_POOL))
    y0, y1, x0, x1 = PSP_CROP
    return F.adaptive_avg_pool2d(images[:, :, y0:y1, x0:x1], (size, size))


class IdentityLoss(nn.Module):
    """Frozen embedding network + the references' similarity loss. ``name`` names the network and its weights."""

    def __init__(self, net: nn.Module, embed: Callable[[torch.Tensor], torch.Tensor], name: str) -> None:
        super().__init__()
        self.net, self._embed, self.name = net, embed, name
        self.net.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> IdentityLoss:
        return super().train(False)  # frozen: BatchNorm/Dropout never switch to training behaviour

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Images [N, 3, H, W] in [-1, 1] → unit embeddings [N, D] (fp32)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"identity embeddings take RGB images [N, 3, H, W], got {tuple(images.shape)}")
        return F.normalize(self._embed(images).float(), dim=1)

    def similarity(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Cosine similarity [N] of the two batches' embeddings."""
        return (self.embed(a) * self.embed(b)).sum(dim=1)

    def forward(self, output: torch.Tensor, target: torch.Tensor,
                source: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """(loss = mean(1 - <f(output), f(target)>), stats) — stats: ``id_similarity`` and, when ``source`` is an
        RGB image batch of the same shape, ``id_improve`` (pSp's sim_improvement)."""
        f_out = self.embed(output)
        with torch.no_grad():
            f_tgt = self.embed(target)
        sim = (f_out * f_tgt).sum(dim=1)
        stats = {"id_similarity": float(sim.detach().mean())}
        if source is not None and source.shape == target.shape:
            with torch.no_grad():
                views = (f_tgt * self.embed(source)).sum(dim=1)
            stats["id_improve"] = float((sim.detach() - views).mean())
        return (1 - sim).mean(), stats


def identity_loss(network: str = "auto", weights: str | os.PathLike | None = None,
                  domain: str = "synthfaces-domain") -> IdentityLoss:
    """Build the identity loss a run asked for.

    Args:
        network: "auto" ("arcface" when ``weights`` is given, else the domain network ``domain``), "arcface",
            "moco", or a domain network (shipped name or native folder).
        weights: for "arcface" the ArcFace file (``model_ir_se50.pth`` or a native IR-SE folder); for "moco" a
            torchvision ResNet-18/34 state dict (or a native ResNet folder).
        domain: the domain network "auto" falls back to.
    """
    from stylebridge.formats.loading import load

    if network == "auto":
        network = "arcface" if weights else domain
    if network in ("arcface", "moco"):
        if not weights:
            raise ValueError(f"the {network} identity loss needs its weights file (identity weights): "
                             + ("ArcFace's model_ir_se50.pth" if network == "arcface"
                                else "a torchvision ResNet-18/34 state dict"))
        src = Path(weights).name
        if network == "arcface":
            model = load(weights, expect=IRSEBackbone)
            size = model.config.input_size
            depth = model.config.num_layers
            return IdentityLoss(model, lambda x: model(arcface_crop(x, size)),
                                f"ArcFace IR-SE{depth} ({src}), pSp crop [35:223, 32:220] of 256 px → {size} px")
        model = load(weights, expect=ResNet)

        def moco_embed(x: torch.Tensor) -> torch.Tensor:
            x = F.interpolate(x, size=(MOCO_SIZE, MOCO_SIZE))  # e4e: F.interpolate(x, size=224), nearest
            return F.adaptive_avg_pool2d(model.features(x)[-1], 1).flatten(1)

        return IdentityLoss(model, moco_embed, f"MoCo-style similarity (ResNet-{model.config.depth}, {src}; whole "
                                               f"image at {MOCO_SIZE} px)")
    model = load(network, expect=DomainNetwork)
    label = network if not Path(network).exists() else Path(network).name
    return IdentityLoss(model, lambda x: model.pooled(x)[1],
                        f"{label} similarity (domain network trained by stylebridge, in place of ArcFace; whole "
                        "image)")
