"""Training the activation-map encoder (Zheng 2022) on pairs a frozen StyleGAN2 renders on the fly.

Every step draws z for the global batch, maps it to w and renders (image, activation at the target layer, running
RGB skip image) with the frozen generator: no data set is needed. The encoder sees the image — optionally degraded by
input augmentation (blur, colour jitter, grayscale, edge maps, cut-outs), so that out-of-domain inputs translate
better; the targets stay the clean generator's — and is trained with

* L2 on the activation map (``loss.activation``) and on the skip image (``loss.skip_img``, when it is predicted);
* optionally, image losses *after migration*: the predicted activation and skip image go through the generator's
  remaining frozen layers with the pair's own w and noise, and the result is compared with the generator's image by
  L2 (``loss.image_l2``) and by the perceptual distance of a domain network (``loss.perceptual``; the toolkit's own
  LPIPS-style distance, ``DomainNetwork.distance``; logs and cards name the network).

Run conventions are the GAN trainer's: a dataclass config tree from one flat YAML file plus ``--set`` overrides, a run
folder with the resolved config, ``log.jsonl`` (train and ``val`` records), TensorBoard when installed, grids
``samples/stepXXXXXXX.png`` (per row: input | translation), atomic checkpoints, exact resume (optimizer, step, RNG),
SIGINT/SIGTERM checkpoint-and-stop, bf16 autocast, and ``torchrun`` DDP (gloo on CPU, nccl on CUDA): every random
number is drawn for the *global* batch from one generator that all ranks hold in the same state, and each rank keeps
its interleaved slice, so N processes compute what one process computes, up to float summation order. At the end
rank 0 writes the migrated model (``translator/``: encoder + generator, one native folder).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from stylebridge.core.device import autocast, pick_device
from stylebridge.core.filters import gaussian_blur, jpeg_roundtrip, smooth_noise
from stylebridge.core.native import check_state_dict
from stylebridge.formats.loading import load, load_generator
from stylebridge.models.actmap import ActivationMapTranslator, parse_layer
from stylebridge.models.domain import DomainNetwork
from stylebridge.models.stylegan2 import StyleGAN2Generator
from stylebridge.train.config import LogSection, OptimSection, load_config, to_dict
from stylebridge.train.ddp import broadcast_module, world
from stylebridge.train.loop import TrainTask, optimizer_step, run_training

__all__ = ["ActmapTask", "ActmapTrainConfig", "augment_inputs", "load_actmap_config", "train_actmap"]


@dataclass
class GeneratorSection:
    path: str = "synthfaces-64"  # the frozen generator: shipped name, native folder or a file stylebridge.load reads
    truncation_psi: float = 1.0  # truncation of the training latents (1: the generator's whole distribution)
    noise_mode: str = "random"  # noise of the training pairs: "random" (fresh per sample) or "const" (stored noise)


@dataclass
class EncoderSection:
    layer: str = "b16.conv0"  # target layer b{r}.conv0 / b{r}.conv1 (r = 8 … the generator's resolution)
    input_size: int = 0  # side of the encoder's input (0: the generator's resolution)
    width: int = 32  # channels at full input resolution, doubled by each stride-2 stage
    max_width: int = 256
    blocks_per_stage: int = 1
    final_blocks: int = 2
    global_context: bool = True
    predict_img: bool = True  # also predict the running RGB skip image b{r/2}.img (exact migration)
    # Start from this translator's encoder (shipped name or folder; same layer, architecture and generator), e.g.
    # to fine-tune the shipped translator with other augmentation. None: random initialisation.
    init_from: str | None = None


@dataclass
class LossSection:
    activation: float = 1.0  # weight of the L2 on the activation map
    skip_img: float = 1.0  # weight of the L2 on the skip image (with encoder.predict_img)
    image_l2: float = 0.0  # weight of the image L2 after migration (0: the remaining layers are not run)
    perceptual: float = 0.0  # weight of the perceptual distance after migration
    perceptual_network: str = "synthfaces-domain"  # the domain network for it (shipped name or native folder)


@dataclass
class InputAugmentSection:
    # Probabilities per sample, each op independently, in this order; the targets are never augmented.
    # Close-up: crop a square around zoom_center (half-side drawn uniformly from zoom_range, as a fraction of the
    # image's half-side) and scale it up to the full frame; with probability zoom_mask (of the zoomed samples) keep
    # only the ellipse zoom_ellipse (half-axes x, y in image coordinates [-1, 1], centred at zoom_center) and fill
    # the rest with white (half) or a random flat colour. For synthfaces the ellipse is the face: a face without
    # hair, neck or background filling the frame is how emoji and face clip art look, and the target stays the full
    # generated image, so the encoder learns to put such a face back into the domain's layout. Drawn only when on.
    zoom: float = 0.0
    zoom_center: tuple[float, ...] = (0.0, 0.0)
    zoom_range: tuple[float, ...] = (0.5, 0.8)
    zoom_mask: float = 0.0
    zoom_ellipse: tuple[float, ...] = (0.45, 0.55)
    blur: float = 0.0  # Gaussian blur, sigma uniform in [0.3, blur_sigma] px at 64 px (scaled with the input size)
    blur_sigma: float = 2.5
    color: float = 0.0  # brightness, contrast, saturation and hue rotation
    grayscale: float = 0.0
    edges: float = 0.0  # replaced by a Sobel edge map: dark lines on white, like a sketch
    cutout: float = 0.0  # a rectangle (20–50% of the side) filled with a random gray
    # Flat colours (each channel quantised to 3–6 levels) and, for half of those, dark outlines from the edge map:
    # the look of emoji and clip art. Applied last; its random numbers are drawn only when it is on (> 0), so
    # configs without it keep their random stream.
    cartoon: float = 0.0
    # Photo-like degradations (issue 19: real photos), after the ops above, in this order, each drawing its random
    # numbers only when on. tight: a tight crop as alignment leaves one — only a square around the face (half-side
    # tight_range, centred near tight_center) is kept, the rest is that square reflected, blurred and faded to its
    # mean colour (as data.align's "soft" fill fades to the photo's median), so a close-up photo aligned into the
    # layout looks like training.
    # photo: light from one side, multiplicative texture (two scales), background clutter towards the edges,
    # sensor noise — all gray-preserving, so grayscale inputs stay gray. lowres: area-downsampled ×2–4 and
    # upsampled back (bilinear or bicubic). jpeg: a JPEG round trip at quality 25–85.
    tight: float = 0.0
    tight_center: tuple[float, ...] = (0.0, 0.08)
    tight_range: tuple[float, ...] = (0.32, 0.6)
    photo: float = 0.0
    lowres: float = 0.0
    jpeg: float = 0.0


@dataclass
class ActmapOptimSection(OptimSection):
    steps: int = 20_000
    lr: float = 0.001  # Adam
    beta1: float = 0.9
    beta2: float = 0.99
    weight_decay: float = 0.0
    schedule: str = "cosine"  # "constant", or "cosine" decay to lr * min_lr_ratio at the last step
    min_lr_ratio: float = 0.05
    warmup: int = 0  # steps of linear warm-up
    # precision "bf16": autocast for the encoder and the migrated layers (the pairs stay fp32)


@dataclass
class ActmapLogSection(LogSection):
    grid: int = 8  # rows of the periodic grid (sample_every: grids and the validation record)
    grid_synthfaces: bool = True  # grid rows also translate rendered held-out synthfaces faces and their sketches
    val_n: int = 64  # held-out generated pairs (fixed z, constant noise) for the val record (0: off)


@dataclass
class ActmapTrainConfig:
    generator: GeneratorSection = field(default_factory=GeneratorSection)
    encoder: EncoderSection = field(default_factory=EncoderSection)
    loss: LossSection = field(default_factory=LossSection)
    augment: InputAugmentSection = field(default_factory=InputAugmentSection)
    optim: ActmapOptimSection = field(default_factory=ActmapOptimSection)
    log: ActmapLogSection = field(default_factory=ActmapLogSection)


def load_actmap_config(path: str | os.PathLike | None, overrides: list[str] | None = None) -> ActmapTrainConfig:
    """The experiment config from a YAML file (see configs/actmap/) and ``a.b=value`` overrides, checked."""
    cfg = load_config(ActmapTrainConfig, path, overrides)
    _check_config(cfg)
    return cfg


def _check_config(cfg: ActmapTrainConfig) -> None:
    o, lo, a = cfg.optim, cfg.loss, cfg.augment
    if o.schedule not in ("constant", "cosine"):
        raise ValueError(f"optim.schedule must be constant or cosine, got {o.schedule!r}")
    if cfg.generator.noise_mode not in ("random", "const"):
        raise ValueError(f"generator.noise_mode must be random or const, got {cfg.generator.noise_mode!r}")
    weights = {"loss.activation": lo.activation, "loss.skip_img": lo.skip_img, "loss.image_l2": lo.image_l2,
               "loss.perceptual": lo.perceptual}
    neg = [k for k, v in weights.items() if v < 0]
    if neg:
        raise ValueError(f"loss weights must be >= 0: {', '.join(neg)}")
    if not (lo.activation or lo.image_l2 or lo.perceptual or (lo.skip_img and cfg.encoder.predict_img)):
        raise ValueError("every loss weight is 0: nothing to train")
    probs = {k: getattr(a, k) for k in ("zoom", "zoom_mask", "blur", "color", "grayscale", "edges", "cutout",
                                        "cartoon", "tight", "photo", "lowres", "jpeg")}
    bad = [f"augment.{k}={v}" for k, v in probs.items() if not 0 <= v <= 1]
    if bad:
        raise ValueError(f"augmentation probabilities must be in [0, 1]: {', '.join(bad)}")
    pairs = {"zoom_center": (-1.0, 1.0), "zoom_range": (0.05, 1.0), "zoom_ellipse": (0.01, 2.0),
             "tight_center": (-1.0, 1.0), "tight_range": (0.05, 1.0)}
    for k, (lo, hi) in pairs.items():
        v = getattr(a, k)
        if len(v) != 2 or not all(lo <= t <= hi for t in v):
            raise ValueError(f"augment.{k} must be two numbers in [{lo:g}, {hi:g}], got {list(v)}")
    for k in ("zoom_range", "tight_range"):
        if getattr(a, k)[0] > getattr(a, k)[1]:
            raise ValueError(f"augment.{k} must be [low, high], got {list(getattr(a, k))}")
    parse_layer(cfg.encoder.layer)


# ------------------------------------------------------------------------------------------------------------------
# Input augmentation


def _slice(t: torch.Tensor, dev: torch.device) -> torch.Tensor:
    rank, n_proc = world()
    return t[rank::n_proc].to(dev)


def _hue_rotation(angle: torch.Tensor) -> torch.Tensor:
    """Rotation matrices [N, 3, 3] about the gray axis (1, 1, 1)/√3 (Rodrigues): a hue shift that keeps gray."""
    u = torch.full((3,), 1 / math.sqrt(3.0), dtype=angle.dtype)
    cross = torch.tensor([[0, -u[2], u[1]], [u[2], 0, -u[0]], [-u[1], u[0], 0]], dtype=angle.dtype)
    outer = torch.outer(u, u)
    cos, sin = angle.cos()[:, None, None], angle.sin()[:, None, None]
    return cos * torch.eye(3, dtype=angle.dtype) + sin * cross + (1 - cos) * outer


def _edges(x: torch.Tensor) -> torch.Tensor:
    """Sobel edge map of the luminance as a sketch: [N, C, H, W] → [N, C, H, W], dark lines on white."""
    lum = x.mean(dim=1, keepdim=True)
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=x.device, dtype=x.dtype)
    k = torch.stack([kx, kx.t()])[:, None]
    g = F.conv2d(F.pad(lum, (1, 1, 1, 1), mode="replicate"), k)
    mag = g.square().sum(dim=1, keepdim=True).sqrt()
    scale = mag.flatten(1).quantile(0.98, dim=1).clamp_min(1e-3)[:, None, None, None]
    return (1 - 2 * (mag / scale).clamp(0, 1)).expand_as(x)


def _close_up(x: torch.Tensor, cfg: InputAugmentSection, u: torch.Tensor) -> torch.Tensor:
    """The ``augment.zoom`` op on every sample: x [N, C, H, W] in [-1, 1], u [N, 6] uniform → [N, C, H, W].

    u: crop size, mask or not, fill white or coloured, the fill colour's RGB (for C = 1 only the first is used).
    """
    c, h, w = x.shape[1:]
    dev, dt = x.device, x.dtype
    lo, hi = cfg.zoom_range
    half = (lo + (hi - lo) * u[:, 0]).to(dt)  # crop half-side in image coordinates
    cx, cy = cfg.zoom_center
    ys = (torch.arange(h, device=dev, dtype=dt) + 0.5) / h * 2 - 1  # pixel centres, align_corners=False
    xs = (torch.arange(w, device=dev, dtype=dt) + 0.5) / w * 2 - 1
    sx = cx + half[:, None, None] * xs[None, None, :]  # [N, 1, W]: source coordinates of each output pixel
    sy = cy + half[:, None, None] * ys[None, :, None]  # [N, H, 1]
    grid = torch.stack(torch.broadcast_tensors(sx, sy), dim=-1)  # [N, H, W, 2]
    # Zooming in only magnifies, so bilinear sampling is enough (no antialiasing needed).
    y = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if cfg.zoom_mask > 0:
        ax, ay = cfg.zoom_ellipse
        r = torch.sqrt(((sx - cx) / ax) ** 2 + ((sy - cy) / ay) ** 2)  # 1 on the ellipse
        px = 2 * half[:, None, None] / w / min(ax, ay)  # one output pixel in units of r: a soft 1-px edge
        keep = ((1 - r) / px + 0.5).clamp(0, 1)[:, None]  # [N, 1, H, W]
        fill = u[:, 3:3 + c].to(dt) * 2 - 1  # [N, C]
        fill = torch.where((u[:, 2] < 0.5)[:, None], torch.ones_like(fill), fill)[:, :, None, None]
        masked = keep * y + (1 - keep) * fill
        m = (u[:, 1] < cfg.zoom_mask).to(dt)[:, None, None, None]
        y = m * masked + (1 - m) * y
    return y


def augment_inputs(x: torch.Tensor, cfg: InputAugmentSection, gen: torch.Generator, n_global: int) -> torch.Tensor:
    """Degrade this rank's encoder inputs x [n_local, C, H, W] (in [-1, 1]) for out-of-domain robustness.

    Every random number is drawn for the global batch ``n_global`` from ``gen`` (CPU) and sliced like the batch
    (rank::world), whatever ops are enabled, so results do not depend on the number of processes. Returns images
    clamped to [-1, 1].
    """
    dev, dt = x.device, x.dtype
    size = x.shape[-1]

    def draw(*shape: int) -> torch.Tensor:
        return _slice(torch.rand(n_global, *shape, generator=gen), dev)

    def blend(p: float, y: torch.Tensor, x: torch.Tensor, pick: torch.Tensor) -> torch.Tensor:
        m = (pick < p).to(dt)[:, None, None, None]
        return m * y + (1 - m) * x

    # Close-up (first, so the other ops degrade the zoomed image like any other).
    if cfg.zoom > 0:
        pick, u = draw(), draw(6)
        x = blend(cfg.zoom, _close_up(x, cfg, u), x, pick)
    # Blur.
    pick, u = draw(), draw()
    if cfg.blur > 0:
        scale = size / 64
        sigma = (0.3 + u * max(cfg.blur_sigma - 0.3, 0.0)) * scale
        radius = max(1, math.ceil(3 * cfg.blur_sigma * scale))
        x = blend(cfg.blur, gaussian_blur(x, sigma.to(dt), radius), x, pick)
    # Colour: brightness, contrast, saturation, hue.
    pick, u = draw(), draw(4)
    if cfg.color > 0:
        b = (u[:, 0] - 0.5) * 0.6
        c = 0.6 + 0.8 * u[:, 1]
        s = 1.6 * u[:, 2]
        rot = _hue_rotation((u[:, 3].cpu().double() * 2 - 1) * math.pi).to(dev, dt)
        y = torch.einsum("nij,njhw->nihw", rot, x) if x.shape[1] == 3 else x
        gray = y.mean(dim=1, keepdim=True)
        y = gray + (y - gray) * s[:, None, None, None]
        mean = y.mean(dim=(1, 2, 3), keepdim=True)
        y = (y - mean) * c[:, None, None, None] + mean + b[:, None, None, None]
        x = blend(cfg.color, y.clamp(-1, 1), x, pick)
    # Grayscale.
    pick = draw()
    if cfg.grayscale > 0:
        x = blend(cfg.grayscale, x.mean(dim=1, keepdim=True).expand_as(x), x, pick)
    # Edge map.
    pick = draw()
    if cfg.edges > 0:
        x = blend(cfg.edges, _edges(x), x, pick)
    # Cut-out.
    pick, u = draw(), draw(5)
    if cfg.cutout > 0:
        side = x.shape[-1]
        coords = torch.arange(side, device=dev, dtype=dt) / side
        hw = 0.2 + 0.3 * u[:, :2]
        y0, x0 = u[:, 2] * (1 - hw[:, 0]), u[:, 3] * (1 - hw[:, 1])
        ys, xs = coords[None, :, None], coords[None, None, :]
        y0, x0, y1, x1 = (t[:, None, None] for t in (y0, x0, y0 + hw[:, 0], x0 + hw[:, 1]))
        inside = (ys >= y0) & (ys < y1) & (xs >= x0) & (xs < x1)
        fill = (u[:, 4] * 2 - 1).to(dt)[:, None, None, None]  # a gray in [-1, 1]
        m = inside[:, None].to(dt) * (pick < cfg.cutout).to(dt)[:, None, None, None]
        x = m * fill + (1 - m) * x
    # Cartoon: flat colours, optionally with outlines (after the cut-out, so a cut-out patch is flat too).
    if cfg.cartoon > 0:
        pick, u = draw(), draw(2)
        levels = (3 + (u[:, 0] * 4).floor().clamp(max=3)).to(dt)[:, None, None, None]  # 3–6 levels
        y = torch.round((x.clamp(-1, 1) + 1) / 2 * (levels - 1)) / (levels - 1) * 2 - 1
        y = blend(0.5, torch.minimum(y, _edges(x)), y, u[:, 1])  # half get outlines (edges: dark lines on white)
        x = blend(cfg.cartoon, y, x, pick)
    # Photo-like degradations (InputAugmentSection): random numbers drawn only for the ops that are on.
    if cfg.tight > 0:
        pick, u = draw(), draw(3)
        x = blend(cfg.tight, _tight_crop(x, cfg, u), x, pick)
    if cfg.photo > 0:
        pick, u = draw(), draw(6)
        noise = _slice(torch.randn(n_global, 2, size, size, generator=gen), dev).to(dt)
        fine = _slice(smooth_noise(n_global, size, max(4, size // 4), gen), dev).to(dt)
        mid = _slice(smooth_noise(n_global, size, max(3, size // 10), gen), dev).to(dt)
        clutter = _slice(smooth_noise(n_global, size, 5, gen), dev).to(dt)
        x = blend(cfg.photo, _photo(x, u, noise, fine, mid, clutter), x, pick)
    if cfg.lowres > 0:
        pick, u = draw(), draw(2)
        x = blend(cfg.lowres, _lowres(x, u), x, pick)
    if cfg.jpeg > 0:
        pick, u = draw(), draw()
        x = blend(cfg.jpeg, jpeg_roundtrip(x.clamp(-1, 1), (25 + 60 * u).round().long()), x, pick)
    return x.clamp(-1, 1)


def _tight_crop(x: torch.Tensor, cfg: InputAugmentSection, u: torch.Tensor) -> torch.Tensor:
    """``augment.tight`` on every sample: x [N, C, H, W] in [-1, 1], u [N, 3] uniform → [N, C, H, W].

    The kept square: half-side from ``tight_range``, centre ``tight_center`` ± 0.06; outside it the square's
    content mirrored at its edges, blurred hard within a tenth of the fade length and faded to the square's mean
    colour over 0.4 (a fifth of the frame) — what `data.align.align_to_template` does with a tight crop.
    """
    n, _, h, w = x.shape
    dev, dt = x.device, x.dtype
    lo, hi = cfg.tight_range
    half = (lo + (hi - lo) * u[:, 0]).to(dt)[:, None, None]
    cx = (cfg.tight_center[0] + (u[:, 1] - 0.5) * 0.12).to(dt)[:, None, None]
    cy = (cfg.tight_center[1] + (u[:, 2] - 0.5) * 0.12).to(dt)[:, None, None]
    ys = ((torch.arange(h, device=dev, dtype=dt) + 0.5) / h * 2 - 1)[None, :, None]
    xs = ((torch.arange(w, device=dev, dtype=dt) + 0.5) / w * 2 - 1)[None, None, :]

    def mirror(t: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
        rel = (t - centre + half) / (2 * half)  # 0 … 1 inside the square
        tri = 1 - (rel.remainder(2) - 1).abs()  # reflected at every edge
        return centre - half + 2 * half * tri

    sx, sy = mirror(xs, cx), mirror(ys, cy)
    grid = torch.stack(torch.broadcast_tensors(sx, sy), dim=-1)  # [N, H, W, 2]
    y = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    dist = torch.maximum((xs - cx).abs() - half, (ys - cy).abs() - half).clamp_min(0) / 0.4  # [N, H, W]
    dist = dist[:, None]
    y = y + (gaussian_blur(y, torch.full((n,), 0.06 * w, device=dev), math.ceil(0.18 * w)) - y) * (
        dist * 10).clamp(0, 1)
    inside = (dist == 0).to(dt)
    mean = (y * inside).flatten(2).sum(2) / inside.flatten(2).sum(2).clamp_min(1)  # the square's mean colour
    return y + (mean[:, :, None, None] - y) * dist.clamp(0, 1)


def _photo(x: torch.Tensor, u: torch.Tensor, noise: torch.Tensor, fine: torch.Tensor, mid: torch.Tensor,
           clutter: torch.Tensor) -> torch.Tensor:
    """``augment.photo``: x [N, C, H, W] in [-1, 1], u [N, 6] uniform, noise [N, 2, H, W], fields [N, 1, H, W]
    (smooth noise, unit std) → [N, C, H, W]. Every change is the same on all channels (gray stays gray)."""
    h, w = x.shape[-2:]
    dev, dt = x.device, x.dtype
    ys = ((torch.arange(h, device=dev, dtype=dt) + 0.5) / h * 2 - 1)[None, None, :, None]
    xs = ((torch.arange(w, device=dev, dtype=dt) + 0.5) / w * 2 - 1)[None, None, None, :]
    col = lambda k, lo, hi: (lo + (hi - lo) * u[:, k]).to(dt)[:, None, None, None]  # noqa: E731
    ang = col(0, 0.0, 2 * math.pi)
    img = (x + 1) / 2
    img = img * (1 + col(1, 0.1, 0.4) * (xs * torch.cos(ang) + ys * torch.sin(ang)))
    img = img * (1 + col(2, 0.02, 0.1) * (0.6 * fine + 0.4 * mid))
    edge = (xs * xs + ys * ys).clamp(max=1.5) / 1.5  # clutter grows towards the frame, where background is
    img = img + col(3, 0.0, 0.2) * clutter * edge
    img = img * (1 - col(4, 0.0, 0.3) * (xs * xs + ys * ys) / 2)
    img = img + col(5, 0.005, 0.05) * noise[:, :1]
    return img.clamp(0, 1) * 2 - 1


def _lowres(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """``augment.lowres``: each sample area-downsampled by 2, 3 or 4 and upsampled back (bilinear or bicubic)."""
    size = x.shape[-1]
    out = x.clone()
    factor = (2 + (u[:, 0] * 3).floor().clamp(max=2)).long()
    for f in (2, 3, 4):
        for mode in ("bilinear", "bicubic"):
            idx = ((factor == f) & ((u[:, 1] < 0.5) == (mode == "bilinear"))).nonzero().flatten()
            if len(idx):
                small = F.interpolate(x[idx], size=max(1, size // f), mode="area")
                out[idx] = F.interpolate(small, size=size, mode=mode, align_corners=False)
    return out


# ------------------------------------------------------------------------------------------------------------------
# State


def build_translator(cfg: ActmapTrainConfig, G: StyleGAN2Generator) -> ActivationMapTranslator:
    """A translator around ``G`` with the encoder of ``cfg.encoder`` (initialised from the torch RNG)."""
    e = cfg.encoder
    kw: dict[str, Any] = dict(width=e.width, max_width=e.max_width, blocks_per_stage=e.blocks_per_stage,
                              final_blocks=e.final_blocks, global_context=e.global_context, predict_img=e.predict_img)
    if e.input_size:
        kw["input_size"] = e.input_size
    return ActivationMapTranslator.from_generator(G, e.layer, **kw)


def _init_encoder(model: ActivationMapTranslator, spec: str) -> None:
    """Copy the encoder weights of the translator ``spec`` into ``model`` (one-line errors when they do not fit)."""
    from stylebridge.pipelines.actmap import load_translator

    src = load_translator(spec)
    if src.generator.config.to_dict() != model.generator.config.to_dict():
        raise ValueError(f"encoder.init_from {spec}: translates through another generator architecture")
    have, want = src.encoder.config.to_dict(), model.encoder.config.to_dict()
    if have != want:
        diff = sorted(k for k, v in want.items() if have.get(k) != v)
        raise ValueError(f"encoder.init_from {spec}: its encoder differs from encoder.* in {diff}")
    model.encoder.load_state_dict(src.encoder.state_dict())


class ActmapTask(TrainTask):
    """Activation-map encoder training as a task of the shared loop (`stylebridge.train.loop.run_training`)."""

    name = "actmap"

    def __init__(self, cfg: ActmapTrainConfig) -> None:
        _check_config(cfg)
        self.cfg = cfg

    def setup(self) -> None:
        cfg, o = self.cfg, self.cfg.optim
        G = load_generator(cfg.generator.path, what="generator.path").to(pick_device())
        torch.manual_seed(o.seed)  # the encoder's initialisation does not depend on what loading drew
        self.model = build_translator(cfg, G)
        if cfg.encoder.init_from:
            _init_encoder(self.model, cfg.encoder.init_from)
        broadcast_module(self.model.encoder)
        self.opt = torch.optim.Adam(self.model.encoder.parameters(), lr=o.lr, betas=(o.beta1, o.beta2),
                                    weight_decay=o.weight_decay)
        self.gen = torch.Generator().manual_seed(o.seed * 1000 + 23)  # the same on every rank: global draws, sliced
        torch.manual_seed(o.seed * 1000 + 41 + world()[0])
        self.perceptual = _Perceptual(cfg.loss.perceptual_network) if cfg.loss.perceptual > 0 else None

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt": self.opt}

    def state_dict(self) -> dict[str, Any]:
        return {"encoder": self.model.encoder.state_dict(), "rng": self.gen.get_state(),
                "generator_config": json.dumps(self.model.generator.config.to_dict())}

    def load_state_dict(self, ck: dict[str, Any]) -> None:
        have = json.dumps(self.model.generator.config.to_dict())
        if ck.get("generator_config", have) != have:
            raise ValueError("the checkpoint was trained on a generator of another architecture than generator.path "
                             "holds now: resume with the same generator")
        check_state_dict(self.model.encoder, ck["encoder"], "checkpoint encoder")
        self.gen.set_state(ck["rng"].cpu())

    def train_step(self, step: int) -> dict[str, float]:
        return _train_step(self, self.cfg, self.perceptual, step)

    def postfix(self, stats: dict[str, float]) -> dict[str, str]:
        return {"loss": f"{stats['loss']:.4f}"}

    def grid(self) -> tuple[torch.Tensor, int] | None:
        lg = self.cfg.log
        grid = sample_grid(self.model, lg.grid, lg.grid_synthfaces)
        return grid, grid.shape[0] // lg.grid

    def validate(self) -> dict[str, float]:
        return validate(self.model, self.cfg.log.val_n) if self.cfg.log.val_n > 0 else {}

    def check_modules(self) -> list[torch.nn.Module]:
        return [self.model.encoder]

    def export(self, run: Path, metadata: dict[str, Any]) -> None:
        self.model.eval()
        cfg = self.cfg
        meta = {"steps": metadata["steps"], "train_seconds": metadata["train_seconds"], "generator": cfg.generator.path,
                "batch": cfg.optim.batch, "losses": dict(to_dict(cfg.loss)), "augment": to_dict(cfg.augment)}
        if "val" in metadata:
            meta["val"] = metadata["val"]
        self.model.save_pretrained(run / "translator", metadata=meta)

    def result(self) -> ActivationMapTranslator:
        self.model.eval()
        return self.model


def learning_rate(o: ActmapOptimSection, step: int) -> float:
    """The learning rate of step ``step`` (0-based): linear warm-up, then constant or cosine decay."""
    if o.warmup and step < o.warmup:
        return o.lr * (step + 1) / o.warmup
    if o.schedule == "constant":
        return o.lr
    t = (step - o.warmup) / max(1, o.steps - o.warmup - 1)
    return o.lr * (o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


# ------------------------------------------------------------------------------------------------------------------
# Pairs and losses


@dataclass
class Pairs:
    """Training pairs rendered by the frozen generator (this rank's slice)."""

    w: torch.Tensor  # [n, w_dim]
    noise: list[torch.Tensor] | None  # per-layer noise, or None for the generator's constant noise
    image: torch.Tensor  # [n, C, R, R]
    activation: torch.Tensor  # [n, C_r, r, r]
    skip_img: torch.Tensor | None  # [n, C, r/2, r/2]


@torch.no_grad()
def render_pairs(model: ActivationMapTranslator, z: torch.Tensor, noise: list[torch.Tensor] | None,
                 truncation_psi: float = 1.0) -> Pairs:
    """z [n, z_dim] (and noise, or None: constant) → w, image, activation at the target layer, skip image (fp32)."""
    G = model.generator
    w = G.map(z.to(model.device), truncation_psi)
    feats = [model.layer] + ([model.skip_layer] if model.skip_layer else [])
    res = G.synthesize_with_features(w, feats, noise=noise, noise_mode="const")
    img, f = res.images, res.features
    skip = f[model.skip_layer].contiguous() if model.skip_layer else None
    return Pairs(w, noise, img, f[model.layer].contiguous(), skip)


def _draw_pairs(st: ActmapTask, cfg: ActmapTrainConfig) -> Pairs:
    G, n = st.model.generator, cfg.optim.batch
    dev = st.model.device
    z = _slice(torch.randn(n, G.z_dim, generator=st.gen), dev)
    noise = [_slice(t, dev) for t in G.make_noise(n, generator=st.gen)]
    if cfg.generator.noise_mode == "const":
        noise = None
    return render_pairs(st.model, z, noise, cfg.generator.truncation_psi)


class _Perceptual:
    """The perceptual distance of a domain network, frozen."""

    def __init__(self, spec: str) -> None:
        self.net = load(spec, expect=DomainNetwork).to(pick_device()).eval().requires_grad_(False)
        self.label = Path(spec).name

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net.distance(x.float(), y.float())


def _losses(model: ActivationMapTranslator, pairs: Pairs, inputs: torch.Tensor, cfg: ActmapTrainConfig,
            perceptual: _Perceptual | None) -> tuple[torch.Tensor, dict[str, float]]:
    """The weighted training loss of one batch and its parts."""
    lo = cfg.loss
    with autocast(model.device, cfg.optim.precision):
        act, skip = model.encoder(inputs)
    act = act.float()
    stats: dict[str, float] = {}
    loss_act = F.mse_loss(act, pairs.activation)
    total = lo.activation * loss_act
    stats["act_mse"] = loss_act.item()
    if skip is not None:
        skip = skip.float()
        loss_skip = F.mse_loss(skip, pairs.skip_img)
        total = total + lo.skip_img * loss_skip
        stats["skip_mse"] = loss_skip.item()
    if lo.image_l2 > 0 or lo.perceptual > 0:
        with autocast(model.device, cfg.optim.precision):
            out = model.synthesize(act, skip, pairs.w, noise=pairs.noise).float()
        loss_img = F.mse_loss(out, pairs.image)
        stats["img_mse"] = loss_img.item()
        total = total + lo.image_l2 * loss_img
        if lo.perceptual > 0 and perceptual is not None:
            dist_ = perceptual(out, pairs.image).mean()
            stats[f"perceptual[{perceptual.label}]"] = dist_.item()
            total = total + lo.perceptual * dist_
    stats["loss"] = total.item()
    return total, stats


def _encoder_inputs(model: ActivationMapTranslator, image: torch.Tensor) -> torch.Tensor:
    size = model.input_size
    x = image.clamp(-1, 1)  # what a saved image gives at translation time
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=x.shape[-1] > size)
    return x


