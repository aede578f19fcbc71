"""IR / IR-SE backbones: unit layout, reference parameter names (pSp trunk, ArcFace Backbone), loading."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import stylebridge
from stylebridge import CheckpointError
from stylebridge.formats.loading import describe
from stylebridge.models.irse import (
    IRSEBackbone,
    IRSEBackboneConfig,
    IRUnit,
    SEModule,
    StridedSubsample,
    make_body,
    stage_ends,
    unit_specs,
)

TINY = dict(input_width=4, widths=(4, 8, 16, 32), se_reduction=2, embed_dim=16)


@pytest.mark.parametrize("num_layers,units", [(50, (3, 4, 14, 3)), (100, (3, 13, 30, 3)), (152, (3, 8, 36, 3))])
def test_unit_counts_and_strides(num_layers, units):
    body = make_body(num_layers, "ir_se", widths=(4, 8, 16, 32), input_width=4, se_reduction=2)
    assert len(body) == sum(units)
    specs = unit_specs(num_layers, (4, 8, 16, 32), 4)
    starts = [0, units[0], units[0] + units[1], sum(units[:3])]
    assert [i for i, (_, _, s) in enumerate(specs) if s == 2] == starts  # each stage opens with a stride-2 unit
    assert stage_ends(num_layers) == (*(s - 1 for s in starts[1:]), sum(units) - 1)
    x = torch.zeros(1, 4, 32, 32)
    assert body(x).shape == (1, 32, 2, 2)  # the trunk divides the side by 16


def test_ir_se_50_taps_match_the_reference():
    assert stage_ends(50) == (2, 6, 20, 23)  # pSp/e4e read c1, c2, c3 after units 6, 20 and 23


def test_unit_structure():
    same = IRUnit(8, 8, 2, se_reduction=2)
    assert isinstance(same.shortcut_layer, StridedSubsample)  # in == depth: strided subsampling only
    x = torch.randn(2, same.res_layer[1].in_channels, 8, 8)
    torch.testing.assert_close(same.shortcut_layer(x), torch.nn.MaxPool2d(1, 2)(x))  # the reference's op
    assert isinstance(same.res_layer[5], SEModule)
    assert set(same.state_dict()) >= {"res_layer.5.fc1.weight", "res_layer.5.fc2.weight"}
    assert same.res_layer[5].fc1.weight.shape == (4, 8, 1, 1) and same.res_layer[5].fc1.bias is None
    grow = IRUnit(8, 16, 2)  # plain IR: no SE
    assert len(grow.res_layer) == 5
    assert {k for k in grow.state_dict() if k.startswith("shortcut_layer")} == {
        "shortcut_layer.0.weight", "shortcut_layer.1.weight", "shortcut_layer.1.bias", "shortcut_layer.1.running_mean",
        "shortcut_layer.1.running_var", "shortcut_layer.1.num_batches_tracked"}
    assert grow(torch.zeros(2, 8, 10, 10)).shape == (2, 16, 5, 5)


def _bn(prefix, c):
    return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
            f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()}


def _reference_arcface_shapes():
    """Key → shape of TreB1eN's / pSp's Backbone(112, 50, mode='ir_se'), written out from the reference code."""
    out = {"input_layer.0.weight": (64, 3, 3, 3), **_bn("input_layer.1", 64), "input_layer.2.weight": (64,)}
    n = 0
    for cin, depth, units in ((64, 64, 3), (64, 128, 4), (128, 256, 14), (256, 512, 3)):
        for u in range(units):
            i = cin if u == 0 else depth
            p = f"body.{n}"
            if i != depth:
                out[f"{p}.shortcut_layer.0.weight"] = (depth, i, 1, 1)
                out.update(_bn(f"{p}.shortcut_layer.1", depth))
            out.update(_bn(f"{p}.res_layer.0", i))
            out[f"{p}.res_layer.1.weight"] = (depth, i, 3, 3)
            out[f"{p}.res_layer.2.weight"] = (depth,)
            out[f"{p}.res_layer.3.weight"] = (depth, depth, 3, 3)
            out.update(_bn(f"{p}.res_layer.4", depth))
            out[f"{p}.res_layer.5.fc1.weight"] = (depth // 16, depth, 1, 1)
            out[f"{p}.res_layer.5.fc2.weight"] = (depth, depth // 16, 1, 1)
            n += 1
    out.update(_bn("output_layer.0", 512))
    out["output_layer.3.weight"] = (512, 512 * 7 * 7)
    out["output_layer.3.bias"] = (512,)
    out.update(_bn("output_layer.4", 512))
    return out


def test_arcface_backbone_names_for_112_px():
    with torch.device("meta"):  # full size, no memory
        model = IRSEBackbone(IRSEBackboneConfig())
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == _reference_arcface_shapes()


@pytest.mark.parametrize("num_layers,mode", [(50, "ir_se"), (100, "ir")])
def test_arcface_state_dict_loads_with_inferred_config(tmp_path, num_layers, mode):
    ref = IRSEBackbone(IRSEBackboneConfig(num_layers=num_layers, mode=mode, **TINY)).eval()
    path = tmp_path / "model_ir_se50.pth"
    torch.save(ref.state_dict(), path)
    model, info = describe(path)
    assert isinstance(model, IRSEBackbone) and info.format == "arcface-irse"
    # Plain IR units have no SE layers, so the file cannot tell se_reduction: it keeps its default.
    assert model.config == (ref.config if mode == "ir_se" else dataclasses.replace(ref.config, se_reduction=16))
    x = torch.rand(3, 3, 112, 112) * 2 - 1
    with torch.no_grad():
        emb = model(x)
        assert torch.equal(emb, ref(x))
    assert emb.shape == (3, 16)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(3))
    with pytest.raises(ValueError, match="part"):
        stylebridge.load(path, part="d")


def test_arcface_224_px_and_non_affine_head(tmp_path):
    ref = IRSEBackbone(IRSEBackboneConfig(input_size=224, affine=False, **TINY)).eval()
    assert ref.output_layer[3].in_features == 32 * 14 * 14 and "output_layer.4.weight" not in ref.state_dict()
    torch.save(ref.state_dict(), tmp_path / "b.pth")
    assert stylebridge.load(tmp_path / "b.pth").config == ref.config


def test_backbone_checks_input_and_round_trips(tmp_path):
    model = IRSEBackbone(IRSEBackboneConfig(**TINY)).eval()
    with pytest.raises(ValueError, match=r"\[N, 3, 112, 112\]"):
        model(torch.zeros(1, 3, 64, 64))
    model.save_pretrained(tmp_path / "m")
    again = IRSEBackbone.from_pretrained(tmp_path / "m")
    x = torch.rand(2, 3, 112, 112)
    with torch.no_grad():
        assert torch.equal(again(x), model(x))


def test_broken_trunk_is_refused(tmp_path):
    sd = IRSEBackbone(IRSEBackboneConfig(**TINY)).state_dict()
    del sd["body.5.res_layer.1.weight"]
    torch.save(sd, tmp_path / "b.pth")
    with pytest.raises(CheckpointError, match="23 IR units match no IR-SE depth"):
        stylebridge.load(tmp_path / "b.pth")


def test_config_validation():
    with pytest.raises(ValueError, match="num_layers"):
        IRSEBackboneConfig(num_layers=34)
    with pytest.raises(ValueError, match="mode"):
        IRSEBackboneConfig(mode="se")
    with pytest.raises(ValueError, match="multiple of 16"):
        IRSEBackboneConfig(input_size=100)
    with pytest.raises(ValueError, match="does not divide"):
        SEModule(6, 4)
