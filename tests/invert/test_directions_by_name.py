"""Directions by name: a shipped direction's full name, its short name, and the choice by generator when several
generators ship one of that name."""

from __future__ import annotations

import pytest
import torch

from stylebridge.core import registry
from stylebridge.edit.finders import generator_digest
from stylebridge.invert.editing import resolve_direction, shipped_directions
from stylebridge.models.direction import Direction


def _ship(root, folder: str, name: str, generator: str, value: float) -> None:
    Direction.from_vector(torch.full((32,), value), name=name, generator=generator).save_pretrained(root / folder)


def test_short_names_and_the_generator_choice(tmp_path, monkeypatch, tiny_generator):
    digest = generator_digest(tiny_generator, "tiny")
    _ship(tmp_path, "tiny-smile", "smile", digest, 1.0)
    _ship(tmp_path, "other-smile", "smile", "other (sha256 0123456789ab)", 2.0)
    _ship(tmp_path, "tiny-beard", "beard", digest, 3.0)
    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path)
    assert shipped_directions() == ["other-smile", "tiny-beard", "tiny-smile"]
    assert shipped_directions("tiny") == ["tiny-beard", "tiny-smile"]
    assert float(resolve_direction("beard").vector[0]) == 3.0  # the only one of that name
    assert float(resolve_direction("other-smile").vector[0]) == 2.0  # a full name
    assert float(resolve_direction("smile", generator=tiny_generator).vector[0]) == 1.0  # chosen by digest
    with pytest.raises(ValueError, match="several generators"):
        resolve_direction("smile")
    with pytest.raises(FileNotFoundError, match="shipped: beard, smile"):
        resolve_direction("frown")


def test_the_shipped_synthfaces_directions_load_by_short_name():
    names = shipped_directions("synthfaces-64")
    assert {f"synthfaces-64-{s}" for s in ("smile", "glasses", "blond_hair", "beard", "yaw", "mouth_open")} <= set(
        names)
    for short in ("smile", "glasses", "blond_hair", "beard", "yaw", "mouth_open"):
        d = resolve_direction(short)
        assert d.name == short and d.config.attribute and d.config.per_unit != 0
        assert "synthfaces-64" in d.config.generator
