"""`stylebridge evaluate`: every method × every input kind × every metric, on the same held-out synthfaces.

    result = run_evaluation("synthfaces-64", n=500)              # the registered methods, every input kind
    write_report(result, "runs/evaluate")                          # report.json, report.md, report.png, examples.png

Per (method, input kind), on ``n`` held-out faces (seeds ``seed`` … ``seed + n − 1``, ``core.seeds.HELD_OUT_SEED``
upward by default; the same faces for every method):

* ``mse``: pixel MSE of output and target, images in [-1, 1] (outputs of another size are resized to the target's
  first, area or bilinear);
* ``distance[<net>]``: the domain network's perceptual distance (``DomainNetwork.distance``, LPIPS-style);
* ``identity[<net>]``: its identity similarity with the target (``DomainNetwork.similarity``, the ArcFace role);
* ``attributes[<net>]``: its attribute predictions (``DomainNetwork.predict``) on the output against the target
  face's true attributes, mean accuracy over attributes (``evaluate.encoder.attribute_scores``: categories exact,
  continuous values within ±0.1); the same network's score on the targets themselves is the reference;
* ``ms_per_image_fp32``: the method's wall time per image in batches of 8 (median over the batches), fp32.

Per method, ``bf16_ms_per_image`` (``core.device.autocast``, batch 8, best of a few after a warm-up) beside the fp32
figure; a CPU without AMX or AVX512-BF16 (``core.device.cpu_has_fast_bf16``) emulates bf16, and the report says so.

Emoji (out of domain, no target): FD[<net>] between the method's translations of the emoji and rendered synthfaces
(the `evaluate.translation.emoji_realism` measure: ``min(n, 319)`` emoji spread over the Noto set against
``min(5000, 10 n)`` faces from ``metrics.frechet.REAL_SEEDS_A``, beside the untranslated emoji and as many other
rendered faces as a floor; n = 500 gives the model cards' 319 vs 5,000). Skipped, with a note, without the font.
Emoji also get ``expression``: over the hand-labelled emoji (``data.emoji.EXPRESSIONS``), the share whose drawn mouth
the network reads on the translation (`expression_agreement`).

Out of domain with known truth (``photo``, ``closeup``: `evaluate.inputs`): every face cell also gets ``agreement``
(`evaluate.encoder.appearance_agreement`: hair colour, hair style, glasses present, beard, skin tone tercile, yaw
correlation), and when the run has one of these kinds, every face cell gets ``fd[<net>]`` to ``min(5000, 10 n)``
rendered faces — the rendered-face column is each method's reference (issue 19's target: within 2× of it); the
untranslated inputs' agreement and FD go in ``inputs``.
<net> is the domain network used, ``synthfaces-domain`` by default: every key names it.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from stylebridge.core.device import autocast, cpu_has_fast_bf16, pick_device
from stylebridge.core.seeds import HELD_OUT_SEED
from stylebridge.evaluate.encoder import appearance_agreement, attribute_scores, predict_attributes
from stylebridge.evaluate.inputs import (
    INPUT_KINDS,
    INPUT_LABELS,
    OUT_OF_DOMAIN,
    InputBatch,
    emoji_inputs,
    make_inputs,
)
from stylebridge.evaluate.methods import EvalMethod, build_method, parse_method, registered_methods

__all__ = ["TIMING_BATCH", "EvaluationResult", "expression_agreement", "machine_info", "metric_keys",
           "run_evaluation"]

TIMING_BATCH = 8
REPORT_VERSION = 1


@dataclass
class EvaluationResult:
    """``report``: the JSON-able report (keys documented in the module docstring and `write_report`);
    ``examples``: per input kind, images [3, R, R] of the first face: ``input``, ``target`` (None for emoji) and one
    per method that takes the kind (for the example grid)."""

    report: dict[str, Any]
    examples: dict[str, dict[str, torch.Tensor | None]] = field(default_factory=dict)


def metric_keys(network: str) -> dict[str, str]:
    """Metric key → one-line description, for a domain network named ``network``."""
    return {
        "mse": "pixel MSE of output and target, images in [-1, 1] (lower is better)",
        f"distance[{network}]": f"perceptual distance, {network} DomainNetwork.distance (lower is better)",
        f"identity[{network}]": f"identity similarity with the target, {network} DomainNetwork.similarity "
                                "(cosine, higher is better)",
        f"attributes[{network}]": f"attribute accuracy of the output against the true attributes, {network} "
                                  "DomainNetwork.predict, mean over attributes (higher is better)",
        "ms_per_image_fp32": f"wall time per image, batch {TIMING_BATCH}, fp32, median over the batches",
        f"fd[{network}]": f"Fréchet distance in {network} features (fd_features) between the outputs and rendered "
                          "synthfaces (lower is more synthfaces-like): emoji, and every face kind when the run has "
                          "out-of-domain kinds (photo-style, close-up) — their targets' reference is the rendered-face "
                          "column",
        "agreement": f"out of domain, per attribute: the share of faces whose hair colour, hair style, glasses "
                     f"(present or not), beard and skin tone tercile {network} reads on the output as in truth, and "
                     "the correlation of read and true yaw (evaluate.encoder.appearance_agreement)",
        "expression": f"emoji: share of the labelled emoji (data.emoji.EXPRESSIONS) whose drawn mouth {network} "
                      "reads on the output — smile > 0.6 smiling, < 0.4 frowning, else neutral; mouth_open > 0.35 "
                      "open",
    }


def machine_info(device: torch.device) -> dict[str, Any]:
    """Platform, CPU, torch version, threads and the bf16 flags the timing depends on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
        "cpu": cpu, "threads": torch.get_num_threads(), "device": str(device),
        "cpu_flags": {"amx": bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()),
                      "avx512_bf16": bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)())},
        "fast_bf16": cpu_has_fast_bf16() if device.type == "cpu" else True,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _fit(x: torch.Tensor, size: int) -> torch.Tensor:
    x = x.float()
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="area" if x.shape[-1] > size else "bilinear")


