"""Pictures of a direction: rows are seeds, columns strengths — how a user sees what a direction does."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from stylebridge.core.seeds import seed_to_z
from stylebridge.models.direction import Direction
from stylebridge.models.stylegan2 import StyleGAN2Generator

__all__ = ["direction_grid", "strengths_for"]


def strengths_for(direction: Direction, columns: int = 7) -> list[float]:
    """``columns`` strengths evenly spread over the direction's suggested range (0 included when odd)."""
    lo, hi = direction.config.strength_range
    if columns < 2:
        return [0.0]
    return [round(lo + (hi - lo) * i / (columns - 1), 4) for i in range(columns)]


@torch.no_grad()
def direction_grid(G: StyleGAN2Generator, direction: Direction, seeds: Sequence[int], strengths: Sequence[float],
                   truncation_psi: float = 0.7, layers: str | Sequence[int] | None = None) -> torch.Tensor:
    """Images [len(seeds) · len(strengths), C, R, R] in about [-1, 1], seed-major (one row per seed when tiled with
    ``nrow=len(strengths)``): each seed's W+ moved by each strength, rendered with constant noise."""
    w = G.map(seed_to_z(list(seeds), G.z_dim).to(G.w_avg.device), truncation_psi)
    w_plus = G.broadcast_ws(w)
    rows = []
    for i in range(len(seeds)):
        edits = torch.cat([direction.apply(w_plus[i : i + 1], s, layers) for s in strengths])
        rows.append(G.synthesize(edits, noise_mode="const").float().cpu())
    return torch.cat(rows)
