"""What the console keeps of the camera: each camera's newest overlay turned into pictures for the
page (at most `fps` a second), the raw frames those overlays were made from, and frozen frames.

Why the raw frames: the node's `~/overlay` is the frame blended with class colours and a legend,
not the frame itself, and an exemplar must be taught from the camera's own pixels of the exact
frame the person drew on (never the node's newer "latest frame"). So, while a page watches, the
console also subscribes to the node's camera inputs and keeps their newest frames (`RawFrames`,
bounded in bytes). An overlay carries its frame's header, so when it arrives the console takes the
raw frame with the same stamp and frame_id out of the buffer (older ones are dropped: the node
never goes back to them) and keeps the pair as the camera's newest. Each picture sent to the page
keeps its raw frame, so freezing picture `seq` pins exactly that frame (`FrozenFrames`), and
the exemplar request carries it as its image.

Threads: ROS callbacks (the executor's threads) add frames and overlays; the web server's event
loop reads pictures. A `Notifier` wakes waiting requests; every shared structure has its lock.
"""
from __future__ import annotations

import asyncio
import io
import itertools
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

import numpy as np
from PIL import Image as PILImage

from rns_ros.ros.conversions import FrameError, image_to_rgb
from rns_ros.ros.inputs.compressed import compressed_to_rgb

PICTURE_HISTORY = 16  # pictures per camera whose raw frame can still be frozen
MAX_FROZEN = 16  # frozen frames kept (oldest forgotten first)
MAX_PREVIEWS = 32  # previewed masks kept for confirmation


def frame_key(header) -> tuple[int, int, str]:
    """What identifies a camera frame: its stamp and frame_id (the node copies both to its outputs)."""
    return int(header.stamp.sec), int(header.stamp.nanosec), header.frame_id


def frame_rgb(msg) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a sensor_msgs Image or CompressedImage (FrameError when it cannot)."""
    return compressed_to_rgb(msg) if hasattr(msg, "format") else image_to_rgb(msg)


def jpeg(rgb: np.ndarray, max_width: int, quality: int) -> bytes:
    """JPEG of `rgb`, downscaled (aspect kept) to at most `max_width` pixels wide."""
    picture = PILImage.fromarray(rgb)
    if picture.width > max_width:
        picture = picture.resize((max_width, max(1, round(picture.height * max_width / picture.width))),
                                 PILImage.BILINEAR)
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=quality)
    return out.getvalue()


def _size_bytes(msg) -> int:
    return len(msg.data)


class Notifier:
    """Lets asyncio code wait for something that ROS threads report (`notify` from any thread)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future]] = []

    def notify(self) -> None:
        with self._lock:
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            try:
                loop.call_soon_threadsafe(lambda f=future: f.done() or f.set_result(None))
            except RuntimeError:  # that loop has closed: nobody waits there any more
                pass

    async def wait(self, timeout: float, unless=lambda: False) -> None:
        """Return when notified or after `timeout` seconds, whichever comes first; at once if
        `unless()` is true once the waiter is registered (so a notification between the caller's
        own check and this wait is never lost)."""
        loop = asyncio.get_running_loop()
        waiter = (loop, loop.create_future())
        with self._lock:
            self._waiters.append(waiter)
        try:
            if not unless():
                await asyncio.wait_for(waiter[1], timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            with self._lock:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)


