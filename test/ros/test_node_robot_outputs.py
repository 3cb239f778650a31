"""The node in a robot's pipeline, on real topics: vision_msgs/LabelInfo next to the class map,
min_confidence and mono8 confidence (what Nav2's semantic costmap layer reads), compressed input."""
import io

import numpy as np
from PIL import Image as PILImage
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image
from vision_msgs.msg import LabelInfo

from fakes import FakeEngine, expected_labels
from messages import make_image, random_rgb
from rns_ros.msg import ClassMap
from rns_ros.ros.node import RnsNode
from rns_ros.srv import AddClasses
from teaching_helpers import call

LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def start(ros, classes="cat, dog, cup", engine=None, cli_args=None, **overrides):
    engine = engine or FakeEngine()
    node = ros.add(RnsNode(engine_factory=lambda cfg: engine, context=ros.context, cli_args=cli_args,
                           parameter_overrides=[Parameter("classes", value=classes),
                                                *(Parameter(k, value=v) for k, v in overrides.items())]))
    assert node.autostart_error is None
    return node, engine


def collect(helper, topic, msg_type=Image, qos=10):
    got = []
    helper.create_subscription(msg_type, topic, got.append, qos)
    return got


def pixels(msg, dtype=np.uint8):
    return np.frombuffer(bytes(msg.data), dtype).reshape(msg.height, msg.width)


def test_label_info_is_latched_matches_the_class_map_and_follows_add_classes(ros, tmp_path):
    node, engine = start(ros, classes="floor, wall", memory_dir=str(tmp_path / "mem"), min_confidence=0.3)
    late = ros.node("nav2_stand_in")  # subscribes after the node went active: latched delivery
    infos = collect(late, "/rns/label_info", LabelInfo, LATCHED)
    maps = collect(late, "/rns/class_map", ClassMap, LATCHED)
    ros.wait_for(lambda: infos and maps, what="latched label info and class map")
    info = infos[-1]
    assert [(c.class_id, c.class_name) for c in info.class_map] == \
        [(0, "unlabeled")] + [(c.id, c.name) for c in maps[-1].classes]
    assert [c.class_name for c in info.class_map] == ["unlabeled", "floor", "wall"]
    assert abs(info.threshold - 0.3) < 1e-6
    res = call(ros, late.create_client(AddClasses, "/rns/add_classes"), AddClasses.Request(names=["door"]))
    assert res.success
    ros.wait_for(lambda: [c.class_name for c in infos[-1].class_map] == ["unlabeled", "floor", "wall", "door"],
                 what="label info after add_classes")
    ros.wait_for(lambda: [c.name for c in maps[-1].classes] == ["floor", "wall", "door"], what="class map")
    assert [c.class_id for c in infos[-1].class_map[1:]] == [c.id for c in maps[-1].classes]


def test_min_confidence_unlabels_uncertain_pixels_and_mono8_confidence(ros):
    node, engine = start(ros, min_confidence=0.7, confidence_encoding="mono8")
    helper = ros.node("helper")
    labels, confidence = collect(helper, "/rns/labels"), collect(helper, "/rns/confidence")
    infos = collect(helper, "/rns/label_info", LabelInfo, LATCHED)
    pub = helper.create_publisher(Image, "image", qos_profile_sensor_data)
    ros.wait_for(lambda: pub.get_subscription_count() and node.outputs.publishers["labels"].get_subscription_count()
                 and node.outputs.publishers["confidence"].get_subscription_count(), what="discovery")
    rgb = random_rgb(31, 40, seed=11)
    pub.publish(make_image(rgb, "rgb8", stamp=(7, 8), frame_id="cam"))
    ros.wait_for(lambda: labels and confidence, what="outputs")
    prob = rgb.max(axis=2) / 255.0  # the fake engine's winning probability
    expect = expected_labels(rgb, [c.id for c in engine.classes()])
    expect[prob < 0.7] = 0
    got = pixels(labels[0])
    np.testing.assert_array_equal(got, expect)
    assert (got == 0).sum() > (expected_labels(rgb, [1, 2, 3]) == 0).sum()  # the threshold did unlabel pixels
    conf = confidence[0]
    assert (conf.encoding, conf.step, conf.header.frame_id, conf.header.stamp.sec) == ("mono8", 40, "cam", 7)
    np.testing.assert_array_equal(pixels(conf), rgb.max(axis=2))  # probability x 255 = the brightest channel
    ros.wait_for(lambda: infos, what="latched label info")
    assert abs(infos[-1].threshold - 0.7) < 1e-6

    node.set_parameters([Parameter("min_confidence", value=0.0)])  # runtime: off again
    pub.publish(make_image(rgb, "rgb8"))
    ros.wait_for(lambda: len(labels) > 1, what="second frame")
    np.testing.assert_array_equal(pixels(labels[1]), expected_labels(rgb, [c.id for c in engine.classes()]))
    ros.wait_for(lambda: infos[-1].threshold == 0.0, what="label info with the new threshold")


