"""The methods `stylebridge evaluate` compares: a small registry, name → how to build it.

A method is built from the generator's name, a model (shipped name or path; None for the registered default) and a
device into an `EvalMethod`: a label, the input kinds it takes (`evaluate.inputs.INPUT_KINDS`) and a function
`InputBatch` → images [N, 3, R', R'] in [-1, 1]. Kinds outside ``kinds`` show as "—" in the report, never as a number.

Built in (shipped models of ``{generator}``, e.g. synthfaces-64):

==============  ==========================================  ==================================================
name            default model                               takes
==============  ==========================================  ==================================================
psp             ``{generator}-psp-inversion``               every kind (RGB)
e4e             ``{generator}-e4e-inversion``               every kind (RGB)
actmap          ``{generator}-actmap``                      every kind (RGB; mean w, constant noise)
actmap-e4e (*)  ``{generator}-actmap`` + e4e's styles        every kind (RGB; colours from the input's e4e code)
actmap-colors(*)``{generator}-actmap``, colors=input         every kind (RGB; chroma matched to the input)
psp-sketch      ``{generator}-psp-sketch``                  the sketch itself (1 channel); other kinds as luma
stylemapgan (*) ``{generator}-stylemapgan``                 every kind (RGB; decode(encode(x)), its own generator)
restyle (*)     ``{generator}-restyle-e4e-inversion``       every kind (RGB)
optimize (*)    — (the generator itself)                    every kind (RGB; W+ projection, 200 steps)
optimize-e4e(*) — (e4e's start, then the generator)        every kind (RGB)
pti (*)         — (PTI on ReStyle's pivot)                  every kind (RGB; pivot + 100 tuning steps)
==============  ==========================================  ==================================================

(*) not in the default set (seconds per face, or a second run of another row): name them in ``--methods``. The
optimisation rows run with the inverters' defaults except the steps above (`method_from_inverter` takes others).

``--methods NAME=MODEL`` evaluates another model: under a registered NAME with that method's builder, under any other
NAME with `method_from_model` (pSp / e4e: by its input channels — 3: RGB of every kind, 1: the sketch, other kinds as
luma, 4: inpainting only (masked face + mask), L one-hot channels: segmentation only; activation-map translators:
every RGB kind) — any model with an image pipeline (``pipelines.base.pipeline_for``) works.

Adding a method (optimisation inversion, PTI, ReStyle, StyleMapGAN, distillation …) is one call, next to the
built-ins at the end of this module::

    register_method("restyle", build=lambda model, generator, device: method_from_model(
        model or f"{generator}-restyle", "restyle", device), model="{generator}-restyle",
        description="ReStyle iterative refinement")

where ``build(model, generator, device) -> EvalMethod`` may build anything whose ``translate`` maps an
`InputBatch` to images (for a model behind the pipeline interface: ``translate=lambda b: pipe(b.rgb).images``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch

from stylebridge.evaluate.inputs import INPUT_KINDS, InputBatch

__all__ = ["EvalMethod", "MethodSpec", "build_method", "method_from_inverter", "method_from_model", "parse_method",
           "register_method", "registered_methods", "unregister_method"]

ALL_KINDS = frozenset(INPUT_KINDS)


@dataclass
class EvalMethod:
    """One row of the evaluation: ``translate`` maps an `InputBatch` (only of ``kinds``) to images [N, 3, R', R']
    in [-1, 1] (any R'; resized to the target's size for the metrics). ``model`` and ``network`` are for the
    report (what was loaded, what it is)."""

    name: str
    kinds: frozenset[str]
    translate: Callable[[InputBatch], torch.Tensor]
    model: str = ""
    network: str = ""
    notes: str = ""

    def takes(self, kind: str) -> bool:
        return kind in self.kinds


Builder = Callable[[str | None, str, torch.device], EvalMethod]


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: ``build(model, generator, device)``; ``model`` is the default model (``{generator}``
    is replaced by the generator's name), None when the method needs none."""

    name: str
    build: Builder
    model: str | None = None
    description: str = ""
    default: bool = field(default=True)  # part of the default `--methods` set

    def default_model(self, generator: str) -> str | None:
        return None if self.model is None else self.model.format(generator=generator)


_REGISTRY: dict[str, MethodSpec] = {}


def register_method(name: str, build: Builder, model: str | None = None, description: str = "",
                    default: bool = True, replace: bool = False) -> MethodSpec:
    """Register a method under ``name`` (module docstring). ``default``: evaluated when ``--methods`` is not given.
    Registering a taken name raises ValueError unless ``replace``."""
    if not name or "=" in name or "," in name:
        raise ValueError(f"a method name is a non-empty word without '=' or ',', got {name!r}")
    if name in _REGISTRY and not replace:
        raise ValueError(f"method {name!r} is already registered")
    spec = MethodSpec(name, build, model, description, default)
    _REGISTRY[name] = spec
    return spec


