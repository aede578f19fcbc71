"""Real image folders, read robustly: odd modes, EXIF rotation, 16-bit, bombs, truncated and non-image files.

Everything here hands out RGB: PIL images in RGB mode, or float32 tensors [3, H, W] in [-1, 1].
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFile, ImageOps
from torch.utils.data import Dataset

from stylebridge.imageio import to_uint8
from stylebridge.io.atomic import atomic_write, atomic_write_text

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "BadImageError",
    "ImageFolderDataset",
    "PrepareReport",
    "center_crop_resize",
    "load_image",
    "prepare_folder",
    "scan_images",
    "to_pil",
    "to_tensor",
]

logger = logging.getLogger("stylebridge.data")

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
# 128 megapixels: a 16k x 8k panorama still loads, a PNG bomb claiming 100k x 100k does not. Pillow's own
# hard limit (2 * Image.MAX_IMAGE_PIXELS, about 179 MP) still applies on top of this; a caller who needs more
# must raise Image.MAX_IMAGE_PIXELS as well.
DEFAULT_MAX_PIXELS = 128 * 10**6

# Modes whose alpha channel must be composited onto the background (not dropped: dropping alpha turns the
# transparent area into whatever colour the encoder left under it, often black or garbage).
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
_16BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I;16S", "I")


class BadImageError(ValueError):
    """A file that cannot be used as an image; the message is one line, ``"PATH: reason"``."""


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _is_hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def scan_images(root: str | os.PathLike, exclude: Iterable[str | os.PathLike] = ()) -> list[Path]:
    """All image files under ``root`` (recursive, sorted), by extension (case-insensitive).

    Hidden files and anything inside hidden folders (names starting with ".") are skipped: that is where
    editors, macOS (``._photo.jpg``) and our own temporary files live. Folders in ``exclude`` are skipped too.
    Raises FileNotFoundError / NotADirectoryError / BadImageError (no images) with a one-line message.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root}: image folder does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a folder")
    excluded = [Path(e).resolve() for e in exclude]
    files = []
    seen = set()  # real folders already walked: symlinked folders are followed, symlink loops are not
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        here = Path(dirpath)
        real = here.resolve()
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        # Prune in place so os.walk never descends into hidden or excluded folders (e.g. an output folder
        # that lives inside the source folder).
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and (here / d).resolve() not in excluded]
        for name in filenames:
            if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS):
                files.append(here / name)
    if not files:
        raise BadImageError(f"{root}: no image files ({', '.join(IMAGE_EXTENSIONS)}) found")
    # Sort on the relative path as a string so the order is the same on every filesystem.
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def _open_checked(path: Path, max_pixels: int) -> Image.Image:
    """Image.open + size check, before any pixel is decoded."""
    try:
        img = Image.open(path)
    except Image.DecompressionBombError as e:
        raise BadImageError(f"{path}: too many pixels, refused as a possible decompression bomb ({e})") from e
    w, h = img.size
    if w * h > max_pixels:
        img.close()
        raise BadImageError(f"{path}: {w}x{h} is {w * h / 1e6:.1f} megapixels, more than the limit of "
                            f"{max_pixels / 1e6:.1f} (max_pixels); refused before decoding")
    if w == 0 or h == 0:
        img.close()
        raise BadImageError(f"{path}: image has zero size ({w}x{h})")
    return img


