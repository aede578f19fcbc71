"""FFHQ alignment: the quad on synthetic landmarks, upright output from a rotated drawing, dlib when installed."""

from __future__ import annotations

import importlib.util
import math
import sys
import types

import numpy as np
import pytest
from PIL import Image, ImageDraw

from stylebridge.core.errors import BadImageError
from stylebridge.data import align as align_mod
from stylebridge.data.align import AlignerUnavailableError, align_face, ffhq_quad
from stylebridge.data.folder import prepare_folder

EYE, MOUTH_Y, MOUTH_W = 30.0, 60.0, 25.0  # template: eyes at (±EYE, 0), mouth corners at (±MOUTH_W, MOUTH_Y)


def template_landmarks(center=(0.0, 0.0)) -> np.ndarray:
    """68 points [68, 2] of an upright face; only eyes (36–47) and mouth corners (48, 54) matter to FFHQ."""
    lm = np.zeros((68, 2))
    ring = np.stack([np.cos(np.linspace(0, 2 * np.pi, 6, endpoint=False)),
                     np.sin(np.linspace(0, 2 * np.pi, 6, endpoint=False))], axis=1) * 4.0
    lm[36:42] = ring + np.array([-EYE, 0.0])  # the ring's mean is its centre
    lm[42:48] = ring + np.array([EYE, 0.0])
    lm[48] = [-MOUTH_W, MOUTH_Y]
    lm[54] = [MOUTH_W, MOUTH_Y]
    lm[0:17] = np.stack([np.linspace(-60, 60, 17), np.full(17, 40.0)], axis=1)  # a chin, never used
    return lm + center


def similarity(points: np.ndarray, angle_deg: float, scale: float, shift) -> np.ndarray:
    a = math.radians(angle_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return points @ rot.T * scale + shift


def test_ffhq_quad_template_exact():
    quad = ffhq_quad(template_landmarks())
    half = max(2 * EYE * 2.0, MOUTH_Y * 1.8)  # |x| = max(2 * eye distance, 1.8 * eye-to-mouth)
    cy = 0.1 * MOUTH_Y
    expected = [[-half, cy - half], [-half, cy + half], [half, cy + half], [half, cy - half]]
    np.testing.assert_allclose(quad, expected, atol=1e-9)


@pytest.mark.parametrize(("angle", "scale", "shift"), [(30.0, 1.7, (400.0, 250.0)), (-75.0, 0.4, (-3.0, 9.0))])
def test_ffhq_quad_follows_similarity_transforms(angle, scale, shift):
    lm = template_landmarks()
    quad = ffhq_quad(similarity(lm, angle, scale, shift))
    np.testing.assert_allclose(quad, similarity(ffhq_quad(lm), angle, scale, shift), atol=1e-9)
    top = quad[3] - quad[0]  # upper edge, left → right: turned by the face's rotation
    assert math.degrees(math.atan2(top[1], top[0])) == pytest.approx(angle)
    assert np.hypot(*top) == pytest.approx(2 * max(4 * EYE, 1.8 * MOUTH_Y) * scale)


def test_ffhq_quad_uses_mouth_direction_too():
    # Eyes level but the mouth off to the right: x blends eye line and mouth axis, so the square tilts.
    lm = template_landmarks()
    lm[[48, 54], 0] += 20.0
    top = ffhq_quad(lm)[3] - ffhq_quad(lm)[0]
    assert math.degrees(math.atan2(top[1], top[0])) < -1.0


def test_ffhq_quad_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\[68, 2\]"):
        ffhq_quad(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="degenerate"):
        ffhq_quad(np.zeros((68, 2)))


def _drawn_face(angle: float, size: int = 400) -> tuple[Image.Image, np.ndarray]:
    """Gray canvas with red eye discs and a blue mouth bar, rotated by ``angle`` (counter-clockwise on screen)."""
    c = size / 2
    lm = template_landmarks((c, c))
    img = Image.new("RGB", (size, size), (128, 128, 128))
    d = ImageDraw.Draw(img)
    for ex in (c - EYE, c + EYE):
        d.ellipse((ex - 6, c - 6, ex + 6, c + 6), fill=(255, 0, 0))
    d.rectangle((c - MOUTH_W, c + MOUTH_Y - 4, c + MOUTH_W, c + MOUTH_Y + 4), fill=(0, 0, 255))
    img = img.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=(128, 128, 128))
    # Image.rotate turns counter-clockwise as seen on screen (y down) = -angle in our x-right/y-down maths.
    lm = similarity(lm - c, -angle, 1.0, (c, c))
    return img, lm


