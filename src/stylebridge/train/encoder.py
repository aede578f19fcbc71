"""pSp / e4e encoder training on a frozen StyleGAN2 (Richardson et al. 2021; Tov et al. 2021).

    cfg = load_encoder_config("configs/encoder/tiny-psp.yaml", ["model.generator=runs/gan/G_ema"])
    model = train_encoder(cfg, "runs/psp")         # → runs/psp/model (a native PSP / E4E folder)

What one step does (the official ``Coach.train`` / ``calc_loss``):

* e4e with a latent discriminator: a discriminator step first (`stylebridge.losses.latent_adversarial`);
* the encoder maps the task's input x to W+ = codes + latent_avg (the generator's w_avg: codes start from the
  latent average), the frozen generator renders y_hat (random noise, as ``randomize_noise=True``; outputs larger
  than the data are average-pooled to it, pSp's ``face_pool``), and the loss is
  ``l2·MSE + perceptual·dist + identity·(1 - sim) + w_norm·||W+ - latent_avg|| (+ e4e: delta·Σ||Δ_i|| +
  w_discriminator·adv)``;
* one Adam step on the encoder (pSp's ``--optim_name adam``: the official default is Ranger; Adam is what this
  trainer uses, lr 1e-4 as the official runs).

e4e's progressive schedule sets the encoder's stage from the step (stage 0: one w; delta i from
``progressive_start + (i-1)·progressive_step_every``); the delta regulariser applies while it runs.

Data: synthfaces streamed per task (sample i of step s is the face of seed ``seed + s·batch + i``, always below the
held-out seeds ≥ 10,000,000), or image folders (`stylebridge.data.paired.FolderPairs`: one folder for inversion /
superres / inpaint, paired folders for sketch / segmentation / frontalize). The encoder's input channels follow the
task (RGB 3, sketch 1, segmentation one-hot, inpaint RGB + mask).

Run conventions are those of GAN training (`stylebridge.train.loop`): the run folder
holds the resolved config, ``log.jsonl`` (its first record names the perceptual and identity networks),
TensorBoard scalars, sample grids (input | target | output on fixed held-out items) and the last checkpoints;
``resume`` continues exactly (weights, optimisers, latent pool, RNG state). Under ``torchrun`` every random draw
(noise, real w, pool choices) is made for the global batch from one generator all ranks hold in the same state,
each rank keeps its interleaved slice, gradients are all-reduced, and BatchNorm statistics cover the global batch
(`stylebridge.train.sync_batchnorm`): N processes compute what one process computes, up to float summation
order — except the e4e latent pool, which holds each rank's own codes. ``optim.precision: bf16`` runs the encoder,
generator and loss networks under autocast (master weights fp32).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from stylebridge.core.device import autocast, pick_device
from stylebridge.core.native import check_state_dict
from stylebridge.core.seeds import HELD_OUT_SEED
from stylebridge.data.tasks import SynthFacesPairs, parse_task
from stylebridge.formats.loading import load_generator
from stylebridge.losses import (
    IdentityLoss,
    LatentCodesPool,
    PerceptualDistance,
    delta_loss,
    discriminated_rows,
    encoder_adversarial_loss,
    identity_loss,
    l2_loss,
    latent_d_loss,
    latent_r1_penalty,
    perceptual_distance,
    progressive_stage,
    progressive_steps,
    w_norm_loss,
)
from stylebridge.models.e4e import (
    E4E,
    PROGRESSIVE_INFERENCE,
    E4EConfig,
    E4EEncoderConfig,
    LatentDiscriminator,
    LatentDiscriminatorConfig,
)
from stylebridge.models.encoder_base import EncoderTrunkConfig
from stylebridge.models.psp import PSP, PSPConfig, PSPEncoderConfig
from stylebridge.models.restyle import ReStyle, ReStyleConfig, ReStyleEncoderConfig, expand_input_layer
from stylebridge.models.stylegan2 import StyleGAN2Generator
from stylebridge.train.config import LogSection, OptimSection, load_config
from stylebridge.train.ddp import broadcast_module, world
from stylebridge.train.loop import TrainTask, optimizer_step, run_training
from stylebridge.train.sync_batchnorm import sync_batchnorm, unsync_batchnorm

__all__ = [
    "ARCHS",
    "ENCODER_TASKS",
    "EncoderTask",
    "EncoderTrainConfig",
    "build_encoder",
    "load_encoder_config",
    "train_encoder",
]

ARCHS = ("psp", "e4e")
ENCODER_TASKS = ("inversion", "sketch", "segmentation", "superres", "inpaint", "frontalize")


@dataclass
class DataConfig:
    source: str = "synthfaces"  # "synthfaces", or a folder: the images (inversion/superres/inpaint) or the inputs
    targets: str | None = None  # the target folder of sketch / segmentation / frontalize pairs on folders
    task: str = "inversion"  # inversion, sketch, segmentation, superres[:f], inpaint, frontalize
    resolution: int = 0  # side of inputs, targets and the encoder's input; 0: the generator's resolution
    seed: int = 0  # synthfaces: first training seed; folders: seeds the per-epoch file order
    labels: int = 10  # segmentation on folders: label count (synthfaces has 10)
    workers: int = 0  # DataLoader worker processes


@dataclass(frozen=True)
class ModelConfig(EncoderTrunkConfig):
    """The encoder's trunk (num_layers, mode, input_width, widths, se_reduction, style_width: `EncoderTrunkConfig`,
    defined once in models/encoder_base.py) and what the trainer adds."""

    arch: str = "psp"  # "psp" (GradualStyleEncoder, or one w with learn_in_w) or "e4e" (Encoder4Editing)
    generator: str = ""  # the frozen StyleGAN2: any stylebridge.load-able path or shipped name (required)
    learn_in_w: bool = False  # pSp only: one w for every layer (BackboneEncoderUsingLastLayerIntoW)
    # Start from: an ArcFace IR-SE file (model_ir_se50.pth: the trunk, as pSp/e4e do; the input layer only for RGB
    # inputs) or a pSp / e4e model (its encoder weights and latent_avg). None: random initialisation.
    init_from: str | None = None
    # ReStyle (Alaluf et al. 2021): the encoder takes [image, current reconstruction] and predicts a residual to the
    # current code, n_iters times from the average code. encoder_type: "backbone" (restyle's own: every row on the
    # last feature map) or "gradual" (pSp's / e4e's pyramid, so init_from can be a shipped pSp / e4e: the added
    # input channels start at zero and the first iteration equals that encoder).
    restyle: bool = False
    encoder_type: str = "backbone"
    n_iters: int = 5  # ReStyle: iterations at inference (stored in the model) and at most per training step
    # Keep every BatchNorm of the encoder at its running statistics (eval mode) while training. For fine-tuning from
    # init_from, and needed for ReStyle: its iterations feed the trunk different inputs (the average image, then
    # ever closer reconstructions), so running statistics pooled over them match none at inference — measured on a
    # ReStyle-e4e after 1,100 steps with batch statistics: iteration-1 distance 0.148 in train mode, 0.212 in eval.
    freeze_batchnorm: bool = False


@dataclass
class LossConfig:
    l2: float = 1.0  # l2_lambda
    perceptual: float = 0.8  # lpips_lambda
    identity: float = 0.1  # id_lambda (0 for sketch/segmentation, as pSp)
    w_norm: float = 0.0  # w_norm_lambda
    # Perceptual network: "auto" (LPIPS when lpips_backbone is given, else domain_network), "lpips", or a model.
    perceptual_net: str = "auto"
    lpips_backbone: str | None = None  # torchvision AlexNet/VGG-16 state dict file (or a native LPIPS folder)
    lpips_heads: str | None = None  # the lpips package's alex.pth / vgg.pth
    # Identity network: "auto" (ArcFace when identity_weights is given, else domain_network), "arcface", "moco",
    # or a domain network.
    identity_net: str = "auto"
    identity_weights: str | None = None  # model_ir_se50.pth (arcface) / torchvision ResNet-18/34 (moco)
    domain_network: str = "synthfaces-domain"  # the toolkit's own network, used when no third-party file is given
    # e4e
    delta: float = 2e-4  # delta_norm_lambda (while progressive training runs)
    delta_norm: float = 2.0  # the p of the delta norms
    progressive_start: int = -1  # step of delta 1 (-1: no progressive training: every delta from step 0)
    progressive_step_every: int = 2000
    w_discriminator: float = 0.0  # w_discriminator_lambda (e4e's README: 0.1); 0: no latent discriminator
    w_discriminator_lr: float = 2e-5
    r1: float = 10.0
    d_reg_every: int = 16
    w_pool_size: int = 50  # latent-codes pool (e4e's --use_w_pool); 0: off


@dataclass
class OptimConfig(OptimSection):
    batch: int = 8  # global batch (all ranks together)
    lr: float = 1e-4
    noise_mode: str = "random"  # generator noise while training: "random" (official) or "const"
    # ReStyle: each step runs a random number of iterations in [1, model.n_iters] (drawn from the run's generator,
    # the same on every rank) instead of always n_iters (the official n_iters_per_batch): the encoder sees every
    # stage of refinement and a step costs (n_iters + 1) / 2 iterations on average.
    random_iters: bool = True


@dataclass
class LogConfig(LogSection):
    grid: int = 8  # held-out items in the periodic grid (rows: input | target | output)


@dataclass
class EncoderTrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    log: LogConfig = field(default_factory=LogConfig)


def load_encoder_config(path: str | os.PathLike | None, overrides: list[str] | None = None) -> EncoderTrainConfig:
    """The config tree from a flat YAML file plus ``section.key=value`` overrides, validated."""
    cfg = load_config(EncoderTrainConfig, path, overrides)
    validate_config(cfg)
    return cfg


def validate_config(cfg: EncoderTrainConfig) -> None:
    m, o, L = cfg.model, cfg.optim, cfg.loss
    if m.arch not in ARCHS:
        raise ValueError(f"model.arch must be one of {ARCHS}, got {m.arch!r}")
    kind = parse_task(cfg.data.task)[0]
    if kind not in ENCODER_TASKS:
        raise ValueError(f"data.task must be one of {', '.join(ENCODER_TASKS)} (superres:F), got {cfg.data.task!r}")
    if o.noise_mode not in ("random", "const"):
        raise ValueError(f"optim.noise_mode must be random or const, got {o.noise_mode!r}")
    if m.learn_in_w and m.arch != "psp":
        raise ValueError("model.learn_in_w is a pSp option (e4e always predicts one w plus deltas)")
    if m.restyle and m.n_iters < 1:
        raise ValueError(f"model.n_iters must be >= 1, got {m.n_iters}")
    if m.encoder_type not in ("backbone", "gradual"):
        raise ValueError(f"model.encoder_type must be backbone or gradual, got {m.encoder_type!r}")
    if m.restyle and m.learn_in_w:
        raise ValueError("model.learn_in_w does not apply to ReStyle (it predicts a residual per W+ row)")
    if L.progressive_start >= 0 and m.arch != "e4e":
        raise ValueError("loss.progressive_start (progressive delta training) needs model.arch: e4e")
    for name in ("l2", "perceptual", "identity", "w_norm", "delta", "w_discriminator", "r1"):
        if getattr(L, name) < 0:
            raise ValueError(f"loss.{name} must be >= 0, got {getattr(L, name)}")
    if o.batch < 1 or o.steps < 0 or L.d_reg_every < 1 or L.progressive_step_every < 0 or L.w_pool_size < 0:
        raise ValueError("optim.batch and loss.d_reg_every must be >= 1; optim.steps, loss.progressive_step_every "
                         "and loss.w_pool_size >= 0")


# ------------------------------------------------------------------------------------------------------------------
# Data


class _StepBatches:
    """Batch sampler: this rank's positions of step s, s = start, start + 1, …: [s·B + i for i ≡ rank (mod world)]."""

    def __init__(self, start: int, batch: int, rank: int, n_proc: int) -> None:
        self.start, self.batch, self.rank, self.n_proc = start, batch, rank, n_proc

    def __iter__(self):
        s = self.start
        while True:
            yield [s * self.batch + i for i in range(self.rank, self.batch, self.n_proc)]
            s += 1


