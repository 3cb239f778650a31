"""The node's depth input on real topics: ~/points paired by stamp, labelled like ~/labels, and
a depth stream that stops (or comes late) never holds the labels back."""
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.srv import SetParameters
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

from compressed_depth_encoder import encode_compressed_depth
from fakes import FakeEngine
from messages import make_image, random_rgb
from rns_ros.ros.conversions import labels_from_image
from rns_ros.ros.depth.projection import DepthConfig
from rns_ros.ros.depth.output import NO_CLOUD_WARN_S, DepthInput
from rns_ros.ros.node import RnsNode
from rns_ros.ros.depth.pointcloud import cloud_to_array

H, W = 24, 32
FX, FY, CX, CY = 30.0, 30.0, 15.5, 11.5


def info_msg() -> CameraInfo:
    info = CameraInfo(width=W, height=H)
    info.k = [FX, 0.0, CX, 0.0, FY, CY, 0.0, 0.0, 1.0]
    info.header.frame_id = "depth_optical"
    return info


def depth_msg(sec: int, nanosec: int = 0, metres: float = 1.5) -> Image:
    return make_image(np.full((H, W), int(metres * 1000), np.uint16), "16UC1", stamp=(sec, nanosec),
                      frame_id="depth_optical")


class Rig:
    """The node (fake engine, depth enabled) and a helper publishing camera, depth and info."""

    def __init__(self, ros, engine=None, **overrides):
        self.engine = engine or FakeEngine()
        params = {"classes": "a, b, c", "depth.enabled": True, "depth.stride": 1, **overrides}
        self.node = ros.add(RnsNode(engine_factory=lambda cfg: self.engine, context=ros.context,
                                    parameter_overrides=[Parameter(k, value=v) for k, v in params.items()]))
        helper = ros.node("helper")
        self.labels, self.clouds, self.diags = [], [], []
        helper.create_subscription(Image, "/rns/labels", self.labels.append, 10)
        helper.create_subscription(PointCloud2, "/rns/points", self.clouds.append, 10)
        helper.create_subscription(DiagnosticArray, "/diagnostics", self.diags.append, 10)
        self.image = helper.create_publisher(Image, "image", qos_profile_sensor_data)
        if overrides.get("depth.transport") == "compressedDepth":  # image_transport's topic name
            self.depth = helper.create_publisher(CompressedImage, "depth/image/compressedDepth", qos_profile_sensor_data)
        else:
            self.depth = helper.create_publisher(Image, "depth/image", qos_profile_sensor_data)
        self.info = helper.create_publisher(CameraInfo, "depth/camera_info", qos_profile_sensor_data)
        self.helper = helper
        ros.wait_for(lambda: all(p.get_subscription_count() for p in (self.image, self.depth, self.info))
                     and self.node.depth_output.publisher.get_subscription_count()
                     and self.node.outputs.publishers["labels"].get_subscription_count(), what="discovery")

    def colour(self, rgb, sec, nanosec=0):
        self.image.publish(make_image(rgb, "rgb8", stamp=(sec, nanosec)))


@pytest.mark.parametrize("min_confidence", [0.0, 0.8])  # the fake labels 0 below 0.5 itself
def test_points_carry_the_labels_of_their_pixels_and_the_colour_frames_stamp(ros, min_confidence):
    """The cloud's labels are the published ~/labels (with min_confidence: the unlabeled 0 too)."""
    rig = Rig(ros, min_confidence=min_confidence)
    rig.info.publish(info_msg())
    rig.depth.publish(depth_msg(5, 1_000_000))  # 1 ms from the colour frame: paired
    ros.wait_for(lambda: rig.node.depth_output.input.diagnostics()["depth_frames_received"] == 1, what="depth")
    ros.wait_for(lambda: rig.node.depth_output.input._info is not None, what="camera_info")
    rgb = random_rgb(H, W, seed=3)
    rig.colour(rgb, 5)
    ros.wait_for(lambda: rig.clouds, what="cloud")
    cloud, labels = rig.clouds[0], labels_from_image(rig.labels[0])
    assert cloud.header.frame_id == "depth_optical" and (cloud.header.stamp.sec, cloud.header.stamp.nanosec) == (5, 0)
    points = cloud_to_array(cloud)
    assert len(points) == H * W and np.allclose(points["z"], 1.5)
    u = np.rint(FX * points["x"] / points["z"] + CX).astype(int)
    v = np.rint(FY * points["y"] / points["z"] + CY).astype(int)
    np.testing.assert_array_equal(points["label"], labels[v, u])
    np.testing.assert_allclose(points["confidence"], rgb.max(axis=2)[v, u] / 255.0, rtol=1e-6)
    low = (rgb.max(axis=2) / 255.0 < min_confidence) & (rgb.max(axis=2) >= 128)  # labelled by the fake, then cut
    assert (labels[low] == 0).all() and low.any() == (min_confidence > 0)


