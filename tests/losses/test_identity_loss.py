"""Identity loss: pSp's ArcFace crop geometry, the loss formula with ArcFace / MoCo-style / domain networks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from stylebridge.losses import arcface_crop, identity_loss
from stylebridge.models.irse import IRSEBackbone, IRSEBackboneConfig
from stylebridge.models.resnet import ResNet, ResNetConfig


def test_crop_is_psp_rows_35_223_cols_32_220_of_256_then_112():
    x = torch.randn(2, 3, 256, 256)
    torch.testing.assert_close(arcface_crop(x), F.adaptive_avg_pool2d(x[:, :, 35:223, 32:220], (112, 112)))
    box = torch.zeros(1, 1, 256, 256)
    box[..., 35:223, 32:220] = 1
    assert torch.equal(arcface_crop(box), torch.ones(1, 1, 112, 112))
    x.requires_grad_(True)
    arcface_crop(x).sum().backward()
    inside = torch.zeros(256, 256, dtype=torch.bool)
    inside[35:223, 32:220] = True
    assert (x.grad[:, :, inside] > 0).all() and (x.grad[:, :, ~inside] == 0).all()


def test_other_sizes_go_through_psp_face_pool_first():
    big = torch.randn(1, 3, 1024, 1024)  # pSp pools 1024-px outputs to 256 before the loss
    torch.testing.assert_close(arcface_crop(big), arcface_crop(F.avg_pool2d(big, 4)))
    small = torch.randn(1, 3, 64, 64)  # smaller images are replicated up to 256 first
    up = small.repeat_interleave(4, dim=2).repeat_interleave(4, dim=3)
    torch.testing.assert_close(arcface_crop(small), arcface_crop(up))
    assert arcface_crop(small, 16).shape == (1, 3, 16, 16)


def _tiny_arcface(path):
    torch.manual_seed(0)
    net = IRSEBackbone(IRSEBackboneConfig(input_width=4, widths=(4, 8, 8, 8), se_reduction=2, embed_dim=16))
    net.eval()
    torch.save(net.state_dict(), path)  # the layout of model_ir_se50.pth, scaled down
    return net


def test_arcface_identity_loss_formula(tmp_path):
    net = _tiny_arcface(tmp_path / "model_ir_se50.pth")
    loss_fn = identity_loss(weights=tmp_path / "model_ir_se50.pth")  # "auto" + a weights file → ArcFace
    assert loss_fn.name.startswith("ArcFace IR-SE50 (model_ir_se50.pth), pSp crop")
    y_hat, y = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
    loss, stats = loss_fn(y_hat, y, y)
    with torch.no_grad():
        f_hat, f_y = net(arcface_crop(y_hat)), net(arcface_crop(y))
    expected = (1 - (f_hat * f_y).sum(1)).mean()
    torch.testing.assert_close(loss, expected, atol=1e-5, rtol=1e-5)
    assert stats["id_improve"] == pytest.approx(stats["id_similarity"] - 1, abs=1e-5)  # x == y: views sim 1
    same, _ = loss_fn(y, y)
    assert float(same) == pytest.approx(0, abs=1e-5)
    y_hat.requires_grad_(True)
    loss_fn(y_hat, y)[0].backward()
    assert y_hat.grad.abs().sum() > 0 and all(p.grad is None for p in loss_fn.parameters())


def test_moco_style_and_domain_variants(tmp_path):
    torch.save(ResNet(ResNetConfig(depth=18, widths=(4, 4, 8, 8), input_width=4, num_classes=3)).state_dict(),
               tmp_path / "resnet18.pth")
    moco = identity_loss("moco", tmp_path / "resnet18.pth")
    assert moco.name.startswith("MoCo-style similarity (ResNet-18")
    dom = identity_loss()  # no weights: the toolkit's domain network
    assert dom.name.startswith("synthfaces-domain similarity")
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    for fn in (moco, dom):
        assert float(fn(x, x)[0]) == pytest.approx(0, abs=1e-5)
        assert fn.embed(x).norm(dim=1).sub(1).abs().max() < 1e-5
    with pytest.raises(ValueError, match="needs its weights"):
        identity_loss("arcface")
    with pytest.raises(ValueError, match="holds a ResNet; expected IRSEBackbone"):
        identity_loss("arcface", tmp_path / "resnet18.pth")
