"""pix2pixHD training (Wang et al. 2018, NVIDIA/pix2pixHD ``train.py``) as a task of the shared loop: the
feed-forward translator of StyleGAN2 distillation, trained on the pairs ``stylebridge distill pairs`` writes or on
any paired folder.

One step, in the official order (``Pix2PixHDModel.forward`` + ``train.py``):

1. fake = G(input);
2. **G**: LSGAN loss MSE(D_i(input, fake)[-1], 1) summed over the discriminator's scales, + feature matching
   ``feat`` (λ 10) · Σ_i Σ_j (4 / (n_layers + 1)) · (1 / num_D) · L1(D_i,j(input, fake), D_i,j(input, target))
   over every layer but the last, + the perceptual term ``perceptual`` (λ 10): pix2pixHD's VGG-19 feature loss
   when ``loss.vgg19`` names a torchvision ``vgg19`` weights file, else the domain network's perceptual distance
   (``synthfaces-domain``: named in the run's first log record and the model's metadata); optionally (``l1`` > 0,
   not in pix2pixHD) pix2pix's L1 to the target;
3. **D**: ½ (MSE(D(input, fake.detach())[-1], 0) + MSE(D(input, target)[-1], 1)) with D as it was before the
   G step (the official code computes both losses in one forward).

D judges ``cat([input, image])`` (the condition first). Adam (``lr`` 2e-4, betas (0.5, 0.999)) for G and D; the
learning rate of both decays linearly to 0 over the last ``niter_decay`` steps (the official per-epoch decay, per
step). No image pool (the official default ``pool_size`` 0), no instance maps, no feature encoder (the
distillation setting: ``--label_nc 0 --no_instance``).

Data: `stylebridge.data.paired.ImagePairs` — a pairs folder (``source/``, ``target/``, optional ``source2/`` for a
6-channel two-image input) or explicit folders; item p of step s is position s·batch + p, so resume and DDP
(interleaved slices of the global batch, gradients all-reduced per phase) see the same pairs as one process.
``run/model`` is the native `Pix2PixHDGenerator`; ``stylebridge translate --model RUN/model`` runs it.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from stylebridge.core.device import autocast, pick_device
from stylebridge.core.native import check_state_dict
from stylebridge.data.paired import ImagePairs
from stylebridge.losses import perceptual_distance
from stylebridge.losses.perceptual import VGG19FeatureLoss
from stylebridge.models.pix2pixhd import (
    Pix2PixHDDiscriminator,
    Pix2PixHDDiscriminatorConfig,
    Pix2PixHDGenerator,
    Pix2PixHDGeneratorConfig,
)
from stylebridge.train.config import ConfigError, LogSection, OptimSection, load_config
from stylebridge.train.ddp import broadcast_module, world
from stylebridge.train.loop import TrainTask, optimizer_step, run_training

__all__ = ["Pix2PixHDTask", "Pix2PixHDTrainConfig", "build_pix2pixhd", "feature_matching_loss",
           "load_pix2pixhd_config", "lsgan_loss", "train_pix2pixhd"]


@dataclass
class DataConfig:
    pairs: str = ""  # a pairs folder (source/, target/, optional source2/), as `stylebridge distill pairs` writes
    source: str = ""  # or explicit folders (used when ``pairs`` is empty): inputs,
    target: str = ""  # targets (same relative names),
    source2: str = ""  # and optional second inputs (6-channel input: source and source2 concatenated)
    resolution: int = 64  # images are centre-cropped and resized to this side
    seed: int = 0  # per-epoch file order


@dataclass
class ModelConfig:
    ngf: int = 64
    n_downsample_global: int = 4
    n_blocks_global: int = 9
    n_local_enhancers: int = 0
    n_blocks_local: int = 3
    ndf: int = 64
    n_layers_d: int = 3
    num_d: int = 2
    residual: bool = False  # G predicts a change to its input (`Pix2PixHDGeneratorConfig.residual`; edits only)


@dataclass
class LossConfig:
    gan: float = 1.0  # LSGAN weight of G's adversarial term
    feat: float = 10.0  # discriminator feature matching (official lambda_feat)
    perceptual: float = 10.0  # VGG-19 / domain-network perceptual term (official lambda_feat on VGGLoss)
    vgg19: str = ""  # a torchvision vgg19 weights file: the official VGG loss; empty: ``perceptual_net`` instead
    perceptual_net: str = "synthfaces-domain"  # the perceptual distance without VGG-19 weights (a model or LPIPS)
    # pix2pix's L1 to the target (Isola et al. 2017: λ 100), absent from pix2pixHD (0: the official losses). On small
    # pair sets it keeps the output on the input's colours and stops the adversarial speckle D otherwise rewards.
    l1: float = 0.0


@dataclass
class OptimConfig(OptimSection):
    batch: int = 8
    steps: int = 10_000
    lr: float = 0.0002
    beta1: float = 0.5
    beta2: float = 0.999
    # lr decays linearly to 0 over the last niter_decay steps (lr · min(1, (steps − step) / niter_decay); more than
    # ``steps`` starts the run part-way down the line); -1: the last half (official niter = niter_decay = 100
    # epochs); 0: constant
    niter_decay: int = -1


@dataclass
class LogConfig(LogSection):
    grid: int = 8  # first pairs of the folder, one per row: input(s) | output | target


@dataclass
class Pix2PixHDTrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    log: LogConfig = field(default_factory=LogConfig)


def load_pix2pixhd_config(path: str | os.PathLike | None, overrides: list[str] | None = None) -> Pix2PixHDTrainConfig:
    cfg = load_config(Pix2PixHDTrainConfig, path, overrides)
    d, o = cfg.data, cfg.optim
    if not d.pairs and not (d.source and d.target):
        raise ConfigError(f"{path or 'config'}: give data.pairs (a pairs folder) or data.source and data.target")
    if d.pairs and (d.source or d.target or d.source2):
        raise ConfigError(f"{path or 'config'}: give data.pairs or data.source/target/source2, not both")
    if o.niter_decay < -1:
        raise ConfigError(f"{path or 'config'}: optim.niter_decay must be -1 (half the steps) or >= 0, got "
                          f"{o.niter_decay}")
    m = cfg.model
    multiple = 2 ** (m.n_downsample_global + m.n_local_enhancers)
    if d.resolution % multiple:
        raise ConfigError(f"{path or 'config'}: data.resolution {d.resolution} must be a multiple of "
                          f"2**(n_downsample_global + n_local_enhancers) = {multiple}")
    return cfg


def open_pairs(cfg: Pix2PixHDTrainConfig) -> ImagePairs:
    d = cfg.data
    if d.pairs:
        return ImagePairs.from_folder(d.pairs, d.resolution, d.seed)
    return ImagePairs(d.source, d.target, d.source2 or None, d.resolution, d.seed)


def build_pix2pixhd(cfg: Pix2PixHDTrainConfig, in_channels: int) -> tuple[Pix2PixHDGenerator, Pix2PixHDDiscriminator]:
    """A new generator for ``in_channels`` inputs and its multiscale discriminator (on input + image channels)."""
    m = cfg.model
    G = Pix2PixHDGenerator(Pix2PixHDGeneratorConfig(
        in_channels=in_channels, out_channels=3, ngf=m.ngf, n_downsample_global=m.n_downsample_global,
        n_blocks_global=m.n_blocks_global, n_local_enhancers=m.n_local_enhancers, n_blocks_local=m.n_blocks_local,
        resolution=cfg.data.resolution, residual=m.residual))
    D = Pix2PixHDDiscriminator(Pix2PixHDDiscriminatorConfig(in_channels=in_channels + 3, ndf=m.ndf,
                                                            n_layers=m.n_layers_d, num_scales=m.num_d))
    return G, D


def lsgan_loss(pred: list[list[torch.Tensor]], real: bool) -> torch.Tensor:
    """pix2pixHD's GANLoss with LSGAN: Σ over scales of MSE(last output, 1 or 0)."""
    target = 1.0 if real else 0.0
    return sum((F.mse_loss(scale[-1].float(), torch.full_like(scale[-1].float(), target)) for scale in pred),
               torch.zeros((), device=pred[0][-1].device))