class RawFrames:
    """The newest raw frames of one camera input, oldest dropped first beyond `max_bytes`."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._frames: OrderedDict[tuple, object] = OrderedDict()  # key -> msg, in arrival order
        self._bytes = 0
        self._lock = threading.Lock()
        self.dropped = 0  # frames dropped for room before their overlay came

    def add(self, msg) -> None:
        key = frame_key(msg.header)
        with self._lock:
            if key in self._frames:
                self._bytes -= _size_bytes(self._frames.pop(key))
            self._frames[key] = msg
            self._bytes += _size_bytes(msg)
            while self._bytes > self.max_bytes and len(self._frames) > 1:
                _, old = self._frames.popitem(last=False)
                self._bytes -= _size_bytes(old)
                self.dropped += 1

    def take(self, key: tuple):
        """The frame with `key`, removed with every frame that arrived before it (the node segments
        the newest frame it has, so it never returns to those); None when it is not here."""
        with self._lock:
            if key not in self._frames:
                return None
            while True:
                old_key, msg = self._frames.popitem(last=False)
                self._bytes -= _size_bytes(msg)
                if old_key == key:
                    return msg

    def __len__(self) -> int:
        with self._lock:
            return len(self._frames)


@dataclass
class Picture:
    """One overlay as the page gets it, with the raw frame it was made from (None if the console
    did not receive that frame)."""

    seq: int
    jpeg: bytes
    key: tuple[int, int, str]  # the frame's stamp (sec, nanosec) and frame_id
    width: int  # full-resolution frame size: the coordinates of boxes, points, strokes
    height: int
    raw: object | None
    received: float  # time.time() when the overlay arrived


class CameraFeed:
    """One camera's overlay stream, turned into at most `fps` JPEG pictures a second (encoded once,
    shared by every page watching)."""

    def __init__(self, name: str, overlay_topic: str, fps: float, max_width: int, quality: int):
        self.name, self.overlay_topic = name, overlay_topic
        self.min_interval = 1.0 / fps
        self.max_width, self.quality = max_width, quality
        self.changed = Notifier()
        self._lock = threading.Lock()
        self._newest = None  # (overlay msg, raw msg or None, arrival time)
        self._newest_count = 0  # overlays received
        self._encoded_count = 0  # of which the newest encoded was number ...
        self._pictures: deque[Picture] = deque(maxlen=PICTURE_HISTORY)
        self._seq = itertools.count(1)
        self._last_encode = 0.0
        self._encoding = threading.Lock()  # one encoder at a time: pages share its pictures
        self.overlays_received = 0
        self.bad_overlays = 0
        self.last_problem = ""

    def on_overlay(self, msg, raw) -> None:
        """A new overlay (ROS thread) and its raw frame (or None)."""
        with self._lock:
            self._newest = (msg, raw, time.time())
            self._newest_count += 1
            self.overlays_received += 1
        self.changed.notify()

    def forget(self) -> None:
        """Drop the pictures and the newest overlay (the console stopped watching: they are stale
        now); seq numbers keep counting up, so a page never mistakes a new picture for an old one."""
        with self._lock:
            self._newest = None
            self._encoded_count = self._newest_count
            self._pictures.clear()

    def attach_raw(self, raw) -> None:
        """The raw frame of an overlay that arrived before it (ROS thread)."""
        key = frame_key(raw.header)
        with self._lock:
            if self._newest is not None and frame_key(self._newest[0].header) == key:
                self._newest = (self._newest[0], raw, self._newest[2])
            for picture in self._pictures:
                if picture.key == key:
                    picture.raw = raw

    def picture(self, seq: int) -> Picture | None:
        with self._lock:
            return next((p for p in self._pictures if p.seq == seq), None)

    def latest(self) -> Picture | None:
        with self._lock:
            return self._pictures[-1] if self._pictures else None

    def _encode_newest(self) -> Picture | None:
        """Encode the newest overlay unless it already is (one encoder at a time)."""
        with self._encoding:
            with self._lock:
                if self._newest is None or self._encoded_count == self._newest_count:
                    return self._pictures[-1] if self._pictures else None
                (msg, raw, received), count = self._newest, self._newest_count
            try:
                data = jpeg(image_to_rgb(msg), self.max_width, self.quality)
            except FrameError as exc:  # a broken overlay: skipped and counted, the feed goes on
                with self._lock:
                    self._encoded_count = count
                    self.bad_overlays += 1
                    self.last_problem = f"overlay not shown: {exc}"
                return None
            picture = Picture(0, data, frame_key(msg.header), int(msg.width), int(msg.height), raw, received)
            with self._lock:
                picture.seq = next(self._seq)
                self._pictures.append(picture)
                self._encoded_count = count
                self._last_encode = time.monotonic()
            return picture

    def _pending(self) -> bool:
        """Whether an overlay came that is not encoded yet."""
        return self._newest is not None and self._encoded_count < self._newest_count

    async def next_picture(self, after: int, timeout: float) -> Picture | None:
        """The first picture newer than `after` (a seq), waiting up to `timeout` s for one; new
        pictures are made at most every 1/fps seconds, whatever the node publishes."""
        deadline = time.monotonic() + timeout
        while True:
            latest = self.latest()
            if latest is not None and latest.seq > after:
                return latest
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            with self._lock:
                pending = self._pending()
                due = self._last_encode + self.min_interval
            if not pending:
                await self.changed.wait(remaining, unless=self._pending)
            elif time.monotonic() < due:
                await asyncio.sleep(min(due - time.monotonic(), remaining))  # the rate limit itself
            else:
                await asyncio.to_thread(self._encode_newest)


@dataclass
class Frozen:
    """A frame frozen for teaching: the camera's raw message and its decoded pixels."""

    id: str
    camera: str
    msg: object
    rgb: np.ndarray
    created: float = field(default_factory=time.monotonic)


@dataclass
class Preview:
    id: str
    frame: str
    class_name: str
    mask: np.ndarray  # (H, W) bool: what the node would store


class FrozenFrames:
    """Frozen frames and previewed masks by id, the oldest forgotten first beyond their caps."""

    def __init__(self):
        self._lock = threading.Lock()
        self._frames: OrderedDict[str, Frozen] = OrderedDict()
        self._previews: OrderedDict[str, Preview] = OrderedDict()
        self._ids = itertools.count(1)

    def freeze(self, camera: str, msg) -> Frozen:
        rgb = frame_rgb(msg)
        with self._lock:
            return _kept(self._frames, Frozen(f"f{next(self._ids)}", camera, msg, rgb), MAX_FROZEN)

    def get(self, frame_id: str) -> Frozen | None:
        with self._lock:
            return self._frames.get(frame_id)

    def release(self, frame_id: str) -> bool:
        with self._lock:
            found = self._frames.pop(frame_id, None) is not None
            for pid in [p.id for p in self._previews.values() if p.frame == frame_id]:
                del self._previews[pid]
        return found

    def add_preview(self, frame: str, class_name: str, mask: np.ndarray) -> Preview:
        with self._lock:
            return _kept(self._previews, Preview(f"p{next(self._ids)}", frame, class_name, mask), MAX_PREVIEWS)

    def preview(self, preview_id: str) -> Preview | None:
        with self._lock:
            return self._previews.get(preview_id)

    def forget_preview(self, preview_id: str) -> None:
        with self._lock:
            self._previews.pop(preview_id, None)


def _kept(items: OrderedDict, item, cap: int):
    """Add `item` under its id, forgetting the oldest beyond `cap`; returns it."""
    items[item.id] = item
    while len(items) > cap:
        items.popitem(last=False)
    return item
