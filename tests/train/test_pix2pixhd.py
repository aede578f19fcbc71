"""pix2pixHD training on tiny paired folders: the official losses logged and finite, the lr decay, the grid of
input | output | target, the exported model, exact resume, the VGG-19 loss from a weights file, the CLI, DDP."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import stylebridge
from stylebridge.core.errors import ConfigError
from stylebridge.losses.perceptual import VGG19FeatureLoss
from stylebridge.models.pix2pixhd import Pix2PixHDGenerator
from stylebridge.train.pix2pixhd import (
    feature_matching_loss,
    load_pix2pixhd_config,
    lsgan_loss,
    train_pix2pixhd,
)

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "pix2pixhd" / "tiny.yaml"


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


def write_pairs(root: Path, n: int = 6, two_inputs: bool = False, size: int = 16) -> Path:
    """A pairs folder (source/, target/[, source2/]): random images, the target their mirror image."""
    rng = np.random.default_rng(0)
    for i in range(n):
        a = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        for sub, img in (("source", a), ("target", a[:, ::-1]), ("source2", 255 - a)):
            if sub == "source2" and not two_inputs:
                continue
            (root / sub).mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.ascontiguousarray(img)).save(root / sub / f"{i:06d}.png")
    return root


def _cfg(pairs: Path, *overrides: str):
    return load_pix2pixhd_config(CONFIG, [f"data.pairs={pairs}", *overrides])


def _ckpt(run: Path) -> dict:
    return torch.load(sorted(run.glob("checkpoint-*.pt"))[-1], map_location="cpu", weights_only=True)


def test_tiny_run_losses_grid_model_and_exact_resume(tmp_path):
    pairs = write_pairs(tmp_path / "pairs")
    cfg = _cfg(pairs)
    G = train_pix2pixhd(cfg, tmp_path / "a", progress=False)
    rows = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert rows[0]["perceptual_network"].startswith("synthfaces-domain")
    assert rows[0]["pairs"] == 6 and rows[0]["input_channels"] == 3
    steps = [r for r in rows if "loss_d" in r]
    assert len(steps) == 4
    for r in steps:
        for k in ("loss_g", "gan", "feat", "perceptual", "loss_d", "d_real", "d_fake"):
            assert np.isfinite(r[k]) and abs(r[k]) < 1e4, (k, r)
        assert r["loss_g"] == pytest.approx(r["gan"] + 10 * r["feat"] + 10 * r["perceptual"], rel=1e-5)
    # constant lr, then linear decay to 0 over the last niter_decay = 2 steps (steps 2 and 3 run at lr and lr / 2)
    assert [r["lr"] for r in steps] == pytest.approx([2e-4, 2e-4, 2e-4, 1e-4])
    grid = Image.open(tmp_path / "a" / "samples" / "step0000004.png")
    assert grid.size == (3 * 18 + 2, 4 * 18 + 2)  # rows: 4 pairs; columns: input | output | target
    loaded = stylebridge.load(tmp_path / "a" / "model")
    assert isinstance(loaded, Pix2PixHDGenerator) and loaded.config.resolution == 16
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), G.eval()(x))
    meta = json.loads((tmp_path / "a" / "model" / "config.json").read_text())["metadata"]
    assert meta["steps"] == 4 and meta["pairs"] == 6 and meta["perceptual_network"].startswith("synthfaces-domain")
    # exact resume: 2 steps, then the other 2 from the checkpoint == 4 in one go
    train_pix2pixhd(cfg, tmp_path / "b", progress=False, max_steps_this_run=2)
    train_pix2pixhd(cfg, tmp_path / "b", resume=True, progress=False)
    a, b = _ckpt(tmp_path / "a"), _ckpt(tmp_path / "b")
    for part in ("G", "D"):
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), f"{part}.{k}"
    for k, v in a["opt_g"]["state"].items():
        assert torch.equal(v["exp_avg_sq"], b["opt_g"]["state"][k]["exp_avg_sq"])


def test_two_image_pairs_from_distill_pairs_and_bf16(tmp_path):
    from stylebridge.edit.distill_pairs import make_pairs

    make_pairs("synthfaces-64", tmp_path / "blend", mode="blend", count=3, progress=False)
    cfg = _cfg(tmp_path / "blend", "optim.steps=2", "optim.precision=bf16", "loss.perceptual=0", "loss.l1=5")
    G = train_pix2pixhd(cfg, tmp_path / "run", progress=False)
    assert G.config.in_channels == 6
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert rows[0]["input_channels"] == 6 and rows[0]["perceptual_network"] == "none"
    steps = [r for r in rows if "loss_g" in r]
    assert steps and all(np.isfinite(r["loss_g"]) for r in steps)
    for r in steps:  # pix2pix's L1 term, weighted, on top of the official ones
        assert r["l1"] > 0 and r["loss_g"] == pytest.approx(r["gan"] + 10 * r["feat"] + 5 * r["l1"], rel=1e-5)
    meta = json.loads((tmp_path / "run" / "model" / "config.json").read_text())["metadata"]
    assert meta["distillation"]["mode"] == "blend" and "direction" not in meta["distillation"]
    grid = Image.open(tmp_path / "run" / "samples" / "step0000002.png")
    assert grid.size == (4 * 18 + 2, 3 * 18 + 2)  # A | B | output | target, one row per pair (3 pairs)


def test_edit_pairs_record_their_direction_in_the_model(tmp_path):
    from stylebridge.edit.distill_pairs import make_pairs
    from stylebridge.evaluate.distillation import distilled_edit

    make_pairs("synthfaces-64", tmp_path / "smile", direction="smile", coeff=4, count=16, progress=False)
    cfg = _cfg(tmp_path / "smile", "optim.steps=1", "loss.perceptual=0")
    train_pix2pixhd(cfg, tmp_path / "run", progress=False)
    meta = json.loads((tmp_path / "run" / "model" / "config.json").read_text())["metadata"]
    d = meta["distillation"]
    assert d["mode"] == "edit" and d["direction"] == "smile" and d["coeff"] == 4 and d["attribute"] == "smile"
    assert d["pairs"] == meta["pairs"] > 0 and d["both_directions"] is False
    e = distilled_edit(tmp_path / "run" / "model")  # the direction travels in model/direction/
    assert e.name == "run" and e.direction.config.attribute == "smile" and e.info["coeff"] == 4
    assert stylebridge.load(tmp_path / "run" / "model").config.resolution == 16
    # a plain paired folder records no distillation
    train_pix2pixhd(_cfg(write_pairs(tmp_path / "plain"), "optim.steps=1", "loss.perceptual=0"), tmp_path / "p",
                    progress=False)
    assert "distillation" not in json.loads((tmp_path / "p" / "model" / "config.json").read_text())["metadata"]
    assert not (tmp_path / "p" / "model" / "direction").exists()


def test_vgg19_perceptual_loss_from_a_torchvision_file(tmp_path):
    from stylebridge.models.vgg import VGG, VGGConfig

    torch.manual_seed(0)
    vgg = VGG(VGGConfig(depth=19, widths=(4, 4, 8, 8, 8), hidden=8, num_classes=10))
    path = tmp_path / "vgg19.pth"
    torch.save(vgg.state_dict(), path)
    loss = VGG19FeatureLoss.from_file(path)
    assert "VGG-19" in loss.name and "vgg19.pth" in loss.name
    x, y = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1
    assert loss(x, x).item() == 0 and loss(x, y).item() > 0
    # relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 weighted 1/32 … 1
    h, hy, want = x, y, 0.0
    for (start, stop), w in zip(((0, 2), (2, 7), (7, 12), (12, 21), (21, 30)), (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1)):
        h, hy = vgg.features[start:stop](h), vgg.features[start:stop](hy)  # the official Vgg19 slices
        want += w * (h - hy).abs().mean().item()
    assert loss(x, y).item() == pytest.approx(want, rel=1e-5)
    pairs = write_pairs(tmp_path / "pairs")
    train_pix2pixhd(_cfg(pairs, f"loss.vgg19={path}", "optim.steps=1"), tmp_path / "run", progress=False)
    first = json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[0])
    assert first["perceptual_network"].startswith("VGG-19")
    vgg16 = VGG(VGGConfig(depth=16, widths=(4, 4, 8, 8, 8), num_classes=0))
    torch.save(vgg16.state_dict(), tmp_path / "vgg16.pth")
    with pytest.raises(ValueError, match="VGG-16; pix2pixHD's perceptual loss uses VGG-19"):
        VGG19FeatureLoss.from_file(tmp_path / "vgg16.pth")


def test_losses_follow_the_official_formulas():
    real = [[torch.ones(1, 2, 3, 3), torch.full((1, 1, 2, 2), 0.5)], [torch.ones(1, 2, 2, 2), torch.zeros(1, 1, 1, 1)]]
    fake = [[torch.zeros(1, 2, 3, 3), torch.full((1, 1, 2, 2), 2.0)], [torch.ones(1, 2, 2, 2), torch.ones(1, 1, 1, 1)]]
    assert lsgan_loss(fake, True).item() == pytest.approx(1.0 + 0.0)  # (2-1)² + (1-1)²
    assert lsgan_loss(fake, False).item() == pytest.approx(4.0 + 1.0)
    # one intermediate layer per scale (n_layers + 1 = 1): weight 4/1 · 1/2; L1 = 1 at scale 0, 0 at scale 1
    assert feature_matching_loss(fake, real).item() == pytest.approx(2.0)


def test_config_and_data_errors(tmp_path):
    with pytest.raises(ConfigError, match="give data\\.pairs"):
        load_pix2pixhd_config(CONFIG)
    with pytest.raises(ConfigError, match="multiple of"):
        load_pix2pixhd_config(CONFIG, ["data.pairs=x", "data.resolution=18"])
    with pytest.raises(FileNotFoundError, match="pairs folder not found"):
        train_pix2pixhd(_cfg(tmp_path / "missing"), tmp_path / "run", progress=False)
    (tmp_path / "half" / "source").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no target/ inside"):
        train_pix2pixhd(_cfg(tmp_path / "half"), tmp_path / "run", progress=False)


def test_cli_trains_resumes_and_translates(tmp_path, capsys):
    from stylebridge.apps.cli import main

    pairs = write_pairs(tmp_path / "pairs")
    run = tmp_path / "run"
    assert main(["train", "pix2pixhd", "--config", str(CONFIG), "--pairs", str(pairs), "--out", str(run),
                 "--max-steps-this-run", "2"]) == 0
    assert not (run / "model").exists()
    assert main(["train", "pix2pixhd", "--resume", str(run)]) == 0
    G = stylebridge.load(run / "model")
    assert isinstance(G, Pix2PixHDGenerator)
    out = tmp_path / "out"
    assert main(["translate", "--model", str(run / "model"), "--images", str(pairs / "source"), "--out", str(out),
                 "--quiet", "--precision", "fp32"]) == 0
    assert sorted(p.name for p in out.glob("*.png")) == [f"{i:06d}.png" for i in range(6)]
    x = torch.from_numpy(np.asarray(Image.open(pairs / "source" / "000003.png"), dtype=np.float32))
    with torch.no_grad():
        want = G((x.permute(2, 0, 1) / 127.5 - 1)[None])[0]
    got = torch.from_numpy(np.asarray(Image.open(out / "000003.png"), dtype=np.float32)).permute(2, 0, 1) / 127.5 - 1
    assert (got - want.clamp(-1, 1)).abs().max() <= 1 / 127.5 + 1e-6


@pytest.mark.integration
def test_torchrun_two_processes_match_one_process(tmp_path):
    import os
    import subprocess
    import sys

    from torchrun_helper import run_torchrun

    pairs = write_pairs(tmp_path / "pairs", n=8)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2] / "src") + os.pathsep + env.get("PYTHONPATH", "")
    script = tmp_path / "run.py"
    script.write_text("import sys\nimport torch\nfrom stylebridge.train.pix2pixhd import load_pix2pixhd_config, "
                      "train_pix2pixhd\ntorch.set_num_threads(1)\ncfg = load_pix2pixhd_config(sys.argv[1], "
                      "sys.argv[3:])\ntrain_pix2pixhd(cfg, sys.argv[2], progress=False)\n")
    overrides = [f"data.pairs={pairs}", "optim.steps=2", "log.checkpoint_every=2", "log.sample_every=2",
                 "loss.perceptual=0"]
    run_torchrun([str(script), str(CONFIG), str(tmp_path / "ddp"), *overrides], env=env, out=tmp_path / "ddp")
    subprocess.run([sys.executable, str(script), str(CONFIG), str(tmp_path / "one"), *overrides], check=True,
                   timeout=300, env=env)
    a, b = _ckpt(tmp_path / "ddp"), _ckpt(tmp_path / "one")
    # The bias of a conv followed by instance norm has no effect and a gradient that is 0 up to float noise, which
    # Adam normalises to steps of about ±lr: those differ between the runs, harmlessly. Everything else agrees.
    no_effect = {"G": r"(global_branch|enhancers)\..*bias$", "D": r"layers\.[12]\.conv\.bias$"}  # n_layers_d 2
    for part in ("G", "D"):
        for k in a[part]:
            if not re.search(no_effect[part], k):
                torch.testing.assert_close(a[part][k], b[part][k], atol=1e-4, rtol=1e-4, msg=f"{part}.{k}")
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(stylebridge.load(tmp_path / "ddp" / "model")(x),
                                   stylebridge.load(tmp_path / "one" / "model")(x), atol=1e-4, rtol=1e-4)