def feature_matching_loss(fake: list[list[torch.Tensor]], real: list[list[torch.Tensor]]) -> torch.Tensor:
    """pix2pixHD's GAN feature loss (without λ): Σ_i Σ_j (4 / (n_layers + 1)) (1 / num_D) L1(fake_ij, real_ij)
    over every layer but each scale's last (n_layers + 1 = len(scale) - 1); ``real`` is detached."""
    num_d = len(fake)
    total = torch.zeros((), device=fake[0][-1].device)
    for f_scale, r_scale in zip(fake, real, strict=True):
        w = 4.0 / (len(f_scale) - 1) / num_d
        for f, r in zip(f_scale[:-1], r_scale[:-1], strict=True):
            total = total + w * F.l1_loss(f.float(), r.detach().float())
    return total


class Pix2PixHDTask(TrainTask):
    """pix2pixHD training (see the module docstring)."""

    name = "pix2pixhd"

    def __init__(self, cfg: Pix2PixHDTrainConfig, progress: bool = True) -> None:
        self.cfg, self.progress = cfg, progress

    def setup(self) -> None:
        cfg, o, L = self.cfg, self.cfg.optim, self.cfg.loss
        dev = pick_device()
        self.data = open_pairs(cfg)
        torch.manual_seed(o.seed)
        self.G, self.D = build_pix2pixhd(cfg, self.data.input_channels)
        self.G.to(dev).train()
        self.D.to(dev).train()
        for m in (self.G, self.D):
            broadcast_module(m)
        betas = (o.beta1, o.beta2)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=o.lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=o.lr, betas=betas)
        self.perceptual: torch.nn.Module | None = None
        if L.perceptual > 0:
            self.perceptual = (VGG19FeatureLoss.from_file(L.vgg19) if L.vgg19
                               else perceptual_distance(L.perceptual_net)).to(dev)
        n = min(cfg.log.grid, len(self.data))
        self.grid_pairs = [self.data.load(i) for i in range(n)] if world()[0] == 0 else []

    @property
    def perceptual_name(self) -> str:
        return getattr(self.perceptual, "name", "none")

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt_g": self.opt_g, "opt_d": self.opt_d}

    def state_dict(self) -> dict[str, Any]:
        return {"G": self.G.state_dict(), "D": self.D.state_dict()}

    def load_state_dict(self, ck: dict[str, Any]) -> None:
        for key, m in (("G", self.G), ("D", self.D)):
            if key not in ck:
                raise ValueError(f"the checkpoint has no {key!r} (another trainer's run?)")
            check_state_dict(m, ck[key], f"checkpoint {key}")

    def lr_at(self, step: int) -> float:
        """The learning rate of step ``step`` (0-based): ``lr``, then linearly to 0 over the last niter_decay."""
        o = self.cfg.optim
        decay = o.steps // 2 if o.niter_decay < 0 else o.niter_decay
        if decay == 0:
            return o.lr
        return o.lr * min(1.0, (o.steps - step) / decay)

    def train_step(self, step: int) -> dict[str, float]:
        rank, n_proc = world()
        b = self.cfg.optim.batch
        inp, target = self.data.batch(range(step * b + rank, (step + 1) * b, n_proc))
        dev = next(self.G.parameters()).device
        lr = self.lr_at(step)
        for opt in (self.opt_g, self.opt_d):
            for group in opt.param_groups:
                group["lr"] = lr
        stats = _train_step(self, inp.to(dev), target.to(dev))
        stats["lr"] = lr
        return stats

    def postfix(self, stats: dict[str, float]) -> dict[str, str]:
        return {"d": f"{stats['loss_d']:.3f}", "g": f"{stats['loss_g']:.3f}"}

    def start_record(self) -> dict[str, Any]:
        if self.progress and world()[0] == 0:
            print(f"perceptual loss: {self.perceptual_name}", flush=True)
        return {"perceptual_network": self.perceptual_name, "pairs": len(self.data),
                "input_channels": self.data.input_channels}

    def grid(self) -> tuple[torch.Tensor, int] | None:
        if not self.grid_pairs:
            return None
        dev = next(self.G.parameters()).device
        inp = torch.stack([x for x, _ in self.grid_pairs])
        target = torch.stack([t for _, t in self.grid_pairs])
        self.G.eval()
        with torch.no_grad():
            out = self.G(inp.to(dev)).float().cpu()
        self.G.train()
        columns = [*inp.split(3, dim=1), out, target]  # input (A[, B]) | output | target
        rows = torch.stack(columns, dim=1).flatten(0, 1)
        return rows.clamp(-1, 1), len(columns)

    def check_modules(self) -> list[torch.nn.Module]:
        return [self.G, self.D]

    def export(self, run: Path, metadata: dict[str, Any]) -> None:
        d = self.cfg.data
        self.G.eval()
        meta = {"steps": metadata["steps"], "batch": self.cfg.optim.batch, "train_seconds": metadata["train_seconds"],
                "data": d.pairs or d.source, "pairs": len(self.data), "resolution": d.resolution,
                "perceptual_network": self.perceptual_name}
        distilled = _distillation_info(Path(d.pairs)) if d.pairs else None
        if distilled:
            meta["distillation"] = {**distilled, "pairs": len(self.data)}
        self.G.save_pretrained(run / "model", metadata=meta)
        if d.pairs and (Path(d.pairs) / "direction").is_dir():
            # the direction the pairs were rendered with travels with the model: the distillation evaluation
            # compares the model with encode → edit → decode along exactly this direction
            _copy_folder(Path(d.pairs) / "direction", run / "model" / "direction")

    def result(self) -> Pix2PixHDGenerator:
        return self.G


