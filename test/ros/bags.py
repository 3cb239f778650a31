"""Write and read small rosbag2 recordings in tests, with rosbags directly (independently of
rns_ros.ros.bags.io), messages serialised by rclpy."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

from messages import make_image, random_rgb

CLASSES = {"sensor_msgs/msg/Image": Image, "sensor_msgs/msg/CompressedImage": CompressedImage,
           "sensor_msgs/msg/CameraInfo": CameraInfo, "sensor_msgs/msg/PointCloud2": PointCloud2}
STORE = get_typestore(Stores.ROS2_JAZZY)


def write_bag(path: Path, messages, storage: str = "mcap") -> Path:
    """messages: (topic, msgtype, log_time_ns, message) in any order."""
    plugin = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}[storage]
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        conns = {}
        for topic, msgtype, time_ns, msg in messages:
            if topic not in conns:
                conns[topic] = writer.add_connection(topic, msgtype, typestore=STORE)
            writer.write(conns[topic], time_ns, serialize_message(msg))
    return path


def read_bag(path: Path, *, classes: dict | None = None):
    """[(topic, log_time_ns, message or raw bytes for unknown types)] in log-time order."""
    known = dict(CLASSES, **(classes or {}))
    out = []
    with Reader(path) as reader:
        for conn, time_ns, raw in reader.messages():
            cls = known.get(conn.msgtype)
            out.append((conn.topic, time_ns, deserialize_message(raw, cls) if cls else raw))
    return out


def camera_frames(n: int, *, h: int = 24, w: int = 32, start_ns: int = 1_000_000_000, period_ns: int = 100_000_000,
                  topic: str = "/camera/image_raw", seed: int = 0):
    """n rgb8 frames stamped (and recorded) start_ns + i * period_ns."""
    frames = []
    for i in range(n):
        t = start_ns + i * period_ns
        msg = make_image(random_rgb(h, w, seed=seed + i), "rgb8", stamp=(t // 10**9, t % 10**9), frame_id="camera")
        frames.append((topic, "sensor_msgs/msg/Image", t, msg))
    return frames


def depth_frame(t_ns: int, mm: np.ndarray, frame_id: str = "depth_optical"):
    return make_image(mm.astype(np.uint16), "16UC1", stamp=(t_ns // 10**9, t_ns % 10**9), frame_id=frame_id)
