#!/usr/bin/env python3
"""What sharing the memory over the ROS graph costs (docs/teaching.md, "Fleet").

    .venv/bin/python scripts/bench_fleet.py [--dims 512,1024] [--snapshot 1000] [--teaches 20] [--repeats 5]

Part 1, bytes on the wire: rns_ros/FleetChange messages serialised by rclpy (what DDS carries,
before its own headers) for one exemplar (features only; and with fleet.share_masks, a 640x480
image + label map), one class with a text feature, one removal, and a snapshot of N exemplars
(per exemplar). d = 512 is OpenCLIP ViT-B/16's feature size, 1024 DINOv3.txt's and SigLIP2's.
Part 2, a late joiner's catch-up: a memory of N one-class exemplars over 20 classes (synthetic
unit features; what a memory holds, not what it means), then each stage of its snapshot: the
sender builds it (FleetSync.snapshot, to_message), rclpy serialises and deserialises it, the
receiver decodes (from_message), checks and merges it into an empty memory (FleetSync.receive),
and saves that memory atomically: copies it (snapshot_for_save, under the engine lock, as the merge)
and writes the copy (write_snapshot, after the lock is let go: frames go on meanwhile). The sum of
merge and copy is how long the catch-up holds frames. Plus the
delivery over DDS to a subscription created after the publication (transient local, one process,
loopback). Medians of --repeats runs.
Part 3, teach on A to class map on B: two rns_node processes (test-tiny, CPU, fleet.enabled),
--teaches add_exemplar calls on A, one at a time: the time until A answers and until B's
~/class_map holds the new exemplar (median, p95). test-tiny encodes in milliseconds; a real
backbone adds its encoding time on A, nothing on B (B receives features, not images).
Prints tables and the machine's load average before and after (the machine may be shared).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 101)))
os.environ.setdefault("AMENT_PREFIX_PATH", sys.prefix)
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from rns_ros.machine import cpu_model  # noqa: E402

import numpy as np  # noqa: E402


def median_p95(samples) -> tuple[float, float]:
    arr = np.asarray(samples, dtype=np.float64)
    return float(np.median(arr)), float(np.percentile(arr, 95))


def synthetic_memory(n: int, dim: int, classes: int = 20, seed: int = 0, image: tuple[int, int] | None = None):
    """A SupportMemory of n one-class exemplars over `classes` text classes (unit random features)."""
    import torch

    from rns_ros.core.memory.exemplars import Exemplar
    from rns_ros.core.memory.support import SupportMemory

    rng = np.random.default_rng(seed)
    memory = SupportMemory(dim, backbone_identity=f"bench/{dim}")

    def unit(*shape):
        x = torch.from_numpy(rng.standard_normal(shape).astype(np.float32))
        return x / x.norm(dim=-1, keepdim=True)

    ids = [memory.add_class(f"class {k}", unit(dim)) for k in range(classes)]
    for i in range(n):
        raw = None
        if image is not None:
            h, w = image
            labels = np.zeros((h, w), np.int64)
            labels[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = ids[i % classes]
            raw = Exemplar(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), labels)
        memory.add_image_features(unit(1, dim), [ids[i % classes]], exemplar=raw)
    return memory


def serialized_bytes(update) -> int:
    from rclpy.serialization import serialize_message

    from rns_ros.ros.fleet.messages import to_message
    from builtin_interfaces.msg import Time

    return len(serialize_message(to_message(update, Time())))


def part_bytes(dims: list[int], snapshot_n: int) -> list[tuple[str, int, int]]:
    """(what, d, bytes) rows."""
    from rns_ros.core.fleet.sync import FleetSync

    rows = []
    for dim in dims:
        memory = synthetic_memory(1, dim, classes=1)
        sync = FleetSync("/robot_a/rns@robot-a", "0" * 32, share_masks=True)
        sync.attach(memory)
        snap = sync.snapshot(memory)
        one = dataclasses.replace(snap, snapshot=False, classes=())
        rows.append(("one exemplar, features only", dim, serialized_bytes(one)))
        masked_memory = synthetic_memory(1, dim, classes=1, image=(480, 640))
        masked_sync = FleetSync("/robot_a/rns@robot-a", "0" * 32, share_masks=True)
        masked_sync.attach(masked_memory)
        masked = masked_sync.snapshot(masked_memory)
        rows.append(("one exemplar + 640x480 image and labels (share_masks)", dim,
                     serialized_bytes(dataclasses.replace(masked, classes=()))))
        rows.append(("one class with its text feature", dim,
                     serialized_bytes(dataclasses.replace(snap, exemplars_added=()))))
        rows.append(("one exemplar removal", dim, serialized_bytes(dataclasses.replace(
            snap, classes=(), exemplars_added=(), exemplars_removed=("0" * 64,)))))
        big = synthetic_memory(snapshot_n, dim)
        big_sync = FleetSync("/robot_a/rns@robot-a", "0" * 32)
        big_sync.attach(big)
        total = serialized_bytes(big_sync.snapshot(big))
        rows.append((f"snapshot of {snapshot_n} exemplars, 20 classes: per exemplar", dim, round(total / snapshot_n)))
        rows.append((f"snapshot of {snapshot_n} exemplars, 20 classes: whole", dim, total))
    return rows


def part_late_joiner(dim: int, n: int, repeats: int) -> dict[str, list[float]]:
    """Seconds per stage of one late joiner's catch-up from a snapshot of n exemplars."""
    from builtin_interfaces.msg import Time
    from rclpy.serialization import deserialize_message, serialize_message

    from rns_ros.core.fleet.items import FleetLimits
    from rns_ros.core.fleet.sync import FleetSync
    from rns_ros.core.memory.persistence import snapshot_for_save, write_snapshot
    from rns_ros.core.memory.support import SupportMemory
    from rns_ros.msg import FleetChange
    from rns_ros.ros.fleet.messages import from_message, to_message

    sender_memory = synthetic_memory(n, dim)
    sender = FleetSync("/robot_a/rns@robot-a", "a" * 32)
    sender.attach(sender_memory)
    stages: dict[str, list[float]] = {k: [] for k in (
        "sender: FleetSync.snapshot", "sender: to_message", "serialize", "deserialize", "receiver: from_message",
        "receiver: FleetSync.receive (check + merge), under the engine lock",
        "receiver: copy the memory for saving, under the engine lock",
        "receiver: write the copy atomically (frames go on)",
        "receiver: the same snapshot again (nothing new)")}
    for r in range(repeats):
        t = [time.perf_counter()]
        update = sender.snapshot(sender_memory)
        t.append(time.perf_counter())
        msg = to_message(update, Time())
        t.append(time.perf_counter())
        wire = serialize_message(msg)
        t.append(time.perf_counter())
        got = deserialize_message(wire, FleetChange)
        t.append(time.perf_counter())
        received = from_message(got, FleetLimits())
        t.append(time.perf_counter())
        memory = SupportMemory(dim, backbone_identity=f"bench/{dim}")
        receiver = FleetSync(f"/late{r}/rns@robot-b", "b" * 32)
        receiver.attach(memory)
        receipt = receiver.receive(received, memory)
        t.append(time.perf_counter())
        with tempfile.TemporaryDirectory() as folder:
            copy = snapshot_for_save(memory)
            t.append(time.perf_counter())
            write_snapshot(copy, folder)
            t.append(time.perf_counter())
            again = receiver.receive(received, memory)
            t.append(time.perf_counter())
        assert receipt.merged == n + 20 and memory.num_exemplars == n and again.merged == 0, receipt
        for key, (a, b) in zip(stages, zip(t, t[1:])):
            stages[key].append(b - a)
    stages["DDS delivery to a late subscription (transient local)"] = dds_late_delivery(
        to_message(sender.snapshot(sender_memory), Time()), repeats)
    return stages


