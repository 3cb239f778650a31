"""`rns_node`: the `rns` lifecycle node: camera images in, label images, class map, confidence, overlay out.

    rns_node --ros-args -r image:=/camera/image_raw --params-file config/rns.yaml

The node itself (lifecycle, parts, topics) is rns_ros/ros/node.py; this is its process: ROS
arguments, signals, the executor and the exit code.
"""
from __future__ import annotations

import os
import signal
import sys
import textwrap
import threading

# An entry point (rns_node, also without the launch file): OpenMP threads sleep instead of spinning
# while they wait, unless the caller chose otherwise; read when torch loads, a few imports below
# (docs/backbones.md: spinning threads made CPU forwards several times slower on a busy machine).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import rclpy  # noqa: E402 - after the OpenMP setting
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor  # noqa: E402
from rclpy.signals import SignalHandlerOptions  # noqa: E402

from rns_ros.ros import params  # noqa: E402
from rns_ros.ros.engine import EngineFactory, build_engine  # noqa: E402
from rns_ros.ros.node import RnsNode  # noqa: E402
from rns_ros.ros.spinning import stop_executor  # noqa: E402


def _wants_help(args: list[str]) -> bool:
    """-h / --help before any --ros-args (after it, the words belong to ROS)."""
    ours = args[1:args.index("--ros-args")] if "--ros-args" in args else args[1:]
    return "-h" in ours or "--help" in ours


def usage() -> str:
    """What `rns_node --help` prints: how to start it, then every parameter with its default."""
    lines = [__doc__.split("\n\n")[0], "", "  " + __doc__.split("\n\n")[1].strip(), "",
             "Parameters (-p name:=value or --params-file; docs/ros.md has the full table):"]
    for spec in params.PARAMETERS:
        lines.append(f"  {spec.name} (default {params.default_value(spec)!r})")
        lines.append(textwrap.fill(spec.description, 100, initial_indent=" " * 6, subsequent_indent=" " * 6))
    return "\n".join(lines)


def main(args: list[str] | None = None, engine_factory: EngineFactory = build_engine) -> int:
    """Console script `rns_node`: run the node until SIGINT / SIGTERM (exit 0). Exit 2 for bad
    parameters, 1 if autostart fails.

    rclpy's own signal handler would shut the context down at once, while the worker may still be
    publishing a frame ("publisher's context is invalid"); here a signal only ends the spin loop, and
    the node stops its worker before the context goes.
    """
    args = args if args is not None else sys.argv
    if _wants_help(args):
        print(usage())
        return 0
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        node = RnsNode(engine_factory=engine_factory)
    except ValueError as exc:  # bad parameters: refuse to start, say why
        print(f"rns_node: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    executor = MultiThreadedExecutor(num_threads=4)
    code = 0
    try:
        if node.autostart_error:
            node.get_logger().fatal(f"autostart failed, exiting: {node.autostart_error}")
            code = 1
        else:
            executor.add_node(node)
            while not stop.is_set() and rclpy.ok():
                try:
                    executor.spin_once(timeout_sec=0.1)  # returns often, so a signal is seen at once
                except ExternalShutdownException:
                    break
                except Exception as exc:  # noqa: BLE001 - an error a callback let out: never the end
                    node.guard.record("executor", exc)
    finally:
        stop_executor(executor)
        node.close()  # the worker ends (after its current frame) while the context is still valid
        node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
