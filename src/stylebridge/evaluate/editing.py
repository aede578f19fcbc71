"""The editing evaluation: every inverter × every direction, scored against synthfaces' ground-truth edits.

synthfaces renders the same face with one attribute changed (``sf.render(sf.edit(attrs, smile=0.9))``), so an edit
of an inverted face has an exact answer. Per held-out face (seeds ``seed`` … ``seed + n − 1``) and direction, the
face is sent to the other side of the attribute (a frown smiles, a smile frowns; glasses go on or off; dark hair
turns blond and blond hair black; …, `EDIT_TASKS`), by inverting the rendered face, moving its W+ code along the
direction and rendering it. Scores (the judge is a domain network, ``synthfaces-domain`` by default):

* ``success``: the judge reads the edited attribute on the requested side — a continuous attribute nearer the target
  than the face's true value (past the midpoint); a category: the target category (for "on": any but the off one);
* ``kept``: share of (face, other attribute) pairs the edit leaves unchanged in the judge's reading (edited image
  vs the reconstruction: continuous within ±0.1, categories equal), over the attributes the judge reads reliably on
  these very faces (correlation ≥ 0.9 / accuracy ≥ 0.95, listed in the report) less the edited one and those it
  implies (glasses → glasses colour); ``all_kept``: share of faces with every such attribute unchanged;
* ``identity``: the judge's identity similarity of the edited image and the input face;
* ``dist_gt`` / ``mse_gt``: perceptual distance and pixel MSE of the edited image to the ground-truth edited render;
* per inverter: ``recon_dist`` / ``recon_mse`` (reconstruction before editing) and ``s_per_image`` (inversion).

Reference rows: ``ground truth`` (the judge on the true edited renders: its success is the judge's own accuracy and
its ``kept`` the judge's noise floor) and ``no edit`` (the unedited input against the ground truth: an edit that
does not beat it did nothing useful).

Strengths: a direction that knows how fast it moves its attribute (`DirectionConfig.per_unit`) is applied with the
strength that should move the judge's reading of the reconstruction to the target; one that does not, and every
categorical edit, at the end of its suggested strength range on the requested side.

    result = run_editing_evaluation(["psp", "e4e"], ["synthfaces-64-smile"], n=100)
    write_editing_report(result, "runs/editing")     # report.json, report.md, tradeoff.png, examples.png
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from stylebridge.core.atomic import atomic_write, atomic_write_text
from stylebridge.core.device import pick_device
from stylebridge.core.seeds import HELD_OUT_SEED
from stylebridge.data import synthfaces as sf
from stylebridge.evaluate.encoder import predict_attributes
from stylebridge.invert.base import Inverter, resolve_inverter
from stylebridge.invert.delta import GeneratorDelta
from stylebridge.invert.editing import resolve_direction
from stylebridge.models.direction import Direction
from stylebridge.models.domain import DomainNetwork

__all__ = ["EDIT_TASKS", "EditTask", "EditingResult", "editing_report_markdown", "run_editing_evaluation",
           "write_editing_report"]

REPORT_VERSION = 1
TRUST_CORR, TRUST_ACC = 0.9, 0.95  # a judge head counts as reliable on the faces at hand above these
KEEP_TOL = 0.1  # a continuous attribute is "unchanged" within this (attribute units, in [0, 1])


def _cat(name: str, value: str) -> int:
    return next(a for a in sf.ATTRIBUTES if a.name == name).choices.index(value)


@dataclass(frozen=True)
class EditTask:
    """What editing ``attribute`` means on a face whose true attributes are known.

    Continuous: upwards when the face's value is below ``pivot``, else downwards — by ``delta`` (clamped to
    [``low``, ``high``]) when it is set, else to ``high`` / ``low``. Categorical: a face at
    category ``off`` goes to ``on`` (a category; None: whichever the direction draws, taken as the judge's most
    frequent reading of the edits), any other face goes to ``off``.
    ``applies``: which faces the edit means something for (hair colour needs hair). ``implies``: attributes the edit
    changes by construction (adding glasses sets a frame colour), excluded from ``kept``."""

    attribute: str
    low: float = 0.1
    high: float = 0.9
    pivot: float = 0.5
    delta: float | None = None
    off: str | None = None
    on: str | None = None
    applies: Callable[[dict[str, torch.Tensor]], torch.Tensor] | None = None
    implies: tuple[str, ...] = ()

    @property
    def categorical(self) -> bool:
        return self.off is not None


# Edits a user would ask for, within what the domain holds: a frown smiles and a smile frowns by 0.4 (of [0, 1]),
# a closed mouth opens wide (0.8) and an open one closes (0.1: below 0.3 a mouth is closed), a head turns by 0.3
# towards the other side; glasses and beards come and go; black hair turns blond and any other black.
EDIT_TASKS: dict[str, EditTask] = {
    "smile": EditTask("smile", low=0.0, high=1.0, delta=0.4),
    "mouth_open": EditTask("mouth_open", low=0.1, high=0.8, pivot=0.3),
    "yaw": EditTask("yaw", low=0.0, high=1.0, delta=0.3),
    "glasses": EditTask("glasses", off="none", implies=("glasses_color",)),
    "beard": EditTask("beard", off="none"),
    "hair_color": EditTask("hair_color", off="black", on="blonde",
                           applies=lambda a: a["hair_style"] != _cat("hair_style", "none")),
}


@dataclass
class EditingResult:
    """``report``: the JSON-able report; ``examples``: per direction, rows of images [3, R, R] for the example
    grid (input, ground truth, then each inverter's edit) of the first applicable faces."""

    report: dict[str, Any]
    examples: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)


