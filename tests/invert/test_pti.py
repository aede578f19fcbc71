"""PTI: tuned weights as deltas (dense, low rank, per image, shared), the tuning loop, and its inverter interface."""

from __future__ import annotations

import pytest
import torch

from stylebridge.invert import GeneratorDelta, PTIInverter, load_delta, make_inverter
from stylebridge.invert.delta import applied, modulated_convs, save_delta, tunable_fraction


def _random_delta(G, count: int, rank: int, seed: int = 1) -> GeneratorDelta:
    d = GeneratorDelta.zeros(G, count, rank, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in d.parameters():
            t.copy_(torch.randn(t.shape, generator=gen) * 0.1)
    return d.detach()


def test_zero_delta_changes_nothing_and_is_removed_after(tiny_generator) -> None:
    G = tiny_generator
    w = G.map(torch.randn(3, G.z_dim, generator=torch.Generator().manual_seed(0)))
    ref = G.synthesize(w, noise_mode="const")
    for rank in (0, 4):
        with torch.no_grad(), applied(G, GeneratorDelta.zeros(G, 3, rank)):
            torch.testing.assert_close(G.synthesize(w, noise_mode="const"), ref, atol=1e-5, rtol=1e-5)
    assert all(m.weight_delta is None for m in modulated_convs(G).values())
    assert 0.5 < tunable_fraction(G) < 1


@pytest.mark.parametrize("rank", [0, 3])
def test_per_image_deltas_render_each_image_by_its_own_generator(tiny_generator, rank) -> None:
    G = tiny_generator
    w = G.map(torch.randn(3, G.z_dim, generator=torch.Generator().manual_seed(1)))
    d = _random_delta(G, 3, rank)
    with torch.no_grad():
        with applied(G, d):
            together = G.synthesize(w, noise_mode="const")
        alone = []
        for j in range(3):
            with applied(G, d.select([j])):
                alone.append(G.synthesize(w[j : j + 1], noise_mode="const"))
        assert not torch.allclose(together, G.synthesize(w, noise_mode="const"), atol=1e-3)
    torch.testing.assert_close(together, torch.cat(alone), atol=1e-5, rtol=1e-5)
    if rank:  # low rank: the delta is up @ down, reshaped
        name = next(iter(d.shapes))
        o, i, kh, kw = d.shapes[name]
        full = d.tensors[f"{name}.up"][1] @ d.tensors[f"{name}.down"][1]
        torch.testing.assert_close(d.delta(name)[1], full.view(o, i, kh, kw))


def test_delta_files_round_trip_and_refuse_other_files(tiny_generator, tmp_path) -> None:
    G = tiny_generator
    d = _random_delta(G, 2, 4)
    save_delta(tmp_path / "t.safetensors", d, {"w_plus": torch.zeros(6, 32)}, {"source": "x.png"})
    back = load_delta(tmp_path / "t.safetensors")
    assert back.rank == 4 and back.count == 2 and back.shapes == d.shapes
    for k, v in d.tensors.items():
        torch.testing.assert_close(back.tensors[k], v.half().float())  # stored fp16
    back.check(G)
    # one image's file without the leading axis (as the folder runner writes it) loads as M = 1
    one = {k: v[1] for k, v in d.per_image(2).items()}
    from safetensors.torch import save_file

    save_file(one, str(tmp_path / "one.safetensors"), metadata=d.metadata())
    assert load_delta(tmp_path / "one.safetensors").count == 1
    save_file({"w_plus": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(ValueError, match="holds no tuned weights"):
        load_delta(tmp_path / "plain.safetensors")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_delta(tmp_path / "missing.safetensors")


@pytest.fixture(scope="module")
def targets(tiny_generator) -> torch.Tensor:
    """Images the tiny generator cannot quite make: its renders plus a pattern."""
    G = tiny_generator
    with torch.no_grad():
        img = G.synthesize(G.map(torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(5))),
                           noise_mode="const")
    pattern = torch.linspace(-0.5, 0.5, 16).view(1, 1, 1, 16)
    return (img + pattern).clamp(-1, 1)


def test_tuning_improves_the_pivot_and_render_uses_the_tuned_weights(tiny_generator, targets) -> None:
    G = tiny_generator
    inv = PTIInverter(G, pivot="optimize", pivot_options={"steps": 5}, steps=15, rank=4)
    res = inv.invert(targets)
    ex = res.extras
    assert ex["tuned"].count == 2 and ex["steps"] == 15 and ex["curve"].shape == (15, 2)
    assert (ex["dist"] < ex["dist_pivot"]).all(), (ex["dist_pivot"], ex["dist"])
    assert res.w_plus.shape == (2, G.num_ws, G.w_dim)
    torch.testing.assert_close(inv.render(res.w_plus, **res.render_options()), res.images)
    torch.testing.assert_close(inv.render(res.w_plus), ex["pivot_images"])  # untuned: the pivot's image
    # the original generator is untouched
    assert all(m.weight_delta is None for m in modulated_convs(G).values())
    # a subset renders with its own deltas
    sub = inv.render(res.w_plus[1:], **res.render_options([1]))
    torch.testing.assert_close(sub, res.images[1:], atol=1e-5, rtol=1e-5)


def test_start_codes_shared_mode_budget_and_stop(tiny_generator, targets) -> None:
    G = tiny_generator
    start = G.w_avg[None].expand(2, -1)
    shared = PTIInverter(G, steps=5, shared=True, rank=0).invert(targets, start=start)
    assert shared.extras["tuned"].count == 1 and shared.extras["tuned"].rank == 0
    torch.testing.assert_close(shared.w_plus, G.broadcast_ws(start))
    # a stop_at every image reaches at once ends the tuning after its first step, weights unchanged
    done = PTIInverter(G, steps=5, stop_at=10.0).invert(targets, start=start)
    assert done.extras["steps"] == 1 and (done.extras["stopped"] == 0).all()
    torch.testing.assert_close(done.images, done.extras["pivot_images"])
    budget = PTIInverter(G, steps=10_000, seconds=0.3).invert(targets, start=start)
    assert 1 <= budget.extras["steps"] < 10_000
    # the locality regulariser runs (α defaults to σ_w)
    loc = PTIInverter(G, steps=2, locality=1.0).invert(targets, start=start)
    assert loc.extras["steps"] == 2


def test_factory_and_errors(tiny_generator, targets) -> None:
    inv = make_inverter("pti", pivot="e4e", steps=1)
    assert inv.pivot.name == "e4e" and inv.generator.resolution == 64
    with pytest.raises(ValueError, match="inverts into its encoder's own decoder"):
        make_inverter("pti", pivot="e4e", generator=tiny_generator)
    with pytest.raises(ValueError, match="rank must be"):
        PTIInverter(tiny_generator, rank=-1)
    with pytest.raises(ValueError, match="another generator"):
        PTIInverter(tiny_generator, pivot=make_inverter("e4e"))
    with pytest.raises(ValueError, match="start holds 1 codes for 2 images"):
        PTIInverter(tiny_generator, steps=1).invert(targets, start=tiny_generator.w_avg[None])
