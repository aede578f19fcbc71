"""Editing: finders that make directions on a user's generator (SeFa, GANSpace, InterFaceGAN, mean difference).
Directions themselves are models (`stylebridge.models.direction`): saved natively, read from e4e / InterFaceGAN
files by `stylebridge.load`, applied to w and W+."""

from stylebridge.edit.finders import (
    attribute_scores,
    find_ganspace,
    find_supervised,
    labels_from_csv,
    project_off,
    render_scores,
    sample_w,
    seeds_to_w,
)
from stylebridge.edit.sefa import sefa, sefa_direction, sefa_rows
from stylebridge.edit.show import direction_grid, strengths_for

__all__ = [
    "attribute_scores",
    "direction_grid",
    "find_ganspace",
    "find_supervised",
    "labels_from_csv",
    "project_off",
    "render_scores",
    "sample_w",
    "seeds_to_w",
    "sefa",
    "sefa_direction",
    "sefa_rows",
    "strengths_for",
]
