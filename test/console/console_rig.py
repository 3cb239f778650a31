"""A real rns node (tiny random engine, test-tiny SAM 2), a camera publishing distinct frames on a
timer, and the console (its node and web server) in this process; plus a small HTTP client."""
from __future__ import annotations

import functools
import json
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image

import rns_ros.ros.demo
from messages import make_image
from rns_ros.console.node import ConsoleNode
from rns_ros.console.server import ConsoleServer
from rns_ros.ros.inputs.compressed import encode_compressed
from rns_ros.ros.node import RnsNode
from teaching_helpers import tiny_engine


def frame_pixels(index: int, h: int, w: int, photos: bool = False) -> np.ndarray:
    """Frame `index` of the test camera: random pixels, or (photos) one of the package's sample
    photos; either way a corner block whose level says the index, so each frame differs."""
    if photos:
        base = sample_photos(h, w)[index % len(sample_photos(h, w))].copy()
    else:
        base = np.random.default_rng(index).integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    base[:4, :4] = (index * 37) % 256
    return base


@functools.lru_cache(maxsize=2)
def sample_photos(h: int, w: int) -> list[np.ndarray]:
    from PIL import Image as PILImage

    folder = Path(rns_ros.ros.demo.__file__).parent / "sample_images"
    return [np.asarray(PILImage.open(p).convert("RGB").resize((w, h))) for p in sorted(folder.glob("*.jpg"))]


@dataclass
class Camera:
    """Publishes frame 0, 1, 2 ... on `topic` at `rate_hz` (compressed: as a PNG CompressedImage on
    `topic`/compressed), stamped with the frame index as seconds (stamp sec = 1000 + index) and
    `frame_id`; remembers every frame it sent."""

    node: object
    h: int
    w: int
    rate_hz: float
    photos: bool = False
    topic: str = "image"
    frame_id: str = "cam"
    compressed: bool = False
    sent: dict = field(default_factory=dict)  # stamp sec -> pixels

    def __post_init__(self):
        if self.compressed:
            self.pub = self.node.create_publisher(CompressedImage, f"{self.topic}/compressed", qos_profile_sensor_data)
        else:
            self.pub = self.node.create_publisher(Image, self.topic, qos_profile_sensor_data)
        self._index = 0
        self._lock = threading.Lock()
        self.timer = self.node.create_timer(1.0 / self.rate_hz, self.publish)

    def publish(self):
        with self._lock:
            index = self._index
            self._index += 1
        pixels = frame_pixels(index, self.h, self.w, self.photos)
        self.sent[1000 + index] = pixels
        msg = make_image(pixels, "rgb8", stamp=(1000 + index, 0), frame_id=self.frame_id)
        if self.compressed:
            data, fmt = encode_compressed(pixels, "png")
            msg = CompressedImage(header=msg.header, format=fmt, data=data)
        self.pub.publish(msg)

    def stop(self):
        self.timer.cancel()


class Http:
    """Requests to the console: JSON in and out; `token=None` sends none."""

    def __init__(self, base_url: str, token: str | None):
        self.base_url, self.token = base_url, token

    def request(self, method: str, path: str, body=None, *, token: str | None = "default", raw: bytes | None = None,
                headers: dict | None = None, timeout: float = 60.0):
        """(status, headers, parsed JSON or bytes)."""
        token = self.token if token == "default" else token
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        if data is not None:
            req.add_header("content-type", "application/json")
        if token:
            req.add_header("authorization", f"Bearer {token}")
        for key, value in (headers or {}).items():
            req.add_header(key, value)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as response:
                status, got, payload = response.status, response.headers, response.read()
        except urllib.error.HTTPError as exc:
            status, got, payload = exc.code, exc.headers, exc.read()
        if got.get("content-type", "").startswith("application/json"):
            payload = json.loads(payload)
        return status, got, payload

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)


@dataclass
class Rig:
    rns: RnsNode
    engine: object
    camera: Camera
    console: ConsoleNode
    server: ConsoleServer
    http: Http
    cameras: list = field(default_factory=list)  # every camera (the first is `camera`)

    def close(self):
        for camera in self.cameras:
            camera.stop()
        self.server.stop()


def start_rig(ros, tmp_path, *, classes="a", size=(48, 64), rate_hz=10.0, photos=False, node_params=None,
              cameras=({},), **console_params) -> Rig:
    """node_params: more rns node parameters; cameras: Camera keyword arguments, one dict per camera."""
    engine = tiny_engine()
    rns = ros.add(RnsNode(engine_factory=lambda cfg: engine, context=ros.context, parameter_overrides=[
        Parameter("classes", value=classes), Parameter("memory_dir", value=str(tmp_path / "mem")),
        Parameter("regions.model", value="test-tiny"), Parameter("device", value="cpu"),
        *(Parameter(k, value=v) for k, v in (node_params or {}).items())]))
    assert rns.autostart_error is None
    helper = ros.node("camera")
    all_cameras = [Camera(helper, *size, rate_hz, photos, **kw) for kw in cameras]
    camera = all_cameras[0]
    # A first teach on a cold machine (a fresh clone: SAM 2 and its config system imported and
    # compiled for the first time, on 2 shared cores) has taken over the 60 s default; what these
    # tests check is the answer, not the timeout (test_console_api checks that with 2 s of its own).
    params = {"port": 0, "snapshot_dir": str(tmp_path / "snapshots"), "service_timeout_s": 300.0, **console_params}
    console = ros.add(ConsoleNode(context=ros.context, parameter_overrides=[
        Parameter(k, value=v) for k, v in params.items()]))
    server = ConsoleServer(console)
    server.start_in_thread()
    return Rig(rns, engine, camera, console, server, Http(server.base_url, server.token), all_cameras)
