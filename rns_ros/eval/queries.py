"""The queries of a test image in each evaluation mode, and the way their class probabilities
become a label map at the image's original resolution.

- patch: one query per patch feature; the (C, h, w) probability map is bilinearly upsampled to
  the padded size, cropped to the resized image, resized to the original size, then argmax
  (RNS section 6).
- region: one query per region of a partition of the resized image (SAM 2 automatic masks made
  a partition, section 5), embedded by area-weighted pooling (eq. 13); each pixel takes its
  region's class.
- oracle: the ground-truth segments (one region per class present in the label map) are the
  proposals, so mistakes left are classification mistakes: with a perfect classifier mIoU = 100.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from rns_ros.core.backbones.base import DenseFeatures
from rns_ros.core.regions.pooling import IGNORE, pool_segments, to_feature_grid
from rns_ros.eval.datasets.base import IGNORE_INDEX
from rns_ros.eval.metrics import NO_PREDICTION

MODES = ("patch", "region", "oracle")


@dataclass
class QuerySet:
    """`features`: (N, d) unit-norm queries. For region/oracle modes, `segments` is the (H, W)
    int64 region id of every original-resolution pixel (-1 = none) and `segment_ids` the (N,)
    region id of each query row."""

    mode: str
    features: torch.Tensor
    dense: DenseFeatures
    segments: np.ndarray | None = None
    segment_ids: np.ndarray | None = None

    def label_map(self, probs: torch.Tensor) -> np.ndarray:
        """(H, W) int64 class indices at the original resolution from (N, C) probabilities."""
        if probs.shape[0] != self.features.shape[0]:
            raise ValueError(f"probabilities have {probs.shape[0]} rows for {self.features.shape[0]} queries")
        if self.mode == "patch":
            return patch_probs_to_labels(probs, self.dense)
        assert self.segments is not None and self.segment_ids is not None
        return self.region_classes(probs)[1]

    def region_classes(self, probs: torch.Tensor) -> tuple[dict[int, int], np.ndarray]:
        """(region id -> predicted class, (H, W) label map); pixels of regions with no query
        (vanished in the resize) get NO_PREDICTION."""
        classes = probs.argmax(dim=1).cpu().numpy()
        lut_size = int(max(self.segments.max(initial=-1), self.segment_ids.max(initial=-1))) + 2
        lut = np.full(lut_size, NO_PREDICTION, dtype=np.int64)
        lut[self.segment_ids + 1] = classes
        return ({int(s): int(c) for s, c in zip(self.segment_ids, classes)},
                lut[self.segments + 1])


def patch_probs_to_labels(probs: torch.Tensor, dense: DenseFeatures) -> np.ndarray:
    """(h*w, C) patch probabilities -> (H, W) int64 argmax labels at the original resolution."""
    h, w = dense.grid_size
    grid = probs.T.reshape(1, -1, h, w).to(torch.float32)
    padded = F.interpolate(grid, size=dense.padded_size, mode="bilinear", align_corners=False)
    rh, rw = dense.resized_size
    cropped = padded[:, :, :rh, :rw]
    if tuple(dense.resized_size) != tuple(dense.image_size):
        cropped = F.interpolate(cropped, size=dense.image_size, mode="bilinear", align_corners=False)
    return cropped[0].argmax(dim=0).cpu().numpy().astype(np.int64)


def _resize_nearest(segments: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if tuple(segments.shape) == tuple(size):
        return segments
    t = torch.from_numpy(segments.astype(np.int64))[None, None].float()
    return F.interpolate(t, size=size, mode="nearest-exact")[0, 0].long().numpy()


def patch_queries(dense: DenseFeatures) -> QuerySet:
    return QuerySet("patch", dense.flat(), dense)


def region_queries(dense: DenseFeatures, partition: np.ndarray) -> QuerySet:
    """Queries from a partition (H', W') of the *resized* image (ids >= 0; negative = none)."""
    partition = np.asarray(partition, dtype=np.int64)
    if tuple(partition.shape) != tuple(dense.resized_size):
        raise ValueError(f"partition {partition.shape} must have the resized image size {dense.resized_size}")
    grid = torch.full(dense.padded_size, IGNORE, dtype=torch.int64)
    rh, rw = dense.resized_size
    grid[:rh, :rw] = torch.from_numpy(np.where(partition < 0, IGNORE, partition))
    ids, feats = pool_segments(dense, grid.to(dense.features.device))
    segments = _resize_nearest(partition, dense.image_size)
    return QuerySet("region", feats, dense, segments=np.where(segments < 0, -1, segments),
                    segment_ids=ids.cpu().numpy())


def oracle_queries(dense: DenseFeatures, labels: np.ndarray) -> QuerySet:
    """Queries from the ground-truth segments: one region per class in `labels` (H, W)."""
    segments = np.where(labels == IGNORE_INDEX, -1, labels.astype(np.int64))
    grid = to_feature_grid(segments, dense)
    ids, feats = pool_segments(dense, grid)
    return QuerySet("oracle", feats, dense, segments=segments, segment_ids=ids.cpu().numpy())
