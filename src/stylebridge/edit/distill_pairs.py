"""Paired data for StyleGAN2 distillation (Viazovetskyi et al. 2020): the generator renders (before, after) pairs,
a classifier keeps the confident ones, and a feed-forward image-to-image network (pix2pixHD) learns them.

    from stylebridge.edit.distill_pairs import make_pairs
    make_pairs("synthfaces-64", "pairs/smile", direction="smile", count=5000)
    make_pairs("synthfaces-64", "pairs/glasses", attribute="glasses", count=5000)   # finds the direction first
    make_pairs("synthfaces-64", "pairs/blend", mode="blend", count=5000)

Modes:

* ``edit`` — per sample i (NVlabs z of seed ``seed + i``, w = map(z)): the triplet (source, w − c·d, w + c·d) along
  the direction d (given, or found for ``attribute`` with `edit.find.find_direction`, logistic regression by
  default as in the paper) on its layer rows (or ``layers``), c = ``coeff`` (default: the end of the direction's
  suggested strength range). The classifier (the domain network ``synthfaces-domain`` or the user's) reads the
  attribute on both renders; the pair is kept when the −c·d render is confidently on the negative side, the +c·d
  render confidently on the positive side, and their identity similarity (the classifier's embedding, the ArcFace
  role) is above a threshold.
* ``mix`` — style-mixing distillation: A (seed ``seed + 2i``), B (seed ``seed + 2i + 1``) and the mix, rows
  [0, k) from A and the rest from B (``crossover`` k; default num_ws / 2), as `StyleGAN2Generator.mix`.
* ``blend`` — blending distillation: A, B and the render of (w_A + w_B) / 2.

Mixing and blending keep every triplet (nothing to classify); their report gives the target's identity similarity
to A and to B.

Confidence. The attribute (e.g. "smile", "glasses", "hair_color=blonde:black", read as `edit.finders.parse_attribute`
reads it) has a positive and a negative side. For a continuous head with reading v in [0, 1] (decision midpoint
0.5), P(positive) = v and P(negative) = 1 − v; for a categorical head they are the softmax mass of the positive and
of the negative categories (for "glasses": not 'none' / 'none'; for "hair_color=blonde:black": 'blonde' / 'black').
A render is on the side whose probability is above 0.5 (else on neither). Its *confidence* is the probability of
the side it should be on (the −c·d render: negative; the +c·d render: positive) — for a continuous head, ½ plus how
far the reading is past the midpoint on that side. A pair is kept when both confidences are ≥ ``min_confidence``
(> 0.5, so kept renders are on opposite sides, each on its own) and identity(−c·d, +c·d) ≥ the identity threshold:
``min_identity``, or by default the ``identity_quantile`` quantile (10 %) of this run's identities — the
embedding's similarity scale differs widely between attributes (a smile keeps ~0.95, new glasses ~0.2), so the
default drops the pairs that drift most rather than using one number for every attribute. Renders are quantised
to 8 bits before the classifier reads them, so the report describes exactly the images written.

Layout of ``out`` (only kept triplets have images; names are the sample index, six digits):

    source/000000.png    the pair's input:  edit — the −c·d render;  mix / blend — A
    source2/000000.png   mix / blend: B (A and B together are the 6-channel input)
    target/000000.png    the pair's output: edit — the +c·d render;  mix — the mix;  blend — the blend
    source/000000_rev.png, target/000000_rev.png   edit with ``both_directions``: the reverse pair (+c·d → −c·d)
    pairs.jsonl          one JSON object per rendered triplet, kept or not (seeds, readings, confidences, identity,
                         kept, why not, files)
    report.json          settings, counts, kept fraction, thresholds, histograms (the counts behind histograms.png)
    report.md            the same for people
    histograms.png       confidence of the −c·d and +c·d renders (edit), identity
    preview.png          the first (up to) 8 triplets, one per row: source | −c·d | +c·d, or A | B | target
    direction/           edit: the direction used, native (``stylebridge.load``-able; found or given)

``source/`` and ``target/`` pair by name as `stylebridge.data.paired.pair_files` pairs folders, so the paired-folder
readers (`stylebridge.data.paired.FolderPairs`) train on them as they are.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from stylebridge.core.atomic import atomic_write, atomic_write_text, check_writable_dir
from stylebridge.core.device import pick_device
from stylebridge.core.imageio import make_grid, save_image
from stylebridge.core.seeds import seed_to_z
from stylebridge.edit.finders import _choices, _head_slices, generator_digest, parse_attribute
from stylebridge.edit.resolve import resolve_direction
from stylebridge.formats.loading import load, load_generator
from stylebridge.models.direction import Direction, GanSpaceComponents, parse_layers
from stylebridge.models.domain import DomainNetwork
from stylebridge.models.stylegan2 import StyleGAN2Generator

__all__ = ["MODES", "PairsResult", "make_pairs"]

logger = logging.getLogger("stylebridge.edit")

MODES = ("edit", "mix", "blend")
REPORT_VERSION = 1
PREVIEW_ROWS = 8
HIST_BINS = 20
_OUTPUTS = ("source", "source2", "target", "direction", "pairs.jsonl", "report.json", "report.md", "histograms.png",
            "preview.png")


@dataclass
class PairsResult:
    """What `make_pairs` did: ``rendered`` triplets, ``kept`` of them, ``written`` pairs on disk (2 per kept triplet
    with ``both_directions``), and the JSON report (also in ``out/report.json``)."""

    out: Path
    rendered: int
    kept: int
    written: int
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def kept_fraction(self) -> float:
        return self.kept / self.rendered if self.rendered else 0.0


@dataclass(frozen=True)
class _Judge:
    """Reads one attribute's two sides from a domain network's raw head outputs."""

    net: DomainNetwork
    spec: str
    head: str
    pos: int | None
    neg: int | None

    @classmethod
    def make(cls, net: DomainNetwork, spec: str) -> _Judge:
        head, pos, neg = parse_attribute(net, spec)
        return cls(net, spec, head, pos, neg)

    @property
    def categories(self) -> list[str] | None:
        k = dict(self.net.config.heads)[self.head]
        return None if k == 1 else _choices(self.head, k)

    def sides(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(P(positive) [N], P(negative) [N], reading [N]: the continuous value or the category index)."""
        chunk = self.net(images)[:, _head_slices(self.net)[self.head]].float()
        if chunk.shape[1] == 1:
            v = torch.sigmoid(chunk[:, 0])
            return v, 1 - v, v
        p = chunk.softmax(dim=1)
        if self.pos is not None:
            p_pos = p[:, self.pos]
            p_neg = p[:, self.neg] if self.neg is not None else 1 - p_pos
        else:  # any category but `neg` against `neg`
            p_neg = p[:, self.neg]
            p_pos = 1 - p_neg
        return p_pos, p_neg, chunk.argmax(dim=1).float()


