"""The node's engine (rns_ros/ros/engine.py: build_engine, segment, segment_batch, close) without
ROS (issue 27, item 3): the lent GPU machine has no rclpy, so this file sits outside test/ros (whose
conftest starts rclpy) and the GPU check's gpu-tests stage runs its CUDA test there. On the CPU:
the module imports with rclpy unimportable, and the same path runs on the tiny model."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rns_ros.core.adapter.config import AdapterConfig
from rns_ros.ros.engine import EngineConfig, build_engine

ROOT = Path(__file__).resolve().parents[1]


def test_the_engine_module_imports_without_rclpy():
    code = ("import sys; sys.modules['rclpy'] = None  # any import of rclpy fails\n"
            "import rns_ros.ros.engine, rns_ros.core.segmenter\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('rclpy', 'sensor_msgs', 'std_msgs')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "['rclpy']"  # only the blocked entry itself


def taught_engine(device: str):
    engine = build_engine(EngineConfig(backbone="test-tiny", device=device, allow_cpu_fallback=False,
                                       adapter=AdapterConfig(steps=60)))
    cat, dog = engine.add_classes(["cat", "dog"])
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
    labels = np.zeros((96, 128), np.int32)
    labels[:, :64], labels[:, 64:] = cat, dog
    with engine.lock:
        engine.segmenter.add_exemplar(image, labels)
    return engine, {cat, dog}


def check_frames(engine, ids: set[int]) -> None:
    rng = np.random.default_rng(2)
    frames = [rng.integers(0, 256, size, dtype=np.uint8) for size in ((120, 160, 3), (90, 70, 3))]
    results = [engine.segment(frames[0]), *engine.segment_batch(frames)]
    for result, frame in zip(results, [frames[0], *frames]):
        assert result.labels.shape == frame.shape[:2] and result.labels.dtype == np.int32
        assert set(np.unique(result.labels)) <= ids
        assert result.confidence.shape == frame.shape[:2] and result.confidence.dtype == np.float32
        assert (result.confidence >= 0.5 - 1e-5).all() and (result.confidence <= 1 + 1e-6).all()  # 2 classes
        assert result.support_version == engine.support_version()
        assert set(result.timings) >= {"features", "adapter", "upsample"}
    np.testing.assert_array_equal(results[0].labels, results[1].labels)  # alone and in a batch


def test_build_segment_batch_and_close_on_the_cpu():
    engine, ids = taught_engine("cpu")
    assert engine.profile.name == "default" and engine.profile_note.startswith("profile auto -> default on cpu")
    check_frames(engine, ids)
    engine.close()
    assert engine.segmenter is None


def test_a_named_profile_wins_over_auto():
    engine = build_engine(EngineConfig(backbone="test-tiny", device="cpu", profile="cpu-fast",
                                       adapter=AdapterConfig(steps=5)))
    assert engine.profile.name == "cpu-fast" and engine.profile_note is None


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_build_segment_batch_and_close_on_cuda():
    from rns_ros.core.adapter import graphed_steps

    graphed_steps.reset_execution_record()
    before = torch.backends.cuda.matmul.fp32_precision
    try:
        engine, ids = taught_engine("cuda")
        assert engine.profile.name == "cuda" and "TF32 on" in engine.profile_note
        assert torch.backends.cuda.matmul.fp32_precision == "tf32"
    finally:
        torch.backends.cuda.matmul.fp32_precision = before
    assert engine.device == "cuda" and engine.segmenter.memory._index.backend == "torch"
    assert engine.segmenter.backbone.precision == "bf16"
    check_frames(engine, ids)
    record = graphed_steps.execution_record()
    assert record.capture_failure is None and record.graph_solves >= 1, record
    assert "replayed CUDA graphs" in engine.adapter_execution and engine.adapter_warning is None
    usage = engine.memory_usage_mb()
    assert usage["cuda_allocated_mb"] > 0
    engine.close()
    assert engine.segmenter is None and torch.cuda.memory_reserved() <= usage["cuda_reserved_mb"] * 2**20
