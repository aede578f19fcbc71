"""ResNet-18/34 with torchvision names: reference layout, shapes, loading torchvision state dicts."""

from __future__ import annotations

import pytest
import torch

import stylebridge
from stylebridge import CheckpointError
from stylebridge.formats.loading import describe
from stylebridge.models.resnet import ResNet, ResNetConfig

TINY = dict(input_width=4, widths=(4, 8, 16, 32))


def _bn(prefix, c):
    return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
            f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()}


def _torchvision_resnet34_shapes():
    """Key → shape of ``torchvision.models.resnet34().state_dict()``, written out from torchvision's layout."""
    out = {"conv1.weight": (64, 3, 7, 7), **_bn("bn1", 64)}
    cin = 64
    for k, (width, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3)), start=1):
        for b in range(blocks):
            p = f"layer{k}.{b}"
            i = cin if b == 0 else width
            out[f"{p}.conv1.weight"] = (width, i, 3, 3)
            out.update(_bn(f"{p}.bn1", width))
            out[f"{p}.conv2.weight"] = (width, width, 3, 3)
            out.update(_bn(f"{p}.bn2", width))
            if b == 0 and k > 1:
                out[f"{p}.downsample.0.weight"] = (width, i, 1, 1)
                out.update(_bn(f"{p}.downsample.1", width))
        cin = width
    out["fc.weight"] = (1000, 512)
    out["fc.bias"] = (1000,)
    return out


def test_resnet34_torchvision_names():
    with torch.device("meta"):
        model = ResNet(ResNetConfig())
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == _torchvision_resnet34_shapes()
    assert model.num_parameters() == 21_797_672  # torchvision resnet34


def test_resnet18_parameter_count():
    with torch.device("meta"):
        assert ResNet(ResNetConfig(depth=18)).num_parameters() == 11_689_512  # torchvision resnet18


def test_features_and_logits_shapes():
    model = ResNet(ResNetConfig(num_classes=10, **TINY)).eval()
    x = torch.rand(2, 3, 64, 64)
    feats = model.features(x)
    assert [tuple(f.shape) for f in feats] == [(2, 4, 16, 16), (2, 8, 8, 8), (2, 16, 4, 4), (2, 32, 2, 2)]
    assert model(x).shape == (2, 10)
    headless = ResNet(ResNetConfig(num_classes=0, in_channels=1, **TINY))
    assert headless.fc is None and headless(torch.rand(2, 1, 48, 48)).shape == (2, 32)
    with pytest.raises(ValueError, match=r"\[N, 1, H, W\]"):
        headless(x)


@pytest.mark.parametrize("depth", [18, 34])
def test_torchvision_state_dict_loads(tmp_path, depth):
    ref = ResNet(ResNetConfig(depth=depth, num_classes=7, **TINY)).eval()
    torch.save(ref.state_dict(), tmp_path / "resnet.pth")
    model, info = describe(tmp_path / "resnet.pth")
    assert isinstance(model, ResNet) and info.format == "torchvision-resnet" and model.config == ref.config
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), ref(x))


def test_bottleneck_resnets_are_refused(tmp_path):
    sd = ResNet(ResNetConfig(**TINY)).state_dict()
    sd["layer1.0.conv3.weight"] = torch.zeros(16, 4, 1, 1)
    torch.save(sd, tmp_path / "r50.pth")
    with pytest.raises(CheckpointError, match="bottleneck"):
        stylebridge.load(tmp_path / "r50.pth")


def test_round_trip(tmp_path):
    model = ResNet(ResNetConfig(**TINY)).eval()
    model.save_pretrained(tmp_path / "r")
    again = stylebridge.load(tmp_path / "r")
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert isinstance(again, ResNet) and torch.equal(again(x), model(x))


def test_config_validation():
    with pytest.raises(ValueError, match="depth"):
        ResNetConfig(depth=50)
    with pytest.raises(ValueError, match="4 stage widths"):
        ResNetConfig(widths=(64, 128))
