"""Region proposals with SAM 2 (rns-method.md section 5) and the SAM 2 settings they share with
prompting (`prompts.PromptMasker`).

- `ProposalConfig`: SAM 2 model, checkpoint, device, precision and the automatic-mask settings.
- `RegionProposer`: SAM 2 automatic masks with the paper's settings, made into a partition of the
  image (`masks_to_partition`); the segmenter pools patch features over it (eq. 13, `pooling.py`)
  and runs RNS on the region embeddings.

Coordinates at the public edge are continuous pixel coordinates, x to the right, y down: pixel
(column i, row j) covers [i, i+1) x [j, j+1), so its centre is (i + 0.5, j + 0.5). Images are
(H, W, 3) uint8 RGB; masks (H, W) bool. SAM 2 itself is built in `sam2_models`, lazily.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch

from rns_ros.core.regions import sam2_models


def proposal_input(image: np.ndarray, dense) -> np.ndarray:
    """The (H', W', 3) uint8 image SAM 2 partitions for a frame whose features are `dense`: the
    backbone's own resized image (torch bilinear, no antialiasing) when it kept it, else the same
    resize recomputed, so that every caller (the Segmenter, rns-eval) feeds SAM 2 identical arrays."""
    from rns_ros.core.backbones.sliding import image_to_tensor, resize_image

    resized = dense.resized_image
    if resized is None:
        resized = resize_image(image_to_tensor(image, dense.features.device), dense.resized_size)
    return (resized * 255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class ProposalConfig:
    """SAM 2 settings for region proposals and prompting. Defaults = the RNS paper (section 5).

    Memory: the mask decoder runs `points_per_batch` prompts at once and upsamples every mask to
    image size, so peak memory grows with it: the paper's 512 on a GPU; on a CPU 512 peaked at
    15.6 GB for Hiera-L at 512x512 (ml-stack.md), 64 stays near 3.6 GB. Same masks either way.
    """

    model: str = "sam2.1-hiera-large"  # preset or sam2 config NAME (not a path), see sam2_models
    checkpoint: str | None = None  # local .pt of the SAM 2.1 release matching `model`
    device: str = "cpu"  # "cpu", "cuda", "cuda:1", ...
    precision: str = "fp32"  # autocast dtype: "fp32" (none), "bf16" or "fp16"
    random_weights: bool = False  # build a real-size model untrained: compute-only benchmarks
    # automatic mask generation
    points_per_side: int = 32  # grid of points_per_side^2 single-point prompts
    points_per_batch: int = 64  # prompts per decoder call: memory vs speed only (paper: 512, GPU)
    pred_iou_thresh: float = 0.4  # keep masks with predicted IoU > this
    stability_score_thresh: float = 0.4  # keep masks with stability score >= this
    stability_score_offset: float = 1.0  # logit shift used to compute the stability score
    box_nms_thresh: float = 0.7  # box IoU above which the lower-IoU duplicate is dropped
    multimask_output: bool = False  # False: one mask per grid point (the paper)
    min_mask_region_area: int = 0  # >0 fills holes/removes specks up to this area (paper: off)
    # prompting (PromptMasker)
    scribble_points: int = 20  # positive points sampled along a scribble (VRP-SAM: 20 points)
    scribble_refine: bool = False  # second pass with the first mask's logits as mask prompt

    def __post_init__(self) -> None:
        sam2_models.resolve_model(self.model)  # cheap: validates the name, imports nothing
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision {self.precision!r} unknown; use one of {list(PRECISIONS)}")
        for name in ("points_per_side", "points_per_batch", "scribble_points"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        for name in ("pred_iou_thresh", "stability_score_thresh", "box_nms_thresh"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")
        if not isinstance(self.min_mask_region_area, int) or self.min_mask_region_area < 0:
            raise ValueError(f"min_mask_region_area must be an integer >= 0, "
                             f"got {self.min_mask_region_area!r}")

    def build_model(self) -> torch.nn.Module:
        """The SAM 2 model these settings name (checks the checkpoint before building)."""
        return sam2_models.build_sam2_model(self.model, self.checkpoint, self.device,
                                            random_weights=self.random_weights)

    def generator_settings(self) -> dict:
        """Keyword arguments of `sam2_models.build_mask_generator` for these settings."""
        return dict(points_per_side=self.points_per_side, points_per_batch=self.points_per_batch,
                    pred_iou_thresh=self.pred_iou_thresh,
                    stability_score_thresh=self.stability_score_thresh,
                    stability_score_offset=self.stability_score_offset,
                    box_nms_thresh=self.box_nms_thresh, multimask_output=self.multimask_output,
                    min_mask_region_area=self.min_mask_region_area)


def sam2_autocast(model: torch.nn.Module, precision: str):
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=next(model.parameters()).device.type, dtype=dtype)


def check_image(image: np.ndarray) -> np.ndarray:
    """Validate an (H, W, 3) uint8 RGB image; returns it C-contiguous."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array (H, W, 3) uint8, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"image must have shape (H, W, 3), got {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 RGB, got dtype {image.dtype}")
    return np.ascontiguousarray(image)


def masks_to_partition(masks: np.ndarray) -> np.ndarray:
    """Turn possibly overlapping masks into a partition of the image (RNS section 5).

    `masks`: (R, H, W) bool. Masks are painted in order of increasing area, so where masks
    overlap the larger one wins; equal areas keep input order (the later mask wins).
    Returns an (H, W) int64 map with contiguous ids:
    - 0 .. K-1: the K masks that keep at least one pixel, numbered in input order (a mask that
      is empty or entirely painted over gets no id);
    - K: the pixels covered by no mask, one "unassigned" region, present only if such pixels
      exist. With R = 0 the whole image is region 0.
    """
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"masks must have shape (R, H, W), got {masks.shape}")
    if masks.dtype != np.bool_:
        raise ValueError(f"masks must be bool, got dtype {masks.dtype}")
    r, h, w = masks.shape
    owner = np.full((h, w), -1, dtype=np.int64)
    areas = masks.reshape(r, h * w).sum(axis=1)
    for index in np.argsort(areas, kind="stable"):
        owner[masks[index]] = index
    survivors = np.unique(owner[owner >= 0])
    lookup = np.full(r + 1, len(survivors), dtype=np.int64)  # last slot: unassigned (-1)
    lookup[survivors] = np.arange(len(survivors), dtype=np.int64)
    return lookup[owner]  # owner == -1 indexes the last slot


