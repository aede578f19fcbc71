"""Figures for an encoder's model card, on held-out rendered synthfaces (seeds ≥ 10,000,000, never trained on).

    report = evaluate_encoder("runs/psp/model", task="inversion", n=500)
    print(report_markdown(report))

* MSE (and PSNR) of the output against the task's target, images in [-1, 1];
* a perceptual distance, named (LPIPS with the user's weights, else the domain network's distance);
* the domain network's identity similarity of output and target, named;
* where the codes lie (`latent_statistics`): the spread of the W+ rows around their mean, the distance to w_avg and
  to the nearest of 5,000 mapped w, each next to the same figure for mapped w (e4e's point: codes near W edit well);
* attribute accuracy: the domain network's ``predict`` on the outputs against the target faces' true attributes,
  scored as `stylebridge.train.domain_net.evaluate_domain_network` does (categories: exact; continuous: within
  ±0.1), next to the same network's accuracy on the targets themselves (what a perfect output would score);
* seconds per image of ``encode`` and of encode + generate, fp32 and bf16, at batch 1 and 8.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from stylebridge.core.device import pick_device
from stylebridge.core.seeds import HELD_OUT_SEED
from stylebridge.data import synthfaces as sf
from stylebridge.data.tasks import SynthFacesPairs, parse_task
from stylebridge.models.domain import DomainNetwork
from stylebridge.models.encoder_base import StyleEncoderModel

__all__ = ["AGREEMENT", "appearance_agreement", "attribute_scores", "evaluate_encoder", "latent_statistics",
           "predict_attributes",
           "report_markdown", "time_encoder"]


def attribute_scores(pred: dict[str, torch.Tensor], truth: dict[str, torch.Tensor]) -> dict[str, float]:
    """Per-attribute accuracy of ``DomainNetwork.predict`` output against true synthfaces attributes: categories
    exact, continuous values within ±0.1 (the domain network's own evaluation rule)."""
    out = {}
    for a in sf.ATTRIBUTES:
        p, t = pred[a.name].cpu(), truth[a.name].cpu()
        hit = (p == t) if a.is_categorical else ((p - t).abs() < 0.1)
        out[a.name] = float(hit.float().mean())
    return out


@torch.no_grad()
def predict_attributes(judge: DomainNetwork, images: torch.Tensor, batch: int = 250) -> dict[str, torch.Tensor]:
    """``judge.predict`` over ``images`` [N, 3, R, R] in chunks of ``batch`` on the judge's device → per attribute
    [N] on the CPU (continuous values in [0, 1], category indices)."""
    out: dict[str, list[torch.Tensor]] = {}
    dev = next(judge.parameters()).device
    for s in range(0, len(images), batch):
        for k, v in judge.predict(images[s : s + batch].to(dev)).items():
            out.setdefault(k, []).append(v.cpu())
    return {k: torch.cat(v) for k, v in out.items()}


AGREEMENT = ("hair_color", "hair_style", "glasses", "beard", "skin_tone")


def appearance_agreement(pred: dict[str, torch.Tensor], truth: dict[str, torch.Tensor]) -> dict[str, float | None]:
    """How much of a face's appearance an output keeps (issue 19's out-of-domain reading): the share of faces whose
    hair colour, hair style and beard category, glasses presence (none vs any) and skin tone tercile (light /
    medium / dark: [0, 1/3), [1/3, 2/3), [2/3, 1]) the domain network reads on the output as they are in truth, and
    ``yaw_corr``, the Pearson correlation of read and true yaw. pred: ``DomainNetwork.predict`` output [N] per
    attribute; truth: synthfaces attributes [N]."""
    def tercile(t: torch.Tensor) -> torch.Tensor:
        return (t.float() * 3).floor().clamp(0, 2)

    out: dict[str, float] = {}
    for name in ("hair_color", "hair_style", "beard"):
        out[name] = float((pred[name].cpu() == truth[name].cpu()).float().mean())
    out["glasses"] = float(((pred["glasses"].cpu() > 0) == (truth["glasses"].cpu() > 0)).float().mean())
    out["skin_tone"] = float((tercile(pred["skin_tone"].cpu()) == tercile(truth["skin_tone"].cpu())).float().mean())
    p, t = pred["yaw"].cpu().double(), truth["yaw"].cpu().double()
    pc, tc = p - p.mean(), t - t.mean()
    denom = float(pc.norm() * tc.norm())
    out["yaw_corr"] = float((pc * tc).sum()) / denom if denom > 0 else None  # None: constant yaw (JSON-safe)
    return out


def _best_time(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    best = math.inf
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


@torch.no_grad()
def time_encoder(model: StyleEncoderModel, batches: Sequence[int] = (1, 8),
                 precisions: Sequence[str] = ("fp32", "bf16"), repeats: int = 3,
                 device: str | torch.device = "cpu") -> list[dict[str, Any]]:
    """Seconds per image of ``encode`` and of ``encode`` + ``decode`` (full resolution, stored noise) on random
    inputs of the encoder's shape: one row per (precision, batch)."""
    dev = torch.device(device)
    model = model.to(dev).eval()
    c = model.config.encoder
    rows = []
    for prec in precisions:
        for b in batches:
            x = torch.rand(b, model.input_channels, c.input_size, c.input_size, device=dev) * 2 - 1
            ctx = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=prec == "bf16")

            def enc(x: torch.Tensor = x, ctx: Any = ctx) -> torch.Tensor:
                with ctx:
                    return model.encode(x)

            def full(x: torch.Tensor = x, ctx: Any = ctx) -> torch.Tensor:
                with ctx:
                    return model.decode(model.encode(x))

            rows.append({"precision": prec, "batch": b, "encode_s_per_image": _best_time(enc, repeats) / b,
                         "encode_generate_s_per_image": _best_time(full, repeats) / b})
    return rows


@torch.no_grad()
def evaluate_encoder(model: StyleEncoderModel | str | os.PathLike, task: str = "inversion", n: int = 500,
                     batch: int = 50, perceptual: str = "auto", lpips_backbone: str | None = None,
                     lpips_heads: str | None = None, domain: str = "synthfaces-domain", precision: str = "fp32",
                     device: str = "auto", timing: bool = True, timing_repeats: int = 3,
                     progress: bool = True) -> dict[str, Any]:
    """Model-card figures of a pSp/e4e model on ``n`` held-out synthfaces of ``task`` (module docstring).

    Returns a JSON-able dict; every network-based figure carries the name of its network.
    """
    from stylebridge.formats.loading import load
    from stylebridge.losses.perceptual import perceptual_distance
    from stylebridge.pipelines.encoder import load_encoder

    m = load_encoder(model)
    dev = pick_device(device)
    m = m.to(dev).eval()
    kind = parse_task(task)[0]
    side = m.config.encoder.input_size
    ds = SynthFacesPairs(task, side, length=n, seed=HELD_OUT_SEED)
    if ds.input_channels != m.input_channels:
        raise ValueError(f"task {task!r} gives {ds.input_channels}-channel inputs; the encoder takes "
                         f"{m.input_channels}")
    net = load(domain, expect=DomainNetwork)
    net = net.to(dev).eval()
    dist = perceptual_distance(perceptual, lpips_backbone, lpips_heads, domain).to(dev)
    resize = side if side != m.decoder.resolution else False
    sq_err, psnr, perc, ident, codes = [], [], [], [], []
    preds_out: dict[str, list[torch.Tensor]] = {}
    preds_tgt: dict[str, list[torch.Tensor]] = {}
    truth: dict[str, list[torch.Tensor]] = {}
    ac = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    for start in tqdm(range(0, n, batch), desc="evaluate", unit="batch", disable=not progress):
        items = ds.__getitems__(list(range(start, min(n, start + batch))))
        x = torch.stack([i[0] for i in items]).to(dev)
        y = torch.stack([i[1] for i in items]).to(dev)
        seeds = [int(i[2]["seed"]) for i in items]
        with ac:
            w_plus = m.encode(x)
            out = m.decode(w_plus, resize=resize, noise_mode="const").float()
        codes.append(w_plus.float().cpu())
        err = (out - y).square().flatten(1).mean(1)
        sq_err.append(err.cpu())
        psnr.append((10 * torch.log10(4.0 / err.clamp_min(1e-12))).cpu())  # peak-to-peak 2 for [-1, 1]
        perc.append(dist(out, y).cpu())
        ident.append(net.similarity(out, y).cpu())
        attrs = sf.sample_attributes(seeds)
        if kind == "frontalize":
            attrs = sf.edit(attrs, yaw=0.5)
        for store, images in ((preds_out, out), (preds_tgt, y)):
            for k, v in net.predict(images).items():
                store.setdefault(k, []).append(v.cpu())
        for a in sf.ATTRIBUTES:
            truth.setdefault(a.name, []).append(attrs[a.name])
    cat = {k: torch.cat(v) for k, v in truth.items()}
    acc_out = attribute_scores({k: torch.cat(v) for k, v in preds_out.items()}, cat)
    acc_tgt = attribute_scores({k: torch.cat(v) for k, v in preds_tgt.items()}, cat)
    report: dict[str, Any] = {
        "task": task, "n": n, "seeds": [HELD_OUT_SEED, HELD_OUT_SEED + n - 1], "resolution": side,
        "precision": precision,
        "mse": float(torch.cat(sq_err).mean()), "psnr_db": float(torch.cat(psnr).mean()),
        "perceptual": {"network": dist.name, "mean": float(torch.cat(perc).mean())},
        "identity_similarity": {"network": f"{domain} similarity (domain network trained by stylebridge)",
                                "mean": float(torch.cat(ident).mean())},
        "attributes": {"network": f"{domain} predict (domain network trained by stylebridge)",
                       "accuracy_mean": sum(acc_out.values()) / len(acc_out),
                       "accuracy_mean_on_targets": sum(acc_tgt.values()) / len(acc_tgt),
                       "per_attribute": {k: {"output": acc_out[k], "target": acc_tgt[k]} for k in acc_out}},
        "latents": latent_statistics(torch.cat(codes), m.decoder),
    }
    if timing:
        report["timing"] = {"device": str(dev), "threads": torch.get_num_threads(),
                            "rows": time_encoder(m, repeats=timing_repeats, device=dev)}
    return report


@torch.no_grad()
def latent_statistics(w_plus: torch.Tensor, G: Any, n_real: int = 5000, seed: int = 1) -> dict[str, float]:
    """Where codes [N, num_ws, w_dim] lie relative to the generator's W: ``row_spread`` (mean distance of a code's
    rows to their mean; 0 for a w repeated), ``to_w_avg`` (mean row distance to w_avg) and ``to_nearest_w`` (mean
    row distance to the nearest of ``n_real`` mapped w), with ``*_real`` the same for mapped w (nearest among the
    other mapped w)."""
    dev = G.w_avg.device
    z = torch.randn(n_real + 500, G.z_dim, generator=torch.Generator().manual_seed(seed))
    real = G.map(z.to(dev)).float().cpu()
    ref, probe = real[:n_real], real[n_real:]
    w_avg = G.w_avg.float().cpu()
    rows = w_plus.float().cpu().reshape(-1, w_plus.shape[-1])
    nearest = torch.cat([torch.cdist(r, ref).min(1).values for r in rows.split(4096)])
    return {"row_spread": float((w_plus - w_plus.mean(1, keepdim=True)).norm(dim=-1).mean()),
            "to_w_avg": float((rows - w_avg).norm(dim=-1).mean()),
            "to_w_avg_real": float((probe - w_avg).norm(dim=-1).mean()),
            "to_nearest_w": float(nearest.mean()),
            "to_nearest_w_real": float(torch.cdist(probe, ref).min(1).values.mean()),
            "n_real": n_real}


def report_markdown(report: dict[str, Any]) -> str:
    """The model-card section for an `evaluate_encoder` report."""
    lines = [
        f"Held-out synthfaces: {report['n']} faces (seeds {report['seeds'][0]:,}–{report['seeds'][1]:,}), task "
        f"`{report['task']}`, {report['resolution']} px, {report['precision']}.",
        "",
        "| metric | value | network |",
        "|---|---|---|",
        f"| MSE (images in [-1, 1]) | {report['mse']:.4f} | – |",
        f"| PSNR | {report['psnr_db']:.2f} dB | – |",
        f"| perceptual distance | {report['perceptual']['mean']:.4f} | {report['perceptual']['network']} |",
        f"| identity similarity | {report['identity_similarity']['mean']:.3f} | "
        f"{report['identity_similarity']['network']} |",
        f"| attribute accuracy (mean of {len(report['attributes']['per_attribute'])}) | "
        f"{report['attributes']['accuracy_mean']:.3f} (targets: "
        f"{report['attributes']['accuracy_mean_on_targets']:.3f}) | {report['attributes']['network']} |",
    ]
    if "latents" in report:
        lat = report["latents"]
        lines += ["", f"Codes (W+ of {report['n']} faces) against the generator's W ({lat['n_real']:,} mapped w): row "
                  f"spread {lat['row_spread']:.2f} (a w repeated: 0); distance to w_avg {lat['to_w_avg']:.2f} "
                  f"(mapped w: {lat['to_w_avg_real']:.2f}); to the nearest mapped w {lat['to_nearest_w']:.2f} "
                  f"(mapped w: {lat['to_nearest_w_real']:.2f}). Codes near W edit like generated faces."]
    if "timing" in report:
        t = report["timing"]
        lines += ["", f"Speed ({t['device']}, {t['threads']} threads):", "",
                  "| precision | batch | encode s/img | encode + generate s/img |", "|---|---|---|---|"]
        lines += [f"| {r['precision']} | {r['batch']} | {r['encode_s_per_image']:.4f} | "
                  f"{r['encode_generate_s_per_image']:.4f} |" for r in t["rows"]]
    return "\n".join(lines) + "\n"
