"""Find, choose and ship the editing directions of synthfaces-64 (issue 15, item 4).

For every shipped attribute, candidates are found on the generator's own samples (InterFaceGAN's linear SVM,
logistic regression and the mean difference, labelled by the synthfaces-domain heads; each with its measured rate
``per_unit``), scored on a validation set of held-out faces with the editing evaluation (e4e inversion, ground-truth
edits; seeds HELD_OUT_SEED + 20,000 …, apart from the 500 faces of the published table), and the best by
success × kept (ties: distance to the ground truth) is saved as ``weights/synthfaces-64-<short>/`` with a card.

    python scripts/ship_directions.py                    # all six, ~15 min on 2 cores
    python scripts/ship_directions.py --only smile --n-val 100
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

import stylebridge
from stylebridge.core import registry
from stylebridge.core.seeds import HELD_OUT_SEED
from stylebridge.edit.finders import (
    find_guided,
    find_supervised,
    generator_digest,
    measure_per_unit,
    sample_w,
    scores_from_logits,
)
from stylebridge.evaluate.editing import run_editing_evaluation

# short name → (attribute spec for the judge, what it does)
SHIPPED = {
    "smile": ("smile", "frown ↔ broad smile"),
    "mouth_open": ("mouth_open", "closed ↔ wide-open mouth"),
    "yaw": ("yaw", "head turned left ↔ right"),
    "glasses": ("glasses", "glasses off ↔ on (any kind)"),
    "beard": ("beard", "clean-shaven ↔ beard"),
    "blond_hair": ("hair_color=blonde:black", "black ↔ blond hair"),
}
# (method, W+ rows, conditioned on the other attributes' directions). synthfaces-64 has 10 W+ rows: 0-1 at 4 px,
# 2-3 at 8, 4-5 at 16, 6-7 at 32, 8-9 at 64 (coarse: pose and shape; middle: parts; fine: colours).
CANDIDATES = [(m, None, False) for m in ("interfacegan", "logistic", "meandiff")] + [
    ("interfacegan", rows, False) for rows in ("0-3", "2-5", "4-7", "6-9", "0-5", "2-7")] + [
    ("interfacegan", None, True), ("interfacegan", "2-7", True)]
# categorical edits use the end of the strength range, continuous ones are clamped to it: try it scaled
SCALES = (0.6, 1.0, 1.5)
# attributes whose directions the conditioned candidates are projected off (besides the other shipped ones)
IMPLIED = {"glasses": ("glasses_color",)}  # heads an edit may change besides its own
CONDITION_ON = ("skin_tone", "face_width", "bg_hue", "clothes_hue", "eye_color=blue:brown")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--generator", default="synthfaces-64")
    ap.add_argument("--judge", default="synthfaces-domain")
    ap.add_argument("--samples", type=int, default=20_000)
    ap.add_argument("--n-val", type=int, default=200)
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--out", default=str(registry.WEIGHTS_DIR))
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--guided-steps", type=int, default=150, help="find_guided refinement of the best linear "
                    "candidate (0: none)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    t_start = time.time()
    G = stylebridge.load(args.generator).eval()
    net = stylebridge.load(args.judge).eval()
    gname = generator_digest(G, args.generator)
    w = sample_w(G, args.samples, seed=0)
    logits = []
    with torch.no_grad():
        for s in tqdm(range(0, len(w), 250), desc="label samples", unit="batch"):
            logits.append(net(G.synthesize(w[s : s + 250], noise_mode="const").clamp(-1, 1)).float())
    logits = torch.cat(logits)
    val_seed = HELD_OUT_SEED + 20_000
    summary = {}
    normals = {}  # unconditioned InterFaceGAN normals of every attribute, for the conditioned candidates
    for spec in [*{s for s, _ in SHIPPED.values()}, *CONDITION_ON]:
        normals[spec] = find_supervised(w, scores_from_logits(net, logits, spec), "interfacegan", fraction=0.02,
                                        name=spec.split("=")[0], generator=gname)
    for short, (spec, what) in SHIPPED.items():
        if args.only and short not in args.only:
            continue
        scores = scores_from_logits(net, logits, spec)
        conds = [normals[c] for c in [*CONDITION_ON, *(s for s, _ in SHIPPED.values())]
                 if c.split("=")[0] != spec.split("=")[0]]
        found = []
        for method, layers, cond in CANDIDATES:
            label = f"{method}{'-cond' if cond else ''}@{layers or 'all'}"
            found.append((label, find_supervised(w, scores, method, fraction=0.02, name=label,
                                                 conditions=conds if cond else (), labels=f"{args.judge}:{spec}",
                                                 generator=gname, layers=layers)))
        candidates = []
        for label, d in found:
            for scale in SCALES:
                lo, hi = d.config.strength_range
                name = label if scale == 1.0 else f"{label}×{scale:g}"
                cand = replace_config(d, name=name, strength_range=(round(lo * scale, 3), round(hi * scale, 3)))
                rate = measure_per_unit(G, cand, lambda im, s=spec: scores_from_logits(net, net(im), s),
                                        samples=128, seed=1)
                candidates.append(replace_config(cand, attribute=spec, per_unit=round(rate, 6)))
        result = run_editing_evaluation(["e4e"], candidates, n=args.n_val, seed=val_seed, judge=net,
                                        generator=args.generator, progress=False)
        rows = result.report["results"]["e4e"]
        ranked = sorted(candidates, key=lambda d: (-rows[d.name]["success"] * rows[d.name]["kept"],
                                                   rows[d.name]["dist_gt"]))
        if args.guided_steps:
            # Refine the best linear direction through the generator and the judge (find_guided), then score its
            # scaled variants beside the linear ones on the same validation faces.
            lin = ranked[0]
            g = find_guided(G, net, spec, start=lin, steps=args.guided_steps, batch=16, layers=lin.config.layers,
                            keep_free=IMPLIED.get(spec, ()), name="guided", generator=gname, precision="bf16",
                            labels=f"{args.judge}:{spec}",
                            progress=False)
            guided = []
            for scale in SCALES:
                name = "guided" if scale == 1.0 else f"guided×{scale:g}"
                cand = replace_config(g, name=name, strength_range=(-1.5 * scale, 1.5 * scale),
                                      notes=g.config.notes + f" ({lin.name})")
                rate = measure_per_unit(G, cand, lambda im, s=spec: scores_from_logits(net, net(im), s),
                                        samples=128, seed=1)
                guided.append(replace_config(cand, attribute=spec, per_unit=round(rate, 6)))
            extra = run_editing_evaluation(["e4e"], guided, n=args.n_val, seed=val_seed, judge=net,
                                           generator=args.generator, progress=False)
            rows.update(extra.report["results"]["e4e"])
            result.report["reference"].update(extra.report["reference"])
            candidates += guided
            ranked = sorted(candidates, key=lambda d: (-rows[d.name]["success"] * rows[d.name]["kept"],
                                                       rows[d.name]["dist_gt"]))
        best = ranked[0]
        chosen = (f"; chosen as {best.name} (success × kept on {args.n_val} validation faces, e4e inversion) over "
                  f"{len(ranked) - 1} other candidates")
        final = replace_config(best, name=short, notes=best.config.notes + chosen)
        folder = Path(args.out) / f"{args.generator}-{short}"
        final.save_pretrained(folder, metadata={"what": what})
        write_card(folder, short, what, final, ranked, rows, result.report, args)
        summary[short] = {"spec": spec, "what": what, "chosen": best.name, "per_unit": final.config.per_unit,
                          "layers": final.config.layers, "strength_range": list(final.config.strength_range),
                          "notes": final.config.notes, "validation": {c.name: rows[c.name] for c in candidates},
                          "reference": result.report["reference"][best.name]}
        print(short, "→", best.name, {k: round(v, 3) for k, v in rows[best.name].items()}, flush=True)
        for c in ranked[:5]:
            print("   ", c.name, {k: round(v, 3) for k, v in rows[c.name].items() if k != "faces"}, flush=True)
    summary["_meta"] = {"seconds": round(time.time() - t_start, 1), "samples": args.samples, "n_val": args.n_val,
                        "val_seed": val_seed, "judge": args.judge, "generator": gname}
    Path("runs").mkdir(exist_ok=True)
    Path("runs/ship_directions.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"done in {time.time() - t_start:.0f} s; summary in runs/ship_directions.json")


def write_card(folder: Path, short: str, what: str, d: stylebridge.Direction, ranked: list, rows: dict,
               report: dict, args: argparse.Namespace) -> None:
    c = d.config
    ref = report["reference"][ranked[0].name]
    scaled = ", each at 0.6 / 1 / 1.5 × its strength range" if any("×" in r.name for r in ranked) else ""
    lines = [f"# {args.generator}-{short} — editing direction: {what}", "",
             f"`stylebridge.load(\"{args.generator}-{short}\")` or `--direction {short}` → `Direction` ("
             + (f"a per-row W+ offset, {c.num_ws} × {c.w_dim}" if c.num_ws else f"a unit vector in W, {c.w_dim}-d")
             + f"), applied to W+ rows {list(c.layers) if c.layers else 'all'}; suggested "
             f"strengths "
             f"{c.strength_range[0]} … {c.strength_range[1]}. It edits `{c.attribute}` as the synthfaces-domain "
             f"heads read it: {c.per_unit:+.4f} of the score (in [-1, 1]) per unit strength, measured on 128 "
             "sampled faces (`Direction.strength_for(change)` gives the strength for a wanted change).", "",
             "## How it was found", "",
             f"`python scripts/ship_directions.py` ({args.samples:,} sampled w of {args.generator}, labelled by the "
             f"`{args.judge}` heads): method `{c.method}`; {c.notes}.", "",
             f"Candidates (InterFaceGAN / logistic / mean difference on all rows, InterFaceGAN on row ranges, "
             f"InterFaceGAN conditioned on the other attributes' directions{scaled}; then the best of those refined "
             f"through the generator and the judge, `find_guided`, at the same scales) "
             f"were scored by the editing evaluation on {args.n_val} validation faces (held-out seeds from "
             f"{HELD_OUT_SEED + 20_000:,}; e4e inversion; `stylebridge.evaluate.editing`). Best five by success × "
             "kept:", "",
             "| candidate | success | kept | all kept | identity | dist to GT | MSE to GT |",
             "|---|---|---|---|---|---|---|"]
    for cand in ranked[:5]:
        r = rows[cand.name]
        lines.append(f"| {cand.name} | {r['success']:.3f} | {r['kept']:.3f} | {r['all_kept']:.3f} | "
                     f"{r['identity']:.3f} | {r['dist_gt']:.4f} | {r['mse_gt']:.4f} |")
    lines.append(f"| *ground truth* | {ref['ground truth']['success']:.3f} | {ref['ground truth']['kept']:.3f} | "
                 f"{ref['ground truth']['all_kept']:.3f} | {ref['ground truth']['identity']:.3f} | 0 | 0 |")
    lines.append(f"| *no edit* | {ref['no edit']['success']:.3f} | | | | {ref['no edit']['dist_gt']:.4f} | "
                 f"{ref['no edit']['mse_gt']:.4f} |")
    lines += ["", "## Quality", "",
              "On the 500 held-out faces of the published table, with every inverter: `docs/editing/report.md` "
              "(section " + short + "), made by `stylebridge evaluate --editing`.", ""]
    (folder / "MODEL_CARD.md").write_text("\n".join(lines) + "\n")


def replace_config(d: stylebridge.Direction, **changes: object) -> stylebridge.Direction:
    out = type(d)(replace(d.config, **changes))
    out.vector.copy_(d.vector)
    return out


if __name__ == "__main__":
    main()
