"""Activation-map translation: `ActmapPipeline` (images → translations or latent walks) and `translate_folder`,
the folder runner over it (what ``stylebridge translate`` runs for an activation-map translator).

    translate_folder("synthfaces-64-actmap", "sketches/", "out/")                   # mean w
    translate_folder(model, "sketches/", "out/", seed=7)                             # the style of seed 7
    translate_folder(model, "sketches/", "out/", walk_seeds=[1, 2, 3], frames=24)     # a walk: frames + GIF per image
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from stylebridge.core.filters import match_colors
from stylebridge.core.imageio import prepare_images
from stylebridge.models.actmap import ActivationMapTranslator
from stylebridge.models.encoder_base import StyleEncoderModel
from stylebridge.pipelines.base import InputSpec, Pipeline, PipelineResult, register_pipeline
from stylebridge.pipelines.runner import run_folder

__all__ = ["ActmapPipeline", "load_translator", "translate_folder"]


def load_translator(model: str | os.PathLike | torch.nn.Module) -> ActivationMapTranslator:
    """A translator from a shipped name or native folder (or one already loaded); `WrongModelError` otherwise."""
    if isinstance(model, ActivationMapTranslator):
        return model
    from stylebridge.core.errors import WrongModelError
    from stylebridge.formats.loading import describe_model, load

    if isinstance(model, torch.nn.Module):
        raise WrongModelError(f"model: holds {describe_model(model)}; expected an activation-map translator "
                              "(train one with: stylebridge train encoder --arch actmap)")
    return load(model, expect=ActivationMapTranslator)


def _style_encoder(spec: str | os.PathLike | torch.nn.Module | None) -> torch.nn.Module | None:
    if spec is None or isinstance(spec, torch.nn.Module):
        return spec
    from stylebridge.formats.loading import load

    return load(spec, expect=StyleEncoderModel)


class ActmapPipeline(Pipeline):
    """An activation-map translator: RGB images [N, 3, S, S] in [-1, 1] (S = its ``input_size``; other sizes and
    1-channel images are adapted by ``prepare``) → ``images`` [N, img_channels, R, R] in about [-1, 1] (R the
    generator's resolution) and ``latents["w_plus"]`` [N, num_ws, w_dim] (the styles used).

    Options (at most one style source): ``w`` (tensor [w_dim], [1 or N, w_dim] or [1 or N, num_ws, w_dim]),
    ``seed`` (int or one per image), ``style_encoder`` (a pSp / e4e model applied to the same images); none of
    them: the mean w. ``truncation_psi`` (finite; seeds and walks), ``noise_mode`` ("const" default).
    ``walk``: two or more seeds → a walk of ``frames`` (default 16) frames through their styles:
    ``extras["frames"]`` [N, frames, img_channels, R, R], ``images`` its first frame.
    ``colors``: "style" (default: the colours the style gives) or "input" (`core.filters.match_colors`: the
    translation's chroma matched to the input's, its luma kept — a grayscale photo comes out gray).
    """

    name = "actmap"
    model_class = ActivationMapTranslator
    options = ("seed", "w", "style_encoder", "truncation_psi", "noise_mode", "walk", "frames", "colors")

    @property
    def input_spec(self) -> InputSpec:
        return InputSpec(channels=3, size=self.model.input_size, kind="rgb")

    @property
    def device(self) -> torch.device:
        return self.model.device

    def prepare(self, inputs: torch.Tensor) -> torch.Tensor:
        if isinstance(inputs, torch.Tensor) and inputs.ndim == 4 and inputs.is_floating_point() and (
                inputs.shape[1] in (1, 3)) and tuple(inputs.shape[2:]) != (self.model.input_size,) * 2:
            return prepare_images(inputs, 3, self.model.input_size)
        if isinstance(inputs, torch.Tensor) and inputs.ndim == 4 and inputs.shape[1] == 1:
            return inputs.expand(-1, 3, -1, -1)
        return inputs

    def check_options(self, options: dict[str, Any]) -> None:
        super().check_options(options)
        psi = options.get("truncation_psi", 1.0)
        if not isinstance(psi, (int, float)) or not math.isfinite(psi):
            raise ValueError(f"truncation_psi must be a finite number, got {psi!r}")
        if options.get("walk") is not None and any(options.get(k) is not None for k in ("seed", "w", "style_encoder")):
            raise ValueError("a walk sets the styles itself: give walk_seeds without seed or style_encoder")
        if options.get("colors", "style") not in ("style", "input"):
            raise ValueError(f"colors must be 'style' or 'input', got {options.get('colors')!r}")
        if options.get("colors") == "input" and self.model.generator.config.img_channels != 3:
            raise ValueError("colors='input' matches RGB colours; this translator's generator draws "
                             f"{self.model.generator.config.img_channels}-channel images")

    def resolve_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """A ``style_encoder`` given as a path or shipped name is loaded (once)."""
        options = dict(options)
        if options.get("style_encoder") is not None:
            options["style_encoder"] = _style_encoder(options["style_encoder"])
        return options

    def run(self, inputs: torch.Tensor, positions: Sequence[int], seed: int | Sequence[int] | None = None,
            w: torch.Tensor | None = None, style_encoder: torch.nn.Module | None = None, truncation_psi: float = 1.0,
            noise_mode: str = "const", walk: Sequence[int] | None = None, frames: int = 16,
            colors: str = "style", **_: Any) -> PipelineResult:
        T = self.model
        if walk is not None:
            clip = T.walk(inputs, list(walk), frames, truncation_psi=truncation_psi, noise_mode=noise_mode).float()
            clip = clip.transpose(0, 1)  # [frames, N, ...] → [N, frames, ...]
            if colors == "input":
                n, f = clip.shape[:2]
                clip = match_colors(clip.flatten(0, 1), inputs.repeat_interleave(f, dim=0)).unflatten(0, (n, f))
            return PipelineResult(images=clip[:, 0], extras={"frames": clip})
        if style_encoder is not None:
            style_encoder = style_encoder.to(self.device).eval()
        ws = T.styles_for(inputs, w=w, seed=seed, style_encoder=style_encoder, truncation_psi=truncation_psi)
        act, skip = T.encode(inputs)
        images = T.synthesize(act, skip, ws, noise_mode=noise_mode).float()
        if colors == "input":
            images = match_colors(images, inputs)
        return PipelineResult(images=images, latents={"w_plus": ws.float()})


register_pipeline(ActivationMapTranslator, ActmapPipeline)


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
    """Translate every image under ``images`` (a folder, searched recursively, or one file) into ``out``, with
    `ActmapPipeline` through the folder runner.

    Each image is centre-cropped and resized to the translator's input size. Without ``walk_seeds``,
    ``out/<relative path>.png`` is the translation with the mean w, the style of ``seed``, or the W+ a pSp / e4e
    ``style_encoder`` (model or path) gives for the same image. With ``walk_seeds`` (two or more), ``frames`` frames
    of a walk through those seeds' styles go to ``out/<relative path>/frame0000.png …`` plus an animated
    ``out/<relative path>.gif``. Unreadable files are skipped with a warning and listed in ``out/skipped.txt``; an
    ``out`` inside ``images`` is not scanned. Returns the files written.
    """
    pipe = ActmapPipeline(load_translator(model))
    options: dict[str, Any] = {"truncation_psi": truncation_psi, "noise_mode": noise_mode}
    if walk_seeds is not None:
        if seed is not None or style_encoder is not None:
            raise ValueError("a walk sets the styles itself: give walk_seeds without seed or style_encoder")
        options.update(walk=list(walk_seeds), frames=frames)
    else:
        options.update(seed=seed, style_encoder=style_encoder)
    report = run_folder(pipe, images, out, batch_size=batch_size, device=device, precision=precision,
                        progress=progress, desc="translate", **options)
    return report.files
