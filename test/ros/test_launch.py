"""launch/rns.launch.py against stub launch/launch_ros modules (neither is on PyPI), and the node
started as a process exactly as launch_ros would start it from that description."""
import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import pytest
import yaml
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image

from messages import make_image, random_rgb
from rns_ros.msg import ClassMap
from rns_ros.ros import params
from rns_ros.ros.node import INPUT_TOPIC, NODE_NAME
from rns_ros.ros.demo.rviz_config import resolve_topic, rviz_config

ROOT = Path(__file__).resolve().parents[2]
LAUNCH_FILE = ROOT / "launch" / "rns.launch.py"
EXPECTED_ARGUMENTS = {"namespace", "image_topic", "params_file", "device", "classes", "backbone", "checkpoint",
                      "runtime", "onnx_model",
                      "mode", "memory_dir", "use_rviz", "log_level", "depth_topic", "depth_info_topic",
                      "image_transport", "depth_transport", "cameras", "camera_topics", "confidence_encoding", "nav2",
                      "fleet", "fleet_topic", "fleet_robot_id", "console", "console_host", "console_port", "console_token"}


class _Recorded:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class LaunchDescription(_Recorded):
    @property
    def entities(self):
        return self.args[0]


class DeclareLaunchArgument(_Recorded):
    @property
    def name(self):
        return self.args[0]


class OpaqueFunction(_Recorded):
    pass


class LogInfo(_Recorded):
    pass


class LaunchConfiguration(_Recorded):
    def perform(self, context):
        return context.launch_configurations[self.args[0]]


class Node(_Recorded):
    created: list = []  # every Node action the launch file built, in order

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        Node.created.append(self)


@pytest.fixture
def rviz_installed(tmp_path, monkeypatch):
    """An ament prefix holding an 'rviz2' package entry (the PyPI route has no RViz)."""
    prefix = tmp_path / "rviz_prefix"
    marker = prefix / "share" / "ament_index" / "resource_index" / "packages" / "rviz2"
    marker.parent.mkdir(parents=True)
    marker.touch()
    monkeypatch.setenv("AMENT_PREFIX_PATH", f"{prefix}{os.pathsep}{os.environ['AMENT_PREFIX_PATH']}")


