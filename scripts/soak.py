#!/usr/bin/env python3
"""Soak test of a real `rns_node` process: a camera, teaching while it runs, and what it costs.

    .venv/bin/python scripts/soak.py                 # 10 minutes (stops by itself)
    .venv/bin/python scripts/soak.py --minutes 2     # shorter

A node process (`rns_node`, backbone test-tiny unless --backbone says otherwise: random weights,
the labels mean nothing, the plumbing and the memory are what is measured) segments a synthetic
camera published by this script at ~15 Hz (--rate, --size). Every few seconds (--teach-every) a
teaching cycle runs through the node's services, the way issue 25 found a lost frame and memory
growth: add a class, add one mask exemplar of it (on the latest camera frame), wait 0.15 s, remove
the class. The script prints, every --report-every seconds, the node's resident memory (VmRSS)
and thread count, read from /proc/<pid>/status, the frames sent, segmented and lost, and at the
end the RSS growth after the warm-up (--warmup-minutes) against the goal (< 20 MB).

Frames: the node keeps only the newest waiting frame (one-slot mailbox), so frames that arrive
while it is busy are replaced ("stale", by design, counted apart). A frame is *lost* when the
node took it and published nothing for it (its `frames_failed` and `frames_dropped_invalid`
counters in /diagnostics: issue 25's lost frames were `failed`, "labels hold id 9 above
max_class_id 3"). The image topic is reliable (image_qos:=reliable), so DDS drops nothing on the
way in. Label images are also checked against every class id any class map named ("bad ids":
ids are never reused, so any other id is garbage); which class map a label image goes with cannot
be checked here, as DDS does not order two topics for a subscriber (the node's own order is
tested in test/ros/test_frame_class_map.py).
Exit status 0 when both goals hold (0 lost frames, RSS growth below the goal), 1 otherwise.
"""
from __future__ import annotations

import argparse
import os
import random
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
from rns_ros.ros.spinning import stop_process  # noqa: E402

RSS_GOAL_MB = 20.0


def proc_status(pid: int) -> tuple[float, int]:
    """(VmRSS in MiB, thread count) of process `pid` from /proc/<pid>/status."""
    rss_kb, threads = 0, 0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss_kb = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss_kb / 1024.0, threads


