"""Tuned generator weights as deltas: what PTI stores instead of a generator copy per image.

A `GeneratorDelta` holds, for M tuned generators (one per image, or one shared by a batch), an additive change to
every modulated-convolution weight of a StyleGAN2 generator — the 3×3 convolutions and the ToRGB 1×1s, which hold
nearly all of the synthesis weights (`tunable_fraction`). It is either dense (``rank`` 0: [M, O, I, k, k] per
layer, the anchor's full tuning) or low rank (``rank`` r: ``up`` [M, O, r] @ ``down`` [M, r, I·k·k] per layer, a
LoRA-style factorisation: a few hundred kB per image instead of the generator's megabytes).

`applied` puts deltas on a generator for the duration of a ``with`` block without copying it (each
`ModulatedConv2d` adds its ``weight_delta``); M = 1 keeps the shared-weight fast path, M = N runs a per-sample
grouped convolution, so N images tuned separately still render in one batch.

Stored in safetensors beside the latent (`save_delta` / `load_delta`): tensors ``delta.<layer>`` (dense) or
``delta.<layer>.up`` / ``.down`` (low rank), fp16 by default, with metadata ``delta_format``, ``delta_rank`` and
``delta_layers`` (JSON: layer → [O, I, k, k]).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from stylebridge.core.atomic import atomic_write
from stylebridge.models.layers import ModulatedConv2d
from stylebridge.models.stylegan2 import StyleGAN2Generator

__all__ = ["DELTA_FORMAT", "GeneratorDelta", "applied", "load_delta", "modulated_convs", "save_delta",
           "tunable_fraction"]

DELTA_FORMAT = "stylebridge-generator-delta-1"
PREFIX = "delta."


def modulated_convs(G: StyleGAN2Generator) -> dict[str, ModulatedConv2d]:
    """Module name → every `ModulatedConv2d` of ``G`` (synthesis order)."""
    return {name: m for name, m in G.named_modules() if isinstance(m, ModulatedConv2d)}


def tunable_fraction(G: StyleGAN2Generator) -> float:
    """Share of the synthesis parameters (all but the mapping network) held by the modulated-conv weights."""
    conv = sum(m.weight.numel() for m in modulated_convs(G).values())
    synth = sum(p.numel() for n, p in G.named_parameters() if not n.startswith("style."))
    return conv / synth


@dataclass
class GeneratorDelta:
    """Weight deltas of M tuned generators (see the module docstring). ``tensors``: dense ``<layer>`` [M, O, I, k, k]
    or low-rank ``<layer>.up`` [M, O, r] and ``<layer>.down`` [M, r, I·k·k]; ``shapes``: layer → (O, I, k, k)."""

    rank: int
    tensors: dict[str, torch.Tensor]
    shapes: dict[str, tuple[int, int, int, int]]

    @classmethod
    def zeros(cls, G: StyleGAN2Generator, count: int, rank: int = 0, seed: int = 0) -> GeneratorDelta:
        """M = ``count`` deltas that change nothing yet, as leaf tensors requiring grad (fp32, on G's device).
        Low rank: ``up`` zero and ``down`` Gaussian with std 1/sqrt(r) (LoRA's start: zero delta, non-zero
        gradient for ``up``)."""
        if count < 1 or rank < 0:
            raise ValueError(f"count must be >= 1 and rank >= 0, got {count}, {rank}")
        dev = G.w_avg.device
        gen = torch.Generator().manual_seed(seed)
        tensors: dict[str, torch.Tensor] = {}
        shapes: dict[str, tuple[int, int, int, int]] = {}
        for name, m in modulated_convs(G).items():
            o, i, kh, kw = m.weight.shape[1:]
            shapes[name] = (o, i, kh, kw)
            if rank == 0:
                tensors[name] = torch.zeros(count, o, i, kh, kw, device=dev)
            else:
                r = min(rank, o, i * kh * kw)
                tensors[f"{name}.up"] = torch.zeros(count, o, r, device=dev)
                tensors[f"{name}.down"] = (torch.randn(count, r, i * kh * kw, generator=gen) / math.sqrt(r)).to(dev)
        for t in tensors.values():
            t.requires_grad_(True)
        return cls(rank, tensors, shapes)

    @property
    def count(self) -> int:
        """M: how many tuned generators."""
        return int(next(iter(self.tensors.values())).shape[0])

    @property
    def numel(self) -> int:
        """Stored numbers per tuned generator."""
        return sum(t[0].numel() for t in self.tensors.values())

    def parameters(self) -> list[torch.Tensor]:
        return list(self.tensors.values())

    def delta(self, layer: str) -> torch.Tensor:
        """The weight change of ``layer``: [M, O, I, k, k]."""
        o, i, kh, kw = self.shapes[layer]
        if self.rank == 0:
            return self.tensors[layer]
        up, down = self.tensors[f"{layer}.up"], self.tensors[f"{layer}.down"]
        return torch.bmm(up, down).view(-1, o, i, kh, kw)

    def factors(self, layer: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Low rank: (U [M, O, r], V [M, r, I, k, k]) with delta = U @ V."""
        if self.rank == 0:
            raise ValueError("dense deltas have no factors")
        _, i, kh, kw = self.shapes[layer]
        up = self.tensors[f"{layer}.up"]
        return up, self.tensors[f"{layer}.down"].view(-1, up.shape[2], i, kh, kw)

    def select(self, index: Sequence[int] | torch.Tensor) -> GeneratorDelta:
        """The deltas of the given generators (M' = len(index)); a shared delta (M = 1) is returned as is."""
        if self.count == 1:
            return self
        idx = torch.as_tensor(index, dtype=torch.long)
        return GeneratorDelta(self.rank, {k: v[idx.to(v.device)] for k, v in self.tensors.items()}, self.shapes)

    def detach(self) -> GeneratorDelta:
        return GeneratorDelta(self.rank, {k: v.detach().clone() for k, v in self.tensors.items()}, self.shapes)

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> GeneratorDelta:
        return GeneratorDelta(self.rank, {k: v.to(device=device, dtype=dtype) for k, v in self.tensors.items()},
                              self.shapes)

    @staticmethod
    def cat(deltas: Sequence[GeneratorDelta]) -> GeneratorDelta:
        """Deltas of several batches as one (same layers and rank)."""
        first = deltas[0]
        if any(d.rank != first.rank or d.shapes != first.shapes for d in deltas):
            raise ValueError("deltas of different generators or ranks cannot be joined")
        return GeneratorDelta(first.rank, {k: torch.cat([d.tensors[k] for d in deltas]) for k in first.tensors},
                              first.shapes)

    def check(self, G: StyleGAN2Generator, source: str = "delta") -> None:
        """Raise a one-line ValueError unless the deltas fit ``G``'s modulated convolutions."""
        own = {name: tuple(m.weight.shape[1:]) for name, m in modulated_convs(G).items()}
        if own != {k: tuple(v) for k, v in self.shapes.items()}:
            raise ValueError(f"{source}: tuned weights for another generator (layers or shapes differ)")

    def metadata(self) -> dict[str, str]:
        return {"delta_format": DELTA_FORMAT, "delta_rank": str(self.rank),
                "delta_layers": json.dumps({k: list(v) for k, v in self.shapes.items()})}

    def state(self, j: int | None = None, dtype: torch.dtype = torch.float16) -> dict[str, torch.Tensor]:
        """Tensors to store (``delta.``-prefixed; generator ``j`` only, kept as M = 1, when given)."""
        sel = self.tensors if j is None else {k: v[j : j + 1] for k, v in self.tensors.items()}
        return {PREFIX + k: v.detach().to("cpu", dtype).contiguous() for k, v in sel.items()}

    def per_image(self, n: int, dtype: torch.dtype = torch.float16) -> dict[str, torch.Tensor]:
        """``delta.``-prefixed tensors with first dim ``n`` — image j's delta at index j (a shared delta repeated) —
        for writers that store one file per image (`stylebridge.pipelines.runner`)."""
        if self.count not in (1, n):
            raise ValueError(f"{self.count} tuned generators for {n} images")
        return {PREFIX + k: v.detach().to("cpu", dtype).expand(n, *v.shape[1:]) for k, v in self.tensors.items()}

    @classmethod
    def from_state(cls, tensors: dict[str, torch.Tensor], metadata: dict[str, str], source: str) -> GeneratorDelta:
        if metadata.get("delta_format") != DELTA_FORMAT:
            raise ValueError(f"{source}: holds no tuned weights (no {DELTA_FORMAT} metadata)")
        try:
            rank = int(metadata["delta_rank"])
            shapes = {k: tuple(int(x) for x in v) for k, v in json.loads(metadata["delta_layers"]).items()}
        except (KeyError, ValueError) as e:
            raise ValueError(f"{source}: damaged tuned-weights metadata ({e})") from None
        own = {k[len(PREFIX):]: v.float() for k, v in tensors.items() if k.startswith(PREFIX)}
        want = set(shapes) if rank == 0 else {f"{k}.{p}" for k in shapes for p in ("up", "down")}
        if set(own) != want:
            raise ValueError(f"{source}: tuned-weight tensors do not match their metadata "
                             f"(missing {sorted(want - set(own))[:3]}, unexpected {sorted(set(own) - want)[:3]})")
        # one image's file (written per item by the folder runner) holds its delta without the leading M axis
        full_ndim = 5 if rank == 0 else 3
        own = {k: v[None] if v.ndim == full_ndim - 1 else v for k, v in own.items()}
        if any(v.ndim != full_ndim for v in own.values()):
            raise ValueError(f"{source}: tuned-weight tensors of the wrong rank")
        return cls(rank, own, shapes)  # type: ignore[arg-type]


@contextlib.contextmanager
def applied(G: StyleGAN2Generator, delta: GeneratorDelta | None) -> Iterator[StyleGAN2Generator]:
    """``G`` with ``delta`` added to its modulated-conv weights inside the block (nothing when None). With M > 1 the
    batch rendered must hold M samples (sample n uses generator n)."""
    if delta is None:
        yield G
        return
    convs = modulated_convs(G)
    if set(convs) != set(delta.shapes):
        raise ValueError("the tuned weights are for another generator (its layers differ)")
    # several low-rank generators: the factored path (no per-sample weight tensors); else dense weights
    factored = delta.rank > 0 and delta.count > 1
    try:
        for name, m in convs.items():
            m.weight_delta = delta.factors(name) if factored else delta.delta(name)
        yield G
    finally:
        for m in convs.values():
            m.weight_delta = None


def save_delta(path: str | os.PathLike, delta: GeneratorDelta, tensors: dict[str, torch.Tensor] | None = None,
               metadata: dict[str, str] | None = None, dtype: torch.dtype = torch.float16) -> os.PathLike:
    """Write ``delta`` (and any other ``tensors``, e.g. the latent) to one safetensors file, atomically."""
    state = {**(tensors or {}), **delta.state(dtype=dtype)}
    meta = {**(metadata or {}), **delta.metadata()}
    return atomic_write(path, lambda p: save_file(state, str(p), metadata=meta))


def load_delta(path: str | os.PathLike) -> GeneratorDelta:
    """The tuned weights stored in a safetensors file (``stylebridge invert --method pti`` writes them into each
    latent file, beside ``w_plus``)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys() if k.startswith(PREFIX)}
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: not found") from None
    except Exception as e:  # safetensors raises its own error types for damaged files
        raise ValueError(f"{path}: not a readable safetensors file ({e})") from None
    return GeneratorDelta.from_state(tensors, meta, str(path))
