"""Optimisation-inversion speed: steps/s of `OptimizeInverter` (NVlabs' projector recipe) beside a re-implementation
of rosinality's ``projector.py`` code path, in one run.

Rows: synthfaces-64 (the shipped generator, 64 px) and config-f at 256 px (`StyleGAN2Config(resolution=256)`, default
channels, random weights with noise strengths set to 0.1 so both paths optimise and regularise noise maps), batch 1:

* ``ours fp32`` / ``ours bf16``: `OptimizeInverter` in W+ (bf16: the generator under bf16 autocast);
* ``reference fp32``: rosinality's step — W+ code + noise maps in Adam, ``g_ema([latent_n], input_is_latent=True,
  noise=noises)`` with per-sample grouped modulated convs (``modconv="grouped"``), NCHW (``channels_last=False``) and
  the zero-insertion ``upfirdn2d`` (`ops.upfirdn2d_ref`, its CPU fallback's algorithm), mean-pool to 256 px when larger,
  perceptual + MSE + noise regulariser, backward to w and the noise, Adam step, noise renormalisation.

Both paths use the same perceptual network (the synthfaces domain network; rosinality's LPIPS-VGG16 costs more, so
this compares the generator's forward + backward, which dominates at 256 px). Figures are the mean step time after
warm-up steps; shared cloud CPUs vary from minute to minute, hence the side-by-side run.

Measured (AMD EPYC without AMX, 2 threads shared, torch 2.13 CPU; 2 warm-up + 5 timed steps): 64 px ours fp32
0.073 s/step vs reference 0.099 (1.35×); 256 px ours fp32 3.74 s/step vs reference 5.43 (1.45×) — the issue's
3× target is not met. bf16 is emulated on this CPU: 0.42 s/step at 64 px, 93 s/step at 256 px.
On an AMD EPYC with AVX512-BF16 (2 threads, 2026-12-02; 1 warm-up + 3 timed steps): 64 px ours fp32 0.027 s/step
vs reference 0.045 (1.68×), bf16 0.026 (1.77×); 256 px ours fp32 1.11 vs 3.09 (2.78×), bf16 0.52 (6.0×) — fp32
just short of 3×, bf16 past it.

    python benchmarks/invert.py                         # 64 and 256 px, 2 warm-up + 5 timed steps
    python benchmarks/invert.py --res 256 --steps 10 --threads 2

``--curve``: quality against seconds instead — pSp, e4e, and optimisation from ``w_avg`` and from e4e at several
step counts, each scored by the editing evaluation (`stylebridge.evaluate.editing`: reconstruction distance and
distance to the ground-truth edit, averaged over the shipped directions) on ``--faces`` held-out faces, beside its
seconds per image; writes a plot with ``--plot``::

    python benchmarks/invert.py --curve --faces 50 --curve-steps 50 100 200 500 1000 --plot docs/editing/curve.png

``--pti-restyle``: PTI and ReStyle speed at 64 px (synthfaces-64), fp32 and bf16:

* PTI seconds per image, pivot (PTI's: projector in W, 450 steps) + tuning (350 steps), one image at a time; beside
  it the reference's tuning path — PTI's ``coach``: a full copy of the generator per image, every synthesis
  parameter in Adam (lr 3e-4), batch 1 — timed per step on the same image;
* batched tuning per image: N images tuned together, each its own low-rank delta (per-sample weights), and the
  shared mode (one delta for the N), seconds per image;
* ReStyle ms per image per iteration (batch 1 and 8);
* training step time: ReStyle-e4e at 1 … 5 iterations per step against pSp's step (the shipped configs, batch 8).

    python benchmarks/invert.py --pti-restyle --threads 2

Measured 2026-12-02 (AMD EPYC with AVX512-BF16, 2 threads): PTI on one image, pivot 450 + tuning 350 steps, 21.6 s
fp32 / 21.7 s bf16 (pivot 10.8 s + tuning 10.7 s; at 64 px bf16 does not pay); one tuning step at batch 1 0.031 s
vs the reference's full-copy step 0.033 s (1.08×); tuning 8 images together 0.0129 s per image per step with a
delta each (2.5× the reference's per-image step) and 0.0099 s with one shared delta; ReStyle 16.7 ms per image per
iteration at batch 1, 4.7 ms at batch 8 (fp32; bf16 4.0 ms at batch 8); training step (batch 8, bf16) pSp 0.158 s,
ReStyle-e4e 0.198 / 0.524 / 0.875 s at 1 / 3 / 5 iterations (1.25× / 3.3× / 5.5× pSp; random counts in [1, 5]
average 3 iterations, where the official fixed 5 cost 5.5×).
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine_info, write_results
from generator import reference_path
from stylebridge.data import synthfaces as sf
from stylebridge.formats.loading import load_generator
from stylebridge.invert import OptimizeInverter
from stylebridge.invert.optimize import noise_regularization, projector_lr, w_noise_scale
from stylebridge.losses.perceptual import perceptual_distance
from stylebridge.models.stylegan2 import StyleGAN2Config, StyleGAN2Generator


def generator_for(res: int) -> StyleGAN2Generator:
    if res == 64:
        return load_generator("synthfaces-64")
    torch.manual_seed(0)
    G = StyleGAN2Generator(StyleGAN2Config(resolution=res)).eval().requires_grad_(False)
    with torch.no_grad():
        for conv in (G.conv1, *G.convs):
            conv.noise.weight.fill_(0.1)
    G.compute_w_avg(2000)
    return G


def ours(G: StyleGAN2Generator, target: torch.Tensor, perceptual, precision: str, warmup: int,
         steps: int) -> tuple[float, float]:
    """(seconds per step after warm-up, final loss)."""
    inv = OptimizeInverter(G, steps=warmup + steps, precision=precision, perceptual=perceptual, w_avg_samples=2000)
    res = inv.invert(target)
    return float(res.extras["step_seconds"][warmup:].mean()), float(res.extras["loss"][0])


def reference(G: StyleGAN2Generator, target: torch.Tensor, perceptual, warmup: int, steps: int,
              w_std: float) -> tuple[float, float]:
    """rosinality's projector step on our generator with the reference's op sequence."""
    total = warmup + steps
    latent = G.w_avg.detach().clone()[None, None].repeat(1, G.num_ws, 1).requires_grad_(True)
    noises = [n.detach().clone().requires_grad_(True) for n in G.make_noise(1, torch.Generator().manual_seed(0))]
    opt = torch.optim.Adam([latent, *noises], lr=0.1)
    times = []
    with reference_path():
        for i in range(total):
            t0 = time.perf_counter()
            t = i / total
            opt.param_groups[0]["lr"] = projector_lr(t)
            latent_n = latent + torch.randn_like(latent) * w_noise_scale(t, w_std)
            img = G.synthesize(latent_n, noise=noises, modconv="grouped", channels_last=False)
            if img.shape[-1] > 256:  # rosinality: reshape-mean to 256
                f = img.shape[-1] // 256
                img = img.reshape(1, 3, 256, f, 256, f).mean([3, 5])
            p_loss = perceptual(img, target).sum()
            n_loss = noise_regularization(noises).sum()
            mse = F.mse_loss(img, target)
            loss = p_loss + 1e5 * n_loss + mse
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():  # noise_normalize_
                for n in noises:
                    mean, std = n.mean(), n.std()
                    n.data.add_(-mean).div_(std)
            times.append(time.perf_counter() - t0)
    return sum(times[warmup:]) / steps, float(loss.detach())


def curve(args: argparse.Namespace) -> None:
    """Distance to the ground-truth edit (and reconstruction) against seconds per image, per inverter setting."""
    from stylebridge.evaluate.editing import run_editing_evaluation
    from stylebridge.invert import make_inverter
    from stylebridge.invert.editing import shipped_directions

    inverters = [make_inverter("psp"), make_inverter("e4e")]
    for steps in args.curve_steps:
        for kind in ("optimize", "optimize-e4e"):
            inv = make_inverter(kind, steps=steps, precision=args.curve_precision)
            inv.name = f"{kind}@{steps}"  # one row per setting in the report
            inverters.append(inv)
    directions = shipped_directions("synthfaces-64")
    if not directions:
        raise SystemExit("no shipped synthfaces-64 directions")
    result = run_editing_evaluation(inverters, directions, n=args.faces, batch=args.faces, progress=True)
    rep = result.report
    rows = []
    for name, info in rep["inverters"].items():
        cells = list(rep["results"][name].values())
        rows.append({"inverter": name, "s_per_image": info["s_per_image"], "recon_dist": info["recon_dist"],
                     "dist_gt": sum(c["dist_gt"] for c in cells) / len(cells),
                     "success": sum(c["success"] for c in cells) / len(cells),
                     "kept": sum(c["kept"] for c in cells) / len(cells)})
    no_edit = sum(r["no edit"]["dist_gt"] for r in rep["reference"].values()) / len(rep["reference"])
    print(f"\n{'inverter':<20} {'s/img':>8} {'recon dist':>11} {'dist to GT':>11} {'success':>8} {'kept':>6}")
    for r in rows:
        print(f"{r['inverter']:<20} {r['s_per_image']:>8.3f} {r['recon_dist']:>11.4f} {r['dist_gt']:>11.4f} "
              f"{r['success']:>8.3f} {r['kept']:>6.3f}")
    print(f"{'no edit':<20} {'':>8} {'':>11} {no_edit:>11.4f}")
    path = write_results("invert_curve", {"machine": machine_info(), "faces": args.faces,
                                          "precision": args.curve_precision, "rows": rows, "no_edit": no_edit,
                                          "directions": directions})
    print(f"\nwrote {path}")
    if args.plot:
        _plot_curve(rows, no_edit, args, Path(args.plot))
        print(f"wrote {args.plot}")


def _plot_curve(rows: list[dict], no_edit: float, args: argparse.Namespace, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, title in ((axes[0], "dist_gt", "distance to the ground-truth edit"),
                           (axes[1], "recon_dist", "reconstruction distance")):
        for j, family in enumerate(("optimize@", "optimize-e4e@")):
            pts = sorted((r["s_per_image"], r[key], r["inverter"]) for r in rows if r["inverter"].startswith(family))
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color=f"C{j + 2}", label=family.rstrip("@"))
            for x, y, name in pts:
                ax.annotate(name.split("@")[1], (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        for j, name in enumerate(("psp", "e4e")):
            r = next(r for r in rows if r["inverter"] == name)
            ax.scatter([r["s_per_image"]], [r[key]], s=70, color=f"C{j}", marker="s", label=name, zorder=3)
        if key == "dist_gt":
            ax.axhline(no_edit, color="0.5", ls="--", lw=1, label="no edit")
        ax.set_xscale("log")
        ax.set_xlabel("seconds per image (2 CPU cores; optimisation: steps annotated)")
        ax.set_title(title + " [synthfaces-domain]", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"quality vs time, {args.faces} held-out faces, mean over the shipped directions "
                 f"({args.curve_precision} generator)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _time_steps(fn, warmup: int, steps: int) -> float:
    for _ in range(warmup):
        fn()
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - t0) / steps


def reference_pti_step_time(G: StyleGAN2Generator, w: torch.Tensor, target: torch.Tensor, perceptual,
                            warmup: int = 2, steps: int = 5) -> float:
    """PTI's coach: a deep copy of the generator, all synthesis parameters in Adam, L2 + perceptual, batch 1."""
    G = copy.deepcopy(G).requires_grad_(True).train()
    params = [p for n, p in G.named_parameters() if not n.startswith("style.")]
    opt = torch.optim.Adam(params, lr=3e-4)

    def step() -> None:
        img = G.synthesize(w, noise_mode="const")
        loss = F.mse_loss(img, target) + perceptual(img, target).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()

    return _time_steps(step, warmup, steps)


