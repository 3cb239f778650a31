"""Real ROS 2 in pytest (docs: ../shared/docs/ros2-on-pip.md, "Testing rclpy in pytest"): the
harness and fixtures of test/ros, also used by test/console (each conftest imports them).

Before the first rclpy.init: localhost-only discovery, a random domain per test run (parallel
runs on one machine do not hear each other), the venv as the ament prefix. Each test gets its own
Context and a MultiThreadedExecutor spinning in a thread; teardown follows the one order that
never aborts the process: executor.shutdown(), join, destroy nodes, try_shutdown.
"""
from __future__ import annotations

import os
import random
import sys
import time

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ["ROS_DOMAIN_ID"] = str(random.SystemRandom().randint(1, 101))
os.environ["AMENT_PREFIX_PATH"] = sys.prefix
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import rclpy  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402

from rns_ros.ros.spinning import spin_in_thread, stop_executor  # noqa: E402

# /rosout as rcl publishes it (reliable, transient local): a late subscriber gets the earlier lines too.
ROSOUT_QOS = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


class RosHarness:
    """One rclpy context, an executor spinning in a thread, and helpers to poll for conditions."""

    def __init__(self):
        self.context = Context()
        rclpy.init(context=self.context)
        self.executor = MultiThreadedExecutor(num_threads=4, context=self.context)
        self.nodes: list[Node] = []
        self._thread = spin_in_thread(self.executor)

    def add(self, node: Node) -> Node:
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def node(self, name: str) -> Node:
        """A plain helper node (publishers/subscriptions of the test) in this context."""
        return self.add(Node(name, context=self.context))

    @staticmethod
    def wait_for(condition, timeout: float = 10.0, what: str = "condition"):
        """Poll `condition()` every 5 ms until truthy (returned) or fail after `timeout` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(0.005)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    def close(self):
        stop_executor(self.executor, self._thread)
        for node in self.nodes:
            if hasattr(node, "close"):
                node.close()
            node.destroy_node()
        rclpy.try_shutdown(context=self.context)


@pytest.fixture(autouse=True)
def isolated_ros_home(tmp_path, monkeypatch):
    """Each test (and every node process it starts) gets its own ROS_HOME, so that the node's
    default memory directory ($ROS_HOME/rns_ros/<node>) is never shared between tests or with
    the user's ~/.ros."""
    home = tmp_path / "ros_home"
    home.mkdir()
    monkeypatch.setenv("ROS_HOME", str(home))
    return home


@pytest.fixture
def ros():
    harness = RosHarness()
    try:
        yield harness
    finally:
        harness.close()
