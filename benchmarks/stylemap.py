"""StyleMapGAN editing speed: edits/s of one local edit — encode(source) + encode(reference) + mix every stylecode
level under a mask (W+, the official default for local edits) + decode — beside the official code path, in one run.

Rows: 64 px (the synthfaces-64 StyleMapGAN: the shipped ``synthfaces-64-stylemapgan`` when it loads, else random
weights of configs/stylemapgan/synthfaces-64.yaml — 32×8×8 stylemap, official channels ÷ 8; the speed is the same)
and 256 px (random weights at the official CelebA-HQ config: 64×8×8 stylemap, channel multiplier 2, 8 mapping
layers, lr_mul 0.01, normal generator), batch 1 and 8, fp32 and bf16 (``torch.autocast("cpu", torch.bfloat16)``):

* ``ours``: ``model.local_edit(model.encode(src), model.encode(ref), mask, "w_plus")`` (what
  `stylebridge.edit.stylemap.edit_pair` runs);
* ``reference``: naver-ai/StyleMapGAN@3a70e07 ``training/model.py`` re-implemented op for op below, its CUDA ops
  replaced by the reference implementations of the same files (``upfirdn2d_native`` of ``op/upfirdn2d.py`` for every
  blur, on [N·C, H, W, 1] as the CUDA wrapper reshapes; ``fused_leaky_relu`` as bias add + leaky ReLU(0.2) × √2):
  ``e_ema(src)``, ``e_ema(ref)``, ``g_ema([w1, w2], input_is_stylecode=True, mix_space="w_plus", mask=mask)`` —
  per-sample repeated weights and grouped convs in every modulated and transposed conv, an ``nn.LayerNorm`` built per
  call, ``nn.MaxPool2d`` + ``repeat`` + ``torch.where`` per stylecode level, as the official code does.

Before timing, our weights are loaded into the reference (the parameter names are the official ones; only the
official FIR ``kernel`` buffers are the reference's own) and, for every resolution and batch, the fp32 edits of the
two paths must agree (max abs diff < 1e-4), as must the stylemaps. When the golden files are present (tests/golden,
else ../shared/golden), the reference loaded with the official checkpoint ``stylemapgan_010000.pt`` must also
reproduce the official outputs (stylemaps, reconstructions, generation from z, W and W+ local edits).

Timings are the best of ``--repeats`` runs (the checking run is the warm-up), ms per edit = time / batch; "vs ref" is
ours against the reference in the same precision and the same run (shared cloud CPUs change speed from minute to
minute). bf16 rows add the PSNR of the edit against the fp32 edit of the same path.

Targets (issue 17): ≥ 30 edits/s at 64 px batch 1 on 2 cores; ≥ 2× the official code at 256 px in fp32.

    python benchmarks/stylemap.py                       # everything (256 px takes many minutes on 2 CPU cores)
    python benchmarks/stylemap.py --res 64 --batch 1 --precision fp32 --quick
    python benchmarks/stylemap.py --res 256 --batch 1 --precision fp32 --repeats 2
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from _common import best_time, machine_info, write_results
from stylebridge.models.stylemapgan import StyleMapGAN, StyleMapGANConfig

ROOT = Path(__file__).resolve().parent.parent
CONFIG_64 = ROOT / "configs" / "stylemapgan" / "synthfaces-64.yaml"
GOLDEN_DIRS = (ROOT / "tests" / "golden", ROOT.parent / "shared" / "golden")
BLUR = [1, 3, 3, 1]
CHECK_ATOL = 1e-4

# ---------------------------------------------------------------------------------------------------------------------
# The reference path: naver-ai/StyleMapGAN training/model.py (3a70e07), its CUDA ops replaced by the reference
# implementations in training/op/upfirdn2d.py and fused_act.py. Module and parameter names are the official ones.
# ---------------------------------------------------------------------------------------------------------------------


def make_kernel(k: Sequence[float]) -> torch.Tensor:
    k = torch.tensor(k, dtype=torch.float32)
    if k.ndim == 1:
        k = k[None, :] * k[:, None]
    k /= k.sum()
    return k


def upfirdn2d_native(input, kernel, up_x, up_y, down_x, down_y, pad_x0, pad_x1, pad_y0, pad_y1):
    """training/op/upfirdn2d.py ``upfirdn2d_native``, verbatim: input [B, H, W, minor]."""
    _, in_h, in_w, minor = input.shape
    kernel_h, kernel_w = kernel.shape
    out = input.view(-1, in_h, 1, in_w, 1, minor)
    out = F.pad(out, [0, 0, 0, up_x - 1, 0, 0, 0, up_y - 1])
    out = out.view(-1, in_h * up_y, in_w * up_x, minor)
    out = F.pad(out, [0, 0, max(pad_x0, 0), max(pad_x1, 0), max(pad_y0, 0), max(pad_y1, 0)])
    out = out[:, max(-pad_y0, 0) : out.shape[1] - max(-pad_y1, 0), max(-pad_x0, 0) : out.shape[2] - max(-pad_x1, 0), :]
    out = out.permute(0, 3, 1, 2)
    out = out.reshape([-1, 1, in_h * up_y + pad_y0 + pad_y1, in_w * up_x + pad_x0 + pad_x1])
    w = torch.flip(kernel, [0, 1]).view(1, 1, kernel_h, kernel_w)
    out = F.conv2d(out, w)
    out = out.reshape(-1, minor, in_h * up_y + pad_y0 + pad_y1 - kernel_h + 1,
                      in_w * up_x + pad_x0 + pad_x1 - kernel_w + 1)
    out = out.permute(0, 2, 3, 1)
    return out[:, ::down_y, ::down_x, :]


def upfirdn2d(input, kernel, up=1, down=1, pad=(0, 0)):
    """The official ``upfirdn2d`` with ``UpFirDn2d.apply`` (CUDA) replaced by ``upfirdn2d_native``, the tensor
    handled as the CUDA wrapper does ([N, C, H, W] → [N·C, H, W, 1] → [N, C, H', W'])."""
    _, channel, in_h, in_w = input.shape
    out = upfirdn2d_native(input.reshape(-1, in_h, in_w, 1), kernel, up, up, down, down, pad[0], pad[1], pad[0],
                           pad[1])
    return out.reshape(-1, channel, out.shape[1], out.shape[2])


def fused_leaky_relu(input, bias, negative_slope=0.2, scale=2**0.5):
    """The CPU reference of ``fused_leaky_relu``: bias add, leaky ReLU, × √2."""
    rest_dim = [1] * (input.ndim - bias.ndim - 1)
    return F.leaky_relu(input + bias.view(1, bias.shape[0], *rest_dim), negative_slope=negative_slope) * scale


class FusedLeakyReLU(nn.Module):
    def __init__(self, channel):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channel))

    def forward(self, input):
        return fused_leaky_relu(input, self.bias)


class PixelNorm(nn.Module):
    def forward(self, input):
        return input * torch.rsqrt(torch.mean(input**2, dim=1, keepdim=True) + 1e-8)


class ConstantInput(nn.Module):
    def __init__(self, channel, size=4):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channel, size, size))

    def forward(self, batch):
        return self.input.repeat(batch, 1, 1, 1)


class Blur(nn.Module):
    def __init__(self, kernel, pad, upsample_factor=1):
        super().__init__()
        kernel = make_kernel(kernel)
        if upsample_factor > 1:
            kernel = kernel * (upsample_factor**2)
        self.register_buffer("kernel", kernel)
        self.pad = pad

    def forward(self, input):
        return upfirdn2d(input, self.kernel, pad=self.pad)


class EqualLinear(nn.Module):
    def __init__(self, in_dim, out_dim, bias=True, bias_init=0, lr_mul=1, activation=None):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.zeros(out_dim).fill_(bias_init)) if bias else None
        self.activation = activation
        self.scale = (1 / math.sqrt(in_dim)) * lr_mul
        self.lr_mul = lr_mul

    def forward(self, input):
        if self.activation:
            out = F.linear(input, self.weight * self.scale)
            return fused_leaky_relu(out, self.bias * self.lr_mul)
        return F.linear(input, self.weight * self.scale, bias=self.bias * self.lr_mul)


class EqualConv2d(nn.Module):
    def __init__(self, in_channel, out_channel, kernel_size, stride=1, padding=0, lr_mul=1, bias=True, bias_init=0,
                 conv_transpose2d=False):
        super().__init__()
        self.out_channel, self.kernel_size = out_channel, kernel_size
        self.weight = nn.Parameter(torch.randn(out_channel, in_channel, kernel_size, kernel_size).div_(lr_mul))
        self.scale = 1 / math.sqrt(in_channel * kernel_size**2) * lr_mul
        self.stride, self.padding = stride, padding
        if bias:
            self.bias = nn.Parameter(torch.zeros(out_channel).fill_(bias_init))
            self.lr_mul = lr_mul
        else:
            self.lr_mul = None
        self.conv_transpose2d = conv_transpose2d

    def forward(self, input):
        bias = self.bias * self.lr_mul if self.lr_mul is not None else None
        if self.conv_transpose2d:  # "group version for fast training": the weight repeated per sample
            batch, in_channel, height, width = input.shape
            input_temp = input.view(1, batch * in_channel, height, width)
            weight = self.weight.unsqueeze(0).repeat(batch, 1, 1, 1, 1)
            weight = weight.transpose(1, 2).reshape(batch * in_channel, self.out_channel, self.kernel_size,
                                                    self.kernel_size)
            out = F.conv_transpose2d(input_temp, weight * self.scale, bias=bias, padding=self.padding, stride=2,
                                     groups=batch)
            _, _, height, width = out.shape
            return out.view(batch, self.out_channel, height, width)
        return F.conv2d(input, self.weight * self.scale, bias=bias, stride=self.stride, padding=self.padding)


class ConvLayer(nn.Sequential):
    def __init__(self, in_channel, out_channel, kernel_size, upsample=False, downsample=False, blur_kernel=BLUR,
                 bias=True, activate=True, lr_mul=1):
        layers = []
        if upsample:
            layers.append(EqualConv2d(in_channel, out_channel, kernel_size, padding=0, stride=2,
                                      bias=bias and not activate, conv_transpose2d=True, lr_mul=lr_mul))
            factor = 2
            p = (len(blur_kernel) - factor) - (kernel_size - 1)
            layers.append(Blur(blur_kernel, pad=((p + 1) // 2 + factor - 1, p // 2 + 1), upsample_factor=factor))
        else:
            if downsample:
                p = (len(blur_kernel) - 2) + (kernel_size - 1)
                layers.append(Blur(blur_kernel, pad=((p + 1) // 2, p // 2)))
                stride, padding = 2, 0
            else:
                stride, padding = 1, kernel_size // 2
            layers.append(EqualConv2d(in_channel, out_channel, kernel_size, padding=padding, stride=stride,
                                      bias=bias and not activate))
        if activate:
            if not bias:
                raise NotImplementedError("ScaledLeakyReLU: no StyleMapGAN layer uses it")
            layers.append(FusedLeakyReLU(out_channel))
        super().__init__(*layers)


class ResBlock(nn.Module):
    def __init__(self, in_channel, out_channel, blur_kernel=BLUR):
        super().__init__()
        self.conv1 = ConvLayer(in_channel, in_channel, 3)
        self.conv2 = ConvLayer(in_channel, out_channel, 3, downsample=True)
        self.skip = ConvLayer(in_channel, out_channel, 1, downsample=True, activate=False, bias=False)

    def forward(self, input):  # return_features=True in the encoder: (out, out1, out2)
        out1 = self.conv1(input)
        out2 = self.conv2(out1)
        skip = self.skip(input)
        return (out2 + skip) / math.sqrt(2), out1, out2


class ModulatedConv2d(nn.Module):
    """normalize_mode "LayerNorm" (the official models'), spatial γ/β of the stylecode, no demodulation."""

    def __init__(self, in_channel, out_channel, kernel_size, style_dim, blur_kernel, upsample=False):
        super().__init__()
        self.kernel_size, self.in_channel, self.out_channel = kernel_size, in_channel, out_channel
        self.upsample = upsample
        if upsample:
            factor = 2
            p = (len(blur_kernel) - factor) - (kernel_size - 1)
            self.blur = Blur(blur_kernel, pad=((p + 1) // 2 + factor - 1, p // 2 + 1), upsample_factor=factor)
        self.scale = 1 / math.sqrt(in_channel * kernel_size**2)
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(torch.randn(1, out_channel, in_channel, kernel_size, kernel_size))
        self.gamma = EqualConv2d(style_dim, in_channel, kernel_size=3, padding=1, stride=1, bias=True, bias_init=1)
        self.beta = EqualConv2d(style_dim, in_channel, kernel_size=3, padding=1, stride=1, bias=True, bias_init=0)

    def forward(self, input, stylecode):
        batch, in_channel, height, width = input.shape
        gamma = self.gamma(stylecode)
        beta = self.beta(stylecode)
        weight = self.scale * self.weight
        weight = weight.repeat(batch, 1, 1, 1, 1)
        input = nn.LayerNorm(input.shape[1:], elementwise_affine=False)(input)
        input = input * gamma + beta
        weight = weight.view(batch * self.out_channel, in_channel, self.kernel_size, self.kernel_size)
        if self.upsample:
            input = input.view(1, batch * in_channel, height, width)
            weight = weight.view(batch, self.out_channel, in_channel, self.kernel_size, self.kernel_size)
            weight = weight.transpose(1, 2).reshape(batch * in_channel, self.out_channel, self.kernel_size,
                                                    self.kernel_size)
            out = F.conv_transpose2d(input, weight, padding=0, stride=2, groups=batch)
            _, _, height, width = out.shape
            return self.blur(out.view(batch, self.out_channel, height, width))
        input = input.view(1, batch * in_channel, height, width)
        out = F.conv2d(input, weight, padding=self.padding, groups=batch)
        _, _, height, width = out.shape
        return out.view(batch, self.out_channel, height, width)


class StyledConv(nn.Module):
    def __init__(self, in_channel, out_channel, kernel_size, style_dim, blur_kernel, upsample=False):
        super().__init__()
        self.conv = ModulatedConv2d(in_channel, out_channel, kernel_size, style_dim, blur_kernel, upsample)
        self.activate = FusedLeakyReLU(out_channel)

    def forward(self, input, style):
        return self.activate(self.conv(input, style))


class StyledResBlock(nn.Module):
    def __init__(self, in_channel, out_channel, blur_kernel):  # style_dim None: the codes have the block's widths
        super().__init__()
        self.conv1 = StyledConv(in_channel, out_channel, 3, in_channel, blur_kernel, upsample=True)
        self.conv2 = StyledConv(out_channel, out_channel, 3, out_channel, blur_kernel)
        self.skip = ConvLayer(in_channel, out_channel, 1, upsample=True, activate=False, bias=False)

    def forward(self, input, stylecodes):
        out = self.conv1(input, stylecodes[0])
        out = self.conv2(out, stylecodes[1])
        skip = self.skip(input)
        return (out + skip) / math.sqrt(2)


class Encoder(nn.Module):
    def __init__(self, size, style_dim, latent_spatial_size, channels, blur_kernel=BLUR):
        super().__init__()
        self.from_rgb = ConvLayer(3, channels[size], 1)
        self.convs = nn.ModuleList()
        in_channel = channels[size]
        for i in range(int(math.log(size, 2)), int(math.log(latent_spatial_size, 2)), -1):
            out_channel = channels[2 ** (i - 1)]
            self.convs.append(ResBlock(in_channel, out_channel, blur_kernel))
            in_channel = out_channel
        self.final_conv = ConvLayer(in_channel, style_dim, 3)

    def forward(self, input):
        out = self.from_rgb(input)
        for convs in self.convs:
            out, _, _ = convs(out)
        return self.final_conv(out)


class Decoder(nn.Module):
    """small_generator False, lr_mul 1 (the Generator always passes 1); mix_space None, "w" and "w_plus"."""

    def __init__(self, size, style_dim, latent_spatial_size, channels, blur_kernel=BLUR):
        super().__init__()
        self.size = size
        log_size = int(math.log(size, 2))
        self.input = ConstantInput(channels[latent_spatial_size], size=latent_spatial_size)
        stylecode_dim = channels[latent_spatial_size]
        self.conv1 = StyledConv(stylecode_dim, stylecode_dim, 3, stylecode_dim, blur_kernel)
        in_channel = stylecode_dim
        start_index = int(math.log(latent_spatial_size, 2)) + 1
        self.convs = nn.ModuleList()
        self.convs_latent = nn.ModuleList([ConvLayer(style_dim, stylecode_dim, 3),
                                           ConvLayer(stylecode_dim, stylecode_dim, 3)])
        for i in range(start_index, log_size + 1):
            prev, nxt = channels[2 ** (i - 1)], channels[2**i]
            self.convs_latent.append(ConvLayer(prev, nxt, 3, upsample=True))
            self.convs_latent.append(ConvLayer(nxt, nxt, 3))
        for i in range(start_index, log_size + 1):
            out_channel = channels[2**i]
            self.convs.append(StyledResBlock(in_channel, out_channel, blur_kernel))
            in_channel = out_channel
        self.to_rgb = StyledConv(channels[size], 3, 1, channels[size], blur_kernel)
        self.num_stylecodes = log_size * 2 - 2 * (start_index - 2)

    def forward(self, style_code, mix_space=None, mask=None):
        batch = style_code.shape[0] if mix_space is None else style_code[0].shape[0]
        style_codes = []
        if mix_space is None:
            for i in range(self.num_stylecodes):
                style_code = self.convs_latent[i](style_code)
                style_codes.append(style_code)
        elif mix_space == "w":  # mix the stylemaps themselves
            ratio = self.size // style_code[0].shape[2]
            mask_for_latent = nn.MaxPool2d(kernel_size=ratio, stride=ratio)(mask)
            # The official code broadcasts the [N, S, S] mask against [N, C, S, S] (right for batch 1 only, which is
            # how generate.py calls it); the channel axis is added here so batches mix per sample.
            style_code = torch.where(mask_for_latent.unsqueeze(1) > -1, style_code[1], style_code[0])
            for i in range(self.num_stylecodes):
                style_code = self.convs_latent[i](style_code)
                style_codes.append(style_code)
        elif mix_space == "w_plus":  # mix every stylecode level
            style_code1, style_code2 = style_code
            style_codes1, style_codes2 = [], []
            for up_layer in self.convs_latent:
                style_code1 = up_layer(style_code1)
                style_code2 = up_layer(style_code2)
                style_codes1.append(style_code1)
                style_codes2.append(style_code2)
            for i in range(len(style_codes2)):
                _, C, H, _ = style_codes2[i].shape
                ratio = self.size // H
                mask_for_latent = nn.MaxPool2d(kernel_size=ratio, stride=ratio)(mask)
                mask_for_latent = mask_for_latent.unsqueeze(1).repeat(1, C, 1, 1)
                style_codes2[i] = torch.where(mask_for_latent > -1, style_codes2[i], style_codes1[i])
            style_codes = style_codes2
        else:
            raise ValueError(f"mix_space {mix_space!r} is not part of this benchmark")
        out = self.input(batch)
        out = self.conv1(out, style_codes[0])
        for i in range(len(self.convs)):
            out = self.convs[i](out, [style_codes[2 * i + 1], style_codes[2 * i + 2]])
        return self.to_rgb(out, style_codes[-1])


class Generator(nn.Module):
    def __init__(self, size, mapping_layer_num, style_dim, latent_spatial_size, lr_mul, channels,
                 blur_kernel=BLUR):
        super().__init__()
        self.latent_spatial_size = latent_spatial_size
        layers = [PixelNorm()]
        for i in range(mapping_layer_num):
            out_channel = style_dim * latent_spatial_size**2 if i == mapping_layer_num - 1 else style_dim
            layers.append(EqualLinear(style_dim, out_channel, lr_mul=lr_mul, activation="fused_lrelu"))
        self.mapping_z = nn.Sequential(*layers)
        self.decoder = Decoder(size, style_dim, latent_spatial_size, channels, blur_kernel)

    def forward(self, input, input_is_stylecode=False, mix_space=None, mask=None):
        if input_is_stylecode:
            stylecode = input
        else:
            stylecode = self.mapping_z(input)
            stylecode = stylecode.reshape(stylecode.shape[0], -1, self.latent_spatial_size,
                                          self.latent_spatial_size)
        return self.decoder(stylecode, mix_space=mix_space, mask=mask)


def reference_modules(cfg: StyleMapGANConfig) -> tuple[Generator, Encoder]:
    """The official ``g_ema`` / ``e_ema`` modules for ``cfg`` (its channel tables as the official ``channels``
    dicts: scaled-down models change that table in the official code)."""
    g, e = cfg.generator, cfg.encoder
    if g.small_generator or list(g.blur_kernel) != BLUR or list(e.blur_kernel) != BLUR:
        raise ValueError("the reference path covers the normal generator with the [1, 3, 3, 1] blur")
    G = Generator(g.resolution, g.mapping_layers, g.latent_channels, g.latent_size, g.lr_mul,
                  dict(zip(g.sides, g.channels)))
    E = Encoder(e.resolution, e.latent_channels, e.latent_size,
                {e.resolution >> i: c for i, c in enumerate(e.channels)})
    return G.eval(), E.eval()


def reference_from(model: StyleMapGAN) -> tuple[Generator, Encoder]:
    """The reference modules with ``model``'s weights (same names; the official FIR ``kernel`` buffers stay the
    reference's own)."""
    G, E = reference_modules(model.config)
    for ref, ours, what in ((G, model.generator, "generator"), (E, model.encoder, "encoder")):
        missing, unexpected = ref.load_state_dict(ours.state_dict(), strict=False)
        bad = [k for k in missing if not k.endswith(".kernel")]
        if bad or unexpected:
            raise RuntimeError(f"{what}: our names differ from the official ones (missing {bad}, extra {unexpected})")
    return G, E


# ---------------------------------------------------------------------------------------------------------------------
# Models, checks, timing
# ---------------------------------------------------------------------------------------------------------------------


def model_for(res: int) -> tuple[StyleMapGAN, str]:
    """(model, where it came from): the shipped 64-px model when it loads, else random weights."""
    if res == 64:
        try:
            import stylebridge

            model = stylebridge.load("synthfaces-64-stylemapgan")
            if isinstance(model, StyleMapGAN):
                return model.eval(), "shipped synthfaces-64-stylemapgan"
        except Exception:  # not shipped yet: the speed is the same with random weights
            pass
        from stylebridge.train.stylemapgan import build_stylemapgan, load_stylemap_config

        torch.manual_seed(0)
        model, _ = build_stylemapgan(load_stylemap_config(CONFIG_64))
        source = f"random weights, {CONFIG_64.relative_to(ROOT)}"
    elif res == 256:
        torch.manual_seed(0)
        model, source = StyleMapGAN(StyleMapGANConfig()), "random weights, official 256-px config"
    else:
        raise ValueError(f"--res must be 64 or 256, got {res}")
    with torch.no_grad():  # non-zero biases, so the check sees every bias path (and its lr_mul)
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    return model.eval().requires_grad_(False), source


def inputs(res: int, batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source and reference images in [-1, 1] and a mask [N, R, R] (+1: the reference's part, a band across the upper
    middle of the face, −1 elsewhere). The speed does not depend on the content."""
    g = torch.Generator().manual_seed(res + batch)
    src = torch.rand(batch, 3, res, res, generator=g) * 2 - 1
    ref = torch.rand(batch, 3, res, res, generator=g) * 2 - 1
    mask = -torch.ones(batch, res, res)
    mask[:, res // 4 : res // 2, res // 8 : res - res // 8] = 1.0
    return src, ref, mask


def golden_check() -> dict[str, float] | None:
    """Max abs differences of the reference (official weights from ``stylemapgan_010000.pt``) against the official
    outputs; None when the golden files are absent. Raises when one exceeds the fixtures' tolerances."""
    folder = next((d for d in GOLDEN_DIRS if (d / "stylemapgan_io.safetensors").is_file()
                   and (d / "stylemapgan_010000.pt").is_file()), None)
    if folder is None:
        return None
    from safetensors.torch import load_file

    import stylebridge
    from stylebridge.core.safe_pickle import load_torch_file

    ckpt = folder / "stylemapgan_010000.pt"
    raw = load_torch_file(ckpt)
    G, E = reference_modules(stylebridge.load(ckpt).config)  # the widths (the official code changes its tables)
    G.load_state_dict({k: v.float() for k, v in raw["g_ema"].items()})  # strict: the official names, kernels too
    E.load_state_dict({k: v.float() for k, v in raw["e_ema"].items()})
    io = {k: v.clone() for k, v in load_file(str(folder / "stylemapgan_io.safetensors")).items()}
    diff: dict[str, float] = {}

    def put(name: str, a: torch.Tensor, b: torch.Tensor) -> None:
        diff[name] = max(diff.get(name, 0.0), float((a - b).abs().max()))

    with torch.inference_mode():
        put("stylemap", E(io["input"]), io["stylemap"])
        put("recon", G(io["stylemap"], input_is_stylecode=True), io["recon"])
        put("img_from_z", G(io["z"]), io["img_from_z"])
        src, ref = io["stylemap"][io["src_index"]], io["stylemap"][io["ref_index"]]
        for k in range(len(src)):  # batch 1 per pair, as generate.py
            s, r = src[k : k + 1], ref[k : k + 1]
            put("local_edit_wplus", G([s, r], input_is_stylecode=True, mix_space="w_plus",
                                      mask=io["mask_wplus"][k : k + 1]), io["local_edit_wplus"][k : k + 1])
            put("local_edit_w", G([s, r], input_is_stylecode=True, mix_space="w", mask=io["mask_w"][k : k + 1]),
                io["local_edit_w"][k : k + 1])
    bad = {k: v for k, v in diff.items() if v > (1e-5 if k == "stylemap" else 1e-4)}
    if bad:
        raise AssertionError(f"the reference path does not reproduce the official outputs: {bad}")
    return diff


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    peak = float(b.max() - b.min())
    mse = float(torch.mean((a.float() - b.float()) ** 2))
    return 10 * math.log10(peak**2 / mse) if mse > 0 else float("inf")


def edit_fns(model: StyleMapGAN, G: Generator, E: Encoder, src: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor,
             space: str) -> dict[str, Callable[[bool], torch.Tensor]]:
    """path → edit(bf16) (one local edit of the batch, under bf16 autocast when asked)."""

    def ours(bf16: bool) -> torch.Tensor:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return model.local_edit(model.encode(src), model.encode(ref), mask, space)

    def reference(bf16: bool) -> torch.Tensor:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            w1, w2 = E(src), E(ref)
            return G([w1, w2], input_is_stylecode=True, mix_space=space, mask=mask)

    return {"reference": reference, "ours": ours}


def check_pair(model: StyleMapGAN, G: Generator, E: Encoder, src: torch.Tensor, ref: torch.Tensor,
               mask: torch.Tensor, space: str) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    """fp32: stylemaps and edits of both paths; raises past ``CHECK_ATOL``. Also the first (warm-up) run."""
    fns = edit_fns(model, G, E, src, ref, mask, space)
    outs = {path: fn(False) for path, fn in fns.items()}
    with torch.inference_mode():
        d_map = float((model.encode(src) - E(src)).abs().max())
    d_img = float((outs["ours"] - outs["reference"]).abs().max())
    if not (d_img < CHECK_ATOL and d_map < CHECK_ATOL):
        raise AssertionError(f"ours and the reference path differ: stylemap {d_map:.2e}, edit {d_img:.2e} "
                             f"(tolerance {CHECK_ATOL:g})")
    return {"stylemap": d_map, "edit": d_img, "edit_scale": float(outs["ours"].abs().max())}, outs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--res", type=int, nargs="+", default=[64, 256], choices=[64, 256])
    p.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    p.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    p.add_argument("--space", default="w_plus", choices=["w_plus", "stylemap", "w"],
                   help="w_plus: mix every stylecode level (default); stylemap (official name w): mix the stylemaps")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--budget", type=float, default=60.0, help="seconds of timed runs per row at most")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="smoke test: 1 timed run per row (after the check run)")
    p.add_argument("--no-golden", action="store_true", help="skip the reference's check on the official outputs")
    args = p.parse_args()
    args.space = "w" if args.space == "stylemap" else args.space  # the official mix_space name, which ours accepts
    if args.quick:
        args.repeats, args.budget = 1, 0.0
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)

    info = machine_info()
    print(f"machine: {info['cpu']}, {info['threads']} threads, torch {info['torch']}, AMX {info['amx']}, "
          f"AVX512-BF16 {info['avx512_bf16']}")
    golden = None if args.no_golden else golden_check()
    if golden is not None:
        print("reference vs official golden outputs (max abs diff): "
              + ", ".join(f"{k} {v:.1e}" for k, v in golden.items()))
    header = (f"{'res':>4} {'batch':>5} {'prec':>5} {'path':>9} {'ms/edit':>9} {'edits/s':>8} {'vs ref':>7} "
              f"{'PSNR':>6}")
    rows, checks, sources = [], [], {}
    printed_header = False
    for res in args.res:
        model, sources[res] = model_for(res)
        G, E = reference_from(model)
        print(f"{res} px: {sources[res]}")
        for batch in args.batch:
            src, ref, mask = inputs(res, batch)
            diffs, fp32_out = check_pair(model, G, E, src, ref, mask, args.space)
            checks.append(dict(res=res, batch=batch, **diffs))
            print(f"{res} px batch {batch}: ours vs reference (fp32) max abs diff: stylemap {diffs['stylemap']:.1e}, "
                  f"edit {diffs['edit']:.1e} (edit values up to {diffs['edit_scale']:.2f})")
            if not printed_header:
                print(header)
                printed_header = True
            fns = edit_fns(model, G, E, src, ref, mask, args.space)
            for prec in args.precision:
                bf16 = prec == "bf16"
                times: dict[str, float] = {}
                for path, fn in fns.items():
                    quality = None
                    if bf16:
                        try:
                            out = fn(True)  # warm-up, and the quality against fp32
                        except RuntimeError as exc:
                            print(f"{res:>4} {batch:>5} {prec:>5} {path:>9} does not run: {str(exc)[:80]}")
                            continue
                        quality = psnr(out, fp32_out[path])
                    t = best_time(lambda fn=fn, bf16=bf16: fn(bf16), repeats=args.repeats, warmup=0,
                                  budget_s=args.budget) / batch
                    times[path] = t
                    vs = times["reference"] / t if path == "ours" and "reference" in times else None
                    rows.append(dict(res=res, batch=batch, precision=prec, path=path, ms_per_edit=1e3 * t,
                                     edits_per_s=1 / t, speedup_vs_reference=vs, psnr_vs_fp32=quality))
                    print(f"{res:>4} {batch:>5} {prec:>5} {path:>9} {1e3 * t:>9.1f} {1 / t:>8.2f} "
                          f"{f'{vs:.2f}x' if vs else '':>7} {f'{quality:.1f}' if quality is not None else '':>6}",
                          flush=True)

    targets = {}
    fast = [r for r in rows if r["res"] == 64 and r["batch"] == 1 and r["path"] == "ours"]
    if fast:
        best = max(fast, key=lambda r: r["edits_per_s"])
        targets["64px_batch1_30_edits_per_s"] = dict(met=best["edits_per_s"] >= 30, edits_per_s=best["edits_per_s"],
                                                     precision=best["precision"])
    vs256 = [r for r in rows if r["res"] == 256 and r["precision"] == "fp32" and r["speedup_vs_reference"]]
    if vs256:
        worst = min(vs256, key=lambda r: r["speedup_vs_reference"])
        targets["256px_fp32_2x_reference"] = dict(met=worst["speedup_vs_reference"] >= 2,
                                                  speedups={r["batch"]: r["speedup_vs_reference"] for r in vs256})
    note = "" if args.threads == 2 else f" (measured with {args.threads} threads; the targets are for 2 cores)"
    if "64px_batch1_30_edits_per_s" in targets:
        t = targets["64px_batch1_30_edits_per_s"]
        print(f"target ≥ 30 edits/s at 64 px batch 1: {'met' if t['met'] else 'NOT met'} "
              f"({t['edits_per_s']:.1f} edits/s, {t['precision']}){note}")
    else:
        print("target ≥ 30 edits/s at 64 px batch 1: not measured (needs --res 64 --batch 1)")
    if "256px_fp32_2x_reference" in targets:
        t = targets["256px_fp32_2x_reference"]
        print(f"target ≥ 2× the reference at 256 px fp32: {'met' if t['met'] else 'NOT met'} ("
              + ", ".join(f"batch {b}: {s:.2f}×" for b, s in t["speedups"].items()) + f"){note}")
    else:
        print("target ≥ 2× the reference at 256 px fp32: not measured (needs --res 256 --precision fp32)")
    path = write_results("stylemap", {"machine": info, "space": args.space, "models": sources,
                                      "golden_check": golden, "equality_checks": checks, "rows": rows,
                                      "targets": targets})
    print(f"results written to {path}")


if __name__ == "__main__":
    main()
