"""What every stylebridge trainer shares: processes (torchrun / DDP helpers), the run folder (resolved config,
JSON-lines log, TensorBoard, sample grids, atomic checkpoints with the last N kept), stop-on-signal, and the
device / autocast choice.

A trainer keeps its own state object and step function and drives them with ``RunFolder`` and ``StopOnSignal``:

    dist_started = init_distributed()
    run = RunFolder(run_dir, cfg, keep=3)
    state = run.load_latest() if resume else None   # dict written by run.save_checkpoint
    with StopOnSignal() as stop, run.writer() as log:
        while step < steps and not stop.requested():
            ...
            log.scalars(step, {"loss": ...})
            run.save_checkpoint(step, state_dict)
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import yaml

from stylebridge.core.atomic import atomic_write, atomic_write_text
from stylebridge.train.config import to_dict

__all__ = [
    "RunFolder",
    "RunLog",
    "StopOnSignal",
    "allreduce_grads",
    "allreduce_mean",
    "autocast",
    "broadcast_module",
    "device",
    "init_distributed",
    "world",
]


# ------------------------------------------------------------------------------------------------------------------
# Processes


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) without torch.distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_distributed() -> bool:
    """Start the process group under torchrun (WORLD_SIZE > 1): nccl on CUDA, gloo on CPU. Returns whether this
    call started it (the caller then ends it with ``dist.destroy_process_group()``)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        return True
    return False


def device() -> torch.device:
    """This process's device: its CUDA device under torchrun (LOCAL_RANK), else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def autocast(precision: str):
    """bf16 autocast on this process's device type when ``precision == "bf16"`` (master weights stay fp32)."""
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.autocast(dev, dtype=torch.bfloat16, enabled=precision == "bf16")


def allreduce_grads(params: list[torch.nn.Parameter]) -> None:
    """Average gradients over ranks in one flat all-reduce. Parameters without a gradient (not in this phase's
    graph, the same on every rank: e.g. D's output bias under R1) keep ``grad=None``, so Adam skips them as in a
    1-process run instead of taking a zero step that would decay their second moments."""
    _, n = world()
    if n == 1:
        return
    with_grad = [p for p in params if p.grad is not None]
    if not with_grad:
        return
    flat = torch.cat([p.grad.reshape(-1) for p in with_grad])
    dist.all_reduce(flat)
    flat /= n
    offset = 0
    for p in with_grad:
        k = p.grad.numel()
        p.grad = flat[offset : offset + k].view_as(p.grad).clone()
        offset += k


def allreduce_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over ranks (a copy; ``x`` itself without torch.distributed)."""
    if world()[1] > 1:
        x = x.clone()
        dist.all_reduce(x)
        x /= world()[1]
    return x


def broadcast_module(m: torch.nn.Module) -> None:
    """Rank 0's parameters and buffers to every rank."""
    if world()[1] > 1:
        for t in list(m.parameters()) + list(m.buffers()):
            dist.broadcast(t.data, src=0)


def broadcast_flag(flag: bool) -> bool:
    """Rank 0's boolean to every rank (e.g. "a stop was requested")."""
    if world()[1] == 1:
        return flag
    t = torch.tensor(float(flag))
    dist.broadcast(t, src=0)
    return bool(t.item())


def load_optimizer(opt: torch.optim.Optimizer, state: dict) -> None:
    """Load an optimizer's saved state but keep the hyperparameters it was built with (lr, betas, eps, ...).

    ``Optimizer.load_state_dict`` restores the saved param-group hyperparameters too, so a resumed run would silently
    ignore a changed ``optim.lr`` (``--resume RUN --set optim.lr=...``). With an unchanged config the values are
    the same and the run continues exactly.
    """
    wanted = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
    opt.load_state_dict(state)
    for group, hp in zip(opt.param_groups, wanted, strict=True):
        group.update(hp)


# ------------------------------------------------------------------------------------------------------------------
# Run folder


