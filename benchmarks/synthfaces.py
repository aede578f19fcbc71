"""synthfaces rendering speed: images/s by resolution and outputs, and through a DataLoader with workers.

    python benchmarks/synthfaces.py            # target: >= 300 images/s at 64 px on 2 CPU cores
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine_info, write_results
from stylebridge.data import synthfaces as sf
from stylebridge.data.tasks import SynthFacesPairs


def render_rate(resolution: int, outputs: tuple[str, ...], batch: int, total: int) -> float:
    sf.render(sf.sample_attributes(list(range(batch))), resolution, outputs)  # warm-up
    start, done, t0 = 10_000, 0, time.perf_counter()
    while done < total:
        sf.render(sf.sample_attributes(list(range(start + done, start + done + batch))), resolution, outputs)
        done += batch
    return done / (time.perf_counter() - t0)


def _init_worker(_: int) -> None:
    torch.set_num_threads(1)  # workers share the cores; one thread each avoids oversubscription


def loader_rate(task: str, resolution: int, batch: int, workers: int, batches: int) -> float:
    ds = SynthFacesPairs(task, resolution, length=batch * (batches + 2), seed=20_000)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, num_workers=workers,
                                         worker_init_fn=_init_worker if workers else None,
                                         persistent_workers=False)
    it = iter(loader)
    next(it)  # start-up (worker spawn, first batch) is not counted
    t0 = time.perf_counter()
    n = 0
    for _ in range(batches):
        n += len(next(it)[0])
    return n / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--total", type=int, default=1024, help="images per measurement")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    info = machine_info()
    print(f"machine: {info['cpu']}, {info['threads']} threads, torch {info['torch']}")
    rows = []
    print(f"{'res':>5} {'outputs':>20} {'img/s':>8}")
    for res in (32, 64, 128, 256):
        for outputs in (("image",), ("image", "seg", "sketch")):
            batch = 64 if res <= 64 else 16
            total = args.total if res <= 64 else args.total // 4
            rate = render_rate(res, outputs, batch, total)
            rows.append({"kind": "render", "resolution": res, "outputs": list(outputs), "img_per_s": rate})
            print(f"{res:>5} {'+'.join(outputs):>20} {rate:>8.0f}", flush=True)
    print(f"\nDataLoader, task 'inversion', 64 px, batch 64:\n{'workers':>8} {'img/s':>8}")
    for workers in (0, 1, 2):
        torch.set_num_threads(args.threads if workers == 0 else 1)
        rate = loader_rate("inversion", 64, 64, workers, batches=max(4, args.total // 64))
        rows.append({"kind": "dataloader", "task": "inversion", "resolution": 64, "workers": workers,
                     "img_per_s": rate})
        print(f"{workers:>8} {rate:>8.0f}", flush=True)
    print(f"results written to {write_results('synthfaces', {'machine': info, 'rows': rows})}")


if __name__ == "__main__":
    main()
