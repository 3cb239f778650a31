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
GPU_POINTS_PER_BATCH = 512  # the paper's, on a GPU
CPU_POINTS_PER_BATCH = 64  # peak memory near 3.6 GB for Hiera-L at 512x512 (ml-stack.md)
_PAINT_CHUNK = 64  # masks painted per step by masks_to_partition_tensor (bounds its memory)


@dataclass(frozen=True)
class ProposalConfig:
    """SAM 2 settings for region proposals and prompting. Defaults = the RNS paper (section 5).

    Memory: the mask decoder runs `points_per_batch` prompts at once and upsamples every mask to
    image size, so peak memory grows with it: the paper's 512 on a GPU (the default there: 32x32
    points are 2 decoder calls, not 16); on a CPU 512 peaked at 15.6 GB for Hiera-L at 512x512
    (ml-stack.md), 64 (the default there) stays near 3.6 GB. Same masks either way.
    """

    model: str = "sam2.1-hiera-large"  # preset or sam2 config NAME (not a path), see sam2_models
    checkpoint: str | None = None  # local .pt of the SAM 2.1 release matching `model`
    device: str = "cpu"  # "cpu", "cuda", "cuda:1", ...
    precision: str = "fp32"  # autocast dtype: "fp32" (none), "bf16" or "fp16"
    random_weights: bool = False  # build a real-size model untrained: compute-only benchmarks
    # automatic mask generation
    points_per_side: int = 32  # grid of points_per_side^2 single-point prompts
    points_per_batch: int = 0  # prompts per decoder call, memory vs speed only; 0: 512 on CUDA (paper), 64 on a CPU
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
        for name, least in (("points_per_side", 1), ("points_per_batch", 0), ("scribble_points", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
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

    def batch_size(self) -> int:
        """Prompts per decoder call: `points_per_batch`, or for 0 the size for the device."""
        if self.points_per_batch:
            return self.points_per_batch
        return GPU_POINTS_PER_BATCH if torch.device(self.device).type == "cuda" else CPU_POINTS_PER_BATCH

    def generator_settings(self) -> dict:
        """Keyword arguments of `sam2_models.build_mask_generator` for these settings."""
        return dict(points_per_side=self.points_per_side, points_per_batch=self.batch_size(),
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


def masks_to_partition_tensor(masks: torch.Tensor) -> torch.Tensor:
    """`masks_to_partition` on (R, H, W) bool tensors, where they are (a GPU): the same partition,
    built without a loop over masks. Each pixel takes the covering mask painted last (paint order:
    ascending area, ties in input order), found as the largest paint position among the covering
    masks (64 masks at a time, to bound memory); survivors are renumbered in input order, the
    uncovered pixels get the next id. Returns an (H, W) int64 tensor on the masks' device."""
    if masks.dim() != 3 or masks.dtype != torch.bool:
        raise ValueError(f"masks must be an (R, H, W) bool tensor, got {masks.dtype} {tuple(masks.shape)}")
    r, h, w = masks.shape
    device = masks.device
    if r == 0:
        return torch.zeros(h, w, dtype=torch.int64, device=device)
    order = torch.sort(masks.flatten(1).sum(1), stable=True).indices  # paint order
    position = torch.empty(r, dtype=torch.int32, device=device)
    position[order] = torch.arange(1, r + 1, dtype=torch.int32, device=device)  # 1-based
    painted = torch.zeros(h, w, dtype=torch.int32, device=device)  # 0: no mask
    for start in range(0, r, _PAINT_CHUNK):
        chunk = masks[start:start + _PAINT_CHUNK] * position[start:start + _PAINT_CHUNK, None, None]
        painted = torch.maximum(painted, chunk.amax(0))
    present = torch.zeros(r + 1, dtype=torch.bool, device=device)
    present[painted.flatten().long()] = True  # by paint position; [0]: some pixel is uncovered
    survivors = present[1:][position.long() - 1]  # by input index
    new_id = torch.cumsum(survivors.long(), 0) - 1  # survivors numbered 0..K-1 in input order
    lookup = torch.empty(r + 1, dtype=torch.int64, device=device)
    lookup[0] = survivors.sum()  # K: the uncovered pixels
    lookup[position.long()] = new_id
    return lookup[painted.long()]


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

    def mask_tensor(self, image: np.ndarray) -> torch.Tensor:
        """`masks` as an (R, H, W) bool tensor on SAM 2's device, never passing through the host."""
        image = check_image(image)
        with torch.inference_mode(), sam2_autocast(self.model, self.config.precision):
            return self.generator.mask_tensor(image)

    def partition_tensor(self, image: np.ndarray) -> torch.Tensor:
        """`partition` built on SAM 2's device from its mask tensors: (H, W) int64 there."""
        masks = self.mask_tensor(image)
        with torch.inference_mode():
            partition = masks_to_partition_tensor(masks)
        return partition.clone()  # an ordinary tensor, usable outside inference mode
