"""Support settings of the protocol: what the support memory is given for each run.

- `full`: every class has its name (text) and its B sampled images.
- `partial-visual:f`: the first int(f * C) classes of the seeded class permutation lose their
  visual support (their per-image class features are left out); they keep their names.
- `partial-text:f`: the same classes lose their names instead (no text feature).
- `text-only`: no visual support at all (B = 0): the zero-shot setting.
- `no-text`: no class has a name; visual support only ("w/o text").
"""
from __future__ import annotations

from dataclasses import dataclass

from rns_ros.eval.sampling import class_permutation

KINDS = ("full", "partial-visual", "partial-text", "text-only", "no-text")
_ALIASES = {"zero-shot": "text-only", "w/o-text": "no-text", "without-text": "no-text",
            "wo-text": "no-text", "partial-textual": "partial-text"}


@dataclass(frozen=True)
class SupportSetting:
    kind: str = "full"
    fraction: float = 0.0  # share of classes that lose visual support / names (partial kinds)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown support setting {self.kind!r}; choose one of {list(KINDS)}")
        partial = self.kind.startswith("partial-")
        if partial and not 0.0 <= self.fraction <= 1.0:
            raise ValueError(f"{self.kind} needs a fraction in [0, 1], got {self.fraction}")
        if not partial and self.fraction != 0.0:
            raise ValueError(f"setting {self.kind!r} takes no fraction (got {self.fraction})")

    @classmethod
    def parse(cls, spec: str) -> "SupportSetting":
        """'full', 'partial-visual:0.5', 'partial-text:0.25', 'text-only', 'no-text'."""
        kind, _, frac = spec.strip().partition(":")
        kind = _ALIASES.get(kind.lower(), kind.lower())
        if kind.startswith("partial-") and not frac:
            raise ValueError(f"setting {spec!r} needs a fraction, e.g. '{kind}:0.5'")
        try:
            fraction = float(frac) if frac else 0.0
        except ValueError:
            raise ValueError(f"setting {spec!r}: fraction {frac!r} is not a number") from None
        return cls(kind, fraction)

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.fraction:g}" if self.kind.startswith("partial-") else self.kind

    @property
    def uses_visual(self) -> bool:
        return self.kind != "text-only"

    @property
    def uses_text(self) -> bool:
        return self.kind != "no-text"

    def _first_of_permutation(self, num_classes: int, seed: int) -> frozenset[int]:
        # int(), not round(): the reference code's count of dropped classes.
        count = int(self.fraction * num_classes)
        return frozenset(class_permutation(num_classes, seed)[:count])

    def classes_without_visual(self, num_classes: int, seed: int) -> frozenset[int]:
        if self.kind == "text-only":
            return frozenset(range(num_classes))
        if self.kind == "partial-visual":
            return self._first_of_permutation(num_classes, seed)
        return frozenset()

    def classes_without_text(self, num_classes: int, seed: int) -> frozenset[int]:
        if self.kind == "no-text":
            return frozenset(range(num_classes))
        if self.kind == "partial-text":
            return self._first_of_permutation(num_classes, seed)
        return frozenset()

    def class_groups(self, num_classes: int, seed: int) -> dict[str, list[int]]:
        """The seen/unseen split reported for partial settings (paper Table 3); empty otherwise."""
        if self.kind == "partial-visual":
            unseen = self.classes_without_visual(num_classes, seed)
            return {"seen": sorted(set(range(num_classes)) - unseen), "unseen": sorted(unseen)}
        if self.kind == "partial-text":
            unnamed = self.classes_without_text(num_classes, seed)
            return {"named": sorted(set(range(num_classes)) - unnamed), "unnamed": sorted(unnamed)}
        return {}
