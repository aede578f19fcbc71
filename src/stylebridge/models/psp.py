"""pSp: "Encoding in Style" (Richardson et al. 2021): an IR-SE encoder that maps images into the W+ space of a
frozen StyleGAN2 generator.

* `PSPEncoder` — pixel2style2pixel's ``GradualStyleEncoder``: IR-SE trunk, a feature pyramid over its last three
  stages (c3 → p2 → p1 via ``latlayer1/2`` and bilinear upsampling) and one ``GradualStyleBlock`` ("map2style")
  per W+ row: rows [0, coarse_ind) read c3 (1/16 of the input side), [coarse_ind, middle_ind) read p2 (1/8),
  the rest p1 (1/4). With ``learn_in_w`` it is ``BackboneEncoderUsingLastLayerIntoW`` instead: trunk → global
  average pool → one EqualLinear → a single w.
* `PSP` — encoder + `StyleGAN2Generator` decoder + ``latent_avg``, reproducing the official ``pSp.forward``
  (latent-mask style mixing, ``face_pool`` resize).

Parameter names equal the official ones, so the ``encoder.*`` / ``decoder.*`` halves of an official checkpoint
load with strict checking (`stylebridge.load` does the conversion). Inputs are images in [-1, 1] (the official
``Normalize([0.5]*3, [0.5]*3)``) with ``in_channels`` channels: 3 for RGB, 1 for sketches, N for N-label one-hot
segmentation maps, 4 for RGB + mask.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from stylebridge.models.encoder_base import (
    GradualEncoderBase,
    GradualEncoderConfig,
    StyleEncoderModel,
    mix_latents,
    validate_model_config,
)
from stylebridge.models.irse import trunk_layout
from stylebridge.models.layers import EqualLinear
from stylebridge.models.stylegan2 import StyleGAN2Config

__all__ = ["PSP", "PSPConfig", "PSPEncoder", "PSPEncoderConfig", "StyleEncoderModel", "mix_latents"]


@dataclass(frozen=True)
class PSPEncoderConfig(GradualEncoderConfig):
    """Architecture of a pSp encoder: the shared IR-SE trunk + pyramid fields (`GradualEncoderConfig`; defaults:
    the official FFHQ GradualStyleEncoder, IR-SE-50, 256 px, 18×512) and pSp's one option."""

    learn_in_w: bool = False  # BackboneEncoderUsingLastLayerIntoW: one w for every row, no pyramid


class PSPEncoder(GradualEncoderBase):
    """pSp encoder: images [N, in_channels, input_size, input_size] in [-1, 1] → raw codes, *without*
    ``latent_avg``: [N, num_ws, w_dim] (GradualStyleEncoder) or [N, w_dim] (``learn_in_w``; that variant pools
    globally and accepts any input size the trunk can divide by 16).
    """

    model_type = "psp-encoder"
    config_class = PSPEncoderConfig

    def __init__(self, config: PSPEncoderConfig) -> None:
        super().__init__()
        self.config = c = config
        self._build(c, pyramid=not c.learn_in_w)
        if c.learn_in_w:
            self.linear = EqualLinear(c.widths[3], c.w_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.config
        self._check_input(x, exact_size=not c.learn_in_w)
        if c.learn_in_w:
            feat = F.adaptive_avg_pool2d(self.body(self.input_layer(trunk_layout(x))), 1)
            return self.linear(feat.reshape(feat.shape[0], -1))
        c1, c2, c3 = self.trunk_features(x)
        latents = [self.styles[j](c3) for j in range(min(c.coarse_ind, c.num_ws))]
        if c.num_ws > c.coarse_ind:
            p2 = self.pyramid_middle(c2, c3)
            latents += [self.styles[j](p2) for j in range(c.coarse_ind, min(c.middle_ind, c.num_ws))]
            if c.num_ws > c.middle_ind:
                p1 = self.pyramid_fine(c1, p2)
                latents += [self.styles[j](p1) for j in range(c.middle_ind, c.num_ws)]
        return torch.stack(latents, dim=1)


@dataclass(frozen=True)
class PSPConfig:
    """pSp = encoder + decoder. Defaults: official FFHQ pSp (256-px input, 1024-px config-f generator)."""

    encoder: PSPEncoderConfig = field(default_factory=PSPEncoderConfig)
    decoder: StyleGAN2Config = field(default_factory=lambda: StyleGAN2Config(resolution=1024))
    resize_to: int = 256  # side of the official face_pool output (forward with resize=True)

    def __post_init__(self) -> None:
        validate_model_config(self, PSPEncoderConfig)

    def to_dict(self) -> dict:
        return asdict(self)


class PSP(StyleEncoderModel):
    """pSp: images [N, in_channels, S, S] in [-1, 1] → W+ (`encode`) → images (`decode`, `forward`)."""

    model_type = "psp"
    config_class = PSPConfig

    def __init__(self, config: PSPConfig) -> None:
        super().__init__()
        self.config = config
        self._build(PSPEncoder(config.encoder), 1 if config.encoder.learn_in_w else config.encoder.num_ws)
