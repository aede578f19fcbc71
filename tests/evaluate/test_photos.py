"""`stylebridge evaluate --photos`: real photos aligned, translated, their geometry compared with the translation's."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

from stylebridge.apps.cli import main
from stylebridge.data import align as align_mod
from stylebridge.data import synthfaces as sf
from stylebridge.evaluate.methods import EvalMethod
from stylebridge.evaluate.photos import geometry, in_template_frame, mouth_readings

needs_photos = pytest.mark.skipif(
    importlib.util.find_spec("dlib") is None or align_mod.find_dlib68_model() is None
    or importlib.util.find_spec("skimage") is None,
    reason="needs dlib, its 68-point model and scikit-image: pip install -e '.[align]'")


def test_geometry_of_the_renderers_landmarks_follows_yaw():
    attrs = sf.sample_attributes(list(range(200)))
    yaws = [geometry(p)["yaw"] for p in sf.landmarks(attrs).double().numpy()]
    assert np.corrcoef(yaws, attrs["yaw"].numpy())[0, 1] > 0.99


def test_readings_in_the_template_frame():
    template = align_mod.synthfaces_template(256)
    lm = np.zeros((68, 2))
    pts = (template.points + 1) / 2 * 200  # a face exactly on the template, at 200 px
    lm[36:42], lm[42:48], lm[30], lm[48], lm[54] = pts[0], pts[1], pts[2], pts[3], pts[4]
    lm[62], lm[66] = (pts[3] + pts[4]) / 2 + [0, 2], (pts[3] + pts[4]) / 2 + [0, 12]
    framed = in_template_frame(lm, template)
    np.testing.assert_allclose(align_mod.five_points(framed), template.points, atol=1e-9)
    m = mouth_readings(lm)
    width = np.hypot(*(pts[4] - pts[3]))
    assert m["mouth_open"] == pytest.approx(10 / width) and m["smile"] == pytest.approx(7 / width)


@needs_photos
def test_photo_evaluation_cli(tmp_path, capsys, monkeypatch):
    import stylebridge.evaluate.photos as ph

    photos = ph.bundled_photos(lfw=6)
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, img in photos:
        img.save(folder / f"{name}.png")
    gray = EvalMethod("gray", frozenset({"photo"}), lambda b: b.rgb.mean(1, keepdim=True).expand_as(b.rgb).clone())
    monkeypatch.setattr(ph, "parse_method", lambda text: (text, None))
    monkeypatch.setattr(ph, "build_method", lambda name, model, generator, dev: gray)
    out = tmp_path / "rep"
    assert main(["evaluate", "--photos", str(folder), "--methods", "gray", "--out", str(out), "--quiet"]) == 0
    doc = json.loads((out / "report.json").read_text())
    assert doc["photos"] == 8 and "camera" in doc["skipped"] and doc["aligned"] == 8 - len(doc["skipped"])
    assert set(doc["results"]["gray"]["correlation"]) == {"yaw", "eye_mouth", "mouth_open", "smile"}
    assert len(doc["input_readings"]["yaw"]) == doc["aligned"]
    assert (out / "grid.png").is_file() and "| gray |" in (out / "report.md").read_text()
    with pytest.raises(ValueError, match="no photos"):
        ph.run_photo_evaluation([gray], photos=[], progress=False)
    assert torch.is_tensor(ph.run_photo_evaluation([gray], photos=photos[:1], progress=False).grid[0][1])
