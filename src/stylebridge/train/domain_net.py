"""Train the domain network on synthfaces attributes (streamed: every batch is freshly rendered).

Losses: binary cross-entropy for continuous attributes (targets in [0, 1]), cross-entropy for categories, and a
supervised-contrastive term that pulls the embeddings of the same face under different augmentations together
(so `similarity` measures identity, not pose or lighting). Checkpoints are written atomically and training
resumes exactly (model, optimiser, step and RNG state).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from stylebridge.core.atomic import atomic_write
from stylebridge.core.seeds import HELD_OUT_SEED
from stylebridge.data import synthfaces as sf
from stylebridge.models.domain import DomainNetConfig, DomainNetwork

__all__ = ["DomainTrainConfig", "evaluate_domain_network", "synthfaces_heads", "train_domain_network"]



@dataclass
class DomainTrainConfig:
    steps: int = 3000
    batch: int = 64
    resolution: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    contrastive_weight: float = 0.2
    seed: int = 0
    checkpoint_every: int = 250
    eval_faces: int = 1000
    widths: tuple[int, ...] = (32, 64, 128, 192)  # DomainNetConfig.widths
    embed_dim: int = 128
    head_spatial: int = 0  # DomainNetConfig.head_spatial
    blur_prob: float = 0.3  # probability of the 3x3 blur augmentation
    init_from: str | None = None  # a model folder whose trunk and embedding start this run (heads are new)


def synthfaces_heads() -> tuple[tuple[str, int], ...]:
    return tuple((a.name, len(a.choices) if a.is_categorical else 1) for a in sf.ATTRIBUTES)


def _augment(images: torch.Tensor, gen: torch.Generator, blur_prob: float = 0.3) -> torch.Tensor:
    """Mild photometric/geometric jitter so features do not depend on exact pixel values: a brightness/contrast
    change, small shifts, a little blur or noise (what a generator's outputs differ by)."""
    n = images.shape[0]
    scale = 1 + 0.2 * (torch.rand(n, 1, 1, 1, generator=gen) - 0.5)
    shift = 0.2 * (torch.rand(n, 1, 1, 1, generator=gen) - 0.5)
    x = images * scale + shift
    dx, dy = (torch.randint(-2, 3, (2,), generator=gen)).tolist()
    x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
    if float(torch.rand(1, generator=gen)) < blur_prob:
        x = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, 1)
    x = x + 0.03 * torch.randn(x.shape, generator=gen) * (torch.rand(n, 1, 1, 1, generator=gen) < 0.5)
    return x.clamp(-1, 1)


def _targets(attrs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {a.name: attrs[a.name] for a in sf.ATTRIBUTES}


def _loss(net: DomainNetwork, logits: torch.Tensor, attrs: dict[str, torch.Tensor]) -> torch.Tensor:
    pos, total = 0, logits.new_zeros(())
    for name, k in net.config.heads:
        chunk = logits[:, pos : pos + k]
        if k == 1:
            total = total + F.binary_cross_entropy_with_logits(chunk[:, 0], attrs[name].float())
        else:
            total = total + F.cross_entropy(chunk, attrs[name].long())
        pos += k
    return total / len(net.config.heads)


def _contrastive(e1: torch.Tensor, e2: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """InfoNCE between two views of the same faces (row i of e1 matches row i of e2)."""
    logits = e1 @ e2.t() / temperature
    labels = torch.arange(e1.shape[0])
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))


def train_domain_network(out_dir: str | os.PathLike, cfg: DomainTrainConfig, resume: bool = True,
                         progress: bool = True, max_steps_this_run: int | None = None) -> DomainNetwork:
    """Train (or resume) in ``out_dir``; writes ``checkpoint.pt``, ``log.jsonl`` and, once ``cfg.steps`` are done,
    the model folder ``model/``. ``max_steps_this_run`` stops early (checkpointed) to continue later; Ctrl-C
    also writes a checkpoint before exiting."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    net = DomainNetwork(DomainNetConfig(resolution=cfg.resolution, widths=cfg.widths, embed_dim=cfg.embed_dim,
                                        head_spatial=cfg.head_spatial, heads=synthfaces_heads()))
    if cfg.init_from:
        # Everything but the heads comes from the earlier model; the heads keep their fresh initialisation.
        start = DomainNetwork.from_pretrained(cfg.init_from).state_dict()
        own = net.state_dict()
        trunk = [k for k in own if not k.startswith("head.")]
        bad = [k for k in trunk if k not in start or start[k].shape != own[k].shape]
        if bad:
            raise ValueError(f"{cfg.init_from}: its trunk does not fit this config ({bad[:5]})")
        net.load_state_dict({**own, **{k: start[k] for k in trunk}}, strict=True)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    step = 0
    ckpt_path = out / "checkpoint.pt"
    if resume and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optim"])
        gen.set_state(state["rng"])
        step = int(state["step"])
    (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    stop = cfg.steps if max_steps_this_run is None else min(cfg.steps, step + max_steps_this_run)

    def lr_at(s: int) -> float:  # cosine decay over the whole run, so a resumed run follows the same schedule
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(s, cfg.steps) / cfg.steps))

    def checkpoint() -> None:
        state = {"model": net.state_dict(), "optim": opt.state_dict(), "rng": gen.get_state(), "step": step}
        atomic_write(ckpt_path, lambda p: torch.save(state, p))

    net.train()
    t0 = time.perf_counter()
    with open(out / "log.jsonl", "a") as log, tqdm(total=cfg.steps, initial=step, desc="domain net", unit="step",
                                                   disable=not progress) as bar:
        try:
            while step < stop:
                seeds = torch.randint(0, HELD_OUT_SEED, (cfg.batch,), generator=gen).tolist()
                attrs = sf.sample_attributes(seeds)
                images = sf.render(attrs, cfg.resolution, outputs=("image",))["image"]
                v1, v2 = _augment(images, gen, cfg.blur_prob), _augment(images, gen, cfg.blur_prob)
                for group in opt.param_groups:
                    group["lr"] = lr_at(step)
                feats1, emb1 = net.head_features(v1)
                loss_attr = _loss(net, net.head(feats1), attrs)
                loss_con = _contrastive(emb1, net.pooled(v2)[1])
                loss = loss_attr + cfg.contrastive_weight * loss_con
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss_attr.item():.3f}", con=f"{loss_con.item():.3f}")
                if step % 25 == 0:
                    log.write(json.dumps({"step": step, "loss_attr": loss_attr.item(), "loss_con": loss_con.item(),
                                          "lr": lr_at(step), "elapsed_s": time.perf_counter() - t0}) + "\n")
                    log.flush()
                if step % cfg.checkpoint_every == 0 or step == stop:
                    checkpoint()
        except KeyboardInterrupt:
            checkpoint()
            raise
    net.eval()
    if step >= cfg.steps:
        net.save_pretrained(out / "model", metadata={"trained_steps": step, "batch": cfg.batch})
    return net


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
