"""The console's ROS side: a plain rclpy node that speaks to one `rns` node (parameter `target`)
through its public interface only, so it works from another machine of the same ROS graph.

What it uses of the target, all found by name or through the ROS graph (remappings included):
  <target>/class_map      rns_ros/ClassMap, latched: the class list (always subscribed)
  /diagnostics            the target's statuses ("<target>: ..."): rates, latency, drops
  <target>[/<cam>]/overlay  each camera's overlay: the cameras are the target's overlay publishers
  the target's image inputs  sensor_msgs Image / CompressedImage topics it subscribes to (found in
                          the graph, so a remapped camera is found too): the raw frames to teach from
  <target>/add_classes ... the teaching services, called asynchronously (`await call(...)`)

Overlays and inputs are subscribed only while a page watches (`watch(camera)`), and dropped
`idle_s` after the last request: the node builds its overlay only while someone subscribes, so a
console nobody looks at costs the node nothing. Depth inputs (other encodings) are left at once.
"""
from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image

from rns_ros import msg as rns_msg
from rns_ros import srv
from rns_ros.console.frames import CameraFeed, Notifier, RawFrames, frame_key
from rns_ros.console.settings import PARAMETERS, ConsoleConfig, config_from_parameters, defaults

NODE_NAME = "rns_console"
MAX_AWAITED = 32  # overlays that wait for their raw frame (one that never comes is forgotten)
CAMERA_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")  # what the teaching services take
DEFAULT_CAMERA = "default"  # API name of the single (unnamed) camera, whose overlay is <target>/overlay
SERVICES = {"add_classes": srv.AddClasses, "remove_classes": srv.RemoveClasses,
            "add_exemplar": srv.AddExemplar, "remove_exemplars": srv.RemoveExemplars,
            "list_classes": srv.ListClasses, "save_support": srv.SaveSupport,
            "load_support": srv.LoadSupport}
IMAGE_TYPES = {"sensor_msgs/msg/Image": Image, "sensor_msgs/msg/CompressedImage": CompressedImage}
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
OVERLAY_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
INPUT_QOS = QoSProfile(depth=5, reliability=qos_profile_sensor_data.reliability,
                       durability=qos_profile_sensor_data.durability, history=HistoryPolicy.KEEP_LAST)


class Unreachable(RuntimeError):
    """The target does not offer a service (not running, wrong `target`, or not configured)."""


class NoAnswer(TimeoutError):
    """The target did not answer a service call within service_timeout_s."""


@dataclass
class Watched:
    """A camera someone's page watches: its feed, and the subscriptions that live while it does."""

    feed: CameraFeed
    last_request: float
    subscription: object | None = None


