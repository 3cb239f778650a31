#!/usr/bin/env python3
"""Cost of the semantic point cloud per frame (~/points, rns-bag `points`), the engine excluded.

    .venv/bin/python scripts/bench_depth.py [--frames 30] [--sizes 640x480,1280x720] [--strides 1,2]

Steps, each timed alone on synthetic data (a depth image with 10% holes, random labels):
decoding the depth image (16UC1 millimetres, 32FC1 metres, and 16UC1 as image_transport's
compressedDepth plugin sends it: a 12-byte header + a 16-bit PNG), projecting + attaching labels,
confidence and colour (depth.semantic_points; same-size colour frame, and a colour frame of twice
the size resampled nearest-neighbour), packing the PointCloud2 (pointcloud.points_to_cloud), its
CDR serialisation (what a publish or a bag write adds), and the whole per-frame step
(rns_ros.ros.depth.output.semantic_cloud). Next to it, the depth-aligned outputs (depth.aligned_outputs,
rns_ros.ros.depth.aligned): the grid (aligned_frame), packing the three messages (mono8 labels, mono8
confidence, organised PointCloud2), their serialisation, and the whole aligned step; the three whole
steps (~/points alone, the aligned outputs alone, both from one decoded depth frame, as the node
does when both have subscribers) take turns within every repeat, so the machine's changing load hits
them alike. Prints a median/p95 table in milliseconds, with the machine and its
load average (the development machines are shared: read ratios, not absolute times).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("AMENT_PREFIX_PATH", sys.prefix)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from rns_ros.machine import cpu_model  # noqa: E402

import numpy as np  # noqa: E402


def time_calls(fn, n: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def depth_messages(h: int, w: int):
    import io
    import struct

    from PIL import Image as PILImage
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image

    rng = np.random.default_rng(0)
    mm = rng.integers(300, 9000, (h, w)).astype(np.uint16)
    mm[rng.random((h, w)) < 0.1] = 0
    msgs = {}
    for encoding, data in (("16UC1", mm.astype("<u2")), ("32FC1", (mm / 1000.0).astype("<f4"))):
        msg = Image(height=h, width=w, encoding=encoding, is_bigendian=0, step=w * data.itemsize)
        msg.data = data.tobytes()
        msgs[encoding] = msg
    png = io.BytesIO()
    PILImage.fromarray(mm).save(png, format="PNG")  # zlib level 6: the plugin's default png_level is 3
    msgs["compressedDepth"] = CompressedImage(format="16UC1; compressedDepth png",
                                              data=struct.pack("<iff", 0, 0.0, 0.0) + png.getvalue())
    info = CameraInfo(width=w, height=h)
    info.k = [0.9 * w, 0.0, w / 2 - 0.5, 0.0, 0.9 * w, h / 2 - 0.5, 0.0, 0.0, 1.0]
    return msgs, info


def time_in_turns(fns: dict, n: int) -> dict[str, list[float]]:
    """Each function once per round, the first one moving along each round (interleaved A/B/C)."""
    for fn in fns.values():
        fn()  # warm-up
    names, out = list(fns), {name: [] for name in fns}
    for i in range(n):
        for name in names[i % len(names):] + names[: i % len(names)]:
            start = time.perf_counter()
            fns[name]()
            out[name].append(time.perf_counter() - start)
    return out


def bench_size(h: int, w: int, stride: int, n: int) -> tuple[dict[str, list[float]], int]:
    from rclpy.serialization import serialize_message
    from std_msgs.msg import Header

    from rns_ros.ros.depth.aligned import BUILDERS, aligned_frame
    from rns_ros.ros.depth.output import cloud_of, decode_depth

    from rns_ros.ros.depth.compressed import compressed_depth_to_metres
    from rns_ros.ros.depth.projection import DepthConfig, Intrinsics, depth_to_metres, semantic_points
    from rns_ros.ros.depth.output import semantic_cloud
    from rns_ros.ros.depth.pointcloud import points_to_cloud

    msgs, info = depth_messages(h, w)
    rng = np.random.default_rng(1)
    frames = {}
    for scale in (1, 2):
        frames[scale] = (rng.integers(0, 20, (h * scale, w * scale)).astype(np.int32),
                         rng.random((h * scale, w * scale), np.float32),
                         rng.integers(0, 256, (h * scale, w * scale, 3), dtype=np.uint8))
    depth = depth_to_metres(msgs["16UC1"])
    intrinsics = Intrinsics.from_camera_info(info)
    header = Header(frame_id="camera")
    points = semantic_points(depth, intrinsics, *frames[1], stride=stride)
    cloud = points_to_cloud(points, header)
    config = DepthConfig(enabled=True, stride=stride)
    labels, confidence, rgb = frames[1]
    grid = aligned_frame(depth, intrinsics, *frames[1], stride=stride, max_range_m=config.max_range_m)
    aligned_msgs = [build(grid, header) for build in BUILDERS.values()]

    def aligned_step(decoded=None):
        decoded = decoded or decode_depth(msgs["16UC1"], info)
        frame = aligned_frame(decoded.metres, decoded.intrinsics, labels, confidence, rgb, stride=stride,
                              max_range_m=config.max_range_m)
        return [build(frame, header) for build in BUILDERS.values()]

    def both_steps():
        decoded = decode_depth(msgs["16UC1"], info)
        return cloud_of(decoded, rgb, labels, confidence, header, config), aligned_step(decoded)

    whole = time_in_turns({
        "whole step: 16UC1 -> ~/points": lambda: semantic_cloud(msgs["16UC1"], info, rgb, labels, confidence,
                                                                header, config),
        "whole step: 16UC1 -> ~/aligned/* (3 messages)": aligned_step,
        "whole step: both, depth decoded once": both_steps,
    }, n)
    return {
        "decode 16UC1 (mm)": time_calls(lambda: depth_to_metres(msgs["16UC1"]), n),
        "decode 32FC1 (m)": time_calls(lambda: depth_to_metres(msgs["32FC1"]), n),
        "decode compressedDepth 16UC1 png": time_calls(lambda: compressed_depth_to_metres(msgs["compressedDepth"]), n),
        "project + label (same size)": time_calls(
            lambda: semantic_points(depth, intrinsics, *frames[1], stride=stride), n),
        "project + label (colour 2x, resampled)": time_calls(
            lambda: semantic_points(depth, intrinsics, *frames[2], stride=stride), n),
        "pack PointCloud2": time_calls(lambda: points_to_cloud(points, header), n),
        "serialise (CDR)": time_calls(lambda: serialize_message(cloud), n),
        "aligned: grid (same size)": time_calls(
            lambda: aligned_frame(depth, intrinsics, *frames[1], stride=stride, max_range_m=10.0), n),
        "aligned: grid (colour 2x, resampled)": time_calls(
            lambda: aligned_frame(depth, intrinsics, *frames[2], stride=stride, max_range_m=10.0), n),
        "aligned: pack labels + confidence + organised cloud": time_calls(
            lambda: [build(grid, header) for build in BUILDERS.values()], n),
        "aligned: serialise the 3 (CDR)": time_calls(lambda: [serialize_message(m) for m in aligned_msgs], n),
        **whole,
    }, len(points.labels)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=30)
    p.add_argument("--sizes", default="640x480,1280x720")
    p.add_argument("--strides", default="1,2")
    args = p.parse_args(argv)
    rows = []
    for size in args.sizes.split(","):
        w, h = (int(v) for v in size.split("x"))
        for stride in (int(s) for s in args.strides.split(",")):
            timings, count = bench_size(h, w, stride, args.frames)
            for name, samples in timings.items():
                arr = np.asarray(samples) * 1e3
                rows.append((f"{w}x{h}", stride, count, name, float(np.median(arr)), float(np.percentile(arr, 95))))
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"\nSemantic point cloud per frame ({cpu_model()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, numpy {np.__version__}; load average {load}; "
          f"{args.frames} repeats)\n")
    print("(points: ~/points' valid points; the aligned grid has (w / stride) x (h / stride) pixels)\n")
    print("| depth size | stride | points | step | median ms | p95 ms |")
    print("|---|---|---|---|---|---|")
    for size, stride, count, name, med, p95 in rows:
        print(f"| {size} | {stride} | {count} | {name} | {med:.2f} | {p95:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
