"""Atomic file writes: a crash or Ctrl-C never leaves a half-written checkpoint, image or config behind."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "atomic_write_text"]


def atomic_write(target: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a hidden temporary file beside ``target``, then rename it over ``target``.

    The temporary name starts with a dot (folder scanners skip it) and ends in ``.tmp``, so writers that infer a
    format from the suffix must be told the format (``img.save(p, format="PNG")``).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        # mkstemp makes the file private (0600); give it the mode a plain open() would (or the replaced file's).
        os.chmod(tmp, target.stat().st_mode & 0o777 if target.exists() else 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def atomic_write_text(target: str | os.PathLike, text: str) -> Path:
    return atomic_write(target, lambda p: p.write_text(text, encoding="utf-8"))
