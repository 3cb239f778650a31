"""OpenVINO int8 (rns_ros.core.runtimes.openvino_int8): NNCF's static quantization of the exported
encoder, calibrated on the windows the backbone really encodes, its tail kept out of int8, made
once and then read from the cache. (Its agreement with fp32 labels is bounded in
test_runtime_parity.py, beside the other reduced precisions.)"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rns_ros.core.backbones import build_backbone
from rns_ros.core.runtimes import attach_runtime
from rns_ros.core.runtimes.export import export_encoder

ov = pytest.importorskip("openvino")  # the `runtimes` extra (scripts/setup.sh installs it)
pytest.importorskip("nncf")
int8 = pytest.importorskip("rns_ros.core.runtimes.openvino_int8")


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    return export_encoder(build_backbone("test-tiny"), tmp_path_factory.mktemp("tiny"), preset="test-tiny")


class Recorder:
    """A runtime that records the crops it is given (and returns zeros of the right shape)."""

    def __init__(self, backbone):
        self.shapes, self.dim, self.patch = [], backbone.dim, backbone.patch_size

    def __call__(self, crops):
        self.shapes.extend([tuple(crops.shape[1:])] * crops.shape[0])
        return torch.zeros(crops.shape[0], crops.shape[2] // self.patch, crops.shape[3] // self.patch, self.dim)

    def describe(self):
        return "recorder"


def test_calibration_crops_are_the_windows_the_backbone_encodes():
    backbone = build_backbone("test-tiny")
    images = [np.random.default_rng(k).integers(0, 256, (90 + 40 * k, 150, 3), dtype=np.uint8) for k in range(2)]
    recorder = backbone.runtime = Recorder(backbone)
    for image in images:
        backbone.encode_image(image)
        backbone.encode_image(image, support=True)
    backbone.runtime = None
    crops = int8.calibration_crops(backbone, images)
    assert sorted(c.shape[1:] for c in crops) == sorted(recorder.shapes)
    assert all(c.shape[0] == 1 and c.dtype == np.float32 for c in crops)
    assert len({c.shape for c in crops}) > 1  # test windows and support crops of several sizes
    photos = int8.calibration_images()  # scikit-learn's photos and their mirror images
    assert len(photos) == 4 and all(p.ndim == 3 and p.dtype == np.uint8 for p in photos)
    np.testing.assert_array_equal(photos[1], photos[0][:, ::-1])


def quantized_inputs(model) -> dict[str, bool]:
    """For every MatMul of `model`: whether one of its inputs comes through a FakeQuantize (int8)."""
    def through_fake_quantize(node) -> bool:
        while node.get_type_name() in ("Convert", "Transpose", "Reshape"):
            node = node.inputs()[0].get_source_output().get_node()
        return node.get_type_name() == "FakeQuantize"

    return {op.get_friendly_name(): any(through_fake_quantize(p.get_source_output().get_node()) for p in op.inputs())
            for op in model.get_ordered_ops() if op.get_type_name() == "MatMul"}


def test_the_tail_after_the_last_softmax_stays_out_of_int8_and_the_rest_is_quantized(tiny_export):
    model = ov.Core().read_model(str(tiny_export.onnx_path))
    tail = int8.tail_matmuls(model)
    ops = list(model.get_ordered_ops())
    names = [op.get_friendly_name() for op in ops]
    last_softmax = max(i for i, op in enumerate(ops) if op.get_type_name().startswith("Softmax"))
    assert tail and all(names.index(name) > last_softmax for name in tail)
    # test-tiny (OpenCLIP layout, 2 blocks): block 0's output projection and MLP, the value-only
    # last block's value, output projection and MLP, and the dense projection
    assert len(tail) == 8
    backbone = build_backbone("test-tiny")
    quantized = int8.quantize(tiny_export, int8.calibration_crops(backbone, int8.calibration_images()[:1]))
    marked = quantized_inputs(quantized)
    assert not any(marked[name] for name in tail)
    weighted_head = [n for n in marked if n not in tail and any(
        int8._from_constants(p.get_source_output().get_node()) for p in
        next(op for op in quantized.get_ordered_ops() if op.get_friendly_name() == n).inputs())]
    assert weighted_head and all(marked[name] for name in weighted_head)


def test_made_once_then_read_from_the_cache_with_its_measured_cosine(tiny_export, monkeypatch, tmp_path):
    monkeypatch.setenv("RNS_ROS_CACHE_DIR", str(tmp_path))
    calls = []
    real = int8.quantize
    monkeypatch.setattr(int8, "quantize", lambda *a, **k: calls.append(1) or real(*a, **k))
    backbone = build_backbone("test-tiny")
    first = int8.cached_int8(tiny_export, backbone)
    again = int8.cached_int8(tiny_export, backbone)
    assert first == again and first.is_file() and len(calls) == 1
    info = json.loads((first.parent / int8.INFO_NAME).read_text())
    assert info["source_sha256"] == tiny_export.sha256 and info["recipe"] == int8.RECIPE
    assert 0.99 <= info["mean_cosine_vs_fp32"] < 1.0  # int8 really ran, and stays close to fp32
    assert [p.name for p in first.parent.parent.iterdir()] == [first.parent.name]  # no scratch left behind
    # another resolution calibrates on other windows: another model
    from rns_ros.core.backbones.sliding import ResolutionConfig

    other = build_backbone("test-tiny", resolution=ResolutionConfig(short_side=48, max_long_side=96, test_crop=48,
                                                                    test_stride=32, support_crops=(48,),
                                                                    support_stride=32))
    assert int8.cached_int8(tiny_export, other) != first and len(calls) == 2
    # and the runtime computes from it
    attach_runtime(backbone, "openvino", precision="int8", onnx_model=str(tiny_export.folder))
    assert backbone.runtime.describe().startswith("openvino int8") and len(calls) == 2
    features = backbone.encode_image(np.zeros((64, 64, 3), np.uint8)).features
    assert torch.isfinite(features).all()
