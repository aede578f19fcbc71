"""Activation-map translation (Zheng 2022, "Rewriting Activation Maps"): an encoder predicts one early synthesis
layer's activation map of a frozen StyleGAN2 from an image; the generator's remaining layers turn it into an image.

The encoder is trained on pairs the generator renders itself (``stylebridge.train.actmap``): z → w → (image,
activation at the target layer). After training it *replaces* the synthesis layers before the target layer, so any
input — also one from outside the generator's domain (a sketch, a blurred photo, an emoji) — comes out in the
generator's domain. The layers after the target still take styles, so the style of a translation can be chosen
(mean w, a given w / W+, a seed, a pSp/e4e code of the same image) and walked between seeds while translating.

Beyond the paper: in a config-f ("skip") generator the output is the sum of every block's RGB contribution, so an
activation map alone does not determine the image — the running RGB image of the earlier blocks (``b{r/2}.img``,
mostly low-frequency colour) is added on top. With ``predict_img`` (the default) the encoder predicts that skip image
too; fed the true activation *and* skip image, the migrated model reproduces the generator exactly. Without it the
image sum starts at the target block and the encoder's activation has to make up for the missing colours.

Shapes: images [N, C, H, W] in [-1, 1] (any size; resized to the encoder's ``input_size``); activation maps
[N, C_r, r, r] for the target layer ``b{r}.conv0`` / ``b{r}.conv1``; skip images [N, img_channels, r/2, r/2].
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from stylebridge.core.imageio import prepare_images
from stylebridge.core.native import PretrainedModel, nested_config
from stylebridge.core.seeds import seed_to_z
from stylebridge.models.stylegan2 import StyleGAN2Config, StyleGAN2Generator

__all__ = [
    "ActivationMapEncoder",
    "ActivationMapEncoderConfig",
    "ActivationMapTranslator",
    "ActivationMapTranslatorConfig",
    "parse_layer",
    "prepare_images",
]

_LAYER = re.compile(r"^b(\d+)\.conv([01])$")


def parse_layer(layer: str) -> int:
    """'b16.conv0' → 16. Target layers are the activations after a block's first (upsampling) or second conv."""
    m = _LAYER.match(layer)
    r = int(m.group(1)) if m else 0
    if not m or r < 8 or r & (r - 1):
        raise ValueError(f"target layer must look like b{{r}}.conv0 or b{{r}}.conv1 with r a power of two >= 8 "
                         f"(e.g. b16.conv0), got {layer!r}")
    return r


def _pow2(x: int) -> bool:
    return x >= 1 and not x & (x - 1)


