"""GAN training speed: steps/s and images/s of `stylebridge train gan`, fp32 against bf16 autocast.

    python benchmarks/train_gan.py                           # configs/gan/synthfaces-64.yaml and tiny.yaml
    python benchmarks/train_gan.py --config configs/gan/tiny.yaml --steps 16

Each measurement trains a fresh run for ``--steps`` steps (regularisation phases included in their normal
proportion) and reports the rate from the run's own log (images per second since the first step).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine_info, write_results
from stylebridge.train.gan import load_gan_config, train_gan

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "gan"


def measure(config: Path, precision: str, steps: int) -> dict:
    cfg = load_gan_config(config, [f"optim.precision={precision}", f"optim.steps={steps}", "log.every=4",
                                   f"log.sample_every={10**9}", f"log.checkpoint_every={10**9}"])
    with tempfile.TemporaryDirectory() as tmp:
        train_gan(cfg, tmp, progress=False)
        rows = [json.loads(line) for line in (Path(tmp) / "log.jsonl").read_text().splitlines()]
        rows = [r for r in rows if "img_per_s" in r]  # training records (metric records have no rate)
    # The log's img_per_s is cumulative since the run started; the last value covers all but start-up.
    img_s = rows[-1]["img_per_s"]
    return {"config": config.name, "precision": precision, "batch": cfg.optim.batch,
            "resolution": cfg.data.resolution, "steps": steps, "img_per_s": img_s,
            "steps_per_s": img_s / cfg.optim.batch}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, nargs="+",
                   default=[CONFIGS / "tiny.yaml", CONFIGS / "synthfaces-64.yaml"])
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    info = machine_info()
    print(f"machine: {info['cpu']}, {info['threads']} threads, torch {info['torch']}, AMX {info['amx']}, "
          f"AVX512-BF16 {info['avx512_bf16']}, CUDA {info['cuda']}")
    print(f"{'config':>20} {'prec':>5} {'batch':>5} {'res':>4} {'steps/s':>8} {'img/s':>7}")
    rows = []
    for config in args.config:
        for precision in ("fp32", "bf16"):
            r = measure(config, precision, args.steps)
            rows.append(r)
            print(f"{r['config']:>20} {precision:>5} {r['batch']:>5} {r['resolution']:>4} {r['steps_per_s']:>8.3f} "
                  f"{r['img_per_s']:>7.1f}", flush=True)
    print(f"results written to {write_results('train_gan', {'machine': info, 'rows': rows})}")


if __name__ == "__main__":
    main()
