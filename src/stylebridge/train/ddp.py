"""Processes under ``torchrun``: the process group, this rank's place in it, and the collectives every trainer uses.

Trainers draw every random number for the *global* batch from one generator all ranks hold in the same state and
keep their interleaved slice (``rank::world``), and average gradients with `allreduce_grads`: N processes compute
what one process computes with the same global batch, up to float summation order.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

__all__ = [
    "allreduce_grads",
    "allreduce_mean",
    "broadcast_flag",
    "broadcast_module",
    "gather_with_grad",
    "init_distributed",
    "max_param_difference",
    "rank_slice",
    "world",
]


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


def rank_slice(t: torch.Tensor, device: torch.device | None = None) -> torch.Tensor:
    """This rank's interleaved slice ``t[rank::world]`` of a tensor drawn for the global batch (on ``device``)."""
    rank, n = world()
    t = t[rank::n]
    return t if device is None else t.to(device)


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


def max_param_difference(modules: list[torch.nn.Module]) -> float:
    """The largest difference between any rank's parameters and rank 0's (0.0 for one process)."""
    if world()[1] == 1:
        return 0.0
    params = torch.cat([p.detach().reshape(-1).float() for m in modules for p in m.parameters()])
    ref = params.clone()
    dist.broadcast(ref, src=0)
    diff = (params - ref).abs().max()
    dist.all_reduce(diff, op=dist.ReduceOp.MAX)
    return float(diff)


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sums every rank's gradient for this rank's part (gloo has no reduce_scatter, so
    the whole gradient is all-reduced and this rank keeps its slice)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        rank, n = world()
        parts = [torch.empty_like(x) for _ in range(n)]
        dist.all_gather(parts, x.contiguous())
        ctx.rank, ctx.size = rank, x.shape[0]
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.size : (ctx.rank + 1) * ctx.size]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Every rank's ``x`` [n_local, ...] concatenated in rank order → [n_local * world, ...], differentiable: each
    rank computes a loss over the whole global batch (e.g. contrastive negatives) and gets its slice's gradient
    summed over ranks. Equal local sizes required. ``x`` itself without torch.distributed."""
    if world()[1] == 1:
        return x
    return _GatherWithGrad.apply(x)
