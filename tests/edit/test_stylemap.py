"""StyleMapGAN editing: masks, local edits, transplantation, the pipeline, and the stylemap CLI (golden checkpoint)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import stylebridge
from stylebridge.apps.cli import main
from stylebridge.core.imageio import save_image
from stylebridge.edit.stylemap import edit_pair, load_mask, region_mask, transplant
from stylebridge.pipelines import pipeline_for


@pytest.fixture(scope="module")
def model(golden_dir):
    return stylebridge.load(golden_dir / "stylemapgan_010000.pt")


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(2, 3, 32, 32, generator=g) * 2 - 1


def test_region_and_file_masks(tmp_path) -> None:
    hair = region_mask("hair", 32)
    assert hair.shape == (32, 32) and set(hair.unique().tolist()) == {-1.0, 1.0}
    assert hair[6, 16] == 1 and hair[16, 16] == -1  # the top of the head, not the face's middle
    glasses, mouth = region_mask("glasses", 32), region_mask("mouth", 32)
    assert glasses.eq(1).any() and mouth.eq(1).any()  # parts only some faces have still get a region
    rows = lambda m: m.eq(1).any(1).nonzero()[:, 0].float().mean()  # noqa: E731
    assert rows(glasses) < rows(mouth)  # eyes above the mouth
    assert (region_mask("hair,glasses", 32) >= hair).all()
    with pytest.raises(ValueError, match="synthfaces regions are"):
        region_mask("wings", 32)
    Image.fromarray(np.pad(np.full((8, 16), 255, np.uint8), ((0, 8), (0, 0)))).save(tmp_path / "m.png")
    m = load_mask(tmp_path / "m.png", 32)
    assert m.shape == (32, 32) and m[:12].eq(1).all() and m[20:].eq(-1).all()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "empty.png")
    with pytest.raises(ValueError, match="the mask is empty"):
        load_mask(tmp_path / "empty.png", 32)
    (tmp_path / "bad.png").write_bytes(b"nope")
    with pytest.raises(ValueError, match="not a readable mask image"):
        load_mask(tmp_path / "bad.png", 32)


@torch.no_grad()
def test_local_edit_extremes_and_transplant(model, images) -> None:
    src, ref = images[:1], images[1:]
    a, b = model.encode(src), model.encode(ref)
    full, none = torch.ones(32, 32), -torch.ones(32, 32)
    for space in ("w", "w_plus"):
        torch.testing.assert_close(edit_pair(model, src, ref, full, space), model.decode(b))
        torch.testing.assert_close(edit_pair(model, src, ref, none, space), model.decode(a))
    frames = transplant(model, a, b, torch.ones(1, 32, 32), [(0, 0)], steps=4)
    assert frames.shape == (4, 3, 32, 32)
    torch.testing.assert_close(frames[0], model.decode(a)[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(frames[-1], model.decode(b)[0], atol=1e-5, rtol=1e-5)
    half = torch.zeros(1, 32, 32)
    half[:, :, :16] = 1
    moved = transplant(model, a, b, half, [(0, 8)], steps=2)  # the left half, moved right by 8 px
    assert not torch.allclose(moved[1], model.local_edit(a, b, half * 2 - 1, "w_plus")[0], atol=1e-3)


def test_pipeline(model, images) -> None:
    pipe = pipeline_for(model)
    res = pipe(images)
    assert res.latents["stylemap"].shape == (2, 16, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(res.images, model.reconstruct(images))


def test_cli_edit_and_interpolate(tmp_path, golden_dir, images, capsys) -> None:
    for i, img in enumerate(images):
        save_image(img, tmp_path / "src" / f"f{i}.png")
    save_image(images[1], tmp_path / "ref.png")
    ckpt = str(golden_dir / "stylemapgan_010000.pt")
    assert main(["stylemap", "edit", "--model", ckpt, "--images", str(tmp_path / "src"), "--reference",
                 str(tmp_path / "ref.png"), "--region", "hair", "--out", str(tmp_path / "ed")]) == 0
    assert "wrote 2 local edits" in capsys.readouterr().out
    assert (tmp_path / "ed" / "f0.png").is_file() and (tmp_path / "ed" / "strips" / "f1.png").is_file()
    assert main(["stylemap", "edit", "--model", ckpt, "--images", str(tmp_path / "src"), "--reference",
                 str(tmp_path / "ref.png"), "--out", str(tmp_path / "x")]) == 2
    assert "give a mask image" in capsys.readouterr().err
    assert main(["stylemap", "interpolate", "--model", ckpt, "--images", str(tmp_path / "src" / "f0.png"),
                 "--reference", str(tmp_path / "ref.png"), "--frames", "4", "--out", str(tmp_path / "it")]) == 0
    assert (tmp_path / "it" / "f0.gif").is_file() and len(list((tmp_path / "it" / "f0").glob("*.png"))) == 4
    # the pipeline interface behind `translate`: reconstructions, no translate-only flag silently accepted
    assert main(["translate", "--model", ckpt, "--images", str(tmp_path / "src"), "--out", str(tmp_path / "tr")]) == 0
    assert (tmp_path / "tr" / "f0.png").is_file() and (tmp_path / "tr" / "f1.png").is_file()
    assert main(["translate", "--model", ckpt, "--images", str(tmp_path / "src"), "--truncation", "0.7",
                 "--out", str(tmp_path / "tr2")]) == 2
    assert "--truncation does not apply" in capsys.readouterr().err


def test_shipped_model_moves_a_held_out_face_hair_toward_the_truth(tmp_path, capsys) -> None:
    """The shipped synthfaces StyleMapGAN through the CLI: a held-out face takes another's hair; inside the hair
    region the edit is nearer the exact render (the face with that hair) than the unedited face is."""
    from PIL import Image

    from stylebridge.data import synthfaces as sf
    from stylebridge.evaluate.local_editing import REGION_TASKS, make_pairs

    (a_seed,), (b_seed,) = make_pairs(REGION_TASKS["hair"], 1, 10_000_003)
    a, b = sf.sample_attributes([a_seed]), sf.sample_attributes([b_seed])
    gt_attrs = {k: v.clone() for k, v in a.items()}
    gt_attrs.update(hair_style=b["hair_style"], hair_color=b["hair_color"])
    x = sf.render(a, 64, outputs=("image", "seg"))
    gt = sf.render(gt_attrs, 64, outputs=("image", "seg"))
    save_image(x["image"][0], tmp_path / "src" / "a.png")
    save_image(sf.render(b, 64, outputs=("image",))["image"][0], tmp_path / "b.png")
    assert main(["stylemap", "edit", "--model", "synthfaces-64-stylemapgan", "--images", str(tmp_path / "src"),
                 "--reference", str(tmp_path / "b.png"), "--region", "hair", "--out", str(tmp_path / "ed")]) == 0
    with Image.open(tmp_path / "ed" / "a.png") as im:
        edit = torch.tensor(list(im.convert("RGB").getdata()), dtype=torch.float32).view(64, 64, 3)
    edit = (edit / 127.5 - 1).permute(2, 0, 1)
    hair = (x["seg"][0] == 2) | (gt["seg"][0] == 2)
    err_edit = (edit - gt["image"][0]).square().mean(0)[hair].mean()
    err_none = (x["image"][0] - gt["image"][0]).square().mean(0)[hair].mean()
    assert err_edit < 0.7 * err_none
