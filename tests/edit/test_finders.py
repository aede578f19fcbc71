"""Direction finders on the user's generator: GANSpace, InterFaceGAN / logistic / mean difference (with conditions),
labels from a domain network or a CSV, and the `directions` CLI."""

from __future__ import annotations

import pytest
import torch

import stylebridge
from stylebridge.apps.cli import main
from stylebridge.edit import find_ganspace, find_supervised, project_off
from stylebridge.edit.finders import attribute_scores, parse_attribute


@pytest.fixture(scope="module")
def G(golden_dir):
    return stylebridge.load(golden_dir / "stylegan2_010000.pt")


def test_ganspace_components_are_the_principal_axes(G):
    pca = find_ganspace(G, samples=4000, components=8, seed=1)
    comp = pca.comp.double()
    torch.testing.assert_close(comp @ comp.t(), torch.eye(8, dtype=torch.float64), atol=1e-5, rtol=0)
    assert torch.all(pca.std[:-1] >= pca.std[1:])
    w = stylebridge.edit.sample_w(G, 4000, seed=1).double()
    proj = (w - pca.mean.double()) @ comp.t()
    torch.testing.assert_close(proj.std(0), pca.std.double(), atol=1e-4, rtol=1e-4)
    d = pca.direction(0, layers="0-3")
    edited = d.apply(G.broadcast_ws(w[:2].float()), 1.0)
    assert torch.equal(edited[:, 4:], G.broadcast_ws(w[:2].float())[:, 4:])


@pytest.mark.parametrize("method", ["interfacegan", "logistic", "meandiff"])
def test_supervised_finders_recover_a_planted_direction(method):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(5000, 32, generator=g)
    truth = torch.randn(32, generator=g)
    truth /= truth.norm()
    scores = w @ truth + 0.1 * torch.randn(5000, generator=g)
    d = find_supervised(w, scores, method, fraction=0.05, name="planted")
    assert float(d.vector @ truth) > 0.95
    assert d.config.strength_range[1] == pytest.approx(2.5, abs=0.2)  # ±2.5 σ, σ = 1 along a unit direction
    if method != "meandiff":
        assert "held-out accuracy" in d.config.notes


def test_conditions_are_projected_off():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(4000, 16, generator=g)
    a, b = torch.eye(16)[0], torch.eye(16)[1]
    scores = w @ (a + b)  # the attribute is entangled with b
    cond = stylebridge.Direction.from_vector(b, name="b")
    d = find_supervised(w, scores, "interfacegan", fraction=0.05, conditions=[cond])
    assert abs(float(d.vector @ b)) < 1e-6 and float(d.vector @ a) > 0.99
    with pytest.raises(ValueError, match="span of the conditions"):
        project_off(b, [b])


def test_attribute_specs():
    net = stylebridge.load("synthfaces-domain")
    assert parse_attribute(net, "smile") == ("smile", None, None)
    assert parse_attribute(net, "glasses") == ("glasses", None, 0)
    assert parse_attribute(net, "hair_color=blonde:black") == ("hair_color", 2, 0)
    with pytest.raises(ValueError, match="unknown attribute"):
        parse_attribute(net, "moustache")
    with pytest.raises(ValueError, match="categories"):
        parse_attribute(net, "hair_color=green")
    from stylebridge.data import synthfaces as sf

    attrs = sf.sample_attributes(list(range(10_000_000, 10_000_064)))
    img = sf.render(attrs, 64, ("image",))["image"]
    s = attribute_scores(net, img, "glasses")
    on = attrs["glasses"] != 0
    assert float(s[on].mean()) > 0.5 > float(s[~on].mean()) + 0.5  # the judge separates glasses well


