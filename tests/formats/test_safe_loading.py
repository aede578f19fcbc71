"""Loading what users have, and refusing what could run code."""

from __future__ import annotations

import argparse
import os
import pickle
import subprocess
import sys

import pytest
import torch

import stylebridge
from stylebridge import CheckpointError, UnsafePickleError
from stylebridge.core.safe_pickle import load_torch_file


class _Evil:
    """Unpickling this runs a shell command that creates a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _EvalEvil:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (eval, (f"open({self.marker!r}, 'w').close()",))


@pytest.fixture
def rosinality(golden_ckpt):
    return load_torch_file(golden_ckpt)


def _write_evil(tmp_path, kind, payload_cls=_Evil):
    marker = tmp_path / f"PWNED-{kind}"
    path = tmp_path / f"evil-{kind}.{'pkl' if kind == 'pickle' else 'pt'}"
    obj = {"g_ema": {"style.1.weight": torch.zeros(2, 2)}, "args": payload_cls(marker)}
    if kind == "pickle":
        path.write_bytes(pickle.dumps(obj, protocol=4))
    elif kind == "legacy":
        torch.save(obj, path, _use_new_zipfile_serialization=False)
    else:
        torch.save(obj, path)
    return path, marker


@pytest.mark.parametrize("kind", ["zip", "legacy", "pickle"])
@pytest.mark.parametrize("payload", [_Evil, _EvalEvil])
def test_malicious_files_are_refused_through_the_api(tmp_path, kind, payload):
    path, marker = _write_evil(tmp_path, kind, payload)
    with pytest.raises(UnsafePickleError) as info:
        stylebridge.load(path)
    msg = str(info.value)
    assert str(path) in msg and "allow-list" in msg and "nothing was executed" in msg
    assert ("system" in msg) if payload is _Evil else ("eval" in msg)
    assert "\n" not in msg
    assert not marker.exists()


@pytest.mark.integration
@pytest.mark.parametrize("command", ["info", "convert", "generate"])
def test_malicious_file_is_refused_through_the_cli(tmp_path, command):
    path, marker = _write_evil(tmp_path, "zip")
    argv = {"info": ["info", str(path)], "convert": ["convert", str(path), str(tmp_path / "out")],
            "generate": ["generate", "--model", str(path), "--out", str(tmp_path / "g.png")]}[command]
    res = subprocess.run([sys.executable, "-m", "stylebridge", *argv], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "refusing to load" in lines[0] and "system" in lines[0]
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_bare_state_dicts_and_legacy_format(tmp_path, rosinality, golden_io):
    torch.save(rosinality["g_ema"], tmp_path / "g_ema.pt", _use_new_zipfile_serialization=False)
    torch.save(rosinality["d"], tmp_path / "d.pt")
    G = stylebridge.load(tmp_path / "g_ema.pt")
    D = stylebridge.load(tmp_path / "d.pt")
    noise = [golden_io[f"noise_{i}"] for i in range(7)]
    with torch.no_grad():
        torch.testing.assert_close(G.synthesize(G.map(golden_io["z"]), noise=noise), golden_io["img_styles_z"],
                                   atol=1e-4, rtol=1e-5)
        torch.testing.assert_close(D(golden_io["d_input"]), golden_io["d_out"], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="part='d' does not apply"):
        stylebridge.load(tmp_path / "g_ema.pt", part="d")


def test_w_avg_is_computed_for_rosinality(rosinality, tmp_path):
    torch.save(rosinality["g_ema"], tmp_path / "g.pt")
    G = stylebridge.load(tmp_path / "g.pt")
    with torch.no_grad():
        expected = G.style(torch.randn(20000, 64, generator=torch.Generator().manual_seed(5))).mean(0)
    assert float((G.w_avg - expected).abs().max()) < 0.05  # mean of 10k mapped samples


def test_mismatched_keys_are_named(tmp_path, rosinality):
    sd = dict(rosinality["g_ema"])
    del sd["conv1.noise.weight"]
    sd["extra.weight"] = torch.zeros(1)
    torch.save(sd, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError) as info:
        stylebridge.load(tmp_path / "bad.pt")
    msg = str(info.value)
    assert "missing keys [conv1.noise.weight]" in msg and "unexpected keys [extra.weight]" in msg
    assert str(tmp_path / "bad.pt") in msg


def test_wrong_fir_buffer_and_wrong_args(tmp_path, rosinality):
    ck = dict(rosinality)
    ck["g_ema"] = dict(ck["g_ema"])
    ck["g_ema"]["convs.0.conv.blur.kernel"] = torch.ones(4, 4)
    torch.save(ck, tmp_path / "fir.pt")
    with pytest.raises(CheckpointError, match=r"not separable|does not match blur kernel"):
        stylebridge.load(tmp_path / "fir.pt")
    ck = dict(rosinality)
    ck["args"] = argparse.Namespace(**{**vars(rosinality["args"]), "latent": 512})
    torch.save(ck, tmp_path / "args.pt")
    with pytest.raises(CheckpointError, match="latent=512"):
        stylebridge.load(tmp_path / "args.pt")


def test_corrupt_and_foreign_files(tmp_path, golden_ckpt):
    data = golden_ckpt.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"trunc\.pt: not a readable torch checkpoint"):
        stylebridge.load(tmp_path / "trunc.pt")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CheckpointError, match="unrecognised file format"):
        stylebridge.load(tmp_path / "notes.txt")
    (tmp_path / "list.pkl").write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(CheckpointError, match="not an NVlabs network snapshot"):
        stylebridge.load(tmp_path / "list.pkl")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a recognised StyleGAN2 checkpoint"):
        stylebridge.load(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError, match="not a shipped model name"):
        stylebridge.load(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="part must be one of"):
        stylebridge.load(golden_ckpt, part="bogus")
    with pytest.raises(CheckpointError, match="has no 'ema'"):  # a StyleMapGAN part asked of a StyleGAN2 file
        stylebridge.load(golden_ckpt, part="ema")
