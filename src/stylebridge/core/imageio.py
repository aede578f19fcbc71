"""Image I/O at the edges: reading files robustly (odd modes, EXIF rotation, 16-bit, bombs, truncated and non-image
files: `load_image`, `scan_images`), PIL ↔ [-1, 1] tensors, grids, and PNG files written atomically.

Everything read here is RGB: PIL images in RGB mode, or float32 tensors [3, H, W] in [-1, 1].
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFile, ImageOps

from stylebridge.core.atomic import atomic_write
from stylebridge.core.errors import BadImageError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "BadImageError",
    "center_crop_resize",
    "load_image",
    "make_grid",
    "prepare_images",
    "save_grid",
    "save_image",
    "scan_images",
    "to_pil",
    "to_tensor",
    "to_uint8",
]

logger = logging.getLogger("stylebridge.data")



def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[N, C, H, W] in [-1, 1] → uint8 [N, H, W, C] (NVlabs rounding: x*127.5 + 128, clamped)."""
    x = (images.detach().float().cpu() * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def make_grid(images: torch.Tensor, nrow: int | None = None, padding: int = 2, pad_value: float = 1.0) -> torch.Tensor:
    """Tile [N, C, H, W] into one [C, H', W'] image, ``nrow`` images per row (default: near-square)."""
    n, c, h, w = images.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / nrow)
    grid = torch.full((c, rows * (h + padding) + padding, nrow * (w + padding) + padding), pad_value,
                      dtype=images.dtype)
    for i in range(n):
        r, col = divmod(i, nrow)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        grid[:, y : y + h, x : x + w] = images[i].cpu()
    return grid


def save_image(image: torch.Tensor, path: str | os.PathLike) -> Path:
    """Save one [C, H, W] image in [-1, 1] as PNG (C = 1 or 3)."""
    arr = to_uint8(image[None])[0]
    pil = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
    # Atomic: a kill, a full disk or a second writer never leaves a truncated or interleaved PNG under ``path``.
    return atomic_write(path, lambda p: pil.save(p, format="PNG"))


def save_grid(images: torch.Tensor, path: str | os.PathLike, nrow: int | None = None) -> Path:
    """Save [N, C, H, W] in [-1, 1] as one PNG grid."""
    return save_image(make_grid(images, nrow=nrow), path)


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
# 128 megapixels: a 16k x 8k panorama still loads, a PNG bomb claiming 100k x 100k does not. Pillow's own
# hard limit (2 * Image.MAX_IMAGE_PIXELS, about 179 MP) still applies on top of this; a caller who needs more
# must raise Image.MAX_IMAGE_PIXELS as well.
DEFAULT_MAX_PIXELS = 128 * 10**6

# Modes whose alpha channel must be composited onto the background (not dropped: dropping alpha turns the
# transparent area into whatever colour the encoder left under it, often black or garbage).
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
_16BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I;16S", "I")


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


def _open_checked(path: Path, max_pixels: int, formats: Sequence[str] | None = None) -> Image.Image:
    """Image.open (of ``formats`` only, when given) + size check, before any pixel is decoded."""
    try:
        img = Image.open(path, formats=formats)
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
               background: tuple[int, int, int] = (255, 255, 255),
               formats: Sequence[str] | None = None) -> Image.Image:
    """Decode one image file fully into an RGB PIL image (EXIF orientation applied).

    Handles 1-bit, L, LA, P (with or without transparency), RGBA (composited onto ``background``), CMYK and
    16-bit grayscale (scaled, not clipped). Images larger than ``max_pixels`` are refused from the header,
    before any pixel is decoded. ``formats``: the Pillow formats accepted (e.g. ("PNG", "JPEG")); None: any
    Pillow reads. Raises BadImageError("PATH: reason") for missing, truncated, corrupt or non-image files.
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
        out = _decode(path, max_pixels, background, formats)
    out.info.clear()  # no ICC profile / EXIF / dpi carried into files we write: pixels are all we keep
    return out


def _decode(path: Path, max_pixels: int, background: tuple[int, int, int],
            formats: Sequence[str] | None = None) -> Image.Image:
    try:
        with _open_checked(path, max_pixels, formats) as img:
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
            what = f"not an image ({', '.join(formats)})" if formats else "not an image Pillow can read"
            reason = what if path.stat().st_size else "empty file"
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


def prepare_images(images: torch.Tensor, channels: int, size: int) -> torch.Tensor:
    """Check and convert images for an encoder: [N, C, H, W] float in [-1, 1] → [N, channels, size, size].

    1-channel inputs (sketches, grayscale) are repeated to 3 channels, and RGB inputs for a 1-channel encoder (a
    sketch model) become their luma (ITU-R BT.601 weights); other sizes are resized (bilinear, antialiased when
    shrinking). Raises a one-line ValueError for anything else.
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a tensor [N, C, H, W] in [-1, 1], got {type(images).__name__}")
    if images.ndim != 4:
        hint = " (add a batch dimension: images[None])" if images.ndim == 3 else ""
        raise ValueError(f"images must be [N, C, H, W], got shape {tuple(images.shape)}{hint}")
    if not images.is_floating_point():
        raise ValueError(f"images must be float in [-1, 1], got dtype {images.dtype} (convert: x / 127.5 - 1)")
    if images.shape[0] == 0 or images.shape[2] < 1 or images.shape[3] < 1:
        raise ValueError(f"images must be non-empty, got shape {tuple(images.shape)}")
    if images.shape[1] != channels:
        if images.shape[1] == 1 and channels == 3:
            images = images.expand(-1, 3, -1, -1)
        elif images.shape[1] == 3 and channels == 1:
            luma = torch.tensor([0.299, 0.587, 0.114], dtype=images.dtype, device=images.device)
            images = (images * luma.view(1, 3, 1, 1)).sum(1, keepdim=True)
        else:
            raise ValueError(f"images must have {channels} channels (1 repeated to 3, or RGB to 1 as luma), got "
                             f"{images.shape[1]}")
    peak = float(images.detach().abs().amax())
    if not math.isfinite(peak) or peak > 2.0:
        raise ValueError(f"images must be in [-1, 1], got values up to {peak:g} (for [0, 255] use x / 127.5 - 1)")
    if images.shape[2:] != (size, size):
        shrink = images.shape[2] > size or images.shape[3] > size
        images = F.interpolate(images.float(), size=(size, size), mode="bilinear", align_corners=False,
                               antialias=shrink)
    return images
