"""The shipped pSp / e4e encoders for synthfaces-64: load by name (fp16 files, generator shared with the shipped
synthfaces-64) and do what their cards say on held-out faces."""

from __future__ import annotations

import pytest
import torch

import stylebridge
from stylebridge.core.registry import resolve
from stylebridge.data import synthfaces as sf
from stylebridge.evaluate.encoder import latent_statistics
from stylebridge.models.e4e import E4E
from stylebridge.models.psp import PSP

SEEDS = list(range(10_000_000, 10_000_024))  # held out, as the cards


@pytest.fixture(scope="module")
def faces() -> dict[str, torch.Tensor]:
    return sf.render_seeds(SEEDS, 64, outputs=("image", "sketch"))


@pytest.mark.parametrize("name,cls,channels", [("synthfaces-64-psp-inversion", PSP, 3),
                                               ("synthfaces-64-e4e-inversion", E4E, 3),
                                               ("synthfaces-64-psp-sketch", PSP, 1)])
def test_loads_by_name_with_the_shipped_generator(name, cls, channels):
    model = stylebridge.load(name)
    assert isinstance(model, cls) and model.config.encoder.in_channels == channels
    assert (resolve(name) / "MODEL_CARD.md").is_file()
    assert next(model.encoder.parameters()).dtype == torch.float32  # stored fp16, loaded fp32
    G = stylebridge.load("synthfaces-64")
    for (k, a), (_, b) in zip(model.decoder.state_dict().items(), G.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


def test_inversion_reconstructs_and_e4e_codes_stay_near_w(faces):
    x = faces["image"]
    G = stylebridge.load("synthfaces-64")
    with torch.no_grad():
        mean_face = G.synthesize(G.w_avg[None], noise_mode="const")
    baseline = float((mean_face - x).square().mean())  # what an encoder that ignores its input scores
    stats = {}
    for name in ("synthfaces-64-psp-inversion", "synthfaces-64-e4e-inversion"):
        model = stylebridge.load(name).eval()
        with torch.no_grad():
            w_plus = model.encode(x)
            mse = float((model.decode(w_plus) - x).square().mean())
        assert mse < 0.05 < baseline, (name, mse, baseline)  # cards: 0.020 (pSp), 0.029 (e4e) on 500 faces
        stats[name] = latent_statistics(w_plus, model.decoder, n_real=2000)
    psp, e4e = stats["synthfaces-64-psp-inversion"], stats["synthfaces-64-e4e-inversion"]
    assert e4e["to_nearest_w"] < 0.75 * psp["to_nearest_w"]
    assert e4e["to_w_avg"] < 1.3 * e4e["to_w_avg_real"]


def test_sketch_model_translates_sketches_better_than_inversion(faces):
    sketch = stylebridge.load("synthfaces-64-psp-sketch").eval()
    psp = stylebridge.load("synthfaces-64-psp-inversion").eval()
    with torch.no_grad():
        from_sketch = sketch(faces["sketch"], resize=False)
        via_inversion = psp(faces["sketch"].expand(-1, 3, -1, -1), resize=False)
    assert from_sketch.shape == (len(SEEDS), 3, 64, 64)
    err = {k: float((v - faces["image"]).square().mean()) for k, v in (("sketch", from_sketch),
                                                                       ("inversion", via_inversion))}
    assert err["sketch"] < 0.8 * err["inversion"], err  # card: 0.142 vs 0.320 on 500 faces
