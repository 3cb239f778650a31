"""Lifecycle transitions (local and through the lifecycle services) and parameter validation."""
import pytest
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from fakes import FakeEngine
from messages import make_image, random_rgb
from rns_ros.ros.engine import build_engine
from rns_ros.ros.node import RnsNode


class Factory:
    """Builds a new FakeEngine per configure and remembers every config and engine."""

    def __init__(self, error: Exception | None = None):
        self.error, self.configs, self.engines = error, [], []

    def __call__(self, config):
        self.configs.append(config)
        if self.error is not None:
            raise self.error
        self.engines.append(FakeEngine(config))
        return self.engines[-1]


def manual_node(ros, factory, **overrides):
    params = [Parameter("autostart", value=False), Parameter("classes", value="a, b")]
    params += [Parameter(k, value=v) for k, v in overrides.items()]
    return ros.add(RnsNode(engine_factory=factory, context=ros.context, parameter_overrides=params))


def call(ros, client, request, timeout=10.0):
    ros.wait_for(lambda: client.service_is_ready(), what=f"service {client.srv_name}")
    future = client.call_async(request)
    ros.wait_for(future.done, timeout, what=f"answer of {client.srv_name}")
    return future.result()


def test_transitions_load_subscribe_stop_and_free(ros):
    factory = Factory()
    node = manual_node(ros, factory, device="cpu")
    helper = ros.node("helper")
    labels = []
    helper.create_subscription(Image, "/rns/labels", labels.append, 10)
    pub = helper.create_publisher(Image, "image", qos_profile_sensor_data)

    assert node.engine is None and factory.configs == []  # unconfigured: nothing loaded
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert factory.configs[0].device == "cpu" and node.engine is factory.engines[0]
    assert [c.name for c in node.engine.classes()] == ["a", "b"]
    assert pub.get_subscription_count() == 0  # configured but inactive: not subscribed

    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    ros.wait_for(lambda: pub.get_subscription_count() == 1 and node.outputs.publishers["labels"].get_subscription_count() == 1)
    pub.publish(make_image(random_rgb(8, 8), "rgb8", stamp=(1, 0)))
    ros.wait_for(lambda: labels, what="labels while active")

    assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    assert not node.frame_loop.running
    ros.wait_for(lambda: pub.get_subscription_count() == 0, what="unsubscribed")
    pub.publish(make_image(random_rgb(8, 8), "rgb8", stamp=(2, 0)))
    assert len(factory.engines[0].segmented) == 1  # nothing processed while inactive

    engine = node.engine
    assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
    assert engine.closed and node.engine is None and node.outputs is None

    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS  # and again, with a fresh engine
    assert len(factory.engines) == 2 and node.engine is factory.engines[1]


def test_failed_configure_stays_unconfigured_and_says_why(ros):
    factory = Factory(error=FileNotFoundError("weights are not in the local cache; pass checkpoint:=FILE"))
    node = manual_node(ros, factory)
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert node.engine is None and "pass checkpoint:=FILE" in node._last_transition_error
    factory.error = None
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS  # fixable without a restart


def test_autostart_failure_is_reported(ros):
    node = ros.add(RnsNode(engine_factory=Factory(error=RuntimeError("no CUDA device")), context=ros.context))
    assert node.autostart_error and "no CUDA device" in node.autostart_error


def test_lifecycle_services_drive_the_node(ros):
    node = manual_node(ros, Factory())
    helper = ros.node("helper")
    change = helper.create_client(ChangeState, "/rns/change_state")
    get = helper.create_client(GetState, "/rns/get_state")
    for transition in (Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE):
        assert call(ros, change, ChangeState.Request(transition=Transition(id=transition))).success
    assert call(ros, get, GetState.Request()).current_state.id == State.PRIMARY_STATE_ACTIVE
    assert node._active and node.cameras[0].subscription is not None
    assert call(ros, change, ChangeState.Request(transition=Transition(id=Transition.TRANSITION_DEACTIVATE))).success
    assert call(ros, get, GetState.Request()).current_state.id == State.PRIMARY_STATE_INACTIVE