def _distillation_info(pairs: Path) -> dict[str, Any] | None:
    """What a `stylebridge distill pairs` folder was rendered with (its report's settings), for the model's
    metadata; None for any other paired folder."""
    try:
        settings = json.loads((pairs / "report.json").read_text())["settings"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    keys = ("mode", "generator", "direction", "attribute", "coeff", "layers", "both_directions", "crossover",
            "min_confidence", "seed", "count")
    return {k: settings[k] for k in keys if k in settings}


def _copy_folder(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst``, replacing it whole (written beside it, then renamed)."""
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    shutil.rmtree(dst, ignore_errors=True)
    os.replace(tmp, dst)


def _train_step(st: Pix2PixHDTask, inp: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    L, prec = st.cfg.loss, st.cfg.optim.precision
    G, D = st.G, st.D
    dev = inp.device
    g_params, d_params = list(G.parameters()), list(D.parameters())
    # D's view of the real pair, with D's pre-step weights: the D loss now, the feature-matching targets for G
    D.requires_grad_(True)
    with autocast(dev, prec):
        pred_real = D(torch.cat([inp, target], 1))
    # G: LSGAN + feature matching + perceptual (D frozen: no gradients into D from G's loss)
    D.requires_grad_(False)
    with autocast(dev, prec):
        fake = G(inp)
        pred_fake = D(torch.cat([inp, fake], 1))
        gan = lsgan_loss(pred_fake, True)
        feat = feature_matching_loss(pred_fake, pred_real) if L.feat > 0 else gan.new_zeros(())
        if st.perceptual is None:
            perc = gan.new_zeros(())
        elif isinstance(st.perceptual, VGG19FeatureLoss):
            perc = st.perceptual(fake, target).float()
        else:
            perc = st.perceptual(fake, target).float().mean()
        l1 = (fake.float() - target).abs().mean() if L.l1 > 0 else gan.new_zeros(())
    loss_g = L.gan * gan + L.feat * feat + L.perceptual * perc + L.l1 * l1
    optimizer_step(st.opt_g, loss_g, g_params)
    # D: ½ (fake → 0, real → 1)
    D.requires_grad_(True)
    with autocast(dev, prec):
        pred_fake_d = D(torch.cat([inp, fake.detach()], 1))
        d_fake, d_real = lsgan_loss(pred_fake_d, False), lsgan_loss(pred_real, True)
    loss_d = 0.5 * (d_fake + d_real)
    optimizer_step(st.opt_d, loss_d, d_params)
    return {"loss_g": loss_g.item(), "gan": gan.item(), "feat": feat.item(), "perceptual": perc.item(),
            "l1": l1.item(), "loss_d": loss_d.item(), "d_real": d_real.item(), "d_fake": d_fake.item()}


def train_pix2pixhd(cfg: Pix2PixHDTrainConfig, run_dir: str | os.PathLike, resume: bool = False,
                    progress: bool = True, max_steps_this_run: int | None = None) -> Pix2PixHDGenerator:
    """Train until ``cfg.optim.steps`` (or ``max_steps_this_run`` more); returns the generator. ``run_dir/model``
    is the native `Pix2PixHDGenerator` once done; resume, signals and DDP are the shared loop's."""
    return run_training(Pix2PixHDTask(cfg, progress), run_dir, resume=resume, progress=progress,
                        max_steps_this_run=max_steps_this_run)