def _run_timed(method: EvalMethod, inputs: InputBatch, resolution: int, device: torch.device,
               batch: int = TIMING_BATCH) -> tuple[torch.Tensor, list[float]]:
    """The method's outputs for every input (fitted to ``resolution``, CPU float32) and seconds per image of each
    full batch (of every batch when none is full)."""
    outs, times, partial = [], [], []
    for start in range(0, len(inputs), batch):
        chunk = inputs.slice(start, start + batch)
        t0 = time.perf_counter()
        with autocast(device, "fp32"):
            y = method.translate(chunk)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        dt = (time.perf_counter() - t0) / len(chunk)
        (times if len(chunk) == batch else partial).append(dt)
        if y.ndim != 4 or y.shape[0] != len(chunk) or y.shape[1] != 3:
            raise ValueError(f"method {method.name!r} returned {tuple(y.shape)} for {len(chunk)} {inputs.kind} "
                             "inputs; expected [N, 3, H, W]")
        outs.append(_fit(y.detach().float().cpu(), resolution))
    return torch.cat(outs), times or partial


def _time_precision(method: EvalMethod, inputs: InputBatch, device: torch.device, precision: str,
                    repeats: int) -> float:
    """Milliseconds per image of ``method`` on a batch of `TIMING_BATCH` of ``inputs`` (items repeated when there
    are fewer), best of ``repeats`` after a warm-up (``repeats`` 1 and a warm-up at batch 1 when bf16 is emulated:
    seconds per batch there)."""
    idx = [i % len(inputs) for i in range(TIMING_BATCH)]
    chunk = InputBatch(inputs.kind, inputs.rgb[idx], inputs.raw[idx])
    slow = precision == "bf16" and device.type == "cpu" and not cpu_has_fast_bf16()
    with autocast(device, precision):
        method.translate(chunk.slice(0, 1) if slow else chunk)  # warm-up
    best = math.inf
    for _ in range(1 if slow else max(1, repeats)):
        t0 = time.perf_counter()
        with autocast(device, precision):
            method.translate(chunk)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - t0)
    return 1000 * best / TIMING_BATCH


@torch.no_grad()
def _face_metrics(out: torch.Tensor, inputs: InputBatch, net: Any, keys: dict[str, str],
                  device: torch.device, chunk: int = 64) -> dict[str, float]:
    assert inputs.target is not None and inputs.attributes is not None
    se, dist, ident, preds = [], [], [], {}
    for start in range(0, len(out), chunk):
        o = out[start : start + chunk].to(device)
        t = inputs.target[start : start + chunk].to(device)
        se.append((o - t).square().flatten(1).mean(1).cpu())
        dist.append(net.distance(o, t).float().cpu())
        ident.append(net.similarity(o, t).float().cpu())
        for k, v in net.predict(o).items():
            preds.setdefault(k, []).append(v.cpu())
    pred = {k: torch.cat(v) for k, v in preds.items()}
    acc = attribute_scores(pred, inputs.attributes)
    d, i, a = (k for k in keys if k.startswith(("distance[", "identity[", "attributes[")))
    return {"mse": float(torch.cat(se).mean()), d: float(torch.cat(dist).mean()),
            i: float(torch.cat(ident).mean()), a: sum(acc.values()) / len(acc),
            "attributes_per_attribute": acc, "agreement": appearance_agreement(pred, inputs.attributes)}


