"""Inversion: images → W+ codes of a StyleGAN2 generator, behind one interface (`base.Inverter`).

Built-in inverters (`make_inverter(name, model=None, generator=None, **options)`): ``psp`` and ``e4e`` (the shipped
synthfaces-64 encoders or any pSp / e4e model, through their `EncoderPipeline`), ``restyle`` (a ReStyle model's
iterative refinement, `encoders.ReStyleInverter`), ``optimize`` (NVlabs' projector recipe,
`optimize.OptimizeInverter`), ``optimize-e4e`` (the same, started from e4e's codes) and ``pti`` (pivotal tuning:
a pivot from any of these, then generator tuning stored as small weight deltas, `pti.PTIInverter`).
`folder.invert_folder` inverts a folder through the one folder runner; `editing.edit_folder` inverts, edits along a
direction and renders.
"""

from stylebridge.invert.base import Inversion, Inverter, inverter_names, make_inverter, register_inverter
from stylebridge.invert.delta import GeneratorDelta, load_delta
from stylebridge.invert.editing import edit_folder, resolve_direction
from stylebridge.invert.encoders import EncoderInverter, ReStyleInverter
from stylebridge.invert.folder import InverterPipeline, invert_folder
from stylebridge.invert.optimize import OptimizeInverter, projector_lr
from stylebridge.invert.pti import PTIInverter

__all__ = ["EncoderInverter", "GeneratorDelta", "Inversion", "Inverter", "InverterPipeline", "OptimizeInverter",
           "PTIInverter", "ReStyleInverter", "edit_folder", "invert_folder", "inverter_names", "load_delta",
           "make_inverter", "projector_lr", "register_inverter", "resolve_direction"]
