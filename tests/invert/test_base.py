"""The inverter interface: registry, and the encoders as inverters (their pipelines' codes, bit for bit)."""

from __future__ import annotations

import pytest
import torch

from stylebridge.formats.loading import load
from stylebridge.invert import (
    EncoderInverter,
    Inversion,
    Inverter,
    inverter_names,
    make_inverter,
    register_inverter,
)
from stylebridge.invert.base import _INVERTERS, resize_to
from stylebridge.pipelines.encoder import EncoderPipeline


def test_registry_names_and_errors(tiny_generator) -> None:
    assert {"psp", "e4e", "optimize", "optimize-e4e"} <= set(inverter_names())
    with pytest.raises(ValueError, match=r"unknown inverter 'nope'.*e4e.*optimize"):
        make_inverter("nope")

    class Mean(Inverter):
        name = "mean"

        def invert(self, images: torch.Tensor) -> Inversion:
            x = self.check_images(images)
            w = self.generator.broadcast_ws(self.generator.w_avg[None].expand(len(x), -1)).clone()
            return Inversion(w_plus=w, images=self.render(w))

    register_inverter("mean", lambda model=None, generator=None, **o: Mean(generator))
    try:
        inv = make_inverter("mean", generator=tiny_generator)
        assert "mean" in inverter_names()
        res = inv.invert(torch.zeros(2, 3, 40, 40))  # any size: resized to the generator's
        assert res.w_plus.shape == (2, tiny_generator.num_ws, 32) and res.images.shape == (2, 3, 16, 16)
        with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
            inv.invert(torch.zeros(3, 16, 16))
    finally:
        _INVERTERS.pop("mean")


@pytest.mark.parametrize("name", ["psp", "e4e"])
def test_encoder_inverters_equal_their_pipelines(name, faces) -> None:
    inv = make_inverter(name)
    assert isinstance(inv, EncoderInverter) and inv.name == name
    res = inv.invert(faces)
    ref = EncoderPipeline(load(f"synthfaces-64-{name}-inversion"))(faces)
    assert torch.equal(res.w_plus, ref.latents["w_plus"])
    assert torch.equal(res.images, ref.images)
    assert torch.equal(inv.render(res.w_plus), res.images)  # render is the decoder with its stored noise
    assert inv.metadata()["model"] == f"synthfaces-64-{name}-inversion"
    # larger inputs are resized to the encoder's input size
    big = torch.nn.functional.interpolate(faces, size=(128, 128), mode="nearest")
    assert torch.equal(inv.invert(big).w_plus, EncoderPipeline(inv.encoder)(resize_to(big, 64)).latents["w_plus"])
    assert float((inv.invert(big).w_plus - res.w_plus).abs().mean()) < 0.1


def test_encoder_inverter_refuses_generator_and_options(tiny_generator) -> None:
    with pytest.raises(ValueError, match="own decoder"):
        make_inverter("e4e", generator=tiny_generator)
    with pytest.raises(ValueError, match="no option steps"):
        make_inverter("psp", steps=5)
    with pytest.raises(ValueError, match="not a model"):
        make_inverter("optimize", model="synthfaces-64-e4e-inversion")
    with pytest.raises(ValueError, match="RGB encoder"):
        make_inverter("psp", model="synthfaces-64-psp-sketch")
