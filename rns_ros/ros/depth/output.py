"""The optional depth input: colour frames paired with an aligned depth camera -> `~/points` and,
with depth.aligned_outputs, `~/aligned/labels`, `~/aligned/confidence`, `~/aligned/points`.

`semantic_cloud` is the per-frame step that the node and rns-bag share: a segmented colour frame
plus its depth partner and CameraInfo -> sensor_msgs/PointCloud2 (frame_id the depth frame's,
stamp the colour frame's; fields in pointcloud.py).

`DepthInput` pairs, decodes once per frame and counts (no ROS calls); `DepthOutput` is its ROS side
for one colour camera: subscriptions to `depth/image` (or, with depth.transport compressedDepth,
the resolved `depth/image` + `/compressedDepth`, decoded in compressed.py) and `depth/camera_info`,
the `~/points` publisher, the aligned outputs (aligned.py), and the per-frame hook `publish()` that
the node calls after a frame's labels went out. ~/points and the aligned outputs share the frame's
depth partner, decoded once.
Contract: the callbacks only store messages (microseconds); `depth_for`, `cloud_for` and `publish`
never raise: a colour frame without a depth partner within `max_time_diff_s`, without a CameraInfo
yet, or with a depth frame that cannot be used is counted under its reason and gives no depth
output; an aligned frame that cannot be built (stride, class ids) is counted and skipped while
~/points goes on; labels never wait for depth, so a depth stream that stops stops only the depth
outputs. When depth outputs stop and start again, and when the aligned outputs are skipped for a new
reason, `DepthOutput` logs it once (not per frame).
"""
from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Header

from rns_ros.ros.conversions import FrameError
from rns_ros.ros.depth.aligned import AlignedFrame, AlignedOutputs, aligned_frame
from rns_ros.ros.depth.compressed import compressed_depth_to_metres, is_compressed_depth
from rns_ros.ros.depth.pairing import StampRing, stamp_ns
from rns_ros.ros.depth.pointcloud import points_to_cloud
from rns_ros.ros.depth.projection import DepthConfig, Intrinsics, depth_to_metres, semantic_points
from rns_ros.ros.inputs.qos import transport_topic
from rns_ros.ros.outputs.frames import OUTPUT_QOS

DEPTH_RING = 16  # depth frames kept for pairing (the worker looks up the partner as soon as it takes a frame)
NO_CLOUD_WARN_S = 5.0  # /diagnostics warns when frames have found no usable depth partner for this long


@dataclass(frozen=True)
class DepthFrame:
    """A colour frame's depth partner, decoded: metres (H, W) (NaN = none), its intrinsics, its frame_id."""

    metres: np.ndarray
    intrinsics: Intrinsics
    frame_id: str


def decode_depth(depth_msg, info_msg) -> DepthFrame:
    """A raw or compressedDepth depth message and its CameraInfo, decoded; FrameError when either
    cannot be used, or when they describe images of different sizes."""
    metres = compressed_depth_to_metres(depth_msg) if is_compressed_depth(depth_msg) else depth_to_metres(depth_msg)
    intrinsics = Intrinsics.from_camera_info(info_msg)
    height, width = metres.shape
    if intrinsics.width and (intrinsics.width, intrinsics.height) != (width, height):
        raise FrameError(f"depth image is {width}x{height} but its camera_info is "
                         f"{intrinsics.width}x{intrinsics.height}: they must describe the same image")
    return DepthFrame(metres, intrinsics, depth_msg.header.frame_id)


def cloud_of(depth: DepthFrame, rgb: np.ndarray, labels: np.ndarray, confidence: np.ndarray, colour_header,
             config: DepthConfig) -> PointCloud2:
    """~/points of a frame: its valid depth pixels labelled (projection.semantic_points)."""
    points = semantic_points(depth.metres, depth.intrinsics, labels, confidence, rgb,
                             stride=config.stride, max_range_m=config.max_range_m)
    return points_to_cloud(points, Header(stamp=colour_header.stamp, frame_id=depth.frame_id))


