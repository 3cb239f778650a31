"""What Nav2's semantic costmap layer (`jazzy`) does with messages, through its Python port
(semantic_layer_port.py, each rule cited there): the checks that silently throw our old outputs
away, and why the node publishes depth-aligned, mono8, same-stamp outputs. Hand-built messages only;
test_node_nav2.py feeds the port the real node's topics."""
import struct

import numpy as np
from sensor_msgs.msg import Image, PointCloud2, PointField
from vision_msgs.msg import LabelInfo, VisionClass

from semantic_layer_port import CostParams, SemanticLayerSource

S = 1_000_000_000
DANGER = CostParams(base_cost=254, max_cost=254)
CLASS_TYPES = {"danger": (["puddle"], DANGER), "free": (["floor"], CostParams(base_cost=0, max_cost=0))}
IDENTITY = np.eye(4)


def layer(**kwargs) -> SemanticLayerSource:
    return SemanticLayerSource(kwargs.pop("class_types", CLASS_TYPES), lambda frame, stamp: IDENTITY, **kwargs)


def label_info(classes: dict[int, str]) -> LabelInfo:
    return LabelInfo(class_map=[VisionClass(class_id=i, class_name=n) for i, n in classes.items()])


def image(data: bytes, width: int, height: int, encoding: str, stamp_ns: int) -> Image:
    msg = Image(width=width, height=height, encoding=encoding, step=len(data) // height)
    msg.data = data
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, S)
    return msg


def cloud(xyz: np.ndarray, stamp_ns: int, organised_as: tuple[int, int] | None = None) -> PointCloud2:
    """x, y, z float32 points; height x width = organised_as, else one row."""
    height, width = organised_as or (1, len(xyz))
    msg = PointCloud2(height=height, width=width, point_step=12, row_step=12 * width, is_dense=False)
    msg.fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1) for i, n in enumerate("xyz")]
    msg.data = np.ascontiguousarray(xyz, "<f4").tobytes()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, S)
    msg.header.frame_id = "odom"
    return msg


def feed(source: SemanticLayerSource, *messages) -> None:
    for msg, add in zip(messages, (source.on_segmentation, source.on_confidence, source.on_pointcloud)):
        add(msg)


def row_of_points(n: int, x: float = 2.0) -> np.ndarray:
    """n points 0.5 m apart along y at distance x: each in its own tile."""
    return np.stack([np.full(n, x), 0.5 * np.arange(n), np.zeros(n)], axis=1)


def test_a_cloud_that_is_not_the_masks_size_is_thrown_away():
    """Our ~/points (valid pixels only, one row) beside ~/labels at colour resolution."""
    source = layer()
    source.on_label_info(label_info({0: "unlabeled", 1: "floor", 2: "puddle"}))
    feed(source, image(bytes([2] * 6), 3, 2, "mono8", S), image(bytes([255] * 6), 3, 2, "mono8", S),
         cloud(row_of_points(5), S))
    assert len(source.taken) == 1 and not source.buffered and "sizes are different" in source.warnings[0]
    feed(source, image(bytes([2] * 6), 3, 2, "mono8", 2 * S), image(bytes([255] * 6), 3, 2, "mono8", 2 * S),
         cloud(row_of_points(6), 2 * S, organised_as=(2, 3)))
    assert len(source.buffered) == 1 and {c for c, _ in source.costs(2.0).values()} == {254}


def test_labels_are_read_one_byte_per_pixel_whatever_the_encoding():
    """mono16 labels (our ~/labels past id 255) are misread: both pixels are class 300 'puddle'."""
    source = layer()
    source.on_label_info(label_info({1: "floor", 300: "puddle"}))  # the layer keeps 300 & 0xFF = 44
    labels = np.array([300, 300], "<u2").tobytes()  # bytes 0x2C 0x01 0x2C 0x01
    feed(source, image(labels, 2, 1, "mono16", S), image(bytes([255] * 2), 2, 1, "mono8", S),
         cloud(row_of_points(2), S, organised_as=(1, 2)))
    classes = [c for _, (_, c) in sorted(source.costs(1.0).items())]
    assert classes == [44, 1]  # pixel 0 reads 0x2C (puddle's cut id, by luck), pixel 1 reads 0x01: floor


def test_a_32fc1_confidence_is_read_as_bytes_and_max_cost_is_never_reached():
    """Probability 1.0 in 32FC1 is the bytes 00 00 80 3F: the layer reads confidence 0 for pixel 0."""
    params = CostParams(base_cost=100, max_cost=254, mark_confidence=200, samples_to_max_cost=1)
    results = {}
    for encoding, data in (("32FC1", struct.pack("<ff", 1.0, 1.0)), ("mono8", bytes([255, 255]))):
        source = layer(class_types={"danger": (["puddle"], params)})
        source.on_label_info(label_info({1: "puddle"}))
        width = 2
        feed(source, image(bytes([1, 1]), width, 1, "mono8", S), image(data, width, 1, encoding, S),
             cloud(row_of_points(2), S, organised_as=(1, 2)))
        results[encoding] = [cost for cost, _ in dict(sorted(source.costs(1.0).items())).values()]
    assert results == {"32FC1": [100, 100], "mono8": [254, 254]}