def _quantise(images: torch.Tensor) -> torch.Tensor:
    """Images as the 8-bit PNGs hold them (`core.imageio.to_uint8`'s rounding), back in [-1, 1]."""
    return (images.float() * 127.5 + 128).clamp(0, 255).floor().div(127.5).sub(1)


def _side(p_pos: float, p_neg: float) -> str:
    return "positive" if p_pos > 0.5 else "negative" if p_neg > 0.5 else "neither"


def _span(values: Sequence[float]) -> tuple[float, float]:
    """A histogram range around ``values`` (identities spread over 0.05 for one attribute and 1.0 for another)."""
    lo, hi = min(values), max(values)
    pad = max(0.01, 0.02 * (hi - lo))
    return round(lo - pad, 3), round(hi + pad, 3)


def _histogram(values: Sequence[float], low: float, high: float) -> dict[str, list]:
    """Counts of ``values`` in HIST_BINS equal bins from ``low`` to ``high`` (values outside: the end bins)."""
    t = torch.tensor(list(values), dtype=torch.float64).clamp(low, high)
    counts = torch.histc(t, bins=HIST_BINS, min=low, max=high) if len(t) else torch.zeros(HIST_BINS)
    edges = torch.linspace(low, high, HIST_BINS + 1)
    return {"edges": [round(float(e), 4) for e in edges], "counts": [int(c) for c in counts]}


