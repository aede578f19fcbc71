"""Inception-v3 feature extractor: state-dict compatibility with the official files, loading, FID-specific
pooling, preprocessing and error messages. No real weights are available offline: files here hold random weights
with the official keys and shapes. A 299-px forward costs ~6 GFLOP per image, so forwards use 1–2 images."""

from __future__ import annotations

import datetime

import pytest
import torch
import torch.nn.functional as F

from stylebridge.core.native import CheckpointError
from stylebridge.models.inception import (
    INPUT_SIZE,
    InceptionA,
    InceptionConfig,
    InceptionE,
    InceptionFeatures,
    _pool3x3,
)

# ------------------------------------------------------------------------------------------------------------------
# The official architecture, written out from torchvision's `models/inception.py` (Inception3, InceptionA–E,
# InceptionAux, BasicConv2d) as a table of BasicConv2d layers: (name, in_channels, out_channels, kernel (h, w)).
# pytorch-fid's FID network (`src/pytorch_fid/inception.py`, fid_inception_v3) is torchvision's
# Inception3(num_classes=1008, aux_logits=False) with some blocks' forward patched: the same keys and shapes.


def _block_a(cin: int, pool_features: int) -> list:
    return [("branch1x1", cin, 64, (1, 1)), ("branch5x5_1", cin, 48, (1, 1)), ("branch5x5_2", 48, 64, (5, 5)),
            ("branch3x3dbl_1", cin, 64, (1, 1)), ("branch3x3dbl_2", 64, 96, (3, 3)),
            ("branch3x3dbl_3", 96, 96, (3, 3)), ("branch_pool", cin, pool_features, (1, 1))]


def _block_b(cin: int) -> list:
    return [("branch3x3", cin, 384, (3, 3)), ("branch3x3dbl_1", cin, 64, (1, 1)), ("branch3x3dbl_2", 64, 96, (3, 3)),
            ("branch3x3dbl_3", 96, 96, (3, 3))]


def _block_c(cin: int, c7: int) -> list:
    return [("branch1x1", cin, 192, (1, 1)), ("branch7x7_1", cin, c7, (1, 1)), ("branch7x7_2", c7, c7, (1, 7)),
            ("branch7x7_3", c7, 192, (7, 1)), ("branch7x7dbl_1", cin, c7, (1, 1)),
            ("branch7x7dbl_2", c7, c7, (7, 1)), ("branch7x7dbl_3", c7, c7, (1, 7)),
            ("branch7x7dbl_4", c7, c7, (7, 1)), ("branch7x7dbl_5", c7, 192, (1, 7)),
            ("branch_pool", cin, 192, (1, 1))]


def _block_d(cin: int) -> list:
    return [("branch3x3_1", cin, 192, (1, 1)), ("branch3x3_2", 192, 320, (3, 3)), ("branch7x7x3_1", cin, 192, (1, 1)),
            ("branch7x7x3_2", 192, 192, (1, 7)), ("branch7x7x3_3", 192, 192, (7, 1)),
            ("branch7x7x3_4", 192, 192, (3, 3))]


def _block_e(cin: int) -> list:
    return [("branch1x1", cin, 320, (1, 1)), ("branch3x3_1", cin, 384, (1, 1)), ("branch3x3_2a", 384, 384, (1, 3)),
            ("branch3x3_2b", 384, 384, (3, 1)), ("branch3x3dbl_1", cin, 448, (1, 1)),
            ("branch3x3dbl_2", 448, 384, (3, 3)), ("branch3x3dbl_3a", 384, 384, (1, 3)),
            ("branch3x3dbl_3b", 384, 384, (3, 1)), ("branch_pool", cin, 192, (1, 1))]