def test_a_depth_stream_that_stops_does_not_stop_the_labels(ros):
    rig = Rig(ros, diagnostics_period_s=0.1)
    rig.info.publish(info_msg())
    for sec in range(1, 3):  # paired frames
        rig.depth.publish(depth_msg(sec))
        ros.wait_for(lambda: rig.node.depth_output.input.diagnostics()["depth_frames_received"] == sec)
        rig.colour(random_rgb(H, W, seed=sec), sec)
        ros.wait_for(lambda: len(rig.clouds) == sec, what=f"cloud {sec}")
    for sec in range(3, 7):  # the depth camera stopped; the colour camera goes on
        rig.colour(random_rgb(H, W, seed=sec), sec)
        ros.wait_for(lambda: len(rig.labels) == sec, what=f"labels {sec}")
    assert len(rig.clouds) == 2 and [m.header.stamp.sec for m in rig.labels] == [1, 2, 3, 4, 5, 6]

    def depth_values():
        for arr in reversed(rig.diags):
            for status in arr.status:
                values = {kv.key: kv.value for kv in status.values}
                if values.get("depth_unpaired") == "4":
                    return values
        return None

    values = ros.wait_for(depth_values, what="diagnostics counting the unpaired frames")
    assert values["clouds_published"] == "2" and values["depth_frames_received"] == "2"
    assert "no depth frame within 0.05 s" in values["depth_last_problem"]


def test_depth_last_problem_shows_plain_numbers(ros):
    """Issue 25, item 8: depth_last_problem read `np.float64(nan)`."""
    rig = Rig(ros, diagnostics_period_s=0.1)
    info = info_msg()
    info.k[0] = float("nan")
    rig.info.publish(info)
    rig.depth.publish(depth_msg(1))
    ros.wait_for(lambda: rig.node.depth_output.input.diagnostics()["depth_frames_received"] == 1, what="depth")
    ros.wait_for(lambda: rig.node.depth_output.input._info is not None, what="camera_info")
    rig.colour(random_rgb(H, W), 1)

    def problem():
        for arr in reversed(rig.diags):
            for status in arr.status:
                text = {kv.key: kv.value for kv in status.values}.get("depth_last_problem", "")
                if "finite" in text:
                    return text
        return None

    text = ros.wait_for(problem, what="the camera_info problem in /diagnostics")
    assert f"[nan, 0.0, {CX}, 0.0, {FY}, {CY}, 0.0, 0.0, 1.0]" in text and "np." not in text, text


def test_a_depth_frame_that_arrives_after_its_colour_frame_is_still_its_partner(ros):
    rig = Rig(ros, engine=FakeEngine(delay_s=0.3))  # the frame is taken before its depth arrives
    rig.info.publish(info_msg())
    rig.depth.publish(depth_msg(7, 0, metres=2.0))  # 40 ms early: within the tolerance, not the nearest
    ros.wait_for(lambda: rig.node.depth_output.input.diagnostics()["depth_frames_received"] == 1)
    rig.colour(random_rgb(H, W), 7, 40_000_000)
    rig.depth.publish(depth_msg(7, 40_000_000, metres=1.0))  # exact stamp, published after the colour frame
    ros.wait_for(lambda: rig.clouds, what="cloud")
    assert np.allclose(cloud_to_array(rig.clouds[0])["z"], 1.0)


