"""Prompt-to-mask with SAM 2: set an exemplar image once, then turn a box, points, a scribble or a
mask into a binary mask (the four annotation types of VRP-SAM; docs/proposals.md).

Coordinates at the public edge are continuous pixel coordinates, x to the right, y down: pixel
(column i, row j) covers [i, i+1) x [j, j+1), so its centre is (i + 0.5, j + 0.5). Images are
(H, W, 3) uint8 RGB; masks (H, W) bool.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from rns_ros.core.regions import sam2_models
from rns_ros.core.regions.proposals import LazySam2, ProposalConfig, check_image, sam2_autocast


class PromptMasker(LazySam2):
    """Prompt SAM 2 on one image: set once, query many (like `SAM2ImagePredictor`).

    `PromptMasker(config)` builds the model lazily from a `ProposalConfig`;
    `PromptMasker(model, config=...)` shares an already built SAM 2 model (its device is used).
    Annotation types follow VRP-SAM (point, scribble, box, mask); see docs/proposals.md.
    Each `from_*` returns an (H, W) bool mask at the image's resolution, possibly empty.
    """

    def __init__(self, source: ProposalConfig | torch.nn.Module | None = None, *,
                 config: ProposalConfig | None = None) -> None:
        if isinstance(source, torch.nn.Module):
            self._model = source
            self.config = config if config is not None else ProposalConfig()
        elif source is None or isinstance(source, ProposalConfig):
            if source is not None and config is not None:
                raise ValueError("pass the ProposalConfig once: PromptMasker(config)")
            self._model = None
            self.config = source or config or ProposalConfig()
        else:
            raise ValueError(f"PromptMasker takes a ProposalConfig or a SAM 2 model, "
                             f"got {type(source).__name__}")
        if not isinstance(self.config, ProposalConfig):
            raise ValueError(f"config must be a ProposalConfig, got {type(self.config).__name__}")
        self._predictor = None
        self._image_size: tuple[int, int] | None = None

    @property
    def image_size(self) -> tuple[int, int] | None:
        """(H, W) of the image set by `set_image`, or None."""
        return self._image_size

    def set_image(self, image: np.ndarray) -> None:
        """Compute the SAM 2 embedding of `image` ((H, W, 3) uint8 RGB) for the next prompts."""
        image = check_image(image)
        if self._predictor is None:
            self._predictor = sam2_models.build_image_predictor(self.model)
        with torch.inference_mode(), sam2_autocast(self.model, self.config.precision):
            self._predictor.set_image(image)
        self._image_size = (int(image.shape[0]), int(image.shape[1]))

    def reset(self) -> None:
        """Forget the image (frees its embedding)."""
        if self._predictor is not None:
            self._predictor.reset_predictor()
        self._image_size = None

    def _require_image(self) -> tuple[int, int]:
        if self._image_size is None:
            raise RuntimeError("no image set: call PromptMasker.set_image(image) before prompting")
        return self._image_size

    def _predict(self, **prompts) -> tuple[np.ndarray, np.ndarray]:
        """Best mask (H, W) bool by predicted IoU, and its low-res logits (1, h', w')."""
        with torch.inference_mode(), sam2_autocast(self.model, self.config.precision):
            masks, ious, low_res = self._predictor.predict(**prompts, return_logits=True)
        best = int(np.argmax(ious))
        return masks[best] > self._predictor.mask_threshold, low_res[best][None]

    def from_box(self, box: Sequence[float]) -> np.ndarray:
        """Mask of the object in `box` = (x0, y0, x1, y1), 0 <= x0 < x1 <= W, 0 <= y0 < y1 <= H.

        x1, y1 are exclusive edges: the tight box of a mask is (min col, min row, max col + 1,
        max row + 1), as VRP-SAM derives its box annotations.
        """
        h, w = self._require_image()
        b = np.asarray(box, dtype=np.float64)
        if b.shape != (4,) or not np.all(np.isfinite(b)):
            raise ValueError(f"box must be 4 finite numbers (x0, y0, x1, y1), got {box!r}")
        x0, y0, x1, y1 = b
        if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
            raise ValueError(f"box {tuple(b.tolist())} must satisfy 0 <= x0 < x1 <= {w} and "
                             f"0 <= y0 < y1 <= {h} (inside the {w}x{h} image, non-empty)")
        mask, _ = self._predict(box=b.astype(np.float32), multimask_output=False)
        return mask

    def from_points(self, points: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Mask from click points: `points` (P, 2) xy pixel coordinates inside the image
        (0 <= x < W, 0 <= y < H), `labels` (P,) 1 = on the object, 0 = background.

        A single positive point is ambiguous (part or whole?): SAM 2 answers with three masks and
        the one with the highest predicted IoU is returned. Several points give one mask.
        """
        h, w = self._require_image()
        pts, lab = self._check_points(points, labels, (h, w))
        single = len(pts) == 1
        mask, _ = self._predict(point_coords=pts, point_labels=lab, multimask_output=single)
        return mask

    @staticmethod
    def _check_points(points, labels, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        h, w = size
        pts = np.asarray(points, dtype=np.float64)
        lab = np.asarray(labels)
        if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) == 0:
            raise ValueError(f"points must have shape (P, 2) with P >= 1, got {pts.shape}")
        if lab.shape != (len(pts),):
            raise ValueError(f"labels must have shape ({len(pts)},) to match points, got {lab.shape}")
        if not np.all(np.isfinite(pts)):
            raise ValueError("points contain NaN or inf")
        outside = (pts[:, 0] < 0) | (pts[:, 0] >= w) | (pts[:, 1] < 0) | (pts[:, 1] >= h)
        if outside.any():
            raise ValueError(f"points {pts[outside].tolist()} lie outside the {w}x{h} image "
                             f"(need 0 <= x < {w}, 0 <= y < {h})")
        if not np.isin(lab, (0, 1)).all():
            raise ValueError(f"labels must be 1 (object) or 0 (background), got {np.unique(lab)}")
        if not (lab == 1).any():
            raise ValueError("at least one point must be positive (label 1) to say what to segment")
        return pts.astype(np.float32), lab.astype(np.int32)

    def from_scribble(self, scribble: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Mask from strokes drawn on the object.

        `scribble`: an (H, W) bool mask of the stroke pixels (VRP-SAM's scribble annotation), or a
        list of polylines, each (K, 2) xy points inside the image, rasterised 1 px wide.
        Up to `config.scribble_points` positive points are spread along the strokes (farthest
        point sampling, deterministic) and used as the prompt; with `config.scribble_refine` a
        second pass adds the first mask's low-res logits as a mask prompt.
        """
        h, w = self._require_image()
        strokes = self._scribble_to_mask(scribble, (h, w))
        pts = sample_stroke_points(strokes, self.config.scribble_points)
        lab = np.ones(len(pts), dtype=np.int32)
        mask, logits = self._predict(point_coords=pts, point_labels=lab,
                                     multimask_output=len(pts) == 1)
        if self.config.scribble_refine:
            mask, _ = self._predict(point_coords=pts, point_labels=lab, mask_input=logits,
                                    multimask_output=False)
        return mask

    @staticmethod
    def _scribble_to_mask(scribble, size: tuple[int, int]) -> np.ndarray:
        h, w = size
        if isinstance(scribble, np.ndarray) and scribble.ndim == 2:
            if scribble.shape != (h, w):
                hint = (" (a single polyline must be wrapped in a list: [points])"
                        if scribble.shape[1] == 2 else "")
                raise ValueError(f"scribble mask has shape {scribble.shape}, expected the image "
                                 f"size {(h, w)}{hint}")
            strokes = scribble != 0
        else:
            if isinstance(scribble, np.ndarray) and scribble.ndim == 3 and scribble.shape[2] == 2:
                scribble = list(scribble)
            if not isinstance(scribble, (list, tuple)) or len(scribble) == 0:
                raise ValueError("scribble must be an (H, W) bool mask or a non-empty list of "
                                 "(K, 2) xy polylines")
            strokes = np.zeros((h, w), dtype=bool)
            for i, line in enumerate(scribble):
                pts = np.asarray(line, dtype=np.float64)
                if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) == 0:
                    raise ValueError(f"polyline {i} must have shape (K, 2) with K >= 1, got {pts.shape}")
                if not np.all(np.isfinite(pts)) or (pts < 0).any() or (pts[:, 0] >= w).any() \
                        or (pts[:, 1] >= h).any():
                    raise ValueError(f"polyline {i} has points outside the {w}x{h} image "
                                     f"(need finite 0 <= x < {w}, 0 <= y < {h})")
                _draw_polyline(strokes, pts)
        if not strokes.any():
            raise ValueError("scribble is empty: draw at least one stroke pixel on the object")
        return strokes

    def from_mask(self, mask: np.ndarray) -> np.ndarray:
        """The mask itself (VRP-SAM's mask annotation), validated: (H, W) of the set image,
        bool or integer (non-zero = object), not empty. Returns a bool copy."""
        h, w = self._require_image()
        m = np.asarray(mask)
        if m.shape != (h, w):
            raise ValueError(f"mask has shape {m.shape}, expected the image size {(h, w)}")
        if m.dtype != np.bool_ and not np.issubdtype(m.dtype, np.integer):
            raise ValueError(f"mask must be bool or integer (non-zero = object), got {m.dtype}")
        out = m != 0
        if not out.any():
            raise ValueError("mask is empty: mark at least one pixel of the object")
        return out


def _draw_polyline(canvas: np.ndarray, points: np.ndarray) -> None:
    """Set the pixels a polyline (K, 2) xy passes through, sampling each segment every <=0.5 px."""
    h, w = canvas.shape
    samples = [points[:1]]
    for a, b in zip(points[:-1], points[1:]):
        n = max(int(np.ceil(np.abs(b - a).max() * 2)), 1)
        t = np.arange(1, n + 1)[:, None] / n
        samples.append(a + t * (b - a))
    xy = np.concatenate(samples)
    cols = np.clip(np.floor(xy[:, 0]).astype(np.int64), 0, w - 1)
    rows = np.clip(np.floor(xy[:, 1]).astype(np.int64), 0, h - 1)
    canvas[rows, cols] = True


def sample_stroke_points(strokes: np.ndarray, count: int) -> np.ndarray:
    """Up to `count` pixel centres (xy, float32) spread over the True pixels of `strokes`.

    Farthest point sampling from the first stroke pixel in raster order: deterministic, and it
    reaches the ends of a stroke first, then fills in between.
    """
    rows, cols = np.nonzero(strokes)
    if len(rows) == 0:
        raise ValueError("no stroke pixels to sample points from")
    xy = np.stack([cols, rows], axis=1).astype(np.float64) + 0.5
    count = min(count, len(xy))
    chosen = [0]
    dist = np.sum((xy - xy[0]) ** 2, axis=1)
    for _ in range(count - 1):
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, np.sum((xy - xy[nxt]) ** 2, axis=1))
    return xy[chosen].astype(np.float32)
