"""Native model format: a folder with ``config.json`` (model type + frozen-dataclass config) and
``model.safetensors``. Shared by every model family; loading is strict and reports missing/unexpected keys."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import types
import typing
from pathlib import Path
from typing import Any, ClassVar

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from stylebridge.core.atomic import atomic_write, atomic_write_text
from stylebridge.core.errors import CheckpointError, WrongModelError
from stylebridge.core.registry import resolve

__all__ = ["MODEL_TYPES", "CheckpointError", "PretrainedModel", "check_state_dict", "config_from_dict"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_VERSION = 1

MODEL_TYPES: dict[str, type[PretrainedModel]] = {}


def config_from_dict(cls: type, data: dict[str, Any], source: str = "config") -> Any:
    """Build the frozen dataclass ``cls`` from a dict; unknown keys are errors, lists become tuples.

    Every field is checked against its annotation first (`check_config_types`), so a ``config.json`` holding
    ``"lr_multiplier": "fast"`` fails here with one line naming the file and the field, not later in a layer.
    """
    if not isinstance(data, dict):
        raise CheckpointError(f"{source}: {cls.__name__} must be a JSON object, got {_json_type(data)}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise CheckpointError(f"{source}: unknown {cls.__name__} keys {unknown}")
    check_config_types(cls, data, source)
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{source}: invalid {cls.__name__}: {exc}") from exc


def _json_type(value: Any) -> str:
    return {type(None): "null", bool: "a boolean", str: "a string", list: "a list", dict: "an object"}.get(
        type(value), f"a {type(value).__name__}")


def _value_text(value: Any) -> str:
    """'"fast" (a string)', 'null', '[1, "a"] (a list)': a JSON value for a message, shortened."""
    if value is None:
        return "null"
    text = "an object" if isinstance(value, dict) else json.dumps(value, default=str)
    text = text if len(text) <= 60 else text[:57] + "..."
    return text if isinstance(value, dict) else f"{text} ({_json_type(value)})"


def _type_text(tp: Any) -> str:
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        return " or ".join(_type_text(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    if typing.get_origin(tp) is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            plural = {int: "integers", float: "numbers", str: "strings", bool: "booleans"}.get(args[0], "items")
            return f"a list of {plural}"
        return f"a list [{', '.join(_type_text(a) for a in args)}]"
    if dataclasses.is_dataclass(tp):
        return f"an object ({tp.__name__})"
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _fits(value: Any, tp: Any, field: str, source: str) -> bool:
    """Whether a JSON value fits annotation ``tp`` (nested dataclass dicts are checked field by field)."""
    if tp is Any:
        return True
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        return any(_fits(value, a, field, source) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if typing.get_origin(tp) is tuple:
        if not isinstance(value, (list, tuple)):
            return False
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_fits(v, args[0], field, source) for v in value)
        return len(value) == len(args) and all(_fits(v, a, field, source) for v, a in zip(value, args))
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return True
        if not isinstance(value, dict):
            return False
        check_config_types(tp, value, source, prefix=f"{field}.")
        return True
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True  # an annotation this checker does not know: the dataclass's own checks decide


def check_config_types(cls: type, data: dict[str, Any], source: str = "config", prefix: str = "") -> None:
    """Raise CheckpointError("SOURCE: field 'F' must be T, got V") for the first value in ``data`` that does not
    fit its field's annotation in dataclass ``cls``: int, float (ints accepted), bool, str, tuple[...] (lists
    accepted), ``X | None`` and nested config dataclasses (objects, checked field by field)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        name = f"{prefix}{f.name}"
        if isinstance(value, dict) and dataclasses.is_dataclass(hints.get(f.name)):
            unknown = sorted(set(value) - {g.name for g in dataclasses.fields(hints[f.name])})
            if unknown:
                raise CheckpointError(f"{source}: unknown {name} keys {unknown}")
        if not _fits(value, hints.get(f.name, Any), name, source):
            raise CheckpointError(f"{source}: field {name!r} must be {_type_text(hints[f.name])}, got "
                                  f"{_value_text(value)}")


