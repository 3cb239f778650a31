"""Under load and bad input: newest frame wins, drops are counted, the callback never blocks,
bad frames are dropped with a logged reason and the node keeps working."""
import threading

import numpy as np
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from fakes import FakeEngine
from messages import make_image, random_rgb
from rns_ros.ros.node import RnsNode

RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)


def start(ros, engine, **overrides):
    # A reliable subscription: every published test frame reaches the callback, so the counts are exact.
    params = [Parameter("classes", value="a, b, c"), Parameter("image_qos", value="reliable"),
              Parameter("image_qos_depth", value=50)]
    params += [Parameter(k, value=v) for k, v in overrides.items()]
    return ros.add(RnsNode(engine_factory=lambda cfg: engine, context=ros.context, parameter_overrides=params))


def connect(ros, node):
    """A helper node publishing reliably on `image` and collecting `/rns/labels`, once both are matched."""
    helper = ros.node("helper")
    labels = []
    helper.create_subscription(Image, "/rns/labels", labels.append, 50)
    pub = helper.create_publisher(Image, "image", RELIABLE)
    ros.wait_for(lambda: pub.get_subscription_count() > 0 and node.outputs.publishers["labels"].get_subscription_count() > 0)
    return pub, labels


def stamped(i: int) -> Image:
    return make_image(random_rgb(16, 16, seed=i), "rgb8", stamp=(i, 0))


def test_slow_engine_processes_the_newest_frame_and_counts_stale_drops(ros):
    """The engine holds frame 0 until the test lets it go: every other frame still reaches the node
    (the callback never waits for the engine), each replacing the one before it in the mailbox."""
    gate = threading.Event()
    engine = FakeEngine(gate=gate)
    node = start(ros, engine)
    pub, labels = connect(ros, node)
    n = 20
    pub.publish(stamped(0))
    ros.wait_for(engine.entered.is_set, what="frame 0 in the engine")
    for i in range(1, n):
        pub.publish(stamped(i))
    ros.wait_for(lambda: node.stats.snapshot().received == n, what="all frames received, the engine still busy")
    assert not labels and node.stats.snapshot().dropped_stale == n - 2  # frames 1..18 replaced, 19 waits
    gate.set()
    ros.wait_for(lambda: len(labels) == 2, what="frame 0's labels, then the newest frame's")
    snap = node.stats.snapshot()
    assert [m.header.stamp.sec for m in labels] == [0, n - 1]
    assert snap.processed == 2 and snap.dropped_stale == n - 2  # every frame is either processed or counted
    # the engine saw exactly the frames that were published as labels
    assert len(engine.segmented) == snap.processed
    np.testing.assert_array_equal(engine.segmented[-1], random_rgb(16, 16, seed=n - 1))


def test_bad_frames_are_dropped_with_a_reason_and_the_node_keeps_running(ros, caplog):
    engine = FakeEngine()
    node = start(ros, engine, max_image_pixels=10_000)
    pub, labels = connect(ros, node)
    warnings = []
    node.frame_loop.warn = warnings.append  # capture what the node logs (unthrottled)

    unknown = stamped(1)
    unknown.encoding = "yuv422"
    empty = stamped(2)
    empty.width, empty.height, empty.step, empty.data = 0, 0, 0, b""
    truncated = stamped(3)
    truncated.data = bytes(truncated.data)[:100]
    huge = make_image(np.zeros((101, 100, 3), np.uint8), "rgb8", stamp=(4, 0))
    bad_step = stamped(5)
    bad_step.step = 3
    expected = ["unsupported encoding 'yuv422'", "empty image", "truncated data", "exceeds max_image_pixels",
                "step 3 is smaller"]
    for i, msg in enumerate([unknown, empty, truncated, huge, bad_step]):
        pub.publish(msg)
        ros.wait_for(lambda: node.stats.snapshot().dropped_invalid == i + 1, what=f"bad frame {i} counted")
        assert expected[i] in warnings[-1] and warnings[-1].startswith("frame dropped: bad frame")
    pub.publish(stamped(6))  # a good frame afterwards is processed normally
    ros.wait_for(lambda: labels, what="labels after bad frames")
    assert labels[0].header.stamp.sec == 6 and len(engine.segmented) == 1
    snap = node.stats.snapshot()
    assert (snap.dropped_invalid, snap.processed, snap.failed) == (5, 1, 0)


def test_engine_errors_are_counted_and_do_not_stop_the_worker(ros):
    engine = FakeEngine(fail=lambda rgb: rgb[0, 0, 0] == 0)
    node = start(ros, engine)
    pub, labels = connect(ros, node)
    failing = np.zeros((8, 8, 3), np.uint8)
    pub.publish(make_image(failing, "rgb8", stamp=(1, 0)))
    ros.wait_for(lambda: node.stats.snapshot().failed == 1, what="failure counted")
    ok = np.full((8, 8, 3), 200, np.uint8)
    pub.publish(make_image(ok, "rgb8", stamp=(2, 0)))
    ros.wait_for(lambda: labels, what="labels after a failure")
    assert labels[0].header.stamp.sec == 2
    assert "engine error: fake engine failure" in node.stats.snapshot().last_drop_reason