class LazySam2:
    """Holds a SAM 2 model given at construction, or builds it from `self.config` on first use."""

    config: ProposalConfig
    _model: torch.nn.Module | None

    @property
    def model(self) -> torch.nn.Module:
        """The SAM 2 model, built from the config on first access."""
        if self._model is None:
            self._model = self.config.build_model()
        return self._model


class RegionProposer(LazySam2):
    """SAM 2 automatic mask generation -> masks or a partition of the image.

    The model is built on first use (or shared: pass `model=`, e.g. the one a `PromptMasker`
    holds). Call `partition` on the resized, unpadded test image.
    """

    def __init__(self, config: ProposalConfig | None = None, *,
                 model: torch.nn.Module | None = None) -> None:
        config = ProposalConfig() if config is None else config
        if not isinstance(config, ProposalConfig):
            raise ValueError(f"config must be a ProposalConfig, got {type(config).__name__}")
        self.config = config
        self._model = model
        self._generator = None

    @property
    def generator(self):
        """The `SAM2AutomaticMaskGenerator`, built on first access."""
        if self._generator is None:
            self._generator = sam2_models.build_mask_generator(
                self.model, **self.config.generator_settings())
        return self._generator

    def masks(self, image: np.ndarray) -> np.ndarray:
        """(R, H, W) bool masks of `image` ((H, W, 3) uint8 RGB), in the generator's order."""
        image = check_image(image)
        with torch.inference_mode(), sam2_autocast(self.model, self.config.precision):
            records = self.generator.generate(image)
        if not records:
            return np.zeros((0, *image.shape[:2]), dtype=bool)
        return np.stack([np.asarray(rec["segmentation"], dtype=bool) for rec in records])

    def partition(self, image: np.ndarray) -> np.ndarray:
        """(H, W) int64 region ids of `image`, see `masks_to_partition` for the numbering."""
        return masks_to_partition(self.masks(image))
