"""The overlay's legend: a colour swatch and a name for each class present in the frame.

Entries are the classes present in the label image, largest area first, each optionally with its
share of the frame's pixels. The legend is a semi-transparent dark box in one corner; `auto`
picks the corner that hides the smallest share of any class (a big wall loses a corner before a
small cup does) and keeps the previous corner unless another is clearly better, so it does not
jump between frames. It never covers more than `max_width_share` x `max_height_share` of the
image: long names are shortened with an ellipsis, and classes beyond what fits (or beyond
`max_entries`) are summarised as "+N more". Images too small for one readable row get no legend.

Text uses DejaVu Sans (Latin, Greek, Cyrillic), from the system or matplotlib's copy, else Pillow's
built-in font; characters the font lacks are drawn as '?' with a warning (fonts.py). Swatches are
drawn opaque, so a swatch's pixels are exactly the class colour.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from rns_ros.visual.fonts import drawable, load_font
from rns_ros.visual.palette import RGB, Palette

CORNERS = ("auto", "top_left", "top_right", "bottom_left", "bottom_right")
_PLACES = CORNERS[1:]
TEXT_COLOR: RGB = (255, 255, 255)  # white: draw_legend blends text towards 255
MIN_FONT_PX, MAX_FONT_PX = 10, 32
EXACT_AREA_PIXELS = 1 << 20  # class areas are exact up to this many pixels (1280x720 is; 1920x1080 is not)
KEEP_CORNER_MARGIN = 0.05  # `auto` moves only when another corner hides this much less (in class shares)


@dataclass(frozen=True)
class LegendStyle:
    """How the legend looks; defaults here are the node's and the CLI's."""

    show_share: bool = True  # print each class's share of the frame's pixels ("42%")
    max_entries: int = 8  # classes listed before "+N more"
    max_name_chars: int = 24  # longer names are shortened with an ellipsis
    max_width_share: float = 0.45  # the box never takes more of the image's width than this
    max_height_share: float = 0.5  # ... nor more of its height
    background_alpha: float = 0.6  # darkening of the image under the box (0 = none, 1 = black)
    corner: str = "auto"  # auto | top_left | top_right | bottom_left | bottom_right

    def __post_init__(self):
        if self.corner not in CORNERS:
            raise ValueError(f"legend corner must be one of {CORNERS}, got {self.corner!r}")
        if self.max_entries < 1 or self.max_name_chars < 2:
            raise ValueError("legend max_entries must be >= 1 and max_name_chars >= 2")
        for name in ("max_width_share", "max_height_share", "background_alpha"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"legend {name} must be in [0, 1], got {getattr(self, name)}")


@dataclass(frozen=True)
class LegendEntry:
    class_id: int
    name: str
    share: float  # of all pixels of the frame


@dataclass(frozen=True)
class DrawnLegend:
    """Where the legend went: its box and each listed class's swatch, as (x0, y0, x1, y1), x1/y1
    exclusive, in image pixels; `hidden` = classes summarised as "+N more"."""

    corner: str
    box: tuple[int, int, int, int]
    swatches: dict[int, tuple[int, int, int, int]]
    hidden: int


def _stride(pixels: int) -> int:
    """Counting step in both directions: 1 up to EXACT_AREA_PIXELS pixels (2 at 1920x1080)."""
    return max(1, math.ceil(math.sqrt(pixels / EXACT_AREA_PIXELS)))


def class_areas(labels: np.ndarray) -> np.ndarray:
    """Pixel count of every id (index = id) in a label image: exact up to EXACT_AREA_PIXELS
    pixels; larger images are counted on a regular grid (every 2nd pixel of every 2nd row at
    1080p) and scaled, which is 4x cheaper and cannot list an absent class (it may miss one of a
    few pixels)."""
    stride = _stride(labels.size)
    return np.bincount(labels[::stride, ::stride].ravel(), minlength=1) * (stride * stride)


def legend_entries(areas: np.ndarray, names: Mapping[int, str]) -> list[LegendEntry]:
    """The classes present (area > 0, id > 0), largest area first (ties: smaller id first).
    An id missing from `names` is listed as 'class <id>'."""
    total = max(int(areas.sum()), 1)
    ids = [int(i) for i in np.flatnonzero(areas) if i > 0]
    ids.sort(key=lambda i: (-int(areas[i]), i))
    return [LegendEntry(i, names.get(i, f"class {i}"), int(areas[i]) / total) for i in ids]


def legend_font(size: int):
    """The legend font at `size` px (fonts.py: DejaVu Sans where found, else Pillow's built-in font)."""
    return load_font(size)


def _scalable(font) -> bool:
    return isinstance(font, ImageFont.FreeTypeFont)


def _row_height(font) -> int:
    """Height of a text row: the font size (the bitmap font's own line height without FreeType)."""
    return font.size if _scalable(font) else font.getbbox("Hg")[3]


def _drawable(text: str, font) -> str:
    """Characters the font has no glyph for become '?' (fonts.drawable; never an empty box)."""
    return drawable(text, font)


@functools.lru_cache(maxsize=4096)
def _fit_name(name: str, font_px: int, width: int, max_chars: int) -> str:
    font = legend_font(font_px)
    ellipsis = "…" if _scalable(font) else "..."
    base = _drawable(name, font)
    cut = len(base) if len(base) <= max_chars else max_chars - 1
    while True:
        text = base if cut == len(base) else base[:cut].rstrip() + ellipsis
        if cut <= 1 or font.getlength(text) <= width:
            return text
        cut -= 1


def _share_text(share: float) -> str:
    return "<1%" if 0 < share < 0.005 else f"{share:.0%}"


@dataclass(frozen=True)
class _Layout:
    font_px: int  # requested font size: the font is legend_font(font_px)
    size: int  # text row height in px
    pad: int
    swatch: int
    name_width: int  # px available for a name
    share_width: int  # px of the share column (0 without shares)
    shown: int  # entries listed; one more row says "+N more" when some are left out
    rows: int

    @property
    def row(self) -> int:
        return self.size + self.pad

    @property
    def height(self) -> int:
        return self.rows * self.row + self.pad


def _layout(n_entries: int, h: int, w: int, style: LegendStyle) -> _Layout | None:
    font_px = max(MIN_FONT_PX, min(MAX_FONT_PX, round(min(h, w) / 36)))  # 13 px at 480p, 30 at 1080p
    font = legend_font(font_px)
    size = _row_height(font)
    pad = max(2, size // 4)
    max_rows = int((h * style.max_height_share - pad) // (size + pad))
    if n_entries <= min(max_rows, style.max_entries):
        shown, rows = n_entries, n_entries
    else:
        shown = min(style.max_entries, max_rows - 1)
        rows = shown + 1
    if shown < 1:
        return None
    swatch = max(4, size * 3 // 4)
    share_width = round(font.getlength("100%")) + pad if style.show_share else 0
    name_width = int(w * style.max_width_share) - (3 * pad + swatch + share_width)
    if name_width < 2 * size:  # not even a few characters fit
        return None
    return _Layout(font_px, size, pad, swatch, name_width, share_width, shown, rows)


def _place(corner: str, bw: int, bh: int, h: int, w: int) -> tuple[int, int]:
    x = 0 if corner.endswith("left") else w - bw
    y = 0 if corner.startswith("top") else h - bh
    return x, y


def _hidden_share(labels: np.ndarray, areas: np.ndarray, x: int, y: int, bw: int, bh: int) -> float:
    """Sum over classes of the share of each class's pixels that a box at (x, y) would cover
    (counted on class_areas' grid)."""
    stride = _stride(labels.size)
    box = labels[y:y + bh:stride, x:x + bw:stride]
    inside = np.bincount(box.ravel(), minlength=len(areas))[: len(areas)] * (stride * stride)
    present = areas[1:] > 0
    return float((inside[1:][present] / areas[1:][present]).sum())


def choose_corner(labels: np.ndarray, areas: np.ndarray, bw: int, bh: int, style: LegendStyle,
                  previous: str | None = None) -> str:
    """The style's corner, or for `auto` the one hiding the least (see module doc); the previous
    corner is kept unless another hides KEEP_CORNER_MARGIN less."""
    if style.corner != "auto":
        return style.corner
    h, w = labels.shape
    scores = {c: _hidden_share(labels, areas, *_place(c, bw, bh, h, w), bw, bh) for c in _PLACES}
    best = min(_PLACES, key=lambda c: scores[c])  # ties: the first in _PLACES (top left)
    if previous in scores and scores[previous] <= scores[best] + KEEP_CORNER_MARGIN:
        return previous
    return best


@functools.lru_cache(maxsize=1024)
def _text_mask(text: str, font_px: int) -> np.ndarray:
    """(row height, text width) uint8 coverage of `text` vertically centred in a legend row,
    rendered once per text and size (names and "42%" repeat from frame to frame)."""
    font = legend_font(font_px)
    height = _row_height(font)
    glyphs = font.getbbox("Hg")
    mask = Image.new("L", (max(1, math.ceil(font.getlength(text))), height))
    ImageDraw.Draw(mask).text((0, (height - (glyphs[3] - glyphs[1])) // 2 - glyphs[1]), text, fill=255, font=font)
    out = np.asarray(mask)
    out.flags.writeable = False
    return out


def _paint_text(cover: np.ndarray, mask: np.ndarray, x: int, y: int) -> None:
    """Add a text's coverage `mask` at (x, y) to the box's coverage `cover`, clipped to the box."""
    h, w = min(mask.shape[0], cover.shape[0] - y), min(mask.shape[1], cover.shape[1] - x)
    if h > 0 and w > 0:
        np.maximum(cover[y:y + h, x:x + w], mask[:h, :w], out=cover[y:y + h, x:x + w])


def draw_legend(image: np.ndarray, labels: np.ndarray, names: Mapping[int, str], palette: Palette,
                style: LegendStyle = LegendStyle(), *, areas: np.ndarray | None = None,
                previous_corner: str | None = None) -> DrawnLegend | None:
    """Draw the legend of `labels` into `image` in place; None when no class is present or the
    image is too small for one row.

    image: (H, W, 3) uint8 RGB, modified. labels: (H, W) non-negative int class ids of the same
    size. names: class id -> name. areas: `class_areas(labels)` if already computed.
    """
    areas = class_areas(labels) if areas is None else areas
    entries = legend_entries(areas, names)
    h, w = labels.shape
    layout = _layout(len(entries), h, w, style) if entries else None
    if layout is None:
        return None
    pad, row, sw = layout.pad, layout.row, layout.swatch
    shown = entries[: layout.shown]
    hidden = len(entries) - len(shown)
    texts = [e.name for e in shown] + ([f"+{hidden} more"] if hidden else [])
    masks = [_text_mask(_fit_name(t, layout.font_px, layout.name_width, style.max_name_chars), layout.font_px)
             for t in texts]
    bw = min(w, 3 * pad + sw + max(m.shape[1] for m in masks) + layout.share_width)
    bh = min(h, layout.height)
    corner = choose_corner(labels, areas, bw, bh, style, previous_corner)
    x0, y0 = _place(corner, bw, bh, h, w)

    keep = round((1.0 - style.background_alpha) * 256)
    box = image[y0:y0 + bh, x0:x0 + bw].astype(np.uint16)  # uint16 cannot overflow: 255 * 256 + 128 < 2**16
    box *= keep
    box += 128
    box >>= 8
    cover = np.zeros((bh, bw), np.uint8)  # text coverage, 255 = fully TEXT_COLOR
    rows = []
    for i, mask in enumerate(masks):
        top = pad + i * row
        _paint_text(cover, mask, 2 * pad + sw, top)
        if i < len(shown):
            rows.append((shown[i].class_id, top + (layout.size - sw) // 2))
            if style.show_share:
                share = _text_mask(_share_text(shown[i].share), layout.font_px)
                _paint_text(cover, share, bw - pad - share.shape[1], top)
    weight = cover.astype(np.uint16)
    weight += weight >> 7  # 0..255 -> 0..256, so full coverage gives exactly white
    box += ((255 - box) * weight[:, :, None] + 128) >> 8  # towards white (TEXT_COLOR)
    swatches = {}
    for class_id, sy in rows:  # swatches opaque: exactly the class colour
        box[sy:sy + sw, pad:pad + sw] = palette.color(class_id)
        swatches[class_id] = (x0 + pad, y0 + sy, x0 + pad + sw, y0 + sy + sw)
    image[y0:y0 + bh, x0:x0 + bw] = box
    return DrawnLegend(corner, (x0, y0, x0 + bw, y0 + bh), swatches, hidden)
