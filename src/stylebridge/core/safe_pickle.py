"""Reading pickled checkpoints without ever running code from them.

Two entry points:

* `load_torch_file` — files written by ``torch.save`` (rosinality, pSp, e4e, plain state dicts): torch's own
  ``weights_only`` unpickler, with ``argparse.Namespace`` added (rosinality stores its ``args`` as one).
* `load_pickle` — plain pickles such as NVlabs' stylegan2-ada-pytorch / stylegan3 ``.pkl`` network snapshots.
  NVlabs pickles embed the *source code* of their network classes (``torch_utils.persistence``) and rebuild
  them by executing it. Our unpickler never imports NVlabs modules and never executes that source: each
  persistent object becomes a `PickledObject` record holding the class name and the pickled attribute dict
  (parameters, buffers, sub-modules, init kwargs), from which the weights are read.

Anything a pickle asks for outside a small allow-list (tensors and storages, containers, numbers and strings,
``argparse.Namespace``, NVlabs records) raises `UnsafePickleError` before it can be called.
"""

from __future__ import annotations

import _compat_pickle
import argparse
import codecs
import collections
import io
import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from stylebridge.core.errors import CheckpointError, UnsafePickleError

__all__ = ["PickledObject", "UnsafePickleError", "load_pickle", "load_torch_file", "record_state_dict", "sniff"]


class PickledObject:
    """A stand-in for an object the pickle describes but we refuse to build (NVlabs modules, torch.nn modules).

    ``class_name`` is the original dotted name; ``state`` the attribute dict the pickle carries.
    """

    def __init__(self, class_name: str = "", state: dict[str, Any] | None = None) -> None:
        self.class_name = class_name
        self.state = state or {}

    def __setstate__(self, state: Any) -> None:  # BUILD opcode: only ever stores data
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots)
            state = {**(state[0] or {}), **(state[1] or {})}
        if not isinstance(state, dict):
            raise UnsafePickleError(f"unexpected object state of type {type(state).__name__}")
        self.state = state

    def __repr__(self) -> str:
        return f"PickledObject({self.class_name})"


class _EasyDict(dict):
    """Stand-in for ``dnnlib.EasyDict`` (a dict with attribute access): kept as a plain dict subclass."""


def _record_class(dotted: str) -> type:
    """A fresh PickledObject subclass remembering ``dotted`` (for copyreg-style object reconstruction)."""
    class PickledRecord(PickledObject):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(dotted)

    return PickledRecord


def _reconstruct_persistent_obj(meta: Any) -> PickledObject:
    """NVlabs ``torch_utils.persistence._reconstruct_persistent_obj`` without executing ``meta['module_src']``."""
    if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("state"), dict):
        raise UnsafePickleError("malformed NVlabs persistent object (expected a dict with type='class' and state)")
    return PickledObject(str(meta.get("class_name", "?")), meta["state"])


def _load_from_bytes(data: bytes) -> Any:
    """``torch.storage._load_from_bytes``: the storage bytes are themselves a torch file; load them weights_only."""
    if not isinstance(data, (bytes, bytearray)):
        raise UnsafePickleError("storage payload is not bytes")
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafePickleError(f"refused tensor storage: {_weights_only_reason(exc)}") from exc


def _rebuild_tensor(storage: Any, offset: int, size: tuple, stride: tuple, requires_grad: bool = False,
                    backward_hooks: Any = None, metadata: Any = None) -> torch.Tensor:
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise UnsafePickleError(f"tensor built from a {type(storage).__name__}, not a storage")
    if backward_hooks:
        raise UnsafePickleError("tensor carries backward hooks")
    return torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, collections.OrderedDict())


def _rebuild_parameter(data: Any, requires_grad: bool = True, backward_hooks: Any = None, *_: Any) -> torch.Tensor:
    if not isinstance(data, torch.Tensor):
        raise UnsafePickleError("parameter built from a non-tensor")
    if backward_hooks:
        raise UnsafePickleError("parameter carries backward hooks")
    return torch.nn.Parameter(data, requires_grad=bool(requires_grad))


def _numpy_scalar(dtype: Any, data: bytes | None = None) -> Any:
    import numpy as np

    if not isinstance(dtype, np.dtype) or dtype.kind not in "biufc" or not isinstance(data, bytes):
        raise UnsafePickleError("only numeric numpy scalars are allowed")
    return np.frombuffer(data, dtype=dtype)[0].item()


def _numpy_dtype(name: Any, align: Any = False, copy: Any = False) -> Any:
    import numpy as np

    if not isinstance(name, str) or not re.fullmatch(r"[biufc]\d{1,2}", name):
        raise UnsafePickleError(f"only numeric numpy dtypes are allowed, got {name!r}")
    return np.dtype(name)