def _blob_centres(arr: np.ndarray, colour: int) -> list[np.ndarray]:
    """Centroids of the left and right halves of one colour's mask ([H, W, 3] uint8)."""
    others = [i for i in range(3) if i != colour]
    mask = (arr[..., colour] > 180) & (arr[..., others].max(axis=-1) < 90)
    ys, xs = np.nonzero(mask)
    mid = arr.shape[1] / 2
    return [np.array([xs[sel].mean(), ys[sel].mean()]) for sel in (xs < mid, xs >= mid) if sel.any()]


@pytest.mark.parametrize("angle", [0.0, 35.0, -120.0])
def test_align_face_makes_a_rotated_face_upright(angle):
    img, lm = _drawn_face(angle)
    out = align_face(img, lm, 128, transform_size=256)
    assert out.size == (128, 128) and out.mode == "RGB"
    arr = np.asarray(out)
    left, right = _blob_centres(arr, 0)
    # Where FFHQ puts the eyes: the square has side 2 * half, centred 0.1 * eye-to-mouth below the eyes.
    half = max(4 * EYE, 1.8 * MOUTH_Y)
    px = 128 / (2 * half)
    eye_y = 64 - 0.1 * MOUTH_Y * px
    assert left[1] == pytest.approx(eye_y, abs=1.0) and right[1] == pytest.approx(eye_y, abs=1.0)
    assert left[0] == pytest.approx(64 - EYE * px, abs=1.0) and right[0] == pytest.approx(64 + EYE * px, abs=1.0)
    mouth = np.concatenate([b[None] for b in _blob_centres(arr, 2)]).mean(axis=0)
    assert mouth == pytest.approx([64, eye_y + MOUTH_Y * px], abs=1.0)


def test_align_face_output_sizes_and_padding():
    # The face sits in the top-left corner, so the FFHQ square leaves the photo: blur-padding fills it
    # (never black), while enable_padding=False leaves black corners.
    img, lm = _drawn_face(0.0, size=400)
    img, lm = img.crop((110, 110, 400, 400)), lm - 110
    padded = np.asarray(align_face(img, lm, 64))
    bare = np.asarray(align_face(img, lm, 64, enable_padding=False))
    assert padded.shape == bare.shape == (64, 64, 3)
    assert padded[:3, :3].min() > 60 and bare[:3, :3].max() < 5
    assert align_face(img, lm, 50, transform_size=40).size == (50, 50)  # upsampling allowed too


def test_align_face_deterministic():
    img, lm = _drawn_face(20.0)
    assert align_face(img, lm, 64).tobytes() == align_face(img, lm, 64).tobytes()


def test_gaussian_blur_matches_scipy():
    ndimage = pytest.importorskip("scipy.ndimage", reason="scipy not installed: nothing to compare against")
    rng = np.random.default_rng(0)
    arr = (rng.random((61, 47, 3)) * 255).astype(np.float32)
    for sigma in (0.6, 3.0, 20.0):
        np.testing.assert_allclose(align_mod._gaussian_blur(arr, sigma),
                                   ndimage.gaussian_filter(arr, [sigma, sigma, 0]), atol=1e-3)


# --- dlib -------------------------------------------------------------------------------------------------------


def test_aligner_missing_dlib_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "dlib", None)  # makes `import dlib` fail
    with pytest.raises(AlignerUnavailableError, match="pip install dlib-bin"):
        align_mod.Dlib68Aligner()
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    with pytest.raises(AlignerUnavailableError, match="pip install dlib-bin"):  # before any file is read
        prepare_folder(tmp_path, tmp_path / "out", 16, align=True, progress=False)


def test_aligner_missing_model_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "dlib", types.ModuleType("dlib"))
    monkeypatch.setattr(align_mod, "find_dlib68_model", lambda: None)
    with pytest.raises(AlignerUnavailableError, match="pip install face-recognition-models"):
        align_mod.Dlib68Aligner()