# The expression thresholds of the emoji measure (metric_keys["expression"]).
SMILE_BANDS = (0.4, 0.6)
MOUTH_OPEN_AT = 0.35


def expression_agreement(pred: dict[str, torch.Tensor], names: Sequence[str]) -> dict[str, Any]:
    """Agreement of the read smile / mouth_open with `data.emoji.EXPRESSIONS` over the labelled emoji among
    ``names`` (pred: ``DomainNetwork.predict`` on the outputs, in the order of ``names``)."""
    from stylebridge.data.emoji import EXPRESSIONS

    smile_hits, mouth_hits = [], []
    for j, name in enumerate(names):
        curve, mouth = EXPRESSIONS.get(name, (None, None))
        s = float(pred["smile"][j])
        read = "smile" if s > SMILE_BANDS[1] else "frown" if s < SMILE_BANDS[0] else "neutral"
        if curve is not None:
            smile_hits.append(read == curve)
        if mouth is not None:
            mouth_hits.append((float(pred["mouth_open"][j]) > MOUTH_OPEN_AT) == (mouth == "open"))
    rate = lambda h: sum(h) / len(h) if h else None  # noqa: E731
    return {"smile": rate(smile_hits), "mouth_open": rate(mouth_hits), "n_smile": len(smile_hits),
            "n_mouth_open": len(mouth_hits)}


def _resolve_methods(methods: Sequence[str | EvalMethod] | None, generator: str,
                     device: torch.device) -> list[EvalMethod]:
    if methods is None:
        methods = [name for name, spec in registered_methods().items() if spec.default]
    if not methods:
        raise ValueError("no methods to evaluate")
    parsed: list[EvalMethod | tuple[str, str | None]] = [
        m if isinstance(m, EvalMethod) else parse_method(m) for m in methods]  # all names checked before loading
    names = [m.name if isinstance(m, EvalMethod) else m[0] for m in parsed]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"method names must be unique, {', '.join(dup)} given twice (use LABEL=MODEL)")
    return [m if isinstance(m, EvalMethod) else build_method(m[0], m[1], generator, device) for m in parsed]


def _resolve_kinds(inputs: Sequence[str] | None) -> list[str]:
    kinds = list(INPUT_KINDS) if inputs is None else list(dict.fromkeys(inputs))
    bad = [k for k in kinds if k not in INPUT_KINDS]
    if bad:
        raise ValueError(f"unknown input kind {bad[0]!r}; choose from {', '.join(INPUT_KINDS)}")
    if not kinds:
        raise ValueError("no input kinds to evaluate")
    return kinds


@torch.no_grad()
def run_evaluation(
    generator: str = "synthfaces-64",
    methods: Sequence[str | EvalMethod] | None = None,
    inputs: Sequence[str] | None = None,
    n: int = 500,
    seed: int = HELD_OUT_SEED,
    domain: str | os.PathLike = "synthfaces-domain",
    device: str = "auto",
    timing_repeats: int = 2,
    font_path: str | os.PathLike | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    threads: int = 1,
) -> EvaluationResult:
    """Evaluate ``methods`` (registered names, ``LABEL=MODEL`` strings or built `EvalMethod` s; default: every
    registered default method) on ``inputs`` (`INPUT_KINDS`; default all) of ``n`` held-out synthfaces faces from
    ``seed`` (≥ `HELD_OUT_SEED`) at the generator's resolution. See the module docstring for the metrics.

    ``threads``: CPU threads for the run (restored afterwards; 0: torch's default, all cores). One by default: these
    batches of 8 at 64 px gain little from more, the figures do not depend on it, and on a machine shared with other
    work OpenMP's spinning threads make a run several times slower (``--n 16``: 33 s on one thread, 220 s on two, on
    a busy 2-core machine). The report records the count.

    Raises ValueError (one line) for unknown methods or inputs, n < 1, a seed in the training range, or a
    ``generator`` / ``domain`` of the wrong kind. ``log`` receives notes (skipped emoji, emulated bf16)."""
    if threads < 0:
        raise ValueError(f"--threads must be >= 0, got {threads}")
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _run(generator, methods, inputs, n, seed, domain, device, timing_repeats, font_path, progress, log)
    finally:
        torch.set_num_threads(before)


