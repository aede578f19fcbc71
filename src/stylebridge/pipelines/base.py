"""The one inference interface: a `Pipeline` takes a batch and returns a `PipelineResult`.

Everything that turns images (or seeds) into images or latents is a pipeline — generator sampling
(`GeneratorPipeline`), pSp / e4e inversion and translation (`EncoderPipeline`), activation-map translation
(`ActmapPipeline`); next the inverters, StyleMapGAN and distilled translators. A pipeline wraps one loaded model,
says what it takes (`input_spec`) and maps a batch to a typed result::

    pipe = pipeline_for(stylebridge.load("synthfaces-64-psp-sketch"))   # the pipeline registered for the model
    pipe.input_spec          # InputSpec(channels=1, size=64, range=(-1.0, 1.0), kind='gray')
    res = pipe(x)            # x [N, 1, 64, 64] in [-1, 1] → res.images [N, 3, 64, 64], res.latents["w_plus"]

    load_pipeline("synthfaces-64-actmap", takes="images")(x, seed=7)    # load + dispatch in one call

A new model family registers its pipeline in its own module (``register_pipeline(MyModel, MyPipeline)``); the CLI,
the folder runner (`stylebridge.pipelines.runner`), ``evaluate`` and the studio find it through `pipeline_for`,
never through an ``isinstance`` chain of their own.

Tensors: images are float [N, C, H, W] in [-1, 1]; outputs are float32 on the pipeline's device, not clamped.
Precision: a pipeline runs in whatever autocast context the caller opened (the folder runner opens one for a whole
folder); `Pipeline.autocast` gives that context for the pipeline's device.
"""

from __future__ import annotations

import contextlib
import math
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from stylebridge.core.device import autocast

__all__ = [
    "INPUT_KINDS",
    "InputSpec",
    "Pipeline",
    "PipelineResult",
    "load_pipeline",
    "pipeline_classes",
    "pipeline_for",
    "register_pipeline",
]

INPUT_KINDS = ("rgb", "gray", "labels", "rgb+mask", "rgb-pair", "seeds")


@dataclass(frozen=True)
class InputSpec:
    """What a pipeline takes.

    Image kinds ("rgb", "gray", "labels", "rgb+mask"): float tensors [N, channels, size, size] with values in
    ``range`` ("labels": one-hot maps in {0, 1} over ``channels`` labels; "rgb+mask": RGB with the missing pixels
    set to 0 plus a mask channel, 1 where missing; "rgb-pair": two RGB images A and B concatenated, 6 channels,
    read from two folders paired by name). "seeds": int64 seeds [N] (NVlabs' z per seed) or float z
    [N, channels] (``channels`` = z_dim, ``size`` = 0).
    """

    channels: int
    size: int
    range: tuple[float, float] = (-1.0, 1.0)
    kind: str = "rgb"

    def __post_init__(self) -> None:
        if self.kind not in INPUT_KINDS:
            raise ValueError(f"InputSpec kind must be one of {INPUT_KINDS}, got {self.kind!r}")
        if self.channels < 1 or self.size < (0 if self.kind == "seeds" else 1):
            raise ValueError(f"InputSpec channels and size must be positive, got {self.channels}, {self.size}")

    @property
    def takes_images(self) -> bool:
        return self.kind != "seeds"

    def check(self, inputs: torch.Tensor) -> torch.Tensor:
        """Raise a one-line ValueError when ``inputs`` do not fit this spec; return them unchanged."""
        if not isinstance(inputs, torch.Tensor):
            raise TypeError(f"inputs must be a tensor, got {type(inputs).__name__}")
        if self.kind == "seeds":
            ok = (inputs.ndim == 1 and not inputs.is_floating_point()) or (
                inputs.ndim == 2 and inputs.is_floating_point() and inputs.shape[1] == self.channels)
            if not ok:
                raise ValueError(f"inputs must be int seeds [N] or z [N, {self.channels}], got "
                                 f"{tuple(inputs.shape)} {inputs.dtype}")
            if not inputs.is_floating_point() and inputs.numel() and int(inputs.min()) < 0:
                raise ValueError("seeds must be >= 0")
            return inputs
        want = (self.channels, self.size, self.size)
        if inputs.ndim != 4 or tuple(inputs.shape[1:]) != want or not inputs.is_floating_point():
            raise ValueError(f"{self.kind} inputs must be float [N, {', '.join(map(str, want))}] in "
                             f"[{self.range[0]:g}, {self.range[1]:g}], got {tuple(inputs.shape)} {inputs.dtype}")
        if inputs.numel():
            lo, hi = float(inputs.min()), float(inputs.max())
            if not (math.isfinite(lo) and math.isfinite(hi)):
                raise ValueError("inputs hold NaN or infinite values")
            slack = 1e-3 * (self.range[1] - self.range[0])
            if lo < self.range[0] - slack or hi > self.range[1] + slack:
                raise ValueError(f"inputs must be in [{self.range[0]:g}, {self.range[1]:g}], got values in "
                                 f"[{lo:g}, {hi:g}]")
        return inputs


