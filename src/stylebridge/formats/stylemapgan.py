"""Official StyleMapGAN checkpoints (naver-ai/StyleMapGAN ``train.py``: ``{"generator", "discriminator",
"encoder", "g_ema", "e_ema", "train_args", *_optim}``) → `StyleMapGAN` / `StyleGAN2Discriminator`.

``load(path)`` (or ``part="ema"``) gives the EMA generator and encoder, ``part="nonema"`` (or ``"raw"``) the trained
(non-EMA) pair, ``part="d"`` the discriminator. The architecture comes from ``train_args`` (``size``,
``latent_channel_size``, ``latent_spatial_size``, ``mapping_layer_num``, ``lr_mul``, ``normalize_mode``,
``small_generator``) and every width from the weight shapes (scaled-down checkpoints change the channel tables in
code). Weights load strictly; the blur-kernel buffers the official modules store are checked against the config and
dropped; the optimiser states are ignored.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

import torch

from stylebridge.core.errors import CheckpointError
from stylebridge.core.native import check_state_dict
from stylebridge.formats.common import CheckpointInfo, count
from stylebridge.formats.rosinality import discriminator_from_rosinality
from stylebridge.models.stylemapgan import (
    StyleMapEncoderConfig,
    StyleMapGAN,
    StyleMapGANConfig,
    StyleMapGeneratorConfig,
)

__all__ = ["is_stylemapgan", "load_stylemapgan"]

PARTS = {None: ("g_ema", "e_ema"), "ema": ("g_ema", "e_ema"), "nonema": ("generator", "encoder"),
         "raw": ("generator", "encoder")}  # "raw": the same non-EMA pair under the name the other formats use
_KERNEL = re.compile(r".*(\.kernel)$")


def is_stylemapgan(obj: Any) -> bool:
    return isinstance(obj, dict) and "train_args" in obj and ("e_ema" in obj or "encoder" in obj)


def _args(obj: dict[str, Any], src: str) -> dict[str, Any]:
    a = obj["train_args"]
    if isinstance(a, argparse.Namespace):
        return vars(a)
    if isinstance(a, dict):
        return a
    raise CheckpointError(f"{src}: train_args is a {type(a).__name__}, expected the training options")


def _drop_kernels(sd: dict[str, torch.Tensor], model: torch.nn.Module, src: str) -> dict[str, torch.Tensor]:
    """Remove the stored FIR kernels after checking each against the module's own filter."""
    mods = dict(model.named_modules())
    out = {}
    for k, v in sd.items():
        if _KERNEL.match(k):
            mod = mods.get(k[: -len(".kernel")])
            want = getattr(mod, "resample_filter", None)
            if want is None or v.shape != want.shape or not torch.allclose(v.float(), want, atol=1e-6):
                raise CheckpointError(f"{src}: FIR buffer {k} does not match the blur the architecture implies")
            continue
        out[k] = v.float() if v.is_floating_point() else v
    return out


def _configs(g: dict[str, torch.Tensor], e: dict[str, torch.Tensor], args: dict[str, Any],
             src: str) -> StyleMapGANConfig:
    try:
        size, c, s = int(args["size"]), int(args["latent_channel_size"]), int(args["latent_spatial_size"])
        n_blocks = count(g, r"^decoder\.convs\.(\d+)\.conv1\.conv\.weight$")
        channels = [int(g["decoder.input.input"].shape[1])] + [
            int(g[f"decoder.convs.{i}.conv2.conv.weight"].shape[1]) for i in range(n_blocks)]
        n_enc = count(e, r"^convs\.(\d+)\.conv1\.0\.weight$")
        enc_channels = [int(e["from_rgb.0.weight"].shape[0])] + [
            int(e[f"convs.{i}.conv2.1.weight"].shape[0]) for i in range(n_enc)]
        gen = StyleMapGeneratorConfig(
            resolution=size, latent_channels=c, latent_size=s,
            mapping_layers=int(args.get("mapping_layer_num", count(g, r"^mapping_z\.(\d+)\.weight$"))),
            lr_mul=float(args.get("lr_mul", 0.01)), channels=tuple(channels),
            small_generator=bool(args.get("small_generator", False)),
            normalize_mode=str(args.get("normalize_mode", "LayerNorm")))
        enc = StyleMapEncoderConfig(resolution=size, latent_channels=c, latent_size=s, channels=tuple(enc_channels))
        return StyleMapGANConfig(generator=gen, encoder=enc)
    except KeyError as exc:
        raise CheckpointError(f"{src}: not a StyleMapGAN checkpoint (missing {exc})") from None
    except ValueError as exc:
        raise CheckpointError(f"{src}: inconsistent StyleMapGAN checkpoint: {exc}") from None


def load_stylemapgan(obj: dict[str, Any], part: str | None, src: str) -> tuple[Any, CheckpointInfo]:
    """The model ``part`` names (see the module docstring)."""
    args = _args(obj, src)
    parts = tuple(k for k in ("g_ema", "e_ema", "generator", "encoder", "discriminator") if k in obj)
    info = CheckpointInfo(src, "stylemapgan-train", parts, {"args": args})
    if part == "d":
        if "discriminator" not in obj:
            raise CheckpointError(f"{src}: has no discriminator")
        return discriminator_from_rosinality(obj["discriminator"], f"{src}[discriminator]", {"size": args.get(
            "size")}), info
    if part not in PARTS:
        raise ValueError(f"{src}: a StyleMapGAN checkpoint; part must be None, 'ema', 'nonema' / 'raw' or 'd', "
                         f"got {part!r}")
    gk, ek = PARTS[part]
    for k in (gk, ek):
        if not isinstance(obj.get(k), dict):
            raise CheckpointError(f"{src}: has no {k!r} weights (it holds {list(parts)})")
    g, e = obj[gk], obj[ek]
    model = StyleMapGAN(_configs(g, e, args, src))
    check_state_dict(model.generator, _drop_kernels(g, model.generator, f"{src}[{gk}]"), f"{src}[{gk}]")
    check_state_dict(model.encoder, _drop_kernels(e, model.encoder, f"{src}[{ek}]"), f"{src}[{ek}]")
    return model.eval(), info
