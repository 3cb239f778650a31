"""What the engine logs (logger `rns_ros`: a runtime's one-time ONNX export, the encoder in use),
shown on stderr by the console scripts that build an engine without ROS, prefixed with their name."""
from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from typing import Iterator


class _StderrHandler(logging.StreamHandler):
    """Writes to `sys.stderr` as it is when a record comes, not as it was when the handler was made
    (a caller that swaps stderr, such as pytest's capture, still sees the lines)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


@contextmanager
def engine_log_shown(prog: str) -> Iterator[None]:
    """While inside: `rns_ros` log records of level INFO and above go to stderr as `prog: message`.
    The logger is left as it was on the way out (a caller in the same process, a test or another
    console script's main, does not inherit this one's lines)."""
    logger = logging.getLogger("rns_ros")
    before = logger.level, logger.propagate
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter(f"{prog}: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # printed here only (the exporter's libraries may configure the root logger)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.level, logger.propagate = before
