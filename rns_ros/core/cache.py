"""Where the engine keeps what it builds once per machine: the adapter's compiled kernel, the ONNX
exports and compiled engines of the runtimes. `$RNS_ROS_CACHE_DIR`, default
`$XDG_CACHE_HOME/rns_ros` (~/.cache/rns_ros). Everything in it can be deleted; it is rebuilt on use."""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    if os.environ.get("RNS_ROS_CACHE_DIR"):
        return Path(os.environ["RNS_ROS_CACHE_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "rns_ros"
