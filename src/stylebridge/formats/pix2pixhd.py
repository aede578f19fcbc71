"""Official pix2pixHD checkpoints (NVIDIA/pix2pixHD ``BaseModel.save_network``: bare state dicts
``{epoch}_net_G.pth`` / ``{epoch}_net_D.pth`` in ``checkpoints/<name>/``) → `Pix2PixHDGenerator` /
`Pix2PixHDDiscriminator`.

The architecture comes from the ``opt.txt`` that pix2pixHD's ``BaseOptions.parse`` writes beside the weights
(``key: value`` lines between two marker lines) when there is one, and is always inferred from the key names and
weight shapes as well: the two must agree. The official module paths (``model.10.conv_block.5``,
``model1_2.1``, ``scale1_layer3.0``) are renamed to ours; loading is strict (unknown, missing or mis-shaped
weights are errors naming the file). Only ``norm instance`` (no affine) networks exist here: InstanceNorm running
statistics written by PyTorch < 0.4 are dropped (pix2pixHD's own ``load_network`` ignores them too), any other
normalisation parameter is an error. The feature encoder ``net_E`` (instance-wise features) is not supported.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path
from typing import Any

import torch

from stylebridge.core.errors import CheckpointError
from stylebridge.core.native import check_state_dict
from stylebridge.formats.common import CheckpointInfo, count
from stylebridge.models.pix2pixhd import (
    Pix2PixHDDiscriminator,
    Pix2PixHDDiscriminatorConfig,
    Pix2PixHDGenerator,
    Pix2PixHDGeneratorConfig,
)

__all__ = ["OPTIONS_NAME", "is_pix2pixhd", "load_pix2pixhd", "read_options"]

logger = logging.getLogger("stylebridge.formats")

OPTIONS_NAME = "opt.txt"
_RUNNING_STATS = ("running_mean", "running_var", "num_batches_tracked")
_G_OPTIONS = ("input_nc", "output_nc", "label_nc", "no_instance", "instance_feat", "label_feat", "feat_num", "netG",
              "ngf", "n_downsample_global", "n_blocks_global", "n_local_enhancers", "n_blocks_local", "norm")
_D_OPTIONS = ("input_nc", "output_nc", "label_nc", "no_instance", "ndf", "n_layers_D", "num_D", "no_ganFeat_loss",
              "no_lsgan", "norm")


def _strip_module(obj: dict[str, Any]) -> dict[str, Any]:
    """Drop a ``module.`` prefix every key carries (a state dict saved from a DataParallel wrapper)."""
    if obj and all(isinstance(k, str) and k.startswith("module.") for k in obj):
        return {k[len("module."):]: v for k, v in obj.items()}
    return obj


def _kind(obj: Any) -> str | None:
    """'generator' or 'discriminator' for a pix2pixHD state dict, else None."""
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        return None
    obj = _strip_module(obj)

    def kernel(key: str, k: int) -> bool:
        v = obj.get(key)
        return isinstance(v, torch.Tensor) and v.ndim == 4 and tuple(v.shape[2:]) == (k, k)

    if kernel("model.1.weight", 7) or kernel("model1_1.1.weight", 7):
        return "generator"
    if kernel("scale0_layer0.0.weight", 4) or kernel("layer0.0.weight", 4):
        return "discriminator"
    return None


def is_pix2pixhd(obj: Any) -> bool:
    """Whether a loaded ``torch.save`` object is a pix2pixHD generator or discriminator state dict."""
    return _kind(obj) is not None


# ------------------------------------------------------------------------------------------------------------------
# opt.txt


def read_options(path: str | Path) -> dict[str, str]:
    """pix2pixHD's option dump → {name: value as written (``str(value)``)}. Raises CheckpointError when the file
    holds no ``key: value`` line."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read the options file ({exc.strerror or exc})") from None
    opts = {}
    for line in text.splitlines():
        if line.startswith("---") or ":" not in line:
            continue
        key, _, value = line.partition(":")
        opts[key.strip()] = value.strip()
    if not opts:
        raise CheckpointError(f"{path}: not a pix2pixHD option file (no 'key: value' lines)")
    return opts


