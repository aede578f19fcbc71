"""Generator speed: images/s at rosinality config-f (channel multiplier 2, 8 mapping layers, w_dim 512).

Prints, for 256 and 1024 px, batch 1 and 8, fp32 and bf16: seconds per image, images/s, GMAC per image,
achieved GFLOP/s and its fraction of the machine's measured matmul peak (same dtype), the speed-up over the
reference figures (rosinality's pure-PyTorch path on this machine kind, 2 threads, fp32: 0.88 s/img at 256 px,
4.96 s/img at 1024 px), and the PSNR of bf16 against fp32 images.

Shared cloud CPUs change speed from minute to minute (the fp32 matmul peak was seen between 156 and 310 GFLOP/s
on one machine within an hour), so the peak is measured again next to every row, and ``--reference-path`` times
our re-implementation of the reference's op sequence in the same run: the "vs path" column is the comparison
that does not depend on when the figures were taken.

    python benchmarks/generator.py                 # everything (several minutes on 2 CPU cores)
    python benchmarks/generator.py --res 256 --batch 1 --precision fp32
    python benchmarks/generator.py --reference-path   # also time our re-implementation of the reference path

MACs follow the reference count: convolutions, ToRGB, and every FIR filter at 16 taps per output sample
(45.4 GMAC at 256 px, 75.4 at 1024 px).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import best_time, machine_info, matmul_peak_gflops, write_results
from stylebridge import StyleGAN2Config, StyleGAN2Generator, ops
from stylebridge.core.native import config_from_dict
from stylebridge.models.stylegan2 import rosinality_channels

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "models"


def config_f(resolution: int) -> StyleGAN2Config:
    """configs/models/stylegan2-config-f-<res>.json, or config-f defaults at other resolutions."""
    path = CONFIGS / f"stylegan2-config-f-{resolution}.json"
    if path.is_file():
        return config_from_dict(StyleGAN2Config, json.loads(path.read_text())["config"], str(path))
    return StyleGAN2Config(resolution=resolution)

REFERENCE_S_PER_IMG = {256: 0.88, 1024: 4.96}  # rosinality pure-PyTorch, batch 1, fp32, 2 threads


def generator_macs(cfg: StyleGAN2Config) -> float:
    """Multiply-accumulates per image (reference convention)."""
    ch = cfg.channel_dict if cfg.channels else rosinality_channels(cfg.resolution, cfg.channel_multiplier,
                                                                    cfg.channel_divisor)
    macs = cfg.mapping_layers * cfg.w_dim * cfg.w_dim
    macs += 16 * 9 * ch[4] * ch[4] + 16 * ch[4] * 3
    r = 8
    while r <= cfg.resolution:
        ci, co = ch[r // 2], ch[r]
        macs += (r // 2) ** 2 * 9 * ci * co + r * r * 9 * co * co  # up conv, conv
        macs += r * r * 16 * co + r * r * 16 * 3  # blur after the up conv, RGB skip upsampling
        macs += r * r * co * 3  # ToRGB
        macs += 3 * cfg.w_dim * (ci + co + co)  # affines
        r *= 2
    return float(macs)


@contextlib.contextmanager
def reference_path() -> Iterator[None]:
    """Our re-implementation of the reference CPU path: per-channel zero-insertion upfirdn2d, per-sample grouped
    weights at every batch size, NCHW, no in-place updates. Same maths, the reference's op sequence."""
    saved = ops.upfirdn2d
    ops.upfirdn2d = ops.upfirdn2d_ref
    try:
        yield
    finally:
        ops.upfirdn2d = saved


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    peak = float(b.max() - b.min())
    mse = float(torch.mean((a.float() - b.float()) ** 2))
    return 10 * math.log10(peak**2 / mse) if mse > 0 else float("inf")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--res", type=int, nargs="+", default=[256, 1024])
    p.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    p.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--reference-path", action="store_true", help="also time the reference-style path (fp32)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    dev = args.device
    sync = torch.cuda.synchronize if dev == "cuda" else None

    info = machine_info()
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    print(f"machine: {info['cpu']}, {info['threads']} threads, torch {info['torch']}, AMX {info['amx']}, "
          f"AVX512-BF16 {info['avx512_bf16']}, CUDA {info['cuda']}")
    header = (f"{'res':>5} {'batch':>5} {'prec':>5} {'path':>9} {'s/img':>8} {'img/s':>7} {'GMAC/img':>8} "
              f"{'GFLOP/s':>8} {'peak':>5} {'%peak':>6} {'vs ref':>7} {'vs path':>7} {'PSNR':>6}")
    print(header)
    rows = []
    for res in args.res:
        torch.manual_seed(0)
        cfg = config_f(res)
        G = StyleGAN2Generator(cfg).eval().to(dev)
        G.compute_w_avg(1000)
        gmac = generator_macs(cfg) / 1e9
        for batch in args.batch:
            w = G.map(torch.randn(batch, cfg.z_dim, device=dev), 0.7)
            ref_img = None
            paths = [("reference", "fp32")] if args.reference_path else []
            paths += [("fast", prec) for prec in args.precision]
            path_time = None
            for path, prec in paths:
                def run(path=path, prec=prec, G=G, w=w) -> torch.Tensor:
                    if path == "reference":
                        with reference_path():
                            return G.synthesize(w, noise_mode="const", modconv="grouped", channels_last=False)
                    with torch.autocast(torch.device(dev).type, dtype=torch.bfloat16, enabled=prec == "bf16"):
                        return G.synthesize(w, noise_mode="const")
                peak = matmul_peak_gflops(dtypes[prec], dev)
                t = best_time(run, repeats=args.repeats, sync=sync, budget_s=120) / batch
                img = run()
                quality = ""
                if prec == "fp32" and path == "fast":
                    ref_img = img
                if prec == "bf16" and ref_img is not None:
                    quality = f"{psnr(img, ref_img):.1f}"
                if path == "reference":
                    path_time = t
                gflops = 2 * gmac / t
                speedup = REFERENCE_S_PER_IMG.get(res, float("nan")) / t
                vs_path = path_time / t if path_time else float("nan")
                row = dict(res=res, batch=batch, precision=prec, path=path, s_per_img=t, img_per_s=1 / t,
                           gmac_per_img=gmac, gflops=gflops, peak_gflops=peak, frac_peak=gflops / peak,
                           speedup_vs_reference_figure=speedup, speedup_vs_reference_path=vs_path,
                           psnr_vs_fp32=quality or None)
                rows.append(row)
                print(f"{res:>5} {batch:>5} {prec:>5} {path:>9} {t:>8.3f} {1 / t:>7.2f} {gmac:>8.1f} {gflops:>8.0f} "
                      f"{peak:>5.0f} {100 * gflops / peak:>5.0f}% {speedup:>6.2f}x {vs_path:>6.2f}x {quality:>6}",
                      flush=True)
    path = write_results("generator", {"machine": info, "rows": rows})
    print(f"results written to {path}")


if __name__ == "__main__":
    main()