def build_dataset(cfg: EncoderTrainConfig, resolution: int, held_out: bool = False) -> torch.utils.data.Dataset:
    """The task's training pairs (or, with ``held_out``, the fixed items of the sample grids)."""
    d = cfg.data
    if d.source == "synthfaces":
        if held_out:
            return SynthFacesPairs(d.task, resolution, length=max(cfg.log.grid, 1), seed=HELD_OUT_SEED)
        return SynthFacesPairs(d.task, resolution, length=HELD_OUT_SEED - d.seed, seed=d.seed)
    from stylebridge.data.paired import FolderPairs

    return FolderPairs(d.task, d.source, d.targets, resolution, seed=d.seed, labels=d.labels)


def _held_out_batch(cfg: EncoderTrainConfig, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    ds = build_dataset(cfg, resolution, held_out=True)
    n = min(cfg.log.grid, len(ds))
    items = ds.__getitems__(list(range(n)))  # type: ignore[attr-defined]
    return torch.stack([x for x, _, _ in items]), torch.stack([t for _, t, _ in items])


# ------------------------------------------------------------------------------------------------------------------
# Models


def build_encoder(cfg: EncoderTrainConfig, G: StyleGAN2Generator, in_channels: int,
                  resolution: int) -> PSP | E4E | ReStyle:
    """A new pSp / e4e / ReStyle model around ``G`` (copied, frozen) with latent_avg = G.w_avg, initialised per
    ``model.init_from``."""
    m = cfg.model
    enc_kw: dict[str, Any] = dict(num_ws=G.num_ws, w_dim=G.w_dim, in_channels=in_channels, input_size=resolution,
                                  **m.trunk_fields())
    model: PSP | E4E | ReStyle
    if m.restyle:
        enc = ReStyleEncoderConfig(**{**enc_kw, "in_channels": 2 * in_channels}, base=m.arch,
                                   encoder_type=m.encoder_type)
        model = ReStyle(ReStyleConfig(encoder=enc, decoder=G.config, resize_to=resolution, n_iters=m.n_iters))
    elif m.arch == "e4e":
        model = E4E(E4EConfig(encoder=E4EEncoderConfig(**enc_kw), decoder=G.config, resize_to=resolution))
    else:
        model = PSP(PSPConfig(encoder=PSPEncoderConfig(**enc_kw, learn_in_w=m.learn_in_w), decoder=G.config,
                              resize_to=resolution))
    model.decoder.load_state_dict(G.state_dict())
    model.decoder.requires_grad_(False).eval()
    model.latent_avg.copy_(G.w_avg.detach()[None].expand_as(model.latent_avg))
    if m.init_from:
        _init_from(model, m.init_from)
    return model


def _init_from(model: PSP | E4E | ReStyle, spec: str) -> None:
    from stylebridge.formats.loading import load
    from stylebridge.models.encoder_base import StyleEncoderModel
    from stylebridge.models.irse import IRSEBackbone

    src = load(spec)
    own = model.encoder.state_dict()
    if isinstance(src, IRSEBackbone):
        # pSp/e4e: the trunk starts from ArcFace; non-RGB inputs keep a fresh input layer (pSp skips input_layer).
        rgb = model.encoder.config.in_channels == 3
        sd = {k: v for k, v in src.state_dict().items()
              if k.startswith("body.") or (rgb and k.startswith("input_layer."))}
    elif isinstance(src, StyleEncoderModel):
        sd = src.encoder.state_dict()
        if isinstance(model, ReStyle) and not isinstance(src, ReStyle):
            sd = expand_input_layer(sd, model.config.encoder.in_channels)
        if src.latent_avg.shape == model.latent_avg.shape:
            model.latent_avg.copy_(src.latent_avg)
    else:
        raise ValueError(f"{spec}: model.init_from must be an ArcFace IR-SE file or a pSp/e4e model, got a "
                         f"{type(src).__name__}")
    bad = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in sd.items()
           if k not in own or v.shape != own[k].shape]
    if bad:
        raise ValueError(f"{spec}: does not fit this encoder (widths, depth or input size differ): {bad[:5]}")
    if isinstance(src, StyleEncoderModel) and set(sd) != set(own):
        raise ValueError(f"{spec}: encoder keys differ: {sorted(set(own) ^ set(sd))[:5]}")
    model.encoder.load_state_dict({**own, **sd}, strict=True)


