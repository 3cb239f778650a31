"""Depth-aligned outputs (`depth.aligned_outputs`): labels, confidence and an organised point cloud
on one pixel grid, the depth image's, for consumers that read point i as pixel i (Nav2's semantic
costmap layer, docs/ros.md "Nav2 semantic costmap").

    frame = aligned_frame(depth_m, intrinsics, labels, confidence, rgb, stride=2, max_range_m=10.0)
    labels_msg, confidence_msg, cloud_msg = aligned_messages(frame, header)

The grid: depth pixel (stride * i, stride * j) is grid pixel (i, j); the stride must divide the
depth image's width and height, so the grid is the depth image subsampled by exactly `stride`
(ceil(H / stride) rows would leave the last grid row covering fewer depth rows than the others).
Each grid pixel takes the label, confidence and colour of the colour pixel nearest to its depth
pixel's centre (projection.py: the depth image is registered to the colour image: same viewpoint,
same field of view, any resolution). Outputs, all with the colour frame's stamp and the depth
image's frame_id:
  * labels: sensor_msgs/Image mono8, the class id (0 = unlabeled); ids above 255 are refused;
  * confidence: sensor_msgs/Image mono8, probability x 255 rounded;
  * points: sensor_msgs/PointCloud2 organised (height x width = the images'), point (i, j) = pixel
    (i, j), the fields of ~/points (pointcloud.py), x/y/z NaN where the depth is missing or beyond
    max_range_m, is_dense false.
FrameError (with the fix) when a frame cannot give them: CameraInfo of another size, a stride that
does not divide the size, a class id above 255. The caller counts it; labels are never held back.

`AlignedOutputs` is the ROS side for one camera: <prefix>aligned/labels, .../confidence,
.../points, published one after the other for the same frame (so an exact-time synchroniser pairs
them), each only while someone subscribes to it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sensor_msgs.msg import Image, PointCloud2

from rns_ros.ros.conversions import FrameError, confidence_to_image, labels_to_image
from rns_ros.ros.depth.pointcloud import pack_cloud
from rns_ros.ros.depth.projection import Intrinsics, depth_grid
from rns_ros.ros.outputs.frames import OUTPUT_QOS

MAX_ALIGNED_CLASS_ID = 255  # the aligned labels are mono8: Nav2's layer reads one byte per pixel


def class_id_ceiling(depth_config) -> tuple[int, str] | None:
    """With aligned outputs on, class ids must fit their one byte: (largest id, why) for the
    teaching services' ClassIdLimit; None while they are off."""
    if not depth_config.aligned_outputs:
        return None
    return MAX_ALIGNED_CLASS_ID, ("depth.aligned_outputs publishes class ids as one byte (mono8), the way "
                                  "Nav2's semantic costmap layer reads them")
ALIGNED_TOPICS = ("labels", "confidence", "points")  # under <prefix>aligned/


@dataclass(frozen=True)
class AlignedFrame:
    """One frame on the depth grid (h x w = the depth image's size / stride)."""

    labels: np.ndarray  # (h, w) uint8 class ids
    confidence: np.ndarray  # (h, w) float32 probability
    xyz: np.ndarray  # (h, w, 3) float32 metres in the depth optical frame, NaN where no depth
    rgb: np.ndarray  # (h, w, 3) uint8


def strides_dividing(width: int, height: int, largest: int = 64) -> list[int]:
    """The strides (1..largest) that divide both sides: what depth.stride may be for aligned outputs."""
    return [s for s in range(1, largest + 1) if width % s == 0 and height % s == 0]


