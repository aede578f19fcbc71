"""What pSp, e4e (and ReStyle next) share: the encoder config fields, the IR-SE trunk with its feature pyramid and
map2style heads (`GradualEncoderBase`), the encoder + frozen generator + ``latent_avg`` model (`StyleEncoderModel`)
and pSp's style mixing on W+ (`mix_latents`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from stylebridge.core.native import PretrainedModel, nested_config
from stylebridge.models.irse import (
    IRSE_UNITS,
    IRSE_WIDTHS,
    MODES,
    make_body,
    make_input_layer,
    stage_ends,
    trunk_layout,
)
from stylebridge.models.layers import EqualLinear
from stylebridge.models.stylegan2 import StyleGAN2Config, StyleGAN2Generator

__all__ = [
    "EncoderTrunkConfig",
    "GradualEncoderBase",
    "GradualEncoderConfig",
    "GradualStyleBlock",
    "StyleEncoderModel",
    "mix_latents",
    "validate_encoder_config",
    "validate_model_config",
]


def validate_encoder_config(c: Any) -> None:
    """Validation shared by the pSp and e4e encoder configs (same IR-SE trunk and pyramid)."""
    object.__setattr__(c, "widths", tuple(int(w) for w in c.widths))
    if c.num_layers not in IRSE_UNITS:
        raise ValueError(f"num_layers must be one of {sorted(IRSE_UNITS)}, got {c.num_layers}")
    if c.mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {c.mode!r}")
    if len(c.widths) != 4:
        raise ValueError(f"widths must list the 4 stage widths, got {c.widths}")
    for name in ("num_ws", "w_dim", "in_channels", "input_width", "se_reduction"):
        if getattr(c, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(c, name)}")
    if c.style_width is not None and c.style_width < 1:
        raise ValueError(f"style_width must be >= 1 or None (= w_dim), got {c.style_width}")
    side = c.input_size // 16
    if c.input_size % 16 or side < 1 or side & (side - 1):
        raise ValueError(f"input_size must be 16 times a power of two (e.g. 256), got {c.input_size}")
    if not 0 < c.coarse_ind < c.middle_ind:
        raise ValueError(f"need 0 < coarse_ind < middle_ind, got {c.coarse_ind}, {c.middle_ind}")


def _style_spatial(c: Any, i: int) -> int:
    """Side of the pyramid level W+ row ``i`` reads: input_size/16 (coarse), /8 (middle) or /4 (fine)."""
    if i < c.coarse_ind:
        return c.input_size // 16
    if i < c.middle_ind:
        return c.input_size // 8
    return c.input_size // 4


@dataclass(frozen=True)
class EncoderTrunkConfig:
    """The architecture choices of a pSp / e4e encoder that do not follow from the generator or the task: defined
    once here, shared by the model configs and the encoder trainer's ``model`` section."""

    num_layers: int = 50  # IR-SE depth: 50, 100 or 152
    mode: str = "ir_se"  # "ir_se" or "ir" (no squeeze-excitation)
    input_width: int = 64  # channels of input_layer
    widths: tuple[int, ...] = IRSE_WIDTHS  # channels of the four trunk stages; the last is the pyramid width
    se_reduction: int = 16
    # Channels of the map2style convs. None: w_dim, the official layout. A smaller width (a final linear maps to
    # w_dim) shrinks the heads, which hold most of the weights when the trunk is scaled down.
    style_width: int | None = None

    def trunk_fields(self) -> dict[str, Any]:
        """These fields as keyword arguments (to build a `GradualEncoderConfig` from a trainer's section)."""
        return {f.name: getattr(self, f.name) for f in fields(EncoderTrunkConfig)}


@dataclass(frozen=True)
class GradualEncoderConfig(EncoderTrunkConfig):
    """The fields pSp and e4e encoders share: an IR-SE trunk (`EncoderTrunkConfig`), a feature pyramid and one
    map2style head per W+ row. Defaults: the official FFHQ encoders (IR-SE-50, 256 px, 18×512)."""

    num_ws: int = 18  # W+ rows produced (pSp's n_styles = the generator's num_ws)
    w_dim: int = 512  # size of each w (the generator's style_dim)
    in_channels: int = 3  # pSp's input_nc: 3 RGB, 1 sketch, N one-hot labels, 4 RGB + mask
    # Input side; sets the convs per style block (log2 of input_size/16, /8, /4). Nominal for pSp's learn_in_w
    # (pooled globally: any side divisible by 16 works; official pipelines resize to 256).
    input_size: int = 256
    coarse_ind: int = 3  # rows [0, coarse_ind) read the coarsest pyramid level
    middle_ind: int = 7  # rows [coarse_ind, middle_ind) the middle one, the rest the finest

    def __post_init__(self) -> None:
        validate_encoder_config(self)

    def style_spatial(self, i: int) -> int:
        """Side of the pyramid level W+ row ``i`` reads: input_size/16 (coarse), /8 (middle) or /4 (fine)."""
        return _style_spatial(self, i)

    def to_dict(self) -> dict:
        return asdict(self)


