"""Stage 1 of the method, dense features (rns-method.md section 1): the backbone protocol, the
presets, and `build_backbone`.

    backbone = build_backbone("openclip-vit-b16", device="cuda", checkpoint=None)
    dense = backbone.encode_image(image)        # DenseFeatures, (h, w, d) unit-norm
    text = backbone.encode_text(["car"])        # (1, d), 80 templates averaged

Presets (`BACKBONE_PRESETS`) name an architecture, its default weights and its preprocessing.
Families: "openclip" (openclip.py), "dinotxt" (DINOv3.txt, dinotxt.py) and "siglip2" (siglip2.py).
Besides the presets, `"openclip:<ARCH>"` builds any open_clip ViT architecture (pass `pretrained=`
a tag or `checkpoint=` a file).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from rns_ros.core.advice import MissingWeightsError
from rns_ros.core.backbones.base import DenseBackbone, DenseFeatures
from rns_ros.core.backbones.sliding import ResolutionConfig

from rns_ros.core.backbones.resolutions import (DINOTXT_RESOLUTION, DINOTXT_TINY_RESOLUTION, OPENCLIP_RESOLUTION,
                                               SIGLIP2_RESOLUTION, TINY_RESOLUTION)

OPENCLIP_PREFIX = "openclip:"


@dataclass(frozen=True)
class BackbonePreset:
    """One named backbone configuration."""

    family: str  # which wrapper builds it: "openclip", "dinotxt" or "siglip2"
    model: str  # architecture name ("" = the family's built-in TEST-ONLY tiny config)
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
        description="OpenCLIP ViT-B/16 (LAION-2B), RNS MaskCLIP dense features, d=512 (the paper's default)",
        resolution=OPENCLIP_RESOLUTION),
    "test-tiny": BackbonePreset(
        family="openclip", model="", pretrained=None, hf_repo=None, test_only=True,
        description="TEST-ONLY: ViT-B/16's architecture at a tiny size (2 layers, width 64, d=32) with "
                    "seeded random weights and small windows; fast, predictions are meaningless",
        resolution=TINY_RESOLUTION),
    "dinov3txt-vitl16": BackbonePreset(
        family="dinotxt", model="vitl16", pretrained="lvd1689m+dinotxt-lvtd2300m", hf_repo=None,
        description="DINOv3.txt ViT-L/16: DINOv3 patch tokens + dino.txt text, d=1024 (the paper's best); "
                    "two local weight files (checkpoint='FOLDER' or 'BACKBONE.pth,DINOTXT.pth')",
        resolution=DINOTXT_RESOLUTION),
    "siglip2-vitl16-512": BackbonePreset(
        family="siglip2", model="ViT-L-16-SigLIP2-512", pretrained="webli", hf_repo="timm/ViT-L-16-SigLIP2-512",
        description="SigLIP2 ViT-L/16 at 512 px: attention-pool value features per patch, d=1024",
        resolution=SIGLIP2_RESOLUTION),
    "test-tiny-dinotxt": BackbonePreset(
        family="dinotxt", model="", pretrained=None, hf_repo=None, test_only=True,
        description="TEST-ONLY: DINOv3.txt's layout at a tiny size (2 layers, width 32, d=32) with seeded "
                    "random weights; predictions are meaningless",
        resolution=DINOTXT_TINY_RESOLUTION),
    "test-tiny-siglip2": BackbonePreset(
        family="siglip2", model="", pretrained=None, hf_repo=None, test_only=True,
        description="TEST-ONLY: SigLIP2's layout at a tiny size (2 layers, width 32, d=32, CLIP's tokenizer) "
                    "with seeded random weights; predictions are meaningless",
        resolution=TINY_RESOLUTION),
}


def build_backbone(name: str = "openclip-vit-b16", *, device: str | torch.device = "cpu",
                   checkpoint: str | None = None, pretrained: str | None = None,
                   precision: str = "fp32", seed: int = 0,
                   resolution: ResolutionConfig | None = None,
                   cache_dir: str | None = None, random_weights: bool = False,
                   runtime: str = "torch", onnx_model: str | None = None) -> DenseBackbone:
    """Build a dense backbone from a preset name (see `BACKBONE_PRESETS`) or `"openclip:<ARCH>"`.

    Args:
        name: preset name, or "openclip:<open_clip architecture>" (e.g. "openclip:ViT-L-14").
        device: torch device for the model and every feature it returns.
        checkpoint: local weights; overrides the preset's pretrained tag. Works offline. OpenCLIP:
            one file. DINOv3.txt: a folder holding the two official files, or
            "BACKBONE.pth,DINOTXT.pth". SigLIP2: the weights file, or a folder copied from the hub
            repo (weights + tokenizer files).
        pretrained: open_clip pretrained tag overriding the preset's default (fetched from the
            Hugging Face cache, or downloaded when the hub is reachable); OpenCLIP only.
        precision: "fp32" (default), "bf16" (CPU or CUDA) or "fp16" (CUDA only): autocast dtype
            of the torch runtime; with another runtime, what that runtime computes in (see
            rns_ros.core.runtimes: e.g. openvino bf16, onnxruntime int8, tensorrt fp16).
        seed: seed of random weights (test-only presets, or random_weights=True).
        resolution: preprocessing protocol overriding the preset's.
        cache_dir: Hugging Face cache directory (default: the hub's own default).
        random_weights: build a weights-needing preset untrained (seeded by `seed`), for
            compute-only benchmarks; its predictions are meaningless.
        runtime: what computes the dense image encoder: "torch" (default), "onnxruntime",
            "tensorrt" or "openvino" (rns_ros.core.runtimes). The identity does not change.
        onnx_model: for a runtime other than torch, the folder `rns-export` wrote; None = export
            the backbone once into the cache (logged) and use that.

    Raises:
        ValueError: unknown name/tag/precision/runtime; MissingWeightsError (a ValueError) when an
            architecture without default weights gets neither checkpoint nor pretrained.
            FileNotFoundError: missing checkpoint file.
        WeightsUnavailableError (a FileNotFoundError): weights neither cached nor downloadable;
            raised within seconds, with instructions, before anything heavy is loaded.
        ExportMissingError / ExportMismatchError / RuntimeUnavailableError (rns_ros.core.runtimes):
            the runtime's ONNX file or package is missing, mismatching or cannot run here.
    """
    from rns_ros.core.runtimes import attach_runtime, check_runtime

    preset = _preset_for(name)
    check_runtime(runtime, precision, device)
    device = torch.device(device)
    resolution = resolution or preset.resolution
    # Another runtime computes the image tower in `precision`; the torch model (text tower, and the
    # image tower the export is made from and checked against) stays fp32.
    torch_precision = precision if runtime == "torch" else "fp32"
    settings = dict(device=device, checkpoint=checkpoint, pretrained=pretrained, precision=torch_precision,
                    seed=seed, resolution=resolution, cache_dir=cache_dir, random_weights=random_weights)
    if preset.family != "openclip":
        backbone = _build_other_family(name, preset, **settings)
    else:
        backbone = _build_openclip(name, preset, **settings)
    if runtime != "torch":
        attach_runtime(backbone, runtime, precision=precision, onnx_model=onnx_model, preset=name)
    return backbone


def _build_openclip(name, preset, *, device, checkpoint, pretrained, precision, seed, resolution,
                    cache_dir, random_weights) -> DenseBackbone:
    from rns_ros.core.backbones import openclip as oc
    from rns_ros.core.backbones.weights import (OPENCLIP_HF_FILENAMES, check_checkpoint_file,
                                                checkpoint_fingerprint, resolve_hub_weights)

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


def _build_other_family(name, preset, *, device, checkpoint, pretrained, precision, seed, resolution,
                        cache_dir, random_weights) -> DenseBackbone:
    """DINOv3.txt and SigLIP2: one set of official weights each, so no pretrained tags."""
    from rns_ros.core.backbones.weights import WeightsUnavailableError, dinotxt_how_to_provide

    if pretrained is not None:
        raise ValueError(f"backbone {name!r} takes no pretrained tag; pass checkpoint= (its local weights)")
    tiny = not preset.model
    if preset.family == "dinotxt":
        if checkpoint is None and not (tiny or random_weights):
            # No hub hosts the dino.txt heads: only local files, and say so before loading anything.
            raise WeightsUnavailableError(dinotxt_how_to_provide())
        from rns_ros.core.backbones.dinotxt import build_dinotxt

        return build_dinotxt(device=device, checkpoint=checkpoint, precision=precision, resolution=resolution,
                             seed=seed, random_weights=random_weights, tiny=tiny)
    from rns_ros.core.backbones.siglip2 import build_siglip2

    return build_siglip2(device=device, checkpoint=checkpoint, precision=precision, resolution=resolution,
                         seed=seed, random_weights=random_weights, cache_dir=cache_dir, tiny=tiny)


def _preset_for(name: str) -> BackbonePreset:
    if name in BACKBONE_PRESETS:
        return BACKBONE_PRESETS[name]
    if isinstance(name, str) and name.startswith(OPENCLIP_PREFIX) and len(name) > len(OPENCLIP_PREFIX):
        arch = name[len(OPENCLIP_PREFIX):]
        return BackbonePreset(family="openclip", model=arch, pretrained=None, hf_repo=None,
                              description=f"open_clip {arch}")
    raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONE_PRESETS)} "
                     f"or '{OPENCLIP_PREFIX}<open_clip architecture>'")


def check_backbone_name(name: str) -> None:
    """Raise ValueError (naming the choices) unless `name` is a preset or 'openclip:<ARCH>'."""
    _preset_for(name)


__all__ = ["BACKBONE_PRESETS", "BackbonePreset", "DenseBackbone", "DenseFeatures", "ResolutionConfig",
           "build_backbone", "check_backbone_name"]
