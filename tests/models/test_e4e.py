"""e4e: the official checkpoint reproduces the official outputs at every progressive stage; the latent
discriminator; telling e4e from pSp; native format."""

from __future__ import annotations

import enum

import pytest
import torch
from safetensors.torch import load_file

import stylebridge
from stylebridge import CheckpointError, StyleGAN2Config, StyleGAN2Generator
from stylebridge.core.safe_pickle import load_torch_file
from stylebridge.formats.loading import describe
from stylebridge.models.e4e import (
    E4E,
    PROGRESSIVE_INFERENCE,
    E4EConfig,
    E4EEncoder,
    E4EEncoderConfig,
    LatentDiscriminator,
    LatentDiscriminatorConfig,
)
from stylebridge.models.psp import PSP

IMG_TOL = dict(atol=1e-4, rtol=1e-5)
LAT_TOL = dict(atol=1e-5, rtol=0)
FACE_POOL = 16  # the fixtures' face_pool side (official: 256)


@pytest.fixture(scope="module")
def e4e_io(golden_dir):
    return load_file(str(golden_dir / "e4e_io.safetensors"))


@pytest.fixture(scope="module")
def e4e_path(golden_dir):
    return golden_dir / "e4e_encoder.pt"


@pytest.fixture
def model(e4e_path):
    return stylebridge.load(e4e_path)


def _edited(tmp_path, src, edit) -> str:
    ckpt = load_torch_file(src)
    edit(ckpt)
    path = tmp_path / "edited.pt"
    torch.save(ckpt, path)
    return str(path)


