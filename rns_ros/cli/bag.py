"""`rns-bag`: segment EVERY image of a rosbag2 recording offline, into a new bag.

    rns-bag IN_BAG --image-topic /camera/color/image_raw --out OUT_BAG --classes "floor, wall, door"
    rns-bag IN_BAG --image-topic /camera/color/image_raw/compressed \\
        --depth-topic /camera/aligned_depth_to_color/image_raw \\
        --camera-info-topic /camera/aligned_depth_to_color/camera_info --out OUT_BAG --memory ~/.ros/rns_ros/rns

The output bag holds every input topic unchanged plus, under `--namespace` (default /rns, the live
node's topics): `labels`, `confidence`, `class_map` and, with a depth topic, `points`, each stamped
with its colour frame's header and recorded at that frame's recording time. The engine and every
setting are the node's: its parameter table (`--params-file`, `-p name:=value`, and the flags
below as shorthands) builds the same NodeConfig/EngineConfig and `build_engine` the same engine, so
a bag segmented here gives the labels the node gives for the same frames and memory. Same input +
same memory + same parameters (adapter.seed) = identical labels.

Contract: images are processed in recording order, none skipped for speed; a frame that cannot be
decoded is skipped and counted under its reason; Ctrl-C (or SIGTERM) finishes the current frame and
closes the output bag of what was done (a second Ctrl-C stops at once and still closes it); the
output path only ever holds a complete bag (rns_ros/ros/bags/io.BagWriter). Exit code 0 = every frame done,
130 = interrupted, 1 = stopped by an unreadable input (what was done is kept), 2 = could not start.
"""
from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from rns_ros.cli.engine_log import engine_log_shown
from rns_ros.core.advice import explain
from rns_ros.core.runtimes.errors import ExportMissingError
from rns_ros.ros.bags.io import IMAGE_TYPES, BagError, open_reader, storage_of
from rns_ros.ros.bags.run import BagRun, Topics
from rns_ros.ros.params import ERROR_SPELLING

