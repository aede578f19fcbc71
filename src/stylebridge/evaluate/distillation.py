"""The distillation evaluation: one-pass edits by distilled pix2pixHD translators against encode → edit → decode,
both scored against synthfaces' ground-truth edits (the paper's claim, tested where the answer is known).

A distilled editor (``stylebridge train pix2pixhd`` on ``stylebridge distill pairs`` output) learned the generator's
(−c·d → +c·d) pairs of one direction d. Here it meets ``n`` held-out *rendered* faces — images the generator never
made, the paper's real-image case. For each distilled model, the faces its edit applies to (a one-way model: the
faces on the negative side of the attribute — a frown, no glasses, black hair; a model trained with
``--both-directions``: every face, toggled), the ground truth is the same face rendered with the attribute edited
as the editing evaluation edits it (`evaluate.editing.EDIT_TASKS`: a frown smiles by 0.4, glasses go on, black hair
turns blond). Every inverter edits the same faces with **the same direction d** (inversion, d applied with the
editing evaluation's strength, rendering), and the scores are the editing evaluation's:

* ``success``, ``kept``, ``all_kept``, ``identity``, ``dist_gt``, ``mse_gt`` (see `stylebridge.evaluate.editing`);
* ``fd``: FD[judge] of the edits against ``fd_reference`` other held-out faces rendered with the same edit (the
  ground-truth edits of faces ``seed + n`` …): how much the outputs look like faces that have the attribute. Sets
  are small (a few hundred), so the figure is biased upwards; compare it only with the ``ground truth`` row (the
  floor at this size) and the other rows;
* ``images_per_s``: end to end, batch ``batch``: inversion + edit + render for the inverters, one forward pass for
  the distilled model (fp32).

    result = run_distillation_evaluation(["synthfaces-64-distill-smile"], ["e4e", "psp"], n=500)
    write_distillation_report(result, "docs/distill/evaluation")   # report.json, report.md, examples.png
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from stylebridge.core.atomic import atomic_write_text
from stylebridge.core.device import pick_device
from stylebridge.core.native import read_native_config
from stylebridge.core.seeds import HELD_OUT_SEED
from stylebridge.data import synthfaces as sf
from stylebridge.edit.resolve import resolve_direction
from stylebridge.evaluate.editing import (
    _build_inverters,
    _cat,
    _CategorySuccess,
    _continuous_target,
    _ContinuousSuccess,
    _examples_grid,
    _pairwise,
    _render,
    _render_faces,
    _task_for,
    _trusted,
    _unchanged,
)
from stylebridge.evaluate.encoder import predict_attributes
from stylebridge.evaluate.inputs import make_inputs
from stylebridge.formats.loading import load, resolve_path
from stylebridge.invert.base import Inverter
from stylebridge.metrics.frechet import FeatureStats, frechet_distance
from stylebridge.models.direction import Direction
from stylebridge.models.domain import DomainNetwork
from stylebridge.models.pix2pixhd import Pix2PixHDGenerator

__all__ = ["DistillationResult", "DistilledEdit", "distillation_markdown", "distilled_edit",
           "run_distillation_evaluation", "write_distillation_report"]

REPORT_VERSION = 1
_COLUMNS = (("success", "success", 3), ("kept", "kept", 3), ("all_kept", "all kept", 3),
            ("identity", "identity", 3), ("dist_gt", "dist to GT", 4), ("mse_gt", "MSE to GT", 4),
            ("fd", "FD", 2), ("images_per_s", "images/s", 1))


@dataclass
class DistilledEdit:
    """A distilled one-pass editor: ``model`` (a 3-channel pix2pixHD, or any module mapping images [N, 3, R, R] in
    [-1, 1] to images), the ``direction`` whose pairs it learned, and whether it learned both ways
    (``both_directions``: it toggles the attribute)."""

    name: str
    model: torch.nn.Module
    direction: Direction
    both_directions: bool = False
    info: dict[str, Any] = field(default_factory=dict)


def distilled_edit(spec: str | os.PathLike, direction: str | os.PathLike | Direction | None = None) -> DistilledEdit:
    """Load a distilled editor and the direction it was distilled from.

    ``spec``: a shipped name or a model folder (``RUN/model``) written by ``stylebridge train pix2pixhd`` on an edit
    pairs folder: its metadata names the pairs' direction and the folder carries it (``direction/``). ``direction``
    overrides that (needed for official weights, which record none)."""
    path = resolve_path(spec)
    model = load(path, expect=Pix2PixHDGenerator)
    if model.config.in_channels != 3:
        raise ValueError(f"{spec}: takes {model.config.in_channels} input channels; a distilled edit takes one RGB "
                         "image (mixing / blending models are not edits)")
    meta = read_native_config(path).get("metadata", {}) if path.is_dir() else {}
    dist = meta.get("distillation", {})
    if direction is None:
        if (path / "direction").is_dir():
            direction = path / "direction"
        elif dist.get("direction"):
            direction = dist["direction"]
        else:
            raise ValueError(f"{spec}: records no direction (not trained on `stylebridge distill pairs` edit pairs?); "
                             "give the direction it was distilled from")
    d = resolve_direction(direction)
    label = path.parent.name if path.name == "model" else path.name  # RUN/model: the run's name
    return DistilledEdit(label, model, d, bool(dist.get("both_directions", False)), dist)


def _side(e: DistilledEdit) -> int:
    """The side the editor was trained at (0: unknown)."""
    return int(getattr(getattr(e.model, "config", None), "resolution", 0) or 0)


@dataclass
class DistillationResult:
    """``report``: the JSON-able report; ``examples``: per distilled model, columns of images [k, 3, R, R]."""

    report: dict[str, Any]
    examples: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)


@torch.no_grad()
def _forward(model: torch.nn.Module, x: torch.Tensor, batch: int, dev: torch.device) -> tuple[torch.Tensor, float]:
    """Outputs [N, 3, R, R] in [-1, 1] (CPU) and the seconds spent."""
    outs, seconds = [], 0.0
    for s in range(0, len(x), batch):
        xb = x[s : s + batch].to(dev)
        t0 = time.perf_counter()
        y = model(xb).float().clamp(-1, 1)
        seconds += time.perf_counter() - t0
        outs.append(y.cpu())
    return torch.cat(outs), seconds


def _stats(net: DomainNetwork, images: torch.Tensor, batch: int = 250) -> FeatureStats:
    from stylebridge.metrics.frechet import DomainFeatures

    ext = DomainFeatures(net, "judge")
    st = FeatureStats(ext.dim, ext.name)
    dev = next(net.parameters()).device
    for s in range(0, len(images), batch):
        st.append(ext(images[s : s + batch].to(dev)))
    return st


def run_distillation_evaluation(models: Sequence[str | os.PathLike | DistilledEdit],
                                inverters: Sequence[str | Inverter] = ("e4e", "psp", "restyle", "optimize"),
                                n: int = 500, seed: int = HELD_OUT_SEED,
                                judge: str | DomainNetwork = "synthfaces-domain", generator: str = "synthfaces-64",
                                inverter_options: dict[str, dict[str, Any]] | None = None, batch: int = 50,
                                fd_reference: int = 2000, device: str = "auto", progress: bool = True,
                                examples: int = 4, look: str = "clean") -> DistillationResult:
    """Score distilled editors and encode → edit → decode with their directions on ``n`` held-out rendered faces.

    Args:
        models: distilled editors (shipped names, ``RUN/model`` folders or `DistilledEdit`).
        inverters: the encode → edit → decode baselines (`invert.base.make_inverter` names or objects).
        seed: first face seed; below ``HELD_OUT_SEED`` the faces were seen in training and are refused.
        inverter_options: per inverter name, options for `make_inverter`.
        batch: faces per forward pass / inversion batch (also the timing's batch).
        fd_reference: faces rendered with the edit that the FD compares against (0: no FD).
        examples: faces per model kept for the example grid.
        look: "clean" (the rendered faces) or "photo": every method is given the same faces drawn as photos
            (`data.synthfaces.photo_look`, out of domain), while the ground truth stays the clean edited render and
            "kept" still compares with the clean faces' attributes.

    Returns:
        a `DistillationResult`; ``report["results"][model][method]`` holds the scores of the module docstring.
    """
    if seed < HELD_OUT_SEED:
        raise ValueError(f"seed {seed} is below {HELD_OUT_SEED}: those faces were used in training; evaluate on "
                         "held-out faces")
    if n < 2:
        raise ValueError(f"n must be at least 2, got {n}")
    if look not in ("clean", "photo"):
        raise ValueError(f"look must be 'clean' or 'photo', got {look!r}")
    if not models:
        raise ValueError("give at least one distilled model")
    dev = pick_device(device)
    judge_name = judge if isinstance(judge, str) else "judge"
    net = (load(judge, expect=DomainNetwork) if isinstance(judge, str) else judge).eval().to(dev)
    edits = [m if isinstance(m, DistilledEdit) else distilled_edit(m) for m in models]
    names = [e.name for e in edits]
    if len(set(names)) != len(names):
        raise ValueError(f"distilled models need distinct names, got {names}")
    tasks = [_task_for(e.direction) for e in edits]
    options = inverter_options or {}
    built = _build_inverters(inverters, options, dev)
    sizes = {inv.generator.resolution for inv in built.values()} | {r for r in map(_side, edits) if r}
    if len(sizes) > 1:
        raise ValueError(f"the methods work at different resolutions {sorted(sizes)}: compare one generator's")
    res = sizes.pop() if sizes else 64

    seeds = list(range(seed, seed + n))
    attrs = sf.sample_attributes(seeds)
    images = _render_faces(attrs, res)
    # what the methods are given: the faces, or the same faces drawn as photos (the truth stays the clean render)
    inputs = images if look == "clean" else make_inputs("photo", seeds, res).rgb
    pred_x = predict_attributes(net, images)
    trusted = _trusted(pred_x, attrs)

    # which faces each model edits: one-way models the faces on the negative side, toggles every applicable face
    plans = []
    for e, task in zip(edits, tasks):
        a = task.attribute
        applies = task.applies(attrs) if task.applies else torch.ones(n, dtype=torch.bool)
        up_all = (attrs[a] == _cat(a, task.off)) if task.categorical else attrs[a].float() < task.pivot
        sel = applies if e.both_directions else applies & up_all
        plans.append(sel.nonzero()[:, 0])
    needed = torch.unique(torch.cat(plans))  # the faces any model edits: the only ones worth inverting

    report: dict[str, Any] = {
        "version": REPORT_VERSION,
        "config": {"n": n, "seed": seed, "look": look, "judge": judge_name, "generator": generator, "batch": batch,
                   "fd_reference": fd_reference, "inverter_options": options, "device": str(dev),
                   "threads": torch.get_num_threads()},
        "judge_reliable": trusted, "models": {}, "inverters": {}, "results": {}, "reference": {},
    }

    inversions: dict[str, tuple[Inverter, torch.Tensor, dict[str, torch.Tensor], float]] = {}
    for name, inv in built.items():
        codes, seconds = [], 0.0
        for s in tqdm(range(0, len(needed), batch), desc=f"invert {name}", unit="batch", disable=not progress):
            t0 = time.perf_counter()
            r = inv.invert(inputs[needed[s : s + batch]].to(dev))
            seconds += time.perf_counter() - t0
            codes.append(r.w_plus.detach().float().cpu())
        w_all = torch.zeros(n, *codes[0].shape[1:])
        w_all[needed] = torch.cat(codes)
        recon = _render(inv, w_all[needed].to(dev))
        full = images.clone()
        full[needed] = recon
        inversions[name] = (inv, w_all, predict_attributes(net, full), seconds / len(needed))
        report["inverters"][name] = {"s_per_image": seconds / len(needed), "settings": inv.metadata(),
                                     "recon_mse": float((recon - images[needed]).square().mean())}

    out_examples: dict[str, dict[str, torch.Tensor]] = {}
    for e, task, idx in tqdm(list(zip(edits, tasks, plans)), desc="models", unit="model", disable=not progress):
        a, d = task.attribute, e.direction
        truth = attrs[a][idx]
        up = truth == _cat(a, task.off) if task.categorical else truth.float() < task.pivot
        sign = up.float() * 2 - 1
        others = [k for k in trusted if k != a and k not in task.implies]
        x = inputs[idx]
        lo, hi = d.config.strength_range
        outputs: dict[str, torch.Tensor] = {}
        seconds: dict[str, float] = {}
        keeps: dict[str, torch.Tensor] = {}
        preds: dict[str, dict[str, torch.Tensor]] = {}

        model = e.model.to(dev).eval()
        outputs["distilled"], t = _forward(model, x, batch, dev)
        seconds["distilled"] = t / len(idx)
        preds["distilled"] = predict_attributes(net, outputs["distilled"])
        keeps["distilled"] = _unchanged({k: v[idx] for k, v in pred_x.items()}, preds["distilled"], others)
        for name, (inv, w_all, pred_recon, s_inv) in inversions.items():
            pred_r = {k: v[idx] for k, v in pred_recon.items()}
            if not task.categorical and d.config.per_unit:
                target = _continuous_target(task, truth.float(), up)
                strength = d.strength_for(2 * (target - pred_r[a].float()))
            else:
                strength = torch.where(up, torch.tensor(hi), torch.tensor(lo))
            t0 = time.perf_counter()
            outputs[name] = _render(inv, d.apply(w_all[idx].to(dev), strength.to(dev)), batch=batch)
            seconds[name] = s_inv + (time.perf_counter() - t0) / len(idx)
            preds[name] = predict_attributes(net, outputs[name])
            keeps[name] = _unchanged(pred_r, preds[name], others)

        if task.categorical:
            off = _cat(a, task.off)  # type: ignore[arg-type]
            if task.on is not None:
                on_value = _cat(a, task.on)
            else:  # the commonest "on" reading of the edits (as the editing evaluation)
                votes = torch.cat([p[a][up] for p in preds.values()])
                votes = votes[votes != off]
                on_value = int(torch.mode(votes).values) if len(votes) else (1 if off == 0 else 0)
            target_vals = torch.where(up, torch.tensor(on_value), torch.tensor(off))
            want = torch.full_like(target_vals, -1) if task.on is None else target_vals
            success = _CategorySuccess(up, off, want)
        else:
            target_vals = _continuous_target(task, truth.float(), up)
            success = _ContinuousSuccess((truth.float() + target_vals.float()) / 2, sign)
        gt_attrs = {k: v[idx] for k, v in attrs.items()}
        gt_attrs[a] = target_vals.to(attrs[a].dtype)
        gt = _render_faces(gt_attrs, res)
        pred_gt = predict_attributes(net, gt)

        ref_stats = None
        if fd_reference:  # other held-out faces with the same edit: what "a face with the attribute" looks like
            r_seeds = list(range(seed + n, seed + n + fd_reference * 4))
            r_attrs = sf.sample_attributes(r_seeds)
            r_app = task.applies(r_attrs) if task.applies else torch.ones(len(r_seeds), dtype=torch.bool)
            r_up = (r_attrs[a] == _cat(a, task.off)) if task.categorical else r_attrs[a].float() < task.pivot
            r_idx = (r_app if e.both_directions else r_app & r_up).nonzero()[:fd_reference, 0]
            r_sub = {k: v[r_idx] for k, v in r_attrs.items()}
            r_truth = r_sub[a]
            r_upi = (r_truth == _cat(a, task.off)) if task.categorical else r_truth.float() < task.pivot
            if task.categorical:
                r_sub[a] = torch.where(r_upi, torch.tensor(on_value), torch.tensor(_cat(a, task.off))).to(r_truth.dtype)
            else:
                r_sub[a] = _continuous_target(task, r_truth.float(), r_upi).to(r_truth.dtype)
            ref_stats = _stats(net, _render_faces(r_sub, res))

        gt_dev, x_dev = gt.to(dev), x.to(dev)
        rows: dict[str, dict[str, float]] = {}
        for name, out in outputs.items():
            keep = keeps[name]
            rows[name] = {
                "success": float(success(preds[name][a]).float().mean()),
                "kept": float(keep.float().mean()) if keep.numel() else 1.0,
                "all_kept": float(keep.all(dim=1).float().mean()),
                "identity": float(_pairwise(net.similarity, out.to(dev), x_dev).mean()),
                "dist_gt": float(_pairwise(net.distance, out.to(dev), gt_dev).mean()),
                "mse_gt": float((out - gt).square().mean()),
                "images_per_s": 1.0 / max(seconds[name], 1e-9),
                # leakage per attribute: where "kept" is lost
                "kept_per_attribute": {k: round(float(v), 4) for k, v in zip(others, keep.float().mean(0).tolist())},
            }
            if ref_stats is not None:
                rows[name]["fd"] = frechet_distance(_stats(net, out), ref_stats)
        keep_gt = _unchanged({k: v[idx] for k, v in pred_x.items()}, pred_gt, others)
        reference = {
            "ground truth": {"success": float(success(pred_gt[a]).float().mean()),
                             "kept": float(keep_gt.float().mean()) if keep_gt.numel() else 1.0,
                             "all_kept": float(keep_gt.all(dim=1).float().mean()),
                             "identity": float(_pairwise(net.similarity, gt_dev, x_dev).mean()),
                             "dist_gt": 0.0, "mse_gt": 0.0},
            "no edit": {"success": float(success(pred_x[a][idx]).float().mean()),
                        "identity": 1.0,
                        "dist_gt": float(_pairwise(net.distance, x_dev, gt_dev).mean()),
                        "mse_gt": float((x - gt).square().mean())},
        }
        if ref_stats is not None:
            reference["ground truth"]["fd"] = frechet_distance(_stats(net, gt), ref_stats)
            reference["no edit"]["fd"] = frechet_distance(_stats(net, x), ref_stats)
        base = rows.get("e4e")
        d_row = rows["distilled"]
        verdict = None
        if base is not None:
            verdict = {"dist_ratio": d_row["dist_gt"] / base["dist_gt"],
                       "speedup": d_row["images_per_s"] / base["images_per_s"],
                       "goal_met": bool(d_row["dist_gt"] <= base["dist_gt"]
                                        and d_row["images_per_s"] >= 10 * base["images_per_s"])}
        attribute_name = next(s for s in sf.ATTRIBUTES if s.name == a)
        edit_text = (f"{a}: {task.off} → {attribute_name.choices[on_value]}" if task.categorical else
                     f"{a} + {task.delta}" if task.delta is not None else f"{a} → {task.high}")
        report["models"][e.name] = {
            "direction": d.name, "attribute": d.config.attribute, "layers": d.config.layers,
            "both_directions": e.both_directions, "edit": edit_text, "faces": len(idx), "faces_up": int(up.sum()),
            "kept_over": others, "pairs": e.info.get("pairs"), "coeff": e.info.get("coeff"),
            "resolution": _side(e), "goal_vs_e4e": verdict,
        }
        report["results"][e.name] = rows
        report["reference"][e.name] = reference
        k = min(examples, len(idx))
        out_examples[e.name] = {"input": x[:k], "ground truth": gt[:k], **{m: o[:k] for m, o in outputs.items()}}
    return DistillationResult(report, out_examples)


def distillation_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: per distilled model, a table of methods × scores, and the goal's verdict."""
    c = report["config"]
    photo = c.get("look") == "photo"
    lines = [f"# One-pass distilled edits vs encode → edit → decode — {c['generator']}, n = {c['n']} held-out "
             f"{'photo-style' if photo else 'rendered'} faces (seeds {c['seed']:,}…)", "",
             *(["Every method is given the faces drawn as photos (`data.synthfaces.photo_look`: out of domain); the "
                "ground truth is the clean render of the edited face.", ""] if photo else []),
             f"Judge `{c['judge']}` (reliable heads, used for `kept`: "
             + ", ".join(f"{k} {v:.3f}" for k, v in report["judge_reliable"].items()) + f"). Batch {c['batch']}, "
             f"fp32, {c.get('threads', '?')} CPU thread(s), device {c['device']}.", ""]
    if c.get("command"):
        lines += ["```bash", c["command"], "```", ""]
    head = "| method | " + " | ".join(t for _, t, _ in _COLUMNS) + " |"
    sep = "|---" * (len(_COLUMNS) + 1) + "|"
    for name, info in report["models"].items():
        way = "both ways (toggle)" if info["both_directions"] else "one way"
        lines += [f"## {name}", "",
                  f"Edit: {info['edit']} on {info['faces']} faces ({way}); direction `{info['direction']}` "
                  f"(`{info['attribute']}`, layers {info['layers'] or 'all'}); the inverters apply the same direction."
                  + (f" Distilled from {info['pairs']} pairs at ±{info['coeff']}." if info.get("pairs") else ""),
                  "", head, sep]
        rows = {**report["results"][name], **{f"*{k}*": v for k, v in report["reference"][name].items()}}
        for method, row in rows.items():
            cells = [("—" if k not in row else f"{row[k]:.{dg}f}") for k, _, dg in _COLUMNS]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        worst = []
        for method, row in report["results"][name].items():
            per = sorted(row.get("kept_per_attribute", {}).items(), key=lambda kv: kv[1])[:3]
            if per:
                worst.append(f"{method} " + ", ".join(f"{k} {v:.2f}" for k, v in per))
        if worst:
            lines += ["", "Least kept attributes (share of faces unchanged): " + "; ".join(worst) + "."]
        v = info.get("goal_vs_e4e")
        if v:
            lines += ["", f"Goal (distance to the ground-truth edit ≤ e4e's, at ≥ 10× its images/s): distance "
                      f"{v['dist_ratio']:.2f}× e4e's, {v['speedup']:.1f}× its speed — "
                      f"**{'met' if v['goal_met'] else 'not met'}**."]
        lines.append("")
    lines += ["Scores as in `stylebridge evaluate --editing` (success: the judge reads the attribute on the requested "
              "side; kept: other reliable attributes unchanged vs the reconstruction — for the distilled model, vs "
              "the input; identity: judge similarity to the input; dist / MSE to GT: to the ground-truth edited "
              "render). FD: FD[judge] against other held-out faces rendered with the same edit (small sets: compare "
              "with the ground-truth row, the floor at this size). images/s: end to end (inversion + edit + render; "
              "the distilled model: one forward pass).", ""]
    if report.get("example_columns"):
        lines += [f"`examples.png`: per model, rows of faces; columns: {', '.join(report['example_columns'])}.", ""]
    return "\n".join(lines)


def write_distillation_report(result: DistillationResult, out: str | os.PathLike) -> dict[str, Path]:
    """report.json, report.md and examples.png into ``out``; returns name → path."""
    from stylebridge.evaluate.report import prepare_out_dir

    out = prepare_out_dir(out)
    paths = {"json": out / "report.json", "md": out / "report.md", "examples": out / "examples.png"}
    if result.examples:
        result.report["example_columns"] = list(next(iter(result.examples.values())))
    try:
        atomic_write_text(paths["json"], json.dumps(result.report, indent=1) + "\n")
        atomic_write_text(paths["md"], distillation_markdown(result.report))
        _examples_grid(result.examples, paths["examples"])
    except OSError as exc:
        raise ValueError(f"cannot write {exc.filename or out}: {exc.strerror or exc}") from None
    return paths
