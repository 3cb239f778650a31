#!/usr/bin/env python3
"""Memory of a node that is taught and corrected again and again: teach and forget, RSS as it goes.

    .venv/bin/python scripts/bench_teaching_memory.py                    # 1,000 cycles, both settings
    .venv/bin/python scripts/bench_teaching_memory.py --cycles 200 --every 50

One cycle, through the node's real services (one process, Fast DDS): add a class, add one mask
exemplar of it on a --size image, publish one camera frame and wait for its labels, remove the
class. The node is built as `rns_node` builds it (backbone test-tiny unless --backbone: random
weights, the plumbing and the memory are what is measured). Every --every cycles the process's
resident memory (VmRSS, /proc/self/status) and thread count are printed; the goal is less than
20 MB of growth after the warm-up (--warmup cycles).

--allocator: `fixed` is the node as shipped (glibc's mmap threshold fixed on configure,
rns_ros/process_memory.py); `dynamic` leaves glibc's dynamic threshold (the node before issue
25); `both` (default) runs each in its own process, one after the other, and prints them side by
side. At the end of a run, malloc_trim(0) shows how much of the growth was freed memory the
allocator kept (given back by the trim) rather than memory still referenced.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 101)))
os.environ.setdefault("AMENT_PREFIX_PATH", sys.prefix)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from rns_ros.machine import cpu_model  # noqa: E402

GOAL_MB = 20.0


def status() -> tuple[float, int]:
    """(VmRSS in MiB, threads) of this process."""
    values = {}
    with open("/proc/self/status") as lines:
        for line in lines:
            key, _, rest = line.partition(":")
            values[key] = rest.split()
    return int(values["VmRSS"][0]) / 1024.0, int(values["Threads"][0])


def run(args) -> dict:
    """Teach and forget `args.cycles` times in this process; the rows and the trim's result."""
    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from rns_ros import process_memory
    from rns_ros.ros.conversions import mask_image, rgb_to_image
    from rns_ros.ros.node import RnsNode
    from rns_ros.ros.spinning import spin_in_thread, stop_executor
    from rns_ros.srv import AddClasses, AddExemplar, RemoveClasses

    if args.allocator == "dynamic":
        process_memory.return_large_blocks = lambda *a, **k: True  # the node before issue 25
    w, h = (int(v) for v in args.size.lower().split("x"))
    rclpy.init()
    namespace = f"/teaching_memory_{os.getpid()}"  # its own names: other runs may share the domain id
    node = RnsNode(namespace=namespace, parameter_overrides=[
        Parameter("backbone", value=args.backbone), Parameter("device", value="cpu"),
        Parameter("memory_dir", value=tempfile.mkdtemp(prefix="rns-teach-memory-")),
        Parameter("classes", value=["floor", "wall"]), Parameter("image_qos", value="reliable")])
    helper = rclpy.create_node("teaching_memory_bench")
    executor = MultiThreadedExecutor(num_threads=4)
    for n in (node, helper):
        executor.add_node(n)
    thread = spin_in_thread(executor)
    reliable = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
    labels = []
    helper.create_subscription(Image, f"{namespace}/rns/labels", labels.append, reliable)
    camera = helper.create_publisher(Image, f"{namespace}/image", reliable)
    clients = {name: helper.create_client(cls, f"{namespace}/rns/{name}") for name, cls in
               (("add_classes", AddClasses), ("add_exemplar", AddExemplar), ("remove_classes", RemoveClasses))}

    def wait(condition, what: str, timeout: float = 120.0):
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            time.sleep(0.002)

    def call(name: str, request):
        future = clients[name].call_async(request)
        wait(future.done, name)
        answer = future.result()
        if not answer.success:
            raise RuntimeError(f"{name} refused: {answer.message}")

    wait(lambda: all(c.service_is_ready() for c in clients.values()) and camera.get_subscription_count(),
         "the node's services")
    rng = np.random.default_rng(0)
    image = rgb_to_image(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), Header())
    mask = np.zeros((h, w), bool)
    mask[h // 4:h // 2, w // 4:w // 2] = True
    mask_msg = mask_image(mask, Header())
    frame = rgb_to_image(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), Header())
    rows = [(0, *status())]
    started = time.monotonic()
    try:
        for cycle in range(1, args.cycles + 1):
            name = f"taught {cycle}"
            call("add_classes", AddClasses.Request(names=[name]))
            call("add_exemplar", AddExemplar.Request(class_name=name, image=image, mask=mask_msg))
            for _ in range(args.frames_per_cycle):
                seen = len(labels)
                camera.publish(frame)
                wait(lambda: len(labels) > seen, "the frame's labels")
            call("remove_classes", RemoveClasses.Request(names=[name]))
            labels.clear()
            if cycle % args.every == 0 or cycle == args.cycles:
                rows.append((cycle, *status()))
                if not args.json:
                    print(f"  cycle {cycle}: RSS {rows[-1][1]:.1f} MB, {rows[-1][2]} threads", flush=True)
        seconds = time.monotonic() - started
        before_trim = status()[0]
        process_memory.give_back_free_memory()
        after_trim = status()[0]
    finally:
        stop_executor(executor, thread)
        node.close()
        node.destroy_node()
        helper.destroy_node()
        rclpy.try_shutdown()
    return {"allocator": args.allocator, "rows": rows, "seconds": seconds, "before_trim": before_trim,
            "after_trim": after_trim}