@pytest.fixture
def launch_description(monkeypatch, tmp_path):
    """Load the launch file with stubs in sys.modules; returns (description, evaluate(overrides))."""
    stubs = {
        "launch": types.ModuleType("launch"), "launch.actions": types.ModuleType("launch.actions"),
        "launch.substitutions": types.ModuleType("launch.substitutions"),
        "launch_ros": types.ModuleType("launch_ros"), "launch_ros.actions": types.ModuleType("launch_ros.actions"),
    }
    stubs["launch"].LaunchDescription = LaunchDescription
    stubs["launch.actions"].DeclareLaunchArgument = DeclareLaunchArgument
    stubs["launch.actions"].OpaqueFunction = OpaqueFunction
    stubs["launch.actions"].LogInfo = LogInfo
    stubs["launch.substitutions"].LaunchConfiguration = LaunchConfiguration
    stubs["launch_ros.actions"].Node = Node
    monkeypatch.setattr(Node, "created", [])
    for name, module in stubs.items():
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location("rns_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    installed_share = module._share
    # The RViz template under test is this checkout's (the installed copy is refreshed by setup.sh).
    monkeypatch.setattr(module, "_share", lambda *parts: str(ROOT.joinpath(*parts)) if parts[0] == "rviz"
                        else installed_share(*parts))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where use_rviz writes its RViz copy
    description = module.generate_launch_description()
    declared = {e.name: e for e in description.entities if isinstance(e, DeclareLaunchArgument)}
    (opaque,) = [e for e in description.entities if isinstance(e, OpaqueFunction)]

    def evaluate(**overrides):
        values = {name: arg.kwargs["default_value"] for name, arg in declared.items()}
        values.update(overrides)
        context = types.SimpleNamespace(launch_configurations=values)
        return opaque.kwargs["function"](context)

    return declared, evaluate


def test_launch_arguments_and_the_node_they_start(launch_description):
    declared, evaluate = launch_description
    assert set(declared) == EXPECTED_ARGUMENTS
    assert all(arg.kwargs["description"] for arg in declared.values())
    (node,) = evaluate()
    kw = node.kwargs
    assert (kw["package"], kw["executable"], kw["name"]) == ("rns_ros", "rns_node", NODE_NAME)
    executable = Path(sys.prefix) / "lib" / "rns_ros" / "rns_node"  # where `ros2 run` looks (pip route)
    assert executable.is_file() and os.access(executable, os.X_OK)
    assert kw["remappings"] == [(INPUT_TOPIC, "/camera/image_raw")]
    (params_file,) = kw["parameters"]  # no overrides unless given
    doc = yaml.safe_load(Path(params_file).read_text())
    params.build_configs(doc["/**"]["ros__parameters"])  # a valid parameter file for this node
    assert kw["ros_arguments"] == ["--log-level", "info"]


def test_launch_overrides_and_rviz(launch_description, rviz_installed):
    _, evaluate = launch_description
    node, rviz = evaluate(device="cpu", classes="mug, plate", namespace="robot1", use_rviz="true",
                          image_topic="/cam/rgb", log_level="debug", backbone="test-tiny",
                          checkpoint="/weights/tiny.bin", mode="region", memory_dir="/data/rns/robot1")
    kw = node.kwargs
    assert kw["parameters"][1] == {"device": "cpu", "classes": "[mug, plate]", "backbone": "test-tiny",
                                   "checkpoint": "/weights/tiny.bin", "mode": "region",
                                   "memory_dir": "/data/rns/robot1"}
    params.build_configs(kw["parameters"][1])  # values the node accepts
    assert set(kw["parameters"][1]) <= set(params.SPECS)  # only parameters the node declares
    assert kw["namespace"] == "robot1" and kw["remappings"] == [("image", "/cam/rgb")]
    assert kw["ros_arguments"] == ["--log-level", "debug"]
    assert (rviz.kwargs["package"], rviz.kwargs["executable"]) == ("rviz2", "rviz2")
    assert Path(sys.prefix, "share", "rns_ros", "rviz", "rns.rviz").is_file()  # installed with the package


def test_console_true_starts_the_teaching_console_of_this_launchs_node(launch_description):
    from rns_ros.console.settings import config_from_parameters

    _, evaluate = launch_description
    node, console = evaluate(console="true", namespace="robot1", console_host="0.0.0.0", console_port="9000",
                             console_token="a-token-of-sixteen-chars")
    kw = console.kwargs
    assert (kw["package"], kw["executable"], kw["namespace"]) == ("rns_ros", "rns_console", "robot1")
    (parameters,) = kw["parameters"]
    assert parameters == {"target": "/robot1/rns", "host": "0.0.0.0", "port": 9000,
                          "token": "a-token-of-sixteen-chars"}
    config_from_parameters(parameters)  # values the console accepts
    executable = Path(sys.prefix) / "lib" / "rns_ros" / "rns_console"
    assert executable.is_file() and os.access(executable, os.X_OK)
    _, console = evaluate(console="true")
    assert console.kwargs["parameters"] == [{"target": "/rns", "host": "127.0.0.1", "port": 8765}]  # random token
    assert len(evaluate()) == 1  # console:=false (the default): the node alone
    Node.created.clear()
    with pytest.raises(ValueError, match="console_port"):
        evaluate(console="true", console_port="http")
    assert Node.created == []  # refused before anything starts


def rviz_displays(rviz_node) -> dict[str, dict]:
    """Name -> display of the RViz config that a launched rviz2 node is given."""
    flag, path = rviz_node.kwargs["arguments"]
    assert flag == "-d"
    config = yaml.safe_load(Path(path).read_text())
    return {d["Name"]: d for d in config["Visualization Manager"]["Displays"]}


def test_rviz_shows_input_overlay_colour_labels_and_cloud_on_the_launched_topics(launch_description, rviz_installed):
    _, evaluate = launch_description
    _, rviz = evaluate(use_rviz="true")  # the default launch: the shipped file's own topics
    displays = rviz_displays(rviz)
    shipped = yaml.safe_load((ROOT / "rviz" / "rns.rviz").read_text())["Visualization Manager"]["Displays"]
    assert {n: d["Topic"]["Value"] for n, d in displays.items()} == {d["Name"]: d["Topic"]["Value"] for d in shipped}
    topics = {n: (d["Class"], d["Topic"]["Value"], d["Enabled"]) for n, d in displays.items()}
    assert topics == {
        "Input": ("rviz_default_plugins/Image", "/camera/image_raw", True),  # the launch's default image_topic
        "Overlay": ("rviz_default_plugins/Image", f"/{NODE_NAME}/overlay", True),
        "Labels (colour)": ("rviz_default_plugins/Image", f"/{NODE_NAME}/labels_color", True),
        "Labelled cloud": ("rviz_default_plugins/PointCloud2", f"/{NODE_NAME}/points", False),  # depth off by default
    }
    assert displays["Input"]["Topic"]["Reliability Policy"] == "Best Effort"  # hears any camera
    assert all(displays[n]["Topic"]["Reliability Policy"] == "Reliable" for n in ("Overlay", "Labels (colour)"))

    # remapped: a namespace and another camera (relative: resolved in the namespace, as ROS does)
    node, rviz = evaluate(use_rviz="true", namespace="robot1", image_topic="front/image_raw")
    displays = rviz_displays(rviz)
    assert {n: d["Topic"]["Value"] for n, d in displays.items()} == {
        "Input": "/robot1/front/image_raw", "Overlay": "/robot1/rns/overlay",
        "Labels (colour)": "/robot1/rns/labels_color", "Labelled cloud": "/robot1/rns/points"}
    assert node.kwargs["namespace"] == "robot1" and node.kwargs["remappings"] == [("image", "front/image_raw")]
    _, rviz = evaluate(use_rviz="true", namespace="/fleet/robot2/", image_topic="/cam/rgb")
    assert rviz_displays(rviz)["Input"]["Topic"]["Value"] == "/cam/rgb"
    assert rviz_displays(rviz)["Overlay"]["Topic"]["Value"] == "/fleet/robot2/rns/overlay"


def test_the_cloud_display_is_shown_when_asked():
    template = (ROOT / "rviz" / "rns.rviz").read_text()
    for show in (True, False):
        displays = yaml.safe_load(rviz_config(template, show_cloud=show))["Visualization Manager"]["Displays"]
        clouds = [d for d in displays if d["Class"] == "rviz_default_plugins/PointCloud2"]
        assert clouds and all(d["Enabled"] is show and d["Value"] is show for d in clouds)
        assert all(d["Enabled"] for d in displays if d not in clouds)


def test_launch_depth_topic_enables_the_point_cloud_and_its_rviz_display(launch_description, rviz_installed):
    _, evaluate = launch_description
    node, rviz = evaluate(depth_topic="/camera/aligned_depth_to_color/image_raw", use_rviz="true")
    kw = node.kwargs
    assert kw["remappings"] == [("image", "/camera/image_raw"),
                                ("depth/image", "/camera/aligned_depth_to_color/image_raw"),
                                ("depth/camera_info", "/camera/aligned_depth_to_color/camera_info")]
    assert kw["parameters"][1] == {"depth.enabled": True} and set(kw["parameters"][1]) <= set(params.SPECS)
    assert rviz_displays(rviz)["Labelled cloud"]["Enabled"] is True
    (node,) = evaluate(depth_topic="/d/image", depth_info_topic="/d/info")
    assert node.kwargs["remappings"][2] == ("depth/camera_info", "/d/info")
    (node,) = evaluate(depth_topic="/d/image", depth_transport="compressedDepth")
    overrides = node.kwargs["parameters"][1]
    assert overrides == {"depth.enabled": True, "depth.transport": "compressedDepth"}
    assert params.build_configs(overrides)[0].depth.transport == "compressedDepth"


def test_nav2_turns_on_what_the_semantic_layer_needs_and_prints_its_topics(launch_description):
    """nav2:=true: depth, the aligned outputs and a mono8 confidence, and a log line naming the
    topics, which are those config/nav2_semantic_costmap.yaml gives the layer."""
    _, evaluate = launch_description
    node, note = evaluate(nav2="true", depth_topic="/camera/aligned_depth_to_color/image_raw")
    overrides = node.kwargs["parameters"][1]
    assert overrides == {"depth.enabled": True, "depth.aligned_outputs": True, "confidence_encoding": "mono8"}
    node_config, _ = params.build_configs(overrides)
    assert node_config.depth.aligned_outputs and node_config.confidence_encoding == "mono8"
    assert ("depth/image", "/camera/aligned_depth_to_color/image_raw") in node.kwargs["remappings"]
    costmap = yaml.safe_load((ROOT / "config" / "nav2_semantic_costmap.yaml").read_text())
    source = costmap["local_costmap"]["local_costmap"]["ros__parameters"]["semantic_segmentation_layer"]["rns"]
    for key in ("segmentation_topic", "confidence_topic", "pointcloud_topic", "labels_topic"):
        assert f"{key}: {source[key]}" in note.kwargs["msg"]
    assert "depth_topic:=" not in note.kwargs["msg"]

    _, note = evaluate(nav2="true", namespace="robot1")  # no depth_topic: says where depth is read
    assert "/robot1/rns/aligned/labels" in note.kwargs["msg"] and "give depth_topic:=..." in note.kwargs["msg"]
    _, note = evaluate(nav2="true", cameras="front, left")
    assert "observation source front: segmentation_topic: /rns/front/aligned/labels" in note.kwargs["msg"]
    assert "labels_topic: /rns/label_info" in note.kwargs["msg"] and "left/depth/image" in note.kwargs["msg"]
    (node,) = evaluate()  # nav2 is off by default
    assert node.kwargs["parameters"][1:] == []


def test_fleet_turns_on_the_shared_memory_and_its_topic_and_id_reach_the_node(launch_description):
    _, evaluate = launch_description
    (node,) = evaluate(fleet="true", namespace="robot1")
    assert node.kwargs["parameters"][1] == {"fleet.enabled": True}
    node_config, _ = params.build_configs(node.kwargs["parameters"][1])
    assert node_config.fleet.enabled and node_config.fleet.topic == "/rns_fleet/memory"
    (node,) = evaluate(fleet="true", fleet_topic=" /site_b/rns_fleet ", fleet_robot_id="robot1-left-arm")
    overrides = node.kwargs["parameters"][1]
    assert overrides == {"fleet.enabled": True, "fleet.topic": "/site_b/rns_fleet", "fleet.robot_id": "robot1-left-arm"}
    node_config, _ = params.build_configs(overrides)
    assert (node_config.fleet.topic, node_config.fleet.robot_id) == ("/site_b/rns_fleet", "robot1-left-arm")
    with pytest.raises(ValueError, match="fleet.topic"):  # the node's own check names the parameter
        params.build_configs(evaluate(fleet="true", fleet_topic="relative/topic")[0].kwargs["parameters"][1])
    (node,) = evaluate()  # off by default: the params file decides
    assert node.kwargs["parameters"][1:] == []


def test_confidence_encoding_argument_and_its_conflict_with_nav2(launch_description):
    _, evaluate = launch_description
    (node,) = evaluate(confidence_encoding="mono8")
    assert node.kwargs["parameters"][1] == {"confidence_encoding": "mono8"}
    Node.created.clear()
    with pytest.raises(ValueError, match="nav2:=true sets confidence_encoding mono8"):
        evaluate(nav2="true", confidence_encoding="32FC1")
    assert Node.created == []


def test_resolve_topic_follows_ros_name_resolution():
    assert resolve_topic("/cam/rgb", "robot1") == "/cam/rgb"
    assert resolve_topic("cam/rgb", "robot1") == "/robot1/cam/rgb"
    assert resolve_topic("rns/overlay", "") == "/rns/overlay"
    assert resolve_topic("rns/overlay", "/a/b/") == "/a/b/rns/overlay"


def test_use_rviz_without_rviz2_stops_before_starting_anything(launch_description):
    _, evaluate = launch_description  # this environment has no rviz2, like apt's ros-base
    with pytest.raises(RuntimeError) as err:
        evaluate(use_rviz="true")
    assert "sudo apt install ros-jazzy-rviz2" in str(err.value)
    assert Node.created == []  # the node was not started either: nothing is left running alone
    (node,) = evaluate(use_rviz="false")
    assert node.kwargs["executable"] == "rns_node"


def test_launch_several_cameras_and_compressed_input(launch_description):
    _, evaluate = launch_description
    (node,) = evaluate(cameras="front, left", camera_topics="/cam_f/image_raw, /cam_l/image_raw",
                       image_transport="compressed")
    kw = node.kwargs
    assert kw["parameters"][1] == {"cameras": "[front, left]", "image_transport": "compressed"}
    node_config, _ = params.build_configs(kw["parameters"][1])
    assert node_config.cameras == ("front", "left") and node_config.image_transport == "compressed"
    assert kw["remappings"][1:] == [("front/image", "/cam_f/image_raw"), ("left/image", "/cam_l/image_raw")]
    (node,) = evaluate(cameras="front, left")  # no topics: the cameras read front/image, left/image
    assert kw["remappings"][:1] == node.kwargs["remappings"]
    with pytest.raises(ValueError, match="one topic per camera"):
        evaluate(cameras="front, left", camera_topics="/only/one")


@pytest.mark.parametrize("cameras, topics", [("[front,rear]", "[/f/image_raw, /r/image_raw]"),
                                             ("['front', 'rear']", "/f/image_raw, /r/image_raw"),
                                             ("front, rear", "['/f/image_raw', '/r/image_raw']")])
def test_launch_takes_lists_in_the_ros_syntax_and_comma_separated(launch_description, cameras, topics):
    """Issue 25, item 3: `cameras:=[front,rear]` (the ROS list syntax) failed with
    got ['[front', 'rear]']; both forms name the same cameras, for the launch file and the node.
    The launch file hands the node '[front, rear]' either way (see the next test for why that
    string reaches the node as it is)."""
    _, evaluate = launch_description
    (node,) = evaluate(cameras=cameras, camera_topics=topics, classes="[mug, 'my plate']")
    kw = node.kwargs
    assert kw["remappings"][1:] == [("front/image", "/f/image_raw"), ("rear/image", "/r/image_raw")]
    node_config, _ = params.build_configs(kw["parameters"][1])
    assert node_config.cameras == ("front", "rear") and node_config.classes == ("mug", "my plate")
    assert params.build_configs({"cameras": cameras})[0].cameras == ("front", "rear")  # the node reads both too
    with pytest.raises(ValueError, match="cannot read"):
        evaluate(cameras="[front, [rear]")


def through_launch_ros(overrides: dict) -> dict:
    """A dict of parameters as launch_ros (jazzy) writes them into its params file: a str value is
    yaml.dump'ed into substitutions (launch_ros/utilities/normalize_parameters.py,
    normalize_parameter_dict) and read back with yaml.safe_load (evaluate_parameters.py,
    evaluate_parameter_dict); other scalars pass unchanged. The stand-in Node skips that step."""
    return {key: yaml.safe_load(yaml.dump(v)) if isinstance(v, str) else v for key, v in overrides.items()}


def test_a_name_holding_a_comma_stays_one_name(launch_description):
    """The name rule allows a comma in a class name, and the node reads classes: ['mug, red', plate]
    as two names. Checked with the real ros2 launch (jazzy), classes:="['mug, red', plate]" gave the
    node the string 'mug, red, plate': three classes. The launch file now passes the list syntax on."""
    _, evaluate = launch_description
    (node,) = evaluate(classes="['mug, red', plate]", cameras="[front, rear]")
    overrides = node.kwargs["parameters"][1]
    assert through_launch_ros(overrides) == overrides  # the node reads what the launch file wrote
    node_config, _ = params.build_configs(through_launch_ros(overrides))
    assert node_config.classes == ("mug, red", "plate") and node_config.cameras == ("front", "rear")
    (node,) = evaluate(classes="mug, my plate")  # the comma-separated form: a comma separates
    assert params.build_configs(node.kwargs["parameters"][1])[0].classes == ("mug", "my plate")
    (node,) = evaluate(classes="[]")  # an empty list: no classes (not the params file's)
    assert params.build_configs(through_launch_ros(node.kwargs["parameters"][1]))[0].classes == ()
    Node.created.clear()
    with pytest.raises(ValueError, match=r"YAML reads \[True, 123\] .* quote such names"):
        evaluate(classes="[yes, 123]")  # YAML's booleans and numbers are not names: say how to quote them
    assert Node.created == []


def test_launch_several_cameras_with_rviz_shows_the_first_and_depth_topic_is_refused(launch_description,
                                                                                     rviz_installed):
    _, evaluate = launch_description
    _, rviz = evaluate(use_rviz="true", namespace="robot1", cameras="front, left",
                       camera_topics="/cam_f/image_raw, /cam_l/image_raw")
    assert {n: d["Topic"]["Value"] for n, d in rviz_displays(rviz).items()} == {
        "Input": "/cam_f/image_raw", "Overlay": "/robot1/rns/front/overlay",
        "Labels (colour)": "/robot1/rns/front/labels_color", "Labelled cloud": "/robot1/rns/front/points"}
    _, rviz = evaluate(use_rviz="true", cameras="front, left")  # no topics: the camera reads front/image
    assert rviz_displays(rviz)["Input"]["Topic"]["Value"] == "/front/image"
    Node.created.clear()
    with pytest.raises(ValueError, match="with cameras, each camera c reads c/depth/image"):
        evaluate(cameras="front, left", depth_topic="/d/image")
    assert Node.created == []  # nothing was started


def launch_ros_command(node: Node, tmp_path: Path) -> list[str]:
    """The command line launch_ros builds for a Node action (dict parameters become a YAML file
    keyed by the node's full name)."""
    kw = node.kwargs
    cmd = [str(Path(sys.prefix) / "lib" / kw["package"] / kw["executable"]), "--ros-args", *kw["ros_arguments"],
           "-r", f"__node:={kw['name']}"]
    full_name = f"/{kw['name']}"
    if kw["namespace"]:
        cmd += ["-r", f"__ns:=/{kw['namespace']}"]
        full_name = f"/{kw['namespace']}{full_name}"
    for i, entry in enumerate(kw["parameters"]):
        if isinstance(entry, dict):
            path = tmp_path / f"launch_params_{i}.yaml"
            path.write_text(yaml.dump({full_name: {"ros__parameters": entry}}))
            entry = str(path)
        cmd += ["--params-file", entry]
    for src, dst in kw["remappings"]:
        cmd += ["-r", f"{src}:={dst}"]
    return cmd


LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def test_node_process_started_as_launch_ros_does_segments_and_stops_on_sigint(launch_description, ros, tmp_path):
    _, evaluate = launch_description
    # The shipped params file; the test-only tiny backbone and a memory directory from launch arguments.
    (node,) = evaluate(device="cpu", classes="cat, dog", backbone="test-tiny", memory_dir=str(tmp_path / "mem"))
    cmd = launch_ros_command(node, tmp_path)
    log = open(tmp_path / "node.log", "w")
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        helper = ros.node("helper")
        labels, maps = [], []
        helper.create_subscription(Image, "/rns/labels", labels.append, 10)
        helper.create_subscription(ClassMap, "/rns/class_map", maps.append, LATCHED)
        pub = helper.create_publisher(Image, "/camera/image_raw", qos_profile_sensor_data)
        rgb = random_rgb(40, 56, seed=4)
        deadline = time.monotonic() + 120
        while not labels:
            assert proc.poll() is None, (tmp_path / "node.log").read_text()
            assert time.monotonic() < deadline, "no labels within 120 s:\n" + (tmp_path / "node.log").read_text()
            if pub.get_subscription_count():
                pub.publish(make_image(rgb, "rgb8", stamp=(7, 8)))
            time.sleep(0.2)
        out = labels[0]
        assert (out.height, out.width, out.encoding, out.header.stamp.sec) == (40, 56, "mono8", 7)
        ros.wait_for(lambda: maps, what="class map")
        # the launch argument (node-specific file) won over the params file's list
        assert [c.name for c in maps[-1].classes] == ["cat", "dog"]
        ids = {c.id for c in maps[-1].classes}
        assert set(np.unique(np.frombuffer(bytes(out.data), np.uint8))) <= ids | {0}
        assert "test-tiny" in maps[-1].backbone
        assert (tmp_path / "mem" / "memory.json").is_file()  # memory_dir came from the launch argument
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.terminate()
            code = proc.wait()
        log.close()
    assert code == 0, (tmp_path / "node.log").read_text()
