"""Ship a trained StyleMapGAN: export a run's model as a shipped model with its measured model card.

    python scripts/ship_stylemapgan.py --run runs/sm64 --name synthfaces-64-stylemapgan \
        --command "stylebridge train stylemapgan --config configs/stylemapgan/synthfaces-64.yaml --out runs/sm64" \
        [--reconstruction docs/stylemap/reconstruction] [--local-editing docs/stylemap/local-editing]

Writes ``src/stylebridge/weights/<name>/`` (config.json, model.safetensors in fp16, MODEL_CARD.md, eval.json) and
``docs/<name>.png``. Measured here, on this machine: FD[synthfaces-domain]@10k of random samples (with the
real-vs-real floor), reconstruction of 500 held-out faces through the shipped folder (fp32, bf16) and the run's own
fp32 weights, encode + generate and local-edit times at batch 1 and 8. ``--reconstruction`` / ``--local-editing``
name `stylebridge evaluate` report folders whose tables the card quotes (run them after the first pass: they load
the model by its shipped name). ``--skip-measure`` reuses eval.json (rewrite the card only).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import yaml

from stylebridge.core.atomic import atomic_write_text
from stylebridge.core.device import autocast
from stylebridge.core.imageio import save_grid
from stylebridge.core.seeds import HELD_OUT_SEED
from stylebridge.data import synthfaces as sf
from stylebridge.edit.stylemap import region_mask
from stylebridge.formats.loading import load
from stylebridge.metrics.frechet import fd_of_generator, feature_extractor
from stylebridge.models.domain import DomainNetwork
from stylebridge.models.stylemapgan import StyleMapGAN

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from ship_generator import _cpu, _duration  # noqa: E402

GRID_FACES = 8


@torch.no_grad()
def reconstruction(m: StyleMapGAN, n: int, precision: str = "fp32") -> dict[str, float]:
    """MSE, synthfaces-domain distance and identity of decode(encode(x)) on ``n`` held-out rendered faces."""
    net = load("synthfaces-domain", expect=DomainNetwork).eval()
    x = sf.render_seeds(list(range(HELD_OUT_SEED, HELD_OUT_SEED + n)), m.config.generator.resolution,
                        outputs=("image",))["image"]
    mse, dist, ident = [], [], []
    for s in range(0, n, 50):
        xb = x[s : s + 50]
        with autocast(torch.device("cpu"), precision):
            y = m.reconstruct(xb).float().clamp(-1, 1)
        mse.append((y - xb).square().flatten(1).mean(1))
        dist.append(net.distance(y, xb).float())
        ident.append(net.similarity(y, xb).float())
    return {"mse": float(torch.cat(mse).mean()), "distance": float(torch.cat(dist).mean()),
            "identity": float(torch.cat(ident).mean())}


@torch.no_grad()
def timings(m: StyleMapGAN, repeats: int = 5) -> list[dict]:
    """Milliseconds per image: encode + generate, and a local edit (encode source and reference, mix, decode)."""
    res = m.config.generator.resolution
    mask = region_mask("hair", res)
    rows = []
    for precision in ("fp32", "bf16"):
        for batch in (1, 8):
            x = torch.rand(batch, 3, res, res, generator=torch.Generator().manual_seed(0)) * 2 - 1
            r = x.flip(0)

            def recon(x: torch.Tensor = x) -> None:
                m.reconstruct(x)

            def edit(x: torch.Tensor = x, r: torch.Tensor = r) -> None:
                m.local_edit(m.encode(x), m.encode(r), mask)

            row = {"precision": precision, "batch": batch}
            for key, fn in (("encode_generate_ms", recon), ("local_edit_ms", edit)):
                with autocast(torch.device("cpu"), precision):
                    fn()
                    best = float("inf")
                    for _ in range(repeats):
                        t0 = time.perf_counter()
                        fn()
                        best = min(best, time.perf_counter() - t0)
                row[key] = 1000 * best / batch
            rows.append(row)
    return rows


@torch.no_grad()
def grid(m: StyleMapGAN, path: Path) -> None:
    """Rows: 8 held-out faces | reconstruction | hair from the next face (the face at its right, wrapping) |
    glasses from it | random samples (z from seed 0)."""
    res = m.config.generator.resolution
    x = sf.render_seeds(list(range(HELD_OUT_SEED, HELD_OUT_SEED + GRID_FACES)), res, outputs=("image",))["image"]
    sa = m.encode(x)
    sb = sa.roll(-1, 0)
    rows = [x, m.decode(sa), m.local_edit(sa, sb, region_mask("hair", res)),
            m.local_edit(sa, sb, region_mask("glasses", res)),
            m.generate(torch.randn(GRID_FACES, m.config.generator.latent_channels,
                                   generator=torch.Generator().manual_seed(0)))]
    save_grid(torch.cat([r.float() for r in rows]).clamp(-1, 1), path, nrow=GRID_FACES)


def _md_table(md: str, heading: str) -> str:
    """The first Markdown table after the line starting with ``heading`` in a report."""
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading))
    table: list[str] = []
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            table.append(line)
        elif table:
            break
    return "\n".join(table)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--name", default="synthfaces-64-stylemapgan")
    p.add_argument("--command", required=True, help="the training command, for the card")
    p.add_argument("--n", type=int, default=500, help="held-out faces")
    p.add_argument("--fd-n", type=int, default=10_000, help="images per set for the FD")
    p.add_argument("--reconstruction", type=Path, default=None, help="a `stylebridge evaluate` report folder")
    p.add_argument("--local-editing", type=Path, default=None, help="a `stylebridge evaluate --local-editing` folder")
    p.add_argument("--skip-measure", action="store_true", help="reuse eval.json; rewrite the card only")
    p.add_argument("--notes", default="", help="extra paragraphs for the card")
    args = p.parse_args()

    run_model = args.run / "model"
    out = ROOT / "src" / "stylebridge" / "weights" / args.name
    meta = json.loads((run_model / "config.json").read_text()).get("metadata", {})
    if args.skip_measure:
        ev = json.loads((out / "eval.json").read_text())
        shipped = load(out, expect=StyleMapGAN).eval()
    else:
        m = load(run_model, expect=StyleMapGAN).eval()
        m.save_pretrained(out, metadata={**meta, "name": args.name}, dtype=torch.float16)
        shipped = load(out, expect=StyleMapGAN).eval()
        t = time.perf_counter()
        fd = fd_of_generator(shipped, feature_extractor("synthfaces-domain"), "synthfaces", args.fd_n,
                             with_reference=True)
        fd_s = time.perf_counter() - t
        print(fd, f"in {fd_s:.0f} s")
        ev = {"fd": fd.to_dict(), "fd_seconds": fd_s,
              "reconstruction": {"shipped_fp32": reconstruction(shipped, args.n),
                                 "shipped_bf16": reconstruction(shipped, args.n, "bf16"),
                                 "run_weights_fp32": reconstruction(m, args.n)},
              "timing": timings(shipped), "threads": torch.get_num_threads()}
        atomic_write_text(out / "eval.json", json.dumps(ev, indent=2) + "\n")
        grid(shipped, ROOT / "docs" / f"{args.name}.png")
    size_mb = (out / "model.safetensors").stat().st_size / 2**20
    g = shipped.config.generator
    g_params = sum(t.numel() for t in shipped.generator.parameters())
    e_params = sum(t.numel() for t in shipped.encoder.parameters())
    log = [json.loads(line) for line in (args.run / "log.jsonl").read_text().splitlines() if line.strip()]
    last = [r for r in log if "x_rec" in r][-1]
    run_cfg = yaml.safe_load((args.run / "config.yaml").read_text())
    steps, seconds = int(meta.get("steps", last["step"])), float(meta.get("train_seconds", last["seconds"]))
    batch = run_cfg["optim"]["batch"]
    precision = "bf16 autocast, fp32 master weights" if run_cfg["optim"]["precision"] == "bf16" else "fp32"
    losses = ", ".join(f"{k} {last[k]:.4f}" for k in ("x_rec", "perceptual", "w_rec", "adv", "loss_d", "indomain_d",
                                                       "indomain_e") if k in last)
    fd = ev["fd"]
    arch = (f"an {g.mapping_layers}-layer mapping from z [N, {g.latent_channels}] to a stylemap "
            f"[N, {g.latent_channels}, {g.latent_size}, {g.latent_size}], a {g.resolution}-px generator "
            f"(channels {list(g.channels)}, "
            f"{g_params:,} parameters)")
    data = (f"synthfaces rendered on the fly at {g.resolution} px, {steps:,} steps × {batch} = {steps * batch:,} faces "
            "(training seeds)")
    L = run_cfg["loss"]
    loss_text = ("the official set: G non-saturating adversarial; E latent reconstruction MSE(s, E(G(s))); D logistic "
                 f"+ In-DomainGAN (reconstructions as fakes) + R1 γ {L['r1']} every {L['d_reg_every']}; E+G image "
                 f"MSE + perceptual ({meta.get('perceptual_network', 'synthfaces-domain')}) + In-DomainGAN; "
                 "EMA 0.999")
    rec = ev["reconstruction"]
    rec_rows = "\n".join(f"| {label} | {rec[k]['mse']:.4f} | {rec[k]['distance']:.4f} | {rec[k]['identity']:.3f} |"
                         for label, k in (("shipped folder, fp32", "shipped_fp32"),
                                          ("shipped folder, bf16 autocast", "shipped_bf16"),
                                          ("the run's fp32 weights", "run_weights_fp32")))
    time_rows = "\n".join(f"| {r['precision']} | {r['batch']} | {r['encode_generate_ms']:.1f} | "
                          f"{r['local_edit_ms']:.1f} | {1000 / r['local_edit_ms']:.0f} |" for r in ev["timing"])
    compare = ""
    if args.reconstruction is not None:
        md = (args.reconstruction / "report.md").read_text()
        cmd = json.loads((args.reconstruction / "report.json").read_text())["config"].get("command", "")
        compare += (f"\n### Beside the W+ inverters (`stylebridge evaluate`)\n\n```bash\n{cmd}\n```\n\n"
                    f"MSE:\n\n{_md_table(md, '## MSE')}\n\nsynthfaces-domain distance:\n\n"
                    f"{_md_table(md, '## distance')}\n\nms per image (fp32, batch 8):\n\n"
                    f"{_md_table(md, '## ms / image')}\n\n"
                    f"Full report: `{args.reconstruction}/report.md`.\n")
    if args.local_editing is not None:
        md = (args.local_editing / "report.md").read_text()
        cmd = json.loads((args.local_editing / "report.json").read_text())["config"].get("command", "")
        compare += (f"\n### Local editing against the ground truth\n\n```bash\n{cmd}\n```\n\nMean over the four "
                    f"regions (hair, glasses, beard, mouth; 500 held-out pairs each):\n\n"
                    f"{_md_table(md, '## Mean over regions')}\n\nPer region and the columns' meaning: "
                    f"`{args.local_editing}/report.md`.\n")
    card = f"""# {args.name} — StyleMapGAN for synthfaces-64 (encoder + generator with a spatial stylemap)

