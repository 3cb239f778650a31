"""The latched class map: ~/class_map (rns_ros/ClassMap) and ~/label_info (vision_msgs/LabelInfo).

`ClassMapOutput` republishes both whenever the support memory's version (or the palette) changes,
and keeps what every frame needs from the class map (the largest class id, which fixes the label
encoding; the class names and the palette, for the pictures), so a frame never recomputes it and
the class map and the pictures always use the same colours. `class_map_message` builds the
message (rns-bag records the same).

`rns_ros.msg` is generated at build time and exists only in the installed package (see
rns_ros/__init__.py), so it is imported here, not by the pure modules.
"""
from __future__ import annotations

from typing import Sequence

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import ColorRGBA
from vision_msgs.msg import LabelInfo

from rns_ros.msg import ClassInfo, ClassMap
from rns_ros.ros.engine import ClassEntry
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
        self.version: int | None = None  # support version of the last published map
        self.threshold: float | None = None  # threshold of the last published LabelInfo
        self.max_class_id = 0
        self.names: dict[int, str] = {}  # class id -> name, for the overlay's legend
        self.palette = palette

    def set_palette(self, palette: Palette) -> None:
        """Colour from now on with `palette`; the next publish() sends the class map again."""
        if palette != self.palette:
            self.palette = palette
            self.version = None

    def publish(self, engine, force: bool = False, threshold: float = 0.0) -> None:
        """Publish the class map and label info if the memory changed since the last ones (or
        `force`); only the label info when only `threshold` changed."""
        with engine.lock:
            version = engine.support_version()
            classes_changed = force or version != self.version
            if not classes_changed and threshold == self.threshold:
                return
            entries = engine.classes()
        stamp = self._node.get_clock().now().to_msg()
        if classes_changed:
            self.max_class_id = max((e.id for e in entries), default=0)
            self.names = {e.id: e.name for e in entries}
            self.publisher.publish(class_map_message(entries, version, engine.backbone_identity, stamp,
                                                        self.palette))
            self.version = version
        self.label_info_publisher.publish(label_info(entries, threshold, stamp))
        self.threshold = threshold

    def destroy(self) -> None:
        self._node.destroy_lifecycle_publisher(self.publisher)
        self._node.destroy_lifecycle_publisher(self.label_info_publisher)
