"""rns_ros/FleetChange <-> rns_ros.core.fleet.items.FleetUpdate, field for field.

    msg = to_message(update, stamp)                 # to publish
    update = from_message(msg, limits)              # received; Malformed names what is wrong

`from_message` reads sizes from the message's own fields first and refuses one that is too large
(`Malformed`, kind "too large") before converting anything; arrays come out as read-only views of
the message's buffers (no copy). Images and label maps (fleet.share_masks) are decoded with the
package's checked Image decoders; a broken one is `Malformed`. Everything else is checked by
`check_update` in FleetSync.receive, before anything reaches the memory.
"""
from __future__ import annotations

import array

import numpy as np
from std_msgs.msg import Header

from rns_ros.core.fleet.items import ClassState, FleetLimits, FleetUpdate, Malformed, SharedExemplar, check_size
from rns_ros.msg import FleetChange, FleetClass, FleetExemplar
from rns_ros.ros.conversions import FrameError, image_to_rgb, labels_from_image, labels_to_image, rgb_to_image


def _floats(values: np.ndarray) -> array.array:
    out = array.array("f")
    out.frombytes(np.ascontiguousarray(values, dtype="<f4").tobytes())
    return out


def _class_message(state: ClassState) -> FleetClass:
    msg = FleetClass(name=state.name, description=state.description, removed=state.removed,
                     clock=int(state.clock), clock_robot=state.clock_robot)
    if state.text is not None:
        msg.text_feature = _floats(state.text)
    return msg


def _exemplar_message(ex: SharedExemplar) -> FleetExemplar:
    msg = FleetExemplar(content_hash=ex.content_hash, origin=ex.origin, class_names=list(ex.class_names),
                        dim=int(ex.features.shape[1]), label_names=list(ex.label_names))
    msg.features = _floats(ex.features)
    if ex.image is not None:
        msg.image = rgb_to_image(ex.image, Header())
        msg.labels = labels_to_image(ex.labels, Header(), max_class_id=len(ex.label_names))
    return msg


def to_message(update: FleetUpdate, stamp) -> FleetChange:
    """The message of `update`; `stamp` a builtin_interfaces/Time."""
    msg = FleetChange(robot_id=update.robot_id, session=update.session, backbone=update.backbone,
                      dim=int(update.dim), sequence=int(update.sequence), snapshot=update.snapshot,
                      classes=[_class_message(c) for c in update.classes],
                      exemplars_added=[_exemplar_message(e) for e in update.exemplars_added],
                      exemplars_removed=list(update.exemplars_removed))
    msg.header.stamp = stamp
    return msg


def message_bytes(msg: FleetChange) -> int:
    """The bulk of a received message (features, text, images, label maps), from its field sizes."""
    total = 4 * sum(len(c.text_feature) for c in msg.classes)
    for ex in msg.exemplars_added:
        total += 4 * len(ex.features) + len(ex.image.data) + len(ex.labels.data)
    return total


def _class_state(msg: FleetClass) -> ClassState:
    text = np.frombuffer(msg.text_feature, dtype=np.float32) if len(msg.text_feature) else None
    return ClassState(msg.name, msg.description, text, bool(msg.removed), int(msg.clock), msg.clock_robot)


def _exemplar(msg: FleetExemplar) -> SharedExemplar:
    short = msg.content_hash[:12]
    feats = np.frombuffer(msg.features, dtype=np.float32)
    rows, dim = len(msg.class_names), int(msg.dim)
    if dim == 0 or feats.size != rows * dim:
        raise Malformed(f"exemplar {short}: {feats.size} feature values for {rows} class names of dim {dim}")
    raw = {}
    if msg.image.width or msg.image.height or msg.labels.width or msg.labels.height:
        try:
            raw = {"image": image_to_rgb(msg.image) if msg.image.encoding == "rgb8" else None,
                   "labels": labels_from_image(msg.labels), "label_names": tuple(msg.label_names)}
        except FrameError as exc:
            raise Malformed(f"exemplar {short}: {exc}") from None
        if raw["image"] is None:
            raise Malformed(f"exemplar {short}: the image must be rgb8, got {msg.image.encoding!r}")
    return SharedExemplar(msg.content_hash, msg.origin, tuple(msg.class_names), feats.reshape(rows, dim), **raw)


def from_message(msg: FleetChange, limits: FleetLimits) -> FleetUpdate:
    """The update a received message carries; Malformed when it is too large or cannot be decoded."""
    check_size(message_bytes(msg), limits)
    return FleetUpdate(robot_id=msg.robot_id, session=msg.session, backbone=msg.backbone, dim=int(msg.dim),
                       sequence=int(msg.sequence), snapshot=bool(msg.snapshot),
                       classes=tuple(_class_state(c) for c in msg.classes),
                       exemplars_added=tuple(_exemplar(e) for e in msg.exemplars_added),
                       exemplars_removed=tuple(msg.exemplars_removed))
