"""Fast numerics equal their reference implementations, in value and in gradient."""

from __future__ import annotations

import pytest
import torch

from stylebridge import ops

KERNELS = {
    "sym4": ops.setup_filter([1, 3, 3, 1]),
    "asym3": ops.setup_filter([1, 2, 4]),
    "2d": torch.tensor([[1.0, 2.0], [0.5, -1.0]]),
}


@pytest.mark.parametrize("kname", list(KERNELS))
@pytest.mark.parametrize(
    "up,down,pad",
    [(1, 1, (1, 1)), (1, 2, (2, 1)), (2, 1, (2, 1)), (2, 1, (1, 1)), (2, 1, (0, -1)), (2, 2, (1, 2)),
     (1, 1, (-1, 2, 0, 3)), (4, 1, (3, 2)), (2, 1, (3, 3, 0, 1)), (1, 3, (0, 0))],
)
def test_upfirdn2d_matches_reference(kname, up, down, pad):
    k = KERNELS[kname] * up * up
    x = torch.randn(2, 5, 9, 7, dtype=torch.float64)
    ref = ops.upfirdn2d_ref(x, k.double(), up=up, down=down, pad=pad)
    fast = ops.upfirdn2d(x, k.double(), up=up, down=down, pad=pad)
    assert fast.shape == ref.shape
    torch.testing.assert_close(fast, ref, atol=1e-12, rtol=1e-12)


def test_upfirdn2d_channels_last_and_grad():
    k = ops.setup_filter([1, 3, 3, 1], gain=4)
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64, requires_grad=True)
    xc = x.detach().clone().contiguous(memory_format=torch.channels_last).requires_grad_(True)
    for fn in (ops.upfirdn2d_ref, ops.upfirdn2d):
        torch.testing.assert_close(fn(xc, k.double(), up=2, pad=(2, 1)), ops.upfirdn2d_ref(x, k.double(), up=2,
                                                                                          pad=(2, 1)))
    # Double backward (needed by R1 / path-length regularisation) through the fast path.
    assert torch.autograd.gradgradcheck(lambda t: ops.upfirdn2d(t, k.double(), up=2, pad=(2, 1)), (x,))
    assert torch.autograd.gradcheck(lambda t: ops.upfirdn2d(t, ops.setup_filter([1, 3, 3, 1]).double(), down=2,
                                                            pad=(1, 1)), (x,))


