"""pSp / e4e training on a tiny frozen generator: losses fall, the run folder, exact resume, torchrun, folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import stylebridge
from stylebridge import StyleGAN2Config, StyleGAN2Generator
from stylebridge.data.export import export_synthfaces
from stylebridge.models.e4e import E4E, PROGRESSIVE_INFERENCE
from stylebridge.models.irse import IRSEBackbone, IRSEBackboneConfig
from stylebridge.models.psp import PSP
from stylebridge.train.config import ConfigError
from stylebridge.train.encoder import EncoderTask, load_encoder_config, train_encoder
from torchrun_helper import run_torchrun

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "encoder"


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)  # fixed reduction order: bitwise-equal runs
    yield


@pytest.fixture(scope="module")
def generator(tmp_path_factory) -> Path:
    """A random 16-px StyleGAN2 (6 W+ rows, w 32) saved natively, as a user's generator would be."""
    torch.manual_seed(0)
    G = StyleGAN2Generator(StyleGAN2Config(resolution=16, z_dim=32, w_dim=32, mapping_layers=2,
                                           channels=(32, 32, 16)))
    G.compute_w_avg(1000)
    path = tmp_path_factory.mktemp("gen") / "G"
    G.save_pretrained(path)
    return path


def _cfg(name: str, generator: Path, *overrides: str):
    return load_encoder_config(CONFIGS / name, [f"model.generator={generator}", *overrides])


def _log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def _ckpt(run: Path) -> dict:
    return torch.load(sorted(run.glob("checkpoint-*.pt"))[-1], map_location="cpu", weights_only=True)


def test_tiny_psp_trains_writes_a_run_folder_and_a_native_model(tmp_path, generator):
    run = tmp_path / "run"
    model = train_encoder(_cfg("tiny-psp.yaml", generator), run, progress=False)
    assert sorted(p.name for p in run.glob("checkpoint-*.pt")) == ["checkpoint-0000003.pt", "checkpoint-0000006.pt"]
    assert (run / "config.yaml").is_file() and (run / "samples" / "step0000006.png").is_file()
    log = _log(run)
    start, rows = log[0], log[1:]
    assert start["event"] == "start" and start["perceptual_network"].startswith("synthfaces-domain distance")
    assert start["identity_network"].startswith("synthfaces-domain similarity")
    assert [r["step"] for r in rows] == [2, 4, 6]
    assert rows[-1]["loss_l2"] < rows[0]["loss_l2"] and rows[-1]["loss"] < rows[0]["loss"]
    loaded = stylebridge.load(run / "model")
    assert isinstance(loaded, PSP) and isinstance(model, PSP)
    meta = json.loads((run / "model" / "config.json").read_text())["metadata"]
    assert meta["perceptual_network"] == start["perceptual_network"] and meta["steps"] == 6
    G = stylebridge.load(generator)
    torch.testing.assert_close(loaded.latent_avg, G.w_avg[None].expand(6, -1))  # codes start from w_avg
    for k, v in G.state_dict().items():  # the decoder stayed frozen
        assert torch.equal(loaded.decoder.state_dict()[k], v), k
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, resize=False), model(x, resize=False))


