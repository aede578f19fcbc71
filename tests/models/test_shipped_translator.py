"""The shipped synthfaces-64-actmap translator: loads by name and does what its card says."""

from __future__ import annotations

import pytest
import torch

import stylebridge
from stylebridge.core.registry import resolve
from stylebridge.data import synthfaces as sf
from stylebridge.data.emoji import find_emoji_font
from stylebridge.evaluate.translation import emoji_realism, translator_fn
from stylebridge.models.actmap import ActivationMapTranslator
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


@pytest.mark.skipif(find_emoji_font() is None,
                    reason="emoji font missing: apt-get install fonts-noto-color-emoji")
def test_emoji_translate_towards_synthfaces(tr):
    # The card: FD[synthfaces-domain] of all 319 emoji against 5,000 faces, 39.4 untranslated, 19.4 translated.
    # 1,000 faces here (faster); the gap is wide enough for either size.
    res = emoji_realism({"actmap": translator_fn(tr)}, n_real=1000)
    d = res["distances"]
    assert d["actmap"] < 0.7 * d["emoji (untranslated)"]


def test_photo_style_faces_translate_towards_their_own_face(tr):
    # Out of domain with known truth (issue 19): the same faces drawn as photos, and tight grayscale close-ups
    # aligned back into the layout; each translation is nearer its own clean face than the next one's.
    from stylebridge.evaluate.inputs import make_inputs

    net = stylebridge.load("synthfaces-domain")
    for kind in ("photo", "closeup"):
        b = make_inputs(kind, list(range(9_000_100, 9_000_116)))
        with torch.no_grad():
            faces = tr.translate(b.rgb).clamp(-1, 1)
            own = net.distance(faces, b.target).mean()
            other = net.distance(faces, b.target.roll(1, 0)).mean()
        assert float(own) < float(other), kind
