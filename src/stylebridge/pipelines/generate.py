"""Sampling from a generator by seed: `GeneratorPipeline` (seeds or z → images, with z and w), and
`generate_images`, batched generation with a progress bar (what ``stylebridge generate`` runs).

z is drawn as NVlabs' generate.py draws it (``np.random.RandomState(seed).randn(z_dim)``), so a seed means the
same face in every tool.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from stylebridge.core.device import resolve_precision
from stylebridge.core.seeds import parse_seeds, seed_to_z
from stylebridge.models.stylegan2 import StyleGAN2Generator
from stylebridge.pipelines.base import InputSpec, Pipeline, PipelineResult, iter_batches, register_pipeline

__all__ = ["GeneratorPipeline", "generate_images", "parse_seeds", "seed_to_z"]

NOISE_MODES = ("const", "random", "none")


def check_truncation(truncation_psi: float) -> float:
    """A finite truncation psi, else a one-line ValueError (NaN or inf would render black images)."""
    if not isinstance(truncation_psi, (int, float)) or not math.isfinite(truncation_psi):
        raise ValueError(f"truncation_psi must be a finite number, got {truncation_psi!r}")
    return float(truncation_psi)


class GeneratorPipeline(Pipeline):
    """A StyleGAN2 generator: seeds (int64 [N]) or z (float [N, z_dim]) → images [N, img_channels, R, R] in about
    [-1, 1], latents ``z`` [N, z_dim] and ``w`` [N, w_dim] (after truncation).

    Options: ``truncation_psi`` (default 1.0: none; must be finite), ``noise_mode`` ("const" default, "random",
    "none"). The mapping network always runs in fp32 (outside any bf16 autocast the caller opened), the synthesis
    network in the caller's precision.
    """

    name = "generator"
    model_class = StyleGAN2Generator
    options = ("truncation_psi", "noise_mode")
    takes_images = False

    @property
    def input_spec(self) -> InputSpec:
        return InputSpec(channels=self.model.z_dim, size=0, range=(0.0, float(2**32 - 1)), kind="seeds")

    @property
    def device(self) -> torch.device:
        return self.model.w_avg.device

    def run(self, inputs: torch.Tensor, positions: Sequence[int], truncation_psi: float = 1.0,
            noise_mode: str = "const", **_: Any) -> PipelineResult:
        G = self.model
        psi = check_truncation(truncation_psi)
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        z = inputs if inputs.is_floating_point() else seed_to_z(inputs.tolist(), G.z_dim)
        z = z.to(self.device, torch.float32)
        with torch.autocast(self.device.type, enabled=False):  # mapping in fp32, as generate.py always did
            w = G.map(z, psi)
        images = G.synthesize(w, noise_mode=noise_mode).float()
        return PipelineResult(images=images, latents={"z": z, "w": w})


register_pipeline(StyleGAN2Generator, GeneratorPipeline)


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
    pipe = GeneratorPipeline(G)
    check_truncation(truncation_psi)
    prec = resolve_precision(precision, pipe.device)
    seeds = list(seeds)
    out = []
    with pipe.autocast(prec), tqdm(total=len(seeds), desc="generate", unit="img", disable=not progress) as bar:
        for sl in iter_batches(len(seeds), batch_size):
            res = pipe(torch.tensor(seeds[sl], dtype=torch.int64), truncation_psi=truncation_psi,
                       noise_mode=noise_mode)
            out.append(res.images.cpu())
            bar.update(len(res))
    return torch.cat(out) if out else torch.empty(0, G.config.img_channels, G.resolution, G.resolution)
