"""An out-of-domain "real" image set: face-like emoji rendered from Noto Color Emoji.

Useful to probe a face model (inversion, translation) on faces it was not trained on, without shipping data:
the font comes from Debian's ``fonts-noto-color-emoji``. NotoColorEmoji.ttf is a CBDT bitmap font with one
strike (109 px size, glyph bitmaps 136 x 128); glyphs are drawn at that size, centred, composited onto the
background and resampled to the requested resolution.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, features

__all__ = ["EMOJI_FONT_SIZE", "EXPRESSIONS", "emoji_sequences", "find_emoji_font", "render_emoji", "write_emoji_set"]

logger = logging.getLogger("stylebridge.data")

EMOJI_FONT_SIZE = 109  # the only bitmap strike in NotoColorEmoji; FreeType refuses other sizes
_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf",  # Debian / Ubuntu fonts-noto-color-emoji
    "/usr/share/fonts/noto/NotoColorEmoji.ttf",  # Arch
    "/usr/share/fonts/google-noto-emoji/NotoColorEmoji.ttf",  # Fedora
)
_INSTALL_HINT = "apt-get install fonts-noto-color-emoji"

_SKIN_TONES = (0x1F3FB, 0x1F3FC, 0x1F3FD, 0x1F3FE, 0x1F3FF)


def _span(a: int, b: int) -> list[int]:
    return list(range(a, b + 1))


# Faces without skin tones: smileys, cat/monkey faces, fantasy and animal faces.
_FACES = [
    *_span(0x1F600, 0x1F644),  # grinning … rolling eyes, incl. cat faces 1F638–1F640
    *_span(0x1F648, 0x1F64A),  # see/hear/speak-no-evil monkeys
    *_span(0x1F910, 0x1F917), *_span(0x1F920, 0x1F925), *_span(0x1F927, 0x1F92F),  # skip hands 1F918–1F91F
    *_span(0x1F970, 0x1F976), *_span(0x1F978, 0x1F97A),  # 1F977 (ninja) has skin tones, below
    0x1F9D0, 0x1F9DE, 0x1F9DF,  # monocle, genie, zombie
    *_span(0x1FAE0, 0x1FAE5), 0x1FAE8,  # melting … dotted-line face, shaking face
    *_span(0x1F479, 0x1F47B), *_span(0x1F47D, 0x1F480), 0x1F4A9,  # ogre, goblin, ghost, alien, imp, skull, poo
    0x1F383, *_span(0x1F31A, 0x1F31E),  # jack-o-lantern, moon and sun faces
    0x1F431, 0x1F436, 0x1F42D, 0x1F439, 0x1F430, 0x1F98A, 0x1F43B, 0x1F43C, 0x1F428, 0x1F42F,  # animal faces
    0x1F981, 0x1F42E, 0x1F437, 0x1F438, 0x1F435, 0x1F984, 0x1F434, 0x1F43A, 0x1F432,
]
# People (mostly heads and busts) that take the five Fitzpatrick skin-tone modifiers.
_PEOPLE = [
    *_span(0x1F466, 0x1F469), *_span(0x1F474, 0x1F476), *_span(0x1F9D1, 0x1F9D5),  # boy … older person
    *_span(0x1F471, 0x1F473), 0x1F477, 0x1F478, 0x1F46E, 0x1F482, 0x1F47C,  # blond, cap, turban, …, angel
    0x1F385, 0x1F936, 0x1F934, 0x1F470, 0x1F9D9, 0x1F9DB, 0x1F9DD, 0x1F977,  # Santa … elf, ninja
]
# Multi-code-point faces (ZWJ sequences, Emoji 13.1).
_SEQUENCES = [
    (0x1F636, 0x200D, 0x1F32B, 0xFE0F),  # face in clouds
    (0x1F62E, 0x200D, 0x1F4A8),  # face exhaling
    (0x1F635, 0x200D, 0x1F4AB),  # face with spiral eyes
]


# The drawn expression of Noto's glyphs: name → (mouth curve, mouth open), each "smile" / "neutral" / "frown" and
# "open" / "closed", or None where the drawing does not say (a tongue, a hand, a mask, a crooked or wavy mouth, a
# rotated face). Labelled by eye from the glyphs as Debian's fonts-noto-color-emoji draws them (2026-12-03): every
# clear smiley plus the cat faces; the measure of issue 19 (do translations keep the emoji's expression).
EXPRESSIONS: dict[str, tuple[str | None, str | None]] = {
    "1F600": ("smile", "open"), "1F601": ("smile", "open"), "1F602": ("smile", "open"), "1F603": ("smile", "open"),
    "1F604": ("smile", "open"), "1F605": ("smile", "open"), "1F606": ("smile", "open"), "1F607": ("smile", "closed"),
    "1F608": ("smile", "closed"), "1F609": ("smile", "closed"), "1F60A": ("smile", "closed"),
    "1F60C": ("smile", "closed"), "1F60D": ("smile", "open"), "1F60E": ("smile", "closed"),
    "1F610": ("neutral", "closed"), "1F611": ("neutral", "closed"), "1F612": ("frown", "closed"),
    "1F613": ("frown", "closed"), "1F61E": ("frown", "closed"), "1F61F": ("frown", "closed"),
    "1F620": ("frown", "closed"), "1F621": ("frown", "closed"), "1F622": ("frown", "closed"),
    "1F623": ("frown", "closed"), "1F624": ("frown", "closed"), "1F625": ("frown", "closed"),
    "1F626": ("frown", "open"), "1F627": ("frown", "open"), "1F628": ("frown", "open"), "1F629": ("frown", "open"),
    "1F62B": ("frown", "open"), "1F62D": ("frown", "open"), "1F62E": ("neutral", "open"),
    "1F62F": ("neutral", "open"), "1F630": ("frown", "open"), "1F631": (None, "open"), "1F632": ("neutral", "open"),
    "1F633": ("neutral", "closed"), "1F635": (None, "open"), "1F638": ("smile", "open"), "1F639": ("smile", "open"),
    "1F63A": ("smile", "open"), "1F63B": ("smile", "open"), "1F63E": ("frown", "closed"),
    "1F63F": ("frown", "closed"), "1F640": (None, "open"), "1F641": ("frown", "closed"),
    "1F642": ("smile", "closed"), "1F644": ("neutral", "closed"), "1F911": ("smile", "open"),
    "1F913": ("smile", "open"), "1F915": ("frown", "closed"), "1F917": ("smile", "closed"),
    "1F920": ("smile", "open"), "1F921": ("smile", "open"), "1F928": ("neutral", "closed"),
    "1F929": ("smile", "open"), "1F92F": ("neutral", "open"), "1F970": ("smile", "closed"),
    "1F972": ("smile", "closed"), "1F97A": ("frown", "closed"), "1FAE0": ("smile", "closed"),
    "1FAE5": ("neutral", "closed"), "1F47F": ("frown", "closed"), "1F4A9": ("smile", "open"),
    "1F31E": ("smile", "closed"),
}


def emoji_sequences() -> list[tuple[str, str]]:
    """Candidate face-like emoji as (name, text): name like "1F600", "1F466-1F3FB", "1F636-200D-1F32B-FE0F".

    About 320 candidates; ``render_emoji`` drops those the installed font cannot draw.
    """
    seqs: list[tuple[int, ...]] = [(cp,) for cp in _FACES]
    for cp in _PEOPLE:
        seqs.append((cp,))
        seqs.extend((cp, tone) for tone in _SKIN_TONES)
    seqs.extend(_SEQUENCES)
    return [("-".join(f"{cp:X}" for cp in s), "".join(chr(cp) for cp in s)) for s in seqs]


def find_emoji_font() -> Path | None:
    """Path of NotoColorEmoji.ttf (known install locations, then ``fc-list``), or None."""
    for cand in _FONT_CANDIDATES:
        if Path(cand).is_file():
            return Path(cand)
    if shutil.which("fc-list"):
        try:
            res = subprocess.run(["fc-list", ":family=Noto Color Emoji", "file"], capture_output=True, text=True,
                                 timeout=20, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        for line in sorted(res.stdout.splitlines()):
            path = Path(line.strip().rstrip(":"))
            if path.suffix.lower() == ".ttf" and path.is_file():
                return path
    return None


def _load_font(font_path: str | os.PathLike | None) -> ImageFont.FreeTypeFont:
    path = Path(font_path) if font_path else find_emoji_font()
    if path is None:
        raise FileNotFoundError(f"emoji font NotoColorEmoji.ttf not found: {_INSTALL_HINT}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: emoji font file not found ({_INSTALL_HINT})")
    # Raqm shapes skin-tone and ZWJ sequences into one glyph; the basic layout would draw them side by side.
    engine = ImageFont.Layout.RAQM if features.check("raqm") else ImageFont.Layout.BASIC
    try:
        return ImageFont.truetype(str(path), EMOJI_FONT_SIZE, layout_engine=engine)
    except OSError as e:
        raise OSError(f"{path}: cannot load as a {EMOJI_FONT_SIZE} px colour bitmap font ({e})") from e


def _draw_glyph(font: ImageFont.FreeTypeFont, text: str) -> Image.Image | None:
    """The glyph as a tight RGBA crop, or None when the font has nothing visible for it."""
    w, h = 3 * EMOJI_FONT_SIZE, 2 * EMOJI_FONT_SIZE  # room for the glyph wherever its bearings put it
    canvas = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((EMOJI_FONT_SIZE // 2, EMOJI_FONT_SIZE // 4), text, font=font, embedded_color=True)
    # Faint pixels alone (anti-aliasing of an empty .notdef box) do not count as a glyph.
    box = canvas.getchannel("A").point(lambda a: 255 if a > 16 else 0).getbbox()
    return canvas.crop(box) if box else None


def render_emoji(resolution: int = 64, background: tuple[int, int, int] = (255, 255, 255),
                 font_path: str | os.PathLike | None = None) -> list[tuple[str, Image.Image]]:
    """Render every face-like emoji the font has: list of (name, RGB image ``resolution`` square).

    Each glyph is centred (on its visible extent) on a square canvas of the font's glyph size, so all emoji
    keep the same scale; it is composited onto ``background`` at native size and only then resampled
    (LANCZOS, antialiased when downsampling), so edges blend into the background colour without dark fringes.
    Glyphs the font lacks (blank rendering, or a sequence that falls apart into several glyphs) are dropped.
    Raises FileNotFoundError with the apt-get command when the font is not installed.
    """
    if resolution < 1:
        raise ValueError(f"resolution must be positive, got {resolution}")
    font = _load_font(font_path)
    ref = font.getbbox("\U0001f600")  # grinning face: the font's standard glyph box (136 x 128 for Noto)
    single = font.getlength("\U0001f600")
    side = max(ref[2] - ref[0], ref[3] - ref[1])
    out = []
    for name, text in emoji_sequences():
        if font.getlength(text) > 1.5 * single:
            continue  # an unsupported sequence, laid out as two or more glyphs
        glyph = _draw_glyph(font, text)
        if glyph is None:
            continue
        s = max(side, *glyph.size)
        canvas = Image.new("RGBA", (s, s), (*background, 255))
        canvas.alpha_composite(glyph, ((s - glyph.width) // 2, (s - glyph.height) // 2))
        img = canvas.convert("RGB")
        if s != resolution:
            img = img.resize((resolution, resolution), Image.Resampling.LANCZOS)
        out.append((name, img))
    if not out:
        raise RuntimeError(f"{font.path}: no emoji could be rendered (is this a colour emoji font?)")
    return out


def write_emoji_set(out_dir: str | os.PathLike, resolution: int = 256,
                    background: tuple[int, int, int] = (255, 255, 255),
                    font_path: str | os.PathLike | None = None) -> int:
    """Render the emoji set and write ``out_dir/<name>.png`` (deterministic bytes); returns the count."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    images = render_emoji(resolution, background, font_path)
    for name, img in images:
        dst = out / f"{name}.png"
        tmp = dst.with_name(f".{dst.name}.tmp{os.getpid()}")
        try:
            img.save(tmp, format="PNG", compress_level=6)
            os.replace(tmp, dst)
        finally:
            tmp.unlink(missing_ok=True)
    logger.info("%s: %d emoji written at %d px", out, len(images), resolution)
    return len(images)
