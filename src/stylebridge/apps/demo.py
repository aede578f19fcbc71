"""The project's demo: samples, a truncation sweep and style mixing from the best generator available,
plus a native-format round trip. Writes PNGs and ``report.json`` into one folder."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from stylebridge.core import registry
from stylebridge.core.device import autocast, pick_device, resolve_precision
from stylebridge.core.imageio import make_grid, save_grid, save_image
from stylebridge.core.native import read_native_config
from stylebridge.formats.loading import load
from stylebridge.models.stylegan2 import StyleGAN2Config, StyleGAN2Generator
from stylebridge.pipelines.generate import generate_images, seed_to_z

__all__ = ["default_generator", "run_demo"]

PREFERRED = ("synthfaces-64",)


def default_generator() -> tuple[StyleGAN2Generator, str]:
    """The best generator available: a shipped model, else a randomly initialised 64-px generator."""
    for name in PREFERRED + tuple(registry.names()):
        path = registry.resolve(name)
        # Only generators are candidates: read the type from config.json instead of loading every model.
        if path is not None and read_native_config(path)["model_type"] == StyleGAN2Generator.model_type:
            return load(path), f"shipped model {name}"
    torch.manual_seed(0)
    G = StyleGAN2Generator(StyleGAN2Config(resolution=64, z_dim=128, w_dim=128, mapping_layers=4,
                                           channel_divisor=8)).eval()
    G.compute_w_avg(2000)
    return G, "randomly initialised 64-px generator (no trained model is shipped yet: images are noise-like)"


@torch.no_grad()
def run_demo(out: Path, model: str | None = None, device: str = "auto", precision: str = "auto") -> dict:
    """Write samples.png, truncation.png, mixing.png, the model in native format and report.json to ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    dev = pick_device(device)
    if model is None:
        G, source = default_generator()
    else:
        G, source = load(model, expect=StyleGAN2Generator), str(model)
    G = G.to(dev).eval()
    prec = resolve_precision(precision, dev)
    print(f"demo: {source}; {G.resolution} px, device {dev}, precision {prec}")

    t0 = time.perf_counter()
    seeds = list(range(16))
    samples = generate_images(G, seeds, truncation_psi=0.7, precision=prec)
    seconds_per_image = (time.perf_counter() - t0) / len(seeds)
    save_grid(samples, out / "samples.png", nrow=8)

    psis = [1.0, 0.8, 0.6, 0.4, 0.2, 0.0]
    rows = [generate_images(G, seeds[:4], truncation_psi=psi, precision=prec, progress=False) for psi in psis]
    sweep = torch.stack(rows, dim=1).flatten(0, 1)  # row per seed, column per psi
    save_grid(sweep, out / "truncation.png", nrow=len(psis))

    # Style mixing: coarse styles (rows < crossover) from the row seed, the rest from the column seed.
    a, b = seed_to_z([0, 1, 2, 3], G.z_dim).to(dev), seed_to_z([4, 5, 6, 7], G.z_dim).to(dev)
    wa, wb = G.map(a, 0.7), G.map(b, 0.7)
    crossover = min(4, G.num_ws)
    with autocast(dev, prec):
        top = G.synthesize(wb, noise_mode="const").float()
        cells = [torch.cat([torch.full_like(top[:1], 1.0), top])]
        left = G.synthesize(wa, noise_mode="const").float()
        for i in range(len(a)):
            mixed = G.synthesize(G.mix(wa[i : i + 1].expand(len(b), -1), wb, crossover), noise_mode="const").float()
            cells.append(torch.cat([left[i : i + 1], mixed]))
    save_image(make_grid(torch.cat(cells).cpu(), nrow=len(b) + 1), out / "mixing.png")

    native = out / "model"
    G.cpu().save_pretrained(native, metadata={"demo_source": source})
    reloaded = StyleGAN2Generator.from_pretrained(native)
    w = G.map(seed_to_z([0], G.z_dim))
    round_trip = float((reloaded.synthesize(w, noise_mode="const") - G.synthesize(w, noise_mode="const")).abs().max())

    report = {"source": source, "resolution": G.resolution, "device": str(dev), "precision": prec,
              "seconds_per_image": round(seconds_per_image, 4), "native_round_trip_max_abs_diff": round_trip,
              "files": ["samples.png", "truncation.png", "mixing.png", "model/"]}
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"demo: wrote {', '.join(report['files'])} and report.json to {out}/ "
          f"({seconds_per_image * 1000:.0f} ms/image; native round trip max diff {round_trip:.1e})")
    return report
