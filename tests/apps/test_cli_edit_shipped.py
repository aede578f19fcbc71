"""`stylebridge edit` with the shipped directions, by short name, with every inverter: on held-out rendered faces
the judge reads more of the attribute at the positive strength than at the negative one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import stylebridge
from stylebridge.apps.cli import main
from stylebridge.core.imageio import save_image
from stylebridge.data import synthfaces as sf
from stylebridge.edit.finders import attribute_scores

pytestmark = pytest.mark.usefixtures("one_thread")

FACES = [10_000_010, 10_000_011, 10_000_012, 10_000_013]


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("faces")
    for seed, img in zip(FACES, sf.render_seeds(FACES, 64, outputs=("image",))["image"]):
        save_image(img, out / f"f{seed}.png")
    return out


def _read(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1).float() / 127.5 - 1


@pytest.mark.parametrize("inverter", ["psp", "e4e", "optimize", "optimize-e4e"])
@pytest.mark.parametrize("short", ["smile", "glasses", "blond_hair"])
def test_shipped_direction_moves_its_attribute(faces, tmp_path, inverter, short):
    d = stylebridge.load(f"synthfaces-64-{short}", expect=stylebridge.Direction)
    hi = d.config.strength_range[1]
    steps = ["--steps", "30"] if inverter.startswith("optimize") else []
    assert main(["edit", "--images", str(faces), "--inverter", inverter, *steps, "--direction", short,
                 f"--strength=-{hi:g},{hi:g}", "--out", str(tmp_path), "--quiet"]) == 0
    net = stylebridge.load("synthfaces-domain")
    down = torch.stack([_read(tmp_path / f"f{s}_s-{hi:g}.png") for s in FACES])
    up = torch.stack([_read(tmp_path / f"f{s}_s{hi:g}.png") for s in FACES])
    with torch.no_grad():
        gain = attribute_scores(net, up, d.config.attribute) - attribute_scores(net, down, d.config.attribute)
    assert float(gain.mean()) > 0.2, (short, inverter, gain)
