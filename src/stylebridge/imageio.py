"""Conversions at the edges: [-1, 1] float tensors ↔ uint8 images, grids, PNG files."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

__all__ = ["make_grid", "save_grid", "save_image", "to_uint8"]


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[N, C, H, W] in [-1, 1] → uint8 [N, H, W, C] (NVlabs rounding: x*127.5 + 128, clamped)."""
    x = (images.detach().float().cpu() * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def make_grid(images: torch.Tensor, nrow: int | None = None, padding: int = 2, pad_value: float = 1.0) -> torch.Tensor:
    """Tile [N, C, H, W] into one [C, H', W'] image, ``nrow`` images per row (default: near-square)."""
    n, c, h, w = images.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / nrow)
    grid = torch.full((c, rows * (h + padding) + padding, nrow * (w + padding) + padding), pad_value,
                      dtype=images.dtype)
    for i in range(n):
        r, col = divmod(i, nrow)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        grid[:, y : y + h, x : x + w] = images[i].cpu()
    return grid


def save_image(image: torch.Tensor, path: str | os.PathLike) -> Path:
    """Save one [C, H, W] image in [-1, 1] as PNG (C = 1 or 3)."""
    arr = to_uint8(image[None])[0]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr).save(path)
    return path


def save_grid(images: torch.Tensor, path: str | os.PathLike, nrow: int | None = None) -> Path:
    """Save [N, C, H, W] in [-1, 1] as one PNG grid."""
    return save_image(make_grid(images, nrow=nrow), path)
