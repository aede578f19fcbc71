"""The one training loop. Every trainer (StyleGAN2, pSp/e4e, the activation-map encoder, the domain network; next
StyleMapGAN, pix2pixHD, ReStyle) is a `TrainTask` — build state, one step, sample grid, state to and from a
checkpoint, export — and `run_training` does the rest, once for all of them:

* processes: the torchrun process group (gloo on CPU, nccl on CUDA) started and torn down — also on failure, without
  a barrier the other ranks could hang in —, the global batch checked against the world size, and at the end a
  check that every rank holds the same weights (``ranks.json``);
* the run folder (`RunFolder`): locked against a second trainer, the resolved ``config.yaml`` written only after
  the config, the models and (with ``resume``) the checkpoint have been validated, ``log.jsonl`` + TensorBoard
  (records after the resumed step are dropped, so redone steps are not logged twice), sample grids, atomic
  checkpoints with the newest ``log.keep`` kept, stale temporary files of a killed run removed, and a corrupt
  newest checkpoint skipped for the previous valid one;
* exact resume: weights, optimiser moments (restored with the *configured* hyperparameters, so
  ``--resume RUN --set optim.lr=…`` takes effect), the step, the task's RNG and torch's global RNG;
* SIGINT / SIGTERM: the step finishes, a checkpoint is written, and `TrainingInterrupted` is raised (the CLI exits
  with 128 + the signal's number, so a scheduler can tell a run stopped early); SIGKILL loses at most the steps
  since the last checkpoint;
* non-finite gradients: `optimizer_step` (the one place every task steps an optimiser) averages gradients over
  ranks and zeroes NaN / clamps ±inf before Adam sees them, as NVlabs does.

A task's checkpoint keys share one flat dict with the loop's (``step``, ``seconds``, ``config``, ``torch_rng``)
and its optimisers' (by name), the layout the trainers wrote before this loop existed, so their old checkpoints
still resume.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import shutil
import signal
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import yaml
from tqdm.auto import tqdm

from stylebridge.core.atomic import atomic_write, atomic_write_text
from stylebridge.core.imageio import save_grid
from stylebridge.train.config import to_dict
from stylebridge.train.ddp import (
    allreduce_grads,
    broadcast_flag,
    init_distributed,
    max_param_difference,
    world,
)

__all__ = [
    "RunFolder",
    "RunFolderBusyError",
    "RunLog",
    "StopOnSignal",
    "TrainTask",
    "TrainingInterrupted",
    "load_optimizer",
    "optimizer_step",
    "run_training",
]

logger = logging.getLogger("stylebridge.train")

# Fault injection for the kill-and-resume tests: the process SIGKILLs itself right after this step (after its log
# record, before its checkpoint), which is what a kill at the worst moment looks like.
FAULT_KILL_ENV = "STYLEBRIDGE_FAULT_KILL_AFTER_STEP"


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped training early; a checkpoint of the last finished step was written."""

    def __init__(self, signum: int, step: int, run: Path) -> None:
        super().__init__(f"stopped at step {step} by {signal.Signals(signum).name}: checkpoint written to {run}")
        self.signum, self.step, self.run = signum, step, run


class RunFolderBusyError(ValueError):
    """Another training process holds the run folder."""


# ------------------------------------------------------------------------------------------------------------------
# The task interface


