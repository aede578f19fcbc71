"""Encoder inference over folders: inversion (`encode_folder`) and translation with multi-modal outputs
(`translate_folder`). Library functions first; the CLI's ``encode`` / ``translate`` only call these.

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

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from tqdm.auto import tqdm

from stylebridge.core.atomic import atomic_write, atomic_write_text
from stylebridge.core.device import autocast, pick_device, resolve_precision
from stylebridge.core.imageio import BadImageError, make_grid, save_image, scan_images
from stylebridge.data.paired import input_kind, load_input
from stylebridge.models.encoder_base import StyleEncoderModel, mix_latents

__all__ = ["FolderReport", "default_latent_mask", "encode_folder", "input_preview", "load_encoder", "translate_folder"]

logger = logging.getLogger("stylebridge.pipelines.encoder")

# Colours of label maps in previews (the synthfaces segmentation palette, then a hue wheel for more labels).
_PALETTE = [(0, 0, 0), (230, 180, 150), (120, 60, 20), (255, 255, 255), (60, 30, 10), (200, 30, 40),
            (240, 120, 60), (30, 30, 200), (90, 50, 20), (40, 160, 40)]


@dataclass
class FolderReport:
    """What a folder run did: images processed, files skipped with reasons, output folder."""

    written: int = 0
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    out: Path = Path()


def load_encoder(model: StyleEncoderModel | str | os.PathLike) -> StyleEncoderModel:
    """A pSp/e4e model object, or loaded from a path / shipped name (error for anything else)."""
    if isinstance(model, StyleEncoderModel):
        return model
    from stylebridge.formats.loading import load

    m = load(model)
    if not isinstance(m, StyleEncoderModel):
        raise ValueError(f"{model}: holds a {type(m).__name__}, not a pSp/e4e encoder model")
    return m


def default_latent_mask(num_ws: int) -> list[int]:
    """pSp's multi-modal rows: 8 … num_ws-1 (its README's mask at 1024 px), or the second half of the rows for
    generators without a row 8 (32 px and less)."""
    start = 8 if num_ws > 8 else num_ws // 2
    return list(range(start, num_ws))


def input_preview(x: torch.Tensor, side: int | None = None) -> torch.Tensor:
    """Encoder inputs [N, C, H, W] → RGB previews [N, 3, side, side] in [-1, 1]: RGB as is, sketches repeated,
    RGB + mask as the masked RGB, one-hot label maps coloured (synthfaces' segmentation palette)."""
    c = x.shape[1]
    kind = input_kind(c)
    if kind == "rgb":
        out = x
    elif kind == "gray":
        out = x.repeat(1, 3, 1, 1)
    elif kind == "rgb+mask":
        out = x[:, :3]
    else:
        colours = [_PALETTE[i] if i < len(_PALETTE) else _hue(i, c) for i in range(c)]
        table = torch.tensor(colours, dtype=torch.float32, device=x.device) / 127.5 - 1  # [C, 3]
        out = table[x.argmax(dim=1)].permute(0, 3, 1, 2)
    out = out.float()
    if side is not None and out.shape[-1] != side:
        out = F.interpolate(out, size=(side, side), mode="nearest")
    return out


def _hue(i: int, n: int) -> tuple[int, int, int]:
    import colorsys

    r, g, b = colorsys.hsv_to_rgb(i / max(n, 1), 0.8, 0.9)
    return int(r * 255), int(g * 255), int(b * 255)


def _batches(files: list[Path], model: StyleEncoderModel, batch: int,
             report: FolderReport) -> Iterator[tuple[list[int], list[Path], torch.Tensor]]:
    """Lazily loaded input batches: (positions, files, inputs [B, C, S, S]); bad files go to the report."""
    c = model.config.encoder
    pos, names, tensors = [], [], []
    for i, f in enumerate(files):
        try:
            tensors.append(load_input(f, c.in_channels, c.input_size))
        except BadImageError as e:
            logger.warning("skipping %s", e)
            report.skipped.append((f, str(e).removeprefix(f"{f}: ")))
            continue
        pos.append(i)
        names.append(f)
        if len(tensors) == batch:
            yield pos, names, torch.stack(tensors)
            pos, names, tensors = [], [], []
    if tensors:
        yield pos, names, torch.stack(tensors)


def _finish(report: FolderReport, root: Path) -> FolderReport:
    lines = [f"{p.relative_to(root).as_posix()}\t{reason}" for p, reason in report.skipped]
    atomic_write_text(report.out / "skipped.txt", "".join(line + "\n" for line in lines))
    return report


def _setup(model: StyleEncoderModel | str | os.PathLike, images_dir: str | os.PathLike, out_dir: str | os.PathLike,
           device: str, precision: str) -> tuple[StyleEncoderModel, list[Path], Path, Path, torch.device, str]:
    m = load_encoder(model)
    dev = pick_device(device)
    prec = resolve_precision(precision, dev)
    src, out = Path(images_dir), Path(out_dir)
    files = scan_images(src, exclude=[out])
    out.mkdir(parents=True, exist_ok=True)
    return m.to(dev).eval(), files, src, out, dev, prec


@torch.no_grad()
def encode_folder(model: StyleEncoderModel | str | os.PathLike, images_dir: str | os.PathLike,
                  out_dir: str | os.PathLike, batch: int = 8, progress: bool = True, device: str = "auto",
                  precision: str = "auto", reconstructions: bool = True, resize: int | None = None) -> FolderReport:
    """Invert every image under ``images_dir`` (recursive).

    Writes ``out_dir/latents/<relative path>.safetensors`` (tensor ``w_plus`` [num_ws, w_dim], fp32, metadata:
    the source file) and, with ``reconstructions``, ``out_dir/reconstructions/<relative path>.png`` (the generator's
    resolution, or ``resize`` px by average pooling as pSp's face_pool).
    """
    m, files, src, out, dev, prec = _setup(model, images_dir, out_dir, device, precision)
    report = FolderReport(out=out)
    # One autocast context for the whole folder: autocast caches the bf16 copies of trainable weights while it is
    # open, so the 267 M parameters of a full-size pSp encoder are cast once, not once per batch.
    with autocast(dev, prec), tqdm(total=len(files), desc="encode", unit="img", disable=not progress) as bar:
        for _, names, x in _batches(files, m, batch, report):
            w_plus = m.encode(x.to(dev)).float()
            images = m.decode(w_plus, resize=resize or False).float() if reconstructions else None
            for j, f in enumerate(names):
                rel = f.relative_to(src).with_suffix("")
                path = out / "latents" / f"{rel.as_posix()}.safetensors"
                path.parent.mkdir(parents=True, exist_ok=True)
                tensors = {"w_plus": w_plus[j].cpu().contiguous()}
                meta = {"source": f.relative_to(src).as_posix(), "num_ws": str(m.num_ws), "w_dim": str(m.w_dim)}
                atomic_write(path, lambda p, t=tensors, md=meta: save_file(t, str(p), metadata=md))
                if images is not None:
                    save_image(images[j], out / "reconstructions" / f"{rel.as_posix()}.png")
                report.written += 1
            bar.update(len(names))
        bar.update(len(files) - bar.n)
    return _finish(report, src)


@torch.no_grad()
def translate_folder(model: StyleEncoderModel | str | os.PathLike, images_dir: str | os.PathLike,
                     out_dir: str | os.PathLike, samples: int = 0, batch: int = 8,
                     latent_mask: Sequence[int] | None = None, alpha: float | None = None, seed: int = 0,
                     truncation_psi: float = 1.0, strips: bool = True, progress: bool = True, device: str = "auto",
                     precision: str = "auto", resize: int | None = None) -> FolderReport:
    """Translate every image under ``images_dir`` (sketches, label maps, low-res or masked photos — whatever the
    model was trained on) into the generator's domain.

    Writes ``out_dir/<relative path>.png`` (the translation) and, with ``samples`` K ≥ 1, K multi-modal variants
    ``out_dir/<relative path>_s{k}.png`` (fine styles from random w, see the module docstring) plus, with
    ``strips``, ``out_dir/strips/<relative path>.png``: input | translation | variants side by side.
    """
    if samples < 0:
        raise ValueError(f"samples must be >= 0, got {samples}")
    m, files, src, out, dev, prec = _setup(model, images_dir, out_dir, device, precision)
    G = m.decoder
    mask = list(latent_mask) if latent_mask is not None else default_latent_mask(m.num_ws)
    if samples and not mask:
        raise ValueError("latent_mask is empty: no rows to mix")
    report = FolderReport(out=out)
    # One autocast context for the whole folder (bf16 weight copies cached across batches, as in encode_folder).
    with autocast(dev, prec), tqdm(total=len(files), desc="translate", unit="img", disable=not progress) as bar:
        for positions, names, x in _batches(files, m, batch, report):
            w_plus = m.encode(x.to(dev)).float()
            outputs = [m.decode(w_plus, resize=resize or False).float()]
            if samples:
                z = torch.stack([torch.randn(samples, G.z_dim, generator=torch.Generator().manual_seed(
                    seed * 1_000_003 + p)) for p in positions]).to(dev)  # [B, K, z_dim]
                w = G.map(z.flatten(0, 1), truncation_psi).view(len(positions), samples, -1)
                for k in range(samples):
                    mixed = mix_latents(w_plus, mask, w[:, k], alpha)
                    outputs.append(m.decode(mixed, resize=resize or False).float())
            side = outputs[0].shape[-1]
            for j, f in enumerate(names):
                rel = f.relative_to(src).with_suffix("").as_posix()
                save_image(outputs[0][j], out / f"{rel}.png")
                for k in range(samples):
                    save_image(outputs[k + 1][j], out / f"{rel}_s{k}.png")
                if strips and samples:
                    row = torch.stack([input_preview(x[j : j + 1], side)[0].to(dev)] + [o[j] for o in outputs])
                    save_image(make_grid(row.clamp(-1, 1).cpu(), nrow=len(row)), out / "strips" / f"{rel}.png")
                report.written += 1
            bar.update(len(names))
        bar.update(len(files) - bar.n)
    return _finish(report, src)
