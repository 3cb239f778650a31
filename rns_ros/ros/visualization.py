"""Class colours and the overlay image (input blended with the colour of each pixel's class).

A class's colour depends only on its id (golden-ratio hue steps, alternating brightness), so it
stays the same across frames, restarts and machines, and neighbouring ids look different.
"""
from __future__ import annotations

import colorsys

import numpy as np

_GOLDEN_RATIO = 0.6180339887498949


def class_color(class_id: int) -> tuple[int, int, int]:
    """RGB (0..255 each) of class `class_id` (>= 1); id 0 (unlabeled) is black."""
    if class_id <= 0:
        return (0, 0, 0)
    hue = (class_id * _GOLDEN_RATIO) % 1.0
    value = 0.95 if class_id % 2 else 0.75
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, value)
    return (round(r * 255), round(g * 255), round(b * 255))


def color_table(class_ids) -> np.ndarray:
    """(max_id + 1, 3) uint8 lookup table: row `i` is the colour of class `i` (row 0 black)."""
    ids = [int(i) for i in class_ids]
    table = np.zeros((max(ids, default=0) + 1, 3), dtype=np.uint8)
    for cid in ids:
        table[cid] = class_color(cid)
    return table


def overlay(rgb: np.ndarray, labels: np.ndarray, table: np.ndarray, alpha: float) -> np.ndarray:
    """Blend class colours into an image: labelled pixels become (1 - alpha) * rgb + alpha * colour
    (alpha rounded to 1/256, result rounded to the nearest integer).

    rgb: (H, W, 3) uint8. labels: (H, W) int class ids (0 = unlabeled: pixel kept as is).
    table: `color_table` covering every id in `labels`. alpha in [0, 1]. Returns (H, W, 3) uint8.
    """
    if rgb.shape[:2] != labels.shape:
        raise ValueError(f"image {rgb.shape[:2]} and labels {labels.shape} differ in size")
    if labels.size and int(labels.max()) >= len(table):
        raise ValueError(f"label id {int(labels.max())} has no colour (table covers 0..{len(table) - 1})")
    # Fixed point (weights out of 256) with per-id lookups: np.take is several times faster than
    # fancy indexing, and uint16 arithmetic cannot overflow (255 * 256 + 128 < 2**16).
    weight = int(round(float(alpha) * 256))
    keep = np.full(len(table), 256 - weight, np.uint16)
    keep[0] = 256  # unlabeled pixels keep the input
    add = table.astype(np.uint16) * weight
    add[0] = 0
    out = rgb.astype(np.uint16)
    out *= np.take(keep, labels)[:, :, None]
    out += np.take(add, labels, axis=0)
    out += 128
    out >>= 8
    return out.astype(np.uint8)