@dataclass
class _Losses:
    perceptual: PerceptualDistance | None
    identity: IdentityLoss | None

    def names(self) -> dict[str, str]:
        return {"perceptual": self.perceptual.name if self.perceptual else "none",
                "identity": self.identity.name if self.identity else "none"}


def build_losses(cfg: EncoderTrainConfig) -> _Losses:
    L = cfg.loss
    perc = ident = None
    if L.perceptual > 0:
        perc = perceptual_distance(L.perceptual_net, L.lpips_backbone, L.lpips_heads, L.domain_network)
    if L.identity > 0:
        ident = identity_loss(L.identity_net, L.identity_weights, L.domain_network)
    return _Losses(perc, ident)


class EncoderTask(TrainTask):
    """pSp / e4e training as a task of the shared loop (`stylebridge.train.loop.run_training`)."""

    def __init__(self, cfg: EncoderTrainConfig, progress: bool = True) -> None:
        validate_config(cfg)
        self.cfg = cfg
        self.progress = progress  # also print which loss networks the run uses
        self.name = f"restyle-{cfg.model.arch}" if cfg.model.restyle else cfg.model.arch

    def setup(self) -> None:
        cfg, o, L = self.cfg, self.cfg.optim, self.cfg.loss
        rank, n_proc = world()
        G = load_generator(cfg.model.generator, what="model.generator")
        self.resolution = cfg.data.resolution or G.resolution
        if cfg.data.source == "synthfaces" and cfg.data.seed + o.steps * o.batch > HELD_OUT_SEED:
            raise ValueError(f"{o.steps} steps of {o.batch} faces from seed {cfg.data.seed} would reach the held-out "
                             f"seeds (>= {HELD_OUT_SEED})")
        self.dataset = build_dataset(cfg, self.resolution)
        in_channels = self.dataset.input_channels  # type: ignore[attr-defined]
        dev = pick_device()
        torch.manual_seed(o.seed)  # the encoder's initialisation does not depend on what loading drew
        self.model = build_encoder(cfg, G, in_channels, self.resolution).to(dev)
        self._train_mode()
        broadcast_module(self.model.encoder)
        self.opt = torch.optim.Adam(self.model.encoder.parameters(), lr=o.lr)
        self.gen = torch.Generator().manual_seed(o.seed * 1000 + 17)  # the same on every rank: global draws, sliced
        self.D: LatentDiscriminator | None = None
        self.opt_d: torch.optim.Adam | None = None
        self.pools: tuple[LatentCodesPool, LatentCodesPool] | None = None
        self.prog_steps: list[int] | None = None
        if L.w_discriminator > 0:
            self.D = LatentDiscriminator(LatentDiscriminatorConfig(w_dim=G.w_dim)).to(dev)
            broadcast_module(self.D)
            self.D.requires_grad_(False)
            self.opt_d = torch.optim.Adam(self.D.parameters(), lr=L.w_discriminator_lr)
            if L.w_pool_size:
                self.pools = (LatentCodesPool(L.w_pool_size), LatentCodesPool(L.w_pool_size))
        if cfg.model.arch == "e4e" and L.progressive_start >= 0:
            self.prog_steps = progressive_steps(G.num_ws, L.progressive_start, L.progressive_step_every)
        if n_proc > 1:
            sync_batchnorm(self.model.encoder)  # class swap in place: the modes set above stay
        self.losses = build_losses(cfg)
        for net in (self.losses.perceptual, self.losses.identity):
            if net is not None:
                net.to(dev)
        self.grid_xy = _held_out_batch(cfg, self.resolution) if rank == 0 else None
        self.data_iter = None
        self.step = 0

    def _train_mode(self) -> None:
        """The encoder in training mode (its BatchNorm layers at their running statistics with
        ``model.freeze_batchnorm``)."""
        self.model.encoder.train()
        if self.cfg.model.freeze_batchnorm:
            for m in self.model.encoder.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.eval()

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        opts: dict[str, torch.optim.Optimizer] = {"opt": self.opt}
        if self.opt_d is not None:
            opts["opt_d"] = self.opt_d
        return opts

    def state_dict(self) -> dict[str, Any]:
        ck: dict[str, Any] = {"encoder": self.model.encoder.state_dict(), "latent_avg": self.model.latent_avg,
                              "rng": self.gen.get_state()}
        if self.D is not None:
            ck["D"] = self.D.state_dict()
        if self.pools is not None:
            ck.update(pool_real=self.pools[0].state_dict(), pool_fake=self.pools[1].state_dict())
        return ck

    def load_state_dict(self, ck: dict[str, Any]) -> None:
        check_state_dict(self.model.encoder, ck["encoder"], "checkpoint encoder")
        self.model.latent_avg.copy_(ck["latent_avg"])
        if self.D is not None:
            if "D" not in ck:
                raise ValueError("the checkpoint has no latent discriminator: resume with loss.w_discriminator 0")
            check_state_dict(self.D, ck["D"], "checkpoint D")
        if self.pools is not None:
            dev = self.model.latent_avg.device
            self.pools[0].load_state_dict(ck["pool_real"], dev)
            self.pools[1].load_state_dict(ck["pool_fake"], dev)
        self.gen.set_state(ck["rng"].cpu())

    def train_step(self, step: int) -> dict[str, float]:
        if self.data_iter is None:  # built at the first step: a resumed run starts at its own position
            rank, n_proc = world()
            # Its own generator: a DataLoader draws a worker base seed when iterated, which must not come from the
            # global RNG (a resumed run creates its loader at another point of the global RNG's sequence).
            loader = DataLoader(self.dataset, batch_sampler=_StepBatches(step, self.cfg.optim.batch, rank, n_proc),
                                num_workers=self.cfg.data.workers,
                                generator=torch.Generator().manual_seed(self.cfg.optim.seed + step))
            self.data_iter = iter(loader)
        self.step = step
        x, y, _ = next(self.data_iter)
        dev = self.model.latent_avg.device
        return _train_step(self, self.cfg, self.losses, x.to(dev), y.to(dev))

    def postfix(self, stats: dict[str, float]) -> dict[str, str]:
        return {"loss": f"{stats['loss']:.3f}"}

    def start_record(self) -> dict[str, Any]:
        names = self.losses.names()
        if world()[0] == 0 and self.progress:
            print(f"perceptual loss: {names['perceptual']}\nidentity loss: {names['identity']}", flush=True)
        return {"perceptual_network": names["perceptual"], "identity_network": names["identity"],
                "arch": self.cfg.model.arch, "task": self.cfg.data.task, "generator": self.cfg.model.generator}

    def grid(self) -> tuple[torch.Tensor, int] | None:
        assert self.grid_xy is not None
        dev = self.model.latent_avg.device
        return _grid(self, self.grid_xy[0].to(dev), self.grid_xy[1].to(dev)), 3

    def check_modules(self) -> list[torch.nn.Module]:
        return [self.model.encoder]

    def _finish(self) -> None:
        if world()[1] > 1:
            unsync_batchnorm(self.model.encoder)
        if _is_e4e(self.model):
            self.model.encoder.progressive_stage = PROGRESSIVE_INFERENCE
        self.model.eval()

    def export(self, run: Path, metadata: dict[str, Any]) -> None:
        self._finish()
        cfg, o, names = self.cfg, self.cfg.optim, self.losses.names()
        self.model.save_pretrained(run / "model", metadata={
            "arch": self.name, "task": cfg.data.task, "generator": cfg.model.generator,
            "data": cfg.data.source, "resolution": self.resolution, "steps": metadata["steps"], "batch": o.batch,
            "train_seconds": metadata["train_seconds"], "perceptual_network": names["perceptual"],
            "identity_network": names["identity"], "optimizer": f"Adam(lr={o.lr})",
        })

    def result(self) -> PSP | E4E | ReStyle:
        self._finish()
        return self.model


