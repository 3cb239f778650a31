"""test/console: the teaching console against a real rns node (test-tiny) in this process, and a
real headless Chromium. The ROS harness and helpers of test/ros are shared (ros_harness.py,
messages.py, teaching_helpers.py)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ros"))

from ros_harness import isolated_ros_home, ros  # noqa: E402, F401 - fixtures