def unregister_method(name: str) -> None:
    """Remove a registered method (tests register temporary ones)."""
    _REGISTRY.pop(name, None)


def registered_methods() -> dict[str, MethodSpec]:
    """name → `MethodSpec`, in registration order."""
    return dict(_REGISTRY)


def parse_method(text: str) -> tuple[str, str | None]:
    """'psp' → ('psp', None); 'mine=runs/x/model' → ('mine', 'runs/x/model'). Raises ValueError for an unknown
    bare name."""
    name, sep, model = text.partition("=")
    name = name.strip()
    if sep:
        if not name or not model:
            raise ValueError(f"--methods takes NAME or NAME=MODEL, got {text!r}")
        return name, model
    if name not in _REGISTRY:
        raise ValueError(f"unknown method {name!r}; registered: {', '.join(_REGISTRY)} (or NAME=MODEL for a model of "
                         "your own)")
    return name, None


def build_method(name: str, model: str | None, generator: str, device: torch.device | str = "cpu") -> EvalMethod:
    """The `EvalMethod` ``name`` (registered, or any label when ``model`` is given) for ``generator``."""
    dev = torch.device(device)
    spec = _REGISTRY.get(name)
    if spec is None:
        if model is None:
            raise ValueError(f"unknown method {name!r}; registered: {', '.join(_REGISTRY)}")
        return method_from_model(model, name, dev)
    return spec.build(model, generator, dev)


def _describe(model: torch.nn.Module) -> str:
    return f"{type(model).__name__}, {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters"


def method_from_model(model: str | os.PathLike | torch.nn.Module, name: str, device: torch.device | str = "cpu",
                      **options: object) -> EvalMethod:
    """An `EvalMethod` for any model with an image pipeline (``pipelines.base.pipeline_for``: pSp / e4e, the
    activation-map translator, and every family that registers a pipeline later): a shipped name, a path any
    ``stylebridge.load`` reads, or a loaded model. ``options`` go to every pipeline call (e.g. an activation-map
    translator's ``seed``; default: its mean w). The input kinds follow the pipeline's input spec: "rgb" every kind
    (RGB); "gray" every kind (the sketch itself, other kinds as luma, ITU-R BT.601); "labels" (one-hot synthfaces
    segmentation) segmentation only; "rgb+mask" inpainting only."""
    from stylebridge.core.imageio import prepare_images
    from stylebridge.data import synthfaces as sf
    from stylebridge.pipelines.base import load_pipeline

    label = type(model).__name__ if isinstance(model, torch.nn.Module) else str(model)
    pipe = load_pipeline(model, takes="images").to(torch.device(device))
    pipe.model.eval()
    pipe.check_options(dict(options))
    spec = pipe.input_spec
    own = {"gray": "sketch", "labels": "segmentation", "rgb+mask": "inpaint"}.get(spec.kind)
    if spec.kind == "rgb":
        kinds, notes = ALL_KINDS, "RGB inputs"
    elif spec.kind == "gray":
        kinds, notes = ALL_KINDS, "1-channel: the sketch itself; other kinds as luma (ITU-R BT.601)"
    elif spec.kind == "rgb+mask":
        kinds, notes = frozenset({"inpaint"}), "masked face + mask (4 channels): inpainting only"
    elif spec.kind == "labels" and spec.channels == len(sf.SEG_LABELS):
        kinds, notes = frozenset({"segmentation"}), f"one-hot segmentation ({spec.channels} labels) only"
    else:
        raise ValueError(f"{label}: its input ({spec.kind}, {spec.channels} channels) fits no evaluation input")
    if options:
        notes += "; options " + ", ".join(f"{k}={v}" for k, v in sorted(options.items()))
    elif getattr(pipe, "name", "") == "actmap":
        notes += "; mean w, constant noise"

    def translate(b: InputBatch) -> torch.Tensor:
        if b.kind == own:
            x = b.raw
            if x.shape[-1] != spec.size:
                mode = "nearest" if spec.kind == "labels" else "bilinear"
                x = torch.nn.functional.interpolate(x, size=(spec.size, spec.size), mode=mode)
        else:
            x = prepare_images(b.rgb, spec.channels, spec.size)
        return pipe(x.to(pipe.device), **options).images.float().cpu()

    return EvalMethod(name, kinds, translate, model=label, network=_describe(pipe.model), notes=notes)


