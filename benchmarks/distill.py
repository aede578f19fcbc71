"""pix2pixHD forward speed (StyleGAN2 distillation's one-pass editor) beside the official GlobalGenerator, one run.

Rows: 64 px — the shipped distilled editors' architectures (configs/pix2pixhd/synthfaces-64.yaml: ngf 32, 2
downsamplings, 6 residual blocks, residual output; ``-fast``: synthfaces-64-fast.yaml, ngf 12, 3 blocks; the shipped
``synthfaces-64-distill-smile[-fast]`` weights when they load, else random weights: the speed is the same) — and
256 px at the official architecture (``netG global``, ngf 64, 4 downsamplings, 9 residual blocks, random weights);
batch 1 and 8; fp32 and bf16 (``torch.autocast("cpu", torch.bfloat16)``):

* ``ours``: `stylebridge.models.pix2pixhd.Pix2PixHDGenerator` as ``stylebridge translate`` runs it;
* ``reference``: NVIDIA/pix2pixHD ``models/networks.py`` ``GlobalGenerator`` re-implemented module for module below
  (one ``nn.Sequential`` named ``model``: ``ReflectionPad2d`` modules, ``InstanceNorm2d(affine=False)``, ``ReLU(True)``,
  ``ResnetBlock.conv_block``; the official parameter names); for the residual 64-px rows, with our input skip
  around the same modules (the only difference from the official network).

Before timing, our weights are loaded into the reference (same parameter order and shapes) and the fp32 outputs of
both must agree (max abs diff < 1e-4) at every size and batch. Timings: best of ``--repeats`` after a warm-up, ms per
image = time / batch, both paths in the same process one after the other (shared cloud CPUs drift by the minute).

    python benchmarks/distill.py                          # every row (256 px batch 8 takes a while on 2 cores)
    python benchmarks/distill.py --rows 64 64-fast --repeats 5
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from _common import best_time, machine_info, write_results
from stylebridge.models.pix2pixhd import Pix2PixHDGenerator, Pix2PixHDGeneratorConfig

CHECK_ATOL = 1e-4
# row → (shipped weights, architecture, side)
VARIANTS = {
    "64": ("synthfaces-64-distill-smile",  # configs/pix2pixhd/synthfaces-64.yaml
           {"ngf": 32, "n_downsample_global": 2, "n_blocks_global": 6, "residual": True}, 64),
    "64-fast": ("synthfaces-64-distill-smile-fast",  # configs/pix2pixhd/synthfaces-64-fast.yaml
                {"ngf": 12, "n_downsample_global": 2, "n_blocks_global": 3, "residual": True}, 64),
    "256": ("", {"ngf": 64, "n_downsample_global": 4, "n_blocks_global": 9}, 256),  # the official netG global
}


# ---------------------------------------------------------------------------------------------------------------------
# The reference: NVIDIA/pix2pixHD models/networks.py GlobalGenerator and ResnetBlock (norm 'instance', no dropout).
# ---------------------------------------------------------------------------------------------------------------------


class ResnetBlock(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, kernel_size=3, padding=0), nn.InstanceNorm2d(dim, affine=False),
            nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, kernel_size=3, padding=0), nn.InstanceNorm2d(dim, affine=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class GlobalGenerator(nn.Module):
    def __init__(self, input_nc: int, output_nc: int, ngf: int = 64, n_downsampling: int = 3,
                 n_blocks: int = 9) -> None:
        super().__init__()
        act = nn.ReLU(True)
        model: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, kernel_size=7, padding=0),
                                  nn.InstanceNorm2d(ngf, affine=False), act]
        for i in range(n_downsampling):
            mult = 2**i
            model += [nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=2, padding=1),
                      nn.InstanceNorm2d(ngf * mult * 2, affine=False), act]
        mult = 2**n_downsampling
        for _ in range(n_blocks):
            model += [ResnetBlock(ngf * mult)]
        for i in range(n_downsampling):
            mult = 2 ** (n_downsampling - i)
            model += [nn.ConvTranspose2d(ngf * mult, int(ngf * mult / 2), kernel_size=3, stride=2, padding=1,
                                         output_padding=1), nn.InstanceNorm2d(int(ngf * mult / 2), affine=False), act]
        model += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*model)
        self.residual = False  # ours' input skip (not official), added around the same modules for the residual rows

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.residual:
            return torch.tanh(torch.atanh(x.clamp(-0.999, 0.999)) + self.model[:-1](x))
        return self.model(x)


def reference_from(ours: Pix2PixHDGenerator) -> GlobalGenerator:
    """The official GlobalGenerator holding ``ours``'s weights (parameters in the same order and shapes)."""
    c = ours.config
    if c.n_local_enhancers:
        raise ValueError("the reference here is the global generator (no local enhancers)")
    ref = GlobalGenerator(c.in_channels, c.out_channels, c.ngf, c.n_downsample_global, c.n_blocks_global).eval()
    ref.residual = c.residual
    mine, theirs = list(ours.parameters()), list(ref.parameters())
    if [p.shape for p in mine] != [p.shape for p in theirs]:
        raise RuntimeError("parameter shapes differ between ours and the reference")
    with torch.no_grad():
        for a, b in zip(theirs, mine):
            a.copy_(b)
    return ref


