"""Sampling from a generator by seed: z as NVlabs' generate.py draws it, batched generation with progress."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from stylebridge.core.device import autocast
from stylebridge.core.seeds import parse_seeds, seed_to_z
from stylebridge.models.stylegan2 import StyleGAN2Generator

__all__ = ["generate_images", "parse_seeds", "seed_to_z"]


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
