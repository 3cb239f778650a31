"""`rns-bag` end to end on small recordings written in the test (both storages), with the
TEST-ONLY random-weight model: every frame, stamps, determinism, the node's labels, depth points,
compressed input, bad input, and Ctrl-C."""
import io
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image as PILImage
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from vision_msgs.msg import LabelInfo

from bags import camera_frames, depth_frame, read_bag, write_bag
from compressed_depth_encoder import encode_compressed_depth
from rns_ros.msg import ClassMap
from rns_ros.cli import bag
from rns_ros.ros.bags import io as bag_io
from rns_ros.ros.conversions import image_to_rgb, labels_from_image
from rns_ros.ros.depth.pointcloud import cloud_to_array
from rns_ros.ros.node import RnsNode

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--backbone", "test-tiny", "--device", "cpu", "-p", "adapter.steps:=5", "--no-progress"]
CLASSES = "road, sky, tree"
IMAGE = "/camera/image_raw"


def rns_bag(in_bag, out, *extra, classes=CLASSES):
    return bag.main([str(in_bag), "--image-topic", IMAGE, "--out", str(out), "--classes", classes, *TINY, *extra])


def outputs(path, topic):
    return [(t, m) for top, t, m in read_bag(path, classes={"rns_ros/msg/ClassMap": ClassMap}) if top == topic]