def _run(generator: str, methods: Sequence[str | EvalMethod] | None, inputs: Sequence[str] | None, n: int, seed: int,
         domain: str | os.PathLike, device: str, timing_repeats: int, font_path: str | os.PathLike | None,
         progress: bool, log: Callable[[str], None] | None) -> EvaluationResult:
    from stylebridge.formats.loading import load
    from stylebridge.models.domain import DomainNetwork
    from stylebridge.models.stylegan2 import StyleGAN2Generator

    t_start = time.perf_counter()
    if n < 1:
        raise ValueError(f"--n must be >= 1, got {n}")
    if seed < HELD_OUT_SEED:
        raise ValueError(f"--seed must be >= {HELD_OUT_SEED:,} (held-out faces; lower seeds are training faces), "
                         f"got {seed}")
    kinds = _resolve_kinds(inputs)
    dev = pick_device(device)
    G = load(generator, expect=StyleGAN2Generator)
    resolution = G.resolution
    del G
    built = _resolve_methods(methods, str(generator), dev)
    net_name = Path(str(domain)).name
    net = load(domain, expect=DomainNetwork)
    net = net.to(dev).eval()
    keys = metric_keys(net_name)
    machine = machine_info(dev)
    notes: list[str] = []
    say = log or (lambda _msg: None)
    if not machine["fast_bf16"]:
        notes.append("bf16 is emulated on this CPU (no AMX or AVX512-BF16): its times are slower than fp32 here and "
                     "say nothing about bf16 on a CPU that has them")
        say(notes[-1])

    results: dict[str, dict[str, dict[str, Any] | None]] = {m.name: {} for m in built}
    speed: dict[str, dict[str, Any]] = {}
    fp32_times: dict[str, list[float]] = {m.name: [] for m in built}
    input_info: dict[str, dict[str, Any]] = {}
    examples: dict[str, dict[str, torch.Tensor | None]] = {}
    emoji: dict[str, Any] | None = None
    seeds = list(range(seed, seed + n))
    fd = _FaceFD(net, net_name, resolution, n)
    fd_faces = any(k in OUT_OF_DOMAIN for k in kinds)  # FD for every face cell only in runs with these kinds
    bar = tqdm(total=len(kinds) * len(built), desc="evaluate", unit="cell", disable=not progress)
    for kind in kinds:
        if kind == "emoji":
            emoji = _emoji(built, results, examples, resolution, n, net, fd, font_path, dev, bar)
            if "skipped" in emoji:
                notes.append(f"emoji skipped: {emoji['skipped']}")
                say(notes[-1])
            continue
        batch = make_inputs(kind, seeds, resolution)
        assert batch.attributes is not None and batch.target is not None
        tgt_acc = attribute_scores(net.predict(batch.target[:512].to(dev)), {
            k: v[:512] for k, v in batch.attributes.items()})
        input_info[kind] = {"label": INPUT_LABELS[kind], "n": n, "seeds": [seed, seed + n - 1],
                            f"attributes[{net_name}]_on_targets": sum(tgt_acc.values()) / len(tgt_acc)}
        if fd_faces:
            input_info[kind][f"fd[{net_name}]_untranslated"] = fd(batch.rgb)
            input_info[kind]["agreement_untranslated"] = appearance_agreement(predict_attributes(net, batch.rgb),
                                                                              batch.attributes)
        examples[kind] = {"input": batch.rgb[0], "target": batch.target[0]}
        for m in built:
            bar.set_postfix_str(f"{m.name} × {kind}")
            if not m.takes(kind):
                results[m.name][kind] = None
                bar.update()
                continue
            if m.name not in speed:
                speed[m.name] = {"batch": TIMING_BATCH, "input": kind,
                                 "bf16_ms_per_image": _time_precision(m, batch, dev, "bf16", timing_repeats),
                                 "bf16_fast": machine["fast_bf16"]}
            out, times = _run_timed(m, batch, resolution, dev)
            fp32_times[m.name] += times
            cell = _face_metrics(out, batch, net, keys, dev)
            if fd_faces:
                cell[f"fd[{net_name}]"] = fd(out)
            cell["ms_per_image_fp32"] = 1000 * statistics.median(times)
            results[m.name][kind] = cell
            examples[kind][m.name] = out[0]
            bar.update()
    bar.close()
    for m in built:
        if m.name in speed:
            speed[m.name]["fp32_ms_per_image"] = 1000 * statistics.median(fp32_times[m.name]) if fp32_times[
                m.name] else None
    report: dict[str, Any] = {
        "report": "stylebridge evaluate", "version": REPORT_VERSION,
        "config": {"generator": str(generator), "resolution": resolution, "n": n, "first_seed": seed,
                   "seeds": [seed, seed + n - 1], "inputs": kinds, "methods": [m.name for m in built],
                   "network": net_name, "device": str(dev), "timing_batch": TIMING_BATCH},
        "machine": machine,
        "network": net_name,
        "metrics": keys,
        "inputs": input_info,
        "methods": {m.name: {"model": m.model, "network": m.network, "notes": m.notes, "kinds": sorted(
            m.kinds, key=INPUT_KINDS.index), "speed": speed.get(m.name)} for m in built},
        "results": results,
        "emoji": emoji,
        "notes": notes,
        "wall_s": round(time.perf_counter() - t_start, 2),
    }
    return EvaluationResult(report, examples)