def _train_step(st: ActmapTask, cfg: ActmapTrainConfig, perceptual: _Perceptual | None, step: int) -> dict[str, float]:
    pairs = _draw_pairs(st, cfg)
    x = augment_inputs(_encoder_inputs(st.model, pairs.image), cfg.augment, st.gen, cfg.optim.batch)
    st.model.encoder.train()
    loss, stats = _losses(st.model, pairs, x, cfg, perceptual)
    lr = learning_rate(cfg.optim, step)
    for group in st.opt.param_groups:
        group["lr"] = lr
    optimizer_step(st.opt, loss, list(st.model.encoder.parameters()))
    stats["lr"] = lr
    return stats


# ------------------------------------------------------------------------------------------------------------------
# Validation and grids (rank 0; never touch the training RNGs)


@torch.no_grad()
def validate(model: ActivationMapTranslator, n: int, seed: int = 999, batch: int = 32) -> dict[str, float]:
    """Held-out generated pairs (fixed z, constant noise), migrated with their own w: activation / skip image /
    image MSE and the image PSNR (peak-to-peak 2)."""
    was = model.encoder.training
    model.encoder.eval()
    z_all = torch.randn(n, model.generator.z_dim, generator=torch.Generator().manual_seed(seed))
    sums = {"act_mse": 0.0, "skip_mse": 0.0, "img_mse": 0.0}
    for s in range(0, n, batch):
        pairs = render_pairs(model, z_all[s : s + batch], None)
        act, skip = model.encoder(_encoder_inputs(model, pairs.image))
        out = model.synthesize(act, skip, pairs.w)
        k = pairs.w.shape[0]
        sums["act_mse"] += float(F.mse_loss(act, pairs.activation)) * k
        if skip is not None:
            sums["skip_mse"] += float(F.mse_loss(skip, pairs.skip_img)) * k
        sums["img_mse"] += float(F.mse_loss(out, pairs.image)) * k
    model.encoder.train(was)
    res = {k: v / n for k, v in sums.items()}
    if model.skip_layer is None:
        del res["skip_mse"]
    res["img_psnr"] = 10 * math.log10(4.0 / max(res["img_mse"], 1e-12))
    return res