@pytest.mark.parametrize("up", [False, True])
@pytest.mark.parametrize("demodulate", [False, True])
@pytest.mark.parametrize("batch", [1, 3])
def test_modconv_grouped_equals_shared(up, demodulate, batch):
    x = torch.randn(batch, 6, 8, 8, dtype=torch.float64)
    w = torch.randn(5, 6, 3, 3, dtype=torch.float64) / 5
    s = torch.randn(batch, 6, dtype=torch.float64) + 1
    f = ops.setup_filter([1, 3, 3, 1], gain=4).double()
    a = ops.modulated_conv2d(x, w, s, demodulate=demodulate, up=up, resample_filter=f, mode="grouped")
    b = ops.modulated_conv2d(x, w, s, demodulate=demodulate, up=up, resample_filter=f, mode="shared")
    assert a.shape == (batch, 5, 16 if up else 8, 16 if up else 8)
    torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("mode", ["grouped", "shared"])
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("channels_last", [False, True])
def test_modconv_matches_explicit_formula_with_noise(mode, k, channels_last):
    """Against the textbook definition: per-sample weights w*s, demodulated, conv, plus noise."""
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64)
    weight = torch.randn(3, 4, k, k, dtype=torch.float64)
    s = torch.randn(2, 4, dtype=torch.float64)
    noise = torch.randn(2, 1, 6, 6, dtype=torch.float64)
    expected = []
    for b in range(2):
        wb = 0.5 * weight * s[b][None, :, None, None]
        wb = wb / torch.sqrt(wb.square().sum([1, 2, 3], keepdim=True) + 1e-8)
        expected.append(torch.nn.functional.conv2d(x[b : b + 1], wb, padding=k // 2))
    expected = torch.cat(expected) + noise
    xin = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    with torch.no_grad():
        out = ops.modulated_conv2d(xin, weight, s, weight_gain=0.5, mode=mode, noise=noise, padding=k // 2)
    torch.testing.assert_close(out, expected, atol=1e-10, rtol=1e-10)


def test_modconv_demodulation_normalises_output_channels():
    """With demodulation, unit-variance i.i.d. input gives roughly unit-variance output whatever the style scale."""
    x = torch.randn(1, 64, 32, 32)
    w = torch.randn(32, 64, 3, 3)
    for scale in (0.1, 10.0):
        out = ops.modulated_conv2d(x, w, torch.full((1, 64), scale), demodulate=True)
        assert 0.8 < float(out.std()) < 1.2


def test_modconv_rejects_bad_mode():
    with pytest.raises(ValueError, match="modconv mode"):
        ops.modulated_conv2d(torch.zeros(1, 2, 4, 4), torch.zeros(2, 2, 3, 3), torch.ones(1, 2), mode="fast")


def test_bias_act_gain_and_clamp():
    x = torch.tensor([[-1.0, 2.0]])
    b = torch.tensor([0.5, 0.5])
    out = ops.bias_act(x, b)
    torch.testing.assert_close(out, torch.tensor([[-0.5 * 0.2, 2.5]]) * 2**0.5)
    assert float(ops.bias_act(x * 100, b, clamp=3.0).max()) == 3.0


def test_setup_filter_and_filter_1d_roundtrip():
    k = ops.setup_filter([1, 3, 3, 1], gain=4)
    assert float(k.sum()) == pytest.approx(4.0)
    torch.testing.assert_close(ops.filter_1d(k).float(), torch.tensor([1.0, 3.0, 3.0, 1.0]))
    assert ops.filter_1d(torch.tensor([[1.0, 0.0], [0.0, 1.0]])) is None


@pytest.mark.parametrize("up", [False, True])
@pytest.mark.parametrize("demodulate", [True, False])
def test_modulated_conv_spatial_styles_constant_over_space_equal_vector_styles(up, demodulate):
    """Spatial styles [N, I, H, W] (what a stylemap generator modulates with) that are constant over the image give
    what the per-sample vector styles [N, I] give."""
    from stylebridge import ops

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 8, 8, generator=g)
    weight = torch.randn(5, 4, 3, 3, generator=g)
    styles = torch.rand(2, 4, generator=g) + 0.5
    f = ops.setup_filter((1, 3, 3, 1), gain=4.0)
    kw = dict(weight_gain=0.2, demodulate=demodulate, up=up, padding=1, resample_filter=f)
    ref = ops.modulated_conv2d(x, weight, styles, mode="shared", **kw)
    spatial = ops.modulated_conv2d(x, weight, styles[:, :, None, None].expand(-1, -1, 8, 8), **kw)
    torch.testing.assert_close(spatial, ref, atol=1e-5, rtol=1e-5)
    varying = (styles[:, :, None, None] * torch.linspace(0.5, 1.5, 8)[None, None, None, :]).expand(-1, -1, 8, -1)
    out = ops.modulated_conv2d(x, weight, varying, **kw)
    assert out.shape == ref.shape and not torch.allclose(out, ref, atol=1e-3)
    with pytest.raises(ValueError, match="spatial styles must be"):
        ops.modulated_conv2d(x, weight, styles[:, :, None, None].expand(-1, -1, 4, 4), **kw)


@pytest.mark.parametrize("up,k", [(False, 3), (True, 3), (False, 1)])
def test_lowrank_modulated_conv_equals_per_sample_weights(up, k):
    """PTI's factored path: W + U_n V_n per sample, exact demodulation, without per-sample weight tensors."""
    from stylebridge import ops

    g = torch.Generator().manual_seed(0)
    n, i, o, r = 3, 8, 5, 2
    x = torch.randn(n, i, 8, 8, generator=g, dtype=torch.float64)
    w = torch.randn(o, i, k, k, generator=g, dtype=torch.float64)
    u = torch.randn(n, o, r, generator=g, dtype=torch.float64) * 0.3
    v = torch.randn(n, r, i, k, k, generator=g, dtype=torch.float64) * 0.3
    s = torch.randn(n, i, generator=g, dtype=torch.float64)
    filt = ops.setup_filter([1, 3, 3, 1], gain=4.0).double()
    dense = w[None] + torch.einsum("nor,nrikl->noikl", u, v)
    kw = dict(weight_gain=0.3, up=up, padding=k // 2, resample_filter=filt, demodulate=k == 3)
    ref = ops.modulated_conv2d(x, dense, s, **kw)
    per = torch.cat([ops.modulated_conv2d(x[j : j + 1], dense[j], s[j : j + 1], **kw) for j in range(n)])
    torch.testing.assert_close(ref, per)
    torch.testing.assert_close(ops.modulated_conv2d_lowrank(x, w, u, v, s, **kw), ref)