def dds_late_delivery(msg, repeats: int) -> list[float]:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from rns_ros.msg import FleetChange
    from rns_ros.ros.fleet.link import SNAPSHOT_PUBLISHER_QOS, SNAPSHOT_SUBSCRIPTION_QOS

    rclpy.init()
    try:
        sender, joiner = rclpy.create_node("bench_fleet_sender"), rclpy.create_node("bench_fleet_joiner")
        executor = SingleThreadedExecutor()
        executor.add_node(sender)
        executor.add_node(joiner)
        pub = sender.create_publisher(FleetChange, "/bench_fleet/memory/snapshot", SNAPSHOT_PUBLISHER_QOS)
        pub.publish(msg)
        samples = []
        for _ in range(repeats):
            got = []
            start = time.perf_counter()
            sub = joiner.create_subscription(FleetChange, "/bench_fleet/memory/snapshot",
                                             lambda m: got.append(time.perf_counter()), SNAPSHOT_SUBSCRIPTION_QOS)
            deadline = start + 60
            while not got and time.perf_counter() < deadline:
                executor.spin_once(timeout_sec=0.01)
            joiner.destroy_subscription(sub)
            if got:
                samples.append(got[0] - start)
        return samples
    finally:
        rclpy.try_shutdown()


def start_node(name: str, folder: Path) -> subprocess.Popen:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "rns_ros.cli.node", "--ros-args", "-r", f"__ns:=/{name}", "-r", "__node:=rns",
           "-p", "backbone:=test-tiny", "-p", "device:=cpu", "-p", f"memory_dir:={folder / name}",
           "-p", "fleet.enabled:=true", "-p", "fleet.topic:=/bench_fleet/memory", "-p", "classes:=mug"]
    log = open(folder / f"{name}.log", "w")
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def part_teach_latency(teaches: int) -> dict[str, list[float]]:
    """Seconds from an add_exemplar call on A to A's answer and to B's class map holding it."""
    with tempfile.TemporaryDirectory(prefix="bench_fleet_") as folder:
        return _teach_latency(teaches, Path(folder))


