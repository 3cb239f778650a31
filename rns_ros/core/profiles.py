"""Named profiles: sets of settings that trade the paper's protocol for speed, by name.

    from rns_ros.core import get_profile, build_backbone, TestTimeAdapter
    profile = get_profile("cpu-fast")
    backbone = build_backbone("openclip-vit-b16", device="cpu", resolution=profile.resolution,
                              precision=profile.precision_for("cpu"))
    adapter = TestTimeAdapter(profile.adapter_config(seed=0))

- ``default``: the paper's protocol (the backbone preset's own resolution, fp32, 700 adapter steps).
- ``cuda``: for a GPU (issue 27): the paper's resolution and adapter (700 exact fp32 steps), the
  backbone and SAM 2 under bf16 autocast, and TF32 for the fp32 matmuls that remain outside the
  adapter (`matmul_precision`: the adapter keeps full fp32 whatever the process allows).
- ``auto`` (the default of every entry point): ``cuda`` on a CUDA device, ``default`` elsewhere;
  `resolve_profile` says which it chose, and the entry points log that line. Naming a profile
  (``default`` for the paper's fp32 protocol on a GPU) always wins.
- ``cpu-fast``: for robots without a GPU. The full-size model, but one window at short side 224
  (640x480 -> one 224x304 window of 14x19 patches instead of three 448x448 windows of 28x38),
  bf16 autocast where the CPU computes bf16 natively (AMX or AVX512-BF16; elsewhere fp32, which is
  faster there), and 140 adapter steps at lr 0.01 (the same lr x steps as 700 x 0.002). Coarser
  labels (32-pixel patches of the original frame at 640x480) and an adapter that agrees with the
  700-step one only approximately (docs/adapter.md); measured in README / docs/backbones.md.

A profile only supplies values for settings left at their defaults: every entry point (the API
through `Profile.apply` and `Profile.apply_proposals`, `rns-segment --profile`, `rns-bench
--profile`, the node's `profile` parameter) lets an explicitly changed setting win over the profile.
TF32 is a process-wide switch (`Profile.apply_device_settings`, called by the entry points).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch

from rns_ros.core.adapter.config import AdapterConfig
from rns_ros.core.backbones.sliding import ResolutionConfig
from rns_ros.core.matmul_precision import allow_tf32
from rns_ros.core.regions.proposals import ProposalConfig

DEFAULT_PRECISION = "fp32"  # build_backbone's default; a profile's precision applies only over it
NATIVE_BF16 = "bf16-if-native"  # bf16 where the device computes it natively, else fp32
AUTO = "auto"  # the entry points' default: "cuda" on a CUDA device, "default" elsewhere


@dataclass(frozen=True)
class Profile:
    """One named set of settings (see the module docstring)."""

    name: str
    description: str
    resolution: ResolutionConfig | None = None  # None: the backbone preset's own protocol
    precision: str = DEFAULT_PRECISION  # "fp32" | "bf16" | "fp16" | "bf16-if-native"
    adapter: dict[str, Any] = field(default_factory=dict)  # AdapterConfig fields and their values
    proposals: dict[str, Any] = field(default_factory=dict)  # ProposalConfig fields (SAM 2) and their values
    tf32: bool = False  # CUDA: fp32 matmuls outside the adapter may use TF32 (process-wide)

    def precision_for(self, device: str | torch.device) -> str:
        """The backbone precision on `device`: "bf16-if-native" becomes bf16 on CUDA and on CPUs
        with AMX or AVX512-BF16, fp32 on other CPUs (where bf16 is emulated and slower)."""
        if self.precision != NATIVE_BF16:
            return self.precision
        return "bf16" if torch.device(device).type == "cuda" or cpu_has_native_bf16() else "fp32"

    def adapter_config(self, **changes: Any) -> AdapterConfig:
        """AdapterConfig with this profile's values, then `changes` on top."""
        return AdapterConfig(**{**self.adapter, **changes})

    def apply(self, *, device: str | torch.device, precision: str = DEFAULT_PRECISION,
              adapter: AdapterConfig | None = None) -> tuple[str, AdapterConfig]:
        """(precision, AdapterConfig) with this profile's value for every setting left at its
        default: a precision other than "fp32", and AdapterConfig fields that differ from
        AdapterConfig(), are kept as given."""
        adapter = adapter if adapter is not None else AdapterConfig()
        defaults = AdapterConfig()
        untouched = {name: value for name, value in self.adapter.items()
                     if getattr(adapter, name) == getattr(defaults, name)}
        chosen = self.precision_for(device) if precision == DEFAULT_PRECISION else precision
        return chosen, replace(adapter, **untouched)

    def apply_proposals(self, proposals: ProposalConfig) -> ProposalConfig:
        """`proposals` with this profile's value for every SAM 2 setting left at its default."""
        defaults = ProposalConfig()
        return replace(proposals, **{name: value for name, value in self.proposals.items()
                                     if getattr(proposals, name) == getattr(defaults, name)})

    def apply_device_settings(self, device: str | torch.device) -> str | None:
        """Switch on what this profile sets process-wide on `device` (TF32 on CUDA); a line for the
        log, or None when nothing was changed."""
        if self.tf32 and torch.device(device).type == "cuda":
            return allow_tf32()
        return None


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 matmuls natively (AMX tiles or AVX512-BF16), per torch."""
    checks = [getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    return any(check is not None and bool(check()) for check in checks)


PROFILES: dict[str, Profile] = {
    "default": Profile(
        name="default",
        description="the paper's protocol: the preset's resolution (ViT-B/16: short side 448, 448x448 "
                    "windows), fp32, 700 adapter steps"),
    "cuda": Profile(
        name="cuda",
        description="for GPUs: the paper's resolution and 700-step fp32 adapter, the backbone and SAM 2 in bf16, "
                    "TF32 for the fp32 matmuls outside the adapter",
        precision="bf16",
        proposals={"precision": "bf16"},
        tf32=True),
    "cpu-fast": Profile(
        name="cpu-fast",
        description="for CPUs: one window at short side 224, bf16 where the CPU has it natively, 140 adapter "
                    "steps at lr 0.01; coarser labels, approximate adapter",
        resolution=ResolutionConfig(short_side=224, max_long_side=448, test_crop=448, test_stride=224,
                                    support_crops=(224, 112), support_stride=48),
        precision=NATIVE_BF16,
        adapter={"steps": 140, "lr": 0.01}),
}
PROFILE_NAMES = (AUTO, *PROFILES)  # what the entry points accept


def get_profile(name: str) -> Profile:
    """The profile called `name` ("auto" needs a device: `resolve_profile`); a ValueError naming
    the choices otherwise."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {list(PROFILE_NAMES)}")
    return PROFILES[name]


def resolve_profile(name: str, device: str | torch.device) -> tuple[Profile, str | None]:
    """The profile for `name` on `device`, and a line for the log when "auto" chose it: "cuda" on
    a CUDA device, "default" elsewhere. A named profile is taken as it is (note None)."""
    if name != AUTO:
        return get_profile(name), None
    chosen = get_profile("cuda" if torch.device(device).type == "cuda" else "default")
    note = f"profile auto -> {chosen.name} on {device}: {chosen.description}"
    if chosen.name == "cuda":
        note += " (profile:=default for the paper's fp32 protocol)"
    return chosen, note
