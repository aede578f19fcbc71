"""pix2pixHD (Wang et al. 2018, NVIDIA/pix2pixHD): the feed-forward image-to-image translator that StyleGAN2
distillation trains on generated (before, after) pairs, and its multiscale PatchGAN discriminator.

* `Pix2PixHDGenerator` — the official ``GlobalGenerator``: a reflect-padded 7×7 conv, ``n_downsample_global``
  stride-2 3×3 convs, ``n_blocks_global`` residual blocks, as many stride-2 transposed convs, a reflect-padded 7×7
  conv to ``out_channels`` and tanh; with ``n_local_enhancers`` ≥ 1 the official ``LocalEnhancer``: that global
  network (minus its output conv) runs on the input average-pooled once per enhancer, and each enhancer adds its
  coarser result to its own downsampled features, then runs its residual blocks and one upsampling step.
  Every conv but the output one is followed by instance norm (no affine, no running statistics) and ReLU.
  ``residual`` (ours, off for official weights) adds the output conv to the input (the mean of the input images)
  before the tanh.
* `Pix2PixHDDiscriminator` — the official ``MultiscaleDiscriminator``: ``num_scales`` PatchGAN discriminators
  (4×4 convs with zero padding 2, leaky ReLU 0.2, instance norm on all but the first and last conv), scale i seeing
  the input average-pooled i times; returns every layer's features at every scale (feature-matching loss).

Parameter names are ours (``global_branch.down.0.conv.weight``); `stylebridge.formats.pix2pixhd` converts the
official ``latest_net_G.pth`` / ``latest_net_D.pth`` state dicts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from stylebridge.core.native import PretrainedModel

__all__ = ["Pix2PixHDDiscriminator", "Pix2PixHDDiscriminatorConfig", "Pix2PixHDGenerator",
           "Pix2PixHDGeneratorConfig", "downsample"]

MAX_D_CHANNELS = 512  # the official NLayerDiscriminator caps every width at 512


def downsample(x: torch.Tensor) -> torch.Tensor:
    """The official pyramid step: 3×3 average, stride 2, zero padding 1 left out of the average.
    [N, C, H, W] → [N, C, ⌈H/2⌉, ⌈W/2⌉]."""
    return F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)


def _init_conv_weights(module: nn.Module) -> None:
    """The official ``weights_init``: conv weights ~ N(0, 0.02²); biases keep PyTorch's default init."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)


def _check_positive(**values: int) -> None:
    for name, v in values.items():
        if v < 1:
            raise ValueError(f"{name} must be >= 1, got {v}")


# ------------------------------------------------------------------------------------------------------------------
# Generator


@dataclass(frozen=True)
class Pix2PixHDGeneratorConfig:
    """Architecture of a pix2pixHD generator. Defaults: the official option defaults (``netG global``).

    The field names are the official options'; ``in_channels`` is what ``Pix2PixHDModel`` computes from them
    (``label_nc`` or ``input_nc``, +1 with an instance-edge map, + ``feat_num`` with encoded features)."""

    in_channels: int = 3  # channels of the input (3: an RGB image)
    out_channels: int = 3  # official output_nc
    ngf: int = 64  # filters of the first conv at full resolution (the global branch has ngf·2**n_local_enhancers)
    n_downsample_global: int = 4  # stride-2 convs (and transposed convs) of the global branch
    n_blocks_global: int = 9  # residual blocks of the global branch
    n_local_enhancers: int = 0  # 0: the global generator alone (official netG "global"); k >= 1: netG "local"
    n_blocks_local: int = 3  # residual blocks of each local enhancer (unused without enhancers)
    # Side of the images it was trained on (0: unknown, e.g. official weights). The network is fully
    # convolutional; pipelines resize their inputs to this side.
    resolution: int = 0
    # Not in pix2pixHD: the network predicts a change to its input, output = tanh(atanh(base) + conv(features)),
    # base = the input image (for k·out_channels input channels, e.g. two images A and B: their mean), with the
    # output conv starting at zero, so training starts from the input. On a few thousand pairs and a CPU budget
    # the plain network spends its steps relearning the whole face through the bottleneck and leaves a speckle
    # behind; this one only has to learn the change.
    residual: bool = False

    def __post_init__(self) -> None:
        _check_positive(in_channels=self.in_channels, out_channels=self.out_channels, ngf=self.ngf)
        if self.resolution < 0 or self.resolution % self.size_multiple:
            raise ValueError(f"resolution must be 0 (unknown) or a positive multiple of {self.size_multiple}, got "
                             f"{self.resolution}")
        if self.residual and self.in_channels % self.out_channels:
            raise ValueError(f"residual needs whole images as input (a multiple of {self.out_channels} channels), got "
                             f"{self.in_channels}")
        if self.n_downsample_global < 0 or self.n_blocks_global < 0 or self.n_local_enhancers < 0 \
                or self.n_blocks_local < 0:
            raise ValueError("n_downsample_global, n_blocks_global, n_local_enhancers and n_blocks_local must be >= 0")

    @property
    def global_ngf(self) -> int:
        """Filters of the global branch's first conv."""
        return self.ngf * 2**self.n_local_enhancers

    @property
    def size_multiple(self) -> int:
        """Input sides must be multiples of this (every stride-2 step halves them exactly)."""
        return 2 ** (self.n_downsample_global + self.n_local_enhancers)

    def to_dict(self) -> dict:
        return asdict(self)