@dataclass
class PipelineResult:
    """What a pipeline returns for a batch of N inputs.

    images: float32 [N, C, H, W], about [-1, 1] (raw generator output, not clamped).
    latents: named codes per input, first dim N: ``"z"`` [N, z_dim], ``"w"`` [N, w_dim], ``"w_plus"``
        [N, num_ws, w_dim] …
    extras: other per-input outputs, first dim N: ``"samples"`` [N, K, C, H, W] (multi-modal variants),
        ``"frames"`` [N, F, C, H, W] (a latent walk) …
    """

    images: torch.Tensor
    latents: dict[str, torch.Tensor] = field(default_factory=dict)
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def cpu(self) -> PipelineResult:
        return PipelineResult(self.images.cpu(), {k: v.cpu() for k, v in self.latents.items()},
                              {k: v.cpu() for k, v in self.extras.items()})


class Pipeline(ABC):
    """One loaded model behind the common interface: ``pipe(inputs, **options) -> PipelineResult``.

    Subclasses set ``name``, ``model_class`` (what `register_pipeline` keys them by), ``options`` (the keyword
    options ``__call__`` accepts) and implement ``input_spec`` and ``run``.
    """

    name: ClassVar[str] = ""
    model_class: ClassVar[type[nn.Module]] = nn.Module
    options: ClassVar[tuple[str, ...]] = ()
    takes_images: ClassVar[bool] = True  # False: seeds / z in (generators)

    def __init__(self, model: nn.Module) -> None:
        if not isinstance(model, self.model_class):
            raise TypeError(f"{type(self).__name__} needs a {self.model_class.__name__}, got {type(model).__name__}")
        self.model = model.eval()

    @property
    @abstractmethod
    def input_spec(self) -> InputSpec:
        """What ``__call__`` takes (and what the folder runner loads files as)."""

    @abstractmethod
    def run(self, inputs: torch.Tensor, positions: Sequence[int], **options: Any) -> PipelineResult:
        """The batch → result computation, called by ``__call__`` under ``torch.no_grad`` with checked inputs."""

    @property
    def device(self) -> torch.device:
        return next(iter(self.model.buffers()), next(iter(self.model.parameters()), torch.empty(0))).device

    def to(self, device: torch.device | str) -> Pipeline:
        """Move the model to ``device``; returns self."""
        self.model.to(device)
        return self

    def autocast(self, precision: str) -> contextlib.AbstractContextManager[None]:
        """The autocast context for ``precision`` ("auto", "fp32", "bf16") on this pipeline's device."""
        return autocast(self.device, precision)

    def unknown_options(self, options: dict[str, Any] | Sequence[str]) -> list[str]:
        """The option names this pipeline does not take (for callers that want to say so in their own terms)."""
        return [k for k in options if k not in self.options]

    def check_options(self, options: dict[str, Any]) -> None:
        bad = self.unknown_options(options)
        if bad:
            raise ValueError(f"the {self.name} pipeline takes no option {', '.join(bad)} (it takes "
                             f"{', '.join(self.options) or 'none'})")

    def resolve_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """Options ready for repeated calls (e.g. a model given by path loaded once); the folder runner calls this
        once per folder. The default returns them unchanged."""
        return dict(options)

    def latent_metadata(self) -> dict[str, str]:
        """String metadata stored with latents written by the folder runner."""
        return {}

    def __call__(self, inputs: torch.Tensor, *, positions: Sequence[int] | None = None,
                 **options: Any) -> PipelineResult:
        """Run on a batch: ``inputs`` as ``input_spec`` says, ``positions`` the inputs' indices in a larger set
        (pipelines with per-input randomness draw it from them, so outputs do not depend on the batch size;
        default 0..N-1), ``options`` from ``self.options``."""
        self.check_options(options)
        inputs = self.input_spec.check(self.prepare(inputs))
        positions = list(range(inputs.shape[0])) if positions is None else [int(p) for p in positions]
        if len(positions) != inputs.shape[0]:
            raise ValueError(f"positions has {len(positions)} entries for {inputs.shape[0]} inputs")
        with torch.no_grad():
            return self.run(inputs.to(self.device), positions, **options)

    def prepare(self, inputs: torch.Tensor) -> torch.Tensor:
        """Hook to adapt inputs before the spec check (e.g. resize); the default returns them unchanged."""
        return inputs

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self.model).__name__}, {self.input_spec})"