def _prepare_out(out: Path, overwrite: bool) -> None:
    check_writable_dir(out)
    present = [name for name in _OUTPUTS if (out / name).exists()]
    if present and not overwrite:
        raise FileExistsError(f"{out}: already holds pairs ({', '.join(present)}); choose another folder or "
                              "overwrite (--overwrite)")
    for name in present:
        p = out / name
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _given_direction(G: StyleGAN2Generator, direction: Direction | GanSpaceComponents | str | os.PathLike,
                     attribute: str | None) -> tuple[Direction, str]:
    """The given direction (resolved, checked against G) and the attribute spec the classifier judges."""
    d = resolve_direction(direction, generator=G)
    spec = attribute or d.config.attribute
    if not spec:
        raise ValueError(f"direction {d.name!r} does not say which attribute it edits: give the attribute the "
                         "classifier should read (--attribute, e.g. smile or hair_color=blonde:black)")
    if d.config.w_dim != G.w_dim or (d.config.num_ws and d.config.num_ws != G.num_ws):
        raise ValueError(f"direction {d.name!r} is for w_dim {d.config.w_dim}"
                         + (f", {d.config.num_ws} W+ rows" if d.config.num_ws else "")
                         + f"; the generator has w_dim {G.w_dim}, {G.num_ws} rows")
    if d.config.layers is not None:
        parse_layers(list(d.config.layers), G.num_ws)
    return d, spec


def _found_direction(G: StyleGAN2Generator, gname: str, net: DomainNetwork, attribute: str,
                     layers: tuple[int, ...] | None, method: str, samples: int, fraction: float, seed: int,
                     progress: bool) -> Direction:
    """A direction for ``attribute`` found on G with the classifier (`edit.find.find_direction`)."""
    from stylebridge.edit.find import find_direction

    d = find_direction(G, method, attribute=attribute, classifier=net, samples=samples, fraction=fraction, seed=seed,
                       progress=progress, layers=",".join(map(str, layers)) if layers is not None else None)
    assert isinstance(d, Direction)
    d.config = replace(d.config, generator=gname)
    return d