class ConvNormReLU(nn.Module):
    """conv → instance norm (no affine) → ReLU. ``kind``: "stem" (7×7, reflect pad 3), "down" (3×3, stride 2, zero
    pad 1) or "up" (3×3 transposed, stride 2, padding 1, output_padding 1). [N, I, H, W] → [N, O, H', W']."""

    def __init__(self, in_ch: int, out_ch: int, kind: str) -> None:
        super().__init__()
        if kind == "stem":
            self.conv: nn.Module = nn.Conv2d(in_ch, out_ch, 7, padding=3, padding_mode="reflect")
        elif kind == "down":
            self.conv = nn.Conv2d(in_ch, out_ch, 3, stride=2, padding=1)
        elif kind == "up":
            self.conv = nn.ConvTranspose2d(in_ch, out_ch, 3, stride=2, padding=1, output_padding=1)
        else:
            raise ValueError(f"kind must be 'stem', 'down' or 'up', got {kind!r}")
        self.norm = nn.InstanceNorm2d(out_ch, affine=False, track_running_stats=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(x)), inplace=True)


class ResnetBlock(nn.Module):
    """x + [reflect pad 1, 3×3 conv, instance norm, ReLU, reflect pad 1, 3×3 conv, instance norm](x). [N, C, H, W]."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, padding_mode="reflect")
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, padding_mode="reflect")
        self.norm = nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.norm(self.conv1(x)), inplace=True)
        return x + self.norm(self.conv2(h))


class GlobalBranch(nn.Module):
    """The official GlobalGenerator without its output conv: [N, I, H, W] → features [N, ngf, H, W]."""

    def __init__(self, in_ch: int, ngf: int, n_downsample: int, n_blocks: int) -> None:
        super().__init__()
        self.stem = ConvNormReLU(in_ch, ngf, "stem")
        self.down = nn.Sequential(*(ConvNormReLU(ngf * 2**i, ngf * 2 ** (i + 1), "down") for i in range(n_downsample)))
        self.blocks = nn.Sequential(*(ResnetBlock(ngf * 2**n_downsample) for _ in range(n_blocks)))
        self.up = nn.Sequential(*(ConvNormReLU(ngf * 2 ** (n_downsample - i), ngf * 2 ** (n_downsample - i - 1), "up")
                                  for i in range(n_downsample)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.blocks(self.down(self.stem(x))))


class LocalEnhancerBranch(nn.Module):
    """One official local enhancer (``model{n}_1`` + ``model{n}_2`` without the output conv): the input at this
    level [N, I, H, W] → stem + one stride-2 conv → + the coarser level's features [N, 2·ngf, H/2, W/2] → residual
    blocks → one transposed conv → [N, ngf, H, W]."""

    def __init__(self, in_ch: int, ngf: int, n_blocks: int) -> None:
        super().__init__()
        self.stem = ConvNormReLU(in_ch, ngf, "stem")
        self.down = ConvNormReLU(ngf, 2 * ngf, "down")
        self.blocks = nn.Sequential(*(ResnetBlock(2 * ngf) for _ in range(n_blocks)))
        self.up = ConvNormReLU(2 * ngf, ngf, "up")

    def forward(self, x: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        return self.up(self.blocks(self.down(self.stem(x)) + coarse))


class Pix2PixHDGenerator(PretrainedModel):
    """pix2pixHD generator: input [N, in_channels, H, W] (an image in [-1, 1], or one-hot labels) → output
    [N, out_channels, H, W] in (-1, 1) (tanh). H and W must be multiples of ``config.size_multiple``.

    Without local enhancers this is the official GlobalGenerator; with them, the official LocalEnhancer."""

    model_type = "pix2pixhd-generator"
    display_name: ClassVar[str] = "pix2pixHD generator"
    config_class = Pix2PixHDGeneratorConfig

    def __init__(self, config: Pix2PixHDGeneratorConfig) -> None:
        super().__init__()
        self.config = c = config
        self.global_branch = GlobalBranch(c.in_channels, c.global_ngf, c.n_downsample_global, c.n_blocks_global)
        # enhancers[0] is the coarsest (official model1_*), enhancers[-1] works at full resolution
        self.enhancers = nn.ModuleList(
            LocalEnhancerBranch(c.in_channels, c.ngf * 2 ** (c.n_local_enhancers - n), c.n_blocks_local)
            for n in range(1, c.n_local_enhancers + 1))
        self.to_image = nn.Conv2d(c.ngf, c.out_channels, 7, padding=3, padding_mode="reflect")
        _init_conv_weights(self)
        if c.residual:  # start from the identity: no change until the network has learned one
            nn.init.zeros_(self.to_image.weight)
            nn.init.zeros_(self.to_image.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.config
        m = c.size_multiple
        if x.ndim != 4 or x.shape[1] != c.in_channels or x.shape[2] % m or x.shape[3] % m:
            raise ValueError(f"Pix2PixHDGenerator input must be [N, {c.in_channels}, H, W] with H and W multiples of "
                             f"{m}, got {tuple(x.shape)}")
        pyramid = [x]
        for _ in self.enhancers:
            pyramid.append(downsample(pyramid[-1]))
        h = self.global_branch(pyramid[-1])
        for enhancer, level in zip(self.enhancers, reversed(pyramid[:-1])):
            h = enhancer(level, h)
        if c.residual:  # ±0.999: atanh stays finite on saturated pixels (an error of 1/8 of an 8-bit level)
            n, _, hh, ww = x.shape
            base = x.reshape(n, c.in_channels // c.out_channels, c.out_channels, hh, ww).mean(1)
            return torch.tanh(torch.atanh(base.clamp(-0.999, 0.999)) + self.to_image(h))
        return torch.tanh(self.to_image(h))


# ------------------------------------------------------------------------------------------------------------------
# Discriminator


@dataclass(frozen=True)
class Pix2PixHDDiscriminatorConfig:
    """Architecture of pix2pixHD's multiscale discriminator. Defaults: the official options for a 3-channel image
    pair (``ndf`` 64, ``n_layers_D`` 3, ``num_D`` 2, feature matching on)."""

    in_channels: int = 6  # channels of the judged tensor: the condition and the image, concatenated (3 + 3)
    ndf: int = 64  # filters of the first conv (doubled by each later conv, capped at 512)
    n_layers: int = 3  # official n_layers_D: stride-2 convs; each scale has n_layers + 2 convs
    num_scales: int = 2  # official num_D: scale i sees the input average-pooled i times
    intermediate_features: bool = True  # return every layer's output (official getIntermFeat = not no_ganFeat_loss)
    use_sigmoid: bool = False  # sigmoid on the last output (official no_lsgan; applied only without intermediate
    #                            features, as the official code does)

    def __post_init__(self) -> None:
        _check_positive(in_channels=self.in_channels, ndf=self.ndf, n_layers=self.n_layers,
                        num_scales=self.num_scales)

    @property
    def widths(self) -> tuple[int, ...]:
        """Output channels of each conv of one scale (the last is 1: the patch logits)."""
        w = [self.ndf]
        for _ in range(self.n_layers):  # the official running nf = min(nf * 2, 512)
            w.append(min(w[-1] * 2, MAX_D_CHANNELS))
        return (*w, 1)

    def to_dict(self) -> dict:
        return asdict(self)


class PatchLayer(nn.Module):
    """4×4 conv (zero padding 2), then optional instance norm and leaky ReLU 0.2."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, norm: bool, activate: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 4, stride=stride, padding=2)
        self.norm = nn.InstanceNorm2d(out_ch, affine=False, track_running_stats=False) if norm else nn.Identity()
        self.activate = activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.conv(x))
        return F.leaky_relu(x, 0.2, inplace=True) if self.activate else x


