"""The node's view of the RNS engine: one config, one constructor, one small interface.

`build_engine(EngineConfig)` is the only place where the node touches `rns_ros.core`: it picks the
device (with the CPU fallback policy), builds the backbone, the support memory, the test-time
adapter and the segmenter, and wraps them in an `RnsEngine`. The node only needs the methods of
`Engine`, so tests can hand it a fake (slow, failing, many classes) through its
`engine_factory` argument.

Every call into an engine holds `engine.lock`, so class changes happen between frames, never in
the middle of one. (A SAM 2 prompt of the teaching services runs outside it: on CUDA the adapter
captures its graphs thread-locally, so CUDA work in another thread cannot invalidate a capture;
see rns_ros/ros/teaching/prompting.py.)

Nothing here imports ROS: the GPU check runs build_engine, segment_batch and close on CUDA where
no rclpy exists (test/test_engine_without_ros.py).
"""
from __future__ import annotations

import re
import resource
import threading
from dataclasses import dataclass, field, replace
from typing import Callable, Protocol, Sequence

import numpy as np

from rns_ros.core.adapter.config import AdapterConfig
from rns_ros.core.adapter.fast import describe_execution
from rns_ros.core.memory.names import check_new_names
from rns_ros.core.profiles import AUTO, PROFILE_NAMES, get_profile, resolve_profile
from rns_ros.core.regions.proposals import ProposalConfig
from rns_ros.core.runtimes import RUNTIMES

MODES = ("patch", "region")
PRECISIONS = ("fp32", "bf16", "fp16", "int8")  # int8: ONNX Runtime on a CPU (rns_ros.core.runtimes)
RUNTIME_CHOICES = ("auto",) + RUNTIMES
_DEVICE_PATTERN = re.compile(r"^(cpu|cuda(:\d+)?)$")