`stylebridge.load("{args.name}")` → StyleMapGAN: {arch} and its encoder ({e_params:,} parameters, image →
stylemap). `m.encode(x)`, `m.decode(s)`,
`m.local_edit(src, ref, mask)`, `m.generate(z)`; images [N, 3, {g.resolution}, {g.resolution}] in [-1, 1].

```bash
stylebridge stylemap edit --model {args.name} --images A_DIR --reference B.png --region hair --out OUT
stylebridge stylemap interpolate --model {args.name} --images A_DIR --reference B.png --out OUT
stylebridge translate --model {args.name} --images DIR --out OUT        # reconstruction
```

Files: {size_mb:.1f} MB — generator and encoder stored in fp16 (loaded as fp32; the reconstruction table shows the
storage changes no figure beyond noise).

![grid](../../../../docs/{args.name}.png)

`docs/{args.name}.png`: 8 held-out faces (seeds {HELD_OUT_SEED:,}+); rows input | reconstruction | hair from the
face to its right | glasses from it | random samples (z from seed 0).

## Training

| | |
|---|---|
| command | `{args.command}` |
| data | {data} |
| losses | {loss_text} |
| optimiser | Adam(lr={run_cfg['optim']['lr']}, betas (0, 0.99)) for G, E and D |
| wall time | **{_duration(seconds)}** ({seconds:,.0f} s, {steps / max(seconds, 1):.2f} steps/s) |
| final losses (step {last['step']}) | {losses} |
| machine | {_cpu()}, 2 threads, no GPU, torch {torch.__version__}, {precision} |

## Quality

Measured by `python scripts/ship_stylemapgan.py` on the same machine ({ev['threads']} threads).

Random samples: **{fd['metric']}@{fd['n'] // 1000}k = {fd['value']:.3f}** (ψ = 1; real vs real floor
{fd['reference']:.3f}; the synthfaces-64 StyleGAN2, same network and n: 5.92).

Reconstruction, {args.n} held-out rendered faces (seeds {HELD_OUT_SEED:,}+):

| same faces | MSE | synthfaces-domain distance | identity |
|---|---|---|---|
{rec_rows}
{compare}
Speed (CPU, {ev['threads']} threads; best of 5; a local edit = encode source and reference, mix at every level, decode):

| precision | batch | encode + generate ms/img | local edit ms/img | edits/s |
|---|---|---|---|---|
{time_rows}

Everything above: `eval.json` beside this card.

{args.notes}
"""
    atomic_write_text(out / "MODEL_CARD.md", card)
    print(f"wrote {out}/")


if __name__ == "__main__":
    main()
