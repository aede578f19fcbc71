"""``--align`` on translate, encode, invert and edit: photos into the generator's layout, faceless ones listed."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from PIL import Image

from stylebridge.apps.cli import main
from stylebridge.data import align as align_mod

needs_photo = pytest.mark.skipif(
    importlib.util.find_spec("dlib") is None or align_mod.find_dlib68_model() is None,
    reason="needs dlib and its 68-point model: pip install -e '.[align]'")


@pytest.fixture
def photos(tmp_path, astronaut):
    d = tmp_path / "photos"
    d.mkdir()
    Image.open(astronaut).convert("RGB").save(d / "astronaut.jpg", quality=90)
    Image.new("RGB", (120, 90), (40, 160, 90)).save(d / "wall.png")
    return d


@needs_photo
@pytest.mark.parametrize("argv", [
    ["translate", "--model", "synthfaces-64-actmap", "--colors", "input"],
    ["encode", "--model", "synthfaces-64-e4e-inversion"],
    ["invert", "--method", "psp", "--model", "synthfaces-64-psp-inversion"],
    ["edit", "--inverter", "e4e", "--model", "synthfaces-64-e4e-inversion", "--direction", "smile",
     "--strength", "0,3"],
])
def test_align_on_every_photo_command(tmp_path, photos, capsys, argv):
    out = tmp_path / "out"
    assert main([*argv, "--images", str(photos), "--align", "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr()
    assert "1 file skipped" in text.out and "wall.png: no face found" in text.err
    assert (out / "skipped.txt").read_text() == "wall.png\tno face found\n"
    aligned = np.asarray(Image.open(out / "aligned" / "astronaut.png"), dtype=np.float32)
    assert aligned.shape == (64, 64, 3)
    # the synthfaces layout: the face in the middle, eyes a little above the centre (template y = -0.1)
    five = align_mod.five_points(align_mod.Dlib68Aligner().landmarks(Image.fromarray(np.uint8(aligned)))[0])
    assert abs(five[:2, 1].mean() - (0.45 * 64 - 0.5)) < 4 and abs(five[:2, 0].mean() - 31.5) < 4


def test_align_template_needs_align(tmp_path, capsys):
    code = main(["translate", "--model", "synthfaces-64-actmap", "--images", str(tmp_path), "--out",
                 str(tmp_path / "o"), "--align-template", "ffhq"])
    assert code == 2 and "--align-template applies with --align" in capsys.readouterr().err
