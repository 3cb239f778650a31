"""SAM 2 prompts of the teaching services: a box, points or a scribble on an image -> the exemplar
mask. One `PromptMasker` per node, built on first use (it can share region mode's SAM 2 model), used
by one request at a time, with the engine's SAM 2 settings (the profile's precision included).

A prompt runs SAM 2 outside the engine's lock, beside the frame loop, so that teaching never stalls
the camera's frames for a SAM 2 image encoding. On CUDA that is safe (issue 27): the adapter
captures its CUDA graphs with thread-local capture mode (rns_ros/core/adapter/graphed_steps.py),
so this thread's allocations and synchronisations can neither fail nor invalidate a capture in
progress (tested on a GPU: test_graphed_steps.py, CUDA work in another thread during captures);
while the adapter runs, this thread's fp32 matmuls run without TF32 (matmul_precision.py): only
more exact. The mask then lands in the memory under the engine's lock (teacher.py)."""
from __future__ import annotations

import threading
from dataclasses import replace
from typing import Callable

import numpy as np

from rns_ros.core.advice import explain
from rns_ros.ros.engine import proposal_config
from rns_ros.ros.params import ERROR_SPELLING
from rns_ros.ros.teaching.requests import Refused


class PromptMasks:
    """`mask(rgb, kind, prompt)` with a lazily built masker; `factory` () -> a `PromptMasker`."""

    def __init__(self, factory: Callable[[], object] | None):
        self._factory = factory
        self._masker = None
        self._lock = threading.Lock()

    def masker(self):
        if self._masker is None:
            if self._factory is None:
                raise Refused("no SAM 2 prompt model configured; send a mask instead")
            try:
                self._masker = self._factory()
            except (OSError, ValueError) as exc:  # weights missing or unreadable: the node's fix
                raise Refused(f"SAM 2 is not available for prompts ({explain(exc, ERROR_SPELLING)}); "
                              "send a mask instead") from exc
        return self._masker

    def mask(self, rgb: np.ndarray, kind: str, prompt) -> np.ndarray:
        """SAM 2 mask of `rgb` for a "box" / "points" / "scribble" prompt (as `parse_annotation`
        returns them); Refused when SAM 2 finds nothing."""
        with self._lock:
            masker = self.masker()
            masker.set_image(rgb)
            try:
                if kind == "box":
                    mask = masker.from_box(prompt)
                elif kind == "points":
                    mask = masker.from_points(*prompt)
                else:
                    mask = masker.from_scribble(prompt)
            finally:
                masker.reset()
        if not np.asarray(mask).any():
            raise Refused(f"SAM 2 found no object for this {kind}; try another prompt or send a mask")
        return np.asarray(mask, dtype=bool)


def prompt_masker_factory(engine, proposals) -> Callable[[], object]:
    """() -> PromptMasker for the engine's device and profile, sharing region mode's SAM 2 model
    if there is one."""
    def build():
        from rns_ros.core.regions.prompts import PromptMasker
        from rns_ros.core.regions.sam2_models import check_checkpoint

        profile = getattr(engine, "profile", None)  # a test's fake engine has none
        config = (proposal_config(proposals, profile, engine.device) if profile is not None
                  else replace(proposals, device=engine.device))
        proposer = getattr(getattr(engine, "segmenter", None), "proposer", None)
        if proposer is not None:
            return PromptMasker(proposer.model, config=config)
        check_checkpoint(config.model, config.checkpoint, random_weights=config.random_weights)  # fail now
        return PromptMasker(config)
    return build