def _have_dlib() -> bool:
    return importlib.util.find_spec("dlib") is not None and align_mod.find_dlib68_model() is not None


needs_dlib = pytest.mark.skipif(not _have_dlib(), reason="dlib or its 68-point model missing: "
                                "pip install dlib-bin face-recognition-models")


@needs_dlib
def test_dlib_aligner_blank_image_has_no_face(tmp_path):
    aligner = align_mod.Dlib68Aligner()
    blank = Image.new("RGB", (200, 160), (90, 120, 150))
    assert aligner.landmarks(blank) == []
    with pytest.raises(BadImageError, match=r"^blank\.png: no face found$"):
        aligner.align(blank, 64, path="blank.png")
    blank.save(tmp_path / "blank.png")
    rep = prepare_folder(tmp_path, tmp_path / "out", 32, align=True, progress=False)
    assert rep.written == 0 and rep.skipped[0][1] == "no face found"


@needs_dlib
def test_dlib_aligner_on_a_real_face(astronaut):
    aligner = align_mod.Dlib68Aligner()
    photo = Image.open(astronaut).convert("RGB").rotate(20, resample=Image.Resampling.BICUBIC, expand=True)
    faces = aligner.landmarks(photo)
    assert faces and all(f.shape == (68, 2) for f in faces)
    out = aligner.align(photo, 256)
    assert out.size == (256, 256)
    # Landmarks of the aligned face: eyes level and where FFHQ puts them (eye centres at about y = 0.47 * size).
    lm = aligner.landmarks(out)[0]
    left, right = lm[36:42].mean(axis=0), lm[42:48].mean(axis=0)
    assert abs(left[1] - right[1]) < 4
    assert (left[1] + right[1]) / 2 == pytest.approx(0.47 * 256, abs=12)
    assert (left[0] + right[0]) / 2 == pytest.approx(128, abs=8)


# --- alignment into a generator's layout (template) ---------------------------------------------------------------


def _marker_photo(points: np.ndarray, size=(240, 200)) -> Image.Image:
    """A gray photo with a coloured dot at each of 5 points (pixel-centre coordinates)."""
    img = Image.new("RGB", size, (120, 120, 120))
    d = ImageDraw.Draw(img)
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]
    for (x, y), c in zip(points, colours):
        d.ellipse([x - 3, y - 3, x + 3, y + 3], fill=c)
    return img


@pytest.mark.parametrize("angle, scale, shift", [(0.0, 1.0, (0, 0)), (25.0, 1.7, (30, -10)), (-40.0, 0.6, (5, 20))])
def test_align_to_template_puts_the_points_on_the_template(angle, scale, shift):
    template = align_mod.FaceTemplate(np.array([[-0.3, -0.2], [0.3, -0.2], [0.0, 0.1], [-0.2, 0.35], [0.2, 0.35]]))
    size = 64
    # the template in pixel-centre coordinates of a 100-px frame, moved by a similarity into a photo
    base = (template.points + 1) / 2 * 100 - 0.5
    pts = similarity(base - 50, angle, scale, np.array([120.0, 100.0]) + shift)
    out = np.asarray(align_mod.align_to_template(_marker_photo(pts), pts, template, size), dtype=np.float32)
    want = (template.points + 1) / 2 * size - 0.5
    for (x, y), channel in zip(want, [0, 1, 2]):  # red, green, blue dots where the template says
        patch = out[round(y) - 1 : round(y) + 2, round(x) - 1 : round(x) + 2, channel]
        assert patch.mean() > 170, (x, y, channel)
    # a similarity is exact: the quad is a square
    quad = align_mod.similarity_quad(pts, template)
    sides = [np.hypot(*(quad[(i + 1) % 4] - quad[i])) for i in range(4)]
    assert max(sides) - min(sides) < 1e-6


