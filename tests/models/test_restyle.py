"""ReStyle: the iterative residual loop, official-layout checkpoints (restyle_psp / restyle_e4e) and the e4e form."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import stylebridge
from stylebridge import CheckpointError
from stylebridge.core.safe_pickle import load_torch_file
from stylebridge.models.restyle import BackboneEncoder, ReStyle, ReStyleEncoderConfig, expand_input_layer


def _official(tmp_path, golden_dir, encoder_type: str, n_iters: int | None = 3, input_nc: int = 6,
              gradual: bool = False) -> tuple[str, dict]:
    """The golden pSp checkpoint turned into a restyle-encoder checkpoint: same decoder and opts layout, a
    6-channel encoder of ``encoder_type`` with seeded random weights (official key names)."""
    ckpt = load_torch_file(golden_dir / "psp_gradual_style_encoder.pt")
    psp = stylebridge.load(golden_dir / "psp_gradual_style_encoder.pt")
    c = psp.config.encoder
    torch.manual_seed(0)
    if gradual:
        from stylebridge.models.psp import PSPEncoder, PSPEncoderConfig

        fields = {**c.to_dict(), "in_channels": input_nc}
        fields["widths"] = tuple(fields["widths"])
        enc = PSPEncoder(PSPEncoderConfig(**fields))
    else:
        fields = {k: v for k, v in c.to_dict().items() if k != "learn_in_w"}
        fields.update(in_channels=input_nc, base="e4e" if "Progressive" in encoder_type else "psp",
                      widths=tuple(fields["widths"]))
        enc = BackboneEncoder(ReStyleEncoderConfig(**fields))
    for p in enc.parameters():  # random weights of a useful scale (BatchNorm stays as built)
        p.data.normal_(0, 0.05) if p.ndim > 1 else None
    sd = {k: v for k, v in ckpt["state_dict"].items() if k.startswith("decoder.")}
    sd.update({f"encoder.{k}": v for k, v in enc.state_dict().items()})
    opts = dict(ckpt["opts"], encoder_type=encoder_type, input_nc=input_nc)
    if n_iters is not None:
        opts["n_iters_per_batch"] = n_iters
    ckpt = {"state_dict": sd, "opts": opts, "latent_avg": ckpt["latent_avg"]}
    path = tmp_path / f"restyle_{encoder_type}.pt"
    torch.save(ckpt, path)
    return str(path), enc.state_dict()


def _official_loop(model: ReStyle, x: torch.Tensor, n: int) -> list[torch.Tensor]:
    """restyle-encoder's run_on_batch: avg image first, then the current reconstruction (face-pooled)."""
    G, enc = model.decoder, model.encoder
    side = x.shape[-1]
    avg = F.adaptive_avg_pool2d(G.synthesize(model.latent_avg[None], noise_mode="const"), side)
    y, latent, out = avg.expand(x.shape[0], -1, -1, -1), None, []
    for _ in range(n):
        codes = enc(torch.cat([x, y], 1))
        latent = codes + (model.latent_avg[None] if latent is None else latent)
        y = F.adaptive_avg_pool2d(G.synthesize(latent, noise_mode="const"), side)
        out.append(latent)
    return out


@pytest.mark.parametrize("encoder_type,base", [("BackboneEncoder", "psp"), ("ProgressiveBackboneEncoder", "e4e")])
def test_official_restyle_checkpoints_load_and_follow_the_official_loop(tmp_path, golden_dir, encoder_type, base):
    path, enc_sd = _official(tmp_path, golden_dir, encoder_type)
    model = stylebridge.load(path)
    assert isinstance(model, ReStyle) and model.base == base and model.config.n_iters == 3
    assert model.config.encoder.encoder_type == "backbone" and model.input_channels == 3
    for k, v in enc_sd.items():
        assert torch.equal(model.encoder.state_dict()[k], v.float()), k
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        it = model.iterate(x)
        ref = _official_loop(model, x, 3)
        assert len(it.w_plus) == 3
        for a, b in zip(it.w_plus, ref):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        assert (it.w_plus[1] - it.w_plus[0]).abs().max() > 1e-4  # each iteration moves the code
        if base == "e4e":  # ReStyle-e4e: every residual is one w plus per-row deltas
            codes = model.encoder(torch.cat([x, model.average_image(2)], 1))
            model.encoder.progressive_stage = 0
            w_only = model.encoder(torch.cat([x, model.average_image(2)], 1))
            assert torch.equal(w_only, w_only[:, :1].expand_as(w_only))
            torch.testing.assert_close(codes[:, 0], w_only[:, 0])


def test_gradual_encoder_with_six_channels_is_restyle_psp(tmp_path, golden_dir):
    path, _ = _official(tmp_path, golden_dir, "GradualStyleEncoder", n_iters=None, gradual=True)
    model = stylebridge.load(path)
    assert isinstance(model, ReStyle) and model.config.encoder.encoder_type == "gradual"
    assert model.config.n_iters == 5  # the official inference default when opts do not say
    # the plain golden pSp stays a pSp
    assert not isinstance(stylebridge.load(golden_dir / "psp_gradual_style_encoder.pt"), ReStyle)


def test_resnet_restyle_is_refused_with_a_message(tmp_path, golden_dir):
    path, _ = _official(tmp_path, golden_dir, "ResNetBackboneEncoder")
    with pytest.raises(CheckpointError, match="ResNet-34 trunk"):
        stylebridge.load(path)


def test_native_round_trip_and_pipeline(tmp_path, golden_dir):
    path, _ = _official(tmp_path, golden_dir, "ProgressiveBackboneEncoder")
    model = stylebridge.load(path)
    model.save_pretrained(tmp_path / "native")
    again = stylebridge.load(tmp_path / "native")
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(again.encode(x), model.encode(x))
    from stylebridge.pipelines.encoder import EncoderPipeline

    spec = EncoderPipeline(model).input_spec
    assert spec.channels == 3 and spec.kind == "rgb"  # the pipeline feeds images; ReStyle adds its own channels


def test_expand_input_layer_zero_pads():
    sd = {"input_layer.0.weight": torch.ones(4, 3, 3, 3)}
    out = expand_input_layer(sd, 6)["input_layer.0.weight"]
    assert out.shape == (4, 6, 3, 3) and out[:, 3:].abs().sum() == 0 and torch.equal(out[:, :3], sd[
        "input_layer.0.weight"])


def test_bad_inputs():
    with pytest.raises(ValueError, match="in_channels must be twice"):
        ReStyleEncoderConfig(in_channels=5)
    with pytest.raises(ValueError, match="encoder_type"):
        ReStyleEncoderConfig(encoder_type="fpn")


def test_restyle_inverter(tmp_path, golden_dir):
    from stylebridge.invert import make_inverter

    path, _ = _official(tmp_path, golden_dir, "ProgressiveBackboneEncoder")
    inv = make_inverter("restyle", model=path, n_iters=2)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    res = inv.invert(x)
    assert res.w_plus.shape == (2, 8, 64) and res.extras["iterations"] == 2
    assert len(res.extras["iteration_images"]) == 2 and torch.equal(res.extras["iteration_images"][-1], res.images)
    assert inv.metadata()["n_iters"] == "2"
    with pytest.raises(ValueError, match="needs a ReStyle model"):
        make_inverter("restyle", model=golden_dir / "psp_gradual_style_encoder.pt")
    with pytest.raises(ValueError, match="takes no option steps"):
        make_inverter("restyle", model=path, steps=3)
