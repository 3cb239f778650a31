"""Pictures of a label image for people: the overlay (the frame blended with class colours, with
a legend and optional contours) and the colourised label image (palette colours, no blending).

Every function takes and returns RGB (R, G, B channel order) uint8 arrays; colours come from a
`Palette`, so the overlay, the colourised labels, the legend's swatches and the class map's
`ClassInfo.color` agree pixel for pixel.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from rns_ros.visual.legend import DrawnLegend, LegendStyle, draw_legend
from rns_ros.visual.palette import Palette


@dataclass(frozen=True)
class OverlayStyle:
    """How the overlay looks; defaults here are the node's and the CLI's."""

    alpha: float = 0.5  # class colour weight of labelled pixels (0 = frame only, 1 = colours only)
    legend: LegendStyle | None = LegendStyle()  # None = no legend
    contours: bool = False  # draw class boundaries in the pure class colour

    def __post_init__(self):
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"overlay alpha must be in [0, 1], got {self.alpha}")


@functools.lru_cache(maxsize=8)
def color_lut(palette: Palette, size: int) -> np.ndarray:
    """(size, 3) uint8: row i is the colour of class i (row 0 black). Cached: read-only."""
    table = palette.table(range(size))
    table.flags.writeable = False
    return table


def blend(rgb: np.ndarray, labels: np.ndarray, table: np.ndarray, alpha: float,
          outline: np.ndarray | None = None) -> np.ndarray:
    """Blend class colours into an image: labelled pixels become (1 - alpha) * rgb + alpha * colour
    (alpha rounded to 1/256, result rounded to the nearest integer); labelled pixels where
    `outline` is True take the pure colour.

    rgb: (H, W, 3) uint8. labels: (H, W) int class ids (0 = unlabeled: pixel kept as is).
    table: a colour table covering every id in `labels`. alpha in [0, 1]. outline: (H, W) bool or
    None. Returns (H, W, 3) uint8.
    """
    _check(rgb, labels, table)
    # Fixed point (weights out of 256) with per-id lookups: np.take is several times faster than
    # fancy indexing, and uint16 arithmetic cannot overflow (255 * 256 + 128 < 2**16). Outlined
    # pixels look up a second half of the tables (id + n), where the colour weighs 256.
    n = len(table)
    weight = int(round(float(alpha) * 256))
    keep = np.full(2 * n, 256 - weight, np.uint16)
    keep[n:] = 0
    keep[[0, n]] = 256  # unlabeled pixels keep the input
    add = np.concatenate([table.astype(np.uint16) * weight, table.astype(np.uint16) * 256])
    add[[0, n]] = 0
    index = labels if outline is None else labels + outline * n
    out = rgb.astype(np.uint16)
    out *= np.take(keep, index)[:, :, None]
    out += np.take(add, index, axis=0)
    out += 128
    out >>= 8
    return out.astype(np.uint8)


def colorize(labels: np.ndarray, table: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8: each pixel the colour of its class (unlabeled black), no blending."""
    if labels.size and int(labels.max()) >= len(table):
        raise ValueError(f"label id {int(labels.max())} has no colour (table covers 0..{len(table) - 1})")
    return np.take(table, labels, axis=0)


def contour_mask(labels: np.ndarray) -> np.ndarray:
    """(H, W) bool: labelled pixels whose right, left, upper or lower neighbour has another id."""
    edge = np.zeros(labels.shape, bool)
    across = labels[:, 1:] != labels[:, :-1]
    edge[:, 1:] |= across
    edge[:, :-1] |= across
    down = labels[1:] != labels[:-1]
    edge[1:] |= down
    edge[:-1] |= down
    edge &= labels > 0
    return edge


def render_overlay(rgb: np.ndarray, labels: np.ndarray, names: Mapping[int, str], palette: Palette,
                   style: OverlayStyle = OverlayStyle(), *, previous_corner: str | None = None
                   ) -> tuple[np.ndarray, DrawnLegend | None]:
    """The overlay of one frame: colours blended in, then contours, then the legend.

    rgb: (H, W, 3) uint8 RGB. labels: (H, W) non-negative int class ids. names: class id ->
    name (for the legend). previous_corner: the last frame's legend corner (keeps `auto` steady).
    Returns the (H, W, 3) uint8 overlay and where its legend went (None: no legend).
    """
    table = color_lut(palette, int(labels.max()) + 1 if labels.size else 1)
    out = blend(rgb, labels, table, style.alpha, contour_mask(labels) if style.contours else None)
    drawn = None
    if style.legend is not None:
        drawn = draw_legend(out, labels, names, palette, style.legend, previous_corner=previous_corner)
    return out, drawn


def _check(rgb: np.ndarray, labels: np.ndarray, table: np.ndarray) -> None:
    if rgb.shape[:2] != labels.shape:
        raise ValueError(f"image {rgb.shape[:2]} and labels {labels.shape} differ in size")
    if labels.size and int(labels.max()) >= len(table):
        raise ValueError(f"label id {int(labels.max())} has no colour (table covers 0..{len(table) - 1})")
