"""A camera made of an image folder: publishes its images as sensor_msgs/Image at a fixed rate.

    rns_image_folder_camera --ros-args -p folder:=/data/frames -p rate_hz:=5.0 -r image:=/camera/image_raw

Images (jpg, png, bmp, ppm, pgm, tif) are read once, in file-name order, converted to rgb8 and
published on `image` with the current time and `frame_id`, looping unless `loop` is false.
Without `folder` it publishes the package's sample images (rns_ros/ros/demo/sample_images).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image

from rns_ros.ros.conversions import rgb_to_image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff")
SAMPLE_IMAGES = Path(__file__).resolve().parent / "sample_images"


@dataclass(frozen=True)
class CameraConfig:
    """The camera's ROS parameters and their defaults (meanings: PARAMETER_HELP)."""

    folder: str = ""
    rate_hz: float = 2.0
    loop: bool = True
    frame_id: str = "camera"
    max_long_side: int = 0
    qos: str = "sensor_data"


PARAMETER_HELP = {
    "folder": "image folder ('' = the package's sample images)",
    "rate_hz": "frames per second",
    "loop": "start again after the last image (false: stop publishing)",
    "frame_id": "header.frame_id of every image",
    "max_long_side": "downscale images whose longer side exceeds this (0 = keep size)",
    "qos": "sensor_data (best effort, like camera drivers) or reliable",
}


def load_images(folder: str | Path = "", max_long_side: int = 0) -> list[tuple[str, np.ndarray]]:
    """(file name, (H, W, 3) uint8 RGB) of every image in `folder`, sorted by name."""
    from PIL import Image as PILImage

    path = Path(folder).expanduser() if folder else SAMPLE_IMAGES
    if not path.is_dir():
        raise FileNotFoundError(f"image folder {str(path)!r} does not exist; pass an existing folder")
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {str(path)!r}")
    images = []
    for f in files:
        with PILImage.open(f) as im:
            im = im.convert("RGB")
            if max_long_side and max(im.size) > max_long_side:
                im.thumbnail((max_long_side, max_long_side), PILImage.LANCZOS)
            images.append((f.name, np.asarray(im, dtype=np.uint8).copy()))
    return images


class ImageFolderCamera(Node):
    """Publishes the folder's images on `image`; `published` counts them."""

    def __init__(self, node_name: str = "image_folder_camera", **kwargs):
        super().__init__(node_name, **kwargs)
        defaults = CameraConfig()
        for field, value in vars(defaults).items():
            self.declare_parameter(field, value, ParameterDescriptor(description=PARAMETER_HELP[field]))
        cfg = CameraConfig(**{f: self.get_parameter(f).value for f in vars(defaults)})
        if cfg.rate_hz <= 0:
            raise ValueError(f"rate_hz must be > 0, got {cfg.rate_hz}")
        if cfg.qos not in ("sensor_data", "reliable"):
            raise ValueError(f"qos must be sensor_data or reliable, got {cfg.qos!r}")
        self.config = cfg
        self.images = load_images(cfg.folder, cfg.max_long_side)
        # Messages are built once; each publish only sets the stamp.
        self._messages = [rgb_to_image(rgb, self._header()) for _, rgb in self.images]
        qos = qos_profile_sensor_data if cfg.qos == "sensor_data" else QoSProfile(
            depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self._pub = self.create_publisher(Image, "image", qos)
        self.published = 0
        self.finished = threading.Event()  # set after the last image when loop is false
        self._timer = self.create_timer(1.0 / cfg.rate_hz, self._tick)
        self.get_logger().info(f"publishing {len(self.images)} image(s) from "
                               f"{cfg.folder or SAMPLE_IMAGES} on {self._pub.topic_name} at {cfg.rate_hz} Hz")

    def _header(self):
        from std_msgs.msg import Header

        return Header(frame_id=self.config.frame_id)

    def _tick(self) -> None:
        index = self.published % len(self._messages)
        if not self.config.loop and self.published >= len(self._messages):
            self.finished.set()
            return
        msg = self._messages[index]
        msg.header.stamp = self.get_clock().now().to_msg()
        self._pub.publish(msg)
        self.published += 1
