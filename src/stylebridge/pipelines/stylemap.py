"""StyleMapGAN behind the pipeline interface (reconstruction), and the folder commands ``stylebridge stylemap edit``
(`edit_folder`) and ``stylebridge stylemap interpolate`` (`interpolate_folder`); the editing operations themselves
are in `stylebridge.edit.stylemap`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from stylebridge.core.atomic import atomic_write, check_writable_dir
from stylebridge.core.imageio import make_grid, save_image, to_pil
from stylebridge.edit.stylemap import edit_pair, load_mask, region_mask
from stylebridge.models.stylemapgan import StyleMapGAN
from stylebridge.pipelines.base import InputSpec, Pipeline, PipelineResult, register_pipeline
from stylebridge.pipelines.runner import FolderReport, list_inputs, load_for_spec

__all__ = ["StyleMapPipeline", "edit_folder", "interpolate_folder"]


class StyleMapPipeline(Pipeline):
    """StyleMapGAN behind the pipeline interface: RGB [N, 3, R, R] in [-1, 1] → ``images`` (the reconstruction
    decode(encode(x))), ``latents["stylemap"]`` [N, C, S, S]. Takes no options."""

    name = "stylemapgan"
    model_class = StyleMapGAN

    @property
    def input_spec(self) -> InputSpec:
        return InputSpec(channels=3, size=self.model.config.encoder.resolution, kind="rgb")

    def run(self, inputs: torch.Tensor, positions: Sequence[int], **options: object) -> PipelineResult:
        stylemap = self.model.encode(inputs)
        return PipelineResult(images=self.model.decode(stylemap).float(), latents={"stylemap": stylemap.float()})


register_pipeline(StyleMapGAN, StyleMapPipeline)


def _pairs(images: str | os.PathLike, reference: str | os.PathLike, out: Path) -> list[tuple[Path, Path, str]]:
    """(source, reference, name) pairs: one reference file for every source, or two folders paired by name."""
    files, root = list_inputs(images, out)
    ref = Path(reference)
    if ref.is_file():
        return [(f, ref, f.relative_to(root).with_suffix("").as_posix()) for f in files]
    refs, ref_root = list_inputs(ref, out)
    by_name = {r.relative_to(ref_root).with_suffix("").as_posix(): r for r in refs}
    pairs = []
    for f in files:
        rel = f.relative_to(root).with_suffix("").as_posix()
        if rel not in by_name:
            raise FileNotFoundError(f"{f}: no reference of the same name under {ref} (give one reference file to "
                                    "use it for every image)")
        pairs.append((f, by_name[rel], rel))
    return pairs


def _load(model: StyleMapGAN | str | os.PathLike) -> StyleMapGAN:
    if isinstance(model, StyleMapGAN):
        return model.eval()
    from stylebridge.formats.loading import load

    return load(model, expect=StyleMapGAN).eval()


def edit_folder(model: StyleMapGAN | str | os.PathLike, images: str | os.PathLike, reference: str | os.PathLike,
                out: str | os.PathLike, mask: str | os.PathLike | None = None, region: str | None = None,
                space: str = "w_plus") -> FolderReport:
    """Local edits of every image under ``images`` with ``reference`` (one file, or a folder paired by name) under a
    mask (``mask`` an image file, or ``region`` synthfaces region names). Writes ``out/<rel>.png`` (the edit) and
    ``out/strips/<rel>.png`` (source | reference | mask | reconstruction | edit)."""
    if (mask is None) == (region is None):
        raise ValueError("give a mask image (--mask FILE) or synthfaces regions (--region hair,glasses), one of them")
    m = _load(model)
    res = m.config.generator.resolution
    m_img = load_mask(mask, res) if mask is not None else region_mask(region or "", res)
    dst = Path(out)
    check_writable_dir(dst)
    spec = InputSpec(channels=3, size=m.config.encoder.resolution, kind="rgb")
    report = FolderReport(out=dst)
    for src_path, ref_path, rel in _pairs(images, reference, dst):
        x, r = load_for_spec(src_path, spec)[None], load_for_spec(ref_path, spec)[None]
        with torch.no_grad():
            edit = edit_pair(m, x, r, m_img, space)
            recon = m.reconstruct(x)
        report.files.append(save_image(edit[0], dst / f"{rel}.png"))
        row = torch.cat([x, r, m_img.expand(1, 3, -1, -1), recon, edit]).clamp(-1, 1)
        report.files.append(save_image(make_grid(row, nrow=len(row)), dst / "strips" / f"{rel}.png"))
        report.written += 1
    return report


def interpolate_folder(model: StyleMapGAN | str | os.PathLike, images: str | os.PathLike,
                       reference: str | os.PathLike, out: str | os.PathLike, frames: int = 8) -> FolderReport:
    """Stylemap interpolation from every image under ``images`` to its reference in ``frames`` steps: writes
    ``out/<rel>/frame0000.png …``, ``out/<rel>.gif`` and ``out/<rel>_strip.png``."""
    if frames < 2:
        raise ValueError(f"frames must be >= 2, got {frames}")
    m = _load(model)
    dst = Path(out)
    check_writable_dir(dst)
    spec = InputSpec(channels=3, size=m.config.encoder.resolution, kind="rgb")
    report = FolderReport(out=dst)
    alphas = torch.linspace(0, 1, frames).view(-1, 1, 1, 1)
    for src_path, ref_path, rel in _pairs(images, reference, dst):
        x, r = load_for_spec(src_path, spec)[None], load_for_spec(ref_path, spec)[None]
        with torch.no_grad():
            a, b = m.encode(x), m.encode(r)
            clip = m.interpolate(a.expand(frames, -1, -1, -1), b.expand(frames, -1, -1, -1), alphas).clamp(-1, 1)
        for k, frame in enumerate(clip):
            report.files.append(save_image(frame, dst / rel / f"frame{k:04d}.png"))
        pics = [to_pil(f) for f in clip]
        report.files.append(atomic_write(dst / f"{rel}.gif", lambda p, pics=pics: pics[0].save(
            p, format="GIF", save_all=True, append_images=pics[1:], duration=120, loop=0)))
        report.files.append(save_image(make_grid(clip, nrow=frames), dst / f"{rel}_strip.png"))
        report.written += 1
    return report
