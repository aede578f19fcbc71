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

from stylebridge.invert.base import Inverter, resolve_inverter, split_precision
from stylebridge.models.stylegan2 import StyleGAN2Generator
from stylebridge.pipelines.base import InputSpec, Pipeline, PipelineResult
from stylebridge.pipelines.runner import Aligner, FolderReport, Outputs, run_folder

__all__ = ["InverterPipeline", "inversion_summary", "invert_folder"]


class InverterPipeline(Pipeline):
    """An `Inverter` as a pipeline (registered for no model class: built from an inverter):
    RGB [N, 3, S, S] (S the inverter's input size) → ``images`` (reconstructions), ``latents["w_plus"]``,
    ``extras["loss"]`` / ``["loss_start"]`` [N] where the inverter reports them. Takes no options."""

    name = "inverter"
    model_class = StyleGAN2Generator

    def __init__(self, inverter: Inverter) -> None:
        super().__init__(inverter.generator)
        self.inverter = inverter
        self.log: list[dict[str, Any]] = []  # every batch's inversion extras (what `inversion_summary` reads)

    @property
    def input_spec(self) -> InputSpec:
        return InputSpec(channels=3, size=self.inverter.input_size, kind="rgb")

    @property
    def device(self) -> torch.device:
        return self.inverter.device

    def to(self, device: torch.device | str) -> InverterPipeline:
        self.inverter.to(device)
        return self

    def run(self, inputs: torch.Tensor, positions: Sequence[int], **options: Any) -> PipelineResult:
        with torch.enable_grad():  # optimisation needs gradients; __call__ runs us under no_grad
            inv = self.inverter.invert(inputs)
        n = len(inv)
        extras = {k: v.float() for k, v in inv.extras.items()
                  if isinstance(v, torch.Tensor) and v.ndim == 1 and v.shape[0] == n and k.startswith("loss")}
        latents = {"w_plus": inv.w_plus.float()}
        tuned = inv.extras.get("tuned")
        if tuned is not None:  # PTI: each latent file also holds its image's tuned weights (fp16)
            latents.update(tuned.per_image(n))
        self.log.append(inv.extras)
        return PipelineResult(images=inv.images.float(), latents=latents, extras=extras)

    def latent_metadata(self) -> dict[str, str]:
        meta = self.inverter.metadata()
        if self.log and self.log[-1].get("tuned") is not None:
            meta.update(self.log[-1]["tuned"].metadata())
        return meta


def invert_folder(inverter: Inverter | str, images: str | os.PathLike, out: str | os.PathLike, *,
                  model: str | os.PathLike | None = None, generator: str | os.PathLike | None = None,
                  batch_size: int = 8, device: str = "auto", precision: str = "fp32", progress: bool = True,
                  align: Aligner | None = None, **options: Any) -> FolderReport:
    """Invert every image under ``images`` (a folder, recursive, or one file) through the folder runner.

    Writes ``out/latents/<rel>.safetensors`` (``w_plus`` [num_ws, w_dim] fp32; metadata: the source file and the
    inverter's settings) and ``out/reconstructions/<rel>.png``; unreadable files are skipped and listed in
    ``out/skipped.txt``. ``inverter``: an `Inverter` or a name for `make_inverter` (with ``model``, ``generator``
    and ``options``, e.g. ``steps=200``). ``precision``: the runner's autocast ("fp32", "bf16", "auto"); for the
    optimisation inverters and PTI given by name it becomes their own ``precision`` option (the generator under bf16,
    losses and Adam in fp32). ``align``: photos aligned into the generator's layout first (`run_folder`'s).
    """
    precision = split_precision(inverter, precision, options)
    inverter = resolve_inverter(inverter, model, generator, progress, **options)
    pipe = InverterPipeline(inverter)
    report = run_folder(pipe, images, out, outputs=Outputs(images="reconstructions", latents="latents",
                                                           strips=False),
                        batch_size=batch_size, device=device, precision=precision, progress=progress,
                        desc=f"invert ({inverter.name})", align=align)
    report.summary = inversion_summary(inverter.name, pipe.log)
    return report


def inversion_summary(name: str, log: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """What a run of PTI reached, over the batches' ``extras``: images, mean perceptual distance at the pivot and
    after tuning, seconds per image (pivot + tuning), the distance gained per second of tuning, and a one-line
    ``text``. Empty for inverters that do not tune."""
    runs = [e for e in log if "dist_pivot" in e and "dist" in e]
    if not runs:
        return {}
    n = sum(len(e["dist"]) for e in runs)
    before = float(sum(float(e["dist_pivot"].sum()) for e in runs) / n)
    after = float(sum(float(e["dist"].sum()) for e in runs) / n)
    pivot_s = sum(e["pivot_seconds"] for e in runs) / n
    tune_s = sum(e["tune_seconds"] for e in runs) / n
    steps = max(e["steps"] for e in runs)
    per_second = (before - after) / tune_s if tune_s > 0 else 0.0
    perceptual = runs[-1].get("perceptual", "perceptual")
    text = (f"{name}: {perceptual.split(' (')[0]} {before:.4f} at the pivot -> {after:.4f} after tuning "
            f"({steps} steps); {pivot_s + tune_s:.2f} s/img (pivot {pivot_s:.2f} + tuning {tune_s:.2f}): "
            f"{per_second:.4f} distance gained per second of tuning")
    return {"images": n, "dist_pivot": before, "dist": after, "pivot_seconds_per_image": pivot_s,
            "tune_seconds_per_image": tune_s, "steps": steps, "gain_per_second": per_second,
            "perceptual": perceptual, "text": text}
