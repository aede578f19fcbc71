"""Native model folders: half-precision storage and weights shared with a shipped model."""

from __future__ import annotations

import json

import pytest
import torch

import stylebridge
from stylebridge import CheckpointError, StyleGAN2Config, StyleGAN2Generator
from stylebridge.core import registry
from stylebridge.models.psp import PSP, PSPConfig, PSPEncoderConfig


def _tiny_psp() -> PSP:
    enc = PSPEncoderConfig(num_ws=6, w_dim=16, input_size=32, input_width=4, widths=(4, 8, 16, 32), se_reduction=2)
    dec = StyleGAN2Config(resolution=16, z_dim=16, w_dim=16, mapping_layers=2, channel_divisor=32)
    return PSP(PSPConfig(encoder=enc, decoder=dec, resize_to=8)).eval()


@pytest.fixture
def shipped_dir(tmp_path, monkeypatch):
    weights = tmp_path / "weights"
    monkeypatch.setattr(registry, "WEIGHTS_DIR", weights)
    return weights


def test_half_precision_storage_loads_back_as_fp32(tmp_path):
    model = _tiny_psp()
    model.save_pretrained(tmp_path / "half", dtype=torch.float16)
    model.save_pretrained(tmp_path / "full")
    half, full = (tmp_path / d / "model.safetensors" for d in ("half", "full"))
    assert half.stat().st_size < 0.6 * full.stat().st_size
    assert json.loads((tmp_path / "half" / "config.json").read_text())["stored_dtype"] == "float16"
    again = stylebridge.load(tmp_path / "half")
    for k, v in model.state_dict().items():
        w = again.state_dict()[k]
        assert w.dtype == v.dtype, k  # fp32 in memory, int buffers untouched
        torch.testing.assert_close(w, v.to(torch.float16).to(v.dtype) if v.is_floating_point() else v, rtol=0, atol=0)


def test_shared_weights_come_from_the_shipped_model(tmp_path, shipped_dir):
    model = _tiny_psp()
    G = StyleGAN2Generator(model.config.decoder)
    G.load_state_dict(model.decoder.state_dict())
    G.save_pretrained(shipped_dir / "gen")
    model.save_pretrained(tmp_path / "enc", shared={"decoder.": "gen"})
    model.save_pretrained(tmp_path / "whole")
    size = {d: (tmp_path / d / "model.safetensors").stat().st_size for d in ("enc", "whole")}
    assert size["enc"] < size["whole"]
    again = stylebridge.load(tmp_path / "enc")
    ours, theirs = model.state_dict(), again.state_dict()
    assert set(ours) == set(theirs) and all(torch.equal(ours[k], theirs[k]) for k in ours)
    # A different generator under that name is refused, naming the problem.
    with torch.no_grad():
        next(G.parameters()).add_(1.0)
    G.save_pretrained(shipped_dir / "gen")
    with pytest.raises(CheckpointError, match="digest differs"):
        stylebridge.load(tmp_path / "enc")
    (shipped_dir / "gen" / "config.json").unlink()
    with pytest.raises(CheckpointError, match="not a shipped model"):
        stylebridge.load(tmp_path / "enc")
    with pytest.raises(ValueError, match="not a shipped model"):
        model.save_pretrained(tmp_path / "x", shared={"decoder.": "nope"})
    with pytest.raises(ValueError, match="no weights under"):
        model.save_pretrained(tmp_path / "x", shared={"nothing.": "gen"})
