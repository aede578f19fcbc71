"""The editing files users hold (e4e's InterFaceGAN directions and GANSpace PCA) load as they are and reproduce e4e's
edits; SeFa reproduces the official factorisations (genforce and e4e layer conventions) and e4e's SeFa edits — the
golden fixtures of tests/golden/editing_io.safetensors (README there)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import stylebridge
from stylebridge import Direction, GanSpaceComponents
from stylebridge.edit import sefa_rows


@pytest.fixture(scope="module")
def io(golden_dir):
    from safetensors.torch import load_file

    return load_file(str(golden_dir / "editing_io.safetensors"))


@pytest.fixture(scope="module")
def G(golden_dir):
    return stylebridge.load(golden_dir / "stylegan2_010000.pt")


def _render(G, latents: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return G.synthesize(latents, noise_mode="const")


def _pil(images: torch.Tensor) -> torch.Tensor:
    """The fixtures' uint8 picture: side by side along the width, clip((x + 1) / 2) · 255 truncated."""
    x = (images.clamp(-1, 1) + 1) / 2 * 255  # the official clip((x+1)/2, 0, 1)*255, then .astype(uint8)
    return x.permute(2, 0, 3, 1).reshape(images.shape[2], -1, 3).to(torch.uint8)


@pytest.mark.parametrize("file, key, strength", [
    ("e4e_interfacegan_direction.pt", "interfacegan_w_m3", -3),
    ("e4e_interfacegan_direction.pt", "interfacegan_w_p2", 2),
    ("e4e_interfacegan_direction_wplus.pt", "interfacegan_wplus_m3", -3),
    ("e4e_interfacegan_direction_wplus.pt", "interfacegan_wplus_p2", 2),
])
def test_e4e_interfacegan_files_reproduce_e4e_edits(file, key, strength, golden_dir, io, G):
    d = stylebridge.load(golden_dir / file)
    assert isinstance(d, Direction)
    assert torch.equal(d.vector, io["interfacegan_direction" + ("_wplus" if "wplus" in file else "")].reshape(
        d.vector.shape))
    edited = d.apply(io["latents"], strength)
    torch.testing.assert_close(edited, io[key + "_latents"], atol=1e-6, rtol=0)
    images = _render(G, edited)
    torch.testing.assert_close(images, io[key + "_images"], atol=1e-5, rtol=1e-5)
    diff = (_pil(images).int() - io[key + "_pil_uint8_hwc"].int()).abs()
    assert int(diff.max()) <= 1  # truncation at a boundary may flip one level


def test_interfacegan_range_is_f_major(golden_dir, io, G):
    d = stylebridge.load(golden_dir / "e4e_interfacegan_direction.pt")
    edited = torch.cat([d.apply(io["latents"], f) for f in (-3, -2, -1, 0, 1, 2)])
    torch.testing.assert_close(edited, io["interfacegan_w_range_latents"], atol=1e-6, rtol=0)
    torch.testing.assert_close(_render(G, edited), io["interfacegan_w_range_images"], atol=1e-5, rtol=1e-5)


def test_e4e_ganspace_file_reproduces_e4e_edits(golden_dir, io, G):
    pca = stylebridge.load(golden_dir / "e4e_ganspace_pca.pt")  # comp is stored non-contiguous
    assert isinstance(pca, GanSpaceComponents)
    torch.testing.assert_close(pca.comp, io["pca_comp"][:, 0], atol=0, rtol=0)
    torch.testing.assert_close(pca.mean, io["pca_mean"], atol=0, rtol=0)
    torch.testing.assert_close(pca.std, io["pca_std"], atol=0, rtol=0)
    edited = pca.apply(io["latents"], io["ganspace_edits"].tolist())
    torch.testing.assert_close(edited, io["ganspace_latents"], atol=1e-6, rtol=0)
    torch.testing.assert_close(_render(G, edited), io["ganspace_images"], atol=1e-5, rtol=1e-5)


