"""The real node on real topics, read by Nav2's semantic costmap layer as its `jazzy` source reads
them (semantic_layer_port.py, every rule cited there, configured from config/nav2_semantic_costmap.yaml
and subscribed with the layer's QoS, SemanticSegmentationLayer::onInitialize): a synthetic scene
where a class taught at runtime covers the left half of the image and the depth camera sees a
plane 2 m away. The layer must take every frame's labels, confidence and cloud as one set (no size
warning, LabelInfo before the first set), and the tiles it marks with the class must lie 2 m ahead
and to the left of the camera, where the class is, and nowhere else."""
import threading
from pathlib import Path

import numpy as np
import pytest
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from vision_msgs.msg import LabelInfo

from fakes import FakeEngine
from messages import make_image
from rns_ros.ros.node import RnsNode
from rns_ros.srv import AddClasses
from semantic_layer_port import layer_from_costmap_yaml
from teaching_helpers import call

CONFIG = Path(__file__).resolve().parents[2] / "config" / "nav2_semantic_costmap.yaml"
H, W = 24, 32  # depth; the colour frames are 48x64
FX = FY = 24.0
CX, CY = 15.5, 11.5
PLANE_M = 2.0
CAMERA_HEIGHT_M = 0.5
# The depth optical frame (x right, y down, z ahead) in the costmap's odom frame (x ahead, y left, z up).
ODOM_FROM_OPTICAL = np.array([[0, 0, 1, 0], [-1, 0, 0, 0], [0, -1, 0, CAMERA_HEIGHT_M], [0, 0, 0, 1]], float)
# The layer's subscriptions (onInitialize): images and cloud rmw_qos_profile_sensor_data at depth
# sensor_data_depth; LabelInfo reliable + transient local, depth 5.
LABEL_INFO_QOS = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def scene() -> np.ndarray:
    """48x64 colour frame: left half pure blue (the fake engine's third class), right half too dark
    to be any class (unlabeled 0)."""
    rgb = np.full((2 * H, 2 * W, 3), 40, np.uint8)
    rgb[:, :W] = (0, 0, 255)
    return rgb


@pytest.mark.parametrize("approximate", [False, True])
def test_the_layer_takes_every_frame_and_marks_the_taught_class_where_it_is(ros, approximate):
    text = CONFIG.read_text().replace("use_approximate_time_sync: false", f"use_approximate_time_sync: {approximate}")
    config = ros_home_file(text)
    layer, topics = layer_from_costmap_yaml(config, lambda frame, stamp: ODOM_FROM_OPTICAL)
    assert "puddle" in layer.cost_by_name and topics["segmentation_topic"] == "/rns/aligned/labels"

    node = ros.add(RnsNode(engine_factory=lambda cfg: FakeEngine(), context=ros.context, parameter_overrides=[
        Parameter("classes", value="floor, carpet"), Parameter("depth.enabled", value=True),
        Parameter("depth.aligned_outputs", value=True), Parameter("depth.stride", value=2),
        Parameter("confidence_encoding", value="mono8")]))
    errors = []  # an exception inside the layer's callbacks (the port raises where the C++ would crash)

    def guarded(callback):
        def run(msg):
            try:
                callback(msg)
            except Exception as exc:  # noqa: BLE001 - reported by the test below
                errors.append(exc)
        return run

    costmap = ros.node("costmap")
    sensor = QoSProfile(depth=10, reliability=qos_profile_sensor_data.reliability,
                        durability=qos_profile_sensor_data.durability)
    costmap.create_subscription(LabelInfo, topics["labels_topic"], guarded(layer.on_label_info), LABEL_INFO_QOS)
    costmap.create_subscription(Image, topics["segmentation_topic"], guarded(layer.on_segmentation), sensor)
    costmap.create_subscription(Image, topics["confidence_topic"], guarded(layer.on_confidence), sensor)
    costmap.create_subscription(PointCloud2, topics["pointcloud_topic"], guarded(layer.on_pointcloud), sensor)

    helper = ros.node("camera")
    image = helper.create_publisher(Image, "image", qos_profile_sensor_data)
    depth = helper.create_publisher(Image, "depth/image", qos_profile_sensor_data)
    info_pub = helper.create_publisher(CameraInfo, "depth/camera_info", qos_profile_sensor_data)
    ros.wait_for(lambda: all(p.get_subscription_count() for p in (image, depth, info_pub))
                 and node.depth_output.aligned.wanted() and layer.id_by_name is not None, what="discovery")
    assert layer.id_by_name == {"floor": 1, "carpet": 2}  # our LabelInfo, latched, before any labels
    info = CameraInfo(width=W, height=H)
    info.k = [FX, 0.0, CX, 0.0, FY, CY, 0.0, 0.0, 1.0]
    info_pub.publish(info)
    ros.wait_for(lambda: node.depth_output.input._info is not None, what="camera_info")

    def frame(sec: int) -> None:
        received = node.depth_output.input.diagnostics()["depth_frames_received"]
        depth.publish(make_image(np.full((H, W), int(PLANE_M * 1000), np.uint16), "16UC1", stamp=(sec, 0),
                                 frame_id="camera_depth_optical_frame"))
        ros.wait_for(lambda: node.depth_output.input.diagnostics()["depth_frames_received"] > received)
        handled = layer.handled
        image.publish(make_image(scene(), "rgb8", stamp=(sec, 0), frame_id="camera_color_optical_frame"))
        ros.wait_for(lambda: layer.handled > handled or errors, what=f"the layer's set of frame {sec}")

    frame(100)  # "puddle" is not taught yet: the blue half is unlabeled, nothing is marked
    assert not layer.costs(100.0) and not errors
    response = call(ros, helper.create_client(AddClasses, "/rns/add_classes"), AddClasses.Request(names=["puddle"]))
    assert response.success and list(response.class_ids) == [3]
    ros.wait_for(lambda: layer.id_by_name.get("puddle") == 3, what="the new LabelInfo at the layer")
    for sec in (101, 102, 103):
        frame(sec)

    assert not errors, errors
    assert not layer.warnings  # no size mismatch, no empty class map
    assert len(layer.taken) == len(layer.buffered) == 4
    for segmentation, confidence, cloud in layer.taken:  # each set is one frame's three messages
        assert len({(m.header.stamp.sec, m.header.stamp.nanosec) for m in (segmentation, confidence, cloud)}) == 1
        assert segmentation.encoding == confidence.encoding == "mono8"
        assert cloud.width * cloud.height == segmentation.width * segmentation.height
    costs = layer.costs(103.0)
    marked = {xy: cost for xy, (cost, class_id) in costs.items() if class_id == 3}
    assert marked and len(marked) == len(costs)  # only the taught class marks tiles (floor never appears)
    xs, ys = np.array([xy[0] for xy in marked]), np.array([xy[1] for xy in marked])
    resolution = layer.resolution
    assert np.all(np.abs(xs - PLANE_M) <= resolution)  # on the plane 2 m ahead
    assert ys.min() == pytest.approx((CX - (W // 2 - 2)) * PLANE_M / FX, abs=resolution)  # left of the camera ...
    assert ys.max() == pytest.approx(CX * PLANE_M / FX, abs=resolution)  # ... out to the image's left edge
    assert set(marked.values()) == {254}  # three observations at confidence 255 > mark_confidence: max_cost


def ros_home_file(text: str) -> Path:
    """Write `text` to a file in this test's ROS_HOME (conftest gives each test its own)."""
    import os

    path = Path(os.environ["ROS_HOME"]) / "nav2_semantic_costmap.yaml"
    path.write_text(text)
    return path
