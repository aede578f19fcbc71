"""Hostile inputs through the command line: each ends in one line on stderr and exit 2, never a traceback, and
never writes a partial or wrong file."""

from __future__ import annotations

import errno
import json
import os
import shutil
import time

import pytest
import torch

from stylebridge.apps.cli import main
from stylebridge.core import registry
from stylebridge.core.imageio import save_image
from stylebridge.data import synthfaces as sf
from stylebridge.models.stylegan2 import StyleGAN2Config, StyleGAN2Generator


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="module")
def gen(tmp_path_factory):
    torch.manual_seed(0)
    G = StyleGAN2Generator(StyleGAN2Config(resolution=16, z_dim=16, w_dim=16, mapping_layers=2, channels=(16, 16, 8)))
    G.compute_w_avg(200)
    return G.save_pretrained(tmp_path_factory.mktemp("g") / "G")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("img")
    for i, img in enumerate(sf.render_seeds([10_000_000, 10_000_001], 64)["image"]):
        save_image(img, root / f"f{i}.png")
    return root


def _one_line_error(capsys, *needles):
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert "Traceback" not in err
    for n in needles:
        assert n in err, err
    return err


def _commands(tmp, gen, images, out):
    """The commands that write files, each with ``out`` as its output."""
    return {
        "generate": ["generate", "--model", str(gen), "--seeds", "0-1", "--out", str(out), "--quiet"],
        "encode": ["encode", "--model", "synthfaces-64-psp-inversion", "--images", str(images), "--out", str(out),
                   "--quiet"],
        "translate": ["translate", "--model", "synthfaces-64-actmap", "--images", str(images), "--out", str(out),
                      "--quiet"],
        "convert": ["convert", str(gen), str(out)],
        "prepare": ["data", "prepare", str(images), "--resolution", "16", "--out", str(out), "--quiet"],
    }


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_truncation_is_refused(tmp_path, gen, images, value, capsys):
    assert main(["generate", "--model", str(gen), f"--truncation={value}", "--out", str(tmp_path / "g.png")]) == 2
    _one_line_error(capsys, "--truncation", "finite")
    assert main(["translate", "--model", "synthfaces-64-actmap", "--images", str(images), f"--truncation={value}",
                 "--out", str(tmp_path / "t")]) == 2
    _one_line_error(capsys, "--truncation", "finite")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("args, needle", [
    (["generate", "--model", "G", "--out", "x.png", "--nrow", "-2"], "--nrow"),
    (["generate", "--model", "G", "--out", "x.png", "--batch", "0"], "--batch"),
    (["generate", "--model", "G", "--out", "x.png", "--batch-size", "0"], "--batch"),
    (["encode", "--model", "m", "--images", "i", "--out", "o", "--batch", "0"], "--batch"),
    (["translate", "--model", "m", "--images", "i", "--out", "o", "--batch-size", "0"], "--batch"),
    (["translate", "--model", "m", "--images", "i", "--out", "o", "--samples", "-1"], "--samples"),
    (["translate", "--model", "m", "--images", "i", "--out", "o", "--walk", "1,2", "--frames", "-3"], "--frames"),
    (["data", "synthfaces", "--count", "0", "--out", "o"], "--count"),
    (["metrics", "fd", "--model", "m", "--n", "-5"], "--n"),
])
def test_bad_numbers_are_one_line_errors(args, needle, capsys):
    assert main(args) == 2
    _one_line_error(capsys, needle)


def test_batch_alias_and_batch_size_both_work(tmp_path, gen, capsys):
    for flag in ("--batch", "--batch-size"):
        assert main(["generate", "--model", str(gen), "--seeds", "0-2", flag, "2", "--out",
                     str(tmp_path / f"{flag}.png"), "--quiet"]) == 0
    assert (tmp_path / "--batch.png").read_bytes() == (tmp_path / "--batch-size.png").read_bytes()


@pytest.mark.parametrize("cmd", ["generate", "encode", "translate", "convert", "prepare"])
def test_out_that_is_a_file(tmp_path, gen, images, cmd, capsys):
    out = tmp_path / "taken"
    out.write_text("a file")
    assert main(_commands(tmp_path, gen, images, out)[cmd]) == 2
    _one_line_error(capsys, str(out), "not a folder")
    assert out.read_text() == "a file"


