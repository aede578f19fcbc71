"""What the format readers share: `CheckpointInfo` and helpers that infer a StyleGAN2 config from tensor shapes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch

from stylebridge import ops
from stylebridge.core.errors import CheckpointError
from stylebridge.models.stylegan2 import rosinality_channels

__all__ = ["CheckpointInfo", "blur_from_buffer", "channel_fields", "count", "drop_fir_buffers"]


@dataclass
class CheckpointInfo:
    """What a file is: its format, the parts it holds and (for `describe`) the loaded part."""

    path: str
    format: str
    parts: tuple[str, ...]
    extra: dict[str, Any]


def drop_fir_buffers(sd: dict[str, torch.Tensor], pattern: re.Pattern, expected: dict[str, torch.Tensor],
                      src: str) -> dict[str, torch.Tensor]:
    """Remove the FIR kernel buffers named by ``pattern`` after checking they equal what the config implies."""
    out = {}
    for k, v in sd.items():
        if pattern.match(k):
            want = expected.get(k)
            if want is not None and (v.shape != want.shape or not torch.allclose(v.float(), want, atol=1e-6)):
                raise CheckpointError(f"{src}: FIR buffer {k} does not match blur kernel implied by the config")
            continue
        out[k] = v
    return out


def count(sd: dict[str, Any], pattern: str) -> int:
    rx = re.compile(pattern)
    return len({m.group(1) for k in sd if (m := rx.match(k))})


def blur_from_buffer(kernel: torch.Tensor | None, gain: float, src: str) -> tuple[float, ...]:
    if kernel is None:
        return (1.0, 3.0, 3.0, 1.0)
    taps = ops.filter_1d(kernel.float() / gain)
    if taps is None:
        raise CheckpointError(f"{src}: stored FIR kernel is not separable; cannot infer the blur kernel")
    return tuple(round(float(t), 6) for t in taps)


def channel_fields(resolution: int, channels: list[int], preferred_cm: int | None) -> dict[str, Any]:
    """Express channels as (channel_multiplier, channel_divisor) when the rosinality table fits, else explicitly."""
    cms = [preferred_cm] if preferred_cm else []
    cms += [c for c in (2, 1, 4, 8) if c != preferred_cm]
    for cm in cms:
        for div in (1, 2, 4, 8, 16, 32, 64):
            try:
                table = rosinality_channels(resolution, cm, div)
            except ValueError:
                continue
            if list(table.values()) == channels:
                return {"channel_multiplier": cm, "channel_divisor": div}
    return {"channels": tuple(channels)}