def test_tiny_e4e_progressive_stages_discriminator_and_exact_resume(tmp_path, generator):
    cfg = _cfg("tiny-e4e.yaml", generator, "log.every=1")
    model = train_encoder(cfg, tmp_path / "a", progress=False)
    rows = _log(tmp_path / "a")[1:]
    assert [r["stage"] for r in rows] == [0, 0, 1, 2, 3, 4]  # progressive_start 2, one delta per step
    assert rows[1]["loss_delta"] == 0 and rows[-1]["loss_delta"] > 0  # regulariser on the active deltas
    assert all("d_real_loss" in r and "loss_adv" in r for r in rows)
    assert ["d_r1" in r for r in rows] == [True, False] * 3  # lazy R1 every d_reg_every = 2 steps
    assert rows[-1]["loss_l2"] < rows[0]["loss_l2"]
    assert isinstance(model, E4E) and model.encoder.progressive_stage == PROGRESSIVE_INFERENCE
    train_encoder(cfg, tmp_path / "b", progress=False, max_steps_this_run=3)
    assert not (tmp_path / "b" / "model").exists()
    train_encoder(cfg, tmp_path / "b", resume=True, progress=False)
    a, b = _ckpt(tmp_path / "a"), _ckpt(tmp_path / "b")
    assert a["step"] == b["step"] == 6
    for part in ("encoder", "D"):
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), f"{part}.{k}"
    assert torch.equal(a["pool_fake"]["codes"], b["pool_fake"]["codes"])
    la, lb = {r["step"]: r for r in rows}, {r["step"]: r for r in _log(tmp_path / "b")[1:] if "step" in r}
    assert la[6]["loss"] == lb[6]["loss"] and la[6]["d_loss"] == lb[6]["d_loss"]


def test_config_errors(generator):
    with pytest.raises(ConfigError, match=r"unknown keys \['lpips'\]"):
        _cfg("tiny-psp.yaml", generator, "loss.lpips=1")
    with pytest.raises(ValueError, match=r"needs model\.arch: e4e"):
        _cfg("tiny-psp.yaml", generator, "loss.progressive_start=10")
    with pytest.raises(ValueError, match=r"data\.task must be one of"):
        _cfg("tiny-psp.yaml", generator, "data.task=edit:smile")
    for name in ("synthfaces-64-psp-inversion", "synthfaces-64-e4e-inversion", "synthfaces-64-psp-sketch"):
        cfg = load_encoder_config(CONFIGS / f"{name}.yaml")
        assert cfg.model.generator == "synthfaces-64" and cfg.data.source == "synthfaces"


def test_paired_folders_sketch_and_arcface_trunk_init(tmp_path, generator):
    export_synthfaces(tmp_path / "data", 6, 16, extras=("sketch",), progress=False)
    torch.manual_seed(0)
    arc = IRSEBackbone(IRSEBackboneConfig(input_width=8, widths=(8, 8, 16, 16), se_reduction=4, embed_dim=8))
    torch.save(arc.state_dict(), tmp_path / "model_ir_se50.pth")
    cfg = _cfg("tiny-psp.yaml", generator, "data.task=sketch", f"data.source={tmp_path / 'data' / 'sketches'}",
               f"data.targets={tmp_path / 'data' / 'images'}", "optim.steps=1", "log.grid=2", "loss.identity=0",
               f"model.init_from={tmp_path / 'model_ir_se50.pth'}")
    task = EncoderTask(cfg)
    task.setup()  # the model as training starts it
    model = task.model
    assert model.config.encoder.in_channels == 1
    own = model.encoder.state_dict()
    assert torch.equal(own["body.5.res_layer.1.weight"], arc.state_dict()["body.5.res_layer.1.weight"])
    assert own["input_layer.0.weight"].shape[1] == 1  # a 1-channel input keeps its own input layer (as pSp)
    cfg = _cfg("tiny-psp.yaml", generator, "data.task=sketch", f"data.source={tmp_path / 'data' / 'sketches'}",
               f"data.targets={tmp_path / 'data' / 'images'}", "optim.steps=2", "log.grid=2", "loss.identity=0")
    train_encoder(cfg, tmp_path / "run2", progress=False)
    assert (tmp_path / "run2" / "samples" / "step0000002.png").is_file()
    meta = json.loads((tmp_path / "run2" / "model" / "config.json").read_text())["metadata"]
    assert meta["identity_network"] == "none" and meta["task"] == "sketch"


def _env() -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2] / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.mark.integration
@pytest.mark.parametrize("config,extra", [("tiny-psp.yaml", []),
                                          # ReStyle: random iteration counts drawn alike on every rank
                                          ("tiny-restyle-e4e.yaml", ["loss.w_discriminator=0"])])
