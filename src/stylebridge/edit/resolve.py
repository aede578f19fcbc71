"""Directions by name: the directions shipped with this installation, and `resolve_direction`, which turns a
`Direction`, GANSpace components, a file / folder, a shipped direction's full name or its short name ("smile") into
one `Direction`. Used by editing (`stylebridge.invert.edit_folder`), the editing evaluation and the distillation
pairs (`stylebridge.edit.distill_pairs`)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from stylebridge.core import registry
from stylebridge.edit.finders import generator_digest
from stylebridge.formats.loading import load
from stylebridge.models.direction import Direction, GanSpaceComponents
from stylebridge.models.stylegan2 import StyleGAN2Generator

__all__ = ["resolve_direction", "shipped_directions"]

_DIRECTION_TYPES = ("direction", "ganspace-components")


def _shipped_configs() -> dict[str, dict]:
    """Shipped name → its config.json, for the directions (and GANSpace component sets) shipped here."""
    out = {}
    for name in registry.names():
        try:
            doc = json.loads((registry.WEIGHTS_DIR / name / "config.json").read_text())
        except (OSError, ValueError):
            continue
        if doc.get("model_type") in _DIRECTION_TYPES:
            out[name] = doc.get("config", {})
    return out


def shipped_directions(generator: str | None = None) -> list[str]:
    """Names of the directions (and GANSpace component sets) shipped with this installation; with ``generator``
    (a shipped generator's name) only its own (named ``{generator}-{short name}``)."""
    return [name for name in _shipped_configs() if generator is None or name.startswith(f"{generator}-")]


def _short_names(configs: dict[str, dict]) -> dict[str, list[str]]:
    """Short name (the direction's own ``config.name``, e.g. "smile") → shipped names that carry it."""
    out: dict[str, list[str]] = {}
    for name, cfg in configs.items():
        if cfg.get("name"):
            out.setdefault(cfg["name"], []).append(name)
    return out


def _by_short_name(spec: str, configs: dict[str, dict], generator: StyleGAN2Generator | None) -> str | None:
    """The shipped direction a short name means: the only one with that name, or the one found on ``generator``
    (by weights' digest) when several generators ship one."""
    names = _short_names(configs).get(spec, [])
    if len(names) <= 1:
        return names[0] if names else None
    if generator is not None:
        digest = generator_digest(generator).split("sha256 ")[-1].rstrip(")")
        for name in names:
            if digest in configs[name].get("generator", ""):
                return name
    raise ValueError(f"direction {spec!r} is shipped for several generators ({', '.join(names)}): name one")


def resolve_direction(direction: Direction | GanSpaceComponents | str | os.PathLike, component: int | None = None,
                      layers: str | Sequence[int] | None = None,
                      generator: StyleGAN2Generator | None = None) -> Direction:
    """A `Direction` from an object, a file / folder (``stylebridge.load``: native directions, e4e InterFaceGAN
    ``.pt``, InterFaceGAN ``.npy``, GANSpace ``.pt``), a shipped direction's name ("synthfaces-64-smile") or its
    short name ("smile"; with several generators shipping one, the one found on ``generator``). GANSpace components
    need ``component`` (the direction is that component on ``layers``). A name that is none of these raises a
    one-line `FileNotFoundError` listing the shipped directions."""
    if isinstance(direction, (str, os.PathLike)):
        spec = str(direction)
        if not Path(spec).exists():
            configs = _shipped_configs()
            if spec not in configs:
                short = _by_short_name(spec, configs, generator)
                if short is None:
                    raise FileNotFoundError(
                        f"{spec}: no such direction file or folder, and not a shipped direction (shipped: "
                        f"{', '.join(sorted(_short_names(configs))) or 'none yet'}; full names: "
                        f"{', '.join(configs) or 'none'})")
                spec = short
        direction = load(spec, expect=(Direction, GanSpaceComponents))
    if isinstance(direction, GanSpaceComponents):
        if component is None:
            raise ValueError("GANSpace components need a component index (component=K, --component K)")
        n = direction.config.num_components
        if not 0 <= component < n:
            raise ValueError(f"component must be in [0, {n}), got {component}")
        return direction.direction(component, layers)
    if not isinstance(direction, Direction):
        raise TypeError(f"direction must be a Direction, GanSpaceComponents or a path, got {type(direction).__name__}")
    if component is not None:
        raise ValueError(f"component applies to GANSpace components, not to the direction {direction.name!r}")
    return direction
