"""Atomic file writes: a crash or Ctrl-C never leaves a half-written checkpoint, image or config behind."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "atomic_write_text", "check_writable_dir", "check_writable_file"]


def atomic_write(target: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a hidden temporary file beside ``target``, then rename it over ``target``.

    The temporary name starts with a dot (folder scanners skip it) and ends in ``.tmp``, so writers that infer a
    format from the suffix must be told the format (``img.save(p, format="PNG")``).

    An OSError (full disk, no permission, a file where a folder should be) is raised naming ``target`` (not the
    temporary file), with the OS's reason: ``OSError(28, "No space left on device", "out/a.png")``.
    """
    target = Path(target)
    tmp: str | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        os.close(fd)
        write(Path(tmp))
        # mkstemp makes the file private (0600); give it the mode a plain open() would (or the replaced file's).
        os.chmod(tmp, target.stat().st_mode & 0o777 if target.exists() else 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename in (None, tmp):
            raise OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(target)) from exc
        raise
    return target


def check_writable_dir(path: str | os.PathLike) -> Path:
    """Fail fast, before any work, when ``path`` cannot become a folder we write into: raise an OSError naming
    the path and the cause (a file is in the way; the nearest existing folder is not writable). Creates nothing."""
    path = Path(path)
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "exists and is not a folder", str(probe))
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, "Permission denied (folder not writable)", str(probe))
    return path


def check_writable_file(path: str | os.PathLike) -> Path:
    """Like `check_writable_dir` for a file to be written: not a folder, and its folder writable."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder, expected a file name", str(path))
    check_writable_dir(path.parent)
    return path


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def atomic_write_text(target: str | os.PathLike, text: str) -> Path:
    return atomic_write(target, lambda p: p.write_text(text, encoding="utf-8"))
