"""Image in, label map + per-class probabilities out: the RNS pipeline of one frame (section 6).

    seg = Segmenter(backbone, memory, adapter=TestTimeAdapter(AdapterConfig()), mode="patch")
    car = seg.add_class("car")                        # text feature from the backbone
    seg.add_exemplar(image, mask, class_id=car)       # a visual exemplar (mask: non-zero = car)
    out = seg.segment(frame)                          # Segmentation

Patch mode: every 16x16 patch feature is a query; the (C, h, w) probability map is bilinearly
upsampled to the padded size, cropped to the resized size and resized to the input size; the label
of a pixel is the class of its largest probability. Region mode: SAM 2 regions of the resized
image are the queries (area-weighted pooled features, eq. 13); every pixel takes its region's
probabilities. With no class at all, the labels are all 0 and the probabilities empty.

On the device (issue 27): labels and confidence (the winning probability) are computed where the
features are, and only these two (H, W) maps are copied to the host; the (C, H, W) probabilities
are made and copied on request (`Segmentation.probabilities`, from what the device kept: the
patch probabilities or the region table, not the full map). Stage timings come from CUDA events
on a GPU (`stage_clock.py`): no synchronisation between stages.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from rns_ros.core.backbones.base import DenseFeatures
from rns_ros.core.backbones.sliding import check_image
from rns_ros.core.memory.names import clean_name
from rns_ros.core.regions.pooling import IGNORE, pool_segments
from rns_ros.core.regions.proposals import proposal_input
from rns_ros.core.stage_clock import StageClock

MODES = ("patch", "region")
STAGES = ("features", "proposals", "adapter", "upsample")


@dataclass(frozen=True)
class Segmentation:
    """The result of `Segmenter.segment` for one (H, W) image."""

    labels: np.ndarray  # (H, W) int32 class ids; 0 only when there is no class
    confidence: np.ndarray  # (H, W) float32 probability of each pixel's label (0 when there is no class)
    class_ids: list[int]  # the memory's class ids (ascending) at segmentation time
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage (see STAGES)
    support_version: int | None = None  # memory.version the result was computed with
    # () -> (C, H, W) tensor on the device, from the small tensors it keeps (see `probabilities`)
    probability_source: Callable[[], torch.Tensor] | None = field(default=None, repr=False, compare=False)

    @functools.cached_property
    def probabilities(self) -> np.ndarray:
        """(C, H, W) float32, channel c = class class_ids[c], summing to 1 over C: made on first
        access from the patch probabilities or region table kept on the device, copied to the host
        once (74 MB at 1280x720 with 20 classes: ask only when needed), then cached."""
        if self.probability_source is None:
            return np.zeros((len(self.class_ids), *self.labels.shape), np.float32)
        return self.probability_source().to(torch.float32).cpu().numpy()


class Segmenter:
    """Runs backbone -> [regions] -> test-time adapter -> upsampling against a support memory.

    Args:
        backbone: a `DenseBackbone` (features of images and class prompts).
        memory: the `SupportMemory` (classes, exemplars, retrieval index), shared and long-lived.
        adapter: anything with `predict(queries (N, d), memory) -> (N, C)` probabilities whose
            columns follow `memory.class_ids` (a `TestTimeAdapter`).
        proposer: a `RegionProposer` (`partition(image) -> (H', W') int64`); needed for "region".
        mode: "patch" (queries = patch features) or "region" (queries = region embeddings).
    """

    def __init__(self, backbone, memory, adapter, proposer=None, mode: str = "patch") -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if mode == "region" and proposer is None:
            raise ValueError("mode 'region' needs a proposer (e.g. RegionProposer(ProposalConfig(...)))")
        mem_dim, bb_dim = getattr(memory, "dim", None), getattr(backbone, "dim", None)
        if mem_dim is not None and bb_dim is not None and mem_dim != bb_dim:
            raise ValueError(f"memory holds {mem_dim}-d features but the backbone makes {bb_dim}-d ones; "
                             "build the memory with dim=backbone.dim")
        mem_id = getattr(memory, "backbone_identity", None)
        if mem_id is not None and mem_id != backbone.identity:
            raise ValueError(f"memory features come from backbone {mem_id!r}, not {backbone.identity!r}; "
                             "load the memory with load_memory(path, backbone=backbone) to re-encode it")
        self.backbone = backbone
        self.memory = memory
        self.adapter = adapter
        self.proposer = proposer
        self.mode = mode

    # ------------------------------------------------------------------ teaching
    def add_class(self, name: str | None, prompt: str | None = None, use_text: bool = True) -> int:
        """Register a class and return its id. The text feature is the backbone's encoding of
        `prompt` (default: `name`); `use_text=False` adds the class without text."""
        if name is not None:
            name = clean_name(name)  # before the text is encoded from it
        text = None
        if use_text:
            source = prompt if prompt is not None else name
            if not isinstance(source, str) or not source.strip():
                raise ValueError(f"a class with text needs a non-empty name or prompt, got name={name!r}, "
                                 f"prompt={prompt!r}; pass use_text=False for a class without text")
            text = self.backbone.encode_text([source])[0]
        return self.memory.add_class(name, text_feature=text, prompt=prompt)

    def add_exemplar(self, image: np.ndarray, mask_or_labels: np.ndarray, class_id: int | None = None) -> int:
        """Teach the memory with one annotated image; returns the exemplar id.

        `image`: (H, W, 3) uint8 RGB. With `class_id`: `mask_or_labels` is an (H, W) mask,
        non-zero = that class. Without: an (H, W) integer map of class ids, 0 = not annotated.
        """
        from rns_ros.core.memory.exemplars import Exemplar, encode_exemplar

        if class_id is not None:
            exemplar = Exemplar.from_mask(image, np.asarray(mask_or_labels), class_id)
        else:
            exemplar = Exemplar(image=image, labels=np.asarray(mask_or_labels))
        unknown = sorted(set(exemplar.class_ids()) - set(self.memory.class_ids))
        if unknown:
            raise ValueError(f"exemplar annotates unknown class ids {unknown}; known: {self.memory.class_ids}; "
                             "add the classes first")
        feats, class_ids = encode_exemplar(self.backbone, exemplar)
        if not class_ids:
            raise ValueError("every annotated region vanished at the backbone's resolution; "
                             "annotate a larger area")
        return self.memory.add_image_features(feats, class_ids, exemplar=exemplar)

    # ------------------------------------------------------------------ inference
    def segment(self, image: np.ndarray) -> Segmentation:
        """Label map and probabilities of an (H, W, 3) uint8 RGB image (see module docstring)."""
        return self.segment_batch([image])[0]

    def segment_batch(self, images: Sequence[np.ndarray]) -> list[Segmentation]:
        """`segment` of several images (e.g. one frame per camera) against the same memory state.

        The backbone encodes them together when it offers `encode_images` (shared model calls:
        less time per frame, measured on a CPU too); the rest runs per image. Each result's "features" timing is its
        share of the batch's (the batch's time divided by the number of images).
        """
        for image in images:
            check_image(image)  # before any work
        version = getattr(self.memory, "version", None)
        class_ids = [int(c) for c in self.memory.class_ids]
        if not class_ids:
            return [Segmentation(np.zeros(image.shape[:2], np.int32), np.zeros(image.shape[:2], np.float32), [],
                                 dict.fromkeys(STAGES, 0.0), version) for image in images]
        if not images:
            return []
        shared = StageClock(self.backbone.device)
        encode_images = getattr(self.backbone, "encode_images", None)
        if encode_images is not None:
            denses = encode_images(images)
        else:
            denses = [self.backbone.encode_image(image) for image in images]
        shared.lap("features")
        results = [self._classify(image, dense, class_ids, version) for image, dense in zip(images, denses)]
        share = shared.seconds()["features"] / len(images)  # the frames' host copies synchronised
        for result in results:
            result.timings["features"] = share
        return results

    def _classify(self, image: np.ndarray, dense: DenseFeatures, class_ids: list[int], version) -> Segmentation:
        """Queries of one encoded image -> adapter -> labels and confidence (copied to the host)."""
        h, w = int(image.shape[0]), int(image.shape[1])
        clock = StageClock(self.backbone.device)
        partition = None
        if self.mode == "patch":
            queries = dense.flat()
        else:
            partition = self._partition(image, dense)
            region_ids, queries = self._region_queries(partition, dense)
        clock.lap("proposals")
        probs = self.adapter.predict(queries, self.memory)
        probs = torch.as_tensor(probs).to(device=dense.features.device, dtype=torch.float32)
        if tuple(probs.shape) != (queries.shape[0], len(class_ids)):
            raise RuntimeError(f"adapter returned {tuple(probs.shape)}, expected "
                               f"{(queries.shape[0], len(class_ids))} (queries x classes)")
        clock.lap("adapter")
        ids = torch.as_tensor(class_ids, dtype=torch.int32, device=probs.device)
        if partition is None:
            geometry = (dense.grid_size, dense.padded_size, dense.resized_size, dense.image_size)
            source = functools.partial(_upsample, probs, *geometry)
            confidence, index = upsampled_max(probs, *geometry)
        else:
            table, pixels = region_table(probs, region_ids, partition, (h, w))
            source = functools.partial(_table_lookup, table, pixels)
            best, index = table.max(1)  # each region's winner: what every pixel of it takes
            confidence, index = best[pixels], index[pixels]
        labels, confidence = ids[index].cpu().numpy(), confidence.cpu().numpy()  # the only host copies
        clock.lap("upsample")
        return Segmentation(labels, confidence, class_ids, clock.seconds(dict.fromkeys(STAGES, 0.0)), version,
                            source)

    def _partition(self, image: np.ndarray, dense: DenseFeatures) -> torch.Tensor:
        """SAM 2 partition of the resized, unpadded image, (H', W') int64 on the features' device;
        built there from SAM 2's mask tensors when the proposer offers `partition_tensor`."""
        expected, device = tuple(dense.resized_size), dense.features.device
        as_tensor = getattr(self.proposer, "partition_tensor", None)
        if as_tensor is not None:
            partition = as_tensor(proposal_input(image, dense)).to(device)
            if tuple(partition.shape) != expected or partition.dtype != torch.int64:
                raise RuntimeError(f"proposer returned a {partition.dtype} partition of shape "
                                   f"{tuple(partition.shape)}, expected int64 of shape {expected}")
            return partition
        partition = np.asarray(self.proposer.partition(proposal_input(image, dense)))
        if partition.shape != expected or not np.issubdtype(partition.dtype, np.integer):
            raise RuntimeError(f"proposer returned a {partition.dtype} partition of shape {partition.shape}, "
                               f"expected integers of shape {expected}")
        if partition.size and int(partition.min()) < 0:
            raise RuntimeError("proposer returned negative region ids")
        return torch.from_numpy(partition.astype(np.int64)).to(device)

    @staticmethod
    def _region_queries(partition: torch.Tensor, dense: DenseFeatures) -> tuple[torch.Tensor, torch.Tensor]:
        """Region embeddings (eq. 13): the partition padded with IGNORE to the padded grid, pooled."""
        ph, pw = dense.padded_size
        grid = torch.full((ph, pw), IGNORE, dtype=torch.int64, device=partition.device)
        grid[: partition.shape[0], : partition.shape[1]] = partition
        return pool_segments(dense, grid, num_segments=int(partition.max()) + 1)


