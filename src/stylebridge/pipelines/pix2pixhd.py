"""pix2pixHD translators behind the pipeline interface: the one-pass editors (and mixing / blending translators)
of StyleGAN2 distillation, trained by ``stylebridge train pix2pixhd`` or loaded from official ``latest_net_G.pth``.

    stylebridge translate --model RUN/model --images faces/ --out edited/                  # 3-channel: one image
    stylebridge translate --model BLEND/model --images A/ --images2 B/ --out blends/       # 6-channel: A and B
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from stylebridge.models.pix2pixhd import Pix2PixHDGenerator
from stylebridge.pipelines.base import InputSpec, Pipeline, PipelineResult, register_pipeline

__all__ = ["DEFAULT_SIZE", "Pix2PixHDPipeline"]

DEFAULT_SIZE = 512  # inputs' side for weights that do not say what they were trained on (the paper's 512 px)


class Pix2PixHDPipeline(Pipeline):
    """A pix2pixHD generator as a translator: RGB [N, 3, R, R] in [-1, 1] → ``images`` [N, 3, R, R]; a 6-channel
    generator (mixing / blending) takes two RGB images A and B concatenated ("rgb-pair" input, [N, 6, R, R]).
    R is the side the generator was trained on (``config.resolution``; `DEFAULT_SIZE` when unknown). Other input
    channel counts take one-hot label maps, as the official ``label_nc`` inputs. Takes no options."""

    name = "pix2pixhd"
    model_class = Pix2PixHDGenerator

    @property
    def input_spec(self) -> InputSpec:
        c = self.model.config
        size = c.resolution or DEFAULT_SIZE
        kind = {3: "rgb", 6: "rgb-pair"}.get(c.in_channels, "labels")
        return InputSpec(channels=c.in_channels, size=size, kind=kind,
                         range=(0.0, 1.0) if kind == "labels" else (-1.0, 1.0))

    def prepare(self, inputs: torch.Tensor) -> torch.Tensor:
        """Inputs of another square size are resized (bilinear, antialiased) to the generator's side."""
        size = self.input_spec.size
        if (inputs.ndim == 4 and inputs.is_floating_point() and inputs.shape[-1] == inputs.shape[-2]
                and inputs.shape[-1] != size and self.input_spec.kind != "labels"):
            inputs = F.interpolate(inputs.float(), size=(size, size), mode="bilinear", antialias=True,
                                   align_corners=False).clamp(-1, 1)
        return inputs

    def run(self, inputs: torch.Tensor, positions: Sequence[int], **options: object) -> PipelineResult:
        return PipelineResult(images=self.model(inputs).float())


register_pipeline(Pix2PixHDGenerator, Pix2PixHDPipeline)
