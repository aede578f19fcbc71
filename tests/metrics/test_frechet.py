"""Fréchet distance: the formula, streaming statistics, caches, the domain feature space, training and the CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch

from stylebridge.apps.cli import main
from stylebridge.metrics import frechet as fr
from stylebridge.models.domain import DomainNetConfig, DomainNetwork
from stylebridge.models.stylegan2 import StyleGAN2Config, StyleGAN2Generator


def _random_cov(d: int, gen: torch.Generator) -> torch.Tensor:
    a = torch.randn(d, d, generator=gen, dtype=torch.float64)
    return a @ a.T / d + 0.1 * torch.eye(d, dtype=torch.float64)


def test_closed_form_for_commuting_covariances():
    # Same eigenvectors: FD = |mu1 - mu2|^2 + sum (sqrt(l1) - sqrt(l2))^2, whatever the common rotation.
    gen = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=gen, dtype=torch.float64))
    l1, l2 = torch.rand(6, generator=gen, dtype=torch.float64) + 0.1, torch.rand(6, generator=gen, dtype=torch.float64)
    mu1, mu2 = torch.randn(6, generator=gen, dtype=torch.float64), torch.randn(6, generator=gen, dtype=torch.float64)
    s1, s2 = q @ torch.diag(l1) @ q.T, q @ torch.diag(l2) @ q.T
    expected = (mu1 - mu2).square().sum() + (l1.sqrt() - l2.sqrt()).square().sum()
    assert fr.frechet_distance((mu1, s1), (mu2, s2)) == pytest.approx(float(expected), rel=1e-9, abs=1e-12)
    assert fr.frechet_distance((mu1, s1), (mu1, s1)) == pytest.approx(0.0, abs=1e-9)


def test_matches_scipy_sqrtm_for_general_covariances():
    linalg = pytest.importorskip("scipy.linalg")
    gen = torch.Generator().manual_seed(1)
    s1, s2 = _random_cov(20, gen), _random_cov(20, gen)
    mu1, mu2 = torch.randn(20, generator=gen, dtype=torch.float64), torch.zeros(20, dtype=torch.float64)
    covmean = linalg.sqrtm((s1 @ s2).numpy()).real
    expected = float((mu1 - mu2).square().sum() + s1.trace() + s2.trace() - 2 * covmean.trace())
    assert fr.frechet_distance((mu1, s1), (mu2, s2)) == pytest.approx(expected, rel=1e-8)


def test_feature_stats_stream_equals_batch_and_round_trips(tmp_path):
    x = torch.randn(300, 5, generator=torch.Generator().manual_seed(2)) * 3 + 1
    st = fr.FeatureStats(5, "test")
    for chunk in x.split(70):
        st.append(chunk)
    mu, cov = st.mean_cov()
    torch.testing.assert_close(mu, x.double().mean(0))
    torch.testing.assert_close(cov, torch.cov(x.double().T))
    st.save(tmp_path / "s.safetensors", {"k": 1})
    back, meta = fr.FeatureStats.load(tmp_path / "s.safetensors")
    assert (back.n, back.name, meta) == (300, "test", {"k": 1})
    torch.testing.assert_close(back.mean_cov()[1], cov)
    with pytest.raises(ValueError, match=r"expected features \[N, 5\]"):
        st.append(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="NaN or inf"):
        st.append(torch.full((2, 5), math.nan))
    with pytest.raises(ValueError, match="at least 2 samples"):
        fr.FeatureStats(3).mean_cov()


def _tiny_domain() -> fr.DomainFeatures:
    torch.manual_seed(0)
    net = DomainNetwork(DomainNetConfig(resolution=16, widths=(8, 8, 16, 16), embed_dim=8, heads=()))
    return fr.DomainFeatures(net, label="tiny-domain")


def test_generator_distance_is_deterministic_and_cached(tmp_path, monkeypatch):
    ex = _tiny_domain()
    assert ex.name == "FD[tiny-domain]" and ex.dim == 24
    torch.manual_seed(0)
    G = StyleGAN2Generator(StyleGAN2Config(resolution=16, z_dim=16, w_dim=16, mapping_layers=2, channels=(16, 16, 8)))
    state = torch.get_rng_state()
    r1 = fr.fd_of_generator(G, ex, n=40, with_reference=True, cache_dir=tmp_path, progress=False)
    assert torch.equal(torch.get_rng_state(), state)  # the metric never moves the global RNG (exact resume)
    assert r1.metric == "FD[tiny-domain]" and r1.n == 40 and r1.value > r1.reference > 0
    assert len(list(tmp_path.glob("real_*.safetensors"))) == 2  # sets A and B cached

    def _fail(*a, **k):
        raise AssertionError("the cached statistics should have been used")

    monkeypatch.setattr(fr, "stats_of_synthfaces", _fail)
    r2 = fr.fd_of_generator(G, ex, n=40, with_reference=True, cache_dir=tmp_path, progress=False)
    assert r2 == r1
    assert "FD[tiny-domain] = " in str(r1) and "real vs real" in str(r1)


def test_stylemapgan_samples(golden_dir):
    """A StyleMapGAN's random samples (z → stylemap → image) are measured like a StyleGAN2's: deterministic, the
    global RNG untouched, truncation around the mean stylemap."""
    import stylebridge

    ex = _tiny_domain()
    m = stylebridge.load(golden_dir / "stylemapgan_010000.pt")
    state = torch.get_rng_state()
    r1 = fr.fd_of_generator(m, ex, n=24, progress=False)
    assert torch.equal(torch.get_rng_state(), state)
    assert r1 == fr.fd_of_generator(m.generator, ex, n=24, progress=False) and r1.value > 0
    assert fr.fd_of_generator(m, ex, n=24, truncation_psi=0.5, progress=False).value != r1.value


def test_shipped_domain_features_separate_real_from_degraded_faces():
    # The feature space must see what a generator gets wrong: faces with only 16-px detail are farther from real
    # faces than a second independent set of real faces is. (The network was trained with blur augmentation, so
    # mild blur moves it less; n = 300 keeps the test fast, and the real-vs-real floor shrinks like 1/n.)
    from stylebridge.data import synthfaces as sf

    ex = fr.feature_extractor("synthfaces-domain")
    assert ex.name == "FD[synthfaces-domain]"
    render = lambda start: sf.render(sf.sample_attributes(range(start, start + 300)), 64, ("image",))["image"]  # noqa: E731
    a, b = render(fr.REAL_SEEDS_A), render(fr.REAL_SEEDS_B)
    coarse = torch.nn.functional.interpolate(torch.nn.functional.avg_pool2d(b, 4), scale_factor=4, mode="bilinear")
    stats = {}
    for k, x in {"a": a, "b": b, "coarse": coarse}.items():
        stats[k] = fr.FeatureStats(ex.dim)
        stats[k].append(ex(x))
    real_real = fr.frechet_distance(stats["a"], stats["b"])
    assert fr.frechet_distance(stats["a"], stats["coarse"]) > 1.8 * real_real


def test_folder_statistics_and_short_folder(tmp_path):
    from stylebridge.core.imageio import save_image

    for i in range(6):
        save_image(torch.rand(3, 20, 20) * 2 - 1, tmp_path / "imgs" / f"{i}.png")
    (tmp_path / "imgs" / "broken.png").write_bytes(b"not a png")
    ex = _tiny_domain()
    st = fr.stats_of_folder(tmp_path / "imgs", ex, resolution=16, progress=False)
    assert st.n == 6  # the broken file is skipped (and logged), not a crash
    with pytest.raises(ValueError, match="no image files"):
        (tmp_path / "empty").mkdir()
        fr.stats_of_folder(tmp_path / "empty", ex, progress=False)


def test_cli_fd_and_errors(tmp_path, capsys):
    torch.manual_seed(0)
    G = StyleGAN2Generator(StyleGAN2Config(resolution=16, z_dim=16, w_dim=16, mapping_layers=2, channels=(16, 16, 8)))
    G.save_pretrained(tmp_path / "G")
    torch.manual_seed(0)
    DomainNetwork(DomainNetConfig(resolution=16, widths=(8, 8, 16, 16), embed_dim=8, heads=())).save_pretrained(
        tmp_path / "dom")
    out = tmp_path / "fd.json"
    assert main(["metrics", "fd", "--model", str(tmp_path / "G"), "--features", str(tmp_path / "dom"), "--n", "24",
                 "--reference", "--json", str(out), "--quiet"]) == 0
    doc = json.loads(out.read_text())
    assert doc["metric"] == "FD[dom]" and doc["n"] == 24 and doc["value"] > 0 and doc["reference"] > 0
    assert "FD[dom] = " in capsys.readouterr().out
    assert main(["metrics", "fd", "--model", str(tmp_path / "dom"), "--n", "8", "--quiet"]) == 2
    assert "holds a DomainNetwork; expected StyleGAN2Generator" in capsys.readouterr().err
    assert main(["metrics", "fd", "--model", str(tmp_path / "G"), "--real", str(tmp_path / "nope"), "--quiet"]) == 2
    assert "not a folder of images" in capsys.readouterr().err


@pytest.mark.parametrize(("variant", "classes", "expected"), [("fid", 1008, "FID"), ("torchvision", 1000, "FD[")])
def test_inception_files_are_named_honestly(tmp_path, variant, classes, expected):
    from stylebridge.models.inception import InceptionConfig, InceptionFeatures

    net = InceptionFeatures(InceptionConfig(variant=variant, num_classes=classes, aux_logits=False))
    torch.save(net.state_dict(), tmp_path / "incep.pth")
    ex = fr.feature_extractor(tmp_path / "incep.pth")
    assert ex.name.startswith(expected) and ex.dim == 2048
    if expected != "FID":
        assert "not standard FID" in ex.name
    assert ex(torch.rand(1, 3, 32, 32) * 2 - 1).shape == (1, 2048)
