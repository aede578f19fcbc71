"""Real photos through every method: ``stylebridge evaluate --photos [DIR]``.

    result = run_photo_evaluation(methods=["actmap", "psp", "e4e"])      # scikit-image's bundled photos
    write_photo_report(result, "docs/photos")                              # report.md, report.json, grid.png

Real photos have no ground truth, but their geometry can be read twice: dlib's 68 landmarks on the photo, mapped
into the generator's frame by the same similarity that aligns it (`data.align`), and the translated face's layout,
known exactly for a synthfaces generator — the domain network reads its attributes and the renderer's landmark
formulas (`data.synthfaces.landmarks`) place its eyes, nose and mouth. Per method, over the photos a face was found
in, the Pearson correlation of

* ``yaw``: the nose tip's horizontal offset from the eyes' midpoint, in eye distances (head turn);
* ``eye_mouth``: the eye-to-mouth distance in eye distances (face proportions);
* ``mouth_open``: dlib's inner-lip gap over the mouth width against the network's ``mouth_open`` reading;
* ``smile``: how far the mouth corners sit above the lips' centre (over the mouth width) against ``smile``.

The bundled set (`bundled_photos`, needs ``pip install scikit-image``): the public-domain ``astronaut`` (Eileen
Collins, NASA), ``camera`` (the cameraman, a face in profile) and the 100 face crops of ``lfw_subset`` (Labeled Faces
in the Wild, 25 px grayscale, faces filling the frame). Photos without a face dlib can find are listed, not fatal.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from stylebridge.core.imageio import load_image, scan_images, to_tensor
from stylebridge.data import synthfaces as sf
from stylebridge.data.align import (
    Dlib68Aligner,
    FaceTemplate,
    align_to_template,
    five_points,
    synthfaces_template,
    to_template_frame,
)
from stylebridge.evaluate.inputs import InputBatch
from stylebridge.evaluate.methods import EvalMethod, build_method, parse_method

__all__ = ["GEOMETRY", "PhotoResult", "bundled_photos", "load_photos", "run_photo_evaluation", "write_photo_report"]

GEOMETRY = ("yaw", "eye_mouth", "mouth_open", "smile")


def bundled_photos(lfw: int = 100) -> list[tuple[str, Image.Image]]:
    """The face photos scikit-image ships (module docstring) as (name, RGB image); ``lfw`` of its 100 LFW crops.

    Raises ImportError with the pip command when scikit-image is not installed."""
    try:
        from skimage import data
    except ImportError as e:
        raise ImportError("the bundled photos come from scikit-image: pip install scikit-image") from e
    photos = [("astronaut", Image.fromarray(data.astronaut()).convert("RGB")),
              ("camera", Image.fromarray(data.camera()).convert("RGB"))]
    faces = data.lfw_subset()[: min(lfw, 100)]  # the first 100 are faces, the rest are not
    photos += [(f"lfw{i:03d}", Image.fromarray(np.uint8(np.clip(f * 255, 0, 255))).convert("RGB"))
               for i, f in enumerate(faces)]
    return photos


def load_photos(folder: str | os.PathLike,
                unreadable: list[str] | None = None) -> list[tuple[str, Image.Image]]:
    """Every image under ``folder`` (recursive) as (relative name, RGB image); unreadable files are skipped and
    their "name: reason" appended to ``unreadable``."""
    from stylebridge.core.errors import BadImageError

    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: photo folder not found")
    out = []
    for f in scan_images(root):
        name = f.relative_to(root).with_suffix("").as_posix()
        try:
            out.append((name, load_image(f)))
        except BadImageError as e:
            if unreadable is not None:
                unreadable.append(f"{name}: {str(e).removeprefix(f'{f}: ')}")
    return out


def in_template_frame(landmarks: np.ndarray, template: FaceTemplate) -> np.ndarray:
    """68 landmarks of a photo (pixels) → the same points in the generator's frame after alignment ([-1, 1] image
    coordinates): the exact inverse of the similarity `data.align.align_to_template` warps the photo with."""
    return to_template_frame(landmarks, landmarks, template)


def geometry(points: np.ndarray) -> dict[str, float]:
    """``yaw`` and ``eye_mouth`` (module docstring) of 5 points [5, 2] (`data.align.FIVE_POINTS`)."""
    el, er, nose, ml, mr = points
    eye_mid, eye_d = (el + er) / 2, float(np.hypot(*(er - el)))
    mouth_mid = (ml + mr) / 2
    return {"yaw": float(nose[0] - eye_mid[0]) / eye_d, "eye_mouth": float(np.hypot(*(mouth_mid - eye_mid))) / eye_d}


def mouth_readings(landmarks: np.ndarray) -> dict[str, float]:
    """``mouth_open`` and ``smile`` (module docstring) of 68 landmarks: the inner-lip gap (62 → 66) and the corners'
    (48, 54) height above the inner lips' centre, each over the mouth width."""
    lm = np.asarray(landmarks, dtype=np.float64)
    width = float(np.hypot(*(lm[54] - lm[48])))
    centre = (lm[62] + lm[66]) / 2
    corners = (lm[48] + lm[54]) / 2
    return {"mouth_open": float(np.hypot(*(lm[66] - lm[62]))) / width, "smile": float(centre[1] - corners[1]) / width}


