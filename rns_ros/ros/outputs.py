"""What the node publishes: the latched class map, and per segmented frame the label image, the
confidence image and the overlay (built only while someone subscribes).

Publishers are lifecycle publishers: they carry messages only while the node is active.
`ClassMapOutput` also keeps what every frame needs from the class map (the largest class id, which
fixes the label encoding, and the colour table), so a frame never recomputes it.
"""
from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from rns_ros.msg import ClassMap
from rns_ros.ros import interfaces
from rns_ros.ros.conversions import confidence_to_image, labels_to_image, rgb_to_image
from rns_ros.ros.visualization import color_table, overlay

OUTPUT_QOS = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
CLASS_MAP_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                           durability=DurabilityPolicy.TRANSIENT_LOCAL, history=HistoryPolicy.KEEP_LAST)


class ClassMapOutput:
    """~/class_map, republished whenever the support memory's version changes."""

    def __init__(self, node):
        self._node = node
        self.publisher = node.create_lifecycle_publisher(ClassMap, "~/class_map", CLASS_MAP_QOS)
        self.version: int | None = None  # support version of the last published map
        self.max_class_id = 0
        self._colors_for: tuple[int, ...] = ()
        self.colors = color_table([])

    def publish(self, engine, force: bool = False) -> None:
        """Publish the class map if the memory changed since the last one (or `force`)."""
        with engine.lock:
            version = engine.support_version()
            if not force and version == self.version:
                return
            entries = engine.classes()
        ids = tuple(e.id for e in entries)
        self.max_class_id = max(ids, default=0)
        if ids != self._colors_for:
            self.colors, self._colors_for = color_table(ids), ids
        stamp = self._node.get_clock().now().to_msg()
        self.publisher.publish(interfaces.class_map(entries, version, engine.backbone_identity, stamp))
        self.version = version

    def destroy(self) -> None:
        self._node.destroy_lifecycle_publisher(self.publisher)


class FrameOutputs:
    """~/labels, ~/confidence and ~/overlay of segmented frames, each with the input's header."""

    def __init__(self, node):
        self._node = node
        self.publishers = {name: node.create_lifecycle_publisher(Image, f"~/{name}", OUTPUT_QOS)
                           for name in ("labels", "confidence", "overlay")}

    def publish(self, rgb, result, header, class_map: ClassMapOutput, *, confidence: bool,
                overlay_alpha: float) -> None:
        """Publish one frame's outputs. ValueError (nothing published) when a label id does not fit
        the label encoding."""
        self.publishers["labels"].publish(labels_to_image(result.labels, header, class_map.max_class_id))
        if confidence:
            self.publishers["confidence"].publish(confidence_to_image(result.confidence, header))
        overlay_pub = self.publishers["overlay"]
        if overlay_pub.get_subscription_count() > 0:
            colours = class_map.colors
            if len(colours) <= class_map.max_class_id:
                colours = color_table([class_map.max_class_id])
            overlay_pub.publish(rgb_to_image(overlay(rgb, result.labels, colours, overlay_alpha), header))

    def destroy(self) -> None:
        for pub in self.publishers.values():
            self._node.destroy_lifecycle_publisher(pub)
        self.publishers = {}
