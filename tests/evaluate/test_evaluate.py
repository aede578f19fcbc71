"""`stylebridge evaluate`: the methods × input kinds × metrics report."""

from __future__ import annotations

import json

import pytest
import torch

from stylebridge.apps.cli import main
from stylebridge.core.seeds import HELD_OUT_SEED
from stylebridge.data import synthfaces as sf
from stylebridge.evaluate.benchmark import expression_agreement
from stylebridge.evaluate.encoder import appearance_agreement
from stylebridge.evaluate.inputs import INPUT_KINDS, make_inputs
from stylebridge.evaluate.methods import (
    EvalMethod,
    parse_method,
    register_method,
    registered_methods,
    unregister_method,
)

NET = "synthfaces-domain"
FACE_METRICS = {"mse", f"distance[{NET}]", f"identity[{NET}]", f"attributes[{NET}]", "ms_per_image_fp32"}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Batches of 8 at 64 px gain nothing from a second thread, and on a shared 2-core machine OpenMP's spinning
    threads make them up to 10x slower: one thread keeps these tests fast everywhere."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def test_methods():
    """Two test-only methods through the public registry: a perfect identity (every face kind) and one that
    takes only the rendered face."""
    def identity(model, generator, device):
        return EvalMethod("identity", frozenset(INPUT_KINDS) - {"emoji"}, lambda b: b.rgb.clone(), model="(test)")

    def recon_only(model, generator, device):
        return EvalMethod("recon-only", frozenset({"reconstruction"}), lambda b: b.rgb * 0.5, model="(test)")

    register_method("identity", identity, default=False)
    register_method("recon-only", recon_only, default=False)
    yield
    unregister_method("identity")
    unregister_method("recon-only")


