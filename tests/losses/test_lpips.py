"""LPIPS: the official weight files' layout (torchvision AlexNet / VGG-16 + the lpips package's linear heads), strict
loading, the official formula, and the metric's basic properties.

The real files (``alexnet-owt-7be5be79.pth``, ``vgg16-397923af.pth``, lpips ``weights/v0.1/alex.pth`` / ``vgg.pth``)
are not available here: these tests build synthetic files with the official key names and shapes (taken from
torchvision's and PerceptualSimilarity's code) and check the numbers against an independent functional
re-implementation of ``lpips.LPIPS.forward`` (v0.1). That the real files hold exactly these keys is from reading
the reference code, not from opening them.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import stylebridge
from stylebridge import CheckpointError
from stylebridge.losses import perceptual_distance
from stylebridge.models.alexnet import AlexNet, AlexNetConfig, alexnet_from_state_dict
from stylebridge.models.lpips import LPIPS, LPIPSConfig, lpips_head_keys
from stylebridge.models.vgg import VGG, VGGConfig, vgg_config_from_state_dict, vgg_from_state_dict

# torchvision alexnet(): features.{0,3,6,8,10} weights; classifier.{1,4,6}.
ALEX_FEATURES = {0: (64, 3, 11, 11), 3: (192, 64, 5, 5), 6: (384, 192, 3, 3), 8: (256, 384, 3, 3), 10: (256, 256, 3, 3)}
ALEX_CLASSIFIER = {1: (4096, 9216), 4: (4096, 4096), 6: (1000, 4096)}
VGG16_FEATURES = {0: (64, 3), 2: (64, 64), 5: (128, 64), 7: (128, 128), 10: (256, 128), 12: (256, 256),
                  14: (256, 256), 17: (512, 256), 19: (512, 512), 21: (512, 512), 24: (512, 512), 26: (512, 512),
                  28: (512, 512)}
# lpips/weights/v0.1/{alex,vgg}.pth (NetLinLayer with use_dropout=True: Dropout at index 0, conv at 1).
ALEX_HEADS = {f"lin{k}.model.1.weight": (1, c, 1, 1) for k, c in enumerate((64, 192, 384, 256, 256))}
VGG_HEADS = {f"lin{k}.model.1.weight": (1, c, 1, 1) for k, c in enumerate((64, 128, 256, 512, 512))}


def test_key_names_and_shapes_match_the_official_files():
    alex = {k: tuple(v.shape) for k, v in LPIPS(LPIPSConfig("alex")).state_dict().items()}
    for i, shape in ALEX_FEATURES.items():
        assert alex[f"net.features.{i}.weight"] == shape and alex[f"net.features.{i}.bias"] == shape[:1]
    assert {k: v for k, v in alex.items() if k.startswith("lin")} == ALEX_HEADS == lpips_head_keys("alex")
    assert alex["scaling_layer.shift"] == alex["scaling_layer.scale"] == (1, 3, 1, 1)
    vgg = {k: tuple(v.shape) for k, v in LPIPS(LPIPSConfig("vgg")).state_dict().items()}
    assert {k: v for k, v in vgg.items() if k.startswith("lin")} == VGG_HEADS == lpips_head_keys("vgg")
    assert {int(k.split(".")[2]): v[:2] for k, v in vgg.items() if k.startswith("net.") and k.endswith("weight")} \
        == VGG16_FEATURES
    with torch.device("meta"):  # the full torchvision models: classifier names and shapes too
        full = {k: tuple(v.shape) for k, v in AlexNet(AlexNetConfig()).state_dict().items()}
        vgg16 = {k: tuple(v.shape) for k, v in VGG(VGGConfig()).state_dict().items()}
    assert {int(k.split(".")[1]): v for k, v in full.items() if k.startswith("classifier") and k.endswith("weight")} \
        == ALEX_CLASSIFIER
    assert vgg16["classifier.0.weight"] == (4096, 25088) and vgg16["classifier.6.weight"] == (1000, 4096)


def _reference_lpips(bsd: dict, heads: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """lpips.LPIPS(net='alex', version='0.1').forward written out with functional ops (the official recipe)."""
    shift = torch.tensor([-0.030, -0.088, -0.188])[None, :, None, None]
    scale = torch.tensor([0.458, 0.448, 0.450])[None, :, None, None]

    def taps(t):
        t = (t - shift) / scale
        out = []
        t = F.relu(F.conv2d(t, bsd["features.0.weight"], bsd["features.0.bias"], stride=4, padding=2))
        out.append(t)
        t = F.relu(F.conv2d(F.max_pool2d(t, 3, 2), bsd["features.3.weight"], bsd["features.3.bias"], padding=2))
        out.append(t)
        t = F.relu(F.conv2d(F.max_pool2d(t, 3, 2), bsd["features.6.weight"], bsd["features.6.bias"], padding=1))
        out.append(t)
        t = F.relu(F.conv2d(t, bsd["features.8.weight"], bsd["features.8.bias"], padding=1))
        out.append(t)
        t = F.relu(F.conv2d(t, bsd["features.10.weight"], bsd["features.10.bias"], padding=1))
        out.append(t)
        return out

    def norm(t, eps=1e-10):
        return t / (torch.sqrt(torch.sum(t**2, dim=1, keepdim=True)) + eps)

    val = 0
    for k, (a, b) in enumerate(zip(taps(x), taps(y))):
        d = (norm(a) - norm(b)) ** 2
        val = val + F.conv2d(d, heads[f"lin{k}.model.1.weight"]).mean([2, 3], keepdim=True)
    return val.flatten()


def _synthetic_alex(tmp_path, widths=(8, 16, 16, 8, 8), classifier=True):
    torch.manual_seed(1)
    cfg = AlexNetConfig(widths=widths, hidden=16, num_classes=10 if classifier else 0)
    bsd = AlexNet(cfg).state_dict()
    heads = {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1) for k, c in enumerate(widths)}
    torch.save(bsd, tmp_path / "alexnet.pth")
    torch.save(heads, tmp_path / "alex.pth")
    return bsd, heads


def test_from_official_files_reproduces_the_official_formula(tmp_path):
    bsd, heads = _synthetic_alex(tmp_path)
    model = LPIPS.from_official(tmp_path / "alexnet.pth", tmp_path / "alex.pth")
    assert model.config.net == "alex" and model.config.widths == (8, 16, 16, 8, 8)
    x, y = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
    torch.testing.assert_close(model(x, y), _reference_lpips(bsd, heads, x, y), atol=1e-6, rtol=1e-5)
    d, terms = model(x, y, per_layer=True)
    torch.testing.assert_close(sum(terms), d)
    # a features-only file (the part LPIPS uses) loads too
    _synthetic_alex(tmp_path, classifier=False)
    LPIPS.from_official(tmp_path / "alexnet.pth", tmp_path / "alex.pth")


def test_lpips_is_zero_on_equal_images_symmetric_and_positive(tmp_path):
    _synthetic_alex(tmp_path)
    model = LPIPS.from_official(tmp_path / "alexnet.pth", tmp_path / "alex.pth")
    x, y = torch.rand(3, 3, 48, 48) * 2 - 1, torch.rand(3, 3, 48, 48) * 2 - 1
    assert torch.equal(model(x, x), torch.zeros(3))
    torch.testing.assert_close(model(x, y), model(y, x))
    assert (model(x, y) > 0).all()
    x.requires_grad_(True)
    model(x, y).sum().backward()  # frozen metric, differentiable in its inputs
    assert x.grad is not None and all(p.grad is None for p in model.parameters())


def test_full_size_alexnet_features_and_native_round_trip(tmp_path):
    torch.save(AlexNet(AlexNetConfig(num_classes=0)).state_dict(), tmp_path / "alexnet.pth")
    torch.save({k: torch.rand(s) for k, s in ALEX_HEADS.items()}, tmp_path / "alex.pth")
    dist = perceptual_distance(lpips_backbone=tmp_path / "alexnet.pth", lpips_heads=tmp_path / "alex.pth")
    assert dist.name == "LPIPS v0.1 (alex; backbone alexnet.pth, heads alex.pth)" and dist.kind == "lpips"
    dist.net.save_pretrained(tmp_path / "lpips")
    again = stylebridge.load(tmp_path / "lpips")
    assert isinstance(again, LPIPS) and again.config.widths is None
    x, y = torch.rand(1, 3, 64, 64) * 2 - 1, torch.rand(1, 3, 64, 64) * 2 - 1
    assert torch.equal(again(x, y), dist(x, y))


def test_wrong_files_are_refused_with_the_keys_named(tmp_path):
    _synthetic_alex(tmp_path)
    heads = torch.load(tmp_path / "alex.pth", weights_only=True)
    renamed = {k.replace("lin", "").replace("model.", ""): v for k, v in heads.items()}  # pSp's renamed keys
    torch.save(renamed, tmp_path / "renamed.pth")
    with pytest.raises(CheckpointError, match=r"missing \['lin0.model.1.weight'"):
        LPIPS.from_official(tmp_path / "alexnet.pth", tmp_path / "renamed.pth")
    torch.save({k: torch.rand(s) for k, s in VGG_HEADS.items()}, tmp_path / "vgg.pth")
    with pytest.raises(CheckpointError, match="shape mismatches"):
        LPIPS.from_official(tmp_path / "alexnet.pth", tmp_path / "vgg.pth")
    bad = AlexNet(AlexNetConfig(widths=(8, 16, 16, 8, 8), hidden=16, num_classes=10)).state_dict()
    bad["classifier.4.weight"] = torch.zeros(16, 17)
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match=r"classifier\.4\.weight"):
        LPIPS.from_official(tmp_path / "bad.pth", tmp_path / "alex.pth")
    with pytest.raises(ValueError, match="LPIPS needs its weights"):
        perceptual_distance("lpips")


def test_vgg_layout_is_inferred_and_loads_strictly(tmp_path):
    small = VGG(VGGConfig(widths=(4, 8, 8, 16, 16), hidden=8, num_classes=5))
    cfg = vgg_config_from_state_dict(small.state_dict(), "x")
    assert (cfg.depth, cfg.widths, cfg.hidden, cfg.num_classes) == (16, (4, 8, 8, 16, 16), 8, 5)
    assert vgg_config_from_state_dict(VGG(VGGConfig(depth=19, num_classes=0)).state_dict(), "x").depth == 19
    loaded = vgg_from_state_dict(small.state_dict(), "x")
    x = torch.rand(1, 3, 32, 32)
    assert torch.equal(loaded(x), small.eval()(x))
    assert [t.shape[1] for t in small.taps(x)] == [4, 8, 8, 16, 16]
    torch.save(small.state_dict(), tmp_path / "vgg16.pth")
    torch.save({f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1) for k, c in enumerate((4, 8, 8, 16, 16))},
               tmp_path / "vgg.pth")
    model = LPIPS.from_official(tmp_path / "vgg16.pth", tmp_path / "vgg.pth")
    assert model.config.net == "vgg" and model(x * 2 - 1, x * 2 - 1).abs().max() == 0
    bn = dict(small.state_dict(), **{"features.1.running_mean": torch.zeros(4)})
    with pytest.raises(CheckpointError, match="batch-norm VGG"):
        vgg_from_state_dict(bn, "vgg16_bn.pth")
    assert isinstance(alexnet_from_state_dict(AlexNet(AlexNetConfig(num_classes=0)).state_dict(), "a"), AlexNet)


def test_domain_network_is_the_default_and_named():
    dist = perceptual_distance()
    assert dist.kind == "domain" and dist.name.startswith("synthfaces-domain distance")
    x, y = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    assert torch.allclose(dist(x, x), torch.zeros(2), atol=1e-6)
    torch.testing.assert_close(dist(x, y), dist(y, x))
