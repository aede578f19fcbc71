"""Inversion by optimisation (NVlabs' projector recipe): schedule, loss, start codes, spaces, budget, noise."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from stylebridge.invert import OptimizeInverter, make_inverter
from stylebridge.invert.optimize import noise_regularization, projector_lr, w_noise_scale, w_statistics


def test_lr_schedule_is_the_projectors() -> None:
    steps = 1000
    lr = [projector_lr(s / steps) for s in (0, 50, 750, 1000)]  # 0, 5 %, 75 %, 100 % of the steps
    assert lr == [0.0, pytest.approx(0.1), pytest.approx(0.1), pytest.approx(0.0, abs=1e-12)]
    assert projector_lr(0.025) == pytest.approx(0.05)  # halfway up the linear ramp
    assert projector_lr(0.875) == pytest.approx(0.05)  # halfway down the cosine
    assert projector_lr(0.5, lr=0.2) == pytest.approx(0.2)
    assert w_noise_scale(0.0, 10.0) == pytest.approx(0.5)  # 0.05 σ
    assert w_noise_scale(0.375, 10.0) == pytest.approx(0.5 * 0.25)  # quadratic ramp
    assert w_noise_scale(0.75, 10.0) == 0.0 and w_noise_scale(0.9, 10.0) == 0.0


def test_w_statistics(tiny_generator) -> None:
    mean, std = w_statistics(tiny_generator, 1000)
    with torch.no_grad():
        w = tiny_generator.map(torch.randn(1000, 32, generator=torch.Generator().manual_seed(123)))
    assert torch.allclose(mean, w.mean(0), atol=1e-5)
    assert std == pytest.approx(float(((w - w.mean(0)).square().sum() / 1000).sqrt()), rel=1e-4)


def test_loss_falls_on_synthfaces(faces) -> None:
    inv = make_inverter("optimize", steps=20)
    res = inv.invert(faces)
    assert res.w_plus.shape == (3, 10, 256) and res.w_plus.dtype == torch.float32
    assert res.images.shape == (3, 3, 64, 64)
    ex = res.extras
    assert ex["steps"] == 20 and len(ex["loss_curve"]) == 20
    assert "synthfaces-domain" in ex["perceptual"]
    assert (ex["loss"] < 0.5 * ex["loss_start"]).all(), (ex["loss_start"], ex["loss"])
    assert ex["loss_curve"][-5:].mean() < 0.5 * ex["loss_curve"][:2].mean()
    # the reconstruction is render(w_plus), and its loss is the reported one
    assert torch.equal(inv.render(res.w_plus), res.images)
    assert torch.allclose(inv.image_loss(res.images, faces), ex["loss"])
    assert "noise" not in ex  # synthfaces-64 was trained without noise: no noise maps, no regulariser
    assert inv.noise_layers == []


def test_optimize_e4e_starts_at_e4e_and_improves(faces) -> None:
    e4e = make_inverter("e4e")
    start = e4e.invert(faces)
    inv = make_inverter("optimize-e4e", steps=20)  # defaults: lr 0.01, no w noise (the start is already close)
    res = inv.invert(faces)
    ex = res.extras
    assert torch.allclose(ex["loss_start"], inv.image_loss(start.images, faces), atol=1e-6)
    assert (ex["loss"] < ex["loss_start"]).all(), (ex["loss_start"], ex["loss"])
    # explicit start codes give the same run
    again = make_inverter("optimize", generator=e4e.generator, steps=20, lr=0.01, w_noise=0.0).invert(
        faces, start=start.w_plus)
    assert torch.allclose(again.w_plus, res.w_plus, atol=1e-6)


def test_w_and_w_plus_spaces(tiny_generator) -> None:
    x = torch.rand(2, 3, 32, 32) * 2 - 1  # resized to the generator's 16 px
    G = tiny_generator
    w = OptimizeInverter(G, steps=3, space="w").invert(x)
    wp = OptimizeInverter(G, steps=3, space="w+").invert(x)
    for r in (w, wp):
        assert r.w_plus.shape == (2, G.num_ws, 32) and r.images.shape == (2, 3, 16, 16)
    assert torch.equal(w.w_plus, w.w_plus[:, :1].expand_as(w.w_plus))  # one w per image, on every row
    assert not torch.equal(wp.w_plus, wp.w_plus[:, :1].expand_as(wp.w_plus))
    assert not torch.equal(w.w_plus[0], w.w_plus[1])  # each image its own latent
    with pytest.raises(ValueError, match="space"):
        OptimizeInverter(G, space="z")


def test_images_do_not_interact(tiny_generator) -> None:
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    inv = OptimizeInverter(tiny_generator, steps=4, w_noise=0.0)
    both = inv.invert(x).w_plus
    one = inv.invert(x[1:]).w_plus
    assert torch.allclose(both[1:], one, atol=1e-4)


def test_time_budget_stops_early(tiny_generator) -> None:
    res = OptimizeInverter(tiny_generator, steps=10_000, seconds=0.2).invert(torch.zeros(1, 3, 16, 16))
    assert 1 <= res.extras["steps"] < 10_000 and res.extras["seconds"] < 5
    with pytest.raises(ValueError, match="seconds"):
        OptimizeInverter(tiny_generator, seconds=-1)


def test_noise_is_optimised_and_regularised_where_the_generator_has_noise(tiny_generator) -> None:
    G = copy.deepcopy(tiny_generator)
    with torch.no_grad():
        G.convs[0].noise.weight.fill_(0.1)
    inv = OptimizeInverter(G, steps=3)
    assert inv.noise_layers == [1]
    res = inv.invert(torch.zeros(2, 3, 16, 16))
    noise = res.extras["noise"]
    assert len(noise) == G.config.num_noise and noise[1].shape == (2, 1, 8, 8)
    for m in noise:  # renormalised after every step
        assert torch.allclose(m.mean(dim=(1, 2, 3)), torch.zeros(2), atol=1e-5)
        assert torch.allclose(m.square().mean(dim=(1, 2, 3)), torch.ones(2), atol=1e-4)
    assert torch.equal(inv.render(res.w_plus, noise), res.images)
    # the regulariser: ~0 for white noise, large for a smooth map
    white = torch.randn(1, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    smooth = torch.ones(1, 1, 64, 64)
    assert float(noise_regularization([white])[0]) < 1e-3 < float(noise_regularization([smooth])[0])


def test_bf16_generator(tiny_generator) -> None:
    res = OptimizeInverter(tiny_generator, steps=2, precision="bf16").invert(torch.zeros(1, 3, 16, 16))
    assert res.w_plus.dtype == torch.float32 and res.images.dtype == torch.float32
    assert math.isfinite(float(res.extras["loss"][0]))
