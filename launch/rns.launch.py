"""Launch the rns segmentation node (and optionally RViz).

    ros2 launch rns_ros rns.launch.py image_topic:=/camera/color/image_raw classes:="mug, keyboard"

Arguments (empty = keep the value of the params file):
  namespace    namespace of the node ('' = none; topics become /<ns>/rns/labels ...)
  image_topic  camera topic the node subscribes to                      [/camera/image_raw]
  params_file  parameter YAML                              [share/rns_ros/config/rns.yaml]
  device       cuda | cuda:N | cpu                                                      ['']
  classes      initial class names, 'mug, plate' or [mug, plate] (a name holding a comma:
               "['mug, red', plate]")                                                   ['']
  backbone     backbone preset (test-tiny = TEST-ONLY random weights)                   ['']
  checkpoint   local backbone weights file                                               ['']
  mode         patch | region                                                           ['']
  memory_dir   support memory directory                                                  ['']
  runtime      image encoder: auto | torch | onnxruntime | tensorrt | openvino             ['']
  onnx_model   the runtime's exported encoder (rns-export's folder)                        ['']
  use_rviz     start RViz: rviz/rns.rviz with this launch's topics (input, overlay with its
               legend, colourised labels, labelled cloud)                              [false]
  log_level    debug | info | warn | error                                             [info]
  depth_topic  aligned depth image (16UC1/32FC1): turns on depth.enabled and ~/points   ['']
  depth_info_topic  its CameraInfo                  ['' = camera_info next to depth_topic]
  image_transport  raw | compressed (reads <image topic>/compressed)                       ['']
  depth_transport  raw | compressedDepth (reads <depth topic>/compressedDepth)              ['']
  cameras      camera names, 'front, rear' or [front, rear]: several cameras on one node ['']
  camera_topics    input topics, one per camera, either form ('' = <camera>/image)         ['']
  console      start the teaching console (rns_console): a web page to teach this node [false]
  console_host address its web server binds (0.0.0.0 = reachable from a phone)   [127.0.0.1]
  console_port its TCP port                                                            [8765]
  console_token  its access token ('' = a random one, printed with the URL)              ['']
  confidence_encoding  32FC1 | mono8 (~/confidence as probability x 255)                  ['']
  nav2         true: depth on, the depth-aligned outputs on, confidence_encoding mono8, and
               the topics to give Nav2's semantic costmap layer printed                 [false]
  fleet        true: share the support memory with the fleet (fleet.enabled)             [false]
  fleet_topic  the fleet's topic, absolute, the same on every robot                      ['']
  fleet_robot_id  this robot's id in the fleet, unique ('' = node name@host)             ['']

Nav2's semantic costmap layer (docs/ros.md, "Nav2 semantic costmap"):
    ros2 launch rns_ros rns.launch.py nav2:=true image_topic:=/camera/color/image_raw \
        depth_topic:=/camera/aligned_depth_to_color/image_raw

use_rviz:=true checks that rviz2 is installed before anything starts (ros-base has none), so a
missing RViz ends the launch with the install command instead of leaving the node running alone.

Several cameras:
    ros2 launch rns_ros rns.launch.py cameras:="front, left" \
        camera_topics:="/front/color/image_raw, /left/color/image_raw" image_transport:=compressed
With cameras, use_rviz shows the first camera; depth_topic (the single camera's) is refused.

The fleet (docs/teaching.md, "Fleet"): what one robot is taught, the others know:
    ros2 launch rns_ros rns.launch.py namespace:=robot1 fleet:=true

The teaching console (docs/teaching.md) prints the URL to open, token included:
    ros2 launch rns_ros rns.launch.py console:=true console_host:=0.0.0.0
"""
import os

from ament_index_python.packages import PackageNotFoundError, get_package_prefix, get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from rns_ros.ros.demo.rviz_config import write_rviz_config
from rns_ros.ros.name_lists import format_names, parse_names

PACKAGE = "rns_ros"
# Launch arguments passed on as node parameters when not empty (they win over params_file).
PARAMETER_ARGUMENTS = ("device", "classes", "backbone", "checkpoint", "mode", "memory_dir", "image_transport", "cameras",
                       "confidence_encoding", "runtime", "onnx_model")
# nav2:=true: what Nav2's semantic costmap layer needs (it reads one byte per pixel, and a cloud
# with one point per label pixel: the depth-aligned outputs)
NAV2_PARAMETERS = {"depth.enabled": True, "depth.aligned_outputs": True, "confidence_encoding": "mono8"}
RVIZ_MISSING = ("use_rviz:=true but rviz2 is not installed (ros-jazzy-ros-base has no RViz): "
                "install it with `sudo apt install ros-jazzy-rviz2`, or launch without use_rviz")
CAMERAS_DEPTH = ("depth_topic remaps the single camera's depth/image; with cameras, each camera c reads "
                 "c/depth/image and c/depth/camera_info: set depth.enabled: true in params_file and remap "
                 "those topics in a launch file of your own")
