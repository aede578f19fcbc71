"""Shared image filters: blur, smooth noise, JPEG round trips, colour matching."""

from __future__ import annotations

import torch

from stylebridge.core.filters import gaussian_blur, jpeg_roundtrip, match_colors, smooth_noise


def test_gaussian_blur_keeps_constants_and_mass():
    x = torch.full((2, 3, 16, 16), 0.3)
    torch.testing.assert_close(gaussian_blur(x, torch.tensor([1.0, 2.0]), 6), x)
    impulse = torch.zeros(1, 1, 21, 21)
    impulse[0, 0, 10, 10] = 1
    y = gaussian_blur(impulse, torch.tensor([1.5]), 6)
    assert abs(float(y.sum()) - 1) < 1e-4 and y[0, 0, 10, 10] < 0.1
    torch.testing.assert_close(gaussian_blur(impulse, torch.tensor([1e-6]), 3), impulse)


def test_smooth_noise_is_seeded_and_unit_scale():
    a = smooth_noise(3, 32, 4, torch.Generator().manual_seed(0), channels=2)
    b = smooth_noise(3, 32, 4, torch.Generator().manual_seed(0), channels=2)
    assert torch.equal(a, b) and a.shape == (3, 2, 32, 32)
    torch.testing.assert_close(a.flatten(1).std(1), torch.ones(3), atol=1e-4, rtol=0)
    # smooth: neighbours are close
    assert (a[..., 1:] - a[..., :-1]).abs().mean() < 0.3


def test_jpeg_roundtrip_degrades_with_quality():
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    lo = jpeg_roundtrip(x, torch.tensor([10, 10]))
    hi = jpeg_roundtrip(x, torch.tensor([95, 95]))
    assert lo.shape == x.shape and lo.min() >= -1 and lo.max() <= 1
    assert (hi - x).abs().mean() < (lo - x).abs().mean()
    gray = jpeg_roundtrip(x[:, :1], torch.tensor([50, 50]))
    assert gray.shape == (2, 1, 32, 32)


def test_match_colors_keeps_luma_and_takes_chroma():
    img = torch.rand(2, 3, 16, 16) * 2 - 1
    gray_ref = torch.rand(2, 1, 16, 16) * 2 - 1
    out = match_colors(img, gray_ref)
    assert torch.allclose(out[:, 0], out[:, 1], atol=1e-4) and torch.allclose(out[:, 1], out[:, 2], atol=1e-4)
    luma = lambda t: (t * torch.tensor([0.299, 0.587, 0.114])[None, :, None, None]).sum(1)  # noqa: E731
    torch.testing.assert_close(luma(out), luma(img).clamp(-1, 1), atol=1e-4, rtol=0)
    red = torch.zeros(2, 3, 16, 16)
    red[:, 0] = 0.8
    tinted = match_colors(img, red)
    assert (tinted[:, 0] - tinted[:, 2]).mean() > 0.3
