"""Face-like emoji from Noto Color Emoji: enough of them, centred on the background, all different."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest
from PIL import Image, features

from stylebridge.data import emoji as emoji_mod
from stylebridge.data.emoji import emoji_sequences, find_emoji_font, render_emoji, write_emoji_set

needs_font = pytest.mark.skipif(find_emoji_font() is None,
                                reason="NotoColorEmoji.ttf not installed: apt-get install fonts-noto-color-emoji")
BG = (10, 200, 30)


@pytest.fixture(scope="module")
def rendered() -> list[tuple[str, Image.Image]]:
    return render_emoji(32, background=BG)


def test_candidates_are_unique_and_named_by_code_points():
    seqs = emoji_sequences()
    names = [n for n, _ in seqs]
    assert len(set(names)) == len(names) >= 300
    for name, text in seqs:
        assert re.fullmatch(r"[0-9A-F]{4,5}(-[0-9A-F]{4,5})*", name)
        assert "-".join(f"{ord(ch):X}" for ch in text) == name


def test_missing_font_says_what_to_install(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="apt-get install fonts-noto-color-emoji"):
        render_emoji(font_path=tmp_path / "nope.ttf")
    monkeypatch.setattr(emoji_mod, "find_emoji_font", lambda: None)
    with pytest.raises(FileNotFoundError, match="apt-get install fonts-noto-color-emoji"):
        render_emoji()


@needs_font
def test_render_emoji_count_sizes_background(rendered):
    # Without raqm, Pillow cannot shape skin-tone sequences into one glyph; those are dropped.
    assert len(rendered) >= (250 if features.check("raqm") else 150)
    names = [n for n, _ in rendered]
    assert len(set(names)) == len(names)
    assert "1F600" in names
    for _, img in rendered:
        assert img.size == (32, 32) and img.mode == "RGB"
        arr = np.asarray(img).astype(int)
        for corner in (arr[0, 0], arr[0, -1], arr[-1, 0], arr[-1, -1]):
            assert np.abs(corner - BG).max() <= 2


@needs_font
def test_render_emoji_all_different_and_centred(rendered):
    assert len({img.tobytes() for _, img in rendered}) == len(rendered)
    # The grinning face is round: its non-background pixels are centred within a pixel.
    img = dict(rendered)["1F600"]
    ys, xs = np.nonzero(np.abs(np.asarray(img).astype(int) - BG).max(axis=-1) > 40)
    assert xs.mean() == pytest.approx(15.5, abs=1.0) and ys.mean() == pytest.approx(15.5, abs=1.0)


@needs_font
def test_write_emoji_set_deterministic(tmp_path):
    n = write_emoji_set(tmp_path / "a", 16, (255, 255, 255))
    write_emoji_set(tmp_path / "b", 16, (255, 255, 255))
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert len(files) == n and files == sorted(p.name for p in (tmp_path / "b").iterdir())
    for name in files:
        assert hashlib.sha256((tmp_path / "a" / name).read_bytes()).digest() == \
            hashlib.sha256((tmp_path / "b" / name).read_bytes()).digest()
    with Image.open(tmp_path / "a" / "1F600.png") as im:
        assert im.size == (16, 16)
