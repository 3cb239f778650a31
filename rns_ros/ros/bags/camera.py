"""A camera made of a recording: replays one image topic of a rosbag2 bag as sensor_msgs/Image.

Used by `rns-demo --bag` in place of the image-folder camera (`make_camera` picks one). Frames are read one at a time (a
long recording is never held in memory), converted to rgb8 (raw or compressed: the same decoders
as rns-bag), and published on `image` at `rate_hz` with the current time as stamp (like a live
camera, so the demo's latency means something) and the recorded frame_id, looping by default.
Frames that cannot be decoded are skipped and counted. To process every frame of a bag with the
recorded stamps, use `rns-bag` instead.
"""
from __future__ import annotations

import threading

from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import Image

from rns_ros.ros.bags.io import IMAGE_TYPES, BagError, message_class, open_reader
from rns_ros.ros.inputs.cameras import decode_frame
from rns_ros.ros.inputs.compressed import MAX_DECODED_PIXELS
from rns_ros.ros.conversions import rgb_to_image


def image_topics(reader) -> list[str]:
    """The bag's topics that hold images (raw or compressed), sorted."""
    return sorted({c.topic for c in reader.connections if c.msgtype in IMAGE_TYPES})


class BagCamera(Node):
    """Publishes `topic` of the bag at `bag_path` on `image`; `published` and `skipped` count frames."""

    def __init__(self, bag_path: str, topic: str = "", rate_hz: float = 5.0, loop: bool = True,
                 node_name: str = "bag_camera", **kwargs):
        if rate_hz <= 0:
            raise ValueError(f"rate_hz must be > 0, got {rate_hz}")
        reader = open_reader(bag_path)
        topics = image_topics(reader)
        reader.close()
        if not topic:
            if len(topics) != 1:
                raise BagError(f"{bag_path} has {len(topics)} image topics ({', '.join(topics) or 'none'}); "
                               "choose one with --image-topic")
            topic = topics[0]
        elif topic not in topics:
            raise BagError(f"--image-topic {topic} is not an image topic of {bag_path}; its image topics: "
                           f"{', '.join(topics) or 'none'}")
        super().__init__(node_name, **kwargs)
        self.bag_path, self.topic, self.loop = bag_path, topic, loop
        self.published = self.skipped = 0
        self.finished = threading.Event()  # set after the last frame when loop is false
        self._reader = None
        self._frames = iter(())
        self._pub = self.create_publisher(Image, "image", qos_profile_sensor_data)
        self._timer = self.create_timer(1.0 / rate_hz, self._tick)
        self.get_logger().info(f"replaying {topic} of {bag_path} on {self._pub.topic_name} at {rate_hz} Hz")

    def _messages(self):
        """The topic's messages, decoded to rgb8 Images, from the start of the recording."""
        self._reader = open_reader(self.bag_path)
        conns = [c for c in self._reader.connections if c.topic == self.topic]
        for conn, _, raw in self._reader.messages(connections=conns):
            try:
                msg = deserialize_message(raw, message_class(conn.msgtype))
                rgb = decode_frame(msg, MAX_DECODED_PIXELS)
            except Exception as exc:  # noqa: BLE001 - FrameError, RMWError ...: a bad frame is skipped
                self.skipped += 1
                self.get_logger().warning(f"skipping a frame of {self.topic}: {exc}", throttle_duration_sec=1.0)
                continue
            yield rgb_to_image(rgb, msg.header)
        self._reader.close()
        self._reader = None

    def _tick(self) -> None:
        if self.finished.is_set():
            return
        msg = next(self._frames, None)
        if msg is None:
            if self.published and not self.loop:
                self.finished.set()
                return
            self._frames = self._messages()
            msg = next(self._frames, None)
            if msg is None:  # nothing decodable in the whole topic
                self.finished.set()
                return
        msg.header.stamp = self.get_clock().now().to_msg()
        self._pub.publish(msg)
        self.published += 1

    def destroy_node(self):
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        return super().destroy_node()


def make_camera(bag: str, image_topic: str, folder: str, rate_hz: float, context):
    """The demo's camera and a description of its source: the recording's topic when `bag` is
    given, else the image folder ('' = the sample images). BagError/ValueError say what is wrong."""
    if bag:
        camera = BagCamera(bag, image_topic, rate_hz=rate_hz, context=context)
        return camera, f"{camera.topic} of {bag}"
    from rclpy.parameter import Parameter

    from rns_ros.ros.demo.image_folder_camera import ImageFolderCamera

    camera = ImageFolderCamera(context=context, parameter_overrides=[Parameter("folder", value=folder),
                                                                     Parameter("rate_hz", value=rate_hz)])
    return camera, f"{len(camera.images)} image(s)"