@dataclass(frozen=True)
class EngineConfig:
    """How the node builds its engine. Defaults here; ROS parameters override (see params.py)."""

    backbone: str = "openclip-vit-b16"  # backbone preset; "test-tiny*" = random weights, tests only
    checkpoint: str = ""  # local backbone weights: a file, or for dinov3txt-vitl16 a folder / "a.pth,b.pth"
    precision: str = "fp32"  # the backbone's image encoder: fp32 | bf16 | fp16 (CUDA) | int8 (onnxruntime, CPU)
    runtime: str = "auto"  # what computes the image encoder: auto (the profile's) | torch | onnxruntime | tensorrt | openvino
    onnx_model: str = ""  # the runtime's exported encoder (rns-export's folder); '' = exported once into the cache
    device: str = "cuda"  # cuda | cuda:N | cpu
    allow_cpu_fallback: bool = True  # device cuda* but no CUDA: run on the CPU (logged loudly) or fail
    mode: str = "patch"  # "patch" (patch features) | "region" (SAM 2 regions, much slower)
    profile: str = AUTO  # rns_ros.core.profiles: auto = cuda on a GPU, default elsewhere; fills settings left at their default
    adapter: AdapterConfig = field(default_factory=AdapterConfig)  # test-time training settings
    proposals: ProposalConfig = field(default_factory=ProposalConfig)  # SAM 2 settings (region mode)

    def __post_init__(self):
        if not _DEVICE_PATTERN.match(self.device):
            raise ValueError(f"device must be 'cuda', 'cuda:N' or 'cpu', got {self.device!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.runtime not in RUNTIME_CHOICES:
            raise ValueError(f"runtime must be one of {list(RUNTIME_CHOICES)}, got {self.runtime!r}")
        if self.profile not in PROFILE_NAMES:
            raise ValueError(f"profile must be one of {list(PROFILE_NAMES)}, got {self.profile!r}")
        if not isinstance(self.backbone, str) or not self.backbone:
            raise ValueError("backbone must name a preset, e.g. 'openclip-vit-b16' (or 'test-tiny' for tests)")
        from rns_ros.core.backbones import check_backbone_name

        check_backbone_name(self.backbone)  # a typo is refused at once, naming the presets


def resolve_device(requested: str, allow_cpu_fallback: bool, cuda_device_count: int) -> tuple[str, str | None]:
    """The device to run on and, when it is not the requested one, a warning saying why.

    Policy: "cpu" is used as is. "cuda"/"cuda:N" needs a visible CUDA device; with none, fall
    back to the CPU when `allow_cpu_fallback` (returning a warning) or raise. An index beyond the
    visible devices is always an error (a typo should not silently run 50x slower).
    """
    if not _DEVICE_PATTERN.match(requested):
        raise ValueError(f"device must be 'cuda', 'cuda:N' or 'cpu', got {requested!r}")
    if requested == "cpu":
        return "cpu", None
    index = int(requested.split(":")[1]) if ":" in requested else 0
    if cuda_device_count == 0:
        if not allow_cpu_fallback:
            raise RuntimeError(f"device {requested!r} requested but no CUDA device is visible "
                               "(torch.cuda.is_available() is False); set device:=cpu, or "
                               "allow_cpu_fallback:=true to run on the CPU anyway")
        return "cpu", (f"CUDA FALLBACK: device {requested!r} requested but no CUDA device is visible; "
                       "running on the CPU, many times slower. Set allow_cpu_fallback:=false to fail "
                       "instead, or device:=cpu to silence this warning")
    if index >= cuda_device_count:
        raise RuntimeError(f"device {requested!r} does not exist: {cuda_device_count} CUDA device(s) visible "
                           f"(cuda:0..cuda:{cuda_device_count - 1})")
    return requested, None


@dataclass(frozen=True)
class ClassEntry:
    """One class as the node publishes it (see rns_ros/msg/ClassInfo.msg)."""

    id: int
    name: str  # '' for a class without a name
    description: str  # prompt used instead of the name ('' = the name)
    has_text: bool
    exemplar_ids: tuple[int, ...]
    exemplar_origins: tuple[str, ...] = ()  # robot each exemplar came from ('' = this one; fleet sync)


@dataclass(frozen=True)
class ClassSnapshot:
    """The classes at one support version: what a frame was segmented with, and so the class map
    its outputs are published with."""

    version: int
    entries: tuple[ClassEntry, ...]


def class_snapshot(engine) -> ClassSnapshot:
    """The engine's classes now (call it holding `engine.lock`, in the same hold as the frame)."""
    return ClassSnapshot(int(engine.support_version()), tuple(engine.classes()))


@dataclass(frozen=True)
class EngineResult:
    """Segmentation of one (H, W) frame."""

    labels: np.ndarray  # (H, W) int32 class ids, 0 = unlabeled
    confidence: np.ndarray  # (H, W) float32 probability of the winning class (0 where unlabeled)
    support_version: int  # the memory version the frame was segmented with
    timings: dict  # seconds per engine stage


class Engine(Protocol):
    """What the node needs from an engine (RnsEngine, or a fake in tests)."""

    lock: threading.RLock
    device: str  # the device actually used
    device_warning: str | None  # why `device` differs from the requested one
    profile_note: str | None  # which profile "auto" chose (and TF32), for the log
    adapter_execution: str  # what runs the test-time adapter's steps (on CUDA: what ran so far)
    adapter_warning: str | None  # why that is a slower fallback, if it is
    runtime_note: str  # what computes the image encoder, and why that runtime
    runtime_warning: str | None  # the profile's faster runtime is unavailable here, and why
    backbone_identity: str

    def segment(self, rgb: np.ndarray) -> EngineResult: ...
    # Optional: segment_batch(rgbs) -> list[EngineResult], several cameras' frames at once.
    def add_classes(self, names: Sequence[str], descriptions: Sequence[str] = ()) -> list[int]: ...
    def classes(self) -> list[ClassEntry]: ...
    def support_version(self) -> int: ...
    def next_class_id(self) -> int: ...  # the id the next new class gets (ids are never reused)
    def num_exemplars(self) -> int: ...
    def memory_usage_mb(self) -> dict[str, float]: ...
    def close(self) -> None: ...


EngineFactory = Callable[[EngineConfig], Engine]


def validate_new_class_names(names: Sequence[str], descriptions: Sequence[str], existing: Sequence[str]) -> list[str]:
    """`names` cleaned by the one name rule (rns_ros.core.memory.names: stripped, at most 128
    characters, unique without case among themselves and `existing`); ValueError otherwise, or when
    `descriptions` is neither empty nor one per name."""
    if descriptions and len(descriptions) != len(names):
        raise ValueError(f"descriptions must be empty or one per name: {len(descriptions)} for {len(names)} names")
    return check_new_names(names, existing)


def process_rss_mb() -> float:
    """Peak resident memory of this process in MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class RnsEngine:
    """The real engine: a `rns_ros.core.segmenter.Segmenter` and its support memory."""

    def __init__(self, segmenter, device: str, device_warning: str | None = None, profile: str = "default",
                 profile_note: str | None = None, runtime_note: str = "", runtime_warning: str | None = None):
        self.segmenter = segmenter
        self.profile = get_profile(profile)
        self.profile_note = profile_note
        self.device = device
        self.device_warning = device_warning
        self._adapter_config = segmenter.adapter.config
        self.runtime_note = runtime_note  # what computes the image encoder, and why
        self.runtime_warning = runtime_warning  # the profile's faster runtime is missing here
        self.backbone_identity = segmenter.backbone.identity
        self.lock = threading.RLock()

    @property
    def adapter_execution(self) -> str:
        """What runs the adapter's steps; on CUDA what ran so far (captured graphs, or eager steps
        after a failed capture: rns_ros.core.adapter.fast.describe_execution)."""
        return describe_execution(self._adapter_config, self.device)[0]

    @property
    def adapter_warning(self) -> str | None:
        """Why the adapter runs on a slower fallback, if it does."""
        return describe_execution(self._adapter_config, self.device)[1]

    def segment(self, rgb: np.ndarray) -> EngineResult:
        with self.lock:
            out = self.segmenter.segment(rgb)
        return self._result(out)

    def segment_batch(self, rgbs: Sequence[np.ndarray]) -> list[EngineResult]:
        """`segment` of several frames (one per camera), the backbone encoding them together."""
        with self.lock:
            outs = self.segmenter.segment_batch(rgbs)
        return [self._result(out) for out in outs]

    def _result(self, out) -> EngineResult:
        """Labels and confidence as the segmenter made them on the device ((H, W) each): the
        (C, H, W) probabilities are never asked for."""
        version = out.support_version if out.support_version is not None else self.support_version()
        return EngineResult(out.labels.astype(np.int32, copy=False), out.confidence.astype(np.float32, copy=False),
                            int(version), dict(out.timings))

    def add_classes(self, names: Sequence[str], descriptions: Sequence[str] = ()) -> list[int]:
        """Add classes with text features, all or nothing; returns their ids in order. Names follow
        the one name rule (validate_new_class_names): ' Mug ' is added as 'Mug', unless 'mug' exists."""
        with self.lock:
            memory = self.segmenter.memory
            names = validate_new_class_names(names, descriptions,
                                             [c.name for c in memory.classes if c.name is not None])
            prompts = [descriptions[i] if descriptions and descriptions[i] else name
                       for i, name in enumerate(names)]
            # Encode every prompt before touching the memory: a failure then changes nothing.
            texts = self.segmenter.backbone.encode_text(prompts) if names else []
            added = [memory.add_class(name, text_feature=texts[i], prompt=None if prompts[i] == name else prompts[i])
                     for i, name in enumerate(names)]
            return added

    def classes(self) -> list[ClassEntry]:
        with self.lock:
            return [ClassEntry(id=int(c.id), name=c.name or "", description=c.prompt or "",
                               has_text=bool(c.has_text), exemplar_ids=tuple(int(e) for e in c.exemplar_ids),
                               exemplar_origins=tuple(o or "" for o in c.exemplar_origins))
                    for c in self.segmenter.memory.classes]

    def support_version(self) -> int:
        return int(self.segmenter.memory.version)

    def next_class_id(self) -> int:
        return int(self.segmenter.memory.next_class_id)

    def num_exemplars(self) -> int:
        return int(self.segmenter.memory.num_exemplars)

    def set_adapter_config(self, config: AdapterConfig) -> None:
        """Use new test-time training settings from the next frame on (the profile's values for
        fields left at their default)."""
        from rns_ros.core.adapter.test_time import TestTimeAdapter

        _, config = self.profile.apply(device=self.device, adapter=config)
        adapter = TestTimeAdapter(config)
        describe_execution(config, self.device)  # on a CPU: builds the compiled kernel now, not on a frame
        with self.lock:
            self.segmenter.adapter = adapter
            self._adapter_config = config

    def memory_usage_mb(self) -> dict[str, float]:
        usage = {"process_peak_rss_mb": process_rss_mb()}
        if self.device.startswith("cuda"):
            import torch

            usage["cuda_allocated_mb"] = torch.cuda.memory_allocated(self.device) / 2**20
            usage["cuda_reserved_mb"] = torch.cuda.memory_reserved(self.device) / 2**20
        return usage

    def close(self) -> None:
        """Drop the models; on CUDA also the adapter's graphs and buffers, and hand the cached
        blocks back to the driver."""
        with self.lock:
            self.segmenter = None
        if self.device.startswith("cuda"):
            import torch

            from rns_ros.core.adapter.graphed_steps import release_buffers

            release_buffers()
            torch.cuda.empty_cache()


def cuda_device_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def build_engine(config: EngineConfig) -> RnsEngine:
    """Build the backbone, memory, adapter (and SAM 2 proposer in region mode) on the chosen device.

    Raises ValueError / FileNotFoundError (e.g. weights unavailable, with instructions) or
    RuntimeError (device policy) before loading anything heavy where it can.
    """
    from rns_ros.core.adapter.test_time import TestTimeAdapter
    from rns_ros.core.backbones import build_backbone
    from rns_ros.core.segmenter import Segmenter
    from rns_ros.core.memory.support import SupportMemory

    device, warning = resolve_device(config.device, config.allow_cpu_fallback, cuda_device_count())
    if config.mode == "region":  # SAM 2 weights missing: say so now, not on every frame
        from rns_ros.core.regions.sam2_models import check_checkpoint

        check_checkpoint(config.proposals.model, config.proposals.checkpoint,
                         random_weights=config.proposals.random_weights)
    profile, note = resolve_profile(config.profile, device)
    choice = profile.runtime_for(device, config.runtime)
    precision, adapter_config = profile.apply(device=device, precision=config.precision, adapter=config.adapter,
                                              runtime=choice.runtime)
    describe_execution(adapter_config, device)  # on a CPU: builds the compiled kernel now, not on a frame
    note = "; ".join(n for n in (note, profile.apply_device_settings(device)) if n) or None
    backbone = build_backbone(config.backbone, device=device, checkpoint=config.checkpoint or None,
                              precision=precision, resolution=profile.resolution, runtime=choice.runtime,
                              onnx_model=config.onnx_model or None)
    runtime_note = (f"image encoder: {backbone.runtime.describe() if backbone.runtime else f'torch {precision}'}; "
                    f"{choice.reason}")
    memory = SupportMemory(dim=backbone.dim, device=device, backbone_identity=backbone.identity)
    proposer = None
    if config.mode == "region":
        from rns_ros.core.regions.proposals import RegionProposer

        proposer = RegionProposer(proposal_config(config.proposals, profile, device))
    segmenter = Segmenter(backbone, memory, TestTimeAdapter(adapter_config), proposer=proposer, mode=config.mode)
    return RnsEngine(segmenter, device, warning, profile.name, note, runtime_note,
                     runtime_note if choice.fallback else None)


def proposal_config(proposals: ProposalConfig, profile, device: str) -> ProposalConfig:
    """The SAM 2 settings on `device`: the node's, with the profile's for those left at their
    defaults (the cuda profile: bf16). Region mode and the teaching prompts use the same."""
    return replace(profile.apply_proposals(proposals), device=device)
