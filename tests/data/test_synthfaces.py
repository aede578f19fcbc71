"""synthfaces: determinism, attribute sampling, edits that change only what they should, consistent labels."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from stylebridge.data import synthfaces as sf
from stylebridge.data.export import export_synthfaces
from stylebridge.data.tasks import SynthFacesPairs, parse_task, random_masks

L = {name: i for i, name in enumerate(sf.SEG_LABELS)}
SEEDS = list(range(16))


def dilate(mask: torch.Tensor, r: int = 1) -> torch.Tensor:
    return F.max_pool2d(mask.float()[:, None], 2 * r + 1, 1, r)[:, 0] > 0


def erode(mask: torch.Tensor, r: int = 1) -> torch.Tensor:
    return ~dilate(~mask, r)


def changed(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-4) -> torch.Tensor:
    """[N, H, W] pixels that differ in any channel."""
    return (a - b).abs().amax(dim=1) > tol


@pytest.fixture(scope="module")
def base():
    return sf.render_seeds(SEEDS, 64)


def test_shapes_ranges_and_resolutions():
    for res in (32, 64, 128, 256):
        out = sf.render_seeds([0, 1], res)
        assert out["image"].shape == (2, 3, res, res) and out["sketch"].shape == (2, 1, res, res)
        assert out["seg"].shape == (2, res, res) and out["seg"].dtype == torch.int64
        assert out["image"].min() >= -1 and out["image"].max() <= 1
        assert out["sketch"].min() >= -1 and out["sketch"].max() <= 1
    with pytest.raises(ValueError, match="unknown outputs"):
        sf.render(sf.sample_attributes([0]), 64, outputs=("depth",))


def test_same_seed_same_pixels_whatever_the_batch():
    a = sf.render_seeds([7, 3, 11], 64)
    b = sf.render_seeds([3], 64)
    for key in ("image", "seg", "sketch"):
        assert torch.equal(a[key][1], b[key][0])
    c = sf.render_seeds([7, 3, 11], 64)
    assert all(torch.equal(a[k], c[k]) for k in ("image", "seg", "sketch"))
    assert not torch.equal(a["image"][0], a["image"][2])


def test_attribute_distribution():
    attrs = sf.sample_attributes(range(4000))
    for a in sf.ATTRIBUTES:
        v = attrs[a.name]
        if a.is_categorical:
            freq = torch.bincount(v, minlength=len(a.choices)).float() / len(v)
            expected = torch.tensor(a.probs) / sum(a.probs)
            assert torch.allclose(freq, expected, atol=0.035), (a.name, freq, expected)
        else:
            assert 0 <= float(v.min()) and float(v.max()) <= 1
            assert abs(float(v.mean()) - 0.5) < 0.03, a.name
            spread = float(v.std())
            assert (0.18 < spread < 0.23) if a.distribution == "triangular" else (0.27 < spread < 0.31), a.name
    assert len(sf.ATTRIBUTES) >= 12


def test_vector_layout_and_records_round_trip():
    attrs = sf.sample_attributes([1, 2, 3])
    vec = sf.attribute_vector(attrs)
    layout = sf.vector_layout()
    assert vec.shape == (3, layout[-1][2]) and float(vec.min()) >= 0 and float(vec.max()) <= 1
    for a, (name, lo, hi) in zip(sf.ATTRIBUTES, layout):
        assert name == a.name and (hi - lo) == (len(a.choices) if a.is_categorical else 1)
    recs = sf.attributes_to_records(attrs)
    json.dumps(recs)
    back = sf.records_to_attributes(recs)
    assert torch.allclose(sf.attribute_vector(back), vec, atol=1e-6)


def test_edit_validation():
    attrs = sf.sample_attributes([0])
    with pytest.raises(KeyError, match="unknown attribute"):
        sf.edit(attrs, grin=1.0)
    with pytest.raises(ValueError, match="must be one of"):
        sf.edit(attrs, glasses="monocle")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        sf.edit(attrs, smile=2.0)
    assert int(sf.edit(attrs, glasses="round")["glasses"][0]) == 1


@pytest.mark.parametrize("name,value,labels", [
    ("bg_hue", None, {"background"}),
    ("clothes_hue", None, {"clothes"}),
    ("hair_color", None, {"hair", "brows", "beard", "nose"}),  # the nose is drawn translucent over a beard
    ("skin_tone", None, {"skin", "nose", "mouth", "beard"}),
    ("eye_color", None, {"eyes"}),
])
def test_colour_edits_change_exactly_their_labelled_regions(base, name, value, labels):
    """Segmentation agrees with the image: recolouring one part changes the pixels labelled as that part (all
    of them, away from anti-aliased edges) and nothing else (beyond two pixels, where anti-aliased edges of
    several parts meet). Faces wearing glasses are left out: clear lenses tint whatever lies under them."""
    attrs = base["attrs"]
    a = next(x for x in sf.ATTRIBUTES if x.name == name)
    new = (attrs[name] + 1) % len(a.choices) if a.is_categorical else (attrs[name] + 0.37) % 1.0
    edited = sf.render({**attrs, name: new}, 64)
    keep = attrs["glasses"] == 0
    region = torch.zeros_like(base["seg"], dtype=torch.bool)
    for lab in labels:
        region |= base["seg"] == L[lab]
    diff = changed(base["image"], edited["image"], tol=2e-3)
    assert torch.equal(edited["seg"], base["seg"])  # colour only: geometry unchanged
    outside = diff & ~dilate(region, 2)
    assert int(outside[keep].sum()) == 0
    if name != "hair_color":  # hair colour of black → brown of a bald head: nothing visible may change
        inside = erode(region, 1) & ~diff
        assert float(inside[keep].float().mean()) < 0.02


@pytest.mark.parametrize("change,allowed", [
    ({"smile": 1.0, "mouth_open": 0.9}, {"mouth", "skin", "beard"}),
    ({"glasses": "sunglasses"}, {"glasses", "eyes", "skin", "brows", "hair", "nose"}),
    ({"brow_thickness": 1.0}, {"brows", "skin", "hair", "glasses"}),
])
def test_shape_edits_stay_local(base, change, allowed):
    attrs = base["attrs"]
    edited = sf.render(sf.edit(attrs, **change), 64)
    diff = changed(base["image"], edited["image"], tol=2e-3)
    region = torch.zeros_like(diff)
    for seg in (base["seg"], edited["seg"]):
        for lab in allowed:
            region |= seg == L[lab]
    assert int((diff & ~dilate(region, 1)).sum()) == 0
    # Only the intended labels appear or disappear.
    flips = base["seg"] != edited["seg"]
    touched = set(base["seg"][flips].tolist()) | set(edited["seg"][flips].tolist())
    assert touched <= {L[x] for x in allowed}
    assert bool(diff.any())


def test_frontalize_moves_features_but_keeps_colours(base):
    attrs = base["attrs"]
    front = sf.render(sf.edit(attrs, yaw=0.5), 64)
    turned = (attrs["yaw"] - 0.5).abs() > 0.2
    assert bool(turned.any())
    moved = changed(base["image"], front["image"]).float().mean(dim=(1, 2))
    assert float(moved[turned].min()) > 0.02
    # A frontal face is left-right symmetric in its segmentation (up to one pixel and asymmetric hair texture).
    sym = (front["seg"] == front["seg"].flip(-1)).float().mean(dim=(1, 2))
    assert float(sym.min()) > 0.9


def test_sketch_is_a_line_drawing(base):
    sk = base["sketch"][:, 0]
    white = (sk > 0.9).float().mean(dim=(1, 2))
    dark = (sk < -0.5).float().mean(dim=(1, 2))
    assert float(white.min()) > 0.65 and float(dark.min()) > 0.02
    # Lines follow the face: the face outline is drawn, so the sketch is dark somewhere on the skin boundary.
    skin = base["seg"] == L["skin"]
    edge = dilate(skin, 1) & ~erode(skin, 1)
    assert all(float((sk[i][edge[i]] < 0).float().mean()) > 0.2 for i in range(len(SEEDS)))


@pytest.mark.parametrize("task,channels", [("inversion", 3), ("sketch", 1), ("segmentation", len(sf.SEG_LABELS)),
                                           ("superres", 3), ("superres:8", 3), ("inpaint", 4), ("frontalize", 3),
                                           ("edit:smile", 3), ("edit:glasses=round", 3), ("edit:beard=2", 3)])
def test_task_datasets(task, channels):
    ds = SynthFacesPairs(task, resolution=32, length=10, seed=100)
    assert ds.input_channels == channels
    items = ds.__getitems__([0, 3])
    inp, target, extras = items[0]
    assert inp.shape == (channels, 32, 32) and target.shape == (3, 32, 32)
    assert int(extras["seed"]) == 100 and extras["attrs"].ndim == 1
    again = ds[3]
    assert torch.equal(again[0], items[1][0]) and torch.equal(again[1], items[1][1])
    if task == "inversion":
        assert torch.equal(inp, target)
    if task == "segmentation":
        assert torch.equal(inp.sum(0), torch.ones(32, 32))
    if task.startswith("superres"):
        f = int(task.split(":")[1]) if ":" in task else 4
        assert extras["lowres"].shape == (3, 32 // f, 32 // f)
    if task == "inpaint":
        assert torch.equal(inp[3:], extras["mask"]) and torch.all(inp[:3][extras["mask"].expand(3, -1, -1) > 0] == 0)
    if task.startswith("edit:glasses"):
        assert all(int(sf.sample_attributes([100])["glasses"][0]) >= 0 for _ in [0])
    with pytest.raises(IndexError):
        ds[10]
    loader = torch.utils.data.DataLoader(ds, batch_size=4)
    first = next(iter(loader))
    assert first[0].shape == (4, channels, 32, 32)


def test_task_parsing_errors():
    for bad, msg in [("colorize", "unknown task"), ("edit", "needs an attribute"), ("edit:grin", "needs an attribute"),
                     ("superres:3", "factor"), ("sketch:2", "takes no argument"), ("edit:smile=2", r"\[0, 1\]"),
                     ("edit:smile=wide", r"\[0, 1\]"), ("edit:glasses=monocle", "takes one of"),
                     ("edit:beard=7", "takes one of")]:
        with pytest.raises(ValueError, match=msg):
            parse_task(bad)


def test_task_parsing_values():
    assert parse_task("edit:glasses=round") == ("edit", "glasses", 1)
    assert parse_task("edit:beard=2") == ("edit", "beard", 2)
    assert parse_task("edit:smile=0.25") == ("edit", "smile", 0.25)
    assert parse_task("superres") == ("superres", "4", None)


def test_inpaint_masks_cover_a_reasonable_fraction():
    m = random_masks(range(200), 64)
    frac = m.mean(dim=(1, 2, 3))
    assert float(frac.min()) > 0.02 and float(frac.max()) < 0.7 and 0.1 < float(frac.mean()) < 0.45
    assert torch.equal(m, random_masks(range(200), 64))


def test_export_is_byte_identical_and_readable(tmp_path):
    a = export_synthfaces(tmp_path / "a", 9, 32, ("sketch", "seg", "attrs"), seed=3, batch=4, progress=False)
    b = export_synthfaces(tmp_path / "b", 9, 32, ("sketch", "seg", "attrs"), seed=3, batch=4, progress=False)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) == 9 * 3 + 1
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    lines = (a / "attributes.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["seed"] == 3 and json.loads(lines[-1])["file"] == "images/00000011.png"
    seg = np.asarray(Image.open(a / "segmentation" / "00000003.png"))
    expected = sf.render_seeds([3], 32)["seg"][0].numpy()
    np.testing.assert_array_equal(seg, expected)


# --- landmarks, photo look, close-ups ------------------------------------------------------------------------------


def test_landmarks_match_the_rendered_parts():
    res = 128
    out = sf.render_seeds(list(range(40)), res, outputs=("image", "seg"))
    lm = sf.landmarks(out["attrs"])
    assert lm.shape == (40, 5, 2)
    coords = (torch.arange(res, dtype=torch.float32) + 0.5) / res * 2 - 1
    eyes = sf.SEG_LABELS.index("eyes")
    errs = []
    for i in range(40):
        ys, xs = torch.nonzero(out["seg"][i] == eyes, as_tuple=True)
        if len(xs) == 0:  # sunglasses hide the eyes
            continue
        x, y = coords[xs], coords[ys]
        mid = (lm[i, 0, 0] + lm[i, 1, 0]) / 2
        for side, sel in ((0, x < mid), (1, x >= mid)):
            if sel.sum() > 3:
                errs.append(float((torch.stack([x[sel].mean(), y[sel].mean()]) - lm[i, side]).norm()))
    assert errs and max(errs) < 3 * 2 / res  # eye centres within 3 px at 128 (a half-hidden eye shifts a little)
    # the mouth corners bracket the mouth region (near-frontal faces: a turned face's outline hides a corner)
    mouth = sf.SEG_LABELS.index("mouth")
    frontal = ((out["attrs"]["yaw"] - 0.5).abs() < 0.15).nonzero()[:, 0].tolist()
    assert len(frontal) >= 5
    for i in frontal:
        ys, xs = torch.nonzero(out["seg"][i] == mouth, as_tuple=True)
        assert abs(float(coords[xs].min()) - float(lm[i, 3, 0])) < 4 * 2 / res
        assert abs(float(coords[xs].max()) - float(lm[i, 4, 0])) < 4 * 2 / res


def test_photo_look_is_deterministic_and_keeps_the_layout():
    out = sf.render_seeds([3, 4, 5], 64, outputs=("image", "seg"))
    a = sf.photo_look(out["image"], out["seg"], out["attrs"])
    b = sf.photo_look(out["image"], out["seg"], out["attrs"])
    assert torch.equal(a, b) and a.shape == out["image"].shape and a.min() >= -1 and a.max() <= 1
    assert not torch.equal(a, sf.photo_look(out["image"], out["seg"], out["attrs"], seed=1))
    diff = (a - out["image"]).abs().mean()
    assert 0.03 < diff < 0.4  # a different look, the same faces
    # the face stays where it was: the darkest blob (pupils) moves at most a pixel or two
    single = sf.photo_look(out["image"][:1], out["seg"][:1], {k: v[:1] for k, v in out["attrs"].items()})
    torch.testing.assert_close(single, a[:1])  # a face's look does not depend on its batch


def test_closeup_returns_the_landmarks_in_the_crop():
    attrs = sf.sample_attributes(list(range(6)))
    res = 128
    coords = (torch.arange(res, dtype=torch.float32) + 0.5) / res * 2 - 1
    # an "image" whose pixels hold their own coordinates: the crop shows where each of its pixels came from
    img = torch.stack([coords.expand(res, res), coords[:, None].expand(res, res), torch.zeros(res, res)])
    img = img.expand(6, 3, res, res).contiguous()
    crop, q = sf.closeup(img, attrs, 32, grayscale=False)
    assert crop.shape == (6, 3, 32, 32) and q.shape == (6, 5, 2)
    lm = sf.landmarks(attrs)
    grid = q[:, :, None, :]  # sample the crop at the returned landmark positions
    seen = torch.nn.functional.grid_sample(crop[:, :2], grid, align_corners=False)[..., 0].permute(0, 2, 1)
    torch.testing.assert_close(seen, lm, atol=0.03, rtol=0)
    # tight: the face is magnified about 2x (eye to mouth spans about 0.74 of the half-frame)
    span = (q[:, 3:].mean(1) - q[:, :2].mean(1)).norm(dim=1)
    assert ((span > 0.6) & (span < 0.9)).all()
    gray, _ = sf.closeup(img, attrs, 32)
    assert torch.equal(gray[:, 0], gray[:, 1])