def _sorted(vals: torch.Tensor, vecs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    order = torch.argsort(vals, descending=True)
    return vals[order], vecs[order]


@pytest.mark.parametrize("convention, layers, key", [
    ("genforce", "all", "sefa_genforce_all"),
    ("genforce", "2-5", "sefa_genforce_range"),
    ("e4e", "all", "sefa_e4e_all"),
    ("e4e", [2, 3, 4, 5], "sefa_e4e_range"),
])
def test_sefa_matches_the_official_factorisation(convention, layers, key, io, G):
    vals, vecs = stylebridge.sefa(G, layers=layers, convention=convention)
    assert torch.all(vals[:-1] >= vals[1:])  # descending
    ref_vals, ref_vecs = _sorted(io[key + "_eigvals"], io[key + "_eigvecs"])
    torch.testing.assert_close(vals, ref_vals, atol=1e-5, rtol=1e-5)
    sign = torch.sign((vecs * ref_vecs).sum(1, keepdim=True))  # eigenvectors are defined up to sign
    torch.testing.assert_close(vecs * sign, ref_vecs, atol=1e-5, rtol=0)
    assert sefa_rows(G, layers, convention) == io[key + "_layers"].tolist()


def test_e4e_sefa_edits(io, G):
    """e4e's apply_sefa: for semantic s, sample j, distance d in (-15, 0, 15): latents[j] + row s · d on the
    (shifted) rows of its layer list."""
    rows = io["sefa_e4e_range_layers"].tolist()
    _, own_vecs = stylebridge.sefa(G, layers=[2, 3, 4, 5], convention="e4e")
    official = io["sefa_e4e_range_eigvecs"]
    out_official, out_own = [], []
    for s in (0, 1):
        # Our vectors are sorted and sign-free; take the one matching official row s, with its sign.
        match = int(torch.argmax((own_vecs @ official[s]).abs()))
        own = own_vecs[match] * torch.sign(own_vecs[match] @ official[s])
        for j in (0, 1):
            for dist in np.linspace(-15, 15, 3):
                for vec, out in ((official[s], out_official), (own, out_own)):
                    d = Direction.from_vector(vec, layers=tuple(rows))
                    out.append(d.apply(io["latents"][j : j + 1], float(dist))[0])
    torch.testing.assert_close(torch.stack(out_official), io["sefa_edit_latents"], atol=1e-6, rtol=0)
    torch.testing.assert_close(torch.stack(out_own), io["sefa_edit_latents"], atol=1e-4, rtol=0)
    torch.testing.assert_close(_render(G, torch.stack(out_official)), io["sefa_edit_images"], atol=1e-5, rtol=1e-5)


def test_directions_round_trip_natively_and_validate(tmp_path, golden_dir, io):
    d = stylebridge.load(golden_dir / "e4e_interfacegan_direction_wplus.pt")
    d.save_pretrained(tmp_path / "dir")
    again = stylebridge.load(tmp_path / "dir", expect=Direction)
    assert torch.equal(again.vector, d.vector) and again.config == d.config
    pca = stylebridge.load(golden_dir / "e4e_ganspace_pca.pt")
    pca.save_pretrained(tmp_path / "pca")
    assert torch.equal(stylebridge.load(tmp_path / "pca").comp, pca.comp)
    w = io["latents"][:, 0]
    with pytest.raises(ValueError, match="needs W\\+"):
        d.apply(w, 1.0)  # a per-row direction on a w
    dw = stylebridge.load(golden_dir / "e4e_interfacegan_direction.pt")
    torch.testing.assert_close(dw.apply(w, 2.0), w + 2.0 * dw.vector)  # a W direction on a w stays a w
    edited = dw.apply(io["latents"], torch.tensor([1.0, -1.0]), layers="2-3")
    assert torch.equal(edited[:, [0, 1, 4, 5, 6, 7]], io["latents"][:, [0, 1, 4, 5, 6, 7]])
    torch.testing.assert_close(edited[1, 2], io["latents"][1, 2] - dw.vector)


def test_interfacegan_npy_boundary_loads(tmp_path, io):
    np.save(tmp_path / "boundary.npy", io["interfacegan_direction"].numpy())
    d = stylebridge.load(tmp_path / "boundary.npy")
    assert isinstance(d, Direction) and torch.equal(d.vector, io["interfacegan_direction"][0])
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(stylebridge.CheckpointError, match="not a plain numeric"):
        stylebridge.load(tmp_path / "obj.npy")  # a pickled .npy is refused, never unpickled
