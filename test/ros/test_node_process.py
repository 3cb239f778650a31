"""`rns_node` as a process, as a ROS 2 user drives it: errors inside callbacks never end it, and
SIGINT stops the worker before the ROS context goes."""
import os
import signal
import subprocess
import sys

from geometry_msgs.msg import PointStamped
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from messages import make_image, random_rgb
from node_processes import ROOT, start_node, stop
from rns_ros.srv import ListClasses
from teaching_helpers import call

RELIABLE = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)


def test_accepted_and_refused_clicks_do_not_end_the_process(ros, tmp_path):
    """The reported crash: `ros2 param set /rns teach_class "my mug"`, then one accepted and one
    refused click on ~/click, in either order; rns_node exited with code 2."""
    name = f"rns_clicks_{os.getpid()}"
    proc, log = start_node(tmp_path, name, "-p", "backbone:=test-tiny", "-p", "device:=cpu",
                           "-p", "regions.model:=test-tiny", "-p", "classes:=wall", "-p", "image_qos:=reliable")
    try:
        helper = ros.node("helper")
        listing = helper.create_client(ListClasses, f"/{name}/list_classes")
        ros.wait_for(lambda: listing.service_is_ready() or proc.poll() is not None, timeout=90, what="node process")
        assert proc.poll() is None, log.read_text()
        set_params = helper.create_client(SetParameters, f"/{name}/set_parameters")
        teach = ParameterMsg(name="teach_class", value=ParameterValue(type=ParameterType.PARAMETER_STRING,
                                                                      string_value="my mug"))
        assert call(ros, set_params, SetParameters.Request(parameters=[teach])).results[0].successful
        frames = helper.create_publisher(Image, "/image", RELIABLE)
        clicks = helper.create_publisher(PointStamped, f"/{name}/click", 10)
        ros.wait_for(lambda: frames.get_subscription_count() and clicks.get_subscription_count(), what="discovery")
        labels = []
        helper.create_subscription(Image, f"/{name}/labels", labels.append, 10)
        ros.wait_for(lambda: frames.get_subscription_count() and helper.count_publishers(f"/{name}/labels"),
                     what="labels publisher")
        frames.publish(make_image(random_rgb(48, 64, seed=1), "rgb8"))
        ros.wait_for(lambda: labels, timeout=60, what="the frame segmented: the node's latest before the clicks")
        for i, x in enumerate((30.0, 5000.0, 5001.0, 40.0)):  # accepted, refused, refused, accepted
            click = PointStamped()
            click.point.x, click.point.y = x, 20.0
            clicks.publish(click)
            ros.wait_for(lambda: proc.poll() is not None or log.read_text().count("click at (") > i, timeout=60,
                         what=f"click {i} answered")

        def taught():
            classes = call(ros, listing, ListClasses.Request()).class_map.classes
            return [len(c.exemplar_ids) for c in classes if c.name == "my mug"] == [2]

        ros.wait_for(lambda: proc.poll() is not None or taught(), timeout=60, what="both accepted clicks taught")
        assert proc.poll() is None, log.read_text()
    finally:
        code = stop(proc)
    text = log.read_text()
    assert code == 0, text
    assert text.count("refused: points") == 2 and "severity cannot be changed" not in text


def test_sigint_during_a_frame_stops_the_worker_before_the_context(ros, tmp_path):
    """A frame in the engine when SIGINT arrives used to be published after rclpy had shut the
    context down ('frame failed: ... publisher's context is invalid')."""
    name = f"rns_sigint_{os.getpid()}"
    started = tmp_path / "frames_started"
    code = ("from fakes import FakeEngine; from rns_ros.cli.node import main; "
            f"sys.exit(main(engine_factory=lambda cfg: FakeEngine(cfg, delay_s=2.0, started_file={str(started)!r})))")
    proc, log = start_node(tmp_path, name, "-p", "classes:=a", "-p", "image_qos:=reliable", code=code)
    try:
        helper = ros.node("helper")
        labels = []
        helper.create_subscription(Image, f"/{name}/labels", labels.append, 10)
        frames = helper.create_publisher(Image, "/image", RELIABLE)
        ros.wait_for(lambda: frames.get_subscription_count() or proc.poll() is not None, timeout=60, what="node")
        assert proc.poll() is None, log.read_text()
        frames.publish(make_image(random_rgb(8, 8, seed=1), "rgb8", stamp=(1, 0)))
        ros.wait_for(lambda: labels, timeout=30, what="the first frame's labels")
        frames.publish(make_image(random_rgb(8, 8, seed=2), "rgb8", stamp=(2, 0)))
        ros.wait_for(lambda: started.read_text().count("frame") == 2, timeout=30,
                     what="the second frame inside the 2 s engine call")
        proc.send_signal(signal.SIGINT)
        exit_code = proc.wait(timeout=60)
    finally:
        stop(proc)
    text = log.read_text()
    assert exit_code == 0, text
    assert "frame failed" not in text and "context is invalid" not in text, text


def test_help_lists_the_parameters_and_starts_nothing():
    """`rns_node --help` prints how to start it and every parameter with its default; it used to
    start the node (and wait for a camera)."""
    from rns_ros.ros import params
    env = dict(os.environ, PYTHONPATH=str(ROOT), ROS_DOMAIN_ID="233")
    done = subprocess.run([sys.executable, "-m", "rns_ros.cli.node", "--help"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "rns_node --ros-args -r image:=" in done.stdout
    for spec in params.PARAMETERS:
        assert f"  {spec.name} (default " in done.stdout
    assert done.stderr == ""  # no node log lines: nothing was started


def test_help_after_ros_args_belongs_to_ros():
    from rns_ros.cli.node import _wants_help
    assert _wants_help(["rns_node", "-h"]) and _wants_help(["rns_node", "--help", "--ros-args", "-p", "a:=1"])
    assert not _wants_help(["rns_node", "--ros-args", "--help"])
