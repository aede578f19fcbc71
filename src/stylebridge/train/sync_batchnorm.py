"""Batch norm with statistics over the global batch of all ranks, on the CPU (gloo) as on CUDA.

Encoders with BatchNorm (IR-SE, ResNet) trained under ``torchrun`` would otherwise normalise each rank's slice
with its own statistics, so N processes would not compute what one process with the same global batch computes.
PyTorch's ``SyncBatchNorm`` only runs on accelerators; `sync_batchnorm` switches the BatchNorm2d layers of a
module to `SyncBatchNorm2d` (same parameters, buffers and state-dict keys) while training under torch.distributed
and `unsync_batchnorm` switches them back. Outside torch.distributed, or in eval mode, it is plain BatchNorm2d.

Forward: per channel, the sums of x and x² and the element count are all-reduced; mean and biased variance
normalise, the running statistics take the unbiased variance (as BatchNorm2d). Backward: the per-channel sums of
dy and dy·x̂ are all-reduced (the gradient of the global batch's loss needs them); the weight and bias gradients
stay local, to be averaged with the other parameters' gradients (``allreduce_grads``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["SyncBatchNorm2d", "sync_batchnorm", "unsync_batchnorm"]


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class _SyncBN(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        xf = x.float()
        c = x.shape[1]
        local = torch.cat([xf.sum(dim=(0, 2, 3)), xf.square().sum(dim=(0, 2, 3)),
                           torch.tensor([x.numel() / c], dtype=torch.float32, device=x.device)])
        dist.all_reduce(local)
        count = local[-1]
        mean = local[:c] / count
        var = (local[c : 2 * c] / count - mean.square()).clamp_min(0)
        invstd = torch.rsqrt(var + eps)
        xhat = (xf - mean[None, :, None, None]) * invstd[None, :, None, None]
        y = xhat * weight.float()[None, :, None, None] + bias.float()[None, :, None, None]
        ctx.save_for_backward(xhat, invstd, weight)
        ctx.count = count
        unbiased = var * count / (count - 1).clamp_min(1)
        return y.to(x.dtype), mean, unbiased

    @staticmethod
    def backward(ctx: Any, gy: torch.Tensor, _gm: Any, _gv: Any) -> tuple[Any, ...]:
        xhat, invstd, weight = ctx.saved_tensors
        g = gy.float()
        c = g.shape[1]
        sum_dy = g.sum(dim=(0, 2, 3))
        sum_dy_xhat = (g * xhat).sum(dim=(0, 2, 3))
        both = torch.cat([sum_dy, sum_dy_xhat])
        dist.all_reduce(both)
        mean_dy = both[:c] / ctx.count
        mean_dy_xhat = both[c:] / ctx.count
        gx = (g - mean_dy[None, :, None, None] - xhat * mean_dy_xhat[None, :, None, None])
        gx = gx * (weight.float() * invstd)[None, :, None, None]
        return gx.to(gy.dtype), sum_dy_xhat.to(weight.dtype), sum_dy.to(weight.dtype), None


class SyncBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training-mode statistics cover every rank's batch (see the module docstring)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and _active()):
            return super().forward(x)
        if not (self.affine and self.track_running_stats):
            raise NotImplementedError("SyncBatchNorm2d supports affine BatchNorm2d with running statistics")
        y, mean, var = _SyncBN.apply(x, self.weight, self.bias, self.eps)
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            self.running_mean.mul_(1 - m).add_(mean.to(self.running_mean.dtype), alpha=m)
            self.running_var.mul_(1 - m).add_(var.to(self.running_var.dtype), alpha=m)
        return y


def sync_batchnorm(module: nn.Module) -> int:
    """Switch every plain BatchNorm2d inside ``module`` to `SyncBatchNorm2d` in place (same parameter objects).
    Returns how many were switched."""
    n = 0
    for m in module.modules():
        if type(m) is nn.BatchNorm2d:
            m.__class__ = SyncBatchNorm2d
            n += 1
    return n


def unsync_batchnorm(module: nn.Module) -> int:
    """Undo `sync_batchnorm`."""
    n = 0
    for m in module.modules():
        if type(m) is SyncBatchNorm2d:
            m.__class__ = nn.BatchNorm2d
            n += 1
    return n
