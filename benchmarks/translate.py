"""Translation speed of the activation-map translator: frames/s at batch 1, 64 px and 256 px, fp32 and bf16.

Random weights of the right sizes (speed does not depend on the values):

* 64 px: the synthfaces-64 generator's architecture (configs/gan/synthfaces-64.yaml: w 256, channels 256 → 32) and
  the encoder of configs/actmap/synthfaces-64.yaml (target b16.conv0);
* 256 px: config-f (configs/models/stylegan2-config-f-256.json: w 512, 8 mapping layers, channel multiplier 2) with
  the same encoder settings (target b16.conv0, 512 channels; input 256 px, four stride-2 stages).

Columns: one translation (encode + remaining layers, mean w, constant noise) in ms and frames/s; the encoder and
the remaining layers alone; a walk frame (remaining layers only: a walk encodes once); the full generator at the
same resolution for comparison; PSNR of bf16 against fp32 translations.

    python benchmarks/translate.py                  # everything
    python benchmarks/translate.py --res 64 --precision fp32 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import best_time, machine_info, write_results
from stylebridge import StyleGAN2Config, StyleGAN2Generator
from stylebridge.core.native import config_from_dict
from stylebridge.train.actmap import build_translator, load_actmap_config
from stylebridge.train.gan import load_gan_config

ROOT = Path(__file__).resolve().parent.parent


def generator_config(res: int) -> StyleGAN2Config:
    if res == 64:
        m = load_gan_config(ROOT / "configs" / "gan" / "synthfaces-64.yaml").model
        return StyleGAN2Config(resolution=64, z_dim=m.z_dim, w_dim=m.w_dim, mapping_layers=m.mapping_layers,
                               channels=m.channels)
    path = ROOT / "configs" / "models" / f"stylegan2-config-f-{res}.json"
    if path.is_file():
        return config_from_dict(StyleGAN2Config, json.loads(path.read_text())["config"], str(path))
    return StyleGAN2Config(resolution=res)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(torch.mean((a.float() - b.float()) ** 2))
    return 10 * math.log10(4.0 / mse) if mse > 0 else float("inf")


def measure(T, x: torch.Tensor, prec: str, repeats: int, sync) -> tuple[tuple[float, ...], torch.Tensor]:
    """Best seconds of (translate, encode, remaining layers, full generator) at batch 1, and the translation."""
    dev_type = x.device.type
    G = T.generator
    w = G.w_avg[None]

    def ac():
        return torch.autocast(dev_type, dtype=torch.bfloat16, enabled=prec == "bf16")

    def translate() -> torch.Tensor:
        with ac():
            return T.translate(x)

    def encode():
        with ac():
            return T.encode(x)

    act, skip = encode()

    def rest() -> torch.Tensor:
        with ac():
            return T.synthesize(act, skip, w)

    def full() -> torch.Tensor:
        with ac():
            return G.synthesize(w, noise_mode="const")

    times = tuple(best_time(fn, repeats, sync=sync, budget_s=60) for fn in (translate, encode, rest, full))
    return times, translate().float()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--res", type=int, nargs="+", default=[64, 256])
    p.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    p.add_argument("--layer", default="b16.conv0", help="target layer of the encoder")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    dev = args.device
    sync = torch.cuda.synchronize if dev == "cuda" else None
    info = machine_info()
    print(f"machine: {info['cpu']}, {info['threads']} threads, torch {info['torch']}, AMX {info['amx']}, "
          f"CUDA {info['cuda']}")
    run_cfg = load_actmap_config(ROOT / "configs" / "actmap" / "synthfaces-64.yaml", [f"encoder.layer={args.layer}",
                                                                                      "encoder.input_size=0"])
    header = (f"{'res':>4} {'prec':>5} {'ms/frame':>9} {'frames/s':>9} {'encoder':>8} {'rest':>8} {'walk f/s':>9} "
              f"{'G ms':>8} {'enc Mparam':>10} {'PSNR':>6}")
    print(header)
    rows = []
    for res in args.res:
        torch.manual_seed(0)
        G = StyleGAN2Generator(generator_config(res)).eval()
        T = build_translator(run_cfg, G).eval().to(dev)
        G = T.generator
        x = (torch.rand(1, 3, res, res) * 2 - 1).to(dev)
        fp32_out = None
        for prec in args.precision:
            times, out = measure(T, x, prec, args.repeats, sync)
            quality = None
            if prec == "fp32":
                fp32_out = out
            elif fp32_out is not None:
                quality = psnr(out, fp32_out)
            t_all, t_enc, t_rest, t_full = times
            mparam = T.encoder.num_parameters() / 1e6
            row = dict(res=res, precision=prec, layer=args.layer, batch=1, ms_per_frame=1000 * t_all,
                       frames_per_s=1 / t_all, encoder_ms=1000 * t_enc, remaining_layers_ms=1000 * t_rest,
                       walk_frames_per_s=1 / t_rest, full_generator_ms=1000 * t_full, encoder_mparams=mparam,
                       psnr_vs_fp32=quality)
            rows.append(row)
            print(f"{res:>4} {prec:>5} {1000 * t_all:>9.2f} {1 / t_all:>9.1f} {1000 * t_enc:>8.2f} "
                  f"{1000 * t_rest:>8.2f} {1 / t_rest:>9.1f} {1000 * t_full:>8.2f} {mparam:>10.2f} "
                  f"{quality if quality is None else round(quality, 1)!s:>6}", flush=True)
    path = write_results("translate", {"machine": info, "repeats": args.repeats, "rows": rows})
    print(f"results written to {path}")


if __name__ == "__main__":
    main()
