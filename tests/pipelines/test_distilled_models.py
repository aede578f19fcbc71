"""The shipped distilled models (StyleGAN2 distillation for synthfaces-64) do their edits in one pass on held-out
*rendered* faces — images the generator never made — as the judge reads them, keep the face, and the blending model
blends: the cards' claims at a small n."""

from __future__ import annotations

import pytest
import torch

import stylebridge
from stylebridge.core.seeds import HELD_OUT_SEED, seed_to_z
from stylebridge.data import synthfaces as sf
from stylebridge.models.domain import DomainNetwork

N = 24


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="module")
def judge() -> DomainNetwork:
    return stylebridge.load("synthfaces-domain", expect=DomainNetwork).eval()


def _faces(keep) -> torch.Tensor:
    """N held-out rendered faces [N, 3, 64, 64] whose attributes pass ``keep``."""
    attrs = sf.sample_attributes(list(range(HELD_OUT_SEED + 50_000, HELD_OUT_SEED + 50_000 + 40 * N)))
    idx = keep(attrs).nonzero()[:N, 0]
    assert len(idx) == N
    return sf.render({k: v[idx] for k, v in attrs.items()}, 64, outputs=("image",))["image"]


def _cat(name: str, value: str) -> int:
    return next(a for a in sf.ATTRIBUTES if a.name == name).choices.index(value)


@pytest.mark.parametrize("name", ["synthfaces-64-distill-smile", "synthfaces-64-distill-smile-fast"])
@torch.no_grad()
def test_smile_editors_add_a_smile_and_keep_the_face(name, judge):
    x = _faces(lambda a: a["smile"] < 0.4)
    y = stylebridge.load(name)(x)
    assert y.shape == x.shape and y.abs().max() <= 1
    before, after = judge.predict(x)["smile"].float(), judge.predict(y)["smile"].float()
    # the evaluation's edit is +0.4: success is a rise past half of it (cards: 0.93 / 0.78 of 247 faces)
    assert (after - before).mean() > 0.25 and ((after - before) > 0.2).float().mean() > 0.65
    assert judge.similarity(y, x).float().mean() > 0.75


@torch.no_grad()
def test_mouth_open_editor_opens_mouths(judge):
    x = _faces(lambda a: a["mouth_open"] < 0.2)
    y = stylebridge.load("synthfaces-64-distill-mouth_open")(x)
    before, after = judge.predict(x)["mouth_open"].float(), judge.predict(y)["mouth_open"].float()
    assert (after - before).mean() > 0.25
    assert judge.similarity(y, x).float().mean() > 0.5


@torch.no_grad()
def test_blending_model_is_nearer_the_generators_blend_than_a_pixel_average(judge):
    G = stylebridge.load("synthfaces-64").eval()
    za = seed_to_z([HELD_OUT_SEED + 2 * i for i in range(N)], G.z_dim)
    zb = seed_to_z([HELD_OUT_SEED + 2 * i + 1 for i in range(N)], G.z_dim)
    wa, wb = G.map(za, 1.0), G.map(zb, 1.0)
    a, b, target = (G.synthesize(w, noise_mode="const").clamp(-1, 1) for w in (wa, wb, (wa + wb) / 2))
    m = stylebridge.load("synthfaces-64-distill-blend")
    assert m.config.in_channels == 6
    y = m(torch.cat([a, b], 1))
    assert judge.distance(y, target).mean() < 0.7 * judge.distance((a + b) / 2, target).mean()


def test_translate_runs_a_shipped_blending_model(tmp_path):
    from stylebridge.apps.cli import main
    from stylebridge.core.imageio import save_image

    faces = sf.render_seeds([HELD_OUT_SEED, HELD_OUT_SEED + 1], 64, outputs=("image",))["image"]
    for d, img in (("a", faces[0]), ("b", faces[1])):
        save_image(img, tmp_path / d / "face.png")
    assert main(["translate", "--model", "synthfaces-64-distill-blend", "--images", str(tmp_path / "a"),
                 "--images2", str(tmp_path / "b"), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "face.png").is_file()
