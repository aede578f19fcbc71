"""The run folder every trainer shares: config, checkpoints (atomic, last N kept), log, stop on signal."""

from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass

import pytest
import torch

from stylebridge.train.ddp import allreduce_grads, world
from stylebridge.train.loop import RunFolder, StopOnSignal, load_optimizer


@dataclass
class _Cfg:
    lr: float = 0.1
    name: str = "x"


def test_checkpoints_keep_the_newest_and_round_trip(tmp_path):
    run = RunFolder(tmp_path / "run", _Cfg(), keep=2)
    assert (tmp_path / "run" / "config.yaml").read_text() == "lr: 0.1\nname: x\n"
    with pytest.raises(FileNotFoundError, match="no checkpoint to resume from"):
        run.load_latest()
    for step in (1, 2, 3):
        run.save_checkpoint(step, {"step": step, "w": torch.full((2,), float(step))})
    assert [p.name for p in run.checkpoints()] == ["checkpoint-0000002.pt", "checkpoint-0000003.pt"]
    assert not list((tmp_path / "run").glob("*.tmp*"))  # atomic write leaves no temporary file
    ck = run.load_latest("cpu")
    assert ck["step"] == 3 and torch.equal(ck["w"], torch.full((2,), 3.0))
    run.checkpoints()[-1].write_bytes(b"truncated")  # a damaged newest checkpoint: the previous one is used
    assert run.load_latest("cpu")["step"] == 2
    run.checkpoints()[0].write_bytes(b"")
    with pytest.raises(ValueError, match=r"no readable checkpoint: checkpoint-0000003\.pt .*checkpoint-0000002\.pt"):
        run.load_latest("cpu")


def test_log_writes_json_lines(tmp_path):
    run = RunFolder(tmp_path, None)
    with run.log() as log:
        log.record({"step": 1, "loss": 0.5})
        log.record({"step": 2, "metric": "FD", "value": 1.0}, prefix="metrics")
    rows = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert rows == [{"step": 1, "loss": 0.5}, {"step": 2, "metric": "FD", "value": 1.0}]


def test_stop_on_signal_sets_the_flag_and_restores_handlers():
    before = signal.getsignal(signal.SIGINT)
    with StopOnSignal() as stop:
        assert not stop.requested()
        os.kill(os.getpid(), signal.SIGINT)  # would raise KeyboardInterrupt outside the block
        assert stop.requested()
    assert signal.getsignal(signal.SIGINT) is before


def test_single_process_helpers_are_no_ops():
    assert world() == (0, 1)
    p = torch.nn.Parameter(torch.ones(2))
    p.grad = torch.full((2,), 3.0)
    allreduce_grads([p])
    assert torch.equal(p.grad, torch.full((2,), 3.0))


def test_load_optimizer_keeps_the_new_hyperparameters_and_the_saved_moments() -> None:
    # A resumed run with --set optim.lr=... must train at the new rate: plain load_state_dict would restore the old.
    w = torch.nn.Parameter(torch.ones(3))
    old = torch.optim.Adam([w], lr=0.1, betas=(0.0, 0.99))
    w.grad = torch.tensor([1.0, -2.0, 3.0])
    old.step()
    saved = old.state_dict()
    new = torch.optim.Adam([w], lr=0.01, betas=(0.0, 0.9))
    load_optimizer(new, saved)
    assert new.param_groups[0]["lr"] == 0.01 and new.param_groups[0]["betas"] == (0.0, 0.9)
    torch.testing.assert_close(new.state[w]["exp_avg_sq"], old.state[w]["exp_avg_sq"])
    assert int(new.state[w]["step"]) == 1
