"""e4e: "Designing an Encoder for StyleGAN Image Manipulation" (Tov et al. 2021).

* `E4EEncoder` — encoder4editing's ``Encoder4Editing``: the pSp trunk and pyramid, but W+ row 0 is one w
  (``styles[0]`` on the coarsest features) and every other row i is ``w + delta_i`` (``styles[i]`` on its pyramid
  level). Training activates the deltas progressively; ``progressive_stage`` has the official semantics:
  stage 0 = every row is w, stage k = deltas 1..k added (rows > k stay w), `PROGRESSIVE_INFERENCE` (18, the
  official ``ProgressiveStage.Inference``) or anything >= num_ws - 1 = all deltas. A new encoder is at inference.
* `LatentDiscriminator` — e4e's latent-code discriminator (``models/discriminator.py``), an MLP on single w
  vectors that keeps the codes inside the generator's W distribution (editable).
* `E4E` — encoder + `StyleGAN2Generator` + ``latent_avg``, with the official forward (same as pSp's).

Parameter names equal the official ones (see `stylebridge.models.psp` for the shared parts).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from stylebridge.core.native import PretrainedModel
from stylebridge.models.encoder_base import (
    GradualEncoderBase,
    GradualEncoderConfig,
    StyleEncoderModel,
    validate_model_config,
)
from stylebridge.models.stylegan2 import StyleGAN2Config

__all__ = [
    "E4E",
    "PROGRESSIVE_INFERENCE",
    "E4EConfig",
    "E4EEncoder",
    "E4EEncoderConfig",
    "LatentDiscriminator",
    "LatentDiscriminatorConfig",
    "ProgressiveStages",
]

PROGRESSIVE_INFERENCE = 18  # ProgressiveStage.Inference of the reference: every delta active


@dataclass(frozen=True)
class E4EEncoderConfig(GradualEncoderConfig):
    """Architecture of an e4e encoder: the fields pSp shares (`GradualEncoderConfig`; defaults: the official FFHQ
    Encoder4Editing, IR-SE-50, 256 px, 18×512); num_ws = 2·log2(stylegan_size) - 2."""


class ProgressiveStages:
    """e4e's progressive stage on an encoder with ``config.num_ws`` rows (e4e's and ReStyle-e4e's): deltas 1..stage
    are added to w (0: only w; >= num_ws - 1, e.g. `PROGRESSIVE_INFERENCE`: all). A new encoder is at inference."""

    config: Any
    _stage: int = PROGRESSIVE_INFERENCE

    @property
    def progressive_stage(self) -> int:
        return self._stage

    @progressive_stage.setter
    def progressive_stage(self, stage: int) -> None:
        stage = int(getattr(stage, "value", stage))  # also accepts the reference's ProgressiveStage enum values
        if stage < 0:
            raise ValueError(f"progressive_stage must be >= 0, got {stage}")
        self._stage = stage

    @property
    def active_deltas(self) -> int:
        return min(self._stage, self.config.num_ws - 1)


class E4EEncoder(ProgressiveStages, GradualEncoderBase):
    """e4e encoder: images [N, in_channels, input_size, input_size] in [-1, 1] → codes [N, num_ws, w_dim] *without*
    ``latent_avg``: row 0 is w, row i is w + delta_i for the deltas the progressive stage activates.
    """

    model_type = "e4e-encoder"
    config_class = E4EEncoderConfig

    def __init__(self, config: E4EEncoderConfig) -> None:
        super().__init__()
        self.config = config
        self._build(config, pyramid=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.config
        self._check_input(x)
        c1, c2, c3 = self.trunk_features(x)
        w = self.styles[0](c3)
        rows = [w]
        features = c3
        p2 = None
        for i in range(1, c.num_ws):
            if i > self.active_deltas:
                rows.append(w)
                continue
            # The pyramid levels are built only once a delta needs them (as the reference does).
            if i == c.coarse_ind:
                p2 = features = self.pyramid_middle(c2, c3)
            elif i == c.middle_ind:
                assert p2 is not None
                features = self.pyramid_fine(c1, p2)
            rows.append(w + self.styles[i](features))
        return torch.stack(rows, dim=1)


@dataclass(frozen=True)
class E4EConfig:
    """e4e = encoder + decoder. Defaults: official FFHQ e4e (256-px input, 1024-px config-f generator)."""

    encoder: E4EEncoderConfig = field(default_factory=E4EEncoderConfig)
    decoder: StyleGAN2Config = field(default_factory=lambda: StyleGAN2Config(resolution=1024))
    resize_to: int = 256  # side of the official face_pool output (forward with resize=True)

    def __post_init__(self) -> None:
        validate_model_config(self, E4EEncoderConfig)

    def to_dict(self) -> dict:
        return asdict(self)


class E4E(StyleEncoderModel):
    """e4e: images [N, in_channels, S, S] in [-1, 1] → W+ (`encode`) → images (`decode`, `forward`).

    The progressive stage lives on the encoder: ``model.encoder.progressive_stage = 3``.
    """

    model_type = "e4e"
    config_class = E4EConfig

    def __init__(self, config: E4EConfig) -> None:
        super().__init__()
        self.config = config
        self._build(E4EEncoder(config.encoder), config.encoder.num_ws)


@dataclass(frozen=True)
class LatentDiscriminatorConfig:
    """e4e's latent discriminator. Defaults: the official ``LatentCodesDiscriminator(512, 4)``."""

    w_dim: int = 512
    num_layers: int = 4  # linear layers (n_mlp); all but the last are w_dim → w_dim + LeakyReLU
    negative_slope: float = 0.2

    def __post_init__(self) -> None:
        if self.w_dim < 1 or self.num_layers < 1:
            raise ValueError("w_dim and num_layers must be >= 1")

    def to_dict(self) -> dict:
        return asdict(self)


class LatentDiscriminator(PretrainedModel):
    """w [..., w_dim] → realness logits [..., 1]. Official names: ``mlp.0``, ``mlp.2``, …, ``mlp.{2(L-1)}``."""

    model_type = "e4e-latent-discriminator"
    config_class = LatentDiscriminatorConfig

    def __init__(self, config: LatentDiscriminatorConfig) -> None:
        super().__init__()
        self.config = c = config
        layers: list[nn.Module] = []
        for _ in range(c.num_layers - 1):
            layers += [nn.Linear(c.w_dim, c.w_dim), nn.LeakyReLU(c.negative_slope)]
        layers.append(nn.Linear(c.w_dim, 1))  # the reference hard-codes Linear(512, 1), i.e. w_dim 512
        self.mlp = nn.Sequential(*layers)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        if w.shape[-1] != self.config.w_dim:
            raise ValueError(f"w must end in {self.config.w_dim}, got {tuple(w.shape)}")
        return self.mlp(w)