class PatchDiscriminator(nn.Module):
    """The official NLayerDiscriminator: [N, C, H, W] → the outputs of its n_layers + 2 convs (the last one raw
    patch logits [N, 1, H', W'])."""

    def __init__(self, c: Pix2PixHDDiscriminatorConfig) -> None:
        super().__init__()
        w, n = c.widths, c.n_layers
        self.layers = nn.ModuleList(
            PatchLayer(c.in_channels if j == 0 else w[j - 1], w[j], stride=2 if j < n else 1,
                       norm=0 < j <= n, activate=j <= n)
            for j in range(n + 2))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for layer in self.layers:
            x = layer(x)
            features.append(x)
        return features


class Pix2PixHDDiscriminator(PretrainedModel):
    """pix2pixHD's multiscale discriminator: ``D(torch.cat([condition, image], 1))`` (condition first; images in
    [-1, 1]) → a list over scales (0: full resolution, i: average-pooled i times) of lists of each conv's output
    (after its leaky ReLU; the last one raw patch logits [N, 1, H_i', W_i']). Without ``intermediate_features``
    each scale's list holds only the logits (sigmoid applied when ``use_sigmoid``)."""

    model_type = "pix2pixhd-discriminator"
    display_name: ClassVar[str] = "pix2pixHD discriminator"
    config_class = Pix2PixHDDiscriminatorConfig

    def __init__(self, config: Pix2PixHDDiscriminatorConfig) -> None:
        super().__init__()
        self.config = config
        self.scales = nn.ModuleList(PatchDiscriminator(config) for _ in range(config.num_scales))
        _init_conv_weights(self)

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        c = self.config
        if x.ndim != 4 or x.shape[1] != c.in_channels:
            raise ValueError(f"Pix2PixHDDiscriminator input must be [N, {c.in_channels}, H, W] (condition and image "
                             f"concatenated), got {tuple(x.shape)}")
        results = []
        for i, scale in enumerate(self.scales):
            if i:
                x = downsample(x)
            features = scale(x)
            if not c.intermediate_features:
                logits = features[-1]
                features = [torch.sigmoid(logits) if c.use_sigmoid else logits]
            results.append(features)
        return results
