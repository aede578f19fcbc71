"""Atomic writes: the file appears whole or not at all, with the permissions a plain write would give."""

from __future__ import annotations

import os

import pytest

from stylebridge.core.atomic import atomic_write, atomic_write_text


def test_new_file_gets_the_umask_mode_and_replaced_file_keeps_its_mode(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "a.txt", "one")
        assert path.read_text() == "one" and path.stat().st_mode & 0o777 == 0o644
        path.chmod(0o600)
        atomic_write_text(path, "two")
        assert path.read_text() == "two" and path.stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = atomic_write_text(tmp_path / "b.txt", "kept")

    def boom(p):
        p.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, boom)
    assert path.read_text() == "kept" and sorted(p.name for p in tmp_path.iterdir()) == ["b.txt"]
