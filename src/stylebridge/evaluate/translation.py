"""Evaluation of image translators on synthfaces (exact ground truth) and on the emoji set (out of domain).

A *translator* here is any function images [N, 3, S, S] in [-1, 1] → images [N, 3, R, R]: an
``ActivationMapTranslator`` (`translator_fn`), a pSp / e4e model (`translator_fn` too), or anything else, so several
systems are measured on the same inputs and shown side by side.

Inputs, all derived from held-out synthfaces faces (seeds from 10,000,000, never used in training), with the clean
rendered face as the target:

=================  ====================================================================================
kind               input
=================  ====================================================================================
reconstruction     the rendered face itself
sketch             its sketch (dark lines on white), as a gray RGB image
segmentation       its segmentation, painted with the fixed palette of ``data.export.SEG_PALETTE``
blur               the face blurred by a Gaussian of sigma = resolution / 32 px (2 px at 64 px)
=================  ====================================================================================

Figures: pixel MSE (images in [-1, 1]) and the perceptual distance of a domain network (``DomainNetwork.distance``,
the toolkit's LPIPS-style distance; every result names the network, e.g. ``distance[synthfaces-domain]``).
Outputs of another size than the targets are resized (area) to the target size first.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from stylebridge.core.imageio import save_grid
from stylebridge.core.seeds import HELD_OUT_SEED
from stylebridge.data import synthfaces as sf

__all__ = [
    "EVAL_KINDS",
    "HELD_OUT_SEED",
    "TranslateFn",
    "emoji_grid",
    "emoji_realism",
    "evaluate_translation",
    "evaluation_inputs",
    "results_table",
    "translation_grid",
    "translator_fn",
]

logger = logging.getLogger("stylebridge.metrics")

TranslateFn = Callable[[torch.Tensor], torch.Tensor]
EVAL_KINDS = ("reconstruction", "sketch", "segmentation", "blur")


def translator_fn(model: torch.nn.Module, batch_size: int = 32, **style: object) -> TranslateFn:
    """A `TranslateFn` for an ``ActivationMapTranslator`` (``style``: translate's w / seed / style_encoder /
    truncation_psi / noise_mode) or a pSp / e4e model (inputs resized to its input size, full-resolution output,
    constant noise). Runs in batches of ``batch_size`` without gradients; returns CPU float32 images."""
    from stylebridge.core.imageio import prepare_images
    from stylebridge.pipelines import pipeline_for

    pipe = pipeline_for(model)  # raises "no pipeline for X" for models that are not translators
    spec = pipe.input_spec
    if spec.kind not in ("rgb", "gray"):
        raise TypeError(f"translator_fn takes a model with an image input (RGB or gray), got {spec.kind!r} inputs")

    def run(x: torch.Tensor) -> torch.Tensor:
        # Any size, 1 or 3 channels in; the model's own channels and size out (pSp's outputs: full resolution).
        return pipe(prepare_images(x.to(pipe.device), spec.channels, spec.size), **style).images

    @torch.no_grad()
    def fn(images: torch.Tensor) -> torch.Tensor:
        return torch.cat([run(images[i : i + batch_size]).float().cpu() for i in range(0, len(images), batch_size)])

    return fn


def _palette_image(seg: torch.Tensor) -> torch.Tensor:
    """Labels [N, R, R] → RGB [N, 3, R, R] in [-1, 1] with the export palette."""
    from stylebridge.data.export import SEG_PALETTE

    pal = torch.tensor(SEG_PALETTE, dtype=torch.float32).view(-1, 3) / 127.5 - 1
    return pal[seg].permute(0, 3, 1, 2).contiguous()


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(3 * sigma + 0.5))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    y = F.pad(x, (radius,) * 4, mode="reflect")
    y = F.conv2d(y, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(y, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def evaluation_inputs(kind: str, seeds: Sequence[int], resolution: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs [N, 3, R, R], targets [N, 3, R, R]) in [-1, 1] for one of `EVAL_KINDS` and the faces of ``seeds``."""
    if kind not in EVAL_KINDS:
        raise ValueError(f"unknown evaluation input {kind!r}; choose from {', '.join(EVAL_KINDS)}")
    outputs = {"sketch": ("image", "sketch"), "segmentation": ("image", "seg")}.get(kind, ("image",))
    r = sf.render(sf.sample_attributes(list(seeds)), resolution, outputs)
    target = r["image"]
    if kind == "reconstruction":
        inp = target
    elif kind == "sketch":
        inp = r["sketch"].expand(-1, 3, -1, -1).contiguous()
    elif kind == "segmentation":
        inp = _palette_image(r["seg"])
    else:
        inp = _blur(target, resolution / 32).clamp(-1, 1)
    return inp, target