def _int(opts: dict[str, str], key: str, where: str) -> int:
    try:
        return int(opts[key])
    except ValueError:
        raise CheckpointError(f"{where}: option {key!r} must be an integer, got {opts[key]!r}") from None


def _bool(opts: dict[str, str], key: str, where: str) -> bool:
    if opts[key] not in ("True", "False"):
        raise CheckpointError(f"{where}: option {key!r} must be True or False, got {opts[key]!r}")
    return opts[key] == "True"


def _input_nc(opts: dict[str, str], where: str) -> int:
    """The channels of G's input as ``Pix2PixHDModel.initialize`` computes them (without encoded features)."""
    label_nc = _int(opts, "label_nc", where)
    return (label_nc or _int(opts, "input_nc", where)) + (0 if _bool(opts, "no_instance", where) else 1)


def _check_norm(opts: dict[str, str], where: str) -> None:
    if opts["norm"] != "instance":
        raise CheckpointError(f"{where}: norm {opts['norm']!r} is not supported (only pix2pixHD's default 'instance')")


def generator_config_from_options(opts: dict[str, str], where: str) -> Pix2PixHDGeneratorConfig:
    """The generator ``Pix2PixHDModel`` builds from these options (``define_G`` arguments)."""
    _check_norm(opts, where)
    net = opts["netG"]
    if net not in ("global", "local"):
        raise CheckpointError(f"{where}: netG {net!r} is not supported (pix2pixHD's 'global' or 'local')")
    in_ch = _input_nc(opts, where)
    if _bool(opts, "instance_feat", where) or _bool(opts, "label_feat", where):
        in_ch += _int(opts, "feat_num", where)
    try:
        return Pix2PixHDGeneratorConfig(
            in_channels=in_ch, out_channels=_int(opts, "output_nc", where), ngf=_int(opts, "ngf", where),
            n_downsample_global=_int(opts, "n_downsample_global", where),
            n_blocks_global=_int(opts, "n_blocks_global", where),
            n_local_enhancers=_int(opts, "n_local_enhancers", where) if net == "local" else 0,
            n_blocks_local=_int(opts, "n_blocks_local", where))
    except ValueError as exc:
        raise CheckpointError(f"{where}: invalid generator options: {exc}") from None


def discriminator_config_from_options(opts: dict[str, str], where: str) -> Pix2PixHDDiscriminatorConfig:
    """The discriminator ``Pix2PixHDModel`` builds from these options (``define_D`` arguments)."""
    _check_norm(opts, where)
    intermediate = not _bool(opts, "no_ganFeat_loss", where)
    try:
        return Pix2PixHDDiscriminatorConfig(
            in_channels=_input_nc(opts, where) + _int(opts, "output_nc", where), ndf=_int(opts, "ndf", where),
            n_layers=_int(opts, "n_layers_D", where), num_scales=_int(opts, "num_D", where),
            intermediate_features=intermediate, use_sigmoid=_bool(opts, "no_lsgan", where) and not intermediate)
    except ValueError as exc:
        raise CheckpointError(f"{where}: invalid discriminator options: {exc}") from None


# ------------------------------------------------------------------------------------------------------------------
# architecture from key names and shapes


def _shape(sd: dict[str, torch.Tensor], key: str, src: str, what: str) -> tuple[int, ...]:
    if key not in sd:
        raise CheckpointError(f"{src}: not a pix2pixHD {what} this loader understands (no {key!r})")
    return tuple(sd[key].shape)


