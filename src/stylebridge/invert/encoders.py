"""pSp / e4e as inverters: the encoder's W+ through its `EncoderPipeline` (the same codes, bit for bit)."""

from __future__ import annotations

import os
import time
from typing import Any

import torch

from stylebridge.invert.base import Inversion, Inverter, register_inverter
from stylebridge.models.encoder_base import StyleEncoderModel
from stylebridge.models.stylegan2 import StyleGAN2Generator
from stylebridge.pipelines.encoder import EncoderPipeline, load_encoder

__all__ = ["DEFAULT_ENCODERS", "EncoderInverter"]

DEFAULT_ENCODERS = {"psp": "synthfaces-64-psp-inversion", "e4e": "synthfaces-64-e4e-inversion"}


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


def _encoder_factory(name: str):
    def build(model: Any = None, generator: StyleGAN2Generator | str | None = None, **options: Any) -> EncoderInverter:
        if generator is not None:
            raise ValueError(f"{name} inverts into its own decoder: give the encoder (model=) instead of a generator")
        if options:
            raise ValueError(f"the {name} inverter takes no option {', '.join(sorted(options))} (steps, seconds and "
                             "space are for the optimize inverters)")
        return EncoderInverter(model if model is not None else DEFAULT_ENCODERS[name], name=name)

    return build


for _name in DEFAULT_ENCODERS:
    register_inverter(_name, _encoder_factory(_name))
