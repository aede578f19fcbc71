"""Train the domain network on synthfaces attributes (streamed: every batch is freshly rendered).

Losses: binary cross-entropy for continuous attributes (targets in [0, 1]), cross-entropy for categories, and a
supervised-contrastive term that pulls the embeddings of the same face under different augmentations together
(so `similarity` measures identity, not pose or lighting). A task of the shared training loop
(`stylebridge.train.loop`): run folder, exact resume, signals and torchrun DDP (every random draw is made for the
global batch and sliced per rank; the contrastive term sees the whole global batch through a differentiable
all-gather), so N processes compute what one process computes, up to float summation order.
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
from stylebridge.core.seeds import HELD_OUT_SEED
from stylebridge.data import synthfaces as sf
from stylebridge.models.domain import DomainNetConfig, DomainNetwork
from stylebridge.train.config import LogSection, OptimSection, load_config
from stylebridge.train.ddp import broadcast_module, gather_with_grad, rank_slice
from stylebridge.train.loop import TrainTask, optimizer_step, run_training

__all__ = [
    "DomainTask",
    "DomainTrainConfig",
    "evaluate_domain_network",
    "load_domain_config",
    "synthfaces_heads",
    "train_domain_network",
]


@dataclass
class DataSection:
    resolution: int = 64


@dataclass
class ModelSection:
    widths: tuple[int, ...] = (32, 64, 128, 192)  # DomainNetConfig.widths
    embed_dim: int = 128
    head_spatial: int = 0  # DomainNetConfig.head_spatial
    regions: tuple[tuple[float, ...], ...] = ()  # DomainNetConfig.regions: (top, bottom, left, right) fractions
    region_widths: tuple[int, ...] = (32, 32, 64, 64)
    region_pool: int = 3
    region_upsample: int = 2
    init_from: str | None = None  # a model folder whose trunk and embedding start this run (heads are new)
    # Train only the region networks and the heads: the trunk and embedding stay exactly as init_from has them,
    # so features, distances and similarities (and every Fréchet distance measured with them) do not change.
    freeze_trunk: bool = False


@dataclass
class LossSection:
    contrastive_weight: float = 0.2
    blur_prob: float = 0.3  # probability of the 3x3 blur augmentation
    # Largest random shift (pixels, each axis) of the augmentation. Shifts make the embedding ignore position, but
    # they hide the cues of small parts whose *position* encodes the attribute (the mouth line rises ~1 px with a
    # smile): a region-head run on a frozen trunk uses 0 (faces from a generator are aligned as the renders are).
    shift_px: int = 2
    # "name:weight" entries: heads whose loss counts more (default 1 each; the loss is the weighted mean). Small
    # features (mouth-corner height, brow slope) are learnt late, if at all, when every head weighs the same.
    head_weights: tuple[str, ...] = ()


@dataclass
class DomainOptimSection(OptimSection):
    steps: int = 3000
    batch: int = 64
    lr: float = 2e-3  # AdamW, cosine decay over the whole run
    weight_decay: float = 1e-4


@dataclass
class DomainLogSection(LogSection):
    every: int = 25
    checkpoint_every: int = 250
    sample_every: int = 250
    grid: int = 0  # no sample grid: this network makes no images


@dataclass
class DomainTrainConfig:
    data: DataSection = field(default_factory=DataSection)
    model: ModelSection = field(default_factory=ModelSection)
    loss: LossSection = field(default_factory=LossSection)
    optim: DomainOptimSection = field(default_factory=DomainOptimSection)
    log: DomainLogSection = field(default_factory=DomainLogSection)


def load_domain_config(path: str | os.PathLike | None, overrides: list[str] | None = None) -> DomainTrainConfig:
    """The config tree from a YAML file (or the defaults) and ``section.key=value`` overrides."""
    return load_config(DomainTrainConfig, path, overrides)


def synthfaces_heads() -> tuple[tuple[str, int], ...]:
    return tuple((a.name, len(a.choices) if a.is_categorical else 1) for a in sf.ATTRIBUTES)


def _augment(images: torch.Tensor, gen: torch.Generator, blur_prob: float, n_global: int,
             shift_px: int = 2) -> torch.Tensor:
    """Mild photometric/geometric jitter so features do not depend on exact pixel values: a brightness/contrast
    change, small shifts, a little blur or noise (what a generator's outputs differ by). images: this rank's slice
    [n_local, 3, H, W] of a global batch of ``n_global``; every random number is drawn for the global batch."""
    dev = images.device
    scale = 1 + 0.2 * (rank_slice(torch.rand(n_global, 1, 1, 1, generator=gen), dev) - 0.5)
    shift = 0.2 * (rank_slice(torch.rand(n_global, 1, 1, 1, generator=gen), dev) - 0.5)
    x = images * scale + shift
    dx, dy = (torch.randint(-shift_px, shift_px + 1, (2,), generator=gen)).tolist()
    x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
    if float(torch.rand(1, generator=gen)) < blur_prob:
        x = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, 1)
    noise = rank_slice(torch.randn((n_global, *x.shape[1:]), generator=gen), dev)
    on = rank_slice(torch.rand(n_global, 1, 1, 1, generator=gen) < 0.5, dev)
    x = x + 0.03 * noise * on
    return x.clamp(-1, 1)


def _targets(attrs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {a.name: attrs[a.name] for a in sf.ATTRIBUTES}


def parse_head_weights(entries: tuple[str, ...], heads: tuple[tuple[str, int], ...]) -> dict[str, float]:
    """("smile:5", ...) → {head: weight} for every head (1 unless given); a one-line ConfigError otherwise."""
    from stylebridge.train.config import ConfigError

    weights = {name: 1.0 for name, _ in heads}
    for entry in entries:
        name, _, value = str(entry).partition(":")
        try:
            weight = float(value)
        except ValueError:
            raise ConfigError(f"loss.head_weights: expected 'name:weight', got {entry!r}") from None
        if name not in weights or not weight >= 0:
            raise ConfigError(f"loss.head_weights: {entry!r}: unknown head or negative weight "
                              f"(heads: {', '.join(weights)})")
        weights[name] = weight
    return weights


def _loss(net: DomainNetwork, logits: torch.Tensor, attrs: dict[str, torch.Tensor],
          weights: dict[str, float] | None = None) -> torch.Tensor:
    pos, total, norm = 0, logits.new_zeros(()), 0.0
    for name, k in net.config.heads:
        chunk = logits[:, pos : pos + k]
        wgt = 1.0 if weights is None else weights[name]
        if k == 1:
            total = total + wgt * F.binary_cross_entropy_with_logits(chunk[:, 0], attrs[name].float())
        else:
            total = total + wgt * F.cross_entropy(chunk, attrs[name].long())
        norm += wgt
        pos += k
    return total / norm


def _contrastive(e1: torch.Tensor, e2: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """InfoNCE between two views of the same faces (row i of e1 matches row i of e2)."""
    logits = e1 @ e2.t() / temperature
    labels = torch.arange(e1.shape[0], device=e1.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))


class DomainTask(TrainTask):
    """Domain-network training as a task of the shared loop (`stylebridge.train.loop.run_training`)."""

    name = "domain"

    def __init__(self, cfg: DomainTrainConfig) -> None:
        self.cfg = cfg

    def setup(self) -> None:
        cfg, o = self.cfg, self.cfg.optim
        m = cfg.model
        net = DomainNetwork(DomainNetConfig(resolution=cfg.data.resolution, widths=m.widths, embed_dim=m.embed_dim,
                                            head_spatial=m.head_spatial, regions=m.regions,
                                            region_widths=m.region_widths, region_pool=m.region_pool,
                                            region_upsample=m.region_upsample, heads=synthfaces_heads()))
        if m.freeze_trunk and not m.init_from:
            raise ValueError("model.freeze_trunk needs model.init_from (the trunk to keep)")
        if m.init_from:
            # Everything but the heads comes from the earlier model; the heads keep their fresh initialisation.
            start = DomainNetwork.from_pretrained(m.init_from).state_dict()
            own = net.state_dict()
            trunk = [k for k in own if not k.startswith(("head.", "regions."))]
            bad = [k for k in trunk if k not in start or start[k].shape != own[k].shape]
            if bad:
                raise ValueError(f"model.init_from {m.init_from}: its trunk does not fit this config ({bad[:5]})")
            net.load_state_dict({**own, **{k: start[k] for k in trunk}}, strict=True)
        if m.freeze_trunk:
            for name, p in net.named_parameters():
                p.requires_grad_(name.startswith(("head.", "regions.")))
        self.net = net.to(pick_device()).train()
        broadcast_module(self.net)
        self.params = [p for p in self.net.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=o.lr, weight_decay=o.weight_decay)
        self.gen = torch.Generator().manual_seed(o.seed)  # the same on every rank: global draws, sliced
        self.head_weights = parse_head_weights(cfg.loss.head_weights, net.config.heads)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"optim": self.opt}

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.net.state_dict(), "rng": self.gen.get_state()}

    def load_state_dict(self, ck: dict[str, Any]) -> None:
        check_state_dict(self.net, ck["model"], "checkpoint model")
        self.gen.set_state(ck["rng"].cpu())

    def lr_at(self, step: int) -> float:
        """Cosine decay over the whole run, so a resumed run follows the same schedule."""
        o = self.cfg.optim
        return o.lr * 0.5 * (1 + math.cos(math.pi * min(step, o.steps) / o.steps))

    def train_step(self, step: int) -> dict[str, float]:
        cfg, o = self.cfg, self.cfg.optim
        dev = next(self.net.parameters()).device
        seeds = rank_slice(torch.randint(0, HELD_OUT_SEED, (o.batch,), generator=self.gen)).tolist()
        attrs = sf.sample_attributes(seeds)
        images = sf.render(attrs, cfg.data.resolution, outputs=("image",))["image"].to(dev)
        v1 = _augment(images, self.gen, cfg.loss.blur_prob, o.batch, cfg.loss.shift_px)
        v2 = _augment(images, self.gen, cfg.loss.blur_prob, o.batch, cfg.loss.shift_px)
        for group in self.opt.param_groups:
            group["lr"] = self.lr_at(step)
        contrast = cfg.loss.contrastive_weight > 0 and not cfg.model.freeze_trunk
        with autocast(dev, o.precision):
            feats1, emb1 = self.net.head_features(v1)
            logits = self.net.head(feats1).float()
            emb2 = self.net.pooled(v2)[1] if contrast else None
        loss_attr = _loss(self.net, logits, {k: v.to(dev) for k, v in attrs.items()}, self.head_weights)
        logs = {"loss_attr": loss_attr.item(), "lr": self.lr_at(step)}
        loss = loss_attr
        if emb2 is not None:
            # InfoNCE over the global batch: every rank sees all embeddings (negatives), gradients flow to owners.
            loss_con = _contrastive(gather_with_grad(emb1.float()), gather_with_grad(emb2.float()))
            loss = loss + cfg.loss.contrastive_weight * loss_con
            logs["loss_con"] = loss_con.item()
        optimizer_step(self.opt, loss, self.params)
        return logs

    def check_modules(self) -> list[torch.nn.Module]:
        return [self.net]

    def export(self, run: Path, metadata: dict[str, Any]) -> None:
        self.net.eval()
        self.net.save_pretrained(run / "model", metadata={"trained_steps": metadata["steps"],
                                                          "batch": self.cfg.optim.batch,
                                                          "train_seconds": metadata["train_seconds"]})

    def result(self) -> DomainNetwork:
        return self.net.eval()


def train_domain_network(out_dir: str | os.PathLike, cfg: DomainTrainConfig, resume: bool = False,
                         progress: bool = True, max_steps_this_run: int | None = None) -> DomainNetwork:
    """Train (or with ``resume`` continue) in the run folder ``out_dir``; once ``cfg.optim.steps`` are done the
    model folder ``out_dir/model`` is written. Run folder, signals and DDP are the shared loop's."""
    return run_training(DomainTask(cfg), out_dir, resume=resume, progress=progress,
                        max_steps_this_run=max_steps_this_run)


@torch.no_grad()
def evaluate_domain_network(net: DomainNetwork, faces: int = 1000, resolution: int = 64,
                            batch: int = 250) -> dict[str, dict[str, float]]:
    """Per-attribute scores on held-out rendered faces (seeds from HELD_OUT_SEED): categories → accuracy;
    continuous → accuracy within ±0.1, mean absolute error and correlation."""
    net.eval()
    preds: dict[str, list[torch.Tensor]] = {}
    truth: dict[str, list[torch.Tensor]] = {}
    for start in range(0, faces, batch):
        seeds = list(range(HELD_OUT_SEED + start, HELD_OUT_SEED + min(faces, start + batch)))
        attrs = sf.sample_attributes(seeds)
        images = sf.render(attrs, resolution, outputs=("image",))["image"]
        p = net.predict(images)
        for a in sf.ATTRIBUTES:
            preds.setdefault(a.name, []).append(p[a.name])
            truth.setdefault(a.name, []).append(attrs[a.name])
    report = {}
    for a in sf.ATTRIBUTES:
        p, t = torch.cat(preds[a.name]), torch.cat(truth[a.name])
        if a.is_categorical:
            report[a.name] = {"accuracy": float((p == t).float().mean())}
        else:
            err = (p - t).abs()
            corr = float(torch.corrcoef(torch.stack([p, t]))[0, 1])
            report[a.name] = {"accuracy": float((err < 0.1).float().mean()), "mae": float(err.mean()), "corr": corr}
    return report
