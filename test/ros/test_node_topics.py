"""The node on real topics (in-process, one Context per test): outputs, class map, diagnostics."""
import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image

from fakes import FakeEngine, expected_labels
from messages import make_image, random_rgb
from rns_ros.msg import ClassMap
from rns_ros.ros.node import RnsNode
from rns_ros.visual import Palette

LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def start(ros, classes="cat, dog, cup", engine=None, **overrides):
    engine = engine or FakeEngine()
    node = ros.add(RnsNode(engine_factory=lambda cfg: engine, context=ros.context, parameter_overrides=[
        Parameter("classes", value=classes), *(Parameter(k, value=v) for k, v in overrides.items())]))
    return node, engine


def collect(helper, topic, msg_type=Image, qos=10):
    got = []
    helper.create_subscription(msg_type, topic, got.append, qos)
    return got


def connected(ros, pub, node, *topics):
    ros.wait_for(lambda: pub.get_subscription_count() > 0 and all(
        node.outputs.publishers[t].get_subscription_count() > 0 for t in topics), what="discovery")


def test_label_image_keeps_header_and_size_and_holds_the_engines_labels(ros):
    node, engine = start(ros)
    helper = ros.node("helper")
    labels, confidence = collect(helper, "/rns/labels"), collect(helper, "/rns/confidence")
    pub = helper.create_publisher(Image, "image", qos_profile_sensor_data)
    connected(ros, pub, node, "labels", "confidence")
    rgb = random_rgb(37, 53, seed=7)  # odd sizes, and bgr8 with row padding on the way in
    pub.publish(make_image(np.ascontiguousarray(rgb[:, :, ::-1]), "bgr8", pad=5, stamp=(1234, 5678),
                           frame_id="front_camera"))
    ros.wait_for(lambda: labels and confidence, what="labels and confidence")
    out = labels[0]
    assert (out.header.stamp.sec, out.header.stamp.nanosec, out.header.frame_id) == (1234, 5678, "front_camera")
    assert (out.height, out.width, out.encoding, out.step) == (37, 53, "mono8", 53)
    got = np.frombuffer(bytes(out.data), np.uint8).reshape(37, 53)
    ids = [c.id for c in engine.classes()]
    np.testing.assert_array_equal(got, expected_labels(rgb, ids))
    assert set(np.unique(got)) <= {0, *ids}
    conf = confidence[0]
    assert (conf.encoding, conf.height, conf.width) == ("32FC1", 37, 53)
    np.testing.assert_allclose(np.frombuffer(bytes(conf.data), "<f4").reshape(37, 53), rgb.max(axis=2) / 255.0)


def test_late_subscriber_gets_the_class_map(ros):
    node, engine = start(ros, classes=["wall", "floor"])
    ros.wait_for(lambda: node.class_map_output.version is not None, what="class map published")
    late = ros.node("late_joiner")
    maps = collect(late, "/rns/class_map", ClassMap, LATCHED)
    ros.wait_for(lambda: maps, what="latched class map")
    cmap = maps[-1]
    assert [(c.id, c.name) for c in cmap.classes] == [(e.id, e.name) for e in engine.classes()]
    assert [c.name for c in cmap.classes] == ["wall", "floor"] and cmap.unlabeled_id == 0
    assert cmap.support_version == engine.support_version() and cmap.backbone == "fake/engine"
    first = cmap.classes[0]
    assert (round(first.color.r * 255), round(first.color.g * 255), round(first.color.b * 255)) == Palette().color(first.id)
    assert first.has_text and first.exemplar_count == 0


def test_class_map_is_republished_when_the_classes_change(ros):
    node, engine = start(ros, classes="a")
    helper = ros.node("helper")
    maps = collect(helper, "/rns/class_map", ClassMap, LATCHED)
    ros.wait_for(lambda: maps, what="first class map")
    pub = helper.create_publisher(Image, "image", qos_profile_sensor_data)
    connected(ros, pub, node)
    engine.add_classes(["b"])  # as a service would; the next frame republishes
    pub.publish(make_image(random_rgb(8, 8), "rgb8"))
    ros.wait_for(lambda: len(maps) >= 2, what="second class map")
    assert [c.name for c in maps[-1].classes] == ["a", "b"]
    assert maps[-1].support_version > maps[0].support_version


