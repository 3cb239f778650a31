"""Settings of the fleet sync (the fleet.* ROS parameters map onto these fields, params.py), and
the names it derives from them: the robot id and the two topics.

    FleetConfig(enabled=True, robot_id="", topic="/rns_fleet/memory")
    robot_id_of(config, "/robot1/rns", "robot1-host")   # "/robot1/rns@robot1-host"
    topics(config)                                      # ("/rns_fleet/memory", "/rns_fleet/memory/snapshot")
"""
from __future__ import annotations

from dataclasses import dataclass

from rns_ros.core.fleet.items import FleetLimits

SNAPSHOT_SUFFIX = "/snapshot"


@dataclass(frozen=True)
class FleetConfig:
    """How a node shares its memory with the fleet (docs/teaching.md, "Fleet")."""

    enabled: bool = False  # share this node's memory with every node on fleet.topic
    topic: str = "/rns_fleet/memory"  # changes; snapshots on topic + "/snapshot" (absolute: one per fleet)
    robot_id: str = ""  # unique in the fleet; '' = the node's fully qualified name + "@" + host name
    share_masks: bool = False  # send (and keep) exemplar images and label maps, not only features
    accept_from: tuple[str, ...] = ()  # robot ids whose messages are merged; () = every robot
    max_message_mb: float = 256.0  # larger received messages are refused (counted)
    snapshot_period_s: float = 2.0  # the snapshot is republished at most this often, when the memory changed

    def __post_init__(self):
        from rclpy.exceptions import InvalidTopicNameException
        from rclpy.validate_full_topic_name import validate_full_topic_name

        try:
            validate_full_topic_name(self.topic + SNAPSHOT_SUFFIX)
            validate_full_topic_name(self.topic)
        except InvalidTopicNameException as exc:
            raise ValueError(f"fleet.topic must be an absolute topic name (every robot of a fleet shares "
                             f"it), e.g. /rns_fleet/memory; got {self.topic!r}: {str(exc).splitlines()[0]}") from None
        if self.robot_id != self.robot_id.strip():
            raise ValueError(f"fleet.robot_id must not start or end with spaces, got {self.robot_id!r}")
        if len(set(self.accept_from)) != len(self.accept_from):
            raise ValueError(f"fleet.accept_from names a robot twice: {list(self.accept_from)}")
        if not 0.001 <= self.max_message_mb <= 65536:
            raise ValueError(f"fleet.max_message_mb must be in [0.001, 65536], got {self.max_message_mb}")
        if not 0.05 <= self.snapshot_period_s <= 3600:
            raise ValueError(f"fleet.snapshot_period_s must be in [0.05, 3600], got {self.snapshot_period_s}")

    def limits(self, max_image_pixels: int) -> FleetLimits:
        return FleetLimits(max_message_bytes=int(self.max_message_mb * 2**20), max_image_pixels=max_image_pixels)


def robot_id_of(config: FleetConfig, fully_qualified_name: str, hostname: str) -> str:
    """fleet.robot_id, or by default the node's name and the host: '/robot1/rns@robot1-host'."""
    return config.robot_id or f"{fully_qualified_name}@{hostname}"


def topics(config: FleetConfig) -> tuple[str, str]:
    """(changes topic, snapshot topic)."""
    return config.topic, config.topic + SNAPSHOT_SUFFIX
