"""pix2pixHD generators behind the pipeline interface and ``stylebridge translate``: one-image (3-channel) and
two-image (6-channel, ``--images2``) inputs, and the one-line errors of the two-folder form."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylebridge.apps.cli import main
from stylebridge.models.pix2pixhd import Pix2PixHDGenerator, Pix2PixHDGeneratorConfig
from stylebridge.pipelines.base import pipeline_for
from stylebridge.pipelines.pix2pixhd import DEFAULT_SIZE, Pix2PixHDPipeline


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


def _model(tmp_path: Path, in_channels: int, resolution: int = 16) -> tuple[Pix2PixHDGenerator, Path]:
    torch.manual_seed(0)
    G = Pix2PixHDGenerator(Pix2PixHDGeneratorConfig(in_channels=in_channels, ngf=4, n_downsample_global=2,
                                                    n_blocks_global=1, resolution=resolution)).eval()
    return G, G.save_pretrained(tmp_path / f"g{in_channels}")


def _images(folder: Path, names: list[str], seed: int, size: int = 16) -> Path:
    rng = np.random.default_rng(seed)
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / name)
    return folder


def _read(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.asarray(Image.open(path), dtype=np.float32)).permute(2, 0, 1) / 127.5 - 1


def test_pipeline_specs():
    g3 = Pix2PixHDGenerator(Pix2PixHDGeneratorConfig(ngf=4, n_downsample_global=1, n_blocks_global=0, resolution=8))
    pipe = pipeline_for(g3)
    assert isinstance(pipe, Pix2PixHDPipeline)
    assert (pipe.input_spec.kind, pipe.input_spec.channels, pipe.input_spec.size) == ("rgb", 3, 8)
    assert pipe(torch.zeros(2, 3, 16, 16)).images.shape == (2, 3, 8, 8)  # other square sizes are resized
    g6 = Pix2PixHDGenerator(Pix2PixHDGeneratorConfig(in_channels=6, ngf=4, n_downsample_global=1, n_blocks_global=0))
    spec = pipeline_for(g6).input_spec
    assert (spec.kind, spec.channels, spec.size) == ("rgb-pair", 6, DEFAULT_SIZE)  # official weights: no size


def test_translate_one_and_two_image_inputs(tmp_path, capsys):
    names = ["a.png", "b.png", "sub/c.png"]
    A = _images(tmp_path / "A", names, 1)
    B = _images(tmp_path / "B", [n.replace(".png", ".jpg") if n == "b.png" else n for n in names], 2)
    G3, m3 = _model(tmp_path, 3)
    assert main(["translate", "--model", str(m3), "--images", str(A), "--out", str(tmp_path / "o3"), "--quiet",
                 "--precision", "fp32"]) == 0
    with torch.no_grad():
        want = G3(_read(A / "sub" / "c.png")[None])[0].clamp(-1, 1)
    assert (_read(tmp_path / "o3" / "sub" / "c.png") - want).abs().max() <= 1 / 127.5 + 1e-6
    G6, m6 = _model(tmp_path, 6)
    assert main(["translate", "--model", str(m6), "--images", str(A), "--images2", str(B), "--out",
                 str(tmp_path / "o6"), "--quiet", "--precision", "fp32"]) == 0
    assert "wrote 3 translations" in capsys.readouterr().out
    x = torch.cat([_read(A / "a.png"), _read(B / "a.png")])[None]
    with torch.no_grad():
        want = G6(x)[0].clamp(-1, 1)
    assert (_read(tmp_path / "o6" / "a.png") - want).abs().max() <= 1 / 127.5 + 1e-6
    assert (tmp_path / "o6" / "b.png").is_file()  # B's file of the same name with another extension


def test_translate_two_image_errors(tmp_path, capsys):
    A = _images(tmp_path / "A", ["a.png", "b.png"], 1)
    B = _images(tmp_path / "B", ["a.png", "x.png"], 2)
    _, m6 = _model(tmp_path, 6)
    _, m3 = _model(tmp_path, 3)
    cases = [
        (["--model", str(m6), "--images", str(A)], "give the B images' folder (--images2)"),
        (["--model", str(m6), "--images", str(A), "--images2", str(B)],
         "1 of 2 images under " + str(A) + " have no image of the same name under " + str(B) + " (e.g. b)"),
        (["--model", str(m6), "--images", str(A), "--images2", str(tmp_path / "nope")],
         "second image folder not found"),
        (["--model", str(m6), "--images", str(tmp_path / "nope"), "--images2", str(B)], "no such image folder"),
        (["--model", str(m3), "--images", str(A), "--images2", str(B)], "(--images2) does not apply"),
    ]
    for args, message in cases:
        assert main(["translate", *args, "--out", str(tmp_path / "out"), "--quiet"]) == 2, args
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, (args, err)
    assert not any((tmp_path / "out").glob("*.png"))
