"""The runtimes' GPU paths (`gpu`-marked; scripts/gpu/check.sh runs them on a lent GPU): ONNX
Runtime's CUDA provider gives the torch CUDA features in fp32, its TensorRT provider agrees in
fp16 and keeps its engine on disk, so a second start builds nothing. Each needs onnxruntime-gpu
(and TensorRT's libraries): without them the test is skipped, saying which is missing."""
from __future__ import annotations

import pytest
import torch

from rns_ros.core import build_backbone

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def providers() -> list[str]:
    try:
        import onnxruntime
    except ImportError:
        return []
    return onnxruntime.get_available_providers()


def needs(provider: str) -> None:
    if provider not in providers():
        pytest.skip(f"this onnxruntime has no {provider} (install onnxruntime-gpu; TensorRT also needs its "
                    "libraries: docs/gpu.md); providers here: " + ", ".join(providers() or ["none"]))


def crops(shape=(3, 3, 64, 96)) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(0)).cuda()


def test_onnxruntime_cuda_fp32_gives_the_torch_cuda_features():
    needs("CUDAExecutionProvider")
    reference = build_backbone("test-tiny", device="cuda")
    backbone = build_backbone("test-tiny", device="cuda", runtime="onnxruntime")
    assert backbone.runtime.describe().startswith("onnxruntime fp32 (CUDA")
    x = crops()
    got, expected = backbone.encode_crops(x), reference.encode_crops(x)
    assert got.device.type == "cuda" and float((got * expected).sum(-1).min()) >= 0.9999


def test_tensorrt_fp16_agrees_and_its_engine_is_cached_on_disk(tmp_path, monkeypatch):
    needs("TensorrtExecutionProvider")
    import time

    monkeypatch.setenv("RNS_ROS_CACHE_DIR", str(tmp_path))
    reference = build_backbone("test-tiny", device="cuda")
    started = time.perf_counter()
    first = build_backbone("test-tiny", device="cuda", runtime="tensorrt", precision="fp16")
    x = crops()
    got = first.encode_crops(x)  # the engine is built on the first call
    first_s = time.perf_counter() - started
    engines = [p for p in (tmp_path / "tensorrt").rglob("*") if p.is_file()]
    assert engines, "TensorRT wrote no engine cache"
    assert float((got * reference.encode_crops(x)).sum(-1).min()) >= 0.99  # fp16
    started = time.perf_counter()
    second = build_backbone("test-tiny", device="cuda", runtime="tensorrt", precision="fp16")
    second.encode_crops(x)
    second_s = time.perf_counter() - started
    print(f"TensorRT first start {first_s:.1f} s (engine built), second {second_s:.1f} s (engine from disk)")
    assert sorted(p.name for p in (tmp_path / "tensorrt").rglob("*") if p.is_file()) == sorted(p.name for p in engines)
