"""The optional depth input: colour frames paired with an aligned depth camera -> `~/points`.

`semantic_cloud` is the per-frame step that the node and rns-bag share: a segmented colour frame
plus its depth partner and CameraInfo -> sensor_msgs/PointCloud2 (frame_id the depth frame's,
stamp the colour frame's; fields in pointcloud.py).

`DepthInput` pairs and counts (no ROS calls); `DepthOutput` is its ROS side for one colour camera:
subscriptions to `depth/image` (or, with depth.transport compressedDepth, the resolved
`depth/image` + `/compressedDepth`, decoded in compressed.py) and `depth/camera_info`, the `~/points` publisher, and the
per-frame hook `publish()` that the node calls after a frame's labels went out.
Contract: the callbacks only store messages (microseconds); `cloud_for` and `publish` never raise:
a colour frame without a depth partner within `max_time_diff_s`, without a CameraInfo yet, or with
a depth frame that cannot be used is counted under its reason and gives no cloud; labels never
wait for depth, so a depth stream that stops stops only the clouds.
"""
from __future__ import annotations

import collections
import threading
import time

import numpy as np
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Header

from rns_ros.ros.depth.compressed import compressed_depth_to_metres, is_compressed_depth
from rns_ros.ros.conversions import FrameError
from rns_ros.ros.inputs.qos import transport_topic
from rns_ros.ros.depth.projection import DepthConfig, Intrinsics, depth_to_metres, semantic_points
from rns_ros.ros.outputs.frames import OUTPUT_QOS
from rns_ros.ros.depth.pairing import StampRing, stamp_ns
from rns_ros.ros.depth.pointcloud import points_to_cloud

DEPTH_RING = 16  # depth frames kept for pairing (the worker looks up the partner as soon as it takes a frame)
NO_CLOUD_WARN_S = 5.0  # /diagnostics warns when frames have found no usable depth partner for this long


def semantic_cloud(depth_msg, info_msg, rgb: np.ndarray, labels: np.ndarray, confidence: np.ndarray,
                   colour_header, config: DepthConfig):
    """PointCloud2 of `depth_msg` labelled with the segmented colour frame (see projection.py for the
    conventions). Raises FrameError when the depth image or CameraInfo cannot be used."""
    depth = compressed_depth_to_metres(depth_msg) if is_compressed_depth(depth_msg) else depth_to_metres(depth_msg)
    points = semantic_points(depth, Intrinsics.from_camera_info(info_msg), labels, confidence, rgb,
                             stride=config.stride, max_range_m=config.max_range_m)
    header = Header(stamp=colour_header.stamp, frame_id=depth_msg.header.frame_id)
    return points_to_cloud(points, header)