def upsample_patch_probabilities(probs: torch.Tensor, dense: DenseFeatures) -> torch.Tensor:
    """(h*w, C) patch probabilities -> (C, H, W) at the original image size.

    Bilinear (align_corners=False) to the padded size, crop to the resized size, bilinear to the
    original size: the same geometry the image went through, in reverse.
    """
    return _upsample(probs, dense.grid_size, dense.padded_size, dense.resized_size, dense.image_size)


def _upsample(probs: torch.Tensor, grid_size, padded_size, resized_size, image_size) -> torch.Tensor:
    gh, gw = grid_size
    c = probs.shape[1]
    # contiguous (C, h, w) planes: ~25 % faster on a CPU than the channels-last view the transpose
    # gives (whose kernel vectorises across the channels); the values agree to float rounding (2e-7)
    grid = probs.T.contiguous().reshape(1, c, gh, gw)
    full = F.interpolate(grid, size=padded_size, mode="bilinear", align_corners=False)
    full = full[:, :, : resized_size[0], : resized_size[1]]
    if tuple(resized_size) != tuple(image_size):
        full = F.interpolate(full, size=image_size, mode="bilinear", align_corners=False)
    return full[0]


def upsampled_max(probs: torch.Tensor, grid_size, padded_size, resized_size,
                  image_size) -> tuple[torch.Tensor, torch.Tensor]:
    """`_upsample(probs, ...).max(0)` (the (H, W) winning probability and class index), with only the
    classes that can win at some pixel upsampled.

    Why that is exact: each upsampled value is a convex combination (bilinear weights, twice) of the
    class's probabilities on at most 3 x 3 neighbouring patches, so it lies between their minimum
    and maximum (up to float rounding: the margin in `winner_candidates` covers it). At a pixel whose
    patches lie in a 3 x 3 window W, the winner is worth at least L_W = max over classes of their
    minimum over W; a class whose maximum over W is below L_W cannot win there. The classes left
    keep their order, so ties resolve alike. What can differ is float rounding: torch's kernel
    rounds a channel's values slightly differently depending on how many channels it is given
    (<= 2e-7 here), so a label can change only where two classes are that close.
    On a CPU, upsampling every class and taking the maximum is most of the frame's cost outside the
    encoder as classes grow (docs/backbones.md, "Cost against the number of classes")."""
    keep = winner_candidates(probs, grid_size)
    if keep is None:
        return _upsample(probs, grid_size, padded_size, resized_size, image_size).max(0)  # = argmax(0), faster
    confidence, index = _upsample(probs[:, keep], grid_size, padded_size, resized_size, image_size).max(0)
    return confidence, keep[index]


