"""StyleMapGAN editing as a library: masks (image files or synthfaces regions by name), local edits and
transplantation at an offset (interpolation and style mixing are `StyleMapGAN` methods; the folder commands behind
``stylebridge stylemap edit / interpolate`` are in `stylebridge.pipelines.stylemap`).

    from stylebridge.edit.stylemap import region_mask, edit_pair
    model = stylebridge.load("stylemapgan_ckpt.pt")
    mask = region_mask("hair,glasses", model.config.generator.resolution)     # [R, R] in {−1, +1}
    out = edit_pair(model, source_image, reference_image, mask)               # the source with the reference's hair

Masks follow the official convention: +1 where the reference's part goes, −1 elsewhere; the model pools them to
every stylecode level (`StyleMapGAN.local_edit`).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from stylebridge.models.stylemapgan import StyleMapGAN

__all__ = ["edit_pair", "load_mask", "region_mask", "transplant"]


def _labels(regions: str | Sequence[str]) -> list[int]:
    from stylebridge.data.synthfaces import SEG_LABELS

    names = [r.strip() for r in regions.split(",")] if isinstance(regions, str) else list(regions)
    bad = [n for n in names if n not in SEG_LABELS]
    if not names or bad:
        raise ValueError(f"unknown region(s) {bad or names}: synthfaces regions are {', '.join(SEG_LABELS)}")
    return [SEG_LABELS.index(n) for n in names]


@functools.lru_cache(maxsize=32)
def _region_share(labels: tuple[int, ...], resolution: int, faces: int) -> torch.Tensor:
    from stylebridge.data import synthfaces as sf

    seg = torch.cat([sf.render_seeds(list(range(s, min(faces, s + 100))), resolution, outputs=("seg",))["seg"]
                     for s in range(0, faces, 100)])
    hit = torch.isin(seg, torch.tensor(labels)).float()
    having = (hit.flatten(1).sum(1) > 0).sum().clamp_min(1)  # glasses or beards appear on some faces only
    return hit.sum(0) / having


def region_mask(regions: str | Sequence[str], resolution: int, faces: int = 300, threshold: float = 0.3,
                ) -> torch.Tensor:
    """A mask [R, R] in {−1, +1} of synthfaces regions by name ("hair", "hair,glasses"; labels
    `synthfaces.SEG_LABELS`): +1 where at least ``threshold`` of the rendered faces that have such a part (of
    ``faces`` faces) show it there — where those parts lie in the generator's layout, for aligned faces."""
    hit = torch.stack([_region_share((label,), resolution, faces) >= threshold for label in _labels(regions)])
    return torch.where(hit.any(0), 1.0, -1.0)  # the union of the regions


def load_mask(path: str | os.PathLike, resolution: int) -> torch.Tensor:
    """A mask image (white: the reference's part) → [R, R] in {−1, +1}; a one-line error for unreadable files."""
    try:
        with Image.open(path) as im:
            gray = im.convert("L").resize((resolution, resolution), Image.NEAREST)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: mask file not found") from None
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"{path}: not a readable mask image ({e})") from None
    t = torch.frombuffer(bytearray(gray.tobytes()), dtype=torch.uint8).view(resolution, resolution).float() / 255
    if not (t > 0.5).any():
        raise ValueError(f"{path}: the mask is empty (no pixel brighter than half)")
    return torch.where(t > 0.5, 1.0, -1.0)


@torch.no_grad()
def edit_pair(model: StyleMapGAN, source: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor,
              space: str = "w_plus") -> torch.Tensor:
    """Images [N, 3, R, R] (source, reference) and a mask [R, R] or [N, R, R] → the local edit [N, 3, R, R]."""
    if mask.ndim == 2:
        mask = mask.expand(source.shape[0], -1, -1)
    return model.local_edit(model.encode(source), model.encode(reference), mask.to(source), space)


@torch.no_grad()
def transplant(model: StyleMapGAN, source: torch.Tensor, references: torch.Tensor, masks: torch.Tensor,
               shifts: Sequence[tuple[int, int]], steps: int = 16) -> torch.Tensor:
    """Paste the masked regions of ``references`` into ``source`` at an offset, in ``steps`` interpolation frames
    (the official demo): source stylemap [1, C, S, S], reference stylemaps [K, C, S, S], masks [K, R, R] in [0, 1]
    (the part of each reference, in its own position), shifts: K (dy, dx) in pixels. At every stylecode level the
    mask is average-pooled, moved by the shift (what leaves the frame is cut), and the moved positions take
    ``t/(steps − 1)`` of the way to the reference's code; frame 0 is the source, the last the full transplant.
    Returns [steps, 3, R, R]."""
    if steps < 2:
        raise ValueError(f"steps must be >= 2, got {steps}")
    if not (len(references) == len(masks) == len(shifts)):
        raise ValueError("references, masks and shifts must have the same length")
    size = model.config.generator.resolution
    dec = model.generator.decoder
    weights = torch.linspace(0, 1, steps, device=source.device).view(-1, 1, 1, 1)
    codes = []
    for src_code, ref_code in zip(dec.stylecodes(source), dec.stylecodes(references)):
        ratio = size // src_code.shape[-1]
        pooled = F.avg_pool2d(masks[:, None].to(src_code), ratio)  # [K, 1, h, w]
        out = src_code.expand(steps, -1, -1, -1).clone()
        for k, (dy, dx) in enumerate(shifts):
            py, px = int(dy / ratio), int(dx / ratio)
            moved = _shift(pooled[k : k + 1], py, px) > 0.5  # where the part lands
            ref_moved = _shift(ref_code[k : k + 1], py, px)
            out = torch.where(moved, out + weights * (ref_moved - out), out)
        codes.append(out)
    return dec.synthesize(codes)


def _shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Move a map by (dy, dx) pixels, zero where nothing moved in."""
    out = torch.roll(x, shifts=(dy, dx), dims=(-2, -1))
    if dy > 0:
        out[..., :dy, :] = 0
    elif dy < 0:
        out[..., dy:, :] = 0
    if dx > 0:
        out[..., :, :dx] = 0
    elif dx < 0:
        out[..., :, dx:] = 0
    return out
