"""Loading NVlabs stylegan2-ada-pytorch network snapshots (``network-snapshot-*.pkl``) safely and exactly.

The snapshots are built by ``tests/nvlabs_fixture.py`` with plain ``pickle``, structured like the ones
``training/training_loop.py`` writes (persistent objects carrying ``module_src``, EasyDict init kwargs, numpy
gains, an AugmentPipe), from stylebridge models whose weights are mapped onto NVlabs names.
"""

from __future__ import annotations

import math
import pickle
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import stylebridge
from stylebridge import CheckpointError, StyleGAN2Discriminator, StyleGAN2Generator, UnsafePickleError
from stylebridge.core.safe_pickle import PickledObject, load_pickle
from stylebridge.formats.loading import describe

try:
    import nvlabs_fixture as nvf
except ImportError:  # tests/ is not on sys.path when pytest runs this file from tests/io/
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
    import nvlabs_fixture as nvf

NVLABS_TOP_LEVEL = ("torch_utils", "dnnlib", "training")
ATOL = 1e-5


def _nvlabs_modules() -> list[str]:
    """Modules an NVlabs unpickler would have imported or created (``_src_to_module``)."""
    return sorted(n for n in sys.modules
                  if n.split(".")[0] in NVLABS_TOP_LEVEL or n.startswith("_imported_module_"))


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory) -> nvf.Snapshot:
    return nvf.write_snapshot(tmp_path_factory.mktemp("nvlabs") / "network-snapshot-000000.pkl")


# ------------------------------------------------------------------------------------------------------------------
# The fixture really is an NVlabs snapshot


def test_fixture_has_the_structure_of_an_nvlabs_snapshot(snapshot):
    assert not _nvlabs_modules(), "the fixture must remove its stand-in modules after dumping"
    names, metas = nvf.inspect_pickle(snapshot.path)
    numpy_globals = {n for n in names if n.startswith("numpy.")}
    assert names - numpy_globals == {
        "torch_utils.persistence._reconstruct_persistent_obj", "dnnlib.util.EasyDict", "collections.OrderedDict",
        "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter", "torch.storage._load_from_bytes",
    }
    assert numpy_globals <= {"numpy.dtype", "numpy._core.multiarray.scalar", "numpy.core.multiarray.scalar"}
    assert {m["class_name"] for m in metas} == {
        "Generator", "MappingNetwork", "SynthesisNetwork", "SynthesisBlock", "SynthesisLayer", "ToRGBLayer",
        "FullyConnectedLayer", "Discriminator", "DiscriminatorBlock", "Conv2dLayer", "DiscriminatorEpilogue",
        "MinibatchStdLayer", "AugmentPipe",
    }
    for meta in metas:
        assert set(meta) == {"type", "version", "module_src", "class_name", "state"}
        assert meta["type"] == "class" and meta["version"] == nvf.PERSISTENCE_VERSION
        assert str(snapshot.marker) in meta["module_src"]
        assert {"_parameters", "_buffers", "_modules", "_init_args", "_init_kwargs", "training"} <= set(meta["state"])
    assert str(snapshot.marker).encode() in snapshot.path.read_bytes()

    data = load_pickle(snapshot.path)  # stylebridge's restricted unpickler: records, nothing built
    assert list(data) == ["training_set_kwargs", "G", "D", "G_ema", "augment_pipe"]
    assert data["training_set_kwargs"]["resolution"] == snapshot.spec.resolution
    G = data["G_ema"]
    assert isinstance(G, PickledObject) and G.class_name == "Generator"
    assert G.state["training"] is False
    kwargs = G.state["_init_kwargs"]
    assert isinstance(kwargs["synthesis_kwargs"], dict) and kwargs["synthesis_kwargs"]["channel_max"] == 16
    mapping = G.state["_modules"]["mapping"]
    fc0 = mapping.state["_modules"]["fc0"]
    assert fc0.state["bias_gain"] == 0.01 and math.isclose(fc0.state["weight_gain"], 0.01 / math.sqrt(32))
    assert fc0.state["_parameters"]["weight"].requires_grad is False
    assert torch.equal(mapping.state["_buffers"]["w_avg"], snapshot.tensors["G_ema"]["mapping.w_avg"])
    b8 = G.state["_modules"]["synthesis"].state["_modules"]["b8"]
    assert b8.state["architecture"] == "skip"
    assert b8.state["_modules"]["conv1"].state["_buffers"]["noise_const"].shape == (8, 8)
    assert b8.state["_modules"]["conv1"].state["_parameters"]["noise_strength"].shape == ()
    assert data["augment_pipe"].class_name == "AugmentPipe"
    assert data["augment_pipe"].state["_buffers"]["p"].item() == pytest.approx(0.25)


