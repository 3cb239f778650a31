"""vision_msgs on the wire: our LabelInfo/VisionClass are upstream's (same RIHS01 type hashes), and
the LabelInfo builder (rns_ros/ros/outputs/label_info.py)."""
from builtin_interfaces.msg import Time
from rclpy.qos import QoSProfile
from vision_msgs.msg import LabelInfo, VisionClass

from rns_ros.ros.engine import ClassEntry
from rns_ros.ros.outputs.label_info import label_info

# Upstream type hashes, computed from ros-perception/vision_msgs tag 4.1.1 (commit e77fa2d,
# vision_msgs/msg/LabelInfo.msg and VisionClass.msg as released) with rosidl_adapter and
# rosidl_generator_type_description 4.6.6 (Jazzy): msg -> idl -> generate_type_hash, std_msgs and
# builtin_interfaces descriptions from the Jazzy wheels. They also appear in
# ../shared/docs/ros2-on-pip.md ("vision_msgs type hashes"), computed there the same way.
UPSTREAM_HASHES = {
    "vision_msgs/msg/LabelInfo": "RIHS01_3d37df4015cdf660cc851c51897f2acd957e1ca6205ba0a99aebffb9406b0783",
    "vision_msgs/msg/VisionClass": "RIHS01_1e4a11f0fed50b5623cb8ff26ca0e37952a48a9c074d16f804b44e9164c2037a",
}


def test_publishers_advertise_upstreams_type_hashes(ros):
    node = ros.node("hash_probe")
    node.create_publisher(LabelInfo, "/probe/label_info", QoSProfile(depth=1))
    node.create_publisher(VisionClass, "/probe/vision_class", QoSProfile(depth=1))
    for topic, type_name in (("/probe/label_info", "vision_msgs/msg/LabelInfo"),
                             ("/probe/vision_class", "vision_msgs/msg/VisionClass")):
        infos = ros.wait_for(lambda: node.get_publishers_info_by_topic(topic), what=f"publisher on {topic}")
        assert infos[0].topic_type == type_name
        assert str(infos[0].topic_type_hash) == UPSTREAM_HASHES[type_name]


def test_label_info_lists_unlabeled_then_every_class_by_id():
    entries = [ClassEntry(7, "door", "", True, ()), ClassEntry(2, "floor", "", True, (4,)),
               ClassEntry(9, "", "", False, (1,)), ClassEntry(70000, "too big", "", True, ())]
    msg = label_info(entries, 0.25, Time(sec=12, nanosec=3))
    assert [(c.class_id, c.class_name) for c in msg.class_map] == [
        (0, "unlabeled"), (2, "floor"), (7, "door"), (9, "class_9")]
    assert abs(msg.threshold - 0.25) < 1e-7 and (msg.header.stamp.sec, msg.header.stamp.nanosec) == (12, 3)
    assert [(c.class_id, c.class_name) for c in label_info([], 0.0, Time()).class_map] == [(0, "unlabeled")]
