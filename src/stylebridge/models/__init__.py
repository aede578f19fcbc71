"""Model families, one per file. Importing this package registers every model type with the native loader."""

from stylebridge.models import (  # noqa: F401  (registration side effect)
    actmap,
    alexnet,
    direction,
    domain,
    e4e,
    inception,
    irse,
    lpips,
    pix2pixhd,
    psp,
    resnet,
    restyle,
    stylegan2,
    stylemapgan,
    vgg,
)