def official_shapes(num_classes: int, aux_logits: bool) -> dict[str, tuple[int, ...]]:
    """Every state-dict key of torchvision's Inception3 with its shape, in torchvision's order."""
    convs = [("Conv2d_1a_3x3", 3, 32, (3, 3)), ("Conv2d_2a_3x3", 32, 32, (3, 3)), ("Conv2d_2b_3x3", 32, 64, (3, 3)),
             ("Conv2d_3b_1x1", 64, 80, (1, 1)), ("Conv2d_4a_3x3", 80, 192, (3, 3))]
    blocks = [("Mixed_5b", _block_a(192, 32)), ("Mixed_5c", _block_a(256, 64)), ("Mixed_5d", _block_a(288, 64)),
              ("Mixed_6a", _block_b(288)), ("Mixed_6b", _block_c(768, 128)), ("Mixed_6c", _block_c(768, 160)),
              ("Mixed_6d", _block_c(768, 160)), ("Mixed_6e", _block_c(768, 192))]
    if aux_logits:
        blocks.append(("AuxLogits", [("conv0", 768, 128, (1, 1)), ("conv1", 128, 768, (5, 5))]))
    blocks += [("Mixed_7a", _block_d(768)), ("Mixed_7b", _block_e(1280)), ("Mixed_7c", _block_e(2048))]
    for block, layers in blocks:
        convs += [(f"{block}.{name}", cin, cout, k) for name, cin, cout, k in layers]
    out: dict[str, tuple[int, ...]] = {}
    for name, cin, cout, (kh, kw) in convs:
        out[f"{name}.conv.weight"] = (cout, cin, kh, kw)
        for p in ("weight", "bias", "running_mean", "running_var"):
            out[f"{name}.bn.{p}"] = (cout,)
        out[f"{name}.bn.num_batches_tracked"] = ()
        if name == "AuxLogits.conv1":
            out["AuxLogits.fc.weight"], out["AuxLogits.fc.bias"] = (num_classes, 768), (num_classes,)
    out["fc.weight"], out["fc.bias"] = (num_classes, 2048), (num_classes,)
    return out


# torchvision's Inception_V3_Weights.IMAGENET1K_V1.meta["num_params"] (1000 classes, AuxLogits included).
TORCHVISION_PARAMS = 27_161_264
# AuxLogits: conv0 768·128 + BN 2·128, conv1 128·768·25 + BN 2·768, fc 768·1000 + 1000.
AUX_PARAMS = 768 * 128 + 2 * 128 + 128 * 768 * 25 + 2 * 768 + 768 * 1000 + 1000  # 3,326,696
# pytorch-fid's network: no AuxLogits, fc 2048 → 1008 instead of 1000 (+8·2048 + 8).
FID_PARAMS = TORCHVISION_PARAMS - AUX_PARAMS + 8 * 2048 + 8  # 23,850,960


@pytest.mark.parametrize("variant, num_classes, aux, n_keys, n_params", [
    ("fid", 1008, False, 566, FID_PARAMS),
    ("torchvision", 1000, True, 580, TORCHVISION_PARAMS),
])
def test_state_dict_matches_official_files(variant, num_classes, aux, n_keys, n_params):
    net = InceptionFeatures(InceptionConfig(variant=variant, num_classes=num_classes, aux_logits=aux))
    want = official_shapes(num_classes, aux)
    got = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert list(got) == list(want)  # same keys in the same order
    assert got == want  # and the same shapes
    assert len(got) == n_keys == 94 * 6 + 2 + (14 if aux else 0)  # 94 BasicConv2d (+2 aux) × 6 entries + fc
    assert net.num_parameters() == n_params
    # Representative spot checks against the numbers printed in the official sources.
    assert got["Conv2d_1a_3x3.conv.weight"] == (32, 3, 3, 3)
    assert got["Mixed_6e.branch7x7dbl_5.conv.weight"] == (192, 192, 1, 7)
    assert got["Mixed_7c.branch3x3dbl_1.conv.weight"] == (448, 2048, 1, 1)
    assert got["fc.weight"] == (num_classes, 2048)
    assert not any(p.requires_grad for p in net.parameters())


def test_parameter_counts_from_sources():
    assert AUX_PARAMS == 3_326_696 and FID_PARAMS == 23_850_960
    plain = InceptionFeatures(InceptionConfig(variant="torchvision", num_classes=1000, aux_logits=False))
    assert plain.num_parameters() == TORCHVISION_PARAMS - AUX_PARAMS  # 23,834,568


# ------------------------------------------------------------------------------------------------------------------
# synthetic weight files


def random_state(config: InceptionConfig, seed: int) -> dict[str, torch.Tensor]:
    """Random weights with non-trivial BatchNorm statistics, scaled so activations stay O(1) through 48 layers."""
    g = torch.Generator().manual_seed(seed)
    net = InceptionFeatures(config)
    state = {}
    for k, v in net.state_dict().items():
        if k.endswith("conv.weight") or k.endswith("fc.weight"):
            fan_in = v[0].numel()
            v = torch.randn(v.shape, generator=g) * (2.0 / fan_in) ** 0.5
        elif k.endswith("bn.weight"):
            v = 0.5 + torch.rand(v.shape, generator=g)
        elif k.endswith("bn.bias") or k.endswith("running_mean") or k.endswith("fc.bias"):
            v = 0.1 * torch.randn(v.shape, generator=g)
        elif k.endswith("running_var"):
            v = 0.5 + torch.rand(v.shape, generator=g)
        elif k.endswith("num_batches_tracked"):
            v = torch.tensor(1000, dtype=torch.long)
        state[k] = v.contiguous()
    return state