@torch.no_grad()
def make_pairs(generator: str | os.PathLike | StyleGAN2Generator, out: str | os.PathLike, *, mode: str = "edit",
               direction: Direction | GanSpaceComponents | str | os.PathLike | None = None,
               attribute: str | None = None, count: int = 1000, coeff: float | None = None,
               layers: str | Sequence[int] | None = None,
               classifier: str | os.PathLike | DomainNetwork = "synthfaces-domain", min_confidence: float = 0.75,
               min_identity: float | None = None, identity_quantile: float = 0.1, crossover: int | None = None,
               both_directions: bool = False, find_method: str = "logistic", find_samples: int = 5000,
               find_fraction: float = 0.02, seed: int = 0, truncation_psi: float = 1.0, batch_size: int = 16,
               device: str = "auto", overwrite: bool = False, progress: bool = True) -> PairsResult:
    """Render ``count`` triplets with ``generator`` and write the kept pairs to ``out`` (layout: module docstring).

    Args:
        generator: a StyleGAN2 generator (shipped name, checkpoint, native folder) or a loaded one.
        mode: "edit" (attribute pairs), "mix" (style mixing) or "blend" (latent average).
        direction: edit: a `Direction`, a file / folder, a shipped direction's full or short name ("smile"); GANSpace
            components are not taken (give one component's direction).
        attribute: edit: what the classifier judges (default: the direction's own ``config.attribute``); without
            ``direction``, the direction is found for it (``find_method`` on ``find_samples`` sampled faces,
            ``find_fraction`` most confident at each end; see `edit.find.find_direction`).
        count: triplets rendered (the kept ones are fewer: see the report).
        coeff: strength c of the ±c·d edit (default: the end of the direction's suggested strength range).
        layers: W+ rows the edit moves ("a-b", "a,b", "all"; default: the direction's own).
        classifier: the domain network that reads the attribute and the identity (name, folder or loaded).
        min_confidence: edit: the probability each render must give the side it should be on, in (0.5, 1).
        min_identity: edit: the identity similarity (in [-1, 1]) a pair needs; None: the ``identity_quantile``
            quantile of this run's identities (0: keep any identity).
        crossover: mix: the first W+ row taken from B (1 … num_ws − 1; default num_ws // 2).
        both_directions: edit: also write the reverse pair (+c·d → −c·d) of every kept triplet (an edit that
            toggles the attribute, as the paper's gender swap).
        seed: the first NVlabs seed (sample i: seed + i; mix / blend: seed + 2i and seed + 2i + 1); also seeds the
            direction finder.
        truncation_psi: truncation of the sampled w towards w_avg.
        overwrite: replace the outputs of an earlier run in ``out`` (else that is an error).

    Returns:
        a `PairsResult` (counts and the report written to ``out/report.json``).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    if mode == "edit":
        if direction is None and attribute is None:
            raise ValueError("mode edit needs a direction (--direction) or an attribute to find one for "
                             "(--attribute)")
        if crossover is not None:
            raise ValueError("crossover applies to mode mix")
        if not 0.5 < min_confidence < 1:
            raise ValueError(f"min_confidence must be in (0.5, 1), got {min_confidence}")
        if min_identity is None and not 0 <= identity_quantile < 1:
            raise ValueError(f"identity_quantile must be in [0, 1), got {identity_quantile}")
        if coeff is not None and not coeff > 0:
            raise ValueError(f"coeff must be > 0, got {coeff}")
    else:
        given = [n for n, v in (("direction", direction), ("attribute", attribute), ("coeff", coeff),
                                ("layers", layers)) if v is not None] + (["both_directions"] if both_directions else [])
        if given:
            raise ValueError(f"{', '.join(given)}: only for mode edit, not {mode}")
        if crossover is not None and mode != "mix":
            raise ValueError("crossover applies to mode mix")
    dst = Path(out)
    check_writable_dir(dst)  # fail fast, before loading anything

    loaded = isinstance(generator, StyleGAN2Generator)
    G = generator if loaded else load_generator(generator, what="--generator")
    gname = generator_digest(G, "" if loaded else str(generator))
    cname = "domain network (given)" if isinstance(classifier, DomainNetwork) else str(classifier)
    net = (classifier if isinstance(classifier, DomainNetwork) else load(classifier, expect=DomainNetwork)).eval()
    rows = parse_layers(layers, G.num_ws) if layers is not None else None
    if mode == "mix":
        crossover = G.num_ws // 2 if crossover is None else crossover
        if not 1 <= crossover < G.num_ws:
            raise ValueError(f"crossover must be in [1, {G.num_ws - 1}] (the first W+ row taken from B), got "
                             f"{crossover}")
    d, spec, judge = None, "", None
    if mode == "edit":  # a wrong direction or attribute fails here, before anything is written or sampled
        if direction is not None:
            d, spec = _given_direction(G, direction, attribute)
        else:
            if find_method not in ("logistic", "interfacegan", "meandiff"):
                raise ValueError(f"find_method must be logistic, interfacegan or meandiff, got {find_method!r}")
            spec = str(attribute)
        judge = _Judge.make(net, spec)
    _prepare_out(dst, overwrite)

    settings: dict[str, Any] = {"mode": mode, "generator": gname, "classifier": cname, "count": count, "seed": seed,
                                "truncation_psi": truncation_psi}
    if mode == "edit":
        if d is None:
            d = _found_direction(G, gname, net, spec, rows, find_method, find_samples, find_fraction, seed, progress)
        coeff = float(coeff if coeff is not None else d.config.strength_range[1])
        used_rows = rows if rows is not None else d.config.layers
        d.save_pretrained(dst / "direction")
        settings.update({"direction": d.name, "direction_method": d.config.method, "attribute": spec,
                         "categories": judge.categories, "coeff": coeff,
                         "layers": list(used_rows) if used_rows is not None else "all",
                         "found": direction is None, "min_confidence": min_confidence,
                         "min_identity": min_identity, "identity_quantile": identity_quantile if min_identity is None
                         else None, "both_directions": both_directions})
        if direction is None:
            settings["find"] = {"method": find_method, "samples": find_samples, "fraction": find_fraction,
                                "notes": d.config.notes}
    elif mode == "mix":
        settings["crossover"] = crossover

    dev = pick_device(device)
    G.to(dev)
    net.to(dev)
    records: list[dict[str, Any]] = []
    preview: list[torch.Tensor] = []
    label = d.name if d is not None else mode
    with tqdm(total=count, desc=f"pairs ({label})", unit="triplet", disable=not progress) as bar:
        for start in range(0, count, batch_size):
            idx = list(range(start, min(count, start + batch_size)))
            if mode == "edit":
                recs, rows_img = _edit_batch(G, d, judge, coeff, rows, idx, seed, truncation_psi, min_confidence,
                                             min_identity, dev)
            else:
                recs, rows_img = _mix_batch(G, net, mode, crossover, idx, seed, truncation_psi, dev)
            for r, imgs in zip(recs, rows_img):
                if len(preview) < PREVIEW_ROWS:
                    preview.append(torch.stack(imgs[:3]))
                if r["kept"]:
                    _write(dst, r, imgs, mode, both_directions)
            records += recs
            bar.update(len(idx))

    identity_threshold = min_identity
    if mode == "edit" and min_identity is None:
        # the run's own quantile: known only now, so the pairs below it are taken back
        ids = torch.tensor([r["identity"] for r in records], dtype=torch.float64)
        identity_threshold = float(torch.quantile(ids, identity_quantile)) if identity_quantile > 0 else -1.0
        for r in records:
            if r["identity"] < identity_threshold:
                r["reject"].append("identity")
                if r["kept"]:
                    r["kept"] = False
                    for f in r.pop("files").values():
                        (dst / f).unlink()

    report = _report(settings, records, identity_threshold, both_directions)
    atomic_write_text(dst / "pairs.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    atomic_write_text(dst / "report.json", json.dumps(report, indent=2) + "\n")
    _histograms_png(report, dst / "histograms.png")
    save_image(make_grid(torch.cat(preview).clamp(-1, 1), nrow=3), dst / "preview.png")
    atomic_write_text(dst / "report.md", _markdown(report, records))
    kept = report["counts"]["kept"]
    if not kept:
        logger.warning("no pair kept of %d: see %s; a larger coefficient (--coeff) or a lower --min-confidence keeps "
                       "more", count, dst / "report.md")
    return PairsResult(dst, count, kept, report["counts"]["pairs_written"], report)


def _sample_w(G: StyleGAN2Generator, seeds: list[int], truncation_psi: float, dev: torch.device) -> torch.Tensor:
    return G.map(seed_to_z(seeds, G.z_dim).to(dev), truncation_psi)


def _render(G: StyleGAN2Generator, w: torch.Tensor) -> torch.Tensor:
    return _quantise(G.synthesize(w, noise_mode="const").clamp(-1, 1))


def _edit_batch(G: StyleGAN2Generator, d: Direction, judge: _Judge, coeff: float, rows: tuple[int, ...] | None,
                idx: list[int], seed: int, truncation_psi: float, min_confidence: float, min_identity: float | None,
                dev: torch.device) -> tuple[list[dict[str, Any]], list[list[torch.Tensor]]]:
    seeds = [seed + i for i in idx]
    wp = G.broadcast_ws(_sample_w(G, seeds, truncation_psi, dev))
    orig = _render(G, wp)
    minus = _render(G, d.apply(wp, -coeff, rows))
    plus = _render(G, d.apply(wp, coeff, rows))
    readings = [judge.sides(x) for x in (orig, minus, plus)]
    identity = judge.net.similarity(minus, plus).float().cpu()
    cat = judge.categories
    recs, imgs = [], []
    for j, (i, s) in enumerate(zip(idx, seeds)):
        r: dict[str, Any] = {"index": i, "seed": s}
        for key, (p_pos, p_neg, reading) in zip(("original", "minus", "plus"), readings):
            pp, pn, v = float(p_pos[j]), float(p_neg[j]), float(reading[j])
            r[key] = {"reading": cat[int(v)] if cat else round(v, 5), "p_positive": round(pp, 5),
                      "p_negative": round(pn, 5), "side": _side(pp, pn)}
        r["minus"]["confidence"] = r["minus"]["p_negative"]
        r["plus"]["confidence"] = r["plus"]["p_positive"]
        r["identity"] = round(float(identity[j]), 5)
        r["reject"] = [f"{k} side" for k in ("minus", "plus") if r[k]["confidence"] < min_confidence]
        if min_identity is not None and r["identity"] < min_identity:
            r["reject"].append("identity")
        r["kept"] = not r["reject"]
        recs.append(r)
        imgs.append([orig[j].cpu(), minus[j].cpu(), plus[j].cpu()])
    return recs, imgs


def _mix_batch(G: StyleGAN2Generator, net: DomainNetwork, mode: str, crossover: int | None, idx: list[int],
               seed: int, truncation_psi: float,
               dev: torch.device) -> tuple[list[dict[str, Any]], list[list[torch.Tensor]]]:
    seeds_a, seeds_b = [seed + 2 * i for i in idx], [seed + 2 * i + 1 for i in idx]
    wa, wb = _sample_w(G, seeds_a, truncation_psi, dev), _sample_w(G, seeds_b, truncation_psi, dev)
    a, b = _render(G, wa), _render(G, wb)
    target = _render(G, G.mix(wa, wb, crossover) if mode == "mix" else (wa + wb) / 2)
    id_a, id_b = net.similarity(target, a).float().cpu(), net.similarity(target, b).float().cpu()
    recs = [{"index": i, "seed_a": sa, "seed_b": sb, "identity_a": round(float(id_a[j]), 5),
             "identity_b": round(float(id_b[j]), 5), "reject": [], "kept": True}
            for j, (i, sa, sb) in enumerate(zip(idx, seeds_a, seeds_b))]
    return recs, [[a[j].cpu(), b[j].cpu(), target[j].cpu()] for j in range(len(idx))]


def _write(dst: Path, r: dict[str, Any], imgs: list[torch.Tensor], mode: str, both_directions: bool) -> None:
    name = f"{r['index']:06d}"
    files = {"source": f"source/{name}.png", "target": f"target/{name}.png"}
    if mode == "edit":
        _, minus, plus = imgs
        pairs = [(minus, plus)]
        if both_directions:
            files.update({"source_rev": f"source/{name}_rev.png", "target_rev": f"target/{name}_rev.png"})
            pairs.append((plus, minus))
        for (src, tgt), (fs, ft) in zip(pairs, [("source", "target"), ("source_rev", "target_rev")]):
            save_image(src, dst / files[fs])
            save_image(tgt, dst / files[ft])
    else:
        a, b, target = imgs
        files["source2"] = f"source2/{name}.png"
        save_image(a, dst / files["source"])
        save_image(b, dst / files["source2"])
        save_image(target, dst / files["target"])
    r["files"] = files


def _report(settings: dict[str, Any], records: list[dict[str, Any]], identity_threshold: float | None,
            both_directions: bool) -> dict[str, Any]:
    n = len(records)
    kept = sum(r["kept"] for r in records)
    counts: dict[str, Any] = {"rendered": n, "kept": kept, "kept_fraction": round(kept / n, 5),
                              "pairs_written": kept * (2 if both_directions else 1)}
    report: dict[str, Any] = {"version": REPORT_VERSION, "settings": settings, "counts": counts}
    if settings["mode"] == "edit":
        counts["rejected"] = {why: sum(why in r["reject"] for r in records)
                              for why in ("minus side", "plus side", "identity")}
        ids = [r["identity"] for r in records]
        report["identity_threshold"] = round(identity_threshold, 5) if identity_threshold is not None else None
        report["means"] = {
            "identity": round(sum(ids) / n, 5),
            "identity_kept": round(sum(r["identity"] for r in records if r["kept"]) / kept, 5) if kept else None,
            "confidence_minus": round(sum(r["minus"]["confidence"] for r in records) / n, 5),
            "confidence_plus": round(sum(r["plus"]["confidence"] for r in records) / n, 5)}
        report["histograms"] = {"confidence_minus": _histogram([r["minus"]["confidence"] for r in records], 0, 1),
                                "confidence_plus": _histogram([r["plus"]["confidence"] for r in records], 0, 1),
                                "identity": _histogram(ids, *_span([*ids, identity_threshold]))}
    else:
        report["means"] = {k: round(sum(r[k] for r in records) / n, 5) for k in ("identity_a", "identity_b")}
        span = _span([r[k] for r in records for k in ("identity_a", "identity_b")])
        report["histograms"] = {k: _histogram([r[k] for r in records], *span) for k in ("identity_a", "identity_b")}
    return report


def _histograms_png(report: dict[str, Any], path: Path) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hists = report["histograms"]
    s = report["settings"]
    edit = s["mode"] == "edit"
    panels = [("confidence_minus", "confidence_plus"), ("identity",)] if edit else [("identity_a", "identity_b")]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.0 * len(panels), 3.4), squeeze=False)
    for ax, keys in zip(axes[0], panels):
        for j, key in enumerate(keys):
            h = hists[key]
            e = h["edges"]
            width = (e[1] - e[0]) / len(keys)
            ax.bar([x + j * width for x in e[:-1]], h["counts"], width, align="edge", label=key.replace("_", " "),
                   color=f"C{j}")
        if edit:
            thr = s["min_confidence"] if keys[0].startswith("confidence") else report["identity_threshold"]
            ax.axvline(thr, color="k", ls="--", lw=1, label=f"threshold {thr:.3g}")
        ax.set_xlabel("P(the side it should be on)" if keys[0].startswith("confidence") else "identity similarity")
        ax.set_ylabel("triplets")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    what = f"{s['direction']} ±{s['coeff']:g}" if edit else s["mode"]
    fig.suptitle(f"distillation pairs — {what}: kept {report['counts']['kept']} of {report['counts']['rendered']}",
                 fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    atomic_write(path, lambda p: p.write_bytes(buf.getvalue()))


def _markdown(report: dict[str, Any], records: list[dict[str, Any]]) -> str:
    s, c = report["settings"], report["counts"]
    lines = [f"# Distillation pairs ({s['mode']})", "",
             f"Generator `{s['generator']}`, {c['rendered']} triplets from seed {s['seed']}, truncation "
             f"{s['truncation_psi']:g}; classifier `{s['classifier']}` (attribute readings and identity).", ""]
    if s["mode"] == "edit":
        found = (f"found for `{s['attribute']}` ({s['find']['method']}, {s['find']['samples']} samples)"
                 if s["found"] else "given")
        rej = c["rejected"]
        lines += [f"Direction `{s['direction']}` ({s['direction_method']}, {found}), layers {s['layers']}, "
                  f"coefficient ±{s['coeff']:g}; judged attribute `{s['attribute']}`.", "",
                  f"**Kept {c['kept']} of {c['rendered']} ({c['kept_fraction']:.1%})**, {c['pairs_written']} pairs "
                  f"written (source = −c·d render, target = +c·d render"
                  + (", and the reverse" if s["both_directions"] else "") + ").", "",
                  "| filter | threshold | rejected |", "|---|---|---|",
                  f"| −c·d render on the negative side | P ≥ {s['min_confidence']:g} | {rej['minus side']} |",
                  f"| +c·d render on the positive side | P ≥ {s['min_confidence']:g} | {rej['plus side']} |",
                  f"| identity(−c·d, +c·d) | ≥ {report['identity_threshold']:.4g}"
                  + (f" ({s['identity_quantile']:.0%} quantile of this run)" if s["min_identity"] is None else "")
                  + f" | {rej['identity']} |", "",
                  "(A triplet can fail several filters.) Mean confidence: −c·d "
                  f"{report['means']['confidence_minus']:.3f}, +c·d {report['means']['confidence_plus']:.3f}; mean "
                  f"identity {report['means']['identity']:.3f} (kept: "
                  + (f"{report['means']['identity_kept']:.3f}" if report["means"]["identity_kept"] is not None
                     else "none") + ")."]
    else:
        extra = f" at crossover {s['crossover']}" if s["mode"] == "mix" else " ((w_A + w_B) / 2)"
        lines += [f"Targets: {s['mode']}{extra}; every triplet kept ({c['kept']}). Mean identity of the target to A "
                  f"{report['means']['identity_a']:.3f}, to B {report['means']['identity_b']:.3f}."]
    lines += ["", "![histograms](histograms.png)", "",
              "Preview, the first triplets (" + ("source | −c·d | +c·d" if s["mode"] == "edit" else "A | B | target")
              + ")" + ("; kept: " + ", ".join("yes" if r["kept"] else "no" for r in records[:PREVIEW_ROWS])
                       if s["mode"] == "edit" else "") + ":", "", "![preview](preview.png)"]
    lines += ["", "Per triplet: `pairs.jsonl`; numbers: `report.json`."]
    return "\n".join(lines) + "\n"
