"""Translating image files with an activation-map translator: what ``stylebridge translate`` runs.

    translate_folder("synthfaces-64-actmap", "sketches/", "out/")                   # mean w
    translate_folder(model, "sketches/", "out/", seed=7)                             # the style of seed 7
    translate_folder(model, "sketches/", "out/", walk_seeds=[1, 2, 3], frames=24)     # a walk: frames + GIF per image
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm.auto import tqdm

from stylebridge.core.atomic import atomic_write
from stylebridge.core.device import autocast, pick_device
from stylebridge.core.imageio import (
    BadImageError,
    center_crop_resize,
    load_image,
    save_image,
    scan_images,
    to_pil,
    to_tensor,
)
from stylebridge.models.actmap import ActivationMapTranslator

__all__ = ["load_translator", "translate_folder"]

logger = logging.getLogger("stylebridge.pipelines.actmap")


def load_translator(model: str | os.PathLike | torch.nn.Module) -> ActivationMapTranslator:
    """A translator from a shipped name or native folder (or one already loaded)."""
    if isinstance(model, ActivationMapTranslator):
        return model
    if isinstance(model, torch.nn.Module):
        loaded, name = model, "model"
    else:
        from stylebridge.formats.loading import load

        loaded, name = load(model), str(model)
    if not isinstance(loaded, ActivationMapTranslator):
        raise ValueError(f"{name}: holds a {type(loaded).__name__}, not an activation-map translator "
                         "(train one with: stylebridge train encoder --arch actmap)")
    return loaded


def _style_encoder(spec: str | os.PathLike | torch.nn.Module | None) -> torch.nn.Module | None:
    if spec is None or isinstance(spec, torch.nn.Module):
        return spec
    from stylebridge.formats.loading import load
    from stylebridge.models.encoder_base import StyleEncoderModel

    enc = load(spec)
    if not isinstance(enc, StyleEncoderModel):
        raise ValueError(f"{spec}: holds a {type(enc).__name__}, not a pSp / e4e model")
    return enc


def translate_folder(
    model: str | os.PathLike | ActivationMapTranslator,
    images: str | os.PathLike,
    out: str | os.PathLike,
    seed: int | None = None,
    walk_seeds: Sequence[int] | None = None,
    frames: int = 16,
    style_encoder: str | os.PathLike | torch.nn.Module | None = None,
    truncation_psi: float = 1.0,
    noise_mode: str = "const",
    batch_size: int = 8,
    device: str = "auto",
    precision: str = "auto",
    progress: bool = True,
) -> list[Path]:
    """Translate every image under ``images`` (a folder, searched recursively, or one file) into ``out``.

    Each image is centre-cropped and resized to the translator's input size. Without ``walk_seeds``,
    ``out/<relative path>.png`` is the translation with the mean w, the style of ``seed``, or the W+ a pSp / e4e
    ``style_encoder`` (model or path) gives for the same image. With ``walk_seeds`` (two or more), ``frames`` frames
    of a walk through those seeds' styles go to ``out/<relative path>/frame0000.png …`` plus an animated
    ``out/<relative path>.gif``. Unreadable files are skipped with a warning. Returns the files written.
    """
    translator = load_translator(model)
    dev = pick_device(device)
    translator = translator.to(dev).eval()
    enc = _style_encoder(style_encoder)
    if enc is not None:
        enc = enc.to(dev).eval()
    if walk_seeds is not None and (seed is not None or enc is not None):
        raise ValueError("a walk sets the styles itself: give walk_seeds without seed or style_encoder")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    src = Path(images)
    if src.is_file():
        files, root = [src], src.parent
    else:
        files, root = scan_images(src), src
    dst = Path(out)
    written: list[Path] = []
    with tqdm(total=len(files), desc="translate", unit="img", disable=not progress) as bar:
        for start in range(0, len(files), batch_size):
            batch_files, tensors = [], []
            for f in files[start : start + batch_size]:
                try:
                    tensors.append(to_tensor(center_crop_resize(load_image(f), translator.input_size)))
                    batch_files.append(f)
                except BadImageError as exc:
                    logger.warning("skipped %s", exc)
            bar.update(len(files[start : start + batch_size]))
            if not tensors:
                continue
            x = torch.stack(tensors).to(dev)
            names = [dst / f.relative_to(root).with_suffix("") for f in batch_files]
            with autocast(dev, precision):
                if walk_seeds is None:
                    y = translator.translate(x, seed=seed, style_encoder=enc, truncation_psi=truncation_psi,
                                             noise_mode=noise_mode).float().cpu()
                    for name, img in zip(names, y):
                        written.append(save_image(img, name.with_suffix(".png")))
                    continue
                y = translator.walk(x, walk_seeds, frames, truncation_psi=truncation_psi,
                                    noise_mode=noise_mode).float().cpu()
            for i, name in enumerate(names):
                pics = [to_pil(frame[i].clamp(-1, 1)) for frame in y]
                for k, frame in enumerate(y):
                    written.append(save_image(frame[i], name / f"frame{k:04d}.png"))
                gif = name.with_suffix(".gif")
                atomic_write(gif, lambda p, pics=pics: pics[0].save(p, format="GIF", save_all=True,
                                                                  append_images=pics[1:], duration=80, loop=0))
                written.append(gif)
    return written
