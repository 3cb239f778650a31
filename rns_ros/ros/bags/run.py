"""One `rns-bag` run: the node's engine and settings over a recording, frame by frame, into a new bag.

`BagRun.start` builds exactly what the node builds on configure (parameter table -> configs ->
`build_engine`; the support memory restored, read only; the missing `classes` added in order), then
`process` reads the recording once, in order: every message is copied to the output, every colour
image segmented (no frame is skipped for speed), and the same conversions as the node's turn the
result into messages. With depth, colour frames wait (at most `HORIZON_NS` of recording time) for
their depth partner (pairing.OrderedPairer), so the pairing does not depend on which of the two was
recorded first. Frames and messages that cannot be used are skipped and counted under their reason.
"""
from __future__ import annotations

import collections
import json
from dataclasses import dataclass
from typing import Any, Callable

from rclpy.serialization import deserialize_message, serialize_message

from rns_ros.ros import params
from rns_ros.ros.outputs.class_map import class_map_message
from rns_ros.ros.outputs.label_info import label_info
from rns_ros.ros.bags.io import LATCHED_QOS, BagError, BagWriter, message_class, typestore
from rns_ros.ros.inputs.cameras import decode_frame
from rns_ros.ros.conversions import FrameError
from rns_ros.ros.depth.output import semantic_cloud
from rns_ros.ros.outputs.frames import frame_images
from rns_ros.ros.depth.pairing import OrderedPairer, stamp_ns

HORIZON_NS = 1_000_000_000  # a colour frame waits at most this much recording time for its depth frame


@dataclass(frozen=True)
class Topics:
    """The input connections (rosbags Connection) by role; depth and camera_info may be None."""

    image: Any
    depth: Any = None
    camera_info: Any = None


def prepare_engine(engine_config, node_config, log: Callable[[str], None]):
    """The node's configure, read only: build the engine, load `memory_dir` (from a temporary copy,
    so that nothing there changes, not even a corrupt file set aside), add the `classes` the
    memory lacks, in order (so their ids are the node's)."""
    import shutil
    import tempfile
    from pathlib import Path

    from rns_ros.ros.engine import build_engine
    from rns_ros.ros.teaching.memory_store import MemoryStore

    engine = build_engine(engine_config)
    for line in (engine.device_warning, engine.profile_note, engine.adapter_warning):
        if line:
            log(line)
    log(engine.runtime_note)
    if engine_config.backbone == "test-tiny":
        log("backbone 'test-tiny' has RANDOM weights: for tests and smoke runs only, its labels are meaningless")
    if node_config.memory_dir:
        folder = Path(node_config.memory_dir).expanduser()
        if not (folder / "memory.json").exists():
            raise BagError(f"--memory {folder}: no support memory there (no memory.json)")
        segmenter = engine.segmenter
        with tempfile.TemporaryDirectory(prefix="rns-bag-memory-") as tmp:
            copy = shutil.copytree(folder, Path(tmp) / "memory")
            store = MemoryStore(copy)
            memory = store.load(segmenter.backbone, segmenter.memory.device)
        for problem in store.load_problems:
            log(f"support memory: {problem}")
        if memory is None:
            raise BagError(f"--memory {folder}: the support memory could not be loaded")
        memory.continue_version_after(segmenter.memory.version)
        segmenter.memory = memory
    with engine.lock:
        known = {e.name for e in engine.classes()}
        missing = [n for n in node_config.classes if n not in known]
        if missing:
            engine.add_classes(missing)
    if not engine.classes():
        raise BagError("no classes to segment: give --classes or a --memory that holds some")
    return engine


