"""What people see, through real topics: the overlay's legend, ~/labels_color, and one palette for
the class map and every picture (RGB order checked end to end, bgr8 camera in)."""
import numpy as np
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from fakes import FakeEngine
from messages import make_image
from rns_ros import srv
from rns_ros.msg import ClassMap
from rns_ros.visual import parse_palette
from rns_ros.visual.palette import OKABE_ITO, hex_color
from teaching_helpers import call
from test_node_topics import LATCHED, collect, connected, start

HEX = ["#ff8800", "#0088ff", "#22aa22"]  # cat, dog, cup


def scene(h=120, w=160) -> np.ndarray:
    """Left: red-brightest (the fake's class 1), middle: green-brightest (class 2), right: dark (0)."""
    rgb = np.full((h, w, 3), 40, np.uint8)
    rgb[:, : w * 3 // 8] = (200, 30, 30)
    rgb[:, w * 3 // 8: w * 3 // 4] = (30, 200, 30)
    return rgb


def colours(class_map: ClassMap) -> dict[int, tuple[int, int, int]]:
    """The class map's colours as 0..255 RGB."""
    return {c.id: (round(c.color.r * 255), round(c.color.g * 255), round(c.color.b * 255)) for c in class_map.classes}


def pixels(msg: Image) -> np.ndarray:
    assert msg.encoding in ("rgb8", "mono8") and msg.step == msg.width * (3 if msg.encoding == "rgb8" else 1)
    return np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width, -1).squeeze()


def send(ros, pub, rgb, got: list, stamp):
    pub.publish(make_image(np.ascontiguousarray(rgb[:, :, ::-1]), "bgr8", stamp=stamp))
    ros.wait_for(lambda: any(m.header.stamp.sec == stamp[0] for m in got), what=f"frame {stamp}")
    return next(m for m in got if m.header.stamp.sec == stamp[0])


def test_overlay_legend_labels_color_and_class_map_share_one_palette_in_rgb_order(ros):
    node, engine = start(ros, palette=HEX, overlay_alpha=0.5)
    helper = ros.node("helper")
    maps = collect(helper, "/rns/class_map", ClassMap, LATCHED)
    labels, overlays, coloured = (collect(helper, f"/rns/{t}") for t in ("labels", "overlay", "labels_color"))
    pub = helper.create_publisher(Image, "image", qos_profile_sensor_data)
    connected(ros, pub, node, "labels", "overlay", "labels_color")
    rgb = scene()
    over = pixels(send(ros, pub, rgb, overlays, (1, 0)))
    ros.wait_for(lambda: labels and coloured and maps, what="labels, labels_color and class map")
    cmap = colours(maps[-1])
    assert cmap == {i: parse_palette(HEX).color(i) for i in (1, 2, 3)} == {1: (255, 136, 0), 2: (0, 136, 255),
                                                                             3: (34, 170, 34)}
    ids = pixels(labels[0]).astype(int)
    assert set(np.unique(ids)) == {0, 1, 2}

    # ~/labels_color: every pixel exactly its class's class-map colour, unlabeled black
    lut = np.zeros((4, 3), np.uint8)
    for cid, c in cmap.items():
        lut[cid] = c
    np.testing.assert_array_equal(pixels(coloured[0]), lut[ids])

    # ~/overlay: the blend everywhere but in one corner box, the legend
    blended = np.where((ids > 0)[:, :, None], 0.5 * rgb + 0.5 * lut[ids], rgb)
    differs = np.abs(over.astype(float) - blended).max(axis=2) > 1
    ys, xs = np.nonzero(differs)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    assert (y0 == 0 or y1 == 120) and (x0 == 0 or x1 == 160), "the legend sits in a corner"
    assert (y1 - y0) * (x1 - x0) < 0.25 * 120 * 160
    # its swatches: the exact class-map colour, for the classes present only
    for cid, c in cmap.items():
        solid = (over[y0:y1, x0:x1] == np.array(c, np.uint8)).all(axis=2).sum()
        assert (solid >= 16) == (cid in (1, 2)), (cid, solid)

    # the legend off: the overlay is the blend everywhere
    assert node.set_parameters([Parameter("overlay_legend", value=False)])[0].successful
    plain = pixels(send(ros, pub, rgb, overlays, (2, 0)))
    assert np.abs(plain.astype(float) - blended).max() <= 1


def test_palette_changes_at_runtime_and_new_classes_take_the_next_colour(ros):
    node, engine = start(ros)
    helper = ros.node("helper")
    maps = collect(helper, "/rns/class_map", ClassMap, LATCHED)
    coloured = collect(helper, "/rns/labels_color")
    pub = helper.create_publisher(Image, "image", qos_profile_sensor_data)
    connected(ros, pub, node, "labels_color")
    golden = parse_palette("golden")
    ros.wait_for(lambda: maps, what="class map")
    assert colours(maps[-1]) == {i: golden.color(i) for i in (1, 2, 3)}

    result = node.set_parameters([Parameter("palette", value="okabe-ito")])[0]
    assert result.successful
    okabe = parse_palette("okabe-ito")
    first = pixels(send(ros, pub, scene(), coloured, (1, 0)))
    ros.wait_for(lambda: colours(maps[-1]) == {i: okabe.color(i) for i in (1, 2, 3)}, what="recoloured class map")
    assert tuple(first[0, 0]) == okabe.color(1)  # the frame after the change has the new colours

    engine.add_classes(["plate"])  # taught at runtime (as ~/add_classes would)
    send(ros, pub, scene(), coloured, (2, 0))
    ros.wait_for(lambda: 4 in colours(maps[-1]), what="class map with the new class")
    assert colours(maps[-1])[4] == okabe.color(4) == hex_color(OKABE_ITO[3])  # the palette's 4th colour
    # the services' class maps carry the same colours
    answer = call(ros, helper.create_client(srv.ListClasses, "/rns/list_classes"), srv.ListClasses.Request())
    assert colours(answer.class_map) == colours(maps[-1])

    bad = node.set_parameters([Parameter("palette", value=["#00ff00", "#0g0000"])])[0]
    assert not bad.successful and "'#0g0000'" in bad.reason and "#RRGGBB" in bad.reason
    assert node.node_config.palette == "okabe-ito"  # refused: nothing changed


def test_labels_color_only_while_someone_subscribes(ros):
    node, engine = start(ros, engine=FakeEngine())
    helper = ros.node("helper")
    labels = collect(helper, "/rns/labels")
    pub = helper.create_publisher(Image, "image", qos_profile_sensor_data)
    connected(ros, pub, node, "labels")
    calls = []
    original = node.outputs.publishers["labels_color"].publish
    node.outputs.publishers["labels_color"].publish = lambda msg: (calls.append(msg), original(msg))
    send(ros, pub, scene(), labels, (1, 0))
    assert calls == []  # nobody listened: not even built
    coloured = collect(helper, "/rns/labels_color")
    connected(ros, pub, node, "labels_color")
    send(ros, pub, scene(), coloured, (2, 0))
    assert len(calls) == 1 and coloured[0].encoding == "rgb8"
