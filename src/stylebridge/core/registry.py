"""Models shipped inside the package, loadable by name (``stylebridge.load("synthfaces-64")``).

Each shipped model is a native folder under ``stylebridge/weights/<name>/`` with a ``MODEL_CARD.md``.
"""

from __future__ import annotations

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


def names() -> list[str]:
    """Names of the models shipped with this installation."""
    if not WEIGHTS_DIR.is_dir():
        return []
    return sorted(p.name for p in WEIGHTS_DIR.iterdir() if (p / "config.json").is_file())


def names_text() -> str:
    return ", ".join(names()) or "none yet"


def resolve(name: str) -> Path | None:
    """The folder of the shipped model ``name``, or None."""
    if "/" in name or "\\" in name or name.startswith("."):
        return None
    path = WEIGHTS_DIR / name
    return path if (path / "config.json").is_file() else None
