"""pSp's w-norm, e4e's delta regulariser, progressive schedule and latent discriminator (loss, R1, pool)."""

from __future__ import annotations

import math

import pytest
import torch

from stylebridge.losses import (
    LatentCodesPool,
    delta_loss,
    discriminated_rows,
    encoder_adversarial_loss,
    l2_loss,
    latent_d_loss,
    latent_r1_penalty,
    progressive_stage,
    progressive_steps,
    w_norm_loss,
)
from stylebridge.models.e4e import LatentDiscriminator, LatentDiscriminatorConfig


def test_w_norm_is_the_mean_frobenius_distance_to_the_latent_average():
    avg = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])  # [num_ws, w_dim]
    d = torch.zeros(2, 3, 2)
    d[0, 0] = torch.tensor([3.0, 4.0])  # ||.||_F = 5
    d[1, 1, 0], d[1, 2, 1] = 6.0, 8.0  # ||.||_F = 10
    assert float(w_norm_loss(avg + d, avg)) == pytest.approx(7.5)
    assert float(w_norm_loss(avg + d, avg[:1])) > 7.5  # a [1, w_dim] average broadcasts over rows
    assert float(l2_loss(torch.ones(1, 3, 2, 2), torch.zeros(1, 3, 2, 2))) == 1.0


def test_delta_regulariser_sums_active_deltas_norms():
    w = torch.zeros(2, 4, 3)
    w[:, 0] = 1.0
    w[0, 1] = torch.tensor([4.0, 5.0, 1.0])  # delta (3, 4, 0): 5
    w[1, 1] = 1.0  # delta 0
    w[:, 2] = torch.tensor([1.0, 1.0, 2.0])  # delta (0, 0, 1): 1 for both samples
    w[:, 3] = torch.tensor([11.0, 1.0, 1.0])  # delta 10 (not active before stage 3)
    total, terms = delta_loss(w, stage=2)
    assert [float(t) for t in terms] == [2.5, 1.0] and float(total) == 3.5
    assert float(delta_loss(w, stage=3)[0]) == 13.5
    assert float(delta_loss(w, stage=0)[0]) == 0 and float(delta_loss(w, stage=18)[0]) == 13.5
    assert float(delta_loss(w, stage=1, p=1)[0]) == pytest.approx((7 + 0) / 2)


def test_progressive_schedule_matches_e4e():
    steps = progressive_steps(6, start=2, every=1)
    assert steps == [0, 2, 3, 4, 5, 6]
    assert [progressive_stage(s, steps) for s in range(8)] == [0, 0, 1, 2, 3, 4, 5, 5]
    official = progressive_steps(18, start=20_000, every=2_000)  # e4e's FFHQ run (1024 px, 18 rows)
    assert len(official) == 18 and official[1] == 20_000 and official[-1] == 52_000
    assert progressive_stage(19_999, official) == 0 and progressive_stage(52_000, official) == 17
    assert discriminated_rows(6, 2) == [0, 1, 2] and discriminated_rows(6, None) == list(range(6))


def test_latent_discriminator_losses_and_r1():
    assert float(latent_d_loss(torch.zeros(4, 1), torch.zeros(4, 1))[0]) == pytest.approx(2 * math.log(2))
    D = LatentDiscriminator(LatentDiscriminatorConfig(w_dim=5, num_layers=1))  # D(w) = a·w + b
    a = D.mlp[0].weight.detach()
    w = torch.randn(3, 5)
    torch.testing.assert_close(latent_r1_penalty(D, w), a.square().sum())  # gradient a at every sample
    D4 = LatentDiscriminator(LatentDiscriminatorConfig(w_dim=5, num_layers=4))
    w.requires_grad_(True)
    pen = latent_r1_penalty(D4, w)
    pen.backward()  # differentiable in D's weights (create_graph)
    assert D4.mlp[0].weight.grad is not None
    w_plus = torch.randn(2, 4, 5)
    expected = sum(torch.nn.functional.softplus(-D4(w_plus[:, i])).mean() for i in (0, 1)) / 2
    torch.testing.assert_close(encoder_adversarial_loss(D4, w_plus, [0, 1]), expected)


def test_latent_codes_pool_follows_the_official_rules():
    pool = LatentCodesPool(2)
    codes = torch.arange(12.0).view(3, 2, 2)  # 3 samples × 2 rows × w_dim 2
    draws = (torch.tensor([1, 0, 1]), torch.tensor([0.9, 0.9, 0.1]), torch.tensor([0, 1, 1]))
    out = pool.query(codes, draws)
    # not full: the first two are stored and returned; the third (p ≤ 0.5) is returned as is
    assert torch.equal(out, torch.stack([codes[0, 1], codes[1, 0], codes[2, 1]]))
    draws = (torch.tensor([0]), torch.tensor([0.9]), torch.tensor([1]))  # full, p > 0.5: swap with slot 1
    out = pool.query(codes[:1] + 100, draws)
    assert torch.equal(out[0], codes[1, 0]) and torch.equal(pool.codes[1], codes[0, 0] + 100)
    state = pool.state_dict()
    again = LatentCodesPool(2)
    again.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(again.codes, pool.codes))
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    LatentCodesPool.draws(4, 3, 2, g1)
    LatentCodesPool.draws(4, 3, 0, g2)  # same amount of randomness whatever the pool state
    assert torch.equal(g1.get_state(), g2.get_state())
    assert torch.equal(LatentCodesPool(0).query(codes, draws), codes)