def semantic_cloud(depth_msg, info_msg, rgb: np.ndarray, labels: np.ndarray, confidence: np.ndarray,
                   colour_header, config: DepthConfig) -> PointCloud2:
    """PointCloud2 of `depth_msg` labelled with the segmented colour frame (see projection.py for the
    conventions). Raises FrameError when the depth image or CameraInfo cannot be used."""
    return cloud_of(decode_depth(depth_msg, info_msg), rgb, labels, confidence, colour_header, config)


class DepthInput:
    """Depth frames and CameraInfo of one colour camera, paired by stamp, with counters."""

    def __init__(self, config: DepthConfig, clock=time.monotonic):
        self.config = config
        self._ring = StampRing(DEPTH_RING)
        self._info = None
        self._lock = threading.Lock()
        self._counts = collections.Counter()
        self._clock = clock
        self._first_miss_at: float | None = None  # first frame without usable depth since the last one with
        self._first_aligned_miss_at: float | None = None  # likewise for the aligned outputs
        self.last_problem = ""
        self.last_aligned_problem = ""

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

    def depth_for(self, colour_header, early_partner=None) -> DepthFrame | None:
        """The frame's depth partner decoded, or None (counted as unpaired or invalid, with the reason).
        `early_partner`: `partner()` as it was when the frame was taken; the closer of it and the
        current partner is used."""
        late = self.partner(colour_header)
        candidates = [p for p in (early_partner, late) if p is not None]
        if not candidates:
            return self.skip("unpaired", f"no depth frame within {self.config.max_time_diff_s} s of the colour frame")
        depth_msg = min(candidates, key=lambda p: p[1])[0]
        info = self._info
        if info is None:
            return self.skip("unpaired", "no depth/camera_info received yet")
        try:
            depth = decode_depth(depth_msg, info)
        except (FrameError, ValueError) as exc:
            return self.skip("invalid", f"depth frame unusable: {exc}")
        with self._lock:
            self._first_miss_at = None
        return depth

    def cloud(self, depth: DepthFrame, colour_header, rgb, labels, confidence) -> PointCloud2 | None:
        """~/points of the frame, or None (counted as invalid)."""
        try:
            cloud = cloud_of(depth, rgb, labels, confidence, colour_header, self.config)
        except (FrameError, ValueError) as exc:
            return self.skip("invalid", f"depth frame unusable: {exc}")
        self.count("clouds_published")
        return cloud

    def cloud_for(self, colour_header, rgb, labels, confidence, early_partner=None) -> PointCloud2 | None:
        """depth_for + cloud: the frame's ~/points, or None (counted)."""
        depth = self.depth_for(colour_header, early_partner)
        return None if depth is None else self.cloud(depth, colour_header, rgb, labels, confidence)

    def aligned(self, depth: DepthFrame, rgb, labels, confidence) -> AlignedFrame | None:
        """The frame on the depth grid, or None (counted as aligned_invalid, with the reason)."""
        try:
            frame = aligned_frame(depth.metres, depth.intrinsics, labels, confidence, rgb,
                                  stride=self.config.stride, max_range_m=self.config.max_range_m)
        except (FrameError, ValueError) as exc:
            with self._lock:
                self._counts["aligned_invalid"] += 1
                self.last_aligned_problem = f"aligned outputs skipped: {exc}"
                if self._first_aligned_miss_at is None:
                    self._first_aligned_miss_at = self._clock()
            return None
        with self._lock:
            self._counts["aligned_published"] += 1
            self._first_aligned_miss_at = None
        return frame

    def count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def skip(self, kind: str, reason: str) -> None:
        """Count a frame without usable depth (kind: unpaired | invalid) under its reason."""
        with self._lock:
            self._counts[f"depth_{kind}"] += 1
            self.last_problem = reason
            if self._first_miss_at is None:
                self._first_miss_at = self._clock()
        return None

    def current_problem(self) -> str:
        """Why the latest frame got no depth outputs, or its aligned outputs were skipped ("" = none)."""
        with self._lock:
            if self._first_miss_at is not None:
                return self.last_problem
            return self.last_aligned_problem if self._first_aligned_miss_at is not None else ""

    def problem(self) -> str | None:
        """Why frames have had no depth output (or no aligned output) for NO_CLOUD_WARN_S, or None."""
        with self._lock:
            now = self._clock()
            for since, reason in ((self._first_miss_at, self.last_problem),
                                  (self._first_aligned_miss_at, self.last_aligned_problem)):
                if since is not None and now - since > NO_CLOUD_WARN_S:
                    return f"no depth output for {now - since:.0f} s: {reason}"
        return None

    def diagnostics(self) -> dict[str, object]:
        """/diagnostics values: depth frames received, clouds published, colour frames without a
        usable partner (unpaired) or with an unusable one (invalid), and the latest reason; with
        aligned outputs also the aligned frames published and skipped, and why."""
        with self._lock:
            values = {"depth_frames_received": self._counts["depth_frames_received"],
                      "clouds_published": self._counts["clouds_published"],
                      "depth_unpaired": self._counts["depth_unpaired"],
                      "depth_invalid": self._counts["depth_invalid"],
                      "depth_last_problem": self.last_problem}
            if self.config.aligned_outputs:
                values.update({"aligned_published": self._counts["aligned_published"],
                               "aligned_invalid": self._counts["aligned_invalid"],
                               "aligned_last_problem": self.last_aligned_problem})
            return values


