"""Resize, pad and sliding-window averaging of dense patch features (RNS section 1.2).

Pure torch and backbone-agnostic: the windowing takes an `encode_crops` callable, so any dense
backbone (and any fake encoder in a test) plugs in.

Geometry conventions: sizes are (height, width) in pixels; window offsets are multiples of the
patch size, so every crop's patch grid lands exactly on the full image's patch grid.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

# (B, 3, ch, cw) normalised crops -> (B, ch / p, cw / p, d) patch features (any norm).
CropEncoder = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class ResolutionConfig:
    """The preprocessing protocol: test-image resize and windows, support-image windows."""

    short_side: int = 448  # images are resized (aspect kept) so their short side is this
    max_long_side: int = 2048  # ... unless the long side would exceed this; then the long side is capped
    test_crop: int = 448  # window size for test images
    test_stride: int = 224  # window stride for test images
    support_crops: tuple[int, ...] = (448, 224)  # one full sliding pass per crop size, averaged
    support_stride: int = 112  # window stride of every support pass
    max_batch: int = 16  # windows encoded per backbone call (memory vs. launch overhead)
    # Support images keep their own size (only the long-side cap applies) instead of the
    # short-side resize: the authors' DINOv3.txt protocol.
    support_native_size: bool = False

    def validate(self, patch_size: int) -> None:
        """Raise ValueError unless every size is positive and crops/strides are multiples of the patch."""
        sizes = {"short_side": self.short_side, "max_long_side": self.max_long_side,
                 "test_crop": self.test_crop, "test_stride": self.test_stride,
                 "support_stride": self.support_stride, "max_batch": self.max_batch}
        for i, c in enumerate(self.support_crops):
            sizes[f"support_crops[{i}]"] = c
        for name, value in sizes.items():
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"ResolutionConfig.{name} must be a positive int, got {value!r}")
        if not self.support_crops:
            raise ValueError("ResolutionConfig.support_crops must name at least one crop size")
        if self.max_long_side < self.short_side:
            raise ValueError(f"max_long_side {self.max_long_side} is below short_side {self.short_side}")
        for name in ("test_crop", "test_stride", "support_stride"):
            if sizes[name] % patch_size:
                raise ValueError(f"ResolutionConfig.{name}={sizes[name]} is not a multiple of the "
                                 f"patch size {patch_size}; pick a multiple so windows stay on the patch grid")
        for c in self.support_crops:
            if c % patch_size:
                raise ValueError(f"support crop {c} is not a multiple of the patch size {patch_size}")
        # A stride longer than the crop would leave patches that no window covers.
        if self.test_stride > self.test_crop:
            raise ValueError(f"test_stride {self.test_stride} exceeds test_crop {self.test_crop}")
        if self.support_stride > min(self.support_crops):
            raise ValueError(f"support_stride {self.support_stride} exceeds the smallest support crop "
                             f"{min(self.support_crops)}")

    def describe(self) -> str:
        """Compact text for backbone identities: every field that changes the features."""
        crops = "+".join(str(c) for c in self.support_crops)
        native = "-native" if self.support_native_size else ""
        return (f"S{self.short_side}-L{self.max_long_side}-test{self.test_crop}/{self.test_stride}"
                f"-support{crops}/{self.support_stride}{native}")

    def resized_size(self, size: tuple[int, int], support: bool = False) -> tuple[int, int]:
        """(H', W') an image of `size` is encoded at, test or support protocol."""
        if support and self.support_native_size:
            h, w = int(size[0]), int(size[1])
            return resized_size(size, min(h, w), self.max_long_side) if max(h, w) > self.max_long_side else (h, w)
        return resized_size(size, self.short_side, self.max_long_side)


def resized_size(size: tuple[int, int], short_side: int, max_long_side: int) -> tuple[int, int]:
    """(H', W') with the short side = `short_side`, aspect kept, long side capped at `max_long_side`.

    Rounded to the nearest pixel, at least 1.
    """
    h, w = int(size[0]), int(size[1])
    if h <= 0 or w <= 0:
        raise ValueError(f"image size must be positive, got {(h, w)}")
    scale = short_side / min(h, w)
    if max(h, w) * scale > max_long_side:
        scale = max_long_side / max(h, w)
    return max(1, int(round(h * scale))), max(1, int(round(w * scale)))


def check_image(image: np.ndarray) -> None:
    """Raise a ValueError naming the problem unless `image` is a non-empty (H, W, 3) uint8 array."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        desc = (f"dtype {image.dtype}, shape {image.shape}" if isinstance(image, np.ndarray)
                else type(image).__name__)
        raise ValueError(f"image must be an (H, W, 3) uint8 RGB numpy array, got {desc}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image is empty: shape {image.shape}")


