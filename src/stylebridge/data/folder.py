"""Real image folders, read robustly: odd modes, EXIF rotation, 16-bit, bombs, truncated and non-image files.

Everything here hands out RGB: PIL images in RGB mode, or float32 tensors [3, H, W] in [-1, 1].
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset

from stylebridge.core.atomic import atomic_write, atomic_write_text, check_writable_dir
from stylebridge.core.errors import BadImageError
from stylebridge.core.imageio import DEFAULT_MAX_PIXELS, center_crop_resize, load_image, scan_images, to_tensor

__all__ = ["ImageFolderDataset", "PrepareReport", "prepare_folder"]

logger = logging.getLogger("stylebridge.data")

class ImageFolderDataset(Dataset):
    """Every image under ``root``, as float32 tensors [3, R, R] in [-1, 1] (centre crop + resize).

    A file that fails to decode is logged once (warning on logger "stylebridge.data"), remembered and skipped:
    the item returned is the next good file (so an epoch may hold a few duplicates rather than crash). The
    bad-file flags live in shared memory, so DataLoader workers (num_workers > 0) skip a file another worker
    already found bad instead of each re-reporting it; two workers hitting the same new bad file at the same
    moment may both log it. ``strict=True`` raises BadImageError on the first bad file instead.

    ``transform``: optional callable applied to each [3, R, R] tensor (e.g. a random flip).
    """

    def __init__(self, root: str | os.PathLike, resolution: int, strict: bool = False,
                 max_pixels: int = DEFAULT_MAX_PIXELS,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        self.root = Path(root)
        self.resolution = int(resolution)
        self.strict = strict
        self.max_pixels = max_pixels
        self.transform = transform
        self.files = scan_images(self.root)
        # uint8 flag per file in shared memory: forked and spawned DataLoader workers all see the same flags.
        self._bad = torch.zeros(len(self.files), dtype=torch.uint8).share_memory_()
        self._reasons: dict[int, str] = {}  # this process's reasons; other processes only share the flag

    def __len__(self) -> int:
        return len(self.files)

    @property
    def num_bad(self) -> int:
        """How many files have been found bad so far (in this process or any DataLoader worker)."""
        return int(self._bad.sum())

    @property
    def bad_files(self) -> list[tuple[Path, str]]:
        """(path, reason) for every file found bad so far, in index order."""
        out = []
        for i in torch.nonzero(self._bad).flatten().tolist():
            reason = self._reasons.get(i)
            if reason is None:  # found by a worker process: decode again here to learn why (fails fast)
                try:
                    load_image(self.files[i], self.max_pixels)
                    reason = "failed to decode in a DataLoader worker"
                except BadImageError as e:
                    reason = str(e).removeprefix(f"{self.files[i]}: ")
                self._reasons[i] = reason
            out.append((self.files[i], reason))
        return out

    def _load(self, i: int) -> torch.Tensor:
        img = load_image(self.files[i], self.max_pixels)
        return to_tensor(center_crop_resize(img, self.resolution))

    def __getitem__(self, index: int) -> torch.Tensor:
        n = len(self.files)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} images")
        index %= n
        # Bounded: at most one pass over the dataset, then we know every file is bad.
        for offset in range(n):
            i = (index + offset) % n
            if self._bad[i]:
                continue
            try:
                x = self._load(i)
            except BadImageError as e:
                if self.strict:
                    raise
                if not self._bad[i]:  # another worker may have flagged it meanwhile: report only once
                    self._bad[i] = 1
                    logger.warning("skipping bad image %s", e)
                self._reasons[i] = str(e).removeprefix(f"{self.files[i]}: ")
                continue
            return self.transform(x) if self.transform is not None else x
        raise BadImageError(f"{self.root}: none of the {n} image files could be decoded (see the warnings above)")


@dataclass
class PrepareReport:
    """What ``prepare_folder`` did: PNG count, skipped files with reasons, output folder."""

    written: int = 0
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    out: Path = Path()


def _output_names(files: list[Path], src: Path) -> list[Path]:
    """Relative output path (.png) per source file; ``a.jpg`` and ``a.png`` side by side get distinct names."""
    rel = [f.relative_to(src).with_suffix(".png") for f in files]
    counts: dict[str, int] = {}
    for r in rel:
        counts[r.as_posix().lower()] = counts.get(r.as_posix().lower(), 0) + 1
    out, taken = [], set()
    for f, r in zip(files, rel):
        if counts[r.as_posix().lower()] > 1:
            r = r.with_name(f"{r.stem}_{f.suffix[1:].lower()}.png")
        base, k = r, 1
        while r.as_posix().lower() in taken:
            r, k = base.with_name(f"{base.stem}_{k}.png"), k + 1
        taken.add(r.as_posix().lower())
        out.append(r)
    return out


def _save_png_atomic(img: Image.Image, dst: Path) -> None:
    # Fixed encoder settings and no metadata → the same pixels always give the same bytes.
    atomic_write(dst, lambda p: img.save(p, format="PNG", compress_level=6))


def prepare_folder(src: str | os.PathLike, out: str | os.PathLike, resolution: int, align: bool = False,
                   strict: bool = False, progress: bool = True,
                   max_pixels: int = DEFAULT_MAX_PIXELS) -> PrepareReport:
    """Decode every image under ``src`` and write ``out/<relative path>.png`` at ``resolution`` x ``resolution``.

    Centre crop + resize, or FFHQ face alignment (dlib 68 landmarks, largest face) with ``align=True``.
    Files that fail (bad data, too big, no face) are skipped and listed with reasons in ``out/skipped.txt``;
    ``strict=True`` raises BadImageError on the first instead. Output is deterministic: the same inputs give
    byte-identical PNGs. An ``out`` folder inside ``src`` is not scanned.
    """
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    src, out = Path(src), Path(out)
    check_writable_dir(out)  # an out that is a file, or an unwritable folder: one line before any work
    aligner = None
    if align:
        from stylebridge.data.align import Dlib68Aligner

        aligner = Dlib68Aligner()  # fails now, with install instructions, rather than once per file
    files = scan_images(src, exclude=[out])
    report = PrepareReport(out=out)
    out.mkdir(parents=True, exist_ok=True)
    names = _output_names(files, src)
    # Warnings go through tqdm.write while the bar is shown, so they do not tear the bar apart.
    with logging_redirect_tqdm() if progress else contextlib.nullcontext():
        for path, rel in zip(tqdm(files, desc="prepare", unit="img", disable=not progress), names):
            try:
                img = load_image(path, max_pixels)
                if aligner is not None:
                    img = aligner.align(img, resolution, path=path)
                else:
                    img = center_crop_resize(img, resolution)
            except BadImageError as e:
                if strict:
                    raise
                logger.warning("skipping %s", e)
                report.skipped.append((path, str(e).removeprefix(f"{path}: ")))
                continue
            _save_png_atomic(img, out / rel)
            report.written += 1
    lines = [f"{p.relative_to(src).as_posix()}\t{reason}" for p, reason in report.skipped]
    atomic_write_text(out / "skipped.txt", "".join(line + "\n" for line in lines))
    summary = f"{out}: {report.written} written, {len(report.skipped)} skipped"
    if report.skipped:
        logger.warning("%s (reasons in %s)", summary, out / "skipped.txt")
    else:
        logger.info(summary)
    return report
