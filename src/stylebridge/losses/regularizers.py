"""Latent regularisers of pSp and e4e, and e4e's progressive training schedule.

* `w_norm_loss` — pSp's ``WNormLoss(start_from_latent_avg=True)``: the codes start from the latent average, so
  the penalty is the Frobenius norm of (W+ - latent_avg) per sample, averaged over the batch.
* `delta_loss` — e4e's delta regulariser: sum over the active deltas i = 1 … stage of
  ``mean_n ||w_i - w_0||_p`` (encoder4editing ``training/coach.py`` at master: ``range(1, stage + 1)``).
* `progressive_steps` / `progressive_stage` — e4e's schedule (``scripts/train.py`` ``setup_progressive_steps``):
  stage 0 (only w) from step 0, delta 1 from ``progressive_start``, one more delta every
  ``progressive_step_every`` steps, until all num_ws - 1 deltas train.
"""

from __future__ import annotations

import torch

__all__ = ["delta_loss", "progressive_stage", "progressive_steps", "w_norm_loss"]


def w_norm_loss(w_plus: torch.Tensor, latent_avg: torch.Tensor) -> torch.Tensor:
    """pSp's w-norm: W+ [N, num_ws, w_dim] and latent_avg [num_ws or 1, w_dim] (or [w_dim]) →
    ``sum_n ||w_plus[n] - latent_avg||_F / N`` (a scalar, fp32)."""
    if w_plus.ndim != 3:
        raise ValueError(f"w_norm_loss expects W+ [N, num_ws, w_dim], got {tuple(w_plus.shape)}")
    d = (w_plus.float() - latent_avg.float()).flatten(1)
    return d.norm(2, dim=1).sum() / w_plus.shape[0]


def delta_loss(w_plus: torch.Tensor, stage: int, p: float = 2.0) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """e4e's delta regulariser on W+ [N, num_ws, w_dim] whose rows 1..stage hold w + delta_i.

    Returns (total, [term_1, …, term_stage]) with ``term_i = mean_n ||w_plus[n, i] - w_plus[n, 0]||_p``
    (``p`` = the official ``delta_norm``, 2 by default). Stage 0 (or more than num_ws - 1) clips to the rows there.
    """
    if w_plus.ndim != 3:
        raise ValueError(f"delta_loss expects W+ [N, num_ws, w_dim], got {tuple(w_plus.shape)}")
    first = w_plus[:, 0].float()
    terms = [torch.linalg.vector_norm(w_plus[:, i].float() - first, ord=p, dim=1).mean()
             for i in range(1, min(stage, w_plus.shape[1] - 1) + 1)]
    total = torch.stack(terms).sum() if terms else w_plus.new_zeros((), dtype=torch.float32)
    return total, terms


def progressive_steps(num_ws: int, start: int, every: int) -> list[int]:
    """e4e's ``progressive_steps``: [0, start, start + every, …], num_ws entries (entry i starts stage i)."""
    if num_ws < 1 or start < 0 or every < 0:
        raise ValueError(f"need num_ws >= 1, start >= 0 and every >= 0, got {num_ws}, {start}, {every}")
    return [0] + [start + k * every for k in range(num_ws - 1)]


def progressive_stage(step: int, steps: list[int]) -> int:
    """The stage at training step ``step``: the largest i with steps[i] <= step (e4e sets stage i when its step
    counter reaches steps[i], and again from the step count when resuming)."""
    stage = 0
    for i, s in enumerate(steps):
        if step >= s:
            stage = i
    return stage
