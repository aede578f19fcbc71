"""StyleMapGAN training on tiny synthfaces: every loss term logged and finite, the run folder, exact resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import stylebridge
from stylebridge.models.stylemapgan import StyleMapGAN
from stylebridge.train.stylemapgan import load_stylemap_config, train_stylemapgan

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "stylemapgan" / "tiny.yaml"


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


def _ckpt(run: Path) -> dict:
    return torch.load(sorted(run.glob("checkpoint-*.pt"))[-1], map_location="cpu", weights_only=True)


def test_tiny_run_losses_model_and_exact_resume(tmp_path):
    cfg = load_stylemap_config(CONFIG)
    model = train_stylemapgan(cfg, tmp_path / "a", progress=False)
    rows = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert rows[0]["perceptual_network"].startswith("synthfaces-domain")
    steps = [r for r in rows if "loss_d" in r]
    assert len(steps) == 4
    for r in steps:
        for k in ("adv", "w_rec", "loss_d", "indomain_d", "x_rec", "perceptual", "indomain_e"):
            assert k in r and r[k] == r[k] and abs(r[k]) < 1e4, (k, r)
    assert ["r1" in r for r in steps] == [True, False, True, False]  # lazy R1 every 2 steps
    loaded = stylebridge.load(tmp_path / "a" / "model")
    assert isinstance(loaded, StyleMapGAN) and isinstance(model, StyleMapGAN)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        assert loaded.encode(x).shape == (2, 8, 4, 4)
        torch.testing.assert_close(loaded.reconstruct(x), model.reconstruct(x))
    assert (tmp_path / "a" / "samples").is_dir()
    train_stylemapgan(cfg, tmp_path / "b", progress=False, max_steps_this_run=2)
    train_stylemapgan(cfg, tmp_path / "b", resume=True, progress=False)
    a, b = _ckpt(tmp_path / "a"), _ckpt(tmp_path / "b")
    for part in ("model", "D", "ema"):
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), f"{part}.{k}"


def test_cli_trains_and_resumes(tmp_path, capsys):
    from stylebridge.apps.cli import main

    run = tmp_path / "run"
    assert main(["train", "stylemapgan", "--config", str(CONFIG), "--out", str(run), "--max-steps-this-run", "2"]) == 0
    assert not (run / "model").exists()
    assert main(["train", "stylemapgan", "--resume", str(run)]) == 0
    assert isinstance(stylebridge.load(run / "model"), StyleMapGAN)


@pytest.mark.integration
def test_torchrun_two_processes_match_one_process(tmp_path):
    import os
    import subprocess
    import sys

    from torchrun_helper import run_torchrun

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2] / "src") + os.pathsep + env.get("PYTHONPATH", "")
    script = tmp_path / "run.py"
    script.write_text("import sys\nimport torch\nfrom stylebridge.train.stylemapgan import load_stylemap_config, "
                      "train_stylemapgan\ntorch.set_num_threads(1)\ncfg = load_stylemap_config(sys.argv[1], "
                      "sys.argv[3:])\ntrain_stylemapgan(cfg, sys.argv[2], progress=False)\n")
    overrides = ["optim.steps=2", "log.checkpoint_every=2", "log.sample_every=2", "model.mbstd_group_size=2"]
    run_torchrun([str(script), str(CONFIG), str(tmp_path / "ddp"), *overrides], env=env, out=tmp_path / "ddp")
    subprocess.run([sys.executable, str(script), str(CONFIG), str(tmp_path / "one"), *overrides], check=True,
                   timeout=300, env=env)
    a, b = _ckpt(tmp_path / "ddp"), _ckpt(tmp_path / "one")
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], atol=1e-4, rtol=1e-4, msg=k)
