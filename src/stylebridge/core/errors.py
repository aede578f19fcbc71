"""The errors stylebridge raises on bad input: one line, naming the file (or the option) and the problem.

All of them are ``ValueError`` subclasses, so a caller that only wants "bad input, not a bug" catches that.
"""

from __future__ import annotations

__all__ = ["BadImageError", "CheckpointError", "ConfigError", "UnsafePickleError", "WrongModelError"]


class CheckpointError(ValueError):
    """A checkpoint file cannot be loaded (wrong format, mismatched keys or shapes, refused pickle)."""


class UnsafePickleError(CheckpointError):
    """The file asks the unpickler to import or call something outside the allow-list."""


class WrongModelError(CheckpointError):
    """The file loads, but holds another kind of model than the caller needs ("FILE holds X; expected Y")."""


class BadImageError(ValueError):
    """A file that cannot be used as an image; the message is one line, ``"PATH: reason"``."""


class ConfigError(ValueError):
    """A config file or override does not fit the config tree."""
