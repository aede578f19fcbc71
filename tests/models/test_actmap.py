"""Activation-map translator: encoder shapes per target layer, exact migration, save/load, styles, walks, errors."""

from __future__ import annotations

import json
from dataclasses import astuple

import pytest
import torch
import torch.nn.functional as F

import stylebridge
from stylebridge import CheckpointError, StyleGAN2Config, StyleGAN2Generator
from stylebridge.models.actmap import (
    ActivationMapEncoder,
    ActivationMapEncoderConfig,
    ActivationMapTranslator,
    ActivationMapTranslatorConfig,
)

SMALL = dict(width=8, max_width=32, final_blocks=1)


def tiny_generator(resolution: int = 16) -> StyleGAN2Generator:
    channels = {16: (32, 32, 16), 32: (32, 32, 16, 16)}[resolution]
    G = StyleGAN2Generator(StyleGAN2Config(resolution=resolution, z_dim=16, w_dim=16, mapping_layers=2,
                                           channels=channels))
    G.compute_w_avg(200)
    return G.eval()


@pytest.fixture(scope="module")
def G16() -> StyleGAN2Generator:
    torch.manual_seed(1)
    return tiny_generator(16)


@pytest.fixture(scope="module")
def T16(G16) -> ActivationMapTranslator:
    torch.manual_seed(2)
    return ActivationMapTranslator.from_generator(G16, "b8.conv0", **SMALL).eval()


def images(n: int = 2, size: int = 16, channels: int = 3) -> torch.Tensor:
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(n + size)) * 2 - 1


def one_line(exc: pytest.ExceptionInfo) -> bool:
    return "\n" not in str(exc.value)


# ---------------------------------------------------------------------------------------------------------------
# Encoder and migration


