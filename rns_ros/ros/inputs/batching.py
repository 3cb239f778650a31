"""How the worker hands frames to the engine: one at a time, or several cameras' frames as one
batch (the backbone encodes their windows together: `Segmenter.segment_batch`).

Measured with scripts/bench_batching.py (docs/ros.md, "Several cameras") on this project's 2-core
CPU, full-size ViT-B/16, 2 and 4 cameras' 640x480 frames: with the entry points' OpenMP setting
(OMP_WAIT_POLICY=PASSIVE) on a quiet machine, batched took 14 % and 11 % *more* time than one
frame after another (only with spinning OpenMP threads on a loaded machine did it take 10-16 %
less: it saves thread wake-ups, not arithmetic). On a GPU, where a few 448x448 windows leave the
device idle, batches are what fills it. Hence `camera_batching: auto` = batch on CUDA only.
"""
from __future__ import annotations

from typing import Callable, Sequence


def batch_size(cameras: int, mode: str, engine) -> int:
    """How many cameras' frames the worker takes at once: 1, or all of them when batching is on
    (`auto`: the engine runs on CUDA) and the engine can segment a batch."""
    if cameras < 2 or mode == "off" or not hasattr(engine, "segment_batch"):
        return 1
    return cameras if mode == "on" or str(engine.device).startswith("cuda") else 1


def segment_frames(engine, frames: Sequence[tuple], failed: Callable[[tuple, str], None]) -> list[tuple]:
    """[(frame, EngineResult)] for the frames the engine segmented, in the given order (so a result
    never goes to another camera). frames: tuples whose third item is the (H, W, 3) RGB array.
    failed(frame, reason) is called for each frame the engine raised on: with a batch, for all."""
    if len(frames) > 1 and hasattr(engine, "segment_batch"):
        try:
            results = engine.segment_batch([frame[2] for frame in frames])
        except Exception as exc:  # an engine error costs these frames, never the node
            for frame in frames:
                failed(frame, f"engine error: {exc}")
            return []
        if len(results) != len(frames):
            for frame in frames:
                failed(frame, f"engine error: {len(results)} results for {len(frames)} frames")
            return []
        return list(zip(frames, results))
    segmented = []
    for frame in frames:
        try:
            segmented.append((frame, engine.segment(frame[2])))
        except Exception as exc:
            failed(frame, f"engine error: {exc}")
    return segmented
