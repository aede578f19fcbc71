"""Inference: everything that turns images (or seeds) into images or latents, behind one interface.

`base.Pipeline` is the interface (a batch in, a `base.PipelineResult` out, with an `base.InputSpec`);
`base.pipeline_for(model)` picks the pipeline registered for a loaded model; `runner.run_folder` runs any
image pipeline over a folder. The pipeline modules below register themselves when imported.
"""

from stylebridge.pipelines import (  # noqa: F401  (register their pipelines)
    actmap,
    encoder,
    generate,
    pix2pixhd,
    stylemap,
)
from stylebridge.pipelines.base import (
    InputSpec,
    Pipeline,
    PipelineResult,
    load_pipeline,
    pipeline_for,
    register_pipeline,
)

__all__ = ["InputSpec", "Pipeline", "PipelineResult", "load_pipeline", "pipeline_for", "register_pipeline"]
