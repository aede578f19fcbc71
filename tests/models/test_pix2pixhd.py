"""pix2pixHD: the official checkpoints reproduce the official outputs (golden fixtures, WAVE2_NOTES section 2),
with the architecture from opt.txt and from the weights alone; native round trip; clear errors."""

from __future__ import annotations

import shutil
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import stylebridge
from stylebridge.core.errors import CheckpointError
from stylebridge.formats.loading import describe
from stylebridge.models.pix2pixhd import (
    Pix2PixHDDiscriminator,
    Pix2PixHDDiscriminatorConfig,
    Pix2PixHDGenerator,
    Pix2PixHDGeneratorConfig,
    downsample,
)

IMG = dict(atol=1e-4, rtol=1e-5)
FEAT = dict(atol=1e-5, rtol=0)

GLOBAL = ("pix2pixhd_latest_net_G.pth", "pix2pixhd_opt.txt")
LOCAL = ("pix2pixhd_local_latest_net_G.pth", "pix2pixhd_local_opt.txt")
DISC = ("pix2pixhd_latest_net_D.pth", "pix2pixhd_opt.txt")


@pytest.fixture(scope="module")
def io(golden_dir):
    return {k: v.clone() for k, v in load_file(str(golden_dir / "pix2pixhd_io.safetensors")).items()}


def checkpoint_folder(golden_dir: Path, tmp_path: Path, files: tuple[str, str], with_options: bool) -> Path:
    """The official layout: ``latest_net_X.pth`` (and ``opt.txt`` beside it) in a run folder; the file's path."""
    weights, options = files
    target = tmp_path / weights.removeprefix("pix2pixhd_").removeprefix("local_")
    shutil.copy(golden_dir / weights, target)
    if with_options:
        shutil.copy(golden_dir / options, tmp_path / "opt.txt")
    return target


def test_input_preprocessing(io):
    for name in ("input", "real"):
        x = io[f"{name}_uint8_hwc"].permute(0, 3, 1, 2).float() / 127.5 - 1
        torch.testing.assert_close(x, io[name], atol=1e-6, rtol=0)


@pytest.mark.parametrize("with_options", [True, False], ids=["opt.txt", "weights-only"])
@torch.no_grad()
def test_global_generator(golden_dir, tmp_path, io, with_options):
    path = checkpoint_folder(golden_dir, tmp_path, GLOBAL, with_options)
    G, info = describe(path)
    assert isinstance(G, Pix2PixHDGenerator) and info.format == "pix2pixhd-generator"
    assert info.extra["options"] == (str(tmp_path / "opt.txt") if with_options else None)
    c = G.config
    assert (c.in_channels, c.out_channels, c.ngf, c.n_downsample_global, c.n_blocks_global, c.n_local_enhancers) == (
        3, 3, 8, 2, 2, 0)
    torch.testing.assert_close(G(io["input"]), io["fake"], **IMG)


@pytest.mark.parametrize("with_options", [True, False], ids=["opt.txt", "weights-only"])
@torch.no_grad()
def test_local_enhancer(golden_dir, tmp_path, io, with_options):
    G = stylebridge.load(checkpoint_folder(golden_dir, tmp_path, LOCAL, with_options))
    assert isinstance(G, Pix2PixHDGenerator)
    c = G.config
    assert (c.ngf, c.global_ngf, c.n_downsample_global, c.n_blocks_global, c.n_local_enhancers, c.n_blocks_local) == (
        4, 8, 2, 2, 1, 1)
    torch.testing.assert_close(G(io["input"]), io["local_fake"], **IMG)


@pytest.mark.parametrize("with_options", [True, False], ids=["opt.txt", "weights-only"])
@torch.no_grad()
def test_multiscale_discriminator(golden_dir, tmp_path, io, with_options):
    D = stylebridge.load(checkpoint_folder(golden_dir, tmp_path, DISC, with_options))
    assert isinstance(D, Pix2PixHDDiscriminator)
    assert D.config == Pix2PixHDDiscriminatorConfig(in_channels=6, ndf=8, n_layers=2, num_scales=2)
    fake_pair = torch.cat([io["input"], io["fake"]], 1)
    torch.testing.assert_close(downsample(fake_pair), io["d_input_fake_half"], **FEAT)
    for name, image in (("fake", io["fake"]), ("real", io["real"])):
        out = D(torch.cat([io["input"], image], 1))
        assert len(out) == 2 and all(len(scale) == 4 for scale in out)
        for s in range(2):
            for layer in range(4):
                torch.testing.assert_close(out[s][layer], io[f"d_{name}_s{s}_l{layer}"], **FEAT,
                                           msg=lambda m, k=f"d_{name}_s{s}_l{layer}": f"{k}: {m}")


