"""The node's memory survives a SIGKILL right after an acknowledged change, and a corrupt memory is
set aside (never overwritten), reported, and the node starts with what it can read."""
import os
import signal
import subprocess
import sys

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter

from rns_ros.core.memory.persistence import load_memory
from rns_ros.ros.node import RnsNode
from rns_ros.srv import AddClasses, ListClasses
from teaching_helpers import call, tiny_engine


def test_sigkill_right_after_an_acknowledged_change_keeps_it(ros, tmp_path):
    memory_dir = tmp_path / "mem"
    name = f"rns_kill_{os.getpid()}"
    # UDP only: a SIGKILLed process cannot clean Fast DDS shared-memory segments up
    env = dict(os.environ, FASTDDS_BUILTIN_TRANSPORTS="UDPv4", HF_HUB_OFFLINE="1")
    proc = subprocess.Popen([sys.executable, "-m", "rns_ros.cli.node", "--ros-args", "-r", f"__node:={name}",
                             "-p", "backbone:=test-tiny", "-p", "device:=cpu", "-p", "classes:=wall",
                             "-p", f"memory_dir:={memory_dir}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        helper = ros.node("helper")
        add = helper.create_client(AddClasses, f"/{name}/add_classes")
        ros.wait_for(lambda: add.service_is_ready() or proc.poll() is not None, timeout=90, what="node process")
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        res = call(ros, add, AddClasses.Request(names=["my mug"], descriptions=["a red mug"]))
        assert res.success, res.message
        proc.send_signal(signal.SIGKILL)  # no chance to flush anything after the answer
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    memory, report = load_memory(memory_dir)
    assert report.ok and [(c.id, c.name, c.prompt) for c in memory.classes] == [(1, "wall", None),
                                                                                 (2, "my mug", "a red mug")]
    # restart (in-process, same memory_dir): the change is there, ids unchanged, the next id is new
    node = ros.add(RnsNode("rns_restarted", engine_factory=lambda cfg: tiny_engine(), context=ros.context,
                           parameter_overrides=[Parameter("classes", value="wall"),
                                                Parameter("memory_dir", value=str(memory_dir))]))
    assert node.autostart_error is None
    assert [(e.id, e.name) for e in node.engine.classes()] == [(1, "wall"), (2, "my mug")]
    res = node.teacher.add_classes(AddClasses.Request(names=["plate"]), AddClasses.Response())
    assert list(res.class_ids) == [3]


def test_corrupt_memory_is_set_aside_reported_and_the_node_starts(ros, tmp_path):
    memory_dir = tmp_path / "mem"
    memory_dir.mkdir()
    (memory_dir / "memory.json").write_bytes(b"{ this is not json")
    node = ros.add(RnsNode(engine_factory=lambda cfg: tiny_engine(), context=ros.context, parameter_overrides=[
        Parameter("classes", value="floor"), Parameter("memory_dir", value=str(memory_dir)),
        Parameter("diagnostics_period_s", value=0.1)]))
    assert node.autostart_error is None
    assert [e.name for e in node.engine.classes()] == ["floor"]
    aside = [p for p in memory_dir.iterdir() if p.name.startswith("memory.json.corrupt-")]
    assert len(aside) == 1 and aside[0].read_bytes() == b"{ this is not json"  # kept, byte for byte
    assert [c.name for c in load_memory(memory_dir)[0].classes] == ["floor"]  # a fresh, good save
    helper = ros.node("helper")
    diags = []
    helper.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 10)
    ros.wait_for(lambda: diags, what="diagnostics")
    status = diags[-1].status[0]
    values = {kv.key: kv.value for kv in status.values}
    assert status.level == b"\x01" and "unreadable" in values["memory_load_problems"]
    res = call(ros, helper.create_client(ListClasses, "/rns/list_classes"), ListClasses.Request())
    assert res.success and [c.name for c in res.class_map.classes] == ["floor"]


def test_nodes_in_two_namespaces_keep_two_memories(ros, isolated_ros_home):
    """Default memory_dir = $ROS_HOME/rns_ros/<namespace>/<name>: robot1 and robot2 never share one."""
    nodes = {ns: ros.add(RnsNode(engine_factory=lambda cfg: tiny_engine(), context=ros.context, namespace=ns,
                                 parameter_overrides=[Parameter("classes", value=f"{ns} thing")]))
             for ns in ("robot1", "robot2")}
    for ns, node in nodes.items():
        assert node.autostart_error is None, node.autostart_error
        assert node.teacher.store.directory == isolated_ros_home / "rns_ros" / ns / "rns"
        res = node.teacher.add_classes(AddClasses.Request(names=[f"{ns} mug"]), AddClasses.Response())
        assert res.success and list(res.class_ids) == [2]
    for ns in nodes:
        memory, report = load_memory(isolated_ros_home / "rns_ros" / ns / "rns")
        assert report.ok and [(c.id, c.name) for c in memory.classes] == [(1, f"{ns} thing"), (2, f"{ns} mug")]


def test_a_second_node_on_the_same_memory_dir_refuses_to_configure_and_names_the_holder(ros, tmp_path):
    shared = [Parameter("memory_dir", value=str(tmp_path / "mem")), Parameter("classes", value="wall")]
    first = ros.add(RnsNode(engine_factory=lambda cfg: tiny_engine(), context=ros.context, namespace="robot1",
                            parameter_overrides=shared))
    assert first.autostart_error is None
    second = ros.add(RnsNode(engine_factory=lambda cfg: tiny_engine(), context=ros.context, namespace="robot2",
                             parameter_overrides=shared))
    error = second.autostart_error
    assert error and "could not use the memory directory" in error and str(tmp_path / "mem") in error
    assert f"pid {os.getpid()}" in error and "(node /robot1/rns)" in error and "-p memory_dir:=" in error
    assert second.engine is None and second.teacher is None
    first.trigger_deactivate()
    first.trigger_cleanup()  # the first node lets go of the directory: now the second one may use it
    assert second.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert [e.name for e in second.engine.classes()] == ["wall"]
