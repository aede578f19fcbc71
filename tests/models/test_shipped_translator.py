"""The shipped synthfaces-64-actmap translator: loads by name and does what its card says."""

from __future__ import annotations

import pytest
import torch

import stylebridge
from stylebridge.data import synthfaces as sf
from stylebridge.models.actmap import ActivationMapTranslator
from stylebridge.registry import resolve
from stylebridge.train.actmap import validate


@pytest.fixture(scope="module")
def tr() -> ActivationMapTranslator:
    model = stylebridge.load("synthfaces-64-actmap")
    assert isinstance(model, ActivationMapTranslator)
    return model.eval()


def test_card_and_generator_match_the_shipped_generator(tr):
    assert (resolve("synthfaces-64-actmap") / "MODEL_CARD.md").is_file()
    G = stylebridge.load("synthfaces-64")
    assert tr.generator.config.to_dict() == G.config.to_dict()
    for (name, a), (_, b) in zip(tr.generator.state_dict().items(), G.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, msg=name)


def test_generated_pairs_are_reconstructed(tr):
    # The card measures 32.2 dB on 500 pairs; 64 pairs vary by a few tenths.
    assert validate(tr, 64)["img_psnr"] > 30.0


def test_sketches_translate_closer_to_their_faces_than_to_other_faces(tr):
    out = sf.render_seeds(list(range(9_000_000, 9_000_016)), 64, outputs=("image", "sketch"))
    with torch.no_grad():
        faces = tr.translate(out["sketch"]).clamp(-1, 1)  # 1-channel sketches: translate repeats them to RGB
    assert faces.shape == (16, 3, 64, 64)
    net = stylebridge.load("synthfaces-domain")
    with torch.no_grad():
        own = net.distance(faces, out["image"]).mean()
        other = net.distance(faces, out["image"].roll(1, 0)).mean()
    assert float(own) < float(other)