@torch.no_grad()
def test_native_round_trip(golden_dir, tmp_path, io):
    for files, key in ((GLOBAL, "fake"), (LOCAL, "local_fake")):
        G = stylebridge.load(golden_dir / files[0])
        folder = G.save_pretrained(tmp_path / key)
        G2 = stylebridge.load(folder)
        assert isinstance(G2, Pix2PixHDGenerator) and G2.config == G.config
        torch.testing.assert_close(G2(io["input"]), io[key], **IMG)
    D = stylebridge.load(golden_dir / DISC[0])
    D2 = stylebridge.load(D.save_pretrained(tmp_path / "d"), expect=Pix2PixHDDiscriminator)
    pair = torch.cat([io["input"], io["real"]], 1)
    torch.testing.assert_close(D2(pair)[1][3], io["d_real_s1_l3"], **FEAT)


def _error(path: Path, match: str, **kwargs) -> str:
    with pytest.raises(CheckpointError, match=match) as exc:
        stylebridge.load(path, **kwargs)
    text = str(exc.value)
    assert str(path) in text and "\n" not in text
    return text


def test_clear_errors_for_unexpected_state_dicts(golden_dir, tmp_path):
    sd = torch.load(golden_dir / GLOBAL[0], weights_only=True)

    def write(name: str, state: dict) -> Path:
        path = tmp_path / name
        torch.save(OrderedDict(state), path)
        return path

    _error(write("unknown.pth", {**sd, "model.3.weight": torch.zeros(8)}), r"unexpected keys \[model\.3\.weight\]")
    _error(write("missing.pth", {k: v for k, v in sd.items() if k != "model.10.conv_block.5.bias"}),
           r"missing keys \[model\.10\.conv_block\.5\.bias\]")
    _error(write("shape.pth", {**sd, "model.4.bias": torch.zeros(17)}), r"shape mismatches \[model\.4\.bias")
    _error(write("layers.pth", {k: v for k, v in sd.items() if not k.startswith("model.10.")}),
           r"first residual block at model\.11\) fit no pix2pixHD global generator")
    _error(write("output.pth", {k: v for k, v in sd.items() if not k.startswith("model.19.")}), "no 'model.19.weight'")
    _error(write("affine.pth", {**sd, "model.2.weight": torch.ones(8), "model.2.bias": torch.zeros(8)}),
           "only instance norm without affine")
    corrupt = tmp_path / "latest_net_G.pth"
    corrupt.write_bytes((golden_dir / GLOBAL[0]).read_bytes()[:5000])
    _error(corrupt, "not a readable torch checkpoint")


@torch.no_grad()
def test_pre_0_4_instance_norm_buffers_are_ignored(golden_dir, tmp_path, io):
    """PyTorch < 0.4 stored InstanceNorm running statistics; pix2pixHD's load_network drops them, so do we."""
    sd = torch.load(golden_dir / GLOBAL[0], weights_only=True)
    extra = {"model.2.running_mean": torch.zeros(8), "model.2.running_var": torch.ones(8),
             "model.10.conv_block.6.running_mean": torch.zeros(32), "model.10.conv_block.6.running_var": torch.ones(32)}
    torch.save(OrderedDict({**sd, **extra}), tmp_path / "old.pth")
    torch.testing.assert_close(stylebridge.load(tmp_path / "old.pth")(io["input"]), io["fake"], **IMG)
    torch.save(OrderedDict({**sd, "model.2.running_mean": torch.zeros(9)}), tmp_path / "bad.pth")
    _error(tmp_path / "bad.pth", r"model\.2\.running_mean")


def test_options_that_contradict_the_weights(golden_dir, tmp_path):
    path = tmp_path / "latest_net_G.pth"
    shutil.copy(golden_dir / GLOBAL[0], path)
    shutil.copy(golden_dir / LOCAL[1], tmp_path / "opt.txt")  # the local run's options beside the global weights
    text = _error(path, "do not match")
    assert "opt.txt" in text and "n_local_enhancers: options 1 vs weights 0" in text
    (tmp_path / "opt.txt").write_text((golden_dir / GLOBAL[1]).read_text().replace("norm: instance", "norm: batch"))
    _error(path, "norm 'batch' is not supported")


