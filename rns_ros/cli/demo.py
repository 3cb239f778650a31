"""`rns-demo`: the whole pipeline out of the box, recorded to a folder.

    rns-demo                                   # sample images, the real backbone (needs weights)
    rns-demo --backbone test-tiny --frames 20  # random-weight model: checks the plumbing only

Starts an image-folder camera (or, `--bag`, a recorded image topic) and the `rns` node (in this
process, or with `--processes 2` as its own process, as launch_ros starts it), records what it
publishes (label and overlay PNGs, the class map and a summary as JSON) into `--output`, prints
throughput and latency, and stops after `--frames` label images (0: runs until Ctrl-C) or on
Ctrl-C. The node's support memory goes to `<output>/memory` and starts empty on every run. If the
node cannot start (typically: no model weights here), it stops within seconds and says why.

The teaching console (rns_console, docs/teaching.md) runs beside it and its URL is printed at the
start: open it to see the overlay and teach the node from a browser while the demo runs (with
`--frames 0` it runs until Ctrl-C). `--no-console` leaves it out; a taken `--console-port` only
costs the console, never the demo.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path


WEIGHTS_HINT = """\
How to provide the backbone weights (see docs/ros.md, "Model weights"):
  * a local file:    rns-demo --checkpoint /path/to/open_clip_pytorch_model.bin
                     (node parameter: checkpoint:=/path/to/open_clip_pytorch_model.bin)
  * the HF cache:    on a machine with internet, run once with HF_HUB_OFFLINE unset (it downloads
                     laion/CLIP-ViT-B-16-laion2B-s34B-b88K), or copy ~/.cache/huggingface here
  * plumbing only:   rns-demo --backbone test-tiny   (random weights: meaningless labels)"""


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="rns-demo", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=WEIGHTS_HINT)
    p.add_argument("--images", default="", help="image folder (default: the package's sample images)")
    p.add_argument("--bag", default="", help="replay a rosbag2 recording's image topic as the camera (see rns-bag)")
    p.add_argument("--image-topic", default="", help="with --bag: the image topic (default: its only one)")
    p.add_argument("--classes", default="person, cat, cup, plate, spoon, table, wall",
                   help="comma-separated class names")
    p.add_argument("--backbone", default=None, help="backbone preset (default: the node's, openclip-vit-b16); "
                   "test-tiny = TEST-ONLY random weights")
    p.add_argument("--checkpoint", default="", help="local backbone weights file")
    p.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (cuda falls back to cpu if absent)")
    p.add_argument("--steps", type=int, default=None, help="test-time training steps per frame")
    p.add_argument("--palette", default=None, help="class colours (node parameter palette): golden, okabe-ito, "
                   "voc, or hex colours by class id, e.g. '#e41a1c,#377eb8'")
    p.add_argument("--frames", type=int, default=20, help="stop after this many label images (0: run until Ctrl-C)")
    p.add_argument("--rate", type=float, default=5.0, help="camera rate in Hz")
    p.add_argument("--output", default="output/demo", help="folder for labels, overlays and the summary")
    p.add_argument("--processes", type=int, choices=(1, 2), default=1,
                   help="1: camera and node in this process; 2: the node as its own rns_node process")
    p.add_argument("--timeout", type=float, default=300.0,
                   help="give up after this many seconds (not with --frames 0)")
    p.add_argument("--no-console", dest="console", action="store_false",
                   help="do not start the teaching console (a web page; its URL is printed)")
    p.add_argument("--console-port", type=int, default=8765, help="the console's port on 127.0.0.1 (0: any free one)")
    return p.parse_args(argv)


def _start_console(context, port: int):
    """(console node, its web server started in a thread) for the demo's node, or (None, None) with
    the reason printed when it cannot start (a taken port, a missing web server package)."""
    from rclpy.parameter import Parameter

    try:
        from rns_ros.console.node import ConsoleNode
        from rns_ros.console.server import ConsoleServer
    except ImportError as exc:
        print(f"rns-demo: no teaching console ({exc}); pip install starlette uvicorn", file=sys.stderr)
        return None, None
    node = ConsoleNode(context=context, parameter_overrides=[Parameter("port", value=port)])
    try:
        server = ConsoleServer(node)
    except OSError as exc:
        print(f"rns-demo: no teaching console: cannot listen on 127.0.0.1:{port} ({exc}); "
              "try --console-port 0", file=sys.stderr)
        node.destroy_node()
        return None, None
    server.start_in_thread()
    return node, server


def _node_overrides(args) -> dict:
    values = {"classes": args.classes, "device": args.device, "checkpoint": args.checkpoint, "autostart": True,
              "memory_dir": str(Path(args.output).resolve() / "memory")}
    if args.backbone:
        values["backbone"] = args.backbone
    if args.steps is not None:
        values["adapter.steps"] = args.steps
    if args.palette is not None:
        values["palette"] = args.palette
    return values


def _ros_arg(value) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else (
        json.dumps(value) if isinstance(value, str) and ("," in value or "#" in value or not value) else str(value))


def _start_node_process(overrides: dict) -> subprocess.Popen:
    exe = shutil.which("rns_node") or str(Path(sys.prefix) / "bin" / "rns_node")
    cmd = [exe] if Path(exe).exists() else [sys.executable, "-m", "rns_ros.cli.node"]
    cmd += ["--ros-args", "-r", "__node:=rns"]
    for key, value in overrides.items():
        cmd += ["-p", f"rns:{key}:={_ros_arg(value)}"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("AMENT_PREFIX_PATH", sys.prefix)
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from rclpy.signals import SignalHandlerOptions

    from rns_ros.ros.bags.camera import make_camera
    from rns_ros.ros.demo.recorder import Recorder
    from rns_ros.ros.node import RnsNode
    from rns_ros.ros.spinning import spin_in_thread, stop_executor, stop_process

    out = Path(args.output)
    overrides = _node_overrides(args)
    # The demo teaches exactly --classes: its support memory lives in the output folder and starts
    # empty on every run (the node would otherwise restore what an earlier run taught).
    shutil.rmtree(overrides["memory_dir"], ignore_errors=True)
    context = Context()
    rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
    executor = MultiThreadedExecutor(num_threads=4, context=context)
    nodes, process, code, spin, recorder, camera, console = [], None, 0, None, None, None, None
    try:
        if args.processes == 1:
            node = RnsNode(context=context, parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
            nodes.append(node)
            if node.autostart_error:
                print(f"\nrns-demo: the segmentation node could not start (the error is logged above).\n"
                      f"{WEIGHTS_HINT}", file=sys.stderr)
                return 2
        else:
            process = _start_node_process(overrides)
        recorder_node = Node("rns_demo_recorder", context=context)
        nodes.append(recorder_node)
        recorder = Recorder(recorder_node, out)
        camera, source = make_camera(args.bag, args.image_topic, args.images, float(args.rate), context)
        nodes.append(camera)
        console_node, console = _start_console(context, args.console_port) if args.console else (None, None)
        if console_node is not None:
            nodes.append(console_node)
        for n in nodes:
            executor.add_node(n)
        spin = spin_in_thread(executor)
        until = f"recording {args.frames} label images" if args.frames else "recording until Ctrl-C"
        print(f"rns-demo: {source} at {args.rate} Hz; {until} to {out}/", flush=True)
        if console is not None:
            print(f"rns-demo: teach it from a browser, open {console.url}", flush=True)
        deadline = time.monotonic() + args.timeout if args.frames else float("inf")
        while not args.frames or recorder.frames < args.frames:
            if process is not None and process.poll() is not None:
                tail = process.stdout.read()[-3000:] if process.stdout else ""
                print(f"\nrns-demo: the rns_node process exited with code {process.returncode}:\n{tail}\n"
                      f"{WEIGHTS_HINT}", file=sys.stderr)
                return 2
            if time.monotonic() > deadline:
                print(f"rns-demo: timed out after {args.timeout} s with {recorder.frames} frame(s)", file=sys.stderr)
                code = 1
                break
            time.sleep(0.05)
    except KeyboardInterrupt:
        print("\nrns-demo: interrupted", file=sys.stderr)
    except ValueError as exc:  # parameters the node refuses, or a bag that cannot be replayed (BagError)
        print(f"\nrns-demo: {exc}", file=sys.stderr)
        code = 2
    finally:
        if console is not None:
            console.stop()
        stop_executor(executor, spin)
        summary = _finish(nodes, recorder, camera, out, args)
        for n in nodes:
            if hasattr(n, "close"):
                n.close()
            n.destroy_node()
        rclpy.try_shutdown(context=context)
        if process is not None:
            stop_process(process, timeout=15)
    if summary:
        _print_summary(summary)
    return code


def _finish(nodes, recorder, camera, out: Path, args) -> dict | None:
    if recorder is None or recorder.frames == 0:
        return None
    summary = recorder.summary()
    summary["camera_published"] = camera.published if camera is not None else None
    node = next((n for n in nodes if hasattr(n, "stats")), None)
    if node is not None:
        s = node.stats.snapshot()
        summary["node"] = {"received": s.received, "processed": s.processed, "dropped_stale": s.dropped_stale,
                           "dropped_invalid": s.dropped_invalid, "failed": s.failed,
                           "processing_ms_median": round(s.processing_median_s * 1e3, 2),
                           "processing_ms_p95": round(s.processing_p95_s * 1e3, 2),
                           "device": node.engine.device if node.engine else None,
                           "backbone": node.engine.backbone_identity if node.engine else None}
    elif recorder.diagnostics:  # the node runs in its own process: take its /diagnostics
        d = recorder.diagnostics
        summary["node"] = {"received": d.get("frames_received"), "processed": d.get("frames_processed"),
                           "dropped_stale": d.get("frames_dropped_stale"),
                           "dropped_invalid": d.get("frames_dropped_invalid"), "failed": d.get("frames_failed"),
                           "processing_ms_median": d.get("processing_median_ms"),
                           "processing_ms_p95": d.get("processing_p95_ms"), "device": d.get("device"),
                           "backbone": d.get("backbone")}
    summary["settings"] = {k: v for k, v in vars(args).items()}
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _print_summary(s: dict) -> None:
    print(f"\nrns-demo: {s['frames']} label images in {s['settings']['output']}/labels "
          f"(overlays in {s['settings']['output']}/overlay)")
    print(f"  throughput      {s['throughput_fps']:.2f} frames/s (camera {s['settings']['rate']} Hz)")
    print(f"  latency         median {s['latency_ms_median']} ms, p95 {s['latency_ms_p95']} ms "
          "(camera stamp -> label image received)")
    for i, c in enumerate(s["classes"]):  # the colours of the overlays, labels_color and the class map
        swatch = "\x1b[48;2;{};{};{}m  \x1b[0m ".format(*c["color"]) if sys.stdout.isatty() else ""
        print(f"  {'classes' if i == 0 else '':16}{swatch}{c['hex']}  {c['id']:>3}  {c['name']}")
    node = s.get("node")
    if node:
        print(f"  node            processing median {node['processing_ms_median']} ms, p95 "
              f"{node['processing_ms_p95']} ms; received {node['received']}, processed {node['processed']}, "
              f"dropped stale {node['dropped_stale']}, invalid {node['dropped_invalid']} on {node['device']}")
    if node and node.get("backbone", "") and "test-tiny" in str(node["backbone"]):
        print("  NOTE: test-tiny has random weights; the labels are meaningless (plumbing check only)")


def main(argv=None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
