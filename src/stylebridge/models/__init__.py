"""Model families, one per file. Importing this package registers every model type with the native loader."""

from stylebridge.models import domain, e4e, inception, irse, psp, resnet, stylegan2  # noqa: F401  (registration side effect)
