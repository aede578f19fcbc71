"""StyleMapGAN: the official checkpoint reproduces the official outputs (golden fixtures, WAVE2_NOTES section 1)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

import stylebridge
from stylebridge.models.stylegan2 import StyleGAN2Discriminator
from stylebridge.models.stylemapgan import StyleMapGAN

IMG = dict(atol=1e-4, rtol=1e-5)
MAP = dict(atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def io(golden_dir):
    return {k: v.clone() for k, v in load_file(str(golden_dir / "stylemapgan_io.safetensors")).items()}


@pytest.fixture(scope="module")
def ckpt(golden_dir):
    return golden_dir / "stylemapgan_010000.pt"


@pytest.fixture(scope="module")
def model(ckpt):
    return stylebridge.load(ckpt)


def test_input_preprocessing(io):
    x = (io["input_uint8_hwc"].permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.5
    torch.testing.assert_close(x, io["input"], atol=1e-6, rtol=0)


@torch.no_grad()
def test_encode_decode_generate(model, io):
    assert isinstance(model, StyleMapGAN) and model.config.generator.latent_size == 8
    torch.testing.assert_close(model.encode(io["input"]), io["stylemap"], **MAP)
    torch.testing.assert_close(model.decode(io["stylemap"]), io["recon"], **IMG)
    G = model.generator
    torch.testing.assert_close(G.map(io["z"]), io["stylemap_from_z"], **MAP)
    torch.testing.assert_close(G(io["z"]), io["img_from_z"], **IMG)
    mean = G.mean_stylemap(io["z_mean"])
    torch.testing.assert_close(mean, io["mean_stylemap"], **MAP)
    torch.testing.assert_close(G.map(io["z"], 0.7, io["mean_stylemap"]), io["stylemap_trunc"], **MAP)
    torch.testing.assert_close(G(io["z"], 0.7, io["mean_stylemap"]), io["img_trunc"], **IMG)


@torch.no_grad()
def test_non_ema_and_discriminator(ckpt, io):
    m = stylebridge.load(ckpt, part="nonema")
    torch.testing.assert_close(m.encode(io["input"]), io["stylemap_nonema"], **MAP)
    torch.testing.assert_close(m.decode(io["stylemap_nonema"]), io["recon_nonema"], **IMG)
    raw = stylebridge.load(ckpt, part="raw")  # the name the checks use
    torch.testing.assert_close(raw.encode(io["input"]), io["stylemap_nonema"], **MAP)
    D = stylebridge.load(ckpt, part="d")
    assert isinstance(D, StyleGAN2Discriminator)
    torch.testing.assert_close(D(io["input"]), io["d_out"], **MAP)


@torch.no_grad()
def test_local_edits_interpolation_and_style_mixing(model, io):
    src, ref = io["stylemap"][io["src_index"]], io["stylemap"][io["ref_index"]]
    for k in range(3):  # batch of 1 per pair, as the fixtures
        s, r = src[k : k + 1], ref[k : k + 1]
        torch.testing.assert_close(model.local_edit(s, r, io["mask_wplus"][k : k + 1], "w_plus"),
                                   io["local_edit_wplus"][k : k + 1], **IMG)
        torch.testing.assert_close(model.local_edit(s, r, io["mask_w"][k : k + 1], "w"),
                                   io["local_edit_w"][k : k + 1], **IMG)
        torch.testing.assert_close(model.decode(s), io["recon_src"][k : k + 1], **IMG)
        torch.testing.assert_close(model.decode(r), io["recon_ref"][k : k + 1], **IMG)
        torch.testing.assert_close(model.interpolate(s, r, 0.7), io["interp"][k : k + 1], **IMG)
    torch.testing.assert_close(0.3 * src + 0.7 * ref, io["interp_stylemap"], **MAP)
    torch.testing.assert_close(model.style_mix(src, ref, "a"), io["stylemix_coarse"], **IMG)
    torch.testing.assert_close(model.style_mix(src, ref, "b"), io["stylemix_fine"], **IMG)


def test_native_round_trip_and_parts(model, ckpt, tmp_path, io):
    model.save_pretrained(tmp_path / "smg")
    again = stylebridge.load(tmp_path / "smg")
    with torch.no_grad():
        torch.testing.assert_close(again.reconstruct(io["input"]), model.reconstruct(io["input"]))
    with pytest.raises(ValueError, match="part must be"):
        stylebridge.load(ckpt, part="g")


def test_check_api_names(model, io):
    """The names the issue's checks call: map / synthesize / generate, space="stylemap", one mask for a batch."""
    z = torch.randn(2, model.config.generator.latent_channels, generator=torch.Generator().manual_seed(0))
    s = model.map(z)
    torch.testing.assert_close(model.synthesize(s), model.decode(s))
    torch.testing.assert_close(model.generate(z), model.decode(s))
    mask = io["mask_w"][0]
    both = model.local_edit(s, s.flip(0), mask, space="stylemap")
    torch.testing.assert_close(both, model.local_edit(s, s.flip(0), mask.expand(2, -1, -1), space="w"))
    with pytest.raises(ValueError, match="space"):
        model.local_edit(s, s, mask, space="pixels")
