"""The distillation evaluation: a do-nothing editor scores exactly as the "no edit" reference, the ground truth beats
it, the baselines get their rows and speeds, the report is written; distilled models carry their direction."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from stylebridge.edit.resolve import resolve_direction
from stylebridge.evaluate.distillation import (
    DistilledEdit,
    distilled_edit,
    run_distillation_evaluation,
    write_distillation_report,
)
from stylebridge.models.pix2pixhd import Pix2PixHDGenerator, Pix2PixHDGeneratorConfig


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


class Unchanged(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clone()


def test_identity_editor_is_no_edit_and_report(tmp_path):
    smile = resolve_direction("smile")
    result = run_distillation_evaluation([DistilledEdit("unchanged", Unchanged(), smile)], ["e4e"], n=16,
                                         fd_reference=48, progress=False, examples=2)
    rep = result.report
    info, rows, ref = rep["models"]["unchanged"], rep["results"]["unchanged"], rep["reference"]["unchanged"]
    assert 0 < info["faces"] < 16 and info["faces"] == info["faces_up"]  # one way: only the faces that frown
    assert set(rows) == {"distilled", "e4e"}
    d = rows["distilled"]
    for k in ("success", "dist_gt", "mse_gt", "fd"):
        assert d[k] == pytest.approx(ref["no edit"][k], abs=1e-5), k
    assert d["identity"] == pytest.approx(1.0, abs=1e-3) and d["kept"] == 1.0
    assert ref["ground truth"]["success"] > ref["no edit"]["success"] + 0.5
    assert ref["ground truth"]["fd"] < ref["no edit"]["fd"]
    assert rows["e4e"]["images_per_s"] > 0 and d["images_per_s"] > rows["e4e"]["images_per_s"]
    v = info["goal_vs_e4e"]
    assert v["speedup"] == pytest.approx(d["images_per_s"] / rows["e4e"]["images_per_s"])
    paths = write_distillation_report(result, tmp_path / "rep")
    md = paths["md"].read_text()
    assert "## unchanged" in md and "Goal" in md and "| *no edit* |" in md
    assert json.loads(paths["json"].read_text())["config"]["n"] == 16
    assert paths["examples"].is_file()


def test_distilled_edit_needs_one_image_and_a_direction(tmp_path):
    m = Pix2PixHDGenerator(Pix2PixHDGeneratorConfig(in_channels=6, ngf=4, n_downsample_global=1, n_blocks_global=1))
    m.save_pretrained(tmp_path / "blend")
    with pytest.raises(ValueError, match="6 input channels"):
        distilled_edit(tmp_path / "blend")
    m = Pix2PixHDGenerator(Pix2PixHDGeneratorConfig(ngf=4, n_downsample_global=1, n_blocks_global=1))
    m.save_pretrained(tmp_path / "edit")
    with pytest.raises(ValueError, match="records no direction"):
        distilled_edit(tmp_path / "edit")
    e = distilled_edit(tmp_path / "edit", direction="glasses")
    assert e.name == "edit" and e.direction.config.attribute == "glasses" and not e.both_directions
    with pytest.raises(ValueError, match="held-out"):
        run_distillation_evaluation([e], [], seed=5)


def _glasses_model(folder) -> None:
    """A tiny random 64-px pix2pixHD saved as a distilled glasses editor."""
    torch.manual_seed(0)
    m = Pix2PixHDGenerator(Pix2PixHDGeneratorConfig(ngf=4, n_downsample_global=1, n_blocks_global=1, resolution=64))
    m.save_pretrained(folder, metadata={"distillation": {"mode": "edit", "direction": "glasses"}})


def test_cli_table_for_a_model_folder(tmp_path, capsys):
    from stylebridge.apps.cli import main

    _glasses_model(tmp_path / "run" / "model")
    out = tmp_path / "table"
    assert main(["evaluate", "--distilled", str(tmp_path / "run" / "model"), "--inverters", "psp", "--n", "8",
                 "--fd-reference", "40", "--out", str(out), "--quiet"]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert set(rep["results"]["run"]) == {"distilled", "psp"}
    assert rep["models"]["run"]["direction"] == "glasses" and rep["models"]["run"]["attribute"] == "glasses"
    assert rep["config"]["fd_reference"] == 40 and "fd" in rep["results"]["run"]["psp"]
    assert "--distilled" in rep["config"]["command"] and "stylebridge evaluate" in (out / "report.md").read_text()
    capsys.readouterr()
    assert main(["evaluate", "--distilled", str(tmp_path / "run" / "model"), "--editing", "--out", str(out)]) != 0
    assert "--distilled takes --inverters" in capsys.readouterr().err


def test_photo_look_gives_every_method_the_photos(tmp_path, capsys):
    from stylebridge.apps.cli import main

    _glasses_model(tmp_path / "run" / "model")
    out = tmp_path / "table"
    assert main(["evaluate", "--distilled", str(tmp_path / "run" / "model"), "--inverters", "psp", "--n", "6",
                 "--fd-reference", "0", "--look", "photo", "--out", str(out), "--quiet"]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["config"]["look"] == "photo" and "--look photo" in rep["config"]["command"]
    assert "drawn as photos" in (out / "report.md").read_text()
    capsys.readouterr()
    assert main(["evaluate", "--look", "photo", "--out", str(out)]) == 2
    assert "--look applies to --distilled" in capsys.readouterr().err
