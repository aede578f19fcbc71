"""Write synthfaces to disk: PNG images (and sketches, segmentations) plus a JSON-lines attribute file.

The same command twice gives byte-identical files: rendering is deterministic, PNGs are written without
timestamps, and JSON keys keep a fixed order.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from stylebridge.core.atomic import atomic_write
from stylebridge.core.imageio import to_uint8
from stylebridge.data import synthfaces as sf

__all__ = ["EXTRAS", "SEG_PALETTE", "export_synthfaces"]

EXTRAS = ("sketch", "seg", "attrs")

# A fixed palette for segmentation PNGs (mode "P": the pixel values are the label indices).
SEG_PALETTE = [0, 0, 0, 230, 180, 150, 120, 60, 20, 255, 255, 255, 60, 30, 10, 200, 30, 40, 240, 120, 60,
               30, 30, 200, 90, 50, 20, 40, 160, 40]


def _save_png(arr: np.ndarray, path: Path, palette: list[int] | None = None) -> None:
    if palette is not None:  # label indices stored as they are (convert("P") would re-quantise them)
        img = Image.frombytes("P", (arr.shape[1], arr.shape[0]), np.ascontiguousarray(arr).tobytes())
        img.putpalette(palette + [0] * (768 - len(palette)))
    else:
        img = Image.fromarray(arr)
    atomic_write(path, lambda p: img.save(p, format="PNG"))


def export_synthfaces(out: str | os.PathLike, count: int, resolution: int = 64, extras: Sequence[str] = ("attrs",),
                      seed: int = 0, batch: int = 64, progress: bool = True) -> Path:
    """Render faces of seeds ``seed .. seed+count-1`` into ``out``.

    Writes ``images/{seed:08d}.png``, with "sketch" ``sketches/…png`` (grayscale), with "seg"
    ``segmentation/…png`` (palette PNG whose pixel values are `sf.SEG_LABELS` indices), with "attrs"
    ``attributes.jsonl`` (one line per face: seed, file, attributes).
    """
    unknown = set(extras) - set(EXTRAS)
    if unknown:
        raise ValueError(f"unknown extras {sorted(unknown)}; choose from {', '.join(EXTRAS)}")
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    out = Path(out)
    dirs = {"image": out / "images", "sketch": out / "sketches", "seg": out / "segmentation"}
    for key, d in dirs.items():
        if key == "image" or key in extras:
            d.mkdir(parents=True, exist_ok=True)
    outputs = ("image", *(k for k in ("sketch", "seg") if k in extras))
    jsonl = open(out / "attributes.jsonl.tmp", "w") if "attrs" in extras else None
    with torch.no_grad(), tqdm(total=count, desc="synthfaces", unit="img", disable=not progress) as bar:
        for start in range(0, count, batch):
            seeds = list(range(seed + start, seed + min(count, start + batch)))
            attrs = sf.sample_attributes(seeds)
            r = sf.render(attrs, resolution, outputs)
            images = to_uint8(r["image"])
            sketches = to_uint8(r["sketch"])[..., 0] if "sketch" in r else None
            segs = r["seg"].to(torch.uint8).numpy() if "seg" in r else None
            records = sf.attributes_to_records(attrs)
            for j, s in enumerate(seeds):
                name = f"{s:08d}.png"
                _save_png(images[j], dirs["image"] / name)
                if sketches is not None:
                    _save_png(sketches[j], dirs["sketch"] / name)
                if segs is not None:
                    _save_png(segs[j], dirs["seg"] / name, palette=SEG_PALETTE)
                if jsonl is not None:
                    jsonl.write(json.dumps({"seed": s, "file": f"images/{name}", **records[j]}) + "\n")
            bar.update(len(seeds))
    if jsonl is not None:
        jsonl.close()
        os.replace(out / "attributes.jsonl.tmp", out / "attributes.jsonl")
    return out