def _fit(x: torch.Tensor, size: int) -> torch.Tensor:
    x = x.float()
    if x.shape[-1] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="area" if x.shape[-1] > size else "bilinear")


@torch.no_grad()
def evaluate_translation(
    translate: TranslateFn,
    n: int = 256,
    resolution: int = 64,
    kinds: Sequence[str] = EVAL_KINDS,
    seed: int = HELD_OUT_SEED,
    domain: str | os.PathLike | torch.nn.Module = "synthfaces-domain",
    batch_size: int = 64,
) -> dict[str, dict[str, float]]:
    """Translate ``n`` held-out synthfaces inputs of each kind and compare with the rendered faces.

    Returns ``{kind: {"mse": …, "distance[<network>]": …}}`` plus ``{"_info": {...}}`` naming the network, the
    number of faces, the resolution and the first seed. ``domain`` is a shipped name, a native folder or a loaded
    ``DomainNetwork``.
    """
    from stylebridge.formats.loading import load
    from stylebridge.models.domain import DomainNetwork

    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if isinstance(domain, torch.nn.Module):
        net, label = domain, "domain-network"
    else:
        net, label = load(domain), Path(domain).name
    if not isinstance(net, DomainNetwork):
        raise TypeError(f"{domain}: not a DomainNetwork (got {type(net).__name__})")
    net = net.eval()
    key = f"distance[{label}]"
    results: dict[str, dict] = {}
    for kind in kinds:
        se, dist, count = 0.0, 0.0, 0
        for start in range(0, n, batch_size):
            seeds = range(seed + start, seed + min(n, start + batch_size))
            inp, target = evaluation_inputs(kind, seeds, resolution)
            out = _fit(translate(inp), resolution)
            se += float((out - target).square().mean(dim=(1, 2, 3)).sum())
            dist += float(net.distance(out.to(next(net.parameters()).device), target.to(
                next(net.parameters()).device)).sum())
            count += len(seeds)
        results[kind] = {"mse": se / count, key: dist / count}
    results["_info"] = {"network": label, "n": n, "resolution": resolution, "first_seed": seed}
    return results


@torch.no_grad()
def translation_grid(translators: Mapping[str, TranslateFn], path: str | os.PathLike, count: int = 6,
                     resolution: int = 64, kinds: Sequence[str] = EVAL_KINDS, seed: int = HELD_OUT_SEED) -> Path:
    """One PNG grid: for every kind ``count`` rows of input | each translator's output (in ``translators``' order)
    | the ground-truth face. Returns the path."""
    cells = []
    for kind in kinds:
        inp, target = evaluation_inputs(kind, range(seed, seed + count), resolution)
        cols = [inp] + [_fit(fn(inp), resolution) for fn in translators.values()] + [target]
        cells.append(torch.stack(cols, dim=1).flatten(0, 1))
    return save_grid(torch.cat(cells), path, nrow=len(translators) + 2)


def _emoji_images(resolution: int, font_path: str | os.PathLike | None, what: str) -> torch.Tensor | None:
    """The whole emoji set as images [N, 3, resolution, resolution] in [-1, 1], or None (logged, naming ``what``)
    when the emoji font is not installed."""
    from stylebridge.core.imageio import to_tensor
    from stylebridge.data.emoji import render_emoji

    try:
        emoji = render_emoji(resolution, font_path=font_path)
    except (FileNotFoundError, OSError) as exc:
        logger.warning("%s skipped: %s", what, exc)
        return None
    return torch.stack([to_tensor(img) for _, img in emoji])


