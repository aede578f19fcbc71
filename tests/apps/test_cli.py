"""The command line: generate, convert, info, demo."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from stylebridge.apps.cli import main
from stylebridge.pipelines.generate import parse_seeds, seed_to_z


def test_parse_seeds():
    assert parse_seeds("0-3,7, 10-11") == [0, 1, 2, 3, 7, 10, 11]
    with pytest.raises(ValueError, match="invalid seed range '5-2'"):
        parse_seeds("5-2")
    with pytest.raises(ValueError, match="invalid seed range 'x'"):
        parse_seeds("1,x")


def test_seed_to_z_matches_nvlabs_generate():
    z = seed_to_z([3], 8)
    np.testing.assert_array_equal(z.numpy()[0], np.random.RandomState(3).randn(8).astype(np.float32))


def test_convert_then_generate_equals_generate_from_original(tmp_path, golden_ckpt, capsys):
    assert main(["generate", "--model", str(golden_ckpt), "--seeds", "0-5", "--truncation", "0.7",
                 "--out", str(tmp_path / "orig.png"), "--quiet"]) == 0
    assert main(["convert", str(golden_ckpt), str(tmp_path / "native")]) == 0
    assert (tmp_path / "native" / "config.json").is_file() and (tmp_path / "native" / "model.safetensors").is_file()
    assert main(["generate", "--model", str(tmp_path / "native"), "--seeds", "0-5", "--truncation", "0.7",
                 "--out", str(tmp_path / "conv.png"), "--quiet"]) == 0
    a = np.asarray(Image.open(tmp_path / "orig.png"))
    b = np.asarray(Image.open(tmp_path / "conv.png"))
    assert a.shape == (2 + 2 * 34, 2 + 3 * 34, 3)  # 2 rows of 3 32-px images with 2-px padding
    np.testing.assert_array_equal(a, b)
    # Folder output: one PNG per seed.
    assert main(["generate", "--model", str(tmp_path / "native"), "--seeds", "4,5", "--out", str(tmp_path / "imgs"),
                 "--quiet"]) == 0
    assert sorted(p.name for p in (tmp_path / "imgs").iterdir()) == ["seed0004.png", "seed0005.png"]
    capsys.readouterr()


def test_info_and_convert_discriminator(tmp_path, golden_ckpt, capsys):
    assert main(["info", str(golden_ckpt)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["format"] == "rosinality-train" and doc["parts"] == ["g_ema", "g", "d"]
    assert doc["config"]["resolution"] == 32 and doc["parameters"] == 96_851 and doc["args"]["latent"] == 64
    assert main(["convert", str(golden_ckpt), str(tmp_path / "d"), "--part", "d"]) == 0
    assert main(["info", str(tmp_path / "d")]) == 0
    doc = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert doc["model"] == "StyleGAN2Discriminator" and doc["format"] == "native"


def test_errors_are_one_line_with_exit_code_2(tmp_path, golden_ckpt, capsys):
    assert main(["info", str(tmp_path / "nope.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "nope.pt" in err
    assert main(["generate", "--model", str(golden_ckpt), "--part", "d", "--out", str(tmp_path / "x.png")]) == 2
    assert "holds a StyleGAN2Discriminator; expected StyleGAN2Generator" in capsys.readouterr().err
    assert main(["generate", "--model", str(golden_ckpt), "--seeds", "9-1", "--out", str(tmp_path / "x.png")]) == 2
    assert "invalid seed range" in capsys.readouterr().err


@pytest.mark.integration
def test_demo_writes_its_files(tmp_path, golden_ckpt, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo"), "--model", str(golden_ckpt)]) == 0
    report = json.loads((tmp_path / "demo" / "report.json").read_text())
    assert report["native_round_trip_max_abs_diff"] == 0.0
    for name in ("samples.png", "truncation.png", "mixing.png", "model/config.json"):
        assert (tmp_path / "demo" / name).is_file()
    assert Image.open(tmp_path / "demo" / "truncation.png").size == (2 + 6 * 34, 2 + 4 * 34)


def test_data_synthfaces_and_prepare(tmp_path, capsys):
    out = tmp_path / "sf"
    assert main(["data", "synthfaces", "--count", "5", "--resolution", "32", "--out", str(out),
                 "--with", "sketch,seg,attrs", "--seed", "7", "--quiet"]) == 0
    assert sorted(p.name for p in (out / "images").iterdir())[0] == "00000007.png"
    assert len((out / "attributes.jsonl").read_text().splitlines()) == 5
    (out / "images" / "broken.png").write_bytes(b"not a png")
    assert main(["data", "prepare", str(out / "images"), "--resolution", "16", "--out", str(tmp_path / "p"),
                 "--quiet"]) == 0
    assert "wrote 5 images" in capsys.readouterr().out
    assert "broken.png" in (tmp_path / "p" / "skipped.txt").read_text()
    assert main(["data", "prepare", str(out / "images"), "--resolution", "16", "--out", str(tmp_path / "q"),
                 "--strict", "--quiet"]) == 2
    assert "broken.png" in capsys.readouterr().err
    assert main(["data", "synthfaces", "--count", "2", "--out", str(tmp_path / "x"), "--with", "depth"]) == 2
    assert "unknown extras" in capsys.readouterr().err


def test_data_emoji(tmp_path, capsys):
    from stylebridge.data.emoji import find_emoji_font

    if find_emoji_font() is None:
        pytest.skip("fonts-noto-color-emoji is not installed (apt-get install fonts-noto-color-emoji)")
    assert main(["data", "emoji", "--out", str(tmp_path / "e"), "--resolution", "32", "--background", "#202020"]) == 0
    assert len(list((tmp_path / "e").glob("*.png"))) >= 250
    assert main(["data", "emoji", "--out", str(tmp_path / "e"), "--background", "blue"]) == 2
    assert "hex colour" in capsys.readouterr().err