class GradualStyleBlock(nn.Module):
    """map2style: stride-2 3x3 convs + LeakyReLU(0.01) down to 1x1, then an EqualLinear.

    [N, in_channels, spatial, spatial] → [N, out_channels]; ``spatial`` a power of two (log2(spatial) convs, at
    least one). The convs have ``hidden`` channels (default ``out_channels``, the official block).
    """

    def __init__(self, in_channels: int, out_channels: int, spatial: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = out_channels if hidden is None else hidden
        self.hidden, self.spatial = hidden, spatial
        layers: list[nn.Module] = [nn.Conv2d(in_channels, hidden, 3, 2, 1), nn.LeakyReLU()]
        for _ in range(int(math.log2(spatial)) - 1):
            layers += [nn.Conv2d(hidden, hidden, 3, 2, 1), nn.LeakyReLU()]
        self.convs = nn.Sequential(*layers)
        self.linear = EqualLinear(hidden, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.convs(x)
        if x.shape[2:] != (1, 1):
            raise ValueError(f"GradualStyleBlock for {self.spatial} px features got a {tuple(x.shape[2:])} result "
                             "after its convs; the input size does not fit the encoder config")
        return self.linear(x.reshape(x.shape[0], self.hidden))


def _upsample_add(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # Bilinear with align_corners=True, as the reference: it also handles odd sizes where 2x nearest would not fit.
    return F.interpolate(x, size=y.shape[2:], mode="bilinear", align_corners=True) + y


class GradualEncoderBase(PretrainedModel):
    """IR-SE trunk (+ pyramid and style blocks): the parts pSp's GradualStyleEncoder and e4e's encoder share."""

    config: Any

    def _build(self, c: Any, pyramid: bool) -> None:
        self.input_layer = make_input_layer(c.in_channels, c.input_width)
        self.body = make_body(c.num_layers, c.mode, c.widths, c.input_width, c.se_reduction)
        # The reference taps units 6, 20, 23 (ends of stages 2-4 of IR-50); stage ends generalise that to 100/152.
        self._taps = stage_ends(c.num_layers)[1:]
        if pyramid:
            top = c.widths[3]
            self.styles = nn.ModuleList(GradualStyleBlock(top, c.w_dim, _style_spatial(c, i), c.style_width)
                                        for i in range(c.num_ws))
            self.latlayer1 = nn.Conv2d(c.widths[2], top, 1)
            self.latlayer2 = nn.Conv2d(c.widths[1], top, 1)

    def _check_input(self, x: torch.Tensor, exact_size: bool = True) -> None:
        c = self.config
        size = (c.input_size, c.input_size) if exact_size else x.shape[2:]
        if x.ndim != 4 or x.shape[1] != c.in_channels or x.shape[2:] != size:
            want = f"{c.input_size}, {c.input_size}" if exact_size else "H, W"
            raise ValueError(f"{type(self).__name__} input must be [N, {c.in_channels}, {want}], got {tuple(x.shape)}")

    def trunk_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """c1, c2, c3: outputs of trunk stages 2, 3, 4 ([N, widths[k], S/4], [.., S/8], [.., S/16])."""
        x = self.input_layer(trunk_layout(x))
        taps = []
        for i, unit in enumerate(self.body):
            x = unit(x)
            if i in self._taps:
                taps.append(x)
        return taps[0], taps[1], taps[2]

    def pyramid_middle(self, c2: torch.Tensor, c3: torch.Tensor) -> torch.Tensor:
        """p2 = up(c3) + latlayer1(c2): [N, widths[3], S/8, S/8]."""
        return _upsample_add(c3, self.latlayer1(c2))

    def pyramid_fine(self, c1: torch.Tensor, p2: torch.Tensor) -> torch.Tensor:
        """p1 = up(p2) + latlayer2(c1): [N, widths[3], S/4, S/4]."""
        return _upsample_add(p2, self.latlayer2(c1))


def mix_latents(w_plus: torch.Tensor, latent_mask: Sequence[int], inject_latent: torch.Tensor | None = None,
                alpha: float | None = None) -> torch.Tensor:
    """pSp's style mixing on W+ [N, num_ws, w_dim] (a new tensor; the input is not modified).

    For every row i in ``latent_mask``: ``alpha * inject[:, i] + (1 - alpha) * w[:, i]``; with ``alpha`` None the
    row is replaced by ``inject[:, i]``; without ``inject_latent`` it is set to zero (the reference's behaviour).
    ``inject_latent`` is W+ [N or 1, num_ws, w_dim] or w [N or 1, w_dim].
    """
    n, num_ws, _ = w_plus.shape
    bad = [i for i in latent_mask if not -num_ws <= i < num_ws]
    if bad:
        raise ValueError(f"latent_mask rows {bad} out of range for {num_ws} W+ rows")
    if inject_latent is not None:
        if inject_latent.ndim == 2:
            inject_latent = inject_latent[:, None, :].expand(-1, num_ws, -1)
        if inject_latent.ndim != 3 or inject_latent.shape[1:] != w_plus.shape[1:] or inject_latent.shape[0] not in (
                1, n):
            raise ValueError(f"inject_latent must be [{n}, {num_ws}, {w_plus.shape[2]}] or [{n}, {w_plus.shape[2]}], "
                             f"got {tuple(inject_latent.shape)}")
    out = w_plus.clone()
    for i in latent_mask:
        if inject_latent is None:
            out[:, i] = 0
        elif alpha is None:
            out[:, i] = inject_latent[:, i]
        else:
            out[:, i] = alpha * inject_latent[:, i] + (1 - alpha) * out[:, i]
    return out


class StyleEncoderModel(PretrainedModel):
    """Encoder + frozen StyleGAN2 decoder + ``latent_avg`` (base of `PSP` and `E4E`).

    ``latent_avg`` [rows, w_dim] is added to the encoder's codes, row i to W+ row i (rows = num_ws, or 1 for a
    single-w encoder). Zeros reproduce the official ``start_from_latent_avg=False``.
    """

    config: Any
    display_name: ClassVar[str] = "pSp / e4e model"  # for messages ("X holds …; expected a pSp / e4e model")

    def _build(self, encoder: nn.Module, latent_rows: int) -> None:
        c = self.config
        self.encoder = encoder
        self.decoder = StyleGAN2Generator(c.decoder)
        self.register_buffer("latent_avg", torch.zeros(latent_rows, c.decoder.w_dim))

    @property
    def generator(self) -> StyleGAN2Generator:
        return self.decoder

    @property
    def num_ws(self) -> int:
        return self.decoder.num_ws

    @property
    def input_channels(self) -> int:
        """Channels of the inputs `encode` takes (the encoder's, except ReStyle's, which adds the reconstruction's)."""
        return self.config.encoder.in_channels

    @property
    def w_dim(self) -> int:
        return self.decoder.w_dim

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images [N, C, S, S] in [-1, 1] → W+ [N, num_ws, w_dim] (encoder codes + ``latent_avg``)."""
        codes = self.encoder(images)
        if codes.ndim == 2:  # a single w: offset once, then the same w for every layer (the decoder's repeat)
            return (codes + self.latent_avg[0]).unsqueeze(1).repeat(1, self.num_ws, 1)
        return codes + self.latent_avg

    def decode(self, w_plus: torch.Tensor, resize: bool | int = False, noise_mode: str = "const",
               noise: Sequence[torch.Tensor | None] | None = None) -> torch.Tensor:
        """W+ [N, num_ws, w_dim] (or w [N, w_dim]) → images [N, C, R, R] (R = the generator's resolution, or the
        ``resize`` side). ``noise_mode`` "const" uses the generator's stored noise, like ``randomize_noise=False``.
        """
        images = self.decoder.synthesize(w_plus, noise=noise, noise_mode=noise_mode)
        side = self.config.resize_to if resize is True else (None if resize is False else int(resize))
        if side is not None:
            images = F.adaptive_avg_pool2d(images, (side, side))  # the reference's face_pool
        return images

    def forward(self, images: torch.Tensor, resize: bool | int = True, latent_mask: Sequence[int] | None = None,
                inject_latent: torch.Tensor | None = None, alpha: float | None = None, noise_mode: str = "const",
                return_latents: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The official ``pSp.forward(x, resize, latent_mask, inject_latent=..., alpha=..., randomize_noise=False)``.

        Args:
            images: [N, C, S, S] in [-1, 1].
            resize: True: average-pool the output to ``config.resize_to`` (official ``face_pool``, 256 px);
                an int: to that side; False: full resolution.
            latent_mask, inject_latent, alpha: style mixing, see `mix_latents`. For single-w encoders the mask
                selects W+ rows (the reference would index the w vector's entries instead).
            noise_mode: "const" (stored noise: ``randomize_noise=False``, the default here), "random" or "none".
            return_latents: also return the W+ codes fed to the decoder.

        Returns:
            images [N, img_channels, R, R] (raw generator output, roughly [-1, 1] for a trained generator), and with
            ``return_latents`` the W+ [N, num_ws, w_dim].
        """
        w_plus = self.encode(images)
        if latent_mask is not None:
            w_plus = mix_latents(w_plus, latent_mask, inject_latent, alpha)
        out = self.decode(w_plus, resize=resize, noise_mode=noise_mode)
        return (out, w_plus) if return_latents else out


def validate_model_config(c: Any, encoder_cls: type) -> None:
    object.__setattr__(c, "encoder", nested_config(encoder_cls, c.encoder, "encoder"))
    object.__setattr__(c, "decoder", nested_config(StyleGAN2Config, c.decoder, "decoder"))
    if c.encoder.w_dim != c.decoder.w_dim:
        raise ValueError(f"encoder w_dim {c.encoder.w_dim} != decoder w_dim {c.decoder.w_dim}")
    if c.encoder.num_ws != c.decoder.num_ws:
        raise ValueError(f"encoder num_ws {c.encoder.num_ws} != decoder num_ws {c.decoder.num_ws} "
                         f"({c.decoder.resolution} px)")
    if c.resize_to < 1:
        raise ValueError(f"resize_to must be >= 1, got {c.resize_to}")