def pti_restyle(args: argparse.Namespace) -> None:
    from stylebridge.invert import PTIInverter, make_inverter
    from stylebridge.train.encoder import EncoderTask, load_encoder_config

    info = machine_info()
    print(f"# {info['cpu']}, {info['threads']} threads, torch {info['torch']}, AMX {info['amx']}, "
          f"AVX512-BF16 {info['avx512_bf16']}")
    G = load_generator("synthfaces-64")
    perceptual = perceptual_distance()
    faces = sf.render_seeds(list(range(10_000_000, 10_000_008)), 64, outputs=("image",))["image"]
    rows: list[dict] = []
    for precision in args.precision:
        inv = PTIInverter(G, steps=350, precision=precision, perceptual=perceptual)
        res = inv.invert(faces[:1])
        e = res.extras
        rows.append({"what": f"PTI 1 image, pivot 450 + tuning 350 steps, {precision}", "s_per_image": e["seconds"],
                     "pivot_s": e["pivot_seconds"], "tune_s": e["tune_seconds"],
                     "dist_pivot": float(e["dist_pivot"].mean()), "dist": float(e["dist"].mean())})
        pivot = res.w_plus
        tune_step = e["tune_seconds"] / e["steps"]
        ref = reference_pti_step_time(G, pivot, faces[:1], perceptual)
        rows.append({"what": f"tuning step, 1 image, {precision}: ours (rank 8) vs reference fp32 (full copy)",
                     "s_per_step": tune_step, "reference_s_per_step": ref, "vs_reference": ref / tune_step})
        starts = make_inverter("e4e").invert(faces).w_plus
        for shared in (False, True):
            r = PTIInverter(G, steps=50, precision=precision, perceptual=perceptual, shared=shared).invert(
                faces, start=starts)
            rows.append({"what": f"tuning 8 images together ({'one shared delta' if shared else 'a delta each'}), "
                                 f"{precision}", "s_per_step_per_image": r.extras["tune_seconds"] / 50 / 8,
                         "dist_start": float(r.extras["dist_pivot"].mean()), "dist_50": float(r.extras["dist"].mean())})
    restyle = make_inverter("restyle").encoder
    for precision in args.precision:
        for batch in (1, 8):
            x = faces[:batch]
            with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16"):
                s = _time_steps(lambda x=x: restyle.iterate(x, 5), 1, 3)
            rows.append({"what": f"ReStyle, batch {batch}, {precision}", "ms_per_image_per_iter": s / batch / 5 * 1e3})
    cfg_dir = Path(__file__).resolve().parents[1] / "configs" / "encoder"
    step_s = {}
    for name, overrides in (("pSp", ("synthfaces-64-psp-inversion.yaml", [])),
                            *((f"ReStyle-e4e {k} iters", ("synthfaces-64-restyle-e4e-inversion.yaml",
                                                          ["optim.random_iters=false", f"model.n_iters={k}",
                                                           "model.init_from=null"])) for k in (1, 3, 5))):
        cfg = load_encoder_config(cfg_dir / overrides[0], overrides[1])
        task = EncoderTask(cfg, progress=False)
        task.setup()
        counter = iter(range(10_000))
        step_s[name] = _time_steps(lambda task=task, c=counter: task.train_step(next(c)), 2, 5)
        rows.append({"what": f"training step (batch 8, bf16): {name}", "s_per_step": step_s[name],
                     "vs_psp": step_s[name] / step_s["pSp"]})
    print()
    for r in rows:
        print(r["what"] + ": " + ", ".join(f"{k} {v:.4g}" for k, v in r.items() if k != "what"))
    path = write_results("invert_pti_restyle", {"machine": info, "rows": rows})
    print(f"\nwrote {path}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--curve", action="store_true", help="quality against seconds per image instead of step speed")
    p.add_argument("--pti-restyle", action="store_true", help="PTI and ReStyle speed (see the docstring)")
    p.add_argument("--faces", type=int, default=50, help="--curve: held-out faces")
    p.add_argument("--curve-steps", type=int, nargs="+", default=[50, 100, 200, 500, 1000])
    p.add_argument("--curve-precision", default="bf16", choices=["fp32", "bf16"])
    p.add_argument("--plot", default=None, help="--curve: write the plot here (PNG)")
    p.add_argument("--res", type=int, nargs="+", default=[64, 256])
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.curve:
        curve(args)
        return
    if args.pti_restyle:
        pti_restyle(args)
        return
    info = machine_info()
    print(f"# {info['cpu']}, {info['threads']} threads, torch {info['torch']}, AMX {info['amx']}")
    perceptual = perceptual_distance()
    rows = []
    for res in args.res:
        G = generator_for(res)
        target = sf.render_seeds([10_000_000], res, outputs=("image",))["image"]
        w_std = OptimizeInverter(G, steps=1, perceptual=perceptual, w_avg_samples=2000).w_std
        ref_s, _ = reference(copy.deepcopy(G), target, perceptual, args.warmup, args.steps, w_std)
        for precision in args.precision:
            s, loss = ours(G, target, perceptual, precision, args.warmup, args.steps)
            rows.append({"res": res, "path": f"ours {precision}", "s_per_step": s, "steps_per_s": 1 / s,
                         "vs_reference": ref_s / s, "final_loss": loss})
        rows.append({"res": res, "path": "reference fp32", "s_per_step": ref_s, "steps_per_s": 1 / ref_s,
                     "vs_reference": 1.0, "final_loss": math.nan})
    print(f"\n{'px':>4}  {'path':<15} {'s/step':>8} {'steps/s':>8} {'vs reference':>13}")
    for r in rows:
        print(f"{r['res']:>4}  {r['path']:<15} {r['s_per_step']:>8.3f} {r['steps_per_s']:>8.2f} "
              f"{r['vs_reference']:>12.2f}×")
    path = write_results("invert", {"machine": info, "warmup": args.warmup, "steps": args.steps, "rows": rows})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
