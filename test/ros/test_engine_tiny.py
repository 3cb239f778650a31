"""The real engine wrapper with the TEST-ONLY tiny random model: construction, classes, a frame,
and the node end to end on it (labels only mean something with real weights)."""
from dataclasses import replace

import numpy as np
import pytest
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from messages import make_image, random_rgb
from rns_ros.core.adapter.config import AdapterConfig
from rns_ros.ros.engine import EngineConfig, build_engine
from rns_ros.ros.node import RnsNode

TINY = EngineConfig(backbone="test-tiny", device="cpu", adapter=AdapterConfig(steps=5))


@pytest.fixture(scope="module")
def engine():
    return build_engine(TINY)


def test_classes_are_added_all_or_nothing(engine):
    ids = engine.add_classes(["cat", "dog"], ["a photo of a cat", ""])
    entries = engine.classes()
    assert [e.id for e in entries] == ids and [e.name for e in entries] == ["cat", "dog"]
    assert entries[0].description == "a photo of a cat" and entries[1].description == ""
    assert all(e.has_text and e.exemplar_ids == () for e in entries)
    version = engine.support_version()
    for names, descriptions, match in [(["bird", "cat"], [], "already exists"), (["x", "x"], [], "listed twice"),
                                       (["  "], [], "must not be empty"), (["bird"], ["a", "b"], "one per name")]:
        with pytest.raises(ValueError, match=match):
            engine.add_classes(names, descriptions)
    assert engine.classes() == entries and engine.support_version() == version  # refused: nothing changed


def test_segment_gives_input_sized_labels_from_existing_classes(engine):
    rgb = random_rgb(45, 70, seed=1)
    result = engine.segment(rgb)
    ids = {e.id for e in engine.classes()}
    assert result.labels.shape == (45, 70) and result.labels.dtype == np.int32
    assert set(np.unique(result.labels)) <= ids
    assert result.confidence.shape == (45, 70) and result.confidence.dtype == np.float32
    assert (result.confidence >= 1.0 / len(ids) - 1e-5).all() and (result.confidence <= 1.0 + 1e-6).all()
    assert result.support_version == engine.support_version()
    assert engine.device == "cpu" and engine.device_warning is None and "test-tiny" in engine.backbone_identity


def test_engine_reports_what_runs_the_adapter(engine):
    """Built at configure: the compiled kernel where a C compiler exists, else the torch fallback
    with a warning that the node shows in /diagnostics; a solver change updates it."""
    from rns_ros.core.adapter import native
    from rns_ros.core.adapter.config import AdapterConfig

    if native.find_compiler() is not None:
        assert "compiled kernel" in engine.adapter_execution and engine.adapter_warning is None
    else:
        assert "torch operations" in engine.adapter_execution and "unavailable" in engine.adapter_warning
    original = engine.segmenter.adapter.config
    engine.set_adapter_config(AdapterConfig(solver="plain"))
    try:
        assert engine.adapter_execution == "solver plain" and engine.adapter_warning is None
    finally:
        engine.set_adapter_config(original)
    assert "plain" not in engine.adapter_execution


def test_a_profile_sets_resolution_and_the_adapter_settings_left_at_their_defaults():
    engine = build_engine(replace(TINY, profile="cpu-fast", adapter=AdapterConfig()))
    config = engine.segmenter.adapter.config
    assert (config.steps, config.lr) == (140, 0.01) and "S224" in engine.backbone_identity
    engine.set_adapter_config(AdapterConfig(seed=3))  # a runtime change keeps the profile's values...
    assert (engine.segmenter.adapter.config.steps, engine.segmenter.adapter.config.seed) == (140, 3)
    engine.set_adapter_config(AdapterConfig(steps=20))  # ...except where a value is set explicitly
    assert engine.segmenter.adapter.config.steps == 20
    engine.add_classes(["cat", "dog"])
    assert engine.segment(random_rgb(48, 64)).labels.shape == (48, 64)


def test_the_runtime_setting_builds_the_encoder_and_the_engine_says_which(engine):
    """runtime: onnxruntime gives the torch engine's identity (the memory serves both) and labels;
    `auto` under cpu-fast takes the profile's per-CPU choice, and the note the node logs says why."""
    from rns_ros.core.profiles import get_profile

    onnx = build_engine(replace(TINY, runtime="onnxruntime"))
    assert onnx.backbone_identity == engine.backbone_identity
    assert "image encoder: onnxruntime fp32 (CPU" in onnx.runtime_note and "(as set)" in onnx.runtime_note
    assert onnx.runtime_warning is None
    onnx.add_classes(["cat", "dog"])
    assert onnx.segment(random_rgb(48, 64)).labels.shape == (48, 64)
    fast = build_engine(replace(TINY, profile="cpu-fast"))
    choice = get_profile("cpu-fast").runtime_for("cpu")
    assert choice.reason in fast.runtime_note and f"image encoder: {choice.runtime}" in fast.runtime_note
    with pytest.raises(ValueError, match="runtime must be one of"):
        replace(TINY, runtime="tensorflow")


def test_adapter_settings_change_between_frames(engine):
    engine.set_adapter_config(replace(TINY.adapter, steps=2))
    assert engine.segmenter.adapter.config.steps == 2
    assert engine.segment(random_rgb(20, 20)).labels.shape == (20, 20)


def test_node_on_the_tiny_model_end_to_end(ros):
    node = ros.add(RnsNode(context=ros.context, parameter_overrides=[
        Parameter("backbone", value="test-tiny"), Parameter("device", value="cpu"),
        Parameter("classes", value=["road", "sky", "tree"]), Parameter("adapter.steps", value=5)]))
    assert node.autostart_error is None
    helper = ros.node("helper")
    labels = []
    helper.create_subscription(Image, "/rns/labels", labels.append, 10)
    pub = helper.create_publisher(Image, "image", qos_profile_sensor_data)
    ros.wait_for(lambda: pub.get_subscription_count() and node.outputs.publishers["labels"].get_subscription_count())
    pub.publish(make_image(random_rgb(48, 64, seed=9), "rgb8", stamp=(3, 4)))
    ros.wait_for(lambda: labels, timeout=30, what="labels from the tiny model")
    out = labels[0]
    assert (out.height, out.width, out.encoding, out.header.stamp.sec) == (48, 64, "mono8", 3)
    got = set(np.unique(np.frombuffer(bytes(out.data), np.uint8)))
    assert got <= {e.id for e in node.engine.classes()}


@pytest.mark.parametrize("backbone", ["test-tiny-dinotxt", "test-tiny-siglip2"])
def test_engine_on_the_other_backbone_families(backbone):
    engine = build_engine(replace(TINY, backbone=backbone))
    engine.add_classes(["road", "sky"])
    assert engine.segment(random_rgb(30, 50, seed=2)).labels.shape == (30, 50)
    assert engine.backbone_identity.split("/")[:2] == [{"test-tiny-dinotxt": "dinov3txt"}.get(backbone, "siglip2"), "test-tiny"]


@pytest.mark.gpu
@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA device")
def test_engine_on_cuda_reports_its_memory():
    engine = build_engine(replace(TINY, device="cuda"))
    assert engine.device == "cuda" and engine.device_warning is None
    engine.add_classes(["cat", "dog"])
    result = engine.segment(random_rgb(40, 60))
    assert result.labels.shape == (40, 60)
    usage = engine.memory_usage_mb()
    assert usage["cuda_allocated_mb"] > 0 and usage["cuda_reserved_mb"] >= usage["cuda_allocated_mb"]
    engine.close()
