"""Every ```python block of README.md runs as written, in order, in one namespace, in a scratch folder: the README's
promise that its snippets work (placeholder blocks are fenced ```text and not run)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _python_blocks() -> list[tuple[int, str]]:
    text = (ROOT / "README.md").read_text()
    blocks = []
    for m in re.finditer(r"^```python\n(.*?)^```$", text, flags=re.S | re.M):
        blocks.append((text[: m.start()].count("\n") + 1, m.group(1)))
    return blocks


def test_readme_has_python_blocks() -> None:
    assert len(_python_blocks()) >= 3


def test_readme_python_blocks_run(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    namespace: dict = {"__name__": "__readme__"}
    with torch.no_grad():
        for line, code in _python_blocks():
            try:
                exec(compile(code, f"README.md:{line}", "exec"), namespace)
            except Exception as exc:  # name the block that broke
                pytest.fail(f"README.md block at line {line} raised {type(exc).__name__}: {exc}")
