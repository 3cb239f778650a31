#!/usr/bin/env python3
"""ROS overhead of the rns node per frame, the engine excluded (it is replaced by one that returns
precomputed labels instantly).

    .venv/bin/python scripts/bench_ros_overhead.py [--frames 40] [--sizes 640x480,1920x1080]

Part 1, conversions alone: decoding the input (rgb8, bgr8, and sensor_msgs/CompressedImage
payloads: JPEG quality 90 and PNG of a photo, `image_transport: compressed`) and building the output
messages (labels mono8, confidence 32FC1 and mono8, the overlay rgb8 without and with its legend and
contours, the colourised labels rgb8).
Part 2, through the running node (real topics, one process, Fast DDS): the node's own time per
frame (mailbox -> decode -> engine (~0) -> publish labels + confidence + overlay with legend +
labels_color, each with a subscriber), and the end-to-end time from publishing the camera image
to receiving the labels.
Frames are sent one at a time (the next once the node finished the previous one), so nothing is
dropped and every number is one frame's cost. Labels are published first, then confidence, then
the overlay, so the labels' latency does not include the overlay. Prints a median/p95 table
(milliseconds) and the machine's load average before and after (the machine may be shared).
"""
from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 101)))
os.environ.setdefault("AMENT_PREFIX_PATH", sys.prefix)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from rns_ros.machine import cpu_model  # noqa: E402

import numpy as np  # noqa: E402