def image_to_tensor(image: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32 in [0, 1] on `device`."""
    check_image(image)
    device = torch.device(device)
    if any(stride < 0 for stride in image.strides):
        image = np.ascontiguousarray(image)  # torch cannot wrap negative strides (e.g. a flipped view)
    if device.type == "cuda":
        # One copy into page-locked memory (torch caches those buffers), then an asynchronous upload.
        staging = torch.empty(image.shape, dtype=torch.uint8, pin_memory=True)
        staging.numpy()[...] = image
        t = staging.to(device, non_blocking=True)
    else:
        with warnings.catch_warnings():
            # A read-only array (a ROS message's buffer, a stored exemplar) is wrapped without a copy:
            # it is only read, by the float conversion below that makes the first and only copy.
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            t = torch.from_numpy(image)
    return t.permute(2, 0, 1).to(torch.float32) / 255.0


def resize_image(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize (align_corners=False, no antialiasing, like cv2.INTER_LINEAR) of (3, H, W)."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return F.interpolate(image[None], size=tuple(size), mode="bilinear", align_corners=False)[0]


def resize_short_side(image: np.ndarray, short_side: int = 448, max_long_side: int = 2048,
                      device: torch.device | str = "cpu") -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (3, H', W') float32 in [0, 1], resized as in `resized_size`."""
    t = image_to_tensor(image, device)
    return resize_image(t, resized_size(t.shape[-2:], short_side, max_long_side))


def pad_to_multiple(image: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad (C, H, W) right/bottom so H and W are multiples of `multiple`."""
    h, w = image.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return image
    return F.pad(image, (0, pw, 0, ph))


def window_starts(length: int, crop: int, stride: int) -> list[int]:
    """Window offsets along one axis: ceil((length - crop) / stride) + 1 windows, the last one
    shifted back to end at the border. A length <= crop gives the single window [0, length)."""
    if length <= crop:
        return [0]
    n = math.ceil((length - crop) / stride) + 1
    return [min(i * stride, length - crop) for i in range(n)]


def sliding_window_features(image: torch.Tensor, encode_crops: CropEncoder, patch_size: int,
                            crop: int, stride: int, max_batch: int = 16) -> torch.Tensor:
    """Average of L2-normalised per-window patch features over a padded image, re-normalised.

    `image`: (3, H, W) with H, W multiples of `patch_size` (see `pad_to_multiple`).
    Each window is min(crop, H) x min(crop, W) pixels; its features are normalised, pasted at
    their patch offset and summed; the sum is divided by the per-patch window count and
    normalised again. Returns (H / p, W / p, d) float32.
    """
    return sliding_window_features_batch([image], encode_crops, patch_size, crop, stride, max_batch)[0]


def sliding_window_features_batch(images: Sequence[torch.Tensor], encode_crops: CropEncoder, patch_size: int,
                                  crop: int, stride: int, max_batch: int = 16) -> list[torch.Tensor]:
    """`sliding_window_features` of several padded images, their windows sharing backbone calls.

    Windows of the same size (from any image) go through `encode_crops` together, up to
    `max_batch` per call, in image order then window order: several camera frames cost fewer,
    fuller calls, which is what a GPU needs. Each image's result is that of
    `sliding_window_features` alone (up to the float rounding of a different batch size).
    """
    plans = []  # per image: window size and window offsets
    for image in images:
        _, h, w = image.shape
        if h % patch_size or w % patch_size:
            raise ValueError(f"image size {(h, w)} is not a multiple of the patch size {patch_size}; "
                             "pad it with pad_to_multiple first")
        boxes = [(y, x) for y in window_starts(h, crop, stride) for x in window_starts(w, crop, stride)]
        plans.append(((min(crop, h), min(crop, w)), boxes))
    by_size: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
    for index, (size, boxes) in enumerate(plans):
        by_size.setdefault(size, []).extend((index, y, x) for y, x in boxes)
    totals: list[torch.Tensor | None] = [None] * len(images)
    counts = [torch.zeros(im.shape[1] // patch_size, im.shape[2] // patch_size, 1, dtype=torch.float32,
                          device=im.device) for im in images]
    for (ch, cw), windows in by_size.items():
        for i in range(0, len(windows), max_batch):
            chunk = windows[i:i + max_batch]
            crops = torch.stack([images[k][:, y:y + ch, x:x + cw] for k, y, x in chunk])
            feats = F.normalize(encode_crops(crops).to(torch.float32), dim=-1)
            expected = (len(chunk), ch // patch_size, cw // patch_size)
            if tuple(feats.shape[:3]) != expected:
                raise ValueError(f"crop encoder returned {tuple(feats.shape)}, expected {expected} + (d,)")
            for (k, y, x), f in zip(chunk, feats):
                if totals[k] is None:
                    totals[k] = torch.zeros(counts[k].shape[:2] + (feats.shape[-1],), dtype=torch.float32,
                                            device=images[k].device)
                py, px = y // patch_size, x // patch_size
                totals[k][py:py + f.shape[0], px:px + f.shape[1]] += f
                counts[k][py:py + f.shape[0], px:px + f.shape[1]] += 1
    out = []
    for total, count in zip(totals, counts):
        assert total is not None and bool((count > 0).all()), "windows must cover every patch"
        out.append(F.normalize(total / count, dim=-1))
    return out


def multi_pass_features(image: torch.Tensor, encode_crops: CropEncoder, patch_size: int,
                        crops: Sequence[int], stride: int, max_batch: int = 16) -> torch.Tensor:
    """Support protocol: one full sliding pass per crop size, averaged, then L2-normalised."""
    passes = [sliding_window_features(image, encode_crops, patch_size, c, stride, max_batch) for c in crops]
    return F.normalize(torch.stack(passes).mean(0), dim=-1)