def growth_after(result: dict, warmup: int) -> float:
    """RSS growth from the first row at or after `warmup` cycles to the last row, MB."""
    rows = result["rows"]
    start = next(r for r in rows if r[0] >= warmup)
    return rows[-1][1] - start[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=1000)
    parser.add_argument("--every", type=int, default=100, help="cycles between RSS readings")
    parser.add_argument("--warmup", type=int, default=100, help="growth is counted from this cycle on")
    parser.add_argument("--size", default="640x480", help="exemplar and frame size WxH")
    parser.add_argument("--frames-per-cycle", type=int, default=1)
    parser.add_argument("--backbone", default="test-tiny")
    parser.add_argument("--allocator", choices=("fixed", "dynamic", "both"), default="both")
    parser.add_argument("--json", action="store_true", help="print one JSON object (one allocator setting)")
    args = parser.parse_args(argv)
    if args.allocator != "both":
        result = run(args)
        result["growth_after_warmup_mb"] = growth_after(result, args.warmup)
        print(json.dumps(result) if args.json else f"growth after warm-up: {result['growth_after_warmup_mb']:+.1f} MB")
        return 0
    load_before = os.getloadavg()[0]
    results = {}
    for allocator in ("fixed", "dynamic"):
        cmd = [sys.executable, __file__, "--json", "--allocator", allocator, "--cycles", str(args.cycles),
               "--every", str(args.every), "--warmup", str(args.warmup), "--size", args.size,
               "--frames-per-cycle", str(args.frames_per_cycle), "--backbone", args.backbone]
        out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
        results[allocator] = json.loads(out.strip().splitlines()[-1])
    load_after = os.getloadavg()[0]
    fixed, dynamic = results["fixed"], results["dynamic"]
    print(f"Teach and forget {args.cycles} times (add class, mask exemplar {args.size}, {args.frames_per_cycle} "
          f"frame(s), remove class), backbone {args.backbone}; CPU {cpu_model()}, {os.cpu_count()} cores; "
          f"load average {load_before:.1f} before, {load_after:.1f} after (a shared machine)\n")
    print("| cycles | RSS MB, fixed threshold (as shipped) | threads | RSS MB, dynamic threshold (before) | threads |")
    print("|---|---|---|---|---|")
    for (cycle, rss_f, thr_f), (_, rss_d, thr_d) in zip(fixed["rows"], dynamic["rows"]):
        print(f"| {cycle} | {rss_f:.1f} | {thr_f} | {rss_d:.1f} | {thr_d} |")
    gf, gd = growth_after(fixed, args.warmup), growth_after(dynamic, args.warmup)
    print(f"| growth after cycle {args.warmup} | **{gf:+.1f}** | | {gd:+.1f} | |")
    print(f"| after malloc_trim(0) at the end | {fixed['after_trim']:.1f} | | {dynamic['after_trim']:.1f} | |")
    print(f"| seconds per cycle | {fixed['seconds'] / args.cycles:.2f} | | {dynamic['seconds'] / args.cycles:.2f} | |")
    print(f"\ngoal: < {GOAL_MB:g} MB after the warm-up: {'met' if gf < GOAL_MB else 'MISSED'} (fixed threshold)")
    return 0 if gf < GOAL_MB else 1


if __name__ == "__main__":
    sys.exit(main())