def _to_rgb(img: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """Any Pillow mode → RGB, compositing alpha onto ``background`` and scaling high bit depths."""
    mode = img.mode
    if mode in _16BIT_MODES:
        # Scale the full 16-bit range down (65535 → 255); a plain convert("L") would clip everything above 255
        # to white. Mode "I" is what 16-bit PNG/TIFF grayscale decodes to in some Pillow versions.
        arr = np.asarray(img).astype(np.float64)
        arr = np.rint(np.clip(arr, 0, 65535) / 257.0).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if mode == "F":
        # Float images have no fixed range: [0, 1] if they fit in it, else taken as [0, 255].
        arr = np.nan_to_num(np.asarray(img, dtype=np.float64))
        scale = 255.0 if arr.max(initial=0.0) <= 1.0 else 1.0
        return Image.fromarray(np.rint(np.clip(arr * scale, 0, 255)).astype(np.uint8), "L").convert("RGB")
    if mode in ("P", "L", "1", "RGB") and "transparency" in img.info:
        # tRNS: per-entry alpha or one transparent index for palettes, a colour key for L/RGB PNGs. Going
        # through RGBA honours all of them.
        img = img.convert("RGBA")
    elif mode == "RGB":
        return img
    elif mode not in _ALPHA_MODES:
        return img.convert("RGB")  # P, L, 1, CMYK (Pillow undoes Adobe's inverted CMYK), YCbCr, RGBX, …
    rgba = img.convert("RGBA")
    base = Image.new("RGBA", rgba.size, (*background, 255))
    return Image.alpha_composite(base, rgba).convert("RGB")


def load_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS,
               background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Decode one image file fully into an RGB PIL image (EXIF orientation applied).

    Handles 1-bit, L, LA, P (with or without transparency), RGBA (composited onto ``background``), CMYK and
    16-bit grayscale (scaled, not clipped). Images larger than ``max_pixels`` are refused from the header,
    before any pixel is decoded. Raises BadImageError("PATH: reason") for missing, truncated, corrupt or
    non-image files.
    """
    path = Path(path)
    if not path.is_file():
        raise BadImageError(f"{path}: not a file")
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # Someone set Pillow's global switch; truncated files then decode with grey fill instead of failing.
        logger.debug("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set: truncated images will not be detected")
    with warnings.catch_warnings():
        # Our own max_pixels is the limit: Pillow's bomb *warning* (at ~89 MP) would only be noise below our
        # 128 MP default (its *error*, at twice that, is turned into BadImageError). Pillow's UserWarnings
        # about odd-but-readable files (corrupt EXIF, …) would repeat every epoch, so they are muted too.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
        out = _decode(path, max_pixels, background)
    out.info.clear()  # no ICC profile / EXIF / dpi carried into files we write: pixels are all we keep
    return out


def _decode(path: Path, max_pixels: int, background: tuple[int, int, int]) -> Image.Image:
    try:
        with _open_checked(path, max_pixels) as img:
            img.load()  # decode everything now: truncation and corrupt data only show up here
            try:
                img = ImageOps.exif_transpose(img)
            except Exception as e:  # a broken EXIF block should not cost us the pixels
                logger.debug("%s: ignoring unreadable EXIF orientation (%s)", path, _one_line(e))
            out = _to_rgb(img, background)
            if out is img:
                out = img.copy()  # detach from the file handle the with-block closes
    except BadImageError:
        raise
    except MemoryError as e:
        raise BadImageError(f"{path}: out of memory while decoding") from e
    except Exception as e:
        # Pillow's plugins raise OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, … on
        # bad data; all of them mean the same thing to us.
        reason = _one_line(e) or type(e).__name__
        if isinstance(e, Image.UnidentifiedImageError):
            reason = "not an image Pillow can read" if path.stat().st_size else "empty file"
        raise BadImageError(f"{path}: {reason}") from e
    return out


def center_crop_resize(img: Image.Image, resolution: int) -> Image.Image:
    """Centre square crop, then resize to ``resolution`` x ``resolution``.

    Downsampling is LANCZOS with a box pre-reduction for big ratios (``reducing_gap``: fast on 24 MP photos,
    and the result is still antialiased); upsampling is BICUBIC, which rings less than LANCZOS when enlarging.
    """
    if resolution < 1:
        raise ValueError(f"resolution must be positive, got {resolution}")
    w, h = img.size
    side = min(w, h)
    # Crop first (not resize(box=...)): the filter must not pull in pixels from outside the square.
    left, top = (w - side) // 2, (h - side) // 2
    img = img.crop((left, top, left + side, top + side))
    if side > resolution:
        return img.resize((resolution, resolution), Image.Resampling.LANCZOS, reducing_gap=3.0)
    if side < resolution:
        return img.resize((resolution, resolution), Image.Resampling.BICUBIC)
    return img


def to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL image → float32 tensor [3, H, W] in [-1, 1] (0 → -1, 255 → 1). Non-RGB modes are converted."""
    arr = np.asarray(img if img.mode == "RGB" else img.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(127.5).sub_(1.0)


def to_pil(tensor: torch.Tensor) -> Image.Image:
    """Tensor [3, H, W] (or [1, H, W]) in [-1, 1] → PIL image; rounding as NVlabs (x*127.5 + 128, clamped).

    Exact inverse of ``to_tensor`` for 8-bit images.
    """
    if tensor.ndim != 3 or tensor.shape[0] not in (1, 3):
        raise ValueError(f"to_pil expects a [3, H, W] or [1, H, W] tensor, got shape {tuple(tensor.shape)}")
    arr = to_uint8(tensor[None])[0]
    return Image.fromarray(arr[..., 0], "L") if arr.shape[-1] == 1 else Image.fromarray(arr, "RGB")


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
