"""Ship a trained pSp / e4e encoder: export a run's model as a shipped model with its measured model card.

    python scripts/ship_encoder.py --run runs/psp-inversion --name synthfaces-64-psp-inversion \
        --command "stylebridge train encoder --arch psp ... --out runs/psp-inversion"

Writes ``src/stylebridge/weights/<name>/`` (config.json, model.safetensors, MODEL_CARD.md, eval.json) and
``docs/<name>.png``. The encoder's weights are stored in fp16 (half the file; loading casts back to fp32) and
the frozen generator is not copied: the folder takes it from the shipped generator it was trained on, checked by
digest. Every figure in the card is measured here: the 500 held-out faces through the shipped folder in fp32 and
in bf16, the run's own fp32 weights (so the fp16 storage's effect is visible), and encode times.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import yaml

from stylebridge.core import registry
from stylebridge.core.atomic import atomic_write_text
from stylebridge.core.imageio import save_grid
from stylebridge.core.seeds import HELD_OUT_SEED
from stylebridge.data.tasks import SynthFacesPairs
from stylebridge.evaluate.encoder import evaluate_encoder, report_markdown
from stylebridge.models.e4e import E4E
from stylebridge.models.encoder_base import StyleEncoderModel, mix_latents
from stylebridge.models.restyle import ReStyle
from stylebridge.pipelines.encoder import default_latent_mask, input_preview, load_encoder

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from ship_generator import _cpu, _duration  # noqa: E402

GRID_FACES = 8


def _grid(m: StyleEncoderModel, task: str, out: Path, samples: int) -> None:
    """Rows: input | output (encode → decode) | target, then ``samples`` rows of multi-modal outputs (the fine rows
    mixed with random w, as `stylebridge translate --samples`); 8 held-out faces as columns."""
    side = m.config.encoder.input_size
    ds = SynthFacesPairs(task, side, length=GRID_FACES, seed=HELD_OUT_SEED)
    items = ds.__getitems__(list(range(GRID_FACES)))
    x, y = torch.stack([i[0] for i in items]), torch.stack([i[1] for i in items])
    with torch.no_grad():
        if isinstance(m, ReStyle):  # every iteration's reconstruction between input and target
            it = m.iterate(x)
            w_plus = it.w_plus[-1]
            save_grid(torch.cat([input_preview(x, side), *[im.float() for im in it.images], y]).clamp(-1, 1), out,
                      nrow=GRID_FACES)
            return
        w_plus = m.encode(x)
        rows = [input_preview(x, side), m.decode(w_plus, resize=False).float(), y]
        G = m.decoder
        for k in range(samples):
            w = G.map(torch.randn(GRID_FACES, G.z_dim, generator=torch.Generator().manual_seed(k)))
            rows.append(m.decode(mix_latents(w_plus, default_latent_mask(m.num_ws), w), resize=False).float())
    save_grid(torch.cat(rows).clamp(-1, 1), out, nrow=GRID_FACES)


def _iterations(m: ReStyle, task: str, n: int) -> list[dict]:
    """MSE and perceptual distance of every ReStyle iteration's reconstruction on ``n`` held-out faces (fp32)."""
    from stylebridge.losses.perceptual import perceptual_distance

    dist = perceptual_distance()
    side = m.config.encoder.input_size
    ds = SynthFacesPairs(task, side, length=n, seed=HELD_OUT_SEED)
    totals = [{"mse": 0.0, "perceptual": 0.0} for _ in range(m.config.n_iters)]
    for s in range(0, n, 50):
        items = ds.__getitems__(list(range(s, min(n, s + 50))))
        x, y = torch.stack([i[0] for i in items]), torch.stack([i[1] for i in items])
        with torch.no_grad():
            for t, im in zip(totals, m.iterate(x).images):
                t["mse"] += float((im.float() - y).square().mean(dim=(1, 2, 3)).sum())
                t["perceptual"] += float(dist(im.float(), y).sum())
    return [{k: v / n for k, v in t.items()} for t in totals]


