"""rns_ros.core: the Retrieve-and-Segment engine (torch + numpy only, never ROS).

    from rns_ros.core import build_backbone, SupportMemory, TestTimeAdapter, AdapterConfig, Segmenter
    backbone = build_backbone("openclip-vit-b16", device="cuda")
    memory = SupportMemory(dim=backbone.dim, backbone_identity=backbone.identity)
    seg = Segmenter(backbone, memory, TestTimeAdapter(AdapterConfig(seed=0)))
    car = seg.add_class("car"); seg.add_exemplar(image, mask, class_id=car)
    result = seg.segment(frame)            # labels (H, W) class ids, probabilities (C, H, W)

The engine is laid out in the order a frame flows through it, one stage of the method per folder:

    backbones/    frame -> dense unit-norm patch features; class names -> text features
    regions/      SAM 2 region proposals and prompt masks; pooling features over segments
    memory/       exemplars, the support memory, its retrieval index, persistence, merging
    adapter/      test-time training of the per-image linear classifier
    runtimes/     who computes the backbone's image encoder: torch, or its ONNX export under
                  ONNX Runtime, TensorRT or OpenVINO (one setting; identity and memory unchanged)
    fleet/        the memory shared between robots: what travels, the merge rules (no network here)
    segmenter.py  the stages together: frame -> labels and probabilities (patch or region mode)
    profiles.py   named sets of settings (default, cuda, cpu-fast; auto picks cuda on a GPU)
    stage_clock.py, matmul_precision.py   seconds per stage without stalling a GPU; TF32 on/off
    cache.py      where what is built once per machine lives (compiled kernels, ONNX exports)
    advice.py     error texts that name the fix in the caller's terms (API argument, CLI flag, ROS parameter)

Its command line, `rns-segment`, is rns_ros/cli/segment.py.

The names below are imported on first access, so `import rns_ros.core` stays cheap and never
pulls in open_clip, sam2 or faiss.
"""
from __future__ import annotations

import importlib

# public name -> module (relative to this package) that defines it
_EXPORTS: dict[str, str] = {
    "DenseBackbone": "backbones.base",
    "DenseFeatures": "backbones.base",
    "BACKBONE_PRESETS": "backbones",
    "build_backbone": "backbones",
    "ResolutionConfig": "backbones.sliding",
    "WeightsUnavailableError": "backbones.weights",
    "Exemplar": "memory.exemplars",
    "encode_exemplar": "memory.exemplars",
    "SupportMemory": "memory.support",
    "save_memory": "memory.persistence",
    "load_memory": "memory.persistence",
    "MemoryDirLock": "memory.dir_lock",
    "MemoryDirBusy": "memory.dir_lock",
    "merge_memory": "memory.merging",
    "AdapterConfig": "adapter.config",
    "TestTimeAdapter": "adapter.test_time",
    "ProposalConfig": "regions.proposals",
    "RegionProposer": "regions.proposals",
    "PromptMasker": "regions.prompts",
    "Segmenter": "segmenter",
    "Segmentation": "segmenter",
    "attach_runtime": "runtimes",
    "Profile": "profiles",
    "PROFILES": "profiles",
    "get_profile": "profiles",
    "resolve_profile": "profiles",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
