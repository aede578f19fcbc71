"""The domain network: API shapes and properties, save/load, training that resumes exactly."""

from __future__ import annotations

import json

import pytest
import torch

from stylebridge.data import synthfaces as sf
from stylebridge.models.domain import STAGES, DomainNetConfig, DomainNetwork
from stylebridge.train.domain_net import load_domain_config, synthfaces_heads, train_domain_network

TINY = dict(resolution=32, widths=(8, 8, 16, 16), embed_dim=8)


@pytest.fixture(scope="module")
def net() -> DomainNetwork:
    torch.manual_seed(0)
    return DomainNetwork(DomainNetConfig(heads=synthfaces_heads(), **TINY)).eval()


@pytest.fixture(scope="module")
def faces() -> torch.Tensor:
    return sf.render_seeds([0, 1, 2], 64, outputs=("image",))["image"]


def test_api_shapes(net, faces):
    with torch.no_grad():
        feats = net.features(faces)
        assert list(feats) == list(STAGES)
        assert feats["stage1"].shape == (3, 8, 16, 16) and feats["stage4"].shape == (3, 16, 2, 2)
        assert net(faces).shape == (3, net.config.head_size)
        pred = net.predict(faces)
        assert set(pred) == set(sf.ATTRIBUTE_NAMES)
        assert pred["glasses"].dtype == torch.int64 and 0 <= float(pred["smile"].min()) <= 1
        assert net.fd_features(faces).shape == (3, 16 + 8)
        d = net.distance(faces, faces.flip(0))
        assert d.shape == (3,) and float(d[1]) == pytest.approx(0, abs=1e-6) and float(d[0]) > 0
        s = net.similarity(faces, faces)
        assert torch.allclose(s, torch.ones(3), atol=1e-5)
    with pytest.raises(KeyError, match="unknown layers"):
        net.features(faces, ["stage9"])
    with pytest.raises(ValueError, match="expected images"):
        net(torch.zeros(1, 1, 32, 32))


def test_save_load_round_trip(net, faces, tmp_path):
    import stylebridge

    net.save_pretrained(tmp_path / "dn")
    again = stylebridge.load(tmp_path / "dn")
    assert isinstance(again, DomainNetwork) and again.config == net.config
    with torch.no_grad():
        torch.testing.assert_close(again(faces), net(faces), atol=0, rtol=0)


def test_training_resumes_exactly(tmp_path):
    torch.set_num_threads(1)  # fixed reduction order for bitwise comparison
    cfg = load_domain_config(None, ["optim.batch=4", "optim.steps=4", "data.resolution=32", "log.checkpoint_every=2",
                                    "model.widths=[8, 8, 16, 16]", "model.embed_dim=8", "optim.seed=3"])
    straight = train_domain_network(tmp_path / "a", cfg, progress=False)
    train_domain_network(tmp_path / "b", cfg, progress=False, max_steps_this_run=2)
    assert not (tmp_path / "b" / "model").exists()  # unfinished runs do not publish a model
    resumed = train_domain_network(tmp_path / "b", cfg, resume=True, progress=False)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    logged = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert (tmp_path / "a" / "model" / "model.safetensors").is_file()
    assert [r["step"] for r in logged if "loss_attr" in r] == [4]  # log.every 25: only the last step


def test_region_networks_feed_the_heads_only(net, faces):
    """Region networks change the heads' inputs, never the features, distances or similarities (so every Fréchet
    distance measured with the trunk stays valid when regions are trained on top of it)."""
    torch.manual_seed(1)
    cfg = DomainNetConfig(heads=synthfaces_heads(), regions=((0.25, 0.625, 0.15, 0.85), (0.5, 0.85, 0.2, 0.8)),
                          region_widths=(8, 8, 16), region_pool=2, **TINY)
    regional = DomainNetwork(cfg).eval()
    own = regional.state_dict()
    regional.load_state_dict({**own, **{k: v for k, v in net.state_dict().items() if not k.startswith("head.")}})
    assert cfg.head_inputs == net.config.head_inputs + 2 * 16 * 2 * 2
    with torch.no_grad():
        torch.testing.assert_close(regional.fd_features(faces), net.fd_features(faces), atol=0, rtol=0)
        torch.testing.assert_close(regional.distance(faces, faces.flip(0)), net.distance(faces, faces.flip(0)),
                                   atol=0, rtol=0)
        before = regional(faces)
        assert before.shape == (3, cfg.head_size)
        # the mouth region's network sees the mouth: painting over the mouth changes its features, not the upper's
        x = faces.clone()
        x[:, :, 42:52, 16:48] = 1.0  # rows 21–26, cols 8–24 after the resize to 32 px: inside the mouth box only
        prepared, changed = regional._prepare(faces), regional._prepare(x)
        changed[:, :, :21] = prepared[:, :, :21]  # the resize blurs the paint a row upwards: keep the upper rows
        a, b = regional._region_features(prepared), regional._region_features(changed)
        assert torch.equal(a[0], b[0])
        assert not torch.allclose(a[1], b[1])
        regional.regions[1].convs[0].weight.add_(0.5)  # the heads do depend on the regions
        assert not torch.allclose(regional(faces), before)
    with pytest.raises(ValueError, match="a region is"):
        DomainNetConfig(regions=((0.5, 0.2, 0.0, 1.0),))


def test_freeze_trunk_trains_regions_and_heads_only(net, tmp_path):
    torch.set_num_threads(1)
    net.save_pretrained(tmp_path / "start")
    cfg = load_domain_config(None, ["optim.batch=4", "optim.steps=2", "data.resolution=32",
                                    "model.widths=[8, 8, 16, 16]", "model.embed_dim=8", "model.freeze_trunk=true",
                                    f"model.init_from={tmp_path / 'start'}", "model.regions=[[0.2, 0.7, 0.1, 0.9]]",
                                    "model.region_widths=[8, 8]",
                                    "loss.head_weights=['smile:4', 'glasses:2']"])
    trained = train_domain_network(tmp_path / "run", cfg, progress=False)
    start = net.state_dict()
    for k, v in trained.state_dict().items():
        if k.startswith(("head.", "regions.")):
            continue
        assert torch.equal(v, start[k]), k  # the trunk and embedding did not move
    from stylebridge.train.config import ConfigError

    for bad in ("['smile']", "['nosuch:2']", "['smile:-1']"):
        with pytest.raises(ConfigError, match="head_weights"):
            train_domain_network(tmp_path / f"bad{len(bad)}", load_domain_config(None, [
                "optim.batch=4", "optim.steps=1", "data.resolution=32", "model.widths=[8, 8, 16, 16]",
                "model.embed_dim=8", f"loss.head_weights={bad}"]), progress=False)
    with pytest.raises(ValueError, match="freeze_trunk needs model"):
        train_domain_network(tmp_path / "nofrom", load_domain_config(None, [
            "optim.batch=4", "optim.steps=1", "data.resolution=32", "model.widths=[8, 8, 16, 16]",
            "model.embed_dim=8", "model.freeze_trunk=true"]), progress=False)
