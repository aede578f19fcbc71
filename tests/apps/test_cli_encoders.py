"""The command line for encoders and translators: train encoder (psp / e4e / actmap), encode, translate."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stylebridge.apps.cli import main
from stylebridge.core.imageio import save_image
from stylebridge.data import synthfaces as sf
from stylebridge.models.stylegan2 import StyleGAN2Config, StyleGAN2Generator

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="module")
def generator(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    G = StyleGAN2Generator(StyleGAN2Config(resolution=16, z_dim=32, w_dim=32, mapping_layers=2,
                                           channels=(32, 32, 16)))
    G.compute_w_avg()
    path = tmp_path_factory.mktemp("gen") / "G"
    G.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("faces")
    r = sf.render_seeds([10_000_000, 10_000_001, 10_000_002], 16)
    for i, (img, sketch) in enumerate(zip(r["image"], r["sketch"])):
        save_image(img, out / "rgb" / f"f{i}.png")
        save_image(sketch, out / "sketch" / f"f{i}.png")
    (out / "rgb" / "broken.png").write_bytes(b"not an image")
    return out


def test_train_psp_then_encode_and_translate(tmp_path, generator, faces, capsys):
    run = tmp_path / "psp"
    assert main(["train", "encoder", "--arch", "psp", "--generator", str(generator), "--config",
                 str(CONFIGS / "encoder" / "tiny-psp.yaml"), "--out", str(run), "--steps", "2"]) == 0
    assert (run / "model" / "config.json").is_file()
    # A second start into the same folder must not silently overwrite the run.
    assert main(["train", "encoder", "--arch", "psp", "--generator", str(generator), "--out", str(run)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["encode", "--model", str(run / "model"), "--images", str(faces / "rgb"), "--out",
                 str(tmp_path / "enc"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "wrote 3 encodings" in out and "1 file skipped" in out
    assert len(list((tmp_path / "enc").rglob("*.safetensors"))) == 3
    assert main(["translate", "--model", str(run / "model"), "--images", str(faces / "rgb"), "--out",
                 str(tmp_path / "tr"), "--samples", "2", "--quiet"]) == 0
    assert "wrote 3 translations" in capsys.readouterr().out
    assert main(["translate", "--model", str(run / "model"), "--images", str(faces / "rgb"), "--out",
                 str(tmp_path / "tr2"), "--walk", "1,2", "--quiet"]) == 2
    assert "--walk does not apply to a pSp / e4e model (PSP)" in capsys.readouterr().err


def test_train_actmap_then_translate_and_walk(tmp_path, generator, faces, capsys):
    run = tmp_path / "am"
    assert main(["train", "encoder", "--arch", "actmap", "--generator", str(generator), "--config",
                 str(CONFIGS / "actmap" / "tiny.yaml"), "--out", str(run), "--steps", "2"]) == 0
    model = run / "translator"
    assert (model / "config.json").is_file()
    assert main(["translate", "--model", str(model), "--images", str(faces / "sketch"), "--out",
                 str(tmp_path / "t"), "--style-seed", "3", "--quiet"]) == 0
    assert "wrote 3 translations" in capsys.readouterr().out
    assert main(["translate", "--model", str(model), "--images", str(faces / "sketch" / "f0.png"), "--out",
                 str(tmp_path / "w"), "--walk", "1,2", "--frames", "3", "--quiet"]) == 0
    assert (tmp_path / "w" / "f0.gif").is_file() and len(list((tmp_path / "w" / "f0").glob("*.png"))) == 3
    assert main(["train", "encoder", "--arch", "actmap", "--task", "sketch", "--generator", str(generator),
                 "--out", str(tmp_path / "x")]) == 2
    assert "takes no --task" in capsys.readouterr().err
    assert main(["translate", "--model", str(generator), "--images", str(faces / "rgb"), "--out",
                 str(tmp_path / "y"), "--quiet"]) == 2
    assert ("expected an activation-map translator, a pSp / e4e model, a pix2pixHD generator or StyleMapGAN"
            in capsys.readouterr().err)