ARGUMENTS = {
    "namespace": ("", "namespace of the node ('' = none)"),
    "image_topic": ("/camera/image_raw", "camera topic (sensor_msgs/Image) to segment"),
    "params_file": (None, "parameter YAML (default: the package's config/rns.yaml)"),
    "device": ("", "torch device: cuda, cuda:N or cpu ('' = the params file's)"),
    "classes": ("", "initial class names, 'mug, plate' or [mug, plate] ('' = the params file's)"),
    "backbone": ("", "backbone preset, e.g. openclip-vit-b16; test-tiny = TEST-ONLY random weights "
                     "('' = the params file's)"),
    "checkpoint": ("", "local backbone weights file ('' = the params file's)"),
    "mode": ("", "patch or region ('' = the params file's)"),
    "memory_dir": ("", "support memory directory ('' = the params file's; its default is "
                       "$ROS_HOME/rns_ros/<namespace>/<node name>)"),
    "runtime": ("", "what computes the image encoder: auto, torch, onnxruntime, tensorrt, openvino "
                    "('' = the params file's)"),
    "onnx_model": ("", "the runtime's exported encoder, the folder rns-export wrote ('' = the params file's)"),
    "use_rviz": ("false", "start RViz showing the input, the overlay, the colourised labels and the labelled cloud"),
    "log_level": ("info", "log level of the node: debug, info, warn, error"),
    "depth_topic": ("", "aligned depth image topic (16UC1 mm / 32FC1 m): sets depth.enabled and publishes "
                        "~/points ('' = the params file's depth.enabled, topic depth/image)"),
    "depth_info_topic": ("", "CameraInfo of the depth image ('' = camera_info next to depth_topic)"),
    "image_transport": ("", "raw or compressed (subscribe to <image topic>/compressed) ('' = the params file's)"),
    "depth_transport": ("", "raw or compressedDepth (subscribe to <depth topic>/compressedDepth) "
                            "('' = the params file's depth.transport)"),
    "cameras": ("", "camera names, 'front, rear' or [front, rear]: several cameras on one node "
                    "('' = one camera on image_topic)"),
    "camera_topics": ("", "camera topics, one per name in `cameras`, either form ('' = <camera>/image)"),
    "console": ("false", "start the teaching console (rns_console), a web page that teaches this node"),
    "console_host": ("127.0.0.1", "address the console's web server binds (0.0.0.0: reachable from other machines)"),
    "console_port": ("8765", "TCP port of the console's web server"),
    "console_token": ("", "the console's access token ('' = a random one, printed with the URL)"),
    "confidence_encoding": ("", "32FC1 (probability) or mono8 (probability x 255) ('' = the params file's)"),
    "nav2": ("false", "for Nav2's semantic costmap layer: turns on depth, the depth-aligned outputs and "
                      "confidence_encoding mono8, and prints the topics to give the layer"),
    "fleet": ("false", "share the support memory with the other robots on fleet_topic (sets fleet.enabled; "
                       "false = the params file's)"),
    "fleet_topic": ("", "the fleet's topic, absolute, the same on every robot ('' = the params file's "
                        "fleet.topic, default /rns_fleet/memory)"),
    "fleet_robot_id": ("", "this robot's id in the fleet, unique ('' = the params file's fleet.robot_id; "
                           "its default: the node's name @ host name)"),
}
# fleet arguments -> the parameters they set (when not empty)
FLEET_ARGUMENTS = {"fleet_topic": "fleet.topic", "fleet_robot_id": "fleet.robot_id"}


def _share(*parts: str) -> str:
    return os.path.join(get_package_share_directory(PACKAGE), *parts)


def _rviz_installed() -> bool:
    try:
        get_package_prefix("rviz2")
        return True
    except PackageNotFoundError:
        return False


def _true(text: str) -> bool:
    return text.strip().lower() in ("true", "1", "yes", "on")


def nav2_topics(namespace: str, cameras: list[str], depth_remapped: bool) -> str:
    """What nav2:=true prints: the node's topics for each observation source of the layer."""
    ns = namespace.strip("/")
    node = f"/{ns}/rns" if ns else "/rns"
    lines = ["nav2:=true: give Nav2's semantic costmap layer (semantic_segmentation_layer, branch jazzy; "
             "example: share/rns_ros/config/nav2_semantic_costmap.yaml) these topics"]
    for camera in cameras or [""]:
        prefix = f"{node}/{camera}" if camera else node
        lines.append(f"  {'observation source ' + camera if camera else 'observation source'}: "
                     f"segmentation_topic: {prefix}/aligned/labels, confidence_topic: {prefix}/aligned/confidence, "
                     f"pointcloud_topic: {prefix}/aligned/points, labels_topic: {node}/label_info")
    if not depth_remapped:
        inputs = ", ".join(f"{c}/depth/image" for c in cameras) if cameras else "depth/image"
        lines.append(f"  the depth image is read from {inputs} (and camera_info next to it): "
                     + ("remap them in a launch file of your own" if cameras else "give depth_topic:=..."))
    return "\n".join(lines)


