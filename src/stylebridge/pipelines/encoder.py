"""pSp / e4e inference: `EncoderPipeline` (images → W+ and reconstructions or translations, with multi-modal
samples), and over folders through the one runner: inversion (`encode_folder`) and translation (`translate_folder`).
Library functions first; the CLI's ``encode`` / ``translate`` only call these.

    from stylebridge.pipelines.encoder import encode_folder, translate_folder
    encode_folder("runs/psp/model", "photos/", "out/")                  # out/latents/*.safetensors + reconstructions
    translate_folder("psp-sketch", "sketches/", "faces/", samples=4)    # faces/*.png, *_s0..3.png, strips/*.png

The model is a `PSP` / `E4E` object or anything `stylebridge.load` turns into one (a native folder, an official
pSp/e4e ``.pt``, a shipped name). Inputs are read as the encoder expects (`stylebridge.data.paired.load_input`:
RGB, grayscale sketches, RGBA for inpainting, label-index PNGs for segmentation), centre-cropped and resized to
its input size. Unreadable files are skipped with a warning and listed in ``OUT/skipped.txt``.

Multi-modal translation (pSp's ``scripts/style_mixing.py``): for each of K samples a random z is mapped to w
(no truncation by default) and replaces the W+ rows of ``latent_mask`` — by default pSp's mask 8 … num_ws-1
(``--latent_mask=8,…,17`` at 1024 px: the styles of the 64-px and finer layers; for generators of 32 px or less,
which have no row 8, the second half of the rows) — or is blended in with ``alpha``. Noise is the generator's
stored noise, so outputs are reproducible; sample k of the image at position i uses z from seed (seed, i).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch

from stylebridge.data.paired import input_kind
from stylebridge.models.encoder_base import StyleEncoderModel, mix_latents
from stylebridge.pipelines.base import InputSpec, Pipeline, PipelineResult, register_pipeline
from stylebridge.pipelines.runner import Aligner, FolderReport, Outputs, input_preview, run_folder

__all__ = ["EncoderPipeline", "FolderReport", "default_latent_mask", "encode_folder", "input_preview", "load_encoder",
           "translate_folder"]


def load_encoder(model: StyleEncoderModel | str | os.PathLike) -> StyleEncoderModel:
    """A pSp/e4e model object, or loaded from a path / shipped name (`WrongModelError` for anything else)."""
    if isinstance(model, StyleEncoderModel):
        return model
    from stylebridge.formats.loading import load

    return load(model, expect=StyleEncoderModel)


def default_latent_mask(num_ws: int) -> list[int]:
    """pSp's multi-modal rows: 8 … num_ws-1 (its README's mask at 1024 px), or the second half of the rows for
    generators without a row 8 (32 px and less)."""
    start = 8 if num_ws > 8 else num_ws // 2
    return list(range(start, num_ws))


class EncoderPipeline(Pipeline):
    """pSp / e4e: inputs [N, in_channels, input_size, input_size] (RGB / sketches in [-1, 1], one-hot label maps in
    {0, 1}, RGB + mask) → ``images`` [N, img_channels, R, R] (the reconstruction or translation, about [-1, 1]; R the
    generator's resolution or ``resize``), ``latents["w_plus"]`` [N, num_ws, w_dim].

    Options:
        samples: K >= 0 multi-modal variants → ``extras["samples"]`` [N, K, img_channels, R, R] (pSp's style mixing:
            the rows of ``latent_mask`` take a random w, see the module docstring).
        seed: sample k of the input at position p uses z from ``torch.Generator().manual_seed(seed * 1_000_003 + p)``
            (``positions`` from the caller, default 0..N-1), so outputs do not depend on the batch size.
        truncation_psi: for the samples' w (default 1.0: none). latent_mask: W+ rows to mix (default
            `default_latent_mask`). alpha: blend instead of replace.
        resize: output side by average pooling (pSp's face_pool); None/False: the generator's resolution.
        decode: False to skip the generator (``images`` is then an empty [N, 0, 0, 0]).
    """

    name = "encoder"
    model_class = StyleEncoderModel
    options = ("samples", "seed", "truncation_psi", "latent_mask", "alpha", "resize", "decode")

    @property
    def input_spec(self) -> InputSpec:
        c = self.model.config.encoder
        channels = self.model.input_channels
        kind = input_kind(channels)
        return InputSpec(channels=channels, size=c.input_size, kind=kind,
                         range=(0.0, 1.0) if kind == "labels" else (-1.0, 1.0))

    @property
    def device(self) -> torch.device:
        return self.model.latent_avg.device

    def latent_metadata(self) -> dict[str, str]:
        return {"num_ws": str(self.model.num_ws), "w_dim": str(self.model.w_dim)}

    def check_options(self, options: dict[str, Any]) -> None:
        super().check_options(options)
        import math

        samples = options.get("samples", 0)
        if not isinstance(samples, int) or samples < 0:
            raise ValueError(f"samples must be an int >= 0, got {samples!r}")
        psi = options.get("truncation_psi", 1.0)
        if not isinstance(psi, (int, float)) or not math.isfinite(psi):
            raise ValueError(f"truncation_psi must be a finite number, got {psi!r}")
        mask = options.get("latent_mask")
        if samples and mask is not None and not list(mask):
            raise ValueError("latent_mask is empty: no rows to mix")

    def run(self, inputs: torch.Tensor, positions: Sequence[int], samples: int = 0, seed: int | None = 0,
            truncation_psi: float = 1.0, latent_mask: Sequence[int] | None = None, alpha: float | None = None,
            resize: int | bool | None = None, decode: bool = True, **_: Any) -> PipelineResult:
        m = self.model
        dev = self.device
        seed = seed or 0
        w_plus = m.encode(inputs).float()
        n = w_plus.shape[0]
        images = m.decode(w_plus, resize=resize or False).float() if decode else w_plus.new_zeros(n, 0, 0, 0)
        result = PipelineResult(images=images, latents={"w_plus": w_plus})
        if samples:
            G = m.decoder
            mask = list(latent_mask) if latent_mask is not None else default_latent_mask(m.num_ws)
            z = torch.stack([torch.randn(samples, G.z_dim, generator=torch.Generator().manual_seed(
                seed * 1_000_003 + p)) for p in positions]).to(dev)  # [N, K, z_dim]
            w = G.map(z.flatten(0, 1), truncation_psi).view(n, samples, -1)
            variants = [m.decode(mix_latents(w_plus, mask, w[:, k], alpha), resize=resize or False).float()
                        for k in range(samples)]
            result.extras["samples"] = torch.stack(variants, dim=1)
        return result


register_pipeline(StyleEncoderModel, EncoderPipeline)


def encode_folder(model: StyleEncoderModel | str | os.PathLike, images_dir: str | os.PathLike,
                  out_dir: str | os.PathLike, batch: int = 8, progress: bool = True, device: str = "auto",
                  precision: str = "auto", reconstructions: bool = True, resize: int | None = None, *,
                  batch_size: int | None = None, align: Aligner | None = None) -> FolderReport:
    """Invert every image under ``images_dir`` (recursive) with `EncoderPipeline` through the folder runner.

    Writes ``out_dir/latents/<relative path>.safetensors`` (tensor ``w_plus`` [num_ws, w_dim], fp32, metadata:
    the source file) and, with ``reconstructions``, ``out_dir/reconstructions/<relative path>.png`` (the generator's
    resolution, or ``resize`` px by average pooling as pSp's face_pool). ``batch_size`` (alias ``batch``).
    ``align``: photos aligned into the generator's layout first (`run_folder`'s ``align``).
    """
    pipe = EncoderPipeline(load_encoder(model))
    return run_folder(pipe, images_dir, out_dir,
                      outputs=Outputs(images="reconstructions" if reconstructions else None, latents="latents"),
                      batch_size=batch_size or batch, device=device, precision=precision, progress=progress,
                      desc="encode", align=align, resize=resize, decode=reconstructions)


def translate_folder(model: StyleEncoderModel | str | os.PathLike, images_dir: str | os.PathLike,
                     out_dir: str | os.PathLike, samples: int = 0, batch: int = 8,
                     latent_mask: Sequence[int] | None = None, alpha: float | None = None, seed: int = 0,
                     truncation_psi: float = 1.0, strips: bool = True, progress: bool = True, device: str = "auto",
                     precision: str = "auto", resize: int | None = None, *,
                     batch_size: int | None = None) -> FolderReport:
    """Translate every image under ``images_dir`` (sketches, label maps, low-res or masked photos — whatever the
    model was trained on) into the generator's domain, with `EncoderPipeline` through the folder runner.

    Writes ``out_dir/<relative path>.png`` (the translation) and, with ``samples`` K ≥ 1, K multi-modal variants
    ``out_dir/<relative path>_s{k}.png`` (fine styles from random w, see the module docstring) plus, with
    ``strips``, ``out_dir/strips/<relative path>.png``: input | translation | variants side by side.
    """
    pipe = EncoderPipeline(load_encoder(model))
    return run_folder(pipe, images_dir, out_dir, outputs=Outputs(images="", strips=strips),
                      batch_size=batch_size or batch, device=device, precision=precision, progress=progress,
                      desc="translate", samples=samples, latent_mask=latent_mask, alpha=alpha, seed=seed,
                      truncation_psi=truncation_psi, resize=resize)