class BagRun:
    """Reads `reader` once and writes the segmented recording through `writer`."""

    def __init__(self, reader, topics: Topics, engine, node_config, writer: BagWriter, namespace: str,
                 values: dict, log: Callable[[str], None]):
        self.reader, self.topics, self.engine, self.config = reader, topics, engine, node_config
        self.writer, self.log, self.values = writer, log, values
        self.depth = topics.depth is not None
        self.pairer = OrderedPairer(int(round(node_config.depth.max_time_diff_s * 1e9)), HORIZON_NS)
        self.copies = {c.id: writer.add_topic(c.topic, c.msgtype, msgdef=c.msgdef.data or None, digest=c.digest or None,
                                              qos=getattr(c.ext, "offered_qos_profiles", ()))
                       for c in reader.connections}
        ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
        outputs = {"labels": "sensor_msgs/msg/Image", "confidence": "sensor_msgs/msg/Image",
                   "class_map": "rns_ros/msg/ClassMap", "label_info": "vision_msgs/msg/LabelInfo"}
        if self.depth:
            outputs["points"] = "sensor_msgs/msg/PointCloud2"
        taken = {c.topic for c in reader.connections} & {f"{ns}/{name}" for name in outputs}
        if taken:
            raise BagError(f"the input bag already has {sorted(taken)}; choose another --namespace")
        self.out = {name: writer.add_topic(f"{ns}/{name}", msgtype,
                                           qos=[LATCHED_QOS] if name in ("class_map", "label_info") else ())
                    for name, msgtype in outputs.items()}
        self.image_class = message_class(topics.image.msgtype)
        self.info = None
        self.max_class_id = max((e.id for e in engine.classes()), default=0)
        self.class_map_version = None
        self.palette = node_config.colors()  # the class map's colours, as the node's `palette` gives them
        self.counts = collections.Counter()
        self.skipped = collections.Counter()

    @classmethod
    def start(cls, reader, topics: Topics, values: dict, *, out, storage: str, namespace: str,
              log: Callable[[str], None]) -> "BagRun":
        """Check the parameters, build the engine and open the output; raises BagError/ValueError
        (and the engine's FileNotFoundError/RuntimeError) with the reason, leaving no output behind."""
        unknown = params.unknown_parameters(values)
        if unknown:
            raise BagError(f"unknown parameter(s) {unknown} (from --params-file or -p); known: {sorted(params.SPECS)}")
        node_config, engine_config = params.build_configs(values)
        writer = BagWriter(out, storage, typestore())  # first: an existing --out fails before the slow part
        try:
            engine = prepare_engine(engine_config, node_config, log)
            return cls(reader, topics, engine, node_config, writer, namespace, values, log)
        except BaseException:
            writer.abort()
            raise

    # ------------------------------------------------------------------ the loop
    def process(self, stop, progress: bool = True) -> str:
        """Run to the end of the recording (or a stop request); close the output. Returns the status:
        'complete', 'interrupted' or 'stopped: <why>'."""
        from tqdm import tqdm

        total = sum(c.msgcount for c in self.reader.connections if c.topic == self.topics.image.topic)
        self.log(f"segmenting {total} frame(s) of {self.topics.image.topic} on {self.engine.device} "
                 f"-> {self.writer.path} (Ctrl-C: stop and keep what was done)")
        bar = tqdm(total=total, unit="frame", disable=not progress, dynamic_ncols=True, smoothing=0.1)
        status = "complete"
        try:
            messages = self.reader.messages(connections=self.reader.connections)
            while not stop.requested:
                try:
                    item = next(messages, None)
                except Exception as exc:  # noqa: BLE001 - a truncated or corrupt input: keep what was done
                    status = f"stopped: input unreadable after {self.counts['messages']} messages: {exc}"
                    item = None  # the frames read intact, still waiting for depth, are segmented too
                if item is None:
                    for frame, depth in self.pairer.flush():
                        if stop.requested:
                            break
                        self._frame(frame, depth, bar)
                    break
                self._message(*item, bar, stop)
            if stop.requested:
                status = "interrupted"
        except KeyboardInterrupt:
            status = "interrupted"
        finally:
            bar.close()
            self._close(status)
        return status

    def _message(self, conn, time_ns: int, raw: bytes, bar, stop) -> None:
        self.writer.write(self.copies[conn.id], time_ns, raw)
        self.counts["messages"] += 1
        if conn.topic == self.topics.image.topic:
            self.counts["frames_in"] += 1
            msg = self._deserialize(raw, self.image_class, "image")
            if msg is None:
                bar.update(1)
            elif not self.depth:
                self._frame((time_ns, msg), None, bar)
            else:
                self.pairer.add_colour(stamp_ns(msg.header), time_ns, (time_ns, msg))
        elif self.depth and conn.topic == self.topics.depth.topic:
            msg = self._deserialize(raw, message_class(conn.msgtype), "depth")
            if msg is not None:
                self.pairer.add_depth(stamp_ns(msg.header), msg)
        elif self.depth and conn.topic == self.topics.camera_info.topic:
            self.info = self._deserialize(raw, message_class(conn.msgtype), "camera_info") or self.info
        if self.depth:
            for frame, depth in self.pairer.ready(time_ns):
                self._frame(frame, depth, bar)
                if stop.requested:
                    break

    def _deserialize(self, raw: bytes, cls, what: str):
        try:
            return deserialize_message(raw, cls)
        except Exception as exc:  # noqa: BLE001 - rclpy raises RMWError and others on corrupt data
            self.skipped[f"undecodable {what} message: {str(exc)[:80]}"] += 1
            return None

    def _frame(self, frame, depth_msg, bar) -> None:
        """Segment one colour frame and write its outputs at its recording time, as the node publishes them."""
        time_ns, msg = frame
        bar.update(1)
        try:
            rgb = decode_frame(msg, self.config.max_image_pixels)
        except FrameError as exc:
            self.skipped[f"bad frame: {exc}"[:120]] += 1
            return
        try:
            result = self.engine.segment(rgb)
        except Exception as exc:  # noqa: BLE001 - counted like the node's failed frames
            self.skipped[f"engine error: {exc}"[:120]] += 1
            return
        config = self.config
        try:
            labels, label_image, confidence_image = frame_images(
                result, msg.header, self.max_class_id, min_confidence=config.min_confidence,
                confidence=config.publish_confidence, confidence_encoding=config.confidence_encoding)
        except ValueError as exc:  # ids beyond mono16, as the node counts them
            self.skipped[f"labels not encodable: {exc}"[:120]] += 1
            return
        self._class_map(msg.header, time_ns)
        self._write("labels", time_ns, label_image)
        if confidence_image is not None:
            self._write("confidence", time_ns, confidence_image)
        self.counts["frames_segmented"] += 1
        if self.depth:
            self._cloud(depth_msg, rgb, labels, result.confidence, msg.header, time_ns)

    def _cloud(self, depth_msg, rgb, labels, confidence, header, time_ns: int) -> None:
        if depth_msg is None or self.info is None:
            self.counts["depth_unpaired"] += 1
            return
        try:
            cloud = semantic_cloud(depth_msg, self.info, rgb, labels, confidence, header, self.config.depth)
        except (FrameError, ValueError) as exc:
            self.skipped[f"depth frame unusable: {exc}"[:120]] += 1
            return
        self._write("points", time_ns, cloud)
        self.counts["clouds"] += 1

    def _class_map(self, header, time_ns: int) -> None:
        version = self.engine.support_version()
        if version != self.class_map_version:
            entries = self.engine.classes()
            cmap = class_map_message(entries, version, self.engine.backbone_identity, header.stamp,
                                        self.palette)
            self._write("class_map", time_ns, cmap)
            self._write("label_info", time_ns, label_info(entries, self.config.min_confidence, header.stamp))
            self.class_map_version = version

    def _write(self, name: str, time_ns: int, msg) -> None:
        self.writer.write(self.out[name], time_ns, serialize_message(msg))

    def _close(self, status: str) -> None:
        summary = self.summary()
        custom = {"rns_bag.status": status, "rns_bag.parameters": json.dumps(self.values, sort_keys=True),
                  "rns_bag.backbone": self.engine.backbone_identity,
                  "rns_bag.support_version": str(self.engine.support_version())}
        custom.update({f"rns_bag.{k}": str(v) for k, v in summary.items() if not isinstance(v, dict)})
        try:
            self.writer.close(custom)
        except BaseException:
            self.writer.abort()
            raise
        finally:
            self.engine.close()

    def summary(self) -> dict:
        out = {"frames_in": self.counts["frames_in"], "frames_segmented": self.counts["frames_segmented"],
               "skipped": sum(self.skipped.values()), "messages_copied": self.counts["messages"]}
        if self.depth:
            out.update(clouds=self.counts["clouds"], depth_unpaired=self.counts["depth_unpaired"])
        if self.skipped:
            out["skipped_reasons"] = dict(self.skipped)
        return out
