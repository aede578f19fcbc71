"""`find_direction`: one call from a generator and a method to a saved `Direction` (or GANSpace components) —
what ``stylebridge directions find`` runs."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch

from stylebridge.edit.finders import (
    attribute_scores,
    find_ganspace,
    find_guided,
    find_supervised,
    generator_digest,
    labels_from_csv,
    measure_per_unit,
    render_scores,
    sample_w,
    seeds_to_w,
)
from stylebridge.edit.sefa import sefa_direction
from stylebridge.formats.loading import load, load_generator
from stylebridge.models.direction import Direction, GanSpaceComponents
from stylebridge.models.domain import DomainNetwork
from stylebridge.models.stylegan2 import StyleGAN2Generator

__all__ = ["FIND_METHODS", "find_direction"]

FIND_METHODS = ("interfacegan", "logistic", "meandiff", "guided", "ganspace", "sefa")


def find_direction(generator: str | os.PathLike | StyleGAN2Generator, method: str, *, attribute: str | None = None,
                   labels_csv: str | os.PathLike | None = None,
                   classifier: str | os.PathLike | DomainNetwork = "synthfaces-domain",
                   samples: int = 20_000, fraction: float = 0.02, conditions: Sequence[str | os.PathLike] = (),
                   layers: str | None = None, component: int = 0, components: int = 32, seed: int = 0,
                   name: str | None = None, steps: int = 150, precision: str = "auto",
                   progress: bool = True) -> Direction | GanSpaceComponents:
    """Find a direction on ``generator`` (path, shipped name or a loaded `StyleGAN2Generator`).

    * interfacegan / logistic / meandiff: ``attribute`` scored by ``classifier`` (a domain network: the shipped
      synthfaces-domain or the user's) on ``samples`` rendered w, or ``labels_csv`` (seed,label rows) instead;
      ``conditions``: direction files whose attributes must stay unchanged.
    * ganspace: the PCA components of ``samples`` w (a `GanSpaceComponents`; pick one with ``.direction(k)``).
    * guided: the interfacegan direction, refined for ``steps`` through the generator and the classifier
      (`edit.finders.find_guided`: the attribute moves, the classifier's other heads and identity stay); needs
      ``attribute``. ``precision``: the generator's autocast there ("auto": bf16 where the CPU has it fast).
    * sefa: eigenvector ``component`` of the modulation weights of ``layers`` (default "all").
    """
    if method not in FIND_METHODS:
        raise ValueError(f"method must be one of {', '.join(FIND_METHODS)}, got {method!r}")
    loaded = isinstance(generator, StyleGAN2Generator)
    G = generator if loaded else load_generator(generator, what="--generator")
    gname = generator_digest(G, "" if loaded else str(generator))
    if method == "sefa":
        return sefa_direction(G, component, layers or "all", name=name, generator_name=gname)
    if method == "ganspace":
        return find_ganspace(G, samples, components, seed, generator_name="" if loaded else str(generator))
    if (attribute is None) == (labels_csv is None):
        raise ValueError(f"method {method} needs exactly one of --attribute (scored by the classifier) or --labels-csv")
    if labels_csv is not None:
        seeds, scores = labels_from_csv(labels_csv)
        w = seeds_to_w(G, seeds)
        label_text = f"csv:{Path(labels_csv).name}"
    else:
        net = (classifier if isinstance(classifier, DomainNetwork) else load(classifier, expect=DomainNetwork)).eval()
        w = sample_w(G, samples, seed)
        scores = render_scores(G, w, lambda im: attribute_scores(net, im.to(torch.float32), attribute),
                               progress=progress)
        cname = "domain network" if isinstance(classifier, DomainNetwork) else Path(str(classifier)).name
        label_text = f"{cname}:{attribute}"
    if method == "guided" and attribute is None:
        raise ValueError("method guided needs --attribute (it optimises through the classifier's heads)")
    conds = [load(c, expect=Direction) for c in conditions]
    d = find_supervised(w, scores, "interfacegan" if method == "guided" else method, fraction=fraction,
                        conditions=conds,
                        name=name or (attribute or Path(str(labels_csv)).stem).split("=")[0],
                        labels=label_text, generator=gname, layers=layers, seed=seed)
    if method == "guided":
        from stylebridge.core.device import resolve_precision

        d = find_guided(G, net, attribute, start=d, steps=steps, layers=layers, name=d.name, generator=gname,
                        labels=label_text,
                        seed=seed, precision=resolve_precision(precision, G.w_avg.device), progress=progress)
    if attribute is not None:
        # How fast the classifier's score moves along it, on faces apart from the ones it was found on: lets an
        # edit ask for an amount of change (Direction.strength_for) and the editing evaluation set strengths.
        rate = measure_per_unit(G, d, lambda im: attribute_scores(net, im.to(torch.float32), attribute),
                                seed=seed + 1)
        d.config = replace(d.config, attribute=attribute, per_unit=round(rate, 6))
    return d
