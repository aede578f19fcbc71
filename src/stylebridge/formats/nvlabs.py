"""NVlabs stylegan2-ada-pytorch / stylegan3 ``.pkl`` snapshots of StyleGAN2 networks (``G``, ``D``, ``G_ema``),
read through the restricted unpickler (`stylebridge.core.safe_pickle`): NVlabs modules are never imported and
their embedded source never runs. Weights are mapped onto rosinality's names.
"""

from __future__ import annotations

from typing import Any

import torch

from stylebridge import ops
from stylebridge.core.errors import CheckpointError
from stylebridge.core.native import PretrainedModel, check_state_dict
from stylebridge.core.safe_pickle import PickledObject, record_state_dict
from stylebridge.formats.common import CheckpointInfo, channel_fields, count
from stylebridge.models.stylegan2 import (
    StyleGAN2Config,
    StyleGAN2Discriminator,
    StyleGAN2DiscriminatorConfig,
    StyleGAN2Generator,
)

__all__ = ["discriminator_from_nvlabs", "from_pickle_object", "generator_from_nvlabs"]


def from_pickle_object(obj: Any, part: str | None, src: str) -> tuple[PretrainedModel, CheckpointInfo]:
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
    n_fc = count(nv, r"^mapping\.fc(\d+)\.weight$")
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
        conv_clamp=float(clamp) if clamp is not None else None, **channel_fields(res, channels, None))
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
        conv_clamp=float(clamp) if clamp is not None else None, **channel_fields(res, channels, None))
    model = StyleGAN2Discriminator(cfg)
    check_state_dict(model, {k: v.float() for k, v in sd.items()}, src)
    return model.eval()
