"""The latched class map: ~/class_map (rns_ros/ClassMap) and ~/label_info (vision_msgs/LabelInfo).

`ClassMapOutput` republishes both whenever the support memory's version (or the palette) changes,
and keeps what every frame needs from the class map (the largest class id, which fixes the label
encoding; the class names and the palette, for the pictures), so a frame never recomputes it and
the class map and the pictures always use the same colours. `class_map_message` builds the
message (rns-bag records the same).

Contract: a frame is published with the class map it was segmented with, and a label image never
names a class that the class map published before it lacks. The frame loop takes the classes in
the same hold of the engine lock as the segmentation and takes this output's `lock` before it
lets the engine lock go; it publishes that class map (when newer) and the frame's outputs, then
lets `lock` go. A teaching change needs the engine lock, so it lands after the segmentation, and
its class map (`publish`: the classes read under the engine lock, then published under `lock`)
waits until the frame is out. Versions published only grow.

`rns_ros.msg` is generated at build time and exists only in the installed package (see
rns_ros/__init__.py), so it is imported here, not by the pure modules.
"""
from __future__ import annotations

import threading
from typing import Sequence

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import ColorRGBA
from vision_msgs.msg import LabelInfo

from rns_ros.msg import ClassInfo, ClassMap
from rns_ros.ros.engine import ClassEntry, ClassSnapshot, class_snapshot
from rns_ros.ros.outputs.label_info import label_info
from rns_ros.visual import Palette

UNLABELED_ID = 0
CLASS_MAP_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                           durability=DurabilityPolicy.TRANSIENT_LOCAL, history=HistoryPolicy.KEEP_LAST)


def class_info_message(entry: ClassEntry, palette: Palette) -> ClassInfo:
    """ClassInfo of `entry`; its colour is the palette's (R, G, B as 0..1, exactly the 0..255
    value in the overlay divided by 255)."""
    r, g, b = palette.color(entry.id)
    return ClassInfo(id=int(entry.id), name=entry.name, description=entry.description,
                     has_text=bool(entry.has_text), exemplar_count=len(entry.exemplar_ids),
                     exemplar_ids=[int(e) for e in entry.exemplar_ids],
                     exemplar_origins=list(entry.exemplar_origins) or [""] * len(entry.exemplar_ids),
                     color=ColorRGBA(r=r / 255.0, g=g / 255.0, b=b / 255.0, a=1.0))


def class_map_message(entries: Sequence[ClassEntry], support_version: int, backbone: str, stamp,
              palette: Palette = Palette()) -> ClassMap:
    """ClassMap of `entries` (sorted by id); `stamp` a builtin_interfaces/Time."""
    msg = ClassMap(unlabeled_id=UNLABELED_ID, support_version=int(support_version), backbone=backbone)
    msg.header.stamp = stamp
    msg.classes = [class_info_message(e, palette) for e in sorted(entries, key=lambda e: e.id)]
    return msg


class ClassMapOutput:
    """~/class_map and ~/label_info, republished whenever the support memory's version (or the
    palette) changes; ~/label_info also when its threshold (the min_confidence parameter) changes."""

    def __init__(self, node, palette: Palette = Palette()):
        self._node = node
        self.publisher = node.create_lifecycle_publisher(ClassMap, "~/class_map", CLASS_MAP_QOS)
        self.label_info_publisher = node.create_lifecycle_publisher(LabelInfo, "~/label_info", CLASS_MAP_QOS)
        self.lock = threading.Lock()  # held while a class map, or a frame published with it, goes out
        self.version: int | None = None  # support version of the last published map
        self.entries: tuple[ClassEntry, ...] = ()  # its classes
        self.threshold: float | None = None  # threshold of the last published LabelInfo
        self.max_class_id = 0
        self.names: dict[int, str] = {}  # class id -> name, for the overlay's legend
        self.palette = palette

    def set_palette(self, palette: Palette) -> None:
        """Colour from now on with `palette`; the next publish() sends the class map again."""
        with self.lock:
            if palette != self.palette:
                self.palette = palette
                self.version = None

    def publish(self, engine, force: bool = False, threshold: float = 0.0) -> None:
        """Publish the engine's classes as they are now (after a teaching change, on activation),
        if they are newer than the last class map (or `force`); see the module's contract."""
        with engine.lock:
            classes = class_snapshot(engine)
        with self.lock:
            self.publish_classes(classes, engine.backbone_identity, force, threshold)

    def publish_classes(self, classes: ClassSnapshot, backbone: str, force: bool = False,
                        threshold: float = 0.0) -> None:
        """Publish the class map and label info of `classes` if their version is newer than the
        last one published (or `force`, or the palette changed); only the label info when only
        `threshold` changed. The caller holds `lock`."""
        classes_changed = force or self.version is None or classes.version > self.version
        if not classes_changed and threshold == self.threshold:
            return
        entries = classes.entries if classes_changed else self.entries
        stamp = self._node.get_clock().now().to_msg()
        if classes_changed:
            self.entries = entries
            self.max_class_id = max((e.id for e in entries), default=0)
            self.names = {e.id: e.name for e in entries}
            self.publisher.publish(class_map_message(entries, classes.version, backbone, stamp, self.palette))
            self.version = classes.version
        self.label_info_publisher.publish(label_info(entries, threshold, stamp))
        self.threshold = threshold

    def destroy(self) -> None:
        self._node.destroy_lifecycle_publisher(self.publisher)
        self._node.destroy_lifecycle_publisher(self.label_info_publisher)
