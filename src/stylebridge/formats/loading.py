"""`stylebridge.load`: any supported checkpoint, or a shipped model's name → the right model.

Supported today:
    * native folders (``config.json`` + ``model.safetensors``) written by ``save_pretrained``;
    * rosinality stylegan2-pytorch ``train.py`` checkpoints (``g``, ``d``, ``g_ema``, optimisers, ``args``);
    * bare rosinality generator / discriminator state dicts;
    * NVlabs stylegan2-ada-pytorch / stylegan3 ``.pkl`` snapshots of StyleGAN2 networks (``G``, ``D``, ``G_ema``);
    * pSp / e4e training checkpoints, ArcFace IR-SE and torchvision ResNet state dicts (`stylebridge.formats.psp_e4e`).
    * official StyleMapGAN and pix2pixHD checkpoints (`stylebridge.formats.stylemapgan`, `.pix2pixhd`).

The architecture is inferred from tensor shapes, cross-checked against what the file states (rosinality
``args``, NVlabs init kwargs), and the weights are loaded strictly.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any, TypeVar, overload

import torch

import stylebridge.models  # noqa: F401  (registers every model type for native folders)
from stylebridge.core import registry
from stylebridge.core.errors import CheckpointError, WrongModelError
from stylebridge.core.native import MODEL_TYPES, PretrainedModel, read_native_config
from stylebridge.core.safe_pickle import load_pickle, load_torch_file, sniff
from stylebridge.formats import directions, nvlabs, pix2pixhd, psp_e4e, stylemapgan
from stylebridge.formats.common import CheckpointInfo
from stylebridge.formats.rosinality import discriminator_from_rosinality, generator_from_rosinality
from stylebridge.models.stylegan2 import StyleGAN2Generator

__all__ = ["CheckpointInfo", "describe", "describe_model", "expected_text", "load"]

logger = logging.getLogger("stylebridge.formats")
M = TypeVar("M", bound=PretrainedModel)

PARTS = ("g_ema", "g", "d")
ENCODER_PARTS = ("encoder", "decoder")  # pSp / e4e checkpoints (where "d" is e4e's latent discriminator)
STYLEMAPGAN_PARTS = ("ema", "nonema", "raw")  # StyleMapGAN train.py checkpoints ("d": its discriminator)


@overload
def load(path: str | os.PathLike, part: str | None = None, *, expect: None = None) -> PretrainedModel: ...
@overload
def load(path: str | os.PathLike, part: str | None = None, *, expect: type[M] | tuple[type[M], ...]) -> M: ...


def load(path: str | os.PathLike, part: str | None = None, *,
         expect: type[PretrainedModel] | tuple[type[PretrainedModel], ...] | None = None) -> PretrainedModel:
    """Load a model from a supported file, a native folder or a shipped model's name.

    Args:
        path: file or folder path, or the name of a model shipped with stylebridge.
        part: for files holding several networks (rosinality train.py checkpoints, NVlabs pickles):
            ``"g_ema"`` (default), ``"g"`` or ``"d"``; for pSp / e4e checkpoints: None (the whole model),
            ``"encoder"``, ``"decoder"`` (the generator) or ``"d"`` (e4e's latent discriminator).
        expect: the model class (or classes) the caller needs; anything else raises `WrongModelError`
            ("PATH holds X; expected Y"), the one place that check is written.

    Returns:
        the model in eval mode on the CPU.
    """
    model, _ = _load_with_info(path, part)
    if expect is not None and not isinstance(model, expect):
        raise WrongModelError(f"{path}: holds {describe_model(model)}; expected {expected_text(expect)}")
    return model


def describe_model(model: torch.nn.Module) -> str:
    """'a StyleGAN2 generator (StyleGAN2Generator)': what a model is, for messages."""
    label = getattr(model, "display_name", "") or type(model).__name__
    article = "an" if label[:1].lower() in "aeiou" else "a"
    return f"{article} {label} ({type(model).__name__})" if label != type(model).__name__ else f"{article} {label}"


def expected_text(expect: type | tuple[type, ...]) -> str:
    """'StyleGAN2Generator', 'a pSp / e4e model or an activation-map translator': the kinds a caller accepts."""
    kinds = expect if isinstance(expect, tuple) else (expect,)
    names = []
    for k in kinds:
        label = getattr(k, "display_name", "")
        names.append(f"{'an' if label[:1].lower() in 'aeiou' else 'a'} {label}" if label else k.__name__)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def load_generator(spec: str | os.PathLike, what: str = "generator") -> StyleGAN2Generator:
    """A frozen StyleGAN2 generator: a generator file or folder, or the decoder of a pSp / e4e model; ``w_avg``
    computed (10,000 seeded samples) when the file has none. ``what`` names the option in errors."""
    from stylebridge.models.encoder_base import StyleEncoderModel

    if not str(spec):
        raise ValueError(f"{what} is required: a StyleGAN2 checkpoint, model folder or shipped name")
    model = load(spec, expect=(StyleGAN2Generator, StyleEncoderModel))
    G = model.decoder if isinstance(model, StyleEncoderModel) else model
    if float(G.w_avg.abs().sum()) == 0:
        G.compute_w_avg()  # the latent average codes start from (pSp: decoder.mean_latent)
    return G.requires_grad_(False).eval()


def describe(path: str | os.PathLike, part: str | None = None) -> tuple[PretrainedModel, CheckpointInfo]:
    """Like `load`, also returning what the file is (for ``stylebridge info`` and ``convert``)."""
    return _load_with_info(path, part)


def resolve_path(path: str | os.PathLike) -> Path:
    """The file or folder a model spec names: an existing path, else a shipped model's folder.

    A local path named like a shipped model wins when it is a file or a model folder (with a warning saying so);
    a local folder that is *not* a model folder (e.g. an output folder called ``synthfaces-64``) does not shadow
    the shipped model: the shipped one is taken, and the warning says which.
    """
    p = Path(path)
    shipped = registry.resolve(str(path))
    if p.exists():
        if shipped is not None and p.is_dir() and sniff_native(p) is False:
            logger.warning("%s: a local folder of that name is not a model folder; using the shipped model %s",
                           path, shipped)
            return shipped
        if shipped is not None:
            logger.warning("%s: using the local %s, not the shipped model of the same name", path,
                           "file" if p.is_file() else "folder")
        return p
    if shipped is None:
        raise FileNotFoundError(
            f"{path}: no such file or folder, and not a shipped model name (shipped: {registry.names_text()})")
    return shipped


def sniff_native(p: Path) -> bool:
    return (p / "config.json").is_file()


def _load_with_info(path: str | os.PathLike, part: str | None) -> tuple[PretrainedModel, CheckpointInfo]:
    if part is not None and part not in PARTS + ENCODER_PARTS + STYLEMAPGAN_PARTS:
        raise ValueError(f"part must be one of {PARTS + ENCODER_PARTS + STYLEMAPGAN_PARTS}, got {part!r}")
    p = resolve_path(path)
    kind = sniff(p)
    if kind == "native":
        if part not in (None, "g_ema"):
            raise ValueError(f"{p}: a native model folder holds one model; part={part!r} does not apply")
        doc = read_native_config(p)
        cls = MODEL_TYPES.get(doc["model_type"])
        if cls is None:
            raise CheckpointError(f"{p}: unknown model type {doc['model_type']!r}")
        model = cls.from_pretrained(p)
        return model, CheckpointInfo(str(p), "native", (doc["model_type"],), {"metadata": doc.get("metadata", {})})
    if kind in ("torch-zip", "torch-legacy"):
        return _from_torch_object(load_torch_file(p), part, str(p))
    if kind == "pickle":
        return nvlabs.from_pickle_object(load_pickle(p), part, str(p))
    if directions.is_npy(p):
        return directions.from_npy(p)
    raise CheckpointError(f"{p}: unrecognised file format (not a torch checkpoint, pickle or model folder)")


# ------------------------------------------------------------------------------------------------------------------
# torch.save files


def _from_torch_object(obj: Any, part: str | None, src: str) -> tuple[PretrainedModel, CheckpointInfo]:
    found_direction = directions.from_torch_object(obj, src)  # e4e InterFaceGAN / GANSpace files
    if found_direction is not None:
        return found_direction
    if not isinstance(obj, dict):
        raise CheckpointError(f"{src}: expected a dict at the top level, got {type(obj).__name__}")
    if stylemapgan.is_stylemapgan(obj):
        return stylemapgan.load_stylemapgan(obj, part, src)
    if pix2pixhd.is_pix2pixhd(obj):  # bare latest_net_G.pth / latest_net_D.pth (+ the opt.txt beside them)
        return pix2pixhd.load_pix2pixhd(obj, part, src)
    if any(k in obj for k in PARTS) and all(isinstance(obj.get(k, {}), dict) for k in PARTS):
        parts = tuple(k for k in PARTS if k in obj)
        want = part or "g_ema"
        if want not in obj:
            raise CheckpointError(f"{src}: has no {want!r} (it holds {list(parts)})")
        args = obj.get("args")
        args = vars(args) if isinstance(args, argparse.Namespace) else args if isinstance(args, dict) else None
        info = CheckpointInfo(src, "rosinality-train", parts, {"args": args, "ada_aug_p": obj.get("ada_aug_p")})
        if want == "d":
            return discriminator_from_rosinality(obj["d"], f"{src}[d]", args), info
        return generator_from_rosinality(obj[want], f"{src}[{want}]", args), info
    found = psp_e4e.from_torch_object(obj, part, src)
    if found is not None:
        return found
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if len(tensors) == len(obj) and tensors:
        if "style.1.weight" in tensors and "input.input" in tensors:
            if part not in (None, "g_ema", "g"):
                raise ValueError(f"{src}: a bare generator state dict; part={part!r} does not apply")
            return generator_from_rosinality(tensors, src), CheckpointInfo(src, "rosinality-generator", ("g",), {})
        if "final_linear.0.weight" in tensors and "convs.0.0.weight" in tensors:
            if part not in (None, "d"):
                raise ValueError(f"{src}: a bare discriminator state dict; part={part!r} does not apply")
            return discriminator_from_rosinality(tensors, src), CheckpointInfo(src, "rosinality-discriminator",
                                                                               ("d",), {})
    raise CheckpointError(f"{src}: not a recognised StyleGAN2 checkpoint (top-level keys: {sorted(obj)[:12]})")


