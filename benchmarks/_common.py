"""Shared helpers for the benchmark scripts: machine peak, timing, reporting."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch


def machine_info() -> dict:
    flags = ""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        pass
    model = ""
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": model or platform.processor(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "amx": "amx_tile" in flags,
        "avx512_bf16": "avx512_bf16" in flags,
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def best_time(fn: Callable[[], object], repeats: int = 3, warmup: int = 1, sync: Callable[[], None] | None = None,
              budget_s: float | None = None) -> float:
    """Minimum wall time of ``fn`` over ``repeats`` runs (after ``warmup``); stops early past ``budget_s``."""
    sync = sync or (lambda: None)
    for _ in range(warmup):
        fn()
        sync()
    times: list[float] = []
    start = time.perf_counter()
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
        if budget_s is not None and time.perf_counter() - start > budget_s:
            break
    return min(times)


def matmul_peak_gflops(dtype: torch.dtype, device: str = "cpu", n: int = 2048, repeats: int = 5) -> float:
    """Achieved GFLOP/s of an n×n×n matmul: the practical peak the convs are compared with."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    sync = torch.cuda.synchronize if device == "cuda" else None
    t = best_time(lambda: a @ b, repeats=repeats, warmup=2, sync=sync)
    return 2 * n**3 / t / 1e9


def write_results(name: str, payload: dict) -> Path:
    out = Path(os.environ.get("STYLEBRIDGE_BENCH_DIR", Path(__file__).parent / "results"))
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
