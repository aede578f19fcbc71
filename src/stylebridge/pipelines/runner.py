"""The one folder runner: every image under a folder through a `Pipeline`, outputs written atomically.

    from stylebridge.pipelines.base import load_pipeline
    from stylebridge.pipelines.runner import Outputs, run_folder
    report = run_folder(load_pipeline("synthfaces-64-psp-sketch"), "sketches/", "faces/", samples=4)
    report.written, report.skipped, report.out

One of each, for every pipeline that takes images (``stylebridge encode`` and ``translate`` run through it):

* **loader**: files are read as the pipeline's `InputSpec` says — RGB (`core.imageio.load_image`, centre crop,
  resize), grayscale sketches, one-hot label maps or RGB + mask (`data.paired.load_input`); two-image inputs
  ("rgb-pair": mixing / blending translators) read A from ``images`` and B from the file of the same relative name
  (extension aside) under ``images2``;
* **bad files**: an unreadable file is skipped with a warning line naming it and the reason, listed in
  ``OUT/skipped.txt`` (``relative/path<TAB>reason``), and never stops the run;
* one progress bar, one ``batch_size``, one precision: resolved once, one autocast context for the whole folder
  (autocast caches bf16 copies of the weights while it is open, so they are cast once, not once per batch);
* **outputs** (`Outputs`): images as PNG (`core.imageio.save_image`), latents as safetensors, multi-modal samples
  and strips, walk frames + GIF — every file written atomically (a kill or a full disk never leaves a partial file
  under its final name);
* an ``out`` folder inside the image folder is not scanned (outputs are never fed back in); OS errors (an ``out``
  that is a file, an unwritable folder, a full disk) are raised before any work where possible, naming the path.

Outputs never depend on the batch size: pipelines with per-image randomness draw it from the image's position.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file
from tqdm.auto import tqdm

from stylebridge.core.atomic import atomic_write, atomic_write_text, check_writable_dir
from stylebridge.core.device import pick_device, resolve_precision
from stylebridge.core.errors import BadImageError
from stylebridge.core.imageio import (
    center_crop_resize,
    load_image,
    make_grid,
    save_image,
    scan_images,
    to_pil,
    to_tensor,
)
from stylebridge.data.paired import input_kind, load_input
from stylebridge.pipelines.base import InputSpec, Pipeline

__all__ = ["FolderReport", "Outputs", "check_alignable", "input_preview", "list_inputs", "load_for_spec",
           "load_pair_for_spec", "match_second_images", "run_folder"]

logger = logging.getLogger("stylebridge.pipelines")

# Colours of label maps in previews (the synthfaces segmentation palette, then a hue wheel for more labels).
_PALETTE = [(0, 0, 0), (230, 180, 150), (120, 60, 20), (255, 255, 255), (60, 30, 10), (200, 30, 40),
            (240, 120, 60), (30, 30, 200), (90, 50, 20), (40, 160, 40)]


@dataclass
class FolderReport:
    """What a folder run did: images processed (``written``), files skipped with reasons, the output folder and
    every file written (``files``, in order)."""

    written: int = 0
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    out: Path = Path()
    files: list[Path] = field(default_factory=list)
    # What the method reports over the run (e.g. PTI's quality per second: ``summary["text"]`` is one line).
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Outputs:
    """Which files `run_folder` writes per input ``<rel>`` (its path under the image folder, without suffix).

    images: subfolder for ``result.images`` as ``<images>/<rel>.png`` ("" = the output folder itself; None = not
        written); multi-modal ``extras["samples"]`` go beside them as ``<rel>_s{k}.png``.
    latents: subfolder for ``result.latents`` as ``<latents>/<rel>.safetensors`` (one tensor per latent name,
        fp32, metadata: the source file and the pipeline's `latent_metadata`); None = not written.
    strips: with samples, ``strips/<rel>.png``: input | image | samples side by side.
    Walk frames (``extras["frames"]``) are written as ``<rel>/frame0000.png …`` plus ``<rel>.gif`` instead of
    ``<rel>.png``.
    """

    images: str | None = ""
    latents: str | None = None
    strips: bool = True


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


Aligner = Callable[..., Image.Image]  # (image, output_size, path=...) → aligned RGB image; BadImageError if no face


def check_alignable(spec: InputSpec, who: str = "this pipeline") -> None:
    """Raise a one-line ValueError unless ``spec`` takes photos (RGB or grayscale): what face alignment feeds."""
    if spec.channels not in (1, 3) or spec.kind not in ("rgb", "gray"):
        raise ValueError(f"{who} takes {spec.kind} inputs; face alignment (--align) applies to photos (RGB or "
                         "grayscale inputs)")


def load_for_spec(path: str | os.PathLike, spec: InputSpec, align: Aligner | None = None) -> torch.Tensor:
    """One input file as ``spec`` wants it: [channels, size, size] in [-1, 1] (label maps one-hot in {0, 1}).

    RGB: `load_image` (any mode, EXIF, alpha composited on white) + centre crop + resize; other kinds:
    `data.paired.load_input`. ``align`` (e.g. a `data.align.Dlib68Aligner`): the face is found and aligned into
    the generator's layout instead of the centre crop (RGB and 1-channel inputs). Raises `BadImageError`
    ("PATH: reason") for files that cannot be used, and for photos where the aligner finds no face.
    """
    if not spec.takes_images:
        raise ValueError(f"a {spec.kind} pipeline does not read image files")
    if spec.kind == "rgb-pair":
        raise ValueError("a two-image (rgb-pair) input needs two files: use load_pair_for_spec")
    if align is not None:
        check_alignable(spec)
        img = align(load_image(path), spec.size, path=path)
        if spec.channels == 1:  # to_tensor always gives RGB: keep one (luma) channel
            return to_tensor(img.convert("L"))[:1]
        return to_tensor(img)
    if spec.kind == "rgb" and spec.channels == 3:
        return to_tensor(center_crop_resize(load_image(path), spec.size))
    return load_input(path, spec.channels, spec.size)


def load_pair_for_spec(path: str | os.PathLike, path2: str | os.PathLike, spec: InputSpec) -> torch.Tensor:
    """A two-image input: A from ``path``, B from ``path2``, each RGB [3, size, size], concatenated [6, size, size]."""
    one = InputSpec(channels=3, size=spec.size, kind="rgb")
    return torch.cat([load_for_spec(path, one), load_for_spec(path2, one)])


def match_second_images(files: list[Path], root: Path, images2: str | os.PathLike,
                        out: str | os.PathLike | None = None) -> dict[Path, Path]:
    """file → the file of the same relative name (without extension) under ``images2``, for every file. Raises a
    one-line error when ``images2`` is not a folder or some files have no partner (naming a few)."""
    second = Path(images2)
    if not second.is_dir():
        raise FileNotFoundError(f"{second}: second image folder not found")
    by_name = {f.relative_to(second).with_suffix("").as_posix(): f
               for f in scan_images(second, exclude=[out] if out is not None else [])}
    pairs, missing = {}, []
    for f in files:
        rel = f.relative_to(root).with_suffix("").as_posix()
        if rel in by_name:
            pairs[f] = by_name[rel]
        else:
            missing.append(rel)
    if missing:
        raise ValueError(f"{len(missing)} of {len(files)} images under {root} have no image of the same name under "
                         f"{second} (e.g. {', '.join(missing[:3])})")
    return pairs


def list_inputs(images: str | os.PathLike, out: str | os.PathLike | None = None) -> tuple[list[Path], Path]:
    """(files, root): every image under the folder ``images`` (recursive, sorted; an ``out`` folder inside it is
    not scanned), or ``[images]`` for one file."""
    src = Path(images)
    if src.is_file():
        return [src], src.parent
    return scan_images(src, exclude=[out] if out is not None else []), src


def _batches(files: list[Path], spec: InputSpec, batch_size: int, root: Path, report: FolderReport,
             second: dict[Path, Path] | None = None,
             align: Aligner | None = None) -> Iterator[tuple[list[int], list[Path], torch.Tensor]]:
    """Lazily loaded batches (positions, files, inputs [B, C, S, S]); bad files (and, with ``align``, photos
    without a face) are reported, never fatal. ``second``: each file's B image (two-image inputs)."""
    pos: list[int] = []
    names: list[Path] = []
    tensors: list[torch.Tensor] = []
    for i, f in enumerate(files):
        try:
            tensors.append(load_pair_for_spec(f, second[f], spec) if second is not None
                           else load_for_spec(f, spec, align))
        except BadImageError as e:
            logger.warning("skipping %s", e)
            report.skipped.append((f, str(e).removeprefix(f"{f}: ")))
            continue
        pos.append(i)
        names.append(f)
        if len(tensors) == batch_size:
            yield pos, names, torch.stack(tensors)
            pos, names, tensors = [], [], []
    if tensors:
        yield pos, names, torch.stack(tensors)


def _write_item(pipeline: Pipeline, res: Any, j: int, x: torch.Tensor, rel: str, source: str, out: Path,
                outputs: Outputs) -> list[Path]:
    written: list[Path] = []
    frames = res.extras.get("frames")
    samples = res.extras.get("samples")
    if outputs.latents is not None and res.latents:
        path = out / outputs.latents / f"{rel}.safetensors"
        # fp16 latents (PTI's tuned weights) stay fp16; everything else is stored fp32
        tensors = {k: (v[j] if v.dtype == torch.float16 else v[j].float()).cpu().contiguous()
                   for k, v in res.latents.items()}
        meta = {"source": source, **pipeline.latent_metadata()}
        written.append(atomic_write(path, lambda p, t=tensors, md=meta: save_file(t, str(p), metadata=md)))
    if outputs.images is None:
        return written
    base = out / outputs.images if outputs.images else out
    if frames is not None:  # a walk: frames + GIF instead of one image
        name = base / rel
        clip = frames[j]  # [F, C, H, W]
        pics = [to_pil(frame.clamp(-1, 1)) for frame in clip]
        for k, frame in enumerate(clip):
            written.append(save_image(frame, name / f"frame{k:04d}.png"))
        gif = name.with_name(name.name + ".gif")
        written.append(atomic_write(gif, lambda p, pics=pics: pics[0].save(
            p, format="GIF", save_all=True, append_images=pics[1:], duration=80, loop=0)))
        return written
    written.append(save_image(res.images[j], base / f"{rel}.png"))
    if samples is not None:
        for k in range(samples.shape[1]):
            written.append(save_image(samples[j, k], base / f"{rel}_s{k}.png"))
        if outputs.strips and samples.shape[1]:
            side = res.images.shape[-1]
            row = torch.cat([input_preview(x[j : j + 1], side), res.images[j : j + 1], samples[j]])
            written.append(save_image(make_grid(row.clamp(-1, 1), nrow=len(row)), out / "strips" / f"{rel}.png"))
    return written


def run_folder(pipeline: Pipeline, images: str | os.PathLike, out: str | os.PathLike, *,
               outputs: Outputs = Outputs(), batch_size: int = 8, device: str | torch.device | None = "auto",
               precision: str = "auto", progress: bool = True, desc: str = "run",
               images2: str | os.PathLike | None = None, align: Aligner | None = None,
               **options: Any) -> FolderReport:
    """Run ``pipeline`` on every image under ``images`` (a folder, searched recursively, or one file) and write
    the results into ``out`` as ``outputs`` says; ``options`` go to each ``pipeline(...)`` call.

    ``images2``: for pipelines taking two images ("rgb-pair" input), the folder of the B images, paired with
    ``images`` by relative name (extension aside); every image needs its partner. Refused for other pipelines.

    ``device``: "auto", a device name, or None to leave the pipeline where it is. ``precision``: "auto", "fp32" or
    "bf16" (one autocast context for the whole folder). Returns a `FolderReport`; ``out/skipped.txt`` lists the
    files skipped (empty when none were).

    ``align``: each photo's face is found and aligned into the generator's layout before the pipeline sees it
    (`data.align.Dlib68Aligner` with a template); the aligned inputs are written to ``out/aligned/<rel>.png``, and a
    photo without a face is skipped and listed ("no face found"), never fatal.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    spec = pipeline.input_spec
    if not spec.takes_images:
        raise ValueError(f"the {pipeline.name} pipeline takes {spec.kind}, not image files")
    if spec.kind == "rgb-pair" and images2 is None:
        raise ValueError(f"the {pipeline.name} pipeline takes two images per input (A and B): give the B images' "
                         "folder (--images2), paired with the A images by file name")
    if align is not None:
        check_alignable(spec, f"the {pipeline.name} pipeline")
    if spec.kind != "rgb-pair" and images2 is not None:
        raise ValueError(f"the {pipeline.name} pipeline takes one image per input; a second image folder "
                         "(--images2) does not apply")
    pipeline.check_options(options)
    options = pipeline.resolve_options(options)
    dst = Path(out)
    check_writable_dir(dst)  # an out that is a file, or an unwritable folder: fail before any work
    if not Path(images).exists():
        raise FileNotFoundError(f"{images}: no such image folder or file")
    if device is not None:
        pipeline.to(pick_device(str(device)) if not isinstance(device, torch.device) else device)
    prec = resolve_precision(precision, pipeline.device)
    files, root = list_inputs(images, dst)
    second = match_second_images(files, root, images2, dst) if images2 is not None else None
    dst.mkdir(parents=True, exist_ok=True)
    report = FolderReport(out=dst)
    redirect = contextlib.nullcontext()
    if progress:
        from tqdm.contrib.logging import logging_redirect_tqdm

        redirect = logging_redirect_tqdm(loggers=[logging.root, logging.getLogger("stylebridge")])
    with redirect, pipeline.autocast(prec), tqdm(total=len(files), desc=desc, unit="img",
                                                  disable=not progress) as bar:
        for positions, names, x in _batches(files, spec, batch_size, root, report, second, align):
            res = pipeline(x, positions=positions, **options).cpu()
            for j, f in enumerate(names):
                rel = f.relative_to(root).with_suffix("").as_posix()
                if align is not None:
                    report.files.append(save_image(input_preview(x[j : j + 1])[0], dst / "aligned" / f"{rel}.png"))
                report.files += _write_item(pipeline, res, j, x, rel, f.relative_to(root).as_posix(), dst, outputs)
                report.written += 1
            bar.update(len(names))
        bar.update(len(files) - bar.n)
    lines = [f"{p.relative_to(root).as_posix()}\t{reason}" for p, reason in report.skipped]
    atomic_write_text(dst / "skipped.txt", "".join(line + "\n" for line in lines))
    return report