def _pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(a) < 3 or a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


@dataclass
class PhotoResult:
    """``report``: JSON-able (config, photos found / skipped, per method the correlations and per-photo readings);
    ``grid``: rows of images [K, 3, R, R] per photo (photo, aligned, each method) for the picture."""

    report: dict[str, Any]
    grid: list[tuple[str, torch.Tensor]] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)


@torch.no_grad()
def run_photo_evaluation(methods: Sequence[str | EvalMethod] = ("actmap", "psp", "e4e"),
                         photos: str | os.PathLike | Sequence[tuple[str, Image.Image]] | None = None,
                         generator: str = "synthfaces-64", domain: str = "synthfaces-domain",
                         template: FaceTemplate | None = None, colors_from_input: bool = True,
                         grid_rows: int = 12, device: str = "auto", progress: bool = True) -> PhotoResult:
    """Align real photos into ``generator``'s layout (dlib + ``template``, default the synthfaces template), run each
    method on them and compare the photo's geometry with the translated face's (module docstring).

    ``photos``: a folder, (name, image) pairs, or None for `bundled_photos`. ``colors_from_input``: add a row
    "actmap, input colours" (`core.filters.match_colors`) when actmap is among the methods.
    """
    from tqdm.auto import tqdm

    from stylebridge.core.device import pick_device
    from stylebridge.core.filters import match_colors
    from stylebridge.formats.loading import load
    from stylebridge.models.domain import DomainNetwork
    from stylebridge.models.stylegan2 import StyleGAN2Generator

    t0 = time.perf_counter()
    if template is None and not Path(str(generator)).name.startswith("synthfaces"):
        raise ValueError(f"--photos reads the translated faces' layout with the synthfaces renderer: {generator} is "
                         "not a synthfaces generator")
    dev = pick_device(device)
    res = load(generator, expect=StyleGAN2Generator).resolution
    unreadable: list[str] = []
    items = bundled_photos() if photos is None else load_photos(photos, unreadable) if isinstance(
        photos, (str, os.PathLike)) else list(photos)
    if not items:
        raise ValueError("no photos to evaluate")
    template = template or synthfaces_template()
    aligner = Dlib68Aligner(template=template)
    net = load(domain, expect=DomainNetwork).to(dev).eval()

    names, aligned, readings, skipped, sources = [], [], [], [], []
    for name, img in tqdm(items, desc="align", unit="photo", disable=not progress):
        faces = aligner.landmarks(img)
        if not faces:
            skipped.append(name)
            continue
        lm = faces[0]
        aligned.append(to_tensor(align_to_template(img, lm, template, res)))
        framed = in_template_frame(lm, template)
        readings.append({**geometry(five_points(framed)), **mouth_readings(framed)})
        names.append(name)
        side = min(img.size)
        sources.append(to_tensor(img.crop(((img.width - side) // 2, (img.height - side) // 2,
                                           (img.width - side) // 2 + side, (img.height - side) // 2 + side))
                                 .resize((res, res), Image.Resampling.LANCZOS)))
    if not aligned:
        raise ValueError(f"dlib found no face in any of the {len(items)} photos")
    x = torch.stack(aligned)
    batch = InputBatch("photo", x, x)
    built = [m if isinstance(m, EvalMethod) else build_method(*parse_method(m), generator, dev) for m in methods]
    outputs: dict[str, torch.Tensor] = {}
    for m in tqdm(built, desc="methods", unit="method", disable=not progress):
        outs = [m.translate(batch.slice(s, s + 16)).float().cpu().clamp(-1, 1) for s in range(0, len(batch), 16)]
        y = torch.cat(outs)
        if y.shape[-1] != res:
            y = torch.nn.functional.interpolate(y, size=(res, res), mode="area" if y.shape[-1] > res else "bilinear")
        outputs[m.name] = y
        if colors_from_input and m.name == "actmap":
            outputs["actmap, input colours"] = match_colors(y, x)

    results: dict[str, Any] = {}
    for name, y in outputs.items():
        pred = {k: v.cpu() for k, v in net.predict(y.to(dev)).items()}
        pts = sf.landmarks(pred).double().numpy()
        out_geo = [geometry(p) for p in pts]
        per = {k: [] for k in GEOMETRY}
        for i, r in enumerate(readings):
            per["yaw"].append((r["yaw"], out_geo[i]["yaw"]))
            per["eye_mouth"].append((r["eye_mouth"], out_geo[i]["eye_mouth"]))
            per["mouth_open"].append((r["mouth_open"], float(pred["mouth_open"][i])))
            per["smile"].append((r["smile"], float(pred["smile"][i])))
        results[name] = {"correlation": {k: _pearson([a for a, _ in v], [b for _, b in v]) for k, v in per.items()},
                         "readings": {k: [round(b, 4) for _, b in v] for k, v in per.items()}}
    report = {
        "report": "stylebridge evaluate --photos", "generator": generator, "network": domain,
        "template": template.source, "photos": len(items), "aligned": len(names), "skipped": skipped,
        "unreadable": unreadable,
        "names": names, "input_readings": {k: [round(r[k], 4) for r in readings] for k in GEOMETRY},
        "methods": [m.name for m in built], "results": results, "wall_s": round(time.perf_counter() - t0, 1),
    }
    # grid rows: the named photos first (astronaut), then an even spread of the rest
    order = sorted(range(len(names)), key=lambda i: (names[i].startswith("lfw"), i))
    pick = order[:1] + [order[1:][j] for j in np.linspace(0, len(order) - 2, max(0, grid_rows - 1)).round()
                        .astype(int)] if len(order) > 1 else order
    columns = ["photo", "aligned", *outputs]
    grid = [(names[i], torch.stack([sources[i], x[i], *[outputs[k][i] for k in outputs]])) for i in dict.fromkeys(pick)]
    return PhotoResult(report, grid, columns)


def photo_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: the correlation table and what was skipped."""
    lines = [f"# Real photos → {report['generator']}", "",
             f"{report['aligned']} of {report['photos']} photos had a face dlib found; they were aligned into the "
             f"generator's layout (template: {report['template']}) and translated by each method. Correlation "
             "(Pearson r) between the photo's geometry (dlib, in the aligned frame) and the translated face's layout "
             f"({report['network']} reads its attributes; the renderer's landmark formulas place eyes, nose and "
             "mouth). Wall time "
             f"{report['wall_s']:.0f} s.", "",
             *([f"```bash\n{report['command']}\n```", ""] if report.get("command") else []),
             "| method | yaw r | eye–mouth r | mouth open r | smile r |", "|---|---|---|---|---|"]
    for m, r in report["results"].items():
        c = r["correlation"]
        lines.append(f"| {m} | " + " | ".join("—" if c[k] is None else f"{c[k]:.2f}" for k in GEOMETRY) + " |")
    if report["skipped"]:
        lines += ["", f"No face found (skipped): {', '.join(report['skipped'])}."]
    if report.get("unreadable"):
        lines += ["", f"Unreadable (skipped): {'; '.join(report['unreadable'])}."]
    cols = report.get("columns") or ["photo", "aligned", *report["results"]]
    lines += ["", "![grid](grid.png)", "", "Grid columns: " + " | ".join(
        "photo (centre crop)" if c == "photo" else c for c in cols) + "."]
    return "\n".join(lines) + "\n"


def write_photo_report(result: PhotoResult, out: str | os.PathLike) -> dict[str, Path]:
    """report.json, report.md and grid.png (rows: photos; columns: `PhotoResult.columns`) into ``out``."""
    from stylebridge.core.atomic import atomic_write_text
    from stylebridge.core.imageio import make_grid, save_image
    from stylebridge.evaluate.report import prepare_out_dir

    out = prepare_out_dir(out)
    paths = {"json": out / "report.json", "md": out / "report.md", "grid": out / "grid.png"}
    report = {**result.report, "columns": result.columns}
    atomic_write_text(paths["json"], json.dumps(report, indent=1) + "\n")
    atomic_write_text(paths["md"], photo_markdown(report))
    rows = torch.cat([r for _, r in result.grid])
    save_image(make_grid(rows.clamp(-1, 1), nrow=len(result.columns)), paths["grid"])
    return paths
