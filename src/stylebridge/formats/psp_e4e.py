"""Foreign encoder checkpoints → stylebridge models (used by `stylebridge.load`).

* pSp / e4e training checkpoints (pixel2style2pixel and encoder4editing ``Coach`` format):
  ``{"state_dict": {"encoder.*", "decoder.*"}, "opts": dict, "latent_avg": Tensor}`` plus, for e4e runs saved
  with ``save_training_data``, ``discriminator_state_dict``. ``load(path)`` gives `PSP` or `E4E`,
  ``part="encoder"`` the encoder alone, ``part="decoder"`` the `StyleGAN2Generator`, ``part="d"`` e4e's
  `LatentDiscriminator`.
* ArcFace ``model_ir_se50.pth`` (a bare `IRSEBackbone` state dict) and torchvision ResNet-18/34 state dicts.

Every architecture setting is inferred from tensor shapes, cross-checked against ``opts`` where it states one
(``output_size`` / ``stylegan_size``, ``n_styles``, ``input_nc``, ``learn_in_w``, ``encoder_type``), and the
weights are loaded strictly: a mismatch is a `CheckpointError` naming the missing and unexpected keys.

pSp or e4e? The official encoders of the two have identical parameters, so the file's ``opts`` decide:
``encoder_type`` ``Encoder4Editing`` is e4e; e4e's options name the generator size ``stylegan_size`` where pSp's
say ``output_size``.

ReStyle (restyle-encoder's ``restyle_psp_*.pt`` / ``restyle_e4e_*.pt``: the same ``Coach`` layout) is recognised by
``encoder_type`` ``BackboneEncoder`` (ReStyle-pSp) / ``ProgressiveBackboneEncoder`` (ReStyle-e4e), or a pSp
``GradualStyleEncoder`` whose input takes twice the image channels (``input_nc`` 6) or whose opts carry
``n_iters_per_batch``; that option becomes the model's ``n_iters``. The ResNet-34 variants
(``ResNetBackboneEncoder``, ``ResNetProgressiveBackboneEncoder``) are refused with a message.
"""

from __future__ import annotations

import argparse
import math
import re
from typing import Any

import torch

from stylebridge.core.errors import CheckpointError
from stylebridge.core.native import PretrainedModel, check_state_dict
from stylebridge.formats.common import CheckpointInfo, count
from stylebridge.formats.rosinality import generator_from_rosinality
from stylebridge.models.e4e import E4E, E4EConfig, E4EEncoderConfig, LatentDiscriminator, LatentDiscriminatorConfig
from stylebridge.models.irse import IRSE_UNITS, IRSEBackbone, IRSEBackboneConfig, stage_ends
from stylebridge.models.psp import PSP, PSPConfig, PSPEncoderConfig
from stylebridge.models.resnet import RESNET_BLOCKS, ResNet, ResNetConfig
from stylebridge.models.restyle import ReStyle, ReStyleConfig, ReStyleEncoderConfig
from stylebridge.models.stylegan2 import StyleGAN2Generator

__all__ = ["from_torch_object", "irse_backbone_from_state_dict", "load_coach_checkpoint", "resnet_from_state_dict"]

# encoder_type (opts) → (family, encoder kind). e4e's repository also trains pSp encoders and a single-w one.
ENCODER_TYPES = {
    "GradualStyleEncoder": ("psp", "gradual"),
    "BackboneEncoderUsingLastLayerIntoW": ("psp", "w"),
    "SingleStyleCodeEncoder": ("psp", "w"),
    "Encoder4Editing": ("e4e", "e4e"),
    "BackboneEncoder": ("psp", "backbone"),
    "ProgressiveBackboneEncoder": ("e4e", "backbone"),
}
RESNET_TYPES = ("ResNetBackboneEncoder", "ResNetProgressiveBackboneEncoder", "ResNetGradualStyleEncoder")
COACH_PARTS = ("encoder", "decoder", "d")
PSP_FACE_POOL = 256  # the official pSp/e4e face_pool side (AdaptiveAvgPool2d((256, 256)))


