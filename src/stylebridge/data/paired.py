"""Encoder inputs from image files, and (input, target) training pairs from image folders.

Input kinds follow the encoder's input channels (pSp's ``input_nc``):

* 3 — RGB images;
* 1 — sketches: grayscale (ITU-R 601 luma of the RGB image), lines dark as in synthfaces' sketches;
* 4 — RGB + mask for inpainting: a PNG with alpha, transparent pixels are missing (mask 1, RGB set to 0);
* N ≥ 2 (other) — segmentation maps: PNGs whose pixel values are label indices (mode P or L, as
  ``stylebridge data synthfaces --with seg`` writes them), one-hot encoded over N labels.

`FolderPairs` turns folders into the pairs `stylebridge.data.tasks.SynthFacesPairs` gives for synthfaces, with the
same input channels per task:

* inversion, superres[:f], inpaint — one folder of images; the input is derived from the image as for synthfaces
  (super-resolution: area ×f down, bicubic up; inpainting: `random_masks` seeded per position);
* sketch, segmentation, frontalize — two folders, inputs and targets, paired by relative path without extension.

Items are indexed by *position*: position p of a run is file ``perm_e[p mod n]`` of the permutation drawn for
epoch e = p div n from (seed, e), so a position always gives the same pair (exact resume, identical draws on
every rank). Unreadable files are logged once and replaced by the next file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from stylebridge.core.imageio import DEFAULT_MAX_PIXELS, BadImageError, center_crop_resize, load_image, scan_images
from stylebridge.data.tasks import parse_task, random_masks

T = TypeVar("T")

__all__ = ["FOLDER_PAIRED_TASKS", "FolderPairs", "ImagePairs", "input_kind", "load_input", "pair_files",
           "pair_folders"]

logger = logging.getLogger("stylebridge.data")

FOLDER_PAIRED_TASKS = ("sketch", "segmentation", "frontalize")  # need a target folder
FOLDER_SINGLE_TASKS = ("inversion", "superres", "inpaint")  # inputs derived from the images


def input_kind(in_channels: int) -> str:
    """"rgb" (3), "gray" (1), "rgb+mask" (4) or "labels" (any other count)."""
    return {3: "rgb", 1: "gray", 4: "rgb+mask"}.get(in_channels, "labels")


def _square(img: Image.Image) -> Image.Image:
    w, h = img.size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    return img.crop((left, top, left + s, top + s))


def load_input(path: str | os.PathLike, in_channels: int, size: int,
               max_pixels: int = DEFAULT_MAX_PIXELS) -> torch.Tensor:
    """One encoder input from a file: [in_channels, size, size] in [-1, 1] (one-hot maps in {0, 1}).

    Centre square crop, then resize (LANCZOS down / BICUBIC up; nearest for label maps and masks).
    Raises `BadImageError` ("PATH: reason") for unreadable files or label maps that do not fit.
    """
    kind = input_kind(in_channels)
    path = Path(path)
    if kind in ("rgb", "gray"):
        img = center_crop_resize(load_image(path, max_pixels), size)
        if kind == "gray":
            arr = np.asarray(img.convert("L"), dtype=np.float32)[None]
        else:
            arr = np.asarray(img, dtype=np.float32).transpose(2, 0, 1)
        return torch.from_numpy(arr.copy()).div_(127.5).sub_(1.0)
    load_image(path, max_pixels)  # validates the file (size limit, truncation) with the usual messages
    with Image.open(path) as raw:
        raw.load()
        if kind == "rgb+mask":
            rgba = _square(raw.convert("RGBA"))
            rgb = center_crop_resize(rgba.convert("RGB"), size)
            alpha = rgba.getchannel("A").resize((size, size), Image.Resampling.NEAREST)
            x = torch.from_numpy(np.asarray(rgb, dtype=np.float32).transpose(2, 0, 1).copy()).div_(127.5).sub_(1)
            mask = torch.from_numpy((np.asarray(alpha) < 128).astype(np.float32))[None]
            return torch.cat([x * (1 - mask), mask])
        if raw.mode not in ("P", "L", "I", "I;16"):
            raise BadImageError(f"{path}: a segmentation input must be a label-index PNG (mode P or L), "
                                f"got mode {raw.mode}")
        labels = _square(raw).resize((size, size), Image.Resampling.NEAREST)
        idx = torch.from_numpy(np.asarray(labels).astype(np.int64))
    if int(idx.max()) >= in_channels or int(idx.min()) < 0:
        raise BadImageError(f"{path}: label {int(idx.max())} out of range for {in_channels} labels")
    return F.one_hot(idx, in_channels).permute(2, 0, 1).float()


def pair_files(inputs: str | os.PathLike, targets: str | os.PathLike) -> list[tuple[Path, Path]]:
    """(input, target) files of two folders with the same relative paths (extensions may differ), sorted.
    Inputs without a target are skipped with a warning; no pair at all is an error."""
    src, dst = Path(inputs), Path(targets)
    by_key = {f.relative_to(dst).with_suffix("").as_posix(): f for f in scan_images(dst)}
    pairs, missing = [], []
    for f in scan_images(src):
        key = f.relative_to(src).with_suffix("").as_posix()
        if key in by_key:
            pairs.append((f, by_key[key]))
        else:
            missing.append(key)
    if not pairs:
        raise BadImageError(f"{src}: no input has a target of the same name in {dst} (e.g. {missing[:3]})")
    if missing:
        logger.warning("%s: %d inputs have no target in %s and are skipped (e.g. %s)", src, len(missing), dst,
                       missing[:3])
    return pairs


def _first_readable(load: Callable[[int], T], start: int, count: int, bad: set[int], what: str) -> tuple[int, T]:
    """(j, load(j)) for the first pair from ``start`` on (wrapping) that reads; unreadable ones are logged once and
    added to ``bad`` (skipped from then on). Raises `BadImageError` when none of the ``count`` pairs reads."""
    for k in range(count):
        j = (start + k) % count
        if j in bad:
            continue
        try:
            return j, load(j)
        except BadImageError as e:
            bad.add(j)
            logger.warning("skipping bad training pair %s", e)
    raise BadImageError(f"none of the {count} training {what} could be read (see the warnings above)")


class FolderPairs(Dataset):
    """(input, target, extras) pairs of one task from image folders, indexed by position (module docstring).

    Args:
        task: inversion, superres[:f], inpaint (one folder ``source``), sketch, segmentation, frontalize
            (``source`` = inputs, ``targets`` = targets).
        resolution: side of inputs and targets.
        seed: seeds the per-epoch file order (and nothing else).
        labels: label count of segmentation inputs.
    """

    def __init__(self, task: str, source: str | os.PathLike, targets: str | os.PathLike | None = None,
                 resolution: int = 64, seed: int = 0, labels: int = 10) -> None:
        self.kind, self.arg, _ = parse_task(task)
        if self.kind not in FOLDER_PAIRED_TASKS + FOLDER_SINGLE_TASKS:
            raise ValueError(f"task {task!r} is not available on image folders; choose from "
                             f"{', '.join(FOLDER_SINGLE_TASKS + FOLDER_PAIRED_TASKS)}")
        if self.kind in FOLDER_PAIRED_TASKS:
            if targets is None:
                raise ValueError(f"task {self.kind!r} on folders needs a target folder (paired files with the same "
                                 "names as the inputs)")
            self.pairs = pair_files(source, targets)
        else:
            if targets is not None:
                raise ValueError(f"task {self.kind!r} derives its inputs from one folder; give no target folder")
            self.pairs = [(f, f) for f in scan_images(source)]
        self.resolution, self.seed, self.labels = int(resolution), int(seed), int(labels)
        self._perm: tuple[int, torch.Tensor] | None = None
        self._bad: set[int] = set()

    @property
    def input_channels(self) -> int:
        return {"sketch": 1, "segmentation": self.labels, "inpaint": 4}.get(self.kind, 3)

    def __len__(self) -> int:
        return len(self.pairs)

    def file_index(self, position: int) -> int:
        n = len(self.pairs)
        epoch = position // n
        if self._perm is None or self._perm[0] != epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm = (epoch, torch.randperm(n, generator=g))
        return int(self._perm[1][position % n])

    def _load(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        src, dst = self.pairs[i]
        r = self.resolution
        target = load_input(dst, 3, r)
        if self.kind in FOLDER_PAIRED_TASKS:
            return load_input(src, self.input_channels, r), target
        return target, target

    def _pair(self, position: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        j, (inp, target) = _first_readable(self._load, self.file_index(position), len(self.pairs), self._bad, "files")
        return inp, target, j

    def __getitem__(self, position: int) -> tuple[torch.Tensor, torch.Tensor, dict]:
        return self.__getitems__([position])[0]

    def __getitems__(self, positions: Sequence[int]) -> list[tuple[torch.Tensor, torch.Tensor, dict]]:
        loaded = [self._pair(int(p)) for p in positions]
        inp = torch.stack([x for x, _, _ in loaded])
        target = torch.stack([t for _, t, _ in loaded])
        extras: dict[str, torch.Tensor] = {"index": torch.tensor([j for _, _, j in loaded]),
                                           "position": torch.tensor([int(p) for p in positions])}
        if self.kind == "superres":
            f = int(self.arg or 4)
            low = F.avg_pool2d(target, f)
            inp = F.interpolate(low, size=target.shape[-2:], mode="bicubic", align_corners=False).clamp(-1, 1)
        elif self.kind == "inpaint":
            mask = random_masks([int(p) for p in positions], self.resolution)
            inp = torch.cat([target * (1 - mask), mask], dim=1)
            extras["mask"] = mask
        return [(inp[j], target[j], {k: v[j] for k, v in extras.items()}) for j in range(len(positions))]


def pair_folders(source: str | os.PathLike, target: str | os.PathLike,
                 source2: str | os.PathLike | None = None) -> list[tuple[Path, ...]]:
    """(source, target[, source2]) files of two or three folders with the same relative paths (extensions may
    differ), sorted by the source's path. Every folder must exist; a source without its target (or, with
    ``source2``, without its second input) is skipped with a warning; no complete pair at all is an error."""
    for name, folder in (("source", source), ("target", target), ("source2", source2)):
        if folder is not None and not Path(folder).is_dir():
            raise FileNotFoundError(f"{folder}: {name} folder not found")
    pairs = pair_files(source, target)
    if source2 is None:
        return list(pairs)
    second = Path(source2)
    by_key = {f.relative_to(second).with_suffix("").as_posix(): f for f in scan_images(second)}
    out, missing = [], []
    for src, dst in pairs:
        key = src.relative_to(Path(source)).with_suffix("").as_posix()
        if key in by_key:
            out.append((src, dst, by_key[key]))
        else:
            missing.append(key)
    if not out:
        raise BadImageError(f"{source}: no input has a second input of the same name in {source2} "
                            f"(e.g. {missing[:3]})")
    if missing:
        logger.warning("%s: %d inputs have no second input in %s and are skipped (e.g. %s)", source, len(missing),
                       source2, missing[:3])
    return out


class ImagePairs(Dataset):
    """(input, target) image pairs for image-to-image translators (pix2pixHD), from paired folders such as
    ``stylebridge distill pairs`` writes: ``source/`` (inputs), ``target/`` (targets) and optionally ``source2/``
    (second inputs: the input is then A and B concatenated, 6 channels), paired by relative path without extension.

    Indexed by position as `FolderPairs` (position p is file ``perm_e[p mod n]`` of epoch e's permutation drawn from
    (seed, e)): a position always gives the same pair, on every rank and after a resume. Items: (input
    [3 or 6, R, R], target [3, R, R]) in [-1, 1]; unreadable files are logged once and replaced by the next pair.
    """

    def __init__(self, source: str | os.PathLike, target: str | os.PathLike, source2: str | os.PathLike | None = None,
                 resolution: int = 64, seed: int = 0) -> None:
        self.pairs = pair_folders(source, target, source2)
        self.input_channels = 6 if source2 is not None else 3
        self.resolution, self.seed = int(resolution), int(seed)
        self._perm: tuple[int, torch.Tensor] | None = None
        self._bad: set[int] = set()

    @classmethod
    def from_folder(cls, folder: str | os.PathLike, resolution: int = 64, seed: int = 0) -> ImagePairs:
        """The pairs folder layout of ``stylebridge distill pairs``: ``folder/source``, ``folder/target`` and, when
        present, ``folder/source2``."""
        root = Path(folder)
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: pairs folder not found")
        for sub in ("source", "target"):
            if not (root / sub).is_dir():
                raise FileNotFoundError(f"{root}: not a pairs folder (no {sub}/ inside; expected source/, target/ "
                                        "and optionally source2/)")
        second = root / "source2"
        return cls(root / "source", root / "target", second if second.is_dir() else None, resolution, seed)

    def __len__(self) -> int:
        return len(self.pairs)

    file_index = FolderPairs.file_index  # position → pair index (the same per-epoch permutations)

    def load(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Pair ``i`` of the sorted file list (not a position): (input, target). Raises `BadImageError`."""
        files, r = self.pairs[i], self.resolution
        inp = torch.cat([load_input(files[0], 3, r)] + ([load_input(files[2], 3, r)] if len(files) > 2 else []))
        return inp, load_input(files[1], 3, r)

    def _pair(self, position: int) -> tuple[torch.Tensor, torch.Tensor]:
        return _first_readable(self.load, self.file_index(position), len(self.pairs), self._bad, "pairs")[1]

    def __getitem__(self, position: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._pair(int(position))

    def batch(self, positions: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs [B, C, R, R] and targets [B, 3, R, R] of these positions."""
        items = [self._pair(int(p)) for p in positions]
        return torch.stack([x for x, _ in items]), torch.stack([t for _, t in items])
