"""StyleMapGAN (Kim et al. 2021, naver-ai/StyleMapGAN): a StyleGAN-like generator whose latent is a *stylemap* —
a [C, S, S] map instead of a vector — with a jointly trained encoder, so real images reconstruct in one pass and
regions of two images' stylemaps blend for local edits.

* `StyleMapGenerator` — ``mapping_z`` (pixel norm, then equalised linear layers with bias + leaky ReLU ×√2, lr
  multiplier ``lr_mul``; the last one outputs C·S·S numbers, reshaped channel-major to the stylemap) and the decoder:
  the stylemap passes through ``convs_latent`` (two 3×3 convs at S, then 2× up-convs and convs alternately), one
  stylecode per modulated layer; synthesis starts from a learned S×S constant and every modulated layer is
  ``LayerNorm(x)·γ(code) + β(code)`` (γ, β: 3×3 equalised convs of the code, γ's bias starting at 1), an
  un-demodulated conv (2× transposed conv + blur when upsampling), bias + leaky ReLU ×√2; residual blocks add a 1×1
  upsampled skip and divide by √2; the RGB layer is a 1×1 modulated conv with bias + leaky ReLU ×√2 (no tanh).
  No noise inputs.
* `StyleMapEncoder` — from_rgb, StyleGAN2-discriminator residual blocks down to S, a final 3×3 conv to C channels:
  image [N, 3, R, R] → stylemap [N, C, S, S].
* The discriminator is StyleGAN2's (`stylebridge.models.stylegan2.StyleGAN2Discriminator`).

Parameter names equal the official ones, so an official ``train.py`` checkpoint's ``g_ema`` / ``e_ema`` load
strictly (`stylebridge.formats.stylemapgan`); every width is a config field because scaled-down checkpoints change
the channel tables in code, not in their arguments.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from stylebridge import ops
from stylebridge.core.native import PretrainedModel
from stylebridge.models.layers import (
    Blur,
    ConstantInput,
    ConvLayer,
    EqualConv2d,
    EqualLinear,
    FusedLeakyReLU,
    PixelNorm,
    ResBlock,
)

__all__ = ["StyleMapEncoder", "StyleMapEncoderConfig", "StyleMapGenerator", "StyleMapGeneratorConfig",
           "official_channels"]

BLUR = (1.0, 3.0, 3.0, 1.0)


def official_channels(resolution: int, channel_multiplier: int = 2, divisor: int = 1) -> dict[int, int]:
    """The official channel table (side → channels), divided by ``divisor`` (scaled-down checkpoints)."""
    table = {1: 512, 2: 512, 4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * channel_multiplier,
             128: 128 * channel_multiplier, 256: 64 * channel_multiplier, 512: 32 * channel_multiplier,
             1024: 16 * channel_multiplier}
    return {k: max(1, v // divisor) for k, v in table.items() if k <= resolution}


def _log2(x: int, what: str) -> int:
    n = int(math.log2(x))
    if x < 1 or 2**n != x:
        raise ValueError(f"{what} must be a power of two, got {x}")
    return n


@dataclass(frozen=True)
class StyleMapGeneratorConfig:
    """Architecture of a StyleMapGAN generator. Defaults: the official 256-px CelebA-HQ model (64×8×8 stylemap).

    channels: decoder channels at each side S, 2S, …, resolution (empty: the official table). small_generator: the
    stylecodes keep ``latent_channels`` channels at every level instead of the decoder's."""

    resolution: int = 256
    latent_channels: int = 64  # C (official latent_channel_size)
    latent_size: int = 8  # S (official latent_spatial_size)
    mapping_layers: int = 8
    lr_mul: float = 0.01
    channels: tuple[int, ...] = ()
    small_generator: bool = False
    normalize_mode: str = "LayerNorm"
    blur_kernel: tuple[float, ...] = BLUR

    def __post_init__(self) -> None:
        _log2(self.resolution, "resolution")
        _log2(self.latent_size, "latent_size")
        if not 1 <= self.latent_size < self.resolution:
            raise ValueError(f"latent_size must be below the resolution, got {self.latent_size}")
        if self.normalize_mode != "LayerNorm":
            raise ValueError(f"normalize_mode {self.normalize_mode!r} is not supported (the official models use "
                             "LayerNorm)")
        if self.mapping_layers < 1 or self.latent_channels < 1:
            raise ValueError("mapping_layers and latent_channels must be >= 1")
        chans = tuple(int(c) for c in self.channels) or tuple(
            official_channels(self.resolution)[s] for s in self.sides)
        if len(chans) != len(self.sides):
            raise ValueError(f"channels must list {len(self.sides)} widths (sides {self.sides}), got {chans}")
        object.__setattr__(self, "channels", chans)
        object.__setattr__(self, "blur_kernel", tuple(float(b) for b in self.blur_kernel))

    @property
    def sides(self) -> tuple[int, ...]:
        """S, 2S, …, resolution."""
        return tuple(self.latent_size * 2**i for i in range(_log2(self.resolution // self.latent_size, "ratio") + 1))

    @property
    def num_stylecodes(self) -> int:
        return 2 * len(self.sides)

    def to_dict(self) -> dict:
        return asdict(self)


class EqualConvTranspose2d(nn.Module):
    """2× transposed conv with equalised learning rate (weight stored [out, in, k, k] as the official EqualConv2d
    with ``conv_transpose2d=True``; no padding, stride 2)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel_size, kernel_size))
        self.scale = 1 / math.sqrt(in_ch * kernel_size**2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose2d(x, (self.weight * self.scale).transpose(0, 1), stride=2)


def _up_pads(blur_kernel: Sequence[float], kernel_size: int) -> tuple[int, int]:
    p = (len(blur_kernel) - 2) - (kernel_size - 1)
    return (p + 1) // 2 + 1, p // 2 + 1


class UpBlur(Blur):
    """The blur after a 2× transposed conv (kernel × 4)."""

    def __init__(self, blur_kernel: Sequence[float], kernel_size: int) -> None:
        super().__init__(blur_kernel, _up_pads(blur_kernel, kernel_size))
        self.resample_filter = ops.setup_filter(blur_kernel, gain=4.0)


def up_conv_layer(in_ch: int, out_ch: int, kernel_size: int, blur_kernel: Sequence[float],
                  activate: bool = True) -> nn.Sequential:
    """The official ``ConvLayer(upsample=True)``: transposed conv → blur → [bias + leaky ReLU ×√2] (names 0, 1, 2)."""
    layers: list[nn.Module] = [EqualConvTranspose2d(in_ch, out_ch, kernel_size), UpBlur(blur_kernel, kernel_size)]
    if activate:
        layers.append(FusedLeakyReLU(out_ch))
    return nn.Sequential(*layers)


class SpatialModulatedConv2d(nn.Module):
    """``LayerNorm(x)·γ(code) + β(code)`` then an un-demodulated conv (2× transposed + blur when ``upsample``).

    x [N, I, H, W], code [N, D, H, W] (the stylecode at the input's side) → [N, O, H', W']."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, style_ch: int, blur_kernel: Sequence[float],
                 upsample: bool = False, normalize: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, out_ch, in_ch, kernel_size, kernel_size))
        self.scale = 1 / math.sqrt(in_ch * kernel_size**2)
        self.upsample, self.normalize, self.padding = upsample, normalize, kernel_size // 2
        self.gamma = EqualConv2d(style_ch, in_ch, 3, padding=1, bias=True)
        self.beta = EqualConv2d(style_ch, in_ch, 3, padding=1, bias=True)
        with torch.no_grad():
            self.gamma.bias.fill_(1.0)  # the official bias_init=1: γ starts at 1
        if upsample:
            self.blur = UpBlur(blur_kernel, kernel_size)

    def forward(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        if code.shape[-2:] != x.shape[-2:]:
            raise ValueError(f"stylecode {tuple(code.shape)} does not match the activations {tuple(x.shape)}")
        if self.normalize:
            x = F.layer_norm(x, x.shape[1:])
        x = torch.addcmul(self.beta(code), x, self.gamma(code))  # one pass instead of two over x
        w = (self.weight[0] * self.scale).to(x.dtype)
        if self.upsample:
            return self.blur(F.conv_transpose2d(x, w.transpose(0, 1), stride=2))
        return F.conv2d(x, w, padding=self.padding)


class SpatialStyledConv(nn.Module):
    """`SpatialModulatedConv2d` + bias + leaky ReLU ×√2 (the official StyledConv)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, style_ch: int, blur_kernel: Sequence[float],
                 upsample: bool = False) -> None:
        super().__init__()
        self.conv = SpatialModulatedConv2d(in_ch, out_ch, kernel_size, style_ch, blur_kernel, upsample)
        self.activate = FusedLeakyReLU(out_ch)

    def forward(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        # in place when nothing needs the conv output for a backward pass (inference: ~6 % at 256 px)
        return self.activate(self.conv(x, code), inplace=not torch.is_grad_enabled())


class StyledResBlock(nn.Module):
    """Two styled convs (the first upsamples) + a 1×1 upsampled skip, divided by √2."""

    def __init__(self, in_ch: int, out_ch: int, style_in: int, style_out: int, blur_kernel: Sequence[float]) -> None:
        super().__init__()
        self.conv1 = SpatialStyledConv(in_ch, out_ch, 3, style_in, blur_kernel, upsample=True)
        self.conv2 = SpatialStyledConv(out_ch, out_ch, 3, style_out, blur_kernel)
        self.skip = up_conv_layer(in_ch, out_ch, 1, blur_kernel, activate=False)

    def forward(self, x: torch.Tensor, codes: Sequence[torch.Tensor]) -> torch.Tensor:
        out = self.conv2(self.conv1(x, codes[0]), codes[1])
        return (out + self.skip(x)) / math.sqrt(2)


class StyleMapDecoder(nn.Module):
    """Stylemap [N, C, S, S] → image [N, 3, R, R] (official ``Decoder``)."""

    def __init__(self, c: StyleMapGeneratorConfig) -> None:
        super().__init__()
        ch, b = c.channels, c.blur_kernel
        code = [c.latent_channels] * len(ch) if c.small_generator else list(ch)
        self.input = ConstantInput(ch[0], c.latent_size)
        self.conv1 = SpatialStyledConv(ch[0], ch[0], 3, code[0], b)
        self.convs_latent = nn.ModuleList([ConvLayer(c.latent_channels, code[0], 3),
                                           ConvLayer(code[0], code[0], 3)])
        for i in range(1, len(ch)):
            self.convs_latent.append(up_conv_layer(code[i - 1], code[i], 3, b))
            self.convs_latent.append(ConvLayer(code[i], code[i], 3))
        self.convs = nn.ModuleList(StyledResBlock(ch[i - 1], ch[i], code[i - 1], code[i], b)
                                   for i in range(1, len(ch)))
        self.to_rgb = SpatialStyledConv(ch[-1], 3, 1, code[-1], b)

    def stylecodes(self, stylemap: torch.Tensor) -> list[torch.Tensor]:
        """The stylecode of every modulated layer (``config.num_stylecodes`` maps, sides S, S, 2S, 2S, …)."""
        codes = []
        for layer in self.convs_latent:
            stylemap = layer(stylemap)
            codes.append(stylemap)
        return codes

    def synthesize(self, codes: Sequence[torch.Tensor]) -> torch.Tensor:
        """Stylecodes (from `stylecodes`, possibly mixed) → images."""
        x = self.input(codes[0].shape[0])
        x = self.conv1(x, codes[0])
        for i, block in enumerate(self.convs):
            x = block(x, (codes[2 * i + 1], codes[2 * i + 2]))
        return self.to_rgb(x, codes[-1])

    def forward(self, stylemap: torch.Tensor) -> torch.Tensor:
        return self.synthesize(self.stylecodes(stylemap))


class StyleMapGenerator(PretrainedModel):
    """z [N, C] → stylemap [N, C, S, S] (``map``) → image [N, 3, R, R] (``decode``); ``forward(z)`` does both."""

    model_type = "stylemapgan-generator"
    config_class = StyleMapGeneratorConfig

    def __init__(self, config: StyleMapGeneratorConfig) -> None:
        super().__init__()
        self.config = c = config
        flat = c.latent_channels * c.latent_size**2
        layers: list[nn.Module] = [PixelNorm()]
        for i in range(c.mapping_layers):
            out = flat if i == c.mapping_layers - 1 else c.latent_channels
            layers.append(EqualLinear(c.latent_channels, out, lr_mul=c.lr_mul, activation=True))
        self.mapping_z = nn.Sequential(*layers)
        self.decoder = StyleMapDecoder(c)

    @property
    def resolution(self) -> int:
        return self.config.resolution

    def map_flat(self, z: torch.Tensor) -> torch.Tensor:
        """z [N, C] → the flat mapping output [N, C·S·S]."""
        return self.mapping_z(z)

    def to_stylemap(self, flat: torch.Tensor) -> torch.Tensor:
        c = self.config
        return flat.reshape(flat.shape[0], c.latent_channels, c.latent_size, c.latent_size)

    def mean_stylemap(self, z: torch.Tensor) -> torch.Tensor:
        """Mean flat mapping output of ``z`` [M, C] → [1, C·S·S] (the official ``calculate_mean_stylemap``)."""
        return self.map_flat(z).mean(0, keepdim=True)

    def map(self, z: torch.Tensor, truncation: float | None = None,
            mean: torch.Tensor | None = None) -> torch.Tensor:
        """z [N, C] → stylemap [N, C, S, S]; with ``truncation`` ψ and ``mean`` (`mean_stylemap`):
        mean + ψ·(mapping(z) − mean)."""
        flat = self.map_flat(z)
        if truncation is not None and mean is not None:
            flat = mean + truncation * (flat - mean)
        return self.to_stylemap(flat)

    def decode(self, stylemap: torch.Tensor) -> torch.Tensor:
        """Stylemap [N, C, S, S] → image [N, 3, R, R] (about [-1, 1]; not clamped)."""
        return self.decoder(stylemap)

    def forward(self, z: torch.Tensor, truncation: float | None = None,
                mean: torch.Tensor | None = None) -> torch.Tensor:
        return self.decode(self.map(z, truncation, mean))


@dataclass(frozen=True)
class StyleMapEncoderConfig:
    """StyleMapGAN's encoder: image side, stylemap (C, S), and channels at sides R, R/2, …, S (empty: official)."""

    resolution: int = 256
    latent_channels: int = 64
    latent_size: int = 8
    channels: tuple[int, ...] = ()
    blur_kernel: tuple[float, ...] = BLUR

    def __post_init__(self) -> None:
        _log2(self.resolution, "resolution")
        _log2(self.latent_size, "latent_size")
        n = _log2(self.resolution // self.latent_size, "resolution / latent_size") + 1
        chans = tuple(int(c) for c in self.channels) or tuple(
            official_channels(self.resolution)[self.resolution >> i] for i in range(n))
        if len(chans) != n:
            raise ValueError(f"channels must list {n} widths (sides {self.resolution} … {self.latent_size})")
        object.__setattr__(self, "channels", chans)
        object.__setattr__(self, "blur_kernel", tuple(float(b) for b in self.blur_kernel))

    def to_dict(self) -> dict:
        return asdict(self)


class StyleMapEncoder(PretrainedModel):
    """Image [N, 3, R, R] in [-1, 1] → stylemap [N, C, S, S] (official ``Encoder``)."""

    model_type = "stylemapgan-encoder"
    config_class = StyleMapEncoderConfig

    def __init__(self, config: StyleMapEncoderConfig) -> None:
        super().__init__()
        self.config = c = config
        ch = c.channels
        self.from_rgb = ConvLayer(3, ch[0], 1)
        self.convs = nn.ModuleList(ResBlock(ch[i], ch[i + 1], c.blur_kernel, None) for i in range(len(ch) - 1))
        self.final_conv = ConvLayer(ch[-1], c.latent_channels, 3)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        c = self.config
        if images.ndim != 4 or images.shape[1:] != (3, c.resolution, c.resolution):
            raise ValueError(f"StyleMapEncoder input must be [N, 3, {c.resolution}, {c.resolution}], got "
                             f"{tuple(images.shape)}")
        x = self.from_rgb(images)
        for block in self.convs:
            x = block(x)
        return self.final_conv(x)


@dataclass(frozen=True)
class StyleMapGANConfig:
    """Generator + encoder of one StyleMapGAN (the pair `StyleMapGAN` holds)."""

    generator: StyleMapGeneratorConfig = StyleMapGeneratorConfig()
    encoder: StyleMapEncoderConfig = StyleMapEncoderConfig()

    def __post_init__(self) -> None:
        from stylebridge.core.native import nested_config

        object.__setattr__(self, "generator", nested_config(StyleMapGeneratorConfig, self.generator, "generator"))
        object.__setattr__(self, "encoder", nested_config(StyleMapEncoderConfig, self.encoder, "encoder"))
        g, e = self.generator, self.encoder
        if (g.resolution, g.latent_channels, g.latent_size) != (e.resolution, e.latent_channels, e.latent_size):
            raise ValueError("generator and encoder disagree on resolution or stylemap shape")

    def to_dict(self) -> dict:
        return asdict(self)


class StyleMapGAN(PretrainedModel):
    """A StyleMapGAN generator and its encoder: ``map`` (z → stylemap), ``encode`` (image → stylemap), ``decode`` /
    ``synthesize`` (stylemap → image), ``reconstruct`` (both), ``generate`` (z → image), ``local_edit``."""

    model_type = "stylemapgan"
    config_class = StyleMapGANConfig

    def __init__(self, config: StyleMapGANConfig) -> None:
        super().__init__()
        self.config = config
        self.generator = StyleMapGenerator(config.generator)
        self.encoder = StyleMapEncoder(config.encoder)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images [N, 3, R, R] in [-1, 1] → stylemaps [N, C, S, S]."""
        return self.encoder(images)

    def decode(self, stylemap: torch.Tensor) -> torch.Tensor:
        """Stylemaps [N, C, S, S] → images [N, 3, R, R]."""
        return self.generator.decode(stylemap)

    def synthesize(self, stylemap: torch.Tensor) -> torch.Tensor:
        """Stylemaps [N, C, S, S] → images [N, 3, R, R] (the same as `decode`)."""
        return self.generator.decode(stylemap)

    def map(self, z: torch.Tensor, truncation: float | None = None, mean: torch.Tensor | None = None) -> torch.Tensor:
        """z [N, C] (standard normal) → stylemaps [N, C, S, S] (`StyleMapGenerator.map`)."""
        return self.generator.map(z, truncation, mean)

    def generate(self, z: torch.Tensor, truncation: float | None = None,
                 mean: torch.Tensor | None = None) -> torch.Tensor:
        """z [N, C] → random images [N, 3, R, R]."""
        return self.generator(z, truncation, mean)

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """Images [N, 3, R, R] in [-1, 1] → decode(encode(images)) [N, 3, R, R]."""
        return self.decode(self.encode(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.reconstruct(images)

    # -- editing (the official generate.py / demo.py operations) ---------------------------------------------------
    def local_edit(self, source: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor,
                   space: str = "w_plus") -> torch.Tensor:
        """Blend two stylemaps [N, C, S, S] under ``mask`` [N, R, R] (or one [R, R] / [1, R, R] for all; image
        resolution; the reference where the mask, max-pooled to each level, is > −1) and decode.

        space "w_plus" (default): run both through every stylecode layer and mix each level's code with the mask
        pooled to that level (the official default for local edits); "stylemap" (official name "w"): pool the mask
        to S and mix the stylemaps themselves.
        """
        if mask.ndim == 2:
            mask = mask[None]
        if mask.ndim == 3 and mask.shape[0] == 1 and source.shape[0] > 1:
            mask = mask.expand(source.shape[0], -1, -1)
        if mask.ndim != 3 or mask.shape[0] != source.shape[0]:
            raise ValueError(f"mask must be [N, R, R] for {source.shape[0]} stylemaps, got {tuple(mask.shape)}")
        space = "w" if space == "stylemap" else space
        size = self.config.generator.resolution
        dec = self.generator.decoder
        if space == "w":
            m = F.max_pool2d(mask[:, None], size // source.shape[-1])
            return dec(torch.where(m > -1, reference, source))
        if space != "w_plus":
            raise ValueError(f"space must be 'w_plus' or 'stylemap' ('w'), got {space!r}")
        codes = []
        for a, b in zip(dec.stylecodes(source), dec.stylecodes(reference)):
            m = F.max_pool2d(mask[:, None], size // a.shape[-1])
            codes.append(torch.where(m > -1, b, a))
        return dec.synthesize(codes)

    def interpolate(self, a: torch.Tensor, b: torch.Tensor, alpha: float | torch.Tensor) -> torch.Tensor:
        """Decode (1 − alpha)·a + alpha·b of two stylemaps (alpha 0: a, 1: b)."""
        return self.decode((1 - alpha) * a + alpha * b)

    def style_mix(self, a: torch.Tensor, b: torch.Tensor, coarse_from: str = "a") -> torch.Tensor:
        """The two S×S stylecodes (coarse) from one stylemap and every later (finer) one from the other:
        ``coarse_from`` "a" takes the coarse codes from ``a``, "b" from ``b``."""
        if coarse_from not in ("a", "b"):
            raise ValueError(f"coarse_from must be 'a' or 'b', got {coarse_from!r}")
        dec = self.generator.decoder
        ca, cb = dec.stylecodes(a), dec.stylecodes(b)
        coarse, fine = (ca, cb) if coarse_from == "a" else (cb, ca)
        return dec.synthesize(coarse[:2] + fine[2:])