@torch.no_grad()
def emoji_grid(translators: Mapping[str, TranslateFn], path: str | os.PathLike, count: int = 24,
               resolution: int = 64, columns: int = 2, font_path: str | os.PathLike | None = None) -> Path | None:
    """Grid of the emoji set (out of domain) through each translator: ``count`` emoji (spread evenly over the set),
    each as input | outputs, ``columns`` such groups per row. Returns the path, or None (with a log message) when
    the emoji font is not installed."""
    emoji = _emoji_images(resolution, font_path, "emoji grid")
    if emoji is None:
        return None
    step = max(1, len(emoji) // count)
    inp = emoji[::step][:count]
    cols = [inp] + [_fit(fn(inp), resolution) for fn in translators.values()]
    cells = torch.stack(cols, dim=1).flatten(0, 1)
    return save_grid(cells, path, nrow=(len(translators) + 1) * columns)


@torch.no_grad()
def emoji_realism(translators: Mapping[str, TranslateFn], resolution: int = 64, n_real: int = 5000,
                  domain: str | os.PathLike = "synthfaces-domain", font_path: str | os.PathLike | None = None,
                  batch_size: int = 64) -> dict[str, object] | None:
    """How far each translator's outputs for the *whole* emoji set lie from the synthfaces domain.

    Fréchet distance in the feature space of the domain network ``domain`` between the translations of every emoji
    (about 320, out of domain: no ground truth, so this measures how much the outputs look like synthfaces, not
    how faithful they are) and ``n_real`` rendered synthfaces (seeds from ``REAL_SEEDS_A``). Two references at the
    same sample size: the emoji themselves (untranslated) and as many other rendered synthfaces (seeds from
    ``REAL_SEEDS_B``), the floor a perfect translator could reach. Lower is more synthfaces-like; the values depend
    on the sample size (compare only within one call). Returns ``{"metric", "n_emoji", "n_real", "distances":
    {name: FD}}``, or None (with a log message) when the emoji font is not installed.
    """
    from stylebridge.metrics.frechet import (
        REAL_SEEDS_B,
        DomainFeatures,
        FeatureStats,
        frechet_distance,
        stats_of_images,
        stats_of_synthfaces,
    )

    inp = _emoji_images(resolution, font_path, "emoji realism")
    if inp is None:
        return None
    feats = DomainFeatures(domain)

    def stats(x: torch.Tensor) -> FeatureStats:
        return stats_of_images(x.split(batch_size), feats, len(x), progress=False)

    real = stats_of_synthfaces(feats, n_real, resolution, progress=False)
    floor = stats_of_synthfaces(feats, len(inp), resolution, seed=REAL_SEEDS_B, progress=False)
    out = {"emoji (untranslated)": frechet_distance(stats(inp), real),
           "rendered synthfaces (floor)": frechet_distance(floor, real)}
    for name, fn in translators.items():
        out[name] = frechet_distance(stats(_fit(fn(inp), resolution).clamp(-1, 1)), real)
    return {"metric": feats.name, "n_emoji": len(inp), "n_real": n_real, "distances": out}


def results_table(results: Mapping[str, Mapping[str, Mapping[str, float]]]) -> str:
    """A Markdown table of ``{system: evaluate_translation(...)}``: one row per system and input kind."""
    lines, key = [], None
    for system, res in results.items():
        for kind, vals in res.items():
            if kind.startswith("_"):
                continue
            if key is None:
                key = next(k for k in vals if k.startswith("distance"))
                lines += [f"| system | input | MSE | {key} |", "|---|---|---|---|"]
            lines.append(f"| {system} | {kind} | {vals['mse']:.4f} | {vals[key]:.4f} |")
    return "\n".join(lines)
