"""Evaluate an activation-map translator for its model card: a thin wrapper around `stylebridge evaluate`.

    python scripts/eval_actmap.py --model runs/actmap-synthfaces-64/translator --out runs/actmap-eval
    python scripts/eval_actmap.py --model synthfaces-64-actmap --compare psp=synthfaces-64-psp-inversion \
        e4e=synthfaces-64-e4e-inversion psp-sketch=synthfaces-64-psp-sketch --n 500 --out runs/actmap-eval

The table itself is `stylebridge evaluate` (``stylebridge.evaluate``): the translator (as ``actmap``, or ``--label``)
and every ``--compare`` model on the same held-out synthfaces input kinds and metrics, written to ``--out`` as
report.json, report.md, report.png and examples.png. The shipped models alone need no script:

    stylebridge evaluate --generator synthfaces-64 --n 500 --out runs/evaluate

This script adds what only a translator has: held-out *generated* pairs migrated with their own w (activation /
skip-image / image MSE, PSNR: how well the encoder learned its target), in ``generated_pairs.json`` and printed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from stylebridge.core.atomic import atomic_write_text
from stylebridge.core.device import pick_device
from stylebridge.evaluate.inputs import INPUT_KINDS
from stylebridge.evaluate.methods import method_from_model
from stylebridge.evaluate.report import evaluate_to_folder
from stylebridge.pipelines.actmap import load_translator
from stylebridge.train.actmap import validate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="translator: shipped name or native folder")
    p.add_argument("--label", default="actmap", help="its row in the table (default actmap)")
    p.add_argument("--compare", nargs="*", default=[], metavar="NAME=MODEL",
                   help="other models shown beside the translator (shipped name or any file stylebridge.load reads)")
    p.add_argument("--generator", default="synthfaces-64", help="the translator's generator (default synthfaces-64)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--n", type=int, default=500, help="held-out faces per input kind")
    p.add_argument("--kinds", nargs="+", default=list(INPUT_KINDS), choices=INPUT_KINDS)
    p.add_argument("--seed", type=int, default=None, help="style of the translations: this seed (default: mean w)")
    p.add_argument("--domain", default="synthfaces-domain", help="domain network for every network-based figure")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default 1, as stylebridge evaluate; 0: all)")
    args = p.parse_args()
    dev = pick_device(args.device)
    translator = load_translator(args.model).to(dev).eval()
    style = {} if args.seed is None else {"seed": args.seed}
    methods = [method_from_model(translator, args.label, dev, **style)]
    methods[0].model = str(args.model)
    for item in args.compare:
        name, sep, path = item.partition("=")
        if not sep:
            raise SystemExit(f"--compare takes NAME=MODEL, got {item!r}")
        methods.append(method_from_model(path, name, dev))
    command = (f"python scripts/eval_actmap.py --model {args.model} --n {args.n} "
               f"(compare: {' '.join(args.compare) or 'none'})")
    _, paths = evaluate_to_folder(args.out, generator=args.generator, methods=methods, inputs=args.kinds, n=args.n,
                                  device=str(dev), domain=args.domain, threads=args.threads, command=command)
    generated = validate(translator, args.n)
    atomic_write_text(Path(args.out) / "generated_pairs.json", json.dumps(
        {"model": str(args.model), "n": args.n, "own_w": generated}, indent=2) + "\n")
    print(Path(paths["md"]).read_text(), end="")
    print(f"Held-out generated pairs, own w ({args.n}): " + ", ".join(f"{k} {v:.4f}" for k, v in generated.items()))
    print(f"wrote {args.out}/")


if __name__ == "__main__":
    main()
