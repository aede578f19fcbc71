"""The editing evaluation against synthfaces' ground-truth edits: its scores behave as defined, its report and CLI."""

from __future__ import annotations

import json

import pytest
import torch

import stylebridge
from stylebridge.apps.cli import main
from stylebridge.core.seeds import HELD_OUT_SEED
from stylebridge.evaluate.editing import EDIT_TASKS, run_editing_evaluation, write_editing_report
from stylebridge.invert import make_inverter
from stylebridge.models.direction import Direction


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


@pytest.fixture(scope="module")
def psp():
    return make_inverter("psp")


def _direction(name: str, attribute: str, vector: torch.Tensor | None = None, per_unit: float = 0.0) -> Direction:
    w_dim = stylebridge.load("synthfaces-64").w_dim
    v = torch.zeros(w_dim) if vector is None else vector
    return Direction.from_vector(v, name=name, attribute=attribute, per_unit=per_unit, strength_range=(-3, 3))


def test_a_zero_direction_keeps_everything(psp):
    """An edit that moves nothing keeps every attribute exactly (kept 1); the judge reads the true edits as
    successes and the unedited inputs as failures."""
    zero_smile = _direction("nothing-smile", "smile", per_unit=0.1)
    zero_glasses = _direction("nothing-glasses", "glasses")
    zero_hair = _direction("nothing-hair", "hair_color=blonde:black")  # only faces with hair: a subset
    result = run_editing_evaluation([psp], [zero_smile, zero_glasses, zero_hair], n=8, seed=HELD_OUT_SEED + 4,
                                    progress=False, examples=2)
    hair = result.report["results"]["psp"]["nothing-hair"]
    assert hair["faces"] == 7 and hair["kept"] == 1.0  # seed HELD_OUT_SEED + 9 is bald
    rep = result.report
    for name in ("nothing-smile", "nothing-glasses"):
        row = rep["results"]["psp"][name]
        assert row["kept"] == 1.0 and row["all_kept"] == 1.0
        assert 0 <= row["success"] <= 1
        assert row["faces"] == 8 and row["dist_gt"] > 0 and row["mse_gt"] > 0
        ref = rep["reference"][name]
        assert ref["ground truth"]["success"] >= 0.75  # the judge reads the true edits
        assert ref["no edit"]["success"] <= 0.25
    assert rep["results"]["psp"]["nothing-smile"]["strength_mean_abs"] > 0  # asked to move, by per_unit
    assert rep["inverters"]["psp"]["recon_mse"] < 0.1 and rep["inverters"]["psp"]["s_per_image"] > 0
    assert set(rep["judge_reliable"]) >= {"skin_tone", "beard", "bg_hue"}
    assert list(result.examples["nothing-glasses"]) == ["input", "ground truth", "psp"]
    assert result.examples["nothing-glasses"]["psp"].shape == (2, 3, 64, 64)


def test_a_real_direction_beats_no_edit_and_its_reverse(psp):
    """A glasses direction found on the generator's samples (mean difference of w with and without glasses, as the
    judge reads them) turns glasses on and off far more often than not editing, and than the reversed direction."""
    G = stylebridge.load("synthfaces-64")
    net = stylebridge.load("synthfaces-domain")
    from stylebridge.edit.finders import find_supervised, sample_w, scores_from_logits

    w = sample_w(G, 600, seed=5)
    with torch.no_grad():
        scores = scores_from_logits(net, net(G.synthesize(w, noise_mode="const").clamp(-1, 1)), "glasses")
    d = find_supervised(w, scores, "meandiff", fraction=0.2, name="glasses")
    d.config = type(d.config)(**{**d.config.to_dict(), "attribute": "glasses"})
    rev = Direction(type(d.config)(**{**d.config.to_dict(), "name": "reversed"}))
    rev.vector.copy_(-d.vector)
    rep = run_editing_evaluation([psp], [d, rev], n=12, seed=HELD_OUT_SEED + 100, progress=False).report
    row, back, ref = rep["results"]["psp"]["glasses"], rep["results"]["psp"]["reversed"], rep["reference"]["glasses"]
    assert row["success"] > ref["no edit"]["success"] + 0.3
    assert row["success"] > back["success"] + 0.3
    assert row["kept"] < 1.0  # it changes the image (and, unconditioned, more than the glasses)


def test_refusals(psp):
    with pytest.raises(ValueError, match="held-out"):
        run_editing_evaluation([psp], [_direction("s", "smile")], n=4, seed=5, progress=False)
    with pytest.raises(ValueError, match="no ground-truth edit"):
        run_editing_evaluation([psp], [_direction("s", "")], n=4, progress=False)
    with pytest.raises(ValueError, match="distinct names"):
        run_editing_evaluation([psp], [_direction("s", "smile"), _direction("s", "yaw")], n=4, progress=False)
    assert {"smile", "glasses", "hair_color", "beard", "yaw", "mouth_open"} <= set(EDIT_TASKS)


def test_report_and_cli(psp, tmp_path, capsys):
    d = _direction("nothing", "yaw", per_unit=0.2)
    d.save_pretrained(tmp_path / "yaw.direction")
    result = run_editing_evaluation([psp], [d], n=4, progress=False)
    paths = write_editing_report(result, tmp_path / "rep")
    assert {p.name for p in paths.values()} == {"report.json", "report.md", "tradeoff.png", "examples.png"}
    md = paths["md"].read_text()
    assert "| psp |" in md and "*ground truth*" in md and "*no edit*" in md
    code = main(["evaluate", "--editing", "--inverters", "psp", "--directions", str(tmp_path / "yaw.direction"),
                 "--n", "3", "--out", str(tmp_path / "cli"), "--quiet"])
    assert code == 0
    rep = json.loads((tmp_path / "cli" / "report.json").read_text())
    assert rep["config"]["command"].startswith("stylebridge evaluate --editing")
    assert list(rep["results"]) == ["psp"] and list(rep["results"]["psp"]) == ["nothing"]
    code = main(["evaluate", "--editing", "--methods", "psp", "--out", str(tmp_path / "x")])
    assert code == 2 and "--inverters" in capsys.readouterr().err
