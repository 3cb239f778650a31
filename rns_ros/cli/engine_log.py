"""What the engine logs (logger `rns_ros`: a runtime's one-time ONNX export, the encoder in use),
shown on stderr by the console scripts that build an engine without ROS, prefixed with their name."""
from __future__ import annotations

import logging
import sys


class _StderrHandler(logging.StreamHandler):
    """Writes to `sys.stderr` as it is when a record comes, not as it was when the handler was made
    (a caller that swaps stderr, such as pytest's capture, still sees the lines)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


def show_engine_log(prog: str) -> None:
    """Print `rns_ros` log records of level INFO and above to stderr as `prog: message` (once)."""
    logger = logging.getLogger("rns_ros")
    if any(getattr(h, "rns_prog", None) == prog for h in logger.handlers):
        return
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter(f"{prog}: %(message)s"))
    handler.rns_prog = prog
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # printed here only (the exporter's libraries may configure the root logger)
