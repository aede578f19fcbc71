"""pSp: the official checkpoints reproduce the official outputs (fp32, CPU); configs, shapes, native format, errors.

Golden data: ``tests/golden/psp_*.pt`` (pixel2style2pixel Coach checkpoints, scaled down, tensors tagged cuda:0) and
``psp_io.safetensors`` (the official code's outputs). The fixtures' face_pool is 16 px instead of the official 256
(README "Scaled constants"), so the resized outputs are compared with ``resize=16``.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import stylebridge
from stylebridge import CheckpointError, StyleGAN2Config, StyleGAN2Generator
from stylebridge.core.safe_pickle import load_torch_file
from stylebridge.formats.loading import describe
from stylebridge.models.psp import PSP, PSPConfig, PSPEncoder, PSPEncoderConfig, mix_latents

IMG_TOL = dict(atol=1e-4, rtol=1e-5)
LAT_TOL = dict(atol=1e-5, rtol=0)
FACE_POOL = 16  # the fixtures' AdaptiveAvgPool2d((16, 16))


@pytest.fixture(scope="module")
def psp_io(golden_dir):
    return load_file(str(golden_dir / "psp_io.safetensors"))


@pytest.fixture(scope="module")
def gse_path(golden_dir):
    return golden_dir / "psp_gradual_style_encoder.pt"


@pytest.fixture(scope="module")
def w_path(golden_dir):
    return golden_dir / "psp_w_encoder.pt"


@pytest.fixture(scope="module")
def gse(gse_path):
    return stylebridge.load(gse_path)


@pytest.fixture(scope="module")
def wenc(w_path):
    return stylebridge.load(w_path)


def tiny_config(**encoder_kw) -> PSPConfig:
    """16-px generator (6 W+ rows), IR-SE-50 trunk with widths ÷16, 32-px input."""
    enc = dict(num_ws=6, w_dim=16, input_size=32, input_width=4, widths=(4, 8, 16, 32), se_reduction=2)
    enc.update(encoder_kw)
    dec = StyleGAN2Config(resolution=16, z_dim=16, w_dim=16, mapping_layers=2, channel_divisor=32)
    return PSPConfig(encoder=PSPEncoderConfig(**enc), decoder=dec, resize_to=8)


# ---------------------------------------------------------------------------------------------------------------
# Golden: GradualStyleEncoder


def test_input_preprocessing_matches(psp_io):
    u8 = psp_io["input_uint8_hwc"]
    x = (u8.permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.5
    torch.testing.assert_close(x, psp_io["input"], atol=0, rtol=0)


def test_gradual_loads_with_inferred_config(gse, gse_path):
    assert isinstance(gse, PSP) and isinstance(gse.encoder, PSPEncoder) and not gse.training
    e = gse.config.encoder
    assert (e.num_ws, e.w_dim, e.in_channels, e.input_size, e.num_layers, e.mode) == (8, 64, 3, 32, 50, "ir_se")
    assert (e.input_width, e.widths, e.se_reduction, e.learn_in_w) == (4, (4, 8, 16, 32), 2, False)
    assert gse.config.decoder.resolution == 32 and gse.num_ws == 8 and gse.w_dim == 64
    assert isinstance(gse.generator, StyleGAN2Generator)
    ckpt = load_torch_file(gse_path)
    # Every encoder tensor of the checkpoint was loaded: same key set, same values.
    enc = {k[len("encoder."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("encoder.")}
    ours = gse.encoder.state_dict()
    assert set(ours) == set(enc)
    for k, v in enc.items():
        assert torch.equal(ours[k], v), k
    # latent_avg has 8 distinct rows in this file: kept row by row.
    torch.testing.assert_close(gse.latent_avg, ckpt["latent_avg"], atol=0, rtol=0)


def test_gradual_encoder_and_latents(gse, psp_io):
    x = psp_io["input"]
    with torch.no_grad():
        torch.testing.assert_close(gse.encoder(x), psp_io["gse_encoder_out"], **LAT_TOL)
        torch.testing.assert_close(gse.encode(x), psp_io["gse_result_latent"], **LAT_TOL)


def test_gradual_images(gse, psp_io):
    x = psp_io["input"]
    with torch.no_grad():
        images, latents = gse(x, resize=False, return_latents=True)
        torch.testing.assert_close(latents, psp_io["gse_result_latent"], **LAT_TOL)
        torch.testing.assert_close(images, psp_io["gse_images"], **IMG_TOL)
        torch.testing.assert_close(gse(x, resize=FACE_POOL), psp_io["gse_images_resized"], **IMG_TOL)
        assert gse(x).shape == (2, 3, 256, 256)  # resize=True: the official 256-px face_pool


@pytest.mark.parametrize("alpha,key", [(0.6, "gse_images_latent_mask_alpha"), (None, "gse_images_latent_mask_noalpha")])
def test_latent_mask_mixing(gse, psp_io, alpha, key):
    x, inject = psp_io["input"], psp_io["gse_inject_latent"]
    with torch.no_grad():
        out = gse(x, resize=False, latent_mask=[5, 6, 7], inject_latent=inject, alpha=alpha)
    torch.testing.assert_close(out, psp_io[key], **IMG_TOL)


def test_mix_latents_semantics():
    w, inj = torch.randn(2, 8, 4), torch.randn(2, 8, 4)
    before = w.clone()
    out = mix_latents(w, [1, 7], inj, alpha=0.25)
    torch.testing.assert_close(out[:, 1], 0.25 * inj[:, 1] + 0.75 * w[:, 1])
    assert torch.equal(out[:, [0, 2, 3, 4, 5, 6]], w[:, [0, 2, 3, 4, 5, 6]])
    assert torch.equal(mix_latents(w, [2], inj)[:, 2], inj[:, 2])
    assert torch.equal(mix_latents(w, [3])[:, 3], torch.zeros(2, 4))  # no inject_latent: rows zeroed
    assert torch.equal(mix_latents(w, [0], inj[:, 0])[:, 0], inj[:, 0])  # a single w broadcasts over rows
    assert torch.equal(w, before)  # the input is not modified
    with pytest.raises(ValueError, match="out of range"):
        mix_latents(w, [8], inj)
    with pytest.raises(ValueError, match="inject_latent must be"):
        mix_latents(w, [1], torch.randn(2, 7, 4))


# ---------------------------------------------------------------------------------------------------------------
# Golden: BackboneEncoderUsingLastLayerIntoW


def test_w_encoder(wenc, psp_io):
    assert isinstance(wenc, PSP) and wenc.config.encoder.learn_in_w
    assert wenc.latent_avg.shape == (1, 64)  # the file stores [64]
    x = psp_io["input"]
    with torch.no_grad():
        torch.testing.assert_close(wenc.encoder(x), psp_io["w_encoder_out"], **LAT_TOL)
        w_plus = wenc.encode(x)
        torch.testing.assert_close(w_plus, psp_io["w_result_latent"], **LAT_TOL)
        assert torch.equal(w_plus[:, 0], w_plus[:, 7])
        torch.testing.assert_close(wenc(x, resize=False), psp_io["w_images"], **IMG_TOL)
        torch.testing.assert_close(wenc(x, resize=FACE_POOL), psp_io["w_images_resized"], **IMG_TOL)


# ---------------------------------------------------------------------------------------------------------------
# Parts, describe, native format


def test_decoder_and_encoder_parts(gse_path, golden_ckpt, psp_io):
    dec = stylebridge.load(gse_path, part="decoder")
    assert isinstance(dec, StyleGAN2Generator)
    g_ema = stylebridge.load(golden_ckpt)  # the pSp decoder is the frozen g_ema of this StyleGAN2 checkpoint
    for k, v in g_ema.state_dict().items():
        assert torch.equal(dec.state_dict()[k], v), k
    enc = stylebridge.load(gse_path, part="encoder")
    assert isinstance(enc, PSPEncoder)
    with torch.no_grad():
        torch.testing.assert_close(enc(psp_io["input"]), psp_io["gse_encoder_out"], **LAT_TOL)
    with pytest.raises(CheckpointError, match="no latent discriminator"):
        stylebridge.load(gse_path, part="d")
    with pytest.raises(ValueError, match="part must be"):
        stylebridge.load(gse_path, part="g")


def test_describe_says_what_the_file_is(gse_path, w_path):
    model, info = describe(gse_path)
    assert isinstance(model, PSP)
    assert info.format == "psp-checkpoint" and info.parts == ("encoder", "decoder")
    assert info.extra["encoder_type"] == "GradualStyleEncoder" and info.extra["args"]["output_size"] == 32
    _, info = describe(w_path)
    assert info.extra["encoder_kind"] == "w"


@pytest.mark.parametrize("which", ["gse", "wenc"])
def test_native_round_trip(request, tmp_path, psp_io, which):
    model = request.getfixturevalue(which)
    model.save_pretrained(tmp_path / "m")
    doc = json.loads((tmp_path / "m" / "config.json").read_text())
    assert doc["model_type"] == "psp" and doc["config"]["encoder"]["widths"] == [4, 8, 16, 32]
    again = PSP.from_pretrained(tmp_path / "m")
    assert again.config == model.config
    ours, theirs = model.state_dict(), again.state_dict()
    assert set(ours) == set(theirs) and all(torch.equal(ours[k], theirs[k]) for k in ours)
    x = psp_io["input"]
    with torch.no_grad():
        assert torch.equal(model(x, resize=False), again(x, resize=False))
    assert isinstance(stylebridge.load(tmp_path / "m"), PSP)
    # The encoder alone round-trips too.
    model.encoder.save_pretrained(tmp_path / "e")
    enc = PSPEncoder.from_pretrained(tmp_path / "e")
    with torch.no_grad():
        assert torch.equal(enc(x), model.encoder(x))


# ---------------------------------------------------------------------------------------------------------------
# Bad checkpoints


def _edited(tmp_path, src, edit) -> str:
    ckpt = load_torch_file(src)
    edit(ckpt)
    path = tmp_path / "edited.pt"
    torch.save(ckpt, path)
    return str(path)


def _rename_key(ckpt):
    sd = ckpt["state_dict"]
    sd["encoder.styles.0.linear.weight_renamed"] = sd.pop("encoder.styles.0.linear.weight")


def _wrong_n_styles(ckpt):
    ckpt["opts"]["n_styles"] = 18


def _wrong_latent_avg(ckpt):
    ckpt["latent_avg"] = torch.zeros(5, 64)


def _wrong_encoder_type(ckpt):
    ckpt["opts"]["encoder_type"] = "BackboneEncoderUsingLastLayerIntoW"


def _unsupported_encoder_type(ckpt):
    ckpt["opts"]["encoder_type"] = "BackboneEncoderUsingLastLayerIntoWPlus"


def _data_parallel_prefix(ckpt):
    ckpt["state_dict"] = {f"module.{k}": v for k, v in ckpt["state_dict"].items()}


def _wrong_output_size(ckpt):
    ckpt["opts"]["output_size"] = 64


def _wrong_input_nc(ckpt):
    ckpt["opts"]["input_nc"] = 1


@pytest.mark.parametrize("edit,message", [
    (_rename_key, r"missing keys \[styles\.0\.linear\.weight\].*unexpected keys \[styles\.0\.linear\.weight_renamed\]"),
    (_wrong_n_styles, "n_styles=18"),
    (_wrong_latent_avg, "latent_avg has 5 rows"),
    (_wrong_encoder_type, "single-w|per-style"),
    (_unsupported_encoder_type, "not supported"),
    (_data_parallel_prefix, "outside encoder./decoder."),
    (_wrong_output_size, "size=64"),
    (_wrong_input_nc, "input_nc=1"),
])
def test_bad_checkpoints_are_refused(tmp_path, gse_path, edit, message):
    path = _edited(tmp_path, gse_path, edit)
    with pytest.raises(CheckpointError, match=message) as info:
        stylebridge.load(path)
    assert path in str(info.value)


def test_w_encoder_refuses_multi_row_latent_avg(tmp_path, w_path):
    path = _edited(tmp_path, w_path, lambda c: c.__setitem__("latent_avg", torch.zeros(8, 64)))
    with pytest.raises(CheckpointError, match="single-w pSp encoder needs latent_avg"):
        stylebridge.load(path)


def test_no_latent_avg_offset_without_start_from_latent_avg(tmp_path, gse_path, psp_io):
    def edit(c):
        c["opts"]["start_from_latent_avg"] = False
        del c["latent_avg"]

    model = stylebridge.load(_edited(tmp_path, gse_path, edit))
    assert torch.equal(model.latent_avg, torch.zeros(8, 64))
    with torch.no_grad():
        torch.testing.assert_close(model.encode(psp_io["input"]), psp_io["gse_encoder_out"], **LAT_TOL)


# ---------------------------------------------------------------------------------------------------------------
# Tiny models: input variants, shapes, validation


@pytest.mark.parametrize("in_channels", [1, 3, 4, 19])  # sketch, RGB, RGB + mask, 19-label one-hot segmentation
def test_input_channel_variants(in_channels):
    model = PSP(tiny_config(in_channels=in_channels)).eval()
    x = torch.rand(2, in_channels, 32, 32) * 2 - 1
    with torch.no_grad():
        w_plus = model.encode(x)
        assert w_plus.shape == (2, 6, 16)
        assert model(x).shape == (2, 3, 8, 8)  # resize_to
        assert model(x, resize=False).shape == (2, 3, 16, 16)
    assert model.encoder.state_dict()["input_layer.0.weight"].shape == (4, in_channels, 3, 3)


def test_gradual_style_blocks_follow_input_size():
    enc = PSPEncoder(PSPEncoderConfig(num_ws=10, w_dim=8, input_size=64, input_width=4, widths=(4, 8, 16, 32),
                                      se_reduction=2))
    # Rows 0-2 read 4-px c3 (2 convs), rows 3-6 8-px p2 (3 convs), rows 7-9 16-px p1 (4 convs).
    n_convs = [sum(isinstance(m, torch.nn.Conv2d) for m in block.convs) for block in enc.styles]
    assert n_convs == [2] * 3 + [3] * 4 + [4] * 3
    assert enc(torch.zeros(1, 3, 64, 64)).shape == (1, 10, 8)
    with pytest.raises(ValueError, match=r"input must be \[N, 3, 64, 64\]"):
        enc(torch.zeros(1, 3, 32, 32))


def test_narrow_style_heads(tmp_path):
    # style_width narrows the map2style convs; the final linear still gives w_dim, and the config round-trips.
    cfg = PSPEncoderConfig(num_ws=10, w_dim=8, input_size=64, input_width=4, widths=(4, 8, 16, 32), se_reduction=2,
                           style_width=4)
    enc = PSPEncoder(cfg).eval()
    assert enc.styles[0].convs[0].weight.shape == (4, 32, 3, 3) and enc.styles[9].linear.weight.shape == (8, 4)
    official = PSPEncoder(PSPEncoderConfig(**{**cfg.to_dict(), "style_width": None}))
    assert official.styles[0].convs[0].weight.shape == (8, 32, 3, 3)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    enc.save_pretrained(tmp_path / "e")
    again = PSPEncoder.from_pretrained(tmp_path / "e")
    assert again.config.style_width == 4
    with torch.no_grad():
        assert enc(x).shape == (2, 10, 8) and torch.equal(again(x), enc(x))
    with pytest.raises(ValueError, match="style_width"):
        PSPEncoderConfig(style_width=0)


def test_learn_in_w_encoder_any_size():
    model = PSP(tiny_config(learn_in_w=True)).eval()
    assert model.latent_avg.shape == (1, 16)
    assert not any(k.startswith(("styles.", "latlayer")) for k in model.encoder.state_dict())
    with torch.no_grad():
        assert model.encoder(torch.zeros(2, 3, 48, 48)).shape == (2, 16)
        w_plus = model.encode(torch.zeros(2, 3, 32, 32))
    assert w_plus.shape == (2, 6, 16) and torch.equal(w_plus[:, 0], w_plus[:, 5])


def test_gradients_reach_the_encoder():
    model = PSP(tiny_config()).train()
    model.decoder.requires_grad_(False)
    images = model(torch.rand(2, 3, 32, 32) * 2 - 1, resize=False)
    images.square().mean().backward()
    assert model.encoder.styles[5].linear.weight.grad.abs().sum() > 0
    assert model.encoder.input_layer[0].weight.grad.abs().sum() > 0


def test_config_validation():
    with pytest.raises(ValueError, match="num_ws"):
        tiny_config(num_ws=8)
    with pytest.raises(ValueError, match="w_dim"):
        tiny_config(w_dim=32)
    with pytest.raises(ValueError, match="input_size"):
        PSPEncoderConfig(input_size=48)
    with pytest.raises(ValueError, match="num_layers"):
        PSPEncoderConfig(num_layers=34)
    with pytest.raises(ValueError, match="4 stage widths"):
        PSPEncoderConfig(widths=(64, 128, 256))
    cfg = PSPConfig(encoder=tiny_config().encoder.to_dict(), decoder=tiny_config().decoder.to_dict(), resize_to=8)
    assert cfg == tiny_config()
