"""Builders for the package's own messages (rns_ros/msg): ClassInfo and ClassMap.

`rns_ros.msg` is generated at build time and exists only in the installed package (see
rns_ros/__init__.py), so it is imported here, not by the pure modules.
"""
from __future__ import annotations

from typing import Sequence

from std_msgs.msg import ColorRGBA

from rns_ros.msg import ClassInfo, ClassMap
from rns_ros.ros.engine import ClassEntry
from rns_ros.visual import Palette

UNLABELED_ID = 0


def class_info(entry: ClassEntry, palette: Palette) -> ClassInfo:
    """ClassInfo of `entry`; its colour is the palette's (R, G, B as 0..1, exactly the 0..255
    value in the overlay divided by 255)."""
    r, g, b = palette.color(entry.id)
    return ClassInfo(id=int(entry.id), name=entry.name, description=entry.description,
                     has_text=bool(entry.has_text), exemplar_count=len(entry.exemplar_ids),
                     exemplar_ids=[int(e) for e in entry.exemplar_ids],
                     color=ColorRGBA(r=r / 255.0, g=g / 255.0, b=b / 255.0, a=1.0))


def class_map(entries: Sequence[ClassEntry], support_version: int, backbone: str, stamp,
              palette: Palette = Palette()) -> ClassMap:
    """ClassMap of `entries` (sorted by id); `stamp` a builtin_interfaces/Time."""
    msg = ClassMap(unlabeled_id=UNLABELED_ID, support_version=int(support_version), backbone=backbone)
    msg.header.stamp = stamp
    msg.classes = [class_info(e, palette) for e in sorted(entries, key=lambda e: e.id)]
    return msg