# ------------------------------------------------------------------------------------------------------------------
# Loading: outputs equal the source networks


def _check_generator(loaded: StyleGAN2Generator, src: StyleGAN2Generator) -> None:
    assert isinstance(loaded, StyleGAN2Generator)
    assert not loaded.training
    assert loaded.config == src.config
    assert torch.equal(loaded.w_avg, src.w_avg) and loaded.w_avg.abs().sum() > 0
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(2, src.z_dim, generator=gen)
    with torch.no_grad():
        assert _max_diff(loaded.map(z), src.map(z)) < ATOL
        assert _max_diff(loaded.map(z, truncation_psi=0.5), src.map(z, truncation_psi=0.5)) < ATOL
        w = torch.randn(2, src.num_ws, src.w_dim, generator=gen)  # W+: a distinct w per layer
        assert _max_diff(loaded.synthesize(w, noise_mode="const"), src.synthesize(w, noise_mode="const")) < ATOL


def _check_discriminator(loaded: StyleGAN2Discriminator, src: StyleGAN2Discriminator) -> None:
    assert isinstance(loaded, StyleGAN2Discriminator)
    assert not loaded.training
    assert loaded.config == src.config
    img = torch.randn(4, src.config.img_channels, src.config.resolution, src.config.resolution,
                      generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert _max_diff(loaded(img), src(img)) < ATOL


def test_load_defaults_to_g_ema(snapshot):
    _check_generator(stylebridge.load(snapshot.path), snapshot.sources["G_ema"])


def test_load_part_g_is_the_training_generator(snapshot):
    g = stylebridge.load(snapshot.path, part="g")
    _check_generator(g, snapshot.sources["G"])
    g_ema = stylebridge.load(snapshot.path, part="g_ema")
    assert not torch.equal(g.style[1].weight, g_ema.style[1].weight)


def test_load_part_d(snapshot):
    d = stylebridge.load(snapshot.path, part="d")
    assert d.config.mbstd_group_size == snapshot.spec.mbstd_group_size == 2
    _check_discriminator(d, snapshot.sources["D"])


def test_describe_reports_the_snapshot(snapshot):
    model, info = describe(snapshot.path)
    assert isinstance(model, StyleGAN2Generator)
    assert info.format == "nvlabs-pickle"
    assert info.parts == ("g_ema", "g", "d")


@pytest.mark.parametrize("spec", [
    nvf.Spec(z_dim=24, w_dim=32),  # fc0 maps z_dim → w_dim
    nvf.Spec(conv_clamp=256),  # train.py's default (fp16 training)
    nvf.Spec(resolution=16, mapping_layers=3, channel_base=128, channel_max=16, mbstd_group_size=4),
], ids=["z_dim!=w_dim", "conv_clamp=256", "16px-3-mapping-layers"])
def test_variants_round_trip(tmp_path, spec):
    snap = nvf.write_snapshot(tmp_path / "variant.pkl", spec)
    g = stylebridge.load(snap.path)
    assert g.config.z_dim == spec.z_dim and g.config.w_dim == spec.w_dim
    assert g.config.mapping_layers == spec.mapping_layers
    assert g.config.conv_clamp == spec.conv_clamp
    _check_generator(g, snap.sources["G_ema"])
    d = stylebridge.load(snap.path, part="d")
    assert d.config.conv_clamp == spec.conv_clamp
    _check_discriminator(d, snap.sources["D"])


@pytest.mark.parametrize("protocol", [
    2,  # Python 2 names (__builtin__) and bytes stored through _codecs.encode
    3,  # Python 3.7's default (NVlabs' recommended Python)
    4,
    5,
])
def test_pickle_protocols(tmp_path, protocol):
    snap = nvf.write_snapshot(tmp_path / f"p{protocol}.pkl", protocol=protocol)
    assert snap.path.read_bytes()[:2] == bytes([0x80, protocol])
    _check_generator(stylebridge.load(snap.path), snap.sources["G_ema"])


# ------------------------------------------------------------------------------------------------------------------
# Semantics checked against NVlabs' formulas (independent of the round trip through stylebridge's own model)


def _nvlabs_mapping(nv: dict[str, torch.Tensor], z: torch.Tensor, num_layers: int, lr: float = 0.01) -> torch.Tensor:
    """MappingNetwork.forward (c_dim=0, no truncation): normalize_2nd_moment, then FullyConnectedLayer + lrelu."""
    x = z * (z.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()
    for i in range(num_layers):
        weight, bias = nv[f"mapping.fc{i}.weight"], nv[f"mapping.fc{i}.bias"]
        x = x.matmul((weight * (lr / math.sqrt(weight.shape[1]))).t())
        x = F.leaky_relu(x + bias * lr, 0.2) * math.sqrt(2)
    return x


def _nvlabs_b4(nv: dict[str, torch.Tensor], ws: torch.Tensor, conv_clamp: float | None) -> tuple[torch.Tensor, ...]:
    """SynthesisBlock b4 in eval mode, fp32, noise_mode='const': (conv1 output, torgb output).

    SynthesisLayer: styles = affine(w); demodulated 3×3 conv; + noise_const * noise_strength;
    bias_act(lrelu, gain=sqrt(2), clamp=conv_clamp). ToRGBLayer: styles = affine(w) * 1/sqrt(C); 1×1 conv without
    demodulation; bias_act(linear, clamp=conv_clamp). bias_act clamps after the gain.
    """
    w_dim = ws.shape[-1]

    def affine(prefix: str, w: torch.Tensor) -> torch.Tensor:  # FullyConnectedLayer, lr_multiplier=1
        return w.matmul((nv[f"{prefix}.affine.weight"] / math.sqrt(w_dim)).t()) + nv[f"{prefix}.affine.bias"]

    n = ws.shape[0]
    x = nv["synthesis.b4.const"].unsqueeze(0).repeat(n, 1, 1, 1)
    p = "synthesis.b4.conv1"
    wgt = nv[f"{p}.weight"].unsqueeze(0) * affine(p, ws[:, 0]).reshape(n, 1, -1, 1, 1)
    wgt = wgt * (wgt.square().sum(dim=[2, 3, 4], keepdim=True) + 1e-8).rsqrt()
    x = torch.cat([F.conv2d(x[i:i + 1], wgt[i], padding=1) for i in range(n)])
    x = x + nv[f"{p}.noise_const"] * nv[f"{p}.noise_strength"]
    x = F.leaky_relu(x + nv[f"{p}.bias"].reshape(1, -1, 1, 1), 0.2) * math.sqrt(2)
    if conv_clamp is not None:
        x = x.clamp(-conv_clamp, conv_clamp)
    p = "synthesis.b4.torgb"
    styles = affine(p, ws[:, 1]) * (1 / math.sqrt(x.shape[1]))
    wgt = nv[f"{p}.weight"].unsqueeze(0) * styles.reshape(n, 1, -1, 1, 1)
    img = torch.cat([F.conv2d(x[i:i + 1], wgt[i]) for i in range(n)]) + nv[f"{p}.bias"].reshape(1, -1, 1, 1)
    if conv_clamp is not None:
        img = img.clamp(-conv_clamp, conv_clamp)
    return x, img


def test_mapping_and_first_block_follow_nvlabs_formulas(snapshot):
    g = stylebridge.load(snapshot.path)
    nv = snapshot.tensors["G_ema"]
    gen = torch.Generator().manual_seed(3)
    z = torch.randn(2, g.z_dim, generator=gen)
    ws = torch.randn(2, g.num_ws, g.w_dim, generator=gen)
    with torch.no_grad():
        torch.testing.assert_close(g.map(z), _nvlabs_mapping(nv, z, snapshot.spec.mapping_layers),
                                   rtol=1e-5, atol=1e-5)
        feats = g.synthesize_with_features(ws, ["b4.conv1", "b4.img"], noise_mode="const").features
    x_ref, img_ref = _nvlabs_b4(nv, ws, None)
    torch.testing.assert_close(feats["b4.conv1"], x_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(feats["b4.img"], img_ref, rtol=1e-5, atol=1e-5)


def test_generator_conv_clamp_follows_nvlabs(tmp_path):
    spec = nvf.Spec(conv_clamp=256)
    src = nvf.make_generator(spec)
    with torch.no_grad():
        src.input.input.mul_(1000.0)  # activations far above the clamp
    snap = nvf.write_snapshot(tmp_path / "clamp.pkl", spec, G_ema=src)
    g = stylebridge.load(snap.path)
    ws = torch.randn(2, g.num_ws, g.w_dim, generator=torch.Generator().manual_seed(4))
    convs = [n for n in g.feature_names if ".conv" in n]
    with torch.no_grad():
        feats = g.synthesize_with_features(ws, [*convs, "b4.img"], noise_mode="const").features
    assert feats["b4.conv1"].abs().max() > 200  # the clamp is reached
    x_ref, img_ref = _nvlabs_b4(snap.tensors["G_ema"], ws, 256.0)
    torch.testing.assert_close(feats["b4.conv1"], x_ref, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(feats["b4.img"], img_ref, rtol=1e-5, atol=1e-3)
    for name in convs:  # every SynthesisLayer output lies within ±conv_clamp in NVlabs
        assert feats[name].abs().max() <= 256 + 1e-3, name


def test_discriminator_conv_clamp_follows_nvlabs(tmp_path):
    spec = nvf.Spec(conv_clamp=256)
    snap = nvf.write_snapshot(tmp_path / "clamp.pkl", spec)
    d = stylebridge.load(snap.path, part="d")
    # NVlabs Conv2dLayer outputs fromrgb, conv0 and epilogue conv are clamped to ±conv_clamp (gain=1).
    watched = {"fromrgb": d.convs[0], "b4.conv": d.final_conv}
    watched.update({f"block{j}.conv0": d.convs[j].conv1 for j in range(1, len(d.convs))})
    peaks: dict[str, float] = {}
    hooks = [m.register_forward_hook(lambda mod, inp, out, name=name: peaks.__setitem__(name, out.abs().max().item()))
             for name, m in watched.items()]
    img = 1000.0 * torch.randn(4, 3, spec.resolution, spec.resolution, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        d(img)
    for h in hooks:
        h.remove()
    assert peaks["fromrgb"] > 200
    assert all(v <= 256 + 1e-3 for v in peaks.values()), peaks


# ------------------------------------------------------------------------------------------------------------------
# Safety: nothing from the pickle is imported or executed


def test_loading_never_imports_nvlabs_modules_or_runs_module_src(snapshot):
    assert not snapshot.marker.exists()
    before = set(sys.modules)
    for part in (None, "g_ema", "g", "d"):
        stylebridge.load(snapshot.path, part=part)
    describe(snapshot.path)
    load_pickle(snapshot.path)
    assert not _nvlabs_modules()
    assert not {n for n in set(sys.modules) - before if n.startswith("_imported_module_")}
    assert not snapshot.marker.exists(), "the module_src embedded in the pickle was executed"


@pytest.mark.parametrize("kind", ["os.system", "builtins.eval", "subprocess.Popen"])
def test_smuggled_callable_is_refused(tmp_path, kind):
    # The payload is live: calling what it reduces to creates its marker file.
    probe = tmp_path / "probe"
    func, args = nvf.make_payload(kind, probe)[0].__reduce__()
    result = func(*args)
    if hasattr(result, "wait"):
        result.wait()
    assert probe.exists()

    marker = tmp_path / "PAYLOAD_RAN"
    payload, dotted = nvf.make_payload(kind, marker)
    snap = nvf.write_snapshot(tmp_path / "evil.pkl", payload=payload)
    assert dotted in nvf.inspect_pickle(snap.path)[0]
    for part in (None, "d"):
        with pytest.raises(UnsafePickleError) as info:
            stylebridge.load(snap.path, part=part)
        msg = str(info.value)
        assert str(snap.path) in msg
        assert dotted in msg
    if kind == "subprocess.Popen":
        time.sleep(0.3)  # a spawned process would need a moment to create the file
    assert not marker.exists(), "the smuggled callable ran"
    assert not snap.marker.exists()
    assert not _nvlabs_modules()


# ------------------------------------------------------------------------------------------------------------------
# Unsupported networks give clear errors


@pytest.mark.parametrize("spec, part, words", [
    (nvf.Spec(c_dim=5), None, ("conditional", "c_dim=5")),
    (nvf.Spec(c_dim=5), "d", ("conditional", "c_dim=5")),
    (nvf.Spec(g_architecture="orig"), None, ("architecture", "'orig'")),
    (nvf.Spec(g_architecture="resnet"), "g", ("architecture", "'resnet'")),
    (nvf.Spec(d_architecture="orig"), "d", ("architecture", "'orig'")),
], ids=["conditional-G", "conditional-D", "orig-G", "resnet-G", "orig-D"])
def test_unsupported_networks_raise_checkpoint_error(tmp_path, spec, part, words):
    snap = nvf.write_snapshot(tmp_path / "unsupported.pkl", spec)
    with pytest.raises(CheckpointError) as info:
        stylebridge.load(snap.path, part=part)
    assert not isinstance(info.value, UnsafePickleError)
    msg = str(info.value)
    assert str(snap.path) in msg
    for word in words:
        assert word in msg
    assert not snap.marker.exists()


def test_pickle_without_networks_is_rejected(tmp_path):
    path = tmp_path / "not-a-snapshot.pkl"
    with open(path, "wb") as f:
        pickle.dump({"training_set_kwargs": {"path": "x"}, "step": 3}, f)
    with pytest.raises(CheckpointError, match="not an NVlabs network snapshot"):
        stylebridge.load(path)