def test_input_preprocessing_matches(e4e_io):
    x = (e4e_io["input_uint8_hwc"].permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.5
    torch.testing.assert_close(x, e4e_io["input"], atol=0, rtol=0)


def test_loads_as_e4e(model, e4e_path):
    assert isinstance(model, E4E) and isinstance(model.encoder, E4EEncoder) and not model.training
    e = model.config.encoder
    assert (e.num_ws, e.w_dim, e.input_size, e.input_width, e.widths, e.se_reduction) == (8, 64, 32, 4,
                                                                                        (4, 8, 16, 32), 2)
    assert model.encoder.progressive_stage == PROGRESSIVE_INFERENCE  # a fresh encoder: every delta active
    assert model.latent_avg.shape == (8, 64)
    torch.testing.assert_close(model.latent_avg, load_torch_file(e4e_path)["latent_avg"], atol=0, rtol=0)
    _, info = describe(e4e_path)
    assert info.format == "e4e-checkpoint" and info.extra["args"]["stylegan_size"] == 32


def test_encoder_out_at_inference(model, e4e_io):
    with torch.no_grad():
        torch.testing.assert_close(model.encoder(e4e_io["input"]), e4e_io["encoder_out"], **LAT_TOL)


def test_encoder_out_at_stage3(model, e4e_io):
    model.encoder.progressive_stage = 3
    with torch.no_grad():
        out = model.encoder(e4e_io["input"])
    torch.testing.assert_close(out, e4e_io["encoder_out_stage3"], **LAT_TOL)
    for i in range(4, 8):  # rows past the active deltas stay w0
        assert torch.equal(out[:, i], out[:, 0])


class _Stage(enum.Enum):  # the reference's ProgressiveStage values are accepted too
    WTraining = 0


def test_encoder_out_at_stage0(model, e4e_io):
    model.encoder.progressive_stage = _Stage.WTraining
    assert model.encoder.progressive_stage == 0 and model.encoder.active_deltas == 0
    with torch.no_grad():
        out = model.encoder(e4e_io["input"])
    torch.testing.assert_close(out, e4e_io["encoder_out_stage0"], **LAT_TOL)
    assert all(torch.equal(out[:, i], out[:, 0]) for i in range(8))
    with pytest.raises(ValueError, match=">= 0"):
        model.encoder.progressive_stage = -1


def test_result_latent_and_images(model, e4e_io):
    x = e4e_io["input"]
    with torch.no_grad():
        torch.testing.assert_close(model.encode(x), e4e_io["result_latent"], **LAT_TOL)
        images, latents = model(x, resize=False, return_latents=True)
        torch.testing.assert_close(latents, e4e_io["result_latent"], **LAT_TOL)
        torch.testing.assert_close(images, e4e_io["images"], **IMG_TOL)
        torch.testing.assert_close(model(x, resize=FACE_POOL), e4e_io["images_resized"], **IMG_TOL)


def test_native_round_trip(model, tmp_path, e4e_io):
    model.save_pretrained(tmp_path / "m")
    again = stylebridge.load(tmp_path / "m")
    assert isinstance(again, E4E) and again.config == model.config
    ours, theirs = model.state_dict(), again.state_dict()
    assert set(ours) == set(theirs) and all(torch.equal(ours[k], theirs[k]) for k in ours)
    x = e4e_io["input"]
    with torch.no_grad():
        assert torch.equal(again(x, resize=False), model(x, resize=False))
    with pytest.raises(CheckpointError, match="expected PSP"):
        PSP.from_pretrained(tmp_path / "m")


# ---------------------------------------------------------------------------------------------------------------
# Telling e4e from pSp, parts, latent_avg


def test_e4e_without_encoder_type_is_told_by_its_opts(tmp_path, e4e_path, e4e_io):
    path = _edited(tmp_path, e4e_path, lambda c: c["opts"].pop("encoder_type"))
    m = stylebridge.load(path)
    assert isinstance(m, E4E)  # stylegan_size and no output_size: e4e options
    with torch.no_grad():
        torch.testing.assert_close(m.encoder(e4e_io["input"]), e4e_io["encoder_out"], **LAT_TOL)


def test_psp_without_encoder_type_stays_psp(tmp_path, golden_dir):
    path = _edited(tmp_path, golden_dir / "psp_gradual_style_encoder.pt", lambda c: c["opts"].pop("encoder_type"))
    assert isinstance(stylebridge.load(path), PSP)


def test_missing_latent_avg_uses_the_generator_mean(tmp_path, e4e_path):
    m = stylebridge.load(_edited(tmp_path, e4e_path, lambda c: c.pop("latent_avg")))
    # e4e recomputes decoder.mean_latent(10000) here; our generator keeps that mean as w_avg.
    assert torch.equal(m.latent_avg, m.decoder.w_avg.expand(8, -1))


def test_decoder_part(e4e_path, golden_ckpt):
    dec = stylebridge.load(e4e_path, part="decoder")
    assert isinstance(dec, StyleGAN2Generator)
    ref = stylebridge.load(golden_ckpt).state_dict()
    assert all(torch.equal(dec.state_dict()[k], v) for k, v in ref.items())


def test_latent_discriminator_part(tmp_path, e4e_path):
    d_ref = LatentDiscriminator(LatentDiscriminatorConfig(w_dim=64))
    path = _edited(tmp_path, e4e_path, lambda c: c.__setitem__("discriminator_state_dict", d_ref.state_dict()))
    d = stylebridge.load(path, part="d")
    assert isinstance(d, LatentDiscriminator) and d.config == d_ref.config
    w = torch.randn(5, 64)
    with torch.no_grad():
        assert torch.equal(d(w), d_ref(w))
    assert describe(path)[1].parts == ("encoder", "decoder", "d")
    with pytest.raises(CheckpointError, match="no latent discriminator"):
        stylebridge.load(e4e_path, part="d")


# ---------------------------------------------------------------------------------------------------------------
# LatentDiscriminator and tiny models


def test_latent_discriminator_official_names():
    d = LatentDiscriminator(LatentDiscriminatorConfig())  # LatentCodesDiscriminator(512, 4)
    shapes = {k: tuple(v.shape) for k, v in d.state_dict().items()}
    assert shapes == {"mlp.0.weight": (512, 512), "mlp.0.bias": (512,), "mlp.2.weight": (512, 512),
                      "mlp.2.bias": (512,), "mlp.4.weight": (512, 512), "mlp.4.bias": (512,),
                      "mlp.6.weight": (1, 512), "mlp.6.bias": (1,)}
    assert d(torch.randn(3, 512)).shape == (3, 1)
    assert d(torch.randn(3, 18, 512)).shape == (3, 18, 1)
    with pytest.raises(ValueError, match="must end in 512"):
        d(torch.randn(3, 64))


def test_latent_discriminator_round_trip(tmp_path):
    d = LatentDiscriminator(LatentDiscriminatorConfig(w_dim=16, num_layers=3))
    d.save_pretrained(tmp_path / "d")
    again = LatentDiscriminator.from_pretrained(tmp_path / "d")
    w = torch.randn(4, 16)
    assert again.config == d.config and torch.equal(again(w), d(w))


def tiny_e4e() -> E4E:
    enc = E4EEncoderConfig(num_ws=6, w_dim=16, input_size=32, input_width=4, widths=(4, 8, 16, 32), se_reduction=2)
    dec = StyleGAN2Config(resolution=16, z_dim=16, w_dim=16, mapping_layers=2, channel_divisor=32)
    return E4E(E4EConfig(encoder=enc, decoder=dec, resize_to=8)).eval()


def test_tiny_e4e_stages_and_shapes():
    m = tiny_e4e()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        full = m.encoder(x)
        assert full.shape == (2, 6, 16) and m(x).shape == (2, 3, 8, 8)
        for stage in range(6):
            m.encoder.progressive_stage = stage
            out = m.encoder(x)
            assert torch.equal(out[:, : stage + 1], full[:, : stage + 1])  # active rows: w + delta_i
            assert all(torch.equal(out[:, i], out[:, 0]) for i in range(stage + 1, 6))
        m.encoder.progressive_stage = PROGRESSIVE_INFERENCE
        assert torch.equal(m.encoder(x), full)