def patch_labels(h: int, w: int, classes: int = 8, patch: int = 16, seed: int = 0) -> np.ndarray:
    """(h, w) int32 ids 0..classes, constant on 16x16 patches like the engine's patch mode."""
    grid = np.random.default_rng(seed).integers(0, classes + 1, (-(-h // patch), -(-w // patch)))
    return np.kron(grid, np.ones((patch, patch), np.int64))[:h, :w].astype(np.int32)


class NullEngine:
    """Engine stand-in: returns precomputed labels/confidence of the frame's size, no work."""

    device, device_warning, profile_note, backbone_identity = "cpu", None, None, "null/engine"
    adapter_execution, adapter_warning = "none", None

    def __init__(self):
        from rns_ros.ros.engine import ClassEntry

        self.lock = threading.RLock()
        self._classes = [ClassEntry(i, f"class{i}", "", True, ()) for i in range(1, 9)]
        self._cache = {}

    def segment(self, rgb):
        from rns_ros.ros.engine import EngineResult

        h, w = rgb.shape[:2]
        if (h, w) not in self._cache:
            rng = np.random.default_rng(0)
            self._cache[(h, w)] = (patch_labels(h, w), rng.random((h, w), np.float32))
        labels, conf = self._cache[(h, w)]
        return EngineResult(labels, conf, 1, {})

    def add_classes(self, names, descriptions=()):
        return []

    def classes(self):
        return list(self._classes)

    def support_version(self):
        return 1

    def num_exemplars(self):
        return 0

    def memory_usage_mb(self):
        return {}

    def close(self):
        pass


def stats_ms(samples) -> tuple[float, float]:
    arr = np.asarray(samples) * 1e3
    return float(np.median(arr)), float(np.percentile(arr, 95))


def time_interleaved(calls: dict, n: int) -> dict[str, list[float]]:
    """Seconds per call of each function, the functions taking turns (one warm-up round first), so
    that a shared machine's changing load hits every row alike and differences between rows hold."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for round_ in range(n + 1):
        for name, fn in calls.items():
            start = time.perf_counter()
            fn()
            if round_:
                times[name].append(time.perf_counter() - start)
    return times


def bench_conversions(h: int, w: int, n: int) -> dict[str, list[float]]:
    from PIL import Image as PILImage
    from sensor_msgs.msg import CompressedImage
    from std_msgs.msg import Header

    from rns_ros.ros.inputs.compressed import compressed_to_rgb, encode_compressed
    from rns_ros.ros.conversions import confidence_to_image, image_to_rgb, labels_to_image, rgb_to_image
    from rns_ros.visual import LegendStyle, OverlayStyle, Palette, color_lut, colorize, render_overlay
    from rns_ros.visual.legend import draw_legend

    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    labels = patch_labels(h, w)
    conf = rng.random((h, w), np.float32)
    header = Header(frame_id="camera")
    msg_rgb = rgb_to_image(rgb, header)
    msg_bgr = rgb_to_image(np.ascontiguousarray(rgb[:, :, ::-1]), header)
    msg_bgr.encoding = "bgr8"
    palette, names = Palette(), {i: f"class number {i}" for i in range(1, 9)}
    # Compression only behaves like a camera's on a real photo (random pixels barely compress).
    photo = PILImage.open(Path(__file__).resolve().parents[1] / "rns_ros" / "ros" / "demo" / "sample_images" / "coffee.jpg")
    photo = np.asarray(photo.convert("RGB").resize((w, h), PILImage.Resampling.BILINEAR))
    jpeg, png = (CompressedImage(), CompressedImage())
    jpeg.data, jpeg.format = encode_compressed(photo, "jpeg", quality=90)
    png.data, png.format = encode_compressed(photo, "png")

    def overlay(style):
        return lambda: rgb_to_image(render_overlay(rgb, labels, names, palette, style)[0], header)

    return time_interleaved({
        "decode rgb8": lambda: image_to_rgb(msg_rgb),
        "decode bgr8": lambda: image_to_rgb(msg_bgr),
        f"decode JPEG q90 ({len(jpeg.data) // 1024} KiB, compressed input)": lambda: compressed_to_rgb(jpeg),
        f"decode PNG ({len(png.data) // 1024} KiB, compressed input)": lambda: compressed_to_rgb(png),
        "encode labels (mono8)": lambda: labels_to_image(labels, header, 8),
        "encode confidence (32FC1)": lambda: confidence_to_image(conf, header),
        "encode confidence (mono8)": lambda: confidence_to_image(conf, header, "mono8"),
        "overlay, no legend + encode (rgb8)": overlay(OverlayStyle(legend=None)),
        "overlay + legend (8 classes) + encode": overlay(OverlayStyle(legend=LegendStyle())),
        "overlay + legend + contours + encode": overlay(OverlayStyle(contours=True)),
        "legend alone (8 classes, drawn into a copy)": lambda: draw_legend(rgb.copy(), labels, names, palette),
        "labels_color + encode (rgb8)": lambda: rgb_to_image(colorize(labels, color_lut(palette, 9)), header),
    }, n)


def bench_node(h: int, w: int, n: int) -> dict[str, list[float]]:
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from rns_ros.ros.conversions import rgb_to_image
    from rns_ros.ros.node import RnsNode
    from rns_ros.ros.spinning import spin_in_thread, stop_executor

    context = Context()
    rclpy.init(context=context)
    executor = MultiThreadedExecutor(num_threads=4, context=context)
    engine = NullEngine()
    node = RnsNode(engine_factory=lambda cfg: engine, context=context,
                   parameter_overrides=[Parameter("image_qos", value="reliable")])
    client = Node("bench_client", context=context)
    received = threading.Event()
    sent_at = [0.0]
    end_to_end = []

    def on_labels(msg):
        end_to_end.append(time.perf_counter() - sent_at[0])
        received.set()

    client.create_subscription(Image, "/rns/labels", on_labels, 10)
    client.create_subscription(Image, "/rns/confidence", lambda m: None, 10)
    client.create_subscription(Image, "/rns/overlay", lambda m: None, 10)
    client.create_subscription(Image, "/rns/labels_color", lambda m: None, 10)
    pub = client.create_publisher(Image, "image", QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
    for n_ in (node, client):
        executor.add_node(n_)
    thread = spin_in_thread(executor)
    try:
        deadline = time.monotonic() + 20
        while not (pub.get_subscription_count()
                   and all(p.get_subscription_count() for p in node.outputs.publishers.values())):
            if time.monotonic() > deadline:
                raise RuntimeError("discovery did not complete")
            time.sleep(0.01)
        frame = rgb_to_image(np.random.default_rng(2).integers(0, 256, (h, w, 3), dtype=np.uint8),
                             Header(frame_id="camera"))
        for i in range(n + 3):
            received.clear()
            sent_at[0] = time.perf_counter()
            pub.publish(frame)
            if not received.wait(10):
                raise RuntimeError(f"no labels for frame {i}")
            while node.stats.snapshot().processed < i + 1:  # the overlay of this frame is out too
                time.sleep(0.001)
        processing = list(node.stats._processing)[3:]  # skip warm-up frames
        return {"node: decode + publish labels, confidence, overlay (legend), labels_color": processing,
                "camera publish -> labels received": end_to_end[3:]}
    finally:
        stop_executor(executor, thread)
        node.close()
        node.destroy_node()
        client.destroy_node()
        rclpy.try_shutdown(context=context)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--sizes", default="640x480,1920x1080")
    args = p.parse_args(argv)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    load_before = os.getloadavg()
    rows = []
    for w, h in sizes:
        for name, samples in {**bench_conversions(h, w, args.frames), **bench_node(h, w, args.frames)}.items():
            med, p95 = stats_ms(samples)
            rows.append((f"{w}x{h}", name, med, p95, len(samples)))
    print(f"\nROS overhead per frame, engine excluded ({cpu_model()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}, numpy {np.__version__}; load average "
          f"{load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after)\n")
    print("| size | step | median ms | p95 ms | frames |")
    print("|---|---|---|---|---|")
    for size, name, med, p95, count in rows:
        print(f"| {size} | {name} | {med:.2f} | {p95:.2f} | {count} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
