"""ReStyle: "A Residual-Based StyleGAN Encoder via Iterative Refinement" (Alaluf et al. 2021).

An encoder whose input is the image concatenated with the current reconstruction (6 channels) predicts a *residual*
to the current W+ code; inversion starts from the average code and its image and repeats N times::

    w_0 = latent_avg,  y_0 = G(latent_avg)                                  (the "average image")
    w_{t+1} = w_t + E([x, y_t]),  y_{t+1} = G(w_{t+1})   for t = 0 … N-1

(the first step adds the encoder's output to ``latent_avg``, as the official ``forward`` with ``latent=None``).

* `BackboneEncoder` — restyle-encoder's ``BackboneEncoder`` (pSp) and ``ProgressiveBackboneEncoder`` (e4e,
  ``progressive=True``): the IR-SE trunk, then one map2style block per W+ row, all on the last (1/16) feature map —
  no pyramid. The e4e form predicts one w plus per-row deltas like e4e, with the same progressive stages.
* The pyramid encoders of pSp (`PSPEncoder`, restyle's ``GradualStyleEncoder``) and e4e (`E4EEncoder`) with a
  6-channel input (``encoder_type="gradual"``), which restyle also trains for pSp; the shipped synthfaces ReStyle-e4e
  uses e4e's, so it could start from the shipped e4e's weights.
* `ReStyle` — encoder + frozen `StyleGAN2Generator` + ``latent_avg``; ``encode(x)`` runs ``config.n_iters``
  iterations (the official inference default, 5) and is therefore what every encoder pipeline, ``stylebridge
  encode`` / ``translate`` and the ``restyle`` inverter call; `iterate` returns every iteration's codes and images.

Parameter names equal the official ones (``encoder.input_layer.0.weight`` [64, 6, 3, 3], ``encoder.body.*``,
``encoder.styles.{i}.*``, ``decoder.*``), so official ``restyle_psp_*.pt`` / ``restyle_e4e_*.pt`` files load through
`stylebridge.load` (IR-SE encoders; the ResNet-34 variants of the cars/churches/horses checkpoints are refused
with a message).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from stylebridge.models.e4e import E4EEncoder, E4EEncoderConfig, ProgressiveStages
from stylebridge.models.encoder_base import (
    GradualEncoderBase,
    GradualEncoderConfig,
    GradualStyleBlock,
    StyleEncoderModel,
    validate_model_config,
)
from stylebridge.models.irse import make_body, make_input_layer, trunk_layout
from stylebridge.models.psp import PSPEncoder, PSPEncoderConfig
from stylebridge.models.stylegan2 import StyleGAN2Config

__all__ = ["BASES", "ENCODER_TYPES", "BackboneEncoder", "ReStyle", "ReStyleConfig", "ReStyleEncoderConfig",
           "ReStyleIterations"]

BASES = ("psp", "e4e")
ENCODER_TYPES = ("backbone", "gradual")


@dataclass(frozen=True)
class ReStyleEncoderConfig(GradualEncoderConfig):
    """A ReStyle encoder: the shared IR-SE fields (`GradualEncoderConfig`; ``in_channels`` = image channels + the
    reconstruction's, 6 for RGB) and which encoder. Defaults: the official FFHQ ``restyle_psp`` (BackboneEncoder,
    IR-SE-50, 256 px, 18×512)."""

    in_channels: int = 6
    base: str = "psp"  # "psp": a code per row; "e4e": one w + per-row deltas (progressive stages)
    encoder_type: str = "backbone"  # "backbone" (restyle's BackboneEncoder) or "gradual" (pSp/e4e's pyramid)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.base not in BASES:
            raise ValueError(f"base must be one of {BASES}, got {self.base!r}")
        if self.encoder_type not in ENCODER_TYPES:
            raise ValueError(f"encoder_type must be one of {ENCODER_TYPES}, got {self.encoder_type!r}")
        if self.in_channels % 2:
            raise ValueError(f"in_channels must be twice the image channels (image + reconstruction), got "
                             f"{self.in_channels}")

    @property
    def image_channels(self) -> int:
        """Channels of the images inverted (half of ``in_channels``)."""
        return self.in_channels // 2

    def gradual_config(self) -> PSPEncoderConfig | E4EEncoderConfig:
        """The pSp / e4e encoder config of the ``gradual`` type (same fields)."""
        fields = {k: v for k, v in asdict(self).items() if k not in ("base", "encoder_type")}
        fields["widths"] = tuple(fields["widths"])
        return E4EEncoderConfig(**fields) if self.base == "e4e" else PSPEncoderConfig(**fields)


class BackboneEncoder(ProgressiveStages, GradualEncoderBase):
    """restyle's BackboneEncoder / ProgressiveBackboneEncoder: [N, in_channels, S, S] → codes [N, num_ws, w_dim]
    (without the current latent): every row's map2style reads the trunk's last map (S/16).

    With ``config.base == "e4e"`` row 0 is w and row i is w + delta_i for the deltas ``progressive_stage`` activates
    (`e4e.ProgressiveStages`; the pSp form ignores the stage).
    """

    model_type = "restyle-backbone-encoder"
    config_class = ReStyleEncoderConfig

    def __init__(self, config: ReStyleEncoderConfig) -> None:
        super().__init__()
        self.config = c = config
        self.input_layer = make_input_layer(c.in_channels, c.input_width)
        self.body = make_body(c.num_layers, c.mode, c.widths, c.input_width, c.se_reduction)
        side = c.input_size // 16
        self.styles = nn.ModuleList(GradualStyleBlock(c.widths[3], c.w_dim, side, c.style_width)
                                    for _ in range(c.num_ws))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.config
        self._check_input(x)
        feat = self.body(self.input_layer(trunk_layout(x)))
        if c.base == "psp":
            return torch.stack([style(feat) for style in self.styles], dim=1)
        w = self.styles[0](feat)
        rows = [w] + [w + self.styles[i](feat) if i <= self.active_deltas else w for i in range(1, c.num_ws)]
        return torch.stack(rows, dim=1)


def build_restyle_encoder(c: ReStyleEncoderConfig) -> nn.Module:
    """The encoder module a config describes (`BackboneEncoder`, or pSp's / e4e's pyramid encoder)."""
    if c.encoder_type == "backbone":
        return BackboneEncoder(c)
    cfg = c.gradual_config()
    return E4EEncoder(cfg) if isinstance(cfg, E4EEncoderConfig) else PSPEncoder(cfg)


@dataclass(frozen=True)
class ReStyleConfig:
    """ReStyle = encoder + decoder. Defaults: official FFHQ restyle_psp (256-px input, 1024-px generator)."""

    encoder: ReStyleEncoderConfig = field(default_factory=ReStyleEncoderConfig)
    decoder: StyleGAN2Config = field(default_factory=lambda: StyleGAN2Config(resolution=1024))
    resize_to: int = 256  # the official face_pool side: reconstructions are pooled to it before the next iteration
    n_iters: int = 5  # iterations `encode` runs (the official n_iters_per_batch at inference)

    def __post_init__(self) -> None:
        validate_model_config(self, ReStyleEncoderConfig)
        if self.n_iters < 1:
            raise ValueError(f"n_iters must be >= 1, got {self.n_iters}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ReStyleIterations:
    """What `ReStyle.iterate` returns: per iteration t = 1 … N the W+ codes [N_img, num_ws, w_dim] and the images
    [N_img, C, R, R] (R: the generator's resolution, not clamped)."""

    w_plus: list[torch.Tensor]
    images: list[torch.Tensor]


class ReStyle(StyleEncoderModel):
    """ReStyle over pSp or e4e: images [N, C, S, S] in [-1, 1] → W+ after ``config.n_iters`` residual steps.

    The e4e form's progressive stage lives on the encoder (``model.encoder.progressive_stage``).
    """

    model_type = "restyle"
    config_class = ReStyleConfig
    display_name: ClassVar[str] = "pSp / e4e / ReStyle model"

    def __init__(self, config: ReStyleConfig) -> None:
        super().__init__()
        self.config = config
        self._build(build_restyle_encoder(config.encoder), config.encoder.num_ws)
        self._avg_cache: tuple[tuple, torch.Tensor] | None = None

    @property
    def input_channels(self) -> int:
        return self.config.encoder.image_channels

    @property
    def base(self) -> str:
        return self.config.encoder.base

    def pool(self, images: torch.Tensor) -> torch.Tensor:
        """Images → the encoder's input side (the official face_pool before the next iteration)."""
        side = self.config.encoder.input_size
        return images if images.shape[-1] == side else F.adaptive_avg_pool2d(images, (side, side))

    def average_image(self, n: int = 1) -> torch.Tensor:
        """G(latent_avg) with the stored noise, pooled to the encoder's input: [n, C, S, S] (the first iteration's
        reconstruction). Rendered once and kept while latent_avg, the decoder's weights and the dtype stay (every
        inversion and training step starts from it; the decoder is frozen)."""
        dtype = torch.get_autocast_dtype(self.latent_avg.device.type) if torch.is_autocast_enabled(
            self.latent_avg.device.type) else torch.float32
        key = (self.latent_avg.data_ptr(), self.latent_avg._version, self.latent_avg.device, dtype,
               tuple(p._version for p in self.decoder.parameters()))  # weights loaded later invalidate it
        if self._avg_cache is None or self._avg_cache[0] != key:
            with torch.no_grad():
                img = self.decoder.synthesize(self.latent_avg[None], noise_mode="const")
            self._avg_cache = (key, self.pool(img))
        return self._avg_cache[1].expand(n, -1, -1, -1)

    def step(self, images: torch.Tensor, current: torch.Tensor | None, current_images: torch.Tensor | None
             ) -> torch.Tensor:
        """One refinement: W+ = (current or latent_avg) + E([images, current_images]).

        images: [N, C, S, S] in [-1, 1]; current: W+ [N, num_ws, w_dim] or None (first step: latent_avg);
        current_images: [N, C, S, S] (the current reconstruction at the encoder's side; None: the average image).
        """
        if current_images is None:
            current_images = self.average_image(images.shape[0]).to(images.dtype)
        codes = self.encoder(torch.cat([images, current_images.to(images.dtype)], dim=1))
        return codes + (self.latent_avg if current is None else current)

    def iterate(self, images: torch.Tensor, n_iters: int | None = None, noise_mode: str = "const",
                start: torch.Tensor | None = None) -> ReStyleIterations:
        """Run ``n_iters`` (default ``config.n_iters``) refinements on ``images`` [N, C, S, S] in [-1, 1].

        start: W+ [N, num_ws, w_dim] to refine instead of beginning at latent_avg (its image is rendered first).
        """
        n_iters = self.config.n_iters if n_iters is None else int(n_iters)
        if n_iters < 1:
            raise ValueError(f"n_iters must be >= 1, got {n_iters}")
        self._check_images(images)
        codes: list[torch.Tensor] = []
        outs: list[torch.Tensor] = []
        w = start
        y = None if start is None else self.pool(self.decoder.synthesize(start, noise_mode=noise_mode))
        for _ in range(n_iters):
            w = self.step(images, w, y)
            img = self.decoder.synthesize(w, noise_mode=noise_mode)
            codes.append(w)
            outs.append(img)
            y = self.pool(img)
        return ReStyleIterations(codes, outs)

    def _check_images(self, images: torch.Tensor) -> None:
        c = self.config.encoder
        if images.ndim != 4 or images.shape[1] != c.image_channels or images.shape[-1] != c.input_size \
                or images.shape[-2] != c.input_size:
            raise ValueError(f"ReStyle input must be [N, {c.image_channels}, {c.input_size}, {c.input_size}], got "
                             f"{tuple(images.shape)}")

    def encode(self, images: torch.Tensor, n_iters: int | None = None) -> torch.Tensor:
        """Images [N, C, S, S] in [-1, 1] → W+ [N, num_ws, w_dim] after ``n_iters`` (default ``config.n_iters``)
        refinements."""
        return self.iterate(images, n_iters).w_plus[-1]

    def forward(self, images: torch.Tensor, resize: bool | int = True, n_iters: int | None = None,
                noise_mode: str = "const", return_latents: bool = False, **_: Any
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The final reconstruction [N, C, R, R] (pooled to ``config.resize_to`` with ``resize=True``), and with
        ``return_latents`` its W+."""
        it = self.iterate(images, n_iters, noise_mode)
        out = it.images[-1]
        side = self.config.resize_to if resize is True else (None if resize is False else int(resize))
        if side is not None and side != out.shape[-1]:
            out = F.adaptive_avg_pool2d(out, (side, side))
        return (out, it.w_plus[-1]) if return_latents else out


def expand_input_layer(state: dict[str, torch.Tensor], in_channels: int) -> dict[str, torch.Tensor]:
    """A 3-channel encoder's state dict with ``input_layer.0.weight`` widened to ``in_channels`` (the added
    channels' weights zero): a pSp / e4e encoder as a ReStyle encoder whose first step equals the encoder."""
    w = state["input_layer.0.weight"]
    if w.shape[1] >= in_channels:
        return state
    extra = w.new_zeros(w.shape[0], in_channels - w.shape[1], *w.shape[2:])
    return {**state, "input_layer.0.weight": torch.cat([w, extra], dim=1)}

