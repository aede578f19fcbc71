"""Shared numerics of the StyleGAN2 family: FIR resampling, bias + activation, modulated convolution.

Every op here is pure PyTorch (no compiled extensions), differentiable to second order (R1 and path-length
regularisation need double backward), and runs on any device. Where a fast path exists, a reference
implementation that follows the original algorithm step by step stands beside it and the tests check that both
agree (`upfirdn2d_ref` vs `upfirdn2d`).

Shapes use NVlabs' letters: N batch, C channels, I/O input/output channels, H/W height/width, k kernel size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "LRELU_GAIN",
    "bias_act",
    "blur2d",
    "downsample2d",
    "filter_1d",
    "modulated_conv2d",
    "resolve_modconv_mode",
    "setup_filter",
    "upfirdn2d",
    "upfirdn2d_ref",
    "upsample2d",
]

LRELU_GAIN = math.sqrt(2.0)  # keeps the second moment of N(0,1) activations through leaky ReLU(0.2)


def setup_filter(kernel: Sequence[float] | torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    """Turn a 1-D FIR kernel into the normalised 2-D kernel StyleGAN2 uses.

    Args:
        kernel: 1-D taps (e.g. ``[1, 3, 3, 1]``) or an already 2-D kernel.
        gain: overall gain; upsampling by a factor ``u`` uses ``u**2`` so that a constant image stays constant.

    Returns:
        float32 tensor [kh, kw], the outer product of the taps, divided by its sum, times ``gain``.
    """
    k = torch.as_tensor(kernel, dtype=torch.float32)
    if k.ndim == 1:
        k = k[None, :] * k[:, None]
    if k.ndim != 2:
        raise ValueError(f"FIR kernel must be 1-D or 2-D, got shape {tuple(k.shape)}")
    k = k / k.sum()
    return k * gain


def filter_1d(kernel2d: torch.Tensor) -> torch.Tensor | None:
    """Return normalised 1-D taps ``t`` with ``outer(t, t) / sum == kernel2d / kernel2d.sum()``, or None.

    Used to recognise which 1-D blur kernel a checkpoint's stored 2-D buffer came from.
    """
    k = kernel2d.double() / kernel2d.double().sum()
    row = k.sum(dim=1)
    if not torch.allclose(torch.outer(row, row), k, atol=1e-7):
        return None
    return row / row[0] if row[0] != 0 else row


def _pad4(pad: int | Sequence[int]) -> tuple[int, int, int, int]:
    """(x0, x1, y0, y1) from an int, a (p0, p1) pair applied to both axes, or four values."""
    if isinstance(pad, int):
        return pad, pad, pad, pad
    pad = tuple(int(p) for p in pad)
    if len(pad) == 2:
        return pad[0], pad[1], pad[0], pad[1]
    if len(pad) == 4:
        return pad  # type: ignore[return-value]
    raise ValueError(f"padding must have 1, 2 or 4 entries, got {pad}")


def upfirdn2d_ref(
    x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1, pad: int | Sequence[int] = 0
) -> torch.Tensor:
    """Reference upsample → pad → FIR filter → downsample, step by step (the algorithm of the original code).

    Zeros are inserted after every sample (``up - 1`` of them), the result is padded (negative pads crop),
    convolved with ``kernel`` (a true convolution: the kernel is flipped for ``conv2d``) one channel at a time,
    and every ``down``-th sample is kept.

    Args:
        x: [N, C, H, W].
        kernel: [kh, kw] float kernel.
        pad: (x0, x1, y0, y1), a (p0, p1) pair for both axes, or one int.

    Returns:
        [N, C, (H*up + y0 + y1 - kh) // down + 1, (W*up + x0 + x1 - kw) // down + 1].
    """
    px0, px1, py0, py1 = _pad4(pad)
    n, c, h, w = x.shape
    kh, kw = kernel.shape
    out = x.reshape(n * c, h, 1, w, 1)
    out = F.pad(out, [0, up - 1, 0, 0, 0, up - 1])  # zero insertion
    out = out.reshape(n * c, 1, h * up, w * up)
    out = F.pad(out, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    out = out[:, :, max(-py0, 0) : out.shape[2] - max(-py1, 0), max(-px0, 0) : out.shape[3] - max(-px1, 0)]
    out = F.conv2d(out, torch.flip(kernel, [0, 1]).to(out.dtype).view(1, 1, kh, kw))
    out = out[:, :, ::down, ::down]
    return out.reshape(n, c, out.shape[2], out.shape[3])


def upfirdn2d(
    x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1, pad: int | Sequence[int] = 0
) -> torch.Tensor:
    """Fast upfirdn2d: same contract and result as `upfirdn2d_ref`, computed with depthwise convolutions.

    Upsampling uses a depthwise transposed convolution with stride ``up`` (no zeros are materialised, the kernel
    is applied polyphase), filtering and downsampling use a depthwise strided convolution. Both run as one
    grouped conv over all channels instead of the reference's per-channel reshape, which is what makes the
    reference slow (61% of the original generator's CPU time at 1024 px).
    """
    px0, px1, py0, py1 = _pad4(pad)
    c = x.shape[1]
    kh, kw = kernel.shape
    k = kernel.to(dtype=x.dtype, device=x.device)
    fmt = _memory_format(x)
    if up == 1:
        weight = torch.flip(k, [0, 1])[None, None].expand(c, 1, kh, kw).contiguous(memory_format=fmt)
        if px0 == px1 == py0 == py1 >= 0:  # let the conv pad: no padded copy of x
            return F.conv2d(x, weight, stride=down, padding=px0, groups=c)
        return F.conv2d(F.pad(x, [px0, px1, py0, py1]), weight, stride=down, groups=c)
    # Transposed conv = zero insertion followed by a true convolution, giving the "full" output of length
    # (h-1)*up + kh. upfirdn's output sample j is full[j + kh - 1 - pad0]; crop (or zero-pad) accordingly.
    weight = k[None, None].expand(c, 1, kh, kw).contiguous(memory_format=fmt)
    sy, sx = kh - 1 - py0, kw - 1 - px0
    ey, ex = up + py1 - kh, up + px1 - kw  # extra samples needed after the end of "full"
    if sy == sx == -ey == -ex and sy >= 0:
        out = F.conv_transpose2d(x, weight, stride=up, padding=sy, groups=c)
    else:
        out = F.conv_transpose2d(x, weight, stride=up, groups=c)
        out = F.pad(out, [-sx, ex, -sy, ey])
    if down > 1:
        out = out[:, :, ::down, ::down]
    return out


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    """channels_last when x is stored NHWC (oneDNN's depthwise kernels are several times faster there)."""
    if x.ndim == 4 and x.shape[1] > 1 and x.is_contiguous(memory_format=torch.channels_last) \
            and not x.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


def upsample2d(x: torch.Tensor, kernel: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Upsample [N, C, H, W] → [N, C, H*f, W*f] with the FIR ``kernel`` (already scaled by ``factor**2``)."""
    p = kernel.shape[0] - factor
    return upfirdn2d(x, kernel, up=factor, pad=((p + 1) // 2 + factor - 1, p // 2))


def downsample2d(x: torch.Tensor, kernel: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Downsample [N, C, H, W] → [N, C, H/f, W/f] with the FIR ``kernel``."""
    p = kernel.shape[0] - factor
    return upfirdn2d(x, kernel, down=factor, pad=((p + 1) // 2, p // 2))


def blur2d(x: torch.Tensor, kernel: torch.Tensor, pad: tuple[int, int]) -> torch.Tensor:
    """Filter [N, C, H, W] with ``kernel`` and padding (p0, p1) on both axes; no resampling."""
    return upfirdn2d(x, kernel, pad=pad)


def bias_act(
    x: torch.Tensor,
    bias: torch.Tensor | None = None,
    negative_slope: float = 0.2,
    gain: float = LRELU_GAIN,
    clamp: float | None = None,
    inplace: bool = False,
) -> torch.Tensor:
    """Leaky ReLU of ``x + bias`` times ``gain`` (StyleGAN2's "fused_lrelu"), optionally clamped to ±clamp.

    Args:
        x: [N, C, ...]; ``bias``: [C], broadcast along dim 1.
        clamp: NVlabs' ``conv_clamp`` (already multiplied by the gain); None disables it.
        inplace: may overwrite ``x`` when autograd does not need it (callers pass their own temporaries).
    """
    shape = (1, -1, *([1] * (x.ndim - 2)))
    if inplace and _may_overwrite(x):
        # Inference: two passes over x, no new allocations. lrelu(x + b) * g == lrelu(g*x + g*b) for g > 0.
        if bias is not None:
            torch.add((bias * gain).to(x.dtype).view(shape), x, alpha=gain, out=x)
        else:
            x.mul_(gain)
        F.leaky_relu_(x, negative_slope)
        return x.clamp_(-clamp, clamp) if clamp is not None else x
    if bias is not None:
        x = x + bias.to(x.dtype).view(shape)
    x = F.leaky_relu(x, negative_slope) * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


def resolve_modconv_mode(mode: str, batch: int) -> bool:
    """True when the per-sample grouped-weight path should run ("grouped"), False for "shared"."""
    if mode == "auto":
        return batch == 1
    if mode in ("grouped", "shared"):
        return mode == "grouped"
    raise ValueError(f"modconv mode must be 'auto', 'grouped' or 'shared', got {mode!r}")


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    *,
    weight_gain: float = 1.0,
    weight_sq: torch.Tensor | None = None,
    demodulate: bool = True,
    up: bool = False,
    padding: int = 1,
    resample_filter: torch.Tensor | None = None,
    mode: str = "auto",
    noise: torch.Tensor | None = None,
    eps: float = 1e-8,
) -> torch.Tensor:
    """StyleGAN2 modulated convolution (optionally followed by the noise addition, fused where it pays).

    Args:
        x: input activations [N, I, H, W] (NCHW or channels_last).
        weight: [O, I, k, k] as stored; the effective weight is ``weight * weight_gain``. Per-sample weights
            [N, O, I, k, k] (a generator tuned per image, PTI) take the grouped path.
        styles: per-sample input-channel scales [N, I] (the affine output; kept in fp32 by the caller), or spatial
            styles [N, I, H, W] — a scale per input pixel, as stylemap generators need. Spatial styles always take
            the "shared" path (scale the input, shared conv); their demodulation coefficients are computed per
            pixel, [N, O, H, W], which is exact where the styles are constant over the kernel's footprint.
        weight_gain: the equalised-learning-rate scale 1/sqrt(I*k*k), folded into the per-sample scales.
        weight_sq: optional precomputed ``weight.square().sum([2, 3])`` [O, I] (cached by callers at inference).
        demodulate: divide each output channel by the norm of its modulated weights (not for ToRGB).
        up: transposed conv with stride 2 followed by the FIR blur ``resample_filter`` (scaled by 4).
        padding: conv padding when ``up`` is False.
        mode: "grouped" builds per-sample weights [N*O, I, k, k] and runs one grouped conv (cheapest at batch 1);
            "shared" scales the input, runs one conv with the shared weight and demodulates the output
            (best at larger batches, and exportable to ONNX with a dynamic batch); "auto" picks grouped at N == 1.
        noise: already scaled noise [N or 1, 1, H', W'] added to the output (demodulation and noise are one
            multiply-add pass in "shared" mode at inference).

    Returns:
        [N, O, H', W'] with H' = H (or 2H when ``up``).
    """
    n, i, h, w = x.shape
    per_sample = weight.ndim == 5
    if per_sample and (weight.shape[0] != n or styles.ndim != 2):
        raise ValueError(f"per-sample weights {tuple(weight.shape)} need {n} samples and [N, I] styles")
    o, _, kh, kw = weight.shape[-4:]
    if styles.ndim == 4:
        return _modulated_conv2d_spatial(x, weight, styles, weight_gain, weight_sq, demodulate, up, padding,
                                         resample_filter, noise, eps)
    styles = styles.to(weight.dtype) * weight_gain  # [NI]
    dcoefs = None
    if demodulate:
        # sum_{i,k} (g*w[o,i,k] * s[n,i])^2 = sum_i (g*s[n,i])^2 * sum_k w[o,i,k]^2: an [N,I] x [I,O] product, so
        # the per-sample weights never need a second pass.
        wsq = weight.square().sum(dim=[-2, -1]) if weight_sq is None else weight_sq  # [O, I] or [N, O, I]
        # In fp32 even under bf16 autocast (as NVlabs under fp16): a product of sums of squares, and any rounding
        # of it scales whole output channels in the forward and the backward pass.
        with torch.autocast(styles.device.type, enabled=False):
            acc = torch.promote_types(styles.dtype, torch.float32)  # fp32, or fp64 for fp64 inputs
            s2 = styles.to(acc).square()
            energy = torch.bmm(wsq.to(acc), s2[:, :, None])[:, :, 0] if per_sample else s2 @ wsq.to(acc).t()
            dcoefs = torch.rsqrt(energy + eps).to(styles.dtype)  # [NO]
    if kh == kw == 1 and not up:
        # 1x1 (ToRGB): a batched matmul; oneDNN's conv is several times slower for so few output channels.
        scale = styles[:, None, :] if dcoefs is None else styles[:, None, :] * dcoefs[:, :, None]  # [NOI]
        wmat = ((weight[..., 0, 0] if per_sample else weight[None, :, :, 0, 0]) * scale).to(x.dtype)  # [NOI]
        if _memory_format(x) == torch.channels_last:
            out = torch.matmul(x.permute(0, 2, 3, 1), wmat.transpose(1, 2)[:, None]).permute(0, 3, 1, 2)  # NHWO
        else:
            out = torch.bmm(wmat, x.reshape(n, i, h * w)).reshape(n, o, h, w)
        dcoefs = None  # folded into wmat
    elif resolve_modconv_mode(mode, n) or per_sample:
        scale = styles[:, None, :]  # [N1I]
        if dcoefs is not None:
            scale = scale * dcoefs[:, :, None]  # [NOI]
        wgt = (weight if per_sample else weight[None]) * scale[..., None, None]  # [NOIkk], one pass over the weights
        x = x.reshape(1, n * i, h, w)
        fmt = _memory_format(x)
        if up:
            wgt = wgt.transpose(1, 2).reshape(n * i, o, kh, kw)  # conv_transpose wants [in, out/groups, k, k]
            out = F.conv_transpose2d(x, wgt.to(x.dtype).contiguous(memory_format=fmt), stride=2, groups=n)
        else:
            wgt = wgt.reshape(n * o, i, kh, kw).to(x.dtype).contiguous(memory_format=fmt)
            out = F.conv2d(x, wgt, padding=padding, groups=n)
        out = out.reshape(n, o, out.shape[2], out.shape[3])
        dcoefs = None  # already folded into the per-sample weights
    else:
        x = x * styles.to(x.dtype)[:, :, None, None]
        wgt = weight.to(x.dtype).contiguous(memory_format=_memory_format(x))
        if up:
            out = F.conv_transpose2d(x, wgt.transpose(0, 1), stride=2)
        else:
            out = F.conv2d(x, wgt, padding=padding)
    if up:
        if resample_filter is None:
            raise ValueError("modulated_conv2d(up=True) needs a resample_filter")
        p = (resample_filter.shape[0] - 2) - (kh - 1)
        out = blur2d(out, resample_filter, pad=((p + 1) // 2 + 1, p // 2 + 1))
    # Demodulation (a per-channel scale, which commutes with the blur) and noise: one multiply-add pass.
    if dcoefs is not None:
        d = dcoefs.to(out.dtype)[:, :, None, None]
        if noise is not None and _may_overwrite(out):
            return torch.addcmul(noise.to(out.dtype), out, d, out=out)
        out = out * d
    return _add_noise(out, noise)


def modulated_conv2d_lowrank(
    x: torch.Tensor,
    weight: torch.Tensor,
    factor_u: torch.Tensor,
    factor_v: torch.Tensor,
    styles: torch.Tensor,
    *,
    weight_gain: float = 1.0,
    demodulate: bool = True,
    up: bool = False,
    padding: int = 1,
    resample_filter: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
    eps: float = 1e-8,
) -> torch.Tensor:
    """`modulated_conv2d` with per-sample weights ``weight + factor_u[n] @ factor_v[n]`` (a low-rank change per
    sample: PTI's tuned generators, one per image), without building the N per-sample weight tensors.

    The shared weight runs as one batched conv on the modulated input; the low-rank part as a grouped conv with r
    output channels per sample, mapped back to O channels by ``factor_u``; the demodulation energy
    Σ_i s_i² Σ_k (W + UV)² is expanded into Σ s²W² + 2 Σ_r U·(W (s²V)) + Σ_{r,r'} U G U with G = V s² Vᵀ (r × r),
    so it stays exact. The same numbers as the per-sample path of `modulated_conv2d` (up to float rounding), at a
    fraction of its cost at batch > 1 (measured at batch 50, 256 channels at 8 px, one thread: 554 ms per-sample vs
    33 + 3 ms here).

    Args:
        weight: [O, I, k, k] as stored. factor_u: [N, O, r]. factor_v: [N, r, I, k, k].
        styles: [N, I]; the rest as `modulated_conv2d`.
    """
    n, i, h, w = x.shape
    o, _, kh, kw = weight.shape
    r = factor_u.shape[2]
    if factor_u.shape[:2] != (n, o) or factor_v.shape != (n, r, i, kh, kw) or styles.shape != (n, i):
        raise ValueError(f"low-rank factors {tuple(factor_u.shape)}, {tuple(factor_v.shape)} do not fit a batch of "
                         f"{n} through weight {tuple(weight.shape)}")
    s = styles.to(weight.dtype) * weight_gain  # [NI]
    xs = x * s.to(x.dtype)[:, :, None, None]
    wgt = weight.to(x.dtype)
    v = factor_v.to(x.dtype)
    if up:
        base = F.conv_transpose2d(xs, wgt.transpose(0, 1), stride=2)
        low = F.conv_transpose2d(xs.reshape(1, n * i, h, w), v.transpose(1, 2).reshape(n * i, r, kh, kw), stride=2,
                                 groups=n)
    else:
        base = F.conv2d(xs, wgt, padding=padding)
        low = F.conv2d(xs.reshape(1, n * i, h, w), v.reshape(n * r, i, kh, kw), padding=padding, groups=n)
    ho, wo = low.shape[2], low.shape[3]
    out = base + torch.bmm(factor_u.to(x.dtype), low.reshape(n, r, ho * wo)).reshape(n, o, ho, wo)
    if up:
        if resample_filter is None:
            raise ValueError("modulated_conv2d_lowrank(up=True) needs a resample_filter")
        p = (resample_filter.shape[0] - 2) - (kh - 1)
        out = blur2d(out, resample_filter, pad=((p + 1) // 2 + 1, p // 2 + 1))
    if demodulate:
        with torch.autocast(styles.device.type, enabled=False):  # in fp32, as `modulated_conv2d`
            acc = torch.promote_types(styles.dtype, torch.float32)
            s2 = s.to(acc).square()  # [NI]
            wf = weight.to(acc).reshape(o, i, kh * kw)
            vf = factor_v.to(acc).reshape(n, r, i, kh * kw)
            uf = factor_u.to(acc)
            e_base = s2 @ wf.square().sum(-1).t()  # [NO]
            sv = (vf * s2[:, None, :, None]).reshape(n * r, i * kh * kw)  # s²-weighted V
            cross = (sv @ wf.reshape(o, i * kh * kw).t()).reshape(n, r, o).transpose(1, 2)  # [N, O, r]
            gram = torch.bmm(sv.reshape(n, r, -1), vf.reshape(n, r, -1).transpose(1, 2))  # [N, r, r]
            energy = e_base + 2 * (uf * cross).sum(-1) + (torch.bmm(uf, gram) * uf).sum(-1)
            d = torch.rsqrt(energy.clamp_min(0) + eps)
        out = out * d.to(out.dtype)[:, :, None, None]
    return _add_noise(out, noise)


def _modulated_conv2d_spatial(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, weight_gain: float,
                              weight_sq: torch.Tensor | None, demodulate: bool, up: bool, padding: int,
                              resample_filter: torch.Tensor | None, noise: torch.Tensor | None,
                              eps: float) -> torch.Tensor:
    """`modulated_conv2d` with styles [N, I, H, W]: scale each input pixel, run the shared conv, demodulate per
    output pixel."""
    n, i, h, w = x.shape
    if styles.shape != (n, i, h, w):
        raise ValueError(f"spatial styles must be [N, I, H, W] = {(n, i, h, w)} like the input, got "
                         f"{tuple(styles.shape)}")
    kh = weight.shape[2]
    s = styles.to(weight.dtype) * weight_gain  # [NIHW]
    xs = x * s.to(x.dtype)
    wgt = weight.to(x.dtype).contiguous(memory_format=_memory_format(x))
    if up:
        if resample_filter is None:
            raise ValueError("modulated_conv2d(up=True) needs a resample_filter")
        out = F.conv_transpose2d(xs, wgt.transpose(0, 1), stride=2)
        p = (resample_filter.shape[0] - 2) - (kh - 1)
        out = blur2d(out, resample_filter, pad=((p + 1) // 2 + 1, p // 2 + 1))
    else:
        out = F.conv2d(xs, wgt, padding=padding)
    if demodulate:
        wsq = weight.square().sum(dim=[2, 3]) if weight_sq is None else weight_sq  # [OI]
        with torch.autocast(s.device.type, enabled=False):
            acc = torch.promote_types(s.dtype, torch.float32)
            d = torch.rsqrt(torch.einsum("nihw,oi->nohw", s.to(acc).square(), wsq.to(acc)) + eps)  # [NOHW]
        if d.shape[-2:] != out.shape[-2:]:  # up: the coefficient of each input pixel covers its 2x2 outputs
            d = F.interpolate(d, size=out.shape[-2:], mode="nearest")
        out = out * d.to(out.dtype)
    return _add_noise(out, noise)


def _may_overwrite(x: torch.Tensor) -> bool:
    """True when x (a temporary of ours) may be updated in place: autograd does not need it."""
    return not (torch.is_grad_enabled() and x.requires_grad)


def _add_noise(x: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
    if noise is None:
        return x
    return x.add_(noise.to(x.dtype)) if _may_overwrite(x) else x + noise.to(x.dtype)