def method_from_inverter(inverter: str, name: str, model: str | os.PathLike | torch.nn.Module | None = None,
                         generator: str | os.PathLike | torch.nn.Module | None = None,
                         device: torch.device | str = "cpu", **options: object) -> EvalMethod:
    """An `EvalMethod` that inverts every input (its RGB, resized to the generator's resolution) with the inverter
    ``inverter`` (`invert.base.make_inverter`: "optimize", "optimize-e4e", "restyle", "pti", …; ``model``,
    ``generator`` and ``options`` go to it) and renders the result — tuned weights and optimised noise included —
    so reconstruction by optimisation sits in the same table as the encoders."""
    from stylebridge.core.imageio import prepare_images
    from stylebridge.invert.base import resolve_inverter

    dev = torch.device(device)
    inv = resolve_inverter(inverter, model=model, generator=generator, progress=False, **options).to(dev)
    size = inv.input_size

    def translate(b: InputBatch) -> torch.Tensor:
        res = inv.invert(prepare_images(b.rgb, 3, size).to(dev))
        return inv.render(res.w_plus, **res.render_options()).float().cpu()

    facts = ", ".join(f"{k}={v}" for k, v in sorted(options.items()))
    return EvalMethod(name, ALL_KINDS, translate, model=str(model or generator or inverter),
                      network=f"{type(inv).__name__} into {_describe(inv.generator)}",
                      notes=f"inverter {inverter}" + (f" ({facts})" if facts else ""))


def _inverter(name: str, inverter: str, **options: object) -> Builder:
    def build(model: str | None, generator: str, device: torch.device) -> EvalMethod:
        if inverter == "optimize":  # into the generator itself (a path or shipped name given as the model)
            return method_from_inverter(inverter, name, generator=model or generator, device=device, **options)
        # encoder-based (restyle, optimize-e4e, pti on an encoder's pivot): the model is the encoder
        return method_from_inverter(inverter, name, model=model, device=device, **options)
    return build


def _actmap_with(name: str, colors: str = "style", styles_from: str | None = None) -> Builder:
    """The activation-map translator with its colours from the input: ``styles_from`` an inversion encoder's code
    for the same image (a shipped suffix, e.g. "e4e-inversion": the rows after the translator's layer are the
    colour / fine styles), or ``colors="input"`` (`core.filters.match_colors`)."""
    def build(model: str | None, generator: str, device: torch.device) -> EvalMethod:
        options: dict[str, object] = {}
        if colors != "style":
            options["colors"] = colors
        if styles_from is not None:
            from stylebridge.formats.loading import load
            from stylebridge.models.encoder_base import StyleEncoderModel

            options["style_encoder"] = load(f"{generator}-{styles_from}", expect=StyleEncoderModel).to(device).eval()
        m = method_from_model(model or f"{generator}-actmap", name, device, **options)
        m.notes = "RGB inputs; " + (f"styles from {generator}-{styles_from}'s code for the same image"
                                    if styles_from else "mean w, colours matched to the input (colors=input)")
        return m
    return build


def _shipped(name: str, suffix: str) -> Builder:
    def build(model: str | None, generator: str, device: torch.device) -> EvalMethod:
        return method_from_model(model or f"{generator}-{suffix}", name, device)
    return build


def _register_builtins(items: Iterable[tuple[str, str, str]]) -> None:
    for name, suffix, description in items:
        register_method(name, _shipped(name, suffix), model="{generator}-" + suffix, description=description)


_register_builtins([
    ("psp", "psp-inversion", "pSp inversion encoder (W+), shipped"),
    ("e4e", "e4e-inversion", "e4e inversion encoder (W+ near W), shipped"),
    ("actmap", "actmap", "activation-map translator (Zheng 2022), mean w, shipped"),
    ("psp-sketch", "psp-sketch", "pSp sketch → face encoder (1-channel input), shipped"),
])
register_method("actmap-e4e", _actmap_with("actmap-e4e", styles_from="e4e-inversion"), model="{generator}-actmap",
                description="activation-map translator with e4e's styles for the same image (colours from the input)",
                default=False)
register_method("actmap-colors", _actmap_with("actmap-colors", colors="input"), model="{generator}-actmap",
                description="activation-map translator, mean w, chroma matched to the input", default=False)
register_method("stylemapgan", _shipped("stylemapgan", "stylemapgan"), model="{generator}-stylemapgan",
                description="StyleMapGAN encoder + its own generator (decode(encode(x))), shipped", default=False)
register_method("restyle", _inverter("restyle", "restyle"), model="{generator}-restyle-e4e-inversion",
                description="ReStyle-e4e iterative encoder, shipped", default=False)
register_method("optimize", _inverter("optimize", "optimize", steps=200), model="{generator}",
                description="optimisation in W+ (200 steps, perceptual + MSE)", default=False)
register_method("optimize-e4e", _inverter("optimize-e4e", "optimize-e4e", steps=200),
                description="optimisation from e4e's code (200 steps)", default=False)
register_method("pti", _inverter("pti", "pti", pivot="restyle", steps=100), model="{generator}-restyle-e4e-inversion",
                description="pivotal tuning on ReStyle's pivot (100 steps, rank 8)", default=False)
