"""The input kinds of `stylebridge evaluate`: held-out synthfaces faces turned into what each task feeds a method.

Every kind but ``emoji`` comes from the faces of seeds ``seed, seed + 1, …`` (``core.seeds.HELD_OUT_SEED`` upward by
default: never trained on) with an exact target:

================  ===========================================================  ==================================
kind              input                                                        target
================  ===========================================================  ==================================
reconstruction    the rendered face                                            the same face
blur              the face blurred by a Gaussian of sigma = R / 32 (2 px at 64)  the face
sketch            its sketch (dark lines on white)                             the face
segmentation      its segmentation map                                         the face
superres4         area-downsampled ×4, bicubically upsampled back to R          the face
superres8         the same ×8                                                  the face
inpaint           masked pixels set to 0 (`data.tasks.random_masks`)           the face
frontalize        the face at its sampled yaw                                  the same face rendered frontal
photo             the face drawn as a photo (`sf.photo_look`: shading, skin/   the clean face
                  hair texture, clutter, light, camera blur, noise, JPEG),
                  rendered at 2R and area-reduced
closeup           the photo, grayscale, cut tight around the face (`sf.close-  the clean face
                  up`) and aligned back into the synthfaces layout by
                  `data.align.align_to_template` with its exact landmarks
emoji             the Noto Color Emoji set (out of domain)                     none: only realism, FD to faces
================  ===========================================================  ==================================

``photo`` and ``closeup`` are out of domain with known truth (issue 19): a look the generator never produces, on
faces whose attributes and clean render are known. ``closeup`` is what ``--align`` feeds a method from a tight
grayscale face photo (``raw`` holds the unaligned close-up); its alignment uses the renderer's exact landmarks, so
the figures measure the methods, not dlib (which finds few cartoon faces).

An `InputBatch` carries each input twice: ``rgb`` [N, 3, R, R] in [-1, 1], what RGB methods get (the sketch as a
gray RGB image, the segmentation painted with ``data.export.SEG_PALETTE``, the masked face), and ``raw``, the task's
own tensor (``data.tasks.SynthFacesPairs``: sketch [N, 1, R, R], one-hot segmentation [N, L, R, R], masked face +
mask [N, 4, R, R]), what a model trained on that task gets. The first four kinds are exactly those of
`evaluate.translation.evaluation_inputs` (the numbers of the earlier model cards).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from stylebridge.data import synthfaces as sf
from stylebridge.data.tasks import SynthFacesPairs
from stylebridge.evaluate.translation import evaluation_inputs

__all__ = ["INPUT_KINDS", "INPUT_LABELS", "OUT_OF_DOMAIN", "InputBatch", "emoji_inputs", "make_inputs"]

INPUT_KINDS = ("reconstruction", "blur", "sketch", "segmentation", "superres4", "superres8", "inpaint", "frontalize",
               "photo", "closeup", "emoji")
INPUT_LABELS = {"reconstruction": "rendered face", "blur": "blurred face", "sketch": "sketch",
                "segmentation": "segmentation map", "superres4": "superres ×4", "superres8": "superres ×8",
                "inpaint": "inpainting", "frontalize": "frontalization", "photo": "photo-style",
                "closeup": "grayscale close-up", "emoji": "emoji"}
OUT_OF_DOMAIN = ("photo", "closeup")  # out-of-domain kinds with known truth (the agreement table of the report)

_TASKS = {"superres4": "superres:4", "superres8": "superres:8", "inpaint": "inpaint", "frontalize": "frontalize",
          "sketch": "sketch", "segmentation": "segmentation"}


@dataclass
class InputBatch:
    """Inputs of one kind for a method (module docstring). ``target`` and ``attributes`` (true attributes of the
    target faces, as ``sf.sample_attributes`` gives them) are None for emoji."""

    kind: str
    rgb: torch.Tensor  # [N, 3, R, R] in [-1, 1]
    raw: torch.Tensor  # [N, C, R, R]: the task's own input (C = 1 sketch, L segmentation, 4 inpaint; else rgb)
    target: torch.Tensor | None = None  # [N, 3, R, R] in [-1, 1]
    attributes: dict[str, torch.Tensor] | None = None
    seeds: tuple[int, ...] = ()
    names: tuple[str, ...] = ()  # emoji: the glyphs' names ("1F600"), for `data.emoji.EXPRESSIONS`

    def __len__(self) -> int:
        return len(self.rgb)

    def slice(self, start: int, stop: int) -> InputBatch:
        """Items ``start:stop`` of every field."""
        attrs = None if self.attributes is None else {k: v[start:stop] for k, v in self.attributes.items()}
        target = None if self.target is None else self.target[start:stop]
        return InputBatch(self.kind, self.rgb[start:stop], self.raw[start:stop], target, attrs,
                          self.seeds[start:stop], self.names[start:stop])


def make_inputs(kind: str, seeds: Sequence[int], resolution: int = 64) -> InputBatch:
    """The `InputBatch` of ``kind`` (any of `INPUT_KINDS` but emoji: see `emoji_inputs`) for the faces of
    ``seeds``."""
    if kind not in INPUT_KINDS or kind == "emoji":
        choices = ", ".join(k for k in INPUT_KINDS if k != "emoji")
        raise ValueError(f"unknown input kind {kind!r}; choose from {choices} (emoji: emoji_inputs)")
    seeds = [int(s) for s in seeds]
    attrs = sf.sample_attributes(seeds)
    if kind in OUT_OF_DOMAIN:
        return _photo_inputs(kind, seeds, attrs, resolution)
    if kind in ("reconstruction", "blur"):
        rgb, target = evaluation_inputs(kind, seeds, resolution)
        return InputBatch(kind, rgb, rgb, target, attrs, tuple(seeds))
    if kind in ("sketch", "segmentation"):
        rgb, target = evaluation_inputs(kind, seeds, resolution)
    ds = SynthFacesPairs(_TASKS[kind], resolution, length=max(seeds) + 1, seed=0)
    items = ds.__getitems__(seeds)  # item i is the face of seed i
    raw = torch.stack([it[0] for it in items])
    if kind in ("sketch", "segmentation"):
        return InputBatch(kind, rgb, raw, target, attrs, tuple(seeds))
    target = torch.stack([it[1] for it in items])
    if kind == "inpaint":
        rgb = raw[:, :3]  # the masked face (holes at 0, mid-gray)
    else:
        rgb = raw
    if kind == "frontalize":
        attrs = sf.edit(attrs, yaw=0.5)  # the target is the same face, frontal
    return InputBatch(kind, rgb, raw, target, attrs, tuple(seeds))


def _photo_inputs(kind: str, seeds: list[int], attrs: dict[str, torch.Tensor], resolution: int,
                  chunk: int = 100) -> InputBatch:
    from stylebridge.core.imageio import to_pil, to_tensor
    from stylebridge.data.align import align_to_template, synthfaces_template

    template = synthfaces_template() if kind == "closeup" else None
    rgb, raw = [], []
    for start in range(0, len(seeds), chunk):
        a = {k: v[start : start + chunk] for k, v in attrs.items()}
        big = sf.render(a, 2 * resolution, outputs=("image", "seg"))
        photo = sf.photo_look(big["image"], big["seg"], a)
        if kind == "photo":
            rgb.append(F.interpolate(photo, size=(resolution, resolution), mode="area").clamp(-1, 1))
            continue
        crop, points = sf.closeup(photo, a, resolution, grayscale=True)
        px = ((points + 1) / 2 * resolution - 0.5).double().numpy()  # pixel-centre coordinates of the crop
        rgb.append(torch.stack([to_tensor(align_to_template(to_pil(c), p, template, resolution))
                                for c, p in zip(crop, px)]))
        raw.append(crop)
    x = torch.cat(rgb)
    target = torch.cat([sf.render({k: v[s : s + chunk] for k, v in attrs.items()}, resolution, ("image",))["image"]
                        for s in range(0, len(seeds), chunk)])
    return InputBatch(kind, x, torch.cat(raw) if raw else x, target, attrs, tuple(seeds))


def emoji_inputs(resolution: int = 64, count: int | None = None,
                 font_path: str | os.PathLike | None = None) -> InputBatch:
    """The emoji set (``data.emoji.render_emoji``) as an `InputBatch` without targets: all of it, or ``count``
    spread evenly over it. Raises FileNotFoundError/OSError (from the font loader) when the font is missing."""
    from stylebridge.core.imageio import to_tensor
    from stylebridge.data.emoji import render_emoji

    rendered = render_emoji(resolution, font_path=font_path)
    images = torch.stack([to_tensor(img) for _, img in rendered])
    names = tuple(name for name, _ in rendered)
    if count is not None and count < len(images):
        idx = torch.linspace(0, len(images) - 1, count).round().long()
        images, names = images[idx], tuple(names[i] for i in idx.tolist())
    return InputBatch("emoji", images, images, names=names)

