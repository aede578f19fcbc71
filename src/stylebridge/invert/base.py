"""The one inverter interface: images → W+ codes of a StyleGAN2 generator (and their reconstructions).

Every way of inverting — a pSp / e4e encoder, optimisation (NVlabs' projector), optimisation started from an
encoder's code, and next PTI and ReStyle — is an `Inverter`, so ``stylebridge edit``, ``evaluate`` and the studio
treat them alike::

    inv = make_inverter("e4e")                       # the shipped synthfaces-64-e4e-inversion
    inv = make_inverter("optimize", steps=200)       # into the shipped synthfaces-64 generator
    res = inv.invert(images)                         # images [N, 3, H, W] in [-1, 1]
    res.w_plus                                       # [N, num_ws, w_dim] fp32
    res.images                                       # the reconstruction [N, 3, R, R]
    edited = inv.render(direction.apply(res.w_plus, 3.0))

``render`` is the generator with its stored (const) noise; an inverter that tunes the generator (PTI) returns its
tuned weights as ``extras["tuned"]`` (a `delta.GeneratorDelta`), which ``render(..., tuned=...)`` applies —
`Inversion.render_options` gives both the noise and the tuned weights of an inversion.
A new inverter registers a factory with `register_inverter`; `make_inverter` builds one by name.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from stylebridge.invert.delta import GeneratorDelta, applied
from stylebridge.models.stylegan2 import StyleGAN2Generator

__all__ = [
    "Inversion",
    "Inverter",
    "inverter_names",
    "make_inverter",
    "register_inverter",
    "resize_to",
    "resolve_inverter",
    "split_precision",
]


@dataclass
class Inversion:
    """What an inverter returns for N images.

    w_plus: [N, num_ws, w_dim] fp32 on the inverter's device.
    images: the reconstruction ``render(w_plus)`` [N, 3, R, R] fp32 (R: the generator's resolution), not clamped.
    extras: anything else the method reports — per-image tensors with first dim N (``"loss"``), and run facts
        (``"steps"``, ``"seconds"``, ``"perceptual"``: the network the loss used, ``"noise"``: optimised noise maps).
    """

    w_plus: torch.Tensor
    images: torch.Tensor
    extras: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.w_plus.shape[0])

    def render_options(self, index: Sequence[int] | torch.Tensor | None = None) -> dict[str, Any]:
        """``noise`` and ``tuned`` for `Inverter.render` of (a subset ``index`` of) these images."""
        noise, tuned = self.extras.get("noise"), self.extras.get("tuned")
        if index is not None:
            idx = torch.as_tensor(index, dtype=torch.long)
            noise = [t[idx.to(t.device)] for t in noise] if noise is not None else None
            tuned = tuned.select(idx) if tuned is not None else None
        return {"noise": noise, "tuned": tuned}


def resize_to(images: torch.Tensor, side: int) -> torch.Tensor:
    """[N, C, H, W] → [N, C, side, side] (area-like antialiased bilinear; unchanged when already that size)."""
    if images.shape[-2:] == (side, side):
        return images
    return F.interpolate(images.float(), size=(side, side), mode="bilinear", antialias=True, align_corners=False)


class Inverter(ABC):
    """Images [N, 3, H, W] in [-1, 1] → `Inversion` (W+ codes of ``generator`` and the reconstructions)."""

    name: ClassVar[str] = ""

    def __init__(self, generator: StyleGAN2Generator) -> None:
        if not isinstance(generator, StyleGAN2Generator):
            raise TypeError(f"an inverter needs a StyleGAN2Generator, got {type(generator).__name__}")
        self.generator = generator.eval().requires_grad_(False)

    @property
    def input_size(self) -> int:
        """The side images are resized to before inversion (the generator's resolution unless overridden)."""
        return self.generator.resolution

    @property
    def device(self) -> torch.device:
        return self.generator.w_avg.device

    def to(self, device: torch.device | str) -> Inverter:
        """Move the networks to ``device``; returns self."""
        self.generator.to(device)
        return self

    def check_images(self, images: torch.Tensor) -> torch.Tensor:
        """Raise a one-line ValueError unless ``images`` is float [N, 3, H, W]; resized to ``input_size`` and moved
        to the device."""
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3 \
                or not images.is_floating_point():
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"{self.name}: images must be float [N, 3, H, W] in [-1, 1], got {shape}")
        return resize_to(images.to(self.device), self.input_size)

    @abstractmethod
    def invert(self, images: torch.Tensor) -> Inversion:
        """Invert ``images`` [N, 3, H, W] in [-1, 1] (resized to ``input_size``)."""

    @torch.no_grad()
    def render(self, w_plus: torch.Tensor, noise: Sequence[torch.Tensor | None] | None = None,
               tuned: GeneratorDelta | None = None) -> torch.Tensor:
        """W+ [N, num_ws, w_dim] (or w [N, w_dim]) → images [N, 3, R, R] fp32: the generator with its stored
        noise, or ``noise`` (one map per noise input, e.g. an inversion's ``extras["noise"]``), and with the tuned
        weights ``tuned`` added (PTI's ``extras["tuned"]``: one per image, or one shared)."""
        with applied(self.generator, tuned):
            return self.generator.synthesize(w_plus.to(self.device), noise=noise, noise_mode="const").float()

    def metadata(self) -> dict[str, str]:
        """String facts stored with written latents."""
        return {"inverter": self.name, "num_ws": str(self.generator.num_ws), "w_dim": str(self.generator.w_dim)}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, resolution={self.generator.resolution})"