def build(variant: str) -> tuple[Pix2PixHDGenerator, str]:
    """The network of a row: the shipped weights when they load, else random weights of the same architecture."""
    shipped, arch, res = VARIANTS[variant]
    if shipped:
        try:
            from stylebridge.formats.loading import load

            return load(shipped, expect=Pix2PixHDGenerator).float().eval(), shipped
        except Exception as exc:  # any failure: random weights, same speed
            print(f"({shipped} not loaded: {exc}; random weights)")
    torch.manual_seed(0)
    return Pix2PixHDGenerator(Pix2PixHDGeneratorConfig(resolution=res, **arch)).eval(), f"random {arch}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=("fp32", "bf16"))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--budget", type=float, default=30.0, help="seconds per timing before it stops repeating")
    args = ap.parse_args()
    info = machine_info()
    print(f"machine: {info}")
    rows, checks, sources = [], [], {}
    for variant in args.rows:
        ours, source = build(variant)
        res = VARIANTS[variant][2]
        sources[variant] = source
        ref = reference_from(ours)
        for batch in args.batch:
            x = torch.rand(batch, ours.config.in_channels, res, res, generator=torch.Generator().manual_seed(1)) * 2 - 1
            with torch.inference_mode():
                diff = float((ours(x) - ref(x)).abs().max())
            checks.append({"row": variant, "batch": batch, "max_abs_diff": diff})
            if diff > CHECK_ATOL:
                raise SystemExit(f"{variant} batch {batch}: ours and the reference differ by {diff:.2e}")
            for precision in args.precision:
                times = {}
                for label, net in (("ours", ours), ("reference", ref)):
                    def fwd(net: nn.Module = net, x: torch.Tensor = x, bf16: bool = precision == "bf16") -> None:
                        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                            net(x)
                    times[label] = best_time(fwd, repeats=args.repeats, budget_s=args.budget) / batch * 1000
                row = {"row": variant, "res": res, "batch": batch, "precision": precision,
                       "ours_ms": round(times["ours"], 2),
                       "reference_ms": round(times["reference"], 2),
                       "speedup": round(times["reference"] / times["ours"], 3),
                       "ours_images_per_s": round(1000 / times["ours"], 1)}
                rows.append(row)
                print(f"{variant:>8}  batch {batch}  {precision}:  ours {row['ours_ms']:8.2f} ms/img "
                      f"({row['ours_images_per_s']:.1f} img/s)   official GlobalGenerator {row['reference_ms']:8.2f} "
                      f"ms/img   ({row['speedup']:.2f}×)", flush=True)
    path = write_results("distill", {"machine": info, "models": sources, "equality_checks": checks, "rows": rows})
    print(f"results written to {path}")


if __name__ == "__main__":
    main()