# ------------------------------------------------------------------------------------------------------------------
# One step


def _slice(t: torch.Tensor) -> torch.Tensor:
    rank, n_proc = world()
    return t[rank::n_proc]


def _is_e4e(model: torch.nn.Module) -> bool:
    """An e4e encoder (one w + progressive deltas): e4e itself or ReStyle-e4e."""
    return isinstance(model, E4E) or (isinstance(model, ReStyle) and model.base == "e4e")


def _stage(st: EncoderTask) -> int | None:
    """e4e's progressive stage at this step (None: no progressive training)."""
    return None if st.prog_steps is None else progressive_stage(st.step, st.prog_steps)


def _d_step(st: EncoderTask, cfg: EncoderTrainConfig, x: torch.Tensor, stage: int | None) -> dict[str, float]:
    """e4e's ``train_discriminator``: logistic loss on real w (mapped fresh z) vs the encoder's codes, then lazy R1."""
    L, nb = cfg.loss, cfg.optim.batch
    assert st.D is not None and st.opt_d is not None
    model, G, dev = st.model, st.model.decoder, x.device
    rows = discriminated_rows(G.num_ws, stage)
    z = _slice(torch.randn(nb, G.z_dim, generator=st.gen)).to(dev)
    real_draws = [_slice(t).to(dev) for t in LatentCodesPool.draws(nb, 1, L.w_pool_size, st.gen)]
    fake_draws = [_slice(t).to(dev) for t in LatentCodesPool.draws(nb, len(rows), L.w_pool_size, st.gen)]
    with torch.no_grad():
        real_w = G.map(z)
        with autocast(dev, cfg.optim.precision):
            # encoder in training mode, as the reference; ReStyle: its first iteration (from the average image)
            codes = model.step(x, None, None) if isinstance(model, ReStyle) else model.encode(x)
            fake = codes.float()[:, rows]
        if st.pools is not None:
            real_w = st.pools[0].query(real_w, real_draws)
            fake_w = st.pools[1].query(fake, fake_draws)
        else:
            fake_w = fake[:, 0]
    D = st.D
    D.requires_grad_(True)
    params = list(D.parameters())
    loss, stats = latent_d_loss(D(real_w), D(fake_w))
    optimizer_step(st.opt_d, loss, params)
    stats["d_loss"] = float(loss.detach())
    if st.step % L.d_reg_every == 0:
        penalty = latent_r1_penalty(D, real_w)
        # "+ 0 * real_pred[0]" as the reference: every D parameter gets a (zero) gradient and takes the Adam step.
        zero = 0 * D(real_w.detach())[0].sum()
        optimizer_step(st.opt_d, penalty * (L.r1 / 2 * L.d_reg_every) + zero, params)
        stats["d_r1"] = float(penalty.detach())
    D.requires_grad_(False)
    return stats


