"""The local-editing evaluation: StyleMapGAN's region transplants scored against synthfaces' exact answer.

synthfaces renders face A with face B's hair (glasses, beard, mouth) exactly: A's attributes with B's values of the
region's attributes (`REGION_TASKS`). For ``n`` held-out pairs per region, every method edits A's rendered image with
B's under the region's mask (`edit.stylemap.region_mask`: where that part lies in the generator's layout — what
``stylebridge stylemap edit --region`` uses), and each edit is compared with the ground-truth render:

* ``mse_in`` / ``mse_out``: pixel MSE to the ground truth inside the region (pixels that show the part in A's render
  or in the ground truth, so a part that should vanish counts) and outside it; ``recon_mse_out``: the method's
  plain reconstruction of A outside the region — what ``mse_out`` should stay near (a local edit must not touch the
  rest of the face more than reconstruction already does);
* ``dist_gt`` / ``mse_gt``: perceptual distance (the judge, ``synthfaces-domain``) and MSE of the whole image;
* ``transplanted``: share of pairs where the judge reads B's part on the edit — every categorical attribute of the
  region equal to B's (hair: style and colour; glasses: shape and frame colour; beard), the mouth's (smile,
  mouth_open) nearer B's values than A's (L1);
* ``identity``: the judge's identity similarity of the edit and the ground truth.

Rows: StyleMapGAN with the official W+ mixing (mask pooled at every stylecode level) and with the stylemap alone
(mask pooled to S×S); the W+ baseline — pSp codes of A with a contiguous range of layers taken from B's, the range
chosen per region on validation pairs (seeds below the held-out range) by distance to the ground truth; a pixel
paste (B's pixels inside the mask, A's outside); and references: ``ground truth`` (the judge's own accuracy) and
``no edit`` (A itself).

    result = run_local_editing_evaluation("synthfaces-64-stylemapgan", n=500)
    write_local_editing_report(result, "docs/stylemap")       # report.json, report.md, examples.png
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
from stylebridge.edit.stylemap import region_mask
from stylebridge.evaluate.editing import _pairwise
from stylebridge.evaluate.encoder import predict_attributes
from stylebridge.invert.base import Inverter, make_inverter
from stylebridge.models.domain import DomainNetwork
from stylebridge.models.stylemapgan import StyleMapGAN

__all__ = ["REGION_TASKS", "LocalEditingResult", "RegionTask", "local_editing_markdown", "make_pairs",
           "run_local_editing_evaluation", "write_local_editing_report"]

REPORT_VERSION = 1
VALIDATION_SEED = 9_000_000  # below HELD_OUT_SEED: the W+ baseline's layer range is chosen on these pairs
_B_OFFSET = 500_000  # reference faces come from seeds this far above the sources' (never the same face)
_MOUTH_MIN_CHANGE = 0.3  # mouth pairs: |Δsmile| + |Δmouth_open| of at least this, or the pair tests nothing


@dataclass(frozen=True)
class RegionTask:
    """A region: its synthfaces segmentation labels, the attributes that carry it from B to A, and which B faces
    qualify (``ref_has``: B shows the part; ``same``: attributes B must share with A so that the ground truth is
    exact — a beard takes the face's hair colour, so beard pairs share it)."""

    name: str
    labels: tuple[str, ...]
    attributes: tuple[str, ...]
    ref_has: Callable[[dict[str, torch.Tensor]], torch.Tensor] | None = None
    same: tuple[str, ...] = ()


REGION_TASKS: dict[str, RegionTask] = {
    "hair": RegionTask("hair", ("hair",), ("hair_style", "hair_color"), lambda a: a["hair_style"] != 0),
    "glasses": RegionTask("glasses", ("glasses",), ("glasses", "glasses_color"), lambda a: a["glasses"] != 0),
    "beard": RegionTask("beard", ("beard",), ("beard",), lambda a: a["beard"] != 0, same=("hair_color",)),
    "mouth": RegionTask("mouth", ("mouth",), ("smile", "mouth_open")),
}
_CATEGORICAL = {a.name for a in sf.ATTRIBUTES if a.is_categorical}


def _differs(task: RegionTask, a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    if all(k in _CATEGORICAL for k in task.attributes):
        return any(int(a[k]) != int(b[k]) for k in task.attributes)
    return sum(abs(float(a[k]) - float(b[k])) for k in task.attributes) >= _MOUTH_MIN_CHANGE


def make_pairs(task: RegionTask, n: int, seed: int) -> tuple[list[int], list[int]]:
    """``n`` (source, reference) seed pairs: sources ``seed, seed + 1, …``; each takes the next unused reference
    seed from ``seed + 500,000`` on that shows the part, shares ``task.same`` and differs in the region's attributes
    (so the ground truth is an edit). Deterministic."""
    sources = list(range(seed, seed + n))
    src_attrs = sf.sample_attributes(sources)
    refs: list[int] = []
    cursor, pool, pool_start = seed + _B_OFFSET, None, None
    for i in range(n):
        a = {k: v[i] for k, v in src_attrs.items()}
        while True:
            if pool is None or cursor - pool_start >= 2000:  # sample references in blocks
                pool_start = cursor
                pool = sf.sample_attributes(list(range(cursor, cursor + 2000)))
                has = task.ref_has(pool) if task.ref_has else torch.ones(2000, dtype=torch.bool)
            j = cursor - pool_start
            cursor += 1
            b = {k: v[j] for k, v in pool.items()}
            if bool(has[j]) and all(int(a[k]) == int(b[k]) for k in task.same) and _differs(task, a, b):
                refs.append(cursor - 1)
                break
    return sources, refs


def _ground_truth(src: dict[str, torch.Tensor], ref: dict[str, torch.Tensor], task: RegionTask) -> dict:
    out = {k: v.clone() for k, v in src.items()}
    for k in task.attributes:
        out[k] = ref[k].clone()
    return out


def _render(attrs: dict[str, torch.Tensor], res: int, chunk: int = 250) -> tuple[torch.Tensor, torch.Tensor]:
    n = len(next(iter(attrs.values())))
    imgs, segs = [], []
    for s in range(0, n, chunk):
        r = sf.render({k: v[s : s + chunk] for k, v in attrs.items()}, res, outputs=("image", "seg"))
        imgs.append(r["image"])
        segs.append(r["seg"])
    return torch.cat(imgs), torch.cat(segs)


@torch.no_grad()
def _batched(fn: Callable[..., torch.Tensor], *xs: torch.Tensor, batch: int = 50) -> torch.Tensor:
    return torch.cat([fn(*(x[s : s + batch] for x in xs)).float().clamp(-1, 1).cpu()
                      for s in range(0, len(xs[0]), batch)])


def _masked_mse(x: torch.Tensor, y: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """[N] mean squared error over the pixels of ``where`` [N, R, R] (all channels); NaN for an empty mask."""
    se = (x - y).square().mean(1)
    w = where.float()
    return (se * w).flatten(1).sum(1) / w.flatten(1).sum(1)


def _transplanted(task: RegionTask, pred: dict[str, torch.Tensor], src: dict[str, torch.Tensor],
                  ref: dict[str, torch.Tensor]) -> torch.Tensor:
    """[N] bool: the judge reads B's part on the image (module docstring)."""
    if all(k in _CATEGORICAL for k in task.attributes):
        return torch.stack([pred[k] == ref[k] for k in task.attributes]).all(0)
    to_ref = sum((pred[k].float() - ref[k].float()).abs() for k in task.attributes)
    to_src = sum((pred[k].float() - src[k].float()).abs() for k in task.attributes)
    return to_ref < to_src


def _mix_wplus(inv: Inverter, wa: torch.Tensor, wb: torch.Tensor, layers: tuple[int, int]) -> torch.Tensor:
    mixed = wa.clone()
    mixed[:, layers[0] : layers[1]] = wb[:, layers[0] : layers[1]]
    return inv.render(mixed).float().clamp(-1, 1).cpu()


@torch.no_grad()
def _choose_layers(inv: Inverter, net: DomainNetwork, task: RegionTask, res: int, n: int,
                   dev: torch.device) -> tuple[tuple[int, int], float]:
    """The contiguous W+ layer range [i, j) whose mixing lands nearest the ground truth on ``n`` validation pairs
    (mean judge distance), and that distance."""
    s_seeds, r_seeds = make_pairs(task, n, VALIDATION_SEED)
    src, ref = sf.sample_attributes(s_seeds), sf.sample_attributes(r_seeds)
    xa, _ = _render(src, res)
    xb, _ = _render(ref, res)
    gt, _ = _render(_ground_truth(src, ref, task), res)
    wa, wb = inv.invert(xa.to(dev)).w_plus, inv.invert(xb.to(dev)).w_plus
    best, best_d = (0, 1), float("inf")
    num = wa.shape[1]
    for i in range(num):
        for j in range(i + 1, num + 1):
            d = float(net.distance(_mix_wplus(inv, wa, wb, (i, j)).to(dev), gt.to(dev)).float().mean())
            if d < best_d:
                best, best_d = (i, j), d
    return best, best_d


@dataclass
class LocalEditingResult:
    report: dict[str, Any]
    examples: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)  # region → column → [k, 3, R, R]


def run_local_editing_evaluation(model: str | os.PathLike | StyleMapGAN = "synthfaces-64-stylemapgan",
                                 regions: Sequence[str] = tuple(REGION_TASKS), n: int = 500, seed: int = HELD_OUT_SEED,
                                 baseline: str | Inverter | None = "psp", judge: str = "synthfaces-domain",
                                 validation_pairs: int = 100, batch: int = 50, device: str = "auto",
                                 progress: bool = True, examples: int = 3) -> LocalEditingResult:
    """Score StyleMapGAN's local edits (and the W+ baseline, ``baseline``: an inverter name such as "psp", or None)
    on ``n`` held-out pairs per region (module docstring). ``seed`` below `HELD_OUT_SEED` is refused."""
    from stylebridge.formats.loading import load

    if seed < HELD_OUT_SEED:
        raise ValueError(f"seed {seed} is below {HELD_OUT_SEED}: those faces were used in training; evaluate on "
                         "held-out faces")
    if n < 2:
        raise ValueError(f"n must be at least 2, got {n}")
    bad = [r for r in regions if r not in REGION_TASKS]
    if bad or not regions:
        raise ValueError(f"unknown region(s) {bad or list(regions)}; choose from {', '.join(REGION_TASKS)}")
    dev = pick_device(device)
    m = (model if isinstance(model, StyleMapGAN) else load(model, expect=StyleMapGAN)).eval().to(dev)
    net = load(judge, expect=DomainNetwork).eval().to(dev)
    res = m.config.generator.resolution
    inv = None
    if baseline is not None:
        inv = (make_inverter(baseline) if isinstance(baseline, str) else baseline).to(dev)
        if inv.generator.resolution != res:
            raise ValueError(f"the baseline renders {inv.generator.resolution} px, the StyleMapGAN {res} px")
    report: dict[str, Any] = {
        "version": REPORT_VERSION,
        "config": {"model": str(model) if not isinstance(model, StyleMapGAN) else "StyleMapGAN", "n": n,
                   "seed": seed, "judge": judge, "baseline": None if inv is None else inv.name,
                   "validation_pairs": validation_pairs, "validation_seed": VALIDATION_SEED, "resolution": res,
                   "device": str(dev)},
        "regions": {},
    }
    out_examples: dict[str, dict[str, torch.Tensor]] = {}

    def scores(name: str, task: RegionTask, edit: torch.Tensor, gt: torch.Tensor, inside: torch.Tensor,
               src: dict, ref: dict, recon: torch.Tensor | None, xa: torch.Tensor) -> dict[str, float]:
        e, g = edit.to(dev), gt.to(dev)
        pred = predict_attributes(net, e)
        row = {"mse_in": float(_masked_mse(edit, gt, inside).nanmean()),
               "mse_out": float(_masked_mse(edit, gt, ~inside).mean()),
               "mse_gt": float((edit - gt).square().mean()),
               "dist_gt": float(_pairwise(net.distance, e, g).mean()),
               "identity": float(_pairwise(net.similarity, e, g).mean()),
               "transplanted": float(_transplanted(task, pred, src, ref).float().mean())}
        if recon is not None:
            row["recon_mse_out"] = float(_masked_mse(recon, xa, ~inside).mean())
        return row

    for region in regions:
        task = REGION_TASKS[region]
        t_start = time.perf_counter()
        s_seeds, r_seeds = make_pairs(task, n, seed)
        src, ref = sf.sample_attributes(s_seeds), sf.sample_attributes(r_seeds)
        xa, seg_a = _render(src, res)
        xb, _ = _render(ref, res)
        gt, seg_gt = _render(_ground_truth(src, ref, task), res)
        labels = torch.tensor([sf.SEG_LABELS.index(lbl) for lbl in task.labels])
        inside = torch.isin(seg_a, labels) | torch.isin(seg_gt, labels)  # [N, R, R]
        mask = region_mask(",".join(task.labels), res).to(dev)
        rows: dict[str, dict[str, float]] = {}
        cols: dict[str, torch.Tensor] = {"source A": xa, "reference B": xb,
                                         "mask": mask.cpu().expand(n, 3, -1, -1), "ground truth": gt}
        # StyleMapGAN: encode both once, then both mixing spaces (timed: encode A and B, mix, decode)
        t0 = time.perf_counter()
        with torch.no_grad():
            sa, sb = (torch.cat([m.encode(x[s : s + batch].to(dev)).float() for s in range(0, n, batch)])
                      for x in (xa, xb))
        enc_s = time.perf_counter() - t0
        recon_smg = _batched(m.decode, sa)
        for label, space in (("StyleMapGAN (W+ mix)", "w_plus"), ("StyleMapGAN (stylemap mix)", "stylemap")):
            t0 = time.perf_counter()
            edit = _batched(lambda a, b, space=space, mask=mask: m.local_edit(a, b, mask, space=space), sa, sb)
            rows[label] = scores(label, task, edit, gt, inside, src, ref, recon_smg, xa)
            rows[label]["ms_per_edit"] = 1000 * (enc_s + time.perf_counter() - t0) / n
            cols[label] = edit
        if inv is not None:
            layers, val_d = _choose_layers(inv, net, task, res, validation_pairs, dev)
            t0 = time.perf_counter()
            wa, wb = (torch.cat([inv.invert(x[s : s + batch].to(dev)).w_plus for s in range(0, n, batch)])
                      for x in (xa, xb))
            edit = torch.cat([_mix_wplus(inv, wa[s : s + batch], wb[s : s + batch], layers)
                              for s in range(0, n, batch)])
            ms = 1000 * (time.perf_counter() - t0) / n
            recon_w = torch.cat([inv.render(wa[s : s + batch]).float().clamp(-1, 1).cpu() for s in range(0, n, batch)])
            label = f"{inv.name} W+ mix (layers {layers[0]}–{layers[1] - 1})"
            rows[label] = scores(label, task, edit, gt, inside, src, ref, recon_w, xa)
            rows[label].update(ms_per_edit=ms, layers=list(layers), validation_dist=round(val_d, 4))
            cols[f"{inv.name} W+ mix"] = edit
        paste = torch.where(mask.cpu() > 0, xb, xa)
        rows["pixel paste"] = scores("pixel paste", task, paste, gt, inside, src, ref, None, xa)
        cols["pixel paste"] = paste
        rows["ground truth"] = scores("ground truth", task, gt, gt, inside, src, ref, None, xa)
        rows["no edit"] = scores("no edit", task, xa, gt, inside, src, ref, None, xa)
        report["regions"][region] = {
            "attributes": list(task.attributes), "labels": list(task.labels), "same": list(task.same),
            "pairs": n, "first_pairs": [[a, b] for a, b in zip(s_seeds[:5], r_seeds[:5])],
            "mask_share": float((mask > 0).float().mean()), "region_share": float(inside.float().mean()),
            "results": rows, "seconds": round(time.perf_counter() - t_start, 1)}
        out_examples[region] = {k: v[:examples].clone() for k, v in cols.items()}
        if progress:
            tqdm.write(f"local editing: {region} done ({report['regions'][region]['seconds']} s)")
    return LocalEditingResult(report, out_examples)


_COLUMNS = (("mse_in", "MSE in region", 4), ("mse_out", "MSE outside", 4), ("recon_mse_out", "recon MSE outside", 4),
            ("dist_gt", "dist to GT", 3), ("mse_gt", "MSE to GT", 4), ("transplanted", "B's part read", 3),
            ("identity", "identity to GT", 3), ("ms_per_edit", "ms / edit", 1))


def local_editing_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: one table per region, then the mean over regions."""
    c = report["config"]
    lines = ["# Local editing against synthfaces' ground truth", "",
             f"Model `{c['model']}`, {c['n']} held-out pairs per region (sources from seed {c['seed']:,}, references "
             f"{_B_OFFSET:,} seeds above), {c['resolution']} px, judge **{c['judge']}**. Each edit puts B's region "
             "into A under the region's mask (`region_mask`, as `stylebridge stylemap edit --region` does); the "
             "ground truth is A rendered with B's values of the region's attributes.", ""]
    if c.get("command"):
        lines += ["```bash", c["command"], "```", ""]
    head = "| method | " + " | ".join(t for _, t, _ in _COLUMNS) + " |"
    sep = "|---" * (len(_COLUMNS) + 1) + "|"
    means: dict[str, dict[str, list[float]]] = {}
    for region, r in report["regions"].items():
        same = f"; pairs share {', '.join(r['same'])}" if r["same"] else ""
        lines += [f"## {region} ({', '.join(r['attributes'])}{same})", "",
                  f"Mask: {100 * r['mask_share']:.0f} % of the image; the part covers {100 * r['region_share']:.0f} % "
                  "(in A or the ground truth).", "", head, sep]
        for name, row in r["results"].items():
            cells = [("—" if k not in row else f"{row[k]:.{d}f}") for k, _, d in _COLUMNS]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
            key = name.split(" (layers")[0]
            for k, _, _ in _COLUMNS:
                if k in row:
                    means.setdefault(key, {}).setdefault(k, []).append(row[k])
        lines.append("")
    lines += ["## Mean over regions", "", head, sep]
    for name, vals in means.items():
        cells = [("—" if k not in vals else f"{sum(vals[k]) / len(vals[k]):.{d}f}") for k, _, d in _COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "MSE in region / outside: pixel MSE to the ground truth over the pixels that show the part in A or "
              "in the ground truth, and over the rest; recon MSE outside: the method's plain reconstruction of A "
              "there (what a local edit should stay near); B's part read: the judge reads every categorical attribute "
              "of the region as B's (the mouth: its smile and opening nearer B's than A's); identity: judge "
              "similarity to the ground truth. ms / edit: encoding A and B, mixing and decoding, batch 50. The W+ "
              "baseline's layer range is chosen per region on validation pairs (seeds "
              f"{VALIDATION_SEED:,}+). `examples.png`: per region, rows of pairs; columns: "
              + ", ".join(report.get("example_columns", [])) + ".", ""]
    return "\n".join(lines)


def write_local_editing_report(result: LocalEditingResult, out: str | os.PathLike) -> dict[str, Path]:
    """report.json, report.md and examples.png into ``out``; returns name → path."""
    from PIL import Image

    from stylebridge.core.imageio import make_grid, to_uint8
    from stylebridge.evaluate.report import prepare_out_dir

    out = prepare_out_dir(out)
    paths = {"json": out / "report.json", "md": out / "report.md", "examples": out / "examples.png"}
    rows = []
    for per in result.examples.values():
        result.report["example_columns"] = list(per)
        for i in range(len(per["source A"])):
            rows.append(torch.stack([per[c][i] for c in per]))
    try:
        atomic_write_text(paths["json"], json.dumps(result.report, indent=1) + "\n")
        atomic_write_text(paths["md"], local_editing_markdown(result.report))
        if rows:
            grid = make_grid(torch.cat(rows), len(rows[0]))
            img = Image.fromarray(to_uint8(grid[None])[0])
            atomic_write(paths["examples"], lambda p: img.save(p, format="PNG", optimize=True))
    except OSError as exc:
        raise ValueError(f"cannot write {exc.filename or out}: {exc.strerror or exc}") from None
    return paths
