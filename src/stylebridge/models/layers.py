"""The layers every generator, discriminator and encoder of stylebridge is built from (StyleGAN2's equalised
learning rate, modulated convolutions, FIR resampling), in one place.

Attribute names follow rosinality's stylegan2-pytorch (the implementation pSp, e4e, ReStyle and HyperStyle embed),
so the models' state dicts load with ``strict=True``. `ModulatedConv2d` takes per-sample styles [N, I] or spatial
styles [N, I, H, W] (a style per pixel, as stylemap-based generators need).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from stylebridge import ops

__all__ = [
    "Blur",
    "ConstantInput",
    "ConvLayer",
    "EqualConv2d",
    "EqualLinear",
    "FusedLeakyReLU",
    "ModulatedConv2d",
    "NoiseInjection",
    "PixelNorm",
    "ResBlock",
    "StyledConv",
    "ToRGB",
]




class PixelNorm(nn.Module):
    """Normalise each latent to unit second moment: z * rsqrt(mean(z**2) + 1e-8). [N, D] → [N, D]."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z * torch.rsqrt(torch.mean(z**2, dim=1, keepdim=True) + 1e-8)


class EqualLinear(nn.Module):
    """Fully connected layer with equalised learning rate (weights stored /lr_mul, scaled at run time)."""

    def __init__(
        self, in_dim: int, out_dim: int, bias: bool = True, bias_init: float = 0.0, lr_mul: float = 1.0,
        activation: bool = False,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init))) if bias else None
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias * self.lr_mul if self.bias is not None else None
        if self.activation:
            return ops.bias_act(F.linear(x, self.weight * self.scale), bias)
        return F.linear(x, self.weight * self.scale, bias)


class EqualConv2d(nn.Module):
    """Conv with equalised learning rate; optional FIR blur + stride 2 for downsampling is done by the caller."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 bias: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.scale = 1 / math.sqrt(in_ch * kernel_size**2)
        self.stride, self.padding = stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, stride=self.stride, padding=self.padding)


class FusedLeakyReLU(nn.Module):
    """Bias + leaky ReLU(0.2) × sqrt(2), optionally clamped."""

    def __init__(self, channels: int, clamp: float | None = None) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))
        self.clamp = clamp

    def forward(self, x: torch.Tensor, inplace: bool = False) -> torch.Tensor:
        return ops.bias_act(x, self.bias, clamp=self.clamp, inplace=inplace)


class ModulatedConv2d(nn.Module):
    """Weight [1, O, I, k, k] (rosinality's layout), modulated per sample by an affine map of w."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, w_dim: int, demodulate: bool = True,
                 upsample: bool = False, blur_kernel: Sequence[float] = (1, 3, 3, 1)) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, out_ch, in_ch, kernel_size, kernel_size))
        self.modulation = EqualLinear(w_dim, in_ch, bias_init=1.0)
        self.scale = 1 / math.sqrt(in_ch * kernel_size**2)
        self.demodulate, self.upsample, self.padding = demodulate, upsample, kernel_size // 2
        self.register_buffer("resample_filter", ops.setup_filter(blur_kernel, gain=4.0), persistent=False)
        self._wsq_cache: tuple[tuple, torch.Tensor] | None = None
        # Added to ``weight`` while set ([1, O, I, k, k]: one tuned generator; [N, O, I, k, k]: one per sample; or
        # low-rank factors (U [N, O, r], V [N, r, I, k, k]), one per sample): PTI's tuned weights, applied without
        # copying the generator (`stylebridge.invert.delta`).
        self.weight_delta: torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None = None

    def weight_sq(self) -> torch.Tensor:
        """sum over the kernel of weight**2, [O, I]; cached while the weight is unchanged and autograd is off."""
        if torch.is_grad_enabled() or self.weight.is_inference():
            # inference tensors (a model built under torch.inference_mode) keep no version counter to key a cache on
            return self.weight[0].square().sum(dim=[2, 3])
        key = (self.weight.data_ptr(), self.weight._version, self.weight.device, self.weight.dtype)
        if self._wsq_cache is None or self._wsq_cache[0] != key:
            self._wsq_cache = (key, self.weight[0].square().sum(dim=[2, 3]))
        return self._wsq_cache[1]

    def forward(self, x: torch.Tensor, styles: torch.Tensor, mode: str = "auto",
                noise: torch.Tensor | None = None) -> torch.Tensor:
        """x [N, I, H, W], styles [N, I] (output of ``self.modulation``) or spatial styles [N, I, H, W]
        → [N, O, H', W'] (+ scaled noise)."""
        if isinstance(self.weight_delta, tuple):
            u, v = self.weight_delta
            return ops.modulated_conv2d_lowrank(
                x, self.weight[0], u, v, styles, weight_gain=self.scale, demodulate=self.demodulate,
                up=self.upsample, padding=self.padding, resample_filter=self.resample_filter, noise=noise)
        if self.weight_delta is not None:
            weight = self.weight + self.weight_delta.to(self.weight.dtype)
            return ops.modulated_conv2d(
                x, weight[0] if weight.shape[0] == 1 else weight, styles, weight_gain=self.scale,
                demodulate=self.demodulate, up=self.upsample, padding=self.padding,
                resample_filter=self.resample_filter, mode=mode, noise=noise)
        return ops.modulated_conv2d(
            x, self.weight[0], styles, weight_gain=self.scale,
            weight_sq=self.weight_sq() if self.demodulate else None, demodulate=self.demodulate,
            up=self.upsample, padding=self.padding, resample_filter=self.resample_filter, mode=mode, noise=noise,
        )


