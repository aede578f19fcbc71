"""StyleGAN2 training (Karras et al. 2020): non-saturating logistic loss, lazy R1, path-length regularisation,
style-mixing regularisation, an EMA generator, and Adam with the lazy-regularisation correction.

Data: synthfaces streamed (every batch freshly rendered, sample ``i`` of step ``s`` is the face of a seed fixed by
(s, i)) or an image folder. Runs on one process, or under ``torchrun`` with gloo (CPU) / nccl (GPU): gradients
are averaged with an explicit all-reduce after each phase, the global batch is split by interleaving samples
across ranks (so each rank's batch is one minibatch-stddev group of the 1-process run), and rank 0 writes the
run folder. A run folder holds the resolved config, ``log.jsonl``, sample grids, TensorBoard scalars (when the
``tensorboard`` package is installed) and the last checkpoints; ``--resume`` continues exactly.

Randomness (latents, mixing crossovers, noise) is drawn for the *global* batch from one generator that every rank
holds in the same state, and each rank keeps its interleaved slice: N processes compute what one process with
the same global batch computes, up to float summation order (augmentation draws too).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from stylebridge.core.device import autocast, pick_device
from stylebridge.core.native import check_state_dict
from stylebridge.data import synthfaces as sf
from stylebridge.models.stylegan2 import (
    StyleGAN2Config,
    StyleGAN2Discriminator,
    StyleGAN2DiscriminatorConfig,
    StyleGAN2Generator,
)
from stylebridge.train.augment import AdaptiveP, augment
from stylebridge.train.config import LogSection, OptimSection, load_config
from stylebridge.train.ddp import allreduce_mean, broadcast_module, world
from stylebridge.train.loop import TrainTask, optimizer_step, run_training

__all__ = ["GanTask", "GanTrainConfig", "load_gan_config", "train_gan"]


@dataclass
class DataConfig:
    source: str = "synthfaces"  # "synthfaces" or a folder of images
    resolution: int = 64
    seed: int = 0  # synthfaces: base seed of the training faces
    workers: int = 0  # DataLoader workers for image folders


@dataclass
class ModelConfig:
    z_dim: int = 256
    w_dim: int = 256
    mapping_layers: int = 8
    channels: tuple[int, ...] | None = None  # per resolution 4..R; default: rosinality table / channel_divisor
    channel_multiplier: int = 2
    channel_divisor: int = 1
    lr_multiplier: float = 0.01
    mbstd_group_size: int = 4
    # Per-pixel noise inputs during training (StyleGAN2). Off for domains whose images hold no stochastic detail
    # (synthfaces is a deterministic function of its attributes): there a generator that cannot yet draw edges
    # turns its last noise strengths up into speckles that fool the discriminator's high-frequency cues. Off, the
    # strengths stay exactly 0, so every noise_mode gives the same image.
    noise: bool = True


@dataclass
class OptimConfig(OptimSection):
    r1_gamma: float = 0.05
    r1_every: int = 16
    pl_weight: float = 2.0
    pl_every: int = 4
    pl_batch_shrink: int = 2
    pl_decay: float = 0.01
    mixing: float = 0.9
    ema_kimg: float = 10.0
    ema_rampup: float = 0.05  # EMA half-life ramps up over the first kimg (fraction of images seen); 0: off


@dataclass
class AugmentConfig:
    kind: str = "none"  # "none", "fixed" (probability p) or "adaptive" (ADA controller)
    p: float = 0.0
    target: float = 0.6
    ada_kimg: float = 100.0
    max_p: float = 1.0  # cap of the adaptive p (colour ops leak into G's outputs near p = 1)


@dataclass
class LogConfig(LogSection):
    grid: int = 16  # samples in the periodic grid
    metric_every: int = 0  # steps between Fréchet distances of G_ema (0: off); also computed at the last step
    metric_n: int = 5000  # images per set (the distance is biased for small n: compare only equal n)
    # Feature space: a domain network (shipped name or native folder) → FD[<name>]; an Inception weights file →
    # FID (pytorch-fid's network) or FD[inception-…]. "auto": synthfaces-domain for synthfaces data, else off.
    metric_features: str = "auto"


@dataclass
class GanTrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    log: LogConfig = field(default_factory=LogConfig)


def load_gan_config(path: str | os.PathLike | None, overrides: list[str] | None = None) -> GanTrainConfig:
    cfg = load_config(GanTrainConfig, path, overrides)
    if cfg.augment.kind not in ("none", "fixed", "adaptive"):
        raise ValueError(f"augment.kind must be none, fixed or adaptive, got {cfg.augment.kind!r}")
    return cfg


# ------------------------------------------------------------------------------------------------------------------
# Data


class _RealStream:
    """Real images for step s: synthfaces rendered from fixed seeds, or batches from an image folder."""

    def __init__(self, cfg: GanTrainConfig, rank: int, world: int) -> None:
        self.cfg, self.rank, self.world = cfg, rank, world
        self.local = cfg.optim.batch // world
        self.loader_iter = None
        if cfg.data.source != "synthfaces":
            from stylebridge.data.folder import ImageFolderDataset

            ds = ImageFolderDataset(cfg.data.source, cfg.data.resolution)
            sampler = torch.utils.data.DistributedSampler(ds, world, rank, shuffle=True, seed=cfg.optim.seed) \
                if world > 1 else torch.utils.data.RandomSampler(ds, replacement=True, num_samples=10**9,
                                                                  generator=torch.Generator().manual_seed(cfg.optim.seed))
            self.loader = torch.utils.data.DataLoader(ds, batch_size=self.local, sampler=sampler, drop_last=True,
                                                      num_workers=cfg.data.workers)

    def batch(self, step: int) -> torch.Tensor:
        if self.cfg.data.source == "synthfaces":
            b = self.cfg.optim.batch
            # Interleaved sharding: global sample i of this step goes to rank i % world.
            seeds = [self.cfg.data.seed + step * b + i for i in range(self.rank, b, self.world)]
            return sf.render(sf.sample_attributes(seeds), self.cfg.data.resolution, ("image",))["image"]
        if self.loader_iter is None:
            self.loader_iter = iter(self.loader)
        try:
            return next(self.loader_iter)
        except StopIteration:
            self.loader_iter = iter(self.loader)
            return next(self.loader_iter)


# ------------------------------------------------------------------------------------------------------------------
# Models and state


def build_models(cfg: GanTrainConfig) -> tuple[StyleGAN2Generator, StyleGAN2Discriminator]:
    m, res = cfg.model, cfg.data.resolution
    chan = dict(channels=m.channels) if m.channels else dict(channel_multiplier=m.channel_multiplier,
                                                             channel_divisor=m.channel_divisor)
    G = StyleGAN2Generator(StyleGAN2Config(resolution=res, z_dim=m.z_dim, w_dim=m.w_dim,
                                           mapping_layers=m.mapping_layers, lr_multiplier=m.lr_multiplier, **chan))
    D = StyleGAN2Discriminator(StyleGAN2DiscriminatorConfig(resolution=res, mbstd_group_size=m.mbstd_group_size,
                                                            **chan))
    return G, D


def _adam(params, lr: float, reg_every: int) -> torch.optim.Adam:
    c = reg_every / (reg_every + 1)  # lazy regularisation: the regulariser runs every reg_every steps
    return torch.optim.Adam(params, lr=lr * c, betas=(0.0, 0.99**c), eps=1e-8)


class GanTask(TrainTask):
    """StyleGAN2 training as a task of the shared loop (`stylebridge.train.loop.run_training`)."""

    name = "gan"

    def __init__(self, cfg: GanTrainConfig, run_path: str | os.PathLike | None = None) -> None:
        self.cfg = cfg
        self.run_path = Path(run_path) if run_path is not None else None  # the metric caches real statistics there

    def setup(self) -> None:
        cfg, o = self.cfg, self.cfg.optim
        dev = pick_device()
        self.G, self.D = (m.to(dev) for m in build_models(cfg))
        self.G_ema = build_models(cfg)[0].to(dev)
        self.G_ema.load_state_dict(self.G.state_dict())
        self.G_ema.requires_grad_(False).eval()
        for m in (self.G, self.D, self.G_ema):
            broadcast_module(m)
        rank, n_proc = world()
        self.gen = torch.Generator().manual_seed(o.seed * 1000 + 17)  # the same on every rank: global draws, sliced
        torch.manual_seed(o.seed * 1000 + 31 + rank)
        self.ada = AdaptiveP(cfg.augment.target, cfg.augment.ada_kimg, p=cfg.augment.p, max_p=cfg.augment.max_p)
        self.opt_g = _adam(self.G.parameters(), o.lr, o.pl_every)
        self.opt_d = _adam(self.D.parameters(), o.lr, o.r1_every)
        self.pl_mean = torch.zeros(())
        self.data = _RealStream(cfg, rank, n_proc)
        self.metric = _metric(cfg) if rank == 0 else None
        self.grid_z = torch.randn(cfg.log.grid, self.G.z_dim, generator=torch.Generator().manual_seed(123))
        self.last_step = 0

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt_g": self.opt_g, "opt_d": self.opt_d}

    def state_dict(self) -> dict[str, Any]:
        return {"G": self.G.state_dict(), "D": self.D.state_dict(), "G_ema": self.G_ema.state_dict(),
                "pl_mean": self.pl_mean, "ada": self.ada.state_dict(), "rng": self.gen.get_state()}

    def load_state_dict(self, ck: dict[str, Any]) -> None:
        for key, m in (("G", self.G), ("D", self.D), ("G_ema", self.G_ema)):
            check_state_dict(m, ck[key], f"checkpoint {key}")
        self.pl_mean = ck["pl_mean"]
        self.ada.load_state_dict(ck["ada"])
        self.gen.set_state(ck["rng"].cpu())

    def train_step(self, step: int) -> dict[str, float]:
        self.last_step = step + 1
        stats = _train_step(self, self.cfg, self.data.batch(step).to(self.G.w_avg.device), step)
        return {"kimg": (step + 1) * self.cfg.optim.batch / 1000, "ada_p": self.ada.p, "pl_mean": float(self.pl_mean),
                **stats}

    def postfix(self, stats: dict[str, float]) -> dict[str, str]:
        return {"kimg": f"{self.last_step * self.cfg.optim.batch / 1000:.1f}", "d": f"{stats['loss_d']:.2f}",
                "g": f"{stats['loss_g']:.2f}"}

    def grid(self) -> tuple[torch.Tensor, int] | None:
        with torch.no_grad():
            return self.G_ema(self.grid_z.to(self.G.w_avg.device), noise_mode="const").cpu(), 0

    def log_extra(self, step: int) -> tuple[dict[str, Any], str] | None:
        lg, o = self.cfg.log, self.cfg.optim
        if self.metric is None or not (step % lg.metric_every == 0 or step == o.steps):
            return None
        res = self.metric(self.G_ema, self.run_path)
        return {"kimg": step * o.batch / 1000, "metric": res.metric, "value": res.value, "n": res.n}, "metrics"

    def check_modules(self) -> list[torch.nn.Module]:
        return [self.G, self.D]

    def export(self, run: Path, metadata: dict[str, Any]) -> None:
        self.G_ema.compute_w_avg()
        self.G_ema.save_pretrained(run / "G_ema", metadata={
            "steps": metadata["steps"], "kimg": metadata["steps"] * self.cfg.optim.batch / 1000,
            "train_seconds": metadata["train_seconds"]})

    def result(self) -> StyleGAN2Generator:
        return self.G_ema


# ------------------------------------------------------------------------------------------------------------------
# Losses (one step)


def _latents(G: StyleGAN2Generator, n_global: int, mixing: float, gen: torch.Generator) -> torch.Tensor:
    """This rank's slice of W+ [n_global, num_ws, w_dim] with style mixing at a random crossover for a fraction
    ``mixing`` of samples. Random numbers come from the CPU generator ``gen`` (reproducible on any device)."""
    rank, n_proc = world()
    dev = G.w_avg.device
    z = torch.randn(2, n_global, G.z_dim, generator=gen)[:, rank::n_proc].to(dev)
    n = z.shape[1]
    w = G.map(z.flatten(0, 1)).view(2, n, -1)
    cut = torch.randint(1, G.num_ws, (n_global,), generator=gen)[rank::n_proc]
    keep = torch.rand(n_global, generator=gen)[rank::n_proc] < mixing
    cut = torch.where(keep, cut, torch.full_like(cut, G.num_ws)).to(dev)
    rows = torch.arange(G.num_ws, device=dev)[None, :, None]
    return torch.where(rows < cut[:, None, None], w[0][:, None], w[1][:, None])


def _track_w_avg(G: StyleGAN2Generator, w: torch.Tensor, beta: float = 0.995) -> None:
    """Move ``G.w_avg`` towards the mean of this step's w (all ranks), as NVlabs' mapping does in training, so
    that mid-run checkpoints truncate towards the right centre (G_ema copies the buffer)."""
    with torch.no_grad():
        G.w_avg.copy_(allreduce_mean(w[:, 0].detach().float().mean(0)).lerp(G.w_avg, beta))


def _synthesize(G: StyleGAN2Generator, w: torch.Tensor, n_global: int, gen: torch.Generator,
                cfg: GanTrainConfig) -> torch.Tensor:
    """Images for this rank's W+ slice ``w``, with this rank's slice of per-layer noise for a global batch of
    n_global (or no noise when ``model.noise`` is off)."""
    if not cfg.model.noise:
        return G.synthesize(w, noise_mode="none")
    rank, n_proc = world()
    noise = [t[rank::n_proc].to(G.w_avg.device) for t in G.make_noise(n_global, generator=gen)]
    return G.synthesize(w, noise=noise)


def _d_input(x: torch.Tensor, st: GanTask, cfg: GanTrainConfig) -> torch.Tensor:
    p = cfg.augment.p if cfg.augment.kind == "fixed" else st.ada.p if cfg.augment.kind == "adaptive" else 0.0
    return augment(x, p, st.gen, rows=world()) if p > 0 else x


def _train_step(st: GanTask, cfg: GanTrainConfig, real: torch.Tensor, step: int) -> dict[str, float]:
    """One iteration in NVlabs' phases: Dmain, Dreg (every r1_every), Gmain, Greg (every pl_every).

    Each phase takes its own optimizer step, as in the official code: that is what the lazy-regularisation
    correction of Adam's lr and betas (``_adam``) assumes (reg_every + 1 steps per reg_every iterations).
    """
    o = cfg.optim
    n, nb = real.shape[0], o.batch  # local and global batch
    stats: dict[str, float] = {}
    G, D = st.G, st.D
    d_params, g_params = list(D.parameters()), list(G.parameters())

    # -- Dmain: logistic loss on fakes and reals --------------------------------------------------------------------
    G.requires_grad_(False)
    D.requires_grad_(True)
    with torch.no_grad(), autocast(st.G.w_avg.device, cfg.optim.precision):
        fake = _synthesize(G, _latents(G, nb, o.mixing, st.gen), nb, st.gen, cfg)
    with autocast(st.G.w_avg.device, cfg.optim.precision):
        fake_logits = D(_d_input(fake, st, cfg)).float()
        real_logits = D(_d_input(real, st, cfg)).float()
    loss_d = F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()
    optimizer_step(st.opt_d, loss_d, d_params)
    if cfg.augment.kind == "adaptive":
        # The all-ranks mean of sign(D(real)): r_t of ADA, as a fraction (not its sign again).
        st.ada.update(allreduce_mean(real_logits.detach().sign().mean()).expand(n), o.batch)
    stats.update(loss_d=loss_d.item(), d_real=real_logits.mean().item(), d_fake=fake_logits.mean().item())

    # -- Dreg: lazy R1 on reals, scaled by the interval -------------------------------------------------------------
    if o.r1_gamma > 0 and step % o.r1_every == 0:
        real_in = real.detach().requires_grad_(True)
        with autocast(st.G.w_avg.device, cfg.optim.precision):
            logits = D(_d_input(real_in, st, cfg)).float()
        (grad,) = torch.autograd.grad(logits.sum(), real_in, create_graph=True)
        r1 = grad.square().sum(dim=(1, 2, 3)).mean()
        optimizer_step(st.opt_d, r1 * (o.r1_gamma / 2 * o.r1_every), d_params)
        stats["r1"] = r1.item()

    # -- Gmain: non-saturating loss ---------------------------------------------------------------------------------
    G.requires_grad_(True)
    D.requires_grad_(False)
    with autocast(st.G.w_avg.device, cfg.optim.precision):
        w = _latents(G, nb, o.mixing, st.gen)
        _track_w_avg(G, w)
        fake = _synthesize(G, w, nb, st.gen, cfg)
        loss_g = F.softplus(-D(_d_input(fake, st, cfg)).float()).mean()
    optimizer_step(st.opt_g, loss_g, g_params)
    stats["loss_g"] = loss_g.item()

    # -- Greg: lazy path-length regularisation on a smaller batch ---------------------------------------------------
    if o.pl_weight > 0 and step % o.pl_every == 0:
        m = max(world()[1], nb // o.pl_batch_shrink)
        w = _latents(G, m, o.mixing, st.gen)
        with autocast(st.G.w_avg.device, cfg.optim.precision):
            img = _synthesize(G, w, m, st.gen, cfg).float()
        rank, n_proc = world()
        noise = torch.randn((m, *img.shape[1:]), generator=st.gen)[rank::n_proc].to(img.device)
        noise = noise / math.sqrt(img.shape[2] * img.shape[3])
        (grad,) = torch.autograd.grad((img * noise).sum(), w, create_graph=True)
        lengths = grad.float().square().sum(2).mean(1).sqrt()
        pl_mean = st.pl_mean + o.pl_decay * (allreduce_mean(lengths.mean().detach()) - st.pl_mean)
        st.pl_mean = pl_mean.detach()
        penalty = (lengths - pl_mean).square().mean()
        optimizer_step(st.opt_g, penalty * (o.pl_weight * o.pl_every), g_params)
        stats["pl"] = penalty.item()

    # -- EMA generator ----------------------------------------------------------------------------------------------
    ema_nimg = o.ema_kimg * 1000
    if o.ema_rampup > 0:
        ema_nimg = min(ema_nimg, (step + 1) * o.batch * o.ema_rampup)
    beta = 0.5 ** (o.batch / max(ema_nimg, 1e-8))
    with torch.no_grad():
        for pe, p in zip(st.G_ema.parameters(), G.parameters()):
            pe.lerp_(p, 1 - beta)
        for be, b in zip(st.G_ema.buffers(), G.buffers()):
            be.copy_(b)
    return stats


# ------------------------------------------------------------------------------------------------------------------
# Run folder


def train_gan(cfg: GanTrainConfig, run_dir: str | os.PathLike, resume: bool = False, progress: bool = True,
              max_steps_this_run: int | None = None) -> StyleGAN2Generator:
    """Train until ``cfg.optim.steps`` (or ``max_steps_this_run`` more steps); returns G_ema.

    The run folder and its conventions are the shared loop's (`stylebridge.train.loop.run_training`): with
    ``resume`` the newest checkpoint in ``run_dir`` is loaded and training continues exactly; SIGINT and SIGTERM
    finish the current step, write a checkpoint and raise `TrainingInterrupted`; at the end ``run_dir/G_ema`` is
    the native EMA generator.
    """
    return run_training(GanTask(cfg, run_dir), run_dir, resume=resume, progress=progress,
                        max_steps_this_run=max_steps_this_run)


def _metric(cfg: GanTrainConfig):
    """The periodic quality metric as a callable (G_ema, run folder) → FrechetResult, or None when off."""
    spec = cfg.log.metric_features
    if cfg.log.metric_every <= 0 or spec in ("none", ""):
        return None
    if spec == "auto":
        if cfg.data.source != "synthfaces":
            return None  # no domain network for a user's folder: set log.metric_features to an Inception file
        spec = "synthfaces-domain"
    from stylebridge.metrics.frechet import fd_of_generator, feature_extractor

    extractor = feature_extractor(spec).to(pick_device())
    real = cfg.data.source

    def compute(G: StyleGAN2Generator, run: Path | None):
        was_training = G.training
        G.eval()
        try:  # a fixed seed: the same z and noise every time, and the training RNGs are not touched
            return fd_of_generator(G, extractor, real, cfg.log.metric_n, seed=0,
                                   cache_dir=run / "metrics" if run else None, progress=False)
        finally:
            G.train(was_training)

    return compute
