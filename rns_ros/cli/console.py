"""`rns_console`: the teaching console, a web page to teach a running rns node (docs/teaching.md).

    rns_console --ros-args -p target:=/rns -p port:=8765

It prints the URL to open, token included (`http://127.0.0.1:8765/?token=...`). The console itself
(node, web app, page) is rns_ros/console; this is its process: parameters, the executor, the web
server until SIGINT / SIGTERM, and the exit code (2 for bad parameters or a missing web server
package, 1 when the port cannot be opened).
"""
from __future__ import annotations

import signal
import sys
import textwrap

import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.signals import SignalHandlerOptions

from rns_ros.console.settings import PARAMETERS, defaults
from rns_ros.ros.spinning import spin_in_thread, stop_executor

MISSING_SERVER = ("rns_console needs its web server packages: pip install starlette==1.10.0 uvicorn==0.54.0 "
                  "(scripts/setup.sh installs them; pyproject.toml's `console` extra)")


def usage() -> str:
    lines = [__doc__.split("\n\n")[0], "", "  " + __doc__.split("\n\n")[1].strip(), "",
             "Parameters (-p name:=value):"]
    for name, default in defaults().items():
        lines.append(f"  {name} (default {default!r})")
        lines.append(textwrap.fill(PARAMETERS[name], 100, initial_indent=" " * 6, subsequent_indent=" " * 6))
    return "\n".join(lines)


def _wants_help(args: list[str]) -> bool:
    ours = args[1:args.index("--ros-args")] if "--ros-args" in args else args[1:]
    return "-h" in ours or "--help" in ours


def main(args: list[str] | None = None) -> int:
    args = args if args is not None else sys.argv
    if _wants_help(args):
        print(usage())
        return 0
    try:
        from rns_ros.console.node import ConsoleNode
        from rns_ros.console.server import ConsoleServer
    except ImportError as exc:
        if exc.name not in ("starlette", "uvicorn"):
            raise
        print(f"{MISSING_SERVER} ({exc})", file=sys.stderr)
        return 2
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)  # uvicorn takes the signals
    try:
        node = ConsoleNode()
    except ValueError as exc:
        print(f"rns_console: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    executor = MultiThreadedExecutor(num_threads=4)
    executor.add_node(node)
    thread = spin_in_thread(executor)
    try:
        try:
            server = ConsoleServer(node)
        except OSError as exc:
            print(f"rns_console: cannot listen on {node.config.host}:{node.config.port}: {exc}; "
                  "choose another port (-p port:=8766, or 0 for any free one)", file=sys.stderr)
            return 1
        print(f"rns_console: teaching {node.config.target}; open {server.url}", flush=True)
        if node.config.host not in ("127.0.0.1", "localhost", "::1"):
            print(f"rns_console: listening on {node.config.host}: anyone on the network with the token can "
                  "teach the robot (plain HTTP: keep the network trusted)", flush=True)
        for signum in (signal.SIGINT, signal.SIGTERM):  # uvicorn hands the signal on once it has stopped
            signal.signal(signum, lambda *_: None)
        server.run()
        return 0
    finally:
        stop_executor(executor, thread)
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
