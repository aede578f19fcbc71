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
