"""The node's link to the fleet: its memory changes out, the other robots' changes in, over two
ROS 2 topics (the middleware is the transport: DDS on one network, rmw_zenoh across sites).

    link = FleetLink(node, config, engine, teacher, guard)   # after the memory was restored
    teacher.before_save = link.before_save                   # each local change is published
    ...
    link.destroy()

Topics (fleet.topic, absolute so every robot shares them; rns_ros/FleetChange):
  <topic>            each robot's own changes: reliable, volatile, keep last 1000
  <topic>/snapshot   each robot's whole memory: reliable, transient local, depth 1 per publisher;
                     republished at most every fleet.snapshot_period_s after its memory changed

Contract: `before_save` runs under the engine lock right before each save of the memory (teacher.py)
and publishes this robot's change at once (FleetSync.local_changes: never what it received). A
received message is decoded and checked, then merged under the engine lock and saved through the
same `Teacher.start_save` as a local teach (written after the lock is let go, so a large catch-up does
not hold frames); then ~/class_map is republished. A message that cannot be
merged is refused and counted (FleetSync statistics, in /diagnostics as `<node>: fleet`), never
raised: the subscription callbacks are guarded as every callback of the node is.
"""
from __future__ import annotations

import socket
import threading
import uuid
from typing import Callable

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from rns_ros.core.fleet.items import Malformed
from rns_ros.core.fleet.sync import FleetSync
from rns_ros.msg import FleetChange
from rns_ros.ros.fleet.config import FleetConfig, robot_id_of, topics
from rns_ros.ros.fleet.messages import from_message, to_message

CHANGES_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.VOLATILE)
SNAPSHOT_PUBLISHER_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                    durability=DurabilityPolicy.TRANSIENT_LOCAL)
# A reader keeps one sample per instance; with no keys all publishers share it, so it keeps room for
# the latest snapshot of many robots arriving together.
SNAPSHOT_SUBSCRIPTION_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                                       reliability=ReliabilityPolicy.RELIABLE,
                                       durability=DurabilityPolicy.TRANSIENT_LOCAL)


class FleetLink:
    """Publishers, subscriptions and the snapshot timer of one node's fleet sync.

    engine: the RnsEngine (its lock guards the memory at engine.segmenter.memory). teacher: the
    node's Teacher (`save` persists a merge like a teach). on_change: called after a merge changed
    the memory (the node republishes ~/class_map). guard: the node's CallbackGuard.
    """

    def __init__(self, node, config: FleetConfig, engine, teacher, guard, *, on_change: Callable[[], None],
                 max_image_pixels: int = 16_777_216, hostname: str | None = None):
        self.node = node
        self.config = config
        self.engine = engine
        self.teacher = teacher
        self.on_change = on_change
        self.log = node.get_logger()
        robot_id = robot_id_of(config, node.get_fully_qualified_name(), hostname or socket.gethostname())
        self.sync = FleetSync(robot_id, uuid.uuid4().hex, accept_from=config.accept_from,
                              share_masks=config.share_masks, limits=config.limits(max_image_pixels),
                              class_id_allowed=lambda class_id: not teacher.id_limit.over([class_id]))
        self.messages_published = {"change": 0, "snapshot": 0}
        self._snapshot_due = threading.Event()
        self._snapshot_due.set()  # the first snapshot goes out at the first tick
        with engine.lock:
            self.sync.attach(engine.segmenter.memory)
        changes_topic, snapshot_topic = topics(config)
        group = MutuallyExclusiveCallbackGroup()  # one merge at a time
        self._changes_pub = node.create_publisher(FleetChange, changes_topic, CHANGES_QOS)
        self._snapshot_pub = node.create_publisher(FleetChange, snapshot_topic, SNAPSHOT_PUBLISHER_QOS)
        self._subs = [node.create_subscription(FleetChange, topic, guard.wrap(f"fleet {topic}", self.on_message),
                                               qos, callback_group=group)
                      for topic, qos in ((changes_topic, CHANGES_QOS), (snapshot_topic, SNAPSHOT_SUBSCRIPTION_QOS))]
        self._timer = node.create_timer(config.snapshot_period_s, guard.wrap("fleet snapshot", self.publish_snapshot),
                                        callback_group=group)
        self.log.info(f"fleet: sharing the memory as {robot_id!r} on {changes_topic} (+ {snapshot_topic})")

    def _stamp(self):
        return self.node.get_clock().now().to_msg()

    # ------------------------------------------------------------------ out
    def before_save(self, memory) -> None:
        """Publish this robot's change (if any) of `memory`; the caller holds the engine lock."""
        update = self.sync.local_changes(memory)
        if update is None:
            return
        self._changes_pub.publish(to_message(update, self._stamp()))
        self.messages_published["change"] += 1
        self._snapshot_due.set()

    def publish_snapshot(self) -> None:
        """The timer: publish everything held when the memory changed since the last snapshot."""
        if not self._snapshot_due.is_set():
            return
        self._snapshot_due.clear()
        with self.engine.lock:
            segmenter = getattr(self.engine, "segmenter", None)
            if segmenter is None:
                return
            msg = to_message(self.sync.snapshot(segmenter.memory), self._stamp())
        self._snapshot_pub.publish(msg)
        self.messages_published["snapshot"] += 1

    # ------------------------------------------------------------------ in
    def on_message(self, msg: FleetChange) -> None:
        """Merge another robot's message (changes or snapshot topic), or refuse and count it."""
        if msg.robot_id == self.sync.robot_id and msg.session == self.sync.session:
            return  # our own publication, heard back
        try:
            update = from_message(msg, self.sync.limits)
        except Malformed as exc:
            with self.engine.lock:
                self.sync.refuse(msg.robot_id, exc.kind, str(exc))
            self.log.warning(f"fleet: refused a message of {msg.robot_id!r}: {exc}", throttle_duration_sec=1.0)
            return
        with self.engine.lock:
            segmenter = getattr(self.engine, "segmenter", None)
            if segmenter is None:
                return
            receipt = self.sync.receive(update, segmenter.memory)
            saving = self.teacher.start_save() if receipt.save_needed else None
        warning = saving.write() if saving is not None else None  # frames go on meanwhile
        if receipt.refused:
            self.log.warning(f"fleet: refused from {msg.robot_id!r}: {'; '.join(receipt.refused)}",
                             throttle_duration_sec=1.0)
        if warning:
            self.log.error(f"fleet: merged from {msg.robot_id!r} but {warning}")
        if receipt.memory_changed:
            self._snapshot_due.set()
            self.on_change()

    # ------------------------------------------------------------------ status
    def status(self, node_name: str) -> DiagnosticStatus:
        """`<node>: fleet` for /diagnostics: peers, last message per peer, merged, refused and why;
        WARN while another node uses this robot's id."""
        values = dict(self.sync.summary())
        values.update({f"fleet_published ({kind})": n for kind, n in self.messages_published.items()})
        duplicate = values.get("fleet_duplicate_robot_id")
        level = DiagnosticStatus.WARN if duplicate else DiagnosticStatus.OK
        message = (f"robot_id {self.sync.robot_id!r} is used by another node: give each robot its own "
                   "fleet.robot_id" if duplicate else f"{len(self.sync.peers)} peer(s)")
        return DiagnosticStatus(level=level, name=f"{node_name}: fleet", message=message,
                                hardware_id=self.sync.robot_id,
                                values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])

    def destroy(self) -> None:
        self.node.destroy_timer(self._timer)
        for sub in self._subs:
            self.node.destroy_subscription(sub)
        self.node.destroy_publisher(self._changes_pub)
        self.node.destroy_publisher(self._snapshot_pub)