class _FaceFD:
    """FD[<net>] of a set of images to ``min(5000, 10 n)`` rendered synthfaces (`metrics.frechet.REAL_SEEDS_A`): the
    reference of the emoji column and of every face cell in runs with out-of-domain kinds. The reference statistics
    are computed once, on first use, and shared by both."""

    def __init__(self, net: Any, net_name: str, resolution: int, n: int) -> None:
        from stylebridge.metrics.frechet import DomainFeatures

        self.feats = DomainFeatures(net, label=net_name)
        self.key = f"fd[{net_name}]"
        self.resolution = resolution
        self.n_real = min(5000, 10 * max(n, 2))
        self._real: Any = None

    @property
    def real(self) -> Any:
        if self._real is None:
            from stylebridge.metrics.frechet import stats_of_synthfaces

            self._real = stats_of_synthfaces(self.feats, self.n_real, self.resolution, progress=False)
        return self._real

    def stats(self, x: torch.Tensor) -> Any:
        from stylebridge.metrics.frechet import stats_of_images

        return stats_of_images(iter(x.clamp(-1, 1).split(64)), self.feats, len(x), progress=False)

    def __call__(self, x: torch.Tensor) -> float:
        from stylebridge.metrics.frechet import frechet_distance

        return frechet_distance(self.stats(x), self.real)


def _emoji(built: list[EvalMethod], results: dict, examples: dict, resolution: int, n: int, net: Any, fd: _FaceFD,
           font_path: str | os.PathLike | None, dev: torch.device, bar: Any) -> dict[str, Any]:
    """FD of each method's emoji translations to rendered synthfaces (module docstring); fills ``results``."""
    from stylebridge.metrics.frechet import REAL_SEEDS_A, REAL_SEEDS_B, frechet_distance, stats_of_synthfaces

    try:
        batch = emoji_inputs(resolution, count=max(2, n), font_path=font_path)
    except (FileNotFoundError, OSError) as exc:
        for m in built:
            results[m.name]["emoji"] = None
            bar.update()
        return {"skipped": str(exc).splitlines()[0]}
    floor = stats_of_synthfaces(fd.feats, len(batch), resolution, seed=REAL_SEEDS_B, progress=False)
    examples["emoji"] = {"input": batch.rgb[0], "target": None}
    for m in built:
        bar.set_postfix_str(f"{m.name} × emoji")
        if not m.takes("emoji"):
            results[m.name]["emoji"] = None
        else:
            out, times = _run_timed(m, batch, resolution, dev)
            results[m.name]["emoji"] = {fd.key: fd(out),
                                        "expression": expression_agreement(predict_attributes(net, out), batch.names),
                                        "ms_per_image_fp32": 1000 * statistics.median(times)}
            examples["emoji"][m.name] = out[0]
        bar.update()
    return {"metric": fd.feats.name, "n_emoji": len(batch), "n_real": fd.n_real, "real_seeds": REAL_SEEDS_A,
            "untranslated": fd(batch.rgb),
            "expression_untranslated": expression_agreement(predict_attributes(net, batch.rgb), batch.names),
            "floor": frechet_distance(floor, fd.real),
            "floor_note": f"{len(batch)} other rendered synthfaces (seeds from {REAL_SEEDS_B:,})"}
