"""SeFa (Shen & Zhou 2021): closed-form editing directions from a generator's style-modulation weights.

The directions that most change the styles of a set of layers are the top eigenvectors of ``A·Aᵀ``, where ``A``
[w_dim, Σ C_in] concatenates the selected layers' modulation weights (transposed) with every column scaled to unit
length. No sampling, no labels: under a second on any generator.

Layer conventions (both stored in the golden fixtures):

* ``"genforce"`` (SeFa's own code; the default): layer i is the modulated conv that consumes W+ row i — the 4×4 conv
  for i = 0, later conv i-1 for 1 ≤ i ≤ num_ws-2 — and i = num_ws-1 is the last toRGB. ``"all"`` = every row;
  ``"a-b"`` = rows a..b. The edit moves exactly those rows.
* ``"e4e"`` (encoder4editing's ``editings/sefa.py``): ``"all"`` = the 4×4 conv and every later conv (no toRGB); for
  a list L the 4×4 conv if 0 ∈ L and later conv l-1 for every other l — and the rows it then edits are that list
  shifted by one with 0 dropped (``[l - 1 for l in L if l != 0]``; ``range(num later convs)`` for "all"), which is
  what e4e does. Use it to reproduce e4e's SeFa edits.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from stylebridge.models.direction import Direction, parse_layers
from stylebridge.models.stylegan2 import StyleGAN2Generator

__all__ = ["sefa", "sefa_direction", "sefa_rows"]

CONVENTIONS = ("genforce", "e4e")


def _weights(G: StyleGAN2Generator, rows: Sequence[int] | None,
             convention: str) -> tuple[list[torch.Tensor], list[int]]:
    """The modulation weights [C_in, w_dim] SeFa factorises, and the W+ rows its edits move."""
    convs = list(G.convs)
    if convention == "genforce":
        chosen = list(range(G.num_ws)) if rows is None else list(rows)
        mods = []
        for i in chosen:
            if i == 0:
                mods.append(G.conv1.conv.modulation.weight)
            elif i <= len(convs):
                mods.append(convs[i - 1].conv.modulation.weight)
            else:  # the last row is read only by the final toRGB
                mods.append(G.to_rgbs[-1].conv.modulation.weight)
        return mods, chosen
    if convention == "e4e":
        mods = []
        if rows is None or 0 in rows:
            mods.append(G.conv1.conv.modulation.weight)
        edited = list(range(len(convs))) if rows is None else [r - 1 for r in rows if r != 0]
        mods += [convs[i].conv.modulation.weight for i in edited]
        return mods, edited
    raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")


def sefa_rows(G: StyleGAN2Generator, layers: str | Sequence[int] | None = "all",
              convention: str = "genforce") -> list[int]:
    """The W+ rows a SeFa edit of ``layers`` moves (see the module docstring for the two conventions)."""
    return _weights(G, parse_layers(layers, G.num_ws), convention)[1]


@torch.no_grad()
def sefa(G: StyleGAN2Generator, layers: str | Sequence[int] | None = "all",
         convention: str = "genforce") -> tuple[torch.Tensor, torch.Tensor]:
    """Closed-form directions for ``layers`` ("all", "a-b", "a,b,c" or rows).

    Returns:
        (eigenvalues [w_dim] in descending order, eigenvectors [w_dim, w_dim] as rows, unit length), float32. Signs
        are arbitrary (as in every eigen-solver): a direction and its negative are the same edit.
    """
    mods, _ = _weights(G, parse_layers(layers, G.num_ws), convention)
    # As the official code: float32 weights, columns normalised, A·Aᵀ in float32; the symmetric solve in float64
    # (the official general solver runs in float64 too) then back to float32.
    a = torch.cat([m.detach().float().cpu().t() for m in mods], dim=1)  # [w_dim, Σ C_in]
    a = a / torch.linalg.vector_norm(a, dim=0, keepdim=True)
    vals, vecs = torch.linalg.eigh((a @ a.t()).double())
    order = torch.argsort(vals, descending=True)
    return vals[order].float(), vecs[:, order].t().float().contiguous()


def sefa_direction(G: StyleGAN2Generator, index: int, layers: str | Sequence[int] | None = "all",
                   convention: str = "genforce", name: str | None = None,
                   generator_name: str = "") -> Direction:
    """Eigenvector ``index`` (0: the largest eigenvalue) of ``sefa(G, layers)`` as a `Direction` on the rows it
    edits, with SeFa's usual strength range (±15 at unit length for FFHQ; ±3 suits small generators: shown in
    ``notes``)."""
    vals, vecs = sefa(G, layers, convention)
    if not 0 <= index < vecs.shape[0]:
        raise ValueError(f"index must be in 0..{vecs.shape[0] - 1}, got {index}")
    rows = sefa_rows(G, layers, convention)
    return Direction.from_vector(vecs[index], layers=tuple(rows), name=name or f"sefa-{index}",
                                 strength_range=(-5.0, 5.0), method=f"sefa ({convention}, layers {layers})",
                                 generator=generator_name,
                                 notes=f"eigenvalue {float(vals[index]):.4g} (largest {float(vals[0]):.4g})")