class RunLog:
    """Rank 0's JSON-lines log and TensorBoard writer (TensorBoard only when the package is installed)."""

    def __init__(self, run: Path, enabled: bool) -> None:
        self.enabled = enabled
        self._file = open(run / "log.jsonl", "a") if enabled else None
        self._tb = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(run / "tensorboard"))
            except ImportError:  # tensorboard is optional
                pass

    def record(self, rec: dict[str, Any], prefix: str = "train") -> None:
        """Append ``rec`` (must hold "step") as one JSON line; numbers also go to TensorBoard as prefix/key."""
        if not self.enabled:
            return
        self._file.write(json.dumps(rec) + "\n")
        self._file.flush()
        if self._tb is not None:
            for k, v in rec.items():
                if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool):
                    self._tb.add_scalar(f"{prefix}/{k}", v, rec["step"])

    def images(self, tag: str, images: torch.Tensor, step: int) -> None:
        """Images [N, 3, H, W] in [-1, 1] to TensorBoard."""
        if self._tb is not None:
            self._tb.add_images(tag, (images.float().clamp(-1, 1) + 1) / 2, step)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._tb is not None:
            self._tb.close()

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RunFolder:
    """A run folder: ``config.yaml`` (resolved), ``log.jsonl``, ``tensorboard/``, ``checkpoint-XXXXXXX.pt``.

    Only rank 0 writes. Checkpoints are written atomically (temporary file + rename) and the newest ``keep`` are
    kept, so a crash or a kill never leaves a half-written newest checkpoint.
    """

    def __init__(self, path: str | os.PathLike, config: Any = None, keep: int = 3) -> None:
        self.path, self.keep = Path(path), max(1, int(keep))
        self.rank = world()[0]
        if self.rank == 0:
            self.path.mkdir(parents=True, exist_ok=True)
            if config is not None:
                atomic_write_text(self.path / "config.yaml", yaml.safe_dump(to_dict(config), sort_keys=False))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def checkpoints(self) -> list[Path]:
        return sorted(self.path.glob("checkpoint-*.pt"))

    def save_checkpoint(self, step: int, state: dict[str, Any]) -> Path | None:
        """Write ``state`` as checkpoint-<step>.pt (rank 0 only) and drop all but the newest ``keep``."""
        if self.rank != 0:
            return None
        path = self.path / f"checkpoint-{step:07d}.pt"
        atomic_write(path, lambda p: torch.save(state, p))
        for old in self.checkpoints()[: -self.keep]:
            old.unlink(missing_ok=True)
        return path

    def load_latest(self, map_location: torch.device | str | None = None) -> dict[str, Any]:
        """The newest checkpoint (tensors only; loaded with ``weights_only=True``)."""
        ckpts = self.checkpoints()
        if not ckpts:
            raise FileNotFoundError(f"{self.path}: no checkpoint to resume from")
        try:
            return torch.load(ckpts[-1], map_location=map_location or device(), weights_only=True)
        except Exception as exc:  # one line naming the file, whatever torch raised
            raise ValueError(f"{ckpts[-1]}: cannot read checkpoint ({type(exc).__name__}: {exc})") from None

    def log(self) -> RunLog:
        return RunLog(self.path, enabled=self.rank == 0)


class StopOnSignal:
    """Within the block, SIGINT / SIGTERM set a flag instead of killing the process, so the trainer can finish its
    step, write a checkpoint and stop. ``requested()`` is the flag, agreed on by every rank (rank 0 decides)."""

    def __init__(self) -> None:
        self._flag = False
        self._old: dict[int, Any] = {}

    def _on_signal(self, signum: int, frame: object) -> None:
        self._flag = True

    def requested(self) -> bool:
        self._flag = broadcast_flag(self._flag)
        return self._flag

    def __enter__(self) -> StopOnSignal:
        if world()[0] == 0:
            self._old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc: object) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