class DepthInput:
    """Depth frames and CameraInfo of one colour camera, paired by stamp, with counters."""

    def __init__(self, config: DepthConfig, clock=time.monotonic):
        self.config = config
        self._ring = StampRing(DEPTH_RING)
        self._info = None
        self._lock = threading.Lock()
        self._counts = collections.Counter()
        self._clock = clock
        self._last_cloud_at: float | None = None
        self._first_miss_at: float | None = None  # first frame without a cloud since the last cloud
        self.last_problem = ""

    def on_depth(self, msg) -> None:
        self._ring.add(stamp_ns(msg.header), msg)
        with self._lock:
            self._counts["depth_frames_received"] += 1

    def on_camera_info(self, msg) -> None:
        self._info = msg

    def clear(self) -> None:
        """Forget stored depth frames and CameraInfo (a new activation starts fresh)."""
        self._ring.clear()
        self._info = None

    def partner(self, colour_header):
        """(depth message, |stamp difference| ns) nearest to the colour frame within the tolerance, or None."""
        return self._ring.nearest(stamp_ns(colour_header), int(round(self.config.max_time_diff_s * 1e9)))

    def cloud_for(self, colour_header, rgb, labels, confidence, early_partner=None):
        """The frame's cloud, or None (counted). `early_partner`: `partner()` as it was when the
        frame was taken; the closer of it and the current partner is used."""
        try:
            late = self.partner(colour_header)
            candidates = [p for p in (early_partner, late) if p is not None]
            if not candidates:
                return self._skip("unpaired",
                                  f"no depth frame within {self.config.max_time_diff_s} s of the colour frame")
            depth_msg = min(candidates, key=lambda p: p[1])[0]
            info = self._info
            if info is None:
                return self._skip("unpaired", "no depth/camera_info received yet")
            cloud = semantic_cloud(depth_msg, info, rgb, labels, confidence, colour_header, self.config)
        except (FrameError, ValueError) as exc:
            return self._skip("invalid", f"depth frame unusable: {exc}")
        with self._lock:
            self._counts["clouds_published"] += 1
            self._last_cloud_at, self._first_miss_at = self._clock(), None
        return cloud

    def _skip(self, kind: str, reason: str) -> None:
        with self._lock:
            self._counts[f"depth_{kind}"] += 1
            self.last_problem = reason
            if self._first_miss_at is None:
                self._first_miss_at = self._clock()
        return None

    def problem(self) -> str | None:
        """Why frames have had no cloud for NO_CLOUD_WARN_S, or None."""
        with self._lock:
            missing_for = 0.0 if self._first_miss_at is None else self._clock() - self._first_miss_at
            if missing_for > NO_CLOUD_WARN_S:
                return f"no point cloud for {missing_for:.0f} s: {self.last_problem}"
        return None

    def diagnostics(self) -> dict[str, object]:
        """/diagnostics values: depth frames received, clouds published, colour frames without a
        usable partner (unpaired) or with an unusable one (invalid), and the latest reason."""
        with self._lock:
            return {"depth_frames_received": self._counts["depth_frames_received"],
                    "clouds_published": self._counts["clouds_published"],
                    "depth_unpaired": self._counts["depth_unpaired"],
                    "depth_invalid": self._counts["depth_invalid"],
                    "depth_last_problem": self.last_problem}


class DepthOutput:
    """The ROS side of one camera's depth input: subscriptions, the ~/points publisher, the frame hook."""

    def __init__(self, node, config: DepthConfig, *, points_topic: str = "~/points", depth_topic: str = "depth/image",
                 info_topic: str = "depth/camera_info", guard=None):
        self._node = node
        self._guard = guard  # the node's CallbackGuard (guard.py): errors in the callbacks are logged, counted
        self.input = DepthInput(config)
        self.topics = (depth_topic, info_topic)
        self.publisher = node.create_lifecycle_publisher(PointCloud2, points_topic, OUTPUT_QOS)
        self._subscriptions: list = []

    def subscribe(self, qos) -> None:
        """Start receiving depth frames and CameraInfo (on activate)."""
        self.unsubscribe()
        self.input.clear()
        on_depth, on_info = self.input.on_depth, self.input.on_camera_info
        if self._guard is not None:
            on_depth, on_info = self._guard.wrap("depth", on_depth), self._guard.wrap("depth camera_info", on_info)
        transport = self.input.config.transport
        depth_type = Image if transport == "raw" else CompressedImage
        self._subscriptions = [self._node.create_subscription(depth_type, transport_topic(self._node, self.topics[0],
                                                                                          transport), on_depth, qos),
                               self._node.create_subscription(CameraInfo, self.topics[1], on_info, qos)]

    def unsubscribe(self) -> None:
        for sub in self._subscriptions:
            self._node.destroy_subscription(sub)
        self._subscriptions = []

    def partner(self, colour_header):
        """Look the partner up as soon as a frame is taken (see DepthInput.cloud_for)."""
        return self.input.partner(colour_header)

    def publish(self, colour_header, rgb, labels, confidence, early_partner=None) -> None:
        """The per-frame hook: publish the frame's cloud (built only while someone subscribes), with
        the labels as published (min_confidence applied)."""
        if self.publisher.get_subscription_count() == 0:
            return
        try:
            cloud = self.input.cloud_for(colour_header, rgb, labels, confidence, early_partner)
            if cloud is not None:
                self.publisher.publish(cloud)
        except Exception as exc:  # noqa: BLE001 - the labels are out already; count it, keep going
            self.input._skip("invalid", f"internal error building the cloud: {exc!r}")

    def destroy(self) -> None:
        self.unsubscribe()
        self._node.destroy_lifecycle_publisher(self.publisher)
