"""What every backbone wrapper shares: precision, preprocessing, the sliding windows and the
prompt-template text features with their cache (RNS sections 1.2 and 1.3).

A family (OpenCLIP, DINOv3.txt, SigLIP2) subclasses `WindowedBackbone` and supplies two model
calls: `crop_features` (normalised crops -> patch features) and `sentence_features` (sentences ->
one text vector each, in the space of the patch features).
"""
from __future__ import annotations

import contextlib
from collections import OrderedDict
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from rns_ros.core.backbones.base import DenseFeatures
from rns_ros.core.backbones.sliding import (ResolutionConfig, image_to_tensor, multi_pass_features,
                                            pad_to_multiple, resize_image, sliding_window_features_batch)
from rns_ros.core.backbones.templates import IMAGENET_TEMPLATES

PRECISIONS = ("fp32", "bf16", "fp16")
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TEXT_CACHE_SIZE = 1024  # prompts whose text features are kept (least recently used leave first)


class WindowedBackbone:
    """Implements `DenseBackbone` on top of two model calls a subclass provides.

    Args:
        identity: names weights + preprocessing; the resolution description is appended here.
        dim, patch_size: feature dimension and patch size of the model.
        device: where the model lives; every feature is returned there.
        resolution: resize and sliding-window protocol.
        precision: "fp32", "bf16" (CPU or CUDA autocast) or "fp16" (CUDA autocast only). One
            autocast context wraps every model call; features are returned as float32.
        mean, std: per-channel input normalisation.
        templates: prompt templates averaged per class (the 80 CLIP ImageNet ones by default).
        text_batch: sentences per text-tower call.
    """

    def __init__(self, *, identity: str, dim: int, patch_size: int, device: torch.device,
                 resolution: ResolutionConfig, precision: str, mean: Sequence[float], std: Sequence[float],
                 templates: Sequence[str] = IMAGENET_TEMPLATES, text_batch: int = 256) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if precision == "fp16" and device.type != "cuda":
            raise ValueError(f"precision 'fp16' needs a CUDA device (backbone is on {device}); "
                             "use 'bf16' or 'fp32' on the CPU")
        resolution.validate(patch_size)
        if not templates or any(t.count("{}") != 1 for t in templates):
            raise ValueError("every prompt template must contain exactly one '{}'")
        self.device = device
        self.precision = precision
        self.patch_size = int(patch_size)
        self.dim = int(dim)
        self.resolution = resolution
        self.model_identity = identity  # the weights alone; `identity` adds the preprocessing
        self.identity = f"{identity}/{resolution.describe()}"
        self.mean, self.std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
        # A runtime's dense encoder (rns_ros.core.runtimes) that encodes the crops instead of the
        # torch image tower; None = torch. Nothing else changes: same identity, windows and text.
        self.runtime = None
        self.templates = tuple(templates)
        self.text_batch = int(text_batch)
        self._mean = torch.tensor(mean, dtype=torch.float32, device=device).view(3, 1, 1)
        self._std = torch.tensor(std, dtype=torch.float32, device=device).view(3, 1, 1)
        self._text_cache: OrderedDict[str, torch.Tensor] = OrderedDict()  # prompt -> (d,), least recent first

    def __repr__(self) -> str:
        compute = self.runtime.describe() if self.runtime is not None else f"precision={self.precision}"
        return f"{type(self).__name__}({self.identity!r}, device={self.device}, {compute})"

    # -- what a family provides ----------------------------------------------------------------
    def crop_features(self, crops: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised crops -> (B, H/p, W/p, d) patch features (any norm)."""
        raise NotImplementedError

    @property
    def image_tower(self) -> torch.nn.Module:
        """The module holding every weight `crop_features` uses (what an ONNX export carries)."""
        raise NotImplementedError

    def sentence_features(self, sentences: list[str]) -> torch.Tensor:
        """(n, d) text features of n full sentences (any norm), in the patch features' space."""
        raise NotImplementedError

    # -- shared --------------------------------------------------------------------------------
    def autocast(self):
        """The one precision context every model call runs in."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def encode_crops(self, crops: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised crops -> (B, H/p, W/p, d) float32 unit-norm patch features,
        from the runtime's encoder when one is attached, else from the torch image tower."""
        if self.runtime is not None:
            return F.normalize(self.runtime(crops).float(), dim=-1)
        with torch.no_grad(), self.autocast():
            feats = self.crop_features(crops)
        return F.normalize(feats.float(), dim=-1)

    def preprocess(self, image: np.ndarray, support: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(H, W, 3) uint8 RGB -> ((3, Hp, Wp) normalised and zero-padded, (3, H', W') the resized
        image in [0, 1] before normalisation).

        Zero padding happens after normalisation (as mmseg's data preprocessor does), so the pad
        is the dataset-mean colour.
        """
        t = image_to_tensor(image, self.device)
        resized = resize_image(t, self.resolution.resized_size(t.shape[-2:], support=support))
        return pad_to_multiple((resized - self._mean) / self._std, self.patch_size), resized

    def encode_image(self, image: np.ndarray, *, support: bool = False) -> DenseFeatures:
        """Unit-norm patch features of an (H, W, 3) uint8 RGB image (see `DenseBackbone`)."""
        if not support:
            return self.encode_images([image])[0]
        r = self.resolution
        # no_grad rather than inference_mode: the adapter trains on these features, and
        # inference tensors cannot be saved for backward.
        with torch.no_grad():
            padded, resized = self.preprocess(image, support=True)
            feats = multi_pass_features(padded, self.encode_crops, self.patch_size,
                                        r.support_crops, r.support_stride, r.max_batch)
        return self._dense(image, resized, feats)

    def encode_images(self, images: Sequence[np.ndarray]) -> list[DenseFeatures]:
        """`encode_image` (test protocol) of several images, their windows sharing model calls
        (`sliding_window_features_batch`): several cameras' frames in one batch."""
        r = self.resolution
        with torch.no_grad():
            prepared = [self.preprocess(image) for image in images]
            feats = sliding_window_features_batch([padded for padded, _ in prepared], self.encode_crops,
                                                  self.patch_size, r.test_crop, r.test_stride, r.max_batch)
        return [self._dense(image, resized, f) for image, (_, resized), f in zip(images, prepared, feats)]

    def _dense(self, image: np.ndarray, resized: torch.Tensor, feats: torch.Tensor) -> DenseFeatures:
        return DenseFeatures(features=feats, image_size=(int(image.shape[0]), int(image.shape[1])),
                             resized_size=(int(resized.shape[1]), int(resized.shape[2])),
                             patch_size=self.patch_size, resized_image=resized)

    def encode_text(self, prompts: Sequence[str]) -> torch.Tensor:
        """(C, d) float32 unit-norm text features: per prompt, every template filled in, each
        sentence encoded and normalised, averaged, normalised. Cached by prompt string, the
        TEXT_CACHE_SIZE most recently used (a robot taught new names for days keeps no more)."""
        if isinstance(prompts, str):
            raise ValueError(f"encode_text takes a list of prompts, got the string {prompts!r}; "
                             f"wrap it: [{prompts!r}]")
        prompts = list(prompts)
        for p in prompts:
            if not isinstance(p, str) or not p.strip():
                raise ValueError(f"every prompt must be a non-empty string, got {p!r}")
        if not prompts:
            return torch.zeros(0, self.dim, dtype=torch.float32, device=self.device)
        cache = self._text_cache
        missing = list(dict.fromkeys(p for p in prompts if p not in cache))
        encoded = dict(zip(missing, self._encode_new_prompts(missing))) if missing else {}
        features = torch.stack([encoded[p] if p in encoded else cache[p] for p in prompts])
        for p in dict.fromkeys(prompts):  # most recently used last; the oldest leave past the bound
            cache[p] = encoded[p].clone() if p in encoded else cache.pop(p)
        while len(cache) > TEXT_CACHE_SIZE:
            cache.popitem(last=False)
        return features

    def _encode_new_prompts(self, prompts: list[str]) -> torch.Tensor:
        sentences = [t.format(p) for p in prompts for t in self.templates]
        chunks = []
        with torch.no_grad(), self.autocast():
            for i in range(0, len(sentences), self.text_batch):
                chunks.append(self.sentence_features(sentences[i:i + self.text_batch]).float())
        per_sentence = F.normalize(torch.cat(chunks), dim=-1)
        mean = per_sentence.reshape(len(prompts), len(self.templates), -1).mean(1)
        return F.normalize(mean, dim=-1)