@pytest.mark.parametrize("cmd", ["generate", "encode", "translate", "convert", "prepare"])
def test_unwritable_folder(tmp_path, gen, images, cmd, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as root: a 0o500 folder is still writable")
        assert main(_commands(tmp_path, gen, images, locked / "out")[cmd]) == 2
        _one_line_error(capsys, str(locked), "Permission denied")
    finally:
        locked.chmod(0o700)


@pytest.fixture
def full_disk(monkeypatch):
    def replace(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", replace)


@pytest.mark.parametrize("cmd", ["generate", "encode", "translate", "convert", "prepare"])
def test_full_disk(tmp_path, gen, images, cmd, full_disk, capsys):
    out = tmp_path / "out"
    assert main(_commands(tmp_path, gen, images, out)[cmd]) == 2
    _one_line_error(capsys, str(out), "No space left on device")
    assert not [p for p in out.rglob("*") if p.is_file() and p.suffix in (".png", ".json", ".safetensors")]
    assert not list(out.rglob(".*.tmp"))


class _FakeFD:
    def __str__(self) -> str:
        return "FD[x] = 1.0"

    def to_dict(self) -> dict:
        return {"metric": "FD[x]", "value": 1.0}


def test_metrics_fd_json_os_errors(tmp_path, gen, monkeypatch, capsys):
    import stylebridge.metrics.frechet as frechet

    monkeypatch.setattr(frechet, "fd_of_generator", lambda *a, **k: _FakeFD())
    monkeypatch.setattr(frechet, "feature_extractor", lambda *a, **k: torch.nn.Identity())
    base = ["metrics", "fd", "--model", str(gen), "--n", "2", "--quiet", "--json"]
    assert main([*base, str(tmp_path / "fd.json")]) == 0
    assert json.loads((tmp_path / "fd.json").read_text())["value"] == 1.0
    assert main([*base, str(tmp_path)]) == 2  # a folder where the file should go
    _one_line_error(capsys, str(tmp_path), "is a folder")
    (tmp_path / "file").write_text("x")
    assert main([*base, str(tmp_path / "file" / "fd.json")]) == 2  # a file where the folder should be
    _one_line_error(capsys, str(tmp_path / "file"), "not a folder")

    def replace(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", replace)
    assert main([*base, str(tmp_path / "full.json")]) == 2
    _one_line_error(capsys, str(tmp_path / "full.json"), "No space left on device")
    assert not (tmp_path / "full.json").exists()


def test_a_local_folder_does_not_shadow_a_shipped_model(tmp_path, monkeypatch, capsys):
    (tmp_path / "synthfaces-64").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(["generate", "--model", "synthfaces-64", "--seeds", "0", "--out", "one.png", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "not a model folder" in err and "using the shipped model" in err
    assert (tmp_path / "one.png").is_file()


@pytest.mark.parametrize("key, value, needle", [
    ("lr_multiplier", "fast", "field 'lr_multiplier' must be a number, got \"fast\""),
    ("conv_clamp", "x", "field 'conv_clamp' must be a number or null"),
    ("z_dim", 1e9, "field 'z_dim' must be an integer"),
    ("z_dim", 1_000_000_000, "the sizes in config.json do not match the weights"),
])
def test_config_json_is_checked_before_allocating(tmp_path, gen, key, value, needle, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(gen, bad)
    doc = json.loads((bad / "config.json").read_text())
    doc["config"][key] = value
    (bad / "config.json").write_text(json.dumps(doc))
    for args in (["info", str(bad)], ["convert", str(bad), str(tmp_path / "c")],
                 ["generate", "--model", str(bad), "--out", str(tmp_path / "g.png")]):
        t0 = time.perf_counter()
        assert main(args) == 2
        assert time.perf_counter() - t0 < 5  # fails fast: nothing of z_dim 1e9 was allocated
        _one_line_error(capsys, str(bad), needle)


@pytest.mark.parametrize("key, value, needle", [
    ("config", None, "field 'config' must be an object, got null"),
    ("format_version", "2", "field 'format_version' must be an integer, got \"2\""),
])
def test_config_json_top_level_fields(tmp_path, gen, key, value, needle, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(gen, bad)
    doc = json.loads((bad / "config.json").read_text())
    doc[key] = value
    (bad / "config.json").write_text(json.dumps(doc))
    assert main(["info", str(bad)]) == 2
    _one_line_error(capsys, str(bad / "config.json"), needle)


def test_shipped_models_still_load():
    import stylebridge

    for name in registry.names():
        stylebridge.load(name)
