"""stylebridge: translate and edit images through a pretrained StyleGAN2."""

from stylebridge.core.native import CheckpointError
from stylebridge.core.safe_pickle import UnsafePickleError
from stylebridge.edit.sefa import sefa
from stylebridge.formats.loading import load
from stylebridge.models.direction import Direction, GanSpaceComponents
from stylebridge.models.stylegan2 import (
    StyleGAN2Config,
    StyleGAN2Discriminator,
    StyleGAN2DiscriminatorConfig,
    StyleGAN2Generator,
)

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "Direction",
    "GanSpaceComponents",
    "StyleGAN2Config",
    "StyleGAN2Discriminator",
    "StyleGAN2DiscriminatorConfig",
    "StyleGAN2Generator",
    "UnsafePickleError",
    "__version__",
    "load",
    "sefa",
]
