"""The out-of-the-box job: image-folder camera, rns-demo (tiny model) and its fail-fast path."""
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image

from rns_ros.cli import demo
from rns_ros.ros.demo.image_folder_camera import SAMPLE_IMAGES, ImageFolderCamera, load_images
from rns_ros.visual import parse_palette


def test_sample_images_are_small_rgb():
    images = load_images()
    assert [name for name, _ in images] == ["astronaut.jpg", "chelsea_cat.jpg", "coffee.jpg"]
    for _, rgb in images:
        assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3 and max(rgb.shape[:2]) <= 320
    assert sum(p.stat().st_size for p in SAMPLE_IMAGES.glob("*.jpg")) < 100_000


def test_camera_help_prints_the_parameters_and_publishes_nothing():
    run = [sys.executable, "-m", "rns_ros.cli.image_folder_camera"]
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(run + ["--help"], cwd=root, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "usage: rns_image_folder_camera" in proc.stdout and "image(s) from" not in proc.stdout + proc.stderr  # the start log line
    for name in ("folder", "rate_hz", "loop", "frame_id", "max_long_side", "qos"):
        assert f"  {name} " in proc.stdout
    proc = subprocess.run(run + ["--no-such-flag"], cwd=root, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--no-such-flag" in proc.stderr


def test_documented_prompts_fall_inside_every_sample_frame():
    """The docs' click, point and box examples must work on the demo's own camera frames."""
    import re

    root = Path(__file__).resolve().parents[2]
    height, width = min(rgb.shape[:2] for _, rgb in load_images())  # 213 x 320
    points, boxes = [], []
    for path in [root / "README.md", *sorted((root / "docs").glob("*.md")), *sorted((root / "rns_ros").rglob("*.py"))]:
        text = path.read_text()
        points += [(path.name, float(x), float(y)) for x, y in re.findall(r"\{x: ([\d.]+), y: ([\d.]+)\}", text)]
        boxes += [(path.name, *map(float, b)) for b in re.findall(r"box: \[(\d+), (\d+), (\d+), (\d+)\]", text)]
    assert len(points) >= 4 and boxes
    assert [p for p in points if not (p[1] < width and p[2] < height)] == []
    assert [b for b in boxes if not (b[1] < b[3] <= width and b[2] < b[4] <= height)] == []


def test_load_images_sorts_converts_and_downscales(tmp_path):
    PILImage.fromarray(np.full((10, 40), 7, np.uint8)).save(tmp_path / "b.png")  # grayscale
    PILImage.fromarray(np.zeros((30, 20, 3), np.uint8)).save(tmp_path / "a.bmp")
    (tmp_path / "notes.txt").write_text("not an image")
    images = load_images(tmp_path, max_long_side=20)
    assert [n for n, _ in images] == ["a.bmp", "b.png"]
    assert images[0][1].shape == (20, 13, 3) or images[0][1].shape == (20, 14, 3)
    assert images[1][1].shape == (5, 20, 3) and (images[1][1] == 7).all()
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        load_images(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_images(tmp_path / "missing")


def test_camera_publishes_each_image_once_without_loop(ros, tmp_path):
    for i in range(3):
        PILImage.fromarray(np.full((6, 8, 3), 40 * i, np.uint8)).save(tmp_path / f"{i}.png")
    helper = ros.node("helper")
    got = []
    helper.create_subscription(Image, "/camera/image_raw", got.append, 10)
    camera = ros.add(ImageFolderCamera(context=ros.context, cli_args=["--ros-args", "-r", "image:=/camera/image_raw"],
                                       parameter_overrides=[Parameter("folder", value=str(tmp_path)),
                                                            Parameter("rate_hz", value=50.0),
                                                            Parameter("loop", value=False),
                                                            Parameter("qos", value="reliable")]))
    ros.wait_for(camera.finished.is_set, what="camera finished")
    ros.wait_for(lambda: len(got) == camera.published, what="all frames delivered")
    # frames before the subscription matched may be lost; those that arrived are in order, rgb8
    values = [np.frombuffer(bytes(m.data), np.uint8)[0] for m in got]
    assert camera.published == 3 and values == sorted(values)
    assert all((m.encoding, m.width, m.height, m.header.frame_id) == ("rgb8", 8, 6, "camera") for m in got)


def test_demo_records_labels_overlays_and_a_summary(tmp_path, capsys):
    out = tmp_path / "demo"
    code = demo.main(["--backbone", "test-tiny", "--device", "cpu", "--steps", "3", "--frames", "3",
                      "--rate", "10", "--output", str(out), "--timeout", "120", "--palette", "okabe-ito"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] >= 3 and summary["latency_ms_median"] > 0
    assert [c["name"] for c in summary["classes"]] == [n.strip() for n in demo.parse_args([]).classes.split(",")]
    labels = sorted((out / "labels").glob("*.png"))
    assert len(labels) >= 3
    sizes = {PILImage.open(p).size for p in labels}
    assert sizes <= {(320, 320), (320, 213)}  # the sample images' sizes: labels at input resolution
    ids = {c["id"] for c in summary["classes"]}
    assert set(np.unique(np.asarray(PILImage.open(labels[0])))) <= ids | {0}
    overlays = sorted((out / "overlay").glob("*.png"))
    assert overlays
    # the overlays carry the legend: a solid swatch block in the exact colour of a class of the summary
    over = np.asarray(PILImage.open(overlays[-1]).convert("RGB"))
    swatch_colours = [c["color"] for c in summary["classes"] if solid_block(over, c["color"], 5)]
    okabe = parse_palette("okabe-ito")
    assert all(tuple(c["color"]) == okabe.color(c["id"]) for c in summary["classes"])  # --palette reached the node
    assert swatch_colours and all(c["hex"] == "#{:02x}{:02x}{:02x}".format(*c["color"]) for c in summary["classes"])
    assert (out / "memory").is_dir()  # the demo's support memory stays in its output folder
    printed = capsys.readouterr().out
    assert "throughput" in printed and "latency" in printed and "meaningless" in printed
    for c in summary["classes"]:  # the summary lists every class with its colour
        assert f"{c['hex']}  {c['id']:>3}  {c['name']}" in printed


def solid_block(image, rgb, size) -> bool:
    """True when `image` holds a size x size block of exactly `rgb`."""
    exact = (image == np.array(rgb, np.uint8)).all(axis=2).astype(np.int32)
    ii = np.pad(exact.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = ii[size:, size:] - ii[:-size, size:] - ii[size:, :-size] + ii[:-size, :-size]
    return bool((sums == size * size).any())


def test_node_arguments_survive_the_command_line():
    # a bare '#...' or 'a,b' would be a YAML comment or a list on `rns_node --ros-args -p`
    assert demo._ros_arg("#ff0000") == '"#ff0000"' and demo._ros_arg("#ff0000,#00ff00") == '"#ff0000,#00ff00"'
    assert demo._ros_arg("okabe-ito") == "okabe-ito" and demo._ros_arg(True) == "true" and demo._ros_arg(3) == "3"


def test_demo_without_weights_fails_fast_and_says_how_to_get_them(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code = demo.main(["--device", "cpu", "--frames", "1", "--output", str(tmp_path / "x")])
    assert code == 2
    err = capsys.readouterr().err
    assert "--checkpoint" in err and "test-tiny" in err and "checkpoint:=" in err
    assert not (tmp_path / "x" / "summary.json").exists()


def test_demo_replays_a_recorded_image_topic_instead_of_the_folder(tmp_path, capsys):
    from bags import camera_frames, write_bag

    frames = camera_frames(2, h=40, w=56)
    write_bag(tmp_path / "bag", frames + [("/other", "sensor_msgs/msg/CameraInfo", 0, CameraInfo())])
    out = tmp_path / "demo"
    code = demo.main(["--bag", str(tmp_path / "bag"), "--backbone", "test-tiny", "--device", "cpu", "--steps", "3",
                      "--frames", "3", "--rate", "10", "--output", str(out), "--timeout", "120"])
    assert code == 0
    assert json.loads((out / "summary.json").read_text())["frames"] >= 3  # 2 recorded frames, looped
    assert {PILImage.open(p).size for p in (out / "labels").glob("*.png")} == {(56, 40)}
    assert "/camera/image_raw of" in capsys.readouterr().out
    assert demo.main(["--bag", str(tmp_path / "bag"), "--image-topic", "/other", "--backbone", "test-tiny",
                      "--device", "cpu", "--output", str(tmp_path / "x")]) == 2
    assert "--image-topic /other is not an image topic" in capsys.readouterr().err


def test_ctrl_c_says_interrupted(tmp_path, capsys, monkeypatch):
    """KeyboardInterrupt's text is empty: the message must not be a bare 'rns-demo: '."""
    import rns_ros.ros.bags.camera as bag_camera

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(bag_camera, "make_camera", interrupted)
    demo.main(["--backbone", "test-tiny", "--device", "cpu", "--steps", "3", "--frames", "1",
               "--output", str(tmp_path / "x")])
    assert "rns-demo: interrupted" in capsys.readouterr().err


def test_demo_serves_the_teaching_console_and_prints_its_url(tmp_path, capsys, monkeypatch):
    """While the demo runs, its console shows the node's overlay; --no-console leaves it out."""
    import threading
    import urllib.request

    started = []
    original = demo._start_console
    monkeypatch.setattr(demo, "_start_console", lambda *a: started.append(original(*a)) or started[-1])
    seen = {}

    def use_the_console():
        deadline = time.monotonic() + 300  # a fresh clone's first run on 2 shared cores took over 120 s
        while time.monotonic() < deadline and "picture" not in seen:
            if started and started[-1][1] is not None:
                server = started[-1][1]
                request = urllib.request.Request(f"{server.base_url}/api/cameras/default/picture?wait=5",
                                                 headers={"authorization": f"Bearer {server.token}"})
                try:
                    with urllib.request.urlopen(request, timeout=10) as response:
                        if response.status == 200:
                            seen["picture"] = response.headers["content-type"]
                except OSError:
                    pass
            time.sleep(0.05)  # polling another thread's progress, not synchronising a test step

    user = threading.Thread(target=use_the_console, daemon=True)
    user.start()
    code = demo.main(["--backbone", "test-tiny", "--device", "cpu", "--steps", "3", "--frames", "60",
                      "--rate", "10", "--output", str(tmp_path / "demo"), "--timeout", "300", "--console-port", "0"])
    user.join(5)
    assert code == 0 and seen.get("picture") == "image/jpeg"
    printed = capsys.readouterr().out
    assert re.search(r"teach it from a browser, open http://127\.0\.0\.1:\d+/\?token=[\w-]{40,}", printed)
    code = demo.main(["--backbone", "test-tiny", "--device", "cpu", "--steps", "3", "--frames", "2", "--rate", "10",
                      "--output", str(tmp_path / "demo2"), "--timeout", "120", "--no-console"])
    assert code == 0 and "teach it from a browser" not in capsys.readouterr().out
