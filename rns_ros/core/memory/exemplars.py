"""A support exemplar (image + label map), its validation, and its encoding (RNS eq. 2).

An exemplar is what a user teaches the memory with: an RGB image and a map of the class ids of
the annotated pixels (0 = not annotated). The memory keeps the raw exemplar next to its compact
per-image class features so that it can re-encode it when the backbone changes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rns_ros.core.regions.pooling import IGNORE, pool_segments, to_feature_grid


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray):
        raise ValueError(f"exemplar image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"exemplar image must be uint8 RGB, got dtype {image.dtype}; "
                         "convert with (img * 255).round().astype(np.uint8) if it is float in [0, 1]")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"exemplar image must have shape (H, W, 3), got {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"exemplar image is empty: shape {image.shape}")


@dataclass(frozen=True, eq=False)
class Exemplar:
    """One annotated support image.

    `image`: (H, W, 3) uint8 RGB. `labels`: (H, W) integer class ids, 0 = not annotated.
    Both are stored as read-only copies, so an exemplar cannot change after validation.
    """

    image: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        image, labels = self.image, self.labels
        _check_image(image)
        if not isinstance(labels, np.ndarray):
            raise ValueError(f"exemplar labels must be a numpy array, got {type(labels).__name__}")
        if labels.dtype == np.bool_ or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"exemplar labels must be an integer class-id map, got dtype {labels.dtype}; "
                             "for a single binary mask use Exemplar.from_mask(image, mask, class_id)")
        if labels.ndim != 2:
            raise ValueError(f"exemplar labels must have shape (H, W), got {labels.shape}")
        if labels.shape != image.shape[:2]:
            raise ValueError(f"label map {labels.shape} and image {image.shape[:2]} differ in size; "
                             "the label map must be at the image's full resolution")
        if labels.size and int(labels.min()) < 0:
            raise ValueError(f"exemplar labels contain negative id {int(labels.min())}; "
                             "use 0 for not-annotated pixels and ids >= 1 for classes")
        if not np.any(labels):
            raise ValueError("exemplar has no annotated pixel (all labels are 0); "
                             "annotate at least one pixel with a class id >= 1")
        image = np.array(image, copy=True)
        labels = np.array(labels, dtype=np.int64, copy=True)
        image.flags.writeable = False
        labels.flags.writeable = False
        object.__setattr__(self, "image", image)
        object.__setattr__(self, "labels", labels)

    @classmethod
    def from_mask(cls, image: np.ndarray, mask: np.ndarray, class_id: int) -> "Exemplar":
        """An exemplar of one class from a binary mask: (H, W) bool/uint8, non-zero = the class."""
        if isinstance(class_id, bool) or not isinstance(class_id, (int, np.integer)) or class_id < 1:
            raise ValueError(f"class_id must be an int >= 1, got {class_id!r}")
        mask = np.asarray(mask)
        if mask.ndim != 2:
            raise ValueError(f"mask must have shape (H, W), got {mask.shape}")
        if not (mask.dtype == np.bool_ or np.issubdtype(mask.dtype, np.integer)):
            raise ValueError(f"mask must be bool or integer (non-zero = the class), got dtype {mask.dtype}")
        if not np.any(mask):
            raise ValueError("mask is empty (no non-zero pixel); draw the object before adding it")
        labels = np.where(mask != 0, int(class_id), 0).astype(np.int64)
        return cls(image=image, labels=labels)

    def class_ids(self) -> list[int]:
        """The class ids annotated in this exemplar, ascending."""
        ids = np.unique(self.labels)
        return [int(i) for i in ids if i != 0]

    @property
    def size(self) -> tuple[int, int]:
        return int(self.labels.shape[0]), int(self.labels.shape[1])

    def with_labels(self, labels: np.ndarray) -> "Exemplar":
        """The same image with another label map (validated like a new exemplar)."""
        return Exemplar(image=self.image, labels=labels)


def encode_exemplar(backbone, exemplar: Exemplar) -> tuple[torch.Tensor, list[int]]:
    """Per-image class features v_c^i of one exemplar (RNS eq. 2).

    Dense support features X = backbone.encode_image(image, support=True); for each class c present,
    v_c^i = normalise(sum_j S_jc x_j) with S_jc = (#pixels of c in patch j) / (#pixels of c), computed
    on the full-resolution label map (nearest-resized to the backbone's resize, padding ignored).
    Returns (feats (m, d) float32 unit-norm on the backbone's device, class ids: list of m ints).
    A class whose pixels all vanish in the resize is left out.
    """
    if not isinstance(exemplar, Exemplar):
        raise ValueError(f"encode_exemplar needs an Exemplar, got {type(exemplar).__name__}")
    dense = backbone.encode_image(exemplar.image, support=True)
    grid = to_feature_grid(exemplar.labels, dense)
    # Class ids are sparse; compact them to 0..n-1 so the pooling matrix is (patches, n), not (patches, max id).
    present = exemplar.class_ids()
    lut = torch.full((max(present) + 1,), IGNORE, dtype=torch.int64, device=grid.device)
    lut[torch.as_tensor(present, dtype=torch.int64, device=grid.device)] = torch.arange(
        len(present), device=grid.device)
    compact = torch.where(grid > 0, lut[grid.clamp(min=0)], torch.full_like(grid, IGNORE))
    seg_ids, pooled = pool_segments(dense, compact, num_segments=len(present))
    class_ids = [present[int(i)] for i in seg_ids.tolist()]
    return pooled.to(torch.float32), class_ids
