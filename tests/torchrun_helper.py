"""Launch a 2-process torchrun for the DDP tests (a free port each time, and failures that show the ranks' errors)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def run_torchrun(args: list[str], env: dict[str, str], out: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node 2 ARGS``; fails the test with the ranks' own error output.

    ``--standalone`` takes a free port (a fixed one collides with anything else on the machine). A rank killed by
    SIGABRT is run once more: gloo can abort a process when a peer closes its socket during teardown, a known
    race outside our code; a second failure is reported. ``out`` is the run folder the ranks write: it is removed
    before the rerun, which would otherwise find the first try's checkpoints and refuse to start.
    """
    torchrun = shutil.which("torchrun") or pytest.fail("torchrun not found")
    cmd = [torchrun, "--standalone", "--nproc_per_node", "2", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if res.returncode != 0 and "SIGABRT" in res.stderr:
        print("torchrun: a rank aborted (SIGABRT); its output:\n" + _rank_errors(res.stderr) + "\nrunning once more")
        shutil.rmtree(out, ignore_errors=True)
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if res.returncode != 0:
        pytest.fail(f"torchrun exited {res.returncode}; the ranks said:\n{_rank_errors(res.stderr)}")
    return res


def _rank_errors(stderr: str) -> str:
    # torchrun ends with its own ChildFailedError traceback; the cause is what the ranks printed before it.
    cut = stderr.rfind("Traceback (most recent call last):")
    head = stderr[:cut] if cut > 0 and "ChildFailedError" in stderr[cut:] else stderr
    return head[-6000:]
