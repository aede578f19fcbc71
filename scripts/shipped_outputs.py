"""Outputs of every shipped model on one fixed batch (fp32, CPU), written to a safetensors file.

Run before and after a change that must not alter behaviour and compare the files (bit-identical on one machine);
``tests/models/test_shipped_outputs.py`` compares the stored file with today's code.

    python scripts/shipped_outputs.py --out tests/golden/shipped_outputs.safetensors
"""

from __future__ import annotations

import argparse

import torch
from safetensors.torch import save_file

import stylebridge


@torch.no_grad()
def shipped_outputs() -> dict[str, torch.Tensor]:
    """{name: tensor} for a fixed batch through each shipped model (only public methods that never changed)."""
    torch.manual_seed(0)
    out: dict[str, torch.Tensor] = {}
    G = stylebridge.load("synthfaces-64")
    z = torch.randn(3, G.z_dim, generator=torch.Generator().manual_seed(1))
    w = G.map(z, truncation_psi=0.7)
    out["synthfaces-64/w"] = w
    out["synthfaces-64/images"] = G.synthesize(w, noise_mode="const")
    out["synthfaces-64/mixed"] = G.synthesize(G.mix(w, w.flip(0), crossover=4), noise_mode="const")
    x = out["synthfaces-64/images"].clamp(-1, 1)
    tr = stylebridge.load("synthfaces-64-actmap")
    out["synthfaces-64-actmap/translate"] = tr.translate(x)
    out["synthfaces-64-actmap/translate_seed"] = tr.translate(x, seed=5)
    for name in ("synthfaces-64-psp-inversion", "synthfaces-64-e4e-inversion"):
        m = stylebridge.load(name)
        out[f"{name}/w_plus"] = m.encode(x)
        out[f"{name}/images"] = m.decode(out[f"{name}/w_plus"])
    sk = stylebridge.load("synthfaces-64-psp-sketch")
    sketch = x.mean(dim=1, keepdim=True)
    out["synthfaces-64-psp-sketch/w_plus"] = sk.encode(sketch)
    out["synthfaces-64-psp-sketch/images"] = sk.decode(out["synthfaces-64-psp-sketch/w_plus"])
    dn = stylebridge.load("synthfaces-domain")
    out["synthfaces-domain/distance"] = dn.distance(x, x.flip(0))
    out["synthfaces-domain/fd_features"] = dn.fd_features(x)
    return {k: v.float().contiguous() for k, v in out.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    save_file(shipped_outputs(), args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