def _train_step(st: EncoderTask, cfg: EncoderTrainConfig, losses: _Losses, x: torch.Tensor,
                y: torch.Tensor) -> dict[str, float]:
    o = cfg.optim
    model, G = st.model, st.model.decoder
    stage = _stage(st)
    if _is_e4e(model):
        model.encoder.progressive_stage = PROGRESSIVE_INFERENCE if stage is None else stage
    stats: dict[str, float] = {}
    if st.D is not None:
        stats.update(_d_step(st, cfg, x, stage))
    noise = [_slice(t).to(x.device) for t in G.make_noise(o.batch, generator=st.gen)] \
        if o.noise_mode == "random" else None
    side = y.shape[-1]
    resize = side if side != G.resolution else False
    if not isinstance(model, ReStyle):
        with autocast(x.device, o.precision):
            w_plus = model.encode(x)
            y_hat = model.decode(w_plus, resize=resize, noise=noise, noise_mode="const").float()
        loss = _loss(st, cfg, losses, x, y, w_plus.float(), y_hat, stage, stats)
    else:
        # ReStyle's training iteration: k refinements from the average image; each one's input (code and image) is
        # detached from the previous one, its loss is added, and one optimiser step follows (the official coach
        # accumulates the k backward passes the same way).
        n = cfg.model.n_iters
        k = 1 + int(torch.randint(n, (1,), generator=st.gen)) if o.random_iters else n
        w_cur = img_cur = None
        total: list[torch.Tensor] = []
        for t in range(k):
            with autocast(x.device, o.precision):
                w_plus = model.step(x, w_cur, img_cur)
                y_hat = model.decode(w_plus, resize=resize, noise=noise, noise_mode="const").float()
            it_stats: dict[str, float] = {}
            total.append(_loss(st, cfg, losses, x, y, w_plus.float(), y_hat, stage, it_stats))
            w_cur, img_cur = w_plus.detach(), model.pool(y_hat.detach())
            if t == 0:
                stats["loss_first"] = it_stats["loss"]
        stats.update(it_stats)  # the last iteration's terms
        stats["iters"] = k
        loss = torch.stack(total).sum()
    if stage is not None:
        stats["stage"] = stage
    optimizer_step(st.opt, loss, list(model.encoder.parameters()))
    return stats


