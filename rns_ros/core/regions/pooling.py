"""Area-weighted pooling of patch features over segments (RNS eq. 2 and eq. 13).

The same math turns a support label map into per-image class features and a region partition
into region embeddings: segment s gets normalise(sum_j S_js x_j) with
S_js = (#pixels of s in patch j) / (#pixels of s).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from rns_ros.core.backbones.base import DenseFeatures

IGNORE = -1


def to_feature_grid(segment_map: np.ndarray, dense: DenseFeatures) -> torch.Tensor:
    """Bring an (H, W) integer map at original resolution onto the padded pixel grid of `dense`.

    Nearest-neighbour resize to `dense.resized_size`, then pad right/bottom with IGNORE.
    Returns an int64 tensor of shape `dense.padded_size` on the features' device.
    """
    segment_map = np.asarray(segment_map)
    if segment_map.shape != tuple(dense.image_size):
        raise ValueError(
            f"segment map has shape {segment_map.shape}, expected the image size {dense.image_size}"
        )
    if not np.issubdtype(segment_map.dtype, np.integer) and segment_map.dtype != np.bool_:
        raise ValueError(f"segment map must be integer-valued, got dtype {segment_map.dtype}")
    seg = torch.from_numpy(segment_map.astype(np.int64))
    if tuple(seg.shape) != tuple(dense.resized_size):
        seg = F.interpolate(seg[None, None].float(), size=dense.resized_size, mode="nearest-exact")
        seg = seg[0, 0].long()
    ph, pw = dense.padded_size
    out = torch.full((ph, pw), IGNORE, dtype=torch.int64)
    out[: seg.shape[0], : seg.shape[1]] = seg
    return out.to(dense.features.device)


def patch_segment_counts(segment_grid: torch.Tensor, grid_size: tuple[int, int], patch_size: int,
                         num_segments: int) -> torch.Tensor:
    """(h*w, num_segments) float tensor: pixels of each segment inside each patch.

    `segment_grid`: (h*p, w*p) int64, values in [0, num_segments) or negative (ignored).
    """
    h, w = grid_size
    p = patch_size
    if tuple(segment_grid.shape) != (h * p, w * p):
        raise ValueError(f"segment grid {tuple(segment_grid.shape)} does not match {(h * p, w * p)}")
    ys = torch.arange(h * p, device=segment_grid.device) // p
    xs = torch.arange(w * p, device=segment_grid.device) // p
    patch = (ys[:, None] * w + xs[None, :]).reshape(-1)
    seg = segment_grid.reshape(-1)
    keep = seg >= 0
    flat = patch[keep] * num_segments + seg[keep]
    counts = torch.bincount(flat, minlength=h * w * num_segments)
    return counts.reshape(h * w, num_segments).to(torch.float32)


def pool_segments(dense: DenseFeatures, segment_grid: torch.Tensor,
                  num_segments: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Pool `dense`'s patch features over the segments of `segment_grid` (see `to_feature_grid`).

    Returns `(segment_ids, pooled)`: the ids present (ascending, int64) and their unit-norm
    pooled features, shape (len(segment_ids), d). Segments with no pixel are left out.
    """
    if num_segments is None:
        num_segments = int(segment_grid.max().item()) + 1 if segment_grid.numel() else 0
    if num_segments <= 0:
        d = dense.features.shape[-1]
        return (torch.zeros(0, dtype=torch.int64, device=dense.features.device),
                dense.features.new_zeros(0, d))
    counts = patch_segment_counts(segment_grid, dense.grid_size, dense.patch_size, num_segments)
    area = counts.sum(0)
    present = torch.nonzero(area > 0).flatten()
    weights = counts[:, present] / area[present]
    pooled = weights.T.to(dense.features.dtype) @ dense.flat()
    return present, F.normalize(pooled, dim=-1)
