from __future__ import annotations

import pytest
import torch

from stylebridge.data import synthfaces as sf
from stylebridge.models.stylegan2 import StyleGAN2Config, StyleGAN2Generator


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here on one thread (tests/conftest.py's ``one_thread``)."""
    yield


@pytest.fixture(scope="session")
def faces() -> torch.Tensor:
    """Three held-out synthfaces at 64 px, [3, 3, 64, 64] in [-1, 1]."""
    return sf.render_seeds([10_000_000, 10_000_001, 10_000_002], 64, outputs=("image",))["image"]


@pytest.fixture(scope="session")
def tiny_generator() -> StyleGAN2Generator:
    torch.manual_seed(0)
    G = StyleGAN2Generator(StyleGAN2Config(resolution=16, z_dim=32, w_dim=32, mapping_layers=2,
                                           channels=(32, 32, 16)))
    G.compute_w_avg(2000)
    return G.eval()