def custom_data(path):
    meta = yaml.safe_load((Path(path) / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    return meta["custom_data"] or {}


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_every_frame_gets_labels_with_its_stamp_and_the_input_is_kept(tmp_path, storage):
    info = CameraInfo(width=32, height=24)
    info.header.frame_id = "camera"
    frames = camera_frames(6)
    write_bag(tmp_path / "in", frames + [("/camera/camera_info", "sensor_msgs/msg/CameraInfo", 1_000_000_000, info)],
              storage)
    assert rns_bag(tmp_path / "in", tmp_path / "out") == 0
    assert any((tmp_path / "out").glob("*.mcap" if storage == "mcap" else "*.db3"))  # the input's storage
    labels = outputs(tmp_path / "out", "/rns/labels")
    assert [t for t, _ in labels] == [t for _, _, t, _ in frames]  # one per frame, recorded at its time
    assert [(m.header.stamp.sec, m.header.stamp.nanosec, m.header.frame_id) for _, m in labels] == \
        [(f.header.stamp.sec, f.header.stamp.nanosec, "camera") for _, _, _, f in frames]
    assert all((m.height, m.width, m.encoding) == (24, 32, "mono8") for _, m in labels)
    (_, cmap), = outputs(tmp_path / "out", "/rns/class_map")
    assert [c.name for c in cmap.classes] == ["road", "sky", "tree"] and "test-tiny" in cmap.backbone
    (_, info), = [(t, m) for top, t, m in read_bag(tmp_path / "out", classes={"vision_msgs/msg/LabelInfo": LabelInfo})
                  if top == "/rns/label_info"]  # issue 25, item 9: a replay feeds vision_msgs consumers too
    assert [(c.class_id, c.class_name) for c in info.class_map] == \
        [(0, "unlabeled")] + [(c.id, c.name) for c in cmap.classes]
    assert info.header.stamp == labels[0][1].header.stamp
    ids = {c.id for c in cmap.classes}
    assert all(set(np.unique(labels_from_image(m))) <= ids for _, m in labels)
    assert len(outputs(tmp_path / "out", "/rns/confidence")) == 6
    copied = outputs(tmp_path / "out", IMAGE)
    assert [bytes(m.data) for _, m in copied] == [bytes(f.data) for _, _, _, f in frames]
    assert len(outputs(tmp_path / "out", "/camera/camera_info")) == 1
    meta = custom_data(tmp_path / "out")
    assert meta["rns_bag.status"] == "complete" and meta["rns_bag.frames_segmented"] == "6"
    assert not list(tmp_path.glob(".out.rns-bag-*"))  # no temporary left


def test_same_input_memory_and_seed_give_identical_labels(tmp_path):
    write_bag(tmp_path / "in", camera_frames(4, seed=5))
    assert rns_bag(tmp_path / "in", tmp_path / "a") == 0
    assert rns_bag(tmp_path / "in", tmp_path / "b") == 0
    a = [bytes(m.data) for _, m in outputs(tmp_path / "a", "/rns/labels")]
    b = [bytes(m.data) for _, m in outputs(tmp_path / "b", "/rns/labels")]
    assert len(a) == 4 and a == b
    assert len({x for x in a}) > 1  # different frames, different label images: the comparison has teeth


def test_labels_equal_the_nodes_for_the_same_frames(ros, tmp_path):
    frames = camera_frames(3, seed=11)
    node = ros.add(RnsNode(context=ros.context, parameter_overrides=[
        Parameter("backbone", value="test-tiny"), Parameter("device", value="cpu"),
        Parameter("classes", value=CLASSES), Parameter("adapter.steps", value=5),
        Parameter("memory_dir", value=str(tmp_path / "node_memory"))]))
    assert node.autostart_error is None
    helper = ros.node("helper")
    got = []
    helper.create_subscription(Image, "/rns/labels", got.append, 10)
    pub = helper.create_publisher(Image, "image", QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    ros.wait_for(lambda: pub.get_subscription_count() and node.outputs.publishers["labels"].get_subscription_count())
    for i, (_, _, _, msg) in enumerate(frames):  # one at a time: the node drops none
        pub.publish(msg)
        ros.wait_for(lambda: len(got) > i, timeout=60, what=f"node labels {i}")
    write_bag(tmp_path / "in", frames)
    assert rns_bag(tmp_path / "in", tmp_path / "out") == 0
    from_bag = outputs(tmp_path / "out", "/rns/labels")
    assert [bytes(m.data) for _, m in from_bag] == [bytes(m.data) for m in got]
    assert [m.header.stamp.sec for _, m in from_bag] == [m.header.stamp.sec for m in got]


def test_a_taught_memory_is_used_read_only_and_gives_the_engines_labels(tmp_path):
    from rns_ros.core.adapter.config import AdapterConfig
    from rns_ros.core.memory.persistence import save_memory
    from rns_ros.ros.engine import EngineConfig, build_engine

    engine = build_engine(EngineConfig(backbone="test-tiny", device="cpu", adapter=AdapterConfig(steps=5)))
    cat, _ = engine.add_classes(["cat", "dog"])
    mask = np.zeros((24, 32), bool)
    mask[5:15, 8:20] = True
    engine.segmenter.add_exemplar(image_to_rgb(camera_frames(1, seed=40)[0][3]), mask, class_id=cat)
    save_memory(engine.segmenter.memory, tmp_path / "memory")
    before = {p: p.read_bytes() for p in sorted((tmp_path / "memory").rglob("*")) if p.is_file()}
    frames = camera_frames(2, seed=41)
    expected = [engine.segment(image_to_rgb(m)).labels for _, _, _, m in frames]
    write_bag(tmp_path / "in", frames)
    assert bag.main([str(tmp_path / "in"), "--image-topic", IMAGE, "--out", str(tmp_path / "out"),
                     "--memory", str(tmp_path / "memory"), *TINY]) == 0
    (_, cmap), = outputs(tmp_path / "out", "/rns/class_map")
    assert [(c.name, c.exemplar_count) for c in cmap.classes] == [("cat", 1), ("dog", 0)]
    got = [labels_from_image(m) for _, m in outputs(tmp_path / "out", "/rns/labels")]
    assert len(got) == 2 and all((g == e).all() for g, e in zip(got, expected))
    after = {p: p.read_bytes() for p in sorted((tmp_path / "memory").rglob("*")) if p.is_file()}
    assert after == before  # nothing written to the memory folder


def _png(msg) -> CompressedImage:
    buffer = io.BytesIO()
    PILImage.fromarray(image_to_rgb(msg)).save(buffer, format="PNG")
    out = CompressedImage(header=msg.header, format="rgb8; png compressed rgb8")
    out.data = buffer.getvalue()
    return out


def test_compressed_images_give_the_labels_of_the_same_raw_images(tmp_path):
    frames = camera_frames(3, seed=21)
    write_bag(tmp_path / "raw", frames)
    write_bag(tmp_path / "png", [(IMAGE + "/compressed", "sensor_msgs/msg/CompressedImage", t, _png(m))
                                 for _, _, t, m in frames], "sqlite3")
    assert rns_bag(tmp_path / "raw", tmp_path / "out_raw") == 0
    assert bag.main([str(tmp_path / "png"), "--image-topic", IMAGE + "/compressed", "--out", str(tmp_path / "out_png"),
                     "--classes", CLASSES, *TINY]) == 0
    raw = [bytes(m.data) for _, m in outputs(tmp_path / "out_raw", "/rns/labels")]
    png = [bytes(m.data) for _, m in outputs(tmp_path / "out_png", "/rns/labels")]
    assert len(raw) == 3 and raw == png  # PNG is lossless: same pixels, same labels


@pytest.mark.parametrize("transport", ["raw", "compressedDepth"])
def test_depth_gives_one_labelled_cloud_per_paired_frame(tmp_path, transport):
    h, w = 24, 32
    frames = camera_frames(4, h=h, w=w)
    info = CameraInfo(width=w, height=h)
    info.k = [40.0, 0.0, 15.5, 0.0, 40.0, 11.5, 0.0, 0.0, 1.0]
    info.header.frame_id = "depth_optical"
    messages = [("/depth/camera_info", "sensor_msgs/msg/CameraInfo", 900_000_000, info)] + frames
    mm = np.full((h, w), 1500, np.uint16)
    mm[:, :4] = 0  # holes
    depth_topic = "/depth/image" if transport == "raw" else "/depth/image/compressedDepth"
    for i, (_, _, t, _) in enumerate(frames[:3]):  # the last frame has no depth partner
        stamp = t + 2_000_000
        if transport == "raw":
            msg, msgtype = depth_frame(stamp, mm), "sensor_msgs/msg/Image"
        else:
            msg = encode_compressed_depth(mm, "16UC1", stamp=(stamp // 10**9, stamp % 10**9))
            msgtype = "sensor_msgs/msg/CompressedImage"
        messages.append((depth_topic, msgtype, t + 5_000_000, msg))
    write_bag(tmp_path / "in", messages)
    assert rns_bag(tmp_path / "in", tmp_path / "out", "--depth-topic", depth_topic,
                   "--camera-info-topic", "/depth/camera_info", "-p", "depth.stride:=1") == 0
    clouds = outputs(tmp_path / "out", "/rns/points")
    labels = {m.header.stamp.nanosec: labels_from_image(m) for _, m in outputs(tmp_path / "out", "/rns/labels")}
    assert len(labels) == 4 and len(clouds) == 3
    for (t, cloud), (_, _, frame_t, frame) in zip(clouds, frames):
        assert t == frame_t and cloud.header.frame_id == "depth_optical"
        assert cloud.header.stamp == frame.header.stamp
        points = cloud_to_array(cloud)
        assert len(points) == h * (w - 4) and np.allclose(points["z"], 1.5)
        u = np.rint(40.0 * points["x"] / points["z"] + 15.5).astype(int)
        v = np.rint(40.0 * points["y"] / points["z"] + 11.5).astype(int)
        np.testing.assert_array_equal(points["label"], labels[frame.header.stamp.nanosec][v, u])
    meta = custom_data(tmp_path / "out")
    assert meta["rns_bag.clouds"] == "3" and meta["rns_bag.depth_unpaired"] == "1"


def write_colour_and_depth_bag(path, h: int, w: int, frames: int = 3) -> None:
    """Colour frames, each followed 5 ms later by its 1.5 m depth frame (fx = fy = 40), and the
    depth CameraInfo first."""
    colour = camera_frames(frames, h=h, w=w)
    info = CameraInfo(width=w, height=h)
    info.k = [40.0, 0.0, 15.5, 0.0, 40.0, 11.5, 0.0, 0.0, 1.0]
    messages = [("/depth/camera_info", "sensor_msgs/msg/CameraInfo", 900_000_000, info)] + colour
    for _, _, t, _ in colour:
        messages.append(("/depth/image", "sensor_msgs/msg/Image", t + 5_000_000,
                         depth_frame(t, np.full((h, w), 1500, np.uint16))))
    write_bag(path, messages)


def test_min_confidence_and_confidence_encoding_apply_as_in_the_node(tmp_path):
    """The node's min_confidence (ids below it -> 0) and confidence_encoding (mono8 = x 255,
    rounded) hold for the recorded outputs too, the cloud's labels included."""
    h, w = 24, 32
    write_colour_and_depth_bag(tmp_path / "in", h, w)
    depth = ["--depth-topic", "/depth/image", "--camera-info-topic", "/depth/camera_info", "-p", "depth.stride:=1"]
    assert rns_bag(tmp_path / "in", tmp_path / "plain", *depth) == 0
    conf = [np.frombuffer(bytes(m.data), np.float32).reshape(h, w) for _, m in outputs(tmp_path / "plain", "/rns/confidence")]
    threshold = float(np.median(np.concatenate([c.ravel() for c in conf])))  # about half the pixels fall below it
    assert rns_bag(tmp_path / "in", tmp_path / "cut", *depth, "-p", f"min_confidence:={threshold}",
                   "-p", "confidence_encoding:=mono8") == 0
    plain = [labels_from_image(m) for _, m in outputs(tmp_path / "plain", "/rns/labels")]
    cut = [labels_from_image(m) for _, m in outputs(tmp_path / "cut", "/rns/labels")]
    mono8 = [m for _, m in outputs(tmp_path / "cut", "/rns/confidence")]
    clouds = [cloud_to_array(m) for _, m in outputs(tmp_path / "cut", "/rns/points")]
    assert len(cut) == len(mono8) == len(clouds) == 3
    for p, c, q, m, cloud in zip(plain, cut, conf, mono8, clouds):
        np.testing.assert_array_equal(c, np.where(q < threshold, 0, p))
        assert (c == 0).any() and (c != 0).any()
        assert m.encoding == "mono8"
        np.testing.assert_array_equal(np.frombuffer(bytes(m.data), np.uint8).reshape(h, w),
                                      np.round(q * 255).astype(np.uint8))
        u = np.rint(40.0 * cloud["x"] / cloud["z"] + 15.5).astype(int)
        v = np.rint(40.0 * cloud["y"] / cloud["z"] + 11.5).astype(int)
        np.testing.assert_array_equal(cloud["label"], c[v, u])


def test_frames_waiting_for_depth_are_kept_when_the_input_breaks_off(tmp_path, monkeypatch):
    """A read error stops the run; the colour frames already read (waiting for their depth partner)
    are still segmented, as at the end of a recording."""
    h, w = 24, 32
    write_colour_and_depth_bag(tmp_path / "in", h, w)
    original = bag_io.Reader.messages

    def breaks_after_the_third_colour_frame(self, *args, **kwargs):
        for i, item in enumerate(original(self, *args, **kwargs)):
            if i == 6:  # info, c0, d0, c1, d1, c2 read; c2 waits for its depth
                raise bag_io.ReaderError("simulated damage")
            yield item

    monkeypatch.setattr(bag_io.Reader, "messages", breaks_after_the_third_colour_frame)
    assert rns_bag(tmp_path / "in", tmp_path / "out", "--depth-topic", "/depth/image",
                   "--camera-info-topic", "/depth/camera_info") == 1
    monkeypatch.undo()  # the output is read back intact
    meta = custom_data(tmp_path / "out")
    assert meta["rns_bag.status"].startswith("stopped: input unreadable")
    assert meta["rns_bag.frames_in"] == "3" and meta["rns_bag.frames_segmented"] == "3"
    assert len(outputs(tmp_path / "out", "/rns/labels")) == 3


def test_bad_frames_are_skipped_and_counted(tmp_path, capsys):
    frames = camera_frames(4)
    frames[1][3].encoding = "yuv422"
    frames[2][3].data = bytes(frames[2][3].data)[:100]  # truncated pixels
    write_bag(tmp_path / "in", frames)
    assert rns_bag(tmp_path / "in", tmp_path / "out") == 0
    assert len(outputs(tmp_path / "out", "/rns/labels")) == 2
    meta = custom_data(tmp_path / "out")
    assert meta["rns_bag.skipped"] == "2" and meta["rns_bag.frames_in"] == "4"
    err = capsys.readouterr().err
    assert "unsupported encoding 'yuv422'" in err and "truncated data" in err


def test_a_runtimes_one_time_export_is_said_on_stderr(tmp_path, monkeypatch, capsys):
    """rns-bag builds its engine without ROS: the core's log line about exporting the encoder (a
    minute for ViT-B/16) must reach the terminal, as it does for rns-segment and rns-bench."""
    import logging

    monkeypatch.setenv("RNS_ROS_CACHE_DIR", str(tmp_path / "cache"))  # nothing exported yet
    write_bag(tmp_path / "in", camera_frames(2))
    core_logger = logging.getLogger("rns_ros")
    before = (list(core_logger.handlers), core_logger.level, core_logger.propagate)
    assert rns_bag(tmp_path / "in", tmp_path / "out", "--runtime", "onnxruntime") == 0
    # left as it was: whatever runs next in this process (a node, another main) prints its own lines
    assert (list(core_logger.handlers), core_logger.level, core_logger.propagate) == before
    err = capsys.readouterr().err
    assert "rns-bag: no cached ONNX export of test-tiny" in err and "rns-bag: exported in" in err
    assert len(outputs(tmp_path / "out", "/rns/labels")) == 2
    assert rns_bag(tmp_path / "in", tmp_path / "out2", "--runtime", "onnxruntime") == 0
    err = capsys.readouterr().err
    assert "dense encoder on onnxruntime" in err and "no cached ONNX export" not in err


def test_missing_topics_unknown_parameters_and_existing_outputs_are_refused(tmp_path, capsys):
    write_bag(tmp_path / "in", camera_frames(2))
    assert bag.main([str(tmp_path / "in"), "--image-topic", "/nope", "--out", str(tmp_path / "out"), *TINY]) == 2
    assert "--image-topic /nope is not in the bag; its topics: /camera/image_raw (sensor_msgs/msg/Image)" \
        in capsys.readouterr().err
    assert rns_bag(tmp_path / "in", tmp_path / "out", "-p", "adapter.stepz:=3") == 2
    assert "unknown parameter(s) ['adapter.stepz']" in capsys.readouterr().err
    assert rns_bag(tmp_path / "in", tmp_path / "out", "-p", "adapter.steps:=0") == 2
    assert "adapter.steps" in capsys.readouterr().err
    assert rns_bag(tmp_path / "in", tmp_path / "out", "--depth-topic", "/camera/image_raw") == 2
    assert "go together" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    (tmp_path / "out").mkdir()
    assert rns_bag(tmp_path / "in", tmp_path / "out") == 2
    assert "exists already" in capsys.readouterr().err
    assert rns_bag(tmp_path / "missing", tmp_path / "out2") == 2
    assert "does not exist" in capsys.readouterr().err


def test_params_file_is_read_like_the_node_reads_it(tmp_path):
    write_bag(tmp_path / "in", camera_frames(2))
    (tmp_path / "rns.yaml").write_text(
        "/**:\n  ros__parameters:\n    classes: [wall, floor]\n    backbone: test-tiny\n    device: cuda\n"
        "    palette: '#ff0000,#00ff00'\n"
        "rns:\n  ros__parameters:\n    device: cpu\n    publish_confidence: false\n    adapter:\n      steps: 4\n")
    assert bag.main([str(tmp_path / "in"), "--image-topic", IMAGE, "--out", str(tmp_path / "out"),
                     "--params-file", str(tmp_path / "rns.yaml"), "--no-progress"]) == 0
    (_, cmap), = outputs(tmp_path / "out", "/rns/class_map")
    assert [c.name for c in cmap.classes] == ["wall", "floor"]
    assert [(c.color.r, c.color.g, c.color.b) for c in cmap.classes] == [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0)]
    assert outputs(tmp_path / "out", "/rns/confidence") == []  # publish_confidence: false, as for the node
    assert '"adapter.steps": 4' in custom_data(tmp_path / "out")["rns_bag.parameters"]


def test_a_recording_that_was_not_closed_or_is_damaged_gives_a_clear_error_or_a_valid_bag(tmp_path, capsys):
    write_bag(tmp_path / "in", camera_frames(30, h=48, w=64), "mcap")
    (tmp_path / "in" / "metadata.yaml").unlink()
    assert rns_bag(tmp_path / "in", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "no metadata.yaml" in err and "ros2 bag reindex" in err and "in.mcap" in err
    write_bag(tmp_path / "long", camera_frames(60, h=128, w=128), "mcap")  # 3 MB: chunks of 1 MiB
    mcap = tmp_path / "long" / "long.mcap"
    whole = mcap.read_bytes()
    mcap.write_bytes(whole[: len(whole) // 2])  # a recorder that crashed: no summary, no footer, no end magic
    assert rns_bag(mcap, tmp_path / "cut") == 0  # issue 25, item 9: what can be read is segmented
    err = capsys.readouterr().err
    read = int(re.search(r"read (\d+) messages", err).group(1))
    assert "has no summary or end" in err and f"of {len(whole) // 2} bytes" in err and 0 < read < 60, err
    labels = outputs(tmp_path / "cut", "/rns/labels")
    assert len(labels) == read  # every intact frame, in order, with its stamp
    assert [stamp for stamp, _ in labels] == sorted(stamp for stamp, _ in labels)
    mcap.write_bytes(whole[:40])  # nothing readable at all: refused, nothing written
    assert rns_bag(mcap, tmp_path / "out2") == 2
    assert "cannot read input bag" in capsys.readouterr().err and not (tmp_path / "out2").exists()
    # damaged pages in the middle of a sqlite3 recording: found only while reading it
    write_bag(tmp_path / "db", camera_frames(30, h=48, w=64), "sqlite3")
    db3 = tmp_path / "db" / "db.db3"
    data = bytearray(db3.read_bytes())
    data[len(data) // 2: len(data) // 2 + 8192] = b"\xee" * 8192
    db3.write_bytes(bytes(data))
    assert rns_bag(tmp_path / "db", tmp_path / "out") == 1
    assert "stopped: input unreadable" in capsys.readouterr().err
    labels = outputs(tmp_path / "out", "/rns/labels")  # what was readable, as a complete bag
    assert 0 < len(labels) < 30
    assert custom_data(tmp_path / "out")["rns_bag.status"].startswith("stopped")


def test_ctrl_c_leaves_a_valid_bag_of_the_frames_done(tmp_path):
    write_bag(tmp_path / "in", camera_frames(400, h=128, w=128), "sqlite3")
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    proc = subprocess.Popen([sys.executable, "-m", "rns_ros.cli.bag", str(tmp_path / "in"), "--image-topic", IMAGE,
                             "--out", str(tmp_path / "out"), "--classes", CLASSES, "--backbone", "test-tiny",
                             "--device", "cpu"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # Ctrl-C once the progress bar shows frames done and before it shows all: a signal sent after
        # a fixed sleep raced the run on a fast machine (all 400 frames done before it arrived)
        seen = b""
        while proc.poll() is None:
            seen += os.read(proc.stderr.fileno(), 4096)
            done = [int(n) for n in re.findall(rb"\b(\d+)/400\b", seen)]
            if done and 0 < max(done) < 300:
                break
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=120)
        err = (seen + rest).decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err
    labels = outputs(tmp_path / "out", "/rns/labels")
    meta = custom_data(tmp_path / "out")
    assert meta["rns_bag.status"] == "interrupted"
    assert 0 < len(labels) < 400 and meta["rns_bag.frames_segmented"] == str(len(labels))
    starts = {t for t, _ in outputs(tmp_path / "out", IMAGE)}
    assert {t for t, _ in labels} <= starts  # every label image belongs to a copied input frame
    assert not list(tmp_path.glob(".out.rns-bag-*"))