def _teach_latency(teaches: int, folder: Path) -> dict[str, list[float]]:
    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    from rns_ros.msg import ClassMap
    from rns_ros.ros.conversions import mask_image, rgb_to_image
    from rns_ros.ros.spinning import spin_in_thread, stop_executor, stop_process
    from rns_ros.srv import AddExemplar, ListClasses
    from std_msgs.msg import Header

    procs = [start_node(name, folder) for name in ("bench_a", "bench_b")]
    rclpy.init()
    executor = MultiThreadedExecutor(num_threads=2)
    thread = spin_in_thread(executor)
    try:
        helper = rclpy.create_node("bench_fleet_helper")
        executor.add_node(helper)
        seen: list[tuple[float, int]] = []
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        helper.create_subscription(ClassMap, "/bench_b/rns/class_map", lambda m: seen.append(
            (time.perf_counter(), sum(c.exemplar_count for c in m.classes))), latched)
        teach = helper.create_client(AddExemplar, "/bench_a/rns/add_exemplar")
        for client in (teach, helper.create_client(ListClasses, "/bench_b/rns/list_classes")):
            if not client.wait_for_service(timeout_sec=180):
                logs = "\n".join(p.read_text()[-2000:] for p in folder.glob("*.log"))
                raise RuntimeError(f"the nodes did not start:\n{logs}")
        rng = np.random.default_rng(0)
        samples: dict[str, list[float]] = {"A answers": [], "B's class map holds it": []}
        for i in range(teaches):
            rgb = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
            mask = np.zeros((96, 128), bool)
            mask[20:70, 30:100] = True
            request = AddExemplar.Request(class_name="mug", image=rgb_to_image(rgb, Header()),
                                          mask=mask_image(mask, Header()))
            start = time.perf_counter()
            future = teach.call_async(request)
            while not future.done():
                time.sleep(0.0005)
            answered = time.perf_counter()
            assert future.result().success, future.result().message
            while not any(count == i + 1 for _, count in seen):
                time.sleep(0.0005)
            arrived = next(t for t, count in seen if count == i + 1)
            samples["A answers"].append(answered - start)
            samples["B's class map holds it"].append(arrived - start)
        return samples
    finally:
        stop_executor(executor, thread)
        rclpy.try_shutdown()
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)  # all at once, then each waited for
        for proc in procs:
            stop_process(proc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dims", default="512,1024", help="feature sizes for part 1")
    parser.add_argument("--snapshot", type=int, default=1000, help="exemplars in the snapshot (parts 1 and 2)")
    parser.add_argument("--snapshot-dim", type=int, default=512, help="feature size in part 2")
    parser.add_argument("--repeats", type=int, default=5, help="runs of part 2")
    parser.add_argument("--teaches", type=int, default=20, help="teaches in part 3 (0 = skip it)")
    args = parser.parse_args(argv)
    dims = [int(d) for d in args.dims.split(",")]
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; load average before: {os.getloadavg()}")

    print("\n## Bytes on the wire (serialised rns_ros/FleetChange)\n")
    print("| message | d | bytes |\n|---|---|---|")
    for what, dim, size in part_bytes(dims, args.snapshot):
        print(f"| {what} | {dim} | {size:,} |")

    print(f"\n## A late joiner catching up from a snapshot of {args.snapshot} exemplars "
          f"(d = {args.snapshot_dim}, median of {args.repeats})\n")
    print("| stage | median ms | p95 ms |\n|---|---|---|")
    stages = part_late_joiner(args.snapshot_dim, args.snapshot, args.repeats)
    for stage, samples in stages.items():
        med, p95 = median_p95(samples)
        print(f"| {stage} | {1e3 * med:.1f} | {1e3 * p95:.1f} |")
    total = sum(median_p95(s)[0] for stage, s in stages.items() if "again" not in stage)
    held = sum(median_p95(s)[0] for stage, s in stages.items() if "under the engine lock" in stage)
    print(f"| **the first catch-up: total of the medians** | **{1e3 * total:.1f}** | |")
    print(f"| **of which frames wait (under the engine lock)** | **{1e3 * held:.1f}** | |")

    if args.teaches:
        print(f"\n## Teach on A -> class map on B (two rns_node processes, test-tiny on the CPU, "
              f"{args.teaches} teaches)\n")
        print("| from add_exemplar called on A to | median ms | p95 ms |\n|---|---|---|")
        for what, samples in part_teach_latency(args.teaches).items():
            med, p95 = median_p95(samples)
            print(f"| {what} | {1e3 * med:.1f} | {1e3 * p95:.1f} |")
    print(f"\nload average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
