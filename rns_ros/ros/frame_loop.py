"""The frame path of the node: camera message -> mailbox -> worker -> engine -> outputs.

    loop = FrameLoop(cameras, engine, class_map_output, settings=lambda: node_config, warn=log)
    camera.subscribe(node, transport, qos, loop.on_image)   # for each camera
    loop.start()   ...   loop.stop()

Contract:
- `on_image` (the subscription callback) never blocks and never decodes: it keeps the message as
  the camera's latest frame (for teaching from "now") and drops it into the camera's one-slot
  mailbox (newest wins: an untaken frame is replaced and counted as stale). The worker keeps the
  newest frame it decoded as `latest_valid_image`: teaching's "latest frame" when the newest one
  is malformed.
- One worker thread takes the waiting frames (the least recently served camera first; several
  cameras' at once with camera_batching), decodes them, runs the engine (under its lock, so a class
  change lands between two frames) and publishes each camera's outputs with its own frame's
  header and with the class map the frame was segmented with (outputs/class_map.py's contract: a
  class removed meanwhile is still in the class map published before that frame, and its newer
  class map follows the frame); the depth outputs follow the labels and never hold them back.
- A bad frame is dropped and counted under its reason, an engine error costs that frame, an
  internal error is counted and logged: the worker never dies. Warnings are logged at most once
  per second (a broken camera must not flood the log).
- `stop()` returns once the worker has finished its current frame; no frame is published after it.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Sequence

from rns_ros.ros.conversions import FrameError
from rns_ros.ros.engine import class_snapshot
from rns_ros.ros.inputs.batching import batch_size, segment_frames
from rns_ros.ros.inputs.cameras import Camera, decode_frame
from rns_ros.ros.inputs.mailboxes import CameraMailboxes


class FrameLoop:
    """The worker and the callback that feeds it. settings: () -> the node's current NodeConfig
    (read per frame: runtime parameters apply from the next frame); paused: () -> True while
    ~/enable has switched processing off (frames are kept for teaching, none segmented)."""

    def __init__(self, cameras: Sequence[Camera], engine, class_map_output, *, settings: Callable,
                 paused: Callable[[], bool] = lambda: False, warn: Callable[[str], None] = print):
        self.cameras = list(cameras)
        self.engine = engine
        self.class_map_output = class_map_output
        self._settings = settings
        self._paused = paused
        self._log_warning = warn
        self._last_warning = 0.0
        self._mailboxes = CameraMailboxes(range(len(self.cameras)))
        self._index = {id(camera): i for i, camera in enumerate(self.cameras)}
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
        self.latest_image = None  # newest frame of any camera, for teaching from "now"
        self.latest_valid_image = None  # newest frame the worker decoded (teaching's fallback)

    # ------------------------------------------------------------------ callback side
    def on_image(self, camera: Camera, msg) -> None:
        """The subscription callback of every camera (microseconds: no decoding here)."""
        start = time.monotonic()
        camera.latest = self.latest_image = msg
        if self._paused():
            return  # paused by ~/enable: keep the frame for teaching, segment nothing
        replaced = self._mailboxes.put(self._index[id(camera)], (msg, start))
        camera.stats.frame_arrived(replaced)
        camera.stats.callback_took(time.monotonic() - start)

    @property
    def running(self) -> bool:
        """Whether the worker thread runs (between start() and stop())."""
        return self._worker is not None

    def waiting(self) -> bool:
        """Whether a frame waits in some camera's mailbox (not yet taken by the worker)."""
        return bool(self._mailboxes.waiting())

    # ------------------------------------------------------------------ worker side
    def start(self) -> None:
        self._mailboxes.clear()
        self._mailboxes.reopen()
        self._stop.clear()
        self._worker = threading.Thread(target=self._work, name="rns-worker", daemon=True)
        self._worker.start()

    def stop(self) -> None:
        """Stop the worker after its current frame and forget the frames still waiting."""
        self._stop.set()
        self._mailboxes.close()
        if self._worker is not None:
            self._worker.join()
            self._worker = None
        self._mailboxes.clear()

    def _work(self) -> None:
        while not self._stop.is_set():
            size = batch_size(len(self.cameras), self._settings().camera_batching, self.engine)
            taken = self._mailboxes.take(size, timeout=0.2)
            if not taken or self._stop.is_set():
                continue
            try:
                self.process_frames([(self.cameras[i], msg, arrived) for i, (msg, arrived) in taken])
            except Exception as exc:  # never let the worker die
                for i, _ in taken:
                    self.cameras[i].stats.frame_failed(f"internal error: {exc!r}")
                self.warn(f"frame failed: internal error: {exc!r}")

    def process_frames(self, frames: list) -> None:
        """Decode, segment and publish frames [(camera, msg, arrival time)], one per camera."""
        started = time.monotonic()
        settings = self._settings()
        decoded = []
        for camera, msg, arrived in frames:
            # the depth partner is looked up before it can leave the ring
            early_partner = camera.depth.partner(msg.header) if camera.depth is not None else None
            try:
                rgb = decode_frame(msg, settings.max_image_pixels)
            except FrameError as exc:
                camera.stats.frame_invalid(f"bad frame: {exc}")
                self.warn(f"frame dropped: bad frame: {exc}" + (f" (camera {camera.name})" if camera.name else ""))
                continue
            decoded.append((camera, msg, rgb, arrived, early_partner))
            self.latest_valid_image = msg
        if not decoded:
            return
        class_map = self.class_map_output
        with self.engine.lock:  # the frames and their classes in one hold (class_map.py's contract)
            segmented = segment_frames(self.engine, decoded, self._engine_failed)
            classes = class_snapshot(self.engine)
            class_map.lock.acquire()  # before the engine lock goes: no newer class map before these frames
        try:
            if segmented:
                class_map.publish_classes(classes, self.engine.backbone_identity, False, settings.min_confidence)
                self._publish(segmented, class_map, settings, started)
        finally:
            class_map.lock.release()

    def _publish(self, segmented: list, class_map, settings, started: float) -> None:
        """Each segmented frame's outputs, with the class map just published (its classes')."""
        for (camera, msg, rgb, arrived, early_partner), result in segmented:
            if camera.outputs is None:
                return
            try:
                labels = camera.publish(rgb, result, msg.header, class_map, settings)
            except ValueError as exc:  # ids beyond mono16
                camera.stats.frame_failed(f"labels not encodable: {exc}")
                self.warn(f"frame dropped: {exc}")
                continue
            if camera.depth is not None:  # after the labels: depth never holds them back
                camera.depth.publish(msg.header, rgb, labels, result.confidence, early_partner)
            camera.stats.frame_processed(arrived, started)

    def _engine_failed(self, frame: tuple, reason: str) -> None:
        frame[0].stats.frame_failed(reason)
        self.warn(f"frame dropped: {reason}")

    def warn(self, text: str) -> None:
        """Log a warning at most once per second."""
        now = time.monotonic()
        if now - self._last_warning >= 1.0:
            self._last_warning = now
            self._log_warning(text)
