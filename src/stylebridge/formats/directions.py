"""Editing-direction files users already hold, read as `Direction` / `GanSpaceComponents`:

* e4e's ``editings/interfacegan_directions/*.pt``: one tensor, [1, w_dim] (a W direction, added to every W+ row)
  or [1, num_ws, w_dim] (a per-row direction); read through the weights-only unpickler.
* e4e's GANSpace ``ffhq_pca.pt``: a dict ``mean`` [1, w_dim], ``comp`` [n, 1, w_dim] (may be non-contiguous),
  ``std`` [n].
* InterFaceGAN boundaries (``boundary.npy``): a [1, w_dim] float array (``np.load`` with ``allow_pickle=False``:
  a .npy file can never run code).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stylebridge.core.errors import CheckpointError
from stylebridge.formats.common import CheckpointInfo
from stylebridge.models.direction import Direction, GanSpaceComponents, GanSpaceConfig

__all__ = ["from_npy", "from_torch_object", "is_npy"]


def is_npy(path: str | os.PathLike) -> bool:
    p = Path(path)
    if not p.is_file():
        return False
    with open(p, "rb") as fh:
        return fh.read(6) == b"\x93NUMPY"


def from_torch_object(obj: Any, src: str) -> tuple[Direction | GanSpaceComponents, CheckpointInfo] | None:
    """A direction or GANSpace file's content, or None when ``obj`` is neither."""
    name = Path(src).stem
    if isinstance(obj, torch.Tensor):
        if obj.is_floating_point() and ((obj.ndim == 2 and obj.shape[0] == 1) or (obj.ndim == 3 and obj.shape[0] == 1)):
            d = Direction.from_vector(obj.float(), name=name, method="e4e-interfacegan-file", notes=f"read from {src}")
            return d, CheckpointInfo(src, "e4e-interfacegan-direction", ("direction",), {})
        raise CheckpointError(f"{src}: a bare tensor of shape {tuple(obj.shape)} ({obj.dtype}); an e4e InterFaceGAN "
                              "direction is [1, w_dim] or [1, num_ws, w_dim] floats")
    if isinstance(obj, dict) and set(obj) == {"mean", "comp", "std"}:
        mean, comp, std = (obj[k] for k in ("mean", "comp", "std"))
        if not all(isinstance(t, torch.Tensor) for t in (mean, comp, std)):
            raise CheckpointError(f"{src}: GANSpace file entries must be tensors")
        comp = comp.reshape(comp.shape[0], -1).float().contiguous()  # [n, 1, D] (strided) → [n, D]
        n, d = comp.shape
        if mean.numel() != d or std.shape != (n,):
            raise CheckpointError(f"{src}: GANSpace shapes disagree: mean {tuple(mean.shape)}, comp "
                                  f"{tuple(obj['comp'].shape)}, std {tuple(std.shape)}")
        pca = GanSpaceComponents(GanSpaceConfig(w_dim=d, num_components=n, method="e4e-ganspace-file"))
        pca.mean.copy_(mean.reshape(1, d).float())
        pca.comp.copy_(comp)
        pca.std.copy_(std.float())
        return pca.eval(), CheckpointInfo(src, "e4e-ganspace-pca", ("ganspace",), {})
    return None


def from_npy(path: str | os.PathLike) -> tuple[Direction, CheckpointInfo]:
    """An InterFaceGAN boundary file ([1, w_dim] or [w_dim] floats)."""
    src = str(path)
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise CheckpointError(f"{src}: not a plain numeric .npy array ({exc})") from None
    if arr.dtype.kind != "f" or arr.ndim not in (1, 2) or (arr.ndim == 2 and arr.shape[0] != 1):
        raise CheckpointError(f"{src}: an InterFaceGAN boundary is [1, w_dim] floats, got {arr.shape} {arr.dtype}")
    d = Direction.from_vector(torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)), name=Path(src).stem,
                              method="interfacegan-npy-file", notes=f"read from {src}")
    return d, CheckpointInfo(src, "interfacegan-boundary", ("direction",), {})
