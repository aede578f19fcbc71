"""pSp / e4e encoder speed at the official sizes: 256-px input, IR-SE-50 at full widths, 1024-px config-f decoder.

Prints, for batch 1 and 8 in fp32 and bf16: seconds per image and images/s of ``encode`` and of encode + generate
(full 1024-px output, stored noise), GMAC per image (convolutions and linear layers of the encoder counted with
forward hooks; the generator by the reference convention of benchmarks/generator.py), achieved GFLOP/s and its
share of the machine's matmul peak (re-measured next to every row: shared cloud CPUs change speed by minutes), and
the speed-up over the official pSp code on this machine kind (pure-PyTorch path, random weights, 2 threads, fp32:
encoder 0.81 s/img, full forward 5.19 s/img). Then seconds per training step at batch 2 with the decoder frozen
(the official 49.5 s): the trainer's own step (`stylebridge.train.encoder`), with pSp's FFHQ losses — L2, LPIPS
(AlexNet) 0.8, ArcFace IR-SE-50 identity 0.1 — on networks of the official architectures with random weights.

    python benchmarks/encoders.py                      # everything (many minutes on 2 CPU cores)
    python benchmarks/encoders.py --batch 1 --precision fp32 --no-train
    python benchmarks/encoders.py --quick              # tiny sizes: checks the script runs (seconds)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from _common import best_time, machine_info, matmul_peak_gflops, write_results
from generator import config_f, generator_macs
from stylebridge import StyleGAN2Config
from stylebridge.losses import IdentityLoss, PerceptualDistance, arcface_crop
from stylebridge.models.irse import IRSEBackbone, IRSEBackboneConfig
from stylebridge.models.lpips import LPIPS, LPIPSConfig
from stylebridge.models.psp import PSP, PSPConfig, PSPEncoderConfig
from stylebridge.train.encoder import EncoderTrainConfig, _Losses, _State, _train_step

# The official pSp code on this machine kind (pure-PyTorch path, random weights, 2 threads, fp32).
REFERENCE = {"encode": 0.81, "encode+generate": 5.19, "train step (batch 2)": 49.5}
REFERENCE_GMAC = {"encode": 72.5, "encode+generate": 147.9}


def build(quick: bool) -> PSP:
    if quick:
        enc = PSPEncoderConfig(num_ws=10, w_dim=64, input_size=64, input_width=8, widths=(8, 16, 32, 64),
                               se_reduction=4)
        dec = StyleGAN2Config(resolution=64, z_dim=64, w_dim=64, mapping_layers=2, channel_divisor=16)
        return PSP(PSPConfig(encoder=enc, decoder=dec, resize_to=64))
    return PSP(PSPConfig(encoder=PSPEncoderConfig(), decoder=config_f(1024), resize_to=256))


def count_macs(module: nn.Module, *inputs: torch.Tensor) -> float:
    """Multiply-accumulates per sample of the Conv2d and Linear layers one forward runs."""
    total = 0.0

    def hook(m: nn.Module, args: tuple, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(m, nn.Conv2d):
            total += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, nn.Linear):
            total += out.numel() * m.in_features

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        module(*inputs)
    for h in handles:
        h.remove()
    return total / inputs[0].shape[0]


def encoder_gmac(model: PSP) -> float:
    c = model.config.encoder
    macs = count_macs(model.encoder, torch.zeros(1, c.in_channels, c.input_size, c.input_size))
    # EqualLinear (map2style heads) is a plain-parameter module, not nn.Linear: count it by its shape.
    macs += sum(m.weight.shape[0] * m.weight.shape[1] for m in model.encoder.modules()
                if type(m).__name__ == "EqualLinear")
    return macs / 1e9


def train_state(model: PSP, quick: bool) -> tuple[_State, _Losses, EncoderTrainConfig]:
    cfg = EncoderTrainConfig()
    cfg.optim.batch = 2
    model.encoder.train()
    model.decoder.requires_grad_(False).eval()
    opt = torch.optim.Adam(model.encoder.parameters(), lr=cfg.optim.lr)
    st = _State(model, opt, torch.Generator().manual_seed(0))
    lpips = LPIPS(LPIPSConfig("alex"))  # the official AlexNet architecture, random weights
    arc_cfg = IRSEBackboneConfig(input_width=8, widths=(8, 8, 16, 16), se_reduction=4) if quick \
        else IRSEBackboneConfig()  # ArcFace IR-SE-50 (model_ir_se50.pth's architecture)
    arc = IRSEBackbone(arc_cfg)
    ident = IdentityLoss(arc, lambda x: arc(arcface_crop(x, arc_cfg.input_size)), "ArcFace IR-SE-50 (random)")
    return st, _Losses(PerceptualDistance(lpips, "LPIPS alex (random)"), ident), cfg


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    p.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    p.add_argument("--train-precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    p.add_argument("--no-train", action="store_true", help="skip the training-step timing")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="tiny sizes, to check that the script runs")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    info = machine_info()
    print(f"machine: {info['cpu']}, {info['threads']} threads, torch {info['torch']}, AMX {info['amx']}, "
          f"AVX512-BF16 {info['avx512_bf16']}, CUDA {info['cuda']}"
          + ("  [--quick: tiny sizes, not the official ones]" if args.quick else ""))
    model = build(args.quick).eval()
    model.decoder.compute_w_avg(1000)
    model.latent_avg.copy_(model.decoder.w_avg[None].expand_as(model.latent_avg))
    c = model.config.encoder
    gmac_enc = encoder_gmac(model)
    gmac_gen = generator_macs(model.decoder.config) / 1e9
    peak_n = 512 if args.quick else 2048
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    print(f"encoder: IR-SE-{c.num_layers}, widths {c.widths}, {c.input_size}-px input, "
          f"{sum(p.numel() for p in model.encoder.parameters()) / 1e6:.1f} M parameters, {gmac_enc:.1f} GMAC/img; "
          f"decoder {model.decoder.resolution} px, {gmac_gen:.1f} GMAC/img")
    print(f"{'what':>22} {'batch':>5} {'prec':>5} {'s/img':>8} {'img/s':>7} {'GMAC/img':>8} {'GFLOP/s':>8} "
          f"{'peak':>5} {'%peak':>6} {'vs ref':>7}")
    rows = []

    def emit(what: str, batch: int, prec: str, seconds: float, gmac: float | None, unit: str = "img") -> None:
        peak = matmul_peak_gflops(dtypes[prec], n=peak_n)
        gflops = 2 * gmac / seconds if gmac else float("nan")
        speedup = REFERENCE[what] / seconds if not args.quick else float("nan")
        rows.append(dict(what=what, batch=batch, precision=prec, **{f"s_per_{unit}": seconds},
                         per_s=1 / seconds, gmac_per_img=gmac, gflops=gflops, peak_gflops=peak,
                         frac_peak=gflops / peak, speedup_vs_reference=speedup, reference_s=REFERENCE[what]))
        g = f"{gmac:8.2f}" if gmac else f"{'':>8}"
        print(f"{what:>22} {batch:>5} {prec:>5} {seconds:>8.3f} {1 / seconds:>7.2f} {g} {gflops:>8.0f} {peak:>5.0f} "
              f"{100 * gflops / peak:>5.0f}% {speedup:>6.2f}x", flush=True)

    with torch.no_grad():
        for batch in args.batch:
            x = torch.rand(batch, c.in_channels, c.input_size, c.input_size) * 2 - 1
            for prec in args.precision:
                # One autocast context around all repeats, as `encode_folder` / `translate_folder` hold one for a
                # whole folder: autocast then casts the 267 M fp32 weights to bf16 once, not on every call
                # (on 2 cores the casts alone cost a large part of a batch-1 encode).
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=prec == "bf16"):
                    emit("encode", batch, prec,
                         best_time(lambda x=x: model.encode(x), args.repeats, budget_s=120) / batch, gmac_enc)
                    emit("encode+generate", batch, prec,
                         best_time(lambda x=x: model.decode(model.encode(x)), args.repeats, budget_s=240) / batch,
                         gmac_enc + gmac_gen)
    if not args.no_train:
        st, losses, cfg = train_state(model, args.quick)
        x = torch.rand(2, c.in_channels, c.input_size, c.input_size) * 2 - 1
        side = model.config.resize_to
        y = torch.rand(2, 3, side, side) * 2 - 1
        for prec in args.train_precision:
            cfg.optim.precision = prec
            t = best_time(lambda: _train_step(st, cfg, losses, x, y), repeats=max(1, args.repeats - 1), budget_s=300)
            emit("train step (batch 2)", 2, prec, t, None, unit="step")
    name = "encoders-quick" if args.quick else "encoders"
    path = write_results(name, {"machine": info, "quick": args.quick, "reference": REFERENCE,
                                "reference_gmac": REFERENCE_GMAC, "encoder_gmac": gmac_enc,
                                "generator_gmac": gmac_gen, "rows": rows})
    print(f"results written to {path}")


if __name__ == "__main__":
    main()