FID_CONFIG = InceptionConfig(variant="fid", num_classes=1008, aux_logits=False)
TV_CONFIG = InceptionConfig(variant="torchvision", num_classes=1000, aux_logits=True)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, tuple]:
    root = tmp_path_factory.mktemp("inception")
    out = {}
    for key, config, seed in (("fid", FID_CONFIG, 1), ("torchvision", TV_CONFIG, 2)):
        state = random_state(config, seed)
        path = root / f"{key}.pth"
        torch.save(state, path)
        out[key] = (path, state)
    return out


@pytest.fixture(scope="module")
def fid_net(files) -> InceptionFeatures:
    return InceptionFeatures.from_file(files["fid"][0])


def images(n: int, size: int = 48, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1


def reference_model(config: InceptionConfig, state: dict[str, torch.Tensor]) -> InceptionFeatures:
    net = InceptionFeatures(config)
    net.load_state_dict(state, strict=True)
    return net


@pytest.mark.parametrize("key, config", [("fid", FID_CONFIG), ("torchvision", TV_CONFIG)])
def test_round_trip_through_weights_file(files, key, config):
    path, state = files[key]
    net = InceptionFeatures.from_file(path)
    assert net.config == config and net.variant == key and not net.training
    if key == "fid":
        assert net.name.endswith("; standard FID)") and "not standard" not in net.name
    else:
        assert net.name == "Inception-v3 (torchvision ImageNet weights; not standard FID)"
    assert net.official_file is False and len(net.file_sha256) == 64  # random weights, not the official file
    loaded = net.state_dict()
    assert set(loaded) == set(state) and all(torch.equal(loaded[k], state[k]) for k in state)
    x = images(1)
    feats = net.features(x)
    assert feats.shape == (1, 2048) and feats.dtype == torch.float32
    assert float(feats.std()) > 1e-3  # the random network is not degenerate
    torch.testing.assert_close(feats, reference_model(config, state).features(x), rtol=0, atol=0)


def test_legacy_file_without_num_batches_tracked(files, tmp_path):
    # Files saved before BatchNorm counted batches (or with the pre-zip format) must still load.
    path, state = files["fid"]
    old = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save(old, tmp_path / "old.pth", _use_new_zipfile_serialization=False)
    net = InceptionFeatures.from_file(tmp_path / "old.pth")
    assert net.variant == "fid"
    assert all(int(v) == 0 for k, v in net.state_dict().items() if k.endswith("num_batches_tracked"))
    # An eval-mode forward does not depend on the counter: the module of the full file gives the same features.
    torch.testing.assert_close(net.features(images(1)), InceptionFeatures.from_file(path).features(images(1)))
    # Some counters but not all is malformed: the strict check names what is missing.
    partial = dict(state)
    del partial["Mixed_5b.branch1x1.bn.num_batches_tracked"]
    torch.save(partial, tmp_path / "partial.pth")
    with pytest.raises(CheckpointError, match=r"missing keys \[Mixed_5b\.branch1x1\.bn\.num_batches_tracked\]"):
        InceptionFeatures.from_file(tmp_path / "partial.pth")


def test_variant_override_is_named_honestly(files):
    # torchvision's file in the FID block structure: loads (same keys), but is not the standard FID network.
    net = InceptionFeatures.from_file(files["torchvision"][0], variant="fid")
    assert net.variant == "fid" and net.config.num_classes == 1000 and net.config.aux_logits
    assert "not standard FID" in net.name and "1000-class" in net.name
    with pytest.raises(ValueError, match="variant must be one of"):
        InceptionFeatures.from_file(files["fid"][0], variant="tf")


def test_native_save_load(fid_net, tmp_path):
    import stylebridge

    fid_net.save_pretrained(tmp_path / "inc")
    again = stylebridge.load(tmp_path / "inc")
    assert isinstance(again, InceptionFeatures) and again.config == fid_net.config and again.name == fid_net.name
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), fid_net.state_dict().values()))