InverterFactory = Callable[..., Inverter]
_INVERTERS: dict[str, InverterFactory] = {}


def register_inverter(name: str, factory: InverterFactory) -> None:
    """Make ``make_inverter(name, model=..., generator=..., **options)`` call ``factory`` with those arguments."""
    if not name or not isinstance(name, str):
        raise ValueError(f"an inverter name must be a non-empty string, got {name!r}")
    _INVERTERS[name] = factory


def _ensure_registered() -> None:
    import stylebridge.invert  # noqa: F401  (the built-in inverters register on import)


def inverter_names() -> list[str]:
    """Names `make_inverter` accepts, sorted."""
    _ensure_registered()
    return sorted(_INVERTERS)


def make_inverter(name: str, model: str | os.PathLike | torch.nn.Module | None = None,
                  generator: str | os.PathLike | StyleGAN2Generator | None = None, **options: Any) -> Inverter:
    """Build the inverter registered as ``name``.

    Args:
        name: "psp", "e4e", "restyle", "optimize", "optimize-e4e", "pti" or one registered later
            (`inverter_names`).
        model: the encoder for encoder-based inverters (a pSp / e4e path, shipped name or model object; default the
            shipped synthfaces-64 one); refused by inverters that have none.
        generator: the StyleGAN2 generator to invert into (path, shipped name or object) for optimisation
            (default synthfaces-64, or the encoder's decoder); encoders invert into their own decoder.
        options: the inverter's own settings (optimisation: ``steps``, ``seconds``, ``space``, …).
    """
    _ensure_registered()
    if name not in _INVERTERS:
        raise ValueError(f"unknown inverter {name!r} (known: {', '.join(sorted(_INVERTERS))})")
    return _INVERTERS[name](model=model, generator=generator, **options)


def split_precision(inverter: Inverter | str, precision: str, options: dict[str, Any]) -> str:
    """The runner's autocast precision for ``inverter``: the optimisation inverters and PTI (by name) take
    ``precision`` ("fp32" / "bf16") as their own option — their generator under bf16, losses and Adam in fp32 —
    so the runner runs them without autocast; encoders run under the runner's autocast."""
    if isinstance(inverter, str) and (inverter.startswith("optimize") or inverter == "pti"):
        if precision in ("fp32", "bf16"):
            options.setdefault("precision", precision)
        return "fp32"
    return precision


def resolve_inverter(inverter: Inverter | str, model: str | os.PathLike | torch.nn.Module | None = None,
                     generator: str | os.PathLike | StyleGAN2Generator | None = None, progress: bool = True,
                     **options: Any) -> Inverter:
    """An `Inverter` as given, or built by name with `make_inverter` (the optimisation inverters get ``progress``
    unless ``options`` set it). ``model``, ``generator`` and ``options`` are refused with an inverter object."""
    if isinstance(inverter, str):
        if inverter.startswith("optimize") or inverter == "pti":
            options.setdefault("progress", progress)
        return make_inverter(inverter, model=model, generator=generator, **options)
    if model is not None or generator is not None or options:
        raise ValueError("model, generator and inverter options are for inverters given by name")
    return inverter
