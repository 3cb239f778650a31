"""vision_msgs/LabelInfo: the class map in the form that robot pipelines (Nav2's semantic costmap
layer, vision_msgs tools) read, published next to the node's own ~/class_map.

vision_msgs comes from the system on a robot (apt ros-jazzy-vision-msgs) and, on the pip route,
from the stand-in package interfaces/vision_msgs that scripts/setup.sh installs (same fields,
same type hashes). Only the node imports this module.
"""
from __future__ import annotations

from typing import Sequence

from vision_msgs.msg import LabelInfo, VisionClass

from rns_ros.ros.engine import ClassEntry

UNLABELED_ID = 0
UNLABELED_NAME = "unlabeled"
MAX_CLASS_ID = 65535  # VisionClass.class_id is a uint16


def vision_class_name(entry: ClassEntry) -> str:
    """The class's name; a class taught without one is 'class_<id>' (names must tell ids apart)."""
    return entry.name or f"class_{entry.id}"


def label_info(entries: Sequence[ClassEntry], threshold: float, stamp) -> LabelInfo:
    """LabelInfo: 'unlabeled' (id 0) first, then every class by id; `threshold` the node's
    min_confidence; `stamp` a builtin_interfaces/Time. Ids beyond uint16 (which no label image
    can carry either) are left out."""
    msg = LabelInfo(threshold=float(threshold))
    msg.header.stamp = stamp
    msg.class_map = [VisionClass(class_id=UNLABELED_ID, class_name=UNLABELED_NAME)] + [
        VisionClass(class_id=int(e.id), class_name=vision_class_name(e))
        for e in sorted(entries, key=lambda e: e.id) if 0 < e.id <= MAX_CLASS_ID]
    return msg
