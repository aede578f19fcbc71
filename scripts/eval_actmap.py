"""Evaluate an activation-map translator for its model card (run from the repository root).

    python scripts/eval_actmap.py --model runs/actmap-synthfaces-64/translator --out runs/actmap-eval
    python scripts/eval_actmap.py --model synthfaces-64-actmap --compare psp=path/to/psp --n 1000 --out docs/actmap

Writes into ``--out``:

* ``metrics.json``: per system and input kind (held-out synthfaces faces: reconstruction, sketch, segmentation,
  blur) the MSE and the perceptual distance of the domain network (named in every key), plus, for the translator,
  held-out *generated* pairs migrated with their own w (activation / skip image / image MSE, PSNR: how well the
  encoder learned its target);
* ``card_table.md``: the same as a Markdown table;
* ``synthfaces_grid.png``: per kind, rows of input | each system | ground truth;
* ``emoji_grid.png``: the emoji set (out of domain) through each system (skipped when the font is missing);
* in both files, the Fréchet distance[domain network] of every system's translations of the whole emoji set to
  rendered synthfaces, beside the untranslated emoji and a real-vs-real floor (``evaluate.translation.emoji_realism``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from stylebridge.core.device import pick_device
from stylebridge.evaluate.translation import (
    EVAL_KINDS,
    emoji_grid,
    emoji_realism,
    evaluate_translation,
    results_table,
    translation_grid,
    translator_fn,
)
from stylebridge.formats.loading import load
from stylebridge.pipelines.actmap import load_translator
from stylebridge.train.actmap import validate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="translator: shipped name or native folder")
    p.add_argument("--compare", nargs="*", default=[], metavar="NAME=PATH",
                   help="pSp / e4e models shown beside the translator (any file stylebridge.load reads)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--n", type=int, default=500, help="held-out faces per input kind")
    p.add_argument("--resolution", type=int, default=0, help="evaluation resolution (default: the generator's)")
    p.add_argument("--kinds", nargs="+", default=list(EVAL_KINDS), choices=EVAL_KINDS)
    p.add_argument("--seed", type=int, default=None, help="style of the translations: this seed (default: mean w)")
    p.add_argument("--domain", default="synthfaces-domain", help="domain network for the perceptual distance")
    p.add_argument("--emoji", type=int, default=24, help="emoji in the grid (0: no emoji grid)")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = pick_device(args.device)
    translator = load_translator(args.model).to(dev).eval()
    res = args.resolution or translator.resolution
    style = {} if args.seed is None else {"seed": args.seed}
    systems = {"actmap": translator_fn(translator, **style)}
    for item in args.compare:
        name, sep, path = item.partition("=")
        if not sep:
            raise SystemExit(f"--compare takes NAME=PATH, got {item!r}")
        systems[name] = translator_fn(load(path).to(dev).eval())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for name, fn in systems.items():
        results[name] = evaluate_translation(fn, n=args.n, resolution=res, kinds=args.kinds, domain=args.domain)
        print(f"{name}: done", flush=True)
    generated = validate(translator, args.n)
    realism = emoji_realism(systems, resolution=res, domain=args.domain) if args.emoji else None
    doc = {"model": str(args.model), "style": style or "mean w", "synthfaces": results,
           "generated_pairs_own_w": generated, "emoji_realism": realism}
    (out / "metrics.json").write_text(json.dumps(doc, indent=2) + "\n")
    table = results_table(results)
    gen_line = ", ".join(f"{k} {v:.4f}" for k, v in generated.items())
    text = f"{table}\n\nHeld-out generated pairs, own w ({args.n}): {gen_line}\n"
    if realism:
        emoji_line = ", ".join(f"{k} {v:.3f}" for k, v in realism["distances"].items())
        text += (f"\n{realism['metric']} of all {realism['n_emoji']} emoji against {realism['n_real']} rendered "
                 f"synthfaces: {emoji_line}\n")
    (out / "card_table.md").write_text(text)
    print(text, end="")
    translation_grid(systems, out / "synthfaces_grid.png", resolution=res, kinds=args.kinds)
    if args.emoji:
        path = emoji_grid(systems, out / "emoji_grid.png", count=args.emoji, resolution=res)
        print(f"emoji grid: {path or 'skipped (no emoji font)'}")
    print(f"wrote {out}/")


if __name__ == "__main__":
    main()