def _names(text: str, what: str) -> list[str]:
    """A list argument in either form users type: 'front, rear' or the ROS list syntax '[front, rear]'."""
    return list(parse_names(text, what))


def _camera_remappings(value: dict) -> list[tuple[str, str]]:
    """<camera>/image -> its topic, for each camera named in `cameras` (in order)."""
    cameras, topics = _names(value["cameras"], "cameras"), _names(value["camera_topics"], "camera_topics")
    if topics and len(topics) != len(cameras):
        raise ValueError(f"camera_topics names {len(topics)} topics for {len(cameras)} cameras {cameras}: "
                         "give one topic per camera, in the same order")
    return [(f"{camera}/image", topic) for camera, topic in zip(cameras, topics)]


def _console(value: dict) -> Node:
    """The teaching console of this launch's node (console:=true)."""
    port = value["console_port"].strip()
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"console_port must be a port number 0..65535, got {port!r}")
    namespace = value["namespace"].strip("/")
    target = f"/{namespace}/rns" if namespace else "/rns"
    parameters = {"target": target, "host": value["console_host"].strip(), "port": int(port)}
    if value["console_token"].strip():
        parameters["token"] = value["console_token"].strip()
    return Node(package=PACKAGE, executable="rns_console", name="rns_console", namespace=value["namespace"],
                parameters=[parameters], output="screen", emulate_tty=True)


def _nodes(context, *args, **kwargs):
    value = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    use_rviz = _true(value["use_rviz"])
    if use_rviz and not _rviz_installed():  # before any process starts: nothing is left running
        raise RuntimeError(RVIZ_MISSING)
    overrides = {key: value[key] for key in PARAMETER_ARGUMENTS if value[key].strip()}
    for key in ("classes", "cameras"):  # either form, passed on as "['a, b', c]": a name holding a comma
        if key in overrides:            # stays one name
            overrides[key] = format_names(_names(overrides[key], key))
    remappings = [("image", value["image_topic"])] + _camera_remappings(value)
    cameras = _names(value["cameras"], "cameras")
    depth_topic = value["depth_topic"].strip()
    if depth_topic and cameras:
        raise ValueError(CAMERAS_DEPTH)
    if depth_topic:
        info_topic = value["depth_info_topic"].strip() or depth_topic.rsplit("/", 1)[0] + "/camera_info"
        remappings += [("depth/image", depth_topic), ("depth/camera_info", info_topic)]
        overrides["depth.enabled"] = True
    if value["depth_transport"].strip():
        overrides["depth.transport"] = value["depth_transport"].strip()
    if _true(value["fleet"]):
        overrides["fleet.enabled"] = True
    overrides.update({parameter: value[name].strip() for name, parameter in FLEET_ARGUMENTS.items()
                      if value[name].strip()})
    notes = []
    if _true(value["nav2"]):
        if overrides.get("confidence_encoding", "mono8") != "mono8":
            raise ValueError("nav2:=true sets confidence_encoding mono8 (Nav2's semantic layer reads confidence as "
                             "one byte per pixel): leave confidence_encoding out or set it to mono8")
        overrides.update(NAV2_PARAMETERS)
        notes.append(LogInfo(msg=nav2_topics(value["namespace"], cameras, bool(depth_topic))))
    parameters = [value["params_file"]] + ([overrides] if overrides else [])
    console = _console(value) if _true(value["console"]) else None  # its arguments checked before any start
    actions = [Node(
        package=PACKAGE, executable="rns_node", name="rns", namespace=value["namespace"],
        parameters=parameters, remappings=remappings,
        ros_arguments=["--log-level", value["log_level"]], output="screen", emulate_tty=True,
        # OpenMP threads sleep instead of spinning while they wait: with other processes on the
        # cores, spinning made the backbone several times slower (docs/backbones.md, "Profiles")
        additional_env={"OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")})]
    if use_rviz:
        # the package's view, its topics moved to this launch's namespace and camera (with several
        # cameras: the first one's input and outputs, ~/<camera>/overlay ...)
        view = {"image_topic": value["image_topic"]}
        if cameras:
            view = {"image_topic": dict(remappings).get(f"{cameras[0]}/image", f"{cameras[0]}/image"),
                    "node_name": f"rns/{cameras[0]}"}
        config = write_rviz_config(_share("rviz", "rns.rviz"), namespace=value["namespace"],
                                   show_cloud=bool(depth_topic), **view)
        actions.append(Node(package="rviz2", executable="rviz2", name="rns_rviz", arguments=["-d", config],
                            output="screen"))
    if console is not None:
        actions.append(console)
    return actions + notes


def generate_launch_description():
    declared = [DeclareLaunchArgument(name, default_value=default if default is not None
                                      else _share("config", "rns.yaml"), description=description)
                for name, (default, description) in ARGUMENTS.items()]
    return LaunchDescription(declared + [OpaqueFunction(function=_nodes)])
