#!/usr/bin/env python3
"""Does batching several cameras' frames through the backbone pay on this device? The evidence
behind `camera_batching: auto` (docs/ros.md, "Several cameras").

    .venv/bin/python scripts/bench_batching.py                         # ViT-B/16, random weights, CPU
    .venv/bin/python scripts/bench_batching.py --device cuda           # the same on a GPU

For N frames (one per camera, 640x480 by default), the backbone's dense features (the sliding
windows of `OpenClipBackbone.encode_images`) are computed two ways, taking turns each repeat (and
alternating which goes first) so a shared machine's load hits both alike: one frame after another
(`encode_image` N times), and all N frames' windows in shared model calls (`encode_images`). Prints medians in ms and the ratio
batched / one by one (below 1: batching pays). Random weights: compute cost only.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as rns-bench and the launch file (docs/backbones.md)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from rns_ros.machine import cpu_model  # noqa: E402


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backbone", default="openclip-vit-b16", help="openclip-vit-b16 (random weights) or test-tiny")
    p.add_argument("--device", default="cpu")
    p.add_argument("--cameras", default="1,2,4")
    p.add_argument("--size", default="640x480")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    args = p.parse_args(argv)
    from rns_ros.core.backbones import build_backbone

    if args.threads:
        torch.set_num_threads(args.threads)
    extra = {} if args.backbone == "test-tiny" else {"random_weights": True}
    backbone = build_backbone(args.backbone, device=args.device, **extra)
    width, height = (int(v) for v in args.size.split("x"))
    rng = np.random.default_rng(0)
    counts = [int(v) for v in args.cameras.split(",")]
    frames = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(max(counts))]
    load_before = os.getloadavg()
    rows = []
    for n in counts:
        batch = frames[:n]
        one_by_one, together = [], []
        backbone.encode_images(batch)  # warm-up
        synchronize(args.device)
        ways = [(one_by_one, lambda: [backbone.encode_image(frame) for frame in batch]),
                (together, lambda: backbone.encode_images(batch))]
        for repeat in range(args.repeats):
            for times, run in (ways if repeat % 2 == 0 else ways[::-1]):  # alternate which goes first
                start = time.perf_counter()
                run()
                synchronize(args.device)
                times.append(time.perf_counter() - start)
        a, b = float(np.median(one_by_one)) * 1e3, float(np.median(together)) * 1e3
        rows.append((n, a, b, b / a))
        print(f"{n} camera(s): one by one {a:.1f} ms, batched {b:.1f} ms", flush=True)
    load_after = os.getloadavg()
    print(f"\nBackbone features of N frames, one by one vs batched ({args.backbone}"
          f"{'' if args.backbone == 'test-tiny' else ' random weights'}, {args.device}, {width}x{height}, "
          f"{torch.get_num_threads()} torch threads, median of {args.repeats}; {cpu_model()}, "
          f"{os.cpu_count()} CPUs, load average {load_before[0]:.1f} before, {load_after[0]:.1f} after)\n")
    print("| cameras | one by one, ms | batched, ms | batched / one by one |")
    print("|---|---|---|---|")
    for n, a, b, ratio in rows:
        print(f"| {n} | {a:.1f} | {b:.1f} | {ratio:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
