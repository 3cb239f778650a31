"""What `rns-demo` records of a node: label and overlay PNGs, the class map, /diagnostics, and the
end-to-end latency of each label image (camera stamp -> received).

Contract: the callbacks only write files and append to lists under a lock; `summary()` gives a
consistent copy (throughput, latency median/p95, the classes with their colours).
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from rns_ros.visual import to_hex


def _rgb255(color) -> list[int]:
    """A ClassInfo colour (std_msgs/ColorRGBA, 0..1) as the [r, g, b] bytes of the overlay."""
    return [round(color.r * 255), round(color.g * 255), round(color.b * 255)]


class Recorder:
    """Subscribes to the node's outputs and writes them to `out`; measures end-to-end latency."""

    def __init__(self, node, out: Path):
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        from rns_ros.msg import ClassMap

        self.node, self.out = node, out
        for sub in ("labels", "overlay"):
            (out / sub).mkdir(parents=True, exist_ok=True)
        self.latencies: list[float] = []
        self.arrivals: list[float] = []
        self.class_map = None
        self.diagnostics: dict[str, str] = {}
        self.lock = threading.Lock()
        node.create_subscription(Image, "/rns/labels", self._on_labels, 10)
        node.create_subscription(Image, "/rns/overlay", self._on_overlay, 10)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        node.create_subscription(ClassMap, "/rns/class_map", self._on_class_map, latched)
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)

    @staticmethod
    def _name(msg) -> str:
        return f"{msg.header.stamp.sec}_{msg.header.stamp.nanosec:09d}.png"

    def _on_labels(self, msg) -> None:
        from PIL import Image as PILImage

        from rns_ros.ros.conversions import labels_from_image

        now = self.node.get_clock().now().nanoseconds * 1e-9
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        labels = labels_from_image(msg)
        arr = labels.astype(np.uint8 if msg.encoding == "mono8" else np.uint16)
        PILImage.fromarray(arr).save(self.out / "labels" / self._name(msg))
        with self.lock:
            self.latencies.append(now - stamp)
            self.arrivals.append(time.monotonic())

    def _on_overlay(self, msg) -> None:
        from PIL import Image as PILImage

        from rns_ros.ros.conversions import image_to_rgb

        PILImage.fromarray(image_to_rgb(msg)).save(self.out / "overlay" / self._name(msg))

    def _on_class_map(self, msg) -> None:
        self.class_map = msg

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            if status.name.startswith("/rns:"):
                self.diagnostics = {kv.key: kv.value for kv in status.values}

    @property
    def frames(self) -> int:
        with self.lock:
            return len(self.latencies)

    def summary(self) -> dict:
        with self.lock:
            lat, arrivals = np.array(self.latencies) * 1e3, list(self.arrivals)
        fps = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 else 0.0
        classes = [] if self.class_map is None else [
            {"id": c.id, "name": c.name, "color": _rgb255(c.color), "hex": to_hex(_rgb255(c.color))}
            for c in self.class_map.classes]
        return {"frames": len(arrivals), "throughput_fps": round(fps, 3),
                "latency_ms_median": round(float(np.median(lat)), 2) if lat.size else None,
                "latency_ms_p95": round(float(np.percentile(lat, 95)), 2) if lat.size else None,
                "classes": classes}
