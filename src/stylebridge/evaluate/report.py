"""Writing a `run_evaluation` result: report.json, report.md, report.png (chart) and examples.png (image grid).

    evaluate_to_folder("runs/evaluate", generator="synthfaces-64", n=500)    # what `stylebridge evaluate` runs

``report.json``: ``config`` (generator, resolution, n, seeds, inputs, methods, network, device, command),
``machine`` (platform, CPU, torch, threads, ``cpu_flags`` amx / avx512_bf16, ``fast_bf16``), ``metrics`` (key →
description), ``inputs`` (per kind: label, seeds, the network's attribute accuracy on the targets), ``methods``
(model, network, how it takes inputs, its kinds, ``speed``: fp32 and bf16 ms/img at batch 8), ``results``
(method → kind → metric → value; ``null`` where the method cannot take the kind), ``emoji`` (FD references, or
``skipped`` with the reason), ``notes`` and ``wall_s``. ``report.md`` shows the same as tables ("—" where a method
cannot take an input), every metric naming its network.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from stylebridge.core.atomic import atomic_write, atomic_write_text, check_writable_dir
from stylebridge.core.seeds import HELD_OUT_SEED
from stylebridge.evaluate.benchmark import EvaluationResult, run_evaluation
from stylebridge.evaluate.inputs import INPUT_LABELS, OUT_OF_DOMAIN
from stylebridge.evaluate.methods import EvalMethod

__all__ = ["evaluate_to_folder", "prepare_out_dir", "report_markdown", "write_report"]

DASH = "—"


def prepare_out_dir(out: str | os.PathLike, create: bool = True) -> Path:
    """Check that ``out`` can be the report folder (and create it when ``create``), or raise a one-line ValueError
    naming it and the cause."""
    out = Path(out)
    try:
        check_writable_dir(out)
        if create:
            out.mkdir(parents=True, exist_ok=True)
            probe = out / ".stylebridge-write-test"
            probe.write_bytes(b"")
            probe.unlink()
    except OSError as exc:
        raise ValueError(f"cannot write to {out}: {exc.strerror or exc} ({exc.filename or out})") from None
    return out


def _fmt(v: float | None, digits: int) -> str:
    return DASH if v is None else f"{v:.{digits}f}"


def _table(report: dict[str, Any], key: str, kinds: Sequence[str], digits: int, higher_better: bool,
           reference: dict[str, float] | None = None) -> list[str]:
    res = report["results"]
    methods = list(res)
    lines = ["| method | " + " | ".join(INPUT_LABELS[k] for k in kinds) + " |",
             "|---|" + "---|" * len(kinds)]
    best: dict[str, float] = {}
    for k in kinds:
        vals = [res[m][k][key] for m in methods if res[m].get(k) and res[m][k].get(key) is not None]
        if len(vals) > 1:
            best[k] = max(vals) if higher_better else min(vals)
    for m in methods:
        cells = []
        for k in kinds:
            cell = res[m].get(k)
            v = None if cell is None else cell.get(key)
            text = _fmt(v, digits)
            cells.append(f"**{text}**" if v is not None and best.get(k) == v else text)
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    if reference:
        lines.append("| *targets (reference)* | " + " | ".join(_fmt(reference.get(k), digits) for k in kinds) + " |")
    return lines


def report_markdown(report: dict[str, Any]) -> str:
    """The readable report: one table per metric (methods × input kinds), emoji realism, speed, methods, notes."""
    c, mach, net = report["config"], report["machine"], report["network"]
    face_kinds = [k for k in c["inputs"] if k != "emoji"]
    flags = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in mach["cpu_flags"].items())
    lines = [f"# stylebridge evaluate — {c['generator']}", ""]
    if c.get("command"):
        lines += ["```bash", c["command"], "```", ""]
    lines += [
        f"{c['n']} held-out synthfaces per input kind (seeds {c['seeds'][0]:,}–{c['seeds'][1]:,}; training uses seeds "
        f"below {HELD_OUT_SEED:,}), {c['resolution']} px, the same faces for every method. Network for every "
        f"network-based figure: **{net}** (the domain network stylebridge trains on synthfaces; not LPIPS / ArcFace). "
        f"Machine: {mach['cpu']}, {mach['threads']} thread(s), {mach['device']}, torch {mach['torch']} ({flags}). "
        f"Wall time {report['wall_s']:.0f} s.", ""]
    metrics = report["metrics"]
    sections = [("MSE (images in [-1, 1]), lower is better", "mse", 4, False, None),
                (f"distance[{net}] (perceptual), lower is better", f"distance[{net}]", 3, False, None),
                (f"identity[{net}] (cosine similarity with the target), higher is better", f"identity[{net}]", 3,
                 True, None),
                (f"attributes[{net}] (attribute accuracy against the true attributes), higher is better",
                 f"attributes[{net}]", 3, True,
                 {k: v[f"attributes[{net}]_on_targets"] for k, v in report["inputs"].items()}),
                (f"ms / image, fp32, batch {c['timing_batch']} (median over batches)", "ms_per_image_fp32", 1, False,
                 None)]
    if face_kinds:
        for title, key, digits, higher, ref in sections:
            assert key in metrics
            lines += [f"## {title}", "", *_table(report, key, face_kinds, digits, higher, ref), ""]
        lines += [f"Bold: the best per input. {DASH}: the method does not take that input.", ""]
    lines += _out_of_domain(report)
    emoji = report.get("emoji")
    if emoji is not None:
        lines += ["## Emoji (out of domain)", ""]
        if "skipped" in emoji:
            lines += [f"Skipped: {emoji['skipped']} (install fonts-noto-color-emoji).", ""]
        else:
            key = f"fd[{net}]"
            ex0 = emoji.get("expression_untranslated") or {}
            lines += [f"{emoji['metric']} between the translations of {emoji['n_emoji']} Noto emoji and "
                      f"{emoji['n_real']:,} rendered synthfaces: how synthfaces-like the outputs look, not how "
                      "faithful (no ground truth); values depend on the sample sizes, compare within this table. "
                      f"Expression: of the hand-labelled emoji among them ({ex0.get('n_smile', 0)} with a clear mouth "
                      f"curve, {ex0.get('n_mouth_open', 0)} clearly open or closed; `data.emoji.EXPRESSIONS`), the "
                      f"share whose drawn mouth {net} reads on the output (smile > 0.6 smiling, < 0.4 frowning, else "
                      "neutral; mouth_open > 0.35 open). Target (issue 19): ≥ 0.80.", "",
                      f"| | {key} | smile agrees | mouth open agrees |", "|---|---|---|---|",
                      f"| emoji, untranslated | {emoji['untranslated']:.2f} | {_fmt(ex0.get('smile'), 2)} | "
                      f"{_fmt(ex0.get('mouth_open'), 2)} |"]
            for m, res in report["results"].items():
                cell = res.get("emoji")
                ex = (cell or {}).get("expression") or {}
                lines.append(f"| {m} | {_fmt(None if cell is None else cell[key], 2)} | {_fmt(ex.get('smile'), 2)} "
                             f"| {_fmt(ex.get('mouth_open'), 2)} |")
            lines += [f"| floor: {emoji['floor_note']} | {emoji['floor']:.2f} | | |", ""]
    bf16_note = "" if mach["fast_bf16"] else " (emulated: this CPU has no AMX / AVX512-BF16)"
    lines += ["## Speed", "", f"Batch {c['timing_batch']}, {mach['device']}, {mach['threads']} thread(s); fp32: median "
              "over all evaluation batches; bf16: `core.device.autocast`, best of a few after a warm-up.", "",
              f"| method | ms / image fp32 | ms / image bf16{bf16_note} |", "|---|---|---|"]
    for m, info in report["methods"].items():
        sp = info.get("speed") or {}
        lines.append(f"| {m} | {_fmt(sp.get('fp32_ms_per_image'), 1)} | {_fmt(sp.get('bf16_ms_per_image'), 1)} |")
    lines += ["", "## Methods", "", "| method | model | network | inputs |", "|---|---|---|---|"]
    for m, info in report["methods"].items():
        lines.append(f"| {m} | `{info['model']}` | {info['network']} | {info['notes']} |")
    if report.get("notes"):
        lines += ["", "Notes:", ""] + [f"- {note}" for note in report["notes"]]
    return "\n".join(lines) + "\n"


_AGREE_LABELS = {"hair_color": "hair colour", "hair_style": "hair style", "glasses": "glasses", "beard": "beard",
                 "skin_tone": "skin tone"}


def _out_of_domain(report: dict[str, Any]) -> list[str]:
    """The out-of-domain table (photo-style, close-up): agreement, yaw correlation, distance, FD and its ratio to
    the same method's FD on rendered faces, against issue 19's targets."""
    net = report["network"]
    kinds = [k for k in report["config"]["inputs"] if k in OUT_OF_DOMAIN]
    if not kinds:
        return []
    fd, dist = f"fd[{net}]", f"distance[{net}]"
    lines = ["## Out of domain, with known truth", "",
             "The same held-out faces drawn as photos (`photo-style`) and as tight grayscale photos aligned back into "
             f"the layout (`grayscale close-up`; `evaluate.inputs`). Agreement: the share of faces whose attribute "
             f"{net} reads on the output equals the truth (glasses: present or not; skin tone: light / medium / dark "
             "tercile); yaw r: correlation of read and true yaw; FD to rendered synthfaces, and its ratio to the "
             "same method's FD on rendered faces. Targets (issue 19): every agreement ≥ 0.85, yaw r ≥ 0.8, "
             "FD ratio ≤ 2. Bold: a target met.", "",
             "| method | input | " + " | ".join(_AGREE_LABELS.values()) + f" | yaw r | {dist} | {fd} | FD ratio |",
             "|---|---|" + "---|" * (len(_AGREE_LABELS) + 4)]

    def row(label: str, kind: str, agree: dict[str, float], d: float | None, f: float | None,
            ref: float | None) -> str:
        cells = [(f"**{agree[k]:.2f}**" if agree[k] >= 0.85 else f"{agree[k]:.2f}") for k in _AGREE_LABELS]
        y = agree["yaw_corr"]
        cells.append(DASH if y is None else f"**{y:.2f}**" if y >= 0.8 else f"{y:.2f}")
        ratio = None if f is None or not ref else f / ref
        rtext = DASH if ratio is None else (f"**{ratio:.2f}**" if ratio <= 2 else f"{ratio:.2f}")
        cells += [_fmt(d, 3), _fmt(f, 2), rtext]
        return f"| {label} | {INPUT_LABELS[kind]} | " + " | ".join(cells) + " |"

    for k in kinds:
        info = report["inputs"].get(k, {})
        if "agreement_untranslated" in info:
            lines.append(row("*input, untranslated*", k, info["agreement_untranslated"], None,
                             info.get(f"{fd}_untranslated"), None))
        for m, res in report["results"].items():
            cell = res.get(k)
            if cell is None or "agreement" not in cell:
                continue
            ref_cell = res.get("reconstruction")
            lines.append(row(m, k, cell["agreement"], cell.get(dist), cell.get(fd),
                             None if not ref_cell else ref_cell.get(fd)))
    return [*lines, ""]


def _save_figure(fig: Any, path: Path) -> None:
    """Save a matplotlib figure as a palette PNG (a quarter of the RGBA size; these figures have few colours)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    img = Image.open(buf).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
    atomic_write(path, lambda p: img.save(p, format="PNG", optimize=True))


