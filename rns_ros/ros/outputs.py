"""What the node publishes: the latched class map, and per segmented frame the label image, the
confidence image, the overlay and the colourised labels (the last two built only while someone
subscribes).

Publishers are lifecycle publishers: they carry messages only while the node is active.
`ClassMapOutput` also keeps what every frame needs from the class map (the largest class id, which
fixes the label encoding; the class names and the palette, for the pictures), so a frame never
recomputes it, and the class map and the pictures always use the same colours.
"""
from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from rns_ros.msg import ClassMap
from rns_ros.ros import interfaces
from rns_ros.ros.conversions import confidence_to_image, labels_to_image, rgb_to_image
from rns_ros.visual import OverlayStyle, Palette, color_lut, colorize, render_overlay

OUTPUT_QOS = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
CLASS_MAP_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                           durability=DurabilityPolicy.TRANSIENT_LOCAL, history=HistoryPolicy.KEEP_LAST)


class ClassMapOutput:
    """~/class_map, republished whenever the support memory's version (or the palette) changes."""

    def __init__(self, node, palette: Palette = Palette()):
        self._node = node
        self.publisher = node.create_lifecycle_publisher(ClassMap, "~/class_map", CLASS_MAP_QOS)
        self.version: int | None = None  # support version of the last published map
        self.max_class_id = 0
        self.names: dict[int, str] = {}  # class id -> name, for the overlay's legend
        self.palette = palette

    def set_palette(self, palette: Palette) -> None:
        """Colour from now on with `palette`; the next publish() sends the class map again."""
        if palette != self.palette:
            self.palette = palette
            self.version = None

    def publish(self, engine, force: bool = False) -> None:
        """Publish the class map if the memory changed since the last one (or `force`)."""
        with engine.lock:
            version = engine.support_version()
            if not force and version == self.version:
                return
            entries = engine.classes()
        self.max_class_id = max((e.id for e in entries), default=0)
        self.names = {e.id: e.name for e in entries}
        stamp = self._node.get_clock().now().to_msg()
        self.publisher.publish(interfaces.class_map(entries, version, engine.backbone_identity, stamp, self.palette))
        self.version = version

    def destroy(self) -> None:
        self._node.destroy_lifecycle_publisher(self.publisher)


class FrameOutputs:
    """~/labels, ~/confidence, ~/overlay and ~/labels_color of segmented frames, each with the
    input's header."""

    def __init__(self, node):
        self._node = node
        self.publishers = {name: node.create_lifecycle_publisher(Image, f"~/{name}", OUTPUT_QOS)
                           for name in ("labels", "confidence", "overlay", "labels_color")}
        self.legend_corner: str | None = None  # where the last overlay's legend went (keeps it steady)

    def publish(self, rgb, result, header, class_map: ClassMapOutput, *, confidence: bool,
                overlay: OverlayStyle) -> None:
        """Publish one frame's outputs. ValueError (nothing published) when a label id does not fit
        the label encoding."""
        labels = result.labels
        self.publishers["labels"].publish(labels_to_image(labels, header, class_map.max_class_id))
        if confidence:
            self.publishers["confidence"].publish(confidence_to_image(result.confidence, header))
        palette = class_map.palette
        if self.publishers["overlay"].get_subscription_count() > 0:
            picture, legend = render_overlay(rgb, labels, class_map.names, palette, overlay,
                                             previous_corner=self.legend_corner)
            self.legend_corner = legend.corner if legend is not None else self.legend_corner
            self.publishers["overlay"].publish(rgb_to_image(picture, header))
        if self.publishers["labels_color"].get_subscription_count() > 0:
            table = color_lut(palette, int(labels.max()) + 1 if labels.size else 1)
            self.publishers["labels_color"].publish(rgb_to_image(colorize(labels, table), header))

    def destroy(self) -> None:
        for pub in self.publishers.values():
            self._node.destroy_lifecycle_publisher(pub)
        self.publishers = {}