def aligned_frame(depth_m: np.ndarray, intrinsics: Intrinsics, labels: np.ndarray, confidence: np.ndarray,
                  rgb: np.ndarray, *, stride: int, max_range_m: float) -> AlignedFrame:
    """The segmented colour frame (labels (H, W), confidence (H, W), rgb (H, W, 3), any size) and
    its registered depth image (metres, NaN = none) on the depth grid. FrameError (with the fix)
    when the CameraInfo does not describe the depth image, the stride does not divide its size, or
    a label id does not fit one byte."""
    grid = depth_grid(depth_m, intrinsics, labels, confidence, rgb, stride)
    height, width = depth_m.shape
    if height % stride or width % stride:
        raise FrameError(f"depth.stride {stride} does not divide the depth image's {width}x{height}, so the "
                         f"aligned grid would not be that image subsampled by {stride}: set depth.stride to one of "
                         f"{strides_dividing(width, height)}")
    top = int(labels.max()) if labels.size else 0
    if top > MAX_ALIGNED_CLASS_ID:
        raise FrameError(f"class id {top} is above {MAX_ALIGNED_CLASS_ID}: the aligned labels are mono8 (Nav2's "
                         "semantic layer reads one byte per pixel); remove the classes with larger ids or turn "
                         "depth.aligned_outputs off")
    z = depth_m[::stride, ::stride].astype(np.float32)  # a copy
    with np.errstate(invalid="ignore"):
        z[~(z <= max_range_m)] = np.nan  # NaN stays NaN; beyond the range: no point
    xyz = np.empty(z.shape + (3,), np.float32)
    np.multiply(grid.x_per_col[None, :], z, out=xyz[:, :, 0])
    np.multiply(grid.y_per_row[:, None], z, out=xyz[:, :, 1])
    xyz[:, :, 2] = z
    pick = _picker(grid.colour_rows, grid.colour_cols, labels.shape[1])
    return AlignedFrame(labels=pick(labels).astype(np.uint8), confidence=pick(confidence).astype(np.float32),
                        xyz=xyz, rgb=pick(rgb))


def _regular(index: np.ndarray) -> slice | None:
    """`index` as a slice when it steps evenly (the colour frame is the depth image's size, or a
    whole multiple of it), else None."""
    step = int(index[1] - index[0]) if len(index) > 1 else 1
    if step > 0 and np.array_equal(index, np.arange(len(index)) * step + index[0]):
        return slice(int(index[0]), int(index[0]) + step * len(index), step)
    return None


def _picker(rows: np.ndarray, cols: np.ndarray, width: int):
    """array (H, W, ...) -> array[rows][:, cols]: a strided view when both step evenly, else one
    gather with flat indices (several times faster than 2-D fancy indexing)."""
    row_slice, col_slice = _regular(rows), _regular(cols)
    if row_slice is not None and col_slice is not None:
        return lambda array: array[row_slice, col_slice]
    flat = (rows[:, None] * width + cols[None, :]).reshape(-1)
    shape = (len(rows), len(cols))
    return lambda array: array.reshape((-1,) + array.shape[2:]).take(flat, axis=0).reshape(shape + array.shape[2:])


def aligned_labels(frame: AlignedFrame, header) -> Image:
    return labels_to_image(frame.labels, header, MAX_ALIGNED_CLASS_ID)  # mono8


def aligned_confidence(frame: AlignedFrame, header) -> Image:
    return confidence_to_image(frame.confidence, header, "mono8")


def aligned_points(frame: AlignedFrame, header) -> PointCloud2:
    height, width = frame.labels.shape
    return pack_cloud(frame.xyz.reshape(-1, 3), frame.rgb.reshape(-1, 3), frame.labels.reshape(-1),
                      frame.confidence.reshape(-1), header, shape=(height, width))


BUILDERS = {"labels": aligned_labels, "confidence": aligned_confidence, "points": aligned_points}


class AlignedOutputs:
    """<prefix>aligned/labels, <prefix>aligned/confidence and <prefix>aligned/points of one camera
    (prefix "~/" or "~/<camera>/"), lifecycle publishers with the other outputs' QoS."""

    def __init__(self, node, prefix: str = "~/"):
        self._node = node
        types = {"labels": Image, "confidence": Image, "points": PointCloud2}
        self.publishers = {name: node.create_lifecycle_publisher(types[name], f"{prefix}aligned/{name}", OUTPUT_QOS)
                           for name in ALIGNED_TOPICS}

    def wanted(self) -> bool:
        """Whether anyone subscribes to one of them (otherwise nothing is built)."""
        return any(pub.get_subscription_count() > 0 for pub in self.publishers.values())

    def publish(self, frame: AlignedFrame, header) -> None:
        """The frame's outputs, one after the other, each while someone subscribes to it."""
        for name in ALIGNED_TOPICS:
            publisher = self.publishers[name]
            if publisher.get_subscription_count() > 0:
                publisher.publish(BUILDERS[name](frame, header))

    def destroy(self) -> None:
        for publisher in self.publishers.values():
            self._node.destroy_lifecycle_publisher(publisher)
        self.publishers = {}
