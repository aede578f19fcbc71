"""Ship a trained generator: export G_ema of a GAN run as a shipped model with its measured model card.

    python scripts/ship_generator.py --run runs/gan-synthfaces-64 --name synthfaces-64 \
        --command "stylebridge train gan --config configs/gan/synthfaces-64.yaml --out runs/gan-synthfaces-64"

Writes ``src/stylebridge/weights/<name>/`` (config.json, model.safetensors, MODEL_CARD.md) and
``docs/<name>_samples.png``. Every figure in the card is measured here, from the run's newest checkpoint:
kimg and wall time from the checkpoint, the Fréchet distance to real synthfaces next to the distance between two
independent real sets (the same n, feature space and seeds), and the metric curve logged during training.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from stylebridge.core.atomic import atomic_write_text
from stylebridge.core.imageio import save_grid
from stylebridge.metrics.frechet import DomainFeatures, fd_of_generator
from stylebridge.models.stylegan2 import StyleGAN2Generator
from stylebridge.pipelines.generate import generate_images
from stylebridge.train.config import from_dict
from stylebridge.train.gan import GanTrainConfig, build_models

ROOT = Path(__file__).resolve().parent.parent


def _cpu() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def _precision_text(precision: str) -> str:
    return "bf16 autocast with fp32 master weights" if precision == "bf16" else "fp32"


def _duration(seconds: float) -> str:
    h, rem = divmod(round(seconds), 3600)
    return f"{h} h {rem // 60:02d} min"


def load_run_generator(run: Path) -> tuple[StyleGAN2Generator, dict, GanTrainConfig]:
    ckpts = sorted(run.glob("checkpoint-*.pt"))
    if not ckpts:
        raise SystemExit(f"{run}: no checkpoint")
    ck = torch.load(ckpts[-1], map_location="cpu", weights_only=True)
    cfg = from_dict(GanTrainConfig, json.loads(ck["config"]))
    G = build_models(cfg)[0]
    G.load_state_dict(ck["G_ema"])
    G.eval().requires_grad_(False)
    G.compute_w_avg()
    return G, ck, cfg


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--command", required=True, help="the training command, for the card")
    p.add_argument("--n", type=int, default=10_000, help="images per set for the Fréchet distance")
    p.add_argument("--notes", default="", help="extra paragraph for the card (e.g. how the CPU was shared)")
    args = p.parse_args()

    G, ck, cfg = load_run_generator(args.run)
    steps, batch = int(ck["step"]), cfg.optim.batch
    kimg, seconds = steps * batch / 1000, float(ck.get("seconds", 0.0))
    out = ROOT / "src" / "stylebridge" / "weights" / args.name
    G.save_pretrained(out, metadata={"name": args.name, "steps": steps, "kimg": kimg, "train_seconds": round(seconds)})
    n_params = sum(p.numel() for p in G.parameters())

    grid_path = ROOT / "docs" / f"{args.name}_samples.png"
    imgs = generate_images(G, range(64), 1.0, "const", batch_size=32, precision="fp32", progress=False)
    save_grid(imgs, grid_path, nrow=8)
    trunc = generate_images(G, range(64), 0.7, "const", batch_size=32, precision="fp32", progress=False)
    save_grid(trunc, grid_path.with_name(f"{args.name}_samples_psi0.7.png"), nrow=8)

    t = time.perf_counter()
    ex = DomainFeatures("synthfaces-domain")
    fd = fd_of_generator(G, ex, "synthfaces", args.n, 1.0, seed=0, with_reference=True,
                         cache_dir=args.run / "metrics", progress=True)
    fd_trunc = fd_of_generator(G, ex, "synthfaces", args.n, 0.7, seed=0, cache_dir=args.run / "metrics",
                               progress=True)
    print(fd, f"(psi 0.7: {fd_trunc.value:.3f}) in {time.perf_counter() - t:.0f} s")

    curve = [json.loads(line) for line in (args.run / "log.jsonl").read_text().splitlines()]
    curve = [r for r in curve if "metric" in r]
    curve_rows = "\n".join(f"| {r['kimg']:.0f} | {r['value']:.3f} |" for r in curve) or "| – | – |"
    c = G.config
    card = f"""# {args.name} — StyleGAN2 generator for synthfaces at {c.resolution} px