def generator_config_from_state(sd: dict[str, torch.Tensor], src: str) -> Pix2PixHDGeneratorConfig:
    """Infer the generator architecture from the official key names and weight shapes."""
    levels = {int(m.group(1)) for k in sd if (m := re.match(r"^model(\d+)_[12]\.", k))}
    n_local = len(levels)
    if levels != set(range(1, n_local + 1)):
        raise CheckpointError(f"{src}: local enhancer modules {sorted(levels)} are not numbered 1..{n_local}")
    blocks = sorted(int(m.group(1)) for k in sd if (m := re.match(r"^model\.(\d+)\.conv_block\.1\.weight$", k)))
    n_blocks = len(blocks)
    if blocks:  # the first residual block sits at model.{4 + 3 * n_downsample}
        n_down, odd = divmod(blocks[0] - 4, 3)
        layout = f"first residual block at model.{blocks[0]}"
    else:  # stem, downsampling, upsampling (+ the output conv when global)
        plain = count(sd, r"^model\.(\d+)\.weight$")
        n_down, odd = divmod(plain - (1 if n_local else 2), 2)
        layout = f"{plain} convs in 'model', no residual block"
    if odd or n_down < 0:
        raise CheckpointError(f"{src}: the layers ({layout}) fit no pix2pixHD "
                              f"{'local enhancer' if n_local else 'global generator'}")
    first = _shape(sd, "model.1.weight", src, "generator")  # [ngf_global, in, 7, 7]
    if n_local:
        n_blocks_local = count(sd, r"^model1_2\.(\d+)\.conv_block\.1\.weight$")
        ngf = _shape(sd, f"model{n_local}_1.1.weight", src, "generator")[0]
        out = _shape(sd, f"model{n_local}_2.{n_blocks_local + 4}.weight", src, "generator")[0]
    else:
        n_blocks_local = Pix2PixHDGeneratorConfig.n_blocks_local  # not used by a global generator
        ngf = first[0]
        out = _shape(sd, f"model.{5 + 6 * n_down + n_blocks}.weight", src, "generator")[0]
    try:
        return Pix2PixHDGeneratorConfig(in_channels=first[1], out_channels=out, ngf=ngf, n_downsample_global=n_down,
                                        n_blocks_global=n_blocks, n_local_enhancers=n_local,
                                        n_blocks_local=n_blocks_local)
    except ValueError as exc:
        raise CheckpointError(f"{src}: weight shapes fit no pix2pixHD generator: {exc}") from None


def discriminator_config_from_state(sd: dict[str, torch.Tensor], src: str) -> Pix2PixHDDiscriminatorConfig:
    """Infer the discriminator architecture (and whether it returns intermediate features) from the state dict."""
    intermediate = any(k.startswith("scale") for k in sd)
    if intermediate:
        scales = count(sd, r"^scale(\d+)_layer\d+\.")
        convs = count(sd, r"^scale0_layer(\d+)\.0\.weight$")
        first = _shape(sd, "scale0_layer0.0.weight", src, "discriminator")
    else:
        scales = count(sd, r"^layer(\d+)\.")
        convs = count(sd, r"^layer0\.(\d+)\.weight$")
        first = _shape(sd, "layer0.0.weight", src, "discriminator")
    try:
        return Pix2PixHDDiscriminatorConfig(in_channels=first[1], ndf=first[0], n_layers=convs - 2,
                                            num_scales=scales, intermediate_features=intermediate)
    except ValueError as exc:
        raise CheckpointError(f"{src}: weight shapes fit no pix2pixHD discriminator: {exc}") from None


# ------------------------------------------------------------------------------------------------------------------
# official module paths → ours


def generator_names(c: Pix2PixHDGeneratorConfig) -> tuple[dict[str, str], dict[str, str]]:
    """(official conv path → ours, official norm path → the path of our conv it follows) for a generator."""
    convs: dict[str, str] = {}
    norms: dict[str, str] = {}
    d, b, nb = c.n_downsample_global, c.n_blocks_global, c.n_blocks_local

    def block(official: str, ours: str) -> None:
        convs[f"{official}.conv_block.1"], convs[f"{official}.conv_block.5"] = f"{ours}.conv1", f"{ours}.conv2"
        norms[f"{official}.conv_block.2"], norms[f"{official}.conv_block.6"] = f"{ours}.conv1", f"{ours}.conv2"

    def conv(official: str, index: int, ours: str, norm: bool = True) -> None:
        convs[f"{official}.{index}"] = ours
        if norm:
            norms[f"{official}.{index + 1}"] = ours

    g = "global_branch"
    conv("model", 1, f"{g}.stem.conv")
    for i in range(d):
        conv("model", 4 + 3 * i, f"{g}.down.{i}.conv")
    for k in range(b):
        block(f"model.{4 + 3 * d + k}", f"{g}.blocks.{k}")
    for i in range(d):
        conv("model", 4 + 3 * d + b + 3 * i, f"{g}.up.{i}.conv")
    if c.n_local_enhancers == 0:
        conv("model", 5 + 6 * d + b, "to_image", norm=False)
    for n in range(1, c.n_local_enhancers + 1):
        e = f"enhancers.{n - 1}"
        conv(f"model{n}_1", 1, f"{e}.stem.conv")
        conv(f"model{n}_1", 4, f"{e}.down.conv")
        for k in range(nb):
            block(f"model{n}_2.{k}", f"{e}.blocks.{k}")
        conv(f"model{n}_2", nb, f"{e}.up.conv")
        if n == c.n_local_enhancers:
            conv(f"model{n}_2", nb + 4, "to_image", norm=False)
    return convs, norms