def _row(label: str, r: dict) -> str:
    return f"| {label} | {r['mse']:.4f} | {r['perceptual']['mean']:.4f} | {r['attributes']['accuracy_mean']:.3f} |"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--command", required=True, help="the training command, for the card")
    p.add_argument("--title", required=True, help="one line for the card's heading, e.g. 'pSp inversion encoder'")
    p.add_argument("--n", type=int, default=500, help="held-out faces")
    p.add_argument("--samples", type=int, default=0, help="multi-modal rows in the grid (translation tasks)")
    p.add_argument("--notes", default="", help="extra paragraphs for the card (reading of the grid, caveats)")
    p.add_argument("--n-iters", type=int, default=None, help="ReStyle: the shipped model's iterations (config.n_iters)")
    args = p.parse_args()

    run_model = args.run / "model"
    m = load_encoder(run_model)
    if args.n_iters is not None:
        import dataclasses

        if not isinstance(m, ReStyle):
            raise SystemExit("--n-iters is for ReStyle models")
        m.config = dataclasses.replace(m.config, n_iters=args.n_iters)
    meta = json.loads((run_model / "config.json").read_text()).get("metadata", {})
    task, generator = meta["task"], meta["generator"]
    out = ROOT / "src" / "stylebridge" / "weights" / args.name
    shared = {"decoder.": generator} if registry.resolve(generator) is not None else None
    m.save_pretrained(out, metadata={**meta, "name": args.name}, dtype=torch.float16, shared=shared)
    shipped = load_encoder(out)
    enc_params = sum(t.numel() for t in shipped.encoder.parameters())
    size_mb = (out / "model.safetensors").stat().st_size / 2**20

    fp32 = evaluate_encoder(out, task, n=args.n, precision="fp32", timing=True, timing_repeats=5)
    bf16 = evaluate_encoder(out, task, n=args.n, precision="bf16", timing=False)
    run32 = evaluate_encoder(m, task, n=args.n, precision="fp32", timing=False)  # the run's fp32 weights
    atomic_write_text(out / "eval.json", json.dumps({"fp32": fp32, "bf16": bf16, "run_weights_fp32": run32},
                                                    indent=2) + "\n")
    grid = ROOT / "docs" / f"{args.name}.png"
    _grid(shipped.eval(), task, grid, args.samples)

    log = [json.loads(line) for line in (args.run / "log.jsonl").read_text().splitlines() if line.strip()]
    last = [r for r in log if "loss" in r][-1]
    steps, seconds = int(meta["steps"]), float(meta["train_seconds"])
    c = shipped.config.encoder
    kind = "e4e (one w + per-row deltas)" if isinstance(shipped, E4E) else "pSp GradualStyleEncoder"
    iter_rows = ""
    if isinstance(shipped, ReStyle):
        kind = (f"ReStyle-{c.base} ({'pyramid' if c.encoder_type == 'gradual' else 'backbone'} encoder, input: image "
                f"+ current reconstruction, {shipped.config.n_iters} residual iterations)")
        iters = _iterations(shipped, task, args.n)
        atomic_write_text(out / "iterations.json", json.dumps(iters, indent=2) + "\n")
        iter_rows = ("\n| iteration | MSE | perceptual distance |\n|---|---|---|\n" + "\n".join(
            f"| {i + 1} | {r['mse']:.4f} | {r['perceptual']:.4f} |" for i, r in enumerate(iters)) + "\n")
    losses = ", ".join(f"{k.removeprefix('loss_')} {v:.4f}" for k, v in last.items() if k.startswith("loss_"))
    sample_rows = (f", then {args.samples} rows of multi-modal outputs (rows {default_latent_mask(shipped.num_ws)} "
                   "of W+ mixed with random w, as `stylebridge translate --samples`)") if args.samples else ""
    data_row = (f"synthfaces rendered on the fly at {c.input_size} px, task `{task}`, {steps:,} steps × "
                f"{meta['batch']} = {steps * meta['batch']:,} faces (training seeds, disjoint from the held-out ones)")
    run_cfg = yaml.safe_load((args.run / "config.yaml").read_text())
    precision = ("bf16 autocast, fp32 master weights" if run_cfg["optim"]["precision"] == "bf16" else "fp32")
    nc = shipped.input_channels
    grid_rows = ("iteration " + " | ".join(str(i + 1) for i in range(shipped.config.n_iters))
                 if isinstance(shipped, ReStyle) else "output")
    card = f"""# {args.name} — {args.title}

`stylebridge.load("{args.name}")` → {type(shipped).__name__}: a {kind} (IR-SE-{c.num_layers}, widths
{list(c.widths)}, map2style width {c.style_width or c.w_dim}, {enc_params:,} encoder parameters) for the frozen
**{generator}** generator. Input [N, {nc}, {c.input_size}, {c.input_size}] in [-1, 1] (task `{task}`);
`.encode(x)` gives W+ codes [N, {shipped.num_ws}, {c.w_dim}] (latent_avg added), `model(x)` the images.

```bash
stylebridge encode --model {args.name} --images DIR --out OUT            # W+ latents + reconstructions
stylebridge translate --model {args.name} --images DIR --out OUT --samples 3
```

Files: {size_mb:.1f} MB — the encoder stored in fp16 (loaded as fp32; the table below shows the storage changes
no figure beyond noise), the generator taken from the shipped `{generator}` (not copied; checked by digest).

![grid](../../../../docs/{grid.name})

`docs/{grid.name}`: 8 held-out faces (seeds {HELD_OUT_SEED:,}+); rows input | {grid_rows} | target{sample_rows}.

## Training

| | |
|---|---|
| command | `{args.command}` |
| data | {data_row} |
| losses | perceptual: {meta['perceptual_network']}; identity: {meta['identity_network']} |
| optimiser | {meta['optimizer']} |
| wall time | **{_duration(seconds)}** ({seconds:,.0f} s, {steps / max(seconds, 1):.2f} steps/s) |
| final losses (step {last['step']}) | {losses} |
| machine | {_cpu()}, {torch.get_num_threads()} threads, no GPU, torch {torch.__version__}, {precision} |

## Quality

Measured by `python scripts/ship_encoder.py` (`stylebridge.evaluate.encoder.evaluate_encoder`) on the same machine.

{report_markdown(fp32)}
| same faces | MSE | perceptual | attribute accuracy |
|---|---|---|---|
{_row("shipped folder, fp32", fp32)}
{_row("shipped folder, bf16 autocast", bf16)}
{_row("the run's fp32 weights", run32)}
{iter_rows}
Per-attribute accuracy (output / target) and everything above: `eval.json` beside this card.

{args.notes}
"""
    atomic_write_text(out / "MODEL_CARD.md", card)
    print(json.dumps({"name": args.name, "mse": fp32["mse"], "perceptual": fp32["perceptual"]["mean"],
                      "attributes": fp32["attributes"]["accuracy_mean"], "bf16_mse": bf16["mse"],
                      "run_fp32_mse": run32["mse"], "timing": fp32["timing"]}, indent=2))
    print(f"wrote {out}/ and {grid}")


if __name__ == "__main__":
    main()
