"""The node's depth-aligned outputs on real topics: one grid, stamp and frame_id for all three, built
only while someone subscribes, per camera; and bad input (depth of another size than its
CameraInfo, depth that stops, a stride that does not divide the size, class ids past 255): logged,
counted in /diagnostics, the node keeps running and the labels keep flowing."""
import itertools

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import Log
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from fakes import FakeEngine, expected_labels
from messages import make_image, random_rgb
from ros_harness import ROSOUT_QOS
from rns_ros.ros.conversions import labels_from_image
from rns_ros.ros.depth.pointcloud import cloud_to_array
from rns_ros.ros.node import RnsNode
from rns_ros.srv import AddClasses
from teaching_helpers import call

H, W = 24, 32  # the depth image; the colour frames are 48x64 (registered, twice the resolution)
FX, FY, CX, CY = 30.0, 30.0, 15.5, 11.5
ALIGNED = ("labels", "confidence", "points")
NODE_NUMBERS = itertools.count()


def info_msg(width=W, height=H) -> CameraInfo:
    info = CameraInfo(width=width, height=height)
    info.k = [FX, 0.0, CX, 0.0, FY, CY, 0.0, 0.0, 1.0]
    return info


def depth_msg(sec: int, mm: np.ndarray | None = None) -> Image:
    mm = np.full((H, W), 1500, np.uint16) if mm is None else mm
    return make_image(mm, "16UC1", stamp=(sec, 0), frame_id="depth_optical")


class Rig:
    """The node (fake engine, aligned outputs on), a helper publishing camera, depth and info, and
    collectors of ~/labels, the aligned outputs (`subscribe_aligned`), /diagnostics and /rosout.
    Each rig's node has a name of its own: rcl keeps one /rosout publisher per logger name in the
    process, and a node of the previous test still being destroyed would take this one's log lines."""

    def __init__(self, ros, engine=None, camera="", **overrides):
        self.ros = ros
        name = f"rns_{next(NODE_NUMBERS)}"
        self.prefix = f"/{name}/{camera}/" if camera else f"/{name}/"
        self.engine = engine or FakeEngine()
        params = {"classes": "a, b, c", "depth.enabled": True, "depth.aligned_outputs": True,
                  "depth.stride": 2, "diagnostics_period_s": 0.1, **overrides}
        self.node = ros.add(RnsNode(name, engine_factory=lambda cfg: self.engine, context=ros.context,
                                    parameter_overrides=[Parameter(k, value=v) for k, v in params.items()]))
        self.helper = ros.node("helper")
        self.labels, self.diags, self.logs = [], [], []
        self.aligned: dict[str, list] = {name: [] for name in ALIGNED}
        inputs = f"{camera}/" if camera else ""
        self.helper.create_subscription(Image, f"{self.prefix}labels", self.labels.append, 10)
        self.helper.create_subscription(DiagnosticArray, "/diagnostics", self.diags.append, 10)
        self.helper.create_subscription(Log, "/rosout", self.logs.append, ROSOUT_QOS)  # latched: configure's lines too
        self.image = self.helper.create_publisher(Image, f"{inputs}image", qos_profile_sensor_data)
        self.depth = self.helper.create_publisher(Image, f"{inputs}depth/image", qos_profile_sensor_data)
        self.info = self.helper.create_publisher(CameraInfo, f"{inputs}depth/camera_info", qos_profile_sensor_data)
        ros.wait_for(lambda: all(p.get_subscription_count() for p in (self.image, self.depth, self.info)),
                     what="discovery")

    def subscribe_aligned(self):
        for name, msg_type in zip(ALIGNED, (Image, Image, PointCloud2)):
            self.helper.create_subscription(msg_type, f"{self.prefix}aligned/{name}", self.aligned[name].append, 10)
        self.ros.wait_for(lambda: all(self.node.get_subscriptions_info_by_topic(f"{self.prefix}aligned/{n}")
                                      for n in ALIGNED), what="aligned subscribers")

    def send(self, sec: int, rgb: np.ndarray, depth: Image | None = None, info: CameraInfo | None = None) -> None:
        """A depth frame (if given) and CameraInfo, then the colour frame of the same stamp; waits for its labels."""
        camera_depth = self.node.cameras[0].depth.input
        if info is not None:
            self.info.publish(info)
            self.ros.wait_for(lambda: camera_depth._info is info or camera_depth._info == info, what="camera_info")
        if depth is not None:
            received = camera_depth.diagnostics()["depth_frames_received"]
            self.depth.publish(depth)
            self.ros.wait_for(lambda: camera_depth.diagnostics()["depth_frames_received"] > received, what="depth")
        count = len(self.labels)
        self.image.publish(make_image(rgb, "rgb8", stamp=(sec, 0), frame_id="colour_optical"))
        self.ros.wait_for(lambda: len(self.labels) > count, what=f"labels {sec}")

    def diagnostics_with(self, key: str, value: str) -> dict:
        def find():
            for array in reversed(self.diags):
                for status in array.status:
                    values = {kv.key: kv.value for kv in status.values}
                    if values.get(key) == value:
                        return values
            return None
        return self.ros.wait_for(find, what=f"/diagnostics with {key} = {value}")

    def logged(self, text: str) -> Log:
        mine = self.node.get_name()
        return self.ros.wait_for(lambda: next((m for m in self.logs if m.name == mine and text in m.msg), None),
                                 what=f"a log line with {text!r}")