def discriminator_names(c: Pix2PixHDDiscriminatorConfig) -> tuple[dict[str, str], dict[str, str]]:
    """The same for the multiscale discriminator; official ``scale{s}`` / ``layer{s}`` runs on the input pooled
    ``num_D - 1 - s`` times, i.e. it is our ``scales.{num_D - 1 - s}``."""
    convs: dict[str, str] = {}
    norms: dict[str, str] = {}
    for s in range(c.num_scales):
        for j in range(c.n_layers + 2):
            ours = f"scales.{c.num_scales - 1 - s}.layers.{j}.conv"
            if c.intermediate_features:
                official, norm = f"scale{s}_layer{j}.0", f"scale{s}_layer{j}.1"
            else:
                index = 0 if j == 0 else 2 + 3 * (j - 1)  # flat Sequential: [conv, lrelu], then [conv, norm, lrelu]…
                official, norm = f"layer{s}.{index}", f"layer{s}.{index + 1}"
            convs[official] = ours
            if 0 < j <= c.n_layers:
                norms[norm] = ours
    return convs, norms


def _short(items: list[str], limit: int = 6) -> str:
    return "[" + ", ".join(items[:limit]) + (f", … ({len(items) - limit} more)" if len(items) > limit else "") + "]"


def convert_state(sd: dict[str, torch.Tensor], model: torch.nn.Module, names: tuple[dict[str, str], dict[str, str]],
                  src: str, described: str) -> dict[str, torch.Tensor]:
    """Rename an official state dict to ``model``'s names, strictly: unknown keys, missing weights and shapes that
    differ are one CheckpointError naming ``src`` (in official names) and the architecture ``described``."""
    convs, norms = names
    own = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    unexpected, affine, shapes = [], [], []
    for key, value in sd.items():
        module, _, leaf = key.rpartition(".")
        if module in convs and leaf in ("weight", "bias"):
            ours = f"{convs[module]}.{leaf}"
            if tuple(value.shape) != tuple(own[ours].shape):
                shapes.append(f"{key} {tuple(value.shape)} vs {tuple(own[ours].shape)}")
            out[ours] = value.float() if value.is_floating_point() else value
        elif module in norms and leaf in _RUNNING_STATS:
            channels = own[f"{norms[module]}.bias"].shape[0]
            if leaf != "num_batches_tracked" and tuple(value.shape) != (channels,):
                shapes.append(f"{key} {tuple(value.shape)} vs ({channels},)")
        elif module in norms:
            affine.append(key)
        else:
            unexpected.append(key)
    missing = [f"{m}.{leaf}" for m in convs for leaf in ("weight", "bias") if f"{m}.{leaf}" not in sd]
    problems = []
    if affine:
        problems.append(f"normalisation parameters {_short(affine)} (only instance norm without affine is supported)")
    if unexpected:
        problems.append(f"unexpected keys {_short(unexpected)}")
    if missing:
        problems.append(f"missing keys {_short(missing)}")
    if shapes:
        problems.append(f"shape mismatches {_short(shapes)}")
    if problems:
        raise CheckpointError(f"{src}: does not match {described}: " + "; ".join(problems))
    return out