def test_parameter_validation_refuses_bad_values_with_a_reason(ros):
    node = manual_node(ros, Factory())
    results = node.set_parameters([Parameter("adapter.steps", value=0)])
    assert not results[0].successful and "adapter.steps" in results[0].reason
    results = node.set_parameters([Parameter("device", value="gpu")])
    assert not results[0].successful and "device" in results[0].reason
    results = node.set_parameters([Parameter("backbone", value="dinov4-vitl16")])
    assert not results[0].successful and "unknown backbone" in results[0].reason
    for name in ("dinov3txt-vitl16", "siglip2-vitl16-512", "openclip:ViT-L-14"):  # names only: weights load on configure
        assert node.set_parameters([Parameter("backbone", value=name)])[0].successful
    results = node.set_parameters([Parameter("classes", value="x, x")])
    assert not results[0].successful and "unique" in results[0].reason
    assert node.get_parameter("adapter.steps").value == 700 and node.get_parameter("device").value == "cuda"
    # good values while unconfigured are taken
    assert node.set_parameters([Parameter("device", value="cpu")])[0].successful
    assert node.engine_config.device == "cpu"


def test_configure_time_parameters_are_refused_while_configured_runtime_ones_apply(ros):
    factory = Factory()
    node = manual_node(ros, factory)
    node.trigger_configure()
    result = node.set_parameters([Parameter("backbone", value="test-tiny")])[0]
    assert not result.successful and "read on configure" in result.reason
    assert node.set_parameters([Parameter("overlay_alpha", value=0.9)])[0].successful
    assert node.node_config.overlay_alpha == 0.9
    assert node.set_parameters([Parameter("adapter.steps", value=12)])[0].successful
    assert factory.engines[0].adapter_configs[-1].steps == 12  # the engine got the new adapter settings
    node.trigger_cleanup()
    assert node.set_parameters([Parameter("backbone", value="test-tiny")])[0].successful


def test_remote_set_parameters_is_validated_too(ros):
    manual_node(ros, Factory())
    helper = ros.node("helper")
    client = helper.create_client(SetParameters, "/rns/set_parameters")
    bad = ParameterMsg(name="overlay_alpha", value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=3.0))
    result = call(ros, client, SetParameters.Request(parameters=[bad])).results[0]
    assert not result.successful and "overlay_alpha" in result.reason


def test_unknown_parameter_overrides_are_refused_at_start(ros):
    with pytest.raises(ValueError, match="unknown parameter.*'clases'"):
        RnsNode(engine_factory=Factory(), context=ros.context,
                parameter_overrides=[Parameter("autostart", value=False), Parameter("clases", value="a")])


def test_setting_a_configure_time_parameter_to_its_current_value_is_accepted(ros):
    """`ros2 param load` of the node's own `ros2 param dump` sets every parameter to its value."""
    from rcl_interfaces.srv import GetParameters, ListParameters

    node = manual_node(ros, Factory(), device="cpu")
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    helper = ros.node("helper")
    names = call(ros, helper.create_client(ListParameters, "/rns/list_parameters"), ListParameters.Request()).result.names
    values = call(ros, helper.create_client(GetParameters, "/rns/get_parameters"),
                  GetParameters.Request(names=names)).values
    dump = [ParameterMsg(name=n, value=v) for n, v in zip(names, values) if n in node_param_names()]
    results = call(ros, helper.create_client(SetParameters, "/rns/set_parameters"),
                   SetParameters.Request(parameters=dump)).results
    assert [(p.name, r.reason) for p, r in zip(dump, results) if not r.successful] == []
    assert len(dump) == len(node_param_names())
    # a real change of a configure-time parameter is still refused while configured
    result = node.set_parameters([Parameter("device", value="cuda")])[0]
    assert not result.successful and "read on configure" in result.reason


def node_param_names():
    from rns_ros.ros import params

    return set(params.SPECS)


