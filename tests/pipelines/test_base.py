"""The one pipeline interface: dispatch by model class, input specs, typed results."""

from __future__ import annotations

import pytest
import torch

import stylebridge
from stylebridge.core.errors import WrongModelError
from stylebridge.pipelines.actmap import ActmapPipeline
from stylebridge.pipelines.base import InputSpec, PipelineResult, load_pipeline, pipeline_for
from stylebridge.pipelines.encoder import EncoderPipeline
from stylebridge.pipelines.generate import GeneratorPipeline


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


@pytest.mark.parametrize("name, cls, spec", [
    ("synthfaces-64", GeneratorPipeline, InputSpec(channels=256, size=0, range=(0.0, 2.0**32 - 1), kind="seeds")),
    ("synthfaces-64-actmap", ActmapPipeline, InputSpec(channels=3, size=64, kind="rgb")),
    ("synthfaces-64-psp-inversion", EncoderPipeline, InputSpec(channels=3, size=64, kind="rgb")),
    ("synthfaces-64-psp-sketch", EncoderPipeline, InputSpec(channels=1, size=64, kind="gray")),
])
def test_pipeline_for_shipped_models(name, cls, spec):
    pipe = pipeline_for(stylebridge.load(name))
    assert type(pipe) is cls and pipe.input_spec == spec and pipe.name


def test_generator_pipeline_result():
    pipe = load_pipeline("synthfaces-64", takes="seeds")
    res = pipe(torch.tensor([0, 1]), truncation_psi=0.7)
    assert isinstance(res, PipelineResult) and len(res) == 2
    assert res.images.shape == (2, 3, 64, 64) and res.images.dtype == torch.float32
    assert res.latents["z"].shape == (2, 256) and res.latents["w"].shape == (2, pipe.model.w_dim)
    again = pipe(res.latents["z"], truncation_psi=0.7)  # z in gives the same images as seeds in
    torch.testing.assert_close(again.images, res.images)
    with pytest.raises(ValueError, match="finite"):
        pipe(torch.tensor([0]), truncation_psi=float("nan"))
    with pytest.raises(ValueError, match="takes no option samples"):
        pipe(torch.tensor([0]), samples=2)


def test_encoder_pipeline_result_and_samples():
    pipe = load_pipeline("synthfaces-64-psp-sketch", takes="images")
    x = torch.rand(2, 1, 64, 64) * 2 - 1
    res = pipe(x, samples=2, seed=3)
    num_ws, w_dim = pipe.model.num_ws, pipe.model.w_dim
    assert res.images.shape == (2, 3, 64, 64) and res.latents["w_plus"].shape == (2, num_ws, w_dim)
    assert res.extras["samples"].shape == (2, 2, 3, 64, 64)
    # Position-seeded samples: the second image alone, at position 1, gets the same variants.
    one = pipe(x[1:], samples=2, seed=3, positions=[1])
    torch.testing.assert_close(one.extras["samples"][0], res.extras["samples"][1], atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match=r"gray inputs must be float \[N, 1, 64, 64\]"):
        pipe(torch.rand(2, 3, 64, 64))
    with pytest.raises(ValueError, match="must be in"):
        pipe(x * 10)


def test_actmap_pipeline_result_walk_and_resize():
    pipe = load_pipeline("synthfaces-64-actmap")
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    res = pipe(x, seed=5)
    assert res.images.shape == (2, 3, 64, 64) and res.latents["w_plus"].shape[0] == 2
    torch.testing.assert_close(res.images, pipe.model.translate(x, seed=5).float())
    walk = pipe(x, walk=[1, 2], frames=3)
    assert walk.extras["frames"].shape == (2, 3, 3, 64, 64)
    assert pipe(torch.rand(1, 1, 32, 32) * 2 - 1).images.shape == (1, 3, 64, 64)  # prepared: gray, any size
    with pytest.raises(ValueError, match="a walk sets the styles itself"):
        pipe(x, walk=[1, 2], seed=1)


def test_load_pipeline_refuses_the_wrong_kind():
    with pytest.raises(WrongModelError, match="synthfaces-64: holds a StyleGAN2Generator; expected an "
                                              "activation-map translator, a pSp / e4e model, a pix2pixHD generator "
                                              "or StyleMapGAN"):
        load_pipeline("synthfaces-64", takes="images")
    with pytest.raises(ValueError, match="no pipeline for a DomainNetwork"):
        pipeline_for(stylebridge.load("synthfaces-domain"))
