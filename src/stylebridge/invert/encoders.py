"""pSp / e4e / ReStyle as inverters: the encoder's W+ through its `EncoderPipeline` (the same codes, bit for bit);
ReStyle with a chosen number of refinement iterations (``n_iters``; default the model's own, 5)."""

from __future__ import annotations

import os
import time
from typing import Any

import torch

from stylebridge.invert.base import Inversion, Inverter, register_inverter
from stylebridge.models.encoder_base import StyleEncoderModel
from stylebridge.models.restyle import ReStyle
from stylebridge.models.stylegan2 import StyleGAN2Generator
from stylebridge.pipelines.encoder import EncoderPipeline, load_encoder

__all__ = ["DEFAULT_ENCODERS", "EncoderInverter", "ReStyleInverter"]

DEFAULT_ENCODERS = {"psp": "synthfaces-64-psp-inversion", "e4e": "synthfaces-64-e4e-inversion",
                    "restyle": "synthfaces-64-restyle-e4e-inversion"}


class EncoderInverter(Inverter):
    """A pSp or e4e encoder (RGB input) as an inverter into its own decoder."""

    def __init__(self, model: StyleEncoderModel | str | os.PathLike, name: str = "encoder") -> None:
        encoder = load_encoder(model)
        spec = EncoderPipeline(encoder).input_spec
        if spec.kind != "rgb" or spec.channels != 3:
            raise ValueError(f"{model}: an inverter needs an RGB encoder; this one takes {spec.kind} input "
                             f"({spec.channels} channels) — use stylebridge translate for it")
        super().__init__(encoder.decoder)
        self.pipeline = EncoderPipeline(encoder)
        self.encoder = encoder
        self.name = name  # type: ignore[misc]
        self.source = str(model) if not isinstance(model, torch.nn.Module) else type(model).__name__

    @property
    def input_size(self) -> int:
        return self.pipeline.input_spec.size

    @property
    def device(self) -> torch.device:
        return self.encoder.latent_avg.device

    def to(self, device: torch.device | str) -> EncoderInverter:
        self.encoder.to(device)
        return self

    def invert(self, images: torch.Tensor) -> Inversion:
        x = self.check_images(images)
        t0 = time.perf_counter()
        res = self.pipeline(x)
        return Inversion(w_plus=res.latents["w_plus"], images=res.images,
                         extras={"seconds": time.perf_counter() - t0})

    def metadata(self) -> dict[str, str]:
        return {**super().metadata(), "model": self.source}


class ReStyleInverter(EncoderInverter):
    """A ReStyle model as an inverter: ``n_iters`` residual refinements (None: the model's ``config.n_iters``).

    extras: ``seconds``, ``iterations`` (run), ``iteration_images`` (list of [N, 3, R, R], one per iteration)."""

    def __init__(self, model: StyleEncoderModel | str | os.PathLike, name: str = "restyle",
                 n_iters: int | None = None) -> None:
        super().__init__(model, name=name)
        if not isinstance(self.encoder, ReStyle):
            raise ValueError(f"{model}: the restyle inverter needs a ReStyle model, got a "
                             f"{type(self.encoder).__name__} (use the psp / e4e inverters for it)")
        if n_iters is not None and (not isinstance(n_iters, int) or n_iters < 1):
            raise ValueError(f"n_iters must be an integer >= 1, got {n_iters!r}")
        self.n_iters = n_iters

    def invert(self, images: torch.Tensor) -> Inversion:
        x = self.check_images(images)
        t0 = time.perf_counter()
        with torch.no_grad():
            it = self.encoder.iterate(x, self.n_iters)
        return Inversion(w_plus=it.w_plus[-1].float(), images=it.images[-1].float(),
                         extras={"seconds": time.perf_counter() - t0, "iterations": len(it.w_plus),
                                 "iteration_images": [im.float() for im in it.images]})

    def metadata(self) -> dict[str, str]:
        return {**super().metadata(), "n_iters": str(self.n_iters or self.encoder.config.n_iters)}


def _encoder_factory(name: str):
    def build(model: Any = None, generator: StyleGAN2Generator | str | None = None, **options: Any) -> EncoderInverter:
        if generator is not None:
            raise ValueError(f"{name} inverts into its own decoder: give the encoder (model=) instead of a generator")
        if name == "restyle":
            unknown = sorted(set(options) - {"n_iters"})
            if unknown:
                raise ValueError(f"the restyle inverter takes no option {', '.join(unknown)} (it takes n_iters)")
            return ReStyleInverter(model if model is not None else DEFAULT_ENCODERS[name], **options)
        if options:
            raise ValueError(f"the {name} inverter takes no option {', '.join(sorted(options))} (steps, seconds and "
                             "space are for the optimize inverters)")
        return EncoderInverter(model if model is not None else DEFAULT_ENCODERS[name], name=name)

    return build


for _name in DEFAULT_ENCODERS:
    register_inverter(_name, _encoder_factory(_name))
