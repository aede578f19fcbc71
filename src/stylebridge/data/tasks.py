"""Paired datasets on synthfaces: one name per task → (input, target, extras), with exact ground truth.

Task names (`TASKS`):

=================  ==============================================================  =====================================
task               input                                                           target
=================  ==============================================================  =====================================
inversion          image [3,R,R]                                                   the same image
sketch             sketch [1,R,R] (lines dark)                                     image
segmentation       one-hot labels [L,R,R] (L = len(SEG_LABELS)) in {0, 1}          image
superres[:f]       image area-downsampled ×f (4 default, or 8) and bicubically     image
                   upsampled back to R, [3,R,R]; extras["lowres"] [3,R/f,R/f]
inpaint            image with masked pixels set to 0, plus the mask: [4,R,R]        image; extras["mask"] [1,R,R]
frontalize         image at its sampled yaw                                        the same face, frontal (yaw = 0.5)
edit:ATTR[=V]      image                                                           the same face with ATTR = V; without
                                                                                   V continuous values are mirrored
                                                                                   (v → 1 - v), categories step to the
                                                                                   next choice
=================  ==============================================================  =====================================

Item ``i`` is the face of seed ``seed + i``; everything (attributes, masks) follows from that seed, so a dataset
is reproducible and two datasets with disjoint seed ranges are disjoint (held-out faces: seed ≥ 10,000,000).
Images are in [-1, 1]. ``extras`` always holds the face's ``seed`` and normalised attribute vector ``attrs``.
Batches render together through ``__getitems__`` (used by PyTorch's DataLoader), which is several times faster
than one face at a time.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from stylebridge.data import synthfaces as sf

__all__ = ["TASKS", "SynthFacesPairs", "parse_task", "random_masks"]

TASKS = ("inversion", "sketch", "segmentation", "superres", "inpaint", "frontalize", "edit")

Item = tuple[torch.Tensor, torch.Tensor, dict]


def parse_task(task: str) -> tuple[str, str | None, float | int | None]:
    """'edit:smile=1.0' → ('edit', 'smile', 1.0); 'edit:glasses=round' → ('edit', 'glasses', 1);
    'superres:8' → ('superres', '8', None). Values are checked here, so a bad task fails at construction."""
    kind, _, rest = task.partition(":")
    if kind not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose from {', '.join(TASKS)} (edit:ATTR[=VALUE], superres:F)")
    if kind == "edit":
        name, _, text = rest.partition("=")
        attr = next((a for a in sf.ATTRIBUTES if a.name == name), None)
        if attr is None:
            raise ValueError(f"edit needs an attribute, e.g. edit:smile; known: {', '.join(sf.ATTRIBUTE_NAMES)}")
        if not text:
            return kind, name, None
        if attr.is_categorical:
            if text in attr.choices:
                return kind, name, attr.choices.index(text)
            if text.isdigit() and int(text) < len(attr.choices):
                return kind, name, int(text)
            raise ValueError(f"edit:{name}= takes one of {attr.choices} (or its index), got {text!r}")
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not 0 <= value <= 1:
            raise ValueError(f"edit:{name}= takes a number in [0, 1], got {text!r}")
        return kind, name, value
    if kind == "superres":
        factor = rest or "4"
        if factor not in ("2", "4", "8", "16"):
            raise ValueError(f"superres factor must be 2, 4, 8 or 16, got {factor!r}")
        return kind, factor, None
    if rest:
        raise ValueError(f"task {kind!r} takes no argument, got {task!r}")
    return kind, None, None


def random_masks(seeds: Sequence[int], resolution: int) -> torch.Tensor:
    """Inpainting masks [N, 1, R, R] in {0, 1} (1 = missing): a few rectangles and a brush stroke per seed,
    covering roughly 10–45% of the image; deterministic per seed."""
    masks = torch.zeros(len(seeds), 1, resolution, resolution)
    coords = (torch.arange(resolution, dtype=torch.float32) + 0.5) / resolution
    yy, xx = coords[:, None], coords[None, :]
    for i, s in enumerate(seeds):
        g = torch.Generator().manual_seed(int(s) * 7919 + 13)
        m = torch.zeros(resolution, resolution, dtype=torch.bool)
        for _ in range(int(torch.randint(1, 4, (1,), generator=g))):
            x0, y0 = torch.rand(2, generator=g) * 0.75
            w, h = 0.1 + torch.rand(2, generator=g) * 0.3
            m |= (xx >= x0) & (xx < x0 + w) & (yy >= y0) & (yy < y0 + h)
        pts = torch.rand(4, 2, generator=g)
        r = 0.03 + 0.04 * float(torch.rand(1, generator=g))
        for (ax, ay), (bx, by) in itertools.pairwise(pts):
            t = (((xx - ax) * (bx - ax) + (yy - ay) * (by - ay)) / ((bx - ax) ** 2 + (by - ay) ** 2 + 1e-9)).clamp(0, 1)
            m |= ((xx - ax - t * (bx - ax)) ** 2 + (yy - ay - t * (by - ay)) ** 2) < r * r
        masks[i, 0] = m.float()
    return masks


class SynthFacesPairs(Dataset):
    """Map-style dataset of (input, target, extras) for one synthfaces task (see the module docstring)."""

    def __init__(self, task: str, resolution: int = 64, length: int = 10_000, seed: int = 0) -> None:
        self.task = task
        self.kind, self.arg, self.value = parse_task(task)
        if resolution < 16 or resolution & (resolution - 1):
            raise ValueError(f"resolution must be a power of two >= 16, got {resolution}")
        if length < 1:
            raise ValueError(f"length must be >= 1, got {length}")
        self.resolution, self.length, self.seed = resolution, length, seed

    def __len__(self) -> int:
        return self.length

    @property
    def input_channels(self) -> int:
        return {"sketch": 1, "segmentation": len(sf.SEG_LABELS), "inpaint": 4}.get(self.kind, 3)

    def __getitem__(self, index: int) -> Item:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[Item]:
        for i in indices:
            if not 0 <= i < self.length:
                raise IndexError(f"index {i} out of range for a dataset of {self.length}")
        seeds = [self.seed + int(i) for i in indices]
        attrs = sf.sample_attributes(seeds)
        outputs = {"sketch": ("image", "sketch"), "segmentation": ("image", "seg")}.get(self.kind, ("image",))
        r = sf.render(attrs, self.resolution, outputs)
        image = r["image"]
        extras: dict[str, torch.Tensor] = {"seed": torch.tensor(seeds), "attrs": sf.attribute_vector(attrs)}
        if self.kind == "inversion":
            inp, target = image, image
        elif self.kind == "sketch":
            inp, target = r["sketch"], image
        elif self.kind == "segmentation":
            inp = F.one_hot(r["seg"], len(sf.SEG_LABELS)).permute(0, 3, 1, 2).float()
            target = image
        elif self.kind == "superres":
            f = int(self.arg or 4)
            low = F.avg_pool2d(image, f)
            inp = F.interpolate(low, size=image.shape[-2:], mode="bicubic", align_corners=False).clamp(-1, 1)
            target, extras["lowres"] = image, low
        elif self.kind == "inpaint":
            mask = random_masks(seeds, self.resolution)
            inp = torch.cat([image * (1 - mask), mask], dim=1)
            target, extras["mask"] = image, mask
        elif self.kind == "frontalize":
            inp, target = image, sf.render(sf.edit(attrs, yaw=0.5), self.resolution, ("image",))["image"]
        else:  # edit
            name = self.arg
            assert name is not None
            edited = dict(attrs)
            a = next(x for x in sf.ATTRIBUTES if x.name == name)
            if self.value is not None:
                edited = sf.edit(attrs, **{name: self.value})
            elif a.is_categorical:
                edited[name] = (attrs[name] + 1) % len(a.choices)
            else:
                edited[name] = 1 - attrs[name]
            inp, target = image, sf.render(edited, self.resolution, ("image",))["image"]
            extras["target_attrs"] = sf.attribute_vector(edited)
        return [(inp[j], target[j], {k: v[j] for k, v in extras.items()}) for j in range(len(seeds))]
