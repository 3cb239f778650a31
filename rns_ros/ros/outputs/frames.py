"""What the node publishes per segmented frame: the label image, the confidence image, the overlay
and the colourised labels (the last two built only while someone subscribes). The latched class
map they refer to is class_map.py's.

Per-frame outputs belong to a camera: `FrameOutputs(node, prefix)` names its topics `prefix +
name`, "~/" for the single camera (~/labels ...) and "~/<camera>/" for each of several cameras
(~/front/labels ...). A new per-frame output added here is per camera the same way.

Publishers are lifecycle publishers: they carry messages only while the node is active.
Contract: `FrameOutputs.publish` publishes all of a frame's outputs with the input's header or
(ValueError: a label id does not fit the label encoding) none of them.
"""
from __future__ import annotations

from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from rns_ros.ros.conversions import confidence_to_image, labels_to_image, rgb_to_image, unlabel_below
from rns_ros.ros.outputs.class_map import ClassMapOutput
from rns_ros.visual import OverlayStyle, color_lut, colorize, render_overlay

OUTPUT_QOS = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)


def frame_images(result, header, max_class_id: int, *, min_confidence: float = 0.0, confidence: bool = True,
                 confidence_encoding: str = "32FC1"):
    """What a segmented frame becomes, as the node publishes it and rns-bag records it: (labels,
    label image, confidence image or None). Pixels below `min_confidence` get the unlabeled id 0
    (`labels` is that array, for the pictures and the point cloud). ValueError when a label id does
    not fit the label encoding."""
    labels = unlabel_below(result.labels, result.confidence, min_confidence)
    label_image = labels_to_image(labels, header, max_class_id)
    confidence_image = confidence_to_image(result.confidence, header, confidence_encoding) if confidence else None
    return labels, label_image, confidence_image


class FrameOutputs:
    """<prefix>labels, <prefix>confidence, <prefix>overlay and <prefix>labels_color of one camera's
    segmented frames, each with the input's header. prefix: "~/" (single camera) or "~/<camera>/"."""

    def __init__(self, node, prefix: str = "~/"):
        self._node = node
        self.prefix = prefix
        self.publishers = {name: node.create_lifecycle_publisher(Image, f"{prefix}{name}", OUTPUT_QOS)
                           for name in ("labels", "confidence", "overlay", "labels_color")}
        self.legend_corner: str | None = None  # where the last overlay's legend went (keeps it steady)

    def publish(self, rgb, result, header, class_map: ClassMapOutput, *, confidence: bool,
                overlay: OverlayStyle, min_confidence: float = 0.0, confidence_encoding: str = "32FC1"):
        """Publish one frame's outputs and return its labels (frame_images: pixels below
        `min_confidence` get the unlabeled id 0, in every picture too). ValueError (nothing
        published) when a label id does not fit the label encoding."""
        labels, label_image, confidence_image = frame_images(
            result, header, class_map.max_class_id, min_confidence=min_confidence, confidence=confidence,
            confidence_encoding=confidence_encoding)
        self.publishers["labels"].publish(label_image)
        if confidence_image is not None:
            self.publishers["confidence"].publish(confidence_image)
        palette = class_map.palette
        if self.publishers["overlay"].get_subscription_count() > 0:
            picture, legend = render_overlay(rgb, labels, class_map.names, palette, overlay,
                                             previous_corner=self.legend_corner)
            self.legend_corner = legend.corner if legend is not None else self.legend_corner
            self.publishers["overlay"].publish(rgb_to_image(picture, header))
        if self.publishers["labels_color"].get_subscription_count() > 0:
            table = color_lut(palette, int(labels.max()) + 1 if labels.size else 1)
            self.publishers["labels_color"].publish(rgb_to_image(colorize(labels, table), header))
        return labels

    def destroy(self) -> None:
        for pub in self.publishers.values():
            self._node.destroy_lifecycle_publisher(pub)
        self.publishers = {}