@pytest.mark.parametrize("layer", ["b8.conv0", "b8.conv1", "b16.conv0", "b32.conv1"])
@pytest.mark.parametrize("input_size", [32, 64])
def test_encoder_output_matches_the_target_layer(layer, input_size):
    G = tiny_generator(32)
    T = ActivationMapTranslator.from_generator(G, layer, input_size=input_size, **SMALL)
    c, r, _ = G.feature_shape(layer)
    act, skip = T.encode(images(2, 24))  # any input size: resized to input_size
    assert act.shape == (2, c, r, r)
    assert skip is not None and skip.shape == (2, 3, r // 2, r // 2)
    assert T.skip_layer == f"b{r // 2}.img" and G.feature_shape(T.skip_layer) == (3, r // 2, r // 2)
    # Stride-2 stages from the input size down to the target size.
    assert T.config.encoder.num_stages == (input_size // r).bit_length() - 1
    no_skip = ActivationMapTranslator.from_generator(G, layer, predict_img=False, **SMALL)
    act, skip = no_skip.encode(images(1, 32))
    assert act.shape == (1, c, r, r) and skip is None and no_skip.skip_layer is None


@pytest.mark.parametrize("layer", ["b8.conv0", "b8.conv1", "b16.conv0", "b16.conv1", "b32.conv0"])
def test_migration_with_the_true_activation_and_skip_image_reproduces_the_generator(layer):
    G = tiny_generator(32)
    T = ActivationMapTranslator.from_generator(G, layer, **SMALL)
    w = G.map(torch.randn(3, 16))
    with torch.no_grad():
        img, feats = astuple(G.synthesize_with_features(w, [layer, T.skip_layer], noise_mode="const"))
        out = T.synthesize(feats[layer], feats[T.skip_layer], w, noise_mode="const")
        assert torch.equal(out, img)  # bitwise: the same ops on the same values
        noise = G.make_noise(3)
        img_n, feats_n = astuple(G.synthesize_with_features(w, [layer, T.skip_layer], noise=noise))
        assert torch.equal(T.synthesize(feats_n[layer], feats_n[T.skip_layer], w, noise=noise), img_n)
        # Without the skip image the low-resolution colours are missing.
        assert not torch.allclose(T.synthesize(feats[layer], None, w), img, atol=1e-3)


def test_gradients_reach_the_encoder_only(T16):
    T = T16
    act, skip = T.encode(images(2))
    T.synthesize(act, skip, T.generator.w_avg[None].expand(2, -1)).square().mean().backward()
    assert all(p.grad is not None for p in T.encoder.parameters())
    assert all(p.grad is None and not p.requires_grad for p in T.generator.parameters())
    T.encoder.zero_grad(set_to_none=True)


# ---------------------------------------------------------------------------------------------------------------
# Native format


def test_save_load_round_trip_is_exact(T16, tmp_path):
    T16.save_pretrained(tmp_path / "t", metadata={"steps": 3})
    doc = json.loads((tmp_path / "t" / "config.json").read_text())
    assert doc["model_type"] == "actmap-translator" and doc["config"]["layer"] == "b8.conv0"
    loaded = stylebridge.load(tmp_path / "t")
    assert isinstance(loaded, ActivationMapTranslator) and loaded.config == T16.config
    a, b = T16.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    x = images(2)
    assert torch.equal(loaded.translate(x, seed=3), T16.translate(x, seed=3))
    with pytest.raises(CheckpointError, match="expected ActivationMapEncoder") as exc:
        ActivationMapEncoder.from_pretrained(tmp_path / "t")
    assert one_line(exc)
    T16.encoder.save_pretrained(tmp_path / "e")
    enc = stylebridge.load(tmp_path / "e")
    assert isinstance(enc, ActivationMapEncoder) and enc.config == T16.config.encoder


# ---------------------------------------------------------------------------------------------------------------
# Styles and walks


def test_style_options(T16):
    T, G = T16, T16.generator
    x = images(3)
    mean = T.translate(x)
    assert mean.shape == (3, 3, 16, 16) and torch.equal(mean, T(x))
    assert torch.equal(mean, T.translate(x, w=G.w_avg))
    seeded = T.translate(x, seed=5)
    assert not torch.allclose(seeded, mean)
    assert torch.equal(seeded, T.translate(x, w=T.seed_w([5])))
    per_image = T.translate(x, seed=[5, 6, 7])
    torch.testing.assert_close(per_image[0], seeded[0])
    assert not torch.allclose(per_image[1], seeded[1])
    truncated = T.translate(x, seed=5, truncation_psi=0.0)  # psi 0: the mean w
    torch.testing.assert_close(truncated, mean)
    # W+ rows 0-1 (b4.conv1, b4.torgb, b8.conv0) belong to layers the encoder replaced: they are unused.
    w_plus = G.mix(T.seed_w([1, 1, 1]), T.seed_w([2, 2, 2]), crossover=2)
    torch.testing.assert_close(T.translate(x, w=w_plus), T.translate(x, w=T.seed_w([2]).expand(3, -1)))
    w_plus = G.mix(T.seed_w([1, 1, 1]), T.seed_w([2, 2, 2]), crossover=3)  # row 2 (b8.conv1) is used
    assert not torch.allclose(T.translate(x, w=w_plus), T.translate(x, w=T.seed_w([2]).expand(3, -1)))
    # The structure comes from the image: different inputs, same style → different outputs.
    assert not torch.allclose(seeded[0], seeded[1])
    # 1-channel inputs (sketches) are repeated to RGB; other sizes are resized.
    gray = images(2, 16, 1)
    assert torch.equal(T.translate(gray), T.translate(gray.expand(-1, 3, -1, -1)))
    assert T.translate(images(2, 40)).shape == (2, 3, 16, 16)


def test_style_from_a_psp_model(T16):
    from stylebridge.models.psp import PSP, PSPConfig, PSPEncoderConfig

    enc = PSPEncoderConfig(num_ws=6, w_dim=16, input_size=32, input_width=4, widths=(4, 8, 16, 32), se_reduction=2)
    dec = StyleGAN2Config(resolution=16, z_dim=16, w_dim=16, mapping_layers=2, channel_divisor=32)
    psp = PSP(PSPConfig(encoder=enc, decoder=dec, resize_to=8)).eval()
    x = images(2)
    with torch.no_grad():
        w_plus = psp.encode(F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False))
    torch.testing.assert_close(T16.translate(x, style_encoder=psp), T16.translate(x, w=w_plus))


def test_walk_between_seeds(T16):
    T = T16
    x = images(2)
    frames = T.walk(x, [3, 4, 5], frames=5)
    assert frames.shape == (5, 2, 3, 16, 16)
    torch.testing.assert_close(frames[0], T.translate(x, seed=3))
    torch.testing.assert_close(frames[2], T.translate(x, seed=4))
    torch.testing.assert_close(frames[4], T.translate(x, seed=5))
    loop = T.walk(x, [3, 4], frames=4, loop=True)  # 3 → 4 → back towards 3
    torch.testing.assert_close(loop[0], frames[0])
    torch.testing.assert_close(loop[2], T.translate(x, seed=4))
    assert not torch.allclose(loop[3], loop[0])


# ---------------------------------------------------------------------------------------------------------------
# Errors


def test_bad_inputs_give_one_line_errors(T16):
    T = T16
    cases = [
        (lambda: T.translate(images(2)[0]), ValueError, r"add a batch dimension"),
        (lambda: T.translate(images(2, 16, 2)), ValueError, r"3 channels \(1 repeated"),
        (lambda: T.translate((images(2) * 127.5 + 127.5).to(torch.uint8)), ValueError, r"float in \[-1, 1\]"),
        (lambda: T.translate(images(2) * 127.5 + 127.5), ValueError, r"x / 127.5 - 1"),
        (lambda: T.translate(images(2), w=torch.zeros(2, 7)), ValueError, r"w must be \[16\]"),
        (lambda: T.translate(images(2), w=torch.zeros(3, 16)), ValueError, r"1 or 2"),
        (lambda: T.translate(images(2), w=T.generator.w_avg, seed=1), ValueError, r"at most one of w, seed"),
        (lambda: T.translate(images(2), seed=[1, 2, 3]), ValueError, r"one per image"),
        (lambda: T.translate(images(2), seed=-1), ValueError, r"non-negative"),
        (lambda: T.translate(images(2), style_encoder=torch.nn.Linear(2, 2)), TypeError, r"encode\(images\)"),
        (lambda: T.walk(images(2), [1], frames=4), ValueError, r"at least 2"),
        (lambda: T.walk(images(2), [1, 2], frames=1), ValueError, r"frames must be"),
        (lambda: T.encoder(images(2, 24)), ValueError, r"input must be \[N, 3, 16, 16\]"),
    ]
    for fn, exc_type, pattern in cases:
        with pytest.raises(exc_type, match=pattern) as exc:
            fn()
        assert one_line(exc), pattern


def test_config_errors(G16):
    g = G16.config
    with pytest.raises(ValueError, match=r"b\{r\}\.conv0 or b\{r\}\.conv1") as exc:
        ActivationMapTranslatorConfig.for_generator(g, "b12.conv0")
    assert one_line(exc)
    with pytest.raises(ValueError, match=r"got 'b8\.torgb'"):
        ActivationMapTranslatorConfig.for_generator(g, "b8.torgb")
    with pytest.raises(ValueError, match="beyond the 16-px generator"):
        ActivationMapTranslatorConfig.for_generator(g, "b32.conv0")
    bad = ActivationMapEncoderConfig(target_size=8, target_channels=16, input_size=16)
    with pytest.raises(ValueError, match=r"target_channels=16 \(layer b8.conv0 needs 32\)"):
        ActivationMapTranslatorConfig(generator=g, encoder=bad, layer="b8.conv0")
    with pytest.raises(ValueError, match="input_size must be a power of two >= target_size"):
        ActivationMapEncoderConfig(target_size=16, input_size=8)
    # Nested dicts (as read from config.json) become dataclasses.
    cfg = ActivationMapTranslatorConfig.for_generator(g, "b8.conv1", width=8)
    again = ActivationMapTranslatorConfig(**cfg.to_dict())
    assert again == cfg and again.encoder.width == 8 and again.encoder.input_size == 16


# ---------------------------------------------------------------------------------------------------------------
# Library functions behind the CLI and the model card


def test_translate_folder_writes_translations_and_walks(T16, tmp_path):
    from PIL import Image

    from stylebridge.pipelines.actmap import translate_folder

    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    Image.new("RGB", (20, 30), (200, 10, 10)).save(src / "a.png")
    Image.new("L", (16, 16), 128).save(src / "sub" / "b.jpg")
    (src / "bad.png").write_bytes(b"not an image")  # skipped with a warning
    out = tmp_path / "out"
    written = translate_folder(T16, src, out, seed=3, progress=False, precision="fp32")
    assert sorted(p.relative_to(out).as_posix() for p in written) == ["a.png", "sub/b.png"]
    with Image.open(out / "a.png") as img:
        assert img.size == (16, 16)
    walk = translate_folder(T16, src / "a.png", tmp_path / "walk", walk_seeds=[1, 2], frames=3, progress=False)
    assert sorted(p.relative_to(tmp_path / "walk").as_posix() for p in walk) == [
        "a.gif", "a/frame0000.png", "a/frame0001.png", "a/frame0002.png"]
    with pytest.raises(ValueError, match="walk sets the styles itself"):
        translate_folder(T16, src, out, seed=1, walk_seeds=[1, 2], progress=False)
    with pytest.raises(ValueError, match="holds a DomainNetwork; expected an activation-map translator"):
        translate_folder(stylebridge.load("synthfaces-domain"), src, out, progress=False)


def test_evaluation_functions(T16, tmp_path, monkeypatch):
    from PIL import Image

    from stylebridge.data import emoji
    from stylebridge.evaluate.translation import (
        EVAL_KINDS,
        emoji_grid,
        emoji_realism,
        evaluate_translation,
        evaluation_inputs,
        results_table,
        translation_grid,
        translator_fn,
    )

    for kind in EVAL_KINDS:
        inp, target = evaluation_inputs(kind, [10_000_000, 10_000_001], 16)
        assert inp.shape == target.shape == (2, 3, 16, 16) and inp.min() >= -1 and inp.max() <= 1
    fn = translator_fn(T16, seed=2)
    res = evaluate_translation(fn, n=3, resolution=16, batch_size=2)
    key = "distance[synthfaces-domain]"
    assert res["_info"] == {"network": "synthfaces-domain", "n": 3, "resolution": 16, "first_seed": 10_000_000}
    assert all(res[k]["mse"] > 0 and res[k][key] > 0 for k in EVAL_KINDS)
    ident = evaluate_translation(lambda x: x, n=2, resolution=16, kinds=["reconstruction"])
    assert ident["reconstruction"]["mse"] == 0 and ident["reconstruction"][key] < 1e-6
    table = results_table({"actmap": res})
    assert f"| system | input | MSE | {key} |" in table and "| actmap | sketch |" in table
    assert translation_grid({"actmap": fn}, tmp_path / "grid.png", count=2, resolution=16).is_file()
    # The emoji grid, with a stand-in for the font (rendering the whole set takes seconds) and without a font.
    fake = [(f"E{i}", Image.new("RGB", (16, 16), (i * 40, 90, 200))) for i in range(5)]
    monkeypatch.setattr(emoji, "render_emoji", lambda resolution, font_path=None: fake)
    path = emoji_grid({"actmap": fn}, tmp_path / "emoji.png", count=4, resolution=16)
    with Image.open(path) as img:
        assert img.size == (2 + 4 * 18, 2 + 2 * 18)  # 2 groups of (input | output) per row, 2 rows
    # How synthfaces-like the translations of the whole set are: an identity "translator" scores the raw emoji.
    real = emoji_realism({"same": lambda x: x, "actmap": fn}, resolution=16, n_real=8)
    d = real["distances"]
    assert real["metric"] == "FD[synthfaces-domain]" and (real["n_emoji"], real["n_real"]) == (5, 8)
    assert d["same"] == pytest.approx(d["emoji (untranslated)"])
    assert d["rendered synthfaces (floor)"] < d["emoji (untranslated)"] and d["actmap"] > 0

    def no_font(resolution, font_path=None):
        raise FileNotFoundError("emoji font NotoColorEmoji.ttf not found: apt-get install fonts-noto-color-emoji")

    monkeypatch.setattr(emoji, "render_emoji", no_font)
    assert emoji_grid({"actmap": fn}, tmp_path / "none.png") is None and not (tmp_path / "none.png").exists()
    assert emoji_realism({"actmap": fn}, resolution=16) is None


def test_prepare_images_converts_channels_and_refuses_the_rest():
    from stylebridge.core.imageio import prepare_images

    gray = torch.rand(2, 1, 8, 8) * 2 - 1
    assert torch.equal(prepare_images(gray, 3, 8), gray.expand(-1, 3, -1, -1))
    rgb = torch.stack([torch.full((8, 8), v) for v in (1.0, -1.0, 0.5)])[None]
    luma = prepare_images(rgb, 1, 8)
    assert luma.shape == (1, 1, 8, 8)
    torch.testing.assert_close(luma, torch.full((1, 1, 8, 8), 0.299 - 0.587 + 0.5 * 0.114))
    assert prepare_images(rgb, 1, 4).shape == (1, 1, 4, 4)
    with pytest.raises(ValueError, match="must have 3 channels"):
        prepare_images(torch.zeros(1, 4, 8, 8), 3, 8)