def test_the_three_aligned_outputs_share_the_grid_stamp_and_frame_id(ros):
    rig = Rig(ros)
    rig.subscribe_aligned()
    mm = np.full((H, W), 1500, np.uint16)
    mm[0:4, 0:6] = 0  # no measurement there
    rgb = random_rgb(2 * H, 2 * W, seed=5)
    rig.send(9, rgb, depth_msg(9, mm), info_msg())
    ros.wait_for(lambda: all(rig.aligned.values()), what="the aligned outputs")
    labels_msg, conf_msg, cloud = (rig.aligned[n][0] for n in ALIGNED)
    for msg in (labels_msg, conf_msg, cloud):
        assert (msg.header.stamp.sec, msg.header.frame_id) == (9, "depth_optical")  # colour stamp, depth frame
        assert (msg.height, msg.width) == (H // 2, W // 2)
    assert labels_msg.encoding == conf_msg.encoding == "mono8"
    # grid pixel (i, j) = depth pixel (2i, 2j), whose centre is nearest colour pixel (4i + 1, 4j + 1)
    colour_labels = labels_from_image(rig.labels[0])
    np.testing.assert_array_equal(labels_from_image(labels_msg), colour_labels[1::4, 1::4])
    np.testing.assert_array_equal(labels_from_image(rig.labels[0]), expected_labels(rgb, [1, 2, 3]))
    confidence = np.frombuffer(bytes(conf_msg.data), np.uint8).reshape(H // 2, W // 2)
    np.testing.assert_array_equal(confidence, np.rint(rgb.max(axis=2)[1::4, 1::4] / 255.0 * 255).astype(np.uint8))
    points = cloud_to_array(cloud).reshape(H // 2, W // 2)
    assert not cloud.is_dense and np.isnan(points["z"][0:2, 0:3]).all()
    valid = ~np.isnan(points["z"])
    assert valid.sum() == H * W // 4 - 6 and np.allclose(points["z"][valid], 1.5)
    v, u = np.mgrid[0:H:2, 0:W:2]
    np.testing.assert_allclose(points["x"][valid], ((u - CX) * 1.5 / FX)[valid], rtol=1e-6)
    np.testing.assert_array_equal(points["label"], labels_from_image(labels_msg))
    values = rig.diagnostics_with("aligned_published", "1")
    assert values["aligned_invalid"] == "0"


def test_aligned_outputs_are_built_only_while_someone_subscribes(ros):
    rig = Rig(ros)
    rig.send(1, random_rgb(2 * H, 2 * W), depth_msg(1), info_msg())
    assert rig.node.depth_output.input.diagnostics()["aligned_published"] == 0  # nobody listens: nothing built
    rig.subscribe_aligned()
    rig.send(2, random_rgb(2 * H, 2 * W), depth_msg(2))
    ros.wait_for(lambda: all(rig.aligned.values()), what="the aligned outputs")
    assert [m.header.stamp.sec for m in rig.aligned["points"]] == [2]


def test_several_cameras_publish_their_own_aligned_outputs(ros):
    rig = Rig(ros, camera="front", cameras=["front", "left"])
    name = rig.node.get_name()
    assert sorted(t for t, _ in rig.node.get_topic_names_and_types() if "/aligned/" in t) == sorted(
        f"/{name}/{c}/aligned/{n}" for c in ("front", "left") for n in ALIGNED)
    rig.subscribe_aligned()
    rig.send(4, random_rgb(2 * H, 2 * W), depth_msg(4), info_msg())
    ros.wait_for(lambda: all(rig.aligned.values()), what="front's aligned outputs")
    assert rig.aligned["labels"][0].header.frame_id == "depth_optical"


def test_depth_of_another_size_than_its_camera_info_is_counted_and_logged(ros):
    rig = Rig(ros)
    rig.subscribe_aligned()
    rig.send(1, random_rgb(2 * H, 2 * W), depth_msg(1), info_msg(width=64, height=48))
    rig.send(2, random_rgb(2 * H, 2 * W), depth_msg(2))
    values = rig.diagnostics_with("depth_invalid", "2")
    assert "camera_info is 64x48" in values["depth_last_problem"] and values["aligned_published"] == "0"
    assert rig.logged("camera_info is 64x48").level == Log.WARN
    assert not any(rig.aligned.values()) and [m.header.stamp.sec for m in rig.labels] == [1, 2]


def test_depth_that_stops_stops_only_the_depth_outputs_and_is_logged_once(ros):
    rig = Rig(ros)
    rig.subscribe_aligned()
    rig.send(1, random_rgb(2 * H, 2 * W), depth_msg(1), info_msg())
    for sec in (2, 3, 4):  # the depth camera stopped
        rig.send(sec, random_rgb(2 * H, 2 * W))
    rig.send(5, random_rgb(2 * H, 2 * W), depth_msg(5))  # and came back
    ros.wait_for(lambda: len(rig.aligned["labels"]) == 2, what="aligned outputs of frames 1 and 5")
    assert [m.header.stamp.sec for m in rig.aligned["labels"]] == [1, 5]
    assert [m.header.stamp.sec for m in rig.labels] == [1, 2, 3, 4, 5]
    rig.diagnostics_with("depth_unpaired", "3")
    rig.logged("published again")
    assert sum("no depth frame within" in m.msg for m in rig.logs if m.name == rig.node.get_name()) == 1  # once


def test_a_stride_that_does_not_divide_the_size_skips_only_the_aligned_outputs(ros):
    rig = Rig(ros, **{"depth.stride": 5})
    rig.subscribe_aligned()
    clouds = []
    rig.helper.create_subscription(PointCloud2, f"{rig.prefix}points", clouds.append, 10)
    ros.wait_for(lambda: rig.node.depth_output.publisher.get_subscription_count(), what="~/points subscriber")
    rig.send(1, random_rgb(2 * H, 2 * W), depth_msg(1), info_msg())
    ros.wait_for(lambda: clouds, what="~/points, which needs no grid")
    values = rig.diagnostics_with("aligned_invalid", "1")
    assert "depth.stride 5 does not divide the depth image's 32x24" in values["aligned_last_problem"]
    assert "one of [1, 2, 4, 8]" in rig.logged("depth.stride 5 does not divide").msg
    assert not any(rig.aligned.values()) and len(rig.labels) == 1


def test_teaching_past_class_id_255_is_refused_while_aligned_outputs_are_on(ros):
    names = [f"class {i}" for i in range(1, 256)]  # ids 1..255: all fit one byte
    rig = Rig(ros, classes=names)
    client = rig.helper.create_client(AddClasses, f"/{rig.node.get_name()}/add_classes")
    more = [f"class {i}" for i in range(256, 301)]  # 300 classes in all
    response = call(ros, client, AddClasses.Request(names=more))
    assert not response.success and "would get id 300, above 255" in response.message
    assert len(response.class_map.classes) == 255 and rig.engine.next_class_id() == 256  # nothing changed
    rig.diagnostics_with("classes_refused_id_limit", "1")
    rig.send(1, random_rgb(2 * H, 2 * W), depth_msg(1), info_msg())  # the node goes on
    assert labels_from_image(rig.labels[0]).max() <= 3


def test_300_initial_classes_with_aligned_outputs_are_refused_at_configure(ros):
    node = ros.add(RnsNode(engine_factory=lambda cfg: FakeEngine(), context=ros.context, parameter_overrides=[
        Parameter("classes", value=[f"c{i}" for i in range(300)]), Parameter("depth.enabled", value=True),
        Parameter("depth.aligned_outputs", value=True)]))
    assert "would get id 300, above 255" in node.autostart_error


def test_a_restored_memory_with_ids_past_255_gets_labels_but_no_aligned_outputs(ros):
    engine = FakeEngine(first_id=299)
    engine.add_classes(["x", "y", "z"])  # ids 299..301, as a memory taught before aligned outputs were on
    rig = Rig(ros, engine=engine, classes="x, y, z")
    assert rig.logged("class ids [299, 300, 301] above 255").level == Log.ERROR
    rig.subscribe_aligned()
    rig.send(1, np.full((2 * H, 2 * W, 3), (0, 255, 0), np.uint8), depth_msg(1), info_msg())  # all class 300
    assert rig.labels[0].encoding == "mono16" and labels_from_image(rig.labels[0]).max() == 300
    values = rig.diagnostics_with("aligned_invalid", "1")
    assert "class id 300 is above 255" in values["aligned_last_problem"] and not any(rig.aligned.values())
