"""`stylebridge distill pairs` / `make_pairs` on the shipped synthfaces-64 generator and directions: kept pairs are
on opposite sides per the classifier (read again from the written files), the report agrees with the files, runs
repeat exactly, the mixing / blending layouts hold what the generator renders, and the CLI's errors are one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import stylebridge
from stylebridge.apps.cli import main
from stylebridge.core.seeds import seed_to_z
from stylebridge.data.paired import FolderPairs
from stylebridge.edit.distill_pairs import _Judge, _quantise, make_pairs
from stylebridge.edit.finders import generator_digest
from stylebridge.formats.loading import load_generator
from stylebridge.models.domain import DomainNetwork

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def G():
    return load_generator("synthfaces-64")


@pytest.fixture(scope="module")
def net():
    return stylebridge.load("synthfaces-domain", expect=DomainNetwork).eval()


@pytest.fixture(scope="module")
def glasses(tmp_path_factory, G, net):
    out = tmp_path_factory.mktemp("pairs") / "glasses"
    result = make_pairs(G, out, direction="glasses", count=12, classifier=net, batch_size=5, progress=False)
    return out, result


def _read(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1).float() / 127.5 - 1


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "pairs.jsonl").read_text().splitlines()]


def test_kept_pairs_are_on_opposite_sides_in_the_files(glasses, net):
    out, result = glasses
    recs = [r for r in _records(out) if r["kept"]]
    assert recs, "no pair kept: the test needs some"
    judge = _Judge.make(net, "glasses")
    src = torch.stack([_read(out / r["files"]["source"]) for r in recs])
    tgt = torch.stack([_read(out / r["files"]["target"]) for r in recs])
    with torch.no_grad():
        _, p_neg_s, _ = judge.sides(src)
        p_pos_t, _, cat_t = judge.sides(tgt)
        ident = net.similarity(src, tgt)
    thr = result.report["settings"]["min_confidence"]
    assert (p_neg_s >= thr).all() and (p_pos_t >= thr).all()  # confidently opposite, the right way round
    assert (cat_t != 0).all()  # glasses on in every target, by the classifier's own argmax
    # the report describes exactly the written images (classified after 8-bit quantisation)
    torch.testing.assert_close(p_neg_s, torch.tensor([r["minus"]["confidence"] for r in recs]), atol=1e-4, rtol=0)
    torch.testing.assert_close(p_pos_t, torch.tensor([r["plus"]["confidence"] for r in recs]), atol=1e-4, rtol=0)
    torch.testing.assert_close(ident, torch.tensor([r["identity"] for r in recs]), atol=1e-4, rtol=0)
    assert all(r["minus"]["side"] == "negative" and r["plus"]["side"] == "positive" for r in recs)


def test_the_report_agrees_with_the_files(glasses):
    out, result = glasses
    recs = _records(out)
    rep = json.loads((out / "report.json").read_text())
    kept = [r for r in recs if r["kept"]]
    names = {f"{r['index']:06d}.png" for r in kept}
    assert {p.name for p in (out / "source").iterdir()} == names == {p.name for p in (out / "target").iterdir()}
    assert not (out / "source2").exists()
    c = rep["counts"]
    assert c["rendered"] == len(recs) == 12 == result.rendered
    assert c["kept"] == len(kept) == result.kept == c["pairs_written"] == result.written
    assert c["kept_fraction"] == pytest.approx(len(kept) / 12, abs=1e-5)
    for why, n in c["rejected"].items():
        assert n == sum(why in r["reject"] for r in recs)
    assert all(bool(r["reject"]) != r["kept"] for r in recs)
    thr = rep["identity_threshold"]
    assert all(r["identity"] >= thr for r in kept)
    assert [r["seed"] for r in recs] == list(range(12)) and [r["index"] for r in recs] == list(range(12))
    for h in rep["histograms"].values():
        assert sum(h["counts"]) == 12 and len(h["edges"]) == len(h["counts"]) + 1
    md = (out / "report.md").read_text()
    assert f"Kept {len(kept)} of 12" in md
    for f in ("histograms.png", "preview.png"):
        assert Image.open(out / f).size[0] > 0
    d = stylebridge.load(out / "direction", expect=stylebridge.Direction)
    assert d.name == "glasses" and rep["settings"]["direction"] == "glasses"
    # the paired-folder reader trains on the folder as it is
    ds = FolderPairs("frontalize", out / "source", out / "target", resolution=64)
    assert len(ds) == len(kept)
    x, y, _ = ds[0]
    assert x.shape == y.shape == (3, 64, 64)


def test_runs_repeat_exactly_and_both_directions_reverse_the_pair(tmp_path, G, net):
    kw = dict(direction="smile", count=5, classifier=net, min_confidence=0.6, min_identity=-1.0, progress=False)
    a = make_pairs(G, tmp_path / "a", batch_size=3, **kw)
    b = make_pairs(G, tmp_path / "b", batch_size=3, both_directions=True, **kw)
    ra, rb = _records(tmp_path / "a"), _records(tmp_path / "b")
    for x, y in zip(ra, rb):
        x.pop("files", None)
        y.pop("files", None)
    assert ra == rb and a.kept == b.kept > 0
    assert b.written == 2 * b.kept and len(list((tmp_path / "b" / "target").iterdir())) == 2 * b.kept
    for f in (tmp_path / "a" / "source").iterdir():
        assert f.read_bytes() == (tmp_path / "b" / "source" / f.name).read_bytes()
        rev = f.with_name(f.stem + "_rev.png").name
        assert (tmp_path / "b" / "source" / rev).read_bytes() == (tmp_path / "b" / "target" / f.name).read_bytes()
        assert (tmp_path / "b" / "target" / rev).read_bytes() == f.read_bytes()
    rep = json.loads((tmp_path / "a" / "report.json").read_text())
    assert rep["counts"]["rejected"]["identity"] == 0 and rep["identity_threshold"] == -1.0


@pytest.mark.parametrize("mode", ["mix", "blend"])
def test_mix_and_blend_layouts(tmp_path, G, net, mode):
    out = tmp_path / mode
    result = make_pairs(G, out, mode=mode, count=3, seed=7, classifier=net, progress=False,
                        crossover=3 if mode == "mix" else None)
    assert result.kept == result.rendered == 3
    recs = _records(out)
    assert [(r["seed_a"], r["seed_b"]) for r in recs] == [(7, 8), (9, 10), (11, 12)]
    with torch.no_grad():
        wa = G.map(seed_to_z([r["seed_a"] for r in recs], G.z_dim))
        wb = G.map(seed_to_z([r["seed_b"] for r in recs], G.z_dim))
        w_t = G.mix(wa, wb, 3) if mode == "mix" else (wa + wb) / 2
        want = {"source": wa, "source2": wb, "target": w_t}
        for folder, w in want.items():
            img = _quantise(G.synthesize(w, noise_mode="const").clamp(-1, 1))
            got = torch.stack([_read(out / folder / f"{r['index']:06d}.png") for r in recs])
            torch.testing.assert_close(got, img, atol=1.01 / 127.5, rtol=0)
    rep = json.loads((out / "report.json").read_text())
    assert rep["settings"].get("crossover") == (3 if mode == "mix" else None)
    assert set(rep["histograms"]) == {"identity_a", "identity_b"}
    assert not (out / "direction").exists()


def test_attribute_finds_the_direction_first(tmp_path, G, net):
    out = tmp_path / "found"
    result = make_pairs(G, out, attribute="smile", count=4, classifier=net, find_samples=120, find_fraction=0.25,
                        find_method="meandiff", progress=False)
    d = stylebridge.load(out / "direction", expect=stylebridge.Direction)
    assert d.config.method == "meandiff" and d.config.attribute == "smile" and d.config.per_unit > 0
    assert d.config.generator == generator_digest(G)  # a loaded generator has no name, only its digest
    s = result.report["settings"]
    assert s["found"] and s["find"]["samples"] == 120 and s["coeff"] == d.config.strength_range[1]


def test_library_errors_come_before_any_output(tmp_path, G, net):
    out = tmp_path / "x"
    with pytest.raises(ValueError, match="unknown attribute 'frown'"):
        make_pairs(G, out, attribute="frown", count=2, classifier=net, progress=False)
    with pytest.raises(FileNotFoundError, match="not a shipped direction"):
        make_pairs(G, out, direction="frown", count=2, classifier=net, progress=False)
    with pytest.raises(ValueError, match="count must be >= 1"):
        make_pairs(G, out, direction="smile", count=0, progress=False)
    with pytest.raises(ValueError, match="needs a direction"):
        make_pairs(G, out, count=2, progress=False)
    with pytest.raises(ValueError, match="only for mode edit"):
        make_pairs(G, out, mode="blend", direction="smile", count=2, progress=False)
    with pytest.raises(ValueError, match="crossover must be in"):
        make_pairs(G, out, mode="mix", crossover=G.num_ws, count=2, classifier=net, progress=False)
    assert not out.exists()


def test_cli(tmp_path, capsys):
    out = tmp_path / "blend"
    assert main(["distill", "pairs", "--generator", "synthfaces-64", "--mode", "blend", "--count", "2", "--out",
                 str(out), "--quiet"]) == 0
    assert "kept 2 of 2 triplets" in capsys.readouterr().out
    assert len(list((out / "source2").iterdir())) == 2
    # an earlier run is not overwritten silently; --overwrite replaces it
    assert main(["distill", "pairs", "--generator", "synthfaces-64", "--mode", "blend", "--count", "1", "--out",
                 str(out), "--quiet"]) == 2
    assert "already holds pairs" in capsys.readouterr().err
    assert main(["distill", "pairs", "--generator", "synthfaces-64", "--mode", "blend", "--count", "1", "--out",
                 str(out), "--quiet", "--overwrite"]) == 0
    assert len(list((out / "source2").iterdir())) == 1
    capsys.readouterr()
    (tmp_path / "file").write_text("x")
    bad = [
        (["--direction", "frown", "--count", "2", "--out", str(tmp_path / "a")], "not a shipped direction"),
        (["--attribute", "frown", "--count", "2", "--out", str(tmp_path / "a")], "unknown attribute"),
        (["--direction", "smile", "--count", "0", "--out", str(tmp_path / "a")], "must be a positive integer"),
        (["--direction", "smile", "--count", "2", "--out", str(tmp_path / "file" / "sub")], "not a folder"),
        (["--direction", "smile", "--count", "2", "--crossover", "3", "--out", str(tmp_path / "a")],
         "crossover applies to mode mix"),
    ]
    for args, message in bad:
        assert main(["distill", "pairs", "--generator", "synthfaces-64", "--quiet", *args]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "a").exists()
