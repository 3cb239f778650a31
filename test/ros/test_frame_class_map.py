"""A frame is published with the class map it was segmented with (issue 25, bug 1).

The node logged `frame dropped: labels hold id 3 above max_class_id 2` and published nothing for a
frame when a class was removed while the frame was being segmented: the outputs were built after
the engine lock was released, against the newer class map. Here the removal is placed exactly in
that gap, every time: the fake engine's lock (fakes.HandOverLock) lets the waiting removal run to
its end the moment the worker releases the lock, before the worker goes on.
"""
import threading

import numpy as np
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from fakes import FakeEngine, HandOverLock
from messages import make_image
from rns_ros.msg import ClassMap
from rns_ros.ros.node import RnsNode

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


class RemovingEngine(FakeEngine):
    """Removes class `victim` while segmenting the first frame that shows it: the removal waits for
    the engine lock, like a ~/remove_classes call, and runs as soon as the frame releases it."""

    def __init__(self, victim: str):
        super().__init__()
        self.lock = HandOverLock()
        self.victim = victim
        self.removed = threading.Event()
        self.on_removed = lambda: None  # the node's class map republication (what the teacher calls)
        self.remover: threading.Thread | None = None

    def segment(self, rgb):
        result = super().segment(rgb)
        victim_id = next((c.id for c in self.classes() if c.name == self.victim), None)
        if self.remover is None and victim_id is not None and victim_id in result.labels:
            self.lock.hand_over(self.removed)
            self.remover = threading.Thread(target=self._remove, daemon=True)
            self.remover.start()
        return result

    def _remove(self):
        self.remove_class(self.victim)  # takes the lock: waits for the frame
        self.removed.set()
        self.on_removed()


def test_a_class_removed_during_a_frame_is_in_the_class_map_that_frame_is_published_with(ros):
    engine = RemovingEngine(victim="mug")
    node = ros.add(RnsNode(engine_factory=lambda cfg: engine, context=ros.context, parameter_overrides=[
        Parameter("classes", value=["wall", "floor", "mug"]), Parameter("image_qos", value="reliable")]))
    engine.on_removed = node.publish_class_map
    # (topic, ids) in the order the node published them, from the class map published on activation
    published = [("class_map", {e.id for e in engine.classes()})]
    for topic, publisher in (("class_map", node.class_map_output.publisher), ("labels", node.outputs.publishers["labels"])):
        original = publisher.publish

        def recording(msg, topic=topic, original=original):
            ids = ({c.id for c in msg.classes} if topic == "class_map" else
                   set(np.unique(np.frombuffer(bytes(msg.data), np.uint8)).tolist()) - {0})
            published.append((topic, ids))
            original(msg)
        publisher.publish = recording
    helper = ros.node("helper")
    labels, maps = [], []
    helper.create_subscription(Image, "/rns/labels", labels.append, RELIABLE)
    helper.create_subscription(ClassMap, "/rns/class_map", maps.append, LATCHED)
    camera = helper.create_publisher(Image, "image", RELIABLE)
    ros.wait_for(lambda: camera.get_subscription_count() and node.outputs.publishers["labels"].get_subscription_count(),
                 what="discovery")
    mug = next(c.id for c in engine.classes() if c.name == "mug")  # id 3: the blue channel's class
    blue = np.zeros((24, 32, 3), np.uint8)
    blue[:, 16:] = (0, 0, 255)
    camera.publish(make_image(blue, "rgb8"))
    ros.wait_for(lambda: labels and engine.removed.is_set(), timeout=20, what="the frame's labels")
    ros.wait_for(lambda: maps and mug not in {c.id for c in maps[-1].classes}, what="class map without the mug")

    got = np.frombuffer(bytes(labels[0].data), np.uint8).reshape(24, 32)
    assert (got[:, 16:] == mug).all()  # the frame was published, with the removed class in it
    assert node.stats.snapshot().failed == 0
    last_map = set()
    for topic, ids in published:
        if topic == "class_map":
            last_map = ids
        else:
            assert ids <= last_map, (ids, last_map)  # never a class the map lacks
    maps_published = [ids for topic, ids in published if topic == "class_map"]
    assert mug in maps_published[-2] and mug not in maps_published[-1]  # the removal's map came after the frame
