"""The one folder runner: bad files listed in skipped.txt, an output folder inside the input folder, batch-size
invariance, atomic outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import stylebridge
from stylebridge.core.imageio import save_image
from stylebridge.data import synthfaces as sf
from stylebridge.pipelines.actmap import translate_folder
from stylebridge.pipelines.base import load_pipeline
from stylebridge.pipelines.runner import Outputs, run_folder

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    root = tmp_path_factory.mktemp("faces")
    r = sf.render_seeds([10_000_000 + i for i in range(5)], 64)
    for i, (img, sketch) in enumerate(zip(r["image"], r["sketch"])):
        save_image(img, root / "rgb" / f"f{i}.png")
        save_image(sketch, root / "sketch" / ("sub" if i % 2 else "") / f"f{i}.png")
    (root / "rgb" / "broken.png").write_bytes(b"not an image")
    (root / "rgb" / "empty.jpg").write_bytes(b"")
    return root


def _pngs(folder):
    return {p.relative_to(folder).as_posix(): np.asarray(Image.open(p)) for p in sorted(folder.rglob("*.png"))}


def test_bad_files_are_listed_in_skipped_txt(tmp_path, faces, caplog):
    pipe = load_pipeline("synthfaces-64-psp-inversion")
    report = run_folder(pipe, faces / "rgb", tmp_path / "out", outputs=Outputs(images="rec", latents="latents"),
                        batch_size=2, progress=False, precision="fp32")
    assert report.written == 5 and report.out == tmp_path / "out"
    assert sorted(p.name for p, _ in report.skipped) == ["broken.png", "empty.jpg"]
    lines = (tmp_path / "out" / "skipped.txt").read_text().splitlines()
    assert sorted(line.split("\t")[0] for line in lines) == ["broken.png", "empty.jpg"]
    assert all(line.split("\t")[1] for line in lines)  # a reason per file
    assert sum("skipping" in r.getMessage() for r in caplog.records) == 2  # a warning line per file
    assert len(list((tmp_path / "out" / "latents").glob("*.safetensors"))) == 5
    assert len(list((tmp_path / "out" / "rec").glob("*.png"))) == 5
    assert not list((tmp_path / "out").rglob(".*.tmp"))


def test_out_inside_images_is_not_scanned(tmp_path, faces):
    src = tmp_path / "in"
    for p in (faces / "sketch").rglob("*.png"):
        (src / p.relative_to(faces / "sketch")).parent.mkdir(parents=True, exist_ok=True)
        (src / p.relative_to(faces / "sketch")).write_bytes(p.read_bytes())
    T = stylebridge.load("synthfaces-64-actmap")
    first = translate_folder(T, src, src / "out", progress=False, precision="fp32")
    assert len(first) == 5
    again = translate_folder(T, src, src / "out", progress=False, precision="fp32")  # outputs are not inputs
    assert sorted(p.relative_to(src / "out").as_posix() for p in again) == sorted(
        p.relative_to(src / "out").as_posix() for p in first)
    assert not (src / "out" / "out").exists()


@pytest.mark.parametrize("name, options", [("synthfaces-64-psp-sketch", {"samples": 2, "seed": 4}),
                                           ("synthfaces-64-actmap", {"seed": 3})])
def test_outputs_do_not_depend_on_the_batch_size(tmp_path, faces, name, options):
    pipe = load_pipeline(name)
    outs = []
    for bs in (1, 3):
        out = tmp_path / f"b{bs}"
        report = run_folder(pipe, faces / "sketch", out, batch_size=bs, progress=False, precision="fp32", **options)
        assert report.written == 5 and not report.skipped
        outs.append(_pngs(out))
    assert outs[0].keys() == outs[1].keys() and len(outs[0]) >= 5
    for k in outs[0]:
        assert np.abs(outs[0][k].astype(int) - outs[1][k].astype(int)).max() <= 1, k


def test_a_writer_killed_midway_leaves_no_file(tmp_path, monkeypatch):
    def dying_save(self, fp, format=None, **params):
        with open(fp, "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n partial")
        raise KeyboardInterrupt  # killed mid-write

    monkeypatch.setattr(Image.Image, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        save_image(torch.zeros(3, 8, 8), tmp_path / "a.png")
    assert list(tmp_path.iterdir()) == []  # neither a.png nor a temporary file


class _FakeAligner:
    """Shifts each photo by a few pixels (a stand-in for dlib) and finds no face in f3."""

    def __call__(self, img, size, path=None):
        from stylebridge.core.errors import BadImageError

        if str(path).endswith("f3.png"):
            raise BadImageError(f"{path}: no face found")
        return img.convert("RGB").transform(img.size, Image.Transform.AFFINE, (1, 0, 3, 0, 1, 0)).resize((size, size))


def test_align_feeds_aligned_photos_and_lists_faceless_ones(tmp_path, faces):
    pipe = load_pipeline("synthfaces-64-actmap")
    report = run_folder(pipe, faces / "rgb", tmp_path / "out", batch_size=2, progress=False, precision="fp32",
                        align=_FakeAligner())
    assert report.written == 4
    reasons = dict((p.name, r) for p, r in report.skipped)
    assert reasons["f3.png"] == "no face found" and "broken.png" in reasons
    assert sorted(p.name for p in (tmp_path / "out" / "aligned").glob("*.png")) == ["f0.png", "f1.png", "f2.png",
                                                                                    "f4.png"]
    aligned = np.asarray(Image.open(tmp_path / "out" / "aligned" / "f0.png"), dtype=np.int16)
    source = np.asarray(Image.open(faces / "rgb" / "f0.png"), dtype=np.int16)
    assert np.abs(aligned[:, :-3] - source[:, 3:]).mean() < 3  # what the aligner made is what went in
    assert "f3.png\tno face found" in (tmp_path / "out" / "skipped.txt").read_text()
    with pytest.raises(ValueError, match=r"face alignment .* applies to photos"):
        run_folder(load_pipeline("synthfaces-64-distill-blend"), faces / "rgb", tmp_path / "o2", progress=False,
                   images2=faces / "rgb", align=_FakeAligner())


def test_actmap_colors_from_the_input(tmp_path, faces):
    pipe = load_pipeline("synthfaces-64-actmap")
    x = sf.render_seeds([10_000_100, 10_000_101], 64)["image"]
    gray = x.mean(1, keepdim=True).expand_as(x).contiguous()
    out = pipe(gray, colors="input").images
    assert torch.allclose(out[:, 0], out[:, 1], atol=2e-3) and torch.allclose(out[:, 1], out[:, 2], atol=2e-3)
    styled = pipe(gray).images
    assert (styled[:, 0] - styled[:, 2]).abs().mean() > 0.02  # the style's colours, without the option
    with pytest.raises(ValueError, match="colors must be 'style' or 'input'"):
        pipe(gray, colors="sepia")


def test_align_gives_one_channel_models_one_channel(tmp_path, faces):
    pipe = load_pipeline("synthfaces-64-psp-sketch")  # 1-channel input
    report = run_folder(pipe, faces / "rgb", tmp_path / "out", batch_size=2, progress=False, precision="fp32",
                        align=_FakeAligner())
    assert report.written == 4
    aligned = np.asarray(Image.open(tmp_path / "out" / "aligned" / "f0.png"))
    assert aligned.ndim == 2 or np.array_equal(aligned[..., 0], aligned[..., 1])  # the gray input went in