def test_directions_cli_find_and_show(tmp_path, golden_dir, capsys):
    gen = str(golden_dir / "stylegan2_010000.pt")
    assert main(["directions", "find", "--generator", gen, "--method", "sefa", "--layers", "2-5",
                 "--out", str(tmp_path / "sefa")]) == 0
    d = stylebridge.load(tmp_path / "sefa", expect=stylebridge.Direction)
    assert d.config.layers == (2, 3, 4, 5) and "sha256" in d.config.generator
    assert main(["directions", "show", "--generator", gen, "--direction", str(tmp_path / "sefa"), "--seeds", "0-1",
                 "--out", str(tmp_path / "grid.png")]) == 0
    assert (tmp_path / "grid.png").stat().st_size > 0
    csv = tmp_path / "labels.csv"
    csv.write_text("seed,label\n" + "".join(f"{s},{s % 2}\n" for s in range(60)))
    assert main(["directions", "find", "--generator", gen, "--method", "meandiff", "--labels-csv", str(csv),
                 "--fraction", "0.5", "--out", str(tmp_path / "csvdir")]) == 0
    assert main(["directions", "find", "--generator", gen, "--method", "ganspace", "--samples", "2000",
                 "--components", "4", "--out", str(tmp_path / "pca")]) == 0
    assert main(["directions", "show", "--generator", gen, "--direction", str(tmp_path / "pca"), "--component", "1",
                 "--layers", "0-2", "--strength=-2,0,2", "--seeds", "0", "--out", str(tmp_path / "pca.png")]) == 0
    assert main(["directions", "find", "--generator", gen, "--method", "interfacegan", "--out", str(tmp_path / "x")]) \
        == 2
    assert "needs exactly one of --attribute" in capsys.readouterr().err
    # guided: InterFaceGAN's direction refined through G and the classifier (a small random one here)
    from stylebridge.models.domain import DomainNetConfig, DomainNetwork
    from stylebridge.train.domain_net import synthfaces_heads

    torch.manual_seed(0)
    DomainNetwork(DomainNetConfig(resolution=32, widths=(8, 8, 16, 16), embed_dim=8, heads=synthfaces_heads())
                  ).save_pretrained(tmp_path / "judge")
    assert main(["directions", "find", "--generator", gen, "--method", "guided", "--attribute", "yaw",
                 "--classifier", str(tmp_path / "judge"), "--samples", "400", "--fraction", "0.1", "--steps", "2",
                 "--layers", "0-3", "--quiet", "--out", str(tmp_path / "guided")]) == 0
    g = stylebridge.load(tmp_path / "guided", expect=stylebridge.Direction)
    assert g.config.method == "guided" and g.vector.shape == (8, 64) and g.config.attribute == "yaw"
    assert g.config.per_unit != 0 and float(g.vector[4:].abs().max()) == 0


def test_measure_per_unit_and_strength_for(G):
    """The rate of a score along a direction: opposite for the opposite direction, zero for a zero vector; and
    strength_for turns a wanted change into a strength with it (clamped to the suggested range)."""
    from stylebridge.edit.finders import measure_per_unit
    from stylebridge.models.direction import Direction

    def brightness(images: torch.Tensor) -> torch.Tensor:
        return images.mean(dim=(1, 2, 3))

    torch.manual_seed(0)
    v = torch.randn(G.w_dim)
    up = Direction.from_vector(v / v.norm(), name="b", strength_range=(-2, 2))
    rate = measure_per_unit(G, up, brightness, samples=16, seed=3)
    back = measure_per_unit(G, Direction.from_vector(-v / v.norm(), name="b", strength_range=(-2, 2)), brightness,
                            samples=16, seed=3)
    assert abs(rate) > 1e-4 and back == pytest.approx(-rate, rel=1e-3, abs=1e-6)
    assert measure_per_unit(G, Direction.from_vector(torch.zeros(G.w_dim), name="z"), brightness, samples=8) == 0
    with pytest.raises(ValueError, match="no measured per-unit"):
        up.strength_for(0.5)
    up.config = type(up.config)(**{**up.config.to_dict(), "per_unit": 0.25})
    torch.testing.assert_close(up.strength_for(torch.tensor([0.5, -0.25, 10.0])), torch.tensor([2.0, -1.0, 2.0]))


def test_guided_direction_moves_its_attribute_and_stays_in_its_rows(G):
    """find_guided on a small generator and a random classifier: the direction it returns lives on the rows it was
    given, and moves the classifier's score the way it was asked far more than its random start did."""
    from stylebridge.edit.finders import find_guided, measure_per_unit, scores_from_logits
    from stylebridge.models.domain import DomainNetConfig, DomainNetwork
    from stylebridge.train.domain_net import synthfaces_heads

    torch.manual_seed(0)
    torch.set_num_threads(1)
    net = DomainNetwork(DomainNetConfig(resolution=32, widths=(8, 8, 16, 16), embed_dim=8,
                                        heads=synthfaces_heads())).eval()

    def score(images: torch.Tensor) -> torch.Tensor:
        return scores_from_logits(net, net(images), "smile")

    start = find_guided(G, net, "smile", steps=1, lr=1e-9, layers="0-3", seed=1, progress=False)
    d = find_guided(G, net, "smile", steps=40, batch=8, lr=0.05, layers="0-3", seed=1, progress=False,
                    keep_weight=0.1, identity_weight=0.1)
    assert d.vector.shape == (G.num_ws, G.w_dim) and d.config.layers == (0, 1, 2, 3)
    assert float(d.vector[4:].abs().max()) == 0 and d.config.method == "guided"
    moved = abs(measure_per_unit(G, d, score, samples=16, seed=7))
    before = abs(measure_per_unit(G, start, score, samples=16, seed=7))
    assert moved > 5 * before, (moved, before)