def winner_candidates(probs: torch.Tensor, grid_size) -> torch.Tensor | None:
    """Indices (ascending) of the classes of the (h*w, C) patch probabilities that can win at some
    pixel of their upsampled map (see `upsampled_max`), or None when that is every class (or the
    values are not finite, where no bound holds)."""
    c = probs.shape[1]
    if c < 2 or not bool(torch.isfinite(probs).all()):
        return None
    grid = probs.T.reshape(1, c, *grid_size)
    highest = F.max_pool2d(grid, 3, stride=1, padding=1)[0]  # (C, h, w): max over each 3 x 3 window
    lowest = -F.max_pool2d(-grid, 3, stride=1, padding=1)[0]
    margin = 1e-5 * max(1.0, float(probs.abs().max()))  # float rounding of the interpolation: ~1e-7
    can_win = (highest >= lowest.max(0).values - margin).flatten(1).any(1)
    if bool(can_win.all()):
        return None
    return can_win.nonzero()[:, 0]


def region_table(probs: torch.Tensor, region_ids: torch.Tensor, partition: torch.Tensor,
                 image_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(R', C) probabilities of every region id of the (H', W') partition (rows of regions without
    a query stay 0) and the (H, W) region id of every pixel of the image (the partition
    nearest-resized to `image_size`): pixel p's probabilities are table[pixels[p]]."""
    table = probs.new_zeros(int(partition.max()) + 1, probs.shape[1])
    table[region_ids] = probs
    pixels = partition
    if tuple(pixels.shape) != tuple(image_size):
        pixels = F.interpolate(pixels[None, None].double(), size=image_size, mode="nearest-exact")[0, 0].long()
    return table, pixels


def _table_lookup(table: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    return table[pixels].permute(2, 0, 1)