_PIPELINES: dict[type[nn.Module], type[Pipeline]] = {}


def register_pipeline(model_class: type[nn.Module], pipeline_class: type[Pipeline]) -> None:
    """Make ``pipeline_for`` give ``pipeline_class`` for models of ``model_class`` (and its subclasses)."""
    _PIPELINES[model_class] = pipeline_class


def pipeline_classes() -> dict[type[nn.Module], type[Pipeline]]:
    """Model class → pipeline class, as registered (a copy)."""
    _ensure_registered()
    return dict(_PIPELINES)


def _ensure_registered() -> None:
    # The pipeline modules register themselves on import; the package imports all of them.
    import stylebridge.pipelines  # noqa: F401


def _lookup(model_type: type) -> type[Pipeline] | None:
    for klass in model_type.__mro__:  # the most specific registration wins
        if klass in _PIPELINES:
            return _PIPELINES[klass]
    return None


def pipeline_for(model: nn.Module) -> Pipeline:
    """The pipeline registered for ``model``'s class (the most specific one), wrapping ``model``."""
    _ensure_registered()
    cls = _lookup(type(model))
    if cls is None:
        from stylebridge.formats.loading import describe_model

        raise ValueError(f"no pipeline for {describe_model(model)} (pipelines exist for "
                         f"{', '.join(sorted(k.__name__ for k in _PIPELINES))})")
    return cls(model)


def _classes_taking(takes: str | None) -> tuple[type[nn.Module], ...]:
    _ensure_registered()
    if takes is None:
        return tuple(_PIPELINES)
    if takes not in ("images", "seeds"):
        raise ValueError(f"takes must be 'images', 'seeds' or None, got {takes!r}")
    return tuple(m for m, p in _PIPELINES.items() if p.takes_images is (takes == "images"))


def load_pipeline(spec: str | os.PathLike | nn.Module, *, takes: str | None = None,
                  part: str | None = None) -> Pipeline:
    """Load a model (path, folder or shipped name; or a model object) and wrap it in its pipeline.

    ``takes``: "images" or "seeds" to accept only models whose pipeline takes those; anything else raises
    `WrongModelError` ("SPEC: holds X; expected Y") from `stylebridge.load`.
    """
    from stylebridge.core.errors import WrongModelError
    from stylebridge.formats.loading import describe_model, expected_text, load

    classes = _classes_taking(takes)
    if isinstance(spec, nn.Module):
        if not isinstance(spec, classes):
            raise WrongModelError(f"model: holds {describe_model(spec)}; expected {expected_text(classes)}")
        return pipeline_for(spec)
    return pipeline_for(load(spec, part=part, expect=classes))


def iter_batches(n: int, batch_size: int) -> Iterator[slice]:
    """Slices 0..n in steps of ``batch_size`` (>= 1)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))
