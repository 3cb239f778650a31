"""rns_ros/FleetChange <-> FleetUpdate: a round trip keeps every field bit for bit (features, text,
shared image and label map), and what cannot be decoded or is too large is Malformed."""
from __future__ import annotations

import array

import numpy as np
import pytest
from builtin_interfaces.msg import Time

from rns_ros.core.fleet.items import ClassState, FleetLimits, FleetUpdate, Malformed, SharedExemplar, check_update
from rns_ros.ros.fleet.messages import from_message, message_bytes, to_message


def unit(rng, *shape):
    x = rng.standard_normal(shape).astype(np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True).astype(np.float32)


def update() -> FleetUpdate:
    rng = np.random.default_rng(3)
    labels = np.zeros((6, 7), np.int64)
    labels[1:3, 1:4], labels[4:, :] = 1, 2
    shared = SharedExemplar.of(("mug", "floor"), unit(rng, 2, 8), "/a/rns@h",
                               image=rng.integers(0, 256, (6, 7, 3), dtype=np.uint8), labels=labels,
                               label_names=("mug", "floor"))
    plain = SharedExemplar.of(("mug",), unit(rng, 1, 8), "/b/rns@h")
    return FleetUpdate("/a/rns@h", "s1", "test-tiny", 8, 3, snapshot=True,
                       classes=(ClassState("mug", "a red mug", unit(rng, 8), False, 4, "/a/rns@h"),
                                ClassState("gone", removed=True, clock=5, clock_robot="/b/rns@h")),
                       exemplars_added=(shared, plain), exemplars_removed=("ab" * 32,))


def test_a_round_trip_keeps_everything_bit_for_bit():
    sent = update()
    got = from_message(to_message(sent, Time(sec=1)), FleetLimits())
    check_update(got, dim=8)
    for field in ("robot_id", "session", "backbone", "dim", "sequence", "snapshot", "exemplars_removed"):
        assert getattr(got, field) == getattr(sent, field), field
    for a, b in zip(got.classes, sent.classes):
        assert (a.name, a.description, a.removed, a.stamp) == (b.name, b.description, b.removed, b.stamp)
        assert (a.text is None and b.text is None) or a.text.tobytes() == b.text.tobytes()
    for a, b in zip(got.exemplars_added, sent.exemplars_added):
        assert (a.content_hash, a.origin, a.class_names, a.label_names) == (b.content_hash, b.origin,
                                                                            b.class_names, b.label_names)
        assert a.features.tobytes() == b.features.tobytes()
        assert (a.image is None) == (b.image is None)
        if a.image is not None:
            assert np.array_equal(a.image, b.image) and np.array_equal(a.labels, b.labels)


def test_sizes_are_read_from_the_message_and_a_large_one_refused_before_decoding():
    msg = to_message(update(), Time())
    assert message_bytes(msg) == 4 * 8 + 4 * (2 * 8 + 8) + 6 * 7 * 3 + 6 * 7  # text, features, rgb8, mono8
    with pytest.raises(Malformed) as refused:
        from_message(msg, FleetLimits(max_message_bytes=message_bytes(msg) - 1))
    assert refused.value.kind == "too large"


def test_what_cannot_be_decoded_is_malformed():
    msg = to_message(update(), Time())
    msg.exemplars_added[1].features = array.array("f", msg.exemplars_added[1].features[:5])
    with pytest.raises(Malformed, match="5 feature values for 1 class names of dim 8"):
        from_message(msg, FleetLimits())
    msg = to_message(update(), Time())
    msg.exemplars_added[0].image.encoding = "bgr8"
    with pytest.raises(Malformed, match="rgb8"):
        from_message(msg, FleetLimits())
    msg = to_message(update(), Time())
    msg.exemplars_added[0].labels.step = 1
    with pytest.raises(Malformed, match="step"):
        from_message(msg, FleetLimits())
