"""Stage 1 of the method, dense features (rns-method.md section 1): the backbone protocol, the
presets, and `build_backbone`.

    backbone = build_backbone("openclip-vit-b16", device="cuda", checkpoint=None)
    dense = backbone.encode_image(image)        # DenseFeatures, (h, w, d) unit-norm
    text = backbone.encode_text(["car"])        # (1, d), 80 templates averaged

Presets (`BACKBONE_PRESETS`) name an architecture, its default weights and its preprocessing.
Besides the presets, `"openclip:<ARCH>"` builds any open_clip ViT architecture (pass `pretrained=`
a tag or `checkpoint=` a file). DINOv3.txt and SigLIP2 would be further families here.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from rns_ros.core.advice import MissingWeightsError
from rns_ros.core.backbones.base import DenseBackbone, DenseFeatures
from rns_ros.core.backbones.sliding import ResolutionConfig

OPENCLIP_PREFIX = "openclip:"


@dataclass(frozen=True)
class BackbonePreset:
    """One named backbone configuration."""

    family: str  # which wrapper builds it; only "openclip" so far
    model: str  # open_clip architecture name ("" = the built-in test-tiny config)
    pretrained: str | None  # default open_clip weights tag; None = seeded random weights
    hf_repo: str | None  # hub repo of those weights, so the cache is checked without importing open_clip
    description: str
    resolution: ResolutionConfig = field(default_factory=ResolutionConfig)
    test_only: bool = False  # random weights: for tests and smoke runs, never for real predictions

    @property
    def needs_download(self) -> bool:
        return self.pretrained is not None


BACKBONE_PRESETS: dict[str, BackbonePreset] = {
    "openclip-vit-b16": BackbonePreset(
        family="openclip", model="ViT-B-16", pretrained="laion2b_s34b_b88k",
        hf_repo="laion/CLIP-ViT-B-16-laion2B-s34B-b88K",
        description="OpenCLIP ViT-B/16 (LAION-2B), RNS MaskCLIP dense features, d=512 (the paper's default)"),
    "test-tiny": BackbonePreset(
        family="openclip", model="", pretrained=None, hf_repo=None, test_only=True,
        description="TEST-ONLY: ViT-B/16's architecture at a tiny size (2 layers, width 64, d=32) with "
                    "seeded random weights and small windows; fast, predictions are meaningless",
        resolution=ResolutionConfig(short_side=64, max_long_side=256, test_crop=64, test_stride=32,
                                    support_crops=(64, 32), support_stride=16)),
}


def build_backbone(name: str = "openclip-vit-b16", *, device: str | torch.device = "cpu",
                   checkpoint: str | None = None, pretrained: str | None = None,
                   precision: str = "fp32", seed: int = 0,
                   resolution: ResolutionConfig | None = None,
                   cache_dir: str | None = None, random_weights: bool = False) -> DenseBackbone:
    """Build a dense backbone from a preset name (see `BACKBONE_PRESETS`) or `"openclip:<ARCH>"`.

    Args:
        name: preset name, or "openclip:<open_clip architecture>" (e.g. "openclip:ViT-L-14").
        device: torch device for the model and every feature it returns.
        checkpoint: local weights file; overrides the preset's pretrained tag. Works offline.
        pretrained: open_clip pretrained tag overriding the preset's default (fetched from the
            Hugging Face cache, or downloaded when the hub is reachable).
        precision: "fp32" (default), "bf16" (CPU or CUDA) or "fp16" (CUDA only): autocast dtype.
        seed: seed of random weights (test-only presets, or random_weights=True).
        resolution: preprocessing protocol overriding the preset's.
        cache_dir: Hugging Face cache directory (default: the hub's own default).
        random_weights: build a weights-needing preset untrained (seeded by `seed`), for
            compute-only benchmarks; its predictions are meaningless.

    Raises:
        ValueError: unknown name/tag/precision; MissingWeightsError (a ValueError) when an
            architecture without default weights gets neither checkpoint nor pretrained.
            FileNotFoundError: missing checkpoint file.
        WeightsUnavailableError (a FileNotFoundError): weights neither cached nor downloadable;
            raised within seconds, with instructions, before anything heavy is loaded.
    """
    from rns_ros.core.backbones import openclip as oc
    from rns_ros.core.backbones.weights import (OPENCLIP_HF_FILENAMES, check_checkpoint_file,
                                                checkpoint_fingerprint, resolve_hub_weights)

    preset = _preset_for(name)
    if precision not in oc.PRECISIONS:
        raise ValueError(f"precision must be one of {oc.PRECISIONS}, got {precision!r}")
    device = torch.device(device)
    resolution = resolution or preset.resolution
    ckpt = check_checkpoint_file(checkpoint) if checkpoint is not None else None
    weights_id = f"file:{checkpoint_fingerprint(ckpt)}" if ckpt is not None else None

    if not preset.model:  # test-tiny: random weights, optionally replaced by a checkpoint
        if pretrained is not None:
            raise ValueError(f"preset {name!r} has no pretrained weights; pass checkpoint= instead")
        model, tokenizer = oc.build_tiny_openclip(seed)
        if ckpt is not None:
            import open_clip

            open_clip.load_checkpoint(model, str(ckpt))
        identity = f"openclip/test-tiny/{weights_id or f'random-seed{seed}'}"
        mean, std = oc.CLIP_MEAN, oc.CLIP_STD
    else:
        tag = pretrained or preset.pretrained
        quick_gelu, mean, std = False, oc.CLIP_MEAN, oc.CLIP_STD
        if ckpt is not None:
            weights_file = str(ckpt)
        elif random_weights:
            weights_file, weights_id = None, f"random-seed{seed}"
        elif tag is None:
            raise MissingWeightsError(f"backbone {name!r} needs weights (it has no default ones): pass "
                                      "{checkpoint=<file>} (in Python, pretrained=<open_clip tag> works too)")
        elif tag == preset.pretrained and preset.hf_repo:
            # The preset knows where its weights live: check the cache before importing open_clip.
            weights_file = resolve_hub_weights(preset.hf_repo, OPENCLIP_HF_FILENAMES, cache_dir=cache_dir)
        else:
            repo_id, filenames, cfg = oc.pretrained_tag_source(preset.model, tag)
            weights_file = resolve_hub_weights(repo_id, filenames, cache_dir=cache_dir)
            quick_gelu = bool(cfg.get("quick_gelu", False))
            mean, std = cfg.get("mean", mean), cfg.get("std", std)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # only matters for random_weights
            model, tokenizer = oc.create_openclip(preset.model, weights_file, quick_gelu=quick_gelu)
        identity = f"openclip/{preset.model}/{weights_id or tag}"
    return oc.OpenClipBackbone(model.to(device), tokenizer, identity=identity, resolution=resolution,
                               precision=precision, mean=mean, std=std)


def _preset_for(name: str) -> BackbonePreset:
    if name in BACKBONE_PRESETS:
        return BACKBONE_PRESETS[name]
    if isinstance(name, str) and name.startswith(OPENCLIP_PREFIX) and len(name) > len(OPENCLIP_PREFIX):
        arch = name[len(OPENCLIP_PREFIX):]
        return BackbonePreset(family="openclip", model=arch, pretrained=None, hf_repo=None,
                              description=f"open_clip {arch}")
    raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONE_PRESETS)} "
                     f"or '{OPENCLIP_PREFIX}<open_clip architecture>'")


__all__ = ["BACKBONE_PRESETS", "BackbonePreset", "DenseBackbone", "DenseFeatures", "ResolutionConfig",
           "build_backbone"]
