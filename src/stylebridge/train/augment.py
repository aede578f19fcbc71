"""Differentiable augmentation for GAN training on small data sets (applied to real and fake images before D).

Each operation is applied per sample with probability ``p``: horizontal flip, integer translation (up to 1/8 of
the side, zero padded), brightness, saturation and contrast changes, and cutout (a square of half the side).
With ``adaptive`` on, ``p`` follows the ADA heuristic of Karras et al. 2020: it rises while the sign of D's output
on real images, averaged, exceeds ``target`` (D overfits) and falls otherwise. This is a DiffAugment-style
pipeline with ADA's controller, not NVlabs' full ADA pipeline (no rotations, no geometric filtering).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["AdaptiveP", "augment"]


def augment(x: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Augment images [N, C, H, W] in [-1, 1]; every op is differentiable with respect to ``x``."""
    if p <= 0:
        return x
    n, _, h, w = x.shape
    dev = x.device

    def pick() -> torch.Tensor:
        return (torch.rand(n, 1, 1, 1, generator=generator) < p).to(dev, x.dtype)

    flip = pick()
    x = flip * x.flip(3) + (1 - flip) * x
    # Integer translation via a padded crop (gather-free): shift each sample by (dy, dx).
    m = max(1, h // 8)
    shift = (torch.randint(-m, m + 1, (n, 2), generator=generator) * (pick()[:, :, 0, 0] > 0)).tolist()
    padded = F.pad(x, (m, m, m, m))
    x = torch.stack([padded[i, :, m + dy : m + dy + h, m + dx : m + dx + w] for i, (dy, dx) in enumerate(shift)])
    b = (torch.rand(n, 1, 1, 1, generator=generator).to(dev) - 0.5) * 0.5
    x = x + pick() * b
    mean = x.mean(dim=1, keepdim=True)
    s = torch.rand(n, 1, 1, 1, generator=generator).to(dev) * 2
    sel = pick()
    x = sel * ((x - mean) * s + mean) + (1 - sel) * x
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    c = torch.rand(n, 1, 1, 1, generator=generator).to(dev) + 0.5
    sel = pick()
    x = sel * ((x - mean) * c + mean) + (1 - sel) * x
    # Cutout: zero a square of half the side at a random position.
    sel = pick()
    cy = torch.randint(0, h, (n, 1, 1), generator=generator).to(dev)
    cx = torch.randint(0, w, (n, 1, 1), generator=generator).to(dev)
    ys = torch.arange(h, device=dev)[None, :, None]
    xs = torch.arange(w, device=dev)[None, None, :]
    hole = (((ys - cy).abs() < h // 4) & ((xs - cx).abs() < w // 4)).to(x.dtype)[:, None]
    return x * (1 - sel * hole)


class AdaptiveP:
    """ADA's controller: accumulate sign(D(real)); every ``interval`` steps move p by ±batch*interval/(kimg*1000)."""

    def __init__(self, target: float = 0.6, kimg: float = 100.0, interval: int = 4, p: float = 0.0) -> None:
        self.target, self.kimg, self.interval, self.p = target, kimg, interval, p
        self._sum, self._count, self._steps = 0.0, 0, 0

    def update(self, real_logits: torch.Tensor, batch: int) -> None:
        self._sum += float(torch.sign(real_logits.detach()).sum())
        self._count += real_logits.numel()
        self._steps += 1
        if self._steps % self.interval == 0 and self._count:
            rt = self._sum / self._count
            adjust = (1 if rt > self.target else -1) * batch * self.interval / (self.kimg * 1000)
            self.p = min(max(self.p + adjust, 0.0), 1.0)
            self._sum, self._count = 0.0, 0

    def state_dict(self) -> dict:
        return {"p": self.p, "sum": self._sum, "count": self._count, "steps": self._steps}

    def load_state_dict(self, state: dict) -> None:
        self.p, self._sum, self._count, self._steps = state["p"], state["sum"], state["count"], state["steps"]
