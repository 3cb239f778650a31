"""Builders for the package's own messages (rns_ros/msg) and the /diagnostics status.

`rns_ros.msg` is generated at build time and exists only in the installed package (see
rns_ros/__init__.py), so it is imported here, not by the pure modules.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from std_msgs.msg import ColorRGBA

from rns_ros.msg import ClassInfo, ClassMap
from rns_ros.ros.engine import ClassEntry
from rns_ros.ros.stats import StatsSnapshot
from rns_ros.ros.visualization import class_color

UNLABELED_ID = 0


def class_info(entry: ClassEntry) -> ClassInfo:
    r, g, b = class_color(entry.id)
    return ClassInfo(id=int(entry.id), name=entry.name, description=entry.description,
                     has_text=bool(entry.has_text), exemplar_count=len(entry.exemplar_ids),
                     exemplar_ids=[int(e) for e in entry.exemplar_ids],
                     color=ColorRGBA(r=r / 255.0, g=g / 255.0, b=b / 255.0, a=1.0))


def class_map(entries: Sequence[ClassEntry], support_version: int, backbone: str, stamp) -> ClassMap:
    """ClassMap of `entries` (sorted by id); `stamp` a builtin_interfaces/Time."""
    msg = ClassMap(unlabeled_id=UNLABELED_ID, support_version=int(support_version), backbone=backbone)
    msg.header.stamp = stamp
    msg.classes = [class_info(e) for e in sorted(entries, key=lambda e: e.id)]
    return msg


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