class NoiseInjection(nn.Module):
    """Learned per-layer noise strength; the addition itself is fused into the modulated conv."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, noise: torch.Tensor | None) -> torch.Tensor | None:
        """Scaled noise [N or 1, 1, H, W] (small), or None."""
        return None if noise is None else self.weight * noise


class ConstantInput(nn.Module):
    def __init__(self, channels: int, size: int = 4) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, size, size))

    def forward(self, batch: int) -> torch.Tensor:
        return self.input.expand(batch, -1, -1, -1)


class StyledConv(nn.Module):
    """Modulated conv → noise → bias + leaky ReLU."""

    def __init__(self, in_ch: int, out_ch: int, w_dim: int, upsample: bool = False,
                 blur_kernel: Sequence[float] = (1, 3, 3, 1), clamp: float | None = None) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, out_ch, 3, w_dim, upsample=upsample, blur_kernel=blur_kernel)
        self.noise = NoiseInjection()
        # NVlabs clamps the activation output (after the sqrt(2) gain) to ±conv_clamp.
        self.activate = FusedLeakyReLU(out_ch, clamp=clamp)

    def forward(self, x: torch.Tensor, styles: torch.Tensor, noise: torch.Tensor | None, mode: str) -> torch.Tensor:
        # The conv output is a fresh tensor owned here, so inference may update it in place.
        return self.activate(self.conv(x, styles, mode, noise=self.noise(noise)), inplace=True)


class ToRGB(nn.Module):
    """1×1 modulated conv (no demodulation) + bias, added to the upsampled running image (skip architecture)."""

    def __init__(self, in_ch: int, w_dim: int, img_channels: int = 3, upsample: bool = True,
                 blur_kernel: Sequence[float] = (1, 3, 3, 1), clamp: float | None = None) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, img_channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, img_channels, 1, 1))
        self.clamp = clamp
        if upsample:
            self.register_buffer("upsample_filter", ops.setup_filter(blur_kernel, gain=4.0), persistent=False)
        else:
            self.upsample_filter = None

    def forward(self, x: torch.Tensor, styles: torch.Tensor, skip: torch.Tensor | None, mode: str) -> torch.Tensor:
        # The running image is accumulated in fp32 even under bf16 autocast: it sums contributions of every scale.
        out = self.conv(x, styles, mode).float() + self.bias
        if self.clamp is not None:
            out = out.clamp(-self.clamp, self.clamp)
        if skip is not None:
            with torch.autocast(out.device.type, enabled=False):  # an FIR conv: autocast would round it to bf16
                out = out + ops.upsample2d(skip.to(out.dtype), self.upsample_filter)
        return out


class ConvLayer(nn.Sequential):
    """rosinality's ConvLayer: [Blur] → EqualConv2d → [FusedLeakyReLU], as a Sequential (its state-dict names)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, downsample: bool = False,
                 blur_kernel: Sequence[float] = (1, 3, 3, 1), bias: bool = True, activate: bool = True,
                 clamp: float | None = None) -> None:
        layers: list[nn.Module] = []
        if downsample:
            p = (len(blur_kernel) - 2) + (kernel_size - 1)
            layers.append(Blur(blur_kernel, pad=((p + 1) // 2, p // 2)))
            layers.append(EqualConv2d(in_ch, out_ch, kernel_size, stride=2, bias=bias and not activate))
        else:
            layers.append(EqualConv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2,
                                      bias=bias and not activate))
        if activate:
            layers.append(FusedLeakyReLU(out_ch, clamp=clamp))
        super().__init__(*layers)


class Blur(nn.Module):
    def __init__(self, kernel: Sequence[float], pad: tuple[int, int]) -> None:
        super().__init__()
        self.register_buffer("resample_filter", ops.setup_filter(kernel), persistent=False)
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ops.blur2d(x, self.resample_filter, self.pad)


class ResBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, blur_kernel: Sequence[float], clamp: float | None) -> None:
        super().__init__()
        self.conv1 = ConvLayer(in_ch, in_ch, 3, clamp=clamp)
        self.conv2 = ConvLayer(in_ch, out_ch, 3, downsample=True, blur_kernel=blur_kernel, clamp=clamp)
        self.skip = ConvLayer(in_ch, out_ch, 1, downsample=True, blur_kernel=blur_kernel, activate=False, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2)
