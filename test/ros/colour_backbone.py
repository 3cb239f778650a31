"""A known-answer backbone for tests: features designed from pixel colours, so the right labels
are known before the engine runs.

Each 16x16 patch's feature is its closeness to each of the COLOURS (a softmax over the negative
squared distances of the patch's mean colour, sharp enough that a patch of one colour is nearly
one-hot), in the first len(COLOURS) dimensions. Text features live in the other TEXT_DIMS
dimensions (one per prompt, chosen by a stable hash), so they are orthogonal to every image
feature: the visual exemplars alone decide. No resizing: the patch grid covers the image, padded
right/bottom to a multiple of 16. A patch of one colour taught as class c is therefore labelled c
wherever that colour appears; labels follow patch borders, with corners rounded by the
segmenter's bilinear upsampling of the patch probabilities.
"""
from __future__ import annotations

import zlib

import numpy as np
import torch
import torch.nn.functional as F

from rns_ros.core.backbones.base import DenseFeatures

COLOURS = np.array([(0, 0, 0), (255, 255, 255), (128, 128, 128), (220, 30, 30), (30, 200, 30), (30, 30, 220),
                    (230, 220, 30), (30, 210, 220), (220, 30, 210)], np.float32)
TEXT_DIMS = 16
PATCH = 16
SHARPNESS = 1 / 200.0  # per squared colour distance: one colour's patch is ~one-hot


class ColourBackbone:
    identity = "test/colour-known-answer"
    dim = len(COLOURS) + TEXT_DIMS
    patch_size = PATCH
    device = torch.device("cpu")

    def _features(self, image: np.ndarray) -> torch.Tensor:
        h, w = image.shape[:2]
        gh, gw = -(-h // PATCH), -(-w // PATCH)
        padded = np.zeros((gh * PATCH, gw * PATCH, 3), np.float32)
        padded[:h, :w] = image
        means = padded.reshape(gh, PATCH, gw, PATCH, 3).mean(axis=(1, 3))
        distance = ((means[:, :, None, :] - COLOURS[None, None]) ** 2).sum(-1)
        closeness = torch.softmax(torch.from_numpy(-distance * SHARPNESS), dim=-1)
        return F.normalize(torch.cat([closeness, torch.zeros(gh, gw, TEXT_DIMS)], dim=-1), dim=-1)

    def encode_image(self, image: np.ndarray, *, support: bool = False) -> DenseFeatures:
        h, w = int(image.shape[0]), int(image.shape[1])
        return DenseFeatures(self._features(image), (h, w), (h, w), PATCH)

    def encode_images(self, images):
        return [self.encode_image(image) for image in images]

    def encode_text(self, prompts) -> torch.Tensor:
        out = torch.zeros(len(prompts), self.dim)
        for row, prompt in enumerate(prompts):
            out[row, len(COLOURS) + zlib.crc32(prompt.encode()) % TEXT_DIMS] = 1.0
        return out


def scene(h: int, w: int, square: tuple[int, int, int], background=(128, 128, 128), colour=(220, 30, 30)):
    """(h, w, 3) uint8: a `background` frame with a `colour` square of side square[2] px whose top
    left corner is (square[0], square[1]) = (row, column); and its (h, w) bool mask."""
    rgb = np.empty((h, w, 3), np.uint8)
    rgb[:] = background
    y, x, side = square
    rgb[y:y + side, x:x + side] = colour
    mask = np.zeros((h, w), bool)
    mask[y:y + side, x:x + side] = True
    return rgb, mask


def away_from_corners(mask: np.ndarray, reach: int = PATCH) -> np.ndarray:
    """(H, W) bool: False within `reach` px (in both directions) of a corner of the square in
    `mask`, where bilinear upsampling of patch probabilities rounds the corners off."""
    keep = np.ones(mask.shape, bool)
    rows, cols = np.nonzero(mask)
    for y in (rows.min(), rows.max()):
        for x in (cols.min(), cols.max()):
            keep[max(0, y - reach):y + reach + 1, max(0, x - reach):x + reach + 1] = False
    return keep
