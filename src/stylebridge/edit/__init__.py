"""Editing: finders that make directions on a user's generator (SeFa, GANSpace, InterFaceGAN, mean difference).
Directions themselves are models (`stylebridge.models.direction`): saved natively, read from e4e / InterFaceGAN
files by `stylebridge.load`, applied to w and W+."""

from stylebridge.edit.sefa import sefa, sefa_direction, sefa_rows

__all__ = ["sefa", "sefa_direction", "sefa_rows"]
