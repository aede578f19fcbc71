"""`stylebridge.load`: any supported checkpoint, or a shipped model's name → the right model.

Supported today:
    * native folders (``config.json`` + ``model.safetensors``) written by ``save_pretrained``;
    * rosinality stylegan2-pytorch ``train.py`` checkpoints (``g``, ``d``, ``g_ema``, optimisers, ``args``);
    * bare rosinality generator / discriminator state dicts;
    * NVlabs stylegan2-ada-pytorch / stylegan3 ``.pkl`` snapshots of StyleGAN2 networks (``G``, ``D``, ``G_ema``);
    * pSp / e4e training checkpoints, ArcFace IR-SE and torchvision ResNet state dicts (`encoder_checkpoints`).

The architecture is inferred from tensor shapes, cross-checked against what the file states (rosinality
``args``, NVlabs init kwargs), and the weights are loaded strictly.
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import stylebridge.models  # noqa: F401  (registers every model type for native folders)
from stylebridge import ops, registry
from stylebridge.io.safe_pickle import PickledObject, load_pickle, load_torch_file, record_state_dict, sniff
from stylebridge.models.base import MODEL_TYPES, CheckpointError, PretrainedModel, check_state_dict, read_native_config
from stylebridge.models.stylegan2 import (
    D_FIR_BUFFER_KEYS,
    G_FIR_BUFFER_KEYS,
    StyleGAN2Config,
    StyleGAN2Discriminator,
    StyleGAN2DiscriminatorConfig,
    StyleGAN2Generator,
    rosinality_channels,
)

__all__ = ["CheckpointInfo", "describe", "discriminator_from_rosinality", "generator_from_rosinality", "load"]

PARTS = ("g_ema", "g", "d")
ENCODER_PARTS = ("encoder", "decoder")  # pSp / e4e checkpoints (where "d" is e4e's latent discriminator)


@dataclass
class CheckpointInfo:
    """What a file is: its format, the parts it holds and (for `describe`) the loaded part."""

    path: str
    format: str
    parts: tuple[str, ...]
    extra: dict[str, Any]


def load(path: str | os.PathLike, part: str | None = None) -> PretrainedModel:
    """Load a model from a supported file, a native folder or a shipped model's name.

    Args:
        path: file or folder path, or the name of a model shipped with stylebridge.
        part: for files holding several networks (rosinality train.py checkpoints, NVlabs pickles):
            ``"g_ema"`` (default), ``"g"`` or ``"d"``; for pSp / e4e checkpoints: None (the whole model),
            ``"encoder"``, ``"decoder"`` (the generator) or ``"d"`` (e4e's latent discriminator).

    Returns:
        the model in eval mode on the CPU.
    """
    model, _ = _load_with_info(path, part)
    return model


def describe(path: str | os.PathLike, part: str | None = None) -> tuple[PretrainedModel, CheckpointInfo]:
    """Like `load`, also returning what the file is (for ``stylebridge info`` and ``convert``)."""
    return _load_with_info(path, part)


def _load_with_info(path: str | os.PathLike, part: str | None) -> tuple[PretrainedModel, CheckpointInfo]:
    if part is not None and part not in PARTS + ENCODER_PARTS:
        raise ValueError(f"part must be one of {PARTS + ENCODER_PARTS}, got {part!r}")
    p = Path(path)
    if not p.exists():
        shipped = registry.resolve(str(path))
        if shipped is None:
            raise FileNotFoundError(
                f"{path}: no such file or folder, and not a shipped model name (shipped: {registry.names_text()})")
        p = shipped
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
        return _from_pickle_object(load_pickle(p), part, str(p))
    raise CheckpointError(f"{p}: unrecognised file format (not a torch checkpoint, pickle or model folder)")


# ------------------------------------------------------------------------------------------------------------------
# torch.save files


def _from_torch_object(obj: Any, part: str | None, src: str) -> tuple[PretrainedModel, CheckpointInfo]:
    if not isinstance(obj, dict):
        raise CheckpointError(f"{src}: expected a dict at the top level, got {type(obj).__name__}")
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
    from stylebridge.io import encoder_checkpoints  # imported here: it builds on this module's generator loader

    found = encoder_checkpoints.from_torch_object(obj, part, src)
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


def _drop_fir_buffers(sd: dict[str, torch.Tensor], pattern: re.Pattern, expected: dict[str, torch.Tensor],
                      src: str) -> dict[str, torch.Tensor]:
    """Remove the FIR kernel buffers named by ``pattern`` after checking they equal what the config implies."""
    out = {}
    for k, v in sd.items():
        if pattern.match(k):
            want = expected.get(k)
            if want is not None and (v.shape != want.shape or not torch.allclose(v.float(), want, atol=1e-6)):
                raise CheckpointError(f"{src}: FIR buffer {k} does not match blur kernel implied by the config")
            continue
        out[k] = v
    return out


def _count(sd: dict[str, Any], pattern: str) -> int:
    rx = re.compile(pattern)
    return len({m.group(1) for k in sd if (m := rx.match(k))})


def _blur_from_buffer(kernel: torch.Tensor | None, gain: float, src: str) -> tuple[float, ...]:
    if kernel is None:
        return (1.0, 3.0, 3.0, 1.0)
    taps = ops.filter_1d(kernel.float() / gain)
    if taps is None:
        raise CheckpointError(f"{src}: stored FIR kernel is not separable; cannot infer the blur kernel")
    return tuple(round(float(t), 6) for t in taps)


def _channel_fields(resolution: int, channels: list[int], preferred_cm: int | None) -> dict[str, Any]:
    """Express channels as (channel_multiplier, channel_divisor) when the rosinality table fits, else explicitly."""
    cms = [preferred_cm] if preferred_cm else []
    cms += [c for c in (2, 1, 4, 8) if c != preferred_cm]
    for cm in cms:
        for div in (1, 2, 4, 8, 16, 32, 64):
            try:
                table = rosinality_channels(resolution, cm, div)
            except ValueError:
                continue
            if list(table.values()) == channels:
                return {"channel_multiplier": cm, "channel_divisor": div}
    return {"channels": tuple(channels)}


def generator_from_rosinality(sd: dict[str, torch.Tensor], src: str,
                              args: dict[str, Any] | None = None) -> StyleGAN2Generator:
    """Build a generator from a rosinality ``Generator.state_dict()`` (config inferred from shapes)."""
    try:
        n_mlp = _count(sd, r"^style\.(\d+)\.weight$")
        n_rgb = _count(sd, r"^to_rgbs\.(\d+)\.conv\.weight$")
        first = sd["style.1.weight"]
        resolution = 2 ** (n_rgb + 2)
        channels = [sd["input.input"].shape[1]] + [sd[f"convs.{2 * k}.conv.weight"].shape[1] for k in range(n_rgb)]
        img_channels = sd["to_rgb1.conv.weight"].shape[1]
        w_dim = sd["style.1.bias"].shape[0] if n_mlp == 1 else sd[f"style.{n_mlp}.weight"].shape[0]
    except KeyError as exc:
        raise CheckpointError(f"{src}: not a StyleGAN2 generator state dict (missing {exc})") from None
    blur = _blur_from_buffer(sd.get("convs.0.conv.blur.kernel"), 4.0, src)
    cfg = StyleGAN2Config(resolution=resolution, z_dim=first.shape[1], w_dim=w_dim, mapping_layers=n_mlp,
                          blur_kernel=blur, img_channels=img_channels,
                          **_channel_fields(resolution, channels, (args or {}).get("channel_multiplier")))
    if args:
        stated = {"size": cfg.resolution, "latent": cfg.w_dim, "n_mlp": cfg.mapping_layers}
        bad = [f"{k}={args[k]} (weights say {v})" for k, v in stated.items() if k in args and args[k] != v]
        if bad:
            raise CheckpointError(f"{src}: args disagree with the weights: {', '.join(bad)}")
    model = StyleGAN2Generator(cfg)
    sd = _drop_fir_buffers(sd, G_FIR_BUFFER_KEYS, model.expected_fir_buffers(), src)
    has_w_avg = "w_avg" in sd
    if not has_w_avg:
        sd = {**sd, "w_avg": model.w_avg}  # rosinality does not store it: computed below
    check_state_dict(model, {k: v.float() for k, v in sd.items()}, src)
    if not has_w_avg:
        model.compute_w_avg()
    return model.eval()


def discriminator_from_rosinality(sd: dict[str, torch.Tensor], src: str,
                                  args: dict[str, Any] | None = None) -> StyleGAN2Discriminator:
    """Build a discriminator from a rosinality ``Discriminator.state_dict()``."""
    try:
        n_blocks = _count(sd, r"^convs\.(\d+)\.conv1\.0\.weight$")
        resolution = 2 ** (n_blocks + 2)
        top = sd["convs.0.0.weight"]
        channels = [sd["final_conv.0.weight"].shape[0]]
        for j in range(n_blocks, 0, -1):  # block j maps resolution/2**(j-1) → half of it; collect 8.. upward
            channels.append(sd[f"convs.{j}.conv1.0.weight"].shape[0])
        final_in = sd["final_conv.0.weight"].shape[1]
    except KeyError as exc:
        raise CheckpointError(f"{src}: not a StyleGAN2 discriminator state dict (missing {exc})") from None
    blur = _blur_from_buffer(sd.get("convs.1.conv2.0.kernel"), 1.0, src)
    cfg = StyleGAN2DiscriminatorConfig(
        resolution=resolution, img_channels=top.shape[1], blur_kernel=blur,
        mbstd_num_channels=final_in - channels[0],
        **_channel_fields(resolution, channels, (args or {}).get("channel_multiplier")))
    if args and "size" in args and args["size"] != resolution:
        raise CheckpointError(f"{src}: args say size={args['size']} but the weights are for {resolution} px")
    model = StyleGAN2Discriminator(cfg)
    sd = _drop_fir_buffers(sd, D_FIR_BUFFER_KEYS, model.expected_fir_buffers(), src)
    check_state_dict(model, {k: v.float() for k, v in sd.items()}, src)
    return model.eval()


# ------------------------------------------------------------------------------------------------------------------
# NVlabs pickles


def _from_pickle_object(obj: Any, part: str | None, src: str) -> tuple[PretrainedModel, CheckpointInfo]:
    if not isinstance(obj, dict) or not any(isinstance(obj.get(k), PickledObject) for k in ("G", "D", "G_ema")):
        raise CheckpointError(f"{src}: a pickle, but not an NVlabs network snapshot (no G / D / G_ema networks)")
    key = {"g_ema": "G_ema", "g": "G", "d": "D", None: "G_ema"}.get(part)
    if key is None:
        raise ValueError(f"{src}: an NVlabs pickle; part must be g_ema, g or d, got {part!r}")
    parts = tuple(k for k, v in (("g_ema", obj.get("G_ema")), ("g", obj.get("G")), ("d", obj.get("D")))
                  if isinstance(v, PickledObject))
    rec = obj.get(key)
    if not isinstance(rec, PickledObject):
        raise CheckpointError(f"{src}: has no {key} network (it holds {list(parts)})")
    info = CheckpointInfo(src, "nvlabs-pickle", parts, {"class": rec.class_name})
    if key == "D":
        return discriminator_from_nvlabs(rec, f"{src}[{key}]"), info
    return generator_from_nvlabs(rec, f"{src}[{key}]"), info


def _attr(rec: PickledObject, *path: str) -> Any:
    """Follow sub-module names then read an attribute: _attr(G, 'mapping', 'fc0', 'bias_gain')."""
    cur: Any = rec
    for name in path[:-1]:
        cur = (cur.state.get("_modules") or {}).get(name)
        if not isinstance(cur, PickledObject):
            return None
    return cur.state.get(path[-1])


def generator_from_nvlabs(rec: PickledObject, src: str) -> StyleGAN2Generator:
    """Map an NVlabs stylegan2-ada ``Generator`` (skip architecture) onto rosinality names."""
    st = rec.state
    if st.get("c_dim"):
        raise CheckpointError(f"{src}: conditional generators (c_dim={st['c_dim']}) are not supported")
    res = st.get("img_resolution")
    if not isinstance(res, int):
        raise CheckpointError(f"{src}: not an NVlabs StyleGAN2 generator (no img_resolution; class {rec.class_name})")
    resolutions = [2**i for i in range(2, int(res).bit_length())]
    arch = _attr(rec, "synthesis", f"b{res}", "architecture")
    if arch not in (None, "skip"):
        raise CheckpointError(f"{src}: synthesis architecture {arch!r} is not supported (only 'skip', config-f)")
    if _attr(rec, "synthesis", "b4", "conv1", "up") is None:
        raise CheckpointError(f"{src}: generator record {rec.class_name} does not look like StyleGAN2 "
                              "(StyleGAN3 generators are not supported)")
    nv = record_state_dict(rec)
    n_fc = _count(nv, r"^mapping\.fc(\d+)\.weight$")
    lr_mul = _attr(rec, "mapping", "fc0", "bias_gain")
    clamp = _attr(rec, "synthesis", "b4", "conv1", "conv_clamp")
    sd: dict[str, torch.Tensor] = {}
    try:
        for i in range(n_fc):
            sd[f"style.{i + 1}.weight"] = nv.pop(f"mapping.fc{i}.weight")
            sd[f"style.{i + 1}.bias"] = nv.pop(f"mapping.fc{i}.bias")
        sd["w_avg"] = nv.pop("mapping.w_avg")
        sd["input.input"] = nv.pop("synthesis.b4.const")[None]
        _nv_layer(nv, sd, "synthesis.b4.conv1", "conv1", 0)
        _nv_torgb(nv, sd, "synthesis.b4.torgb", "to_rgb1")
        for k, r in enumerate(resolutions[1:]):
            _nv_layer(nv, sd, f"synthesis.b{r}.conv0", f"convs.{2 * k}", 2 * k + 1)
            _nv_layer(nv, sd, f"synthesis.b{r}.conv1", f"convs.{2 * k + 1}", 2 * k + 2)
            _nv_torgb(nv, sd, f"synthesis.b{r}.torgb", f"to_rgbs.{k}")
    except KeyError as exc:
        raise CheckpointError(f"{src}: NVlabs generator lacks {exc}") from None
    _check_nv_filters(nv, src)
    channels = [sd["input.input"].shape[1]] + [sd[f"convs.{2 * k}.conv.weight"].shape[1]
                                               for k in range(len(resolutions) - 1)]
    cfg = StyleGAN2Config(
        resolution=res, z_dim=sd["style.1.weight"].shape[1], w_dim=sd["w_avg"].shape[0], mapping_layers=n_fc,
        lr_multiplier=float(lr_mul) if lr_mul is not None else 0.01, img_channels=sd["to_rgb1.conv.weight"].shape[1],
        conv_clamp=float(clamp) if clamp is not None else None, **_channel_fields(res, channels, None))
    model = StyleGAN2Generator(cfg)
    check_state_dict(model, {k: v.float() for k, v in sd.items()}, src)
    return model.eval()


def _nv_layer(nv: dict, sd: dict, a: str, b: str, noise_idx: int) -> None:
    sd[f"{b}.conv.weight"] = nv.pop(f"{a}.weight")[None]
    sd[f"{b}.conv.modulation.weight"] = nv.pop(f"{a}.affine.weight")
    sd[f"{b}.conv.modulation.bias"] = nv.pop(f"{a}.affine.bias")
    sd[f"{b}.noise.weight"] = nv.pop(f"{a}.noise_strength").reshape(1)
    sd[f"{b}.activate.bias"] = nv.pop(f"{a}.bias")
    sd[f"noises.noise_{noise_idx}"] = nv.pop(f"{a}.noise_const")[None, None]


def _nv_torgb(nv: dict, sd: dict, a: str, b: str) -> None:
    sd[f"{b}.conv.weight"] = nv.pop(f"{a}.weight")[None]
    sd[f"{b}.conv.modulation.weight"] = nv.pop(f"{a}.affine.weight")
    sd[f"{b}.conv.modulation.bias"] = nv.pop(f"{a}.affine.bias")
    sd[f"{b}.bias"] = nv.pop(f"{a}.bias").reshape(1, -1, 1, 1)


def _check_nv_filters(nv: dict[str, torch.Tensor], src: str) -> None:
    """Everything left must be [1,3,3,1] resample filters; anything else is an unexpected key."""
    expected = ops.setup_filter((1, 3, 3, 1))
    leftover = []
    for k, v in nv.items():
        if k.endswith("resample_filter"):
            if v.shape != expected.shape or not torch.allclose(v.float(), expected, atol=1e-6):
                raise CheckpointError(f"{src}: {k} is not the [1,3,3,1] filter; other filters are not supported")
        else:
            leftover.append(k)
    if leftover:
        raise CheckpointError(f"{src}: unexpected keys {leftover[:8]}")


def discriminator_from_nvlabs(rec: PickledObject, src: str) -> StyleGAN2Discriminator:
    """Map an NVlabs stylegan2-ada ``Discriminator`` (resnet architecture) onto rosinality names."""
    st = rec.state
    if st.get("c_dim"):
        raise CheckpointError(f"{src}: conditional discriminators (c_dim={st['c_dim']}) are not supported")
    res = st.get("img_resolution")
    if not isinstance(res, int):
        raise CheckpointError(f"{src}: not an NVlabs StyleGAN2 discriminator (no img_resolution)")
    arch = _attr(rec, f"b{res}", "architecture")
    if arch not in (None, "resnet"):
        raise CheckpointError(f"{src}: discriminator architecture {arch!r} is not supported (only 'resnet')")
    nv = record_state_dict(rec)
    resolutions = [2**i for i in range(int(res).bit_length() - 1, 2, -1)]  # res, res/2, …, 8
    sd: dict[str, torch.Tensor] = {}
    try:
        sd["convs.0.0.weight"] = nv.pop(f"b{res}.fromrgb.weight")
        sd["convs.0.1.bias"] = nv.pop(f"b{res}.fromrgb.bias")
        for j, r in enumerate(resolutions, start=1):
            sd[f"convs.{j}.conv1.0.weight"] = nv.pop(f"b{r}.conv0.weight")
            sd[f"convs.{j}.conv1.1.bias"] = nv.pop(f"b{r}.conv0.bias")
            sd[f"convs.{j}.conv2.1.weight"] = nv.pop(f"b{r}.conv1.weight")
            sd[f"convs.{j}.conv2.2.bias"] = nv.pop(f"b{r}.conv1.bias")
            sd[f"convs.{j}.skip.1.weight"] = nv.pop(f"b{r}.skip.weight")
        sd["final_conv.0.weight"] = nv.pop("b4.conv.weight")
        sd["final_conv.1.bias"] = nv.pop("b4.conv.bias")
        for i, name in enumerate(("fc", "out")):
            sd[f"final_linear.{i}.weight"] = nv.pop(f"b4.{name}.weight")
            sd[f"final_linear.{i}.bias"] = nv.pop(f"b4.{name}.bias")
    except KeyError as exc:
        raise CheckpointError(f"{src}: NVlabs discriminator lacks {exc}") from None
    _check_nv_filters(nv, src)
    channels = [sd["final_conv.0.weight"].shape[0]] + [sd[f"convs.{j}.conv1.0.weight"].shape[0]
                                                       for j in range(len(resolutions), 0, -1)]
    group = _attr(rec, "b4", "mbstd", "group_size")
    clamp = _attr(rec, f"b{res}", "conv0", "conv_clamp")
    cfg = StyleGAN2DiscriminatorConfig(
        resolution=res, img_channels=sd["convs.0.0.weight"].shape[1],
        mbstd_group_size=int(group) if group else None,
        mbstd_num_channels=sd["final_conv.0.weight"].shape[1] - channels[0],
        conv_clamp=float(clamp) if clamp is not None else None, **_channel_fields(res, channels, None))
    model = StyleGAN2Discriminator(cfg)
    check_state_dict(model, {k: v.float() for k, v in sd.items()}, src)
    return model.eval()