def test_cli_writes_report_json_md_png(tmp_path, capsys, monkeypatch):
    # bf16 is emulated (seconds per batch) on CPUs without AMX / AVX512-BF16: stub the bf16 timing here
    monkeypatch.setattr("stylebridge.evaluate.benchmark._time_precision", lambda *a, **k: 1.0)
    out = tmp_path / "ev"
    rc = main(["evaluate", "--generator", "synthfaces-64", "--methods", "mine=synthfaces-64-psp-sketch",
               "--inputs", "reconstruction", "sketch", "emoji", "--n", "8", "--out", str(out), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    for name in ("report.json", "report.md", "report.png", "examples.png"):
        assert (out / name).is_file()
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    doc = json.loads((out / "report.json").read_text())
    assert {"config", "machine", "metrics", "inputs", "methods", "results", "emoji", "notes"} <= set(doc)
    c = doc["config"]
    assert c["n"] == 8 and c["seeds"] == [HELD_OUT_SEED, HELD_OUT_SEED + 7] and c["network"] == NET
    assert c["methods"] == ["mine"] and c["command"].startswith("stylebridge evaluate")
    assert {"platform", "torch", "cpu_flags"} <= set(doc["machine"])
    assert set(doc["machine"]["cpu_flags"]) == {"amx", "avx512_bf16"}
    assert doc["methods"]["mine"]["model"] == "synthfaces-64-psp-sketch"
    assert doc["methods"]["mine"]["notes"].startswith("1-channel")  # the sketch model gets the sketch itself
    speed = doc["methods"]["mine"]["speed"]
    assert speed["batch"] == 8 and speed["fp32_ms_per_image"] > 0 and speed["bf16_ms_per_image"] > 0
    for kind in ("reconstruction", "sketch"):
        assert FACE_METRICS <= set(doc["results"]["mine"][kind])
    if doc["emoji"].get("skipped"):  # no emoji font on this machine
        assert doc["results"]["mine"]["emoji"] is None and any("emoji" in n for n in doc["notes"])
    else:
        assert doc["results"]["mine"]["emoji"][f"fd[{NET}]"] > 0 and doc["emoji"]["n_emoji"] == 8
    md = (out / "report.md").read_text()
    assert f"distance[{NET}]" in md and "| mine |" in md
    assert "wrote" in capsys.readouterr().out


def test_identity_method_scores_zero_mse_and_dash_for_inputs_it_cannot_take(tmp_path, test_methods, capsys):
    out = tmp_path / "ev"
    rc = main(["evaluate", "--methods", "identity", "recon-only", "--inputs", "reconstruction,blur", "--n", "8",
               "--out", str(out), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    doc = json.loads((out / "report.json").read_text())
    ident = doc["results"]["identity"]["reconstruction"]
    assert ident["mse"] == 0.0 and ident[f"distance[{NET}]"] == pytest.approx(0.0, abs=1e-6)
    assert ident[f"identity[{NET}]"] == pytest.approx(1.0, abs=1e-5)
    # a perfect output scores what the network scores on the targets themselves
    assert ident[f"attributes[{NET}]"] == pytest.approx(doc["inputs"]["reconstruction"][
        f"attributes[{NET}]_on_targets"])
    assert doc["results"]["identity"]["blur"]["mse"] > 0
    assert doc["results"]["recon-only"]["blur"] is None
    assert doc["results"]["recon-only"]["reconstruction"]["mse"] > 0
    md = (out / "report.md").read_text()
    mse_table = md.split("## MSE")[1].split("##")[0]
    assert "| recon-only |" in mse_table and "—" in mse_table.split("| recon-only |")[1].splitlines()[0]


@pytest.mark.parametrize("argv, fragment", [
    (["--methods", "nope"], "unknown method 'nope'"),
    (["--inputs", "sepia"], "unknown input kind 'sepia'"),
    (["--n", "0"], "--n must be >= 1"),
    (["--seed", "5"], "--seed must be >="),
])
def test_bad_arguments_exit_2_with_one_line(tmp_path, capsys, argv, fragment):
    assert main(["evaluate", "--out", str(tmp_path / "ev"), "--quiet", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and fragment in err
    assert not (tmp_path / "ev").exists()  # nothing created before the arguments are checked


def test_unwritable_out_exit_2(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["evaluate", "--out", str(tmp_path / "file" / "ev"), "--n", "1", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cannot write to" in err


def test_registry_and_parse_method(test_methods):
    assert list(registered_methods())[:4] == ["psp", "e4e", "actmap", "psp-sketch"]
    assert parse_method("psp") == ("psp", None) and parse_method("x=runs/m") == ("x", "runs/m")
    with pytest.raises(ValueError, match="already registered"):
        register_method("identity", lambda *a: None)
    with pytest.raises(ValueError, match="NAME or NAME=MODEL"):
        parse_method("=path")


def test_inputs_have_exact_targets():
    seeds = range(HELD_OUT_SEED, HELD_OUT_SEED + 2)
    rec = make_inputs("reconstruction", seeds)
    assert torch.equal(rec.rgb, rec.target)
    front = make_inputs("frontalize", seeds)
    assert torch.equal(front.rgb, rec.target) and not torch.equal(front.target, rec.target)
    assert front.attributes["yaw"].eq(0.5).all()
    inp = make_inputs("inpaint", seeds)
    assert inp.raw.shape[1] == 4 and torch.equal(inp.rgb, inp.raw[:, :3]) and torch.equal(inp.target, rec.target)
    sk = make_inputs("sketch", seeds)
    assert sk.raw.shape[1] == 1 and torch.allclose(sk.rgb, sk.raw.expand(-1, 3, -1, -1))
    seg = make_inputs("segmentation", seeds)
    assert seg.raw.sum(1).eq(1).all() and seg.rgb.shape == rec.rgb.shape
    for f in (4, 8):
        sr = make_inputs(f"superres{f}", seeds)
        assert torch.equal(sr.target, rec.target) and (sr.rgb - rec.rgb).abs().mean() > 0.01


# --- out of domain with known truth (issue 19) ---------------------------------------------------------------------


def test_photo_and_closeup_inputs_have_the_clean_faces_as_targets():
    seeds = [HELD_OUT_SEED + i for i in range(4)]
    clean = sf.render(sf.sample_attributes(seeds), 64, ("image",))["image"]
    for kind in ("photo", "closeup"):
        b = make_inputs(kind, seeds)
        assert b.rgb.shape == (4, 3, 64, 64) and b.rgb.min() >= -1 and b.rgb.max() <= 1
        torch.testing.assert_close(b.target, clean)
        assert (b.rgb - clean).abs().mean() > 0.05  # out of domain: not the clean render
    close = make_inputs("closeup", seeds)
    assert torch.allclose(close.rgb[:, 0], close.rgb[:, 1], atol=2 / 255)  # grayscale
    assert not torch.equal(close.raw, close.rgb)  # raw: the close-up before alignment


def test_appearance_and_expression_agreement():
    attrs = sf.sample_attributes(list(range(50)))
    pred = {k: v.clone() for k, v in attrs.items()}
    agree = appearance_agreement(pred, attrs)
    assert all(agree[k] == 1.0 for k in ("hair_color", "hair_style", "glasses", "beard", "skin_tone"))
    assert agree["yaw_corr"] == pytest.approx(1.0)
    pred["hair_color"] = (attrs["hair_color"] + 1) % 6
    pred["yaw"] = 1 - attrs["yaw"]
    agree = appearance_agreement(pred, attrs)
    assert agree["hair_color"] == 0.0 and agree["yaw_corr"] == pytest.approx(-1.0)
    names = ["1F600", "1F641", "1F610", "1F62E", "9999"]  # grin (smile, open), frown, neutral, open mouth, unlabelled
    read = {"smile": torch.tensor([0.9, 0.1, 0.5, 0.5, 0.5]), "mouth_open": torch.tensor([0.8, 0.1, 0.1, 0.1, 0.9])}
    ex = expression_agreement(read, names)
    assert ex["n_smile"] == 4 and ex["smile"] == 1.0
    assert ex["n_mouth_open"] == 4 and ex["mouth_open"] == 0.75  # 1F62E's open mouth read as closed


def test_out_of_domain_section_of_the_report(tmp_path, test_methods, capsys):
    out = tmp_path / "ev"
    rc = main(["evaluate", "--methods", "identity", "--inputs", "reconstruction", "photo", "closeup", "--n", "6",
               "--out", str(out), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    doc = json.loads((out / "report.json").read_text())
    for kind in ("reconstruction", "photo", "closeup"):
        cell = doc["results"]["identity"][kind]
        assert set(cell["agreement"]) == {"hair_color", "hair_style", "glasses", "beard", "skin_tone", "yaw_corr"}
        assert cell[f"fd[{NET}]"] > 0
    assert "agreement_untranslated" in doc["inputs"]["photo"]
    md = (out / "report.md").read_text()
    assert "## Out of domain, with known truth" in md and "| identity | photo-style |" in md
