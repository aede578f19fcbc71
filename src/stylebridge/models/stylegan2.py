"""StyleGAN2 generator and discriminator (Karras et al. 2020, config-f "skip" generator, "resnet" discriminator).

Parameter and buffer names equal rosinality's stylegan2-pytorch (the implementation embedded by pSp, e4e,
ReStyle and HyperStyle), so its state dicts load with ``strict=True``. The only differences in the state dict:
FIR kernels are non-persistent buffers here (derived from the config, dropped on load through an explicit
allow-list after checking their values) and the generator stores ``w_avg`` (the mean mapped latent, used for
truncation; NVlabs keeps it too, rosinality recomputes it).

Images are [N, img_channels, H, W]; a trained generator's output is roughly in [-1, 1] (not clamped).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn

from stylebridge import ops
from stylebridge.core.native import PretrainedModel
from stylebridge.models.layers import (
    ConstantInput,
    ConvLayer,
    EqualLinear,
    PixelNorm,
    ResBlock,
    StyledConv,
    ToRGB,
)

__all__ = [
    "D_FIR_BUFFER_KEYS",
    "G_FIR_BUFFER_KEYS",
    "StyleGAN2Config",
    "StyleGAN2Discriminator",
    "StyleGAN2DiscriminatorConfig",
    "StyleGAN2Generator",
    "SynthesisResult",
    "rosinality_channels",
]

# FIR kernels rosinality stores as persistent buffers; ours are derived from the config. Loading drops exactly
# these keys (after checking their values), nothing else.
G_FIR_BUFFER_KEYS = re.compile(r"^(convs\.\d+\.conv\.blur\.kernel|to_rgbs\.\d+\.upsample\.kernel)$")
D_FIR_BUFFER_KEYS = re.compile(r"^convs\.\d+\.(conv2\.0|skip\.0)\.kernel$")

NOISE_MODES = ("random", "const", "none")


def rosinality_channels(resolution: int, channel_multiplier: int = 2, channel_divisor: int = 1) -> dict[int, int]:
    """Channels per resolution of rosinality's StyleGAN2: 512 up to 32 px, then 256*cm at 64 px, halving after.

    ``channel_divisor`` divides every entry (the golden fixtures use 16). NVlabs' ``channel_base=32768,
    channel_max=512`` equals channel_multiplier 2; ``channel_base=16384`` equals channel_multiplier 1.
    """
    cm = channel_multiplier
    table = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * cm, 128: 128 * cm, 256: 64 * cm, 512: 32 * cm, 1024: 16 * cm}
    out = {}
    for r in _resolutions(resolution):
        c = table[r] if r in table else max(1, 16 * cm * 1024 // r)
        if c % channel_divisor:
            raise ValueError(f"channel_divisor {channel_divisor} does not divide the {c} channels at {r} px")
        out[r] = c // channel_divisor
    return out


def _resolutions(resolution: int) -> list[int]:
    return [2**i for i in range(2, int(math.log2(resolution)) + 1)]


def _check_resolution(resolution: int, low: int) -> None:
    if resolution < low or resolution > 1024 or resolution & (resolution - 1):
        raise ValueError(f"resolution must be a power of two in [{low}, 1024], got {resolution}")


@dataclass(frozen=True)
class StyleGAN2Config:
    """Architecture of a StyleGAN2 generator. Defaults are rosinality/NVlabs config-f at 256 px."""

    resolution: int = 256  # output side in pixels, a power of two in [4, 1024]
    z_dim: int = 512  # input latent size (rosinality: equal to w_dim)
    w_dim: int = 512  # intermediate latent (style) size
    mapping_layers: int = 8  # fully connected layers of the mapping network
    channel_multiplier: int = 2  # rosinality's channel_multiplier (config-f: 2)
    channel_divisor: int = 1  # divides every channel count (the golden fixtures use 16)
    channels: tuple[int, ...] | None = None  # explicit channels for 4, 8, ..., resolution px; overrides the two above
    lr_multiplier: float = 0.01  # learning-rate multiplier of the mapping network (equalised lr)
    blur_kernel: tuple[float, ...] = (1.0, 3.0, 3.0, 1.0)  # 1-D FIR taps for up/downsampling
    img_channels: int = 3
    conv_clamp: float | None = None  # NVlabs' clamp of conv outputs (256 in their fp16 configs); None: off

    def __post_init__(self) -> None:
        _check_resolution(self.resolution, 4)
        for name in ("z_dim", "w_dim", "mapping_layers", "channel_multiplier", "channel_divisor", "img_channels"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.channels is not None:
            object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
            if len(self.channels) != len(_resolutions(self.resolution)):
                raise ValueError(
                    f"channels must list one count per resolution 4..{self.resolution} "
                    f"({len(_resolutions(self.resolution))} entries), got {len(self.channels)}"
                )
        object.__setattr__(self, "blur_kernel", tuple(float(k) for k in self.blur_kernel))

    @property
    def channel_dict(self) -> dict[int, int]:
        if self.channels is not None:
            return dict(zip(_resolutions(self.resolution), self.channels))
        return rosinality_channels(self.resolution, self.channel_multiplier, self.channel_divisor)

    @property
    def num_ws(self) -> int:
        """Number of w vectors the synthesis network consumes (W+ rows): 2*log2(resolution) - 2."""
        return 2 * int(math.log2(self.resolution)) - 2

    @property
    def num_noise(self) -> int:
        """Number of noise inputs (one per StyledConv): 2*log2(resolution) - 3."""
        return 2 * int(math.log2(self.resolution)) - 3

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class StyleGAN2DiscriminatorConfig:
    """Architecture of a StyleGAN2 residual discriminator (rosinality names)."""

    resolution: int = 256  # input side in pixels, a power of two in [8, 1024]
    channel_multiplier: int = 2
    channel_divisor: int = 1
    channels: tuple[int, ...] | None = None  # explicit channels for 4, 8, ..., resolution px
    blur_kernel: tuple[float, ...] = (1.0, 3.0, 3.0, 1.0)
    img_channels: int = 3
    mbstd_group_size: int | None = 4  # minibatch-stddev group size (a divisor of the batch is used); None: batch
    mbstd_num_channels: int = 1  # minibatch-stddev feature channels
    conv_clamp: float | None = None

    def __post_init__(self) -> None:
        _check_resolution(self.resolution, 8)
        if self.channels is not None:
            object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
            if len(self.channels) != len(_resolutions(self.resolution)):
                raise ValueError(f"channels must list one count per resolution 4..{self.resolution}")
        object.__setattr__(self, "blur_kernel", tuple(float(k) for k in self.blur_kernel))
        if (self.mbstd_group_size is not None and self.mbstd_group_size < 1) or self.mbstd_num_channels < 1:
            raise ValueError("mbstd_group_size and mbstd_num_channels must be >= 1")

    @property
    def channel_dict(self) -> dict[int, int]:
        if self.channels is not None:
            return dict(zip(_resolutions(self.resolution), self.channels))
        return rosinality_channels(self.resolution, self.channel_multiplier, self.channel_divisor)

    def to_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------------------------------------------
# Generator


@dataclass
class SynthesisResult:
    """What `StyleGAN2Generator.synthesize_with_features` returns."""

    images: torch.Tensor  # [N, img_channels, resolution, resolution], fp32
    features: dict[str, torch.Tensor]  # name → activation map [N, C, r, r] (or running image for b{r}.img)


class StyleGAN2Generator(PretrainedModel):
    """StyleGAN2 generator: mapping network z → w, synthesis network w (or W+) → image.

    Synthesis layers are named like NVlabs' blocks: ``b4.conv1``, ``b4.torgb``, ``b8.conv0``, ``b8.conv1``,
    ``b8.torgb``, …; ``const`` is the learned 4×4 input. Feature names for `synthesize_with_features` and
    `synthesize_from` are ``const``, every ``b{r}.conv0`` / ``b{r}.conv1`` (the activation after that layer) and
    ``b{r}.img`` (the running RGB image after block r).
    """

    model_type = "stylegan2-generator"
    config_class = StyleGAN2Config

    def __init__(self, config: StyleGAN2Config) -> None:
        super().__init__()
        self.config = c = config
        ch = c.channel_dict
        clamp = c.conv_clamp
        if c.z_dim != c.w_dim:
            first = [EqualLinear(c.z_dim, c.w_dim, lr_mul=c.lr_multiplier, activation=True)]
        else:
            first = []
        layers: list[nn.Module] = [PixelNorm(), *first]
        while len(layers) < c.mapping_layers + 1:
            layers.append(EqualLinear(c.w_dim, c.w_dim, lr_mul=c.lr_multiplier, activation=True))
        self.style = nn.Sequential(*layers)

        self.input = ConstantInput(ch[4])
        self.conv1 = StyledConv(ch[4], ch[4], c.w_dim, blur_kernel=c.blur_kernel, clamp=clamp)
        self.to_rgb1 = ToRGB(ch[4], c.w_dim, c.img_channels, upsample=False, clamp=clamp)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        self.noises = nn.Module()
        for i in range(c.num_noise):
            side = 2 ** ((i + 5) // 2)
            self.noises.register_buffer(f"noise_{i}", torch.randn(1, 1, side, side))
        in_ch = ch[4]
        for res in _resolutions(c.resolution)[1:]:
            self.convs.append(
                StyledConv(in_ch, ch[res], c.w_dim, upsample=True, blur_kernel=c.blur_kernel, clamp=clamp))
            self.convs.append(StyledConv(ch[res], ch[res], c.w_dim, blur_kernel=c.blur_kernel, clamp=clamp))
            self.to_rgbs.append(ToRGB(ch[res], c.w_dim, c.img_channels, blur_kernel=c.blur_kernel, clamp=clamp))
            in_ch = ch[res]
        self.register_buffer("w_avg", torch.zeros(c.w_dim))
        self._layers = self._layer_table()

    # -- structure -------------------------------------------------------------------------------------------
    def _layer_table(self) -> list[tuple[str, nn.Module, int, int | None]]:
        """(name, module, w index, noise index or None) in execution order."""
        table: list[tuple[str, nn.Module, int, int | None]] = [("b4.conv1", self.conv1, 0, 0),
                                                                ("b4.torgb", self.to_rgb1, 1, None)]
        for k, res in enumerate(_resolutions(self.config.resolution)[1:]):
            table += [(f"b{res}.conv0", self.convs[2 * k], 2 * k + 1, 2 * k + 1),
                      (f"b{res}.conv1", self.convs[2 * k + 1], 2 * k + 2, 2 * k + 2),
                      (f"b{res}.torgb", self.to_rgbs[k], 2 * k + 3, None)]
        return table

    @property
    def num_ws(self) -> int:
        return self.config.num_ws

    @property
    def z_dim(self) -> int:
        return self.config.z_dim

    @property
    def w_dim(self) -> int:
        return self.config.w_dim

    @property
    def resolution(self) -> int:
        return self.config.resolution

    @property
    def feature_names(self) -> list[str]:
        """Names accepted by `synthesize_with_features` (and but for images by `synthesize_from`), in order."""
        names = ["const"]
        for name, _, _, noise_idx in self._layers:
            names.append(name if noise_idx is not None else name.replace(".torgb", ".img"))
        return names

    def feature_shape(self, name: str) -> tuple[int, int, int]:
        """(C, H, W) of a named feature."""
        if name not in self.feature_names:
            raise KeyError(f"unknown feature {name!r}; known: {', '.join(self.feature_names)}")
        if name == "const":
            return (self.config.channel_dict[4], 4, 4)
        res = int(name.split(".")[0][1:])
        c = self.config.img_channels if name.endswith(".img") else self.config.channel_dict[res]
        return (c, res, res)

    # -- mapping ---------------------------------------------------------------------------------------------
    def map(self, z: torch.Tensor, truncation_psi: float = 1.0) -> torch.Tensor:
        """z [N, z_dim] → w [N, w_dim], truncated towards ``w_avg`` when ``truncation_psi`` < 1."""
        if z.ndim != 2 or z.shape[1] != self.config.z_dim:
            raise ValueError(f"z must have shape [N, {self.config.z_dim}], got {tuple(z.shape)}")
        # The mapping network stays in fp32 under autocast: it is tiny, and its lr-multiplied weights and the
        # truncation towards w_avg are sensitive to bf16 rounding.
        with torch.autocast(z.device.type, enabled=False):
            w = self.style(z.to(self.w_avg.dtype))
            return self.truncate(w, truncation_psi)

    def truncate(self, w: torch.Tensor, truncation_psi: float) -> torch.Tensor:
        """w_avg + psi * (w - w_avg), for w [N, w_dim] or W+ [N, num_ws, w_dim]."""
        if truncation_psi == 1.0:
            return w
        return self.w_avg + truncation_psi * (w - self.w_avg)

    @torch.no_grad()
    def compute_w_avg(self, num_samples: int = 10000, seed: int = 0, batch: int = 2000) -> torch.Tensor:
        """Mean of ``map(z)`` over ``num_samples`` seeded z; stored into ``self.w_avg`` and returned ([w_dim])."""
        gen = torch.Generator().manual_seed(seed)
        total = torch.zeros(self.config.w_dim, dtype=torch.float64)
        for start in range(0, num_samples, batch):
            n = min(batch, num_samples - start)
            z = torch.randn(n, self.config.z_dim, generator=gen).to(self.w_avg.device)
            total += self.style(z).double().sum(0).cpu()
        self.w_avg.copy_((total / num_samples).to(self.w_avg.dtype))
        return self.w_avg

    def mix(self, w1: torch.Tensor, w2: torch.Tensor, crossover: int) -> torch.Tensor:
        """Style mixing: W+ [N, num_ws, w_dim] with rows [0, crossover) from w1 and the rest from w2.

        w1 and w2 are [N, w_dim] or W+ [N, num_ws, w_dim].
        """
        if not 0 <= crossover <= self.num_ws:
            raise ValueError(f"crossover must be in [0, {self.num_ws}], got {crossover}")
        a, b = self.broadcast_ws(w1), self.broadcast_ws(w2)
        return torch.cat([a[:, :crossover], b[:, crossover:]], dim=1)

    def broadcast_ws(self, w: torch.Tensor) -> torch.Tensor:
        """w [N, w_dim] → W+ [N, num_ws, w_dim] (a view); W+ is returned as is; other shapes are errors."""
        if w.ndim == 2:
            if w.shape[1] != self.config.w_dim:
                raise ValueError(f"w must have shape [N, {self.config.w_dim}], got {tuple(w.shape)}")
            return w[:, None, :].expand(-1, self.num_ws, -1)
        if w.ndim == 3 and w.shape[1:] == (self.num_ws, self.config.w_dim):
            return w
        raise ValueError(f"w must be [N, {self.config.w_dim}] or [N, {self.num_ws}, {self.config.w_dim}], "
                         f"got {tuple(w.shape)}")

    # -- synthesis -------------------------------------------------------------------------------------------
    def make_noise(self, batch: int = 1, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """Fresh per-layer noise: a list of num_noise tensors [batch, 1, r, r]."""
        dev = self.w_avg.device
        return [torch.randn(batch, 1, *getattr(self.noises, f"noise_{i}").shape[2:], generator=generator).to(dev)
                for i in range(self.config.num_noise)]

    def synthesize(self, w: torch.Tensor, noise: Sequence[torch.Tensor | None] | None = None,
                   noise_mode: str = "random", modconv: str = "auto",
                   channels_last: bool | None = None) -> torch.Tensor:
        """Render images from w [N, w_dim] or W+ [N, num_ws, w_dim].

        Args:
            noise: one tensor per noise input ([N or 1, 1, r, r], r = 4, 8, 8, 16, 16, …); overrides
                ``noise_mode``. An entry may be None (no noise at that layer).
            noise_mode: "random" (fresh Gaussian noise), "const" (the stored ``noises.noise_i`` buffers) or
                "none" (no noise).
            modconv: "auto", "grouped" or "shared" modulated-conv strategy (see ``ops.modulated_conv2d``).
            channels_last: keep activations NHWC (default: on the CPU, where oneDNN's transposed and depthwise
                convolutions are 1.4-3x faster that way). Results are equal either way up to float rounding.

        Returns:
            images [N, img_channels, resolution, resolution] in fp32, roughly in [-1, 1] (not clamped). Activation
            maps come from `synthesize_with_features`; starting at a layer from `synthesize_from`.
        """
        return self._synthesis(w, noise, noise_mode, (), None, None, modconv, channels_last)[0]

    def synthesize_with_features(self, w: torch.Tensor, features: Sequence[str],
                                 noise: Sequence[torch.Tensor | None] | None = None, noise_mode: str = "random",
                                 modconv: str = "auto", channels_last: bool | None = None) -> SynthesisResult:
        """Like `synthesize`, also returning the activation maps ``features`` (names from ``feature_names``:
        ``const``, ``b{r}.conv0`` / ``b{r}.conv1`` [N, C_r, r, r], ``b{r}.img`` the running RGB image)."""
        images, feats = self._synthesis(w, noise, noise_mode, tuple(features), None, None, modconv, channels_last)
        return SynthesisResult(images, feats)

    def synthesize_from(self, layer: str, activation: torch.Tensor, w: torch.Tensor,
                        skip_img: torch.Tensor | None = None, noise: Sequence[torch.Tensor | None] | None = None,
                        noise_mode: str = "random", modconv: str = "auto",
                        channels_last: bool | None = None) -> torch.Tensor:
        """Start synthesis at ``layer`` with a given activation map instead of computing everything before it.

        Args:
            layer: a feature name that is not an image (``const``, ``b{r}.conv0``, ``b{r}.conv1``).
            activation: [N, C, r, r] as `synthesize_with_features` returns for ``layer``.
            w: w [N, w_dim] or W+ [N, num_ws, w_dim]; the rows before the layer are unused.
            skip_img: the running RGB image of the block before ``layer`` ([N, img_channels, r/2, r/2], the feature
                ``b{r/2}.img``); None starts the image sum at ``layer``'s block (then the round trip
                ``synthesize_from(l, f[l], w, f[b{r/2}.img])`` == ``synthesize(w)`` does not hold without it).

        Returns:
            images [N, img_channels, resolution, resolution] in fp32.
        """
        return self._synthesis(w, noise, noise_mode, (), (layer, activation), skip_img, modconv, channels_last)[0]

    def _synthesis(self, w: torch.Tensor, noise: Sequence[torch.Tensor | None] | None, noise_mode: str,
                   return_features: Sequence[str], inject: tuple[str, torch.Tensor] | None,
                   inject_img: torch.Tensor | None, modconv: str,
                   channels_last: bool | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        ws = self.broadcast_ws(w)
        n = ws.shape[0]
        noise_list = self._noise_list(noise, noise_mode, n)
        wanted = set(return_features or ())
        unknown = wanted - set(self.feature_names)
        if unknown:
            raise KeyError(f"unknown feature(s) {sorted(unknown)}; known: {', '.join(self.feature_names)}")
        feats: dict[str, torch.Tensor] = {}

        start = 0
        if inject is not None:
            name, x = inject
            if name not in self.feature_names or name.endswith(".img"):
                raise KeyError(f"cannot inject at {name!r}; use one of "
                               f"{', '.join(f for f in self.feature_names if not f.endswith('.img'))}")
            expect = self.feature_shape(name)
            if tuple(x.shape[1:]) != expect or x.shape[0] != n:
                raise ValueError(f"injected activation for {name} must be [{n}, {expect[0]}, {expect[1]}, "
                                 f"{expect[2]}], got {tuple(x.shape)}")
            start = 0 if name == "const" else 1 + [t[0] for t in self._layers].index(name)
            img = inject_img
        else:
            x = self.input(n)
            img = None
        if "const" in wanted and inject is None:
            feats["const"] = x
        if channels_last is None:
            channels_last = x.device.type == "cpu"
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)

        # Styles are computed in fp32 even under autocast: demodulation divides by their norms.
        with torch.autocast(ws.device.type, enabled=False):
            ws32 = ws.float()
            styles = [mod.conv.modulation(ws32[:, wi]) for _, mod, wi, _ in self._layers[start:]]
        for (name, mod, _, ni), s in zip(self._layers[start:], styles):
            if ni is None:
                img = mod(x, s, img, modconv)
                key = name.replace(".torgb", ".img")
                if key in wanted:
                    feats[key] = img
            else:
                x = mod(x, s, noise_list[ni], modconv)
                if name in wanted:
                    feats[name] = x
        assert img is not None
        return img.contiguous(), feats

    def _noise_list(self, noise: Sequence[torch.Tensor | None] | None, noise_mode: str,
                    batch: int) -> list[torch.Tensor | None]:
        k = self.config.num_noise
        if noise is not None:
            if len(noise) != k:
                raise ValueError(f"noise must be a list of {k} tensors (one per layer), got {len(noise)}")
            return list(noise)
        if noise_mode == "const":
            return [getattr(self.noises, f"noise_{i}") for i in range(k)]
        if noise_mode == "none":
            return [None] * k
        if noise_mode == "random":
            dev = self.w_avg.device
            return [torch.randn(batch, 1, *getattr(self.noises, f"noise_{i}").shape[2:], device=dev)
                    for i in range(k)]
        raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")

    def forward(self, z: torch.Tensor, truncation_psi: float = 1.0, noise_mode: str = "random",
                **synthesis_kwargs) -> torch.Tensor:
        """map + synthesize: z [N, z_dim] → images [N, C, H, W]."""
        return self.synthesize(self.map(z, truncation_psi), noise_mode=noise_mode, **synthesis_kwargs)

    # -- loading helpers -------------------------------------------------------------------------------------
    def expected_fir_buffers(self) -> dict[str, torch.Tensor]:
        """The FIR buffers rosinality stores for this architecture (what ``load_rosinality`` checks and drops)."""
        k_up = ops.setup_filter(self.config.blur_kernel, gain=4.0)
        out = {}
        for j in range(0, len(self.convs), 2):
            out[f"convs.{j}.conv.blur.kernel"] = k_up
        for j in range(len(self.to_rgbs)):
            out[f"to_rgbs.{j}.upsample.kernel"] = k_up
        return out


# ----------------------------------------------------------------------------------------------------------------
# Discriminator


class StyleGAN2Discriminator(PretrainedModel):
    """StyleGAN2 residual discriminator: images [N, C, H, W] in [-1, 1] → logits [N, 1]."""

    model_type = "stylegan2-discriminator"
    config_class = StyleGAN2DiscriminatorConfig

    def __init__(self, config: StyleGAN2DiscriminatorConfig) -> None:
        super().__init__()
        self.config = c = config
        ch = c.channel_dict
        res = _resolutions(c.resolution)[::-1]
        convs: list[nn.Module] = [ConvLayer(c.img_channels, ch[c.resolution], 1, clamp=c.conv_clamp)]
        for r in res[:-1]:
            convs.append(ResBlock(ch[r], ch[r // 2], c.blur_kernel, c.conv_clamp))
        self.convs = nn.Sequential(*convs)
        self.final_conv = ConvLayer(ch[4] + c.mbstd_num_channels, ch[4], 3, clamp=c.conv_clamp)
        self.final_linear = nn.Sequential(EqualLinear(ch[4] * 16, ch[4], activation=True), EqualLinear(ch[4], 1))

    def minibatch_stddev(self, x: torch.Tensor) -> torch.Tensor:
        """Append the per-group feature stddev as extra channels: [N, C, H, W] → [N, C + F, H, W].

        Samples i and i + N/G share a group (rosinality/NVlabs layout). The group size is the largest divisor of
        N not above ``mbstd_group_size`` (the reference code fails instead when N is not divisible); None (an
        NVlabs setting) uses the whole batch as one group.
        """
        n, c, h, w = x.shape
        g = n if self.config.mbstd_group_size is None else min(n, self.config.mbstd_group_size)
        while n % g:
            g -= 1
        f = self.config.mbstd_num_channels
        y = x.view(g, -1, f, c // f, h, w)
        y = torch.sqrt(y.var(0, unbiased=False) + 1e-8)
        y = y.mean([2, 3, 4], keepdim=True).squeeze(2)
        y = y.repeat(g, 1, h, w)
        return torch.cat([x, y], 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        c = self.config
        if images.ndim != 4 or images.shape[1:] != (c.img_channels, c.resolution, c.resolution):
            raise ValueError(f"discriminator input must be [N, {c.img_channels}, {c.resolution}, {c.resolution}], "
                             f"got {tuple(images.shape)}")
        x = self.convs(images)
        # The epilogue in fp32 even under autocast (NVlabs keeps its 4x4 block out of fp16): the minibatch stddev
        # is a variance of nearly equal numbers, and the logits feed every loss. It is <2 % of D's compute.
        with torch.autocast(x.device.type, enabled=False):
            x = self.final_conv(self.minibatch_stddev(x.to(self.final_linear[-1].weight.dtype)))
            return self.final_linear(x.reshape(x.shape[0], -1))

    def expected_fir_buffers(self) -> dict[str, torch.Tensor]:
        k = ops.setup_filter(self.config.blur_kernel)
        out = {}
        for j in range(1, len(self.convs)):
            out[f"convs.{j}.conv2.0.kernel"] = k
            out[f"convs.{j}.skip.0.kernel"] = k
        return out


