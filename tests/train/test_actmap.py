"""Activation-map encoder training: the tiny config trains and lowers the loss, resumes exactly, runs under 2-process
torchrun like one process; input augmentation; config errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import stylebridge
from conftest import save_tiny_generator
from stylebridge.models.actmap import ActivationMapTranslator
from stylebridge.train import actmap as am
from stylebridge.train.actmap import (
    InputAugmentSection,
    augment_inputs,
    build_translator,
    learning_rate,
    load_actmap_config,
    train_actmap,
    validate,
)
from stylebridge.train.config import ConfigError
from torchrun_helper import run_torchrun

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "actmap" / "tiny.yaml"


@pytest.fixture(scope="module")
def gen_dir(tmp_path_factory) -> Path:
    """A random 16-px generator (z/w 16, channels 32, 32, 16) as a native folder: what tiny.yaml trains on."""
    return save_tiny_generator(tmp_path_factory.mktemp("gen") / "tiny-generator")


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)  # fixed reduction order: bitwise-equal runs
    yield


def tiny(gen_dir: Path, *overrides: str):
    return load_actmap_config(TINY, [f"generator.path={gen_dir}", *overrides])


def _ckpt(run: Path) -> dict:
    return torch.load(sorted(run.glob("checkpoint-*.pt"))[-1], map_location="cpu", weights_only=True)


def _log(run: Path) -> list[dict]:
    """The step records (not the start / resume event records)."""
    recs = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return [r for r in recs if "event" not in r]


def test_tiny_config_trains_lowers_the_loss_and_writes_a_run_folder(gen_dir, tmp_path):
    cfg = tiny(gen_dir, "optim.steps=12", "optim.lr=0.01", "augment.blur=0", "augment.color=0", "augment.edges=0",
               "augment.cutout=0", "augment.grayscale=0")
    torch.manual_seed(cfg.optim.seed)
    untrained = build_translator(cfg, am.load_generator(cfg.generator.path))  # the run's starting point
    before = validate(untrained, 16)
    model = train_actmap(cfg, tmp_path / "run", progress=False)
    after = validate(model, 16)
    # Measured: activation MSE × 0.87, skip image × 0.78, migrated image × 0.53 after 12 steps.
    assert after["act_mse"] < 0.95 * before["act_mse"], (before, after)
    assert after["skip_mse"] < 0.9 * before["skip_mse"] and after["img_mse"] < 0.75 * before["img_mse"], (before, after)
    run = tmp_path / "run"
    assert sorted(p.name for p in run.glob("checkpoint-*.pt")) == ["checkpoint-0000008.pt", "checkpoint-0000012.pt"]
    assert (run / "config.yaml").is_file() and (run / "samples" / "step0000012.png").is_file()
    log = _log(run)
    train = [r for r in log if "loss" in r]
    val = [r for r in log if "img_psnr" in r]
    assert [r["step"] for r in train] == [2, 4, 6, 8, 10, 12] and [r["step"] for r in val] == [4, 8, 12]
    assert all(k in train[0] for k in ("act_mse", "skip_mse", "img_mse", "lr"))
    loaded = stylebridge.load(run / "translator")
    assert isinstance(loaded, ActivationMapTranslator) and loaded.layer == "b8.conv0"
    meta = json.loads((run / "translator" / "config.json").read_text())["metadata"]
    assert meta["steps"] == 12 and meta["generator"] == str(gen_dir) and "val" in meta
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    assert torch.equal(loaded.translate(x), model.translate(x))


def test_resume_is_exact(gen_dir, tmp_path):
    cfg = tiny(gen_dir)  # augmentation, random noise and the image loss: every source of randomness
    train_actmap(cfg, tmp_path / "a", progress=False)
    train_actmap(cfg, tmp_path / "b", progress=False, max_steps_this_run=4)
    assert not (tmp_path / "b" / "translator").exists()
    train_actmap(cfg, tmp_path / "b", resume=True, progress=False)
    a, b = _ckpt(tmp_path / "a"), _ckpt(tmp_path / "b")
    assert a["step"] == b["step"] == 8
    for k in a["encoder"]:
        assert torch.equal(a["encoder"][k], b["encoder"][k]), k
    la = {(r["step"], "loss" in r): r for r in _log(tmp_path / "a")}
    lb = {(r["step"], "loss" in r): r for r in _log(tmp_path / "b")}
    for key in ((6, True), (8, True), (8, False)):
        for name in ("act_mse", "skip_mse", "img_mse"):
            assert la[key][name] == lb[key][name], (key, name)
    with pytest.raises(FileNotFoundError, match="no checkpoint to resume from"):
        train_actmap(cfg, tmp_path / "empty", resume=True, progress=False)


def test_perceptual_loss_and_bf16(gen_dir, tmp_path):
    cfg = tiny(gen_dir, "optim.steps=2", "loss.perceptual=1.0", "optim.precision=bf16", "log.val_n=0",
               "log.grid_synthfaces=false")
    train_actmap(cfg, tmp_path / "run", progress=False)
    rec = _log(tmp_path / "run")[-1]
    assert rec["step"] == 2 and rec["perceptual[synthfaces-domain]"] > 0
    assert all(torch.isfinite(torch.tensor(rec[k])) for k in ("loss", "act_mse", "img_mse"))


def test_input_augmentation_ops_and_rank_slicing(monkeypatch):
    x = torch.rand(6, 3, 16, 16) * 2 - 1
    ops = ("zoom", "blur", "color", "grayscale", "edges", "cutout", "cartoon")
    for op in ops:
        y = augment_inputs(x, InputAugmentSection(**{op: 1.0}), torch.Generator().manual_seed(0), 6)
        assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1
        assert (y - x).abs().flatten(1).amax(1).min() > 1e-3, op  # every sample changed
    assert torch.equal(augment_inputs(x, InputAugmentSection(), torch.Generator(), 6), x.clamp(-1, 1))
    gray = augment_inputs(x, InputAugmentSection(grayscale=1.0), torch.Generator(), 6)
    assert torch.allclose(gray[:, 0], gray[:, 1])
    # Rank r of 2 gets samples r, r+2, …: two half batches draw what the whole batch draws.
    cfg = InputAugmentSection(zoom=0.5, zoom_mask=0.5, blur=0.5, color=0.5, grayscale=0.3, edges=0.3, cutout=0.5,
                              cartoon=0.5)
    full = augment_inputs(x, cfg, torch.Generator().manual_seed(1), 6)
    for rank in (0, 1):
        monkeypatch.setattr(am, "world", lambda rank=rank: (rank, 2))
        part = augment_inputs(x[rank::2], cfg, torch.Generator().manual_seed(1), 6)
        torch.testing.assert_close(part, full[rank::2])


def test_cartoon_augmentation_flattens_colours():
    x = torch.rand(8, 3, 16, 16) * 2 - 1  # 256 distinct values per channel
    y = augment_inputs(x, InputAugmentSection(cartoon=1.0), torch.Generator().manual_seed(0), 8)
    levels = [max(len(torch.unique(img[c])) for c in range(3)) for img in y]
    assert min(levels) <= 6  # flat colours only: 3–6 levels per channel
    assert max(levels) < 256  # with outlines: flat colours darkened along edges
    assert y.min() >= -1 and y.max() <= 1


def test_close_up_crops_around_the_centre_and_masks_outside_the_ellipse():
    side = 32
    ramp = (torch.arange(side) + 0.5) / side * 2 - 1  # pixel-centre x coordinates in [-1, 1]
    x = ramp.expand(4, 3, side, side).clone()  # each pixel holds its own x coordinate
    cfg = InputAugmentSection(zoom=1.0, zoom_center=(0.2, 0.0), zoom_range=(0.5, 0.5))
    y = augment_inputs(x, cfg, torch.Generator().manual_seed(0), 4)
    # A half-side 0.5 crop at x = 0.2 scaled to the frame: output pixel x' shows source x = 0.2 + 0.5 x'.
    torch.testing.assert_close(y, (0.2 + 0.5 * ramp).expand_as(x), atol=1e-5, rtol=0)
    masked = replace(cfg, zoom_mask=1.0, zoom_ellipse=(0.2, 0.2))
    y = augment_inputs(x, masked, torch.Generator().manual_seed(0), 4)
    c = side // 2
    torch.testing.assert_close(y[:, :, c, c - 1:c + 1], (0.2 + 0.5 * ramp[c - 1:c + 1]).expand(4, 3, 2))
    corners = y[:, :, [0, 0, -1, -1], [0, -1, 0, -1]]  # [N, C, 4]: outside the ellipse, one flat fill each
    assert torch.equal(corners, corners[..., :1].expand_as(corners))
    assert not torch.allclose(corners[..., 0], x[:, :, 0, 0])
    # 1-channel inputs (sketch models) get a gray fill.
    g = augment_inputs(x[:, :1], masked, torch.Generator().manual_seed(0), 4)
    assert g.shape == (4, 1, side, side)


def test_photo_like_augmentation_ops():
    x = torch.rand(6, 3, 32, 32) * 2 - 1
    for op in ("tight", "photo", "lowres", "jpeg"):
        y = augment_inputs(x, InputAugmentSection(**{op: 1.0}), torch.Generator().manual_seed(0), 6)
        assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1
        assert (y - x).abs().flatten(1).amax(1).min() > 1e-3, op
        again = augment_inputs(x, InputAugmentSection(**{op: 1.0}), torch.Generator().manual_seed(0), 6)
        assert torch.equal(y, again), op
    # photo keeps gray inputs gray (a grayscale photo stays a grayscale photo)
    gray = x.mean(1, keepdim=True).expand_as(x).contiguous()
    y = augment_inputs(gray, InputAugmentSection(photo=1.0), torch.Generator().manual_seed(0), 6)
    assert torch.allclose(y[:, 0], y[:, 1]) and torch.allclose(y[:, 1], y[:, 2])
    # ops that are off draw nothing: an old config's random stream is unchanged
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    augment_inputs(x, InputAugmentSection(blur=0.5), g1, 6)
    augment_inputs(x, InputAugmentSection(blur=0.5, tight=0.0, photo=0.0, lowres=0.0, jpeg=0.0), g2, 6)
    assert torch.equal(torch.rand(1, generator=g1), torch.rand(1, generator=g2))


def test_tight_crop_keeps_the_square_and_fills_the_rest():
    side = 32
    ramp = (torch.arange(side) + 0.5) / side * 2 - 1
    x = ramp.expand(2, 3, side, side).clone()
    cfg = InputAugmentSection(tight=1.0, tight_center=(0.0, 0.0), tight_range=(0.5, 0.5))
    y = augment_inputs(x, replace(cfg), torch.Generator().manual_seed(0), 2)
    c = side // 2
    # inside the kept square (half-side 0.5 around a centre within ±0.06) the image is untouched
    torch.testing.assert_close(y[:, :, c - 3 : c + 3, c - 3 : c + 3], x[:, :, c - 3 : c + 3, c - 3 : c + 3])
    # far outside, the fill is flat: the square's mean colour (the ramp's mean there, about 0)
    assert y[:, :, 0, 0].abs().max() < 0.1 and y[:, :, -1, -1].abs().max() < 0.1


def test_learning_rate_schedule():
    o = am.ActmapOptimSection(lr=1.0, steps=11, warmup=2, schedule="cosine", min_lr_ratio=0.1)
    assert learning_rate(o, 0) == 0.5 and learning_rate(o, 1) == 1.0 and learning_rate(o, 2) == 1.0
    assert abs(learning_rate(o, 10) - 0.1) < 1e-12
    assert learning_rate(am.ActmapOptimSection(lr=0.2, schedule="constant"), 500) == 0.2


def test_config_errors_name_the_key(gen_dir, tmp_path):
    with pytest.raises(ConfigError, match=r"unknown keys \['lrr'\]"):
        tiny(gen_dir, "optim.lrr=0.1")
    with pytest.raises(ConfigError, match=r"augment\.blur: expected a number"):
        tiny(gen_dir, "augment.blur=often")
    cases = [("optim.precision=fp16", "optim: precision must be fp32 or bf16"),
             ("encoder.layer=b8.torgb", "target layer must look like"),
             ("augment.cutout=1.5", r"augment.cutout=1.5"),
             ("augment.zoom_range=[0.8,0.5]", r"augment.zoom_range must be \[low, high\]"),
             ("augment.zoom_center=[0,2]", r"augment.zoom_center must be two numbers in \[-1, 1\]"),
             ("generator.noise_mode=none", "generator.noise_mode must be random or const")]
    for override, pattern in cases:
        with pytest.raises(ValueError, match=pattern):
            tiny(gen_dir, override)
    with pytest.raises(ValueError, match="every loss weight is 0"):
        tiny(gen_dir, "loss.activation=0", "loss.skip_img=0", "loss.image_l2=0")
    with pytest.raises(FileNotFoundError, match="no such file or folder") as exc:
        train_actmap(tiny(tmp_path / "missing"), tmp_path / "run", progress=False)
    assert "\n" not in str(exc.value)
    with pytest.raises(ValueError, match="beyond the 16-px generator"):
        train_actmap(tiny(gen_dir, "encoder.layer=b32.conv0"), tmp_path / "run2", progress=False)
    cfg = load_actmap_config(ROOT / "configs" / "actmap" / "synthfaces-64.yaml")  # the shipped run's configs parse
    assert cfg.generator.path == "synthfaces-64" and cfg.encoder.layer == "b16.conv0"
    stage2 = load_actmap_config(ROOT / "configs" / "actmap" / "synthfaces-64-closeup.yaml")
    assert stage2.encoder.layer == cfg.encoder.layer and stage2.augment.zoom > 0 and stage2.encoder.init_from


LAUNCHER = """
import sys
from stylebridge.train.actmap import load_actmap_config, train_actmap
cfg = load_actmap_config(sys.argv[1], sys.argv[3:])
train_actmap(cfg, sys.argv[2], progress=False)
"""


@pytest.mark.integration
def test_torchrun_two_processes_match_one_process(gen_dir, tmp_path):
    script = tmp_path / "launch.py"
    script.write_text(LAUNCHER)
    overrides = [f"generator.path={gen_dir}", "optim.steps=4", "log.val_n=0", "log.sample_every=100"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    run_torchrun([str(script), str(TINY), str(tmp_path / "ddp"), *overrides], env=env, out=tmp_path / "ddp")
    assert json.loads((tmp_path / "ddp" / "ranks.json").read_text()) == {"world": 2, "max_param_diff": 0.0}
    assert (tmp_path / "ddp" / "translator" / "model.safetensors").is_file()
    subprocess.run([sys.executable, str(script), str(TINY), str(tmp_path / "one"), *overrides], check=True,
                   timeout=300, env=env)
    a, b = _ckpt(tmp_path / "ddp"), _ckpt(tmp_path / "one")
    for k in a["encoder"]:
        torch.testing.assert_close(a["encoder"][k], b["encoder"][k], atol=1e-4, rtol=1e-4, msg=k)


def _setup(cfg) -> am.ActmapTask:
    """The task as the training loop builds it before the first step."""
    task = am.ActmapTask(cfg)
    torch.manual_seed(cfg.optim.seed)
    task.setup()
    return task


def test_init_from_starts_from_a_translators_encoder(gen_dir, tmp_path):
    cfg = tiny(gen_dir)
    torch.manual_seed(5)
    src = am.build_translator(cfg, stylebridge.load(gen_dir))
    src.save_pretrained(tmp_path / "src")
    st = _setup(tiny(gen_dir, f"encoder.init_from={tmp_path / 'src'}"))
    for k, v in src.encoder.state_dict().items():
        assert torch.equal(st.model.encoder.state_dict()[k], v), k
    fresh = _setup(cfg)  # without it: the seeded random initialisation, not the source's
    first = next(iter(src.encoder.state_dict()))
    assert not torch.equal(fresh.model.encoder.state_dict()[first], src.encoder.state_dict()[first])
    with pytest.raises(ValueError, match=r"encoder.init_from .*differs from encoder.\* in \['width'\]"):
        _setup(tiny(gen_dir, f"encoder.init_from={tmp_path / 'src'}", "encoder.width=16"))