def test_options_of_another_tool_are_ignored(golden_dir, tmp_path, io, caplog):
    path = checkpoint_folder(golden_dir, tmp_path, GLOBAL, with_options=False)
    for text, warning in (("----------------- Options ---------------\n  netG: resnet_9blocks\n", "option dump"),
                          ("", "option file")):
        (tmp_path / "opt.txt").write_text(text)
        caplog.clear()
        with caplog.at_level("WARNING", logger="stylebridge.formats"), torch.no_grad():
            G = stylebridge.load(path)
            torch.testing.assert_close(G(io["input"]), io["fake"], **IMG)
        assert f"not a pix2pixHD {warning}" in caplog.text


@torch.no_grad()
def test_data_parallel_prefix(golden_dir, tmp_path, io):
    sd = torch.load(golden_dir / GLOBAL[0], weights_only=True)
    torch.save(OrderedDict((f"module.{k}", v) for k, v in sd.items()), tmp_path / "dp.pth")
    torch.testing.assert_close(stylebridge.load(tmp_path / "dp.pth")(io["input"]), io["fake"], **IMG)


def test_parts_and_input_checks(golden_dir):
    with pytest.raises(ValueError, match="part='d' does not apply"):
        stylebridge.load(golden_dir / GLOBAL[0], part="d")
    D = stylebridge.load(golden_dir / DISC[0], part="d")
    G = stylebridge.load(golden_dir / LOCAL[0], part="g")
    with pytest.raises(ValueError, match="multiples of 8"):
        G(torch.zeros(1, 3, 36, 36))
    with pytest.raises(ValueError, match=r"\[N, 6, H, W\]"):
        D(torch.zeros(1, 3, 32, 32))


def test_configs_and_shapes():
    G = Pix2PixHDGenerator(Pix2PixHDGeneratorConfig(in_channels=4, out_channels=2, ngf=4, n_downsample_global=1,
                                                    n_blocks_global=1, n_local_enhancers=2, n_blocks_local=1))
    y = G(torch.randn(2, 4, 16, 24))
    assert y.shape == (2, 2, 16, 24) and y.abs().max() < 1
    D = Pix2PixHDDiscriminator(Pix2PixHDDiscriminatorConfig(in_channels=5, ndf=300, n_layers=3, num_scales=3,
                                                            intermediate_features=False, use_sigmoid=True))
    assert D.config.widths == (300, 512, 512, 512, 1)
    out = D(torch.randn(1, 5, 32, 32))
    assert [len(s) for s in out] == [1, 1, 1] and all(((s[0] > 0) & (s[0] < 1)).all() for s in out)
    with pytest.raises(ValueError, match="ngf"):
        Pix2PixHDGeneratorConfig(ngf=0)


def test_residual_generator_starts_at_the_identity_and_learns_a_change(tmp_path):
    from stylebridge.models.pix2pixhd import Pix2PixHDGenerator, Pix2PixHDGeneratorConfig

    torch.manual_seed(0)
    cfg = Pix2PixHDGeneratorConfig(ngf=4, n_downsample_global=1, n_blocks_global=1, residual=True, resolution=16)
    m = Pix2PixHDGenerator(cfg)
    x = torch.rand(2, 3, 16, 16) * 1.9 - 0.95
    torch.testing.assert_close(m(x), x, atol=1e-6, rtol=0)
    assert (m(torch.ones(1, 3, 16, 16)) - 0.999).abs().max() < 1e-6  # saturated pixels stay finite
    # the change flows back into the network: one step moves the output towards a target
    target = (x + 0.3).clamp(-1, 1)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    before = (m(x) - target).square().mean().item()
    for _ in range(5):
        opt.zero_grad()
        (m(x) - target).square().mean().backward()
        opt.step()
    assert (m(x) - target).square().mean().item() < 0.8 * before
    m.save_pretrained(tmp_path / "r")
    assert Pix2PixHDGenerator.from_pretrained(tmp_path / "r").config.residual is True
    with pytest.raises(ValueError, match="residual needs whole images"):
        Pix2PixHDGeneratorConfig(in_channels=4, residual=True)
    # two images in (blending): the start is their mean
    m2 = Pix2PixHDGenerator(Pix2PixHDGeneratorConfig(in_channels=6, ngf=4, n_downsample_global=1, n_blocks_global=1,
                                                     residual=True))
    ab = torch.rand(2, 6, 16, 16) * 1.9 - 0.95
    torch.testing.assert_close(m2(ab), (ab[:, :3] + ab[:, 3:]) / 2, atol=1e-6, rtol=0)
