"""StyleGAN2 training: the tiny config trains, resumes exactly, runs under 2-process torchrun, stops cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from stylebridge.train.augment import AdaptiveP, augment
from stylebridge.train.config import ConfigError
from stylebridge.train.gan import load_gan_config, train_gan
from torchrun_helper import run_torchrun

TINY = Path(__file__).resolve().parents[2] / "configs" / "gan" / "tiny.yaml"


def _ckpt(run: Path) -> dict:
    return torch.load(sorted(run.glob("checkpoint-*.pt"))[-1], map_location="cpu", weights_only=True)


def _log(run: Path) -> list[dict]:
    """The step records (not the start / resume event records)."""
    recs = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return [r for r in recs if "event" not in r]


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)  # fixed reduction order: bitwise-equal runs
    yield


def test_tiny_config_trains_and_writes_a_run_folder(tmp_path):
    cfg = load_gan_config(TINY)
    G = train_gan(cfg, tmp_path / "run", progress=False)
    run = tmp_path / "run"
    assert sorted(p.name for p in run.glob("checkpoint-*.pt")) == ["checkpoint-0000004.pt", "checkpoint-0000008.pt"]
    assert (run / "config.yaml").is_file() and (run / "samples" / "step0000008.png").is_file()
    assert (run / "G_ema" / "config.json").is_file()
    # w_avg follows the mapped w during training (NVlabs), so mid-run checkpoints truncate towards the centre
    ck4 = torch.load(run / "checkpoint-0000004.pt", map_location="cpu", weights_only=True)
    assert float(ck4["G"]["w_avg"].abs().sum()) > 0 and torch.equal(ck4["G"]["w_avg"], ck4["G_ema"]["w_avg"])
    log = _log(run)
    assert [r["step"] for r in log] == [2, 4, 6, 8] and all(torch.isfinite(torch.tensor(r["loss_d"])) for r in log)
    with torch.no_grad():
        assert G(torch.randn(2, G.z_dim)).shape == (2, 3, 16, 16)


def test_training_without_noise_keeps_noise_strengths_at_zero(tmp_path):
    cfg = load_gan_config(TINY, ["model.noise=false", "optim.steps=4", "augment.kind=none"])
    G = train_gan(cfg, tmp_path / "run", progress=False)
    ck = _ckpt(tmp_path / "run")
    for part in ("G", "G_ema"):
        strengths = [v for k, v in ck[part].items() if k.endswith("noise.weight")]
        assert strengths and all(torch.equal(v, torch.zeros_like(v)) for v in strengths)
    assert not torch.equal(ck["G"]["conv1.conv.weight"], _ckpt_initial(cfg)["conv1.conv.weight"])  # it trained
    z = torch.randn(2, G.z_dim)
    with torch.no_grad():
        assert torch.equal(G(z, noise_mode="random"), G(z, noise_mode="none"))


def _ckpt_initial(cfg) -> dict:
    from stylebridge.train.gan import GanTask

    torch.manual_seed(cfg.optim.seed)  # as the loop seeds torch before setup
    task = GanTask(cfg)
    task.setup()
    return task.G.state_dict()


def test_resume_is_exact(tmp_path):
    cfg = load_gan_config(TINY, ["augment.kind=fixed", "augment.p=0.5"])  # augmentation randomness included
    train_gan(cfg, tmp_path / "a", progress=False)
    train_gan(cfg, tmp_path / "b", progress=False, max_steps_this_run=4)
    assert not (tmp_path / "b" / "G_ema").exists()
    train_gan(cfg, tmp_path / "b", resume=True, progress=False)
    a, b = _ckpt(tmp_path / "a"), _ckpt(tmp_path / "b")
    assert a["step"] == b["step"] == 8
    for part in ("G", "D", "G_ema"):
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), f"{part}.{k}"
    la = {r["step"]: r for r in _log(tmp_path / "a")}
    lb = {r["step"]: r for r in _log(tmp_path / "b")}
    for step in (6, 8):
        for key in ("loss_d", "loss_g", "d_real", "pl_mean"):
            assert la[step][key] == lb[step][key], (step, key)


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown keys \['lrr'\]"):
        load_gan_config(TINY, ["optim.lrr=0.1"])
    with pytest.raises(ConfigError, match=r"optim\.batch: expected an integer"):
        load_gan_config(TINY, ["optim.batch=big"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  channel: [1]\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: model: unknown keys \['channel'\]"):
        load_gan_config(bad)
    cfg = load_gan_config(TINY, ["optim.lr=0.001", "model.channels=[16, 16, 8]"])
    assert cfg.optim.lr == 0.001 and cfg.model.channels == (16, 16, 8)


def test_augment_is_differentiable_and_adaptive_p_moves():
    x = torch.randn(6, 3, 16, 16, requires_grad=True)
    y = augment(x, 1.0, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and not torch.equal(y, x)
    y.sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert torch.equal(augment(x, 0.0), x)
    ada = AdaptiveP(target=0.6, kimg=0.01, interval=2)
    for _ in range(4):
        ada.update(torch.ones(8), batch=8)  # D sure every real is real: overfitting → p rises
    assert ada.p > 0
    for _ in range(40):
        ada.update(-torch.ones(8), batch=8)
    assert ada.p == 0


def test_augment_draws_for_the_global_batch():
    # Rank r of w processes holds rows r, r + w, …: its augmented rows equal those of the 1-process augmentation.
    x = torch.randn(8, 3, 16, 16)
    full = augment(x, 0.7, torch.Generator().manual_seed(3))
    for rank in range(2):
        part = augment(x[rank::2], 0.7, torch.Generator().manual_seed(3), rows=(rank, 2))
        torch.testing.assert_close(part, full[rank::2])


def test_adaptive_p_follows_the_fraction_of_positive_real_logits():
    # r_t = E[sign(D(real))]. With 70 % of reals scored positive r_t = 0.4 < 0.6: p must fall, although most reals
    # are positive (a controller that takes the sign of the mean again sees r_t = 1 and drives p to 1).
    signs = torch.tensor([1.0] * 7 + [-1.0] * 3)
    ada = AdaptiveP(target=0.6, kimg=0.01, interval=2, p=0.5)
    for _ in range(4):
        ada.update(signs, batch=10)
    assert ada.p < 0.5
    # The trainer's DDP form: the all-ranks mean of the signs, repeated per local sample.
    ada = AdaptiveP(target=0.6, kimg=0.01, interval=2, p=0.5)
    for _ in range(4):
        ada.update(signs.mean().expand(5), batch=10)
    assert ada.p < 0.5
    ada = AdaptiveP(target=0.6, kimg=0.01, interval=2, p=0.5)
    for _ in range(4):
        ada.update(torch.tensor(0.8).expand(5), batch=10)  # 90 % positive: r_t 0.8 > 0.6 → p rises
    assert ada.p > 0.5
    ada = AdaptiveP(target=0.6, kimg=0.01, interval=2, max_p=0.7)
    for _ in range(40):
        ada.update(torch.ones(8), batch=8)
    assert ada.p == 0.7
    resumed = AdaptiveP(max_p=0.5)
    resumed.load_state_dict(ada.state_dict())
    assert resumed.p == 0.5


def _env() -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2] / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.mark.integration
def test_torchrun_two_processes_match_one_process(tmp_path):
    common = ["--config", str(TINY), "--set", "augment.kind=none", "optim.steps=4"]
    run_torchrun(["-m", "stylebridge", "train", "gan", "--out", str(tmp_path / "ddp"), *common], env=_env(),
                 out=tmp_path / "ddp")
    assert json.loads((tmp_path / "ddp" / "ranks.json").read_text()) == {"world": 2, "max_param_diff": 0.0}
    train_gan(load_gan_config(TINY, ["augment.kind=none", "optim.steps=4"]), tmp_path / "one", progress=False)
    a, b = _ckpt(tmp_path / "ddp"), _ckpt(tmp_path / "one")
    for part in ("G", "D"):
        for k in a[part]:
            torch.testing.assert_close(a[part][k], b[part][k], atol=1e-4, rtol=1e-4, msg=f"{part}.{k}")


@pytest.mark.integration
def test_sigint_writes_a_checkpoint_and_resume_continues(tmp_path, capsys):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "stylebridge", "train", "gan", "--config", str(TINY), "--out", str(run),
           "--steps", "100000", "--set", "log.checkpoint_every=100000"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    deadline = time.time() + 120
    log = run / "log.jsonl"
    while time.time() < deadline and not (log.exists() and "loss_d" in log.read_text()):
        time.sleep(0.2)  # the first step record is written at step 2
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGINT, err[-2000:]  # stopped early: a scheduler can tell
    assert "stopped at step" in err and "SIGINT" in err
    step = _ckpt(run)["step"]
    assert step >= 2
    from stylebridge.apps.cli import main  # the rest in this process: no signal needed

    assert main(["train", "gan", "--resume", str(run), "--max-steps-this-run", "2"]) == 0
    assert _ckpt(run)["step"] == step + 2
    capsys.readouterr()
    assert main(["train", "gan", "--config", str(TINY), "--out", str(run)]) == 2
    assert "use --resume" in capsys.readouterr().err


def test_periodic_metric_is_logged_and_leaves_training_unchanged(tmp_path):
    base = ["log.metric_n=16", "augment.kind=none"]
    train_gan(load_gan_config(TINY, base), tmp_path / "plain", progress=False)
    cfg = load_gan_config(TINY, [*base, "log.metric_every=4"])
    train_gan(cfg, tmp_path / "run", progress=False)
    rows = [r for r in _log(tmp_path / "run") if "metric" in r]
    assert [r["step"] for r in rows] == [4, 8]
    assert all(r["metric"] == "FD[synthfaces-domain]" and r["n"] == 16 and r["value"] > 0 for r in rows)
    assert len(list((tmp_path / "run" / "metrics").glob("real_*.safetensors"))) == 1  # real statistics cached
    a, b = _ckpt(tmp_path / "plain"), _ckpt(tmp_path / "run")
    for k in a["G"]:  # measuring never changes what is trained
        assert torch.equal(a["G"][k], b["G"][k]), k
