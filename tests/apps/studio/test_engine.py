"""The studio's actions as library calls: each does what the page promises, checked on what comes out."""

from __future__ import annotations

import pytest
import torch

from stylebridge.apps.studio.engine import Studio, StudioError


def test_loads_every_shipped_family(studio):
    info = studio.info()
    families = {t["family"] for t in info["translators"]}
    assert {"actmap", "psp", "e4e", "restyle", "distilled", "stylemapgan"} <= families
    assert {"psp", "e4e", "restyle", "optimize"} <= set(info["inverters"])
    assert {d["short"] for d in info["directions"]} == {"smile", "mouth_open", "yaw", "glasses", "beard",
                                                        "blond_hair"}
    # Every encoder carries a copy of synthfaces-64: listed once, not once per model.
    assert [g["name"] for g in info["generators"]] == ["synthfaces-64"]
    smile = next(d for d in info["directions"] if d["short"] == "smile")
    assert smile["layers"] == "6-9" and smile["range"][0] < 0 < smile["range"][1]


def test_generate_truncation_and_mixing(studio):
    G = studio.generator
    out = studio.generate([0, 1, 2], truncation_psi=0.0, mix_seed=9, crossover=G.num_ws)
    a = out["images"]
    assert a.shape == (3, 3, G.resolution, G.resolution)
    assert torch.allclose(a[0], a[1], atol=1e-5) and torch.allclose(a[0], a[2], atol=1e-5)  # ψ 0: the mean face
    out = studio.generate([0, 1], truncation_psi=0.7, mix_seed=9, crossover=G.num_ws)
    assert torch.allclose(out["mixed"], out["images"], atol=1e-5)  # crossover after the last row: nothing mixed
    out = studio.generate([0, 1], truncation_psi=0.7, mix_seed=9, crossover=0)
    assert torch.allclose(out["mixed"], out["mix_source"].expand(2, -1, -1, -1), atol=1e-5)  # all from the mix seed
    with pytest.raises(StudioError, match="seeds"):
        studio.generate(list(range(17)))
    with pytest.raises(StudioError, match="crossover"):
        studio.generate([0], mix_seed=1, crossover=G.num_ws + 1)


def test_translate_follows_the_drawing(studio):
    sketch = studio.example("sketch", 3)
    base = studio.translate("synthfaces-64-actmap", sketch)["image"]
    drawn = sketch.clone()
    drawn[:, 6:22, 6:58] = -1.0  # a thick ink bar across the forehead
    changed = studio.translate("synthfaces-64-actmap", drawn)["image"]
    diff = (changed - base).abs().mean((0, 1))  # [H, W]
    assert diff[6:22, 6:58].mean() > 3 * diff[40:].mean()  # the change is where the stroke is
    multi = studio.translate("synthfaces-64-actmap", sketch, samples=2)
    assert torch.equal(multi["image"], base) and multi["samples"].shape == (2, 3, 64, 64)  # samples come beside it
    out = studio.translate("synthfaces-64-psp-sketch", sketch, samples=3, seed=5)
    assert out["input"].shape[1] == 1 and out["samples"].shape == (3, 3, 64, 64)
    assert (out["samples"][0] - out["samples"][1]).abs().mean() > 0.01  # different styles
    walk = studio.translate("synthfaces-64-actmap", sketch, walk=True, frames=6, seed=2)["frames"]
    assert walk.shape == (6, 3, 64, 64)
    step = [float((walk[k] - walk[(k + 1) % 6]).abs().mean()) for k in range(6)]
    assert max(step) < 2 * min(step) + 1e-3  # there and back in even steps, the loop's seam included
    assert (walk[0] - walk[3]).abs().mean() > 2 * step[0]
    with pytest.raises(StudioError, match="no latent walk"):
        studio.translate("synthfaces-64-psp-sketch", sketch, walk=True)
    with pytest.raises(StudioError, match="unknown translator"):
        studio.translate("nope", sketch)


