"""The dense-backbone protocol every feature extractor implements, and its output type."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence, runtime_checkable

import numpy as np
import torch


@dataclass(frozen=True)
class DenseFeatures:
    """Unit-norm patch features of one image, with the geometry needed to map back to pixels.

    The image was resized (aspect kept) to `resized_size`, zero-padded right/bottom to
    `padded_size` (a multiple of `patch_size`), and encoded into one feature per patch.
    """

    features: torch.Tensor  # (h, w, d) float32, L2-normalised along d, on the backbone's device
    image_size: tuple[int, int]  # (H, W) of the original image
    resized_size: tuple[int, int]  # (H', W') after the short-side resize, before padding
    patch_size: int
    # (3, H', W') float32 RGB in [0, 1]: the resized image the backbone encoded, before its
    # normalisation, when it keeps it (region mode hands it to SAM 2 rather than converting the
    # frame a second time); None otherwise
    resized_image: torch.Tensor | None = None

    @property
    def grid_size(self) -> tuple[int, int]:
        return int(self.features.shape[0]), int(self.features.shape[1])

    @property
    def padded_size(self) -> tuple[int, int]:
        h, w = self.grid_size
        return h * self.patch_size, w * self.patch_size

    def flat(self) -> torch.Tensor:
        """(h*w, d) view of the features, row-major over the patch grid."""
        return self.features.reshape(-1, self.features.shape[-1])


@runtime_checkable
class DenseBackbone(Protocol):
    """What the engine needs from a vision-language backbone.

    `identity` names the weights *and* the preprocessing: features made under two identities are
    not comparable, so the support memory re-encodes its exemplars when it changes.
    A backbone may also offer `encode_images(images) -> list[DenseFeatures]` (test protocol,
    several images sharing model calls); `Segmenter.segment_batch` uses it when present.
    """

    identity: str
    dim: int
    patch_size: int
    device: torch.device

    def encode_image(self, image: np.ndarray, *, support: bool = False) -> DenseFeatures:
        """`image`: (H, W, 3) uint8 RGB. `support=True` uses the support-image protocol
        (two sliding passes averaged) instead of the test-image one."""
        ...

    def encode_text(self, prompts: Sequence[str]) -> torch.Tensor:
        """(C, d) unit-norm text features, one per class prompt, averaged over the templates."""
        ...