def nested_config(cls: type, value: Any, name: str) -> Any:
    """A sub-config given as a ``cls`` instance or as a dict (as read back from config.json), as a ``cls``."""
    if isinstance(value, dict):
        return config_from_dict(cls, value, source=name)
    if not isinstance(value, cls):
        raise TypeError(f"{name} must be a {cls.__name__} or a dict, got {type(value).__name__}")
    return value


def check_state_dict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Raise CheckpointError naming missing/unexpected keys and shape mismatches, then load with strict=True."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    problems = []
    if missing:
        problems.append(f"missing keys {_short(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_short(unexpected)}")
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if shapes:
        problems.append("shape mismatches " + _short(shapes))
    if problems:
        raise CheckpointError(f"{source}: does not match {type(model).__name__}: " + "; ".join(problems))
    model.load_state_dict(state, strict=True)


def _short(items: list[str], limit: int = 8) -> str:
    head = ", ".join(items[:limit])
    return f"[{head}{f', … ({len(items) - limit} more)' if len(items) > limit else ''}]"


class PretrainedModel(nn.Module):
    """Base class: ``Model(config)``, ``save_pretrained(dir)``, ``Model.from_pretrained(dir)``."""

    model_type: ClassVar[str] = ""
    config_class: ClassVar[type] = object
    config: Any

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.model_type:
            MODEL_TYPES[cls.model_type] = cls

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def save_pretrained(self, directory: str | os.PathLike, metadata: dict[str, Any] | None = None, *,
                        dtype: torch.dtype | None = None, shared: dict[str, str] | None = None) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``directory`` (created); files replaced atomically.

        ``dtype`` (e.g. ``torch.float16``) stores the floating-point tensors in that type, halving a shipped file;
        loading casts them back to the model's dtype. ``shared`` maps a state-dict prefix (``"decoder."``) to a
        shipped model's name: those tensors are not written but taken from that model at load time (a shipped
        encoder does not carry a second copy of its shipped generator); a SHA-256 digest of them is stored and
        checked on load.
        """
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        doc: dict[str, Any] = {"model_type": self.model_type, "format_version": FORMAT_VERSION,
                               "config": self.config.to_dict()}
        links = []
        for prefix, name in (shared or {}).items():
            part = {k[len(prefix):]: state.pop(k) for k in [k for k in state if k.startswith(prefix)]}
            if not part:
                raise ValueError(f"shared: no weights under {prefix!r} in this {type(self).__name__}")
            if resolve(name) is None:
                raise ValueError(f"shared: {name!r} is not a shipped model")
            links.append({"prefix": prefix, "model": name, "sha256": _digest(part)})
        if links:
            doc["shared_weights"] = links
        if dtype is not None:
            state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
            doc["stored_dtype"] = str(dtype).removeprefix("torch.")
        if metadata:
            doc["metadata"] = metadata
        atomic_write(out / WEIGHTS_NAME, lambda p: save_file(state, str(p), metadata={"model_type": self.model_type}))
        atomic_write_text(out / CONFIG_NAME, json.dumps(doc, indent=2) + "\n")
        return out

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, map_location: str | torch.device = "cpu") -> PretrainedModel:
        """Load a native folder written by ``save_pretrained``; the folder's model type must fit ``cls``."""
        doc = read_native_config(directory)
        model_cls = MODEL_TYPES.get(doc["model_type"])
        if model_cls is None or not issubclass(model_cls, cls):
            raise WrongModelError(f"{directory}: holds a {doc['model_type']!r} model; expected {cls.__name__}")
        config = config_from_dict(model_cls.config_class, doc["config"], source=str(Path(directory) / CONFIG_NAME))
        weights = Path(directory) / WEIGHTS_NAME
        check_sizes_before_allocating(model_cls, config, weights, doc)
        model = model_cls(config)
        try:
            state = load_file(str(weights), device=str(map_location))
        except Exception as exc:  # safetensors raises several types for truncated/corrupt files
            raise CheckpointError(f"{weights}: cannot read safetensors file ({exc})") from exc
        for link in doc.get("shared_weights", []):
            state.update(_shared_part(link, Path(directory), map_location))
        check_state_dict(model, state, str(weights))
        return model.eval()


