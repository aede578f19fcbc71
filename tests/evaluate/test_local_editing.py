"""The local-editing evaluation (StyleMapGAN region transplants against synthfaces' ground truth) and the
inverter-based rows of `stylebridge evaluate`."""

from __future__ import annotations

import json

import pytest
import torch

from stylebridge.apps.cli import main
from stylebridge.core.seeds import HELD_OUT_SEED
from stylebridge.data import synthfaces as sf
from stylebridge.evaluate.local_editing import (
    REGION_TASKS,
    make_pairs,
    run_local_editing_evaluation,
    write_local_editing_report,
)
from stylebridge.models.stylemapgan import StyleMapGAN
from stylebridge.train.stylemapgan import build_stylemapgan, load_stylemap_config


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("region", list(REGION_TASKS))
def test_pairs_are_real_edits(region):
    """Every pair's ground truth differs from the source in the region's attributes, the reference shows the part,
    and beard pairs share the hair colour (the beard's colour) so the ground truth is exact."""
    task = REGION_TASKS[region]
    src_seeds, ref_seeds = make_pairs(task, 20, HELD_OUT_SEED)
    assert src_seeds == list(range(HELD_OUT_SEED, HELD_OUT_SEED + 20))
    assert len(set(ref_seeds)) == 20 and not set(ref_seeds) & set(src_seeds)
    a, b = sf.sample_attributes(src_seeds), sf.sample_attributes(ref_seeds)
    for i in range(20):
        if task.ref_has is not None:
            assert bool(task.ref_has({k: v[i : i + 1] for k, v in b.items()})[0])
        for k in task.same:
            assert a[k][i] == b[k][i]
        changed = [float((a[k][i].float() - b[k][i].float()).abs()) for k in task.attributes]
        assert sum(changed) > 0
    assert make_pairs(task, 20, HELD_OUT_SEED) == (src_seeds, ref_seeds)  # deterministic


def test_local_editing_report_on_golden_model(golden_dir, tmp_path):
    """The golden StyleMapGAN (32 px): every row and column, reference rows exact, files written."""
    result = run_local_editing_evaluation(str(golden_dir / "stylemapgan_010000.pt"), regions=["hair", "mouth"], n=4,
                                          baseline=None, progress=False, examples=2)
    rows = result.report["regions"]["hair"]["results"]
    assert set(rows) == {"StyleMapGAN (W+ mix)", "StyleMapGAN (stylemap mix)", "pixel paste", "ground truth",
                         "no edit"}
    gt = rows["ground truth"]
    assert gt["mse_in"] == gt["mse_out"] == gt["dist_gt"] == 0 and gt["identity"] == pytest.approx(1, abs=1e-4)
    assert rows["no edit"]["transplanted"] == 0  # A never shows B's part: the pairs differ there
    assert rows["no edit"]["mse_in"] > 10 * rows["no edit"]["mse_out"]  # the region is where A and the truth differ
    assert "recon_mse_out" in rows["StyleMapGAN (W+ mix)"] and rows["StyleMapGAN (W+ mix)"]["ms_per_edit"] > 0
    paths = write_local_editing_report(result, tmp_path / "out")
    md = paths["md"].read_text()
    assert "## hair" in md and "## mouth" in md and "## Mean over regions" in md
    assert json.loads(paths["json"].read_text())["regions"]["mouth"]["pairs"] == 4
    from PIL import Image

    with Image.open(paths["examples"]) as im:  # 2 regions × 2 pairs; A, B, mask, truth, 2 StyleMapGAN, paste
        assert im.size == (7 * 34 + 2, 4 * 34 + 2)


def test_wplus_baseline_and_cli(tmp_path):
    """A random 64-px StyleMapGAN beside the shipped pSp's W+ mixing, through the CLI; refusals are one line."""
    cfg = load_stylemap_config("configs/stylemapgan/tiny.yaml", ["data.resolution=64", "model.channel_divisor=64"])
    model, _ = build_stylemapgan(cfg)
    model.save_pretrained(tmp_path / "smg")
    out = tmp_path / "le"
    assert main(["evaluate", "--local-editing", "--model", str(tmp_path / "smg"), "--regions", "glasses", "--n", "3",
                 "--out", str(out), "--quiet"]) == 0
    report = json.loads((out / "report.json").read_text())
    rows = report["regions"]["glasses"]["results"]
    (psp,) = [k for k in rows if k.startswith("psp W+ mix (layers")]
    i, j = rows[psp]["layers"]
    assert 0 <= i < j <= 10 and rows[psp]["validation_dist"] > 0
    assert "stylebridge evaluate --local-editing" in (out / "report.md").read_text()
    with pytest.raises(ValueError, match="below"):
        run_local_editing_evaluation(model, n=2, seed=5, baseline=None)
    with pytest.raises(ValueError, match="unknown region"):
        run_local_editing_evaluation(model, regions=["ears"], n=2, baseline=None)
    assert isinstance(model, StyleMapGAN)


def test_optimize_row_in_the_translation_table(tmp_path):
    """Optimisation inversion sits in `stylebridge evaluate` beside the encoders (a 2-step run on 2 faces)."""
    from stylebridge.evaluate.benchmark import run_evaluation
    from stylebridge.evaluate.methods import method_from_inverter

    opt = method_from_inverter("optimize", "optimize", generator="synthfaces-64", steps=2)
    result = run_evaluation(methods=[opt, "psp"], inputs=["reconstruction"], n=2, progress=False, timing_repeats=1)
    rows = result.report["results"]
    assert set(rows) == {"optimize", "psp"}
    assert rows["optimize"]["reconstruction"]["mse"] > 0
