"""The engine's CUDA paths end to end on the TEST-ONLY tiny models, each against the same
computation on the CPU: the pinned-memory upload, the backbone, retrieval on the GPU (the torch
index: faiss has no GPU build here), the adapter's steps as a replayed CUDA graph, batched frames,
upsampling and region pooling. Skipped, with the reason shown, where no CUDA device exists;
scripts/gpu/check.sh runs them on a lent GPU."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from rns_ros.core.adapter.config import AdapterConfig
from rns_ros.core.adapter.synthetic import SyntheticScenario, build_scenario
from rns_ros.core.adapter.test_time import TestTimeAdapter
from rns_ros.core.backbones import build_backbone
from rns_ros.core.backbones.sliding import image_to_tensor
from rns_ros.core.memory.support import SupportMemory
from rns_ros.core.regions.proposals import ProposalConfig, RegionProposer
from rns_ros.core.segmenter import Segmenter

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

TINY_SAM = ProposalConfig(model="test-tiny", points_per_side=4, pred_iou_thresh=0.0,
                          stability_score_thresh=0.0, box_nms_thresh=1.0)


@pytest.fixture
def no_tf32():
    """Full fp32 on the GPU (cuDNN convolutions default to TF32), so CPU and GPU differ by
    float rounding only."""
    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv
    before = matmul.fp32_precision, conv.fp32_precision
    matmul.fp32_precision = conv.fp32_precision = "ieee"  # torch's newer API (matmul_precision.py)
    yield
    matmul.fp32_precision, conv.fp32_precision = before


def test_pinned_upload_equals_the_cpu_conversion():
    image = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    for view in (image, image[::-1]):  # a flipped view has negative strides
        on_gpu = image_to_tensor(view, "cuda")
        assert on_gpu.device.type == "cuda"
        assert torch.equal(on_gpu.cpu(), image_to_tensor(view, "cpu"))


def taught_segmenter(device: str, mode: str) -> Segmenter:
    backbone = build_backbone("test-tiny", device=device)
    memory = SupportMemory(dim=backbone.dim, device=device, backbone_identity=backbone.identity)
    proposer = RegionProposer(replace(TINY_SAM, device=device)) if mode == "region" else None
    seg = Segmenter(backbone, memory, TestTimeAdapter(AdapterConfig(steps=100)), proposer=proposer, mode=mode)
    cat, dog = seg.add_class("cat"), seg.add_class("dog")
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
    labels = np.zeros((96, 128), np.int32)
    labels[:, :64], labels[:, 64:] = cat, dog
    seg.add_exemplar(image, labels)
    return seg


def test_patch_mode_on_cuda_matches_the_cpu(no_tf32):
    frame = np.random.default_rng(2).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    on_cpu, on_gpu = (taught_segmenter(device, "patch") for device in ("cpu", "cuda"))
    assert on_gpu.memory._index.backend == "torch" and on_gpu.backbone.device.type == "cuda"
    a, b = on_cpu.segment(frame), on_gpu.segment(frame)
    assert b.probabilities.shape == a.probabilities.shape == (2, 120, 160)
    assert float(np.abs(a.probabilities - b.probabilities).max()) <= 2e-3
    assert float((a.labels == b.labels).mean()) >= 0.99


def test_region_mode_on_cuda_gives_region_constant_probabilities():
    """SAM 2 on the GPU: thresholded random-weight masks may differ from the CPU's at their
    borders, so this checks the contract rather than equality: every pixel of a region carries
    that region's probabilities, rows sum to 1, labels are known class ids."""
    seg = taught_segmenter("cuda", "region")
    frame = np.random.default_rng(3).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    out = seg.segment(frame)
    assert out.probabilities.shape == (2, 96, 128) and out.labels.shape == (96, 128)
    np.testing.assert_allclose(out.probabilities.sum(0), 1.0, atol=1e-5)
    assert set(np.unique(out.labels)) <= set(out.class_ids)
    assert out.timings["proposals"] > 0


def test_batched_frames_on_cuda_equal_one_frame_at_a_time_on_the_cpu():
    queries, memory = build_scenario(SyntheticScenario(num_classes=8, dim=64, support_per_class=10,
                                                       num_queries=200, seed=4))
    frames = [queries[:120], queries[60:]]
    adapter = TestTimeAdapter(AdapterConfig(steps=200))
    batched = adapter.predict_many([f.cuda() for f in frames], memory)
    for frame, got in zip(frames, batched):
        assert got.device.type == "cuda"
        torch.testing.assert_close(got.cpu(), adapter.predict(frame, memory), atol=1e-4, rtol=0)


def test_stage_timings_do_not_synchronise_the_gpu(monkeypatch):
    """Issue 27: CUDA events time the stages; the one wait is the labels' copy to the host."""
    seg = taught_segmenter("cuda", "patch")
    frame = np.random.default_rng(5).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    seg.segment(frame)  # warm-up: captures the adapter's graphs
    calls = []
    real = torch.cuda.synchronize
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *args, **kwargs: calls.append(1) or real(*args, **kwargs))
    out = seg.segment(frame)
    assert calls == [] and all(out.timings[s] > 0 for s in ("features", "adapter", "upsample"))


def test_only_label_and_confidence_maps_leave_the_gpu(monkeypatch):
    seg = taught_segmenter("cuda", "patch")
    frame = np.random.default_rng(6).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    copies = []
    real = torch.Tensor.cpu
    monkeypatch.setattr(torch.Tensor, "cpu", lambda t, *a, **k: (copies.append(tuple(t.shape)) if t.is_cuda
                                                                 else None) or real(t, *a, **k))
    out = seg.segment(frame)
    assert [shape for shape in copies if np.prod(shape) >= 120 * 160] == [(120, 160), (120, 160)]
    copies.clear()
    assert out.probabilities.shape == (2, 120, 160) and copies == [(2, 120, 160)]
    np.testing.assert_allclose(out.confidence, out.probabilities.max(0), atol=0)


def test_region_partition_is_built_on_the_gpu():
    proposer = RegionProposer(replace(TINY_SAM, device="cuda"))
    assert proposer.config.batch_size() == 512  # a GPU-sized decoder batch by default
    frame = np.random.default_rng(7).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    masks = proposer.mask_tensor(frame)
    assert masks.device.type == "cuda" and np.array_equal(masks.cpu().numpy(), proposer.masks(frame))
    partition = proposer.partition_tensor(frame)
    assert partition.device.type == "cuda"
    assert np.array_equal(partition.cpu().numpy(), proposer.partition(frame))