def check_sizes_before_allocating(model_cls: type[PretrainedModel], config: Any, weights: Path,
                                  doc: dict[str, Any]) -> None:
    """Compare the tensor shapes ``config`` implies with the safetensors header of ``weights`` without allocating
    anything: the model is built on the meta device (no memory), the file's header read with ``safe_open`` (no
    tensor data). A config.json whose sizes do not fit its weights (``"z_dim": 1000000000``) fails here in
    milliseconds, naming the file and the first mismatching tensors, instead of allocating terabytes first.
    Tensors taken from a shipped model (``shared_weights``) are checked when that model loads.
    """
    from safetensors import safe_open

    try:
        with safe_open(str(weights), framework="pt") as f:
            header = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as exc:  # missing, truncated or not a safetensors file
        raise CheckpointError(f"{weights}: cannot read safetensors file ({exc})") from exc
    try:
        with torch.device("meta"):
            meta = model_cls(config)
        own = {k: tuple(v.shape) for k, v in meta.state_dict().items()}
    except Exception:
        return
    shared = [link.get("prefix", "") for link in doc.get("shared_weights", []) if isinstance(link, dict)]
    bad = [f"{k}: checkpoint {header[k]} vs config {own[k]}" for k in own if k in header and header[k] != own[k]]
    if bad:
        raise CheckpointError(f"{weights}: the sizes in {CONFIG_NAME} do not match the weights: shape mismatches "
                              f"{_short(bad)}")
    missing = sorted(k for k in set(own) - set(header) if not any(p and k.startswith(p) for p in shared))
    unexpected = sorted(set(header) - set(own))
    if missing or unexpected:
        parts = ([f"missing keys {_short(missing)}"] if missing else []) + (
            [f"unexpected keys {_short(unexpected)}"] if unexpected else [])
        raise CheckpointError(f"{weights}: does not match {model_cls.__name__} as {CONFIG_NAME} describes it: "
                              + "; ".join(parts))


def _digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a state dict's keys and values (floats as fp32, so a stored dtype does not change it)."""
    h = hashlib.sha256()
    for k in sorted(state):
        t = state[k].detach().cpu()
        t = t.float() if t.is_floating_point() else t
        h.update(k.encode())
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


def _shared_part(link: dict[str, Any], directory: Path, map_location: str | torch.device) -> dict[str, torch.Tensor]:
    """The tensors a folder takes from a shipped model (``shared_weights`` in its config), digest-checked."""
    name, prefix = link.get("model"), link.get("prefix")
    src = resolve(str(name)) if isinstance(name, str) else None
    if src is None or not isinstance(prefix, str):
        raise CheckpointError(f"{directory / CONFIG_NAME}: shares weights with {name!r}, which is not a shipped model "
                              "of this installation")
    part = PretrainedModel.from_pretrained(src, map_location=map_location).state_dict()
    if _digest(part) != link.get("sha256"):
        raise CheckpointError(f"{directory / CONFIG_NAME}: the shipped model {name!r} is not the one these weights "
                              "were saved with (digest differs)")
    return {prefix + k: v for k, v in part.items()}


def read_native_config(directory: str | os.PathLike) -> dict[str, Any]:
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(f"{directory}: not a stylebridge model folder (no {CONFIG_NAME})")
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: invalid JSON ({exc})") from exc
    if not isinstance(doc, dict) or "model_type" not in doc or "config" not in doc:
        raise CheckpointError(f"{path}: missing 'model_type' or 'config'")
    for key, kind, ok in (("model_type", "a string", isinstance(doc["model_type"], str)),
                          ("config", "an object", isinstance(doc["config"], dict)),
                          ("format_version", "an integer", "format_version" not in doc or (
                              isinstance(doc["format_version"], int) and not isinstance(doc["format_version"], bool))),
                          ("shared_weights", "a list of objects", isinstance(doc.get("shared_weights", []), list)
                           and all(isinstance(x, dict) for x in doc.get("shared_weights", [])))):
        if not ok:
            raise CheckpointError(f"{path}: field {key!r} must be {kind}, got {_value_text(doc.get(key))}")
    if doc.get("format_version", 1) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: format version {doc['format_version']} is newer than this stylebridge")
    return doc

