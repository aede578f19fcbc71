"""Device and precision choices shared by inference, training and benchmarks."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

__all__ = ["PRECISIONS", "autocast", "cpu_has_fast_bf16", "pick_device", "resolve_precision"]

PRECISIONS = ("auto", "fp32", "bf16")


def cpu_has_fast_bf16() -> bool:
    """True when the CPU runs bf16 matmuls natively (AMX tiles or AVX512-BF16); without them bf16 is emulated
    and slower than fp32 (measured ~4x slower conv on an AVX512F-only Xeon)."""
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    avx = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
    return bool(amx or avx)


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """'auto' → 'bf16' where it pays (CUDA with bf16 support, CPUs with AMX/AVX512-BF16), else 'fp32'."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision != "auto":
        return precision
    dev = torch.device(device)
    if dev.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if dev.type == "cpu" and cpu_has_fast_bf16() else "fp32"


@contextlib.contextmanager
def autocast(device: torch.device | str, precision: str) -> Iterator[None]:
    """bf16 autocast for 'bf16' (convs and matmuls in bf16; our models keep styles, demodulation and the RGB
    sum in fp32), a no-op for 'fp32'. 'auto' is resolved with `resolve_precision`."""
    dev = torch.device(device)
    if resolve_precision(precision, dev) == "bf16":
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            yield
    else:
        yield


def pick_device(name: str = "auto") -> torch.device:
    """'auto' → this process's CUDA device when available (``LOCAL_RANK`` under torchrun), else the CPU; otherwise
    the named device."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cpu")
    return torch.device(name)