def describe_config(c: Pix2PixHDGeneratorConfig | Pix2PixHDDiscriminatorConfig) -> str:
    """'a pix2pixHD global generator (in_channels=3, ngf=8, …)': an architecture, for messages."""
    if isinstance(c, Pix2PixHDGeneratorConfig):
        kind = "local enhancer generator" if c.n_local_enhancers else "global generator"
        skip = () if c.n_local_enhancers else ("n_local_enhancers", "n_blocks_local")
    else:
        kind, skip = "multiscale discriminator", ()
    fields = ", ".join(f"{k}={v}" for k, v in c.to_dict().items() if k not in skip)
    return f"a pix2pixHD {kind} ({fields})"


def _differences(a: Any, b: Any) -> list[str]:
    """Fields where two configs differ (a global generator's local-enhancer fields do not count)."""
    da, db = a.to_dict(), b.to_dict()
    if isinstance(a, Pix2PixHDGeneratorConfig) and a.n_local_enhancers == b.n_local_enhancers == 0:
        da["n_blocks_local"] = db["n_blocks_local"]
    return [f"{k}: options {da[k]} vs weights {db[k]}" for k in da if da[k] != db[k]]


# ------------------------------------------------------------------------------------------------------------------
# entry point


def _options_beside(src: str) -> tuple[dict[str, str] | None, Path]:
    """The options in the opt.txt beside the file ``src`` (None when there is none) and that file's path."""
    path = Path(src).parent / OPTIONS_NAME
    if not Path(src).is_file() or not path.is_file():
        return None, path
    try:
        return read_options(path), path
    except CheckpointError as exc:
        logger.warning("%s; the architecture of %s comes from its weights", exc, src)
        return None, path


def load_pix2pixhd(obj: dict[str, Any], part: str | None, src: str) -> tuple[Any, CheckpointInfo]:
    """The generator or discriminator an official pix2pixHD state dict holds (see the module docstring)."""
    kind = _kind(obj)
    if kind is None:
        raise CheckpointError(f"{src}: not a pix2pixHD generator or discriminator state dict")
    if re.search(r"_net_E\.pth$", src):
        raise CheckpointError(f"{src}: pix2pixHD's feature encoder (net_E) is not supported")
    sd = _strip_module(obj)
    allowed = (None, "g", "g_ema") if kind == "generator" else (None, "d")
    if part not in allowed:
        raise ValueError(f"{src}: a pix2pixHD {kind} state dict holds one network; part={part!r} does not apply")
    opts, opt_path = _options_beside(src)
    needed = _G_OPTIONS if kind == "generator" else _D_OPTIONS
    if opts is not None and any(k not in opts for k in needed):
        lacking = [k for k in needed if k not in opts]
        logger.warning("%s: not a pix2pixHD option dump (no %s); the architecture of %s comes from its weights",
                       opt_path, ", ".join(lacking[:4]), src)
        opts = None
    from_options = from_weights = None
    if opts is not None:
        from_options = (generator_config_from_options if kind == "generator" else
                        discriminator_config_from_options)(opts, f"{src} (options {opt_path})")
    try:
        from_weights = (generator_config_from_state if kind == "generator" else
                        discriminator_config_from_state)(sd, src)
    except CheckpointError:
        if from_options is None:
            raise
    if from_options is not None and from_weights is not None:
        if kind == "discriminator":
            from_weights = dataclasses.replace(from_weights, use_sigmoid=from_options.use_sigmoid)  # no weights
        diff = _differences(from_options, from_weights)
        if diff:
            raise CheckpointError(f"{src}: the weights do not match {opt_path}: {_short(diff)}")
    config = from_options or from_weights
    model = Pix2PixHDGenerator(config) if kind == "generator" else Pix2PixHDDiscriminator(config)
    names = generator_names(config) if kind == "generator" else discriminator_names(config)
    state = convert_state(sd, model, names, src, describe_config(config))
    check_state_dict(model, state, src)
    info = CheckpointInfo(src, f"pix2pixhd-{kind}", ("g",) if kind == "generator" else ("d",),
                          {"options": str(opt_path) if opts is not None else None})
    return model.eval(), info
