"""The console's settings: one frozen dataclass with every default, and the table of its ROS
parameters (name -> field, description), from which the node declares them and the docs list them.

    ConsoleConfig(port=8765, target="/robot1/rns")     # what the parameters build
    config_from_parameters({"port": 9000, ...})        # unknown names and bad values: ValueError

Values are checked in `ConsoleConfig.__post_init__`, so the node's parameters and a Python caller
are refused with the same reasons.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")  # URL-safe, long enough not to be guessed
NODE_NAME = re.compile(r"^(/[A-Za-z_][A-Za-z0-9_]*)+$")  # a fully qualified node name


@dataclass(frozen=True)
class ConsoleConfig:
    """Every setting of the console, with its default."""

    host: str = "127.0.0.1"  # address the web server binds; 0.0.0.0 opens it to the network (token still needed)
    port: int = 8765  # TCP port of the web server (0 = any free port, printed at start)
    token: str = ""  # access token ('' = a random one made at start and printed with the URL)
    target: str = "/rns"  # fully qualified name of the rns node to teach
    fps: float = 5.0  # most overlay pictures per second and camera sent to the page
    max_width: int = 960  # pictures sent to the page are downscaled to this width at most (pixels)
    jpeg_quality: int = 80  # JPEG quality of those pictures (1..95)
    frame_buffer_mb: float = 256.0  # newest raw camera frames kept per input until their overlay arrives
    snapshot_dir: str = ""  # named snapshots live here ('' = $ROS_HOME/rns_console/snapshots)
    service_timeout_s: float = 60.0  # longest wait for one of the node's services (SAM 2 on a CPU: seconds)
    idle_s: float = 15.0  # topics nobody's page asked for this long are unsubscribed (the node stops its overlay)
    max_body_bytes: int = 65536  # largest request body accepted (a scribble's strokes fit easily)

    def __post_init__(self):
        if not self.host.strip():
            raise ValueError("host is empty; use 127.0.0.1 (this machine only) or an address of this machine")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port}")
        if self.token and not TOKEN_PATTERN.match(self.token):
            raise ValueError("token must be 16..128 characters of A-Z a-z 0-9 _ - (or '' for a random one)")
        if not NODE_NAME.match(self.target):
            raise ValueError(f"target must be a fully qualified node name like /rns or /robot1/rns, got {self.target!r}")
        for name, low, high in (("fps", 0.1, 30.0), ("max_width", 64, 8192), ("jpeg_quality", 1, 95),
                                ("frame_buffer_mb", 1.0, 65536.0), ("service_timeout_s", 1.0, 3600.0),
                                ("idle_s", 1.0, 3600.0), ("max_body_bytes", 1024, 16 * 1024 * 1024)):
            value = getattr(self, name)
            if not low <= value <= high:
                raise ValueError(f"{name} must be in [{low}, {high}], got {value}")

    def snapshot_root(self) -> Path:
        """The directory of named snapshots (the default under $ROS_HOME, ~/.ros without it)."""
        if self.snapshot_dir:
            return Path(self.snapshot_dir).expanduser()
        return Path(os.environ.get("ROS_HOME") or Path.home() / ".ros") / "rns_console" / "snapshots"


# parameter name (= field name) -> description; the defaults are the dataclass's
PARAMETERS: dict[str, str] = {
    "host": "address the web server binds (127.0.0.1 = this machine only; 0.0.0.0 = every interface)",
    "port": "TCP port of the web server (0 = any free port)",
    "token": "access token of every request ('' = a random one, printed with the URL at start)",
    "target": "fully qualified name of the rns node to teach, e.g. /rns or /robot1/rns",
    "fps": "most overlay pictures per second and camera sent to the page",
    "max_width": "overlay pictures are downscaled to at most this width (pixels) before they are sent",
    "jpeg_quality": "JPEG quality of the pictures sent to the page (1..95)",
    "frame_buffer_mb": "megabytes of raw camera frames kept per input until their overlay arrives "
                       "(so a frozen view teaches from its own frame)",
    "snapshot_dir": "directory of named memory snapshots the page may save and load "
                    "('' = $ROS_HOME/rns_console/snapshots); the node reads and writes it, so it must be "
                    "the same path on the node's machine",
    "service_timeout_s": "longest wait for an answer of the node's services",
    "idle_s": "seconds after the last page request before the console unsubscribes a camera's topics",
    "max_body_bytes": "largest request body the API accepts",
}


def defaults() -> dict[str, Any]:
    """name -> default value of every parameter."""
    return {f.name: f.default for f in fields(ConsoleConfig)}


def config_from_parameters(values: Mapping[str, Any]) -> ConsoleConfig:
    """A ConsoleConfig from parameter values (missing ones keep their defaults); ValueError for
    unknown names, values of the wrong type or out of range."""
    unknown = sorted(set(values) - set(PARAMETERS))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown}; known: {sorted(PARAMETERS)}")
    typed = {}
    for name, value in values.items():
        default = defaults()[name]
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not type(default):
            kind = {int: "an integer", float: "a number", str: "a string"}[type(default)]
            raise ValueError(f"{name} must be {kind}, got {value!r}")
        typed[name] = value
    return ConsoleConfig(**typed)
