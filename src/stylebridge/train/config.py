"""Experiment configs: a tree of dataclasses filled from one YAML file plus ``--set a.b=value`` overrides.

No inheritance, no class names in files, no ``exec``: unknown keys and wrongly typed values are errors that name
the key and the file. The resolved tree is written into the run folder.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from stylebridge.core.errors import ConfigError

__all__ = ["ConfigError", "LogSection", "OptimSection", "apply_overrides", "from_dict", "load_config", "to_dict"]

T = TypeVar("T")


@dataclass
class OptimSection:
    """What every trainer's ``optim`` section holds (trainers subclass it with their own fields and defaults)."""

    batch: int = 32  # global batch (all ranks together)
    steps: int = 10_000  # total steps of the run
    lr: float = 0.002
    seed: int = 0
    precision: str = "fp32"  # "fp32" or "bf16" (autocast; master weights stay fp32)

    def __post_init__(self) -> None:
        if self.batch < 1:
            raise ValueError(f"batch must be >= 1, got {self.batch}")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be fp32 or bf16, got {self.precision!r}")


@dataclass
class LogSection:
    """What every trainer's ``log`` section holds: how often the shared training loop logs, draws the sample grid
    (and runs the task's validation) and writes a checkpoint, and how many checkpoints it keeps."""

    every: int = 50  # steps between log records
    sample_every: int = 500  # steps between sample grids (and validation records)
    checkpoint_every: int = 500
    keep: int = 3  # newest checkpoints kept
    grid: int = 8  # items in the periodic grid

    def __post_init__(self) -> None:
        for name in ("every", "sample_every", "checkpoint_every", "keep"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.grid < 0:
            raise ValueError(f"grid must be >= 0, got {self.grid}")


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return _build(tp, value, where)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item = args[0] if args else Any
        return tuple(_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"{where}: expected a finite number, got {value!r}")
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    raise ConfigError(f"{where}: unsupported config type {tp}")


def _build(cls: type[T], data: dict, where: str) -> T:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown} (known: {', '.join(fields)})")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where or cls.__name__}: {exc}") from exc


def _parse_scalar(text: str) -> Any:
    """YAML scalar parsing for ``--set`` values: 3 → int, 0.5 → float, true → bool, [1, 2] → list."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot parse override value {text!r}: {exc}") from exc


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``a.b=value`` strings to a nested dict (copy)."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        parts = key.split(".")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {p} is not a section")
        node[parts[-1]] = _parse_scalar(text)
    return out


def load_config(cls: type[T], path: str | os.PathLike | None = None, overrides: list[str] | None = None) -> T:
    """Build ``cls`` from a YAML file (sections = nested dataclasses) and overrides; defaults fill the rest."""
    data: dict = {}
    where = str(path) if path else cls.__name__
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"{p}: config file not found")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: invalid YAML ({exc})") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: the top level must be a mapping of sections")
    data = apply_overrides(data, overrides or [])
    try:
        return _build(cls, data, "")
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def from_dict(cls: type[T], data: dict) -> T:
    """Build ``cls`` from a nested dict (e.g. ``to_dict`` of a config stored in a checkpoint), validated."""
    return _build(cls, data, "")