def encoded(rgb, fmt, **options):
    out = io.BytesIO()
    PILImage.fromarray(rgb).save(out, format=fmt, **options)
    return out.getvalue()


def compressed(payload, fmt, stamp, frame_id="color_optical"):
    msg = CompressedImage(format=fmt)
    msg.data = payload
    msg.header.stamp.sec, msg.header.stamp.nanosec = stamp
    msg.header.frame_id = frame_id
    return msg


def test_compressed_jpeg_and_png_on_the_remapped_topic_and_a_corrupt_one_dropped(ros):
    node, engine = start(ros, image_transport="compressed",
                         cli_args=["--ros-args", "-r", "image:=/cam/color/image_raw"])
    assert node.cameras[0].topic_name == "/cam/color/image_raw/compressed"
    helper = ros.node("helper")
    labels = collect(helper, "/rns/labels")
    pub = helper.create_publisher(CompressedImage, "/cam/color/image_raw/compressed", qos_profile_sensor_data)
    ros.wait_for(lambda: pub.get_subscription_count() and node.outputs.publishers["labels"].get_subscription_count(),
                 what="discovery")
    ids = [c.id for c in engine.classes()]
    rgb = random_rgb(30, 44, seed=5)
    pub.publish(compressed(encoded(rgb, "PNG"), "rgb8; png compressed bgr8", (10, 1)))
    ros.wait_for(lambda: len(labels) == 1, what="labels of the PNG frame")
    out = labels[0]
    assert (out.height, out.width, out.header.stamp.sec, out.header.stamp.nanosec, out.header.frame_id) == \
        (30, 44, 10, 1, "color_optical")
    np.testing.assert_array_equal(pixels(out), expected_labels(rgb, ids))  # PNG is lossless

    pub.publish(compressed(b"\xff\xd8\xff\xe0 this is no JPEG", "jpeg", (11, 0)))
    ros.wait_for(lambda: node.stats.snapshot().dropped_invalid == 1, what="corrupt frame counted")
    assert "corrupt JPEG" in node.stats.snapshot().last_drop_reason

    jpeg = encoded(rgb, "JPEG", quality=90)
    pub.publish(compressed(jpeg, "rgb8; jpeg compressed bgr8", (12, 0)))
    ros.wait_for(lambda: len(labels) == 2, what="labels of the JPEG frame after the corrupt one")
    out = labels[1]
    assert (out.height, out.width, out.header.stamp.sec) == (30, 44, 12)
    decoded = np.asarray(PILImage.open(io.BytesIO(jpeg)).convert("RGB"))  # what the node saw
    np.testing.assert_array_equal(pixels(out), expected_labels(decoded, ids))
    mono = random_rgb(20, 24, seed=6)[:, :, 0]
    pub.publish(compressed(encoded(mono, "JPEG", quality=95), "mono8; jpeg compressed mono8", (13, 0)))
    ros.wait_for(lambda: len(labels) == 3, what="labels of the mono JPEG frame")
    assert (labels[2].height, labels[2].width) == (20, 24)
    snap = node.stats.snapshot()
    assert (snap.processed, snap.dropped_invalid) == (3, 1)
