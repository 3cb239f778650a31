"""The node's cameras: what belongs to each camera, and reading its frames.

One camera (parameter `cameras` empty, the default) reads `image` and publishes ~/labels,
~/confidence, ~/overlay, as always. Several (`cameras: [front, left]`) share one engine, class map,
label info, teaching services and support memory; camera `c` reads `c/image` (remap it like
`image`) and publishes ~/c/labels, ~/c/confidence, ~/c/overlay, ~/c/labels_color (with
depth.enabled also `c/depth/image` + `c/depth/camera_info` -> ~/c/points). Each `Camera` holds its
input subscription, its outputs (outputs/frames.FrameOutputs, depth/output.DepthOutput), its statistics
and its newest frame.

Input: `image_transport: raw` subscribes to sensor_msgs/Image on the camera's topic; `compressed`
to sensor_msgs/CompressedImage on the *resolved* (remapped) topic + "/compressed", the name
image_transport gives it, so `-r image:=/cam/color/image_raw` reads
`/cam/color/image_raw/compressed`. Frames are decoded in the worker thread, never in the callback.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from sensor_msgs.msg import CompressedImage, Image

from rns_ros.ros.inputs.compressed import compressed_to_rgb
from rns_ros.ros.conversions import FrameError, image_to_rgb, rgb_to_image
from rns_ros.ros.inputs.qos import transport_topic
from rns_ros.ros.stats import PipelineStats

SINGLE_CAMERA_TOPIC = "image"  # remap it to the camera: -r image:=/camera/image_raw


class Camera:
    """One camera of the node. name: '' for the single camera, else its name in `cameras`."""

    def __init__(self, name: str, stats: PipelineStats):
        self.name = name
        self.image_topic = f"{name}/{SINGLE_CAMERA_TOPIC}" if name else SINGLE_CAMERA_TOPIC
        self.prefix = f"~/{name}/" if name else "~/"  # of its output topics
        self.stats = stats
        self.outputs = None  # outputs/frames.FrameOutputs, while configured
        self.depth = None  # depth/output.DepthOutput, while configured with depth.enabled
        self.subscription = None  # while active
        self.latest: Image | CompressedImage | None = None  # newest frame received

    def subscribe(self, node, transport: str, qos, callback) -> None:
        """Subscribe to this camera's frames: callback(camera, msg)."""
        msg_type = Image if transport == "raw" else CompressedImage
        self.subscription = node.create_subscription(msg_type, transport_topic(node, self.image_topic, transport),
                                                     lambda msg: callback(self, msg), qos)

    def unsubscribe(self, node) -> None:
        if self.subscription is not None:
            node.destroy_subscription(self.subscription)
            self.subscription = None

    def depth_topics(self) -> dict[str, str]:
        """DepthOutput's topic arguments: depth/image ... ~/points, ~/aligned/... for the single camera,
        c/depth/image ... ~/c/points, ~/c/aligned/... for camera c."""
        inputs = f"{self.name}/depth" if self.name else "depth"
        return {"depth_topic": f"{inputs}/image", "info_topic": f"{inputs}/camera_info",
                "points_topic": f"{self.prefix}points", "aligned_prefix": self.prefix}

    def publish(self, rgb, result, header, class_map, config) -> np.ndarray:
        """This camera's outputs of one segmented frame (config: the node's NodeConfig); returns the
        labels published (min_confidence applied). ValueError, nothing published, when a label id
        does not fit the label encoding."""
        return self.outputs.publish(rgb, result, header, class_map, confidence=config.publish_confidence,
                             overlay=config.overlay_style(), min_confidence=config.min_confidence,
                             confidence_encoding=config.confidence_encoding)

    @property
    def topic_name(self) -> str:
        """The input topic, resolved once subscribed."""
        return self.subscription.topic_name if self.subscription is not None else self.image_topic


def make_cameras(names: Sequence[str], node_stats: PipelineStats) -> list[Camera]:
    """The single camera (counting in the node's statistics) or one Camera per name (each with its
    own statistics, which also count in the node's)."""
    if not names:
        return [Camera("", node_stats)]
    return [Camera(name, PipelineStats(parent=node_stats)) for name in names]


def decode_frame(msg: Image | CompressedImage, max_pixels: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a camera frame; FrameError (with the reason) for a bad or too large one."""
    if isinstance(msg, CompressedImage):
        return compressed_to_rgb(msg, max_pixels)
    if msg.width * msg.height > max_pixels:  # before converting: a huge frame is never copied
        raise FrameError(f"{msg.width}x{msg.height} exceeds max_image_pixels {max_pixels}")
    return image_to_rgb(msg)


def teaching_image(msg: Image | CompressedImage | None, max_pixels: int | None = None) -> Image | None:
    """A camera frame as the teaching services take it: an Image (a CompressedImage is decoded to
    rgb8, header kept, refused above `max_pixels` before decoding). FrameError if it cannot be."""
    if msg is None or isinstance(msg, Image):
        return msg
    return rgb_to_image(compressed_to_rgb(msg, max_pixels), msg.header)


def camera_of_click(cameras: Sequence[Camera], frame_id: str) -> Camera:
    """The camera whose newest frame has this frame_id (clicks on the shared ~/click with several
    cameras); ValueError saying how to aim the click otherwise."""
    matches = [c for c in cameras if c.latest is not None and c.latest.header.frame_id == frame_id]
    if len(matches) == 1:
        return matches[0]
    names = ", ".join(c.name for c in cameras)
    reason = (f"no camera's latest frame has frame_id {frame_id!r}" if not matches else
              f"cameras {', '.join(c.name for c in matches)} all have frame_id {frame_id!r}")
    raise ValueError(f"{reason}: set the click's header.frame_id to the frame_id of the camera's images, "
                     f"or publish it on ~/<camera>/click (cameras: {names})")


def click_frames(cameras: Sequence[Camera], max_pixels: Callable[[], int | None] = lambda: None) -> dict:
    """Click topic -> frame_for(click): the frame a click there refers to (None = the teacher's
    latest frame). One camera: ~/click as always. Several: ~/click finds the camera by the click's
    frame_id, and each camera has ~/<camera>/click. ValueError when the click cannot be placed.
    max_pixels: () -> the size limit for decoding a compressed frame (max_image_pixels)."""
    if len(cameras) == 1 and not cameras[0].name:
        return {"~/click": lambda click: None}

    def newest_of(camera: Camera) -> Image:
        if camera.latest is None:
            raise ValueError(f"no frame from camera {camera.name!r} yet")
        return teaching_image(camera.latest, max_pixels())

    topics = {"~/click": lambda click: newest_of(camera_of_click(cameras, click.header.frame_id))}
    for camera in cameras:
        topics[f"{camera.prefix}click"] = lambda click, camera=camera: newest_of(camera)
    return topics