def _chart(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    net = report["network"]
    res = report["results"]
    methods = list(res)
    kinds = [k for k in report["config"]["inputs"] if k != "emoji"]
    emoji = report.get("emoji")
    has_emoji = emoji is not None and "skipped" not in emoji
    panels = [(f"distance[{net}] (lower is better)", f"distance[{net}]"), ("MSE, images in [-1, 1]", "mse")]
    rows = (len(panels) if kinds else 0) + has_emoji
    fig, axes = plt.subplots(max(rows, 1), 1, figsize=(max(7.0, 1.1 * len(kinds) + 2), 3.2 * max(rows, 1)),
                             squeeze=False)
    width = 0.8 / max(1, len(methods))
    ax_i = 0
    if kinds:
        for title, key in panels:
            ax = axes[ax_i, 0]
            ax_i += 1
            for j, m in enumerate(methods):
                xs, ys = [], []
                for i, k in enumerate(kinds):
                    cell = res[m].get(k)
                    if cell is not None:
                        xs.append(i + (j - (len(methods) - 1) / 2) * width)
                        ys.append(cell[key])
                ax.bar(xs, ys, width, label=m)
            ax.set_xticks(range(len(kinds)), [INPUT_LABELS[k] for k in kinds], rotation=20, ha="right", fontsize=8)
            ax.set_title(title, fontsize=10)
            ax.grid(axis="y", alpha=0.3)
        axes[0, 0].legend(fontsize=8, ncol=min(4, len(methods)))
    if has_emoji:
        ax = axes[ax_i, 0]
        key = f"fd[{net}]"
        labels = ["emoji (input)", *methods, "floor"]
        vals = [emoji["untranslated"]] + [res[m]["emoji"][key] if res[m].get("emoji") else float("nan")
                                          for m in methods] + [emoji["floor"]]
        ax.bar(range(len(labels)), vals, color=["0.6"] + [f"C{j}" for j in range(len(methods))] + ["0.3"])
        ax.set_xticks(range(len(labels)), labels, fontsize=8)
        ax.set_title(f"emoji: {emoji['metric']} to rendered synthfaces (lower is more synthfaces-like)", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"stylebridge evaluate — {report['config']['generator']}, n = {report['config']['n']}", fontsize=11)
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


def _examples(report: dict[str, Any], examples: dict[str, dict[str, torch.Tensor | None]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(report["results"])
    kinds = [k for k in report["config"]["inputs"] if k in examples]
    cols = ["input", "target", *methods]
    fig, axes = plt.subplots(max(1, len(kinds)), len(cols), figsize=(1.15 * len(cols) + 0.9, 1.2 * len(kinds) + 0.4),
                             squeeze=False)
    for i, k in enumerate(kinds):
        for j, col in enumerate(cols):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            img = examples[k].get(col)
            if img is None:
                ax.text(0.5, 0.5, DASH, ha="center", va="center", fontsize=14, color="0.5")
                for s in ax.spines.values():
                    s.set_visible(False)
            else:
                ax.imshow(((img.float().clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy(), interpolation="nearest")
            if i == 0:
                ax.set_title(col, fontsize=8)
            if j == 0:
                ax.set_ylabel(INPUT_LABELS[k], fontsize=8)
    fig.tight_layout(pad=0.3)
    _save_figure(fig, path)
    plt.close(fig)


def write_report(result: EvaluationResult, out: str | os.PathLike) -> dict[str, Path]:
    """Write report.json, report.md, report.png and examples.png (when ``result.examples`` has any) into ``out``;
    returns name → path. Raises ValueError naming the file when it cannot be written."""
    out = prepare_out_dir(out)
    paths = {"json": out / "report.json", "md": out / "report.md", "chart": out / "report.png"}
    try:
        atomic_write_text(paths["json"], json.dumps(result.report, indent=1) + "\n")
        atomic_write_text(paths["md"], report_markdown(result.report))
        _chart(result.report, paths["chart"])
        if result.examples:
            paths["examples"] = out / "examples.png"
            _examples(result.report, result.examples, paths["examples"])
    except OSError as exc:
        raise ValueError(f"cannot write {exc.filename or out}: {exc.strerror or exc}") from None
    return paths


def evaluate_to_folder(out: str | os.PathLike, generator: str = "synthfaces-64",
                       methods: Sequence[str | EvalMethod] | None = None, inputs: Sequence[str] | None = None,
                       n: int = 500,
                       seed: int = HELD_OUT_SEED, device: str = "auto", progress: bool = True,
                       command: str | None = None, **kwargs: Any) -> tuple[EvaluationResult, dict[str, Path]]:
    """`run_evaluation` then `write_report` into ``out``; the folder is checked first, so a bad ``out`` fails before
    minutes of work. ``command`` (the command line) is recorded in the report."""
    prepare_out_dir(out, create=False)  # fails before minutes of work; creates nothing yet
    result = run_evaluation(generator, methods, inputs, n=n, seed=seed, device=device, progress=progress, **kwargs)
    if command:
        result.report["config"]["command"] = command
    return result, write_report(result, out)