# ------------------------------------------------------------------------------------------------------------------
# FID-specific pooling


def test_pool_modes():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    valid, padded = _pool3x3(x, "avg_valid"), _pool3x3(x, "avg")
    # TF / pytorch-fid: a corner averages its 4 valid pixels; torch's default divides by 9 (zeros counted).
    assert float(valid[0, 0, 0, 0]) == pytest.approx((0 + 1 + 4 + 5) / 4)
    assert float(padded[0, 0, 0, 0]) == pytest.approx((0 + 1 + 4 + 5) / 9)
    assert float(valid[0, 0, 0, 1]) == pytest.approx((0 + 1 + 2 + 4 + 5 + 6) / 6)  # edge: 6 valid pixels
    torch.testing.assert_close(valid[..., 1:-1, 1:-1], padded[..., 1:-1, 1:-1])  # interior identical
    assert float(_pool3x3(x, "max")[0, 0, 1, 1]) == 10.0


def test_fid_blocks_use_the_patched_pooling():
    fid = InceptionFeatures(FID_CONFIG)
    std = InceptionFeatures(InceptionConfig(variant="torchvision", num_classes=1000))
    names = ["Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7b",
             "Mixed_7c"]
    # pytorch-fid: FIDInceptionA ×3, FIDInceptionC ×4, FIDInceptionE_1 (avg, valid pixels), FIDInceptionE_2 (max).
    assert [getattr(fid, n).pool for n in names] == ["avg_valid"] * 8 + ["max"]
    assert [getattr(std, n).pool for n in names] == ["avg"] * 9


def test_fid_pooling_changes_block_outputs():
    torch.manual_seed(0)
    a_std, a_fid = InceptionA(8, 4, pool="avg").eval(), InceptionA(8, 4, pool="avg_valid").eval()
    a_fid.load_state_dict(a_std.state_dict())
    x = torch.rand(1, 8, 6, 6)
    with torch.no_grad():
        ys, yf = a_std(x), a_fid(x)
    torch.testing.assert_close(ys[:, :-4], yf[:, :-4])  # only the pool branch (last 4 channels) differs …
    torch.testing.assert_close(ys[:, -4:, 1:-1, 1:-1], yf[:, -4:, 1:-1, 1:-1])  # … and only on the border
    assert not torch.allclose(ys[:, -4:], yf[:, -4:])

    e_std, e_fid = InceptionE(16, pool="avg").eval(), InceptionE(16, pool="max").eval()
    e_fid.load_state_dict(e_std.state_dict())
    x = torch.rand(1, 16, 4, 4)
    with torch.no_grad():
        assert not torch.allclose(e_std(x)[:, -192:], e_fid(x)[:, -192:])


def test_fid_variant_features_differ_from_standard(files):
    # The same weights in both block structures: the patched pooling changes the features.
    path, _ = files["torchvision"]
    fid = InceptionFeatures.from_file(path, variant="fid")
    std = InceptionFeatures.from_file(path)
    x = images(1)
    f_fid, f_std = fid.features(x), std.features(x)
    assert not torch.allclose(f_fid, f_std, atol=1e-3)
    assert torch.nn.functional.cosine_similarity(f_fid, f_std).item() > 0.5  # same weights: related, not equal


# ------------------------------------------------------------------------------------------------------------------
# preprocessing and the features API


def test_prepare_matches_pytorch_fid_and_torchvision():
    x = images(2, size=37)
    x01 = (x + 1) / 2
    # pytorch-fid: [0, 1] → bilinear 299×299 (align_corners=False) → 2x - 1.
    ref = 2 * F.interpolate(x01, size=(299, 299), mode="bilinear", align_corners=False) - 1
    torch.testing.assert_close(InceptionFeatures.prepare(x), ref, rtol=0, atol=1e-6)
    # torchvision: ImageNet-normalised input, then Inception3._transform_input, is 2x - 1 as well.
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    norm = (x01 - mean[:, None, None]) / std[:, None, None]
    tv = torch.cat([norm[:, i:i + 1] * (std[i] / 0.5) + (mean[i] - 0.5) / 0.5 for i in range(3)], 1)
    torch.testing.assert_close(tv, x, rtol=0, atol=1e-5)
    assert InceptionFeatures.prepare(images(1, size=INPUT_SIZE)).shape == (1, 3, 299, 299)
    over = torch.full((1, 3, 8, 8), 1.2)  # generator overshoot: clamped like an 8-bit file would be
    assert float(InceptionFeatures.prepare(over).max()) == pytest.approx(1.0, abs=1e-6)