def test_edit_slider_moves_the_attribute(studio):
    import stylebridge
    from stylebridge.edit.finders import attribute_scores

    net = stylebridge.load("synthfaces-domain").eval()
    session = studio.sessions.open()
    with pytest.raises(StudioError, match="invert a picture first"):
        studio.edit(session, {"synthfaces-64-smile": 1.0})
    faces = torch.stack([studio.example("face", s) for s in (4, 8, 15)])
    scores = {}
    for strength in (-2.0, 0.0, 2.0):
        images = []
        for face in faces:
            studio.invert(session, "e4e", face)
            images.append(studio.edit(session, {"synthfaces-64-smile": strength})["image"])
        with torch.no_grad():
            scores[strength] = float(attribute_scores(net, torch.cat(images), "smile").mean())
    assert scores[-2.0] < scores[0.0] < scores[2.0]
    # The layer box overrides the direction's own range (yaw: a w vector on rows 0-3; here rows 0-1 only).
    studio.edit(session, {"synthfaces-64-yaw": 2.0}, {"synthfaces-64-yaw": "0-1"})
    moved = (session.edited - session.inversion.w_plus).abs().sum(-1)[0]
    assert moved[:2].gt(0).all() and moved[2:].eq(0).all()
    lat = studio.latents(session)
    assert lat["w_plus"].shape == lat["edited"].shape == (studio.generator.num_ws, studio.generator.w_dim)
    with pytest.raises(StudioError, match="rows"):
        studio.edit(session, {"synthfaces-64-smile": 1.0}, {"synthfaces-64-smile": "0-40"})


def test_optimize_inverter_in_the_edit_tab(studio):
    session = studio.sessions.open()
    face = studio.example("face", 30)
    out = studio.invert(session, "optimize", face, steps=25)
    err = float((out["reconstruction"] - face[None]).pow(2).mean())
    assert err < 0.1 and session.inverter == "optimize"
    assert studio.edit(session, {"synthfaces-64-yaw": 1.0})["image"].shape == (1, 3, 64, 64)
    with pytest.raises(StudioError, match="steps"):
        studio.invert(session, "optimize", face, steps=10_000)


def test_local_edit_takes_the_reference_hair(studio):
    from stylebridge.edit.stylemap import region_mask

    R = studio.generator.resolution
    hair = region_mask("hair", R) > 0
    src, ref = studio.example("face", 3), studio.example("face", 11)
    out = studio.local_edit("", src, ref, regions=["hair"], frames=5)
    blend = out["image"][0]
    to_ref = (blend - ref)[:, hair].abs().mean()
    to_src = (blend - src)[:, hair].abs().mean()
    assert to_ref < to_src  # the hair is the reference's
    assert out["frames"].shape == (5, 3, R, R) and torch.allclose(out["frames"][-1], blend)
    # A painted mask works the same way: paint the hair region at 256 px.
    painted = torch.nn.functional.interpolate(hair.float()[None, None], size=(256, 256))[0, 0]
    out2 = studio.local_edit("", src, ref, mask=painted)
    assert (out2["image"] - out["image"]).abs().max() < 1e-4
    moved = studio.local_edit("", src, ref, regions=["hair"], shift=(0, 8))["image"]
    assert (moved - blend).abs().mean() > 1e-3
    with pytest.raises(StudioError, match="mask is empty"):
        studio.local_edit("", src, ref)


def test_compare_runs_every_translator(studio):
    rows = studio.compare(studio.example("photo", 2))
    assert [r["name"] for r in rows] == list(studio.translators)
    assert all(r["image"].shape == (1, 3, 64, 64) and r["ms"] > 0 for r in rows)


def test_sessions_expire_and_are_bounded():
    from stylebridge.apps.studio.engine import SessionStore

    store = SessionStore(max_sessions=3, ttl_s=3600)
    tokens = [store.open().token for _ in range(4)]
    assert len(store) == 3 and len(set(tokens)) == 4
    with pytest.raises(StudioError, match="expired"):
        store.get(tokens[0])  # the least recently used went first
    store.ttl_s = -1.0
    with pytest.raises(StudioError):
        store.get(tokens[-1])


def test_models_the_cli_loads(tmp_path):
    from stylebridge.core import registry

    s = Studio(["synthfaces-64-psp-sketch", str(registry.resolve("synthfaces-64-smile"))])
    info = s.info()
    assert [t["name"] for t in info["translators"]] == ["synthfaces-64-psp-sketch"]
    assert info["inverters"] == ["optimize"]  # a sketch encoder does not invert photos
    assert [d["short"] for d in info["directions"]] == ["smile"]
    with pytest.raises(StudioError, match="no generator"):
        Studio(["synthfaces-64-smile"])
