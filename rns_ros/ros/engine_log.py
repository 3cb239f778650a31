"""What the engine says, on the node's ROS logger: the core's own log lines while the engine is
built (`core_log_on`), and the engine's notes once it is (`log_engine_notes`).

The core logs through Python's `logging` (logger `rns_ros`): a runtime's one-time ONNX export into
the cache (20-40 s for ViT-B/16, the first time a runtime is used on a machine) and the encoder it
loaded. A ROS node shows none of that by itself, so a first `runtime:=onnxruntime` configure was
silent for that long. Each severity is logged from its own call site: rclpy refuses a call site
whose severity changes between calls. Nothing here imports ROS (the logger is any object with
info, warning and error).
"""
from __future__ import annotations

import contextlib
import logging
from typing import Iterator

CORE_LOGGER = "rns_ros"


class _ToLogger(logging.Handler):
    """`rns_ros` records on a ROS logger."""

    def __init__(self, ros_logger):
        super().__init__()
        self.ros_logger = ros_logger

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.levelno >= logging.ERROR:
                self.ros_logger.error(text)
            elif record.levelno >= logging.WARNING:
                self.ros_logger.warning(text)
            else:
                self.ros_logger.info(text)
        except Exception:  # noqa: BLE001 - a log line never fails the configure
            self.handleError(record)


@contextlib.contextmanager
def core_log_on(ros_logger) -> Iterator[None]:
    """Inside the block, the core's records of level INFO and above go to `ros_logger` (only there:
    an exporter library may have configured the root logger); afterwards the logger is as before."""
    logger = logging.getLogger(CORE_LOGGER)
    handler, level, propagate = _ToLogger(ros_logger), logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def log_engine_notes(engine, ros_logger) -> None:
    """A new engine's notes: a device fallback (error), the profile chosen, a slower adapter path,
    and the image encoder in use (a warning when the profile's faster runtime is missing here)."""
    if engine.device_warning:
        ros_logger.error(engine.device_warning)
    if engine.profile_note:
        ros_logger.info(engine.profile_note)
    if engine.adapter_warning:
        ros_logger.warning(engine.adapter_warning)
    if engine.runtime_warning:  # the profile's faster runtime is not installed here
        ros_logger.warning(engine.runtime_warning)
    else:
        ros_logger.info(engine.runtime_note)