@dataclass(frozen=True)
class ActivationMapEncoderConfig:
    """Architecture of the activation-map encoder: images → one synthesis layer's activation map (+ RGB skip)."""

    target_size: int = 16  # side of the predicted activation map (the target layer's resolution r)
    target_channels: int = 128  # channels of the target layer
    input_size: int = 64  # side of the square input (a power of two >= target_size); inputs are resized to it
    in_channels: int = 3
    width: int = 32  # channels at full input resolution; doubled by each stride-2 stage (up to max_width)
    max_width: int = 256  # cap on any stage's channels
    blocks_per_stage: int = 1  # residual blocks per downsampling stage (the first of them strides by 2)
    final_blocks: int = 2  # residual blocks at the target resolution
    global_context: bool = True  # add a per-channel term computed from globally pooled features (whole-image cues)
    predict_img: bool = True  # also predict the running RGB skip image b{r/2}.img [img_channels, r/2, r/2]
    img_channels: int = 3  # channels of that skip image (the generator's image channels)

    def __post_init__(self) -> None:
        if not _pow2(self.target_size) or self.target_size < 2:
            raise ValueError(f"target_size must be a power of two >= 2, got {self.target_size}")
        if not _pow2(self.input_size) or self.input_size < self.target_size:
            raise ValueError(f"input_size must be a power of two >= target_size {self.target_size}, "
                             f"got {self.input_size}")
        for name in ("target_channels", "in_channels", "width", "max_width", "blocks_per_stage", "img_channels"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.final_blocks < 0:
            raise ValueError(f"final_blocks must be >= 0, got {self.final_blocks}")

    @property
    def num_stages(self) -> int:
        """Stride-2 stages from input_size down to target_size."""
        return int(math.log2(self.input_size // self.target_size))

    @property
    def stage_widths(self) -> list[int]:
        """Channels after the stem and after each downsampling stage."""
        return [min(self.max_width, self.width * 2**s) for s in range(self.num_stages + 1)]

    def to_dict(self) -> dict:
        return asdict(self)


def _norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with up to 16 groups of at least 4 channels (a divisor of ``channels``)."""
    groups = next(g for g in (16, 8, 4, 2, 1) if channels % g == 0 and (channels // g >= 4 or g == 1))
    return nn.GroupNorm(groups, channels)


class _ResBlock(nn.Module):
    """Pre-activation residual block: GN → SiLU → 3×3 conv (stride 2 when ``down``) → GN → SiLU → 3×3 conv, plus a
    shortcut (2×2 average pooling when ``down``, a 1×1 conv when the width changes). Only the branches are
    normalised: the residual stream keeps absolute colour and brightness, which GroupNorm removes."""

    def __init__(self, cin: int, cout: int, down: bool = False) -> None:
        super().__init__()
        self.norm1 = _norm(cin)
        # No bias before a norm: it would cancel out (a zero gradient that Adam turns into noise steps).
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=2 if down else 1, padding=1, bias=False)
        self.norm2 = _norm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1, bias=False) if cin != cout else None
        self.down = down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        s = F.avg_pool2d(x, 2) if self.down else x
        if self.skip is not None:
            s = self.skip(s)
        return s + h


class ActivationMapEncoder(PretrainedModel):
    """Images [N, in_channels, input_size, input_size] in [-1, 1] → (activation [N, target_channels, r, r],
    skip image [N, img_channels, r/2, r/2] or None), r = target_size.

    A 3×3 stem at full resolution, ``num_stages`` residual stages that each halve the side with a stride-2 conv
    (learned downsampling with an average-pooled shortcut, instead of the paper's max-pooling), ``final_blocks``
    residual blocks at the target resolution, optional global context, and linear 3×3 heads (activation maps of a
    StyleGAN2 are leaky-ReLU outputs: any sign, so no output nonlinearity). GroupNorm (batch-independent: batch 1
    translates like a batch) normalises the residual branches only.
    """

    model_type = "actmap-encoder"
    config_class = ActivationMapEncoderConfig

    def __init__(self, config: ActivationMapEncoderConfig) -> None:
        super().__init__()
        self.config = c = config
        widths = c.stage_widths
        self.stem = nn.Conv2d(c.in_channels, widths[0], 3, padding=1)
        blocks: list[nn.Module] = []
        ch = widths[0]
        for out in widths[1:]:
            blocks.append(_ResBlock(ch, out, down=True))
            blocks.extend(_ResBlock(out, out) for _ in range(c.blocks_per_stage - 1))
            ch = out
        blocks.extend(_ResBlock(ch, ch) for _ in range(c.final_blocks))
        self.blocks = nn.Sequential(*blocks)
        self.context = nn.Linear(ch, ch) if c.global_context else None
        self.to_activation = nn.Conv2d(ch, c.target_channels, 3, padding=1)
        if c.predict_img:
            hidden = max(16, ch // 4)
            self.to_img: nn.Module | None = nn.Sequential(
                nn.Conv2d(ch, hidden, 3, stride=2, padding=1), nn.SiLU(), nn.Conv2d(hidden, c.img_channels, 1))
        else:
            self.to_img = None
        # NHWC weights: oneDNN (CPU) and cuDNN (tensor cores) run NHWC convs fastest, and NCHW weights would be
        # reordered on every call (measured: 15 vs 19 ms per 64-px image on one CPU core). Values are unchanged.
        self.to(memory_format=torch.channels_last)

    def forward(self, images: torch.Tensor,
                channels_last: bool | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """images [N, in_channels, input_size, input_size] → (activation, skip image or None); see the class.

        ``channels_last`` (default: on the CPU) runs the convolutions NHWC, as the generator does there.
        """
        c = self.config
        if images.ndim != 4 or images.shape[1:] != (c.in_channels, c.input_size, c.input_size):
            raise ValueError(f"ActivationMapEncoder input must be [N, {c.in_channels}, {c.input_size}, "
                             f"{c.input_size}], got {tuple(images.shape)} (ActivationMapTranslator.encode resizes)")
        if channels_last is None:
            channels_last = images.device.type == "cpu"
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        h = F.silu(self.blocks(self.stem(images)))  # no final norm: it would drop the stream's absolute levels
        if self.context is not None:
            h = h + self.context(h.mean(dim=(2, 3)))[:, :, None, None]
        act = self.to_activation(h)
        img = self.to_img(h) if self.to_img is not None else None
        return act, img


@dataclass(frozen=True)
class ActivationMapTranslatorConfig:
    """The migrated model: a frozen StyleGAN2 and an encoder for its activation map at ``layer``.

    Build one for an existing generator with ``ActivationMapTranslatorConfig.for_generator``.
    """

    generator: StyleGAN2Config  # the frozen generator's architecture
    encoder: ActivationMapEncoderConfig  # must match the layer: target_size r, the layer's channels
    layer: str = "b16.conv0"  # target layer: b{r}.conv0 (after the upsampling conv) or b{r}.conv1; 8 <= r <= res

    def __post_init__(self) -> None:
        object.__setattr__(self, "generator", nested_config(StyleGAN2Config, self.generator, "generator"))
        object.__setattr__(self, "encoder", nested_config(ActivationMapEncoderConfig, self.encoder, "encoder"))
        g, e = self.generator, self.encoder
        r = parse_layer(self.layer)
        if r > g.resolution:
            raise ValueError(f"layer {self.layer} is beyond the {g.resolution}-px generator")
        want = {"target_size": r, "target_channels": g.channel_dict[r], "img_channels": g.img_channels}
        bad = [f"{k}={getattr(e, k)} (layer {self.layer} needs {v})" for k, v in want.items() if getattr(e, k) != v]
        if bad:
            raise ValueError(f"encoder does not fit the generator: {', '.join(bad)}")

    @classmethod
    def for_generator(cls, generator: StyleGAN2Config, layer: str = "b16.conv0",
                      **encoder_kwargs: Any) -> ActivationMapTranslatorConfig:
        """Config for ``generator`` at ``layer``; encoder fields not given take their defaults, except
        ``input_size`` (default: the generator's resolution) and the target fields (from the layer)."""
        r = parse_layer(layer)
        if r > generator.resolution:
            raise ValueError(f"layer {layer} is beyond the {generator.resolution}-px generator")
        kw = {"input_size": generator.resolution, **encoder_kwargs, "target_size": r,
              "target_channels": generator.channel_dict[r], "img_channels": generator.img_channels}
        return cls(generator=generator, encoder=ActivationMapEncoderConfig(**kw), layer=layer)

    def to_dict(self) -> dict:
        return asdict(self)


class ActivationMapTranslator(PretrainedModel):
    """Encoder + frozen StyleGAN2: images (any domain) → images of the generator's domain.

    The whole generator is stored with the encoder (one native folder): the layers before ``layer`` are not used to
    translate, but the mapping network gives seeds and walks, and the complete generator renders references,
    evaluation pairs and further training data without a second file. The generator's parameters have
    ``requires_grad=False``; only the encoder is trained.

    Styles of the remaining layers (``translate``): the mean w (default), a given ``w`` / W+, a ``seed``, or a pSp /
    e4e model (``style_encoder``) applied to the same images; ``walk`` moves between seeds frame by frame.
    """

    model_type = "actmap-translator"
    config_class = ActivationMapTranslatorConfig
    display_name = "activation-map translator"  # for messages ("X holds …; expected an activation-map translator")

    def __init__(self, config: ActivationMapTranslatorConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = ActivationMapEncoder(config.encoder)
        self.generator = StyleGAN2Generator(config.generator)
        self.generator.requires_grad_(False)

    @classmethod
    def from_generator(cls, generator: StyleGAN2Generator, layer: str = "b16.conv0",
                       **encoder_kwargs: Any) -> ActivationMapTranslator:
        """A new translator (untrained encoder) around a copy of ``generator``'s weights."""
        model = cls(ActivationMapTranslatorConfig.for_generator(generator.config, layer, **encoder_kwargs))
        model.generator.load_state_dict(generator.state_dict())
        return model.to(generator.w_avg.device)

    # -- structure -------------------------------------------------------------------------------------------
    @property
    def layer(self) -> str:
        return self.config.layer

    @property
    def skip_layer(self) -> str | None:
        """Name of the generator feature the encoder's skip image stands for (``b{r/2}.img``), or None."""
        return f"b{self.config.encoder.target_size // 2}.img" if self.config.encoder.predict_img else None

    @property
    def resolution(self) -> int:
        return self.generator.resolution

    @property
    def input_size(self) -> int:
        return self.config.encoder.input_size

    @property
    def device(self) -> torch.device:
        return self.generator.w_avg.device

    # -- the two halves ----------------------------------------------------------------------------------------
    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Images [N, C, H, W] in [-1, 1] (C = 3, or 1 repeated; any size) → (activation [N, C_r, r, r],
        skip image [N, img_channels, r/2, r/2] or None). Differentiable."""
        x = prepare_images(images.to(self.device), self.config.encoder.in_channels, self.input_size)
        return self.encoder(x)

    def synthesize(self, activation: torch.Tensor, skip_img: torch.Tensor | None, w: torch.Tensor,
                   noise_mode: str = "const", noise: Sequence[torch.Tensor | None] | None = None) -> torch.Tensor:
        """The generator's layers after ``layer``: activation (+ skip image) and styles w [N, w_dim] or W+
        [N, num_ws, w_dim] (rows before the layer are unused) → images [N, img_channels, R, R]. Differentiable."""
        return self.generator.synthesize_from(self.layer, activation, w, skip_img, noise=noise, noise_mode=noise_mode)

    # -- styles ------------------------------------------------------------------------------------------------
    def seed_w(self, seeds: Sequence[int], truncation_psi: float = 1.0) -> torch.Tensor:
        """w [len(seeds), w_dim] of seeds (z drawn as NVlabs' generate.py does: the same faces as ``generate``)."""
        return self.generator.map(seed_to_z(list(seeds), self.generator.z_dim).to(self.device), truncation_psi)

    def styles_for(self, images: torch.Tensor, w: torch.Tensor | None = None, seed: int | Sequence[int] | None = None,
                   style_encoder: nn.Module | None = None, truncation_psi: float = 1.0) -> torch.Tensor:
        """W+ [N, num_ws, w_dim] for translating ``images`` [N, ...]: at most one of

        * ``w``: [w_dim], [1 or N, w_dim] or [1 or N, num_ws, w_dim], used as given;
        * ``seed``: one seed for every image, or one per image (``truncation_psi`` applies);
        * ``style_encoder``: a pSp / e4e model (anything with ``encode(images) -> W+`` and a generator of the same
          w_dim and num_ws), applied to the same images;
        * none of them: the generator's mean w (``w_avg``).
        """
        n = images.shape[0]
        given = [k for k, v in (("w", w), ("seed", seed), ("style_encoder", style_encoder)) if v is not None]
        if len(given) > 1:
            raise ValueError(f"give at most one of w, seed, style_encoder (got {', '.join(given)})")
        G = self.generator
        if w is not None:
            if not isinstance(w, torch.Tensor):
                raise TypeError(f"w must be a tensor, got {type(w).__name__}")
            w = w.to(self.device, torch.float32)
            if w.ndim == 1:
                w = w[None]
            ok = (w.ndim == 2 and w.shape[1] == G.w_dim) or (w.ndim == 3 and w.shape[1:] == (G.num_ws, G.w_dim))
            if not ok or w.shape[0] not in (1, n):
                raise ValueError(f"w must be [{G.w_dim}], [1 or {n}, {G.w_dim}] or [1 or {n}, {G.num_ws}, {G.w_dim}], "
                                 f"got {tuple(w.shape)}")
        elif seed is not None:
            seeds = [seed] if isinstance(seed, int) else list(seed)
            if len(seeds) not in (1, n) or not all(isinstance(s, int) and s >= 0 for s in seeds):
                raise ValueError(f"seed must be one non-negative int or a list of {n} (one per image), got {seed!r}")
            w = self.seed_w(seeds, truncation_psi)
        elif style_encoder is not None:
            w = self._encoder_styles(style_encoder, images)
        else:
            w = G.w_avg[None]
        return G.broadcast_ws(w).expand(n, -1, -1)

    def _encoder_styles(self, style_encoder: nn.Module, images: torch.Tensor) -> torch.Tensor:
        if not callable(getattr(style_encoder, "encode", None)):
            raise TypeError(f"style_encoder must have encode(images) -> W+ (a PSP or E4E), "
                            f"got {type(style_encoder).__name__}")
        cfg = getattr(getattr(style_encoder, "config", None), "encoder", None)
        size = getattr(cfg, "input_size", None)
        channels = getattr(cfg, "in_channels", 3)
        x = images.to(self.device)
        if size is not None:
            x = prepare_images(x, channels, size)
        w = style_encoder.encode(x).float()
        G = self.generator
        if w.ndim != 3 or w.shape[1:] != (G.num_ws, G.w_dim):
            raise ValueError(f"style_encoder gives W+ of shape {tuple(w.shape[1:])}, this generator needs "
                             f"({G.num_ws}, {G.w_dim})")
        return w

    # -- translation -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def translate(self, images: torch.Tensor, w: torch.Tensor | None = None, seed: int | Sequence[int] | None = None,
                  style_encoder: nn.Module | None = None, truncation_psi: float = 1.0,
                  noise_mode: str = "const") -> torch.Tensor:
        """Translate images [N, C, H, W] in [-1, 1] (C = 3 or 1; any size) into the generator's domain.

        Styles: see ``styles_for`` (default: the mean w). ``noise_mode``: "const" (the generator's stored noise:
        deterministic), "random" or "none". Returns images [N, img_channels, R, R] (R = the generator's resolution),
        roughly in [-1, 1] (not clamped). Runs without gradients; use ``encode`` + ``synthesize`` to train.
        """
        act, skip = self.encode(images)
        ws = self.styles_for(images, w=w, seed=seed, style_encoder=style_encoder, truncation_psi=truncation_psi)
        return self.synthesize(act, skip, ws, noise_mode=noise_mode)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``translate`` with the mean w and constant noise: images → images [N, img_channels, R, R]."""
        return self.translate(images)

    @torch.no_grad()
    def walk(self, images: torch.Tensor, seeds: Sequence[int], frames: int, truncation_psi: float = 1.0,
             noise_mode: str = "const", loop: bool = False) -> torch.Tensor:
        """A latent walk while translating: images [N, C, H, W] → frames [frames, N, img_channels, R, R].

        The structure comes from the images (encoded once); the remaining layers' w moves linearly in W through
        the seeds' w in order (evenly spaced frames, the first and last at the first and last seed; with ``loop``
        back towards the first seed, ending one step before it so the frames repeat seamlessly).
        """
        seeds = list(seeds)
        if len(seeds) < 2 or not all(isinstance(s, int) and s >= 0 for s in seeds):
            raise ValueError(f"walk needs at least 2 non-negative int seeds, got {seeds!r}")
        if not isinstance(frames, int) or frames < 2:
            raise ValueError(f"frames must be an int >= 2, got {frames!r}")
        act, skip = self.encode(images)
        key = self.seed_w(seeds, truncation_psi)
        if loop:
            key = torch.cat([key, key[:1]])
            t = torch.arange(frames, dtype=torch.float64) * (len(seeds) / frames)
        else:
            t = torch.linspace(0, len(seeds) - 1, frames, dtype=torch.float64)
        out = []
        n = act.shape[0]
        for ti in t.tolist():
            i = min(math.floor(ti), key.shape[0] - 2)
            w = torch.lerp(key[i], key[i + 1], ti - i)
            out.append(self.synthesize(act, skip, w[None].expand(n, -1), noise_mode=noise_mode))
        return torch.stack(out)
