"""How the node receives camera frames: the QoS of its image subscriptions, and the topic an
image_transport transport reads.

The subscription callback itself is rns_ros/ros/frame_loop.py's: it only drops the message into
the one-slot mailbox (newest wins) that the worker thread takes frames from.
"""
from __future__ import annotations

from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

from rns_ros.ros.params import IMAGE_QOS


def transport_topic(node, topic: str, transport: str) -> str:
    """The topic of `topic` under an image_transport transport: itself for raw, else the resolved
    (remapped) name + '/' + transport (`compressed`, `compressedDepth`), as image_transport names it
    (Jazzy has no Python image_transport, so the node subscribes to that topic directly)."""
    return topic if transport == "raw" else f"{node.resolve_topic_name(topic)}/{transport}"


def image_qos(name: str, depth: int) -> QoSProfile:
    """The subscription QoS for the `image_qos` parameter value."""
    if name == "sensor_data":
        profile = QoSProfile(depth=depth, reliability=qos_profile_sensor_data.reliability,
                             durability=qos_profile_sensor_data.durability, history=HistoryPolicy.KEEP_LAST)
    elif name == "reliable":
        profile = QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
    else:
        raise ValueError(f"image_qos must be one of {IMAGE_QOS}, got {name!r}")
    return profile