`stylebridge.load("{args.name}")` → `StyleGAN2Generator` ({n_params:,} parameters; z {c.z_dim}, w {c.w_dim},
{c.mapping_layers} mapping layers, channels {list(c.channels) if c.channels else 'rosinality table'} from 4 px to
{c.resolution} px, {c.num_ws} styles). Output: images [N, 3, {c.resolution}, {c.resolution}], about [-1, 1].
`stylebridge generate --model {args.name} --seeds 0-63 --out grid.png`.

![samples](../../../../docs/{grid_path.name})

Seeds 0–63, ψ = 1 (no truncation), constant noise: `docs/{grid_path.name}`; ψ = 0.7:
`docs/{grid_path.with_name(f"{args.name}_samples_psi0.7.png").name}`.

## Training

Trained by stylebridge's own StyleGAN2 trainer (non-saturating logistic loss, lazy R1 γ = {cfg.optim.r1_gamma}
every {cfg.optim.r1_every} steps, path-length regularisation, style mixing {cfg.optim.mixing}, EMA
{cfg.optim.ema_kimg} kimg, Adam lr {cfg.optim.lr} with the lazy-regularisation correction, batch {batch},
{_precision_text(cfg.optim.precision)}, augmentation: {cfg.augment.kind}) on synthfaces streamed at
{c.resolution} px (every batch freshly rendered; training seeds 0 … {steps * batch - 1}).

| | |
|---|---|
| command | `{args.command}` (resumed with `--resume` across sessions) |
| config | `configs/gan/{args.name}.yaml` |
| length | {steps:,} steps = **{kimg:,.0f} kimg** |
| wall time | **{_duration(seconds)}** (training loop, metric evaluations included) |
| machine | {_cpu()}, {torch.get_num_threads()} threads, no GPU, torch {torch.__version__}, {cfg.optim.precision} |

{args.notes}

## Quality

Fréchet distance in the feature space of the shipped domain network (`synthfaces-domain`: pooled last stage +
embedding, 320-d). **This is not FID**: no Inception network is involved; values are on this network's own scale
and comparable only with each other (same network, same n). Generated: {fd.n:,} images (z and noise from seed 0);
real: {fd.n:,} rendered synthfaces (seeds 20,000,000+). The floor is the distance between two independent real
sets of the same size (seeds 20,000,000+ and 30,000,000+).

| | FD[synthfaces-domain] @ {fd.n // 1000}k |
|---|---|
| **{args.name}, ψ = 1** | **{fd.value:.3f}** |
| {args.name}, ψ = 0.7 | {fd_trunc.value:.3f} |
| real vs real (floor) | {fd.reference:.3f} |

Measured with `stylebridge metrics fd --model {args.name} --n {fd.n} --reference` (also `--truncation 0.7`).

During training (G_ema, {curve[0]['n'] if curve else '–'} images per set, so larger than the 10k values):

| kimg | FD[synthfaces-domain] |
|---|---|
{curve_rows}

Standard FID needs an Inception weights file the user supplies (`--features pt_inception-2015-12-05-6726825d.pth`);
it is not reported here because none is available offline.
"""
    atomic_write_text(out / "MODEL_CARD.md", card)
    summary = {"name": args.name, "steps": steps, "kimg": kimg, "train_seconds": seconds, "fd": fd.to_dict(),
               "fd_psi0.7": fd_trunc.to_dict()}
    print(json.dumps(summary, indent=2))
    print(f"wrote {out}/ and {grid_path}")


if __name__ == "__main__":
    main()