class DepthOutput:
    """The ROS side of one camera's depth input: subscriptions, the ~/points publisher, the aligned
    outputs (with depth.aligned_outputs), the frame hook. warn/info: log lines (once per change)."""

    def __init__(self, node, config: DepthConfig, *, points_topic: str = "~/points", depth_topic: str = "depth/image",
                 info_topic: str = "depth/camera_info", aligned_prefix: str = "~/", guard=None,
                 warn: Callable[[str], None] = lambda text: None, info: Callable[[str], None] = lambda text: None):
        self._node = node
        self._guard = guard  # the node's CallbackGuard (guard.py): errors in the callbacks are logged, counted
        self._warn, self._info = warn, info
        self.input = DepthInput(config)
        self.topics = (depth_topic, info_topic)
        self.publisher = node.create_lifecycle_publisher(PointCloud2, points_topic, OUTPUT_QOS)
        self.aligned = AlignedOutputs(node, aligned_prefix) if config.aligned_outputs else None
        self._subscriptions: list = []
        self._logged_problem = ""  # the depth or aligned problem last logged ("" = none)

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
        """Look the partner up as soon as a frame is taken (see DepthInput.depth_for)."""
        return self.input.partner(colour_header)

    def publish(self, colour_header, rgb, labels, confidence, early_partner=None) -> None:
        """The per-frame hook: the frame's depth outputs, with the labels as published
        (min_confidence applied), each built only while someone subscribes."""
        points_wanted = self.publisher.get_subscription_count() > 0
        aligned_wanted = self.aligned is not None and self.aligned.wanted()
        if not (points_wanted or aligned_wanted):
            return
        try:
            depth = self.input.depth_for(colour_header, early_partner)
            if depth is not None and points_wanted:
                cloud = self.input.cloud(depth, colour_header, rgb, labels, confidence)
                if cloud is not None:
                    self.publisher.publish(cloud)
            if depth is not None and aligned_wanted:
                frame = self.input.aligned(depth, rgb, labels, confidence)
                if frame is not None:
                    self.aligned.publish(frame, Header(stamp=colour_header.stamp, frame_id=depth.frame_id))
        except Exception as exc:  # noqa: BLE001 - the labels are out already; count it, keep going
            self.input.skip("invalid", f"internal error building the depth outputs: {exc!r}")
        self._log_changes()

    def _log_changes(self) -> None:
        """One log line when the depth outputs stop (or the aligned ones are skipped for a new reason),
        and one when they come back."""
        problem = self.input.current_problem()
        if problem and problem != self._logged_problem:
            self._warn(f"depth outputs of {self.topics[0]}: {problem} (counted in /diagnostics; labels go on)")
        elif not problem and self._logged_problem:
            self._info(f"depth outputs of {self.topics[0]} published again")
        self._logged_problem = problem

    def destroy(self) -> None:
        self.unsubscribe()
        self._node.destroy_lifecycle_publisher(self.publisher)
        if self.aligned is not None:
            self.aligned.destroy()
