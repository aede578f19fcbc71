from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


@pytest.fixture
def one_thread():
    """One torch thread for the test (fixed reduction order: bitwise-equal runs), restored afterwards. Use it with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    for line in (GOLDEN / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        actual = hashlib.sha256((GOLDEN / name).read_bytes()).hexdigest()
        assert actual == digest, f"golden file {name} is corrupt (sha256 {actual[:12]}…, expected {digest[:12]}…)"
    return GOLDEN


@pytest.fixture(scope="session")
def golden_io(golden_dir):
    from safetensors.torch import load_file

    return load_file(str(golden_dir / "stylegan2_io.safetensors"))


@pytest.fixture(scope="session")
def golden_ckpt(golden_dir) -> Path:
    return golden_dir / "stylegan2_010000.pt"


def save_tiny_generator(path: Path, z_dim: int = 16, w_avg_samples: int = 500) -> Path:
    """A random 16-px StyleGAN2 (z = w = ``z_dim``, channels 32, 32, 16, seeded) saved natively at ``path``: the
    frozen generator of the encoder and translator training tests, as a user's generator folder would be."""
    from stylebridge import StyleGAN2Config, StyleGAN2Generator

    torch.manual_seed(0)
    G = StyleGAN2Generator(StyleGAN2Config(resolution=16, z_dim=z_dim, w_dim=z_dim, mapping_layers=2,
                                           channels=(32, 32, 16)))
    G.compute_w_avg(w_avg_samples)
    G.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def astronaut() -> Path:
    """scikit-image's astronaut photo (a real face, public domain), found without importing scikit-image; the test
    is skipped when it is not installed."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("skimage")
    except (ImportError, ValueError):
        spec = None
    for loc in (spec.submodule_search_locations or []) if spec else []:
        if (Path(loc) / "data" / "astronaut.png").is_file():
            return Path(loc) / "data" / "astronaut.png"
    pytest.skip("no real face photo: scikit-image (its astronaut.png) not installed")