def test_every_transition_and_a_manual_start_are_logged(ros, capfd):
    node = manual_node(ros, Factory())
    node.trigger_configure()
    node.trigger_activate()
    node.trigger_deactivate()
    node.trigger_cleanup()
    node.trigger_shutdown()
    err = capfd.readouterr().err
    for line in ("unconfigured, waiting for a lifecycle manager (autostart is false): "
                 "ros2 lifecycle set /rns configure", "configured on cpu", "active: segmenting /image",
                 "inactive: stopped segmenting", "cleaned up: models and memory_dir released", "shut down"):
        assert line in err, line


def test_a_missing_onnx_model_fails_the_configure_naming_the_node_parameter(ros, tmp_path):
    node = manual_node(ros, build_engine, device="cpu", classes="a", backbone="test-tiny",
                       runtime="onnxruntime", onnx_model=str(tmp_path / "nowhere"))
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    error = node._last_transition_error
    assert "does not exist" in error and "-p onnx_model:=DIR" in error and "--onnx-model" not in error


def test_a_runtimes_one_time_export_is_said_in_the_nodes_log(ros, tmp_path, monkeypatch, capfd):
    """Checked with the real ros2 launch (jazzy): `runtime:=onnxruntime` exported the encoder into
    the cache during configure (20-40 s for ViT-B/16) and the node's log said nothing about it; the
    core logged it through Python's logging, which a ROS node does not show."""
    import logging

    monkeypatch.setenv("RNS_ROS_CACHE_DIR", str(tmp_path / "cache"))  # nothing exported yet
    core_logger = logging.getLogger("rns_ros")
    before = (list(core_logger.handlers), core_logger.level, core_logger.propagate)
    node = manual_node(ros, build_engine, device="cpu", classes="a", backbone="test-tiny", runtime="onnxruntime")
    capfd.readouterr()
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    err = capfd.readouterr().err
    export_lines = [line for line in err.splitlines() if "no cached ONNX export of test-tiny" in line]
    assert len(export_lines) == 1, err
    export_line = export_lines[0]
    assert "[rns]:" in export_line and str(tmp_path / "cache" / "onnx") in export_line  # the node's logger
    assert "exported in" in err and list((tmp_path / "cache" / "onnx").glob("*/encoder.onnx"))
    assert (list(core_logger.handlers), core_logger.level, core_logger.propagate) == before  # as it was
    assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
    capfd.readouterr()
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS  # the second time: from the cache
    err = capfd.readouterr().err
    assert "dense encoder on onnxruntime" in err and "no cached ONNX export" not in err


def test_the_core_log_keeps_its_severity_on_the_ros_logger():
    import logging

    from rns_ros.ros.engine_log import core_log_on

    class Recorder:
        def __init__(self):
            self.lines = []
            self.info = lambda text: self.lines.append(("info", text))
            self.warning = lambda text: self.lines.append(("warning", text))
            self.error = lambda text: self.lines.append(("error", text))

    ros_logger, core = Recorder(), logging.getLogger("rns_ros.runtimes")
    with core_log_on(ros_logger):
        core.debug("not shown")
        core.info("exporting %s", "x")
        core.warning("slow")
        core.error("failed")
    core.info("after the block: not forwarded")
    assert ros_logger.lines == [("info", "exporting x"), ("warning", "slow"), ("error", "failed")]


def test_missing_weights_name_the_node_parameters_not_the_cli_or_the_api(ros, tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    node = manual_node(ros, build_engine, device="cpu", classes="a")  # the real engine factory
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    error = node._last_transition_error
    assert "-p checkpoint:=/path/open_clip_pytorch_model.bin" in error and "-p backbone:=test-tiny" in error
    assert "rns-segment" not in error and "build_backbone" not in error
    node.set_parameters([Parameter("backbone", value="test-tiny"), Parameter("mode", value="region")])
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE  # region mode: SAM 2 needs weights
    error = node._last_transition_error
    assert "-p regions.checkpoint:=/path/to/sam2.1_hiera_large.pt" in error and "checkpoint='" not in error
