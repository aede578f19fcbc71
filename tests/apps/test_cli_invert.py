"""stylebridge invert and edit on a folder of rendered synthfaces (plus one corrupt file)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from stylebridge.apps.cli import main
from stylebridge.core.imageio import save_image
from stylebridge.data import synthfaces as sf
from stylebridge.models.direction import Direction, GanSpaceComponents, GanSpaceConfig

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("faces")
    r = sf.render_seeds([10_000_000, 10_000_001, 10_000_002], 64, outputs=("image",))
    for i, img in enumerate(r["image"]):
        save_image(img, out / ("sub" if i == 2 else "") / f"f{i}.png")
    (out / "broken.png").write_bytes(b"not an image")
    return out


@pytest.fixture(scope="module")
def direction(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("dir") / "test-direction"
    Direction.from_vector(torch.randn(256, generator=torch.Generator().manual_seed(0)), name="test").save_pretrained(
        path)
    return path


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_invert_e4e_and_optimize(tmp_path, faces, capsys) -> None:
    assert main(["invert", "--method", "e4e", "--images", str(faces), "--out", str(tmp_path / "e4e"), "--quiet"]) == 0
    assert "wrote 3 inversions (e4e)" in capsys.readouterr().out
    for rel in ("f0", "f1", "sub/f2"):
        assert (tmp_path / "e4e" / "reconstructions" / f"{rel}.png").is_file()
        with safe_open(str(tmp_path / "e4e" / "latents" / f"{rel}.safetensors"), "pt") as f:
            assert f.get_tensor("w_plus").shape == (10, 256) and f.metadata()["inverter"] == "e4e"
    assert (tmp_path / "e4e" / "skipped.txt").read_text().startswith("broken.png\t")

    assert main(["invert", "--method", "optimize", "--steps", "3", "--space", "w", "--images", str(faces),
                 "--out", str(tmp_path / "opt"), "--batch-size", "2", "--quiet"]) == 0
    with safe_open(str(tmp_path / "opt" / "latents" / "f1.safetensors"), "pt") as f:
        w = f.get_tensor("w_plus")
        assert f.metadata()["steps"] == "3" and "synthfaces-domain" in f.metadata()["perceptual"]
    assert torch.equal(w, w[:1].expand_as(w))  # --space w: one w on every row
    assert len(list((tmp_path / "opt" / "reconstructions").rglob("*.png"))) == 3
    assert "broken.png" in (tmp_path / "opt" / "skipped.txt").read_text()


def test_invert_refuses_misplaced_flags(tmp_path, faces, capsys) -> None:
    assert main(["invert", "--method", "psp", "--steps", "5", "--images", str(faces), "--out", str(tmp_path)]) == 2
    assert "--steps applies to the optimize inverters, not psp" in capsys.readouterr().err
    assert main(["invert", "--method", "optimize", "--model", "synthfaces-64-e4e-inversion", "--images", str(faces),
                 "--out", str(tmp_path)]) == 2
    assert "not a model" in capsys.readouterr().err


def test_edit_e4e(tmp_path, faces, direction, capsys) -> None:
    out = tmp_path / "ed"
    assert main(["edit", "--images", str(faces), "--inverter", "e4e", "--direction", str(direction),
                 "--strength", "-3,0,3", "--out", str(out), "--quiet"]) == 0
    assert "edited 3 images (e4e" in capsys.readouterr().out
    for rel in ("f0", "f1", "sub/f2"):
        for s in ("-3", "0", "3"):
            assert (out / f"{rel}_s{s}.png").is_file()
        assert Image.open(out / "strips" / f"{rel}.png").size == (2 + 5 * 66, 2 + 66)  # input, recon, 3 edits
        with safe_open(str(out / "latents" / f"{rel}.safetensors"), "pt") as f:
            w, edited = f.get_tensor("w_plus"), f.get_tensor("edited")
            assert f.metadata()["strengths"] == "-3,0,3" and f.metadata()["direction"] == "test"
        assert edited.shape == (3, 10, 256) and torch.equal(edited[1], w)
        assert not torch.equal(edited[0], w)
    assert "broken.png" in (out / "skipped.txt").read_text()
    # strength 0 is the reconstruction (the same image stylebridge invert writes)
    assert main(["invert", "--method", "e4e", "--images", str(faces), "--out", str(tmp_path / "inv"), "--quiet"]) == 0
    assert np.array_equal(_pixels(out / "f0_s0.png"), _pixels(tmp_path / "inv" / "reconstructions" / "f0.png"))
    assert not np.array_equal(_pixels(out / "f0_s3.png"), _pixels(out / "f0_s0.png"))


def test_edit_optimize_layers_and_ganspace(tmp_path, faces, direction) -> None:
    out = tmp_path / "opt"
    assert main(["edit", "--images", str(faces / "f0.png"), "--inverter", "optimize", "--steps", "2",
                 "--direction", str(direction), "--strength", "0,2", "--layers", "0-3", "--out", str(out),
                 "--quiet"]) == 0
    with safe_open(str(out / "latents" / "f0.safetensors"), "pt") as f:
        w, edited = f.get_tensor("w_plus"), f.get_tensor("edited")
    assert torch.equal(edited[0], w)
    assert torch.equal(edited[1, 4:], w[4:]) and not torch.equal(edited[1, :4], w[:4])  # rows 0-3 only
    strip = _pixels(out / "strips" / "f0.png")
    recon_panel = strip[2:66, 2 + 66 : 66 + 66]
    assert np.array_equal(_pixels(out / "f0_s0.png"), recon_panel)

    comps = GanSpaceComponents(GanSpaceConfig(w_dim=256, num_components=4))
    with torch.no_grad():
        comps.comp.copy_(torch.linalg.qr(torch.randn(256, 4))[0].T)
    comps.save_pretrained(tmp_path / "pca")
    assert main(["edit", "--images", str(faces / "f1.png"), "--inverter", "psp", "--direction",
                 str(tmp_path / "pca"), "--component", "2", "--strength", "-1,1", "--out", str(tmp_path / "gs"),
                 "--quiet"]) == 0
    with safe_open(str(tmp_path / "gs" / "latents" / "f1.safetensors"), "pt") as f:
        delta = f.get_tensor("edited")[1] - f.get_tensor("w_plus")
        assert f.metadata()["direction"] == "ganspace-2"
    assert torch.allclose(delta, comps.comp[2].expand_as(delta), atol=1e-5)


def test_edit_errors(tmp_path, faces, direction, capsys) -> None:
    base = ["edit", "--images", str(faces), "--inverter", "e4e", "--out", str(tmp_path / "x"), "--quiet"]
    assert main([*base, "--direction", "frown", "--strength", "-3,3"]) == 2
    assert "frown: no such direction file or folder, and not a shipped direction (shipped: " \
        in capsys.readouterr().err
    assert main([*base, "--direction", str(direction), "--strength", "1,x"]) == 2
    assert "argument --strength: '1,x' is not a list of numbers" in capsys.readouterr().err
    assert main([*base, "--direction", str(direction), "--strength", "1", "--layers", "0-12"]) == 2
    assert "beyond the generator's 10 W+ rows" in capsys.readouterr().err
    assert main([*base, "--direction", str(direction), "--strength", "1", "--component", "1"]) == 2
    assert "component applies to GANSpace" in capsys.readouterr().err


def test_invert_and_edit_pti(tmp_path, faces, direction, capsys) -> None:
    from stylebridge.invert import load_delta

    out = tmp_path / "pti"
    assert main(["invert", "--method", "pti", "--pivot", "e4e", "--steps", "3", "--rank", "2", "--images",
                 str(faces), "--out", str(out), "--quiet", "--precision", "bf16"]) == 0
    printed = capsys.readouterr().out
    assert "wrote 3 inversions (pti)" in printed and "at the pivot ->" in printed and "per second" in printed
    with safe_open(str(out / "latents" / "f0.safetensors"), "pt") as f:
        assert f.get_tensor("w_plus").shape == (10, 256) and f.metadata()["pivot"] == "e4e"
    delta = load_delta(out / "latents" / "f0.safetensors")
    assert delta.rank == 2 and delta.count == 1
    ed = tmp_path / "ed"
    assert main(["edit", "--images", str(faces / "f0.png"), "--inverter", "pti", "--pivot", "e4e", "--steps", "3",
                 "--direction", str(direction), "--strength", "0,3", "--out", str(ed), "--quiet"]) == 0
    assert load_delta(ed / "latents" / "f0.safetensors").rank == 8
    # strength 0 is the tuned generator's reconstruction (the strip's second panel), not the pivot's image
    strip = _pixels(ed / "strips" / "f0.png")
    assert np.array_equal(_pixels(ed / "f0_s0.png"), strip[2:66, 2 + 66 : 66 + 66])
    assert not np.array_equal(_pixels(ed / "f0_s3.png"), _pixels(ed / "f0_s0.png"))
    # flags of other inverters are refused by name
    assert main(["invert", "--method", "e4e", "--rank", "2", "--images", str(faces), "--out", str(tmp_path)]) == 2
    assert "--rank applies to the pti inverter, not e4e" in capsys.readouterr().err
    assert main(["invert", "--method", "pti", "--n-iters", "2", "--images", str(faces), "--out", str(tmp_path)]) == 2
    assert "--n-iters applies to the restyle inverter" in capsys.readouterr().err


def test_invert_and_edit_restyle(tmp_path, faces, direction, capsys) -> None:
    out = tmp_path / "rs"
    assert main(["invert", "--method", "restyle", "--n-iters", "2", "--images", str(faces), "--out", str(out),
                 "--quiet"]) == 0
    assert "wrote 3 inversions (restyle)" in capsys.readouterr().out
    with safe_open(str(out / "latents" / "f0.safetensors"), "pt") as f:
        assert f.get_tensor("w_plus").shape == (10, 256) and f.metadata()["n_iters"] == "2"
    assert main(["edit", "--images", str(faces / "f1.png"), "--inverter", "restyle", "--direction", str(direction),
                 "--strength", "0,3", "--out", str(tmp_path / "ed"), "--quiet"]) == 0
    assert (tmp_path / "ed" / "f1_s3.png").is_file()
    # the model also runs through the encoder pipelines
    assert main(["encode", "--model", "synthfaces-64-restyle-e4e-inversion", "--images", str(faces), "--out",
                 str(tmp_path / "enc"), "--quiet"]) == 0
    assert main(["invert", "--method", "restyle", "--steps", "3", "--images", str(faces), "--out",
                 str(tmp_path / "x")]) == 2
    assert "--steps applies to the optimize and pti inverters, not restyle" in capsys.readouterr().err


def test_pti_shared_tunes_one_generator_for_the_batch(tmp_path, faces, capsys) -> None:
    from stylebridge.invert import load_delta

    out = tmp_path / "shared"
    assert main(["invert", "--method", "pti", "--pivot", "e4e", "--steps", "2", "--shared", "--batch-size", "3",
                 "--images", str(faces), "--out", str(out), "--quiet"]) == 0
    a, b = load_delta(out / "latents" / "f0.safetensors"), load_delta(out / "latents" / "f1.safetensors")
    for k in a.tensors:  # one tuning for the batch: every file holds the same delta
        assert torch.equal(a.tensors[k], b.tensors[k])
    with safe_open(str(out / "latents" / "f0.safetensors"), "pt") as f:
        assert f.metadata()["shared"] == "true"
