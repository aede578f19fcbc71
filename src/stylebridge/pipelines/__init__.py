"""Inference: everything that turns images (or seeds) into images or latents, behind one interface."""