def _codecs_encode(text: Any, encoding: Any = "utf-8") -> bytes:
    """Protocol-2 pickles store bytes as ``_codecs.encode(str, 'latin1')``; allow exactly that."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError("_codecs.encode is only allowed for latin1 byte strings")
    return codecs.encode(text, "latin1")


def _new_object(cls: Any, *args: Any) -> Any:
    """copyreg.__newobj__ / _reconstructor, restricted to our stand-in classes."""
    if isinstance(cls, type) and issubclass(cls, (PickledObject, argparse.Namespace, _EasyDict)):
        return cls.__new__(cls)
    raise UnsafePickleError(f"refusing to construct {getattr(cls, '__name__', cls)!r}")


def _reconstructor(cls: Any, base: Any, state: Any) -> Any:
    if base is not object or state is not None:
        raise UnsafePickleError("unsupported copyreg._reconstructor call")
    return _new_object(cls)


_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "dict"): dict,
    ("builtins", "list"): list,
    ("builtins", "tuple"): tuple,
    ("builtins", "complex"): complex,
    ("argparse", "Namespace"): argparse.Namespace,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_from_bytes,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("dnnlib.util", "EasyDict"): _EasyDict,
    ("dnnlib", "EasyDict"): _EasyDict,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy", "dtype"): _numpy_dtype,
    ("copyreg", "__newobj__"): _new_object,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("_codecs", "encode"): _codecs_encode,
}
# torch dtypes are pickled as globals (torch.float32, …): values, not callables that do anything.
_ALLOWED.update({("torch", n): getattr(torch, n) for n in ("float32", "float16", "bfloat16", "float64", "int64",
                                                            "int32", "int16", "int8", "uint8", "bool")})
_ALLOWED_DESCRIPTION = "tensors and storages, containers, numbers, argparse.Namespace, NVlabs network records"


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        # Protocol-2 pickles use Python 2 names (__builtin__.set, copy_reg, …). Python 3 pickles never name those
        # modules, so mapping them always is safe; the mapped name still has to pass the allow-list.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        key = (module, name)
        if key in _ALLOWED:
            return _ALLOWED[key]
        if module.startswith("torch.nn.modules.") or module == "torch.nn":
            # Plain torch.nn modules inside a network pickle: keep their attribute dict only.
            return _record_class(f"{module}.{name}")
        raise UnsafePickleError(
            f"the pickle would import {module}.{name}, which is not on the allow-list ({_ALLOWED_DESCRIPTION}); "
            "nothing was executed"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("plain pickles with persistent ids are not supported")


def load_pickle(path: str | os.PathLike) -> Any:
    """Unpickle ``path`` with the restricted unpickler. Raises UnsafePickleError (naming the file) if refused."""
    try:
        with open(path, "rb") as fh:
            return _RestrictedUnpickler(fh).load()
    except UnsafePickleError as exc:
        raise UnsafePickleError(f"refusing to load {path}: {exc}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise CheckpointError(f"{path}: not a readable pickle ({type(exc).__name__}: {exc})") from None


def _weights_only_reason(exc: Exception) -> str:
    msg = str(exc)
    m = re.search(r"Unsupported global: GLOBAL ([\w.]+)", msg) or re.search(r"GLOBAL ([\w.]+)", msg)
    if m:
        return f"the pickle would import {m.group(1)}, which is not on the allow-list ({_ALLOWED_DESCRIPTION}); " \
               "nothing was executed"
    first = next((line.strip() for line in msg.splitlines() if line.strip() and "Weights only" not in line), msg)
    return f"the pickle asks for something outside the allow-list ({first[:200]}); nothing was executed"


def load_torch_file(path: str | os.PathLike) -> Any:
    """``torch.load`` a checkpoint onto the CPU with the weights-only unpickler (+ argparse.Namespace)."""
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafePickleError(f"refusing to load {path}: {_weights_only_reason(exc)}") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:200]})") from None


def sniff(path: str | os.PathLike) -> str:
    """'native' (model folder), 'torch-zip', 'pickle' (protocol >= 2 header) or 'unknown'."""
    p = Path(path)
    if p.is_dir():
        return "native"
    with open(p, "rb") as fh:
        head = fh.read(4)
    if head[:2] == b"PK":
        return "torch-zip"
    if head[:1] == b"\x80":
        # Legacy torch.save files are a sequence of pickles starting with a magic number (a long int).
        return "torch-legacy" if head[1:2] in (b"\x02",) and _is_legacy_torch(p) else "pickle"
    return "unknown"


def _is_legacy_torch(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(32)
    return head.startswith(b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19")  # pickled magic 0x1950a86a20f9469cfc6c


def record_state_dict(obj: PickledObject, prefix: str = "") -> dict[str, torch.Tensor]:
    """Flatten a pickled torch module record into a state dict (parameters and persistent buffers)."""
    st = obj.state
    out: dict[str, torch.Tensor] = {}
    non_persistent = set(st.get("_non_persistent_buffers_set") or ())
    for name, value in (st.get("_parameters") or {}).items():
        if value is not None:
            out[prefix + name] = value.detach()
    for name, value in (st.get("_buffers") or {}).items():
        if value is not None and name not in non_persistent:
            out[prefix + name] = value
    for name, sub in (st.get("_modules") or {}).items():
        if isinstance(sub, PickledObject):
            out.update(record_state_dict(sub, f"{prefix}{name}."))
    return out