def synthetic_frame(h: int, w: int, t: int) -> np.ndarray:
    """A (h, w, 3) uint8 scene: a gradient floor and a coloured square that moves with `t`."""
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([(xx * 255 // max(w - 1, 1)), (yy * 255 // max(h - 1, 1)),
                    np.full_like(xx, 96)], axis=-1).astype(np.uint8)
    side = min(h, w) // 4
    x0 = (t * 7) % max(w - side, 1)
    rgb[h // 3:h // 3 + side, x0:x0 + side] = (230, 40, 40)
    return rgb


def start_node(args, name: str, memory_dir: str, log_path: Path) -> subprocess.Popen:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-c", "import sys; from rns_ros.cli.node import main; sys.exit(main())",
           "--ros-args", "-r", f"__node:={name}", "-r", f"image:=/{name}/camera",
           "-p", f"backbone:={args.backbone}", "-p", "device:=cpu", "-p", f"memory_dir:={memory_dir}",
           "-p", "image_qos:=reliable", "-p", "classes:=[floor, wall]"]
    with open(log_path, "w") as log:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


class Watcher:
    """This script's ROS side: the camera publisher, the node's outputs, its services."""

    def __init__(self, name: str, size: tuple[int, int]):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import MultiThreadedExecutor
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        from rns_ros.msg import ClassMap
        from rns_ros.ros.spinning import spin_in_thread
        from rns_ros.srv import AddClasses, AddExemplar, ListClasses, RemoveClasses

        rclpy.init()
        self.node = rclpy.create_node(f"{name}_soak")
        self.name, self.size = name, size
        reliable = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.camera = self.node.create_publisher(Image, f"/{name}/camera", reliable)
        self.lock = threading.Lock()
        self.class_ids: set[int] = set()  # of every class map received (ids are never reused)
        self.labels = 0
        self.bad_ids = 0  # label images naming an id that no class map ever had
        self.diag: dict[str, str] = {}
        self.node.create_subscription(ClassMap, f"/{name}/class_map", self._on_class_map, latched)
        self.node.create_subscription(Image, f"/{name}/labels", self._on_labels, reliable)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)
        self.clients = {srv: self.node.create_client(cls, f"/{name}/{srv}") for srv, cls in
                        (("add_classes", AddClasses), ("add_exemplar", AddExemplar),
                         ("remove_classes", RemoveClasses), ("list_classes", ListClasses))}
        self.types = {"add_classes": AddClasses, "add_exemplar": AddExemplar, "remove_classes": RemoveClasses,
                      "list_classes": ListClasses}
        self.executor = MultiThreadedExecutor(num_threads=3)
        self.executor.add_node(self.node)
        self.thread = spin_in_thread(self.executor)

    def _on_class_map(self, msg) -> None:
        with self.lock:
            self.class_ids |= {int(c.id) for c in msg.classes}

    def _on_labels(self, msg) -> None:
        ids = np.frombuffer(bytes(msg.data), np.uint8 if msg.encoding == "mono8" else np.uint16)
        with self.lock:
            self.labels += 1
            present = set(np.unique(ids).tolist()) - {0}
            if not present <= self.class_ids:
                self.bad_ids += 1

    def _on_diag(self, msg) -> None:
        for status in msg.status:
            if status.name.startswith(f"/{self.name}:"):
                with self.lock:
                    self.diag = {kv.key: kv.value for kv in status.values}

    def call(self, service: str, timeout: float = 60.0, **fields):
        client = self.clients[service]
        if not client.wait_for_service(timeout_sec=timeout):
            raise RuntimeError(f"service {service} not available")
        future = client.call_async(self.types[service].Request(**fields))
        deadline = time.monotonic() + timeout
        while not future.done():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{service} did not answer within {timeout} s")
            time.sleep(0.01)
        return future.result()

    def publish(self, rgb: np.ndarray, stamp_ns: int) -> None:
        from std_msgs.msg import Header

        from rns_ros.ros.conversions import rgb_to_image

        msg = rgb_to_image(rgb, Header())
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        self.camera.publish(msg)

    def close(self) -> None:
        import rclpy

        from rns_ros.ros.spinning import stop_executor

        stop_executor(self.executor, self.thread)
        self.node.destroy_node()
        rclpy.try_shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to run (default 10)")
    parser.add_argument("--warmup-minutes", type=float, default=None,
                        help="RSS growth is counted from here on (default: a tenth of the run, at least 0.5)")
    parser.add_argument("--rate", type=float, default=15.0, help="camera frames per second")
    parser.add_argument("--size", default="640x480", help="camera frame size WxH")
    parser.add_argument("--teach-every", type=float, default=3.0, help="seconds between teaching cycles")
    parser.add_argument("--report-every", type=float, default=30.0, help="seconds between report lines")
    parser.add_argument("--backbone", default="test-tiny")
    args = parser.parse_args(argv)
    w, h = (int(v) for v in args.size.lower().split("x"))
    warmup_s = 60 * (args.warmup_minutes if args.warmup_minutes is not None else max(0.5, args.minutes / 10))
    name = f"rns_soak_{os.getpid()}"
    tmp = Path(tempfile.mkdtemp(prefix="rns-soak-"))
    log_path = tmp / "node.log"
    load_before = os.getloadavg()
    print(f"soak: {args.minutes:g} min, camera {w}x{h} at {args.rate:g} Hz, teaching every {args.teach_every:g} s, "
          f"backbone {args.backbone}; CPU {cpu_model()}, {os.cpu_count()} cores, load average "
          f"{load_before[0]:.1f} at the start; node log {log_path}", flush=True)
    proc = start_node(args, name, str(tmp / "memory"), log_path)
    watcher = Watcher(name, (h, w))
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    frames_sent, cycles, teach_errors = [0], [0], []
    try:
        ready = watcher.clients["list_classes"]
        deadline = time.monotonic() + 300
        while not ready.service_is_ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the node did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        rng_frames = [synthetic_frame(h, w, t) for t in range(8)]
        mask = np.zeros((h, w), np.uint8)
        mask[h // 3:h // 3 + min(h, w) // 4, :min(h, w) // 4] = 255

        def camera():
            period, start = 1.0 / args.rate, time.monotonic()
            while not stop.is_set():
                watcher.publish(rng_frames[frames_sent[0] % len(rng_frames)], time.time_ns())
                frames_sent[0] += 1
                stop.wait(max(0.0, start + frames_sent[0] * period - time.monotonic()))

        def teacher():
            from std_msgs.msg import Header

            from rns_ros.ros.conversions import mask_image, rgb_to_image

            while not stop.wait(args.teach_every):
                label = f"soak{cycles[0]}"
                try:
                    for service, fields in (("add_classes", {"names": [label]}),
                                            ("add_exemplar", {"class_name": label,
                                                              "image": rgb_to_image(rng_frames[0], Header()),
                                                              "mask": mask_image(mask > 0, Header())})):
                        answer = watcher.call(service, **fields)
                        if not answer.success:
                            teach_errors.append(f"{service}: {answer.message}")
                    stop.wait(0.15)
                    answer = watcher.call("remove_classes", names=[label])
                    if not answer.success:
                        teach_errors.append(f"remove_classes: {answer.message}")
                    cycles[0] += 1
                except RuntimeError as exc:
                    teach_errors.append(str(exc))

        threads = [threading.Thread(target=camera, daemon=True), threading.Thread(target=teacher, daemon=True)]
        for thread in threads:
            thread.start()
        started = time.monotonic()
        rss_start, threads_start = proc_status(proc.pid)
        rss_warm = None
        print(f"{'min':>5} {'RSS MB':>8} {'threads':>7} {'sent':>6} {'segmented':>9} {'stale':>6} "
              f"{'lost':>5} {'teach cycles':>12}", flush=True)
        rows = []
        next_report = started
        while not stop.is_set() and time.monotonic() - started < 60 * args.minutes:
            if proc.poll() is not None:
                raise RuntimeError(f"the node exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            now = time.monotonic()
            if rss_warm is None and now - started >= warmup_s:
                rss_warm = proc_status(proc.pid)[0]
            if now >= next_report:
                rows.append(report(watcher, proc, (now - started) / 60, frames_sent[0], cycles[0]))
                next_report += args.report_every
            stop.wait(0.5)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        time.sleep(3 * 1.0)  # let the last frames and one /diagnostics period arrive
        final = report(watcher, proc, (time.monotonic() - started) / 60, frames_sent[0], cycles[0])
    finally:
        stop.set()
        watcher.close()
        stop_process(proc)
    rss_end, lost, bad_ids = final["rss"], final["lost"], final["bad_ids"]
    rss_warm = rss_warm if rss_warm is not None else rss_start
    growth = rss_end - rss_warm
    load_after = os.getloadavg()
    print(f"\nRSS: {rss_start:.1f} MB at the start, {rss_warm:.1f} MB after the warm-up ({warmup_s / 60:.1f} min), "
          f"{rss_end:.1f} MB at the end: growth after warm-up {growth:+.1f} MB (goal < {RSS_GOAL_MB:g} MB); "
          f"threads {threads_start} -> {final['threads']}")
    print(f"frames: {frames_sent[0]} sent, {final['segmented']} segmented, {final['stale']} stale (replaced "
          f"by a newer frame while the node was busy: by design), {lost} lost (goal 0), {bad_ids} label images "
          f"with an id no class map had; "
          f"teaching cycles: {cycles[0]}, refused or failed: {len(teach_errors)}"
          + (f" (first: {teach_errors[0]})" if teach_errors else ""))
    print(f"load average {load_before[0]:.1f} at the start, {load_after[0]:.1f} at the end (a shared machine)")
    ok = lost == 0 and bad_ids == 0 and growth < RSS_GOAL_MB and not teach_errors
    print("goals met" if ok else "GOALS MISSED")
    return 0 if ok else 1


def report(watcher: Watcher, proc, minutes: float, sent: int, cycles: int) -> dict:
    rss, threads = proc_status(proc.pid)
    with watcher.lock:
        diag = dict(watcher.diag)
        bad_ids = watcher.bad_ids
    lost = int(diag.get("frames_failed", 0)) + int(diag.get("frames_dropped_invalid", 0))
    row = {"rss": rss, "threads": threads, "segmented": int(diag.get("frames_processed", 0)),
           "stale": int(diag.get("frames_dropped_stale", 0)), "lost": lost, "bad_ids": bad_ids}
    print(f"{minutes:5.1f} {rss:8.1f} {threads:7d} {sent:6d} {row['segmented']:9d} {row['stale']:6d} "
          f"{lost:5d} {cycles:12d}", flush=True)
    return row


if __name__ == "__main__":
    sys.exit(main())