def test_label_info_names_are_looked_up_on_every_message_and_unlisted_names_ignored():
    source = layer()
    source.on_label_info(label_info({0: "unlabeled", 1: "floor"}))  # "puddle" not taught yet
    assert source.id_by_name == {"floor": 1} and "unlabeled" in source.ignored_names
    source.on_label_info(label_info({0: "unlabeled", 1: "floor", 2: "puddle", 3: "chair"}))  # taught at runtime
    assert source.id_by_name == {"floor": 1, "puddle": 2} and "chair" in source.ignored_names
    feed(source, image(bytes([2, 3]), 2, 1, "mono8", S), image(bytes([255, 255]), 2, 1, "mono8", S),
         cloud(row_of_points(2), S, organised_as=(1, 2)))
    assert [c for _, c in source.costs(1.0).values()] == [2]  # chair (3) is not in the parameters: no cost


def test_a_set_before_any_label_info_would_crash_the_layer():
    source = layer()
    try:
        feed(source, image(bytes([1]), 1, 1, "mono8", S), image(bytes([255]), 1, 1, "mono8", S),
             cloud(row_of_points(1), S, organised_as=(1, 1)))
    except RuntimeError as exc:
        assert "null segmentation_cost_multimap_" in str(exc)
    else:
        raise AssertionError("the port must flag the layer's null dereference")


def timeline(latency_s: float, *, cloud_hz: float = 30.0, label_hz: float = 2.0, seconds: float = 5.0,
             same_frame_cloud: bool = False):
    """(arrival s, topic, stamp ns) of a run: labels + confidence of frames captured every 1/label_hz
    arriving `latency_s` late; a cloud either per camera frame at cloud_hz arriving 10 ms late (an
    external depth_image_proc cloud) or with each label image (same stamp, same arrival: ours)."""
    events = []
    for k in range(int(seconds * label_hz)):
        stamp = int(k * S / label_hz)
        events += [(stamp / S + latency_s, 0, stamp), (stamp / S + latency_s, 1, stamp)]
        if same_frame_cloud:
            events.append((stamp / S + latency_s, 2, stamp))
    if not same_frame_cloud:
        events += [(k / cloud_hz + 0.01, 2, int(k * S / cloud_hz)) for k in range(int(seconds * cloud_hz))]
    return sorted(events)


def sets_taken(events, **kwargs) -> list[tuple[int, int, int]]:
    source = layer(**kwargs)
    source.on_label_info(label_info({1: "puddle"}))
    for _, topic, stamp in events:
        msg = (image(bytes([1]), 1, 1, "mono8", stamp) if topic < 2
               else cloud(row_of_points(1), stamp, organised_as=(1, 1)))
        (source.on_segmentation, source.on_confidence, source.on_pointcloud)[topic](msg)
    return [tuple(m.header.stamp.sec * S + m.header.stamp.nanosec for m in msgs) for msgs in source.taken]


def test_an_external_30hz_cloud_falls_out_of_the_queue_when_labels_are_late():
    """ApproximateTime, queue 10 (a third of a second of 30 Hz clouds), max interval 0.1 s."""
    assert len(sets_taken(timeline(0.05))) == 10  # labels 50 ms late: every frame finds a cloud
    assert sets_taken(timeline(0.5)) == []  # 500 ms late: the frame's cloud left the queue long ago
    assert sets_taken(timeline(0.5), use_approximate_time_sync=False) == []


def test_clouds_published_with_the_labels_are_taken_whatever_the_latency():
    for latency in (0.05, 0.5, 3.0):
        for approximate in (True, False):
            taken = sets_taken(timeline(latency, same_frame_cloud=True), use_approximate_time_sync=approximate)
            assert len(taken) == 10 and all(len(set(stamps)) == 1 for stamps in taken)


def test_approximate_sync_pairs_labels_with_another_frames_cloud_when_messages_are_lost():
    """Best-effort transport loses messages: frame 1's cloud and frame 2's labels are lost. The
    ApproximateTime policy then hands the layer frame 1's labels with frame 2's cloud (0.1 s apart,
    within its max interval): labels placed with the wrong geometry. Exact stamps never do that,
    which is why config/nav2_semantic_costmap.yaml sets use_approximate_time_sync: false."""
    frames = [0, 1, 2, 3]
    events = []
    for k in frames:
        stamp = k * S // 10
        for topic in (0, 1, 2):
            if (k, topic) not in ((1, 2), (2, 0)):
                events.append((k, topic, stamp))
    approximate = sets_taken(events)
    exact = sets_taken(events, use_approximate_time_sync=False)
    assert all(len(set(stamps)) == 1 for stamps in exact) and len(exact) == 2
    assert any(len(set(stamps)) > 1 for stamps in approximate)
