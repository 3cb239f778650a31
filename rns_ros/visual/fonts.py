"""The legend's font: one that draws class names in Latin, Greek and Cyrillic script.

Pillow's built-in font covers ASCII and little more (issue 25: 'ñandú' came out as '□and□'). The
font used is the first found of:
1. DejaVu Sans installed on the system: every Debian/Ubuntu robot has it (package
   fonts-dejavu-core; FONT_FILES lists its Debian/Ubuntu, Fedora and Arch paths);
2. the copy of DejaVu Sans that matplotlib ships (the project's `eval` extra, installed by
   scripts/setup.sh), found without importing matplotlib;
3. Pillow's built-in font.
A character the font has no glyph for is drawn as '?', never as an empty box, and the first name
that needs one prints one RuntimeWarning naming the font used and the fix
(`sudo apt install fonts-dejavu-core`).

    font = load_font(16)
    drawable("ñandú", font)     # 'ñandú' with DejaVu Sans, '?and?' (and the warning) without it
"""
from __future__ import annotations

import functools
import importlib.util
import os
import warnings
from pathlib import Path

from PIL import ImageFont

FONT_FILES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",  # Debian, Ubuntu (fonts-dejavu-core)
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",  # Fedora
    "/usr/share/fonts/TTF/DejaVuSans.ttf",  # Arch
)
MISSING_GLYPH_FIX = ("install DejaVu Sans (`sudo apt install fonts-dejavu-core` on Debian/Ubuntu) or the "
                     "project's eval extra (matplotlib ships a copy)")
_NOT_A_CHARACTER = "\uffff"  # no font has a glyph for it: its mask is the font's "missing glyph" box


def _matplotlib_font() -> str | None:
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
    return str(path) if path.is_file() else None


@functools.lru_cache(maxsize=1)
def font_file() -> str | None:
    """The font file the legend uses (see the module docstring), or None for Pillow's built-in font."""
    for path in FONT_FILES:
        if os.path.isfile(path):
            return path
    return _matplotlib_font()


@functools.lru_cache(maxsize=16)
def load_font(size: int):
    """The legend font at `size` px: DejaVu Sans where found, else Pillow's built-in one (its
    scalable version when Pillow has FreeType, else its bitmap font at its own size)."""
    path = font_file()
    if path is not None:
        try:
            return ImageFont.truetype(path, size)
        except OSError:  # an unreadable file: the built-in font, visibly (drawable warns)
            pass
    return ImageFont.load_default(size=size)


@functools.lru_cache(maxsize=8192)
def _has_glyph(font, char: str) -> bool:
    if char.isspace():
        return True
    if not isinstance(font, ImageFont.FreeTypeFont):  # the bitmap font: Latin-1
        return ord(char) < 256
    glyph, missing = font.getmask(char), font.getmask(_NOT_A_CHARACTER)
    return glyph.size != missing.size or bytes(glyph) != bytes(missing)


_warned = False


def drawable(text: str, font) -> str:
    """`text` with every character `font` cannot draw replaced by '?' (once per process, a
    RuntimeWarning saying which font lacks it and how to get one that has it)."""
    global _warned
    out = "".join(c if _has_glyph(font, c) else "?" for c in text)
    if out != text and not _warned:
        _warned = True
        name = font_file() or "Pillow's built-in font"
        warnings.warn(f"the overlay legend's font ({name}) cannot draw {text[:40]!r}: drawn as {out[:40]!r}; "
                      f"{MISSING_GLYPH_FIX}", RuntimeWarning, stacklevel=2)
    return out
