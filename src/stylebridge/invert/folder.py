"""Inverters over folders: `InverterPipeline` puts any `Inverter` behind the `Pipeline` interface, so the one folder
runner (loader, bad-file policy, atomic writes, progress bar) inverts folders::

    from stylebridge.invert import invert_folder
    invert_folder("e4e", "photos/", "out/")                  # out/latents/<rel>.safetensors + reconstructions/<rel>.png
    invert_folder("optimize", "photos/", "out/", steps=200)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch

from stylebridge.invert.base import Inverter, resolve_inverter
from stylebridge.models.stylegan2 import StyleGAN2Generator
from stylebridge.pipelines.base import InputSpec, Pipeline, PipelineResult
from stylebridge.pipelines.runner import FolderReport, Outputs, run_folder

__all__ = ["InverterPipeline", "invert_folder"]


class InverterPipeline(Pipeline):
    """An `Inverter` as a pipeline (registered for no model class: built from an inverter):
    RGB [N, 3, S, S] (S the inverter's input size) → ``images`` (reconstructions), ``latents["w_plus"]``,
    ``extras["loss"]`` / ``["loss_start"]`` [N] where the inverter reports them. Takes no options."""

    name = "inverter"
    model_class = StyleGAN2Generator

    def __init__(self, inverter: Inverter) -> None:
        super().__init__(inverter.generator)
        self.inverter = inverter

    @property
    def input_spec(self) -> InputSpec:
        return InputSpec(channels=3, size=self.inverter.input_size, kind="rgb")

    @property
    def device(self) -> torch.device:
        return self.inverter.device

    def to(self, device: torch.device | str) -> InverterPipeline:
        self.inverter.to(device)
        return self

    def latent_metadata(self) -> dict[str, str]:
        return self.inverter.metadata()

    def run(self, inputs: torch.Tensor, positions: Sequence[int], **options: Any) -> PipelineResult:
        with torch.enable_grad():  # optimisation needs gradients; __call__ runs us under no_grad
            inv = self.inverter.invert(inputs)
        n = len(inv)
        extras = {k: v.float() for k, v in inv.extras.items()
                  if isinstance(v, torch.Tensor) and v.ndim == 1 and v.shape[0] == n and k.startswith("loss")}
        return PipelineResult(images=inv.images.float(), latents={"w_plus": inv.w_plus.float()}, extras=extras)


def invert_folder(inverter: Inverter | str, images: str | os.PathLike, out: str | os.PathLike, *,
                  model: str | os.PathLike | None = None, generator: str | os.PathLike | None = None,
                  batch_size: int = 8, device: str = "auto", precision: str = "fp32", progress: bool = True,
                  **options: Any) -> FolderReport:
    """Invert every image under ``images`` (a folder, recursive, or one file) through the folder runner.

    Writes ``out/latents/<rel>.safetensors`` (``w_plus`` [num_ws, w_dim] fp32; metadata: the source file and the
    inverter's settings) and ``out/reconstructions/<rel>.png``; unreadable files are skipped and listed in
    ``out/skipped.txt``. ``inverter``: an `Inverter` or a name for `make_inverter` (with ``model``, ``generator``
    and ``options``, e.g. ``steps=200``). ``precision``: the runner's autocast ("fp32", "bf16", "auto"; the
    optimisation inverters keep their own ``precision`` option for the generator and run their losses in fp32).
    """
    inverter = resolve_inverter(inverter, model, generator, progress, **options)
    pipe = InverterPipeline(inverter)
    return run_folder(pipe, images, out, outputs=Outputs(images="reconstructions", latents="latents", strips=False),
                      batch_size=batch_size, device=device, precision=precision, progress=progress,
                      desc=f"invert ({inverter.name})")