def _loss(st: EncoderTask, cfg: EncoderTrainConfig, losses: _Losses, x: torch.Tensor, y: torch.Tensor,
          w_plus: torch.Tensor, y_hat: torch.Tensor, stage: int | None, stats: dict[str, float]) -> torch.Tensor:
    """The encoder loss of one reconstruction ``y_hat`` of ``y`` from codes ``w_plus`` (terms into ``stats``)."""
    o, L, model = cfg.optim, cfg.loss, st.model
    terms: list[torch.Tensor] = []
    if L.l2 > 0:
        l2 = l2_loss(y_hat, y)
        stats["loss_l2"] = float(l2.detach())
        terms.append(L.l2 * l2)
    if losses.perceptual is not None:
        with autocast(x.device, o.precision):
            perc = losses.perceptual(y_hat, y).float().mean()
        stats["loss_perceptual"] = float(perc.detach())
        terms.append(L.perceptual * perc)
    if losses.identity is not None:
        with autocast(x.device, o.precision):
            ident, id_stats = losses.identity(y_hat, y, x if x.shape == y.shape else None)
        stats["loss_id"] = float(ident.detach())
        stats.update(id_stats)
        terms.append(L.identity * ident)
    if L.w_norm > 0:
        wn = w_norm_loss(w_plus, model.latent_avg)
        stats["loss_w_norm"] = float(wn.detach())
        terms.append(L.w_norm * wn)
    if stage is not None and stage != PROGRESSIVE_INFERENCE:
        total_delta, _ = delta_loss(w_plus, stage, L.delta_norm)
        stats["loss_delta"] = float(total_delta.detach())
        terms.append(L.delta * total_delta)
    if st.D is not None:
        adv = encoder_adversarial_loss(st.D, w_plus, discriminated_rows(model.decoder.num_ws, stage))
        stats["loss_adv"] = float(adv.detach())
        terms.append(L.w_discriminator * adv)
    loss = torch.stack(terms).sum() if terms else y_hat.sum() * 0
    stats["loss"] = float(loss.detach())
    return loss


