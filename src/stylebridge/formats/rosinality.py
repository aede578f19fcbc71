"""rosinality stylegan2-pytorch: ``train.py`` checkpoints (``g``, ``d``, ``g_ema``, optimisers, ``args``) and bare
``Generator`` / ``Discriminator`` state dicts. The config is inferred from tensor shapes and checked against
``args``; rosinality's FIR kernel buffers are checked against the config and dropped.
"""

from __future__ import annotations

from typing import Any

import torch

from stylebridge.core.errors import CheckpointError
from stylebridge.core.native import check_state_dict
from stylebridge.formats.common import blur_from_buffer, channel_fields, count, drop_fir_buffers
from stylebridge.models.stylegan2 import (
    D_FIR_BUFFER_KEYS,
    G_FIR_BUFFER_KEYS,
    StyleGAN2Config,
    StyleGAN2Discriminator,
    StyleGAN2DiscriminatorConfig,
    StyleGAN2Generator,
)

__all__ = ["discriminator_from_rosinality", "generator_from_rosinality"]


def generator_from_rosinality(sd: dict[str, torch.Tensor], src: str,
                              args: dict[str, Any] | None = None) -> StyleGAN2Generator:
    """Build a generator from a rosinality ``Generator.state_dict()`` (config inferred from shapes)."""
    try:
        n_mlp = count(sd, r"^style\.(\d+)\.weight$")
        n_rgb = count(sd, r"^to_rgbs\.(\d+)\.conv\.weight$")
        first = sd["style.1.weight"]
        resolution = 2 ** (n_rgb + 2)
        channels = [sd["input.input"].shape[1]] + [sd[f"convs.{2 * k}.conv.weight"].shape[1] for k in range(n_rgb)]
        img_channels = sd["to_rgb1.conv.weight"].shape[1]
        w_dim = sd["style.1.bias"].shape[0] if n_mlp == 1 else sd[f"style.{n_mlp}.weight"].shape[0]
    except KeyError as exc:
        raise CheckpointError(f"{src}: not a StyleGAN2 generator state dict (missing {exc})") from None
    blur = blur_from_buffer(sd.get("convs.0.conv.blur.kernel"), 4.0, src)
    cfg = StyleGAN2Config(resolution=resolution, z_dim=first.shape[1], w_dim=w_dim, mapping_layers=n_mlp,
                          blur_kernel=blur, img_channels=img_channels,
                          **channel_fields(resolution, channels, (args or {}).get("channel_multiplier")))
    if args:
        stated = {"size": cfg.resolution, "latent": cfg.w_dim, "n_mlp": cfg.mapping_layers}
        bad = [f"{k}={args[k]} (weights say {v})" for k, v in stated.items() if k in args and args[k] != v]
        if bad:
            raise CheckpointError(f"{src}: args disagree with the weights: {', '.join(bad)}")
    model = StyleGAN2Generator(cfg)
    sd = drop_fir_buffers(sd, G_FIR_BUFFER_KEYS, model.expected_fir_buffers(), src)
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
        n_blocks = count(sd, r"^convs\.(\d+)\.conv1\.0\.weight$")
        resolution = 2 ** (n_blocks + 2)
        top = sd["convs.0.0.weight"]
        channels = [sd["final_conv.0.weight"].shape[0]]
        for j in range(n_blocks, 0, -1):  # block j maps resolution/2**(j-1) → half of it; collect 8.. upward
            channels.append(sd[f"convs.{j}.conv1.0.weight"].shape[0])
        final_in = sd["final_conv.0.weight"].shape[1]
    except KeyError as exc:
        raise CheckpointError(f"{src}: not a StyleGAN2 discriminator state dict (missing {exc})") from None
    blur = blur_from_buffer(sd.get("convs.1.conv2.0.kernel"), 1.0, src)
    cfg = StyleGAN2DiscriminatorConfig(
        resolution=resolution, img_channels=top.shape[1], blur_kernel=blur,
        mbstd_num_channels=final_in - channels[0],
        **channel_fields(resolution, channels, (args or {}).get("channel_multiplier")))
    if args and "size" in args and args["size"] != resolution:
        raise CheckpointError(f"{src}: args say size={args['size']} but the weights are for {resolution} px")
    model = StyleGAN2Discriminator(cfg)
    sd = drop_fir_buffers(sd, D_FIR_BUFFER_KEYS, model.expected_fir_buffers(), src)
    check_state_dict(model, {k: v.float() for k, v in sd.items()}, src)
    return model.eval()
