"""Folder inference with tiny pSp/e4e models: encode (latents + reconstructions), translate with multi-modal
outputs (pSp's style mixing), input reading per kind, and the model-card evaluation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

import stylebridge
from stylebridge import StyleGAN2Config, StyleGAN2Generator
from stylebridge.core.imageio import to_uint8
from stylebridge.data import synthfaces as sf
from stylebridge.data.export import export_synthfaces
from stylebridge.data.paired import load_input
from stylebridge.evaluate.encoder import evaluate_encoder, latent_statistics, report_markdown
from stylebridge.models.e4e import E4E, E4EConfig, E4EEncoderConfig
from stylebridge.models.psp import PSP, PSPConfig, PSPEncoderConfig
from stylebridge.pipelines.encoder import default_latent_mask, encode_folder, input_preview, translate_folder

ENC = dict(num_ws=6, w_dim=16, input_size=16, input_width=4, widths=(4, 8, 8, 8), se_reduction=2)
DEC = StyleGAN2Config(resolution=16, z_dim=16, w_dim=16, mapping_layers=2, channel_divisor=32)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("sf")
    export_synthfaces(root, 4, 16, extras=("sketch", "seg"), progress=False)
    (root / "images" / "broken.png").write_text("not an image")
    return root


def _model(cls, cfg_cls, enc_cls, path, **enc):
    torch.manual_seed(0)
    m = cls(cfg_cls(encoder=enc_cls(**{**ENC, **enc}), decoder=DEC, resize_to=16))
    m.decoder.compute_w_avg(500)
    m.latent_avg.copy_(m.decoder.w_avg[None].expand_as(m.latent_avg))
    m.eval().save_pretrained(path)
    return path


def test_encode_folder_writes_latents_and_reconstructions(tmp_path, data):
    path = _model(PSP, PSPConfig, PSPEncoderConfig, tmp_path / "psp")
    report = encode_folder(path, data / "images", tmp_path / "out", batch=3, progress=False, precision="fp32")
    assert report.written == 4 and [p.name for p, _ in report.skipped] == ["broken.png"]
    assert "broken.png\t" in (tmp_path / "out" / "skipped.txt").read_text()
    model = stylebridge.load(path)
    for name in ("00000000", "00000003"):
        lat = tmp_path / "out" / "latents" / f"{name}.safetensors"
        w = load_file(str(lat))["w_plus"]
        with safe_open(str(lat), "pt") as f:
            assert f.metadata()["source"] == f"{name}.png"
        x = load_input(data / "images" / f"{name}.png", 3, 16)[None]
        with torch.no_grad():
            torch.testing.assert_close(w, model.encode(x)[0], atol=1e-5, rtol=1e-5)
            img = model.decode(w[None])
        png = np.asarray(Image.open(tmp_path / "out" / "reconstructions" / f"{name}.png"))
        assert np.abs(png.astype(int) - to_uint8(img)[0].astype(int)).max() <= 1
    again = encode_folder(model, data / "images", tmp_path / "out1", batch=1, progress=False,
                          precision="fp32")  # batch-independent
    assert again.written == 4
    torch.testing.assert_close(load_file(str(tmp_path / "out1" / "latents" / "00000002.safetensors"))["w_plus"],
                               load_file(str(tmp_path / "out" / "latents" / "00000002.safetensors"))["w_plus"],
                               atol=1e-5, rtol=1e-5)


def test_translate_sketches_with_psp_style_mixing(tmp_path, data):
    model = stylebridge.load(_model(PSP, PSPConfig, PSPEncoderConfig, tmp_path / "sketch", in_channels=1))
    calls = []
    decode = model.decode

    def spy(w_plus, **kw):
        calls.append(w_plus.clone())
        return decode(w_plus, **kw)

    model.decode = spy
    report = translate_folder(model, data / "sketches", tmp_path / "out", samples=2, batch=4, seed=7,
                              progress=False, precision="fp32")
    assert report.written == 4 and not report.skipped
    names = sorted(p.name for p in (tmp_path / "out").glob("*.png"))
    assert names[:3] == ["00000000.png", "00000000_s0.png", "00000000_s1.png"] and len(names) == 12
    assert Image.open(tmp_path / "out" / "strips" / "00000001.png").size[0] > 3 * 16
    plain, mix0, mix1 = calls  # one batch: the translation, then one decode per sample
    mask = default_latent_mask(6)
    assert mask == [3, 4, 5]
    keep = [i for i in range(6) if i not in mask]
    assert torch.equal(mix0[:, keep], plain[:, keep]) and not torch.equal(mix0[:, mask], plain[:, mask])
    z = torch.randn(2, 16, generator=torch.Generator().manual_seed(7 * 1_000_003 + 2))  # image at position 2
    with torch.no_grad():
        w = model.decoder.map(z)
    torch.testing.assert_close(mix1[2, mask], w[1][None].expand(3, -1))
    a = np.asarray(Image.open(tmp_path / "out" / "00000002_s0.png"), dtype=int)
    b = np.asarray(Image.open(tmp_path / "out" / "00000002_s1.png"), dtype=int)
    assert np.abs(a - b).max() > 0
    model.decode = decode
    translate_folder(model, data / "sketches", tmp_path / "one", samples=2, batch=1, seed=7, progress=False,
                     precision="fp32")
    for name in ("00000002_s1.png", "00000003.png"):  # the same outputs whatever the batch size
        a = np.asarray(Image.open(tmp_path / "out" / name), dtype=int)
        assert np.abs(a - np.asarray(Image.open(tmp_path / "one" / name), dtype=int)).max() <= 1
    with pytest.raises(ValueError, match="latent_mask is empty"):
        translate_folder(model, data / "sketches", tmp_path / "x", samples=1, latent_mask=[], progress=False)


def test_default_mask_is_psp_rows_8_to_17():
    assert default_latent_mask(18) == list(range(8, 18)) and default_latent_mask(10) == [8, 9]


def test_inputs_are_read_per_kind(tmp_path, data):
    r = sf.render_seeds([1], 16, ("image", "seg", "sketch"))
    sketch = load_input(data / "sketches" / "00000001.png", 1, 16)
    torch.testing.assert_close(sketch, r["sketch"][0], atol=1 / 127.5, rtol=0)
    seg = load_input(data / "segmentation" / "00000001.png", len(sf.SEG_LABELS), 16)
    assert torch.equal(seg.argmax(0), r["seg"][0]) and seg.sum(0).eq(1).all()
    rgba = np.zeros((16, 16, 4), dtype=np.uint8)
    rgba[..., :3], rgba[..., 3] = 200, 255
    rgba[:8, :, 3] = 0  # top half transparent: missing
    Image.fromarray(rgba, "RGBA").save(tmp_path / "masked.png")
    x = load_input(tmp_path / "masked.png", 4, 16)
    assert x.shape == (4, 16, 16) and x[3, :8].eq(1).all() and x[3, 8:].eq(0).all() and x[:3, :8].eq(0).all()
    for c in (1, 3, 4, 10):
        assert input_preview(torch.rand(2, c, 8, 8), 16).shape == (2, 3, 16, 16)


def test_evaluate_encoder_names_its_networks(tmp_path):
    path = _model(E4E, E4EConfig, E4EEncoderConfig, tmp_path / "e4e")
    report = evaluate_encoder(path, "inversion", n=4, batch=2, timing_repeats=1, progress=False)
    assert report["seeds"] == [10_000_000, 10_000_003] and report["resolution"] == 16
    model = stylebridge.load(path)
    items = sf.render_seeds(list(range(10_000_000, 10_000_004)), 16, ("image",))["image"]
    with torch.no_grad():
        mse = float((model(items, resize=False) - items).square().mean())
    assert report["mse"] == pytest.approx(mse, rel=1e-4)
    assert report["perceptual"]["network"].startswith("synthfaces-domain distance")
    assert len(report["attributes"]["per_attribute"]) == len(sf.ATTRIBUTES)
    assert 0 <= report["attributes"]["accuracy_mean"] <= 1
    assert {(r["precision"], r["batch"]) for r in report["timing"]["rows"]} == {
        ("fp32", 1), ("fp32", 8), ("bf16", 1), ("bf16", 8)}
    lat = report["latents"]
    assert lat["row_spread"] >= 0 and lat["to_w_avg_real"] > 0 and lat["to_nearest_w_real"] > 0
    text = report_markdown(report)
    assert "synthfaces-domain predict" in text and "| bf16 | 8 |" in text and "to the nearest mapped w" in text
    json.dumps(report)


def test_latent_statistics_of_mapped_w():
    G = StyleGAN2Generator(StyleGAN2Config(resolution=16, z_dim=16, w_dim=16, mapping_layers=2, channel_divisor=32))
    G.compute_w_avg()
    with torch.no_grad():
        ref = G.map(torch.randn(70, 16, generator=torch.Generator().manual_seed(3)))[:60]  # the statistic's own w
    repeated = ref[:10, None].expand(10, G.num_ws, 16)
    stats = latent_statistics(repeated, G, n_real=60, seed=3)
    assert stats["row_spread"] < 1e-5 and stats["to_nearest_w"] == pytest.approx(0, abs=1e-2)  # cdist: matmul form
    spread = latent_statistics(repeated + torch.randn(10, G.num_ws, 16), G, n_real=60, seed=3)
    assert spread["row_spread"] > 1 and spread["to_nearest_w"] > 0.5
