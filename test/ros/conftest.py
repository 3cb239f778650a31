"""test/ros: real ROS 2 in pytest; the harness and its fixtures live in ros_harness.py (shared
with test/console)."""
from ros_harness import isolated_ros_home, ros  # noqa: F401 - fixtures
