"""Training losses for image encoders (pSp, e4e) and translators, one family per file.

* `reconstruction` — pixel L2.
* `perceptual` — LPIPS with the official weights when the user gives them, else the domain network's distance.
* `identity` — ArcFace IR-SE50 identity loss with pSp's crop, a MoCo-style whole-image similarity, or the
  domain network's similarity.
* `regularizers` — pSp's w-norm, e4e's delta regulariser and progressive schedule.
* `latent_adversarial` — e4e's latent-code discriminator loss, its R1 penalty and the latent-codes pool.

Every network-based loss carries a ``name`` that reports and logs print, so a figure always says which network
produced it.
"""

from stylebridge.losses.identity import IdentityLoss, arcface_crop, identity_loss
from stylebridge.losses.latent_adversarial import (
    LatentCodesPool,
    discriminated_rows,
    encoder_adversarial_loss,
    latent_d_loss,
    latent_r1_penalty,
)
from stylebridge.losses.perceptual import PerceptualDistance, perceptual_distance
from stylebridge.losses.reconstruction import l2_loss
from stylebridge.losses.regularizers import delta_loss, progressive_stage, progressive_steps, w_norm_loss

__all__ = [
    "IdentityLoss",
    "LatentCodesPool",
    "PerceptualDistance",
    "arcface_crop",
    "delta_loss",
    "discriminated_rows",
    "encoder_adversarial_loss",
    "identity_loss",
    "l2_loss",
    "latent_d_loss",
    "latent_r1_penalty",
    "perceptual_distance",
    "progressive_stage",
    "progressive_steps",
    "w_norm_loss",
]