def test_depth_is_off_by_default_and_enabled_only_at_configure(ros):
    node = ros.add(RnsNode(engine_factory=lambda cfg: FakeEngine(), context=ros.context,
                           parameter_overrides=[Parameter("classes", value="a")]))
    assert node.depth_output is None
    assert not node.get_publishers_info_by_topic("/rns/points")
    assert not node.get_subscriptions_info_by_topic("/depth/image")
    result = node.set_parameters([Parameter("depth.enabled", value=True)])[0]
    assert not result.successful and "read on configure" in result.reason
    assert node.set_parameters([Parameter("depth.stride", value=4)])[0].successful
    assert node.node_config.depth.stride == 4


def test_depth_settings_apply_to_the_next_frame(ros):
    rig = Rig(ros)
    client = rig.helper.create_client(SetParameters, "/rns/set_parameters")
    rig.info.publish(info_msg())
    for sec, stride in ((1, 1), (2, 4)):
        if stride != 1:
            future = client.call_async(SetParameters.Request(parameters=[
                Parameter("depth.stride", value=stride).to_parameter_msg()]))
            ros.wait_for(future.done, what="set_parameters")
            assert future.result().results[0].successful
        rig.depth.publish(depth_msg(sec))
        ros.wait_for(lambda: rig.node.depth_output.input.diagnostics()["depth_frames_received"] == sec)
        rig.colour(random_rgb(H, W), sec)
        ros.wait_for(lambda: len(rig.clouds) == sec, what=f"cloud {sec}")
    assert [m.width for m in rig.clouds] == [H * W, (H // 4) * (W // 4)]


def test_frames_without_usable_depth_for_a_while_are_a_diagnostics_warning():
    now = [100.0]
    depth = DepthInput(DepthConfig(enabled=True), clock=lambda: now[0])
    header = make_image(np.zeros((2, 2), np.uint8), "mono8", stamp=(1, 0)).header
    labels, confidence, rgb = np.ones((2, 2), np.int32), np.ones((2, 2), np.float32), random_rgb(2, 2)
    assert depth.cloud_for(header, rgb, labels, confidence) is None and depth.problem() is None
    now[0] += NO_CLOUD_WARN_S + 1
    assert depth.cloud_for(header, rgb, labels, confidence) is None
    assert "no depth output for 6 s" in depth.problem() and "no depth frame within" in depth.problem()
    depth.on_depth(depth_msg(1))  # a paired depth frame whose CameraInfo does not fit it: invalid, still a warning
    wrong_size = info_msg()
    wrong_size.width = 64
    depth.on_camera_info(wrong_size)
    assert depth.cloud_for(header, rgb, labels, confidence) is None
    assert depth.diagnostics()["depth_invalid"] == 1 and "unusable" in depth.problem()


def test_compressed_depth_transport_reads_the_compressed_depth_topic(ros):
    """depth.transport compressedDepth: the node reads <resolved depth/image>/compressedDepth, as
    image_transport names it, and its cloud carries the depth that was sent."""
    rig = Rig(ros, **{"depth.transport": "compressedDepth"})
    raw = rig.helper.create_publisher(Image, "depth/image", qos_profile_sensor_data)
    assert rig.depth.topic_name == "/depth/image/compressedDepth" and raw.get_subscription_count() == 0
    rig.info.publish(info_msg())
    mm = np.random.default_rng(2).integers(300, 4000, (H, W)).astype(np.uint16)
    rig.depth.publish(encode_compressed_depth(mm, "16UC1", stamp=(7, 0)))
    ros.wait_for(lambda: rig.node.depth_output.input.diagnostics()["depth_frames_received"] == 1, what="depth")
    ros.wait_for(lambda: rig.node.depth_output.input._info is not None, what="camera_info")
    rig.colour(random_rgb(H, W, seed=4), 7)
    ros.wait_for(lambda: rig.clouds, what="cloud")
    points = cloud_to_array(rig.clouds[0])
    assert len(points) == H * W
    v = np.rint(FY * points["y"] / points["z"] + CY).astype(int)
    u = np.rint(FX * points["x"] / points["z"] + CX).astype(int)
    np.testing.assert_allclose(points["z"], mm[v, u] / 1000.0, rtol=1e-6)
