"""Image filters shared by the renderer's photo look (`data.synthfaces.photo_look`) and the translators' input
augmentation (`train.actmap.augment_inputs`): per-sample Gaussian blur, smooth noise fields, JPEG round trips.

Images are float tensors [N, C, H, W]; ranges are the caller's ([-1, 1] or [0, 1]) unless a function says otherwise.
"""

from __future__ import annotations

import io

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

__all__ = ["gaussian_blur", "jpeg_roundtrip", "match_colors", "smooth_noise"]


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, radius: int) -> torch.Tensor:
    """Per-sample separable Gaussian blur: x [N, C, H, W], sigma [N] (px) → [N, C, H, W] (reflect padding).

    ``radius``: taps on each side (about 3 σ of the largest sigma). A sigma near 0 leaves the image as it is.
    """
    n, c, h, w = x.shape
    taps = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-0.5 * (taps[None] / sigma[:, None].to(x.dtype).clamp_min(1e-3)) ** 2)
    k = (k / k.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # [N*C, K]
    y = x.reshape(1, n * c, h, w)
    pad = min(radius, h - 1, w - 1)
    if pad < radius:  # tiny images: zero padding beyond what reflection allows
        y = F.pad(F.pad(y, (pad, pad, pad, pad), mode="reflect"), [radius - pad] * 4)
    else:
        y = F.pad(y, (radius,) * 4, mode="reflect")
    y = F.conv2d(y, k[:, None, None, :], groups=n * c)
    y = F.conv2d(y, k[:, None, :, None], groups=n * c)
    return y.reshape(n, c, h, w)


def smooth_noise(n: int, size: int, cells: int, generator: torch.Generator | None = None,
                 channels: int = 1, stretch: tuple[int, int] = (1, 1)) -> torch.Tensor:
    """Smooth random fields [n, channels, size, size], about unit standard deviation: Gaussian noise on a
    ``cells`` × ``cells`` grid (times ``stretch`` = (rows, columns) for streaks), bicubically upsampled.

    Drawn on the CPU from ``generator`` so a seed gives the same field on every device.
    """
    rows, cols = max(1, cells * stretch[0]), max(1, cells * stretch[1])
    g = torch.randn(n, channels, rows, cols, generator=generator)
    up = F.interpolate(g, size=(size, size), mode="bicubic", align_corners=False)
    return up / up.flatten(1).std(dim=1).clamp_min(1e-6)[:, None, None, None]


def jpeg_roundtrip(x: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """Each image through a JPEG encode/decode at its own quality: x [N, C, H, W] in [-1, 1] (C = 1 or 3),
    quality [N] (integers 1–95) → [N, C, H, W] in [-1, 1], on x's device and dtype. Uses Pillow (4:2:0 chroma)."""
    out = []
    arr = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()
    for img, q in zip(arr, quality.tolist()):
        mode = "L" if img.shape[0] == 1 else "RGB"
        pic = Image.fromarray(img[0] if mode == "L" else img.transpose(1, 2, 0), mode)
        buf = io.BytesIO()
        pic.save(buf, format="JPEG", quality=int(q))
        dec = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert(mode), dtype=np.float32)
        out.append(dec[None] if mode == "L" else dec.transpose(2, 0, 1))
    y = torch.from_numpy(np.stack(out)) / 127.5 - 1
    return y.to(x.device, x.dtype)


def _ycbcr(x: torch.Tensor) -> torch.Tensor:
    m = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]],
                     device=x.device, dtype=x.dtype)
    return torch.einsum("ij,njhw->nihw", m, x)


def _rgb(y: torch.Tensor) -> torch.Tensor:
    m = torch.tensor([[1.0, 0.0, 1.402], [1.0, -0.344136, -0.714136], [1.0, 1.772, 0.0]],
                     device=y.device, dtype=y.dtype)
    return torch.einsum("ij,njhw->nihw", m, y)


def match_colors(images: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Colours taken from ``reference``: each image's chroma (YCbCr Cb, Cr) shifted and scaled to the mean and
    standard deviation of its reference's; its luma — the shapes, light and shade the model drew — is kept.

    images [N, 3, H, W] and reference [N, 3 or 1, H', W'] in [-1, 1] → [N, 3, H, W] in [-1, 1]. A gray reference
    (no chroma) gives a gray image: a grayscale photo does not get colours it never had.
    """
    ref = reference.float()
    if ref.shape[1] == 1:
        ref = ref.expand(-1, 3, -1, -1)
    out = _ycbcr(images.float())
    r = _ycbcr(ref)
    mu_o, sd_o = out[:, 1:].mean((2, 3), keepdim=True), out[:, 1:].std((2, 3), keepdim=True, unbiased=False)
    mu_r, sd_r = r[:, 1:].mean((2, 3), keepdim=True), r[:, 1:].std((2, 3), keepdim=True, unbiased=False)
    chroma = (out[:, 1:] - mu_o) * (sd_r / sd_o.clamp_min(1e-4)) + mu_r
    return _rgb(torch.cat([out[:, :1], chroma], dim=1)).clamp(-1, 1).to(images.dtype)
