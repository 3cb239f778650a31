#!/usr/bin/env python3
"""The teaching console, measured: page load, overlay latency (camera stamp -> shown in the page),
the console's CPU while a page watches, and what watching costs the node and the camera.

    .venv/bin/python scripts/bench_console.py                       # 640x480 camera at 5 and 15 Hz
    .venv/bin/python scripts/bench_console.py --rates 5 --seconds 10 --rounds 1 --loads 2   # quick

Every part runs as its own process, as on a robot: a camera (`rns_image_folder_camera` over
generated --size JPEGs at --rate Hz), the node (`rns_node`, --backbone test-tiny by default: fast
enough that overlays arrive at the camera's rate, the console's worst case; its labels mean
nothing), the console (`rns_console`, fps 5, idle_s 2) and a real headless Chromium showing the
page. For each rate, --rounds interleaved A/B rounds of --seconds each:
  unwatched  the page is closed: the console (still running) unsubscribes the overlay and inputs
  watched    the page shows the live view: the console receives every overlay and camera frame and
             sends at most 5 JPEG pictures a second
CPU = (user + system time) / wall time of each process, in % of one core, from /proc/<pid>/stat;
medians over the rounds. Overlay latency = the moment the page drew a picture (performance.timeOrigin
+ now) minus its camera frame's stamp (both this machine's clock): the node's processing, the
overlay, the console's rate limit and encoding, HTTP and the browser's decoding and drawing.
Page load = fresh navigations to the URL (token redirect included): DOMContentLoaded and the first
overlay picture drawn, from the navigation's start; "cold" loads come after the console went idle.
Prints a markdown table with the machine and the load average.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "test" / "console"))  # the browser tests' Chromium start-up
sys.path.insert(0, str(ROOT / "test" / "ros"))  # and their polling helper

from rns_ros.machine import cpu_model  # noqa: E402
from ros_harness import RosHarness  # noqa: E402 - also: localhost discovery, a random ROS domain

wait_for = RosHarness.wait_for  # poll a condition until true, or fail naming what was awaited

BIN = Path(sys.prefix) / "bin"
TOKEN = "bench-console-token-0123456789"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


class CpuMeter:
    """CPU % of one core of each process between start() and stop()."""

    def __init__(self, procs: dict[str, subprocess.Popen]):
        self.procs = procs

    def start(self):
        self.t0, self.c0 = time.monotonic(), {k: cpu_seconds(p.pid) for k, p in self.procs.items()}

    def stop(self) -> dict[str, float]:
        wall = time.monotonic() - self.t0
        return {k: 100.0 * (cpu_seconds(p.pid) - self.c0[k]) / wall for k, p in self.procs.items()}


def make_frames(folder: Path, size: tuple[int, int]) -> None:
    from PIL import Image as PILImage

    w, h = size
    for i, photo in enumerate(sorted((ROOT / "rns_ros" / "ros" / "demo" / "sample_images").glob("*.jpg"))):
        PILImage.open(photo).convert("RGB").resize((w, h)).save(folder / f"{i}.jpg", quality=92)


def start(cmd: list[str], log: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_WAIT_POLICY="PASSIVE")
    with open(log, "w") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))] if values else float("nan")


def run_rate(args, rate: float, work: Path, driver, watcher) -> dict:
    procs = {
        "camera": start([str(BIN / "rns_image_folder_camera"), "--ros-args", "-p", f"folder:={work / 'frames'}",
                         "-p", f"rate_hz:={rate}", "-p", "frame_id:=cam", "-p", f"qos:={args.qos}"],
                        work / f"camera_{rate}.log"),
        "node": start([str(BIN / "rns_node"), "--ros-args", "-p", f"backbone:={args.backbone}", "-p", "device:=cpu",
                       "-p", f"memory_dir:={work / f'mem_{rate}'}", "-p", "classes:=floor, wall, person",
                       "-p", f"image_qos:={args.qos}"], work / f"node_{rate}.log"),
        "console": start([str(BIN / "rns_console"), "--ros-args", "-p", "port:=0", "-p", f"token:={TOKEN}",
                          "-p", "idle_s:=2.0", "-p", "fps:=5.0", "-p", f"max_width:={args.max_width}"],
                         work / f"console_{rate}.log"),
    }
    try:
        url = wait_for(lambda: re.search(r"open (http://\S+)", (work / f"console_{rate}.log").read_text()),
                       60, "the console's URL").group(1)
        base = url.split("/?")[0]
        overlay_subscribers = lambda: watcher.count_subscribers("/rns/overlay")  # noqa: E731
        node_value = lambda key: float(watcher.node_status.get(key, "nan"))  # noqa: E731 - its /diagnostics
        driver.get(url)
        wait_for(lambda: driver.execute_script("return window.rnsMetrics && window.rnsMetrics.firstPictureMs"),
                 120, "the first picture (node warm)")
        meter = CpuMeter(procs)
        rows = {"watched": [], "unwatched": []}
        latencies, shown_rates, cold_loads, node_rates = [], [], [], []
        for i in range(args.rounds):
            print(f"[bench] {rate:g} Hz: round {i + 1} of {args.rounds}", file=sys.stderr, flush=True)
            driver.get("about:blank")  # unwatched: the console lets go of the overlay after idle_s
            try:
                wait_for(lambda: overlay_subscribers() == 0, 30, "the console to unsubscribe")
            except AssertionError as exc:
                raise RuntimeError(f"{exc}; the overlay's subscribers: "
                                   f"{watcher.get_subscriptions_info_by_topic('/rns/overlay')}") from None
            meter.start()
            time.sleep(args.seconds)  # the measured interval
            rows["unwatched"].append({**meter.stop(), "processing": node_value("processing_median_ms")})
            driver.get(base + "/")  # cold: the console subscribes again on the page's first request
            first = wait_for(lambda: driver.execute_script("return window.rnsMetrics.firstPictureMs"), 60,
                             "the first picture")
            cold_loads.append((driver.execute_script(
                "return performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd"), first))
            meter.start()
            time.sleep(args.seconds)
            rows["watched"].append({**meter.stop(), "processing": node_value("processing_median_ms")})
            shown = driver.execute_script("return window.rnsMetrics.shown")
            window = [s for s in shown if s["shownAt"] / 1000.0 >= time.time() - args.seconds]
            latencies += [s["shownAt"] - float(s["stamp"]) * 1000.0 for s in window]
            shown_rates.append(len(window) / args.seconds)
            node_rates.append((node_value("input_rate_hz"), node_value("output_rate_hz")))
        warm_loads = []
        for _ in range(args.loads):
            driver.get(url)
            first = wait_for(lambda: driver.execute_script("return window.rnsMetrics && window.rnsMetrics.firstPictureMs"),
                             60, "the first picture")
            warm_loads.append((driver.execute_script(
                "return performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd"), first))
        med = {phase: {k: statistics.median(r[k] for r in rs) for k in [*procs, "processing"]}
               for phase, rs in rows.items()}
        return {"rate": rate, "cpu": med, "latency": latencies, "shown_fps": statistics.median(shown_rates),
                "cold": cold_loads, "warm": warm_loads,
                "node_in": statistics.median(r[0] for r in node_rates), "node_out": statistics.median(r[1] for r in node_rates)}
    finally:
        for proc in procs.values():
            proc.send_signal(2)
        for proc in procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rates", default="5,15", help="camera rates in Hz, comma-separated")
    p.add_argument("--size", default="640x480", help="camera frame size WxH")
    p.add_argument("--backbone", default="test-tiny", help="the node's backbone (test-tiny: random weights)")
    p.add_argument("--seconds", type=float, default=15.0, help="length of each measured phase")
    p.add_argument("--rounds", type=int, default=3, help="interleaved watched/unwatched rounds per rate")
    p.add_argument("--loads", type=int, default=5, help="warm page loads per rate")
    p.add_argument("--max-width", type=int, default=960, help="the console's max_width")
    p.add_argument("--qos", default="reliable", choices=("reliable", "sensor_data"),
                   help="camera and node image QoS (reliable: no frame lost between the processes on a busy "
                        "machine, so the node sees the camera's rate)")
    args = p.parse_args(argv)
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node

    from rns_ros.ros.spinning import spin_in_thread, stop_executor

    from browser import start_chromium

    size = tuple(int(v) for v in args.size.split("x"))
    load_start = os.getloadavg()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_console_") as tmp:
        work = Path(tmp)
        (work / "frames").mkdir()
        make_frames(work / "frames", size)
        rclpy.init()
        watcher = Node("bench_console_watcher")
        watcher.node_status = {}  # the node's newest /diagnostics values (its input and output rates)

        def on_diagnostics(msg):
            for status in msg.status:
                if status.name == "/rns: segmentation":
                    watcher.node_status = {kv.key: kv.value for kv in status.values}
        watcher.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)
        executor = SingleThreadedExecutor()
        executor.add_node(watcher)
        spin = spin_in_thread(executor)
        driver = start_chromium(work / "chromium")
        try:
            for rate in (float(r) for r in args.rates.split(",")):
                results.append(run_rate(args, rate, work, driver, watcher))
        finally:
            driver.quit()
            stop_executor(executor, spin)
            watcher.destroy_node()
            rclpy.try_shutdown()
    load_end = os.getloadavg()
    print(f"\n{cpu_model()}, {os.cpu_count()} CPUs; load average {load_start[0]:.1f} at the start, "
          f"{load_end[0]:.1f} at the end (a shared machine: read the ratios within a row); camera {args.size}, "
          f"node backbone {args.backbone} (random weights), image QoS {args.qos}, console fps 5, "
          f"max_width {args.max_width}; "
          f"{args.rounds} interleaved rounds of {args.seconds:.0f} s, medians; headless Chromium on the same CPUs\n")
    print("| camera | node in / out (frames/s) | page load: DOMContentLoaded / first picture, warm (ms) | cold (ms) "
          "| pictures shown /s | overlay latency camera -> shown, median / p95 (ms) "
          "| console CPU watched / unwatched (% of a core) | node CPU watched / unwatched "
          "| node processing per frame watched / unwatched (ms) | camera CPU watched / unwatched |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        warm = [statistics.median(v[i] for v in r["warm"]) for i in (0, 1)] if r["warm"] else [float("nan")] * 2
        cold = [statistics.median(v[i] for v in r["cold"]) for i in (0, 1)]
        c = r["cpu"]
        print(f"| {r['rate']:g} Hz | {r['node_in']:.1f} / {r['node_out']:.1f} | {warm[0]:.0f} / {warm[1]:.0f} | {cold[0]:.0f} / {cold[1]:.0f} | "
              f"{r['shown_fps']:.1f} | {statistics.median(r['latency']):.0f} / {pct(r['latency'], 0.95):.0f} | "
              f"{c['watched']['console']:.1f} / {c['unwatched']['console']:.1f} | "
              f"{c['watched']['node']:.1f} / {c['unwatched']['node']:.1f} | "
              f"{c['watched']['processing']:.1f} / {c['unwatched']['processing']:.1f} | "
              f"{c['watched']['camera']:.1f} / {c['unwatched']['camera']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