@torch.no_grad()
def sample_grid(model: ActivationMapTranslator, n: int, synthfaces: bool = True, seed: int = 123) -> torch.Tensor:
    """Grid images [n * cols, C, R, R] with ``cols`` per row: generated input | translation with its own w |
    translation with the mean w, and with ``synthfaces`` also rendered held-out face | translation | its sketch |
    translation (mean w)."""
    was = model.encoder.training
    model.encoder.eval()
    G = model.generator
    pairs = render_pairs(model, torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed)), None)
    act, skip = model.encode(pairs.image.clamp(-1, 1))
    cols = [pairs.image, model.synthesize(act, skip, pairs.w), model.synthesize(act, skip, G.w_avg[None].expand(n, -1))]
    if synthfaces and G.config.img_channels == 3:
        from stylebridge.data import synthfaces as sf

        r = sf.render(sf.sample_attributes([10_000_000 + seed + i for i in range(n)]), max(G.resolution, 16),
                      ("image", "sketch"))
        for x in (r["image"], r["sketch"].expand(-1, 3, -1, -1)):
            x = x.to(model.device)
            if x.shape[-1] != G.resolution:
                x = F.interpolate(x, size=(G.resolution,) * 2, mode="bilinear", align_corners=False, antialias=True)
            cols += [x, model.translate(x)]
    model.encoder.train(was)
    return torch.stack([c.float().cpu() for c in cols], dim=1).flatten(0, 1)


# ------------------------------------------------------------------------------------------------------------------
# Run


def train_actmap(cfg: ActmapTrainConfig, run_dir: str | os.PathLike, resume: bool = False, progress: bool = True,
                 max_steps_this_run: int | None = None) -> ActivationMapTranslator:
    """Train until ``cfg.optim.steps`` (or ``max_steps_this_run`` more steps); returns the translator.

    When the last step is reached, rank 0 writes ``run_dir/translator/`` (native folder: ``stylebridge.load`` reads
    it). The run folder, resume, signals and DDP are the shared loop's (`stylebridge.train.loop.run_training`).
    """
    return run_training(ActmapTask(cfg), run_dir, resume=resume, progress=progress,
                        max_steps_this_run=max_steps_this_run)