def test_mono16_once_class_ids_exceed_255(ros):
    names = [f"class{i}" for i in range(300)]
    node, engine = start(ros, classes=",".join(names))
    helper = ros.node("helper")
    labels = collect(helper, "/rns/labels")
    pub = helper.create_publisher(Image, "image", qos_profile_sensor_data)
    connected(ros, pub, node, "labels")
    rgb = random_rgb(9, 11, seed=2)
    pub.publish(make_image(rgb, "rgb8"))
    ros.wait_for(lambda: labels, what="labels")
    out = labels[0]
    assert (out.encoding, out.step, out.is_bigendian) == ("mono16", 22, 0)
    got = np.frombuffer(bytes(out.data), "<u2").reshape(9, 11)
    np.testing.assert_array_equal(got, expected_labels(rgb, [c.id for c in engine.classes()]))
    assert max(c.id for c in engine.classes()) == 300


def test_overlay_only_while_someone_subscribes(ros):
    node, engine = start(ros, overlay_alpha=1.0)
    helper = ros.node("helper")
    labels = collect(helper, "/rns/labels")
    pub = helper.create_publisher(Image, "image", qos_profile_sensor_data)
    connected(ros, pub, node, "labels")
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[:, :3, 0] = 200  # left half: class 1 (red brightest); right half: dark = unlabeled
    calls = []
    original = node.outputs.publishers["overlay"].publish
    node.outputs.publishers["overlay"].publish = lambda msg: (calls.append(msg), original(msg))
    pub.publish(make_image(rgb, "rgb8"))
    ros.wait_for(lambda: labels, what="labels")
    assert calls == []  # nobody listened: no overlay was even built
    overlays = collect(helper, "/rns/overlay")
    connected(ros, pub, node, "overlay")
    pub.publish(make_image(rgb, "rgb8", stamp=(1, 0)))
    ros.wait_for(lambda: overlays, what="overlay")
    out = np.frombuffer(bytes(overlays[0].data), np.uint8).reshape(4, 6, 3)
    assert overlays[0].encoding == "rgb8"
    assert (out[:, :3] == Palette().color(engine.classes()[0].id)).all()  # alpha 1: pure class colour
    np.testing.assert_array_equal(out[:, 3:], rgb[:, 3:])  # unlabeled pixels untouched


def test_diagnostics_report_rates_latency_drops_device_and_classes(ros):
    node, engine = start(ros, diagnostics_period_s=0.1)
    helper = ros.node("helper")
    diags = collect(helper, "/diagnostics", DiagnosticArray)
    labels = collect(helper, "/rns/labels")
    pub = helper.create_publisher(Image, "image", qos_profile_sensor_data)
    connected(ros, pub, node, "labels")
    for i in range(3):
        pub.publish(make_image(random_rgb(6, 6, seed=i), "rgb8"))
        ros.wait_for(lambda: len(labels) > i, what=f"labels {i}")
    bad = make_image(random_rgb(6, 6), "rgb8")
    bad.encoding = "yuv422"
    pub.publish(bad)
    ros.wait_for(lambda: node.stats.snapshot().dropped_invalid == 1, what="invalid frame counted")

    def latest():
        for arr in reversed(diags):
            for status in arr.status:
                values = {kv.key: kv.value for kv in status.values}
                if status.name == "/rns: segmentation" and values.get("frames_dropped_invalid") == "1":
                    return status, values
        return None

    status, values = ros.wait_for(latest, what="diagnostics with the drop")
    assert values["frames_processed"] == "3" and values["device"] == "cpu" and values["classes"] == "3"
    assert values["exemplars"] == "0" and values["state"] == "active"
    assert float(values["latency_median_ms"]) > 0 and float(values["latency_p95_ms"]) >= float(values["latency_median_ms"])
    assert float(values["input_rate_hz"]) > 0 and "unsupported encoding" in values["last_drop_reason"]
    assert "process_peak_rss_mb" in values and status.hardware_id == "cpu"


def test_cpu_fallback_is_flagged_in_diagnostics(ros):
    engine = FakeEngine(device_warning="CUDA FALLBACK: no CUDA device")
    node, _ = start(ros, engine=engine)
    status = node.diagnostic_status()
    assert status.level == status.WARN and "CPU fallback" in status.message


def test_adapter_fallback_is_flagged_in_diagnostics(ros):
    node, _ = start(ros, engine=FakeEngine(adapter_warning="no C compiler"))
    status = node.diagnostic_status()
    values = {kv.key: kv.value for kv in status.values}
    assert status.level == status.WARN and "adapter on a slower fallback" in status.message
    assert values["adapter"] == "fake adapter"
