"""The shipped synthfaces-64 generator: loads by name, matches its recipe, and makes varied synthfaces."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import stylebridge
from stylebridge.core.registry import resolve
from stylebridge.metrics.frechet import (
    feature_extractor,
    frechet_distance,
    stats_of_generator,
    stats_of_synthfaces,
)
from stylebridge.models.stylegan2 import StyleGAN2Generator
from stylebridge.train.gan import build_models, load_gan_config

ROOT = Path(__file__).resolve().parents[2]
N = 500  # images per set: seconds on a CPU, and far apart enough to tell a trained generator from an untrained one


@pytest.fixture(scope="module")
def G() -> StyleGAN2Generator:
    model = stylebridge.load("synthfaces-64")
    assert isinstance(model, StyleGAN2Generator)
    return model.eval()


def test_architecture_is_the_shipped_config(G):
    cfg = load_gan_config(ROOT / "configs" / "gan" / "synthfaces-64.yaml")
    assert G.config.to_dict() == build_models(cfg)[0].config.to_dict()
    assert (resolve("synthfaces-64") / "MODEL_CARD.md").is_file()


def test_images_are_deterministic_and_in_range(G):
    z = torch.randn(4, G.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a = G(z, truncation_psi=0.7, noise_mode="const")
        b = G(z, truncation_psi=0.7, noise_mode="const")
    assert a.shape == (4, 3, 64, 64) and torch.isfinite(a).all()
    torch.testing.assert_close(a, b)
    # StyleGAN2 outputs are unbounded and callers clamp: this one overshoots on the flat, saturated synthfaces
    # colours (about a fifth of the pixels beyond ±1.1 at ψ 0.7), but stays within a few units.
    assert float(a.abs().amax()) < 4.0 and -1.0 < float(a.mean()) < 1.0


def test_closer_to_synthfaces_than_an_untrained_generator(G):
    # FD[synthfaces-domain] at 500 images per set (biased upwards at this n; the card reports 10k values).
    ex = feature_extractor("synthfaces-domain")
    real = stats_of_synthfaces(ex, N, progress=False)
    with torch.no_grad():
        fd_trained = frechet_distance(stats_of_generator(G, ex, N, progress=False), real)
        torch.manual_seed(0)
        untrained = StyleGAN2Generator(G.config).eval()
        untrained.compute_w_avg(1000)
        fd_untrained = frechet_distance(stats_of_generator(untrained, ex, N, progress=False), real)
    print(f"FD[synthfaces-domain]@{N}: shipped {fd_trained:.2f}, untrained {fd_untrained:.2f}")
    assert fd_trained < 10.0 and fd_trained < 0.35 * fd_untrained, (fd_trained, fd_untrained)
