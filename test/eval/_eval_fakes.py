"""Stand-ins for the evaluation tests: a backbone whose features are known by construction, and
writers of tiny synthetic datasets in the real on-disk layouts."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from rns_ros.core.backbones.base import DenseFeatures

# Colours painted for class k (saturated and far apart, so JPEG keeps them recognisable); the
# last one marks unlabelled pixels.
PALETTE = np.array([
    (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255), (0, 255, 255),
    (128, 0, 0), (0, 128, 0), (0, 0, 128), (128, 128, 0), (128, 0, 128), (0, 128, 128),
], dtype=np.uint8)
VOID_COLOUR = np.array((128, 128, 128), dtype=np.uint8)


class ColourBackbone:
    """Patch feature = normalise(common u + sum_k (fraction of the patch's pixels painted in
    colour k) e_k), with u, e_k orthonormal: patches inside one class block all have their class's
    vector. Like CLIP features, all share the direction u (cosines between classes are
    common^2 / (1 + common^2), not 0), which keeps RNS's relevance weights moderate.
    No resize; zero padding to a multiple of `patch_size` contributes nothing.
    Text of class name n = normalise(common u + e_n), or with the mean of the e's of the classes
    listed in `text_overrides[n]` (to make two names indistinguishable, say)."""

    def __init__(self, class_names: Sequence[str], dim: int = 32, patch_size: int = 8,
                 identity: str | None = None, text_overrides: dict[str, list[str]] | None = None,
                 common: float = 2.0):
        assert dim > len(PALETTE) + 1
        self.class_names = list(class_names)
        self.identity = identity or f"colour-fake/p{patch_size}/common{common:g}"
        self.dim = dim
        self.patch_size = patch_size
        self.device = torch.device("cpu")
        self.test_only = False
        gen = torch.Generator().manual_seed(0)
        q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=gen))
        self.basis = q.T[: len(PALETTE) + 1].contiguous()  # rows e_0..e_K (e_K = void)
        self.shared = common * q.T[len(PALETTE) + 1]  # common u
        self.text_overrides = dict(text_overrides or {})
        self.image_calls = 0
        self.support_calls = 0
        self.text_calls = 0

    def colour_classes(self, image: np.ndarray) -> np.ndarray:
        """(H, W) index of the nearest palette colour (len(PALETTE) = void)."""
        colours = np.concatenate([PALETTE, VOID_COLOUR[None]]).astype(np.int64)
        dist = ((image[:, :, None, :].astype(np.int64) - colours[None, None]) ** 2).sum(-1)
        return dist.argmin(-1)

    def encode_image(self, image: np.ndarray, *, support: bool = False) -> DenseFeatures:
        self.image_calls += 1
        self.support_calls += int(support)
        h, w = image.shape[:2]
        p = self.patch_size
        gh, gw = -(-h // p), -(-w // p)
        onehot = np.zeros((gh * p, gw * p, len(self.basis)), dtype=np.float32)
        cls = self.colour_classes(image)
        onehot[np.arange(h)[:, None], np.arange(w)[None, :], cls] = 1.0
        frac = onehot.reshape(gh, p, gw, p, -1).sum(axis=(1, 3))
        mixed = torch.from_numpy(frac) @ self.basis
        covered = torch.from_numpy((frac.sum(-1, keepdims=True) > 0).astype(np.float32))
        feats = F.normalize(mixed + self.shared * covered, dim=-1)
        return DenseFeatures(features=feats, image_size=(h, w), resized_size=(h, w), patch_size=p)

    def encode_text(self, names: Sequence[str]) -> torch.Tensor:
        self.text_calls += 1
        rows = []
        for name in names:
            members = self.text_overrides.get(name, [name])
            idx = [self.class_names.index(m) for m in members]
            rows.append(F.normalize(self.basis[idx].mean(0) + self.shared, dim=-1))
        return torch.stack(rows)


def paint(labels: np.ndarray, ignore_value: int) -> np.ndarray:
    """(H, W, 3) uint8 image: class k in PALETTE[k], ignored pixels in VOID_COLOUR."""
    image = np.empty(labels.shape + (3,), dtype=np.uint8)
    ignored = labels == ignore_value
    image[~ignored] = PALETTE[labels[~ignored]]
    image[ignored] = VOID_COLOUR
    return image


def block_labels(rng: np.random.Generator, rows: int, cols: int, block: int, num_classes: int,
                 offset: int = 0) -> np.ndarray:
    """A (rows*block + offset, cols*block + offset) map of random class blocks; the first `offset`
    rows/columns repeat the first block row/column, shifting block edges off the patch grid."""
    grid = rng.integers(0, num_classes, size=(rows, cols))
    labels = np.kron(grid, np.ones((block, block), dtype=np.int64))
    if offset:
        labels = np.pad(labels, ((offset, 0), (offset, 0)), mode="edge")
    return labels


def save_jpg(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, quality=100, subsampling=0)


def save_png(path: Path, array: np.ndarray, palette: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(array.astype(np.uint8), mode="L")
    if palette:
        img = img.convert("P")
        img.putpalette([v for i in range(256) for v in ((i * 37) % 256, (i * 91) % 256, (i * 53) % 256)])
    img.save(path)


def write_camvid(root: Path, splits: dict[str, list[np.ndarray]],
                 paint_maps: dict[str, list[np.ndarray]] | None = None) -> list[str]:
    """CamVid layout: {split}/images/<id>.jpg + {split}/labels/<id>.png; 255 in the given maps is
    written as CamVid's ignore value 11. Images are painted from `paint_maps` when given (so an
    ignored pixel can still show a class), else from the label maps. Returns all ids."""
    ids = []
    for split, maps in splits.items():
        for i, labels in enumerate(maps):
            image_id = f"seq{split}_{i:04d}"
            raw = np.where(labels == 255, 11, labels)
            colours = paint_maps[split][i] if paint_maps else labels
            save_jpg(root / split / "images" / f"{image_id}.jpg", paint(colours, 255))
            save_png(root / split / "labels" / f"{image_id}.png", raw)
            ids.append(image_id)
    return ids
