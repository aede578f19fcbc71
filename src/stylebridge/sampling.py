"""Sampling from a generator by seed: z as NVlabs' generate.py draws it, batched generation with progress."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from stylebridge.models.stylegan2 import StyleGAN2Generator
from stylebridge.runtime import autocast

__all__ = ["generate_images", "parse_seeds", "seed_to_z"]


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


@torch.no_grad()
def generate_images(
    G: StyleGAN2Generator,
    seeds: Sequence[int],
    truncation_psi: float = 1.0,
    noise_mode: str = "const",
    batch_size: int = 8,
    precision: str = "auto",
    progress: bool = True,
) -> torch.Tensor:
    """Render one image per seed: [len(seeds), C, H, W] float32 in about [-1, 1], on the CPU."""
    device = G.w_avg.device
    z = seed_to_z(seeds, G.z_dim)
    out = []
    with tqdm(total=len(seeds), desc="generate", unit="img", disable=not progress) as bar:
        for start in range(0, len(seeds), batch_size):
            zb = z[start : start + batch_size].to(device)
            w = G.map(zb, truncation_psi)
            with autocast(device, precision):
                out.append(G.synthesize(w, noise_mode=noise_mode).float().cpu())
            bar.update(len(zb))
    return torch.cat(out)
