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


def augment(x: torch.Tensor, p: float, generator: torch.Generator | None = None,
            rows: tuple[int, int] = (0, 1)) -> torch.Tensor:
    """Augment images [N, C, H, W] in [-1, 1]; every op is differentiable with respect to ``x``.

    ``rows`` = (rank, world): ``x`` holds rows rank, rank + world, … of a global batch of N·world. Every random
    draw is made for the global batch and sliced, so ``world`` processes augment exactly as one process would.
    """
    if p <= 0:
        return x
    rank, n_proc = rows
    n, _, h, w = x.shape
    dev = x.device

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(n * n_proc, *shape, generator=generator)[rank::n_proc]

    def randint(low: int, high: int, *shape: int) -> torch.Tensor:
        return torch.randint(low, high, (n * n_proc, *shape), generator=generator)[rank::n_proc]

    def pick() -> torch.Tensor:
        return (rand(1, 1, 1) < p).to(dev, x.dtype)

    flip = pick()
    x = flip * x.flip(3) + (1 - flip) * x
    # Integer translation via a padded crop (gather-free): shift each sample by (dy, dx).
    m = max(1, h // 8)
    shift = (randint(-m, m + 1, 2) * (pick()[:, :, 0, 0] > 0)).tolist()
    padded = F.pad(x, (m, m, m, m))
    x = torch.stack([padded[i, :, m + dy : m + dy + h, m + dx : m + dx + w] for i, (dy, dx) in enumerate(shift)])
    b = (rand(1, 1, 1).to(dev) - 0.5) * 0.5
    x = x + pick() * b
    mean = x.mean(dim=1, keepdim=True)
    s = rand(1, 1, 1).to(dev) * 2
    sel = pick()
    x = sel * ((x - mean) * s + mean) + (1 - sel) * x
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    c = rand(1, 1, 1).to(dev) + 0.5
    sel = pick()
    x = sel * ((x - mean) * c + mean) + (1 - sel) * x
    # Cutout: zero a square of half the side at a random position.
    sel = pick()
    cy = randint(0, h, 1, 1).to(dev)
    cx = randint(0, w, 1, 1).to(dev)
    ys = torch.arange(h, device=dev)[None, :, None]
    xs = torch.arange(w, device=dev)[None, None, :]
    hole = (((ys - cy).abs() < h // 4) & ((xs - cx).abs() < w // 4)).to(x.dtype)[:, None]
    return x * (1 - sel * hole)


class AdaptiveP:
    """ADA's controller: r_t = E[sign(D(real))] over ``interval`` steps; then p moves by
    ±batch*interval/(kimg*1000), up when r_t > ``target`` (D overconfident on reals), down otherwise."""

    def __init__(self, target: float = 0.6, kimg: float = 100.0, interval: int = 4, p: float = 0.0,
                 max_p: float = 1.0) -> None:
        # max_p: the colour operations leak into G's outputs when applied to almost every image (Karras et al.
        # 2020 find p ≲ 0.8 safe); on infinite data D can stay confident at any p, so the cap is what bounds it.
        self.target, self.kimg, self.interval, self.p, self.max_p = target, kimg, interval, min(p, max_p), max_p
        self._sum, self._count, self._steps = 0.0, 0, 0

    def update(self, real_signs: torch.Tensor, batch: int) -> None:
        """Accumulate ``real_signs`` [N] in [-1, 1]: sign(D(x)) of N real images, or (under DDP) the all-ranks mean
        of those signs repeated N times. The values are averaged as given: taking their sign again would turn
        r_t into the sign of the majority (±1), and p would climb to 1 whenever most reals score positive."""
        self._sum += float(real_signs.detach().float().sum())
        self._count += real_signs.numel()
        self._steps += 1
        if self._steps % self.interval == 0 and self._count:
            rt = self._sum / self._count
            adjust = (1 if rt > self.target else -1) * batch * self.interval / (self.kimg * 1000)
            self.p = min(max(self.p + adjust, 0.0), self.max_p)
            self._sum, self._count = 0.0, 0

    def state_dict(self) -> dict:
        return {"p": self.p, "sum": self._sum, "count": self._count, "steps": self._steps}

    def load_state_dict(self, state: dict) -> None:
        self.p, self._sum, self._count, self._steps = state["p"], state["sum"], state["count"], state["steps"]
        self.p = min(self.p, self.max_p)  # a run resumed with a lower cap starts at the cap