def test_a_big_photo_is_shrunk_without_moving_the_face():
    # a frame many times the output size is first reduced (FFHQ's shrink); the points must still land exactly
    template = align_mod.synthfaces_template(256)
    pts = (template.points + 1) / 2 * 1000 + np.array([300.0, 200.0]) - 0.5  # a 1000-px face in a 1600-px photo
    img = Image.new("L", (1600, 1400), 0)
    d = ImageDraw.Draw(img)
    x, y = pts[0]
    d.ellipse([x - 12, y - 12, x + 12, y + 12], fill=255)  # a dot on the left eye
    out = np.asarray(align_mod.align_to_template(img.convert("RGB"), pts, template, 64), dtype=np.float64)[..., 0]
    ys, xs = np.mgrid[:64, :64]
    cx, cy = (out * xs).sum() / out.sum(), (out * ys).sum() / out.sum()
    want = (template.points[0] + 1) / 2 * 64 - 0.5
    assert abs(cx - want[0]) < 0.1 and abs(cy - want[1]) < 0.1


def test_tight_crop_is_filled_softly_not_black():
    template = align_mod.synthfaces_template(256)
    photo = Image.new("RGB", (40, 40), (200, 60, 60))  # a close-up: the frame is mostly outside the photo
    pts = np.array([[12.0, 14.0], [28.0, 14.0], [20.0, 22.0], [14.0, 30.0], [26.0, 30.0]])
    out = np.asarray(align_mod.align_to_template(photo, pts, template, 64), dtype=np.float32)
    assert abs(out[0, 0] - [200, 60, 60]).max() < 3  # the fill fades to the photo's median colour, never black


def test_face_template_file_round_trip_and_errors(tmp_path):
    t = align_mod.synthfaces_template(512)
    assert t.source == "synthfaces"
    assert t.points[0, 0] < 0 < t.points[1, 0] and t.points[3, 1] > t.points[2, 1] > t.points[0, 1]
    path = t.save(tmp_path / "t.json")
    back = align_mod.FaceTemplate.load(path)
    np.testing.assert_allclose(back.points, t.points, atol=1e-6)
    (tmp_path / "bad.json").write_text('{"points": {"eye_left": [0, 0]}}')
    with pytest.raises(ValueError, match=r"bad\.json: not a face template"):
        align_mod.FaceTemplate.load(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError, match=r"missing\.json: face template file not found"):
        align_mod.FaceTemplate.load(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="eye_right must lie right"):
        align_mod.FaceTemplate(t.points[[1, 0, 2, 3, 4]])


def test_five_points_of_68():
    lm = template_landmarks((100.0, 50.0))
    lm[30] = [100.0, 80.0]
    five = align_mod.five_points(lm)
    np.testing.assert_allclose(five, [[70, 50], [130, 50], [100, 80], [75, 110], [125, 110]])
    np.testing.assert_allclose(align_mod.five_points(five), five)


@needs_dlib
def test_make_aligner_resolves_the_template(tmp_path):
    assert align_mod.make_aligner("auto", model="synthfaces-64-actmap").template.source == "synthfaces"
    assert align_mod.make_aligner("ffhq").template is None
    align_mod.synthfaces_template(256).save(tmp_path / "t.json")
    assert align_mod.make_aligner(tmp_path / "t.json").template.source == "synthfaces"
    with pytest.raises(ValueError, match="unknown face template 'nope'"):
        align_mod.make_aligner("nope")
    with pytest.raises(ValueError, match="needs the model's generator"):
        align_mod.make_aligner("generator")


@needs_dlib
def test_dlib_aligner_puts_a_real_face_on_the_synthfaces_template(astronaut):
    template = align_mod.synthfaces_template()
    aligner = align_mod.Dlib68Aligner(template=template)
    photo = Image.open(astronaut).convert("RGB").rotate(-15, resample=Image.Resampling.BICUBIC, expand=True)
    out = aligner.align(photo, 128)
    five = align_mod.five_points(align_mod.Dlib68Aligner().landmarks(out)[0])
    want = (template.points + 1) / 2 * 128 - 0.5
    assert np.abs(five[:2] - want[:2]).max() < 6  # the eyes land on the template's eyes (px at 128)
    # a small photo is upscaled for detection; its landmarks come back in its own pixels
    small = photo.resize((photo.width // 8, photo.height // 8), Image.Resampling.LANCZOS)
    lm_small = aligner.landmarks(small)[0]
    lm_big = aligner.landmarks(photo)[0]
    assert np.abs(lm_small[36:48].mean(0) * 8 - lm_big[36:48].mean(0)).max() < 12
