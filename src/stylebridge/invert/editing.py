"""Edit real images: invert, move along a direction at several strengths, render — over a folder.

    from stylebridge.invert import edit_folder
    edit_folder("photos/", "out/", "e4e", "smile.direction/", strengths=[-3, 0, 3])
    # out/<rel>_s-3.png, out/<rel>_s0.png, out/<rel>_s3.png, out/strips/<rel>.png, out/latents/<rel>.safetensors

A direction is a `Direction`, a `GanSpaceComponents` with ``component=K`` (``GanSpaceComponents.direction(K,
layers)``), or a file / folder / shipped name that ``stylebridge.load`` turns into one of those.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from tqdm.auto import tqdm

from stylebridge.core.atomic import atomic_write, atomic_write_text, check_writable_dir
from stylebridge.core.device import autocast, pick_device
from stylebridge.core.errors import BadImageError
from stylebridge.core.imageio import make_grid, save_image
from stylebridge.edit.resolve import resolve_direction, shipped_directions
from stylebridge.invert.base import Inverter, resize_to, resolve_inverter, split_precision
from stylebridge.models.direction import Direction, GanSpaceComponents, parse_layers
from stylebridge.pipelines.base import InputSpec
from stylebridge.pipelines.runner import Aligner, FolderReport, list_inputs, load_for_spec

__all__ = ["edit_folder", "parse_strengths", "resolve_direction", "shipped_directions", "strength_label"]

logger = logging.getLogger("stylebridge.invert")


def parse_strengths(spec: str | float | Sequence[float]) -> list[float]:
    """"-3,0,3" / 1.5 / [-3, 3] → [floats] (at least one, all finite)."""
    import math

    if isinstance(spec, str):
        try:
            values = [float(s) for s in spec.split(",") if s.strip()]
        except ValueError:
            raise ValueError(f"strengths must be numbers separated by commas, e.g. -3,0,3; got {spec!r}") from None
    elif isinstance(spec, (int, float)):
        values = [float(spec)]
    else:
        values = [float(s) for s in spec]
    if not values or not all(math.isfinite(v) for v in values):
        raise ValueError(f"strengths must be finite numbers (at least one), got {spec!r}")
    return values


def strength_label(strength: float) -> str:
    """The file-name form of a strength: 3 → "3", -1.5 → "-1.5", 0 → "0"."""
    return f"{strength:g}".replace("+", "")


def edit_folder(images: str | os.PathLike, out: str | os.PathLike, inverter: Inverter | str,
                direction: Direction | GanSpaceComponents | str | os.PathLike, strengths: str | Sequence[float],
                layers: str | Sequence[int] | None = None, *, component: int | None = None,
                model: str | os.PathLike | None = None, generator: str | os.PathLike | None = None,
                batch_size: int = 4, device: str = "auto", precision: str = "fp32", progress: bool = True,
                align: Aligner | None = None, **inverter_options: Any) -> FolderReport:
    """Invert every image under ``images`` (a folder, recursive, or one file), apply ``direction`` at each strength
    and render the edits with ``inverter.render``.

    Writes, for each input ``<rel>`` (its path under the folder, without suffix):
    ``out/<rel>_s{strength}.png`` per strength, ``out/strips/<rel>.png`` (input | reconstruction | each strength,
    one row) and ``out/latents/<rel>.safetensors`` (``w_plus`` [num_ws, w_dim] and ``edited`` [S, num_ws, w_dim],
    and for PTI the image's tuned weights, `stylebridge.invert.load_delta`; metadata: source, strengths, direction,
    inverter). Edits are rendered by ``inverter.render`` with the inversion's noise maps and tuned weights.
    Unreadable files are skipped with a warning and listed in ``out/skipped.txt``. Every file is written atomically.

    Args:
        inverter: an `Inverter`, or a name for `make_inverter` (with ``model``, ``generator`` and
            ``inverter_options``, e.g. ``steps=200``).
        direction: see `resolve_direction` (``component`` for GANSpace components).
        strengths: "-3,0,3" or numbers.
        layers: W+ rows to edit ("a-b", "a,b", "all"); None: the direction's own range.
        precision: autocast around the encoders and rendering ("fp32", "bf16", "auto").
        align: photos aligned into the generator's layout first (written to ``out/aligned/<rel>.png``; a photo
            without a face is skipped and listed).
    """
    values = parse_strengths(strengths)
    rows = parse_layers(layers) if layers is not None else None
    precision = split_precision(inverter, precision, inverter_options)
    inverter = resolve_inverter(inverter, model, generator, progress, **inverter_options)
    d = resolve_direction(direction, component, rows, generator=inverter.generator)
    G = inverter.generator
    if d.config.w_dim != G.w_dim or (d.config.num_ws and d.config.num_ws != G.num_ws):
        raise ValueError(f"direction {d.name!r} is for w_dim {d.config.w_dim}"
                         + (f", {d.config.num_ws} W+ rows" if d.config.num_ws else "")
                         + f"; the generator has w_dim {G.w_dim}, {G.num_ws} rows")
    if rows is not None:
        parse_layers(list(rows), G.num_ws)  # rows beyond the generator: a one-line error before any work
    dst = Path(out)
    check_writable_dir(dst)
    inverter.to(pick_device(device))
    files, root = list_inputs(images, dst)
    dst.mkdir(parents=True, exist_ok=True)
    spec = InputSpec(channels=3, size=inverter.input_size, kind="rgb")
    report = FolderReport(out=dst)
    log: list[dict[str, Any]] = []
    meta = {"strengths": ",".join(strength_label(s) for s in values), "direction": d.name,
            "layers": ",".join(map(str, rows if rows is not None else (d.config.layers or ()))) or "all",
            **inverter.metadata()}
    redirect = contextlib.nullcontext()
    if progress:
        from tqdm.contrib.logging import logging_redirect_tqdm

        redirect = logging_redirect_tqdm(loggers=[logging.root, logging.getLogger("stylebridge")])
    with redirect, autocast(inverter.device, precision), tqdm(total=len(files), desc=f"edit ({inverter.name})",
                                                              unit="img", disable=not progress) as bar:
        for batch in _batches(files, spec, batch_size, report, align):
            names, x = zip(*batch)
            report.files += _edit_batch(inverter, d, values, rows, torch.stack(x), list(names), root, dst, meta,
                                        log)
            if align is not None:  # what the inverter saw, beside its edits
                report.files += [save_image(xi, dst / "aligned" / f.relative_to(root).with_suffix(".png"))
                                 for f, xi in zip(names, x)]
            report.written += len(names)
            bar.update(len(names))
        bar.update(len(files) - bar.n)
    lines = [f"{p.relative_to(root).as_posix()}\t{reason}" for p, reason in report.skipped]
    atomic_write_text(dst / "skipped.txt", "".join(line + "\n" for line in lines))
    from stylebridge.invert.folder import inversion_summary

    report.summary = inversion_summary(inverter.name, log)
    return report


def _batches(files: list[Path], spec: InputSpec, batch_size: int, report: FolderReport,
             align: Aligner | None = None):
    batch: list[tuple[Path, torch.Tensor]] = []
    for f in files:
        try:
            batch.append((f, load_for_spec(f, spec, align)))
        except BadImageError as e:
            logger.warning("skipping %s", e)
            report.skipped.append((f, str(e).removeprefix(f"{f}: ")))
            continue
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def _edit_batch(inverter: Inverter, d: Direction, strengths: list[float], rows: tuple[int, ...] | None,
                x: torch.Tensor, names: list[Path], root: Path, dst: Path, meta: dict[str, str],
                log: list[dict[str, Any]]) -> list[Path]:
    with torch.enable_grad():
        inv = inverter.invert(x.to(inverter.device))
    log.append(inv.extras)
    w_plus = inv.w_plus.float()
    edited = [d.apply(w_plus, s, rows) for s in strengths]  # S × [N, num_ws, w_dim]
    # the inversion's noise maps (optimisation) and tuned weights (PTI) render the edits
    renders = [inverter.render(e, **inv.render_options()).float().cpu() for e in edited]
    tuned = inv.extras.get("tuned")
    delta = tuned.per_image(len(names)) if tuned is not None else {}
    if tuned is not None:
        meta = {**meta, **tuned.metadata()}
    recon = inv.images.float().cpu()
    side = recon.shape[-1]
    written: list[Path] = []
    for j, f in enumerate(names):
        rel = f.relative_to(root).with_suffix("").as_posix()
        for s, img in zip(strengths, renders):
            written.append(save_image(img[j], dst / f"{rel}_s{strength_label(s)}.png"))
        row = torch.cat([resize_to(x[j : j + 1].float(), side), recon[j : j + 1], *[r[j : j + 1] for r in renders]])
        written.append(save_image(make_grid(row.clamp(-1, 1), nrow=len(row)), dst / "strips" / f"{rel}.png"))
        tensors = {"w_plus": w_plus[j].cpu().contiguous(),
                   "edited": torch.stack([e[j] for e in edited]).cpu().contiguous(),
                   **{k: v[j].contiguous() for k, v in delta.items()}}
        md = {"source": f.relative_to(root).as_posix(), **meta}
        written.append(atomic_write(dst / "latents" / f"{rel}.safetensors",
                                    lambda p, t=tensors, m=md: save_file(t, str(p), metadata=m)))
    return written