DEPTH_TYPES = IMAGE_TYPES  # raw depth, or image_transport's compressedDepth (told apart by type)
# Errors name settings the node's way (-p name:=value), which rns-bag takes too; its flags where it has one.
BAG_SPELLING = {**ERROR_SPELLING, "backbone": "--backbone {value}", "checkpoint": "--checkpoint {value}",
                "device": "--device {value}", "runtime": "--runtime {value}", "onnx_model": "--onnx-model {value}"}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="rns-bag", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("in_bag", metavar="IN_BAG", help="rosbag2 folder (MCAP or sqlite3), or one .mcap/.db3 file")
    p.add_argument("--image-topic", required=True, help="colour images: sensor_msgs/Image or CompressedImage")
    p.add_argument("--depth-topic", default="", help="aligned depth images (16UC1 mm or 32FC1 m; raw, or "
                   "compressedDepth png): adds `points`")
    p.add_argument("--camera-info-topic", default="", help="the depth image's sensor_msgs/CameraInfo")
    p.add_argument("--out", required=True, help="output bag folder (must not exist)")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default=None, help="output storage (default: the input's)")
    p.add_argument("--namespace", default="/rns", help="prefix of the output topics (default /rns, like the node)")
    p.add_argument("--classes", default=None, help="comma-separated class names (node parameter `classes`)")
    p.add_argument("--memory", default=None, help="support memory folder to segment with, read only "
                   "(node parameter `memory_dir`; default: none, only --classes)")
    p.add_argument("--backbone", default=None, help="backbone preset (node parameter `backbone`)")
    p.add_argument("--checkpoint", default=None, help="local backbone weights file (node parameter `checkpoint`)")
    p.add_argument("--device", default=None, help="cuda, cuda:N or cpu (node parameter `device`)")
    p.add_argument("--runtime", default=None, help="what computes the image encoder: auto, torch, onnxruntime, "
                                                   "tensorrt, openvino (node parameter `runtime`)")
    p.add_argument("--onnx-model", default=None, help="the runtime's exported encoder, rns-export's folder "
                                                      "(node parameter `onnx_model`)")
    p.add_argument("--params-file", default=None, help="the node's parameter YAML (e.g. config/rns.yaml)")
    p.add_argument("-p", dest="params", action="append", default=[], metavar="NAME:=VALUE",
                   help="any node parameter, e.g. -p adapter.steps:=200 (repeatable; wins over --params-file)")
    p.add_argument("--node-name", default="rns", help="node name whose entry in --params-file applies (default rns)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def parameter_values(args) -> dict:
    """Node parameter values: --params-file (its `/**` entry, then the node's), then -p, then the flags."""
    import yaml

    values: dict = {}
    if args.params_file:
        try:
            doc = yaml.safe_load(Path(args.params_file).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise BagError(f"cannot read --params-file {args.params_file}: {exc}") from exc
        if not isinstance(doc, dict):
            raise BagError(f"--params-file {args.params_file} is not a ROS parameter file (NODE: ros__parameters: ...)")
        for key in ("/**", args.node_name, "/" + args.node_name):  # the node's own entry wins, as in ROS
            values.update(_flatten((doc.get(key) or {}).get("ros__parameters") or {}))
    for item in args.params:
        name, sep, text = item.partition(":=")
        if not sep:
            raise BagError(f"-p takes NAME:=VALUE, got {item!r}")
        values[name.strip()] = yaml.safe_load(text) if text else ""
    flags = {"classes": args.classes, "memory_dir": args.memory, "backbone": args.backbone,
             "checkpoint": args.checkpoint, "device": args.device, "runtime": args.runtime,
             "onnx_model": args.onnx_model}
    values.update({k: v for k, v in flags.items() if v is not None})
    return values


def _flatten(section: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in section.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def find_topics(reader, args) -> Topics:
    """The input connections by role; BagError lists the recording's topics when one is missing."""
    by_topic = {}
    for conn in reader.connections:
        by_topic.setdefault(conn.topic, conn)
    available = ", ".join(f"{t} ({c.msgtype})" for t, c in sorted(by_topic.items())) or "none"

    def pick(topic: str, flag: str, types: tuple[str, ...]):
        if not topic:
            return None
        conn = by_topic.get(topic)
        if conn is None:
            raise BagError(f"{flag} {topic} is not in the bag; its topics: {available}")
        if conn.msgtype not in types:
            raise BagError(f"{flag} {topic} is a {conn.msgtype}, expected {' or '.join(types)}")
        return conn

    if bool(args.depth_topic) != bool(args.camera_info_topic):
        raise BagError("--depth-topic and --camera-info-topic go together (the points need the depth intrinsics)")
    return Topics(image=pick(args.image_topic, "--image-topic", IMAGE_TYPES),
                  depth=pick(args.depth_topic, "--depth-topic", DEPTH_TYPES),
                  camera_info=pick(args.camera_info_topic, "--camera-info-topic", ("sensor_msgs/msg/CameraInfo",)))


class StopRequest:
    """SIGINT/SIGTERM: the first asks to stop after the current frame, the second interrupts now."""

    def __init__(self):
        self.requested = False
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nrns-bag: stopping after the current frame and closing the output bag "
              "(Ctrl-C again to stop at once)", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    try:
        values = parameter_values(args)
        reader = open_reader(args.in_bag)
    except BagError as exc:
        print(f"rns-bag: {exc}", file=sys.stderr)
        return 2
    if getattr(reader, "note", ""):  # a cut-off recording, read as far as it goes
        print(f"rns-bag: {reader.note}", file=sys.stderr)
    try:
        topics = find_topics(reader, args)
        storage = args.storage or storage_of(args.in_bag)
        job = BagRun.start(reader, topics, values, out=args.out, storage=storage, namespace=args.namespace,
                           log=lambda text: print(f"rns-bag: {text}", file=sys.stderr, flush=True))
    except (BagError, ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"rns-bag: {explain(exc, BAG_SPELLING)}", file=sys.stderr)
        if isinstance(exc, FileNotFoundError) and not isinstance(exc, ExportMissingError):
            print("rns-bag: weights: pass --checkpoint FILE, or --backbone test-tiny to check the plumbing only "
                  "(random weights, meaningless labels)", file=sys.stderr)
        reader.close()
        return 2
    except KeyboardInterrupt:  # while the engine was being built: nothing was written
        print("\nrns-bag: interrupted before the first frame; no output written", file=sys.stderr)
        reader.close()
        return 130
    started = time.monotonic()
    with StopRequest() as stop:
        status = job.process(stop, progress=not args.no_progress)
    reader.close()
    summary = job.summary()
    elapsed = time.monotonic() - started
    print(f"rns-bag: {status}: {summary['frames_segmented']} of {summary['frames_in']} frames segmented in "
          f"{elapsed:.1f} s -> {args.out}", file=sys.stderr)
    for key, value in summary.items():
        if value and key not in ("frames_segmented", "frames_in"):
            print(f"  {key}: {value}", file=sys.stderr)
    return {"complete": 0, "interrupted": 130}.get(status, 1)


def main(argv=None) -> int:
    args = parse_args(argv)
    with engine_log_shown("rns-bag"):  # a runtime's one-time export can take a minute: say so
        return run(args)


if __name__ == "__main__":
    sys.exit(main())