class TrainTask(ABC):
    """What one trainer adds to the loop. ``cfg`` is its experiment config: a dataclass tree whose ``optim``
    section is a `stylebridge.train.config.OptimSection` and ``log`` a `LogSection` (or subclasses).

    Order of calls: ``setup()`` (after the process group exists and torch is seeded with ``optim.seed``), then,
    when resuming, ``load_state_dict(checkpoint)`` and the loop restores ``optimizers()``; then ``train_step`` for
    each step, with ``grid`` / ``validate`` / ``log_extra`` on rank 0 at their intervals; ``export`` once the last
    step is done.
    """

    name: str = "task"  # progress-bar label
    cfg: Any

    @abstractmethod
    def setup(self) -> None:
        """Build models, optimisers, data and this task's RNG on this process's device."""

    @abstractmethod
    def train_step(self, step: int) -> dict[str, float]:
        """Run step ``step`` (0-based) and return its scalars (rank 0's are logged)."""

    @abstractmethod
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimisers, by checkpoint key (saved and restored by the loop)."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything else a checkpoint needs to continue exactly (weights, buffers, this task's RNG states)."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict`'s keys from a checkpoint; raise ValueError when it does not fit this config."""

    @abstractmethod
    def check_modules(self) -> list[torch.nn.Module]:
        """The trained modules, whose parameters must agree across ranks."""

    @abstractmethod
    def export(self, run: Path, metadata: dict[str, Any]) -> Any:
        """Write the trained model into ``run`` (rank 0, once ``optim.steps`` are done)."""

    def result(self) -> Any:
        """What `run_training` returns (e.g. the trained model)."""
        return None

    def grid(self) -> tuple[torch.Tensor, int] | None:
        """(images [N, C, H, W] in [-1, 1], images per row) for the periodic sample grid, or None."""
        return None

    def validate(self) -> dict[str, float]:
        """Held-out figures, logged as ``val`` records at the grid interval (rank 0; must not touch training RNGs)."""
        return {}

    def log_extra(self, step: int) -> tuple[dict[str, Any], str] | None:
        """An extra record (values, prefix) at this step, e.g. a periodic metric; None most steps (rank 0)."""
        return None

    def start_record(self) -> dict[str, Any]:
        """Keys of the run's first log record (e.g. which perceptual network a loss uses)."""
        return {}

    def postfix(self, stats: dict[str, float]) -> dict[str, str]:
        """What the progress bar shows besides the rate."""
        return {k: f"{v:.3f}" for k, v in stats.items() if k.startswith("loss")}


# ------------------------------------------------------------------------------------------------------------------
# Optimiser helpers


def optimizer_step(opt: torch.optim.Optimizer | Sequence[torch.optim.Optimizer], loss: torch.Tensor,
                   params: list[torch.nn.Parameter]) -> None:
    """One optimiser step on ``loss``: zero the gradients, backward, average them over ranks, make them finite
    (NaN → 0, ±inf → ±1e5: one bad batch must not poison Adam's moments for the rest of the run), step. Several
    optimisers (one backward for networks trained on the same loss, e.g. StyleMapGAN's E and G) all step."""
    opts = [opt] if isinstance(opt, torch.optim.Optimizer) else list(opt)
    for o in opts:
        o.zero_grad(set_to_none=True)
    loss.backward()
    allreduce_grads(params)
    for p in params:
        if p.grad is not None:
            torch.nan_to_num_(p.grad, nan=0.0, posinf=1e5, neginf=-1e5)
    for o in opts:
        o.step()


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
    """Rank 0's JSON-lines log and TensorBoard writer (TensorBoard only when the package is installed).

    ``purge_after``: the step a resumed run continues from; records of later steps (written before a kill, redone
    now) are dropped from ``log.jsonl`` and TensorBoard, so every step is logged once.
    """

    def __init__(self, run: Path, enabled: bool, purge_after: int | None = None) -> None:
        self.enabled = enabled
        self._file = None
        self._tb = None
        if not enabled:
            return
        path = run / "log.jsonl"
        if purge_after is not None and path.is_file():
            _truncate_log(path, purge_after)
        self._file = open(path, "a")
        try:
            from torch.utils.tensorboard import SummaryWriter

            kw = {"purge_step": purge_after + 1} if purge_after is not None else {}
            self._tb = SummaryWriter(str(run / "tensorboard"), **kw)
        except ImportError:  # tensorboard is optional
            pass

    def record(self, rec: dict[str, Any], prefix: str = "train") -> None:
        """Append ``rec`` (must hold "step") as one JSON line; numbers also go to TensorBoard as prefix/key."""
        if self._file is None:
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
            self._file = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _truncate_log(path: Path, step: int) -> None:
    """Keep the lines of ``path`` whose record's step is <= ``step`` (and lines that are not records)."""
    keep = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a kill mid-write
        if not isinstance(rec, dict) or not isinstance(rec.get("step"), int) or rec["step"] <= step:
            keep.append(line)
    atomic_write_text(path, "".join(line + "\n" for line in keep))


class RunFolder:
    """A run folder: ``config.yaml`` (resolved), ``log.jsonl``, ``tensorboard/``, ``samples/``,
    ``checkpoint-XXXXXXX.pt``; ``.lock`` while a trainer uses it.

    Only rank 0 writes. Checkpoints are written atomically (temporary file + rename) and the newest ``keep`` are
    kept, so a crash or a kill never leaves a half-written newest checkpoint.
    """

    def __init__(self, path: str | os.PathLike, config: Any = None, keep: int = 3) -> None:
        self.path, self.keep = Path(path), max(1, int(keep))
        self.rank = world()[0]
        self._lock_fd: int | None = None
        if self.rank == 0:
            _make_dir(self.path)
            if config is not None:
                self.write_config(config)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # -- locking ------------------------------------------------------------------------------------------------
    def lock(self) -> None:
        """Hold ``.lock`` (an advisory flock the OS drops when the process dies, even by SIGKILL); a second trainer
        on the same folder gets `RunFolderBusyError` instead of mixing two runs in one folder."""
        if self.rank != 0 or self._lock_fd is not None:
            return
        path = self.path / ".lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise RunFolderBusyError(f"{self.path}: another training run is using this folder (pid {holder}); "
                                     "wait for it to finish or choose another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._lock_fd, 0)
            os.close(self._lock_fd)  # closing drops the flock
            self._lock_fd = None

    def remove_stale_temporaries(self) -> list[Path]:
        """Delete the hidden ``.NAME.*.tmp`` files an atomic write leaves when its process is killed mid-write."""
        if self.rank != 0:
            return []
        stale = [p for p in self.path.rglob(".*.tmp") if p.is_file()]
        for p in stale:
            p.unlink(missing_ok=True)
        return stale

    # -- files --------------------------------------------------------------------------------------------------
    def write_config(self, config: Any) -> None:
        if self.rank == 0:
            _write(self.path / "config.yaml",
                   lambda p: p.write_text(yaml.safe_dump(to_dict(config), sort_keys=False), encoding="utf-8"))

    def checkpoints(self) -> list[Path]:
        return sorted(self.path.glob("checkpoint-*.pt"))

    def save_checkpoint(self, step: int, state: dict[str, Any]) -> Path | None:
        """Write ``state`` as checkpoint-<step>.pt (rank 0 only) and drop all but the newest ``keep``."""
        if self.rank != 0:
            return None
        path = self.path / f"checkpoint-{step:07d}.pt"
        _write(path, lambda p: torch.save(state, p))
        for old in self.checkpoints()[: -self.keep]:
            old.unlink(missing_ok=True)
        return path

    def load_latest(self, map_location: torch.device | str | None = None) -> dict[str, Any]:
        """The newest readable checkpoint (tensors only; ``weights_only=True``). A newest file that cannot be read
        (cut short by a full disk, damaged) is skipped with a warning for the one before it."""
        ckpts = self.checkpoints()
        if not ckpts:
            raise FileNotFoundError(f"{self.path}: no checkpoint to resume from")
        errors = []
        for path in reversed(ckpts):
            try:
                state = torch.load(path, map_location=map_location or "cpu", weights_only=True)
            except Exception as exc:  # one line naming the file, whatever torch raised
                errors.append(f"{path.name} ({type(exc).__name__}: {' '.join(str(exc).split())[:160]})")
                logger.warning("%s: cannot read checkpoint, trying the previous one (%s)", path, errors[-1])
                continue
            if not isinstance(state, dict) or "step" not in state:
                errors.append(f"{path.name} (not a stylebridge training checkpoint)")
                continue
            if errors:
                print(f"warning: skipped unreadable checkpoint(s) {', '.join(errors)}; resuming from {path.name}",
                      flush=True)
            return state
        raise ValueError(f"{self.path}: no readable checkpoint: {'; '.join(errors)}")

    def log(self, purge_after: int | None = None) -> RunLog:
        return RunLog(self.path, enabled=self.rank == 0, purge_after=purge_after)


def _make_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise NotADirectoryError(f"{path}: exists and is not a folder") from None
    except OSError as exc:
        raise OSError(exc.errno, f"cannot create the run folder ({exc.strerror})", str(path)) from None


def _write(path: Path, write: Any) -> None:
    """Atomic write with one-line errors naming the file (a full disk makes torch.save raise RuntimeError)."""
    try:
        atomic_write(path, write)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write ({exc.strerror or exc})", str(path)) from None
    except RuntimeError as exc:
        full = shutil.disk_usage(path.parent).free < 64 * 2**20
        why = "disk full" if full else " ".join(str(exc).split())[:200]
        raise OSError(errno.ENOSPC if full else errno.EIO, f"cannot write ({why})", str(path)) from None


class StopOnSignal:
    """Within the block, SIGINT / SIGTERM set a flag instead of killing the process, so the trainer can finish its
    step, write a checkpoint and stop. ``requested()`` is the flag, agreed on by every rank (rank 0 decides)."""

    def __init__(self) -> None:
        self._flag = False
        self.signum = signal.SIGTERM
        self._old: dict[int, Any] = {}

    def _on_signal(self, signum: int, frame: object) -> None:
        self._flag = True
        self.signum = signum

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


# ------------------------------------------------------------------------------------------------------------------
# The loop


def run_training(task: TrainTask, run_dir: str | os.PathLike, *, resume: bool = False, progress: bool = True,
                 max_steps_this_run: int | None = None) -> Any:
    """Train ``task`` until ``task.cfg.optim.steps`` (or ``max_steps_this_run`` more steps) in ``run_dir``.

    Without ``resume`` the folder must not hold checkpoints yet; with it, the newest readable one is loaded and
    training continues exactly. Returns ``task.result()``. Raises `TrainingInterrupted` after SIGINT / SIGTERM
    (checkpoint written), `RunFolderBusyError` when another trainer holds the folder.
    """
    started = init_distributed()
    try:
        out = _run(task, Path(run_dir), resume, progress, max_steps_this_run)
    except BaseException:
        if started:  # no barrier: the other ranks may be waiting in a collective that will never complete
            dist.destroy_process_group()
        raise
    if started:
        dist.barrier()
        dist.destroy_process_group()
    return out


def _run(task: TrainTask, run_dir: Path, resume: bool, progress: bool, max_steps_this_run: int | None) -> Any:
    cfg = task.cfg
    o, lg = cfg.optim, cfg.log
    _, n_proc = world()
    if o.batch % n_proc:
        raise ValueError(f"optim.batch {o.batch} must be divisible by the number of processes {n_proc}")
    if max_steps_this_run is not None and max_steps_this_run < 1:
        raise ValueError(f"max_steps_this_run must be >= 1, got {max_steps_this_run}")
    if resume and not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no checkpoint to resume from (no such folder)")
    run = RunFolder(run_dir, keep=lg.keep)
    run.lock()
    try:
        return _run_locked(task, run, resume, progress, max_steps_this_run)
    finally:
        run.unlock()


def _run_locked(task: TrainTask, run: RunFolder, resume: bool, progress: bool,
                max_steps_this_run: int | None) -> Any:
    cfg = task.cfg
    o, lg = cfg.optim, cfg.log
    rank, n_proc = world()
    if not resume and run.checkpoints():
        raise ValueError(f"{run.path} already holds checkpoints: use --resume {run.path} to continue it")
    stale = run.remove_stale_temporaries()
    if stale:
        logger.info("%s: removed %d temporary file(s) of an interrupted write", run.path, len(stale))

    torch.manual_seed(o.seed)
    task.setup()
    step, seconds = 0, 0.0
    if resume:
        ck = run.load_latest()
        task.load_state_dict(ck)
        for key, opt in task.optimizers().items():
            if key not in ck:
                raise ValueError(f"{run.path}: the checkpoint has no optimiser state {key!r} (another trainer's run?)")
            load_optimizer(opt, ck[key])
        step, seconds = int(ck["step"]), float(ck.get("seconds", 0.0))
        if "torch_rng" in ck:
            torch.set_rng_state(ck["torch_rng"].cpu())
    # Everything validated (config, models, checkpoint): only now is the folder's config replaced.
    run.write_config(cfg)

    def checkpoint() -> dict[str, Any]:
        ck: dict[str, Any] = dict(task.state_dict())
        ck.update({k: opt.state_dict() for k, opt in task.optimizers().items()})
        ck.update(step=step, seconds=seconds, config=json.dumps(to_dict(cfg)), torch_rng=torch.get_rng_state())
        return ck

    stop_at = o.steps if max_steps_this_run is None else min(o.steps, step + max_steps_this_run)
    kill_after = int(os.environ.get(FAULT_KILL_ENV, "-1"))
    bar = tqdm(total=o.steps, initial=step, desc=f"train {task.name}", unit="step",
               disable=not progress or rank != 0)
    t0, n0 = time.perf_counter(), step
    t_last = t0
    val: dict[str, float] = {}
    interrupted: StopOnSignal | None = None
    with StopOnSignal() as stop, run.log(purge_after=step if resume else None) as log, bar:
        log.record({"step": step, "event": "resume" if resume else "start", "world": n_proc, **task.start_record()},
                   prefix="event")
        while step < stop_at:
            stats = task.train_step(step)
            step += 1
            now = time.perf_counter()
            seconds += now - t_last  # this step plus the previous step's logging, grids and checkpoint
            t_last = now
            if rank == 0:
                rate = (step - n0) * o.batch / max(now - t0, 1e-9)
                bar.update(1)
                bar.set_postfix(img_s=f"{rate:.0f}", **task.postfix(stats))
                if step % lg.every == 0 or step == stop_at:
                    log.record({"step": step, "img_per_s": rate, "seconds": round(seconds, 1), **stats})
                if lg.grid and (step % lg.sample_every == 0 or step == stop_at):
                    grid = task.grid()
                    if grid is not None:
                        images, nrow = grid
                        save_grid(images, run.path / "samples" / f"step{step:07d}.png", nrow=nrow)
                        log.images("samples", images, step)
                if step % lg.sample_every == 0 or step == stop_at:
                    val = task.validate()
                    if val:
                        log.record({"step": step, **val}, prefix="val")
                extra = task.log_extra(step)
                if extra is not None:
                    log.record({"step": step, **extra[0]}, prefix=extra[1])
                    bar.write(f"step {step}: " + ", ".join(f"{k} {v}" for k, v in extra[0].items()))
            if step == kill_after:
                os.kill(os.getpid(), signal.SIGKILL)
            if rank == 0 and (step % lg.checkpoint_every == 0 or step == stop_at):
                run.save_checkpoint(step, checkpoint())
            if stop.requested():
                run.save_checkpoint(step, checkpoint())
                interrupted = stop
                break
    if n_proc > 1:  # the ranks must hold the same weights: check, and record the largest difference
        diff = max_param_difference(task.check_modules())
        if rank == 0:
            atomic_write_text(run.path / "ranks.json", json.dumps({"world": n_proc, "max_param_diff": diff}) + "\n")
    if interrupted is not None:
        raise TrainingInterrupted(interrupted.signum, step, run.path)
    if rank == 0 and step >= o.steps:
        meta: dict[str, Any] = {"steps": step, "batch": o.batch, "train_seconds": round(seconds)}
        if val:
            meta["val"] = {k: round(v, 6) for k, v in val.items()}
        task.export(run.path, meta)
    return task.result()