def _task_for(direction: Direction) -> EditTask:
    base = direction.config.attribute.split("=")[0]
    if base not in EDIT_TASKS:
        raise ValueError(f"direction {direction.name!r}: its attribute {direction.config.attribute!r} has no "
                         f"ground-truth edit (known: {', '.join(EDIT_TASKS)}); find it with --attribute")
    return EDIT_TASKS[base]


@torch.no_grad()
def _pairwise(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], a: torch.Tensor, b: torch.Tensor,
              batch: int = 250) -> torch.Tensor:
    return torch.cat([fn(a[s : s + batch], b[s : s + batch]).float().cpu() for s in range(0, len(a), batch)])


def _trusted(judge_pred: dict[str, torch.Tensor], attrs: dict[str, torch.Tensor]) -> dict[str, float]:
    """Attribute → the judge's score on the inputs, for heads meeting the reliability bar."""
    out = {}
    for a in sf.ATTRIBUTES:
        p, t = judge_pred[a.name], attrs[a.name]
        if a.is_categorical:
            score = float((p == t).float().mean())
            ok = score >= TRUST_ACC
        else:
            score = float(torch.corrcoef(torch.stack([p.float(), t.float()]))[0, 1])
            ok = score >= TRUST_CORR
        if ok:
            out[a.name] = round(score, 4)
    return out


def _unchanged(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor], names: Sequence[str]) -> torch.Tensor:
    """[N, len(names)] bool: attribute unchanged between two readings."""
    cols = []
    for name in names:
        cat = next(a for a in sf.ATTRIBUTES if a.name == name).is_categorical
        b, a = before[name], after[name]
        cols.append(b == a if cat else (a.float() - b.float()).abs() <= KEEP_TOL)
    return torch.stack(cols, dim=1) if cols else torch.ones(len(next(iter(before.values()))), 0, dtype=torch.bool)


