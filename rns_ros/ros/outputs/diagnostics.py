"""/diagnostics of the node: one DiagnosticStatus with the pipeline statistics (rates, latencies,
drops), the engine (device, backbone, adapter, classes, memory use) and the support memory's
health, at level WARN (with the reasons in its message) when something needs a person's attention.
With several cameras the node's status holds the totals, and each camera has its own status
(`<node>: camera <name>`) with its rates, latency and drops. `DiagnosticsOutput` publishes them
on /diagnostics every `period_s`; the statuses themselves are built from snapshots, no ROS calls.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from rns_ros.ros.stats import StatsSnapshot

NO_INPUT_WARN_S = 5.0  # /diagnostics warns when an active node received nothing for this long


def _fmt(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if math.isinf(value) else f"{value:.4g}")
    return str(value)


def diagnostic_status(name: str, hardware_id: str, level: bytes, message: str, stats: StatsSnapshot,
                      extra: Mapping[str, object]) -> DiagnosticStatus:
    """One DiagnosticStatus with the pipeline statistics (latencies in ms) plus `extra` key/values."""
    values = {
        "input_rate_hz": stats.input_rate_hz,
        "output_rate_hz": stats.output_rate_hz,
        "latency_median_ms": stats.latency_median_s * 1e3,
        "latency_p95_ms": stats.latency_p95_s * 1e3,
        "processing_median_ms": stats.processing_median_s * 1e3,
        "processing_p95_ms": stats.processing_p95_s * 1e3,
        "frames_received": stats.received,
        "frames_processed": stats.processed,
        "frames_dropped_stale": stats.dropped_stale,
        "frames_dropped_invalid": stats.dropped_invalid,
        "frames_failed": stats.failed,
        "last_drop_reason": stats.last_drop_reason,
        "callback_max_ms": stats.callback_max_s * 1e3,
    }
    values.update(extra)
    return DiagnosticStatus(level=level, name=name, message=message, hardware_id=hardware_id,
                            values=[KeyValue(key=k, value=_fmt(v)) for k, v in values.items()])


def node_status(name: str, state: str, stats: StatsSnapshot, engine, teacher, input_topic: str,
                depth=None, callback_errors: tuple[int, str] = (0, "")) -> DiagnosticStatus:
    """The node's status. state: "active" | "inactive" | "unconfigured"; engine and teacher may be
    None (not configured); input_topic names the camera topic in the no-input warning; depth: the
    DepthInput with depth.enabled (its counters, and WARN while frames find no usable depth);
    callback_errors: (count, latest) of the exceptions caught inside callbacks (guard.py)."""
    level, problems = DiagnosticStatus.OK, []
    extra: dict[str, object] = {"state": state, "callback_errors": callback_errors[0]}
    if callback_errors[0]:
        level = DiagnosticStatus.WARN
        extra["last_callback_error"] = callback_errors[1]
        problems.append(f"{callback_errors[0]} error(s) inside callbacks (see last_callback_error)")
    if engine is not None:
        extra.update({"device": engine.device, "backbone": engine.backbone_identity,
                      "adapter": engine.adapter_execution,
                      "classes": len(engine.classes()), "exemplars": engine.num_exemplars(),
                      "support_version": engine.support_version()})
        extra.update({k: round(v, 1) for k, v in engine.memory_usage_mb().items()})
        if engine.device_warning:
            level = DiagnosticStatus.WARN
            problems.append("running on the CPU fallback")
        if engine.adapter_warning:
            level = DiagnosticStatus.WARN
            problems.append("adapter on a slower fallback (see adapter)")
    if teacher is not None:
        extra.update(teacher.diagnostics())
        if teacher.store.load_problems or teacher.store.last_save_error:
            level = DiagnosticStatus.WARN
            problems.append("support memory problem (see memory_* values)")
    if depth is not None:
        extra.update(depth.diagnostics())
        problem = depth.problem() if state == "active" else None
        if problem:
            level = DiagnosticStatus.WARN
            problems.append(problem)
    if state == "active" and stats.seconds_since_input > NO_INPUT_WARN_S:
        level = DiagnosticStatus.WARN
        problems.append(f"no image on {input_topic}")
    message = "; ".join(problems) or ("segmenting" if state == "active" else state)
    return diagnostic_status(name, engine.device if engine else "", level, message, stats, extra)


def camera_status(node_name: str, camera: str, state: str, stats: StatsSnapshot, input_topic: str,
                  hardware_id: str = "", depth=None) -> DiagnosticStatus:
    """One camera's status: its pipeline statistics and input topic (and its DepthInput's counters
    with depth.enabled); WARN when the active node got nothing from it for NO_INPUT_WARN_S (the
    other cameras go on regardless) or its frames find no usable depth."""
    problems = []
    extra: dict[str, object] = {"camera": camera, "input_topic": input_topic}
    if depth is not None:
        extra.update(depth.diagnostics())
        problem = depth.problem() if state == "active" else None
        if problem:
            problems.append(problem)
    if state == "active" and stats.seconds_since_input > NO_INPUT_WARN_S:
        problems.append(f"no image on {input_topic}")
    level = DiagnosticStatus.WARN if problems else DiagnosticStatus.OK
    message = "; ".join(problems) or ("segmenting" if state == "active" else state)
    return diagnostic_status(f"{node_name}: camera {camera}", hardware_id, level, message, stats, extra)


class DiagnosticsOutput:
    """/diagnostics every `period_s`: statuses() -> the DiagnosticStatus list to send (the node's,
    then one per named camera). The timer callback goes through `wrap` (the node's CallbackGuard)."""

    def __init__(self, node, period_s: float, statuses: Callable[[], list[DiagnosticStatus]],
                 wrap: Callable[[str, Callable], Callable] = lambda name, callback: callback):
        self._node = node
        self._statuses = statuses
        self.publisher = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.timer = node.create_timer(period_s, wrap("diagnostics", self.publish))

    def publish(self) -> None:
        msg = DiagnosticArray(status=self._statuses())
        msg.header.stamp = self._node.get_clock().now().to_msg()
        self.publisher.publish(msg)

    def destroy(self) -> None:
        self._node.destroy_timer(self.timer)
        self._node.destroy_publisher(self.publisher)
