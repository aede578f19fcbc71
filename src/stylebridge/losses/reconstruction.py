"""Pixel reconstruction loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["l2_loss"]


def l2_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over every element (pSp's ``F.mse_loss(y_hat, y)``): images [N, C, H, W] in [-1, 1]
    → scalar. Computed in fp32 (also under bf16 autocast)."""
    if output.shape != target.shape:
        raise ValueError(f"l2_loss: output {tuple(output.shape)} and target {tuple(target.shape)} differ")
    return F.mse_loss(output.float(), target.float())