def _continuous_target(task: EditTask, source: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """[N] target values: ``source ± delta`` clamped to [low, high], or high / low."""
    if task.delta is None:
        return torch.where(up, torch.tensor(task.high), torch.tensor(task.low))
    return torch.where(up, source + task.delta, source - task.delta).clamp(task.low, task.high)


def _continuous_text(task: EditTask) -> str:
    if task.delta is None:
        return f"{task.attribute} → {task.high} below {task.pivot}, else → {task.low}"
    return f"{task.attribute} + {task.delta} below {task.pivot}, else − {task.delta} (within [{task.low}, {task.high}])"


@dataclass
class _CategorySuccess:
    up: torch.Tensor  # [N] bool: the face gets the attribute
    off: int
    want: torch.Tensor  # [N] category wanted where up (-1: any but off)

    def __call__(self, p: torch.Tensor) -> torch.Tensor:
        on = torch.where(self.want >= 0, p == self.want, p != self.off)
        return torch.where(self.up, on, p == self.off)


@dataclass
class _ContinuousSuccess:
    mid: torch.Tensor  # [N] midpoint between the true and the target value
    sign: torch.Tensor  # [N] +1: upwards

    def __call__(self, p: torch.Tensor) -> torch.Tensor:
        return (p.float() - self.mid) * self.sign > 0


def _render_faces(attrs: dict[str, torch.Tensor], resolution: int, chunk: int = 250) -> torch.Tensor:
    """synthfaces renders [N, 3, R, R] of ``attrs`` (per-face tensors), ``chunk`` faces at a time."""
    n = len(next(iter(attrs.values())))
    return torch.cat([sf.render({k: v[s : s + chunk] for k, v in attrs.items()}, resolution,
                                outputs=("image",))["image"] for s in range(0, n, chunk)])


@torch.no_grad()
def _render(inv: Inverter, w_plus: torch.Tensor, tuned: GeneratorDelta | None = None,
            batch: int = 100) -> torch.Tensor:
    """Render W+ codes in batches; ``tuned``: the faces' tuned weights (PTI), in the same order."""
    return torch.cat([inv.render(w_plus[s : s + batch], tuned=tuned.select(range(s, min(s + batch, len(w_plus))))
                                 if tuned is not None else None).clamp(-1, 1).cpu()
                      for s in range(0, len(w_plus), batch)])


def _build_inverters(inverters: Sequence[str | Inverter], options: dict[str, dict[str, Any]],
                     dev: torch.device) -> dict[str, Inverter]:
    """name → inverter on ``dev``: names built by `resolve_inverter` with their ``options``, objects as given."""
    built: dict[str, Inverter] = {}
    for spec in inverters:
        name = spec if isinstance(spec, str) else spec.name
        if name in built:
            raise ValueError(f"inverter {name!r} given twice")
        built[name] = (resolve_inverter(spec, progress=False, **options.get(name, {})) if isinstance(spec, str)
                       else spec).to(dev)
    return built


def run_editing_evaluation(inverters: Sequence[str | Inverter], directions: Sequence[str | os.PathLike | Direction],
                           n: int = 500, seed: int = HELD_OUT_SEED, judge: str | DomainNetwork = "synthfaces-domain",
                           generator: str = "synthfaces-64", inverter_options: dict[str, dict[str, Any]] | None = None,
                           batch: int = 50, device: str = "auto", progress: bool = True,
                           examples: int = 4) -> EditingResult:
    """Score every inverter × direction against ground-truth edits on ``n`` held-out rendered faces.

    Args:
        inverters: names (`invert.base.make_inverter`: "psp", "e4e", "optimize", "optimize-e4e", …) or objects.
        directions: shipped names, files or `Direction` objects; each must name its attribute
            (`DirectionConfig.attribute`, one of `EDIT_TASKS`).
        seed: first face seed; below ``HELD_OUT_SEED`` the faces were seen in training and are refused.
        inverter_options: per inverter name, options for `make_inverter` (e.g. ``{"optimize": {"steps": 300}}``).
        batch: faces inverted at once (optimisation runs one batch at a time).
        examples: faces per direction kept for the example grid.

    Returns:
        an `EditingResult`; its report's ``results[inverter][direction]`` holds the scores of the module docstring.
    """
    from stylebridge.formats.loading import load

    if seed < HELD_OUT_SEED:
        raise ValueError(f"seed {seed} is below {HELD_OUT_SEED}: those faces were used in training; evaluate on "
                         "held-out faces")
    if n < 2:
        raise ValueError(f"n must be at least 2, got {n}")
    dev = pick_device(device)
    judge_name = judge if isinstance(judge, str) else "judge"
    net = (load(judge, expect=DomainNetwork) if isinstance(judge, str) else judge).eval().to(dev)
    dirs = [resolve_direction(d) for d in directions]
    dir_names = [d.name for d in dirs]
    if len(set(dir_names)) != len(dir_names):
        raise ValueError(f"directions need distinct names, got {dir_names}")
    tasks = [_task_for(d) for d in dirs]
    options = inverter_options or {}
    built = _build_inverters(inverters, options, dev)
    sizes = {inv.generator.resolution for inv in built.values()}
    if len(sizes) != 1:
        raise ValueError(f"the inverters render at different resolutions {sorted(sizes)}: compare one generator")
    res = sizes.pop()
    seeds = list(range(seed, seed + n))
    attrs = sf.sample_attributes(seeds)
    images = _render_faces(attrs, res)
    pred_x = predict_attributes(net, images)
    trusted = _trusted(pred_x, attrs)

    report: dict[str, Any] = {
        "version": REPORT_VERSION,
        "config": {"n": n, "seed": seed, "judge": judge_name, "generator": generator, "batch": batch,
                   "inverter_options": options, "device": str(dev)},
        "judge_reliable": trusted,
        "directions": {},
        "inverters": {},
        "results": {},
        "reference": {},
    }
    out_examples: dict[str, dict[str, torch.Tensor]] = {}

    # 1. Invert every face with every inverter (timed), keeping codes and reconstructions.
    # The judge's reading of each reconstruction is shared by every direction: read once.
    inversions: dict[str, tuple[Inverter, torch.Tensor, torch.Tensor, GeneratorDelta | None]] = {}
    pred_recon: dict[str, dict[str, torch.Tensor]] = {}
    for name, inv in built.items():
        codes, recons, deltas, seconds = [], [], [], 0.0
        for s in tqdm(range(0, n, batch), desc=f"invert {name}", unit="batch", disable=not progress):
            t0 = time.perf_counter()
            r = inv.invert(images[s : s + batch].to(dev))
            seconds += time.perf_counter() - t0
            codes.append(r.w_plus.detach().float().cpu())
            recons.append(r.images.detach().float().clamp(-1, 1).cpu())
            if r.extras.get("tuned") is not None:  # PTI: the faces' own tuned weights render their edits
                tuned_batch = r.extras["tuned"]
                deltas.append(tuned_batch if tuned_batch.count == len(r)
                              else GeneratorDelta.cat([tuned_batch] * len(r)))  # a shared delta, per face
        w_plus, recon = torch.cat(codes), torch.cat(recons)
        if recon.shape[-1] != images.shape[-1]:
            raise ValueError(f"{name}: renders {recon.shape[-1]} px but the faces are {images.shape[-1]} px")
        tuned = GeneratorDelta.cat(deltas) if deltas else None
        inversions[name] = (inv, w_plus, recon, tuned)
        pred_recon[name] = predict_attributes(net, recon)
        report["inverters"][name] = {
            "recon_mse": float((recon - images).square().mean()),
            "recon_dist": float(_pairwise(net.distance, recon.to(dev), images.to(dev)).mean()),
            "s_per_image": seconds / n,
            "settings": inv.metadata(),
        }
        report["results"][name] = {}

    # 2. Every direction: plan the edit per face, render the ground truth, edit with every inverter, score.
    for d, task in tqdm(list(zip(dirs, tasks)), desc="directions", unit="dir", disable=not progress):
        a = task.attribute
        truth = attrs[a]
        applies = task.applies(attrs) if task.applies else torch.ones(n, dtype=torch.bool)
        idx = applies.nonzero()[:, 0]
        others = [k for k in trusted if k != a and k not in task.implies]
        if task.categorical:
            off = _cat(a, task.off)  # type: ignore[arg-type]
            up = truth[idx] == off  # faces that get the attribute ("on"); the others lose it
        else:
            up = truth[idx].float() < task.pivot
        sign = up.float() * 2 - 1
        lo, hi = d.config.strength_range
        rows: dict[str, dict[str, Any]] = {}
        edits: dict[str, torch.Tensor] = {}
        preds: dict[str, dict[str, torch.Tensor]] = {}
        for name, (inv, w_plus, _, tuned) in inversions.items():
            pred_r = {k: v[idx] for k, v in pred_recon[name].items()}
            if not task.categorical and d.config.per_unit:
                target = _continuous_target(task, truth[idx].float(), up)
                strength = d.strength_for(2 * (target - pred_r[a].float()))  # score units are 2× attribute units
            else:
                strength = torch.where(up, torch.tensor(hi), torch.tensor(lo))
            edited = _render(inv, d.apply(w_plus[idx].to(dev), strength.to(dev)),
                             tuned.select(idx) if tuned is not None else None)
            edits[name] = edited
            preds[name] = predict_attributes(net, edited)
            keep = _unchanged(pred_r, preds[name], others)
            rows[name] = {"keep": keep, "strength": strength}

        # the ground truth: categorical "on" without a fixed category takes the judge's commonest reading of edits
        on_value = None
        if task.categorical:
            if task.on is not None:
                on_value = _cat(a, task.on)
            else:
                votes = torch.cat([p[a][up] for p in preds.values()])
                votes = votes[votes != off]
                on_value = int(torch.mode(votes).values) if len(votes) else (1 if off == 0 else 0)
            target_vals = torch.where(up, torch.tensor(on_value), torch.tensor(off))
        else:
            target_vals = _continuous_target(task, truth[idx].float(), up)
        sub = {k: v[idx] for k, v in attrs.items()}
        gt_attrs = dict(sub)
        gt_attrs[a] = target_vals.to(sub[a].dtype)
        gt = _render_faces(gt_attrs, res)
        x = images[idx]
        pred_gt = predict_attributes(net, gt)
        pred_xi = {k: v[idx] for k, v in pred_x.items()}

        # success = the judge's reading on the requested side: categories as planned (any "on" category when the
        # task fixes none), continuous values past the midpoint between the true and the target value
        if task.categorical:
            want_on = torch.full_like(target_vals, -1) if task.on is None else target_vals
            success = _CategorySuccess(up, off, want_on)
        else:
            success = _ContinuousSuccess((truth[idx].float() + target_vals.float()) / 2, sign)
        gt_dev, x_dev = gt.to(dev), x.to(dev)
        for name in inversions:
            e = edits[name].to(dev)
            keep = rows[name]["keep"]
            report["results"][name][d.name] = {
                "faces": len(idx),
                "success": float(success(preds[name][a]).float().mean()),
                "kept": float(keep.float().mean()) if keep.numel() else 1.0,
                "all_kept": float(keep.all(dim=1).float().mean()),
                "identity": float(_pairwise(net.similarity, e, x_dev).mean()),
                "dist_gt": float(_pairwise(net.distance, e, gt_dev).mean()),
                "mse_gt": float((edits[name] - gt).square().mean()),
                "strength_mean_abs": float(rows[name]["strength"].abs().mean()),
            }
        keep_gt = _unchanged(pred_xi, pred_gt, others)
        report["reference"][d.name] = {
            "ground truth": {"success": float(success(pred_gt[a]).float().mean()),
                             "kept": float(keep_gt.float().mean()) if keep_gt.numel() else 1.0,
                             "all_kept": float(keep_gt.all(dim=1).float().mean()),
                             "identity": float(_pairwise(net.similarity, gt_dev, x_dev).mean())},
            "no edit": {"success": float(success(pred_xi[a]).float().mean()),
                        "dist_gt": float(_pairwise(net.distance, x_dev, gt_dev).mean()),
                        "mse_gt": float((x - gt).square().mean())},
        }
        target_text = (_continuous_text(task) if not task.categorical
                       else f"{task.attribute}: {task.off} → "
                            f"{next(s for s in sf.ATTRIBUTES if s.name == a).choices[on_value]}, others → {task.off}")
        report["directions"][d.name] = {
            "attribute": d.config.attribute, "method": d.config.method, "layers": d.config.layers,
            "per_unit": d.config.per_unit, "strength_range": list(d.config.strength_range), "edit": target_text,
            "faces": len(idx), "faces_up": int(up.sum()), "kept_over": others,
        }
        k = min(examples, len(idx))
        out_examples[d.name] = {"input": x[:k], "ground truth": gt[:k], **{m: edits[m][:k] for m in edits}}
    return EditingResult(report, out_examples)


def editing_report_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: a summary averaged over directions (with the inverters' reconstruction and speed),
    then per direction a table (inverters and the reference rows × scores)."""
    c = report["config"]
    judge = c["judge"]
    lines = [f"# Editing against ground truth — {c['generator']}, n = {c['n']} held-out faces (seeds {c['seed']}…)",
             "", f"Judge: `{judge}` (its reliable heads on these faces, used for `kept`: "
             + ", ".join(f"{k} {v:.3f}" for k, v in report["judge_reliable"].items()) + ").", ""]
    if c.get("command"):
        lines += ["Command: `" + c["command"] + "`", ""]
    lines += ["## Summary (mean over directions)", "",
              "| inverter | recon MSE | recon dist | s / image | success | kept | all kept | identity | dist to GT | "
              "MSE to GT |", "|---|---|---|---|---|---|---|---|---|---|"]
    for inv, info in report["inverters"].items():
        cells = list(report["results"][inv].values())

        def mean(key: str, cells: list = cells) -> float:
            return sum(x[key] for x in cells) / max(1, len(cells))

        lines.append(f"| {inv} | {info['recon_mse']:.4f} | {info['recon_dist']:.4f} | {info['s_per_image']:.3f} | "
                     f"{mean('success'):.3f} | {mean('kept'):.3f} | {mean('all_kept'):.3f} | {mean('identity'):.3f} | "
                     f"{mean('dist_gt'):.4f} | {mean('mse_gt'):.4f} |")
    refs = list(report["reference"].values())
    if refs:
        def rmean(row: str, key: str) -> float:
            return sum(r[row][key] for r in refs) / len(refs)

        lines.append(f"| *ground truth* | | | | {rmean('ground truth', 'success'):.3f} | "
                     f"{rmean('ground truth', 'kept'):.3f} | {rmean('ground truth', 'all_kept'):.3f} | "
                     f"{rmean('ground truth', 'identity'):.3f} | 0 | 0 |")
        lines.append(f"| *no edit* | | | | {rmean('no edit', 'success'):.3f} | | | | "
                     f"{rmean('no edit', 'dist_gt'):.4f} | {rmean('no edit', 'mse_gt'):.4f} |")
    lines += ["", "## Per direction", ""]
    for dname, info in report["directions"].items():
        lines += [f"### {dname}", "", f"Edit: {info['edit']} ({info['faces']} faces, {info['faces_up']} up); "
                  f"direction `{info['attribute']}` by {info['method']}, per unit {info['per_unit']}, strength range "
                  f"{info['strength_range']}.", "",
                  "| | success | kept | all kept | identity | dist to GT | MSE to GT | mean abs strength |",
                  "|---|---|---|---|---|---|---|---|"]
        for inv in report["results"]:
            r = report["results"][inv][dname]
            lines.append(f"| {inv} | {r['success']:.3f} | {r['kept']:.3f} | {r['all_kept']:.3f} | {r['identity']:.3f} "
                         f"| {r['dist_gt']:.4f} | {r['mse_gt']:.4f} | {r['strength_mean_abs']:.2f} |")
        ref = report["reference"][dname]
        g, ne = ref["ground truth"], ref["no edit"]
        lines.append(f"| *ground truth* | {g['success']:.3f} | {g['kept']:.3f} | {g['all_kept']:.3f} | "
                     f"{g['identity']:.3f} | 0 | 0 | |")
        lines.append(f"| *no edit* | {ne['success']:.3f} | | | | {ne['dist_gt']:.4f} | {ne['mse_gt']:.4f} | |")
        lines.append("")
    lines += ["Scores: see `stylebridge.evaluate.editing` — success: the judge reads the attribute on the requested "
              "side; kept: (face, other reliable attribute) pairs unchanged (±0.1 / same category) between the "
              "reconstruction and the edit; identity: judge similarity of edit and input; dist/MSE to GT: to the "
              "ground-truth edited render. Reference rows: the judge on the true edits (its own accuracy and noise "
              "floor) and the unedited input.", "",
              "Files: `tradeoff.png` (reconstruction distance vs distance to the ground-truth edit; big markers: the "
              "mean over directions, small: each direction), `examples.png` (for each direction in the order above, "
              f"the first faces it applies to, one per row; columns: input, ground truth, "
              f"{', '.join(report['results'])})."]
    return "\n".join(lines) + "\n"


def _tradeoff_plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from stylebridge.evaluate.report import _save_figure

    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    dnames = list(report["directions"])
    markers = "osD^v<>p*h"
    for j, (inv, info) in enumerate(report["inverters"].items()):
        cells = report["results"][inv]
        ys = [cells[d]["dist_gt"] for d in dnames]
        x = info["recon_dist"]
        ax.scatter([x] * len(ys), ys, color=f"C{j}", alpha=0.35, s=18,
                   marker=markers[j % len(markers)])
        ax.scatter([x], [sum(ys) / max(1, len(ys))], color=f"C{j}", s=90, marker=markers[j % len(markers)],
                   edgecolor="k", label=f"{inv} ({info['s_per_image']:.2g} s/img)")
    ne = [report["reference"][d]["no edit"]["dist_gt"] for d in dnames]
    if ne:
        ax.axhline(sum(ne) / len(ne), color="0.5", ls="--", lw=1, label="no edit (input vs ground truth)")
    judge = report["config"]["judge"]
    ax.set_xlabel(f"reconstruction distance [{judge}] (lower: more faithful)")
    ax.set_ylabel(f"distance to the ground-truth edit [{judge}]")
    ax.set_title(f"distortion vs editability, measured against ground truth\n"
                 f"{report['config']['generator']}, n = {report['config']['n']}; big marker: mean over "
                 f"{len(dnames)} directions, small: each", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


def _examples_grid(examples: dict[str, dict[str, torch.Tensor]], path: Path) -> None:
    """One PNG: per entry of ``examples`` (columns name → images [k, 3, R, R], "input" first), k rows."""
    from PIL import Image

    from stylebridge.core.imageio import make_grid, to_uint8

    rows = []
    for per in examples.values():
        cols = list(per)
        k = len(per["input"])
        for i in range(k):
            rows.append(torch.stack([per[c][i] for c in cols]))
    if not rows:
        return
    grid = torch.cat(rows)  # [rows * cols, 3, R, R]
    ncols = len(next(iter(examples.values())))
    # a 256-colour palette: a quarter of the RGB file, no visible change at this size
    img = Image.fromarray(to_uint8(make_grid(grid, ncols)[None])[0]).quantize(256, method=Image.Quantize.MEDIANCUT)
    atomic_write(path, lambda p: img.save(p, format="PNG", optimize=True))


def write_editing_report(result: EditingResult, out: str | os.PathLike) -> dict[str, Path]:
    """report.json, report.md, tradeoff.png (the scatter plot) and examples.png (per direction in the report's
    order, ``examples`` rows of faces; columns: input, ground truth, each inverter's edit) into ``out``; returns
    name → path."""
    from stylebridge.evaluate.report import prepare_out_dir

    out = prepare_out_dir(out)
    paths = {"json": out / "report.json", "md": out / "report.md", "plot": out / "tradeoff.png",
             "examples": out / "examples.png"}
    try:
        atomic_write_text(paths["json"], json.dumps(result.report, indent=1) + "\n")
        atomic_write_text(paths["md"], editing_report_markdown(result.report))
        _tradeoff_plot(result.report, paths["plot"])
        _examples_grid(result.examples, paths["examples"])
    except OSError as exc:
        raise ValueError(f"cannot write {exc.filename or out}: {exc.strerror or exc}") from None
    return paths