# ------------------------------------------------------------------------------------------------------------------
# Previews


def _grid(st: EncoderTask, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Rows input | target | output of the held-out items (eval mode: BatchNorm running statistics, stored noise)."""
    from stylebridge.pipelines.encoder import input_preview

    model = st.model
    stage = model.encoder.progressive_stage if _is_e4e(model) else None
    model.encoder.eval()
    try:
        with torch.no_grad():
            side = y.shape[-1]
            out = model(x, resize=side if side != model.decoder.resolution else False, noise_mode="const").float()
    finally:
        st._train_mode()
        if stage is not None:
            model.encoder.progressive_stage = stage
    cells = torch.stack([input_preview(x, side).cpu(), y.cpu(), out.cpu().clamp(-1, 1)], dim=1)
    return cells.flatten(0, 1)


# ------------------------------------------------------------------------------------------------------------------
# Run


def train_encoder(cfg: EncoderTrainConfig, run_dir: str | os.PathLike, resume: bool = False, progress: bool = True,
                  max_steps_this_run: int | None = None) -> PSP | E4E | ReStyle:
    """Train until ``cfg.optim.steps`` (or ``max_steps_this_run`` more steps); returns the model.

    Once ``cfg.optim.steps`` are done, rank 0 writes the native model folder ``run_dir/model`` (a `PSP` or `E4E`:
    ``stylebridge.load(run_dir / "model")``) whose metadata names the perceptual and identity networks. The run
    folder, resume, signals and DDP are the shared loop's (`stylebridge.train.loop.run_training`).
    """
    return run_training(EncoderTask(cfg, progress), run_dir, resume=resume, progress=progress,
                        max_steps_this_run=max_steps_this_run)
