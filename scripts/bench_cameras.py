#!/usr/bin/env python3
"""Several cameras: one node for all of them vs one node per camera. Total segmented frames per
second and peak memory of the node processes.

    .venv/bin/python scripts/bench_cameras.py --backbone test-tiny
    .venv/bin/python scripts/bench_cameras.py --backbone openclip-vit-b16 --seconds 120   # random weights
    .venv/bin/python scripts/bench_cameras.py --device cuda ...                            # on a GPU

For N in --cameras (default 1, 2, 4) and each layout:
  one node      one `rns_node` process with `cameras: [c0, ...]`: one model, frames scheduled fairly,
                waiting frames of several cameras batched through the backbone as `camera_batching`
                says (auto: on CUDA only);
  node/camera   N `rns_node` processes, one camera each (N models, the OS shares the device).
Cameras are publishers in this process sending the same 640x480 photo (rgb8, reliable) at --rate Hz
each, faster than any node segments, so every node always has a frame waiting (the newest wins).
After every camera got its first labels (models loaded, warm), labels are counted for --seconds;
frames/s = labels received / seconds, over all cameras, plus the slowest camera's share. Peak
memory = the sum of the node processes' peak RSS (VmHWM), models included. The full-size
backbone runs with RANDOM weights written to a temporary checkpoint (compute cost only: the
labels mean nothing). Prints a markdown table with the machine, the load average and the settings.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 101)))
os.environ.setdefault("AMENT_PREFIX_PATH", sys.prefix)
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from rns_ros.machine import cpu_model  # noqa: E402

CLASSES = "person, chair, table, floor, wall, door, cup, bottle"


def random_checkpoint(backbone: str, folder: Path) -> str:
    """A local checkpoint file with seeded random weights for `backbone` (compute cost only)."""
    import torch

    from rns_ros.core.backbones import BACKBONE_PRESETS
    from rns_ros.core.backbones.openclip import create_openclip

    path = folder / f"{backbone}-random-seed0.bin"
    if not path.exists():
        torch.manual_seed(0)
        model, _ = create_openclip(BACKBONE_PRESETS[backbone].model, None)
        torch.save(model.state_dict(), path)
    return str(path)


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) of a running process, MiB; nan where /proc cannot tell."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def node_command(name: str, args, cameras: list[str], checkpoint: str, memory_dir: Path) -> list[str]:
    executable = shutil.which("rns_node", path=str(Path(sys.prefix) / "bin")) or "rns_node"
    cmd = [executable, "--ros-args", "--log-level", "warn", "-r", f"__node:={name}",
           "-p", f"classes:={CLASSES}", "-p", f"backbone:={args.backbone}", "-p", f"device:={args.device}",
           "-p", f"adapter.steps:={args.steps}", "-p", f"memory_dir:={memory_dir / name}",
           "-p", f"camera_batching:={args.batching}", "-p", "image_qos:=reliable"]
    if checkpoint:
        cmd += ["-p", f"checkpoint:={checkpoint}"]
    if len(cameras) > 1:
        cmd += ["-p", f"cameras:=[{', '.join(cameras)}]"]
        cmd += [item for c in cameras for item in ("-r", f"{c}/image:=/bench/{c}/image")]
    else:
        cmd += ["-r", f"image:=/bench/{cameras[0]}/image"]
    return cmd


def run_layout(layout: str, n: int, args, checkpoint: str, frame, workdir: Path) -> dict:
    """Start the node process(es), feed N cameras, count labels; returns the measurements."""
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from rns_ros.ros.spinning import spin_in_thread, stop_executor, stop_process

    cameras = [f"c{i}" for i in range(n)]
    if layout == "one node":
        groups = [("rns_bench", cameras)]
        outputs = {c: f"/rns_bench/{c}/labels" if n > 1 else "/rns_bench/labels" for c in cameras}
    else:
        groups = [(f"rns_bench_{c}", [c]) for c in cameras]
        outputs = {c: f"/rns_bench_{c}/labels" for c in cameras}
    # as the launch file starts the node: OpenMP threads sleep while they wait (docs/backbones.md)
    env = dict(os.environ, ROS_HOME=str(workdir / "ros_home"),
               OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
    logs = {name: workdir / f"{name}.log" for name, _ in groups}
    procs = [subprocess.Popen(node_command(name, args, cams, checkpoint, workdir), env=env,
                              stdout=subprocess.DEVNULL, stderr=logs[name].open("w"))
             for name, cams in groups]
    context = Context()
    rclpy.init(context=context)
    executor = MultiThreadedExecutor(num_threads=4, context=context)
    client = Node("bench_cameras", context=context)
    qos = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
    counts = {c: 0 for c in cameras}
    counting = threading.Event()
    first = {c: threading.Event() for c in cameras}

    def on_labels(camera):
        def callback(msg):
            first[camera].set()
            if counting.is_set():
                counts[camera] += 1
        return callback

    for camera in cameras:
        client.create_subscription(Image, outputs[camera], on_labels(camera), qos)
    pubs = {c: client.create_publisher(Image, f"/bench/{c}/image", qos) for c in cameras}
    executor.add_node(client)
    thread = spin_in_thread(executor)
    stop = threading.Event()

    def camera_loop():
        while not stop.is_set():
            for pub in pubs.values():
                pub.publish(frame)
            time.sleep(1.0 / args.rate)

    feeder = threading.Thread(target=camera_loop, daemon=True)
    try:
        deadline = time.monotonic() + args.startup_timeout
        feeder.start()
        while not all(e.is_set() for e in first.values()):
            dead = [p for p in procs if p.poll() is not None]
            if dead:
                log = logs[groups[procs.index(dead[0])][0]].read_text()[-2000:]
                raise RuntimeError(f"a node exited with {dead[0].returncode}: {log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no labels from every camera within {args.startup_timeout} s")
            time.sleep(0.1)
        counting.set()
        time.sleep(args.seconds)
        counting.clear()
        rss = sum(peak_rss_mb(p.pid) for p in procs)
        total = sum(counts.values())
        return {"layout": layout, "cameras": n, "fps": total / args.seconds,
                "slowest_share": min(counts.values()) / total if total else float("nan"),
                "frames": total, "rss_mb": rss, "processes": len(procs)}
    finally:
        stop.set()
        stop_executor(executor, thread)
        client.destroy_node()
        rclpy.try_shutdown(context=context)
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)  # all at once, then each waited for
        for p in procs:
            stop_process(p)


def photo_frame(width: int, height: int):
    from PIL import Image as PILImage
    from std_msgs.msg import Header

    from rns_ros.ros.conversions import rgb_to_image

    photo = PILImage.open(ROOT / "rns_ros" / "ros" / "demo" / "sample_images" / "chelsea_cat.jpg").convert("RGB")
    rgb = np.asarray(photo.resize((width, height), PILImage.Resampling.BILINEAR))
    return rgb_to_image(np.ascontiguousarray(rgb), Header(frame_id="camera"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backbone", default="test-tiny", help="test-tiny or openclip-vit-b16 (random weights)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--cameras", default="1,2,4", help="camera counts to measure")
    p.add_argument("--layouts", default="one node,node/camera")
    p.add_argument("--seconds", type=float, default=20.0, help="measurement window per configuration")
    p.add_argument("--rate", type=float, default=30.0, help="frames per second each camera publishes")
    p.add_argument("--size", default="640x480")
    p.add_argument("--steps", type=int, default=700, help="adapter.steps")
    p.add_argument("--batching", default="auto", choices=("auto", "on", "off"), help="camera_batching of the one node")
    p.add_argument("--repeats", type=int, default=1, help="runs per configuration; the table shows medians")
    p.add_argument("--startup-timeout", type=float, default=600.0)
    args = p.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    frame = photo_frame(width, height)
    rows = []
    with tempfile.TemporaryDirectory(prefix="rns_bench_cameras_") as tmp:
        workdir = Path(tmp)
        checkpoint = "" if args.backbone == "test-tiny" else random_checkpoint(args.backbone, workdir)
        for n in (int(v) for v in args.cameras.split(",")):
            for layout in args.layouts.split(","):
                if n == 1 and layout == "node/camera" and "one node" in args.layouts:
                    continue  # one camera: both layouts are the same single node
                runs = []
                for _ in range(args.repeats):
                    runs.append(run_layout(layout, n, args, checkpoint, frame, workdir))
                    print(f"{layout:>12} x{n}: {runs[-1]['fps']:.2f} frames/s, slowest camera "
                          f"{runs[-1]['slowest_share']:.0%}, peak RSS {runs[-1]['rss_mb']:.0f} MB", flush=True)
                rows.append({**runs[0], **{k: float(np.median([r[k] for r in runs]))
                                           for k in ("fps", "slowest_share", "rss_mb")}})
    load = os.getloadavg()
    print(f"\nSeveral cameras ({args.backbone}{' random weights' if args.backbone != 'test-tiny' else ''}, "
          f"{args.device}, {width}x{height}, adapter.steps {args.steps}, camera_batching {args.batching}, "
          f"median of {args.repeats} run(s) of {args.seconds:.0f} s per row; {cpu_model()}, {os.cpu_count()} CPUs, "
          f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at the end)\n")
    print("| cameras | layout | processes | frames/s (all cameras) | slowest camera's share | peak RSS MB (sum) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['cameras']} | {r['layout']} | {r['processes']} | {r['fps']:.2f} | {r['slowest_share']:.0%} | "
              f"{r['rss_mb']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
