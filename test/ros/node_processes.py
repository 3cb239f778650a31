"""`rns_node` as a separate process, started and stopped as a ROS 2 user does (the tests that need a
real process: signals, several robots on one graph)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from rns_ros.ros.spinning import stop_process

ROOT = Path(__file__).resolve().parents[2]
MAIN = "from rns_ros.cli.node import main; sys.exit(main())"


def start_node(log_dir: Path, name: str, *ros_args: str, code: str = MAIN, namespace: str = "",
               memory_dir: Path | None = None) -> tuple[subprocess.Popen, Path]:
    """Start node `name` (in `namespace`) with its memory in `memory_dir` (default log_dir/'mem');
    its output goes to a log file in `log_dir`, returned with the process."""
    log_path = log_dir / f"{namespace.strip('/').replace('/', '_')}_{name}.log".lstrip("_")
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "test" / "ros")]))
    names = ["-r", f"__node:={name}"] + (["-r", f"__ns:={namespace}"] if namespace else [])
    cmd = [sys.executable, "-c", f"import sys; {code}", "--ros-args", *names,
           "-p", f"memory_dir:={memory_dir or log_dir / 'mem'}", *ros_args]
    with open(log_path, "a") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    return proc, log_path


def stop(proc: subprocess.Popen) -> int:
    """SIGINT (what Ctrl-C sends), then the exit code; terminate if it hangs."""
    return stop_process(proc)