class ConsoleNode(Node):
    """The console's node; its settings are its ROS parameters (settings.PARAMETERS). ValueError
    (the node destroyed) for unknown parameter names or bad values."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs):
        super().__init__(node_name, **kwargs)
        try:
            self.config = self._read_parameters()
        except Exception:
            self.destroy_node()
            raise
        config = self.config
        namespace, _, name = config.target.rpartition("/")
        self.target_name, self.target_namespace = name, namespace or "/"
        self._group = ReentrantCallbackGroup()
        self._lock = threading.RLock()
        self.class_map = None  # newest rns_ros/ClassMap
        self.class_map_changed = Notifier()
        self.statuses: dict[str, object] = {}  # status name -> newest DiagnosticStatus of the target
        self.cameras: dict[str, str] = {}  # camera name -> overlay topic
        self.input_topics: dict[str, type] = {}  # the target's image inputs -> message type
        self._not_cameras: set[str] = set()  # inputs that turned out to carry depth
        self._inputs: dict[str, tuple[RawFrames, object]] = {}  # subscribed inputs -> (frames, subscription)
        self._watched: dict[str, Watched] = {}
        self._matching = threading.Lock()  # pairs overlays with raw frames, whichever comes first
        self._awaited: OrderedDict[tuple, CameraFeed] = OrderedDict()  # overlays whose raw frame is still due
        self.graph_error = ""
        self.create_subscription(rns_msg.ClassMap, f"{config.target}/class_map", self._on_class_map, LATCHED,
                                 callback_group=self._group)
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10,
                                 callback_group=self._group)
        self._service_clients = {name: self.create_client(srv_type, f"{config.target}/{name}", callback_group=self._group)
                         for name, srv_type in SERVICES.items()}
        self.refresh_graph()
        self.create_timer(1.0, self._housekeeping, callback_group=self._group)

    def _read_parameters(self) -> ConsoleConfig:
        unknown = sorted(set(getattr(self, "_parameter_overrides", {}) or {}) - set(PARAMETERS))
        if unknown:
            raise ValueError(f"unknown parameter(s) {unknown} for {self.get_name()}; known: {sorted(PARAMETERS)}")
        for name, default in defaults().items():
            self.declare_parameter(name, default, ParameterDescriptor(description=PARAMETERS[name], read_only=True))
        return config_from_parameters({name: self.get_parameter(name).value for name in PARAMETERS})

    # ------------------------------------------------------------------ what the target offers
    def refresh_graph(self) -> None:
        """Find the target's cameras (its overlay publishers) and image inputs (its Image /
        CompressedImage subscriptions) in the ROS graph, endpoint by endpoint (a node-level query
        could answer for a stale node of the same name)."""
        if (self.target_name, self.target_namespace) not in self.get_node_names_and_namespaces():
            self.graph_error = f"node {self.config.target} not found in the ROS graph"
        else:
            self.graph_error = ""
        prefix = self.config.target.rstrip("/") + "/"
        cameras, inputs = {}, {}
        for topic, types in self.get_topic_names_and_types():
            if "sensor_msgs/msg/Image" in types and topic.startswith(prefix) and topic.endswith("/overlay"):
                middle = topic[len(prefix):-len("/overlay")]
                if "/" not in middle and self._targets(self.get_publishers_info_by_topic(topic)):
                    cameras[middle or DEFAULT_CAMERA] = topic
            image_types = [t for t in types if t in IMAGE_TYPES]
            if (image_types and not topic.endswith("/compressedDepth") and topic not in self._not_cameras
                    and self._targets(self.get_subscriptions_info_by_topic(topic))):
                inputs[topic] = IMAGE_TYPES[image_types[0]]
        with self._lock:
            self.cameras, self.input_topics = cameras, inputs

    def _targets(self, endpoints) -> bool:
        """Whether one of these endpoints belongs to the target node."""
        return any(e.node_name == self.target_name and e.node_namespace == self.target_namespace for e in endpoints)

    # ------------------------------------------------------------------ topics
    def _on_class_map(self, msg) -> None:
        self.class_map = msg
        self.class_map_changed.notify()

    def _on_diagnostics(self, msg) -> None:
        prefix = self.config.target + ":"
        for status in msg.status:
            if status.name.startswith(prefix):
                self.statuses[status.name] = status

    def watch(self, camera: str) -> CameraFeed:
        """The feed of `camera` (KeyError if the target has no such camera), subscribing its
        overlay and the target's inputs if nobody watched them yet."""
        with self._lock:
            if camera not in self.cameras:
                self.refresh_graph()
            topic = self.cameras[camera]
            watched = self._watched.get(camera)
            if watched is None or watched.feed.overlay_topic != topic:
                feed = CameraFeed(camera, topic, self.config.fps, self.config.max_width, self.config.jpeg_quality)
                watched = self._watched[camera] = Watched(feed, time.monotonic())
            watched.last_request = time.monotonic()
            if watched.subscription is None:
                watched.feed.forget()  # what it showed before the console let go is stale
                watched.subscription = self.create_subscription(
                    Image, topic, lambda msg, f=watched.feed: self._on_overlay(f, msg), OVERLAY_QOS,
                    callback_group=self._group)
            self._subscribe_inputs()
            return watched.feed

    def _subscribe_inputs(self) -> None:
        for topic, msg_type in self.input_topics.items():
            if topic not in self._inputs:
                frames = RawFrames(int(self.config.frame_buffer_mb * 1e6))
                sub = self.create_subscription(msg_type, topic, lambda msg, t=topic: self._on_input(t, msg),
                                               INPUT_QOS, callback_group=self._group)
                self._inputs[topic] = (frames, sub)

    def _on_input(self, topic: str, msg) -> None:
        entry = self._inputs.get(topic)
        if entry is None:
            return
        if hasattr(msg, "encoding") and msg.encoding.lower() not in CAMERA_ENCODINGS:
            with self._lock:  # a depth image (16UC1, 32FC1): not a camera to teach from
                self._not_cameras.add(topic)
                self.input_topics.pop(topic, None)
                entry = self._inputs.pop(topic, None)
            if entry is not None:
                self.destroy_subscription(entry[1])
            return
        with self._matching:
            feed = self._awaited.pop(frame_key(msg.header), None)
            if feed is not None:  # its overlay came first (the two topics race): the pair is complete now
                feed.attach_raw(msg)
            else:
                entry[0].add(msg)

    def _on_overlay(self, feed: CameraFeed, msg) -> None:
        """Pair the overlay with its raw frame (same stamp and frame_id): taken from the buffers, or,
        when the raw frame is still on its way, handed to the feed when it comes."""
        key = frame_key(msg.header)
        with self._matching:
            raw = None
            for frames, _ in list(self._inputs.values()):
                raw = frames.take(key)
                if raw is not None:
                    break
            if raw is None:
                self._awaited[key] = feed
                while len(self._awaited) > MAX_AWAITED:
                    self._awaited.popitem(last=False)
            feed.on_overlay(msg, raw)

    def feed(self, camera: str) -> CameraFeed | None:
        with self._lock:
            watched = self._watched.get(camera)
            return watched.feed if watched is not None else None

    def _housekeeping(self) -> None:
        """Refresh the graph; unsubscribe what no page asked for in idle_s seconds."""
        self.refresh_graph()
        now = time.monotonic()
        with self._lock:
            for watched in self._watched.values():
                if watched.subscription is not None and now - watched.last_request > self.config.idle_s:
                    self.destroy_subscription(watched.subscription)
                    watched.subscription = None
            if not any(w.subscription is not None for w in self._watched.values()):
                for frames, sub in self._inputs.values():
                    self.destroy_subscription(sub)
                self._inputs.clear()

    def subscribed(self) -> dict[str, list[str]]:
        """What the console subscribes to now besides the class map and /diagnostics."""
        with self._lock:
            return {"overlays": sorted(w.feed.overlay_topic for w in self._watched.values() if w.subscription),
                    "inputs": sorted(self._inputs)}

    # ------------------------------------------------------------------ services
    def reachable(self) -> bool:
        """Whether the target offers its teaching services now."""
        return all(client.service_is_ready() for client in self._service_clients.values())

    async def call(self, service: str, request):
        """The target's answer to `request` on `service` (a key of SERVICES). Unreachable when the
        service is not offered, NoAnswer after service_timeout_s."""
        client = self._service_clients[service]
        if not client.service_is_ready():
            raise Unreachable(f"the rns node {self.config.target} offers no {service} service: is it running "
                              "and configured, and is the console's `target` parameter its name?")
        loop = asyncio.get_running_loop()
        answered = loop.create_future()
        future = client.call_async(request)
        future.add_done_callback(lambda _: loop.call_soon_threadsafe(
            lambda: answered.done() or answered.set_result(None)))
        try:
            await asyncio.wait_for(answered, self.config.service_timeout_s)
        except asyncio.TimeoutError:
            client.remove_pending_request(future)
            raise NoAnswer(f"{self.config.target}/{service} did not answer within "
                           f"{self.config.service_timeout_s:g} s (service_timeout_s)") from None
        return future.result()