def from_torch_object(obj: dict[str, Any], part: str | None,
                      src: str) -> tuple[PretrainedModel, CheckpointInfo] | None:
    """The model in a loaded ``torch.save`` dict if it is an encoder format handled here, else None."""
    if "state_dict" in obj and "opts" in obj:
        return load_coach_checkpoint(obj, part, src)
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors or len(tensors) != len(obj):
        return None
    if "input_layer.0.weight" in tensors and "output_layer.3.weight" in tensors:
        _no_part(part, src, "an ArcFace IR-SE backbone state dict")
        return irse_backbone_from_state_dict(tensors, src), CheckpointInfo(src, "arcface-irse", ("backbone",), {})
    if "conv1.weight" in tensors and "layer1.0.conv1.weight" in tensors:
        _no_part(part, src, "a torchvision ResNet state dict")
        return resnet_from_state_dict(tensors, src), CheckpointInfo(src, "torchvision-resnet", ("resnet",), {})
    return None


def _no_part(part: str | None, src: str, what: str) -> None:
    if part is not None:
        raise ValueError(f"{src}: {what} holds one network; part={part!r} does not apply")


def _floats(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # Checkpoints may hold fp16 weights; BatchNorm's num_batches_tracked stays an integer.
    return {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}


# ------------------------------------------------------------------------------------------------------------------
# IR-SE trunks (pSp/e4e encoders, ArcFace)


def _trunk_fields(sd: dict[str, torch.Tensor], src: str) -> dict[str, Any]:
    """num_layers, mode, in_channels, input_width, widths, se_reduction of an IR/IR-SE trunk state dict."""
    try:
        first = sd["input_layer.0.weight"]  # [input_width, in_channels, 3, 3]
        n_units = count(sd, r"^body\.(\d+)\.res_layer\.1\.weight$")
        by_units = {sum(u): n for n, u in IRSE_UNITS.items()}
        if n_units not in by_units:
            raise CheckpointError(f"{src}: {n_units} IR units match no IR-SE depth "
                                  f"(50/100/152 layers have {sorted(by_units)} units)")
        num_layers = by_units[n_units]
        starts = [0] + [e + 1 for e in stage_ends(num_layers)[:3]]
        widths = tuple(int(sd[f"body.{s}.res_layer.1.weight"].shape[0]) for s in starts)
        se_key = "body.0.res_layer.5.fc1.weight"
        se = se_key in sd
        se_reduction = widths[0] // int(sd[se_key].shape[0]) if se else 16
    except KeyError as exc:
        raise CheckpointError(f"{src}: not an IR-SE trunk state dict (missing {exc})") from None
    return {"num_layers": num_layers, "mode": "ir_se" if se else "ir", "in_channels": int(first.shape[1]),
            "input_width": int(first.shape[0]), "widths": widths, "se_reduction": se_reduction}


def irse_backbone_from_state_dict(sd: dict[str, torch.Tensor], src: str) -> IRSEBackbone:
    """Build an `IRSEBackbone` from an ArcFace ``Backbone`` state dict (``model_ir_se50.pth``)."""
    fields = _trunk_fields(sd, src)
    lin = sd["output_layer.3.weight"]  # [embed_dim, C * s * s]
    last = fields["widths"][-1]
    side = math.isqrt(int(lin.shape[1]) // last)
    if side * side * last != lin.shape[1]:
        raise CheckpointError(f"{src}: output_layer.3 takes {lin.shape[1]} features, not {last} x s x s")
    try:
        cfg = IRSEBackboneConfig(**fields, input_size=16 * side, embed_dim=int(lin.shape[0]),
                                 affine="output_layer.4.weight" in sd)
    except ValueError as exc:
        raise CheckpointError(f"{src}: {exc}") from None
    model = IRSEBackbone(cfg)
    check_state_dict(model, _floats(sd), src)
    return model.eval()


def resnet_from_state_dict(sd: dict[str, torch.Tensor], src: str) -> ResNet:
    """Build a `ResNet` from a torchvision ``resnet18`` / ``resnet34`` state dict."""
    if "layer1.0.conv3.weight" in sd:
        raise CheckpointError(f"{src}: a bottleneck ResNet (50 layers or more); only ResNet-18/34 are supported")
    blocks = tuple(count(sd, rf"^layer{k}\.(\d+)\.conv1\.weight$") for k in range(1, 5))
    depth = {v: k for k, v in RESNET_BLOCKS.items()}.get(blocks)  # type: ignore[arg-type]
    if depth is None:
        raise CheckpointError(f"{src}: blocks per stage {blocks} match no ResNet-18/34")
    conv1 = sd["conv1.weight"]
    cfg = ResNetConfig(depth=depth, in_channels=int(conv1.shape[1]), input_width=int(conv1.shape[0]),
                       widths=tuple(int(sd[f"layer{k}.0.conv1.weight"].shape[0]) for k in range(1, 5)),
                       num_classes=int(sd["fc.weight"].shape[0]) if "fc.weight" in sd else 0)
    model = ResNet(cfg)
    check_state_dict(model, _floats(sd), src)
    return model.eval()


# ------------------------------------------------------------------------------------------------------------------
# pSp / e4e Coach checkpoints


def _opts_dict(opts: Any, src: str) -> dict[str, Any]:
    if isinstance(opts, argparse.Namespace):
        return vars(opts)
    if isinstance(opts, dict):
        return opts
    raise CheckpointError(f"{src}: 'opts' is a {type(opts).__name__}, expected a dict of training options")


def _encoder_kind(opts: dict[str, Any], enc: dict[str, torch.Tensor], src: str) -> tuple[str, str]:
    """(family "psp" | "e4e", kind "gradual" | "w" | "e4e") from opts, checked against the encoder's keys."""
    has_styles = any(k.startswith("styles.") for k in enc)
    has_linear = "linear.weight" in enc
    etype = opts.get("encoder_type")
    if etype in RESNET_TYPES:
        raise CheckpointError(f"{src}: encoder_type {etype!r} (a ResNet-34 trunk) is not supported; the IR-SE "
                              "encoders are (GradualStyleEncoder, BackboneEncoder, ProgressiveBackboneEncoder, "
                              "Encoder4Editing)")
    if etype is not None:
        if etype not in ENCODER_TYPES:
            raise CheckpointError(f"{src}: encoder_type {etype!r} is not supported "
                                  f"(supported: {', '.join(ENCODER_TYPES)})")
        family, kind = ENCODER_TYPES[etype]
    elif has_styles:
        family, kind = ("e4e", "e4e") if "stylegan_size" in opts and "output_size" not in opts else ("psp", "gradual")
    elif has_linear:
        family, kind = "psp", "w"
    else:
        raise CheckpointError(f"{src}: cannot tell the encoder type (no encoder_type in opts, no styles.* or "
                              "linear.* encoder weights)")
    if (kind == "w") != (has_linear and not has_styles):
        raise CheckpointError(f"{src}: opts say encoder_type {etype!r} but the encoder weights are those of a "
                              f"{'single-w' if has_linear else 'per-style (GradualStyle)'} encoder")
    learn_in_w = opts.get("learn_in_w")
    if learn_in_w is not None and bool(learn_in_w) != (kind == "w"):
        raise CheckpointError(f"{src}: opts learn_in_w={learn_in_w} contradicts encoder_type {etype!r}")
    return family, kind


def _input_size(enc: dict[str, torch.Tensor], num_ws: int, coarse: int, middle: int, src: str) -> int:
    """Input side from the convs of the finest style block present (log2 of its feature side)."""
    for i, div in ((middle, 4), (coarse, 8), (0, 16)):
        if i < num_ws:
            n = count(enc, rf"^styles\.{i}\.convs\.(\d+)\.weight$")
            if n == 0:
                raise CheckpointError(f"{src}: encoder has no styles.{i}.convs")
            return div * 2**n
    raise CheckpointError(f"{src}: encoder has no style blocks")


def _state_dict_halves(sd: Any, src: str) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{src}: 'state_dict' is not a dict of tensors")
    enc = {k[len("encoder."):]: v for k, v in sd.items() if k.startswith("encoder.")}
    dec = {k[len("decoder."):]: v for k, v in sd.items() if k.startswith("decoder.")}
    other = sorted(k for k in sd if not k.startswith(("encoder.", "decoder.")))
    if other:
        raise CheckpointError(f"{src}: state_dict keys outside encoder./decoder.: {other[:8]}"
                              f"{' …' if len(other) > 8 else ''}")
    if not enc or not dec:
        raise CheckpointError(f"{src}: state_dict lacks {'encoder.*' if not enc else 'decoder.*'} weights")
    return enc, dec


def _latent_avg(obj: dict[str, Any], opts: dict[str, Any], decoder: StyleGAN2Generator, rows: int, family: str,
                src: str) -> torch.Tensor:
    """The [rows, w_dim] offset added to the codes (rows: num_ws, or 1 for single-w encoders)."""
    d = decoder.w_dim
    la = obj.get("latent_avg")
    if not opts.get("start_from_latent_avg", la is not None):
        return torch.zeros(rows, d)  # the official forward adds nothing
    if la is None:
        # pSp would fail here; e4e recomputes decoder.mean_latent(10000): our generator's w_avg is that mean.
        return decoder.w_avg.detach().clone()[None].repeat(rows, 1)
    if not isinstance(la, torch.Tensor) or la.shape[-1] != d or la.ndim > 2:
        raise CheckpointError(f"{src}: latent_avg of shape {tuple(getattr(la, 'shape', ()))} does not fit "
                              f"w_dim {d} (expected [{d}], [1, {d}] or [{decoder.num_ws}, {d}])")
    la = la.float().reshape(-1, d)
    if rows == 1:
        if la.shape[0] != 1 and family != "e4e":
            # pSp adds latent_avg.repeat(N, 1) to [N, w_dim] codes, which only works for one row.
            raise CheckpointError(f"{src}: a single-w pSp encoder needs latent_avg [{d}] or [1, {d}], "
                                  f"got {tuple(obj['latent_avg'].shape)}")
        return la[:1].clone()  # e4e's single-code path adds row 0
    if la.shape[0] not in (1, rows):
        raise CheckpointError(f"{src}: latent_avg has {la.shape[0]} rows; expected 1 or num_ws = {rows}")
    return la.expand(rows, d).clone()


def load_coach_checkpoint(obj: dict[str, Any], part: str | None, src: str) -> tuple[PretrainedModel, CheckpointInfo]:
    """pSp / e4e ``Coach`` checkpoint → `PSP` / `E4E` (or one part of it, see the module docstring)."""
    if part is not None and part not in COACH_PARTS:
        raise ValueError(f"{src}: a pSp/e4e checkpoint; part must be None or one of {COACH_PARTS}, got {part!r}")
    opts = _opts_dict(obj["opts"], src)
    enc, dec = _state_dict_halves(obj["state_dict"], src)
    family, kind = _encoder_kind(opts, enc, src)
    size = opts.get("output_size", opts.get("stylegan_size"))
    decoder = generator_from_rosinality(dec, f"{src}[decoder]", {"size": size} if size else None)
    has_d = isinstance(obj.get("discriminator_state_dict"), dict)
    parts = ("encoder", "decoder") + (("d",) if has_d else ())
    info = CheckpointInfo(src, f"{family}-checkpoint", parts,
                          {"args": opts, "encoder_type": opts.get("encoder_type"), "encoder_kind": kind})
    if part == "decoder":
        return decoder, info
    if part == "d":
        if not has_d:
            raise CheckpointError(f"{src}: has no latent discriminator (saved without save_training_data, or not "
                                  "an e4e run with w_discriminator_lambda > 0)")
        return latent_discriminator_from_state_dict(obj["discriminator_state_dict"], f"{src}[d]"), info

    num_ws = decoder.num_ws
    n_styles = opts.get("n_styles")
    if n_styles is not None and n_styles != num_ws:
        raise CheckpointError(f"{src}: opts n_styles={n_styles} but the {decoder.resolution}-px decoder has "
                              f"{num_ws} W+ rows")
    trunk = _trunk_fields(enc, f"{src}[encoder]")
    input_nc = opts.get("input_nc")
    if input_nc is not None and input_nc != trunk["in_channels"]:
        raise CheckpointError(f"{src}: opts input_nc={input_nc} but the encoder takes {trunk['in_channels']} "
                              "channels")
    restyle = kind == "backbone" or (kind == "gradual" and (
        "n_iters_per_batch" in opts or trunk["in_channels"] == 6))
    try:
        if restyle:
            return _restyle_model(obj, opts, enc, trunk, family, kind, decoder, part, src), \
                CheckpointInfo(src, f"restyle-{family}-checkpoint", parts, {**info.extra, "restyle": True})
        if kind == "w":
            w_dim = int(enc["linear.weight"].shape[0])
            enc_cfg: Any = PSPEncoderConfig(num_ws=num_ws, w_dim=w_dim, learn_in_w=True, **trunk)
        else:
            n_style_blocks = count(enc, r"^styles\.(\d+)\.")
            # Any block's linear gives w_dim, so one damaged key still reaches the strict key check below.
            w_dim = int(next(v for k, v in enc.items() if re.match(r"^styles\.\d+\.linear\.weight$", k)).shape[0])
            cls = E4EEncoderConfig if kind == "e4e" else PSPEncoderConfig
            coarse, middle = cls.coarse_ind, cls.middle_ind  # the official constants (3, 7)
            input_size = _input_size(enc, n_style_blocks, coarse, middle, f"{src}[encoder]")
            # Official heads are w_dim wide; a narrower first conv is a stylebridge style_width export.
            hidden = int(enc["styles.0.convs.0.weight"].shape[0])
            enc_cfg = cls(num_ws=n_style_blocks, w_dim=w_dim, input_size=input_size,
                          style_width=None if hidden == w_dim else hidden, **trunk)
        config_cls = E4EConfig if family == "e4e" else PSPConfig
        cfg = config_cls(encoder=enc_cfg, decoder=decoder.config, resize_to=PSP_FACE_POOL)
    except (KeyError, StopIteration) as exc:
        raise CheckpointError(f"{src}: encoder state dict lacks {exc or 'styles.*.linear.weight'}") from None
    except ValueError as exc:
        raise CheckpointError(f"{src}: inconsistent checkpoint: {exc}") from None
    model: PSP | E4E = E4E(cfg) if family == "e4e" else PSP(cfg)
    check_state_dict(model.encoder, _floats(enc), f"{src}[encoder]")
    model.decoder.load_state_dict(decoder.state_dict(), strict=True)
    model.latent_avg.copy_(_latent_avg(obj, opts, decoder, model.latent_avg.shape[0], family, src))
    model.eval()
    return (model.encoder if part == "encoder" else model), info


def _restyle_model(obj: dict[str, Any], opts: dict[str, Any], enc: dict[str, torch.Tensor], trunk: dict[str, Any],
                   family: str, kind: str, decoder: StyleGAN2Generator, part: str | None, src: str) -> Any:
    """A ReStyle checkpoint → `ReStyle` (or its encoder with ``part="encoder"``)."""
    n_style_blocks = count(enc, r"^styles\.(\d+)\.")
    w_dim = int(next(v for k, v in enc.items() if re.match(r"^styles\.\d+\.linear\.weight$", k)).shape[0])
    if kind == "backbone":
        n = count(enc, r"^styles\.0\.convs\.(\d+)\.weight$")
        input_size = 16 * 2**n
    else:
        input_size = _input_size(enc, n_style_blocks, ReStyleEncoderConfig.coarse_ind,
                                 ReStyleEncoderConfig.middle_ind, f"{src}[encoder]")
    hidden = int(enc["styles.0.convs.0.weight"].shape[0])
    enc_cfg = ReStyleEncoderConfig(num_ws=n_style_blocks, w_dim=w_dim, input_size=input_size,
                                   style_width=None if hidden == w_dim else hidden, base=family,
                                   encoder_type="backbone" if kind == "backbone" else "gradual", **trunk)
    n_iters = int(opts.get("n_iters_per_batch", 5))
    model = ReStyle(ReStyleConfig(encoder=enc_cfg, decoder=decoder.config, resize_to=PSP_FACE_POOL, n_iters=n_iters))
    check_state_dict(model.encoder, _floats(enc), f"{src}[encoder]")
    model.decoder.load_state_dict(decoder.state_dict(), strict=True)
    model.latent_avg.copy_(_latent_avg(obj, opts, decoder, model.latent_avg.shape[0], family, src))
    model.eval()
    return model.encoder if part == "encoder" else model


def latent_discriminator_from_state_dict(sd: dict[str, torch.Tensor], src: str) -> LatentDiscriminator:
    """Build e4e's `LatentDiscriminator` from ``discriminator_state_dict`` (``mlp.{0,2,…}.weight/bias``)."""
    n = count(sd, r"^mlp\.(\d+)\.weight$")
    if n == 0 or "mlp.0.weight" not in sd:
        raise CheckpointError(f"{src}: not an e4e latent discriminator state dict (no mlp.0.weight)")
    model = LatentDiscriminator(LatentDiscriminatorConfig(w_dim=int(sd["mlp.0.weight"].shape[1]), num_layers=n))
    check_state_dict(model, _floats(sd), src)
    return model.eval()
