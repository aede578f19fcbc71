"""StyleMapGAN training (Kim et al. 2021, naver-ai/StyleMapGAN ``train.py``) as a task of the shared loop.

One step, in the official order (each phase its own optimiser step):

1. **G**: non-saturating loss of D on G(z); then **E** on the latent reconstruction MSE(stylemap, E(G(z))) (the
   image and the stylemap detached);
2. **D**: logistic loss on real images vs G(z), plus the In-DomainGAN term softplus(D(G(E(x)))) (reconstructions
   count as fakes);
3. **R1** on reals every ``d_reg_every`` steps (γ ``r1``, scaled by the interval);
4. **E and G together** on the image reconstruction of real images: MSE + perceptual distance (LPIPS when its
   weight files are given, else the domain network: named in the run's first log record) + the In-DomainGAN
   encoder term softplus(−D(G(E(x))));
5. EMA copies of G and E (decay ``ema``, the official 0.999).

Adam with betas (0, 0.99) at ``lr`` (the official 0.002) for G and E; D with the lazy-regularisation correction.
Data: synthfaces streamed or any image folder (no LMDB, no precomputed pairs). Exact resume, bf16 autocast and
torchrun DDP come from the shared loop: every random draw (z) is made for the global batch from one generator that
all ranks hold in the same state, each rank keeping its interleaved slice; gradients are all-reduced per phase.
``run/model`` is the native `StyleMapGAN` (EMA generator and encoder).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from stylebridge.core.device import autocast, pick_device
from stylebridge.core.native import check_state_dict
from stylebridge.losses import perceptual_distance
from stylebridge.models.stylegan2 import StyleGAN2Discriminator, StyleGAN2DiscriminatorConfig
from stylebridge.models.stylemapgan import (
    StyleMapEncoderConfig,
    StyleMapGAN,
    StyleMapGANConfig,
    StyleMapGeneratorConfig,
    official_channels,
)
from stylebridge.train.config import LogSection, OptimSection, load_config
from stylebridge.train.ddp import broadcast_module, world
from stylebridge.train.gan import _adam, _RealStream
from stylebridge.train.loop import TrainTask, optimizer_step, run_training

__all__ = ["StyleMapGANTask", "StyleMapTrainConfig", "build_stylemapgan", "load_stylemap_config",
           "train_stylemapgan"]


@dataclass
class DataConfig:
    source: str = "synthfaces"  # "synthfaces" or a folder of images
    resolution: int = 64
    seed: int = 0
    workers: int = 0


@dataclass
class ModelConfig:
    latent_channels: int = 64  # C of the C×S×S stylemap (official latent_channel_size)
    latent_size: int = 8  # S (official latent_spatial_size)
    mapping_layers: int = 8
    lr_mul: float = 0.01
    channel_multiplier: int = 2
    channel_divisor: int = 1  # divides the official channel table (scaled-down models)
    small_generator: bool = False
    # D's minibatch-stddev group. Under torchrun each rank's batch must be whole groups of the 1-process run (samples
    # are interleaved across ranks, and a group of g over a batch of N takes samples i, i + N/g, …): g <= batch/ranks.
    mbstd_group_size: int = 4


@dataclass
class LossConfig:
    x_rec: float = 1.0  # image MSE (lambda_x_rec_loss)
    perceptual: float = 1.0  # lambda_perceptual_loss
    w_rec: float = 1.0  # latent reconstruction MSE(s, E(G(s))) (lambda_w_rec_loss)
    adv: float = 1.0  # G's non-saturating loss (lambda_adv_loss)
    d: float = 1.0  # D's logistic loss (lambda_d_loss)
    indomain_d: float = 1.0  # softplus(D(G(E(x)))) in D's loss (lambda_indomainGAN_D_loss)
    indomain_e: float = 1.0  # softplus(-D(G(E(x)))) in E's and G's loss (lambda_indomainGAN_E_loss)
    r1: float = 10.0
    d_reg_every: int = 16
    perceptual_net: str = "auto"  # "auto" (LPIPS when its files are given, else domain_network), "lpips", a model
    lpips_backbone: str | None = None
    lpips_heads: str | None = None
    domain_network: str = "synthfaces-domain"


@dataclass
class OptimConfig(OptimSection):
    batch: int = 16
    lr: float = 0.002
    ema: float = 0.999


@dataclass
class LogConfig(LogSection):
    grid: int = 8  # held-out faces (rows real | reconstruction) plus as many random samples


@dataclass
class StyleMapTrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    log: LogConfig = field(default_factory=LogConfig)


def load_stylemap_config(path: str | os.PathLike | None, overrides: list[str] | None = None) -> StyleMapTrainConfig:
    cfg = load_config(StyleMapTrainConfig, path, overrides)
    if cfg.loss.d_reg_every < 1 or cfg.optim.batch < 1:
        raise ValueError("loss.d_reg_every and optim.batch must be >= 1")
    if not 0 <= cfg.optim.ema < 1:
        raise ValueError(f"optim.ema must be in [0, 1), got {cfg.optim.ema}")
    return cfg


def build_stylemapgan(cfg: StyleMapTrainConfig) -> tuple[StyleMapGAN, StyleGAN2Discriminator]:
    """A new generator + encoder pair and its discriminator (channels: the official table / channel_divisor)."""
    m, res = cfg.model, cfg.data.resolution
    table = official_channels(res, m.channel_multiplier, m.channel_divisor)
    gen = StyleMapGeneratorConfig(resolution=res, latent_channels=m.latent_channels, latent_size=m.latent_size,
                                  mapping_layers=m.mapping_layers, lr_mul=m.lr_mul, small_generator=m.small_generator,
                                  channels=tuple(table[m.latent_size * 2**i] for i in range(
                                      (res // m.latent_size).bit_length())))
    enc = StyleMapEncoderConfig(resolution=res, latent_channels=m.latent_channels, latent_size=m.latent_size,
                                channels=tuple(table[res >> i] for i in range((res // m.latent_size).bit_length())))
    d_channels = tuple(table[4 * 2**i] for i in range((res // 4).bit_length()))
    D = StyleGAN2Discriminator(StyleGAN2DiscriminatorConfig(resolution=res, channels=d_channels,
                                                            mbstd_group_size=m.mbstd_group_size))
    return StyleMapGAN(StyleMapGANConfig(generator=gen, encoder=enc)), D


class StyleMapGANTask(TrainTask):
    """StyleMapGAN training (see the module docstring)."""

    name = "stylemapgan"

    def __init__(self, cfg: StyleMapTrainConfig, progress: bool = True) -> None:
        self.cfg, self.progress = cfg, progress

    def setup(self) -> None:
        cfg, o, L = self.cfg, self.cfg.optim, self.cfg.loss
        dev = pick_device()
        torch.manual_seed(o.seed)
        self.model, self.D = build_stylemapgan(cfg)
        self.model.to(dev).train()
        self.D.to(dev)
        self.ema = build_stylemapgan(cfg)[0].to(dev)
        self.ema.load_state_dict(self.model.state_dict())
        self.ema.requires_grad_(False).eval()
        for m in (self.model, self.D, self.ema):
            broadcast_module(m)
        rank, n_proc = world()
        self.gen = torch.Generator().manual_seed(o.seed * 1000 + 17)
        g, e = self.model.generator, self.model.encoder
        self.opt_g = torch.optim.Adam(g.parameters(), lr=o.lr, betas=(0.0, 0.99))
        self.opt_e = torch.optim.Adam(e.parameters(), lr=o.lr, betas=(0.0, 0.99))
        self.opt_d = _adam(self.D.parameters(), o.lr, L.d_reg_every)
        self.perceptual = perceptual_distance(L.perceptual_net, L.lpips_backbone, L.lpips_heads,
                                              L.domain_network).to(dev) if L.perceptual > 0 else None
        self.data = _RealStream(cfg, rank, n_proc)  # type: ignore[arg-type]  (same data fields as GAN training)
        self.grid_real = self._held_out(cfg) if rank == 0 else None
        self.grid_z = torch.randn(cfg.log.grid, cfg.model.latent_channels, generator=torch.Generator().manual_seed(7))

    @staticmethod
    def _held_out(cfg: StyleMapTrainConfig) -> torch.Tensor:
        if cfg.data.source == "synthfaces":
            from stylebridge.core.seeds import HELD_OUT_SEED
            from stylebridge.data import synthfaces as sf

            seeds = list(range(HELD_OUT_SEED, HELD_OUT_SEED + cfg.log.grid))
            return sf.render_seeds(seeds, cfg.data.resolution, outputs=("image",))["image"]
        return _RealStream(cfg, 0, 1).batch(0)[: cfg.log.grid]  # type: ignore[arg-type]

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt_g": self.opt_g, "opt_e": self.opt_e, "opt_d": self.opt_d}

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "D": self.D.state_dict(), "ema": self.ema.state_dict(),
                "rng": self.gen.get_state()}

    def load_state_dict(self, ck: dict[str, Any]) -> None:
        for key, m in (("model", self.model), ("D", self.D), ("ema", self.ema)):
            check_state_dict(m, ck[key], f"checkpoint {key}")
        self.gen.set_state(ck["rng"].cpu())

    def train_step(self, step: int) -> dict[str, float]:
        real = self.data.batch(step).to(next(self.D.parameters()).device)
        return _train_step(self, real, step)

    def postfix(self, stats: dict[str, float]) -> dict[str, str]:
        return {"d": f"{stats['loss_d']:.2f}", "x_rec": f"{stats['x_rec']:.3f}"}

    def start_record(self) -> dict[str, Any]:
        name = self.perceptual.name if self.perceptual is not None else "none"
        if self.progress and world()[0] == 0:
            print(f"perceptual loss: {name}", flush=True)
        return {"perceptual_network": name}

    def grid(self) -> tuple[torch.Tensor, int] | None:
        assert self.grid_real is not None
        dev = next(self.D.parameters()).device
        with torch.no_grad():
            real = self.grid_real.to(dev)
            rec = self.ema.reconstruct(real)
            samples = self.ema.generator(self.grid_z.to(dev))
        return torch.cat([real, rec, samples]).clamp(-1, 1).cpu(), len(real)

    def check_modules(self) -> list[torch.nn.Module]:
        return [self.model, self.D]

    def export(self, run: Path, metadata: dict[str, Any]) -> None:
        o = self.cfg.optim
        self.ema.save_pretrained(run / "model", metadata={
            "steps": metadata["steps"], "batch": o.batch, "train_seconds": metadata["train_seconds"],
            "data": self.cfg.data.source, "resolution": self.cfg.data.resolution,
            "perceptual_network": self.perceptual.name if self.perceptual is not None else "none"})

    def result(self) -> StyleMapGAN:
        return self.ema


def _z(st: StyleMapGANTask, n_global: int, dev: torch.device) -> torch.Tensor:
    rank, n_proc = world()
    return torch.randn(n_global, st.cfg.model.latent_channels, generator=st.gen)[rank::n_proc].to(dev)


def _train_step(st: StyleMapGANTask, real: torch.Tensor, step: int) -> dict[str, float]:
    o, L = st.cfg.optim, st.cfg.loss
    G, E, D = st.model.generator, st.model.encoder, st.D
    dev = real.device
    prec = o.precision
    stats: dict[str, float] = {}
    g_params, e_params, d_params = list(G.parameters()), list(E.parameters()), list(D.parameters())
    # 1. G adversarial, then E on the latent reconstruction of the fakes
    D.requires_grad_(False)
    with autocast(dev, prec):
        stylemap = G.map(_z(st, o.batch, dev))
        fake = G.decode(stylemap)
        adv = F.softplus(-D(fake).float()).mean()
    optimizer_step(st.opt_g, L.adv * adv, g_params)
    with autocast(dev, prec):
        w_rec = (E(fake.detach()).float() - stylemap.detach().float()).square().mean()
    optimizer_step(st.opt_e, L.w_rec * w_rec, e_params)
    stats.update(adv=adv.item(), w_rec=w_rec.item())
    # 2. D: reals vs G(z), and reconstructions as fakes (In-DomainGAN)
    D.requires_grad_(True)
    with torch.no_grad(), autocast(dev, prec):
        fake = G.decode(G.map(_z(st, o.batch, dev)))
        recon = G.decode(E(real))
    with autocast(dev, prec):
        real_pred, fake_pred, rec_pred = D(real).float(), D(fake).float(), D(recon).float()
    loss_d = F.softplus(-real_pred).mean() + F.softplus(fake_pred).mean()
    indomain_d = F.softplus(rec_pred).mean()
    optimizer_step(st.opt_d, L.d * loss_d + L.indomain_d * indomain_d, d_params)
    stats.update(loss_d=loss_d.item(), indomain_d=indomain_d.item(), d_real=real_pred.mean().item(),
                 d_fake=fake_pred.mean().item())
    # 3. lazy R1
    if L.r1 > 0 and step % L.d_reg_every == 0:
        real_in = real.detach().requires_grad_(True)
        with autocast(dev, prec):
            pred = D(real_in).float()
        (grad,) = torch.autograd.grad(pred.sum(), real_in, create_graph=True)
        r1 = grad.float().square().flatten(1).sum(1).mean()
        optimizer_step(st.opt_d, r1 * (L.r1 / 2 * L.d_reg_every) + 0 * pred[0, 0], d_params)
        stats["r1"] = r1.item()
    D.requires_grad_(False)
    # 4. E and G on the reconstruction of real images
    with autocast(dev, prec):
        recon = G.decode(E(real)).float()
        x_rec = (recon - real).square().mean()
        perc = st.perceptual(recon, real).float().mean() if st.perceptual is not None else recon.new_zeros(())
        indomain_e = F.softplus(-D(recon).float()).mean()
    loss_e = L.x_rec * x_rec + L.perceptual * perc + L.indomain_e * indomain_e
    optimizer_step([st.opt_e, st.opt_g], loss_e, e_params + g_params)
    stats.update(x_rec=x_rec.item(), perceptual=perc.item(), indomain_e=indomain_e.item())
    # 5. EMA of G and E
    with torch.no_grad():
        for pe, p in zip(st.ema.parameters(), st.model.parameters()):
            pe.lerp_(p, 1 - o.ema)
        for be, b in zip(st.ema.buffers(), st.model.buffers()):
            be.copy_(b)
    return stats


def train_stylemapgan(cfg: StyleMapTrainConfig, run_dir: str | os.PathLike, resume: bool = False,
                      progress: bool = True, max_steps_this_run: int | None = None) -> StyleMapGAN:
    """Train until ``cfg.optim.steps`` (or ``max_steps_this_run`` more); returns the EMA model. ``run_dir/model``
    is the native `StyleMapGAN` once done; resume, signals and DDP are the shared loop's."""
    return run_training(StyleMapGANTask(cfg, progress), run_dir, resume=resume, progress=progress,
                        max_steps_this_run=max_steps_this_run)
