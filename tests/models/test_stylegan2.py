"""StyleGAN2 generator/discriminator: configs, shapes, features and injection, noise, mixing, native format."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from stylebridge import CheckpointError, StyleGAN2Config, StyleGAN2DiscriminatorConfig
from stylebridge.models.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator, rosinality_channels


def tiny(resolution=32, **kw) -> StyleGAN2Generator:
    cfg = dict(resolution=resolution, z_dim=16, w_dim=16, mapping_layers=2, channel_divisor=32)
    cfg.update(kw)
    return StyleGAN2Generator(StyleGAN2Config(**cfg)).eval()


def test_config_validation():
    with pytest.raises(ValueError, match="power of two"):
        StyleGAN2Config(resolution=48)
    with pytest.raises(ValueError, match="power of two"):
        StyleGAN2Config(resolution=2048)
    with pytest.raises(ValueError, match="one count per resolution"):
        StyleGAN2Config(resolution=16, channels=(8, 8))
    with pytest.raises(ValueError, match="does not divide"):
        rosinality_channels(64, channel_multiplier=1, channel_divisor=3)
    cfg = StyleGAN2Config(resolution=16, channels=[8, 8, 4])
    assert cfg.channels == (8, 8, 4) and cfg.channel_dict == {4: 8, 8: 8, 16: 4}
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.resolution = 32


def test_config_f_channels():
    assert rosinality_channels(1024, 2) == {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256, 256: 128,
                                           512: 64, 1024: 32}
    assert rosinality_channels(32, 1, 16) == {4: 32, 8: 32, 16: 32, 32: 32}


@pytest.mark.parametrize("res", [4, 8, 64])
def test_shapes_across_resolutions(res):
    G = tiny(res)
    assert G.num_ws == 2 * (res.bit_length() - 1) - 2
    with torch.no_grad():
        img = G(torch.randn(2, 16))
    assert img.shape == (2, 3, res, res) and img.dtype == torch.float32


def test_z_dim_different_from_w_dim_and_gray():
    G = tiny(16, z_dim=24, img_channels=1)
    with torch.no_grad():
        assert G.map(torch.randn(3, 24)).shape == (3, 16)
        assert G(torch.randn(3, 24)).shape == (3, 1, 16, 16)
    with pytest.raises(ValueError, match=r"z must have shape \[N, 24\]"):
        G.map(torch.randn(3, 16))


def test_noise_modes():
    G = tiny(16)
    w = G.map(torch.randn(2, 16))
    with torch.no_grad():
        for layer in [G.conv1, *G.convs]:
            layer.noise.weight.fill_(0.5)  # make noise matter
        a, b = G.synthesize(w, noise_mode="const"), G.synthesize(w, noise_mode="const")
        torch.testing.assert_close(a, b, atol=0, rtol=0)
        assert not torch.equal(G.synthesize(w, noise_mode="random"), G.synthesize(w, noise_mode="random"))
        zeros = [torch.zeros(2, 1, *getattr(G.noises, f"noise_{i}").shape[2:]) for i in range(G.config.num_noise)]
        torch.testing.assert_close(G.synthesize(w, noise=zeros), G.synthesize(w, noise_mode="none"))
        explicit = G.make_noise(2, generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(G.synthesize(w, noise=explicit), G.synthesize(w, noise=explicit))
    with pytest.raises(ValueError, match="noise_mode"):
        G.synthesize(w, noise_mode="fixed")
    with pytest.raises(ValueError, match="list of 5 tensors"):
        G.synthesize(w, noise=[None])


def test_w_plus_and_mixing():
    G = tiny(16)
    w1, w2 = G.map(torch.randn(2, 16)), G.map(torch.randn(2, 16))
    mixed = G.mix(w1, w2, crossover=2)
    assert mixed.shape == (2, G.num_ws, 16)
    torch.testing.assert_close(mixed[:, 1], w1)
    torch.testing.assert_close(mixed[:, 2], w2)
    with torch.no_grad():
        torch.testing.assert_close(G.synthesize(G.mix(w1, w2, G.num_ws), noise_mode="none"),
                                   G.synthesize(w1, noise_mode="none"))
    with pytest.raises(ValueError, match="crossover"):
        G.mix(w1, w2, G.num_ws + 1)
    with pytest.raises(ValueError, match="w must be"):
        G.synthesize(torch.randn(2, 3, 16))


def test_mapping_stays_fp32_under_autocast():
    G = tiny(16)
    z = torch.randn(2, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        w = G.map(z)
        img = G(z, noise_mode="none")
    assert w.dtype == torch.float32 and img.dtype == torch.float32
    torch.testing.assert_close(w, G.map(z))


def test_discriminator_epilogue_is_fp32_under_autocast():
    D = StyleGAN2Discriminator(StyleGAN2DiscriminatorConfig(resolution=16, channel_divisor=32)).eval()
    x = torch.randn(4, 3, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = D(x)
    assert logits.dtype == torch.float32  # minibatch stddev, final conv and the linear layers ran in fp32
    torch.testing.assert_close(logits, D(x), atol=0.1, rtol=0.05)


def test_truncation_towards_w_avg():
    G = tiny(16)
    G.compute_w_avg(500)
    z = torch.randn(4, 16)
    torch.testing.assert_close(G.map(z, truncation_psi=0.0), G.w_avg.expand(4, -1))
    w, wt = G.map(z), G.map(z, 0.5)
    torch.testing.assert_close(wt, G.w_avg + 0.5 * (w - G.w_avg))


def test_features_and_injection_reproduce_the_image():
    G = tiny(32)
    w = G.map(torch.randn(2, 16))
    names = G.feature_names
    assert names[:4] == ["const", "b4.conv1", "b4.img", "b8.conv0"] and names[-1] == "b32.img"
    with torch.no_grad():
        res = G.synthesize_with_features(w, names, noise_mode="const")
        img, feats = res.images, res.features
        torch.testing.assert_close(img, G.synthesize(w, noise_mode="const"))  # synthesize: the images alone
        for name in names:
            assert feats[name].shape[1:] == G.feature_shape(name)
        torch.testing.assert_close(feats["b32.img"], img)
        for name, prev_img in [("const", None), ("b8.conv1", "b4.img"), ("b16.conv0", "b8.img")]:
            again = G.synthesize_from(name, feats[name], w, feats[prev_img] if prev_img else None, noise_mode="const")
            torch.testing.assert_close(again, img)
        # Without the earlier image the result differs only by the missing low-resolution RGB contributions.
        partial = G.synthesize_from("b16.conv1", feats["b16.conv1"], w, noise_mode="const")
        assert partial.shape == img.shape and not torch.allclose(partial, img)
    with pytest.raises(KeyError, match="cannot inject"):
        G.synthesize_from("b8.img", feats["b8.img"], w)
    with pytest.raises(ValueError, match="must be"):
        G.synthesize_from("b8.conv1", torch.zeros(2, 3, 8, 8), w)
    with pytest.raises(KeyError, match="unknown feature"):
        G.synthesize_with_features(w, ["b64.conv1"])
    with pytest.raises(TypeError):  # synthesize returns images only: no feature or injection arguments
        G.synthesize(w, return_features=["b4.conv1"])


def test_gradients_flow_to_w_and_weights():
    G = tiny(16).train()
    w = G.map(torch.randn(2, 16)).detach().requires_grad_(True)
    G.synthesize(w, noise_mode="random").square().mean().backward()
    assert w.grad is not None and float(w.grad.abs().sum()) > 0
    synthesis = [(n, p) for n, p in G.named_parameters() if not n.startswith("style.")]  # w is detached
    assert all(p.grad is not None for _, p in synthesis)


def test_native_round_trip(tmp_path):
    G = tiny(16, lr_multiplier=0.02, conv_clamp=256.0)
    G.compute_w_avg(100)
    G.save_pretrained(tmp_path / "g", metadata={"note": "test"})
    doc = json.loads((tmp_path / "g" / "config.json").read_text())
    assert doc["model_type"] == "stylegan2-generator" and doc["config"]["conv_clamp"] == 256.0
    G2 = StyleGAN2Generator.from_pretrained(tmp_path / "g")
    assert G2.config == G.config
    w = G.map(torch.randn(2, 16))
    with torch.no_grad():
        torch.testing.assert_close(G2.synthesize(w, noise_mode="const"), G.synthesize(w, noise_mode="const"),
                                   atol=0, rtol=0)
    with pytest.raises(CheckpointError, match="expected StyleGAN2Discriminator"):
        StyleGAN2Discriminator.from_pretrained(tmp_path / "g")


def test_native_load_reports_unknown_config_and_bad_keys(tmp_path):
    G = tiny(8)
    G.save_pretrained(tmp_path / "g")
    doc = json.loads((tmp_path / "g" / "config.json").read_text())
    doc["config"]["bogus"] = 1
    (tmp_path / "g" / "config.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match=r"unknown StyleGAN2Config keys \['bogus'\]"):
        StyleGAN2Generator.from_pretrained(tmp_path / "g")
    del doc["config"]["bogus"]
    doc["config"]["w_dim"] = 32
    (tmp_path / "g" / "config.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="shape mismatches"):
        StyleGAN2Generator.from_pretrained(tmp_path / "g")


def test_discriminator_shapes_and_odd_batch():
    D = StyleGAN2Discriminator(StyleGAN2DiscriminatorConfig(resolution=32, channel_divisor=32)).eval()
    with torch.no_grad():
        assert D(torch.randn(8, 3, 32, 32)).shape == (8, 1)
        assert D(torch.randn(3, 3, 32, 32)).shape == (3, 1)  # the reference code cannot take batch 3
    with pytest.raises(ValueError, match="discriminator input"):
        D(torch.randn(2, 3, 16, 16))


def test_mbstd_groups_like_reference():
    """Samples i and i + N/G share a group: swapping two samples of one group leaves all outputs unchanged."""
    D = StyleGAN2Discriminator(StyleGAN2DiscriminatorConfig(resolution=8, channel_divisor=64)).eval()
    x = torch.randn(8, 3, 8, 8)
    with torch.no_grad():
        out = D(x)
        perm = torch.tensor([1, 0, 2, 3, 4, 5, 6, 7])  # 0 and 1 are in different groups (N/G = 2)...
        # Groups are {j, j + 2, j + 4, j + 6}:
        perm2 = torch.tensor([4, 1, 2, 3, 0, 5, 6, 7])  # ...0 and 4 share one
        torch.testing.assert_close(D(x[perm2])[perm2], out)
        assert not torch.allclose(D(x[perm])[perm], out)


def test_a_generator_built_under_inference_mode_renders():
    # inference tensors keep no version counter: the cached demodulation weights must not need one
    with torch.inference_mode():
        G = tiny()
        z = torch.randn(2, G.z_dim)
        a = G.synthesize(G.map(z))
        b = G.synthesize(G.map(z))
    torch.testing.assert_close(a, b)