def test_features_shape_and_batch_independence(fid_net):
    x = torch.cat([images(1, size=40, seed=1), images(1, size=40, seed=2)])
    both = fid_net.features(x, batch_size=2)
    assert both.shape == (2, 2048) and both.dtype == torch.float32
    singles = torch.cat([fid_net.features(x[:1]), fid_net.features(x[1:])])
    torch.testing.assert_close(both, singles, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(both[0], both[1])
    assert fid_net.features(x[:0]).shape == (0, 2048)


def test_non_square_input_and_autocast(fid_net):
    x = torch.rand(1, 3, 31, 57) * 2 - 1
    plain = fid_net.features(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = fid_net.features(x)  # features are computed in float32 regardless
    assert inside.dtype == torch.float32
    torch.testing.assert_close(inside, plain, rtol=0, atol=0)
    assert fid_net.logits(x).shape == (1, 1008)


def test_stays_in_eval_mode(fid_net):
    wrapper = torch.nn.Sequential(fid_net)
    wrapper.train()
    assert not fid_net.training and not any(m.training for m in fid_net.modules())


def test_bad_images(fid_net):
    with pytest.raises(ValueError, match=r"expected images \[N, 3, H, W\]"):
        fid_net.features(torch.zeros(1, 1, 32, 32))
    with pytest.raises(ValueError, match="expected float images"):
        fid_net.features(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        fid_net.features(torch.full((1, 3, 32, 32), 200.0))
    with pytest.raises(ValueError, match="batch_size"):
        fid_net.features(torch.zeros(1, 3, 32, 32), batch_size=0)


# ------------------------------------------------------------------------------------------------------------------
# wrong files


def _one_line_error(path, **kwargs) -> str:
    with pytest.raises(CheckpointError) as info:
        InceptionFeatures.from_file(path, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg
    return msg


def test_wrong_keys_and_shapes(files, tmp_path):
    _, state = files["fid"]
    bad = dict(state)
    del bad["Mixed_6a.branch3x3.conv.weight"]
    bad["Mixed_6a.extra.weight"] = torch.zeros(1)
    bad["Mixed_5b.branch1x1.conv.weight"] = torch.zeros(64, 192, 3, 3)
    torch.save(bad, tmp_path / "bad.pth")
    msg = _one_line_error(tmp_path / "bad.pth")
    assert "missing keys [Mixed_6a.branch3x3.conv.weight]" in msg
    assert "unexpected keys [Mixed_6a.extra.weight]" in msg
    assert "Mixed_5b.branch1x1.conv.weight: checkpoint (64, 192, 3, 3) vs model (64, 192, 1, 1)" in msg


def test_wrong_files(tmp_path):
    # A different network's state dict: the variant cannot be told from it …
    other = {"conv1.weight": torch.zeros(8, 3, 3, 3), "fc.weight": torch.zeros(10, 8), "fc.bias": torch.zeros(10)}
    torch.save(other, tmp_path / "other.pth")
    assert "cannot tell the Inception-v3 variant" in _one_line_error(tmp_path / "other.pth")
    # … and forcing a variant lists the mismatch.
    msg = _one_line_error(tmp_path / "other.pth", variant="torchvision")
    assert "missing keys [Conv2d_1a_3x3.bn.bias" in msg and "(462 more)" in msg  # 470 = 94 convs × 5 entries
    assert "unexpected keys [conv1.weight]" in msg
    assert "fc.weight: checkpoint (10, 8) vs model (10, 2048)" in msg
    # Not a flat state dict.
    torch.save({"state_dict": other, "epoch": 3}, tmp_path / "nested.pth")
    assert "expected an Inception-v3 state dict" in _one_line_error(tmp_path / "nested.pth")
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    assert "got a list" in _one_line_error(tmp_path / "list.pth")
    # Not a torch file at all: refused by the restricted loader (a CheckpointError naming the file, one line).
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    _one_line_error(tmp_path / "junk.pth")
    # A pickle asking for anything outside the allow-list is refused before it runs.
    torch.save({"fc.weight": torch.zeros(1008, 2048), "when": datetime.date(2015, 12, 5)}, tmp_path / "code.pth")
    assert "refusing to load" in _one_line_error(tmp_path / "code.pth")
    with pytest.raises(FileNotFoundError):
        InceptionFeatures.from_file(tmp_path / "missing.pth")