def test_torchrun_two_processes_match_one_process(tmp_path, generator, config, extra):
    script = tmp_path / "run.py"
    script.write_text("import sys\nimport torch\nfrom stylebridge.train.encoder import load_encoder_config, "
                      "train_encoder\ntorch.set_num_threads(1)\ncfg = load_encoder_config(sys.argv[1], sys.argv[3:])\n"
                      "train_encoder(cfg, sys.argv[2], progress=False)\n")
    overrides = [f"model.generator={generator}", "optim.steps=2", "log.checkpoint_every=2", "log.sample_every=2",
                 *extra]
    run_torchrun([str(script), str(CONFIGS / config), str(tmp_path / "ddp"), *overrides], env=_env(),
                 out=tmp_path / "ddp")
    assert json.loads((tmp_path / "ddp" / "ranks.json").read_text()) == {"world": 2, "max_param_diff": 0.0}
    subprocess.run([sys.executable, str(script), str(CONFIGS / config), str(tmp_path / "one"), *overrides],
                   check=True, timeout=300, env=_env())
    a, b = _ckpt(tmp_path / "ddp"), _ckpt(tmp_path / "one")
    for k in a["encoder"]:  # global-batch BatchNorm statistics, global random draws: the same training
        torch.testing.assert_close(a["encoder"][k], b["encoder"][k], atol=1e-4, rtol=1e-4, msg=k)


def test_tiny_restyle_e4e_random_iterations_exact_resume_and_init_from_e4e(tmp_path, generator):
    from stylebridge.models.restyle import ReStyle

    cfg = _cfg("tiny-restyle-e4e.yaml", generator, "log.every=1")
    model = train_encoder(cfg, tmp_path / "a", progress=False)
    rows = _log(tmp_path / "a")[1:]
    iters = [r["iters"] for r in rows]
    assert all(1 <= k <= 3 for k in iters) and len(set(iters)) > 1  # a random count per step
    assert all("loss_first" in r and "d_real_loss" in r for r in rows)
    assert isinstance(model, ReStyle) and model.config.n_iters == 3 and model.config.encoder.in_channels == 6
    loaded = stylebridge.load(tmp_path / "a" / "model")
    assert isinstance(loaded, ReStyle) and loaded.base == "e4e"
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        it = loaded.iterate(x)
        assert len(it.w_plus) == 3 and torch.equal(loaded.encode(x), it.w_plus[-1])
    # exact resume
    train_encoder(cfg, tmp_path / "b", progress=False, max_steps_this_run=3)
    train_encoder(cfg, tmp_path / "b", resume=True, progress=False)
    a, b = _ckpt(tmp_path / "a"), _ckpt(tmp_path / "b")
    for k in a["encoder"]:
        assert torch.equal(a["encoder"][k], b["encoder"][k]), k
    # a gradual ReStyle-e4e starts from an e4e: its first iteration equals the e4e's codes
    e4e = train_encoder(_cfg("tiny-e4e.yaml", generator, "optim.steps=2"), tmp_path / "e4e", progress=False)
    task = EncoderTask(_cfg("tiny-restyle-e4e.yaml", generator, "model.encoder_type=gradual",
                            f"model.init_from={tmp_path / 'e4e' / 'model'}"))
    task.setup()
    restyle = task.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(restyle.step(x, None, None), e4e.eval().encode(x))
        assert not torch.allclose(restyle.iterate(x, 2).w_plus[-1], e4e.encode(x))


def test_freeze_batchnorm_keeps_running_statistics(generator):
    for freeze in (True, False):
        task = EncoderTask(_cfg("tiny-restyle-e4e.yaml", generator, f"model.freeze_batchnorm={str(freeze).lower()}",
                                "optim.steps=2"))
        task.setup()
        before = {k: v.clone() for k, v in task.model.encoder.state_dict().items() if "running_mean" in k}
        task.train_step(0)
        task.grid()  # the preview switches to eval and back
        task.train_step(1)
        after = task.model.encoder.state_dict()
        same = all(torch.equal(v, after[k]) for k, v in before.items())
        assert same == freeze
        bns = [m for m in task.model.encoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        assert all(m.training != freeze for m in bns) and task.model.encoder.training
