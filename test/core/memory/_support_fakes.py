"""A tiny deterministic stand-in backbone for the support-memory tests (no model, no download)."""
from __future__ import annotations

import hashlib

import numpy as np
import torch
import torch.nn.functional as F

from rns_ros.core.backbones.base import DenseFeatures


class FakeBackbone:
    """Patch features = normalise(random projection of the patch's pixels); no resize, zero padding
    to a multiple of `patch_size`. Text features = a unit vector seeded by (identity, prompt).
    Two identities give unrelated features, like two real backbones."""

    def __init__(self, identity: str = "fake-a", dim: int = 16, patch_size: int = 4):
        self.identity = identity
        self.dim = dim
        self.patch_size = patch_size
        self.device = torch.device("cpu")
        gen = torch.Generator().manual_seed(self._seed(identity))
        self._proj = torch.randn(3 * patch_size * patch_size + 1, dim, generator=gen)
        self.image_calls = 0
        self.text_calls: list[str] = []

    @staticmethod
    def _seed(text: str) -> int:
        return int.from_bytes(hashlib.sha256(text.encode()).digest()[:6], "little")

    def encode_image(self, image: np.ndarray, *, support: bool = False) -> DenseFeatures:
        self.image_calls += 1
        h, w = image.shape[:2]
        p = self.patch_size
        ph, pw = -(-h // p) * p, -(-w // p) * p
        padded = np.zeros((ph, pw, 3), dtype=np.float32)
        padded[:h, :w] = image / 255.0
        patches = torch.from_numpy(padded).reshape(ph // p, p, pw // p, p, 3).permute(0, 2, 1, 3, 4)
        patches = patches.reshape(ph // p, pw // p, -1)
        patches = torch.cat([patches, torch.ones(ph // p, pw // p, 1)], dim=-1)
        feats = F.normalize(patches @ self._proj, dim=-1)
        return DenseFeatures(features=feats, image_size=(h, w), resized_size=(h, w), patch_size=p)

    def encode_text(self, prompts) -> torch.Tensor:
        self.text_calls += list(prompts)
        rows = [torch.randn(self.dim, generator=torch.Generator().manual_seed(self._seed(self.identity + p)))
                for p in prompts]
        return F.normalize(torch.stack(rows), dim=-1)


def random_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
