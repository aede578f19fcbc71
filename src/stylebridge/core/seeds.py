"""Seeds: NVlabs-compatible latents from seeds, seed-range parsing, and the one held-out seed range.

Training on synthfaces draws faces from seeds below `HELD_OUT_SEED`; every evaluation (model cards, `stylebridge
evaluate`, validation grids) uses seeds from it upward, so no evaluated face was ever trained on.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["HELD_OUT_SEED", "parse_seeds", "seed_to_z"]

HELD_OUT_SEED = 10_000_000  # evaluation seeds start here; training seeds are drawn below it


def parse_seeds(text: str) -> list[int]:
    """'0-3,7,10-11' → [0, 1, 2, 3, 7, 10, 11] (non-negative seeds). Raises ValueError naming the bad part."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()) or (sep and int(hi) < int(lo)):
            raise ValueError(f"invalid seed range {part!r} (use e.g. '0-15' or '1,5,9'; seeds are >= 0)")
        seeds.extend(range(int(lo), int(hi) + 1) if sep else [int(lo)])
    if not seeds:
        raise ValueError(f"no seeds in {text!r}")
    return seeds


def seed_to_z(seeds: Sequence[int], z_dim: int) -> torch.Tensor:
    """[len(seeds), z_dim] float32 latents, ``np.random.RandomState(seed).randn(z_dim)`` per seed — the same z
    NVlabs' generate.py uses, so seeds mean the same faces across tools."""
    return torch.from_numpy(np.stack([np.random.RandomState(s % 2**32).randn(z_dim) for s in seeds])).float()
